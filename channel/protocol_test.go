package channel

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/rxgorm/rxgorm/cache"
	"github.com/rxgorm/rxgorm/rx"
)

// TestProtocolDoc keeps docs/PROTOCOL.md and the codec in step: every JSON
// example in the document is either a client frame the decoder accepts, or a
// server frame that the server's own encoder reproduces byte for byte (up to
// key order) from the example's content.
func TestProtocolDoc(t *testing.T) {
	doc, err := os.ReadFile("../docs/PROTOCOL.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json\n(.*?)\n```").FindAllSubmatch(doc, -1)
	if len(blocks) < 20 {
		t.Fatalf("only %d examples found", len(blocks))
	}
	seen := map[string]bool{}
	for _, b := range blocks {
		frame := bytes.TrimSpace(b[1])
		var head struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(frame, &head); err != nil {
			t.Errorf("example is not JSON: %s: %v", frame, err)
			continue
		}
		seen[head.Type] = true
		switch head.Type {
		case "hello", "sub", "unsub", "call", "save", "create", "delete":
			if _, err := DecodeClient(frame); err != nil {
				t.Errorf("client example refused: %s: %v", frame, err)
			}
		default:
			got, err := reencode(frame)
			if err != nil {
				t.Errorf("server example %s: %v", frame, err)
				continue
			}
			if !sameJSON(got, frame) {
				t.Errorf("encoder disagrees with the doc\n doc: %s\n got: %s", frame, got)
			}
		}
	}
	for _, typ := range []string{"hello", "sub", "unsub", "call", "save", "create", "delete", "welcome", "snapshot", "done", "delta", "anchors", "unsubscribed", "result", "runtime", "presence", "system", "error"} {
		if !seen[typ] {
			t.Errorf("docs/PROTOCOL.md has no example of %q", typ)
		}
	}
}

// reencode decodes a documented server frame into the values the server
// works with and encodes it again with the server's encoder.
func reencode(frame []byte) ([]byte, error) {
	var m struct {
		Type       string            `json:"type"`
		Sub        *ID               `json:"sub"`
		ID         ID                `json:"id"`
		User       string            `json:"user"`
		MaxMessage int64             `json:"maxMessage"`
		Anchor     string            `json:"anchor"`
		Channel    string            `json:"channel"`
		Version    uint64            `json:"version"`
		From       uint64            `json:"from"`
		Reset      bool              `json:"reset"`
		More       bool              `json:"more"`
		IDs        []string          `json:"ids"`
		Key        string            `json:"key"`
		Value      json.RawMessage   `json:"value"`
		Message    json.RawMessage   `json:"message"`
		Code       rx.Code           `json:"code"`
		Error      *ErrorBody        `json:"error"`
		Instances  []json.RawMessage `json:"instances"`
		Users      []rx.Present      `json:"users"`
	}
	if err := json.Unmarshal(frame, &m); err != nil {
		return nil, err
	}
	var insts []*cache.Instance
	for _, raw := range m.Instances {
		var in struct {
			Type    string                     `json:"type"`
			ID      string                     `json:"id"`
			Owner   string                     `json:"owner"`
			Fields  map[string]json.RawMessage `json:"fields"`
			Deleted bool                       `json:"deleted"`
		}
		if err := json.Unmarshal(raw, &in); err != nil {
			return nil, err
		}
		insts = append(insts, &cache.Instance{Type: in.Type, ID: in.ID, Owner: in.Owner, Fields: in.Fields, Deleted: in.Deleted})
	}
	sub := ID{}
	if m.Sub != nil {
		sub = *m.Sub
	}
	switch m.Type {
	case "welcome":
		return welcomeFrame(m.User, m.MaxMessage), nil
	case "snapshot":
		return snapshotFrame(sub, m.Anchor, m.Version, m.Reset, m.More, insts), nil
	case "delta":
		return deltaFrame(m.Channel, m.Anchor, m.Version, m.From, insts), nil
	case "done", "unsubscribed":
		return simpleFrame(m.Type, sub), nil
	case "anchors":
		return anchorsFrame(sub, m.IDs), nil
	case "runtime":
		return runtimeFrame(sub, m.Key, m.Value), nil
	case "presence":
		return presenceFrame(sub, &rx.StreamPresence{Anchor: m.Anchor, Users: m.Users}), nil
	case "system":
		return systemFrame(m.Message), nil
	case "error":
		var msg string
		json.Unmarshal(m.Message, &msg)
		return errorFrame(m.Sub, &rx.Error{Code: m.Code, Message: msg}), nil
	case "result":
		if m.Error != nil {
			return resultFrame(m.ID, nil, &rx.Error{Code: m.Error.Code, Message: m.Error.Message})
		}
		return resultFrame(m.ID, m.Value, nil)
	}
	return nil, errUnknown(m.Type)
}

type errUnknown string

func (e errUnknown) Error() string {
	return "unknown server frame type " + strings.TrimSpace(string(e))
}

func sameJSON(a, b []byte) bool {
	var x, y any
	return json.Unmarshal(a, &x) == nil && json.Unmarshal(b, &y) == nil && reflect.DeepEqual(x, y)
}

// FuzzDecodeClient: the frame decoder never panics, and what it accepts has
// the fields its type needs.
func FuzzDecodeClient(f *testing.F) {
	for _, s := range []string{
		`{"type":"hello","v":1,"token":"abc"}`,
		`{"type":"sub","id":"s1","channel":"ChatChannel","params":{"chatId":5},"since":{"5":17}}`,
		`{"type":"unsub","id":3}`,
		`{"type":"call","id":7,"sub":"s1","action":"send","args":["hi",1,{"a":[]}]}`,
		`{"type":"sub","id":{},"channel":"x"}`,
		`{"type":"call","id":1e400,"sub":"s","action":"a"}`,
		`{"type":"save","id":2,"sub":"s1","layer":"Message","row":"10","fields":{"text":"x"}}`,
		`{"type":"create","id":3,"sub":"s1","layer":"Message","relation":"Chat.messages","parent":"5","fields":{}}`,
		`{"type":"delete","id":4,"sub":"s1","layer":"Message","row":"10"}`,
		`{"type":"delete","id":4,"sub":"s1","layer":"Message","row":"10","fields":{"a":1}}`,
		`[1,2,3]`, `{}`, `{"type":"hello","v":1}{}`, "\xff", `{"type":"sub","id":"a","channel":"c","params":` + strings.Repeat("[", 10000),
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := DecodeClient(data)
		if err != nil {
			var e *rx.Error
			if !errorsAs(err, &e) || e.Code != rx.CodeBadRequest {
				t.Fatalf("error is not bad_request: %v", err)
			}
			return
		}
		switch m.Type {
		case "hello":
			if m.V == 0 {
				t.Fatal("hello without v accepted")
			}
		case "sub":
			if m.ID.raw == nil || m.Channel == "" {
				t.Fatal("sub without id or channel accepted")
			}
		case "unsub":
			if m.ID.raw == nil {
				t.Fatal("unsub without id accepted")
			}
		case "call":
			if m.ID.raw == nil || m.Sub.raw == nil || m.Action == "" {
				t.Fatal("incomplete call accepted")
			}
		case "save", "create", "delete":
			if m.ID.raw == nil || m.Sub.raw == nil || m.Layer == "" {
				t.Fatal("write without id, sub or layer accepted")
			}
			if m.Type != "create" && m.Row == "" {
				t.Fatal("save or delete without row accepted")
			}
			if m.Type == "create" && (m.Relation == "" || m.Parent == "") {
				t.Fatal("create without relation or parent accepted")
			}
			if m.Type == "delete" && len(m.Fields) > 0 {
				t.Fatal("delete with fields accepted")
			}
		default:
			t.Fatalf("unknown type %q accepted", m.Type)
		}
		// Ids round-trip.
		if b, err := json.Marshal(m.ID); err != nil || (m.ID.raw != nil && !bytes.Equal(b, m.ID.raw)) {
			t.Fatalf("id %s does not round-trip: %s %v", m.ID.raw, b, err)
		}
	})
}

func errorsAs(err error, target **rx.Error) bool { return errors.As(err, target) }
