package rx_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/rx"
	"github.com/rxgorm/rxgorm/rx/rxtest"
	"gorm.io/gorm"
)

// Tests of capture from PostgreSQL's WAL (rx/wal.go) on the local server
// (wal_level=logical): writes from a separate psql process, GORM writes
// delivered once, TRUNCATE, a dropped slot.

var walNames atomic.Int64

// walNamesFor returns a slot and publication name unique to this test.
func walNamesFor() (slot, pub string) {
	n := fmt.Sprintf("rxtest_wal_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6, walNames.Add(1))
	return n, n
}

// dropWAL drops a test's slot and publication; the slot is dropped even if
// a closing session still holds it for a moment.
func dropWAL(t testing.TB, db *gorm.DB, slot, pub string) {
	t.Helper()
	err := db.Exec(`DO $$ BEGIN
		FOR i IN 1..400 LOOP
			BEGIN
				PERFORM pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '` + slot + `' AND active;
				PERFORM pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = '` + slot + `';
				RETURN;
			EXCEPTION WHEN object_in_use THEN PERFORM pg_sleep(0.025);
			END;
		END LOOP;
		RAISE 'slot ` + slot + ` still active';
	END $$`).Error
	if err != nil {
		t.Errorf("drop slot %s: %v", slot, err)
	}
	if err := db.Exec("DROP PUBLICATION IF EXISTS " + pub).Error; err != nil {
		t.Errorf("drop publication %s: %v", pub, err)
	}
}

// walHub opens a hub capturing from the WAL with a slot and publication of
// its own, dropped when the test ends.
func walHub(t testing.TB, db *gorm.DB, cfg rx.Config) (*rx.Hub, string) {
	t.Helper()
	slot, pub := walNamesFor()
	if cfg.WAL == nil {
		cfg.WAL = &rx.WALConfig{}
	}
	cfg.WAL.DSN = rxtest.PostgresDSN()
	cfg.WAL.Slot, cfg.WAL.Publication = slot, pub
	cfg.WAL.StatusInterval = 100 * time.Millisecond
	h, err := rx.New(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		h.Close()
		dropWAL(t, db, slot, pub)
	})
	if err := h.Register(&ChatChannel{}, &ChatList{}); err != nil {
		t.Fatal(err)
	}
	return h, slot
}

// currentSchema is the schema rxtest.Postgres made for the test.
func currentSchema(t testing.TB, db *gorm.DB) string {
	t.Helper()
	var s string
	if err := db.Raw("SELECT current_schema()").Scan(&s).Error; err != nil {
		t.Fatal(err)
	}
	return s
}

// psql runs SQL in a separate psql process, in the test's schema.
func psql(t testing.TB, schema, sql string) {
	t.Helper()
	cmd := exec.Command("psql", "-X", "-v", "ON_ERROR_STOP=1", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "test",
		"-c", "SET search_path TO "+schema, "-c", sql)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("psql %q: %v\n%s", sql, err, out)
	}
}

func hasText(ev *rx.Event, text string) bool {
	for _, in := range ev.Instances {
		if in.Type == "Message" && !in.Deleted && string(in.Fields["text"]) == `"`+text+`"` {
			return true
		}
	}
	return false
}

func walFixture(t testing.TB) (*gorm.DB, string) {
	t.Helper()
	db := openPostgres(t)
	migrate(t, db)
	schema := currentSchema(t, db)
	if err := db.Create(&User{ID: 1, Name: "ann"}).Error; err != nil {
		t.Fatal(err)
	}
	if err := db.Create(&Chat{ID: 1, Title: "c1"}).Error; err != nil {
		t.Fatal(err)
	}
	return db, schema
}

func subscribeChat(t testing.TB, h *rx.Hub, id uint) *rx.Subscription {
	t.Helper()
	sub, err := h.Subscribe(context.Background(), "ChatChannel", ChatParams{ChatID: id}, rx.User{ID: "1"}, rx.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	if ev := next(t, sub); !ev.Snapshot {
		t.Fatalf("first event is not a snapshot: %s", dump(ev))
	}
	return sub
}

// A row inserted and updated by a separate psql process reaches the
// subscriber, from the WAL's row image (no re-read).
func TestWALPsqlWrite(t *testing.T) {
	db, schema := walFixture(t)
	h, _ := walHub(t, db, rx.Config{})
	sub := subscribeChat(t, h, 1)
	psql(t, schema, "INSERT INTO messages (id, chat_id, sender_id, text) VALUES (10, 1, 1, 'from psql')")
	if err := h.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, sub); ev.Snapshot || !hasText(ev, "from psql") {
		t.Fatalf("want a delta with the psql row, got %s", dump(ev))
	}
	psql(t, schema, "UPDATE messages SET text = 'edited' WHERE id = 10")
	if err := h.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, sub); !hasText(ev, "edited") {
		t.Fatalf("want the edit, got %s", dump(ev))
	}
	none(t, h, sub)
	st := h.WALStats()
	if st.Images < 2 || st.Rereads != 0 {
		t.Fatalf("rows from the WAL image: %d, re-read: %d; want 2+ and 0", st.Images, st.Rereads)
	}
	lag, err := h.WALLag(context.Background())
	if err != nil || lag < 0 {
		t.Fatalf("WALLag: %d, %v", lag, err)
	}
}

// With the plugin and the WAL both on, a GORM write is delivered once.
func TestWALGormWriteOnce(t *testing.T) {
	db, _ := walFixture(t)
	h, _ := walHub(t, db, rx.Config{})
	sub := subscribeChat(t, h, 1)
	if err := db.Create(&Message{ChatID: 1, SenderID: 1, Text: "gorm"}).Error; err != nil {
		t.Fatal(err)
	}
	if err := h.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	ev := next(t, sub)
	if !hasText(ev, "gorm") {
		t.Fatalf("want the GORM row, got %s", dump(ev))
	}
	none(t, h, sub) // no second delivery
	// A move to another chat (a foreign key change) leaves the first chat.
	if err := db.Create(&Chat{ID: 2, Title: "c2"}).Error; err != nil {
		t.Fatal(err)
	}
	sub2 := subscribeChat(t, h, 2)
	if err := db.Model(&Message{}).Where("text = ?", "gorm").Update("chat_id", 2).Error; err != nil {
		t.Fatal(err)
	}
	if err := h.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, sub2); !hasText(ev, "gorm") {
		t.Fatalf("chat 2 wants the moved row, got %s", dump(ev))
	}
	ev = next(t, sub)
	if !strings.Contains(string(dump(ev)), `"messages":[]`) {
		t.Fatalf("chat 1 wants an empty message list, got %s", dump(ev))
	}
	none(t, h, sub)
	none(t, h, sub2)
}

// TRUNCATE reaches subscribers as a fresh snapshot.
func TestWALTruncateResyncs(t *testing.T) {
	db, schema := walFixture(t)
	if err := db.Create(&Message{ChatID: 1, SenderID: 1, Text: "old"}).Error; err != nil {
		t.Fatal(err)
	}
	h, _ := walHub(t, db, rx.Config{})
	sub := subscribeChat(t, h, 1)
	psql(t, schema, "TRUNCATE messages CASCADE")
	if err := h.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	ev := next(t, sub)
	if !ev.Snapshot || hasText(ev, "old") {
		t.Fatalf("want a snapshot without the truncated row, got %s", dump(ev))
	}
	if h.WALStats().Resyncs == 0 {
		t.Fatal("no resync counted")
	}
}

// A slot dropped under the hub is recreated, and subscribers get a full
// resync that includes what was written while it was missing.
func TestWALDroppedSlot(t *testing.T) {
	db, schema := walFixture(t)
	h, slot := walHub(t, db, rx.Config{})
	sub := subscribeChat(t, h, 1)
	if err := h.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	psql(t, schema, `DO $$ BEGIN
		FOR i IN 1..400 LOOP
			BEGIN
				PERFORM pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = '`+slot+`' AND active;
				PERFORM pg_drop_replication_slot('`+slot+`');
				RETURN;
			EXCEPTION WHEN object_in_use THEN PERFORM pg_sleep(0.01);
			END;
		END LOOP;
	END $$; INSERT INTO messages (chat_id, sender_id, text) VALUES (1, 1, 'while dropped')`)
	// The snapshot of the resync holds the row written meanwhile (or,
	// if the slot was back before the insert, a delta does).
	state, err := h.NewState("ChatChannel", rx.User{ID: "1"})
	if err != nil {
		t.Fatal(err)
	}
	resynced := false
	for !resynced || !strings.Contains(mustJSON(t, state), "while dropped") {
		ev := next(t, sub)
		resynced = resynced || ev.Snapshot
		state.Apply(ev)
	}
	if st := h.WALStats(); st.SlotsCreated < 1 || st.Sessions < 2 {
		t.Fatalf("slot recreated %d times in %d sessions", st.SlotsCreated, st.Sessions)
	}
	// Streaming goes on from the new slot.
	psql(t, schema, "INSERT INTO messages (chat_id, sender_id, text) VALUES (1, 1, 'after')")
	if err := h.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, sub); !hasText(ev, "after") {
		t.Fatalf("want the row written after the new slot, got %s", dump(ev))
	}
}

func mustJSON(t testing.TB, s *rx.State) string {
	t.Helper()
	b, err := s.JSON()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// ALTER TABLE reaches subscribers as a fresh snapshot, when the first
// change to the table after it is decoded (PostgreSQL sends the new table
// definition with it).
func TestWALAlterTableResyncs(t *testing.T) {
	db, schema := walFixture(t)
	h, _ := walHub(t, db, rx.Config{})
	sub := subscribeChat(t, h, 1)
	psql(t, schema, "INSERT INTO messages (chat_id, sender_id, text) VALUES (1, 1, 'first')")
	if err := h.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, sub); ev.Snapshot || !hasText(ev, "first") {
		t.Fatalf("want a delta, got %s", dump(ev))
	}
	before := h.WALStats().Resyncs
	psql(t, schema, "ALTER TABLE messages ADD COLUMN extra integer NOT NULL DEFAULT 7")
	psql(t, schema, "INSERT INTO messages (chat_id, sender_id, text) VALUES (1, 1, 'second')")
	if err := h.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	state, err := h.NewState("ChatChannel", rx.User{ID: "1"})
	if err != nil {
		t.Fatal(err)
	}
	resynced := false
	for !resynced || !strings.Contains(mustJSON(t, state), "second") {
		ev := next(t, sub)
		resynced = resynced || ev.Snapshot
		state.Apply(ev)
	}
	if got := h.WALStats().Resyncs; got != before+1 {
		t.Fatalf("resyncs: %d, want %d", got, before+1)
	}
}

// An update that leaves a TOASTed value unchanged does not carry it in the
// WAL: the row is re-read, and the delta is right.
func TestWALToastRereads(t *testing.T) {
	db, schema := walFixture(t)
	// Out of line: hexadecimal text pglz does not compress below 2 kB.
	psql(t, schema, "UPDATE chats SET secret = (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 400) i) WHERE id = 1")
	h, _ := walHub(t, db, rx.Config{})
	sub := subscribeChat(t, h, 1)
	before := h.WALStats()
	psql(t, schema, "UPDATE chats SET title = 'renamed' WHERE id = 1")
	if err := h.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	ev := next(t, sub)
	found := false
	for _, in := range ev.Instances {
		if in.Type == "Chat" && string(in.Fields["title"]) == `"renamed"` {
			found = true
		}
	}
	if !found {
		t.Fatalf("want the new title, got %s", dump(ev))
	}
	after := h.WALStats()
	if after.Rereads != before.Rereads+1 || after.Images != before.Images {
		t.Fatalf("re-reads %d→%d, images %d→%d: want one re-read", before.Rereads, after.Rereads, before.Images, after.Images)
	}
	none(t, h, sub)
}

// Plain updates of a row whose WAL image is complete move no list and read
// nothing: the engine neither waits for their transactions to be visible
// nor reads a snapshot for it. A write that needs a read (a new row
// entering a list, a row moving to another parent) still waits, and its
// read sees the committed row.
func TestWALVisibilityOnlyForReads(t *testing.T) {
	db, schema := walFixture(t)
	if err := db.Create(&Message{ID: 10, ChatID: 1, SenderID: 1, Text: "first"}).Error; err != nil {
		t.Fatal(err)
	}
	h, _ := walHub(t, db, rx.Config{})
	sub := subscribeChat(t, h, 1)
	// The session has started: the updates come with their images.
	if err := h.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	before := h.WALStats()
	const n = 24
	for i := range n {
		text := fmt.Sprintf("edit %d", i)
		if i%6 == 5 {
			psql(t, schema, "UPDATE messages SET text = '"+text+"' WHERE id = 10")
		} else if err := db.Model(&Message{ID: 10}).Update("text", text).Error; err != nil {
			t.Fatal(err)
		}
		if ev := next(t, sub); !hasText(ev, text) {
			t.Fatalf("update %d: want %q, got %s", i, text, dump(ev))
		}
	}
	after := h.WALStats()
	if got := after.Images - before.Images; got != n || after.Rereads != before.Rereads {
		t.Fatalf("images %d, re-reads %d→%d: want %d images and no re-read", got, before.Rereads, after.Rereads, n)
	}
	t.Logf("%d plain updates: %d snapshot reads", n, after.VisibilityReads-before.VisibilityReads)
	if got := after.VisibilityReads - before.VisibilityReads; got > 1 {
		t.Fatalf("%d snapshot reads for %d plain updates; want none", got, n)
	}

	// A new row enters chat 1's list: the list is read again, after the
	// transaction is visible.
	psql(t, schema, "INSERT INTO messages (id, chat_id, sender_id, text) VALUES (11, 1, 1, 'new')")
	if ev := next(t, sub); !hasText(ev, "new") {
		t.Fatalf("want the new row, got %s", dump(ev))
	}
	moved := h.WALStats()
	if moved.VisibilityReads <= after.VisibilityReads {
		t.Fatalf("snapshot reads %d→%d: the list read did not wait for the transaction", after.VisibilityReads, moved.VisibilityReads)
	}

	// A row moves to another chat (a foreign key change): both lists are
	// read again and see it.
	if err := db.Create(&Chat{ID: 2, Title: "c2"}).Error; err != nil {
		t.Fatal(err)
	}
	sub2 := subscribeChat(t, h, 2)
	psql(t, schema, "UPDATE messages SET chat_id = 2, text = 'moved' WHERE id = 11")
	if ev := next(t, sub2); !hasText(ev, "moved") {
		t.Fatalf("chat 2 wants the moved row, got %s", dump(ev))
	}
	if ev := next(t, sub); hasText(ev, "moved") || hasText(ev, "new") {
		t.Fatalf("chat 1 wants the row gone, got %s", dump(ev))
	}
	none(t, h, sub)
	none(t, h, sub2)
	if got := h.WALStats().VisibilityReads; got <= moved.VisibilityReads {
		t.Fatalf("snapshot reads %d→%d: the move did not wait for its transaction", moved.VisibilityReads, got)
	}
}

// Closing the hub stops the replication session at once: the receive
// waits on a read deadline (up to 200 ms ahead; 10 s here), which the session's end
// moves to the past, rather than on a context per message.
func TestWALClosePrompt(t *testing.T) {
	db, _ := walFixture(t)
	slot, pub := walNamesFor()
	rx.SetWALWakeMax(t, 10*time.Second)
	h, err := rx.New(db, rx.Config{WAL: &rx.WALConfig{DSN: rxtest.PostgresDSN(), Slot: slot, Publication: pub, StatusInterval: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dropWAL(t, db, slot, pub) })
	if err := h.Register(&ChatChannel{}); err != nil {
		h.Close()
		t.Fatal(err)
	}
	if err := h.Wait(context.Background()); err != nil {
		h.Close()
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // the receive waits on its deadline
	start := time.Now()
	h.Close() // returns once the replication connection is closed
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("Close took %v; want it well before the 10 s read deadline", took)
	}
}
