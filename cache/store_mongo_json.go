package cache

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Conversion of field values between JSON text and BSON for MongoStore:
// jsonToBSON parses compact JSON into BSON, appendJSON writes BSON back as
// encoding/json.Marshal would. appendField (store_mongo_codec.go) keeps the
// BSON form only when the two agree byte for byte.

// jsonToBSON converts JSON text to a BSON value. It accepts only compact
// JSON (no white space): anything it does not take is stored raw.
type jsonToBSON struct {
	src []byte
	pos int
}

// maxDepth bounds the nesting converted natively; deeper values are stored
// raw (MongoDB allows 100 levels).
const maxDepth = 64

// value appends the value at p.pos to dst and returns its BSON type.
func (p *jsonToBSON) value(dst []byte, depth int) (bsoncore.Type, []byte, bool) {
	if p.pos >= len(p.src) || depth > maxDepth {
		return 0, dst, false
	}
	switch c := p.src[p.pos]; c {
	case 'n':
		return bsoncore.TypeNull, dst, p.literal("null")
	case 't':
		return bsoncore.TypeBoolean, append(dst, 1), p.literal("true")
	case 'f':
		return bsoncore.TypeBoolean, append(dst, 0), p.literal("false")
	case '"':
		s, ok := p.str()
		if !ok || strings.IndexByte(s, 0) >= 0 {
			return 0, dst, false
		}
		return bsoncore.TypeString, appendBSONString(dst, s), true
	case '{':
		return p.object(dst, depth)
	case '[':
		return p.array(dst, depth)
	default:
		if c == '-' || '0' <= c && c <= '9' {
			return p.number(dst)
		}
	}
	return 0, dst, false
}

func (p *jsonToBSON) literal(lit string) bool {
	if !bytes.HasPrefix(p.src[p.pos:], []byte(lit)) {
		return false
	}
	p.pos += len(lit)
	return true
}

// str reads a JSON string.
func (p *jsonToBSON) str() (string, bool) {
	start := p.pos
	i := start + 1
	escaped := false
	for ; i < len(p.src); i++ {
		c := p.src[i]
		if c == '\\' {
			escaped = true
			i++
			continue
		}
		if c == '"' {
			break
		}
	}
	if i >= len(p.src) {
		return "", false
	}
	p.pos = i + 1
	if !escaped {
		return string(p.src[start+1 : i]), true
	}
	var s string
	if json.Unmarshal(p.src[start:i+1], &s) != nil {
		return "", false
	}
	return s, true
}

func (p *jsonToBSON) number(dst []byte) (bsoncore.Type, []byte, bool) {
	start := p.pos
	isInt := true
	for ; p.pos < len(p.src); p.pos++ {
		c := p.src[p.pos]
		if '0' <= c && c <= '9' || c == '-' && p.pos == start {
			continue
		}
		if c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-' {
			isInt = false
			continue
		}
		break
	}
	text := string(p.src[start:p.pos])
	if isInt {
		if n, err := strconv.ParseInt(text, 10, 64); err == nil {
			return bsoncore.TypeInt64, binary.LittleEndian.AppendUint64(dst, uint64(n)), true
		}
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, dst, false
	}
	return bsoncore.TypeDouble, binary.LittleEndian.AppendUint64(dst, math.Float64bits(f)), true
}

func (p *jsonToBSON) object(dst []byte, depth int) (bsoncore.Type, []byte, bool) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	p.pos++ // '{'
	var seen map[string]bool
	for first := true; ; first = false {
		if p.pos >= len(p.src) {
			return 0, dst, false
		}
		if p.src[p.pos] == '}' {
			p.pos++
			break
		}
		if !first {
			if p.src[p.pos] != ',' {
				return 0, dst, false
			}
			p.pos++
		}
		if p.pos >= len(p.src) || p.src[p.pos] != '"' {
			return 0, dst, false
		}
		k, ok := p.str()
		if !ok || p.pos >= len(p.src) || p.src[p.pos] != ':' {
			return 0, dst, false
		}
		p.pos++
		if seen == nil {
			seen = make(map[string]bool)
		}
		if seen[k] {
			return 0, dst, false // duplicate keys: keep the text as it is
		}
		seen[k] = true
		elem := len(dst)
		dst = appendHeader(dst, 0, escapeKey(k, false))
		var t bsoncore.Type
		t, dst, ok = p.value(dst, depth+1)
		if !ok {
			return 0, dst, false
		}
		dst[elem] = byte(t)
	}
	dst = append(dst, 0)
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(dst)-start))
	return bsoncore.TypeEmbeddedDocument, dst, true
}

func (p *jsonToBSON) array(dst []byte, depth int) (bsoncore.Type, []byte, bool) {
	start := len(dst)
	dst = append(dst, 0, 0, 0, 0)
	p.pos++ // '['
	var idx [20]byte
	for n := 0; ; n++ {
		if p.pos >= len(p.src) {
			return 0, dst, false
		}
		if p.src[p.pos] == ']' {
			p.pos++
			break
		}
		if n > 0 {
			if p.src[p.pos] != ',' {
				return 0, dst, false
			}
			p.pos++
		}
		elem := len(dst)
		dst = append(dst, 0)
		dst = append(dst, strconv.AppendInt(idx[:0], int64(n), 10)...)
		dst = append(dst, 0)
		t, out, ok := p.value(dst, depth+1)
		if !ok {
			return 0, out, false
		}
		dst = out
		dst[elem] = byte(t)
	}
	dst = append(dst, 0)
	binary.LittleEndian.PutUint32(dst[start:], uint32(len(dst)-start))
	return bsoncore.TypeArray, dst, true
}

var errBSONType = errors.New("cache: unsupported BSON type in a stored field")

// appendJSON appends the JSON text of a BSON value written by appendField:
// numbers, strings and white space as encoding/json.Marshal writes them.
func appendJSON(dst []byte, t bsoncore.Type, data []byte) ([]byte, error) {
	switch t {
	case bsoncore.TypeNull:
		return append(dst, "null"...), nil
	case bsoncore.TypeBoolean:
		if len(data) < 1 {
			return dst, errBSONType
		}
		if data[0] != 0 {
			return append(dst, "true"...), nil
		}
		return append(dst, "false"...), nil
	case bsoncore.TypeInt64:
		if len(data) < 8 {
			return dst, errBSONType
		}
		return strconv.AppendInt(dst, int64(binary.LittleEndian.Uint64(data)), 10), nil
	case bsoncore.TypeInt32:
		if len(data) < 4 {
			return dst, errBSONType
		}
		return strconv.AppendInt(dst, int64(int32(binary.LittleEndian.Uint32(data))), 10), nil
	case bsoncore.TypeDouble:
		if len(data) < 8 {
			return dst, errBSONType
		}
		return appendFloat(dst, math.Float64frombits(binary.LittleEndian.Uint64(data)))
	case bsoncore.TypeString:
		s, _, ok := bsoncore.ReadString(data)
		if !ok {
			return dst, errBSONType
		}
		return appendJSONString(dst, s), nil
	case bsoncore.TypeBinary:
		sub, b, _, ok := bsoncore.ReadBinary(data)
		if !ok || sub != rawJSONSubtype {
			return dst, errBSONType
		}
		return append(dst, b...), nil
	case bsoncore.TypeEmbeddedDocument, bsoncore.TypeArray:
		open, closing := byte('{'), byte('}')
		if t == bsoncore.TypeArray {
			open, closing = '[', ']'
		}
		if len(data) < 5 {
			return dst, errBSONType
		}
		rest := data[4 : len(data)-1]
		dst = append(dst, open)
		for first := true; len(rest) > 0; first = false {
			e, r, ok := bsoncore.ReadElement(rest)
			if !ok {
				return dst, errBSONType
			}
			rest = r
			if !first {
				dst = append(dst, ',')
			}
			if t == bsoncore.TypeEmbeddedDocument {
				dst = appendJSONString(dst, unescapeKey(e.KeyBytes()))
				dst = append(dst, ':')
			}
			v := e.Value()
			var err error
			if dst, err = appendJSON(dst, v.Type, v.Data); err != nil {
				return dst, err
			}
		}
		return append(dst, closing), nil
	}
	return dst, fmt.Errorf("%w: %v", errBSONType, t)
}

// appendFloat formats f as encoding/json does.
func appendFloat(dst []byte, f float64) ([]byte, error) {
	if math.IsInf(f, 0) || math.IsNaN(f) {
		return dst, errBSONType
	}
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	dst = strconv.AppendFloat(dst, f, format, -1, 64)
	if format == 'e' {
		// Clean up e-09 to e-9.
		n := len(dst)
		if n >= 4 && dst[n-4] == 'e' && dst[n-3] == '-' && dst[n-2] == '0' {
			dst[n-2] = dst[n-1]
			dst = dst[:n-1]
		}
	}
	return dst, nil
}

// appendJSONString quotes s as encoding/json does (HTML characters escaped,
// invalid UTF-8 replaced).
func appendJSONString(dst []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	dst = append(dst, '"')
	start := 0
	for i := 0; i < len(s); {
		if b := s[i]; b < utf8.RuneSelf {
			if b >= 0x20 && b != '"' && b != '\\' && b != '<' && b != '>' && b != '&' {
				i++
				continue
			}
			dst = append(dst, s[start:i]...)
			switch b {
			case '\\', '"':
				dst = append(dst, '\\', b)
			case '\b':
				dst = append(dst, '\\', 'b')
			case '\f':
				dst = append(dst, '\\', 'f')
			case '\n':
				dst = append(dst, '\\', 'n')
			case '\r':
				dst = append(dst, '\\', 'r')
			case '\t':
				dst = append(dst, '\\', 't')
			default:
				dst = append(dst, '\\', 'u', '0', '0', hexDigits[b>>4], hexDigits[b&0xF])
			}
			i++
			start = i
			continue
		}
		c, size := utf8.DecodeRuneInString(s[i:])
		if c == utf8.RuneError && size == 1 {
			dst = append(dst, s[start:i]...)
			dst = append(dst, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if c == '\u2028' || c == '\u2029' {
			dst = append(dst, s[start:i]...)
			dst = append(dst, '\\', 'u', '2', '0', '2', hexDigits[c&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	dst = append(dst, s[start:]...)
	return append(dst, '"')
}
