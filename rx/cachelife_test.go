package rx_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/cache"
	"github.com/rxgorm/rxgorm/rx"
)

// faultyStore is the real memory store with a switch that makes every call
// fail, as an unreachable database would, and a record of expiries.
type faultyStore struct {
	*cache.MemoryStore
	down    atomic.Bool
	calls   atomic.Int64
	mu      sync.Mutex
	expired []cache.Stream
}

var errDown = errors.New("store unreachable")

func (f *faultyStore) fail() error {
	f.calls.Add(1)
	if f.down.Load() {
		return errDown
	}
	return nil
}

func (f *faultyStore) Fill(ctx context.Context, s cache.Stream, in []*cache.Instance) (uint64, error) {
	if err := f.fail(); err != nil {
		return 0, err
	}
	return f.MemoryStore.Fill(ctx, s, in)
}

func (f *faultyStore) Apply(ctx context.Context, w []cache.Write) ([]cache.Delta, error) {
	if err := f.fail(); err != nil {
		return nil, err
	}
	return f.MemoryStore.Apply(ctx, w)
}

func (f *faultyStore) Snapshot(ctx context.Context, s cache.Stream) (cache.Snapshot, error) {
	if err := f.fail(); err != nil {
		return cache.Snapshot{}, err
	}
	return f.MemoryStore.Snapshot(ctx, s)
}

func (f *faultyStore) Since(ctx context.Context, s cache.Stream, v uint64) ([]*cache.Instance, uint64, bool, error) {
	if err := f.fail(); err != nil {
		return nil, 0, false, err
	}
	return f.MemoryStore.Since(ctx, s, v)
}

func (f *faultyStore) Expire(ctx context.Context, s cache.Stream) error {
	if err := f.fail(); err != nil {
		return err
	}
	f.mu.Lock()
	f.expired = append(f.expired, s)
	f.mu.Unlock()
	return f.MemoryStore.Expire(ctx, s)
}

func TestCacheTTL(t *testing.T) {
	db := openSQLite(t)
	migrate(t, db)
	store := &faultyStore{MemoryStore: cache.NewMemory(cache.MemoryOptions{})}
	h, err := rx.New(db, rx.Config{Store: store, CacheTTL: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	h.Register(&ChatChannel{})
	db.Create(&Chat{Title: "x"})
	db.Create(&Chat{Title: "y"})
	ctx := context.Background()
	sub, err := h.Subscribe(ctx, "ChatChannel", ChatParams{ChatID: 1}, rx.User{}, rx.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Chat 2 is loaded, then left without subscribers: once the TTL sweep
	// has expired it, the sweep has also passed over chat 1.
	if _, err := h.Snapshot(ctx, "ChatChannel", ChatParams{ChatID: 2}, rx.User{}); err != nil {
		t.Fatal(err)
	}
	expired := func() []string {
		store.mu.Lock()
		defer store.mu.Unlock()
		var anchors []string
		for _, s := range store.expired {
			anchors = append(anchors, s.Anchor)
		}
		return anchors
	}
	waitFor(t, func() bool { return slices.Contains(expired(), "2") })
	if slices.Contains(expired(), "1") {
		t.Fatal("a stream with a subscriber expired")
	}
	sub.Close()
	waitFor(t, func() bool { return slices.Contains(expired(), "1") })
	store.mu.Lock()
	for _, s := range store.expired {
		if !strings.HasPrefix(s.Channel, "ChatChannel@") {
			t.Errorf("expired %v", s)
		}
	}
	store.mu.Unlock()
	// A new subscriber gets it back, loaded from the database.
	db.Model(&Chat{ID: 1}).Update("title", "while cold")
	js, err := h.Snapshot(ctx, "ChatChannel", ChatParams{ChatID: 1}, rx.User{})
	if err != nil || !strings.Contains(string(js), "while cold") {
		t.Fatalf("%s %v", js, err)
	}
}

// A persistent store outlives the process: the next process reconciles the
// stream with the database, and a client resumes with only what it missed,
// even what was committed while no server was broadcasting.
func TestResumeAcrossRestart(t *testing.T) {
	db := openSQLite(t)
	migrate(t, db)
	store := cache.NewMemory(cache.MemoryOptions{})
	h1, _ := rx.New(db, rx.Config{Store: store})
	h1.Register(&ChatChannel{})
	db.Create(&User{Name: "ann"})
	db.Create(&Chat{Title: "x"})
	db.Create(&Message{ChatID: 1, SenderID: 1, Text: "a"})
	db.Create(&Message{ChatID: 1, SenderID: 1, Text: "b"})
	ctx := context.Background()
	user := rx.User{ID: "1"}
	sub, _ := h1.Subscribe(ctx, "ChatChannel", ChatParams{ChatID: 1}, user, rx.SubscribeOptions{})
	st, _ := h1.NewState("ChatChannel", user)
	st.Apply(next(t, sub))
	h1.Close() // the server dies

	// Written while no server runs (a crash between commit and broadcast
	// looks the same).
	plain := reopen(t, db)
	plain.Delete(&Message{}, 1)
	plain.Model(&Message{ID: 2}).Update("text", "b2")

	db2 := reopen(t, db)
	h2, _ := rx.New(db2, rx.Config{Store: store})
	defer h2.Close()
	h2.Register(&ChatChannel{})
	sub2, err := h2.Subscribe(ctx, "ChatChannel", ChatParams{ChatID: 1}, user, rx.SubscribeOptions{Since: st.Versions()})
	if err != nil {
		t.Fatal(err)
	}
	ev := next(t, sub2)
	if ev.Snapshot {
		t.Fatalf("want an incremental resume, got a full snapshot: %s", dump(ev))
	}
	got := map[string]bool{}
	for _, in := range ev.Instances {
		got[in.Type+in.ID+map[bool]string{true: "-", false: "+"}[in.Deleted]] = true
	}
	if !got["Message1-"] || !got["Message2+"] || !got["Chat1+"] || len(ev.Instances) != 3 {
		t.Fatalf("resume: %s", dump(ev))
	}
	st.Apply(ev)
	want, _ := h2.Snapshot(ctx, "ChatChannel", ChatParams{ChatID: 1}, user)
	if js, _ := st.JSON(); !bytes.Equal(js, want) {
		t.Fatalf("state after resume\n got %s\nwant %s", js, want)
	}
}

// ChatV2 is the chats table after a migration that added a field.
type ChatV2 struct {
	ID       uint   `gorm:"primaryKey" json:"id"`
	Title    string `json:"title"`
	Archived bool   `json:"archived"`
}

func (ChatV2) TableName() string { return "chats" }

type ChatChannelV2 struct{ rx.Channel[ChatV2, ChatParams] }

func (ChatChannelV2) ChannelName() string                                  { return "ChatChannel" }
func (ChatChannelV2) Authorize(context.Context, rx.User, ChatParams) error { return nil }

// After a migration the old documents are not served: the stream is rebuilt
// in the new shape and clients get a full snapshot.
func TestSchemaChange(t *testing.T) {
	db := openSQLite(t)
	migrate(t, db)
	store := cache.NewMemory(cache.MemoryOptions{})
	h1, _ := rx.New(db, rx.Config{Store: store})
	h1.Register(&ChatChannel{})
	db.Create(&Chat{Title: "x"})
	ctx := context.Background()
	sub, _ := h1.Subscribe(ctx, "ChatChannel", ChatParams{ChatID: 1}, rx.User{}, rx.SubscribeOptions{})
	v := next(t, sub).Version
	h1.Close()

	db2 := reopen(t, db)
	if err := db2.AutoMigrate(&ChatV2{}); err != nil {
		t.Fatal(err)
	}
	h2, _ := rx.New(db2, rx.Config{Store: store})
	defer h2.Close()
	if err := h2.Register(&ChatChannelV2{}); err != nil {
		t.Fatal(err)
	}
	sub2, err := h2.Subscribe(ctx, "ChatChannel", ChatParams{ChatID: 1}, rx.User{}, rx.SubscribeOptions{Since: map[string]uint64{"1": v}})
	if err != nil {
		t.Fatal(err)
	}
	ev := next(t, sub2)
	if !ev.Snapshot || len(ev.Instances) != 1 || ev.Instances[0].Fields["archived"] == nil || ev.Instances[0].Fields["members"] != nil {
		t.Fatalf("want a full snapshot in the new shape: %s", dump(ev))
	}
}

// When the store fails, subscribers keep receiving deltas (from a memory
// fallback rebuilt from the database) without seeing an error, the outage
// is logged once, and on recovery the streams are rebuilt in the store.
func TestStoreOutage(t *testing.T) {
	db := openSQLite(t)
	migrate(t, db)
	store := &faultyStore{MemoryStore: cache.NewMemory(cache.MemoryOptions{})}
	var logs bytes.Buffer
	var logMu sync.Mutex
	logger := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		logMu.Lock()
		defer logMu.Unlock()
		return logs.Write(p)
	}), nil))
	h, _ := rx.New(db, rx.Config{Store: store, Logger: logger, ProbeInterval: 50 * time.Millisecond})
	defer h.Close()
	h.Register(&ChatChannel{})
	db.Create(&Chat{Title: "x"})
	ctx := context.Background()
	sub, _ := h.Subscribe(ctx, "ChatChannel", ChatParams{ChatID: 1}, rx.User{}, rx.SubscribeOptions{})
	st, _ := h.NewState("ChatChannel", rx.User{})
	st.Apply(next(t, sub))

	store.down.Store(true)
	for i := 0; i < 20; i++ {
		db.Create(&Message{ChatID: 1, Text: "during outage"})
	}
	// A new subscriber during the outage is served too.
	sub2, err := h.Subscribe(ctx, "ChatChannel", ChatParams{ChatID: 1}, rx.User{}, rx.SubscribeOptions{})
	if err != nil {
		t.Fatalf("subscribe during outage: %v", err)
	}
	h.Wait(ctx)
	for len(sub.Events()) > 0 {
		st.Apply(<-sub.Events())
	}
	want, err := h.Snapshot(ctx, "ChatChannel", ChatParams{ChatID: 1}, rx.User{})
	if err != nil {
		t.Fatal(err)
	}
	if js, _ := st.JSON(); !bytes.Equal(js, want) || strings.Count(string(js), "during outage") != 20 {
		t.Fatalf("during outage\n got %s\nwant %s", js, want)
	}
	if ev := next(t, sub2); !ev.Snapshot {
		t.Fatal("new subscriber got no snapshot")
	}
	logMu.Lock()
	n := strings.Count(logs.String(), "cache store unavailable")
	logMu.Unlock()
	if n != 1 {
		t.Fatalf("outage logged %d times, want once:\n%s", n, logs.String())
	}

	store.down.Store(false)
	waitFor(t, func() bool {
		logMu.Lock()
		defer logMu.Unlock()
		return strings.Contains(logs.String(), "cache store is back")
	})
	before := store.calls.Load()
	db.Create(&Message{ChatID: 1, Text: "after"})
	h.Wait(ctx)
	if store.calls.Load() == before {
		t.Fatal("writes do not reach the recovered store")
	}
	for len(sub.Events()) > 0 {
		st.Apply(<-sub.Events())
	}
	want, _ = h.Snapshot(ctx, "ChatChannel", ChatParams{ChatID: 1}, rx.User{})
	if js, _ := st.JSON(); !bytes.Equal(js, want) || !strings.Contains(string(js), "after") {
		t.Fatalf("after recovery\n got %s\nwant %s", js, want)
	}
	if sub.Err() != nil {
		t.Fatalf("subscriber saw an error: %v", sub.Err())
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
