package cache

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// How MongoStore lays out its documents. Everything here is pure: bytes in,
// bytes out, no I/O.
//
// A channel collection holds one document per stream (see streamDoc) and
// one per instance:
//
//	_id  string  the instance key: anchor, generation, type, id, owner (docID)
//	_a   string  stream anchor
//	_g   int64   generation: the version of the Fill that created the document
//	_v   int64   version of the instance's last change
//	_d   bool    tombstone
//	_t   string  type
//	_i   string  id
//	_o   string  owner ("" for shared rows)
//	...          the instance's fields, keys escaped (escapeKey)
//
// Field keys that start with '_' are escaped, so instance fields can never
// collide with the meta keys above.
//
// Field values are stored as native BSON (null, bool, int64, double,
// string, array, embedded document) when that round-trips: the store
// converts the JSON text to BSON, converts the BSON back to JSON with the
// same encoder the reads use, and keeps the BSON value only if the result
// is byte-identical to the input. Otherwise (a float written as 1.0,
// whitespace, a string escaped differently from encoding/json, a duplicate
// object key, a NUL character) the value is stored as the raw JSON text in
// a binary value of the user-defined subtype 0x80. Deltas are computed by
// comparing bytes, so an exact round-trip matters more than queryability;
// what encoding/json.Marshal produces round-trips natively.

const (
	keyID      = "_id"
	keyAnchor  = "_a"
	keyGen     = "_g"
	keyVersion = "_v"
	keyDeleted = "_d"
	keyType    = "_t"
	keyIDField = "_i"
	keyOwner   = "_o"

	// rawJSONSubtype marks a binary value holding JSON text verbatim.
	rawJSONSubtype = 0x80

	// maxDocumentSize is MongoDB's limit on a stored document (16 MiB).
	maxDocumentSize = 16 * 1024 * 1024
)

// collectionName returns the collection of a channel: prefix, the channel
// name reduced to [A-Za-z0-9_-] and at most 40 bytes, '_', and the first 8
// hex digits of the SHA-256 of the exact name. Names that reduce to the
// same text still differ by the hash.
func collectionName(prefix, channel string) string {
	var b strings.Builder
	b.WriteString(prefix)
	n := 0
	for i := 0; i < len(channel) && n < 40; i++ {
		c := channel[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '_', c == '-':
			b.WriteByte(c)
		default:
			b.WriteByte('_')
		}
		n++
	}
	sum := sha256.Sum256([]byte(channel))
	b.WriteByte('_')
	b.WriteString(hex.EncodeToString(sum[:4]))
	return b.String()
}

// streamDocID returns the _id of a stream's document in its channel's
// collection: "s:" and the anchor. Instance documents' _id values start
// with a digit (docID), so the two never collide.
func streamDocID(anchor string) string {
	return "s:" + anchor
}

// streamGen is the _g of stream documents: no instance generation is
// negative, so instance queries never match a stream document, and the
// unique index on (_a, _g, _t, _i, _o) holds one stream document per
// anchor.
const streamGen = -1

// docID returns the _id of an instance document: the parts of its key,
// length-prefixed so that no two keys share an _id. The owner comes last
// and needs no length.
func docID(anchor string, gen int64, k Key) string {
	b := make([]byte, 0, len(anchor)+len(k.Type)+len(k.ID)+len(k.Owner)+32)
	b = strconv.AppendInt(b, int64(len(anchor)), 10)
	b = append(b, ':')
	b = append(b, anchor...)
	b = append(b, '/')
	b = strconv.AppendInt(b, gen, 10)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(len(k.Type)), 10)
	b = append(b, ':')
	b = append(b, k.Type...)
	b = append(b, '/')
	b = strconv.AppendInt(b, int64(len(k.ID)), 10)
	b = append(b, ':')
	b = append(b, k.ID...)
	b = append(b, '/')
	b = append(b, k.Owner...)
	return string(b)
}

// escapeKey makes a JSON object key safe as a MongoDB field name: '%',
// '.' and NUL anywhere, a leading '$' and, for top-level keys (top), a
// leading '_' are percent-encoded; the empty key becomes "%". unescapeKey
// reverses it. Keys without those characters are unchanged.
func escapeKey(k string, top bool) string {
	if k == "" {
		return "%"
	}
	if !needsEscape(k, top) {
		return k
	}
	var b strings.Builder
	b.Grow(len(k) + 8)
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '%' || c == '.' || c == 0,
			i == 0 && c == '$',
			i == 0 && top && c == '_':
			b.WriteByte('%')
			b.WriteByte(upperHex[c>>4])
			b.WriteByte(upperHex[c&0xF])
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

const upperHex = "0123456789ABCDEF"

func needsEscape(k string, top bool) bool {
	if k[0] == '$' || top && k[0] == '_' {
		return true
	}
	return strings.ContainsAny(k, "%.\x00")
}

// unescapeKey reverses escapeKey.
func unescapeKey(k []byte) string {
	if bytes.IndexByte(k, '%') < 0 {
		return string(k)
	}
	if len(k) == 1 {
		return ""
	}
	b := make([]byte, 0, len(k))
	for i := 0; i < len(k); i++ {
		if k[i] == '%' && i+2 < len(k) {
			hi, ok1 := unhex(k[i+1])
			lo, ok2 := unhex(k[i+2])
			if ok1 && ok2 {
				b = append(b, hi<<4|lo)
				i += 2
				continue
			}
		}
		b = append(b, k[i])
	}
	return string(b)
}

func unhex(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	}
	return 0, false
}

// TooLargeError reports an instance whose document exceeds MongoDB's 16 MiB
// limit. MongoStore checks sizes before writing, so nothing of the Fill or
// Apply that met it was written.
type TooLargeError struct {
	Stream Stream
	Key    Key
	Size   int // bytes of the encoded document
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("cache: stream %s: instance type %q id %q owner %q is %d bytes as a MongoDB document, over the %d-byte limit",
		e.Stream, e.Key.Type, e.Key.ID, e.Key.Owner, e.Size, maxDocumentSize)
}

// encodeDoc appends the document of in, stored in stream s at generation
// gen, to dst.
func encodeDoc(dst []byte, s Stream, gen int64, in *Instance) ([]byte, error) {
	return encodeDocID(dst, docID(s.Anchor, gen, in.Key()), s, gen, in)
}

// tombstoneID returns the _id of a tombstone in the tombstone collection:
// the instance's docID, '@' and the version of the deletion. The version
// is the text after the last '@', so that the tombstones of one key
// deleted several times (deleted, created again, deleted again) never
// share an _id, and each is written with a plain insert.
func tombstoneID(anchor string, gen int64, k Key, version uint64) string {
	return docID(anchor, gen, k) + "@" + strconv.FormatUint(version, 10)
}

// encodeDocID is encodeDoc with the document's _id given.
func encodeDocID(dst []byte, id string, s Stream, gen int64, in *Instance) ([]byte, error) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	dst = appendStringElem(dst, keyID, id)
	dst = appendStringElem(dst, keyAnchor, s.Anchor)
	dst = appendInt64Elem(dst, keyGen, gen)
	dst = appendInt64Elem(dst, keyVersion, int64(in.Version))
	dst = appendHeader(dst, bsoncore.TypeBoolean, keyDeleted)
	if in.Deleted {
		dst = append(dst, 1)
	} else {
		dst = append(dst, 0)
	}
	dst = appendStringElem(dst, keyType, in.Type)
	dst = appendStringElem(dst, keyIDField, in.ID)
	dst = appendStringElem(dst, keyOwner, in.Owner)
	if !in.Deleted {
		var scratch []byte
		for _, f := range slices.Sorted(maps.Keys(in.Fields)) {
			dst, scratch = appendField(dst, escapeKey(f, true), in.Fields[f], scratch)
		}
	}
	dst = append(dst, 0)
	n := len(dst) - start
	if n > maxDocumentSize {
		return dst[:start], &TooLargeError{Stream: s, Key: in.Key(), Size: n}
	}
	binary.LittleEndian.PutUint32(dst[start:], uint32(n))
	return dst, nil
}

func appendHeader(dst []byte, t bsoncore.Type, key string) []byte {
	dst = append(dst, byte(t))
	dst = append(dst, key...)
	return append(dst, 0)
}

func appendStringElem(dst []byte, key, v string) []byte {
	dst = appendHeader(dst, bsoncore.TypeString, key)
	return appendBSONString(dst, v)
}

func appendBSONString(dst []byte, v string) []byte {
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(v)+1))
	dst = append(dst, v...)
	return append(dst, 0)
}

func appendInt64Elem(dst []byte, key string, v int64) []byte {
	dst = appendHeader(dst, bsoncore.TypeInt64, key)
	return binary.LittleEndian.AppendUint64(dst, uint64(v))
}

// appendField appends the element key: raw, as native BSON when that
// round-trips to the same bytes and as raw JSON text otherwise. scratch is
// a reusable buffer, returned for the next call.
func appendField(dst []byte, key string, raw json.RawMessage, scratch []byte) ([]byte, []byte) {
	start := len(dst)
	dst = appendHeader(dst, 0, key)
	valStart := len(dst)
	p := jsonToBSON{src: raw}
	t, out, ok := p.value(dst, 0)
	if ok && p.pos == len(raw) {
		var err error
		scratch, err = appendJSON(scratch[:0], t, out[valStart:])
		if err == nil && bytes.Equal(scratch, raw) {
			out[start] = byte(t)
			return out, scratch
		}
	}
	dst = out[:start]
	dst = appendHeader(dst, bsoncore.TypeBinary, key)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(len(raw)))
	dst = append(dst, rawJSONSubtype)
	return append(dst, raw...), scratch
}

// docMeta is what decodeDoc reports besides the instance: the document's
// anchor and generation, when the document has them (reads project them
// away where they are known).
type docMeta struct {
	anchor string
	gen    int64
}

// decodeDoc decodes an instance document. Fields of live instances share
// one buffer.
func decodeDoc(doc []byte) (*Instance, docMeta, error) {
	var meta docMeta
	if len(doc) < 5 {
		return nil, meta, errors.New("cache: short BSON document")
	}
	in := &Instance{}
	rest := doc[4 : len(doc)-1]
	var buf []byte
	type span struct {
		key        string
		start, end int
	}
	var spans []span
	for len(rest) > 0 {
		e, r, ok := bsoncore.ReadElement(rest)
		if !ok {
			return nil, meta, errors.New("cache: malformed BSON document")
		}
		rest = r
		key := e.KeyBytes()
		v := e.Value()
		if len(key) == 2 && key[0] == '_' {
			switch key[1] {
			case 'v':
				n, ok := v.AsInt64OK()
				if !ok {
					return nil, meta, fmt.Errorf("cache: bad %s in stored document", keyVersion)
				}
				in.Version = uint64(n)
			case 'd':
				in.Deleted, _ = v.BooleanOK()
			case 't':
				in.Type, _ = v.StringValueOK()
			case 'i':
				in.ID, _ = v.StringValueOK()
			case 'o':
				in.Owner, _ = v.StringValueOK()
			case 'a':
				meta.anchor, _ = v.StringValueOK()
			case 'g':
				meta.gen, _ = v.AsInt64OK()
			}
			continue
		}
		if len(key) == 0 || key[0] == '_' {
			continue // _id, and meta keys of later versions
		}
		s := len(buf)
		var err error
		if buf, err = appendJSON(buf, v.Type, v.Data); err != nil {
			return nil, meta, fmt.Errorf("cache: field %q of stored instance %s/%s: %w", unescapeKey(key), in.Type, in.ID, err)
		}
		spans = append(spans, span{unescapeKey(key), s, len(buf)})
	}
	if !in.Deleted {
		in.Fields = make(map[string]json.RawMessage, len(spans))
		for _, sp := range spans {
			in.Fields[sp.key] = json.RawMessage(buf[sp.start:sp.end:sp.end])
		}
	}
	return in, meta, nil
}
