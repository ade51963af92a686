package rx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/rxgorm/rxgorm/cache"
)

// A hot stream's membership graph. The cache store keeps the instances'
// fields and versions; the engine keeps, for each hot stream, which rows
// are in it and how they link, so that it can tell which rows enter or
// leave the stream when a relation changes. Only the engine goroutine
// touches these.

type ikey struct {
	l  *layer
	id string
}

type edge struct {
	from ikey
	rel  *relation
}

type node struct {
	owner    string
	out      map[*relation][]ikey          // followed relations only
	overlays map[string]map[*relation]bool // owner → relations listing rows of theirs
}

type hotStream struct {
	key    cache.Stream
	def    *channelDef
	anchor ikey
	nodes  map[ikey]*node
	in     map[ikey]map[edge]struct{}
	subs   map[*Subscription]struct{}
	used   time.Time // last load or subscription, for TTL expiry
	loaded time.Time // last load from the database
	lost   bool      // a reload failed (logged once); parked until one succeeds
	// version is the last version handed to subscribers.
	version uint64
	// remote is set on a stream another node owns (cluster mode): it has
	// no graph, and its deltas come from the owner.
	remote *follower
	// authAt is the version whose subscribers were last re-checked
	// (followed streams, reauth.go).
	authAt uint64
}

func newHotStream(key cache.Stream, def *channelDef, anchorID string) *hotStream {
	return &hotStream{
		key:    key,
		def:    def,
		anchor: ikey{def.anchor, anchorID},
		nodes:  map[ikey]*node{},
		in:     map[ikey]map[edge]struct{}{},
		subs:   map[*Subscription]struct{}{},
	}
}

// setEdges replaces the targets of n's relation r and reports targets that
// are new to the stream and whether any target was dropped.
func (s *hotStream) setEdges(from ikey, n *node, r *relation, targets []ikey) (added []ikey, dropped bool) {
	old := n.out[r]
	keep := make(map[ikey]bool, len(targets))
	for _, t := range targets {
		keep[t] = true
	}
	for _, t := range old {
		if !keep[t] {
			dropped = true
			if in := s.in[t]; in != nil {
				delete(in, edge{from, r})
				if len(in) == 0 {
					delete(s.in, t)
				}
			}
		}
	}
	if n.out == nil {
		n.out = map[*relation][]ikey{}
	}
	n.out[r] = targets
	for _, t := range targets {
		in := s.in[t]
		if in == nil {
			in = map[edge]struct{}{}
			s.in[t] = in
		}
		in[edge{from, r}] = struct{}{}
		if s.nodes[t] == nil {
			added = append(added, t)
		}
	}
	return added, dropped
}

// parentsVia returns the ids of rows that list k through relation r.
func (s *hotStream) parentsVia(k ikey, r *relation) []string {
	var ids []string
	for e := range s.in[k] {
		if e.rel == r {
			ids = append(ids, e.from.id)
		}
	}
	return ids
}

// sweep removes the nodes no longer reachable from the anchor and returns
// their tombstones.
func (s *hotStream) sweep(e *engine) []*cache.Instance {
	seen := make(map[ikey]bool, len(s.nodes))
	queue := []ikey{s.anchor}
	if s.nodes[s.anchor] != nil {
		seen[s.anchor] = true
	} else {
		queue = nil
	}
	for len(queue) > 0 {
		k := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		for _, ts := range s.nodes[k].out {
			for _, t := range ts {
				if !seen[t] && s.nodes[t] != nil {
					seen[t] = true
					queue = append(queue, t)
				}
			}
		}
	}
	var out []*cache.Instance
	for k := range s.nodes {
		if !seen[k] {
			out = append(out, s.remove(e, k)...)
		}
	}
	return out
}

// remove drops node k and returns its tombstones (the row and its overlays).
func (s *hotStream) remove(e *engine, k ikey) []*cache.Instance {
	n := s.nodes[k]
	if n == nil {
		return nil
	}
	for r := range n.out {
		s.setEdges(k, n, r, nil)
	}
	delete(s.nodes, k)
	e.unindex(k, s)
	out := []*cache.Instance{{Type: k.l.name, ID: k.id, Owner: n.owner, Deleted: true}}
	for o := range n.overlays {
		out = append(out, &cache.Instance{Type: k.l.name, ID: k.id, Owner: o, Deleted: true})
	}
	return out
}

// fullRow is everything needed to add a row to a stream: its fields and
// every relation list.
type fullRow struct {
	row   *row
	lists map[*relation][]member
}

// put adds or refreshes node k from a full row and returns the instances to
// store (public or owned row, plus per-user overlays) and targets new to
// the stream.
func (s *hotStream) put(k ikey, fr *fullRow) (insts []*cache.Instance, added []ikey, dropped bool) {
	n := s.nodes[k]
	if n == nil {
		if fr.row == nil {
			return nil, nil, false
		}
		n = &node{owner: fr.row.owner}
		s.nodes[k] = n
	}
	var fields map[string]json.RawMessage
	if fr.row != nil {
		if n.owner != fr.row.owner {
			insts = append(insts, &cache.Instance{Type: k.l.name, ID: k.id, Owner: n.owner, Deleted: true})
			n.owner = fr.row.owner
		}
		if len(fr.lists) == 0 {
			// The row's own map, shared: rows are not changed once
			// encoded, and stores copy what they keep.
			fields = fr.row.fields
		} else {
			fields = make(map[string]json.RawMessage, len(fr.row.fields)+len(fr.lists))
			for f, v := range fr.row.fields {
				fields[f] = v
			}
		}
		for r, target := range fr.row.belongs {
			if !r.follow {
				continue
			}
			var ts []ikey
			if target != "" {
				ts = []ikey{{r.to, target}}
			}
			a, d := s.setEdges(k, n, r, ts)
			added, dropped = append(added, a...), dropped || d
		}
	}
	var overlays map[string]map[string]json.RawMessage
	var gone []string
	if fields == nil && len(fr.lists) > 0 {
		fields = make(map[string]json.RawMessage, len(fr.lists))
	}
	for r, ms := range fr.lists {
		fields[r.name] = listJSON(r, ms, "")
		if r.to.owner != nil {
			views, g := s.overlayFields(n, r, ms)
			gone = append(gone, g...)
			for o, f := range views {
				if overlays == nil {
					overlays = map[string]map[string]json.RawMessage{}
				}
				if overlays[o] == nil {
					overlays[o] = map[string]json.RawMessage{}
				}
				for name, v := range f {
					overlays[o][name] = v
				}
			}
		}
		if r.follow {
			ts := make([]ikey, len(ms))
			for i, m := range ms {
				ts[i] = ikey{r.to, m.id}
			}
			a, d := s.setEdges(k, n, r, ts)
			added, dropped = append(added, a...), dropped || d
		}
	}
	if len(fields) > 0 {
		insts = append(insts, &cache.Instance{Type: k.l.name, ID: k.id, Owner: n.owner, Fields: fields})
	}
	for o, f := range overlays {
		if n.overlays[o] != nil {
			insts = append(insts, &cache.Instance{Type: k.l.name, ID: k.id, Owner: o, Fields: f})
		}
	}
	for _, o := range gone {
		if n.overlays[o] == nil {
			insts = append(insts, &cache.Instance{Type: k.l.name, ID: k.id, Owner: o, Deleted: true})
		}
	}
	return insts, added, dropped
}

// overlayFields returns, for each owner holding rows in ms or an overlay of
// n already, that owner's view of relation r, and the owners whose overlay
// is now empty (it must be removed: they see the shared row).
func (s *hotStream) overlayFields(n *node, r *relation, ms []member) (map[string]map[string]json.RawMessage, []string) {
	has := map[string]bool{}
	for _, m := range ms {
		if m.owner != "" {
			has[m.owner] = true
		}
	}
	out := map[string]map[string]json.RawMessage{}
	var gone []string
	for o, rels := range n.overlays {
		if !has[o] {
			delete(rels, r)
			if len(rels) == 0 {
				delete(n.overlays, o)
				gone = append(gone, o)
				continue
			}
		}
		out[o] = map[string]json.RawMessage{r.name: listJSON(r, ms, o)}
	}
	for o := range has {
		if n.overlays == nil {
			n.overlays = map[string]map[*relation]bool{}
		}
		if n.overlays[o] == nil {
			n.overlays[o] = map[*relation]bool{}
		}
		n.overlays[o][r] = true
		out[o] = map[string]json.RawMessage{r.name: listJSON(r, ms, o)}
	}
	return out, gone
}

// The engine's hot streams: loaded from the database (or followed from
// their owner in cluster mode), indexed by the rows they hold, reloaded
// after a failure and evicted when idle.

func (e *engine) indexAdd(k ikey, s *hotStream) {
	m := e.index[k]
	if m == nil {
		m = map[*hotStream]struct{}{}
		e.index[k] = m
	}
	m[s] = struct{}{}
}

func (e *engine) unindex(k ikey, s *hotStream) {
	if m := e.index[k]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(e.index, k)
		}
	}
}

// hot returns the stream for (def, anchorID), loading it from the database
// when it is cold, or following its owner in cluster mode. A missing anchor
// returns a not_found error.
func (e *engine) hot(ctx context.Context, def *channelDef, anchorID string) (*hotStream, error) {
	key := storeKey(def, anchorID)
	if s := e.streams[key]; s != nil {
		s.used = time.Now()
		return s, nil
	}
	unowned, leased := false, false
	if c := e.h.cluster; c != nil && c.lease != nil && !e.degraded {
		// The wait for an owner is bounded as a whole (issue 20): past
		// it, the stream is served from here, unowned, as during a
		// broker outage, rather than keeping the engine (and every
		// Subscribe queued behind it) waiting.
		deadline := time.Now().Add(c.ownerWait())
		for {
			own, err := c.acquire(ctx, key)
			if own {
				// The renewal rounds keep the lease while the stream
				// loads, however long that takes (issue 20).
				c.loading(key)
				defer c.forgetLoading(key)
				leased = true
			}
			if err != nil || own {
				// Owned, or the broker is unreachable: serve it from here;
				// once the broker is back, rehomeAll settles the owner.
				break
			}
			s, err := e.follow(ctx, def, anchorID, key, deadline)
			if errors.Is(err, errOwnerSilent) || (errors.Is(err, errLeaseFree) && time.Now().After(deadline)) {
				e.h.log.Warn("rx: the owner of a stream did not load it in time; serving it from this node without the lease", "stream", key, "waited", c.ownerWait())
				unowned = true
				break
			}
			if !errors.Is(err, errLeaseFree) {
				return s, err
			}
		}
	}
	s := newHotStream(key, def, anchorID)
	start := time.Now()
	insts, err := e.expand(ctx, s, []ikey{s.anchor})
	if err != nil {
		e.dropGraph(s)
		return nil, err
	}
	if s.nodes[s.anchor] == nil {
		e.dropGraph(s)
		return nil, Errorf(CodeNotFound, "%s %s not found", def.anchor.name, anchorID)
	}
	v, err := e.fill(ctx, key, insts)
	if err != nil {
		if e.degraded {
			e.dropGraph(s)
			return nil, fmt.Errorf("rx: fill cache for %s: %w", key, err)
		}
		e.storeFailed(err) // or a conflict: fill again
		if v, err = e.fill(ctx, key, insts); err != nil {
			e.dropGraph(s)
			return nil, fmt.Errorf("rx: fill cache for %s: %w", key, err)
		}
	}
	s.version = v
	s.used = time.Now()
	s.loaded = s.used
	if c := e.h.cluster; leased && s.used.Sub(start) > c.ttl {
		e.h.log.Warn("rx: loading a stream took longer than LeaseTTL; its lease was renewed meanwhile, and other nodes waited for it", "stream", key, "took", s.used.Sub(start).Round(time.Millisecond), "lease", c.ttl)
	}
	e.streams[key] = s
	e.h.stats.coldLoads.Add(1)
	for _, l := range def.layers {
		e.layerHot[l]++
	}
	if c := e.h.cluster; c != nil && c.lease != nil && !e.degraded && !unowned {
		c.setRole(key, true)
		c.ready(ctx, s)
	}
	return s, nil
}

// expand loads the rows in frontier and everything reachable from them that
// s does not hold yet, adds them to s and returns their instances. It runs a
// fixed number of queries per layer and round: one for the rows, one per
// relation.
func (e *engine) expand(ctx context.Context, s *hotStream, frontier []ikey) ([]*cache.Instance, error) {
	if err := e.ready(ctx); err != nil {
		return nil, err
	}
	var out []*cache.Instance
	for len(frontier) > 0 {
		byLayer := map[*layer][]string{}
		seen := map[ikey]bool{}
		for _, k := range frontier {
			if s.nodes[k] == nil && !seen[k] {
				seen[k] = true
				byLayer[k.l] = append(byLayer[k.l], k.id)
			}
		}
		frontier = nil
		for _, l := range orderedLayers(byLayer) {
			ids := byLayer[l]
			rows, err := readRows(ctx, e.db, l, ids, nil)
			if err != nil {
				return nil, err
			}
			found := make([]string, 0, len(rows))
			for _, id := range ids {
				if rows[id] != nil {
					found = append(found, id)
				}
			}
			lists := map[*relation]map[string][]member{}
			for _, r := range l.rels {
				if r.kind == relBelongsTo || len(found) == 0 {
					continue
				}
				ls, err := readLists(ctx, e.db, r, found)
				if err != nil {
					return nil, err
				}
				lists[r] = ls
			}
			for _, id := range found {
				fr := &fullRow{row: rows[id], lists: map[*relation][]member{}}
				for r, ls := range lists {
					fr.lists[r] = ls[id]
				}
				k := ikey{l, id}
				insts, added, _ := s.put(k, fr)
				e.indexAdd(k, s)
				out = append(out, insts...)
				frontier = append(frontier, added...)
			}
		}
	}
	return out, nil
}

// orderedLayers returns the map's layers in name order, for deterministic
// query order.
func orderedLayers[V any](m map[*layer]V) []*layer {
	ls := make([]*layer, 0, len(m))
	for l := range m {
		ls = append(ls, l)
	}
	slices.SortFunc(ls, func(a, b *layer) int {
		switch {
		case a.name < b.name:
			return -1
		case a.name > b.name:
			return 1
		}
		return 0
	})
	return ls
}

func (e *engine) dropGraph(s *hotStream) {
	for k := range s.nodes {
		e.unindex(k, s)
	}
}

// resync reloads a stream from the database after a failure and sends its
// subscribers a full snapshot. A followed stream catches up from the store.
func (e *engine) resync(s *hotStream) {
	if s.remote != nil && !e.degraded {
		e.catchUp(s)
		return
	}
	ctx := e.ctx()
	subs := s.subs
	e.drop(s)
	if len(subs) == 0 {
		return
	}
	ns, err := e.hot(ctx, s.def, s.anchor.id)
	if errors.Is(err, ErrNotFound) {
		// The anchor was deleted meanwhile: the stream is empty, as a
		// delta deleting it would have left it (a snapshot of nothing).
		ev := &Event{Anchor: s.key.Anchor, Version: s.version, Snapshot: true, Initial: true, memo: &memo{}}
		for sub := range subs {
			sub.deliver(ev)
		}
		return
	}
	if err == nil {
		var snap cache.Snapshot
		snap, err = e.snapshot(ctx, ns.key)
		if e.streams[ns.key] != ns {
			// The store failed reading the snapshot and the fallback
			// (storeFailed) dropped ns, which had no subscribers yet:
			// reload s again, from the private cache.
			e.resync(s)
			return
		}
		if err == nil {
			if ns.remote != nil && snap.Version > ns.version {
				ns.version = snap.Version // the owner's deltas up to it are in snap
			}
			ev := &Event{Anchor: ns.key.Anchor, Version: snap.Version, Instances: snap.Instances, Snapshot: true, Initial: true, memo: &memo{}}
			for sub := range subs {
				ns.subs[sub] = struct{}{}
				for i, x := range sub.streams {
					if x == s {
						sub.streams[i] = ns
					}
				}
				sub.deliver(ev)
			}
			return
		}
	}
	// The database failed: keep the subscribers and retry.
	if !s.lost {
		s.lost = true
		e.logf("rx: reloading %s failed; its subscribers wait for a retry every %v: %v", s.key, e.h.cfg.ProbeInterval, err)
	}
	e.park(s)
}

// resyncLayers reloads the hot streams whose channel includes one of
// layers (every one for nil) and refreshes the list subscriptions: the
// database changed with no row to tell which (a WAL TRUNCATE, ALTER TABLE
// or recreated slot, here or on the node consuming the slot). Subscribers
// get a fresh snapshot. An owned stream without subscribers here is let go
// (evict) instead of being dropped with its lease: the nodes following it
// take it over at once and reload it, rather than keep the stale state
// until the lease runs out.
func (e *engine) resyncLayers(layers map[*layer]bool) {
	var ss []*hotStream
	for _, s := range e.hotStreams() {
		if layers == nil {
			ss = append(ss, s)
			continue
		}
		for l := range layers {
			if s.def.hasLayer[l] {
				ss = append(ss, s)
				break
			}
		}
	}
	for _, s := range ss {
		if len(s.subs) == 0 && s.remote == nil {
			e.evict(s)
			continue
		}
		e.resync(s)
	}
	e.refreshLists()
}

// park keeps a stream that could not be reloaded, with its subscribers,
// until a retry succeeds.
func (e *engine) park(s *hotStream) {
	e.parked[s] = struct{}{}
	e.retry()
}

// retry schedules unpark after Config.ProbeInterval.
func (e *engine) retry() {
	if e.retrying {
		return
	}
	e.retrying = true
	time.AfterFunc(e.h.cfg.ProbeInterval, func() { e.do(e.unpark) })
}

// unpark retries the parked streams; subscribers that left are dropped.
// Lists are refreshed too: commits that failed may have changed them.
func (e *engine) unpark() {
	e.retrying = false
	parked := e.parked
	e.parked = map[*hotStream]struct{}{}
	for s := range parked {
		if len(s.subs) > 0 {
			e.resync(s) // parks it again if it fails
		}
	}
	if len(e.parked) == 0 && (len(parked) > 0 || e.listsStale) {
		e.refreshLists()
	}
}

// refreshLists re-runs the query of every list subscription; if the
// database fails, they are retried with the parked streams.
func (e *engine) refreshLists() {
	for _, subs := range e.lists {
		for sub := range subs {
			if err := e.refreshList(e.ctx(), sub); err != nil {
				if !e.listsStale {
					e.logf("rx: refreshing the lists failed; retrying every %v: %v", e.h.cfg.ProbeInterval, err)
				}
				e.listsStale = true
				e.retry()
				return
			}
		}
	}
	e.listsStale = false
}

// snapshot reads a stream from the active store, switching to the fallback
// when the store fails.
func (e *engine) snapshot(ctx context.Context, key cache.Stream) (cache.Snapshot, error) {
	snap, err := e.active.Snapshot(ctx, key)
	if err != nil && !errors.Is(err, cache.ErrCold) && !e.degraded {
		e.storeFailed(err)
		snap, err = e.active.Snapshot(ctx, key)
	}
	return snap, err
}

// evict makes a stream without subscribers cold. In cluster mode the owner
// lets its lease go and tells the followers, who take the stream over.
func (e *engine) evict(s *hotStream) {
	if e.streams[s.key] != s {
		return
	}
	e.drop(s)
	if c := e.h.cluster; c != nil && c.lease != nil && s.remote == nil && !e.degraded {
		ctx, cancel := context.WithTimeout(e.ctx(), c.ttl/3)
		if err := c.lease.Release(ctx, c.node, []string{leaseKey(s.key), readyKey(s.key, c.node)}); err != nil {
			e.h.log.Debug("rx: release stream lease", "stream", s.key, "err", err)
		}
		cancel()
		c.publish(deltaTopic(s.key), deltaMsg{Release: true})
	}
}

// drop forgets a stream here. A single node also drops it from the store;
// in cluster mode the store keeps it for the other nodes (the janitor
// expires streams no node writes).
func (e *engine) drop(s *hotStream) {
	if e.streams[s.key] != s {
		return
	}
	delete(e.streams, s.key)
	if c := e.h.cluster; c != nil {
		c.forget(s.key)
	}
	if s.remote != nil {
		s.remote.unsub()
		return
	}
	e.dropGraph(s)
	for _, l := range s.def.layers {
		e.layerHot[l]--
	}
	if c := e.h.cluster; c != nil && c.lease != nil {
		return
	}
	if err := e.active.Expire(e.ctx(), s.key); err != nil && !e.degraded {
		e.storeFailed(err)
	}
}
