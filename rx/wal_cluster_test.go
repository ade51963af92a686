package rx_test

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/rx"
)

// TestWALClusterResync: two nodes capture from one slot (PostgreSQL, Redis
// and the Mongo store shared); the clients live on the node that does NOT
// consume the slot, which owns their streams. A TRUNCATE, and an ALTER
// TABLE that rewrites rows (no row of it in the WAL) followed by a write,
// are decoded by the other node only: its resync must reach this node too,
// so that the clients end equal to the database instead of keeping
// truncated or rewritten rows.
func TestWALClusterResync(t *testing.T) {
	base := openPostgres(t)
	migrate(t, base)
	setup := seededWriter(t, base, rand.New(rand.NewPCG(seed(t), 2)), 3, 2)
	spec := newWALSpec(t, base)
	var hubs [2]*rx.Hub
	for i := range hubs {
		_, hubs[i], _ = walNode(t, spec, fmt.Sprint("n", i), true)
	}
	consumer := -1
	walWaitFor(t, 10*time.Second, "one node consumes the slot", func() bool {
		for i, h := range hubs {
			if h.WALStats().Consuming {
				consumer = i
			}
		}
		return consumer >= 0
	})
	other := hubs[1-consumer]
	uid := setup.users[0]
	var watchers []*watcher
	for _, cid := range setup.chats {
		watchers = append(watchers, &watcher{name: fmt.Sprintf("chat%d", cid), channel: "ChatChannel", params: ChatParams{ChatID: cid}, user: rx.User{ID: strconv.Itoa(int(uid))}, chatID: cid})
	}
	watchers = append(watchers, &watcher{name: "list", channel: "ChatList", params: rx.NoParams{}, user: rx.User{ID: strconv.Itoa(int(uid))}})
	for _, wt := range watchers {
		wt.start(t, other, false)
	}
	stopAtCleanup(t, &watchers)
	insert := func(text string) {
		t.Helper()
		for _, cid := range setup.chats {
			psql(t, spec.Schema, fmt.Sprintf("INSERT INTO messages (chat_id, sender_id, text) VALUES (%d, %d, '%s')", cid, uid, text))
		}
	}
	insert("before")
	waitConverged(t, base, watchers, 20*time.Second)
	if hubs[1-consumer].WALStats().Consuming {
		t.Fatal("the clients' node consumes the slot")
	}

	// TRUNCATE: the node consuming the slot resyncs, and so must this one.
	psql(t, spec.Schema, "TRUNCATE messages CASCADE")
	waitConverged(t, base, watchers, 15*time.Second)

	// ALTER TABLE adding a column and rewriting every row (the WAL holds
	// no row of it), then a write, which carries the new table definition.
	insert("lower")
	waitConverged(t, base, watchers, 20*time.Second)
	psql(t, spec.Schema, "ALTER TABLE messages ADD COLUMN extra integer NOT NULL DEFAULT 7, ALTER COLUMN text TYPE varchar(200) USING upper(text)")
	insert("after")
	// A fresh pool: the test's cached statements read the old row type.
	ref := reopen(t, base)
	waitConverged(t, ref, watchers, 15*time.Second)

	// TRUNCATE of the anchors' table: the chats and the list go empty.
	psql(t, spec.Schema, "TRUNCATE chats CASCADE")
	waitConverged(t, ref, watchers, 15*time.Second)
	if n := hubs[consumer].WALStats().Resyncs; n < 3 {
		t.Fatalf("the consuming node resynced %d times, want 3+", n)
	}
}
