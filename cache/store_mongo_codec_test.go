package cache

import (
	"bytes"
	"encoding/json"
	"math"
	"math/rand/v2"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"go.mongodb.org/mongo-driver/v2/x/bsonx/bsoncore"
)

// Unit tests of the MongoDB document codec; no server needed.

func TestMongoJSONStringMatchesEncodingJSON(t *testing.T) {
	cases := []string{"", "plain", `quote " and \ backslash`, "<b>&amp;</b>", "tab\tnew\nline\r", "\b\f\x00\x01\x1f\x7f",
		"héllo ✓ 日本", "\u2028\u2029", "bad \xff utf8 \xc3", "emoji 😀", "/slash/"}
	r := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		b := make([]byte, r.IntN(12))
		for i := range b {
			b[i] = byte(r.IntN(256))
		}
		cases = append(cases, string(b))
	}
	for _, s := range cases {
		want, _ := json.Marshal(s)
		if got := appendJSONString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("appendJSONString(%q) = %s, want %s", s, got, want)
		}
	}
}

func TestMongoJSONFloatMatchesEncodingJSON(t *testing.T) {
	cases := []float64{0, 1, -1, 1.5, 0.1, 1e20, 1e21, 1e-6, 1e-7, 123456789.123, math.MaxFloat64, math.SmallestNonzeroFloat64, -2.5e-300, 1 << 53}
	r := rand.New(rand.NewPCG(3, 4))
	for range 5000 {
		cases = append(cases, math.Float64frombits(r.Uint64()), r.NormFloat64()*math.Pow(10, float64(r.IntN(60)-30)))
	}
	for _, f := range cases {
		if math.IsNaN(f) || math.IsInf(f, 0) {
			continue
		}
		want, _ := json.Marshal(f)
		got, err := appendFloat(nil, f)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("appendFloat(%v) = %s, %v; want %s", f, got, err, want)
		}
	}
}

// fieldValue encodes raw as a field and returns its BSON type and the JSON
// read back.
func fieldValue(t *testing.T, raw string) (bsoncore.Type, string) {
	t.Helper()
	doc, err := encodeDoc(nil, Stream{"c", "a"}, 1, &Instance{Type: "T", ID: "1", Version: 1,
		Fields: map[string]json.RawMessage{"f": json.RawMessage(raw)}})
	if err != nil {
		t.Fatal(err)
	}
	if err := bsoncore.Document(doc).Validate(); err != nil {
		t.Fatalf("encodeDoc(%s) made invalid BSON: %v", raw, err)
	}
	typ := bsoncore.Document(doc).Lookup("f").Type
	in, _, err := decodeDoc(doc)
	if err != nil {
		t.Fatalf("decodeDoc of %s: %v", raw, err)
	}
	return typ, string(in.Fields["f"])
}

func TestMongoFieldValues(t *testing.T) {
	deep := strings.Repeat("[", 70) + strings.Repeat("]", 70)
	cases := []struct {
		raw    string
		native bool // stored as a native BSON value, not raw text
	}{
		{`null`, true}, {`true`, true}, {`false`, true},
		{`0`, true}, {`-42`, true}, {`9007199254740993`, true}, {`9223372036854775807`, true}, {`-9223372036854775808`, true},
		{`18446744073709551616`, false}, {`1.5`, true}, {`-0.25`, true}, {`1e+21`, true}, {`1e-7`, true}, {`123456.789`, true},
		{`1.0`, false}, {`1E5`, false}, {`-0`, false}, {`01`, false}, {`1e400`, false},
		{`""`, true}, {`"x"`, true}, {`"2024-05-06T07:08:09.123456789Z"`, true}, {`"héllo ✓"`, true},
		{`"\u003cb\u003e \u0026"`, true}, {`"a\nb\t\u0001\"\\"`, true}, {`"\u2028"`, true},
		{`"<b>"`, false}, {`"a\/b"`, false}, {`"\u00e9"`, false}, {`"a\u0000b"`, false}, {"\"\xff\"", false},
		{`[]`, true}, {`{}`, true}, {`["1","2","3"]`, true}, {`[1,"a",null,true,[2],{"k":1.5}]`, true},
		{`{"a":{"b":[1,{"c":null}]},"d":"e"}`, true}, {`{"a.b":1,"$x":2,"_y":3,"%":4,"":5,"a%2Eb":6}`, true},
		{`{"z":1,"a":2}`, true}, {`{"a":1,"a":2}`, false},
		{`{ "a": 1 }`, false}, {` 1`, false}, {`[1, 2]`, false}, {"\"a\"\n", false},
		{deep, false}, {strings.Repeat("[", 60) + strings.Repeat("]", 60), true},
		{`not json`, false}, {`{"a":`, false}, {``, false}, {`"unterminated`, false},
	}
	for _, c := range cases {
		typ, got := fieldValue(t, c.raw)
		if got != c.raw {
			t.Errorf("round-trip of %q gave %q", c.raw, got)
		}
		if native := typ != bsoncore.TypeBinary; native != c.native {
			t.Errorf("%q stored as %v, want native %v", c.raw, typ, c.native)
		}
	}
}

// FuzzMongoFieldRoundTrip checks that every field value comes back
// byte-identical.
func FuzzMongoFieldRoundTrip(f *testing.F) {
	for _, s := range []string{`1`, `"x"`, `{"a":[1,2]}`, `1.0`, `{"a.b":null}`, `"\u003c"`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		if _, got := fieldValue(t, raw); got != raw {
			t.Errorf("round-trip of %q gave %q", raw, got)
		}
	})
}

func TestMongoEscapeKey(t *testing.T) {
	keys := []string{"", "plain", "a.b", "$set", "a$b", "_id", "_", "%", "%25", "a%2Eb", "..", "$", "x\x00y", "é.ü", "__", "_a.$b%"}
	seen := make(map[string]string)
	for _, top := range []bool{true, false} {
		clear(seen)
		for _, k := range keys {
			e := escapeKey(k, top)
			if e == "" || strings.ContainsAny(e, ".\x00") || e[0] == '$' || top && e[0] == '_' {
				t.Errorf("escapeKey(%q, %v) = %q: not a safe field name", k, top, e)
			}
			if back := unescapeKey([]byte(e)); back != k {
				t.Errorf("unescapeKey(escapeKey(%q, %v) = %q) = %q", k, top, e, back)
			}
			if other, dup := seen[e]; dup {
				t.Errorf("escapeKey(%v): %q and %q both give %q", top, k, other, e)
			}
			seen[e] = k
		}
	}
	if got := escapeKey("name", true); got != "name" {
		t.Errorf("escapeKey changed a plain key: %q", got)
	}
	if got := escapeKey("_x", false); got != "_x" {
		t.Errorf("escapeKey escaped a leading '_' in a nested key: %q", got)
	}
}

func TestMongoCollectionName(t *testing.T) {
	names := []string{"chat", "room.chat", "room/chat", "room_chat", "room chat", strings.Repeat("long", 100), "ünï", "", "$x"}
	seen := make(map[string]string)
	for _, ch := range names {
		n := collectionName("rx_", ch)
		if other, dup := seen[n]; dup {
			t.Errorf("channels %q and %q share collection %q", ch, other, n)
		}
		seen[n] = ch
		if len(n) > len("rx_")+40+9 || strings.ContainsAny(n, ".$\x00 /") || !utf8.ValidString(n) {
			t.Errorf("collectionName(%q) = %q: not a safe collection name", ch, n)
		}
		if !isChannelCollection("rx_", n) {
			t.Errorf("isChannelCollection(%q) = false", n)
		}
	}
	if isChannelCollection("rx_", "rx_streams") || isChannelCollection("rx_", "other_0123abcd") {
		t.Errorf("isChannelCollection accepts a name collectionName never makes")
	}
}

func TestMongoDocIDUnique(t *testing.T) {
	parts := []string{"", "1", "1/", "/1", "1:2", "2:ab", "a/0/1:x", "0"}
	seen := make(map[string]string)
	for _, a := range parts {
		for _, g := range []int64{1, 10} {
			for _, ty := range parts {
				for _, id := range parts {
					for _, o := range parts {
						d := docID(a, g, Key{ty, id, o})
						desc := strconv.Quote(a) + " " + strconv.FormatInt(g, 10) + " " + strconv.Quote(ty) + " " + strconv.Quote(id) + " " + strconv.Quote(o)
						if other, dup := seen[d]; dup {
							t.Fatalf("docID collision: %s and %s give %q", desc, other, d)
						}
						seen[d] = desc
						if strings.HasPrefix(d, "s:") {
							t.Fatalf("docID %q looks like a stream document id", d)
						}
					}
				}
			}
		}
	}
}

// codecRow is a typical instance, as in store_mongo_bench_test.go.
func codecRow() *Instance {
	return &Instance{Type: "Message", ID: "1234", Version: 1795434398536875, Fields: map[string]json.RawMessage{
		"id": json.RawMessage(`1234`), "author": json.RawMessage(`"34"`),
		"body":       json.RawMessage(`"message number 1234, with a few words of text in it"`),
		"created_at": json.RawMessage(`"2026-01-02T03:24:39.123456789Z"`), "edited": json.RawMessage(`false`),
		"reactions": json.RawMessage(`["1","7","12"]`), "n": json.RawMessage(`0`),
	}}
}

// BenchmarkMongoEncodeDoc is the store's own cost of writing an instance.
func BenchmarkMongoEncodeDoc(b *testing.B) {
	in := codecRow()
	s := Stream{"bench.messages", "42"}
	var buf []byte
	for b.Loop() {
		var err error
		if buf, err = encodeDoc(buf[:0], s, 1795434398536875, in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkMongoDecodeDoc is the store's own cost of reading an instance.
func BenchmarkMongoDecodeDoc(b *testing.B) {
	doc, err := encodeDoc(nil, Stream{"bench.messages", "42"}, 1795434398536875, codecRow())
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, _, err := decodeDoc(doc); err != nil {
			b.Fatal(err)
		}
	}
}
