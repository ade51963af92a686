package rx

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/rxgorm/rxgorm/cache"
	"gorm.io/gorm"
)

// The engine runs on one goroutine that owns every hot stream. Commits,
// subscriptions and loads are queued to it and run in queue order, so that
// a snapshot and the deltas that follow it can never race: a subscription
// is registered at the version of its snapshot, and every later commit is
// applied after it. Commits only append to the queue; they never wait for
// fan-out.
type engine struct {
	h  *Hub
	db *gorm.DB // session for reads: no hooks, no statement state

	mu     sync.Mutex
	queue  []item // guarded by mu
	closed bool   // guarded by mu
	wake   chan struct{}
	done   chan struct{}

	// Owned by the loop goroutine.
	streams  map[cache.Stream]*hotStream
	index    map[ikey]map[*hotStream]struct{}
	layerHot map[*layer]int // hot streams whose channel includes the layer
	lists    map[*channelDef]map[*Subscription]struct{}
	primary  cache.Store // the configured store
	active   cache.Store // primary, or the in-memory fallback while degraded
	degraded bool
	// parked holds streams that could not be reloaded from the database
	// (it failed): their subscribers keep waiting and get a fresh snapshot
	// when a retry, every Config.ProbeInterval, succeeds.
	parked     map[*hotStream]struct{}
	listsStale bool // refreshing the lists failed: retried with them
	retrying   bool // a retry of the parked streams is scheduled
	// Batches whose reads failed wait for their next attempt off the
	// goroutine; barriers wait for them.
	retrySeq     uint64
	retryPending map[uint64]struct{}
	barriers     []barrierWait
	// retryAfter schedules a retry (time.AfterFunc; tests hold retries).
	retryAfter func(time.Duration, func())
}

func newEngine(h *Hub, db *gorm.DB) *engine {
	return &engine{
		h:            h,
		db:           db,
		wake:         make(chan struct{}, 1),
		done:         make(chan struct{}),
		streams:      map[cache.Stream]*hotStream{},
		index:        map[ikey]map[*hotStream]struct{}{},
		layerHot:     map[*layer]int{},
		lists:        map[*channelDef]map[*Subscription]struct{}{},
		parked:       map[*hotStream]struct{}{},
		primary:      h.store,
		retryPending: map[uint64]struct{}{},
		active:       h.store,
		retryAfter:   func(d time.Duration, f func()) { time.AfterFunc(d, f) },
	}
}

// enqueue hands a committed transaction's touches to the engine, and to
// the other nodes' engines.
func (e *engine) enqueue(ts []touch) {
	e.push(item{touches: ts})
	if c := e.h.cluster; c != nil {
		c.sendTouches(ts)
	}
}

// item is one entry of the engine's queue: a commit's touches, or a
// function to run.
type item struct {
	touches []touch
	f       func()
}

// do queues f to run on the engine goroutine. It reports false after close.
func (e *engine) do(f func()) bool { return e.push(item{f: f}) }

func (e *engine) push(it item) bool {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return false
	}
	e.queue = append(e.queue, it)
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
	return true
}

// call runs f on the engine goroutine and waits for it.
func (e *engine) call(ctx context.Context, f func()) error {
	ran := make(chan struct{})
	if !e.do(func() { f(); close(ran) }) {
		return errors.New("rx: hub is closed")
	}
	select {
	case <-ran:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (e *engine) run() {
	defer close(e.done)
	for {
		e.mu.Lock()
		q := e.queue
		e.queue = nil
		closed := e.closed
		e.mu.Unlock()
		// Commits queued back to back are processed as one batch: their
		// rows are re-read once, and the batch still runs before any
		// function queued after them, so subscriptions and Wait keep
		// their order.
		var batch []touch
		for _, it := range q {
			if it.f == nil {
				batch = append(batch, it.touches...)
				continue
			}
			if len(batch) > 0 {
				e.process(batch)
				batch = nil
			}
			it.f()
		}
		if len(batch) > 0 {
			e.process(batch)
		}
		if len(q) > 0 {
			continue
		}
		if closed {
			for _, s := range e.streams {
				for sub := range s.subs {
					sub.end(errors.New("rx: hub closed"))
				}
			}
			for s := range e.parked {
				for sub := range s.subs {
					sub.end(errors.New("rx: hub closed"))
				}
			}
			for _, b := range e.barriers {
				close(b.done) // their retries will not run
			}
			e.barriers = nil
			return
		}
		<-e.wake
	}
}

func (e *engine) close() {
	e.mu.Lock()
	e.closed = true
	e.mu.Unlock()
	select {
	case e.wake <- struct{}{}:
	default:
	}
	<-e.done
}

func (e *engine) ctx() context.Context { return e.h.ctx }

func (e *engine) logf(format string, args ...any) {
	e.h.log.Error(fmt.Sprintf(format, args...))
}

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

// retryDelays are the waits before the second and third attempts at a
// batch whose database reads failed.
var retryDelays = []time.Duration{20 * time.Millisecond, 40 * time.Millisecond}

// process turns one commit's touches into deltas for every hot stream.
func (e *engine) process(ts []touch) {
	e.bumpEpochs(ts) // once per commit, not per attempt
	e.attempt(ts, 0, 0)
}

// attempt processes a batch; attempt n counts from 0. A batch whose reads
// fail is queued again after retryDelays[n], without holding the engine
// goroutine meanwhile: other streams, subscriptions and commits go on.
// seq numbers a batch being retried (0 before its first failure), so that
// barrier can wait for it.
func (e *engine) attempt(ts []touch, n int, seq uint64) {
	defer func() { e.retryDone(seq) }() // seq as it is on return
	if len(e.streams) == 0 && len(e.lists) == 0 {
		return
	}
	ctx := e.ctx()
	err := e.processOnce(ctx, ts)
	if err == nil || ctx.Err() != nil {
		return
	}
	if n < len(retryDelays) {
		if seq == 0 {
			e.retrySeq++
			seq = e.retrySeq
			e.retryPending[seq] = struct{}{}
		}
		next := seq
		seq = 0 // still pending: not done by this attempt
		e.retryAfter(retryDelays[n], func() { e.do(func() { e.attempt(ts, n+1, next) }) })
		return
	}
	// The database could not be read: reload every stream the touches may
	// concern, so that subscribers are not left stale (a stream that cannot
	// be reloaded now is parked and retried), and the lists.
	e.logf("rx: processing a commit failed, resyncing affected streams: %v", err)
	e.refreshLists()
	layers := map[*layer]bool{}
	for _, t := range ts {
		layers[t.l] = true
	}
	e.reauthFailed(ctx, ts, layers)
	for _, s := range e.streams {
		if s.remote != nil {
			continue // its owner processes it
		}
		for l := range layers {
			if s.def.hasLayer[l] {
				e.resync(s)
				break
			}
		}
	}
}

// barrierWait is a barrier call waiting for the batches being retried
// when it ran.
type barrierWait struct {
	upTo uint64 // retry sequence numbers up to this one
	done chan struct{}
}

// barrier returns once every commit queued before the call was processed:
// applied, or given up after its retries.
func (e *engine) barrier(ctx context.Context) error {
	var done chan struct{}
	err := e.call(ctx, func() {
		if len(e.retryPending) > 0 {
			done = make(chan struct{})
			e.barriers = append(e.barriers, barrierWait{upTo: e.retrySeq, done: done})
		}
	})
	if err != nil || done == nil {
		return err
	}
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// retryDone records that the batch retried as seq is over (0: none) and
// releases the barriers that waited for it and for no other.
func (e *engine) retryDone(seq uint64) {
	if seq == 0 {
		return
	}
	delete(e.retryPending, seq)
	oldest := uint64(0)
	for s := range e.retryPending {
		if oldest == 0 || s < oldest {
			oldest = s
		}
	}
	keep := e.barriers[:0]
	for _, b := range e.barriers {
		if oldest == 0 || oldest > b.upTo {
			close(b.done)
		} else {
			keep = append(keep, b)
		}
	}
	e.barriers = keep
}

type change struct {
	row     *row // nil: not re-read (list-only) or deleted
	deleted bool
	lists   map[*relation][]member
	full    bool // row and every list known: can enter a stream as is
}

func (e *engine) processOnce(ctx context.Context, ts []touch) error {
	// 0. Subscriptions whose permission reads rows outside their state.
	reauthSubs := e.reauthOutside(ts)
	// 1. Dedup, keeping only what some hot stream may contain.
	rowIDs := map[*layer][]string{}
	seenRow := map[ikey]bool{}
	listIDs := map[*relation]map[string]bool{}
	addList := func(r *relation, id string) {
		if e.layerHot[r.from] == 0 || id == "" {
			return
		}
		if listIDs[r] == nil {
			listIDs[r] = map[string]bool{}
		}
		listIDs[r][id] = true
	}
	listed := map[*layer]bool{}
	for def, subs := range e.lists {
		if len(subs) > 0 {
			listed[def.anchor] = true
		}
	}
	for _, t := range ts {
		if e.layerHot[t.l] == 0 && !(t.rel == nil && listed[t.l]) {
			continue
		}
		if t.rel != nil {
			addList(t.rel, t.id)
			continue
		}
		k := ikey{t.l, t.id}
		if !seenRow[k] {
			seenRow[k] = true
			rowIDs[t.l] = append(rowIDs[t.l], t.id)
		}
	}
	// 2. Re-read rows.
	changes := map[ikey]*change{}
	for l, ids := range rowIDs {
		rows, err := readRows(ctx, e.db, l, ids)
		if err != nil {
			return err
		}
		for _, id := range ids {
			k := ikey{l, id}
			r := rows[id]
			changes[k] = &change{row: r, deleted: r == nil}
			_, known := e.index[k]
			// 3. A child row can change its parents' lists: the old parents
			// (from the graph) and the new one (from its foreign key).
			for _, p := range l.parents {
				newParent := ""
				if r != nil {
					newParent = r.fks[p]
				}
				var old []string
				ownerMoved := false
				for s := range e.index[k] {
					old = append(old, s.parentsVia(k, p)...)
					if n := s.nodes[k]; n != nil && r != nil && n.owner != r.owner {
						ownerMoved = true
					}
				}
				moved := r == nil || !known || ownerMoved || p.order != "" || p.limit > 0 || len(old) != 1 || old[0] != newParent ||
					e.missingUnder(k, p, newParent)
				if !moved {
					continue
				}
				for _, o := range old {
					addList(p, o)
				}
				addList(p, newParent)
			}
			// A row no stream holds yet needs its lists to enter one.
			if r != nil && !known {
				for _, rel := range l.rels {
					if rel.kind != relBelongsTo {
						addList(rel, id)
					}
				}
			}
		}
	}
	// 4. Recompute lists.
	for r, set := range listIDs {
		ids := make([]string, 0, len(set))
		for id := range set {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		lists, err := readLists(ctx, e.db, r, ids)
		if err != nil {
			return err
		}
		for id, ms := range lists {
			k := ikey{r.from, id}
			c := changes[k]
			if c == nil {
				c = &change{}
				changes[k] = c
			}
			if c.lists == nil {
				c.lists = map[*relation][]member{}
			}
			c.lists[r] = ms
		}
	}
	for k, c := range changes {
		if c.row == nil {
			continue
		}
		c.full = true
		for _, r := range k.l.rels {
			if _, ok := c.lists[r]; !ok && r.kind != relBelongsTo {
				c.full = false
				break
			}
		}
	}
	// 5. Apply to every hot stream holding a changed row. Streams holding
	// a changed row their permission depends on, before or after, have
	// their subscribers re-checked before any delta is handed out.
	reauth := map[*hotStream]bool{}
	e.reauthTargets(reauth, changes)
	affected := map[*hotStream]bool{}
	for k := range changes {
		for s := range e.index[k] {
			affected[s] = true
		}
	}
	var writes []cache.Write
	var order, broken []*hotStream
	for s := range affected {
		insts, err := e.applyTo(ctx, s, changes)
		if err != nil {
			// The stream's graph is half updated (rows it dropped are
			// gone from it, so a retry would lose their tombstones):
			// reload it instead.
			e.logf("rx: updating %s failed, reloading it: %v", s.key, err)
			broken = append(broken, s)
			continue
		}
		if len(insts) > 0 {
			writes = append(writes, cache.Write{Stream: s.key, Changes: insts})
			order = append(order, s)
		}
	}
	e.reauthTargets(reauth, changes)
	e.reauthStreams(ctx, reauth, reauthSubs)
	if err := e.store(ctx, writes, order, reauth); err != nil {
		return err
	}
	e.publishReauth(reauth)
	for _, s := range broken {
		e.resync(s)
	}
	return e.updateLists(ctx, changes, listed)
}

// missingUnder reports whether a hot stream holds row parent of relation
// p's parent layer without row k in its list: its list is then stale and
// must be re-read, even though the streams that hold k hold it under
// parent already. Streams are not all at the same point: a stream loaded
// from the database after a commit but before the commit's touches were
// processed (a failed batch waits for its retry while later commits,
// subscriptions and reloads go on) holds the commit's rows already, the
// streams loaded before it do not.
func (e *engine) missingUnder(k ikey, p *relation, parent string) bool {
	if parent == "" {
		return false
	}
	pk := ikey{p.from, parent}
	for s := range e.index[pk] {
		if _, ok := s.in[k][edge{pk, p}]; !ok {
			return true
		}
	}
	return false
}

// updateLists refreshes list subscriptions whose anchors may have changed:
// an anchor row that was deleted or updated while listed (it may no longer
// match the subscription's query: a chat made private must leave the lists
// of those who may no longer see it), or that exists but is not listed
// (created, or now matching the query).
func (e *engine) updateLists(ctx context.Context, changes map[ikey]*change, listed map[*layer]bool) error {
	if len(listed) == 0 {
		return nil
	}
	refresh := map[*Subscription]bool{}
	for k, c := range changes {
		if !listed[k.l] || (c.row == nil && !c.deleted) {
			continue
		}
		for def, subs := range e.lists {
			if def.anchor != k.l {
				continue
			}
			for sub := range subs {
				sub.mu.Lock()
				in := slices.Contains(sub.anchors, k.id)
				sub.mu.Unlock()
				if in || !c.deleted {
					refresh[sub] = true
				}
			}
		}
	}
	for sub := range refresh {
		if err := e.refreshList(ctx, sub); err != nil {
			return err
		}
	}
	return nil
}

// store writes to the cache and fans the deltas out. In cluster mode a
// delta of a stream in reauthed carries the re-check mark for the
// followers, and the stream leaves reauthed (publishReauth marks the rest).
func (e *engine) store(ctx context.Context, writes []cache.Write, order []*hotStream, reauthed map[*hotStream]bool) error {
	if len(writes) == 0 {
		return nil
	}
	deltas, err := e.active.Apply(ctx, writes)
	if err != nil {
		// The graph already moved on; the fallback reloads every stream
		// from the database, and so does a conflict, for its streams.
		if !e.storeFailed(err) {
			for _, s := range order {
				e.resync(s)
			}
		}
		return nil
	}
	for i, d := range deltas {
		s := order[i]
		if d.Cold {
			e.resync(s)
			continue
		}
		if len(d.Instances) == 0 {
			continue
		}
		if e.foreignWrite(s, d.Version) {
			continue
		}
		from := s.version
		s.version = d.Version
		if c := e.h.cluster; c != nil && c.lease != nil && !e.degraded {
			c.publish(deltaTopic(s.key), deltaMsg{Version: d.Version, Instances: d.Instances, Reauth: reauthed[s]})
			delete(reauthed, s) // the delta carries the mark
		}
		ev := &Event{Anchor: s.key.Anchor, Version: d.Version, From: from, Instances: d.Instances, memo: &memo{}}
		for sub := range s.subs {
			sub.deliver(ev)
		}
	}
	return nil
}

// applyTo updates stream s with the changes and returns the instances to
// write.
func (e *engine) applyTo(ctx context.Context, s *hotStream, changes map[ikey]*change) ([]*cache.Instance, error) {
	var out []*cache.Instance
	var added []ikey
	dropped := false
	for k, c := range changes {
		n := s.nodes[k]
		if n == nil {
			continue
		}
		if c.deleted {
			out = append(out, s.remove(e, k)...)
			dropped = true
			continue
		}
		insts, a, d := s.put(k, &fullRow{row: c.row, lists: c.lists})
		out = append(out, insts...)
		added = append(added, a...)
		dropped = dropped || d
	}
	// Rows that entered the stream: take them from this batch when it read
	// them whole, else load them (and what hangs below them) from the
	// database.
	var load []ikey
	for len(added) > 0 {
		k := added[0]
		added = added[1:]
		if s.nodes[k] != nil {
			continue
		}
		if c := changes[k]; c != nil && c.full {
			insts, a, _ := s.put(k, &fullRow{row: c.row, lists: c.lists})
			e.indexAdd(k, s)
			out = append(out, insts...)
			added = append(added, a...)
			continue
		}
		if c := changes[k]; c != nil && c.deleted {
			continue
		}
		load = append(load, k)
	}
	if len(load) > 0 {
		insts, err := e.expand(ctx, s, load)
		if err != nil {
			return nil, err
		}
		out = append(out, insts...)
	}
	if dropped {
		swept := s.sweep(e)
		if len(swept) > 0 {
			// A row that left the stream is sent as its tombstone only: an
			// update of it in the same delta would leak its new state.
			gone := make(map[cache.Key]bool, len(swept))
			for _, in := range swept {
				gone[in.Key()] = true
			}
			out = slices.DeleteFunc(out, func(in *cache.Instance) bool { return gone[in.Key()] })
		}
		out = append(out, swept...)
	}
	return out, nil
}

// expand loads the rows in frontier and everything reachable from them that
// s does not hold yet, adds them to s and returns their instances. It runs a
// fixed number of queries per layer and round: one for the rows, one per
// relation.
func (e *engine) expand(ctx context.Context, s *hotStream, frontier []ikey) ([]*cache.Instance, error) {
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
			rows, err := readRows(ctx, e.db, l, ids)
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

// hot returns the stream for (def, anchorID), loading it from the database
// when it is cold, or following its owner in cluster mode. A missing anchor
// returns a not_found error.
func (e *engine) hot(ctx context.Context, def *channelDef, anchorID string) (*hotStream, error) {
	key := storeKey(def, anchorID)
	if s := e.streams[key]; s != nil {
		s.used = time.Now()
		return s, nil
	}
	unowned := false
	if c := e.h.cluster; c != nil && c.lease != nil && !e.degraded {
		// The wait for an owner is bounded as a whole (issue 20): past
		// it, the stream is served from here, unowned, as during a
		// broker outage, rather than keeping the engine (and every
		// Subscribe queued behind it) waiting.
		deadline := time.Now().Add(c.ownerWait())
		for {
			own, err := c.acquire(ctx, key)
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
	e.streams[key] = s
	for _, l := range def.layers {
		e.layerHot[l]++
	}
	if c := e.h.cluster; c != nil && c.lease != nil && !e.degraded && !unowned {
		c.setRole(key, true)
		c.ready(ctx, s)
	}
	return s, nil
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
