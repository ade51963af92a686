package channel

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"unicode/utf8"

	"github.com/rxgorm/rxgorm/cache"
	"github.com/rxgorm/rxgorm/rx"
)

// ProtocolVersion is the wire protocol version this package speaks.
const ProtocolVersion = 1

// Close codes (see docs/PROTOCOL.md).
const (
	CloseAuthFailed      = 4001 // authentication failed or timed out
	CloseBadVersion      = 4002 // unsupported protocol version
	CloseSlowClient      = 4008 // the client fell behind; reconnect and resume
	ClosePolicyViolation = 1008 // repeated protocol errors
	CloseTooLarge        = 1009 // frame over the read limit
	CloseGoingAway       = 1001 // server shutdown; reconnect and resume
)

// ID is a client-chosen subscription or call id: a JSON string or an
// integer in the int64 range, echoed back verbatim.
type ID struct{ raw json.RawMessage }

// UnmarshalJSON accepts a string or an integer.
func (id *ID) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || (b[0] != '"' && b[0] != '-' && (b[0] < '0' || b[0] > '9')) {
		return errors.New("an id must be a string or an integer")
	}
	if b[0] == '"' {
		var s string
		if err := json.Unmarshal(b, &s); err != nil {
			return err
		}
	} else if _, err := strconv.ParseInt(string(b), 10, 64); err != nil {
		// Only integers a client can hold exactly: 1e400 or 1.5 would
		// come back as something else to a JavaScript or Go client.
		return errors.New("an id must be a string or an integer")
	}
	if len(b) > maxIDLength {
		return fmt.Errorf("an id may be at most %d bytes long", maxIDLength)
	}
	id.raw = append(json.RawMessage(nil), b...)
	return nil
}

// MarshalJSON writes the id as the client sent it.
func (id ID) MarshalJSON() ([]byte, error) {
	if id.raw == nil {
		return []byte("null"), nil
	}
	return id.raw, nil
}

// String returns the id's JSON text, usable as a map key.
func (id ID) String() string { return string(id.raw) }

// ClientMessage is any client → server message; Type says which fields
// apply.
type ClientMessage struct {
	Type string `json:"type"`
	// hello
	V     int    `json:"v,omitempty"`
	Token string `json:"token,omitempty"`
	// Batch: the client accepts several server messages in one frame,
	// separated by "\n" (docs/PROTOCOL.md).
	Batch bool `json:"batch,omitempty"`
	// sub, unsub, call
	ID ID `json:"id"`
	// sub
	Channel string            `json:"channel,omitempty"`
	Params  json.RawMessage   `json:"params,omitempty"`
	Since   map[string]uint64 `json:"since,omitempty"`
	// call, save, create, delete
	Sub    ID                `json:"sub"`
	Action string            `json:"action,omitempty"`
	Args   []json.RawMessage `json:"args,omitempty"`
	// save, create, delete (write.go)
	Layer    string                     `json:"layer,omitempty"`
	Row      string                     `json:"row,omitempty"`
	Relation string                     `json:"relation,omitempty"`
	Parent   string                     `json:"parent,omitempty"`
	Fields   map[string]json.RawMessage `json:"fields,omitempty"`
}

// DecodeClient parses one client frame and checks it carries what its type
// needs. Errors are *rx.Error with CodeBadRequest.
func DecodeClient(data []byte) (*ClientMessage, error) {
	if !utf8.Valid(data) {
		return nil, rx.Errorf(rx.CodeBadRequest, "frame is not valid UTF-8")
	}
	var m ClientMessage
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&m); err != nil {
		return nil, &rx.Error{Code: rx.CodeBadRequest, Message: "malformed message: " + jsonProblem(err), Err: err}
	}
	if dec.More() {
		return nil, rx.Errorf(rx.CodeBadRequest, "malformed message: trailing data after the object")
	}
	switch m.Type {
	case "hello":
		if m.V == 0 {
			return nil, rx.Errorf(rx.CodeBadRequest, "hello needs the protocol version v")
		}
	case "sub":
		if m.ID.raw == nil || m.Channel == "" {
			return nil, rx.Errorf(rx.CodeBadRequest, "sub needs id and channel")
		}
	case "unsub":
		if m.ID.raw == nil {
			return nil, rx.Errorf(rx.CodeBadRequest, "unsub needs id")
		}
	case "call":
		if m.ID.raw == nil || m.Sub.raw == nil || m.Action == "" {
			return nil, rx.Errorf(rx.CodeBadRequest, "call needs id, sub and action")
		}
	case "save", "create", "delete":
		if err := checkWrite(&m); err != nil {
			return nil, err
		}
	case "":
		return nil, rx.Errorf(rx.CodeBadRequest, "message has no type")
	default:
		return nil, rx.Errorf(rx.CodeBadRequest, "unknown message type %s", quote(m.Type))
	}
	return &m, nil
}

func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("field %s: want %s, got %s", te.Field, te.Type, te.Value)
	}
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%v at offset %d", se, se.Offset)
	}
	return err.Error()
}

// Server → client frames. Each encoder returns the frame's JSON.

// ErrorBody is the error object of result and error frames.
type ErrorBody struct {
	Code    rx.Code `json:"code"`
	Message string  `json:"message"`
}

func welcomeFrame(user string, maxMessage int64) []byte {
	b, _ := json.Marshal(struct {
		Type       string `json:"type"`
		V          int    `json:"v"`
		User       string `json:"user"`
		MaxMessage int64  `json:"maxMessage"`
	}{"welcome", ProtocolVersion, user, maxMessage})
	return b
}

func errorFrame(sub *ID, e *rx.Error) []byte {
	b, _ := json.Marshal(struct {
		Type    string  `json:"type"`
		Sub     *ID     `json:"sub,omitempty"`
		Code    rx.Code `json:"code"`
		Message string  `json:"message"`
	}{"error", sub, e.Code, clip(e.Message, maxMessage)})
	return b
}

func resultFrame(id ID, value any, e *rx.Error) ([]byte, error) {
	if e != nil {
		return json.Marshal(struct {
			Type  string    `json:"type"`
			ID    ID        `json:"id"`
			Error ErrorBody `json:"error"`
		}{"result", id, ErrorBody{e.Code, clip(e.Message, maxMessage)}})
	}
	v, err := rx.Marshal(value)
	if err != nil {
		return nil, err
	}
	return json.Marshal(struct {
		Type  string          `json:"type"`
		ID    ID              `json:"id"`
		Value json.RawMessage `json:"value"`
	}{"result", id, v})
}

func simpleFrame(typ string, sub ID) []byte {
	b, _ := json.Marshal(struct {
		Type string `json:"type"`
		Sub  ID     `json:"sub"`
	}{typ, sub})
	return b
}

func anchorsFrame(sub ID, ids []string) []byte {
	if ids == nil {
		ids = []string{}
	}
	b, _ := json.Marshal(struct {
		Type string   `json:"type"`
		Sub  ID       `json:"sub"`
		IDs  []string `json:"ids"`
	}{"anchors", sub, ids})
	return b
}

func runtimeFrame(sub ID, key string, value json.RawMessage) []byte {
	b, _ := json.Marshal(struct {
		Type  string          `json:"type"`
		Sub   ID              `json:"sub"`
		Key   string          `json:"key"`
		Value json.RawMessage `json:"value"`
	}{"runtime", sub, key, value})
	return b
}

func systemFrame(msg json.RawMessage) []byte {
	b, _ := json.Marshal(struct {
		Type    string          `json:"type"`
		Message json.RawMessage `json:"message"`
	}{"system", msg})
	return b
}

// snapshotFrame encodes one batch of an anchor's initial state.
func snapshotFrame(sub ID, anchor string, version uint64, reset, more bool, insts []*cache.Instance) []byte {
	b := make([]byte, 0, 128+len(insts)*96)
	b = append(b, `{"type":"snapshot","sub":`...)
	b = append(b, sub.raw...)
	b = append(b, `,"anchor":`...)
	b = appendString(b, anchor)
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, version, 10)
	b = append(b, `,"reset":`...)
	b = strconv.AppendBool(b, reset)
	b = append(b, `,"more":`...)
	b = strconv.AppendBool(b, more)
	b = append(b, `,"instances":`...)
	b = appendInstances(b, insts)
	return append(b, '}')
}

// deltaFrame encodes a stream's delta; it names the stream, not a
// subscription, so one encoding serves every subscriber. from is the
// version the delta applies to (omitted when 0): a client holding less has
// missed changes.
func deltaFrame(channel, anchor string, version, from uint64, insts []*cache.Instance) []byte {
	b := make([]byte, 0, 96+len(insts)*96)
	b = append(b, `{"type":"delta","channel":`...)
	b = appendString(b, channel)
	b = append(b, `,"anchor":`...)
	b = appendString(b, anchor)
	b = append(b, `,"version":`...)
	b = strconv.AppendUint(b, version, 10)
	if from > 0 {
		b = append(b, `,"from":`...)
		b = strconv.AppendUint(b, from, 10)
	}
	b = append(b, `,"instances":`...)
	b = appendInstances(b, insts)
	return append(b, '}')
}

func appendInstances(b []byte, insts []*cache.Instance) []byte {
	b = append(b, '[')
	for i, in := range insts {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendInstance(b, in)
	}
	return append(b, ']')
}

// appendInstance encodes {"type","id","owner"?,"fields"|"deleted"} with the
// fields in name order.
func appendInstance(b []byte, in *cache.Instance) []byte {
	b = append(b, `{"type":`...)
	b = appendString(b, in.Type)
	b = append(b, `,"id":`...)
	b = appendString(b, in.ID)
	if in.Owner != "" {
		b = append(b, `,"owner":`...)
		b = appendString(b, in.Owner)
	}
	if in.Deleted {
		return append(b, `,"deleted":true}`...)
	}
	b = append(b, `,"fields":{`...)
	// The names sorted in a stack buffer: sorting a fresh slice per
	// instance was most of a snapshot's encoding cost.
	var buf [32]string
	keys := buf[:0]
	for k := range in.Fields {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, k)
		b = append(b, ':')
		b = append(b, in.Fields[k]...)
	}
	return append(b, "}}"...)
}

// appendString appends s as a JSON string.
func appendString(b []byte, s string) []byte {
	simple := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == '"' || c == '\\' || c >= 0x80 {
			simple = false
			break
		}
	}
	if simple {
		b = append(b, '"')
		b = append(b, s...)
		return append(b, '"')
	}
	enc, _ := json.Marshal(s)
	return append(b, enc...)
}
