package rx

import (
	"bytes"
	"context"
	"encoding"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"runtime/debug"
	"strings"
	"time"
	"unicode"
)

// Actions: methods of a channel that its subscribers call (Subscription.Call,
// the protocol's "call" frame). Declared at Register, run on the
// subscription's channel instance (instance.go), one at a time; their
// arguments are decoded from JSON and refused in the protocol's terms.

// Actioner is implemented by a channel that offers actions: the names of
// its exported methods that clients may call. An action method takes a
// context.Context first, then any JSON-decodable arguments, and returns
// error or (result, error):
//
//	func (c *ChatChannel) Actions() []string { return []string{"SendMessage"} }
//	func (c *ChatChannel) SendMessage(ctx context.Context, text string) (*Message, error)
//
// On the wire the action is named in lower camel case ("sendMessage").
type Actioner interface {
	Actions() []string
}

// actionDef is one declared action.
type actionDef struct {
	name   string // wire name
	goName string
	method reflect.Method
	args   []reflect.Type
	result reflect.Type // nil when the method returns only error
}

var (
	ctxType = reflect.TypeFor[context.Context]()
	errType = reflect.TypeFor[error]()
)

// declareActions validates the actions a channel declares.
func declareActions(d *channelDef) error {
	a, ok := d.proto.(Actioner)
	if !ok {
		return nil
	}
	pt := d.goType
	if pt.Kind() != reflect.Pointer {
		pt = reflect.PointerTo(pt)
	}
	d.actions = map[string]*actionDef{}
	for _, name := range a.Actions() {
		m, ok := pt.MethodByName(name)
		if !ok {
			return &DeclarationError{Type: typeName(d.goType), Field: name, Reason: "declared as an action but there is no such exported method"}
		}
		ft := m.Type // includes the receiver
		if ft.NumIn() < 2 || ft.In(1) != ctxType {
			return &DeclarationError{Type: typeName(d.goType), Field: name, Reason: "an action takes a context.Context first"}
		}
		if ft.NumOut() == 0 || ft.NumOut() > 2 || ft.Out(ft.NumOut()-1) != errType {
			return &DeclarationError{Type: typeName(d.goType), Field: name, Reason: "an action returns error or (result, error)"}
		}
		if ft.IsVariadic() {
			return &DeclarationError{Type: typeName(d.goType), Field: name, Reason: "variadic actions are not supported"}
		}
		ad := &actionDef{name: lowerCamel(name), goName: name, method: m}
		for i := 2; i < ft.NumIn(); i++ {
			if err := encodable(ft.In(i), map[reflect.Type]bool{}); err != nil {
				return &DeclarationError{Type: typeName(d.goType), Field: name, Reason: fmt.Sprintf("argument %d: %v", i-1, err)}
			}
			ad.args = append(ad.args, ft.In(i))
		}
		if ft.NumOut() == 2 {
			if err := encodable(ft.Out(0), map[reflect.Type]bool{}); err != nil {
				return &DeclarationError{Type: typeName(d.goType), Field: name, Reason: fmt.Sprintf("result: %v", err)}
			}
			ad.result = ft.Out(0)
		}
		if _, dup := d.actions[ad.name]; dup {
			return &DeclarationError{Type: typeName(d.goType), Field: name, Reason: fmt.Sprintf("action %q declared twice", ad.name)}
		}
		d.actions[ad.name] = ad
	}
	return nil
}

// lowerCamel turns "SendMessage" into "sendMessage" and "ID" into "id".
func lowerCamel(s string) string {
	r := []rune(s)
	for i := 0; i < len(r); i++ {
		if !unicode.IsUpper(r[i]) {
			break
		}
		if i > 0 && i+1 < len(r) && !unicode.IsUpper(r[i+1]) {
			break
		}
		r[i] = unicode.ToLower(r[i])
	}
	return string(r)
}

// Call runs an action of the subscription's channel instance with
// JSON-encoded positional arguments and returns its result. Errors are
// *Error values with the codes of the protocol: unknown_action,
// bad_request (naming the argument), the action's own code, or internal
// (a plain error or a recovered panic, logged). The action's context is
// cancelled when ctx is or when the subscription ends. On a subscription
// ended because Authorize now refuses it (Reauthorizer), Call returns its
// forbidden error and runs nothing.
func (s *Subscription) Call(ctx context.Context, action string, args []json.RawMessage) (result any, err error) {
	if err := s.refused(); err != nil {
		return nil, err
	}
	i := s.inst
	ad := s.def.actions[action]
	if ad == nil || i == nil {
		return nil, Errorf(CodeUnknownAction, "%s has no action %q", s.def.name, action)
	}
	if len(args) != len(ad.args) {
		return nil, Errorf(CodeBadRequest, "%s takes %d argument(s), got %d", action, len(ad.args), len(args))
	}
	in := make([]reflect.Value, 0, len(args)+2)
	in = append(in, i.value)
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(i.ctx, cancel)
	defer stop()
	in = append(in, reflect.ValueOf(cctx))
	for n, raw := range args {
		v, err := decodeArg(ad.args[n], raw)
		if err != nil {
			return nil, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("%s: argument %d: %s", action, n+1, err.Message), Err: err.Err}
		}
		in = append(in, v)
	}
	i.mu.Lock()
	defer i.mu.Unlock()
	defer func() {
		if p := recover(); p != nil {
			s.hub.log.Error("rx: action panicked", "channel", s.def.name, "action", action, "panic", p, "stack", string(debug.Stack()))
			result, err = nil, Errorf(CodeInternal, "internal error")
		}
	}()
	out := ad.method.Func.Call(in)
	if e := out[len(out)-1]; !e.IsNil() {
		return nil, e.Interface().(error)
	}
	if ad.result != nil {
		return out[0].Interface(), nil
	}
	return nil, nil
}

// decodeArg decodes one action argument into a value of type t. JSON null
// is refused unless t can hold it (pointers, slices, maps, interfaces):
// encoding/json would leave the zero value, and the action would run with
// a value the client never sent.
func decodeArg(t reflect.Type, raw json.RawMessage) (reflect.Value, *Error) {
	if got := rawKind(raw); (got == "null" && !nullable(t)) || (t == timeType && got != "string") {
		return reflect.Value{}, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("want %s, got %s", jsonKind(t), got)}
	}
	pv := reflect.New(t)
	if err := unmarshalInput(raw, pv.Interface()); err != nil {
		return reflect.Value{}, &Error{Code: CodeBadRequest, Message: jsonProblem(err), Err: err}
	}
	return pv.Elem(), nil
}

// rawKind names the kind of JSON value raw holds, as jsonKind and
// encoding/json's errors do ("string", "number", "null", …).
func rawKind(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch {
	case raw[0] == '"':
		return "string"
	case raw[0] == '{':
		return "object"
	case raw[0] == '[':
		return "array"
	case string(raw) == "true" || string(raw) == "false":
		return "boolean"
	case string(raw) == "null":
		return "null"
	case raw[0] == '-' || raw[0] >= '0' && raw[0] <= '9':
		return "number"
	}
	return "invalid JSON"
}

// nullable reports whether JSON null is a value of t. A time.Time decodes
// null as its zero value, which no client means: it is refused.
func nullable(t reflect.Type) bool {
	if t == timeType {
		return false
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Map, reflect.Interface:
		return true
	}
	return t.Implements(jsonUnmarshalerType) || reflect.PointerTo(t).Implements(jsonUnmarshalerType)
}

var (
	jsonUnmarshalerType = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshalerType = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// jsonKind names what a client must send for a value of t, in JSON terms
// (the protocol's), not Go's.
func jsonKind(t reflect.Type) string {
	switch {
	case t == timeType:
		return "a time string (RFC 3339)"
	case t.Implements(jsonUnmarshalerType) || reflect.PointerTo(t).Implements(jsonUnmarshalerType):
		return "a JSON value"
	case reflect.PointerTo(t).Implements(textUnmarshalerType):
		return "string"
	}
	switch t.Kind() {
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		min := int64(-1) << (t.Bits() - 1)
		return fmt.Sprintf("integer from %d to %d", min, ^min)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return fmt.Sprintf("integer from 0 to %d", ^uint64(0)>>(64-t.Bits()))
	case reflect.Float32, reflect.Float64:
		return "number"
	case reflect.String:
		return "string"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return "base64 string"
		}
		return "array"
	case reflect.Array:
		return fmt.Sprintf("array of %d", t.Len())
	case reflect.Map, reflect.Struct:
		return "object"
	case reflect.Pointer:
		return jsonKind(t.Elem()) + " or null"
	}
	return "a JSON value"
}

// jsonProblem describes a decoding error in JSON terms, without Go type
// internals.
func jsonProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		want := "a JSON value"
		if te.Type != nil {
			want = jsonKind(te.Type)
		}
		if te.Field != "" {
			return fmt.Sprintf("field %s: want %s, got %s", te.Field, want, te.Value)
		}
		return fmt.Sprintf("want %s, got %s", want, te.Value)
	}
	var pe *time.ParseError
	if errors.As(err, &pe) {
		return fmt.Sprintf("want %s, got %q", jsonKind(timeType), pe.Value)
	}
	if strings.HasPrefix(err.Error(), "Time.UnmarshalJSON: ") { // not a string
		return "want " + jsonKind(timeType)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}
