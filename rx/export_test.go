package rx

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"
)

// HoldRetries makes h's engine hand each retry of a failed batch to the
// returned channel instead of scheduling it after retryDelays: the test
// calls it (it queues the attempt on the engine) when it chooses, so that
// what runs before the retry does not depend on timing.
func HoldRetries(h *Hub) <-chan func() {
	ch := make(chan func(), 16)
	_ = h.engine.call(context.Background(), func() {
		h.engine.retryAfter = func(_ time.Duration, f func()) { ch <- f }
	})
	return ch
}

// StreamView is a node's view of one of its streams, for the diagnostics
// of a test whose subscriber did not converge.
type StreamView struct {
	// Hot: the engine holds the stream; Owned: as its owner (else it
	// follows it); Parked: waiting for a reload to succeed.
	Hot, Owned, Parked bool
	// Version is the last version the engine handed to the stream's
	// subscribers; Store the stream's version in the store.
	Version, Store uint64
	// Subs is the number of subscribers.
	Subs int
	// Lease is the stream's lease key (under the broker's prefix).
	Lease string
	// StoreErr is the error reading the store's version, if any.
	StoreErr error
}

// ViewStream returns h's view of the stream of channel's anchor.
func ViewStream(h *Hub, channel, anchor string) StreamView {
	var v StreamView
	_ = h.engine.call(context.Background(), func() {
		e := h.engine
		h.mu.RLock()
		def := h.channels[channel]
		h.mu.RUnlock()
		if def == nil {
			return
		}
		k := storeKey(def, anchor)
		v.Lease = leaseKey(k)
		if s := e.streams[k]; s != nil {
			v.Hot, v.Owned, v.Version, v.Subs = true, s.remote == nil, s.version, len(s.subs)
		}
		for s := range e.parked {
			if s.key == k {
				v.Parked, v.Version, v.Subs = true, s.version, len(s.subs)
			}
		}
		v.Store, v.StoreErr = e.storeVersion(context.Background(), k)
	})
	return v
}

// BrokerDown reports whether b takes Redis for unreachable (its
// subscription connection failed and has not been confirmed since).
func BrokerDown(b *RedisBroker) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.down
}

// Rehome re-establishes h's stream of channel's anchor on h's engine, as
// a renewal round or a reconcile does, and returns when it is done.
func Rehome(h *Hub, channel, anchor string) {
	_ = h.engine.call(context.Background(), func() {
		h.mu.RLock()
		def := h.channels[channel]
		h.mu.RUnlock()
		if def == nil {
			return
		}
		if s := h.engine.streams[storeKey(def, anchor)]; s != nil {
			h.engine.rehome(s)
		}
	})
}

// LeaseMoves returns how many changes of a stream's owner h's renewal
// rounds have found.
func LeaseMoves(h *Hub) int64 {
	if h.cluster == nil {
		return 0
	}
	return h.cluster.moved.Load()
}

// HubContext reports whether ctx is, or derives from, a hub's own context:
// the engine's reads run on it, a writer's and a test's do not.
func HubContext(ctx context.Context) bool { return ctx.Value(hubContextKey{}) != nil }

// OnRowRead calls f for each one-row read the engine makes on db (or a
// session of it) straight through the connection pool, which GORM's
// callbacks do not see, until the test ends: f gets the read's context,
// table, SQL and arguments, and returns the SQL to run instead.
func OnRowRead(t testing.TB, db *gorm.DB, f func(ctx context.Context, table, sql string, vars []any) string) {
	rowReadMu.Lock()
	defer rowReadMu.Unlock()
	var hooks []rowReadHook
	if v, ok := rowReadHooks.Load(db.Dialector); ok {
		hooks = v.([]rowReadHook)
	}
	rowReadHooks.Store(db.Dialector, append(slices.Clip(hooks), f))
	t.Cleanup(func() { rowReadHooks.Delete(db.Dialector) })
}

var rowReadMu sync.Mutex

// SetWALWakeMax makes the WAL receive wait up to d before it looks at the
// status updates (200 ms), until the test ends.
func SetWALWakeMax(t testing.TB, d time.Duration) {
	old := walWakeMax
	walWakeMax = d
	t.Cleanup(func() { walWakeMax = old })
}
