package bench

import (
	"context"
	"testing"

	"github.com/rxgorm/rxgorm/rx"
	"gorm.io/gorm"
)

// openDB opens a fresh, migrated SQLite file database in b.TempDir() and
// closes it when b ends.
func openDB(b *testing.B, name string) *gorm.DB {
	b.Helper()
	db, err := Open(b.TempDir(), name)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { Close(db) })
	return db
}

// seed fills db with one board shaped like t.
func seed(b *testing.B, db *gorm.DB, t Tree) *Board {
	b.Helper()
	board, err := Seed(db, t)
	if err != nil {
		b.Fatal(err)
	}
	return board
}

// newHub installs rx on db, registers BoardChannel and closes the hub when b
// ends (before the database, as cleanups run last-in first-out).
func newHub(b *testing.B, db *gorm.DB, cfg rx.Config) *rx.Hub {
	b.Helper()
	h, err := NewHub(db, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { h.Close() })
	return h
}

// subscribe subscribes an anonymous user to board boardID.
func subscribe(b *testing.B, h *rx.Hub, boardID uint) *rx.Subscription {
	b.Helper()
	sub, err := h.Subscribe(context.Background(), ChannelName, BoardParams{BoardID: boardID}, rx.User{}, rx.SubscribeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	return sub
}

// first reads the first event of sub, which must be a snapshot.
func first(b *testing.B, sub *rx.Subscription) *rx.Event {
	b.Helper()
	ev, ok := <-sub.Events()
	if !ok {
		b.Fatalf("subscription ended before its snapshot: %v", sub.Err())
	}
	if !ev.Snapshot {
		b.Fatalf("first event is not a snapshot")
	}
	return ev
}

// wait waits until h has applied and handed out every commit so far.
func wait(b *testing.B, h *rx.Hub) {
	b.Helper()
	if err := h.Wait(context.Background()); err != nil {
		b.Fatal(err)
	}
}
