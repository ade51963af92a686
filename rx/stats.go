package rx

import (
	"sync/atomic"
	"time"
)

// Stats are a hub's running figures, for monitoring: package rxprom
// exports them to Prometheus. Gauges are read when Stats is called;
// counters count since the hub started.
type Stats struct {
	// Subscriptions is the number of open subscriptions (Go subscribers
	// and WebSocket subscriptions alike).
	Subscriptions int64
	// HotStreams is the number of streams this node holds hot: loaded and
	// kept up to date, or in a cluster followed from their owner. The
	// engine updates it after each item of its queue.
	HotStreams int64
	// Backlog is the number of items waiting in the engine's queue:
	// commits, subscriptions, loads and calls not yet started. A backlog
	// that keeps growing means the engine cannot keep up with the writes.
	Backlog int64
	// Deltas counts the deltas this node made from commits for the
	// streams it owns: one per stream and version, however many
	// subscribers receive it. Deltas of followed streams (received from their owner in
	// a cluster) are not counted here: their owner counts them.
	Deltas uint64
	// ColdLoads counts the streams loaded from the database because they
	// were cold (a first subscriber, a reload after a failure), not the
	// streams followed from another node.
	ColdLoads uint64
	// Broker is BrokerStats: the queues of messages for the other nodes.
	Broker BrokerStats
}

// Observer receives a hub's latencies as they happen. Its methods run on
// the caller's goroutine (the engine's included), so they must be quick
// and must not block: a histogram's Observe is. Set it with
// Hub.SetObserver.
type Observer interface {
	// ObserveSnapshot is called once per successful Subscribe with how
	// long it took: authorizing, listing the anchors of a list channel,
	// loading cold streams and reading the snapshot (or the changes since
	// a resumed version) of every anchor. The initial events are queued
	// to the subscriber when it is called.
	ObserveSnapshot(time.Duration)
}

// hubStats holds the counters behind Stats. The hub updates them with
// atomic operations only: no lock is taken for them on a hot path.
type hubStats struct {
	subs      atomic.Int64
	hot       atomic.Int64
	deltas    atomic.Uint64
	coldLoads atomic.Uint64
	observer  atomic.Pointer[observerBox]
	// committed is when the oldest commit of the batch being processed
	// was queued to the engine (engine goroutine only; zero outside a
	// batch and while a failed batch is retried).
	committed time.Time
}

// observerBox holds an Observer for atomic.Pointer.
type observerBox struct{ o Observer }

// Stats returns the hub's running figures. It takes the engine queue's
// lock once and never waits for the engine.
func (h *Hub) Stats() Stats {
	e := h.engine
	e.mu.Lock()
	backlog := int64(len(e.queue))
	e.mu.Unlock()
	return Stats{
		Subscriptions: h.stats.subs.Load(),
		HotStreams:    h.stats.hot.Load(),
		Backlog:       backlog,
		Deltas:        h.stats.deltas.Load(),
		ColdLoads:     h.stats.coldLoads.Load(),
		Broker:        h.BrokerStats(),
	}
}

// SetObserver makes o receive the hub's latencies from now on, replacing
// the previous observer; nil stops them.
func (h *Hub) SetObserver(o Observer) {
	if o == nil {
		h.stats.observer.Store(nil)
		return
	}
	h.stats.observer.Store(&observerBox{o})
}

// observeSnapshot reports a successful Subscribe that started at start.
func (h *Hub) observeSnapshot(start time.Time) {
	if b := h.stats.observer.Load(); b != nil {
		b.o.ObserveSnapshot(time.Since(start))
	}
}

// processAt processes a batch of commits whose oldest was queued at at:
// the deltas it makes carry at as their Event.Committed.
func (e *engine) processAt(ts []touch, at time.Time) {
	e.h.stats.committed = at
	e.process(ts)
	e.h.stats.committed = time.Time{}
	e.h.stats.hot.Store(int64(len(e.streams)))
}
