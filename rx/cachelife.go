package rx

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/rxgorm/rxgorm/cache"
)

// The cache's life cycle, all on the engine goroutine:
//
//   - Store keys carry a fingerprint of the channel's state model, so a
//     migration of the models (a new field, a new relation) lands in a new
//     key instead of serving documents of the old shape.
//   - A stream cold in the engine but present in the store (kept by a
//     persistent store across a restart) is reconciled with the database:
//     the difference is applied as an ordinary versioned delta, so clients
//     resume across restarts, and a crash between a commit and its broadcast
//     heals when the stream is next loaded.
//   - When the store fails, the engine logs it once, switches to an
//     in-memory store rebuilt from the database (subscribers get fresh
//     snapshots, live deltas keep flowing) and probes the store until it
//     answers again; then it rebuilds every hot stream in it.
//   - Streams without subscribers expire after Config.CacheTTL.

// fingerprint hashes what shapes a channel's instances.
func fingerprint(def *channelDef) string {
	h := sha256.New()
	for _, l := range def.layers {
		fmt.Fprintf(h, "L%s|%s|%s|%v|", l.name, l.schema.Table, l.pk.DBName, l.pkQuoted)
		if l.owner != nil {
			fmt.Fprintf(h, "O%s|", l.owner.DBName)
		}
		for _, f := range l.fields {
			fmt.Fprintf(h, "F%s|%s|%v|", f.name, l.typ.FieldByIndex(f.index).Type, f.quoted)
		}
		for _, r := range l.rels {
			fmt.Fprintf(h, "R%s|%d|%s|%v|%s|%d|", r.name, r.kind, r.to.name, r.follow, r.order, r.limit)
		}
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// storeKey is the cache key of a channel's stream for one anchor.
func storeKey(def *channelDef, anchor string) cache.Stream {
	return cache.Stream{Channel: def.name + "@" + def.fingerprint, Anchor: anchor}
}

// fill stores a freshly loaded stream, reconciled with what the store
// already holds or filled, and returns its version.
func (e *engine) fill(ctx context.Context, key cache.Stream, insts []*cache.Instance) (uint64, error) {
	snap, err := e.active.Snapshot(ctx, key)
	if err == nil {
		changes := reconcile(snap.Instances, insts)
		if len(changes) == 0 {
			return snap.Version, nil
		}
		ds, err := e.active.Apply(ctx, []cache.Write{{Stream: key, Changes: changes}})
		if err != nil {
			return 0, err
		}
		if ds[0].Cold {
			return e.active.Fill(ctx, key, insts) // expired meanwhile
		}
		return ds[0].Version, nil
	}
	if !errors.Is(err, cache.ErrCold) {
		return 0, err
	}
	return e.active.Fill(ctx, key, insts)
}

// reconcile returns the changes that turn stored into fresh: fresh rows in
// full (the store keeps only what differs) and tombstones for rows gone.
func reconcile(stored, fresh []*cache.Instance) []*cache.Instance {
	keep := make(map[cache.Key]bool, len(fresh))
	out := make([]*cache.Instance, 0, len(fresh))
	for _, in := range fresh {
		keep[in.Key()] = true
		out = append(out, in)
	}
	for _, in := range stored {
		if !keep[in.Key()] {
			out = append(out, &cache.Instance{Type: in.Type, ID: in.ID, Owner: in.Owner, Deleted: true})
		}
	}
	return out
}

// storeFailed switches to the in-memory fallback after a store error, and
// reports whether it did. A conflict with another writer of the stream
// (cache.ErrConflict: two nodes wrote it at once) is not an outage: the
// store answers, so the caller reloads the streams concerned and writes
// again instead.
//
// In cluster mode the fallback cache is private to this node: its versions
// mean nothing to the other nodes. So the node leaves the cluster's streams
// while it lasts: it releases the leases it holds (the other nodes take
// those streams over at once), stops following, publishes no deltas, and
// serves every stream its clients hold from the database and its private
// cache, still seeing every node's commits through the broker. Each of its
// subscribers gets a fresh snapshot, never the state the store held; once
// the store answers again the node rejoins: it takes or follows each stream
// again and sends its subscribers a fresh snapshot once more.
func (e *engine) storeFailed(err error) bool {
	if errors.Is(err, cache.ErrConflict) {
		e.h.log.Warn("rx: cache store write conflicted with another node's; reloading the stream", "err", err)
		return false
	}
	if e.degraded {
		return true
	}
	e.degraded = true
	if c := e.h.cluster; c != nil && c.lease != nil {
		e.h.log.Error("rx: CACHE STORE UNAVAILABLE: this node leaves the cluster's streams and serves its clients from the database and a private in-memory cache until the store returns; clients get fresh snapshots", "err", err)
		c.leave()
	} else {
		e.h.log.Error("rx: cache store unavailable; serving streams from the database and memory until it returns", "err", err)
	}
	e.active = cache.NewMemory(cache.MemoryOptions{})
	e.resyncAll()
	go e.probe()
	return true
}

// probe waits for the primary store to answer, then switches back.
func (e *engine) probe() {
	t := time.NewTicker(e.h.cfg.ProbeInterval)
	defer t.Stop()
	probeKey := cache.Stream{Channel: "rx-probe", Anchor: "0"}
	for {
		select {
		case <-e.h.ctx.Done():
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(e.h.ctx, e.h.cfg.ProbeInterval)
		_, err := e.primary.Snapshot(ctx, probeKey)
		cancel()
		if err == nil || errors.Is(err, cache.ErrCold) {
			e.do(func() {
				e.degraded = false
				e.active = e.primary
				if c := e.h.cluster; c != nil && c.lease != nil {
					e.h.log.Warn("rx: cache store is back; this node rejoins the cluster's streams")
				} else {
					e.h.log.Info("rx: cache store is back; rebuilding hot streams in it")
				}
				e.resyncAll()
			})
			return
		}
	}
}

// resyncAll reloads every hot stream into the active store.
func (e *engine) resyncAll() {
	for _, s := range e.hotStreams() {
		e.resync(s)
	}
}

// hotStreams lists the hot streams, for loops that replace them.
func (e *engine) hotStreams() []*hotStream {
	out := make([]*hotStream, 0, len(e.streams))
	for _, s := range e.streams {
		out = append(out, s)
	}
	return out
}

// streamLister is implemented by stores that keep streams beyond a
// process (cache.MongoStore): the janitor also expires streams an earlier
// process left there.
type streamLister interface {
	Streams(ctx context.Context) ([]cache.StreamInfo, error)
}

// expireIdle evicts streams without subscribers unused for the TTL, and
// expires stored streams no process has written for the TTL.
func (e *engine) expireIdle(now time.Time) {
	for _, s := range e.streams {
		if len(s.subs) == 0 && now.Sub(s.used) >= e.h.cfg.CacheTTL {
			e.evict(s)
		}
	}
	l, ok := e.active.(streamLister)
	if !ok || e.degraded {
		return
	}
	ctx, cancel := context.WithTimeout(e.ctx(), 5*time.Second)
	defer cancel()
	infos, err := l.Streams(ctx)
	if err != nil {
		return // the next store operation reports an outage
	}
	for _, in := range infos {
		if _, hot := e.streams[in.Stream]; !hot && now.Sub(in.LastWrite) >= e.h.cfg.CacheTTL {
			if err := e.active.Expire(ctx, in.Stream); err != nil {
				return
			}
		}
	}
}

// janitor runs expireIdle periodically.
func (e *engine) janitor() {
	every := max(e.h.cfg.CacheTTL/4, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-e.h.ctx.Done():
			return
		case now := <-t.C:
			if !e.do(func() { e.expireIdle(now) }) {
				return
			}
		}
	}
}
