package rx_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/cache"
	"github.com/rxgorm/rxgorm/rx"
)

// Store faults in cluster mode (issue 20): a write that conflicts with
// another node's is not an outage; a node whose store is really gone serves
// its clients from a private cache, says so, and rejoins.

// nodeFaultStore is a node's real MongoStore with injected faults: a conflict
// on the next Apply, or every operation failing as if MongoDB were gone.
type nodeFaultStore struct {
	*cache.MongoStore
	conflict atomic.Bool // the next Apply returns a conflict
	down     atomic.Bool // every operation fails
	calls    atomic.Int64
}

var errStoreDown = errors.New("connection refused (injected: MongoDB is down)")

func (s *nodeFaultStore) fail() error {
	if s.down.Load() {
		s.calls.Add(1)
		return errStoreDown
	}
	return nil
}

func (s *nodeFaultStore) Apply(ctx context.Context, ws []cache.Write) ([]cache.Delta, error) {
	if s.conflict.CompareAndSwap(true, false) {
		return nil, &cache.ConflictError{Stream: ws[0].Stream, Err: errors.New("E11000 duplicate key error (injected)")}
	}
	if err := s.fail(); err != nil {
		return nil, err
	}
	return s.MongoStore.Apply(ctx, ws)
}

func (s *nodeFaultStore) Fill(ctx context.Context, k cache.Stream, ins []*cache.Instance) (uint64, error) {
	if err := s.fail(); err != nil {
		return 0, err
	}
	return s.MongoStore.Fill(ctx, k, ins)
}

func (s *nodeFaultStore) Snapshot(ctx context.Context, k cache.Stream) (cache.Snapshot, error) {
	if err := s.fail(); err != nil {
		return cache.Snapshot{}, err
	}
	return s.MongoStore.Snapshot(ctx, k)
}

func (s *nodeFaultStore) Since(ctx context.Context, k cache.Stream, v uint64) ([]*cache.Instance, uint64, bool, error) {
	if err := s.fail(); err != nil {
		return nil, 0, false, err
	}
	return s.MongoStore.Since(ctx, k, v)
}

func (s *nodeFaultStore) Expire(ctx context.Context, k cache.Stream) error {
	if err := s.fail(); err != nil {
		return err
	}
	return s.MongoStore.Expire(ctx, k)
}

func (s *nodeFaultStore) Streams(ctx context.Context) ([]cache.StreamInfo, error) {
	if err := s.fail(); err != nil {
		return nil, err
	}
	return s.MongoStore.Streams(ctx)
}

// nodeLog collects a node's log lines.
type nodeLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *nodeLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *nodeLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// faultCluster starts two nodes on SQLite, FerretDB and the shared Redis,
// node 0's store faulty, with one chat watched by two users on each node,
// node 0 subscribing first (it owns the chat).
func faultCluster(t *testing.T) (*testCluster, *nodeFaultStore, *nodeLog, []*watcher) {
	base := clusterDB(t, []string{"a", "b"}, []string{"x"})
	fs := &nodeFaultStore{}
	logs := &nodeLog{}
	c := newCluster(t, base, redisAddr(), "rxfault")
	c.wrap = wrapNode(0, func(s *cache.MongoStore) cache.Store {
		fs.MongoStore = s
		return fs
	})
	c.logger = logNode(0, logs)
	var ws []*watcher
	for i := 0; i < 2; i++ {
		c.start(t, i)
		for _, u := range []string{"1", "2"} {
			wt := &watcher{name: fmt.Sprintf("chat1(u%s)@node%d", u, i), channel: "ChatChannel", params: ChatParams{ChatID: 1}, user: rx.User{ID: u}, chatID: 1}
			wt.start(t, c.nodes[i].hub, false)
			ws = append(ws, wt)
		}
	}
	return c, fs, logs, ws
}

// A write that conflicts with another node's is resolved by reloading the
// stream: the node does not fall back to a private cache, and every client
// on both nodes receives the commit and the ones after it.
func TestClusterStoreConflictIsNotAnOutage(t *testing.T) {
	c, fs, logs, ws := faultCluster(t)
	ref := reopen(t, c.base)
	fs.conflict.Store(true)
	if err := c.nodes[0].db.Create(&Message{ChatID: 1, SenderID: 2, Text: "conflicted"}).Error; err != nil {
		t.Fatal(err)
	}
	waitConverged(t, ref, ws, convergeWithin)
	if fs.conflict.Load() {
		t.Fatal("the conflict was never injected")
	}
	if err := c.nodes[1].db.Create(&Message{ChatID: 1, SenderID: 1, Text: "after"}).Error; err != nil {
		t.Fatal(err)
	}
	waitConverged(t, ref, ws, convergeWithin)
	if l := logs.String(); strings.Contains(strings.ToLower(l), "store unavailable") || !strings.Contains(l, "conflicted") {
		t.Fatalf("a conflict must be logged as one, not as an outage; node0 logged:\n%s", l)
	}
	for _, wt := range ws {
		wt.stop()
	}
}

// A node whose store is gone says so, serves its clients (and new ones)
// fresh state from the database while the other node takes its streams
// over, and rejoins when the store is back.
func TestClusterStoreOutageRejoins(t *testing.T) {
	c, fs, logs, ws := faultCluster(t)
	ref := reopen(t, c.base)
	fs.down.Store(true)
	for i, n := range c.nodes {
		if err := n.db.Create(&Message{ChatID: 1, SenderID: 1, Text: fmt.Sprint("during, node", i)}).Error; err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, ref, ws, convergeWithin)
	if !strings.Contains(logs.String(), "CACHE STORE UNAVAILABLE") {
		t.Fatalf("node0 must say loudly that it serves a private cache; it logged:\n%s", logs.String())
	}
	// A new subscriber of the degraded node gets the database's state.
	late := &watcher{name: "late chat1(u2)@node0", channel: "ChatChannel", params: ChatParams{ChatID: 1}, user: rx.User{ID: "2"}, chatID: 1}
	late.start(t, c.nodes[0].hub, false)
	ws = append(ws, late)
	waitConverged(t, ref, ws, convergeWithin)
	fs.down.Store(false)
	for deadline := time.Now().Add(convergeWithin); !strings.Contains(logs.String(), "rejoins"); {
		if time.Now().After(deadline) {
			t.Fatalf("node0 did not rejoin; it logged:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i, n := range c.nodes {
		if err := n.db.Create(&Message{ChatID: 1, SenderID: 2, Text: fmt.Sprint("after, node", i)}).Error; err != nil {
			t.Fatal(err)
		}
	}
	waitConverged(t, ref, ws, convergeWithin)
	// Rejoined: node0's clients resume on node1 and node1's on node0 from
	// the versions they hold, and end at the committed state.
	for _, wt := range ws {
		wt.stop()
		to := 0
		if strings.HasSuffix(wt.name, "node0") {
			to = 1
		}
		wt.start(t, c.nodes[to].hub, true)
	}
	if err := c.nodes[1].db.Create(&Message{ChatID: 1, SenderID: 1, Text: "last"}).Error; err != nil {
		t.Fatal(err)
	}
	waitConverged(t, ref, ws, convergeWithin)
	for _, wt := range ws {
		wt.stop()
	}
}

// A stream whose lease another node holds without ever loading it (a
// silent owner) is served by the node itself once the bounded wait for the
// owner (2 × LeaseTTL + 5 s) is over: Subscribe returns a snapshot, and
// commits reach the subscriber (issue 20: a Subscribe waiting on an owner
// must not wait forever). Before, Subscribe failed with a cold-stream error.
func TestClusterSilentOwnerBounded(t *testing.T) {
	base := clusterDB(t, []string{"a"}, []string{"known", "ghosted"})
	logs := &nodeLog{}
	c := newCluster(t, base, redisAddr(), "rxsilent")
	c.logger = func(int) *slog.Logger { return slog.New(slog.NewTextHandler(logs, nil)) }
	n := c.start(t, 0)
	ref := reopen(t, base)
	// Chat 1's lease names the channel's stream key; a ghost takes chat
	// 2's for a minute and never marks it ready.
	known := &watcher{name: "chat1", channel: "ChatChannel", params: ChatParams{ChatID: 1}, user: rx.User{ID: "1"}, chatID: 1}
	known.start(t, n.hub, false)
	keys, err := n.redis.Keys(t.Context(), c.prefix+"lease:*").Result()
	if err != nil || len(keys) != 1 || !strings.HasSuffix(keys[0], ":1") {
		t.Fatalf("lease keys after one subscription: %v, %v", keys, err)
	}
	ghost := strings.TrimSuffix(keys[0], "1") + "2"
	if err := n.redis.Set(t.Context(), ghost, "ghost", time.Minute).Err(); err != nil {
		t.Fatal(err)
	}
	wt := &watcher{name: "chat2", channel: "ChatChannel", params: ChatParams{ChatID: 2}, user: rx.User{ID: "1"}, chatID: 2}
	wt.start(t, n.hub, false) // fails the test on an error
	if wt.sub == nil {
		t.Fatal("no subscription")
	}
	if err := n.db.Create(&Message{ChatID: 2, SenderID: 1, Text: "after"}).Error; err != nil {
		t.Fatal(err)
	}
	waitConverged(t, ref, []*watcher{known, wt}, convergeWithin)
	if !strings.Contains(logs.String(), "did not load it in time") {
		t.Errorf("the node must say it serves the stream without the lease; it logged:\n%s", logs.String())
	}
	if h, _ := n.redis.Get(t.Context(), ghost).Result(); h != "ghost" {
		t.Errorf("lease of the silent owner's stream: %q, want it left to the ghost", h)
	}
	known.stop()
	wt.stop()
}
