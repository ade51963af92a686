package rx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
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
