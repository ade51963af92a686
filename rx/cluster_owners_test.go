package rx_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rxgorm/rxgorm/cache"
)

// gateStore holds a node's store writes while the test says so.
type gateStore struct {
	*cache.MongoStore
	held atomic.Pointer[chan struct{}] // set: Apply waits until it is closed
}

func (s *gateStore) Apply(ctx context.Context, ws []cache.Write) ([]cache.Delta, error) {
	if h := s.held.Load(); h != nil {
		select {
		case <-*h:
		case <-time.After(20 * time.Second):
		}
	}
	return s.MongoStore.Apply(ctx, ws)
}

// Two nodes take themselves for a stream's owner at once, as after a
// Redis outage (issue 20): the leases came back empty and one node took the
// stream's while the other, not yet aware, still held it as its own. Both
// apply every commit, the stale owner its own, the new owner from the
// touches, and the stale owner writes the store first: the new owner's
// write of the same change changes nothing. Its subscribers must get the
// change all the same (before, they never did unless a later commit moved
// the stream again: TestClusterRedisOutageConcurrentWrites's subscriber on
// node 0 that missed the last deltas, seed 8480564525035404179).
func TestClusterSameWriteOfTwoOwners(t *testing.T) {
	base := clusterDB(t, []string{"a", "b"}, []string{"x"})
	gate := &gateStore{}
	c := newCluster(t, base, redisAddr(), "rxowners")
	// No renewal within the test: the stale owner does not notice.
	c.leaseTTL = time.Minute
	c.wrap = wrapNode(1, func(s *cache.MongoStore) cache.Store {
		gate.MongoStore = s
		return gate
	})
	c.start(t, 0)
	w0 := watchChat1(t, c, 0) // node 0 owns the chat
	c.start(t, 1)
	// The lease goes, as with Redis's data; node 1's subscriber makes it
	// take the stream.
	rc := redis.NewClient(&redis.Options{Addr: c.redis})
	defer rc.Close()
	ctx := context.Background()
	keys, err := rc.Keys(ctx, c.prefix+"lease:*").Result()
	if err != nil || len(keys) != 1 {
		t.Fatalf("lease keys %v: %v", keys, err)
	}
	if err := rc.Del(ctx, keys...).Err(); err != nil {
		t.Fatal(err)
	}
	w1 := watchChat1(t, c, 1)
	if h, err := rc.Get(ctx, keys[0]).Result(); err != nil || h != "node1" {
		t.Fatalf("lease held by %q (%v), want node1", h, err)
	}
	// Node 0 writes first: node 1's writes wait until node 0's subscriber
	// has the commit.
	ref := reopen(t, base)
	held := make(chan struct{})
	gate.held.Store(&held)
	if err := c.nodes[0].db.Model(&Message{ID: 1}).Update("text", "edited").Error; err != nil {
		t.Fatal(err)
	}
	waitConverged(t, ref, []*watcher{w0}, convergeWithin)
	close(held)
	waitConverged(t, ref, []*watcher{w0, w1}, convergeWithin)
	// And the next commit reaches both.
	if err := c.nodes[0].db.Model(&Message{ID: 1}).Update("text", "again").Error; err != nil {
		t.Fatal(err)
	}
	waitConverged(t, ref, []*watcher{w0, w1}, convergeWithin)
	w0.stop()
	w1.stop()
}
