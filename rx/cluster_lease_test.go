package rx_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/cache"
	"github.com/rxgorm/rxgorm/rx"
)

// fillGate holds a node's loads while the test says so: the store reads
// and fills that end each (a load reconciles the store's snapshot, or fills
// a cold stream).
type fillGate struct {
	*cache.MongoStore
	held atomic.Pointer[chan struct{}] // set: Fill and Snapshot wait until it is closed
}

func (s *fillGate) wait() {
	if h := s.held.Load(); h != nil {
		select {
		case <-*h:
		case <-time.After(20 * time.Second):
		}
	}
}

func (s *fillGate) Fill(ctx context.Context, k cache.Stream, ins []*cache.Instance) (uint64, error) {
	s.wait()
	return s.MongoStore.Fill(ctx, k, ins)
}

func (s *fillGate) Snapshot(ctx context.Context, k cache.Stream) (cache.Snapshot, error) {
	s.wait()
	return s.MongoStore.Snapshot(ctx, k)
}

// hold makes the node's loads wait until the returned func is called.
func (s *fillGate) hold() (release func()) {
	ch := make(chan struct{})
	s.held.Store(&ch)
	return func() {
		s.held.Store(nil)
		close(ch)
	}
}

// A load that takes longer than LeaseTTL on the node that took the
// stream's lease (issue 20's hang under CPU starvation): the node must
// keep the lease until the load ends, and the other node must wait for it
// rather than take the stream. Before, nothing renewed the lease during the
// load (a cold load, or a rehome, which forgets the stream's role before
// hot takes the lease again): it ran out, the other node took the stream
// (its renewal round, or its wait for the owner, found the lease free),
// and the stream bounced between the nodes; under starvation each move
// held both engines for up to 2 × LeaseTTL + 5 s, without a log line.
func TestClusterLeaseHeldThroughSlowLoad(t *testing.T) {
	base := clusterDB(t, []string{"a", "b"}, []string{"x", "y"})
	gate := &fillGate{}
	c := newCluster(t, base, redisAddr(), "rxlease")
	// leaseTTL: 1 s; a held load lasts 3 of them.
	c.wrap = wrapNode(0, func(s *cache.MongoStore) cache.Store {
		gate.MongoStore = s
		return gate
	})
	c.start(t, 0)
	c.start(t, 1)
	const ttl, holdFor = time.Second, 3 * time.Second
	ctx := context.Background()
	leaseOf := func(chat int) string {
		return rx.ViewStream(c.nodes[1].hub, "ChatChannel", fmt.Sprint(chat)).Lease
	}
	holder := func(key string) string {
		hs, err := c.nodes[1].broker.Holders(ctx, []string{key})
		if err != nil {
			t.Fatal(err)
		}
		return hs[0]
	}
	// keepsLease polls the lease for d: node0 must hold it throughout.
	keepsLease := func(what, key string, d time.Duration) {
		t.Helper()
		for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
			if h := holder(key); h != "node0" {
				t.Errorf("%s: the lease went to %q during node0's load (the bounce of issue 20)", what, h)
				return
			}
		}
	}
	type subResult struct {
		sub *rx.Subscription
		err error
	}
	subscribe := func(node, chat int) <-chan subResult {
		ch := make(chan subResult, 1)
		go func() {
			sub, err := c.nodes[node].hub.Subscribe(ctx, "ChatChannel", ChatParams{ChatID: uint(chat)}, rx.User{ID: "1"}, rx.SubscribeOptions{})
			ch <- subResult{sub, err}
		}()
		return ch
	}
	returned := func(what string, ch <-chan subResult) *rx.Subscription {
		t.Helper()
		select {
		case r := <-ch:
			if r.err != nil {
				t.Fatalf("%s: %v", what, r.err)
			}
			return r.sub
		case <-time.After(20 * time.Second):
			t.Fatalf("%s has not returned in 20 s (the hang of issue 20)", what)
		}
		return nil
	}
	roles := func(what string, chat int) {
		t.Helper()
		v0 := rx.ViewStream(c.nodes[0].hub, "ChatChannel", fmt.Sprint(chat))
		v1 := rx.ViewStream(c.nodes[1].hub, "ChatChannel", fmt.Sprint(chat))
		if !v0.Hot || !v0.Owned || !v1.Hot || v1.Owned {
			t.Errorf("%s: node0 hot %v owned %v, node1 hot %v owned %v; want node0 the owner, node1 following", what, v0.Hot, v0.Owned, v1.Hot, v1.Owned)
		}
	}

	// A cold load: node 0 takes the lease and loads; node 1 subscribes
	// meanwhile and waits for it.
	lease2 := leaseOf(2)
	release := gate.hold()
	on0 := subscribe(0, 2)
	for end := time.Now().Add(10 * time.Second); holder(lease2) != "node0"; time.Sleep(5 * time.Millisecond) {
		if time.Now().After(end) {
			release()
			t.Fatal("node0 did not take the lease of chat 2")
		}
	}
	on1 := subscribe(1, 2)
	keepsLease("cold load", lease2, holdFor)
	release()
	returned("node0's Subscribe to chat 2", on0).Close()
	returned("node1's Subscribe to chat 2", on1).Close()
	roles("cold load", 2)

	// A reload (a renewal round's or a reconcile's rehome) of a stream
	// both nodes' subscribers hold.
	w0 := watchChat1(t, c, 0) // node 0 owns the chat
	w1 := watchChat1(t, c, 1)
	roles("before the reload", 1)
	lease1 := leaseOf(1)
	release = gate.hold()
	done := make(chan struct{})
	go func() {
		rx.Rehome(c.nodes[0].hub, "ChatChannel", "1")
		close(done)
	}()
	keepsLease("reload", lease1, holdFor)
	release()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("node0's reload has not ended in 20 s")
	}
	// Two renewal rounds, then the roles and a commit reaching both.
	time.Sleep(ttl)
	roles("after the reload", 1)
	ref := reopen(t, base)
	if err := c.nodes[1].db.Model(&Message{ID: 1}).Update("text", "edited").Error; err != nil {
		t.Fatal(err)
	}
	waitConverged(t, ref, []*watcher{w0, w1}, convergeWithin)
	for i, n := range c.nodes {
		if m := rx.LeaseMoves(n.hub); m != 0 {
			t.Errorf("node%d: %d changes of owner, want none", i, m)
		}
	}
	w0.stop()
	w1.stop()
}
