package rx_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/cache"
	"github.com/rxgorm/rxgorm/rx"
)

// timeoutStore is a node's real MongoStore whose next Apply, when armed,
// times out as a slow FerretDB does (TestWALKill9, seed
// 1379390606873911175): either before writing, or after the write landed
// in full or in part (the client gave up; the server went on).
type timeoutStore struct {
	*cache.MongoStore
	armed atomic.Int32 // 0 off; 1 fail before writing; 2 after writing
	reads atomic.Int32 // reads (Since, Snapshot) still to time out
	fired atomic.Int64
}

func (s *timeoutStore) readFails() bool {
	for {
		n := s.reads.Load()
		if n <= 0 {
			return false
		}
		if s.reads.CompareAndSwap(n, n-1) {
			s.fired.Add(1)
			return true
		}
	}
}

func (s *timeoutStore) Since(ctx context.Context, k cache.Stream, v uint64) ([]*cache.Instance, uint64, bool, error) {
	if s.readFails() {
		return nil, 0, false, fmt.Errorf("cache: mongo: since (injected): %w", context.DeadlineExceeded)
	}
	return s.MongoStore.Since(ctx, k, v)
}

func (s *timeoutStore) Snapshot(ctx context.Context, k cache.Stream) (cache.Snapshot, error) {
	if s.readFails() {
		return cache.Snapshot{}, fmt.Errorf("cache: mongo: snapshot (injected): %w", context.DeadlineExceeded)
	}
	return s.MongoStore.Snapshot(ctx, k)
}

func (s *timeoutStore) Apply(ctx context.Context, ws []cache.Write) ([]cache.Delta, error) {
	switch s.armed.Swap(0) {
	case 1:
		s.fired.Add(1)
		return nil, fmt.Errorf("cache: mongo: apply (injected): %w", context.DeadlineExceeded)
	case 2:
		s.fired.Add(1)
		_, err := s.MongoStore.Apply(ctx, ws)
		return nil, fmt.Errorf("cache: mongo: apply (injected after the write, %v): %w", err, context.DeadlineExceeded)
	}
	return s.MongoStore.Apply(ctx, ws)
}

// TestClusterStoreTimeoutConverges: the node serving every client (it owns
// their streams, two of them list clients over every chat) meets store
// timeouts while another node writes. Each time it falls back to a private
// cache, says so, and rejoins; in the end every client, kept or resumed by
// version, equals the database.
func TestClusterStoreTimeoutConverges(t *testing.T) {
	base := openSQLite(t)
	migrate(t, base)
	sd := seed(t)
	setup := seededWriter(t, base, rand.New(rand.NewPCG(sd, 1)), 5, 8)
	ts, logs, node0, writerNode := timeoutCluster(t, base)
	watch := node0.hub
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("seed %d; node0 logged:\n%s", sd, logs.String())
		}
	})
	var watchers []*watcher
	for i, cid := range setup.chats[:4] {
		uid := setup.users[i%len(setup.users)]
		watchers = append(watchers, &watcher{name: fmt.Sprintf("chat%d(u%d)", cid, uid), channel: "ChatChannel", params: ChatParams{ChatID: cid}, user: rx.User{ID: strconv.Itoa(int(uid))}, chatID: cid})
	}
	for _, uid := range setup.users[:2] {
		watchers = append(watchers, &watcher{name: fmt.Sprintf("list(u%d)", uid), channel: "ChatList", params: rx.NoParams{}, user: rx.User{ID: strconv.Itoa(int(uid))}})
	}
	for _, wt := range watchers {
		wt.start(t, watch, false)
	}
	stopAtCleanup(t, &watchers)
	ref := reopen(t, base)
	r := rand.New(rand.NewPCG(sd, 2))
	// The fallback's rejoin reloads every stream into the store, one at a
	// time, and the two list clients hold ~60 chat streams. On FerretDB's
	// SQLite backend, which scans a channel's whole collection for a
	// query, each reload took 0.6-1.9 s on a 2-core machine (a snapshot
	// read of ~250 ms, an apply of 0.7-1.9 s for 20-70 changed instances),
	// so a rejoin took up to 2.5 minutes (and failed 3 runs of 4 at 60 s).
	const within = 4 * time.Minute
	for round := 0; round < 3; round++ {
		w := &writer{db: writerNode.db, r: rand.New(rand.NewPCG(sd, uint64(10+round)))}
		if err := w.db.Model(&User{}).Order("id").Pluck("id", &w.users).Error; err != nil {
			t.Fatal(err)
		}
		w.refreshChats(t)
		stop := make(chan struct{})
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				w.step(t)
			}
		}()
		// The timeout lands on one of the next writes of the watching
		// node, at a random point of the storm.
		time.Sleep(time.Duration(50+r.IntN(300)) * time.Millisecond) // fault injection point
		ts.armed.Store(int32(1 + round%2))
		time.Sleep(time.Duration(300+r.IntN(700)) * time.Millisecond) // writes go on through fallback and rejoin
		close(stop)
		wg.Wait()
		t.Logf("round %d: %d timeouts injected", round, ts.fired.Load())
		waitConverged(t, ref, watchers, within)
		for _, wt := range watchers {
			wt.stop()
			wt.start(t, watch, true)
		}
		waitConverged(t, ref, watchers, within)
	}
	if ts.fired.Load() == 0 {
		t.Fatal("no timeout was injected")
	}
	if l := logs.String(); !strings.Contains(l, "CACHE STORE UNAVAILABLE") || !strings.Contains(l, "rejoins") {
		t.Fatalf("node0 must say it falls back and rejoins; it logged:\n%s", l)
	}
}

// TestClusterStoreTimeoutOnResume: a list client resumes by version on the
// node that owns its streams, and the store times out the first reads of
// its first anchor: the node falls back while the subscription attaches.
// The client must still get every later commit on that anchor (before, it
// was attached to the stream the fallback had just replaced, and heard
// nothing more), after the node rejoins too.
func TestClusterStoreTimeoutOnResume(t *testing.T) {
	base := clusterDB(t, []string{"a"}, []string{"one", "two", "three"})
	ts, logs, node0, other := timeoutCluster(t, base)
	watch := node0.hub
	var watchers []*watcher
	for _, name := range []string{"list1", "list2"} {
		wt := &watcher{name: name, channel: "ChatList", params: rx.NoParams{}, user: rx.User{ID: "1"}}
		wt.start(t, watch, false)
		watchers = append(watchers, wt)
	}
	stopAtCleanup(t, &watchers)
	ref := reopen(t, base)
	write := func(text string) {
		t.Helper()
		for _, cid := range []uint{1, 2, 3} {
			if err := other.db.Create(&Message{ChatID: cid, SenderID: 1, Text: text}).Error; err != nil {
				t.Fatal(err)
			}
		}
	}
	write("before")
	waitConverged(t, ref, watchers, convergeWithin)
	// list1 resumes while list2 keeps the streams hot; its first anchor's
	// Since and the snapshot that replaces it time out.
	watchers[0].stop()
	ts.reads.Store(2)
	watchers[0].start(t, watch, true)
	if ts.reads.Load() != 0 {
		t.Fatalf("%d injected timeouts left", ts.reads.Load())
	}
	write("degraded")
	waitConverged(t, ref, watchers, convergeWithin)
	for deadline := time.Now().Add(convergeWithin); !strings.Contains(logs.String(), "rejoins"); {
		if time.Now().After(deadline) {
			t.Fatalf("node0 did not rejoin; it logged:\n%s", logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	write("rejoined")
	waitConverged(t, ref, watchers, convergeWithin)
	if l := logs.String(); !strings.Contains(l, "CACHE STORE UNAVAILABLE") {
		t.Fatalf("node0 must say it falls back; it logged:\n%s", l)
	}
}
