package rx

import (
	"context"
	"slices"

	"github.com/rxgorm/rxgorm/cache"
)

// A commit's way to the subscribers, on the engine goroutine: the touches
// of a batch of commits (the rows they wrote, see capture.go) are narrowed
// to what some hot stream may hold, the rows re-read and the lists they
// move recomputed, every hot stream holding a changed row updated
// (stream.go), the new instances written to the cache store and the
// deltas it returns handed to the subscribers. processOnce runs these
// steps in order; engine.attempt retries it when the database fails.

// change is what a batch found for one row.
type change struct {
	row     *row // nil: not re-read (list-only) or deleted
	deleted bool
	lists   map[*relation][]member
	full    bool // row and every list known: can enter a stream as is
}

// batch is one processOnce's work: the rows and lists to read, and what
// was read.
type batch struct {
	e       *engine
	rowIDs  map[*layer][]string           // rows to re-read, each once
	listIDs map[*relation]map[string]bool // lists to recompute, by parent id
	listed  map[*layer]bool               // anchor layers of list channels with subscribers
	changes map[ikey]*change
	imgs    map[ikey]*walImage // the WAL's row images, which spare a re-read (wal.go)
	rows    map[string]*row    // readRows' result for one layer at a time, reused
}

// processOnce turns a batch of touches into deltas, once; an error is a
// failed database read, and attempt retries the batch.
func (e *engine) processOnce(ctx context.Context, ts []touch) error {
	// 0. Subscriptions whose permission reads rows outside their state.
	reauthSubs := e.reauthOutside(ts)
	// 1. Dedup, keeping only what some hot stream may contain.
	b := e.newBatch(ts)
	// 2. Re-read rows (or take the WAL's images of them), and 3. note the lists they may move.
	if err := b.readRows(ctx); err != nil {
		return err
	}
	// 4. Recompute lists.
	if err := b.readLists(ctx); err != nil {
		return err
	}
	b.markFull()
	// 5. Apply to every hot stream holding a changed row. Streams holding
	// a changed row their permission depends on, before or after, have
	// their subscribers re-checked before any delta is handed out.
	reauth := map[*hotStream]bool{}
	e.reauthTargets(reauth, b.changes)
	writes, order, broken := e.applyAll(ctx, b.changes)
	e.reauthTargets(reauth, b.changes)
	e.reauthStreams(ctx, reauth, reauthSubs)
	// 6. Store, and deliver the deltas.
	if err := e.store(ctx, writes, order, reauth); err != nil {
		return err
	}
	e.publishReauth(reauth)
	for _, s := range broken {
		e.resync(s)
	}
	// 7. List channels whose query the changes may have moved.
	if err := e.updateLists(ctx, b.changes, b.listed); err != nil {
		return err
	}
	e.recycle(b)
	return nil
}

// maxSpareBatch is the most rows and changes a batch may have held for its
// maps to be kept for the next one: clearing costs their capacity, and a
// burst's large maps would be kept for good.
const maxSpareBatch = 64

// recycle keeps b's maps for the next batch; nothing holds them once
// processOnce is done (every step that reads them runs inside it).
func (e *engine) recycle(b *batch) {
	if len(b.changes) > maxSpareBatch || len(b.rowIDs) > maxSpareBatch || len(b.rows) > maxSpareBatch {
		return
	}
	clear(b.changes)
	clear(b.rowIDs)
	clear(b.rows)
	*b = batch{e: e, rowIDs: b.rowIDs, changes: b.changes, rows: b.rows}
	e.spareBatch = b
}

// newBatch keeps, of the touches, each row and list that some hot stream
// may contain once (a row of a list channel's anchor layer too, as it may
// enter the list).
func (e *engine) newBatch(ts []touch) *batch {
	b := e.spareBatch
	e.spareBatch = nil
	if b == nil {
		b = &batch{e: e, rowIDs: map[*layer][]string{}, changes: map[ikey]*change{}}
	}
	b.imgs = batchImages(ts)
	// listIDs and listed stay nil until needed, and seenRow for a single
	// touch: most commits write one row that no list channel holds, and
	// each map is garbage (docs/BENCHMARKS.md, the collector's tail).
	for def, subs := range e.lists {
		if len(subs) > 0 {
			if b.listed == nil {
				b.listed = map[*layer]bool{}
			}
			b.listed[def.anchor] = true
		}
	}
	var seenRow map[ikey]bool
	if len(ts) > 1 {
		seenRow = make(map[ikey]bool, len(ts))
	}
	for _, t := range ts {
		if e.layerHot[t.l] == 0 && !(t.rel == nil && b.listed[t.l]) {
			continue
		}
		if t.rel != nil {
			b.addList(t.rel, t.id)
			continue
		}
		k := ikey{t.l, t.id}
		if !seenRow[k] {
			if seenRow != nil {
				seenRow[k] = true
			}
			b.rowIDs[t.l] = append(b.rowIDs[t.l], t.id)
		}
	}
	return b
}

// addList notes that relation r's list under row id must be recomputed,
// if a hot stream may hold it.
func (b *batch) addList(r *relation, id string) {
	if b.e.layerHot[r.from] == 0 || id == "" {
		return
	}
	if b.listIDs == nil {
		b.listIDs = map[*relation]map[string]bool{}
	}
	if b.listIDs[r] == nil {
		b.listIDs[r] = map[string]bool{}
	}
	b.listIDs[r][id] = true
}

// readRows re-reads the batch's rows (or takes the WAL's images of them) and notes the lists they may move.
func (b *batch) readRows(ctx context.Context) error {
	if b.rows == nil {
		b.rows = map[string]*row{}
	}
	for l, ids := range b.rowIDs {
		clear(b.rows)
		rows, err := readRowsOrImages(ctx, b.e, l, ids, b.imgs, b.rows)
		if err != nil {
			return err
		}
		for _, id := range ids {
			k := ikey{l, id}
			r := rows[id]
			b.changes[k] = &change{row: r, deleted: r == nil}
			_, known := b.e.index[k]
			b.moveParents(k, r, known)
			// A row no stream holds yet needs its lists to enter one.
			if r != nil && !known {
				for _, rel := range l.rels {
					if rel.kind != relBelongsTo {
						b.addList(rel, id)
					}
				}
			}
		}
	}
	return nil
}

// moveParents notes the lists a child row k, re-read as r (nil: deleted),
// can change: its old parents' (from the graph) and its new parent's (from
// its foreign key), for each relation into its layer.
func (b *batch) moveParents(k ikey, r *row, known bool) {
	e := b.e
	for i, p := range k.l.parents {
		newParent := ""
		if r != nil {
			newParent = r.fk(i)
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
			b.addList(p, o)
		}
		b.addList(p, newParent)
	}
}

// readLists recomputes the batch's lists.
func (b *batch) readLists(ctx context.Context) error {
	if len(b.listIDs) > 0 {
		if err := b.e.ready(ctx); err != nil {
			return err
		}
	}
	for r, set := range b.listIDs {
		ids := make([]string, 0, len(set))
		for id := range set {
			ids = append(ids, id)
		}
		slices.Sort(ids)
		lists, err := readLists(ctx, b.e.db, r, ids)
		if err != nil {
			return err
		}
		for id, ms := range lists {
			k := ikey{r.from, id}
			c := b.changes[k]
			if c == nil {
				c = &change{}
				b.changes[k] = c
			}
			if c.lists == nil {
				c.lists = map[*relation][]member{}
			}
			c.lists[r] = ms
		}
	}
	return nil
}

// markFull marks the changes that hold a row and every one of its lists:
// such a row can enter a stream without being loaded again.
func (b *batch) markFull() {
	for k, c := range b.changes {
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
}

// applyAll applies the changes to every hot stream holding a changed row.
// It returns the cache writes with their streams in order, and the streams
// whose update failed (to reload).
func (e *engine) applyAll(ctx context.Context, changes map[ikey]*change) (writes []cache.Write, order, broken []*hotStream) {
	affected := map[*hotStream]bool{}
	for k := range changes {
		for s := range e.index[k] {
			affected[s] = true
		}
	}
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
	return writes, order, broken
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
			// Nothing changed here, but the store may have moved past
			// this node's version: another node wrote the same change.
			e.foreignWrite(s, d.Version, false)
			continue
		}
		if e.foreignWrite(s, d.Version, true) {
			continue
		}
		from := s.version
		s.version = d.Version
		if c := e.h.cluster; c != nil && c.lease != nil && !e.degraded {
			c.publish(deltaTopic(s.key), deltaMsg{Version: d.Version, Instances: d.Instances, Reauth: reauthed[s]})
			delete(reauthed, s) // the delta carries the mark
		}
		ev := &Event{Anchor: s.key.Anchor, Version: d.Version, From: from, Instances: d.Instances, Committed: e.h.stats.committed, memo: &memo{}}
		e.h.stats.deltas.Add(1)
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
