package channel_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/cache"
	"github.com/rxgorm/rxgorm/cache/mongotest"
	"github.com/rxgorm/rxgorm/channel"
	"github.com/rxgorm/rxgorm/rx"
	"github.com/rxgorm/rxgorm/rx/rxtest"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Crash safety: a process dies between committing writes and broadcasting
// them. The guarantee (docs/RELIABILITY.md): the next process to load the
// stream reconciles the persistent cache with the database, so a client
// resuming with the versions it holds ends at the committed state.

// relCrashEnv carries the crashing child's configuration.
const relCrashEnv = "RXGORM_REL_CRASH_CHILD"

type relCrashSpec struct {
	DSN, URI, DB string
}

func relOpenSQLite(t testing.TB, dsn string) *gorm.DB {
	db, err := gorm.Open(sqlite.Open(dsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s, err := db.DB(); err == nil {
			s.Close()
		}
	})
	return db
}

func relMongoStore(t testing.TB, uri, name string) *cache.MongoStore {
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(5 * time.Second).SetTimeout(10 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })
	st, err := cache.NewMongo(context.Background(), client.Database(name), cache.MongoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// TestRelCrashChild is the process that crashes, started by
// TestCrashBetweenCommitAndBroadcast; run on its own it has nothing to do.
// It loads the room's stream from the shared MongoDB store, commits
// writes, and dies (os.Exit) with the first commit stored in the cache but
// never broadcast (the engine hangs handing it to a subscriber) and the
// others committed to the database but never read by the engine.
func TestRelCrashChild(t *testing.T) {
	raw := os.Getenv(relCrashEnv)
	if raw == "" {
		return
	}
	var spec relCrashSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	db := relOpenSQLite(t, spec.DSN)
	hub, err := rx.New(db, rx.Config{Store: relMongoStore(t, spec.URI, spec.DB)})
	if err != nil {
		t.Fatal(err)
	}
	hub.Register(&RoomChannel{DB: db}, &RoomList{})
	hung := make(chan struct{})
	var once sync.Once
	_, err = hub.Subscribe(context.Background(), "RoomChannel", RoomParams{RoomID: 1}, rx.User{ID: "1"}, rx.SubscribeOptions{Deliver: func(ev *rx.Event) bool {
		if ev.Initial || ev.Runtime != nil || ev.End || len(ev.Instances) == 0 {
			return true
		}
		once.Do(func() { close(hung) })
		select {} // the engine hangs here, after storing the delta
	}})
	if err != nil {
		t.Fatal(err)
	}
	db.Create(&Post{RoomID: 1, AuthorID: 2, Text: "stored, never broadcast"})
	<-hung
	db.Model(&Post{ID: 1}).Update("text", "edited, never read by the engine")
	db.Delete(&Post{}, 2)
	db.Create(&Note{RoomID: 1, UserID: 1, Text: "a note, never read by the engine"})
	db.Create(&Post{RoomID: 1, AuthorID: 3, Text: "last, never read by the engine"})
	fmt.Println("COMMITTED")
	os.Exit(3)
}

func TestCrashBetweenCommitAndBroadcast(t *testing.T) {
	uri := mongotest.Start(t)
	spec := relCrashSpec{
		DSN: rxtest.SQLiteDSN(filepath.Join(t.TempDir(), "crash.db")),
		URI: uri,
		DB:  fmt.Sprintf("rxcrash_%d", time.Now().UnixNano()%1e9),
	}
	user := rx.User{ID: "1"}
	// Process 1 serves a client, then stops cleanly.
	e := newEnvWith(t, relOpenSQLite(t, spec.DSN), rx.Config{Store: relMongoStore(t, spec.URI, spec.DB)}, channel.Options{})
	e.db.Create(&Room{Name: "lobby", Public: true})
	e.db.Create(&Post{RoomID: 1, AuthorID: 1, Text: "one"})
	e.db.Create(&Post{RoomID: 1, AuthorID: 2, Text: "two"})
	c := e.login("1")
	st, _ := e.hub.NewState("RoomChannel", user)
	for _, m := range c.relSubscribe("s", "RoomChannel", `{"roomId":1}`) {
		if ev := relEvent(m); ev != nil {
			st.Apply(ev)
		}
	}
	e.db.Create(&Post{RoomID: 1, AuthorID: 1, Text: "three"})
	d, _ := c.relUntil("delta")
	st.Apply(relEvent(d))
	held := st.Versions()
	c.conn.Close()
	e.srv.Shutdown(context.Background())
	e.hub.Close()

	// Process 2 crashes between commit and broadcast.
	raw, _ := json.Marshal(spec)
	cmd := exec.Command(os.Args[0], "-test.run=^TestRelCrashChild$", "-test.v", "-test.count=1")
	cmd.Env = append(os.Environ(), relCrashEnv+"="+string(raw))
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 3 || !strings.Contains(string(out), "COMMITTED") {
		t.Fatalf("the child did not crash after committing: %v\n%s", err, out)
	}

	// What the crash left in the cache: the first commit, not the others.
	store := relMongoStore(t, spec.URI, spec.DB)
	streams, err := store.Streams(context.Background())
	if err != nil || len(streams) != 1 {
		t.Fatalf("streams in MongoDB: %v %v", streams, err)
	}
	left, err := store.Snapshot(context.Background(), streams[0].Stream)
	if txt := relTexts(left); err != nil || !strings.Contains(txt, "stored, never broadcast") || strings.Contains(txt, "never read") {
		t.Fatalf("the crash should leave the first commit only in the cache: %s %v", txt, err)
	}

	// Process 3 starts on the same database and MongoDB store; the client
	// resumes with the versions it holds.
	db3 := relOpenSQLite(t, spec.DSN)
	hub3, err := rx.New(db3, rx.Config{Store: relMongoStore(t, spec.URI, spec.DB)})
	if err != nil {
		t.Fatal(err)
	}
	defer hub3.Close()
	hub3.Register(&RoomChannel{DB: db3}, &RoomList{})
	srv3 := channel.NewServer(hub3, channel.Options{Auth: e.auth})
	http3 := httptest.NewServer(srv3)
	defer http3.Close()
	defer srv3.Shutdown(context.Background())
	e.url = "ws" + strings.TrimPrefix(http3.URL, "http")
	c = e.login("1")
	since, _ := json.Marshal(held)
	c.send(`{"type":"sub","id":"s","channel":"RoomChannel","params":{"roomId":1},"since":%s}`, since)
	first := true
	for {
		m := c.next()
		if m["type"] == "done" {
			break
		}
		if m["type"] == "snapshot" && first {
			first = false
			if m["reset"] != false {
				t.Fatalf("want an incremental resume from the persistent cache: %v", m)
			}
		}
		if ev := relEvent(m); ev != nil {
			st.Apply(ev)
		}
	}
	// The committed state, read by a fresh process with its own cache.
	oracle, err := rx.New(relOpenSQLite(t, spec.DSN), rx.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer oracle.Close()
	oracle.Register(&RoomChannel{DB: db3})
	want := relSnapshotJSON(t, oracle, "RoomChannel", RoomParams{RoomID: 1}, user)
	js, _ := st.JSON()
	if got := relNorm(t, js); got != want {
		t.Fatalf("resumed client after the crash\n got %s\nwant %s", got, want)
	}
	for _, s := range []string{"stored, never broadcast", "edited, never read", "a note, never read", "last, never read"} {
		if !strings.Contains(want, s) {
			t.Fatalf("the oracle lacks %q: %s", s, want)
		}
	}
}

func relTexts(s cache.Snapshot) string {
	var b strings.Builder
	for _, in := range s.Instances {
		b.Write(in.Fields["text"])
		b.WriteByte(' ')
	}
	return b.String()
}
