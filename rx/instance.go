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
	"slices"
	"strings"
	"sync"
	"unicode"
)

// Per-subscription channel instances. Every subscription gets its own value
// of the channel type (a shallow copy of the value passed to Register, so
// injected dependencies carry over), bound to the subscription. Actions run
// on it, its runtime state is pushed to its subscriber, and it can join
// groups whose events its consumer handlers receive.

// binding is embedded (through Channel and List) in every channel value.
type binding struct {
	inst *instance
}

func (b *binding) rxBind(i *instance) { b.inst = i }

// User returns the subscribing user. It is the zero User on the value passed
// to Register.
func (b *binding) User() User {
	if b.inst == nil {
		return User{}
	}
	return b.inst.sub.user
}

// Hub returns the hub serving the subscription (nil on the registered
// prototype).
func (b *binding) Hub() *Hub {
	if b.inst == nil {
		return nil
	}
	return b.inst.sub.hub
}

// Join adds the subscription to a group: events published to the group
// reach this channel's consumer handlers until Leave or the end of the
// subscription.
func (b *binding) Join(group string) {
	if b.inst != nil {
		b.inst.sub.hub.groups.join(group, b.inst)
		if o := b.inst.sub.def.presence; o != nil && o.Groups {
			b.inst.sub.hub.presence.enter(GroupPlace(group), b.inst, "")
		}
	}
}

// Leave removes the subscription from a group.
func (b *binding) Leave(group string) {
	if b.inst != nil {
		b.inst.sub.hub.groups.leave(group, b.inst)
		b.inst.sub.hub.presence.exit(GroupPlace(group), b.inst)
	}
}

// Params returns the parameters of the subscription.
func (c *Channel[T, P]) Params() P {
	var p P
	if c.inst != nil {
		p, _ = c.inst.sub.params.(P)
	}
	return p
}

// Params returns the parameters of the subscription.
func (c *List[T, P]) Params() P {
	var p P
	if c.inst != nil {
		p, _ = c.inst.sub.params.(P)
	}
	return p
}

// AddAnchor adds an anchor to this list subscription, at the start or the
// end, even if the channel's Anchors query does not return it. It lasts for
// the subscription's life; the client receives the new list and the
// anchor's state.
func (c *List[T, P]) AddAnchor(id any, atStart bool) error {
	return c.editAnchors(id, func(sub *Subscription, key string) {
		delete(sub.hidden, key)
		sub.pinned = slices.DeleteFunc(sub.pinned, func(p pin) bool { return p.id == key })
		sub.pinned = append(sub.pinned, pin{key, atStart})
	})
}

// RemoveAnchor removes an anchor from this list subscription for the
// subscription's life, even if the channel's Anchors query returns it.
func (c *List[T, P]) RemoveAnchor(id any) error {
	return c.editAnchors(id, func(sub *Subscription, key string) {
		sub.pinned = slices.DeleteFunc(sub.pinned, func(p pin) bool { return p.id == key })
		if sub.hidden == nil {
			sub.hidden = map[string]bool{}
		}
		sub.hidden[key] = true
	})
}

func (c *List[T, P]) editAnchors(id any, edit func(*Subscription, string)) error {
	if c.inst == nil {
		return errors.New("rx: AddAnchor/RemoveAnchor need a subscription")
	}
	key, ok := idString(reflect.ValueOf(id))
	if !ok {
		return fmt.Errorf("rx: invalid anchor id %v", id)
	}
	sub := c.inst.sub
	e := sub.hub.engine
	var err error
	if cerr := e.call(c.inst.ctx, func() {
		edit(sub, key)
		err = e.refreshList(e.ctx(), sub)
	}); cerr != nil {
		return cerr
	}
	return err
}

// Runtime adds typed runtime state to a channel: embed it beside Channel or
// List. R is a struct; each of its JSON fields is pushed to the
// subscription's client when Set changes it, and sent in full after the
// snapshot.
//
//	type ChatChannel struct {
//		rx.Channel[Chat, ChatParams]
//		rx.Runtime[ChatRuntime]
//	}
type Runtime[R any] struct {
	cell *runtimeCell[R]
}

type runtimeCell[R any] struct {
	mu   sync.Mutex
	val  R
	inst *instance
}

func (r *Runtime[R]) rxBindRuntime(i *instance) { r.cell = &runtimeCell[R]{inst: i} }

func (r *Runtime[R]) rxRuntimeType() reflect.Type { return reflect.TypeFor[R]() }

func (r *Runtime[R]) rxRuntimeFields() map[string]json.RawMessage {
	if r.cell == nil {
		var zero R
		return encodeFields(zero)
	}
	r.cell.mu.Lock()
	defer r.cell.mu.Unlock()
	return encodeFields(r.cell.val)
}

// Get returns a copy of the runtime state.
func (r *Runtime[R]) Get() R {
	if r.cell == nil {
		var zero R
		return zero
	}
	r.cell.mu.Lock()
	defer r.cell.mu.Unlock()
	return r.cell.val
}

// Set changes the runtime state with f and pushes the fields that changed
// to the subscription's client. On the value passed to Register it does
// nothing.
func (r *Runtime[R]) Set(f func(*R)) {
	c := r.cell
	if c == nil {
		return
	}
	c.mu.Lock()
	before := encodeFields(c.val)
	f(&c.val)
	after := encodeFields(c.val)
	c.mu.Unlock()
	changed := map[string]json.RawMessage{}
	for k, v := range after {
		if string(before[k]) != string(v) {
			changed[k] = v
		}
	}
	if len(changed) > 0 {
		sub := c.inst.sub
		sub.hub.engine.do(func() { sub.push(&Event{Runtime: changed}) })
	}
}

// encodeFields encodes a struct's JSON fields one by one.
func encodeFields(v any) map[string]json.RawMessage {
	b, err := Marshal(v)
	if err != nil {
		return nil
	}
	var m map[string]json.RawMessage
	_ = json.Unmarshal(b, &m)
	return m
}

// Connecter is implemented by a channel that runs code when a subscription
// starts (after its permission check, before its snapshot is sent). An error
// refuses the subscription with that error.
type Connecter interface {
	OnConnect(ctx context.Context) error
}

// Disconnecter is implemented by a channel that runs code when a
// subscription ends, for whatever reason.
type Disconnecter interface {
	OnDisconnect(ctx context.Context)
}

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

// Consumer is implemented by a channel that handles group events: a
// handler per event name, made with On.
//
//	func (c *ChatChannel) Consumers() rx.Consumers {
//		return rx.Consumers{"chat.typing": rx.On(c.onTyping)}
//	}
type Consumer interface {
	Consumers() Consumers
}

// Consumers maps event names to handlers.
type Consumers map[string]Handler

// Handler handles one kind of group event.
type Handler interface {
	handle(ctx context.Context, payload json.RawMessage) error
}

type handlerFunc[E any] func(ctx context.Context, e E)

func (f handlerFunc[E]) handle(ctx context.Context, payload json.RawMessage) error {
	var e E
	if len(payload) > 0 {
		if err := json.Unmarshal(payload, &e); err != nil {
			return fmt.Errorf("rx: decode %T event: %w", e, err)
		}
	}
	f(ctx, e)
	return nil
}

// On makes a Handler of a typed function: the event's payload is decoded
// into E.
func On[E any](f func(ctx context.Context, e E)) Handler { return handlerFunc[E](f) }

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

// instance is a subscription's own channel value.
type instance struct {
	sub       *Subscription
	value     reflect.Value // pointer to the channel value
	consumers Consumers
	ctx       context.Context
	cancel    context.CancelFunc
	mu        sync.Mutex // serializes actions and consumer handlers
	qmu       sync.Mutex
	q         []func() // guarded by qmu
	running   bool     // guarded by qmu
	runtime   interface {
		rxRuntimeFields() map[string]json.RawMessage
	}
}

func newInstance(sub *Subscription) *instance {
	d := sub.def
	v := reflect.New(d.elemType)
	if pv := reflect.ValueOf(d.proto); pv.Kind() == reflect.Pointer && !pv.IsNil() {
		v.Elem().Set(pv.Elem())
	} else if pv.Kind() == reflect.Struct {
		v.Elem().Set(pv)
	}
	i := &instance{sub: sub, value: v}
	i.ctx, i.cancel = context.WithCancel(sub.hub.ctx)
	ptr := v.Interface()
	if b, ok := ptr.(interface{ rxBind(*instance) }); ok {
		b.rxBind(i)
	}
	if r, ok := ptr.(interface{ rxBindRuntime(*instance) }); ok {
		r.rxBindRuntime(i)
		i.runtime, _ = ptr.(interface {
			rxRuntimeFields() map[string]json.RawMessage
		})
	}
	if c, ok := ptr.(Consumer); ok {
		i.consumers = c.Consumers()
	}
	return i
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
	if string(bytes.TrimSpace(raw)) == "null" && !nullable(t) {
		return reflect.Value{}, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("want %s, got null", jsonKind(t))}
	}
	pv := reflect.New(t)
	if err := unmarshalInput(raw, pv.Interface()); err != nil {
		return reflect.Value{}, &Error{Code: CodeBadRequest, Message: jsonProblem(err), Err: err}
	}
	return pv.Elem(), nil
}

// nullable reports whether JSON null is a value of t.
func nullable(t reflect.Type) bool {
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
	return strings.TrimPrefix(err.Error(), "json: ")
}

// queue runs f after the instance's earlier queued work, off the caller's
// goroutine.
func (i *instance) queue(f func()) {
	i.qmu.Lock()
	i.q = append(i.q, f)
	run := !i.running
	i.running = true
	i.qmu.Unlock()
	if !run {
		return
	}
	go func() {
		for {
			i.qmu.Lock()
			if len(i.q) == 0 {
				i.running = false
				i.qmu.Unlock()
				return
			}
			f := i.q[0]
			i.q = i.q[1:]
			i.qmu.Unlock()
			if i.ctx.Err() != nil {
				continue
			}
			i.mu.Lock()
			f()
			i.mu.Unlock()
		}
	}()
}
