package rx

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"time"

	"github.com/rxgorm/rxgorm/cache"
)

// Event is one step of a subscription: a snapshot or a delta of one anchor's
// stream.
type Event struct {
	// Anchor is the anchor id of the stream the event belongs to.
	Anchor string
	// Version is the stream's version after the event. Keep the last one
	// seen per anchor to resume with SubscribeOptions.Since.
	Version uint64
	// From, on an event that is not a snapshot, is the version it applies
	// to: it carries every change of the stream after From up to Version.
	// A plain delta has From = Version-1; a catch-up (several versions
	// merged, or the answer to a resume) has an older From, and its
	// instances are whole rows. A subscriber holding a version below From
	// has missed changes: it must subscribe again (with Since). Zero when
	// unknown.
	From uint64
	// Instances are flat rows: in full in a snapshot and on resume, only
	// the changed fields in a delta, tombstones (Deleted) for rows that left
	// the stream. Only rows the subscriber may see are included.
	Instances []*cache.Instance
	// Snapshot means Instances are the stream's whole state: replace what
	// is held for this anchor.
	Snapshot bool
	// Initial marks the first event of an anchor for this subscription:
	// its snapshot, or the changes since the version it resumed from.
	Initial bool
	// Anchors, on list channels, is the ordered list of anchor ids; it is
	// set on the first event and whenever the list changes.
	Anchors []string
	// Runtime holds runtime-state fields of the subscription's channel that
	// changed (all of them after the snapshot); such an event carries
	// nothing else.
	Runtime map[string]json.RawMessage
	// Presence, on channels that track presence, is who is now present in
	// one of the subscription's streams; such an event carries nothing
	// else.
	Presence *StreamPresence
	// End marks the last event given to a Deliver function; Err says why
	// the subscription ended (nil after Close).
	End bool
	Err error
	// Committed, on a delta this node made from commits, is when the
	// oldest of them reached the engine (right after its transaction
	// committed; on a node that received the commit from another, when it
	// arrived). Transports measure the commit-to-send latency with it. It
	// is zero on other events, on deltas of followed streams and on a
	// batch of commits retried after a failed read.
	Committed time.Time

	memo *memo
}

type memo struct {
	once sync.Once
	v    any
}

// Memo returns f(ev), computing it once per event however many
// subscriptions receive it: transports use it to encode a frame once per
// stream. Events filtered for a user's per-user rows are distinct events.
func (ev *Event) Memo(f func(*Event) any) any {
	if ev.memo == nil {
		return f(ev)
	}
	ev.memo.once.Do(func() { ev.memo.v = f(ev) })
	return ev.memo.v
}

// SubscribeOptions are per-call choices of Subscribe.
type SubscribeOptions struct {
	// Since maps anchor ids to the last version the caller holds. Those
	// anchors start with only what changed after it (tombstones included),
	// or with a full snapshot when the cache cannot answer.
	Since map[string]uint64
	// Deliver, when set, receives the events instead of the Events
	// channel. It runs on the engine goroutine and must not block; returning
	// false ends the subscription with ErrOverloaded. The last call carries
	// End.
	Deliver func(*Event) bool
	// Conn, when set, names the client connection the subscription belongs
	// to (any comparable value, such as a socket): presence then counts a
	// user's connections in a place, not their subscriptions, so that a
	// connection holding many subscriptions of one stream changes its
	// presence once. Nil counts each subscription as a connection.
	Conn any
}

// Subscription delivers a channel's state to one user: first a snapshot (or
// the changes since a version) of every anchor, then ordered deltas.
type Subscription struct {
	hub    *Hub
	def    *channelDef
	user   User
	params any
	ch     chan *Event
	sink   func(*Event) bool
	conn   any // SubscribeOptions.Conn
	inst   *instance
	// counted is set when the subscription counts in Stats.Subscriptions
	// (engine goroutine only).
	counted bool

	mu      sync.Mutex
	anchors []string // guarded by mu; written on the engine goroutine only
	err     error    // guarded by mu
	closed  bool     // guarded by mu; set on the engine goroutine only
	revoked bool     // guarded by mu; ended by re-authorization (reauth.go)

	streams []*hotStream    // engine-owned
	pinned  []pin           // engine-owned: anchors added by channel code
	hidden  map[string]bool // engine-owned: anchors removed by channel code
}

type pin struct {
	id      string
	atStart bool
}

// Events returns the channel of events. It is closed when the subscription
// ends: after Close, when the hub closes, or when the subscriber fell too
// far behind (Err then wraps ErrOverloaded: subscribe again with Since). It
// is nil when the subscription was made with a Deliver function.
func (s *Subscription) Events() <-chan *Event { return s.ch }

// Channel returns the subscription's own value of the channel type (a
// pointer), on which its actions run.
func (s *Subscription) Channel() any { return s.inst.value.Interface() }

// Err returns why the subscription ended, or nil.
func (s *Subscription) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Anchors returns the anchor ids of the subscription, in list order.
func (s *Subscription) Anchors() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.anchors)
}

// Close ends the subscription: no event is delivered after Close returns.
func (s *Subscription) Close() {
	_ = s.hub.engine.call(context.Background(), func() { s.end(nil) })
}

// deliver queues ev for the subscriber, keeping only rows it may see. It
// runs on the engine goroutine and never blocks: a full queue ends the
// subscription with ErrOverloaded.
func (s *Subscription) deliver(ev *Event) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return
	}
	s.push(filterOwner(ev, s.user.ID))
}

// push hands ev to the subscriber (engine goroutine only).
func (s *Subscription) push(ev *Event) {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return
	}
	if s.sink != nil {
		if !s.sink(ev) {
			s.end(&Error{Code: CodeOverloaded, Message: "subscriber fell behind; resume with Since"})
		}
		return
	}
	select {
	case s.ch <- ev:
	default:
		s.end(&Error{Code: CodeOverloaded, Message: "subscriber fell behind; resume with Since"})
	}
}

// end closes the subscription (engine goroutine only).
func (s *Subscription) end(err error) { s.finish(err, true) }

// finish closes the subscription; notify says whether a Deliver function
// gets the End event (not when Subscribe itself fails: its caller has the
// error).
func (s *Subscription) finish(err error, notify bool) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.err = err
	s.mu.Unlock()
	if s.counted {
		s.hub.stats.subs.Add(-1)
	}
	for _, st := range s.streams {
		delete(st.subs, s)
	}
	if s.def.many {
		delete(s.hub.engine.lists[s.def], s)
	}
	if s.sink != nil {
		if notify {
			s.sink(&Event{End: true, Err: err})
		}
	} else {
		close(s.ch)
	}
	if i := s.inst; i != nil {
		i.cancel()
		s.hub.groups.leaveAll(i)
		s.hub.presence.exitAll(i)
		if d, ok := i.value.Interface().(Disconnecter); ok {
			go d.OnDisconnect(s.hub.ctx)
		}
	}
}

func filterOwner(ev *Event, user string) *Event {
	keep := true
	for _, in := range ev.Instances {
		if in.Owner != "" && in.Owner != user {
			keep = false
			break
		}
	}
	if keep {
		return ev
	}
	c := *ev
	c.memo = &memo{}
	c.Instances = make([]*cache.Instance, 0, len(ev.Instances))
	for _, in := range ev.Instances {
		if in.Owner == "" || in.Owner == user {
			c.Instances = append(c.Instances, in)
		}
	}
	return &c
}

// Subscribe subscribes user to a registered channel with params (a value of
// the channel's params type, a pointer to one, or its JSON as
// json.RawMessage). The channel's Authorize hook decides; channels without
// one deny. The first events carry each anchor's snapshot.
func (h *Hub) Subscribe(ctx context.Context, channel string, params any, user User, opts SubscribeOptions) (*Subscription, error) {
	start := time.Now()
	epoch := h.depEpoch(channel)
	def, p, anchor, err := h.prepare(ctx, channel, params, user)
	if err != nil {
		return nil, err
	}
	sub := &Subscription{hub: h, def: def, user: user, params: p, sink: opts.Deliver, conn: opts.Conn}
	if sub.sink == nil {
		sub.ch = make(chan *Event, h.cfg.SubscriptionBuffer)
	}
	sub.inst = newInstance(sub)
	if c, ok := sub.inst.value.Interface().(Connecter); ok {
		if err := c.OnConnect(ctx); err != nil {
			sub.inst.cancel()
			h.groups.leaveAll(sub.inst)
			h.presence.exitAll(sub.inst)
			return nil, err
		}
	}
	var serr error
	err = h.engine.call(ctx, func() {
		sub.counted = true
		h.stats.subs.Add(1)
		if serr = h.recheckSubscribe(ctx, def, user, p, epoch); serr != nil {
			return
		}
		anchors := []string{anchor}
		if def.many {
			// Read the list on the engine goroutine: an anchor created
			// after this query is seen by the auto-update below.
			if anchors, serr = h.listAnchors(ctx, def, user, p); serr != nil {
				return
			}
			sub.anchors = anchors
			sub.deliver(&Event{Anchors: anchors})
			e := h.engine
			if e.lists[def] == nil {
				e.lists[def] = map[*Subscription]struct{}{}
			}
			e.lists[def][sub] = struct{}{}
		} else {
			sub.anchors = anchors
		}
		for _, a := range anchors {
			if serr = h.engine.attach(ctx, sub, a, opts.Since); serr != nil {
				return
			}
		}
		if rt := sub.inst.runtime; rt != nil {
			sub.push(&Event{Runtime: rt.rxRuntimeFields()})
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		_ = h.engine.call(context.Background(), func() { sub.finish(err, false) })
		return nil, err
	}
	h.observeSnapshot(start)
	return sub, nil
}

// attach adds sub to the stream of anchor a and delivers its first event.
// On list channels a vanished anchor is skipped.
func (e *engine) attach(ctx context.Context, sub *Subscription, a string, since map[string]uint64) error {
	var s *hotStream
	var ev *Event
	for try := 0; ; try++ {
		var err error
		s, err = e.hot(ctx, sub.def, a)
		if err != nil {
			if sub.def.many && isNotFound(err) {
				return nil
			}
			return err
		}
		ev, err = e.h.initialEvent(ctx, s, since)
		if e.streams[s.key] != s && try < 3 {
			// The store failed while the first event was read, and the
			// fallback (storeFailed) replaced every hot stream, s too:
			// attached to s, the subscriber would hear nothing more, even
			// after the rejoin (TestClusterStoreTimeoutOnResume; one way
			// TestWALKill9's list client could stay stale). Attach to the
			// stream that replaced it.
			continue
		}
		if err != nil {
			return err
		}
		break
	}
	s.subs[sub] = struct{}{}
	sub.streams = append(sub.streams, s)
	if s.remote != nil && ev.Version > s.version {
		s.remote.floor[sub] = ev.Version // the owner's deltas up to it are in ev
	}
	sub.deliver(ev)
	if sub.def.presence != nil {
		e.h.presence.enter(StreamPlace(sub.def.name, a), sub.inst, a)
	}
	return nil
}

// listAnchors runs a list channel's Anchors query.
func (h *Hub) listAnchors(ctx context.Context, def *channelDef, user User, p any) ([]string, error) {
	if err := h.engine.ready(ctx); err != nil {
		return nil, err
	}
	q := def.list(ctx, h.db.Session(&gormSession).WithContext(ctx), user, p)
	if q == nil {
		return nil, fmt.Errorf("rx: %s.Anchors returned nil", def.name)
	}
	cols := []string{def.anchor.pk.DBName}
	owner := def.anchor.owner
	if owner != nil {
		cols = append(cols, owner.DBName)
	}
	slice := reflect.New(reflect.SliceOf(def.anchor.typ))
	if err := q.Model(reflect.New(def.anchor.typ).Interface()).Select(cols).Find(slice.Interface()).Error; err != nil {
		return nil, fmt.Errorf("rx: list anchors of %s: %w", def.name, err)
	}
	ids := make([]string, 0, slice.Elem().Len())
	for i := 0; i < slice.Elem().Len(); i++ {
		row := slice.Elem().Index(i)
		if owner != nil {
			// Per-user anchors reach only their owner, ids included,
			// whatever the query selects (rows without an owner are
			// shared).
			if o, _ := idString(row.FieldByIndex(owner.StructField.Index)); o != "" && o != user.ID {
				continue
			}
		}
		if id, ok := idString(row.FieldByIndex(def.anchor.pk.StructField.Index)); ok {
			ids = append(ids, id)
		}
	}
	return ids, nil
}

func isNotFound(err error) bool {
	e := Public(err)
	return e.Code == CodeNotFound
}

// initialEvent is the first event of a stream for a subscriber: the changes
// since the version it holds, or the whole snapshot.
func (h *Hub) initialEvent(ctx context.Context, s *hotStream, since map[string]uint64) (*Event, error) {
	if v, ok := since[s.key.Anchor]; ok {
		changes, cur, ok, err := h.engine.active.Since(ctx, s.key, v)
		if err == nil && ok {
			return &Event{Anchor: s.key.Anchor, Version: cur, From: v, Instances: changes, Initial: true}, nil
		}
	}
	snap, err := h.engine.snapshot(ctx, s.key)
	if err != nil {
		return nil, fmt.Errorf("rx: snapshot of %s: %w", s.key, err)
	}
	return &Event{Anchor: s.key.Anchor, Version: snap.Version, Instances: snap.Instances, Snapshot: true, Initial: true}, nil
}

// prepare resolves a channel, decodes and authorizes params, and returns
// the anchor id of a single-anchor channel ("" for list channels).
func (h *Hub) prepare(ctx context.Context, channel string, params any, user User) (*channelDef, any, string, error) {
	h.mu.RLock()
	def := h.channels[channel]
	h.mu.RUnlock()
	if def == nil {
		return nil, nil, "", Errorf(CodeNotFound, "no channel %q", channel)
	}
	p, err := def.decode(params)
	if err != nil {
		return nil, nil, "", err
	}
	if def.authorize == nil {
		return nil, nil, "", Errorf(CodeForbidden, "channel %s has no Authorize method: access denied by default", def.name)
	}
	if err := def.authorize(ctx, user, p); err != nil {
		var e *Error
		if asError(err, &e) {
			return nil, nil, "", err
		}
		return nil, nil, "", &Error{Code: CodeForbidden, Message: "access denied", Err: err}
	}
	if def.many {
		return def, p, "", nil
	}
	raw, err := def.anchorID(ctx, user, p)
	if err != nil {
		return nil, nil, "", err
	}
	id, ok := idString(reflect.ValueOf(raw))
	if !ok {
		return nil, nil, "", Errorf(CodeBadRequest, "params of %s carry no anchor id", def.name)
	}
	return def, p, id, nil
}

// adjust applies the anchors channel code added or removed to a list from
// the channel's query.
func (s *Subscription) adjust(ids []string) []string {
	if len(s.pinned) == 0 && len(s.hidden) == 0 {
		return ids
	}
	var head, tail []string
	for _, p := range s.pinned {
		ids = slices.DeleteFunc(ids, func(id string) bool { return id == p.id })
		if p.atStart {
			head = append([]string{p.id}, head...)
		} else {
			tail = append(tail, p.id)
		}
	}
	out := append(append(head, ids...), tail...)
	return slices.DeleteFunc(out, func(id string) bool { return s.hidden[id] })
}

// refreshList re-reads a list subscription's anchors and, if they changed,
// delivers the new list and the snapshots of anchors that joined.
func (e *engine) refreshList(ctx context.Context, sub *Subscription) error {
	ids, err := e.h.listAnchors(ctx, sub.def, sub.user, sub.params)
	if err != nil {
		return err
	}
	ids = sub.adjust(ids)
	sub.mu.Lock()
	old := sub.anchors
	sub.mu.Unlock()
	if slices.Equal(ids, old) {
		return nil
	}
	keep := map[string]bool{}
	for _, id := range ids {
		keep[id] = true
	}
	streams := sub.streams[:0]
	for _, s := range sub.streams {
		if keep[s.key.Anchor] {
			streams = append(streams, s)
		} else {
			delete(s.subs, sub)
			e.h.presence.exit(StreamPlace(sub.def.name, s.key.Anchor), sub.inst)
		}
	}
	sub.streams = streams
	sub.mu.Lock()
	sub.anchors = ids
	sub.mu.Unlock()
	sub.deliver(&Event{Anchors: ids})
	had := map[string]bool{}
	for _, id := range old {
		had[id] = true
	}
	for i, id := range ids {
		if !had[id] {
			if err := e.attach(ctx, sub, id, nil); err != nil {
				// Forget the anchors not attached yet, so that the next
				// refresh sees them missing and attaches them.
				rest := map[string]bool{}
				for _, x := range ids[i:] {
					rest[x] = !had[x]
				}
				sub.mu.Lock()
				sub.anchors = slices.DeleteFunc(slices.Clone(ids), func(x string) bool { return rest[x] })
				sub.mu.Unlock()
				return err
			}
		}
	}
	return nil
}
