package rx

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rxgorm/rxgorm/cache"
)

// Several nodes (processes) serving one application share the database, the
// cache store and a broker. What each node does (docs/SCALING.md):
//
//   - Every commit's touches are published on the broker, so that every
//     node's engine sees every commit, wherever it was made.
//   - With a Leaser broker (RedisBroker) and a store shared by the nodes
//     (cache.MongoStore), each hot stream has one owner: the node holding
//     its lease. Only the owner loads the stream from the database, applies
//     commits to it, writes the store (which hands out the versions) and
//     publishes the versioned deltas. Every other node with subscribers of
//     the stream follows it: it serves snapshots and resumes from the store
//     and forwards the owner's deltas, in version order, each once, filling
//     any gap from the store.
//   - A lease lives Config.LeaseTTL and is renewed every third of it. When
//     the owner dies its lease runs out and a follower takes the stream
//     over, reconciling the store with the database, so that commits the
//     dead owner never broadcast are not lost. When Redis is unreachable,
//     each node keeps serving its subscribers; when it answers again, every
//     node re-establishes its streams the same way.

// Leaser grants time-bounded leases shared by the nodes of a cluster. A
// Broker that is also a Leaser (RedisBroker), together with a cache store
// shared by the nodes, puts a Hub in cluster mode.
type Leaser interface {
	// Lease acquires for holder each key that is free, renews those holder
	// holds, both for ttl, and returns each key's holder after the call.
	Lease(ctx context.Context, holder string, ttl time.Duration, keys []string) ([]string, error)
	// Holders returns each key's holder, "" for a free key.
	Holders(ctx context.Context, keys []string) ([]string, error)
	// Release frees each key that holder holds.
	Release(ctx context.Context, holder string, keys []string) error
}

// SharedStore is implemented by cache stores that the nodes of a cluster
// can share (cache.MongoStore): their versions are handed out in one place.
type SharedStore interface {
	SharedAcrossNodes() bool
}

// recoverer is implemented by brokers that report the end of an outage.
type recoverer interface{ OnRecover(func()) }

const (
	topicTouches = "touches"
)

// cluster is a hub's link to the other nodes. It exists when the broker is
// not the in-process one.
type cluster struct {
	h     *Hub
	node  string
	lease Leaser // nil: no stream ownership (each node loads its own)
	ttl   time.Duration

	out *outbox

	mu sync.Mutex
	// roles of the streams hot here, or being loaded here under their
	// lease. Kept apart from the engine so that renewing leases never
	// waits for it.
	roles map[cache.Stream]role // guarded by mu
	// moves counts each stream's recent changes of owner seen here, for
	// the warning of noteMove.
	moves map[cache.Stream]*moveCount // guarded by mu

	unsub func()

	// foreign counts the writes of other nodes found on streams owned here
	// (foreignWrite).
	foreign atomic.Int64
	// moved counts the changes of owner of streams hot here that the
	// renewal rounds found (noteMove).
	moved atomic.Int64
}

// role is what a node does with a stream.
type role uint8

const (
	// roleFollowed: another node owns the stream; this one follows it.
	roleFollowed role = iota
	// roleOwned: this node holds the lease and has loaded the stream.
	roleOwned
	// roleLoading: this node took the lease and is loading the stream.
	// The renewal rounds renew its lease, so that a load that outlasts
	// LeaseTTL keeps it (issue 20: before, nothing renewed it, another
	// node took it over, and the stream bounced between the nodes), but
	// not its ready mark: followers wait until the load ends.
	roleLoading
)

// moveCount is a stream's count of owner changes since start.
type moveCount struct {
	start  time.Time
	n      int
	warned bool
}

// A stream whose owner changes more than moveWarn times within
// moveWindow leases is logged once per window: each change stalls the
// engines of the nodes involved while they load or wait for the stream.
const (
	moveWarn   = 5
	moveWindow = 20
)

// touchMsg carries one commit's touches to the other nodes, or a resync:
// the WAL consumer decoded a change with no row in it (TRUNCATE, ALTER
// TABLE, a recreated slot) and every node reloads the streams of the
// layers concerned. Both travel on one topic, through one outbox, so a
// resync reaches each node after the touches decoded before it.
type touchMsg struct {
	Node    string      `json:"n"`
	Touches [][3]string `json:"t,omitempty"` // layer, id, relation ("" for the row)
	// Resync names the layers whose streams to reload; ResyncAll reloads
	// every stream. Nodes that predate them ignore the message (it has no
	// touches).
	Resync    []string `json:"r,omitempty"`
	ResyncAll bool     `json:"ra,omitempty"`
	// Xid is the WAL transaction of the touches (0 from the GORM plugin):
	// the WAL consumer sends them before the transaction may be visible,
	// and the receiving engine waits for it before it reads the database
	// (engine.ready). A node that predates it reads at once and may miss
	// the commit for a moment: upgrade the nodes before they share a slot.
	Xid uint32 `json:"x,omitempty"`
}

// deltaMsg is what an owner publishes on a stream's topic.
type deltaMsg struct {
	Version   uint64            `json:"v"`
	Instances []*cache.Instance `json:"i,omitempty"`
	// Reset: the stream was (re)loaded; read it from the store.
	Reset bool `json:"r,omitempty"`
	// Release: the owner let the stream go; take it over.
	Release bool `json:"x,omitempty"`
	// Reauth: the commit changed what the stream's permission depends on;
	// re-check its subscribers before delivering (reauth.go).
	Reauth bool `json:"a,omitempty"`
}

func newCluster(h *Hub) (*cluster, error) {
	node := h.cfg.NodeID
	if node == "" {
		var b [8]byte
		_, _ = rand.Read(b[:])
		node = hex.EncodeToString(b[:])
	}
	c := &cluster{h: h, node: node, ttl: h.cfg.LeaseTTL, out: newOutbox(h.broker, h.log, "commits", h.cfg.BrokerQueue), roles: map[cache.Stream]role{}, moves: map[cache.Stream]*moveCount{}}
	if l, ok := h.broker.(Leaser); ok {
		if s, ok := h.store.(SharedStore); ok && s.SharedAcrossNodes() {
			c.lease = l
		} else {
			h.log.Warn("rx: the broker connects several nodes but the cache store is not shared; each node loads and versions its own streams, and a client resuming on another node gets a full snapshot")
		}
	}
	unsub, err := h.broker.Subscribe(h.ctx, topicTouches, c.remoteTouches)
	if err != nil {
		c.out.close(context.Background())
		return nil, fmt.Errorf("rx: subscribe to commits of other nodes: %w", err)
	}
	c.unsub = unsub
	if r, ok := h.broker.(recoverer); ok {
		r.OnRecover(func() { h.engine.do(h.engine.rehomeAll) })
	}
	return c, nil
}

// abandon undoes newCluster when New fails before start.
func (c *cluster) abandon() {
	c.unsub()
	c.out.close(context.Background())
}

// start runs the lease loop once the engine exists.
func (c *cluster) start() {
	if c.lease != nil {
		go c.renew()
	}
}

func leaseKey(k cache.Stream) string { return "lease:" + k.Channel + ":" + k.Anchor }
func readyKey(k cache.Stream, node string) string {
	return "ready:" + k.Channel + ":" + k.Anchor + ":" + node
}
func deltaTopic(k cache.Stream) string { return "delta:" + k.Channel + ":" + k.Anchor }

// publish queues a message for the other nodes.
func (c *cluster) publish(topic string, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		c.h.log.Error("rx: encode a message to other nodes", "topic", topic, "err", err)
		return
	}
	c.out.send(topic, b)
}

// sendTouches tells the other nodes about a local commit.
func (c *cluster) sendTouches(ts []touch) {
	m := touchMsg{Node: c.node, Touches: make([][3]string, len(ts))}
	for i, t := range ts {
		m.Xid = max(m.Xid, t.xid) // one transaction per enqueue
		m.Touches[i] = [3]string{t.l.name, t.id, ""}
		if t.rel != nil {
			m.Touches[i][2] = t.rel.name
		}
	}
	c.publish(topicTouches, m)
}

// sendResync tells the other nodes to reload the streams whose channel
// includes one of layers (every stream for nil), as this node does.
func (c *cluster) sendResync(layers map[*layer]bool) {
	m := touchMsg{Node: c.node, ResyncAll: layers == nil}
	for l := range layers {
		m.Resync = append(m.Resync, l.name)
	}
	slices.Sort(m.Resync)
	c.publish(topicTouches, m)
}

// remoteTouches queues another node's commit, or its resync. Layers this
// node does not know (channels it did not register) are skipped.
func (c *cluster) remoteTouches(b []byte) {
	var m touchMsg
	if err := json.Unmarshal(b, &m); err != nil || m.Node == c.node {
		return
	}
	mdl := c.h.model
	if m.ResyncAll || len(m.Resync) > 0 {
		var layers map[*layer]bool
		if !m.ResyncAll {
			layers = map[*layer]bool{}
			mdl.mu.Lock()
			for _, name := range m.Resync {
				if l := mdl.byName[name]; l != nil {
					layers[l] = true
				}
			}
			mdl.mu.Unlock()
		}
		e := c.h.engine
		e.do(func() { e.resyncLayers(layers) })
		return
	}
	mdl.mu.Lock()
	ts := make([]touch, 0, len(m.Touches))
	for _, t := range m.Touches {
		l := mdl.byName[t[0]]
		if l == nil {
			continue
		}
		tc := touch{l: l, id: t[1], xid: m.Xid}
		if t[2] != "" {
			for _, r := range l.rels {
				if r.name == t[2] {
					tc.rel = r
				}
			}
			if tc.rel == nil {
				continue
			}
		}
		ts = append(ts, tc)
	}
	mdl.mu.Unlock()
	if len(ts) > 0 {
		c.h.engine.push(item{touches: ts})
	}
}

// acquire takes or renews the lease of a stream and reports whether this
// node holds it.
func (c *cluster) acquire(ctx context.Context, k cache.Stream) (bool, error) {
	hs, err := c.lease.Lease(ctx, c.node, c.ttl, []string{leaseKey(k)})
	if err != nil {
		return false, err
	}
	return hs[0] == c.node, nil
}

var (
	errLeaseFree = errors.New("rx: stream lease is free")
	// errOwnerSilent: the owner of a stream did not mark it ready within
	// ownerWait.
	errOwnerSilent = errors.New("rx: the owner of the stream did not load it in time")
)

// ownerWait bounds the wait of a node for the owner of a cold stream to
// load it: twice the lease time (an owner that died lets its lease run out
// within one) and 5 s for the load itself.
func (c *cluster) ownerWait() time.Duration { return 2*c.ttl + 5*time.Second }

// waitReady waits until the owner of k has loaded it into the store, and
// returns errLeaseFree when the stream has no owner (any more). It polls:
// on the engine goroutine, like a local cold load, and bounded: past
// deadline it returns errOwnerSilent.
func (c *cluster) waitReady(ctx context.Context, k cache.Stream, deadline time.Time) error {
	for {
		hs, err := c.lease.Holders(ctx, []string{leaseKey(k)})
		if err != nil {
			return err
		}
		if hs[0] == "" {
			return errLeaseFree
		}
		rs, err := c.lease.Holders(ctx, []string{readyKey(k, hs[0])})
		if err != nil {
			return err
		}
		if rs[0] == hs[0] {
			return nil
		}
		if time.Now().After(deadline) {
			return errOwnerSilent
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
}

// ready marks an owned stream as loaded, for followers waiting on it, and
// tells current followers to catch up.
func (c *cluster) ready(ctx context.Context, s *hotStream) {
	if _, err := c.lease.Lease(ctx, c.node, c.ttl, []string{readyKey(s.key, c.node)}); err != nil {
		c.h.log.Debug("rx: mark stream ready", "stream", s.key, "err", err)
	}
	c.publish(deltaTopic(s.key), deltaMsg{Version: s.version, Reset: true})
}

// renew renews the leases of owned streams and of those being loaded, and
// looks for followed streams whose owner is gone, every third of the
// lease time. It takes no lease of a followed stream itself: the engine
// does, right before it loads the stream (takeOver). A lease taken here
// would be held, and renewed, while the engine may be busy elsewhere, for
// example waiting for another node to load a stream whose lease that node
// took the same way: both engines then waited for each other until
// ownerWait ran out (issue 20's hang under CPU starvation).
func (c *cluster) renew() {
	t := time.NewTicker(c.ttl / 3)
	defer t.Stop()
	e := c.h.engine
	for {
		select {
		case <-c.h.ctx.Done():
			return
		case <-t.C:
		}
		owned, loading, followed := c.streams()
		keys := make([]string, 0, 2*len(owned)+len(loading))
		for _, k := range owned {
			keys = append(keys, leaseKey(k), readyKey(k, c.node))
		}
		for _, k := range loading {
			keys = append(keys, leaseKey(k))
		}
		ctx, cancel := context.WithTimeout(c.h.ctx, c.ttl/3)
		hs, err := c.lease.Lease(ctx, c.node, c.ttl, keys)
		var free []string
		if err == nil && len(followed) > 0 {
			fkeys := make([]string, len(followed))
			for i, k := range followed {
				fkeys[i] = leaseKey(k)
			}
			free, err = c.lease.Holders(ctx, fkeys)
		}
		cancel()
		if err != nil {
			continue // the broker reports the outage; recovery rehomes
		}
		// A stream still loading whose lease was lost all the same (the
		// rounds failed for a lease time) is seen once it is owned.
		var lost, orphans []cache.Stream
		for i, k := range owned {
			if hs[2*i] != c.node {
				lost = append(lost, k) // follow the new owner
			}
		}
		for i, k := range followed {
			if free[i] == "" {
				orphans = append(orphans, k) // the owner is gone
			}
		}
		for _, k := range lost {
			c.noteMove(k)
		}
		e.do(func() {
			// Orphans first: a node that takes a stream over loads it
			// before it waits for any other node.
			for _, k := range orphans {
				e.takeOver(k)
			}
			for _, k := range lost {
				if s := e.streams[k]; s != nil {
					e.rehome(s)
				}
			}
			e.reconcileOld(time.Now())
		})
	}
}

// takeOver re-establishes the followed stream k, whose lease was free at
// the last renewal round, if this node now gets its lease.
func (e *engine) takeOver(k cache.Stream) {
	c := e.h.cluster
	s := e.streams[k]
	if s == nil || s.remote == nil || e.degraded {
		return
	}
	ctx, cancel := context.WithTimeout(e.ctx(), c.ttl/3)
	own, err := c.acquire(ctx, k)
	cancel()
	if err != nil || !own {
		return // another node took it: its reset reaches the followers
	}
	c.noteMove(k)
	e.rehome(s) // hot renews the lease just taken, and loads
}

// noteMove counts a change of k's owner and logs a warning when k has
// changed owner more than moveWarn times within moveWindow lease times.
func (c *cluster) noteMove(k cache.Stream) {
	c.moved.Add(1)
	now := time.Now()
	window := moveWindow * c.ttl
	c.mu.Lock()
	m := c.moves[k]
	if m == nil || now.Sub(m.start) > window {
		m = &moveCount{start: now}
		c.moves[k] = m
	}
	m.n++
	warn := m.n > moveWarn && !m.warned
	if warn {
		m.warned = true
	}
	for x, o := range c.moves {
		if now.Sub(o.start) > window {
			delete(c.moves, x)
		}
	}
	c.mu.Unlock()
	if warn {
		c.h.log.Warn("rx: a stream keeps changing owner; each move stalls the nodes' engines while they load it or wait for it (loads slower than LeaseTTL? an overloaded broker?)", "stream", k, "moves", m.n, "within", window)
	}
}

// setRole records that k is hot here, owned or followed.
func (c *cluster) setRole(k cache.Stream, owned bool) {
	r := roleFollowed
	if owned {
		r = roleOwned
	}
	c.mu.Lock()
	c.roles[k] = r
	c.mu.Unlock()
}

// loading records that this node took k's lease and is loading k: the
// renewal rounds renew the lease until setRole or forget.
func (c *cluster) loading(k cache.Stream) {
	c.mu.Lock()
	c.roles[k] = roleLoading
	c.mu.Unlock()
}

// forget records that k is no longer hot here.
func (c *cluster) forget(k cache.Stream) {
	c.mu.Lock()
	delete(c.roles, k)
	c.mu.Unlock()
}

// forgetLoading forgets k if it is still marked as loading: its load
// failed.
func (c *cluster) forgetLoading(k cache.Stream) {
	c.mu.Lock()
	if c.roles[k] == roleLoading {
		delete(c.roles, k)
	}
	c.mu.Unlock()
}

// streams lists the streams hot or loading here by role.
func (c *cluster) streams() (owned, loading, followed []cache.Stream) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, r := range c.roles {
		switch r {
		case roleOwned:
			owned = append(owned, k)
		case roleLoading:
			loading = append(loading, k)
		default:
			followed = append(followed, k)
		}
	}
	return owned, loading, followed
}

// close releases the owned streams so that followers take them over at
// once, and stops the publisher.
func (c *cluster) close() {
	c.unsub()
	owned, _, _ := c.streams()
	if c.lease != nil && len(owned) > 0 {
		keys := make([]string, 0, 2*len(owned))
		for _, k := range owned {
			keys = append(keys, leaseKey(k), readyKey(k, c.node))
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.ttl)
		if err := c.lease.Release(ctx, c.node, keys); err != nil {
			c.h.log.Warn("rx: release stream leases", "err", err)
		}
		cancel()
		for _, k := range owned {
			c.publish(deltaTopic(k), deltaMsg{Release: true})
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.ttl)
	defer cancel()
	c.out.close(ctx)
}

// leave gives up this node's streams when it falls back to a private
// cache (storeFailed): it releases the leases it holds and tells the
// followers, who take the streams over at once, and forgets every role, so
// that the renewal loop holds nothing until the node rejoins.
func (c *cluster) leave() {
	owned, _, _ := c.streams()
	c.mu.Lock()
	clear(c.roles)
	c.mu.Unlock()
	if len(owned) == 0 {
		return
	}
	keys := make([]string, 0, 2*len(owned))
	for _, k := range owned {
		keys = append(keys, leaseKey(k), readyKey(k, c.node))
	}
	ctx, cancel := context.WithTimeout(c.h.ctx, c.ttl/3)
	if err := c.lease.Release(ctx, c.node, keys); err != nil {
		c.h.log.Warn("rx: release stream leases", "err", err)
	}
	cancel()
	for _, k := range owned {
		c.publish(deltaTopic(k), deltaMsg{Release: true})
	}
}

// follower is the state of a stream this node follows.
type follower struct {
	unsub func()
	// floor holds, for subscriptions that started at a version above the
	// stream's, the version they hold: earlier deltas are not theirs.
	floor map[*Subscription]uint64
}

// storeVersion returns the stream's current version in the store, 0 when
// it is cold.
func (e *engine) storeVersion(ctx context.Context, k cache.Stream) (uint64, error) {
	_, cur, _, err := e.active.Since(ctx, k, math.MaxInt64)
	return cur, err
}

// follow makes k a stream this node follows, once its owner has it ready.
// Past deadline, a stream the store holds is followed anyway (the owner's
// reset brings its subscribers up to date), and for one it does not hold
// follow returns errOwnerSilent.
func (e *engine) follow(ctx context.Context, def *channelDef, anchorID string, k cache.Stream, deadline time.Time) (*hotStream, error) {
	c := e.h.cluster
	s := newHotStream(k, def, anchorID)
	s.remote = &follower{floor: map[*Subscription]uint64{}}
	unsub, err := e.h.broker.Subscribe(ctx, deltaTopic(k), func(b []byte) {
		var m deltaMsg
		if json.Unmarshal(b, &m) != nil {
			return
		}
		e.do(func() { e.remoteDelta(s, &m) })
	})
	if err != nil {
		return nil, fmt.Errorf("rx: follow %s: %w", k, err)
	}
	s.remote.unsub = unsub
	silent := false
	if err := c.waitReady(ctx, k, deadline); errors.Is(err, errOwnerSilent) {
		silent = true
	} else if err != nil {
		unsub()
		return nil, err
	}
	v, err := e.storeVersion(ctx, k)
	if err == nil && v == 0 {
		err = fmt.Errorf("rx: follow %s: %w", k, cache.ErrCold)
		if silent {
			err = errOwnerSilent
		}
	}
	if err != nil {
		unsub()
		return nil, err
	}
	if silent {
		e.h.log.Warn("rx: the owner of a stream did not mark it ready in time; following it from the store as it is", "stream", k, "waited", c.ownerWait())
	}
	s.version = v
	s.used = time.Now()
	e.streams[k] = s
	c.setRole(k, false)
	// A broker subscription may become active after the call returns: a
	// delta published meanwhile is caught up from the store.
	time.AfterFunc(250*time.Millisecond, func() {
		e.do(func() {
			if e.streams[k] == s {
				e.catchUp(s)
			}
		})
	})
	return s, nil
}

// remoteDelta handles a message of a followed stream's owner.
func (e *engine) remoteDelta(s *hotStream, m *deltaMsg) {
	if e.streams[s.key] != s {
		return // no longer followed, or replaced
	}
	if m.Reauth && e.remoteReauth(s, m) {
		return
	}
	switch {
	case m.Release:
		e.rehome(s)
	case m.Version <= s.version:
		// Already delivered (a duplicate, or covered by a catch-up).
	case m.Version == s.version+1 && !m.Reset:
		e.deliverFollowed(s, &Event{Anchor: s.key.Anchor, Version: m.Version, From: s.version, Instances: m.Instances, memo: &memo{}})
		s.version = m.Version
	default:
		e.catchUp(s)
	}
}

// deliverFollowed hands a followed stream's event to its subscribers,
// except those that already hold its version.
func (e *engine) deliverFollowed(s *hotStream, ev *Event) {
	e.followedReauth(s, ev)
	for sub := range s.subs {
		if f, ok := s.remote.floor[sub]; ok {
			if f >= ev.Version && !ev.Snapshot {
				continue
			}
			delete(s.remote.floor, sub)
		}
		sub.deliver(ev)
	}
}

// catchUp brings a followed stream's subscribers to the store's version:
// the changes since the version they hold, or a snapshot.
func (e *engine) catchUp(s *hotStream) {
	ctx := e.ctx()
	changes, cur, ok, err := e.active.Since(ctx, s.key, s.version)
	switch {
	case err != nil:
		e.logf("rx: catch up with %s: %v", s.key, err)
		return
	case cur == 0:
		e.rehome(s) // the stream left the store: its owner is gone
		return
	case ok:
		if cur > s.version {
			e.deliverFollowed(s, &Event{Anchor: s.key.Anchor, Version: cur, From: s.version, Instances: changes, memo: &memo{}})
		}
		s.version = cur
	default:
		snap, err := e.snapshot(ctx, s.key)
		if err != nil {
			e.logf("rx: catch up with %s: %v", s.key, err)
			return
		}
		e.deliverFollowed(s, &Event{Anchor: s.key.Anchor, Version: snap.Version, Instances: snap.Instances, Snapshot: true, memo: &memo{}})
		s.version = snap.Version
	}
}

// rehome drops s here and makes its anchor hot again, owned or followed as
// the lease now says, moving its subscribers over and bringing them to the
// new stream's version from the one they hold.
func (e *engine) rehome(s *hotStream) {
	ctx := e.ctx()
	e.drop(s)
	ns, err := e.hot(ctx, s.def, s.anchor.id)
	if err != nil && isNotFound(err) {
		// The anchor is gone: the store's last word on it (its
		// tombstones) is the stream's end.
		ns, err = s, nil
		ns.used = time.Now()
		e.bury(ctx, s.key)
	}
	if err != nil {
		// Keep the subscribers: the stream is retried like one whose
		// reload failed on a single node (resync), as a new stream.
		e.logf("rx: re-establish %s (retrying): %v", s.key, err)
		s.remote = nil
		e.park(s)
		return
	}
	subs := s.subs
	for sub := range subs {
		ns.subs[sub] = struct{}{}
		for i, x := range sub.streams {
			if x == s {
				sub.streams[i] = ns
			}
		}
	}
	if len(subs) == 0 || (ns != s && s.version == ns.version) {
		return
	}
	ev, err := e.h.initialEvent(ctx, ns, map[string]uint64{s.key.Anchor: s.version})
	if err != nil {
		e.logf("rx: re-establish %s: %v", s.key, err)
		return
	}
	if !ev.Snapshot && (len(ev.Instances) == 0 || ev.Version <= s.version) {
		return
	}
	ev.Initial = false
	ev.memo = &memo{}
	if (ns.remote != nil || ns == s) && ev.Version > ns.version {
		// The owner's deltas up to ev.Version are in ev (or, for a
		// stream whose anchor is gone, the deletion bury wrote).
		ns.version = ev.Version
	}
	for sub := range subs {
		if f, ok := s.remote.floorOf(sub); ok && f >= ev.Version && !ev.Snapshot {
			continue
		}
		sub.deliver(ev)
	}
}

// bury writes to the store the deletion of a stream whose anchor is gone
// from the database, if the store still holds its instances: a deletion
// committed on another node while the broker was down reached no owner, and
// without this the subscribers (and clients resuming from the store) would
// keep the deleted anchor (issue 20). Errors are logged: the subscribers
// then keep what they hold until the next reload.
func (e *engine) bury(ctx context.Context, k cache.Stream) {
	snap, err := e.active.Snapshot(ctx, k)
	if err != nil || len(snap.Instances) == 0 {
		return
	}
	if _, err := e.active.Apply(ctx, []cache.Write{{Stream: k, Changes: reconcile(snap.Instances, nil)}}); err != nil {
		e.logf("rx: write the deletion of %s: %v", k, err)
	}
}

// foreignWrite reports whether the store's version v for a delta of the
// owned stream s shows that another node wrote s since this one last did,
// and if so re-establishes s instead of delivering the delta.
//
// One writer per stream gets consecutive versions from the store. Two nodes
// may both take themselves for a stream's owner for a while: during a broker
// outage each serves the streams it loads, and when the broker comes back
// the leases, all gone with it, are taken again by whichever node asks
// first, while the former owner keeps writing until it notices. Their writes
// interleave in the store. Delivering this node's delta alone would skip
// the other's versions: its subscribers would hold a version without the
// content before it, and resuming from it with Since would never bring that
// content back. And this node's graph lacks the rows the other added. So
// the stream is reloaded and reconciled with the database (or followed, if
// the other node holds the lease now), and its subscribers get every change
// in the store after the version they hold.
//
// changed says whether this node's write changed the store. A write that
// changed nothing gets the store's current version, which is this node's
// own unless another node wrote since: one that also took itself for the
// owner and applied the same commit first (each node applies every commit,
// its own and, from their touches, the others'). The other node's versions
// then reach this node's subscribers only through this check: the owner
// does not listen to its stream's deltas, and nothing else tells it (issue
// 20: a subscriber of the new owner missed the stale owner's last deltas).
func (e *engine) foreignWrite(s *hotStream, v uint64, changed bool) bool {
	c := e.h.cluster
	own := s.version
	if changed {
		own++
	}
	if c == nil || c.lease == nil || s.remote != nil || e.degraded || v == own {
		return false
	}
	c.foreign.Add(1)
	e.h.log.Warn("rx: another node wrote a stream this node owns; re-establishing it", "stream", s.key, "held", s.version, "version", v)
	e.rehome(s)
	return true
}

// floorOf returns sub's floor on a followed stream (f may be nil: owned).
func (f *follower) floorOf(sub *Subscription) (uint64, bool) {
	if f == nil {
		return 0, false
	}
	v, ok := f.floor[sub]
	return v, ok
}

// reconcileOld reloads the owned streams loaded longer than
// Config.ReconcileInterval ago: the touches of a commit can be lost with
// the node that made it (it died before publishing them), and the reload
// delivers what they would have.
func (e *engine) reconcileOld(now time.Time) {
	every := e.h.cfg.ReconcileInterval
	if every < 0 {
		return
	}
	for _, s := range e.hotStreams() {
		if s.remote == nil && !s.loaded.IsZero() && now.Sub(s.loaded) >= every {
			e.rehome(s)
		}
	}
}

// rehomeAll re-establishes every stream after a broker outage: leases may
// have moved and commits of other nodes may have been missed.
func (e *engine) rehomeAll() {
	if e.h.cluster == nil || e.degraded {
		return // degraded: the streams are private until the store is back
	}
	if e.h.cluster.lease == nil {
		e.resyncAll()
		return
	}
	for _, s := range e.hotStreams() {
		e.rehome(s)
	}
}
