package rx_test

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/cache"
	"github.com/rxgorm/rxgorm/cache/mongotest"
	"github.com/rxgorm/rxgorm/rx"
	"gorm.io/gorm"
)

// Faults: the database failing while the engine re-reads a commit,
// MongoDB hanging, Redis going away. Each test says what subscribers see,
// what is retried, and that nothing is lost once the fault is over.

// relTableFault makes the engine's reads of one table fail for real: when
// armed, read number failAt of the table renames it away (through a
// connection without the plugin) just before the query runs, so the
// database answers "no such table"; read number healAt renames it back
// before it runs (healAt 0: only heal does).
type relTableFault struct {
	table          string
	plain          *gorm.DB
	failAt, healAt int64
	armed          atomic.Bool
	reads          atomic.Int64
	mu             sync.Mutex
	away           bool
}

func relFault(t *testing.T, db *gorm.DB, table string, failAt, healAt int64) *relTableFault {
	f := &relTableFault{table: table, plain: reopen(t, db), failAt: failAt, healAt: healAt}
	onQuery(t, db, "rel:fault:"+table, func(_ context.Context, tb string) string {
		if !f.armed.Load() || tb != table {
			return tb
		}
		switch n := f.reads.Add(1); {
		case n == f.failAt:
			f.rename(true)
		case n == f.healAt:
			f.rename(false)
		}
		return tb
	})
	return f
}

func (f *relTableFault) rename(away bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.away == away {
		return
	}
	from, to := f.table, f.table+"_away"
	if !away {
		from, to = to, from
	}
	if err := f.plain.Exec(fmt.Sprintf("ALTER TABLE %s RENAME TO %s", from, to)).Error; err != nil {
		panic(fmt.Sprintf("rename %s: %v", from, err))
	}
	f.away = away
}

func (f *relTableFault) heal() { f.rename(false); f.armed.Store(false) }

// relOracle is a channel's state for user as a fresh process reads it
// from the database: JSON and instance keys.
func relOracle(t *testing.T, db *gorm.DB, channel string, params any, user rx.User) (string, map[string][]cache.Key) {
	t.Helper()
	h, err := rx.New(reopen(t, db), rx.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	h.Register(&ChatChannel{}, &ChatList{})
	sub, err := h.Subscribe(context.Background(), channel, params, user, rx.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := h.NewState(channel, user)
	h.Wait(context.Background())
	for len(sub.Events()) > 0 {
		st.Apply(<-sub.Events())
	}
	js, _ := st.JSON()
	return string(js), st.Keys()
}

// relClient applies a subscription's events to a State as they come.
type relClient struct {
	channel   string
	params    any
	mu        sync.Mutex
	st        *rx.State
	snapshots int // full snapshots after the first
	deltas    int
	done      chan struct{}
}

func relFollow(t *testing.T, h *rx.Hub, user rx.User) (*rx.Subscription, *relClient) {
	t.Helper()
	return relFollowOf(t, h, "ChatChannel", ChatParams{ChatID: 1}, user)
}

func relFollowOf(t *testing.T, h *rx.Hub, channel string, params any, user rx.User) (*rx.Subscription, *relClient) {
	t.Helper()
	sub, err := h.Subscribe(context.Background(), channel, params, user, rx.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := h.NewState(channel, user)
	c := &relClient{channel: channel, params: params, st: st, done: make(chan struct{})}
	h.Wait(context.Background())
	for len(sub.Events()) > 0 {
		st.Apply(<-sub.Events())
	}
	go func() {
		defer close(c.done)
		for ev := range sub.Events() {
			c.mu.Lock()
			c.st.Apply(ev)
			if ev.Snapshot {
				c.snapshots++
			} else {
				c.deltas++
			}
			c.mu.Unlock()
		}
	}()
	return sub, c
}

// converged waits until the client's state is the oracle's.
func (c *relClient) converged(t *testing.T, db *gorm.DB, user rx.User) {
	t.Helper()
	want, keys := relOracle(t, db, c.channel, c.params, user)
	var got string
	deadline := time.Now().Add(30 * time.Second)
	for {
		c.mu.Lock()
		js, _ := c.st.JSON()
		got = string(js)
		same := got == want && keyDiff(c.st.Keys(), keys) == ""
		diff := keyDiff(c.st.Keys(), keys)
		c.mu.Unlock()
		if same {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("client did not converge\n got %s\nwant %s\nkeys: %s", got, want, diff)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (c *relClient) counts() (snapshots, deltas int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.snapshots, c.deltas
}

// relChatFixture: users 1 and 2, chat 1 with user 1 as member and a
// message by user 1. User 2 is not in the chat's stream.
func relChatFixture(t *testing.T, db *gorm.DB) {
	t.Helper()
	migrate(t, db)
	db.Create(&User{Name: "ann"})
	db.Create(&User{Name: "bob"})
	db.Create(&Chat{Title: "x", Members: []User{{ID: 1}}})
	db.Create(&Message{ChatID: 1, SenderID: 1, Text: "first"})
	db.Create(&Draft{ChatID: 1, UserID: 1, Text: "draft"})
}

// A read of the database fails once during a flush, on SQLite and
// PostgreSQL:
//   - the commit's first re-read: the batch is retried and subscribers see
//     the delta as if nothing had happened;
//   - a read after the engine began updating a stream's membership (loading
//     a row that joins the stream, in the same batch as a delete): the
//     stream is reloaded and its subscribers get a fresh snapshot, without
//     the deleted row (a retry would have lost its tombstone).
func TestFaultReadFails(t *testing.T) {
	cases := []struct {
		name           string
		table          string
		failAt, healAt int64
		write          func(db *gorm.DB) error
		snapshots      int // fresh snapshots the subscriber gets
	}{
		{"first re-read", "messages", 1, 2, func(db *gorm.DB) error {
			return db.Model(&Message{ID: 1}).Update("text", "edited").Error
		}, 0},
		// Read 1 of users is the new message's readers list (before any
		// change to the stream), read 2 loads its sender into it.
		{"mid apply", "users", 2, 3, func(db *gorm.DB) error {
			return db.Transaction(func(tx *gorm.DB) error {
				if err := tx.Delete(&Message{}, 1).Error; err != nil {
					return err
				}
				return tx.Create(&Message{ChatID: 1, SenderID: 2, Text: "by bob, new to the stream"}).Error
			})
		}, 1},
	}
	for _, tc := range cases {
		for name, open := range map[string]func(testing.TB) *gorm.DB{"sqlite": openSQLite, "postgres": openPostgres, "mysql": openMySQL} {
			t.Run(tc.name+"/"+name, func(t *testing.T) {
				db := open(t)
				relChatFixture(t, db)
				h := newHub(t, db)
				user := rx.User{ID: "1"}
				sub, c := relFollow(t, h, user)
				f := relFault(t, db, tc.table, tc.failAt, tc.healAt)
				f.armed.Store(true)
				if err := tc.write(db); err != nil {
					t.Fatal(err)
				}
				h.Wait(context.Background())
				f.heal()
				if f.reads.Load() < tc.healAt {
					t.Fatalf("the fault did not fire (%d reads)", f.reads.Load())
				}
				c.converged(t, db, user)
				if s, d := c.counts(); s != tc.snapshots || d+s != 1 {
					t.Fatalf("want %d fresh snapshots and one event in all, got %d snapshots and %d deltas", tc.snapshots, s, d)
				}
				if sub.Err() != nil {
					t.Fatal(sub.Err())
				}
			})
		}
	}
}

// The database stays unreadable: subscribers are kept (no error), their
// stream is retried every ProbeInterval; a new subscription fails with
// internal; once the database answers, subscribers get a fresh snapshot
// holding every commit, and deltas flow again.
func TestFaultDatabaseDown(t *testing.T) {
	db := openSQLite(t)
	relChatFixture(t, db)
	h, err := rx.New(db, rx.Config{ProbeInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	h.Register(&ChatChannel{}, &ChatList{})
	user := rx.User{ID: "1"}
	sub, c := relFollow(t, h, user)
	lsub, list := relFollowOf(t, h, "ChatList", nil, user)
	f := relFault(t, db, "users", 1, 0)
	f.armed.Store(true)
	db.Create(&Message{ChatID: 1, SenderID: 2, Text: "by bob"}) // bob must be read: fails
	h.Wait(context.Background())
	for i := 0; i < 5; i++ {
		db.Create(&Message{ChatID: 1, SenderID: 1, Text: fmt.Sprint("during ", i)})
	}
	db.Model(&Message{ID: 1}).Update("text", "edited during the outage")
	db.Create(&Chat{Title: "created during the outage"}) // joins the list
	h.Wait(context.Background())
	_, err = h.Subscribe(context.Background(), "ChatChannel", ChatParams{ChatID: 1}, rx.User{ID: "2"}, rx.SubscribeOptions{})
	if rx.Public(err).Code != rx.CodeInternal {
		t.Fatalf("subscribing during the outage: want internal, got %v", err)
	}
	before := f.reads.Load()
	relEventually(t, func() bool { return f.reads.Load() >= before+3 }) // retries that fail
	if sub.Err() != nil {
		t.Fatalf("subscriber ended during the outage: %v", sub.Err())
	}
	stale, _ := c.counts()
	f.heal()
	c.converged(t, db, user)
	if s, _ := c.counts(); s != stale+1 {
		t.Fatalf("want one fresh snapshot after the outage, got %d", s-stale)
	}
	list.converged(t, db, user)
	db.Create(&Message{ChatID: 1, SenderID: 2, Text: "after"})
	c.converged(t, db, user)
	list.converged(t, db, user)
	if sub.Err() != nil || lsub.Err() != nil {
		t.Fatal(sub.Err(), lsub.Err())
	}
	t.Logf("%d reads of users failed or healed", f.reads.Load())
}

// Redis, the broker between nodes, goes away: group events cannot be
// published (the action calling Publish gets the error), deltas keep
// flowing (they do not depend on it); once Redis is back, group events
// reach every node's members again. Group events published during the
// outage are lost: they are ephemeral (at most once), unlike rows.
func TestFaultRedisDown(t *testing.T) {
	srv := startRedis(t)
	db := openSQLite(t)
	migrate(t, db)
	db.Create(&Chat{Title: "x"})
	prefix := fmt.Sprintf("rxrel:%d:", time.Now().UnixNano())
	log := &eventLog{}
	var hubs []*rx.Hub
	var dbs []*gorm.DB
	recovered := make(chan struct{}, 2)
	for i := 0; i < 2; i++ {
		b := redisBroker(t, srv.addr, prefix)
		b.OnRecover(func() { recovered <- struct{}{} })
		dbs = append(dbs, reopen(t, db))
		h, err := rx.New(dbs[i], rx.Config{Broker: b})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		h.Register(&ActiveChat{DB: db, Log: log})
		hubs = append(hubs, h)
	}
	ctx := context.Background()
	a, err := hubs[0].Subscribe(ctx, "ActiveChat", ChatParams{ChatID: 1}, rx.User{ID: "a"}, rx.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	next(t, a)
	has := func(e string) bool {
		for _, x := range log.all() {
			if x == e {
				return true
			}
		}
		return false
	}
	// Up: node 1 reaches the member on node 0.
	relEventually(t, func() bool {
		hubs[1].Publish(ctx, "chat-1", "two", typingEvent{Who: "before"})
		return has("two:before@a")
	})
	srv.stop()
	if err := hubs[1].Publish(ctx, "chat-1", "two", typingEvent{Who: "during"}); err == nil {
		t.Fatal("publish succeeded with Redis down")
	}
	// Deltas do not need Redis.
	dbs[0].Create(&Message{ChatID: 1, Text: "during the outage"})
	for {
		ev := next(t, a)
		if len(ev.Instances) > 0 && strings.Contains(dump(ev), "during the outage") {
			break
		}
	}
	srv.start(t)
	for i := 0; i < 2; i++ {
		select {
		case <-recovered:
		case <-time.After(20 * time.Second):
			t.Fatal("brokers did not recover")
		}
	}
	relEventually(t, func() bool {
		hubs[1].Publish(ctx, "chat-1", "two", typingEvent{Who: "after"})
		return has("two:after@a")
	})
	if has("two:during@a") {
		t.Fatal("an event published during the outage arrived")
	}
	if a.Err() != nil {
		t.Fatal(a.Err())
	}
}

// relProxy forwards TCP connections to a server and can hold every byte,
// as a hung or very slow server (or network) does.
type relProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	held   bool
	wake   chan struct{}
}

func startProxy(t *testing.T, target string) *relProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &relProxy{ln: ln, target: target, wake: make(chan struct{})}
	t.Cleanup(func() { ln.Close(); p.hold(false) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *relProxy) serve(c net.Conn) {
	defer c.Close()
	s, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	defer s.Close()
	done := make(chan struct{}, 2)
	pipe := func(dst, src net.Conn) {
		buf := make([]byte, 32<<10)
		for {
			n, err := src.Read(buf)
			p.wait()
			if n > 0 {
				if _, werr := dst.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		done <- struct{}{}
	}
	go pipe(s, c)
	go pipe(c, s)
	<-done
}

func (p *relProxy) wait() {
	for {
		p.mu.Lock()
		held, wake := p.held, p.wake
		p.mu.Unlock()
		if !held {
			return
		}
		<-wake
	}
}

func (p *relProxy) hold(h bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.held && !h {
		close(p.wake)
		p.wake = make(chan struct{})
	}
	p.held = h
}

// via returns uri with its host replaced by the proxy's address.
func (p *relProxy) via(t *testing.T, uri string) string {
	u, err := url.Parse(uri)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.ln.Addr().String()
	return u.String()
}

// MongoDB hangs (every byte held, as a frozen server or network would):
// store calls time out after the driver's timeout, the engine falls back
// to memory (subscribers see no error, deltas arrive late by about that
// timeout), and when MongoDB answers again the streams are rebuilt in it.
func TestFaultMongoSlow(t *testing.T) {
	srv := mongotest.NewServer(t)
	u, err := url.Parse(srv.URI())
	if err != nil {
		t.Fatal(err)
	}
	proxy := startProxy(t, u.Host)
	const timeout = 3 * time.Second // mongoStore's driver timeout
	store, _ := mongoStore(t, proxy.via(t, srv.URI()))
	db := openSQLite(t)
	relChatFixture(t, db)
	h, err := rx.New(db, rx.Config{Store: store, ProbeInterval: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	h.Register(&ChatChannel{})
	user := rx.User{ID: "1"}
	sub, c := relFollow(t, h, user)
	proxy.hold(true)
	start := time.Now()
	db.Create(&Message{ChatID: 1, SenderID: 1, Text: "while MongoDB hangs"})
	c.converged(t, db, user)
	late := time.Since(start)
	for i := 0; i < 3; i++ {
		db.Create(&Message{ChatID: 1, SenderID: 1, Text: fmt.Sprint("more ", i)})
	}
	c.converged(t, db, user)
	proxy.hold(false)
	stored := func(text string) func() bool {
		return func() bool {
			cs, err := store.Streams(context.Background())
			if err != nil || len(cs) != 1 {
				return false
			}
			snap, err := store.Snapshot(context.Background(), cs[0].Stream)
			return err == nil && strings.Contains(fmt.Sprint(snapTexts(snap)), text)
		}
	}
	relEventually(t, stored("more 2")) // rebuilt in MongoDB
	db.Create(&Message{ChatID: 1, SenderID: 1, Text: "after"})
	c.converged(t, db, user)
	relEventually(t, stored("after")) // and written to it again
	if sub.Err() != nil {
		t.Fatal(sub.Err())
	}
	t.Logf("first delta while MongoDB hung arrived after %v (driver timeout %v)", late.Round(time.Millisecond), timeout)
}

func snapTexts(s cache.Snapshot) []string {
	var out []string
	for _, in := range s.Instances {
		if in.Type == "Message" {
			out = append(out, string(in.Fields["text"]))
		}
	}
	return out
}

// relEventually waits for cond with a deadline generous enough for a loaded
// machine.
func relEventually(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
