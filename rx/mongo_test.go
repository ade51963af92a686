package rx_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/cache"
	"github.com/rxgorm/rxgorm/cache/mongotest"
	"github.com/rxgorm/rxgorm/rx"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"gorm.io/gorm"
)

// The engine on a real MongoDB wire server (FerretDB, or RXGORM_MONGO_URI).

var mongoDBs atomic.Int64

func mongoStore(t *testing.T, uri string) (*cache.MongoStore, *mongo.Database) {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(2 * time.Second).SetTimeout(3 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })
	db := client.Database(fmt.Sprintf("rxengine_%d_%d", time.Now().UnixNano()%1e9, mongoDBs.Add(1)))
	st, err := cache.NewMongo(context.Background(), db, cache.MongoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return st, db
}

// countQueries counts SELECTs on a table through db.
func countQueries(t testing.TB, db *gorm.DB, table string) *atomic.Int64 {
	var n atomic.Int64
	onQuery(t, db, "test:count_"+table, func(_ context.Context, tb string) string {
		if tb == table {
			n.Add(1)
		}
		return tb
	})
	return &n
}

// Concurrent subscribers of a cold stream: the first load builds it, the
// others wait for that build and do not query the database again.
func TestConcurrentColdLoads(t *testing.T) {
	for _, name := range []string{"memory", "mongo"} {
		t.Run(name, func(t *testing.T) {
			db := openSQLite(t)
			migrate(t, db)
			cfg := rx.Config{}
			if name == "mongo" {
				cfg.Store, _ = mongoStore(t, mongotest.Start(t))
			}
			h, err := rx.New(db, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			h.Register(&ChatChannel{})
			for c := uint(1); c <= 2; c++ {
				db.Create(&Chat{Title: "x"})
				for i := 0; i < 20; i++ {
					db.Create(&Message{ChatID: c, Text: "m"})
				}
			}
			chats := countQueries(t, db, "chats")
			messages := countQueries(t, db, "messages")
			ctx := context.Background()
			// What one load of a cold stream costs (chat 2, same shape).
			one, err := h.Subscribe(ctx, "ChatChannel", ChatParams{ChatID: 2}, rx.User{}, rx.SubscribeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			one.Close()
			wantChats, wantMessages := chats.Swap(0), messages.Swap(0)
			var wg sync.WaitGroup
			errs := make(chan error, 10)
			for i := 0; i < 10; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					sub, err := h.Subscribe(ctx, "ChatChannel", ChatParams{ChatID: 1}, rx.User{}, rx.SubscribeOptions{})
					if err != nil {
						errs <- err
						return
					}
					if ev := <-sub.Events(); !ev.Snapshot || len(ev.Instances) != 21 {
						errs <- fmt.Errorf("snapshot of %d instances", len(ev.Instances))
					}
					sub.Close()
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			if c, m := chats.Load(), messages.Load(); c != wantChats || m != wantMessages {
				t.Fatalf("10 concurrent loads queried chats %d and messages %d times; one load takes %d and %d", c, m, wantChats, wantMessages)
			}
		})
	}
}

// The MongoDB server stops in the middle of a run: subscribers keep getting
// every change without seeing an error; when it returns the streams are
// rebuilt in it and a new process resumes from it.
func TestMongoOutageAndRecovery(t *testing.T) {
	srv := mongotest.NewServer(t)
	store, _ := mongoStore(t, srv.URI())
	db := openSQLite(t)
	migrate(t, db)
	h, err := rx.New(db, rx.Config{Store: store, ProbeInterval: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	h.Register(&ChatChannel{})
	db.Create(&Chat{Title: "x"})
	ctx := context.Background()
	user := rx.User{ID: "1"}
	sub, err := h.Subscribe(ctx, "ChatChannel", ChatParams{ChatID: 1}, user, rx.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := h.NewState("ChatChannel", user)
	drain := func() {
		h.Wait(ctx)
		for len(sub.Events()) > 0 {
			st.Apply(<-sub.Events())
		}
	}
	st.Apply(next(t, sub))
	db.Create(&Message{ChatID: 1, Text: "before"})
	drain()

	srv.Stop()
	for i := 0; i < 5; i++ {
		db.Create(&Message{ChatID: 1, Text: fmt.Sprint("during ", i)})
	}
	drain()
	want, err := h.Snapshot(ctx, "ChatChannel", ChatParams{ChatID: 1}, user)
	if err != nil {
		t.Fatalf("snapshot during outage: %v", err)
	}
	if got, _ := st.JSON(); !bytes.Equal(got, want) || strings.Count(string(got), "during") != 5 {
		t.Fatalf("during outage\n got %s\nwant %s", got, want)
	}

	srv.Start()
	// Once the probe sees MongoDB again the stream is rebuilt in it, and
	// the subscriber gets it as a fresh snapshot. (MongoDB still lists the
	// stream as hot from before the outage: that says nothing.)
	for rebuilt := false; !rebuilt; {
		select {
		case ev, ok := <-sub.Events():
			if !ok {
				t.Fatalf("subscription ended: %v", sub.Err())
			}
			st.Apply(ev)
			rebuilt = ev.Snapshot
		case <-time.After(30 * time.Second):
			t.Fatal("no fresh snapshot within 30 s of MongoDB's return")
		}
	}
	if cs, err := store.Streams(ctx); err != nil || len(cs) == 0 {
		t.Fatalf("stream not rebuilt in MongoDB: %v %v", cs, err)
	}
	db.Create(&Message{ChatID: 1, Text: "after"})
	drain()
	want, _ = h.Snapshot(ctx, "ChatChannel", ChatParams{ChatID: 1}, user)
	if got, _ := st.JSON(); !bytes.Equal(got, want) || !strings.Contains(string(got), "after") {
		t.Fatalf("after recovery\n got %s\nwant %s", got, want)
	}
	if sub.Err() != nil {
		t.Fatalf("the subscriber saw an error: %v", sub.Err())
	}
	versions := st.Versions()
	h.Close()

	// A new process on the same MongoDB: the client resumes with only the
	// changes since its version, including what was committed while no
	// process was broadcasting.
	plain := reopen(t, db)
	plain.Model(&Message{}).Where("text = ?", "before").Update("text", "edited offline")
	h2, err := rx.New(reopen(t, db), rx.Config{Store: store})
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Close()
	h2.Register(&ChatChannel{})
	sub2, err := h2.Subscribe(ctx, "ChatChannel", ChatParams{ChatID: 1}, user, rx.SubscribeOptions{Since: versions})
	if err != nil {
		t.Fatal(err)
	}
	ev := next(t, sub2)
	if ev.Snapshot || len(ev.Instances) != 1 || string(ev.Instances[0].Fields["text"]) != `"edited offline"` {
		t.Fatalf("want an incremental resume with the offline edit: %s", dump(ev))
	}
}

// Streams an earlier process left in MongoDB expire after the TTL too.
func TestMongoTTL(t *testing.T) {
	store, _ := mongoStore(t, mongotest.Start(t))
	db := openSQLite(t)
	migrate(t, db)
	db.Create(&Chat{Title: "x"})
	ctx := context.Background()
	h1, _ := rx.New(db, rx.Config{Store: store})
	h1.Register(&ChatChannel{})
	if _, err := h1.Snapshot(ctx, "ChatChannel", ChatParams{ChatID: 1}, rx.User{}); err != nil {
		t.Fatal(err)
	}
	h1.Close()
	if s, _ := store.Streams(ctx); len(s) != 1 {
		t.Fatalf("want the stream kept in MongoDB, got %v", s)
	}
	h2, _ := rx.New(reopen(t, db), rx.Config{Store: store, CacheTTL: 200 * time.Millisecond})
	defer h2.Close()
	h2.Register(&ChatChannel{})
	waitFor(t, func() bool {
		s, err := store.Streams(ctx)
		return err == nil && len(s) == 0
	})
}
