package rx_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/cache"
	"github.com/rxgorm/rxgorm/rx"
	"github.com/rxgorm/rxgorm/rx/rxtest"
	"gorm.io/gorm"
)

// The convergence test: a seeded random mix of writes, in and out of
// transactions (some rolled back, some with a failing nested transaction),
// over a 3-level tree with many2many relations, foreign-key moves and
// per-user rows, while subscribers join, leave and resume at random, drop
// (lose the events in flight, as a dropped socket does) and resume, and
// the engine's reads fail now and then (a real database error: the read
// names a table that does not exist), so that commits are retried and
// streams reloaded. At the end every subscriber's rebuilt state must equal
// an independent serialization of the database: GORM preloads encoded by
// encoding/json.
//
// The seed is random each run (RXGORM_SEED replays one). The operations
// run in rounds of convergenceRound, each on a fresh database and hub, so
// that tables and subscribers stay the size a round makes them; their
// number is RXGORM_CONVERGENCE_OPS per database, or
// RXGORM_CONVERGENCE_OPS_SQLITE, _POSTGRES and _MYSQL (CI, `make
// convergence`: 70,000 on SQLite, 30,000 on PostgreSQL and 10,000 on
// MariaDB), else 3,000 on SQLite and 1,000 on PostgreSQL and on MariaDB (a
// tenth with -short).

// convergenceRound is the operations of one round.
const convergenceRound = 2000

func TestConvergenceSQLite(t *testing.T) {
	t.Parallel()
	runConvergenceRounds(t, openConvergenceSQLite, seed(t), convergenceOps(t, "SQLITE", 3000))
}

func TestConvergencePostgres(t *testing.T) {
	t.Parallel()
	runConvergenceRounds(t, openConvergencePostgres, seed(t), convergenceOps(t, "POSTGRES", 1000))
}

func TestConvergenceMySQL(t *testing.T) {
	t.Parallel()
	runConvergenceRounds(t, openMySQL, seed(t), convergenceOps(t, "MYSQL", 1000))
}

// convergenceOps is RXGORM_CONVERGENCE_OPS_<database>, else
// RXGORM_CONVERGENCE_OPS, else def (a tenth of it with -short).
func convergenceOps(t *testing.T, database string, def int) int {
	for _, name := range []string{"RXGORM_CONVERGENCE_OPS_" + database, "RXGORM_CONVERGENCE_OPS"} {
		v := os.Getenv(name)
		if v == "" {
			continue
		}
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("%s=%q: want a positive number", name, v)
		}
		return n
	}
	if testing.Short() {
		return def / 10
	}
	return def
}

// openConvergenceSQLite is a SQLite file that does not sync to disk at
// each commit: durability is not what this test checks, and it runs a
// hundred thousand transactions.
func openConvergenceSQLite(t testing.TB) *gorm.DB { return rxtest.SQLite(t, "_synchronous=OFF") }

// openConvergencePostgres is a private schema whose commits do not wait for
// the WAL to reach the disk, for the same reason.
func openConvergencePostgres(t testing.TB) *gorm.DB {
	return rxtest.Postgres(t, "synchronous_commit=off")
}

// runConvergenceRounds runs ops operations in rounds, each on a fresh
// database from open, seeded from seed and the round's number.
func runConvergenceRounds(t *testing.T, open func(testing.TB) *gorm.DB, seed uint64, ops int) {
	start := time.Now()
	var faults, drops int
	for round := 0; ops > 0 && !t.Failed(); round++ {
		n := min(ops, convergenceRound)
		ops -= n
		t.Run(fmt.Sprintf("round%d", round), func(t *testing.T) {
			f, d := runConvergence(t, open(t), seed+uint64(round)*0x9e3779b97f4a7c15, n)
			faults += f
			drops += d
		})
	}
	t.Logf("%v: %d failed engine reads, %d dropped subscribers", time.Since(start).Round(time.Millisecond), faults, drops)
}

// seed returns RXGORM_SEED if set, else a random seed, and logs it so that
// a failure can be replayed.
func seed(t *testing.T) uint64 { return rxtest.Seed(t) }

type watcher struct {
	name    string
	channel string
	params  any
	user    rx.User
	chatID  uint

	mu    sync.Mutex
	state *rx.State
	sub   *rx.Subscription
	done  chan struct{}
	// dups counts deltas at or below a version already held: a delta
	// delivered twice or out of order.
	dups atomic.Int64
	// discard: the subscriber dropped; events still in flight are lost.
	discard atomic.Bool
	// gaps counts events whose From is above the version held: changes
	// the watcher never received.
	gaps atomic.Int64
}

func (w *watcher) start(t *testing.T, h *rx.Hub, resume bool) {
	t.Helper()
	opts := rx.SubscribeOptions{}
	w.mu.Lock()
	if resume && w.state != nil {
		opts.Since = w.state.Versions()
	} else {
		st, err := h.NewState(w.channel, w.user)
		if err != nil {
			t.Fatal(err)
		}
		w.state = st
	}
	w.mu.Unlock()
	// A Subscribe that never returns would hang the test until go test's
	// timeout: say which one, with every goroutine's stack.
	watchdog := time.AfterFunc(2*time.Minute, func() {
		buf := make([]byte, 1<<24)
		n := runtime.Stack(buf, true)
		fmt.Fprintf(os.Stderr, "%s: Subscribe has not returned in 2 minutes; goroutines:\n%s\n", w.name, buf[:n])
	})
	sub, err := h.Subscribe(context.Background(), w.channel, w.params, w.user, opts)
	watchdog.Stop()
	if err != nil {
		if errors.Is(err, rx.ErrNotFound) {
			// The chat was deleted before we joined: the state is "null".
			// A client resuming learns it from this answer, not from a
			// delta: what it held goes (before, a resumed watcher kept the
			// chat it held when the deletion reached it between two nodes).
			if resume {
				st, err := h.NewState(w.channel, w.user)
				if err != nil {
					t.Fatal(err)
				}
				w.mu.Lock()
				w.state = st
				w.mu.Unlock()
			}
			w.sub, w.done = nil, nil
			return
		}
		t.Fatalf("%s: subscribe: %v", w.name, err)
	}
	w.sub, w.done = sub, make(chan struct{})
	go func() {
		defer close(w.done)
		held := w.state.Versions()
		for ev := range sub.Events() {
			if !ev.Snapshot && !ev.Initial && ev.Instances != nil && ev.Version <= held[ev.Anchor] {
				w.dups.Add(1)
			}
			if w.discard.Load() {
				continue
			}
			if h, ok := held[ev.Anchor]; ok && !ev.Snapshot && ev.From > h {
				w.gaps.Add(1)
			}
			if ev.Version > 0 {
				held[ev.Anchor] = ev.Version
			}
			w.mu.Lock()
			w.state.Apply(ev)
			w.mu.Unlock()
		}
	}()
}

// drop ends the subscription as a dropped socket does: the events not yet
// applied are lost.
func (w *watcher) drop() {
	if w.sub == nil {
		return
	}
	w.discard.Store(true)
	w.stop()
	w.discard.Store(false)
}

func (w *watcher) stop() {
	if w.sub == nil {
		return
	}
	w.sub.Close()
	<-w.done
	if err := w.sub.Err(); err != nil {
		panic(fmt.Sprintf("%s ended with %v", w.name, err))
	}
	w.sub = nil
}

// runConvergence runs one round and returns the engine reads it made fail
// and the subscribers it dropped.
func runConvergence(t *testing.T, db *gorm.DB, seed uint64, ops int) (faults, drops int) {
	migrate(t, db)
	// Engine reads fail while failing > 0: they run on the hub's context,
	// the writer's and the oracle's on context.Background.
	// The read names a table that does not exist, so the database itself
	// fails it.
	var failing, failed atomic.Int64
	onQuery(t, db, "conv:fault", func(ctx context.Context, table string) string {
		if !rx.HubContext(ctx) || table == "" {
			return table
		}
		for {
			n := failing.Load()
			if n <= 0 {
				return table
			}
			if failing.CompareAndSwap(n, n-1) {
				break
			}
		}
		failed.Add(1)
		return table + "_gone"
	})
	// The engine logs each failed read; the test counts them instead.
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	h, err := rx.New(db, rx.Config{ProbeInterval: 20 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if err := h.Register(&ChatChannel{}, &ChatList{}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	w := &writer{db: db, r: r}
	for i := 0; i < 6; i++ {
		w.newUser(db)
	}
	for i := 0; i < 4; i++ {
		w.newChat(db)
	}

	var watchers []*watcher
	join := func() {
		uid := w.users[r.IntN(len(w.users))]
		user := rx.User{ID: strconv.Itoa(int(uid))}
		var wt *watcher
		if r.IntN(4) == 0 {
			wt = &watcher{name: fmt.Sprintf("list#%d(u%d)", len(watchers), uid), channel: "ChatList", params: rx.NoParams{}, user: user}
		} else {
			cid := w.chats[r.IntN(len(w.chats))]
			wt = &watcher{name: fmt.Sprintf("chat%d#%d(u%d)", cid, len(watchers), uid), channel: "ChatChannel", params: ChatParams{ChatID: cid}, user: user, chatID: cid}
		}
		wt.start(t, h, false)
		watchers = append(watchers, wt)
	}
	for i := 0; i < 3; i++ {
		join()
	}

	for i := 0; i < ops; i++ {
		switch p := r.IntN(100); {
		case p < 2:
			join()
		case p < 4 && len(watchers) > 0:
			// Leave and resume from the versions held.
			wt := watchers[r.IntN(len(watchers))]
			wt.stop()
			wt.start(t, h, true)
		case p < 5 && len(watchers) > 0:
			// Drop, losing what was in flight, and resume.
			wt := watchers[r.IntN(len(watchers))]
			wt.drop()
			drops++
			wt.start(t, h, true)
		case p < 7 && failing.Load() == 0:
			// The engine's next reads fail: one or two are retried, three
			// exhaust a batch's attempts and reload its streams.
			failing.Store(int64(1 + r.IntN(3)))
		}
		w.step(t)
	}
	failing.Store(0)
	if err := h.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	// A stream whose reload failed is retried every ProbeInterval: wait
	// until every subscriber holds the database's state.
	ref := reopen(t, db)
	deadline := time.Now().Add(30 * time.Second)
	for _, wt := range watchers {
		want := oracle(t, ref, wt)
		for {
			wt.mu.Lock()
			got, err := wt.state.JSON()
			wt.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			if sameJSON(t, got, want) || time.Now().After(deadline) {
				break
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	for _, wt := range watchers {
		wt.stop()
	}
	t.Logf("%d ops: %d transactions committed, %d rolled back, %d watchers, %d dropped, %d engine reads failed", ops, w.commits, w.rollbacks, len(watchers), drops, failed.Load())

	fresh, err := rx.New(reopen(t, db), rx.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	if err := fresh.Register(&ChatChannel{}, &ChatList{}); err != nil {
		t.Fatal(err)
	}
	for _, wt := range watchers {
		// The flat index must hold exactly the rows a fresh cold load
		// holds: no deleted or unreachable row left behind.
		if sub, err := fresh.Subscribe(ctx, wt.channel, wt.params, wt.user, rx.SubscribeOptions{}); err == nil {
			st, _ := fresh.NewState(wt.channel, wt.user)
			fresh.Wait(ctx)
			for len(sub.Events()) > 0 {
				st.Apply(<-sub.Events())
			}
			sub.Close()
			if got, want := wt.state.Keys(), st.Keys(); !reflect.DeepEqual(got, want) {
				t.Errorf("%s: flat index differs from a fresh load: %s", wt.name, keyDiff(got, want))
			}
		}
		got, err := wt.state.JSON()
		if err != nil {
			t.Fatal(err)
		}
		want := oracle(t, ref, wt)
		if !sameJSON(t, got, want) {
			t.Errorf("%s diverged\n got: %s\nwant: %s", wt.name, got, want)
		}
		// The hub's own REST snapshot must agree too.
		snap, err := h.Snapshot(ctx, wt.channel, wt.params, wt.user)
		if err != nil && !errors.Is(err, rx.ErrNotFound) {
			t.Fatal(err)
		}
		if err == nil && !sameJSON(t, snap, want) {
			t.Errorf("%s: Snapshot differs from the database\n got: %s\nwant: %s", wt.name, snap, want)
		}
	}
	return int(failed.Load()), drops
}

// writer performs random writes and remembers the live ids.
type writer struct {
	db        *gorm.DB
	r         *rand.Rand
	users     []uint
	chats     []uint
	commits   int
	rollbacks int
}

func (w *writer) pick(ids []uint) uint { return ids[w.r.IntN(len(ids))] }

func (w *writer) newUser(db *gorm.DB) error {
	u := User{Name: fmt.Sprintf("user%d", w.r.IntN(1000))}
	if err := db.Create(&u).Error; err != nil {
		return err
	}
	w.users = append(w.users, u.ID)
	return nil
}

func (w *writer) newChat(db *gorm.DB) error {
	c := Chat{Title: fmt.Sprintf("chat%d", w.r.IntN(1000))}
	for _, id := range w.users {
		if w.r.IntN(2) == 0 {
			c.Members = append(c.Members, User{ID: id})
		}
	}
	if err := db.Omit("Members.*").Create(&c).Error; err != nil {
		return err
	}
	w.chats = append(w.chats, c.ID)
	return nil
}

// one performs a single random write through db.
func (w *writer) one(db *gorm.DB) error {
	r := w.r
	var msgIDs []uint
	if err := db.Model(&Message{}).Order("id").Pluck("id", &msgIDs).Error; err != nil {
		return err
	}
	switch p := r.IntN(100); {
	case p < 3:
		return w.newUser(db)
	case p < 5:
		return w.newChat(db)
	case p < 6 && len(w.chats) > 2:
		// Delete a chat with everything below it, as an app would.
		id := w.pick(w.chats)
		if err := clearReaders(db, "chat_id = ?", id); err != nil {
			return err
		}
		if err := db.Where("chat_id = ?", id).Delete(&Message{}).Error; err != nil {
			return err
		}
		if err := db.Where("chat_id = ?", id).Delete(&Draft{}).Error; err != nil {
			return err
		}
		if err := db.Model(&Chat{ID: id}).Association("Members").Clear(); err != nil {
			return err
		}
		// Later writes of the same transaction must not use it (PostgreSQL
		// checks foreign keys); a rollback restores the list.
		w.chats = slices.DeleteFunc(slices.Clone(w.chats), func(c uint) bool { return c == id })
		return db.Delete(&Chat{}, id).Error
	case p < 12:
		return db.Model(&Chat{ID: w.pick(w.chats)}).Association("Members").Append(&User{ID: w.pick(w.users)})
	case p < 16:
		return db.Model(&Chat{ID: w.pick(w.chats)}).Association("Members").Delete(&User{ID: w.pick(w.users)})
	case p < 17:
		return db.Model(&Chat{ID: w.pick(w.chats)}).Association("Members").Replace([]User{{ID: w.pick(w.users)}, {ID: w.pick(w.users)}})
	case p < 40:
		return db.Create(&Message{ChatID: w.pick(w.chats), SenderID: w.pick(w.users), Text: fmt.Sprintf("m%d", r.IntN(1e6))}).Error
	case p < 50 && len(msgIDs) > 0:
		return db.Model(&Message{ID: msgIDs[r.IntN(len(msgIDs))]}).Update("text", fmt.Sprintf("e%d", r.IntN(1e6))).Error
	case p < 54 && len(msgIDs) > 0:
		// Conditional update of several rows.
		lo := msgIDs[r.IntN(len(msgIDs))]
		return db.Model(&Message{}).Where("id BETWEEN ? AND ?", lo, lo+3).Update("text", fmt.Sprintf("c%d", r.IntN(1e6))).Error
	case p < 60 && len(msgIDs) > 0:
		// Foreign-key move.
		return db.Model(&Message{ID: msgIDs[r.IntN(len(msgIDs))]}).Update("chat_id", w.pick(w.chats)).Error
	case p < 63 && len(msgIDs) > 0:
		return db.Model(&Message{ID: msgIDs[r.IntN(len(msgIDs))]}).Update("sender_id", w.pick(w.users)).Error
	case p < 68 && len(msgIDs) > 0:
		id := msgIDs[r.IntN(len(msgIDs))]
		if err := clearReaders(db, "id = ?", id); err != nil {
			return err
		}
		return db.Delete(&Message{}, id).Error
	case p < 69 && len(msgIDs) > 0:
		lo := msgIDs[r.IntN(len(msgIDs))]
		if err := clearReaders(db, "id BETWEEN ? AND ?", lo, lo+2); err != nil {
			return err
		}
		return db.Where("id BETWEEN ? AND ?", lo, lo+2).Delete(&Message{}).Error
	case p < 78 && len(msgIDs) > 0:
		return db.Model(&Message{ID: msgIDs[r.IntN(len(msgIDs))]}).Association("Readers").Append(&User{ID: w.pick(w.users)})
	case p < 80 && len(msgIDs) > 0:
		return db.Model(&Message{ID: msgIDs[r.IntN(len(msgIDs))]}).Association("Readers").Clear()
	case p < 84:
		return db.Model(&User{ID: w.pick(w.users)}).Update("name", fmt.Sprintf("n%d", r.IntN(1e6))).Error
	case p < 86:
		return db.Model(&Chat{ID: w.pick(w.chats)}).Update("title", fmt.Sprintf("t%d", r.IntN(1e6))).Error
	case p < 92:
		return db.Create(&Draft{ChatID: w.pick(w.chats), UserID: w.pick(w.users), Text: "d"}).Error
	case p < 95:
		var ids []uint
		db.Model(&Draft{}).Pluck("id", &ids)
		if len(ids) == 0 {
			return nil
		}
		return db.Model(&Draft{ID: ids[r.IntN(len(ids))]}).Updates(map[string]any{"text": fmt.Sprintf("d%d", r.IntN(1e6)), "user_id": w.pick(w.users)}).Error
	case p < 97:
		var ids []uint
		db.Model(&Draft{}).Pluck("id", &ids)
		if len(ids) == 0 {
			return nil
		}
		return db.Delete(&Draft{}, ids[r.IntN(len(ids))]).Error
	}
	return db.Create(&Message{ChatID: w.pick(w.chats), SenderID: w.pick(w.users), Text: "x"}).Error
}

// clearReaders removes the read receipts of the messages matching where,
// through the association API, before those messages are deleted.
func clearReaders(db *gorm.DB, where string, args ...any) error {
	var ids []uint
	if err := db.Model(&Message{}).Where(where, args...).Pluck("id", &ids).Error; err != nil {
		return err
	}
	for _, id := range ids {
		if err := db.Model(&Message{ID: id}).Association("Readers").Clear(); err != nil {
			return err
		}
	}
	return nil
}

var errRollback = errors.New("rollback on purpose")

// step performs one write outside a transaction, or a transaction of a few
// writes that commits, rolls back, or commits around a failed nested
// transaction.
func (w *writer) step(t fataler) {
	t.Helper()
	r := w.r
	users, chats := slices.Clone(w.users), slices.Clone(w.chats)
	restore := func() { w.users, w.chats = users, chats }
	switch p := r.IntN(10); {
	case p < 4:
		if err := w.one(w.db); err != nil {
			t.Fatal(err)
		}
		w.refreshChats(t)
	default:
		n := 1 + r.IntN(5)
		rollback := p == 9
		nested := p == 8
		err := w.db.Transaction(func(tx *gorm.DB) error {
			for i := 0; i < n; i++ {
				if err := w.one(tx); err != nil {
					return err
				}
			}
			if nested {
				inner := slices.Clone(w.users)
				innerChats := slices.Clone(w.chats)
				_ = tx.Transaction(func(tx2 *gorm.DB) error {
					if err := w.one(tx2); err != nil {
						return err
					}
					return errRollback
				})
				w.users, w.chats = inner, innerChats
			}
			if rollback {
				return errRollback
			}
			return nil
		})
		switch {
		case errors.Is(err, errRollback):
			w.rollbacks++
			restore()
		case err != nil:
			t.Fatal(err)
		default:
			w.commits++
		}
		w.refreshChats(t)
	}
}

// refreshChats keeps the chat ids in line with the database (chats can be
// deleted).
func (w *writer) refreshChats(t fataler) {
	var ids []uint
	if err := w.db.Model(&Chat{}).Order("id").Pluck("id", &ids).Error; err != nil {
		t.Fatal(err)
	}
	w.chats = ids
	if len(w.chats) == 0 {
		if err := w.newChat(w.db); err != nil {
			t.Fatal(err)
		}
	}
}

// oracle serializes what a watcher must hold, straight from the database
// with GORM preloads and encoding/json.
func oracle(t *testing.T, db *gorm.DB, wt *watcher) json.RawMessage {
	t.Helper()
	uid, _ := strconv.Atoi(wt.user.ID)
	load := func(q *gorm.DB) *gorm.DB {
		return q.Preload("Members", func(q *gorm.DB) *gorm.DB { return q.Order("users.id") }).
			Preload("Messages", func(q *gorm.DB) *gorm.DB { return q.Order("id") }).
			Preload("Messages.Sender").
			Preload("Messages.Readers", func(q *gorm.DB) *gorm.DB { return q.Order("users.id") }).
			Preload("Drafts", func(q *gorm.DB) *gorm.DB { return q.Where("user_id = ?", uid).Order("id") })
	}
	var v any
	if wt.channel == "ChatList" {
		var chats []Chat
		if err := load(db).Order("id desc").Find(&chats).Error; err != nil {
			t.Fatal(err)
		}
		v = chats
	} else {
		var chats []Chat
		if err := load(db).Where("id = ?", wt.chatID).Find(&chats).Error; err != nil {
			t.Fatal(err)
		}
		if len(chats) == 1 {
			v = chats[0]
		}
	}
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// keyDiff lists the keys only one side holds.
func keyDiff(got, want map[string][]cache.Key) string {
	var b strings.Builder
	for _, side := range []struct {
		name string
		a, b map[string][]cache.Key
	}{{"extra", got, want}, {"missing", want, got}} {
		for anchor, ks := range side.a {
			for _, k := range ks {
				if !slices.Contains(side.b[anchor], k) {
					fmt.Fprintf(&b, " %s %s/%v", side.name, anchor, k)
				}
			}
		}
	}
	return b.String()
}

// sameJSON compares two JSON documents, treating null and [] as equal (Go
// encodes an empty preloaded slice as null) and ids as the state sends
// them (the oracle is encoding/json, which writes 64-bit ids as numbers;
// the state sends them as strings).
func sameJSON(t *testing.T, a, b json.RawMessage) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatalf("%v: %s", err, a)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	return reflect.DeepEqual(normalize(x), normalize(y))
}

func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, e := range x {
			if n, ok := e.(float64); ok && (k == "id" || strings.HasSuffix(k, "Id")) {
				e = strconv.FormatFloat(n, 'f', -1, 64)
			}
			out[k] = normalize(e)
		}
		return out
	case []any:
		if len(x) == 0 {
			return nil
		}
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = normalize(e)
		}
		return out
	}
	return v
}

// TestConvergenceConcurrent runs several writers at once while subscribers
// join and resume concurrently: snapshots taken while commits stream in
// must never lose or reorder a delta.
func TestConvergenceConcurrent(t *testing.T) {
	db := openSQLite(t)
	migrate(t, db)
	h := newHub(t, db)
	ctx := context.Background()
	base := seed(t)
	setup := &writer{db: db, r: rand.New(rand.NewPCG(base, 1))}
	for i := 0; i < 6; i++ {
		setup.newUser(db)
	}
	for i := 0; i < 4; i++ {
		setup.newChat(db)
	}
	opsPer := 400
	if testing.Short() {
		opsPer = 100
	}
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		watchers []*watcher
	)
	stop := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			w := &writer{db: db, r: rand.New(rand.NewPCG(base, uint64(g)+2)), users: slices.Clone(setup.users), chats: slices.Clone(setup.chats)}
			ft := &fatalT{T: t}
			for i := 0; i < opsPer && !ft.failed; i++ {
				w.step(ft)
			}
		}(g)
	}
	joined := make(chan struct{})
	go func() {
		defer close(joined)
		r := rand.New(rand.NewPCG(base, 99))
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			uid := setup.users[r.IntN(len(setup.users))]
			user := rx.User{ID: strconv.Itoa(int(uid))}
			var wt *watcher
			if i%3 == 0 {
				wt = &watcher{name: fmt.Sprintf("list#%d", i), channel: "ChatList", params: rx.NoParams{}, user: user}
			} else {
				cid := setup.chats[r.IntN(len(setup.chats))]
				wt = &watcher{name: fmt.Sprintf("chat%d#%d", cid, i), channel: "ChatChannel", params: ChatParams{ChatID: cid}, user: user, chatID: cid}
			}
			wt.start(t, h, false)
			mu.Lock()
			watchers = append(watchers, wt)
			if len(watchers) > 3 && r.IntN(3) == 0 {
				old := watchers[r.IntN(len(watchers))]
				old.stop()
				old.start(t, h, true)
			}
			mu.Unlock()
			time.Sleep(time.Duration(r.IntN(20)) * time.Millisecond)
		}
	}()
	wg.Wait()
	close(stop)
	<-joined
	if err := h.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	for _, wt := range watchers {
		wt.stop()
	}
	ref := reopen(t, db)
	for _, wt := range watchers {
		got, _ := wt.state.JSON()
		if want := oracle(t, ref, wt); !sameJSON(t, got, want) {
			t.Errorf("%s diverged\n got: %s\nwant: %s", wt.name, got, want)
		}
	}
	t.Logf("%d writers × %d ops, %d watchers", 4, opsPer, len(watchers))
}

// fataler is what the writer needs of a test.
type fataler interface {
	Helper()
	Fatal(args ...any)
}

// fatalT turns Fatal from a writer goroutine into Error plus a stop flag.
type fatalT struct {
	*testing.T
	failed bool
}

func (f *fatalT) Fatal(args ...any) { f.T.Error(args...); f.failed = true; runtime.Goexit() }
