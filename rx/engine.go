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
	// spare (owned by the loop goroutine) is the storage of the queue the
	// loop drained last, cleared, given back to the queue at the next
	// swap: commits then append to it instead of growing a new slice
	// each time.
	spare []item
	// spareBatch (engine goroutine only) is the last processed batch,
	// whose maps the next batch reuses (commit.go).
	spareBatch *batch
	wake       chan struct{}
	done       chan struct{}

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
	// vis tracks the WAL transactions handed over but not yet known
	// visible to new snapshots (wal.go, engine.ready).
	vis visibility
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
	at      time.Time // when touches were queued (stats.go)
}

// do queues f to run on the engine goroutine. It reports false after close.
func (e *engine) do(f func()) bool { return e.push(item{f: f}) }

func (e *engine) push(it item) bool {
	if it.f == nil {
		it.at = time.Now()
	}
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
		e.queue, e.spare = e.spare, nil
		closed := e.closed
		e.mu.Unlock()
		// Commits queued back to back are processed as one batch: their
		// rows are re-read once, and the batch still runs before any
		// function queued after them, so subscriptions and Wait keep
		// their order.
		var batch []touch
		var at time.Time // the batch's oldest commit
		for _, it := range q {
			if it.f == nil {
				if len(batch) == 0 {
					// One commit alone is processed from its own slice
					// (clipped: a second one appends to a copy).
					at, batch = it.at, slices.Clip(it.touches)
					continue
				}
				batch = append(batch, it.touches...)
				continue
			}
			if len(batch) > 0 {
				e.processAt(batch, at)
				batch = nil
			}
			it.f()
			e.h.stats.hot.Store(int64(len(e.streams)))
		}
		if len(batch) > 0 {
			e.processAt(batch, at)
		}
		if len(q) > 0 {
			clear(q) // drop the touches and functions it held
			e.spare = q[:0]
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

// hubContextKey is the key under which the hub's context holds the hub:
// work the hub starts on its own (the engine's reads among it) keeps it
// when readContext drops the cancellation.
type hubContextKey struct{}

func (e *engine) ctx() context.Context { return e.h.ctx }

func (e *engine) logf(format string, args ...any) {
	e.h.log.Error(fmt.Sprintf(format, args...))
}

// retryDelays are the waits before the second and third attempts at a
// batch whose database reads failed.
var retryDelays = []time.Duration{20 * time.Millisecond, 40 * time.Millisecond}

// process turns one commit's touches into deltas for every hot stream.
func (e *engine) process(ts []touch) {
	e.vis.add(ts)
	e.pruneUnseen(e.ctx())
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
