package app

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
	"github.com/rxgorm/rxgorm/channel"
	"github.com/rxgorm/rxgorm/rx"
	"github.com/rxgorm/rxgorm/rx/rxtest/dsn"
	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"
)

// The tests drive the app as its clients do: every user subscribes to
// their Home (and to chats) through the Go API, calls actions on those
// subscriptions, and the tests assert on the state each subscriber
// rebuilds from its events and on the notices in its runtime state.

var bg = context.Background()

// env is one app on a fresh SQLite file.
type env struct {
	t      *testing.T
	app    *App
	closed *closer
}

// closer records the users whose sessions the app revoked (as a whole:
// RevokeUser, or RevokeOthers with the token kept), told by TokenAuth.
type closer struct {
	mu    sync.Mutex
	users []string
}

func (c *closer) revoked(r channel.Revocation) {
	if r.User == "" {
		return
	}
	c.mu.Lock()
	c.users = append(c.users, r.User)
	c.mu.Unlock()
}

func (c *closer) all() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.users)
}

// eachDB runs a test on SQLite, on PostgreSQL and on MariaDB. A missing
// server is a failure, not a skip (set RXGORM_POSTGRES_DSN or
// RXGORM_MYSQL_DSN to use another one).
func eachDB(t *testing.T, f func(t *testing.T, e *env)) {
	t.Run("sqlite", func(t *testing.T) { f(t, newEnv(t, openSQLite(t))) })
	t.Run("postgres", func(t *testing.T) { f(t, newEnv(t, openPostgres(t))) })
	t.Run("mysql", func(t *testing.T) { f(t, newEnv(t, openMySQL(t))) })
}

// openMySQL opens a private database on the MariaDB server.
func openMySQL(t *testing.T) *gorm.DB {
	return openMySQLDSN(t, createMySQLDatabase(t))
}

// openMySQLDSN opens a MariaDB or MySQL database through OpenMySQL, the
// app's own opener, closed at the end, with at most 8 connections.
func openMySQLDSN(t *testing.T, dsn string) *gorm.DB {
	db, err := OpenMySQL(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := db.DB(); err == nil {
		s.SetMaxOpenConns(8)
	}
	t.Cleanup(func() {
		if s, err := db.DB(); err == nil {
			s.Close()
		}
	})
	return db
}

// createMySQLDatabase creates a private database on the MariaDB server,
// dropped at the end (after the connections opened later are closed), and
// returns the DSN that uses it.
func createMySQLDatabase(t *testing.T) string {
	name := fmt.Sprintf("chat_%d_%d_%d", os.Getpid(), time.Now().UnixMilli()%1e6, schemaSeq.Add(1))
	admin, err := OpenMySQL(dsn.MySQL())
	if err != nil {
		t.Fatalf("mysql (set RXGORM_MYSQL_DSN): %v", err)
	}
	if err := admin.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4").Error; err != nil {
		t.Fatalf("mysql (set RXGORM_MYSQL_DSN): %v", err)
	}
	t.Cleanup(func() {
		admin.Exec("DROP DATABASE " + name)
		if s, err := admin.DB(); err == nil {
			s.Close()
		}
	})
	cfg, err := mysqldriver.ParseDSN(dsn.MySQL())
	if err != nil {
		t.Fatal(err)
	}
	cfg.DBName = name
	return cfg.FormatDSN()
}

func openSQLite(t *testing.T) *gorm.DB {
	return openSQLiteAt(t, filepath.Join(t.TempDir(), "chat.db"))
}

// openSQLiteAt opens the SQLite database at path, closed at the end.
func openSQLiteAt(t *testing.T, path string) *gorm.DB {
	db, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if sqlDB, err := db.DB(); err == nil {
			sqlDB.Close()
		}
	})
	return db
}

func pgDSN() string {
	if dsn := os.Getenv("RXGORM_POSTGRES_DSN"); dsn != "" {
		return dsn
	}
	return "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable"
}

var schemaSeq atomic.Int64

// openPostgres opens a private schema in the test database, dropped at the
// end.
func openPostgres(t *testing.T) *gorm.DB {
	return openPostgresDSN(t, createSchema(t))
}

// createSchema creates a private schema in the test database, dropped at
// the end (after the connections opened later are closed), and returns the
// DSN that uses it.
func createSchema(t *testing.T) string {
	schema := fmt.Sprintf("chat_%d_%d_%d", os.Getpid(), time.Now().UnixMilli()%1e6, schemaSeq.Add(1))
	admin, err := OpenPostgres(pgDSN())
	if err != nil {
		t.Fatalf("postgres (set RXGORM_POSTGRES_DSN): %v", err)
	}
	if err := admin.Exec("CREATE SCHEMA " + schema).Error; err != nil {
		t.Fatalf("postgres: %v", err)
	}
	t.Cleanup(func() {
		admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		if s, err := admin.DB(); err == nil {
			s.Close()
		}
	})
	return pgDSN() + " search_path=" + schema
}

// openPostgresDSN opens a PostgreSQL database, closed at the end, with at
// most 20 connections.
func openPostgresDSN(t *testing.T, dsn string) *gorm.DB {
	db, err := OpenPostgres(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if s, err := db.DB(); err == nil {
		s.SetMaxOpenConns(8) // other packages test on the same server at once (max_connections 100)
	}
	t.Cleanup(func() {
		if s, err := db.DB(); err == nil {
			s.Close()
		}
	})
	return db
}

func newEnv(t *testing.T, db *gorm.DB) *env {
	t.Helper()
	return newEnvWith(t, db, Options{BcryptCost: bcrypt.MinCost})
}

func newEnvWith(t *testing.T, db *gorm.DB, opts Options) *env {
	t.Helper()
	a, err := New(db, opts)
	if err != nil {
		t.Fatal(err)
	}
	c := &closer{}
	a.Tokens.OnRevoke(c.revoked)
	t.Cleanup(func() { a.Close() })
	return &env{t: t, app: a, closed: c}
}

// person is a registered user with their Home subscription.
type person struct {
	*User
	home *watch
}

const password = "secret-password"

// user registers a user and subscribes them to their home.
func (e *env) user(name string) *person {
	e.t.Helper()
	u, err := e.app.Register(bg, Registration{Username: name, Password: password, DisplayName: strings.ToUpper(name[:1]) + name[1:]})
	if err != nil {
		e.t.Fatalf("register %s: %v", name, err)
	}
	p := &person{User: u}
	p.home = e.watch("HomeChannel", HomeParams{UserID: u.ID}, u.ID)
	return p
}

// openChat subscribes p to a chat.
func (e *env) openChat(p *person, chatID uint) *watch {
	e.t.Helper()
	return e.watch("ChatChannel", ChatParams{ChatID: chatID}, p.ID)
}

// watch is a Go subscription whose events are applied as they arrive.
type watch struct {
	t   *testing.T
	sub *rx.Subscription
	mu  sync.Mutex
	st  *rx.State
	rt  map[string]json.RawMessage
	who []rx.Present // the stream's presence, on channels that track it
}

func (e *env) watch(channel string, params any, uid uint) *watch {
	e.t.Helper()
	user := rx.User{ID: idString(uid)}
	sub, err := e.app.Hub.Subscribe(bg, channel, params, user, rx.SubscribeOptions{})
	if err != nil {
		e.t.Fatalf("subscribe %s %v as %d: %v", channel, params, uid, err)
	}
	st, err := e.app.Hub.NewState(channel, user)
	if err != nil {
		e.t.Fatal(err)
	}
	w := &watch{t: e.t, sub: sub, st: st, rt: map[string]json.RawMessage{}}
	ready := make(chan struct{})
	go func() {
		defer close(ready) // also if the subscription ends early
		first := true
		for ev := range sub.Events() {
			w.mu.Lock()
			if ev.Presence != nil {
				w.who = ev.Presence.Users
			} else if ev.Runtime != nil {
				for k, v := range ev.Runtime {
					w.rt[k] = v
				}
			} else {
				w.st.Apply(ev)
			}
			w.mu.Unlock()
			// Subscribe sends the snapshot, then the runtime state.
			if first && ev.Runtime != nil {
				first = false
				ready <- struct{}{}
			}
		}
	}()
	select {
	case <-ready:
	case <-time.After(5 * time.Second):
		e.t.Fatalf("no snapshot for %s %v", channel, params)
	}
	e.t.Cleanup(sub.Close)
	return w
}

// decode decodes the rebuilt state into v and reports whether it exists.
func (w *watch) decode(v any) bool {
	w.mu.Lock()
	js, err := w.st.JSON()
	w.mu.Unlock()
	if err != nil {
		w.t.Fatal(err)
	}
	if string(js) == "null" {
		return false
	}
	if err := rx.Unmarshal(js, v); err != nil {
		w.t.Fatalf("%v: %s", err, js)
	}
	return true
}

func (w *watch) json() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	js, _ := w.st.JSON()
	return string(js)
}

// home is a Home subscription's state.
func (w *watch) home() Home {
	var h Home
	w.decode(&h)
	return h
}

// refused reports whether the subscription ended with forbidden: a
// re-check of Authorize (the subscriber is no longer a member) ended it.
func (w *watch) refused() bool {
	return code(w.sub.Err()) == rx.CodeForbidden
}

// chat is a Chat subscription's state, nil once the chat is gone or the
// subscription was refused (what a client shows: no chat).
func (w *watch) chat() *Chat {
	var c Chat
	if w.refused() || !w.decode(&c) {
		return nil
	}
	return &c
}

// runtime decodes a runtime field.
func (w *watch) runtime(key string, v any) {
	w.mu.Lock()
	raw := w.rt[key]
	w.mu.Unlock()
	if len(raw) > 0 {
		if err := rx.Unmarshal(raw, v); err != nil {
			w.t.Fatal(err)
		}
	}
}

func (w *watch) notices() []Notice {
	var ns []Notice
	w.runtime("notices", &ns)
	return ns
}

// hasNotice reports whether a notice of kind whose text contains text
// arrived.
func (w *watch) hasNotice(kind, text string) bool {
	for _, n := range w.notices() {
		if n.Kind == kind && strings.Contains(n.Text, text) {
			return true
		}
	}
	return false
}

// closed reports whether the subscriber is out of the chat: told so by
// the runtime state, or refused by a re-check.
func (w *watch) closed() bool {
	var c bool
	w.runtime("closed", &c)
	return c || w.refused()
}

// call runs an action with JSON-encoded arguments and decodes its result.
func call[T any](w *watch, action string, args ...any) (T, error) {
	var out T
	raw := make([]json.RawMessage, len(args))
	for i, a := range args {
		b, err := json.Marshal(a)
		if err != nil {
			w.t.Fatal(err)
		}
		raw[i] = b
	}
	v, err := w.sub.Call(bg, action, raw)
	if err != nil {
		return out, err
	}
	if v != nil {
		b, err := json.Marshal(v)
		if err != nil {
			w.t.Fatal(err)
		}
		if err := rx.Unmarshal(b, &out); err != nil {
			w.t.Fatalf("%s result: %v: %s", action, err, b)
		}
	}
	return out, nil
}

// must runs an action that must succeed.
func must[T any](w *watch, action string, args ...any) T {
	w.t.Helper()
	v, err := call[T](w, action, args...)
	if err != nil {
		w.t.Fatalf("%s%v: %v", action, args, err)
	}
	return v
}

// refuse runs an action that must fail with code and a message containing
// msg.
func refuse(w *watch, code rx.Code, msg, action string, args ...any) {
	w.t.Helper()
	_, err := call[json.RawMessage](w, action, args...)
	if e := rx.Public(err); e == nil || e.Code != code || !strings.Contains(e.Message, msg) {
		w.t.Fatalf("%s%v: got %v, want %s %q", action, args, err, code, msg)
	}
}

// eventually polls check until it returns nil, for up to 5 s.
func eventually(t *testing.T, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: %v", what, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// befriend makes a and b friends through the invitation flow and returns
// their private chat's id.
func (e *env) befriend(a, b *person) uint {
	e.t.Helper()
	inv := must[FriendInvitation](a.home, "inviteFriend", b.Username, "")
	f := must[Friendship](b.home, "acceptFriendInvitation", inv.ID)
	return f.ChatID
}

// Small accessors of states.

func friendIDs(h Home) []uint {
	var ids []uint
	for _, g := range h.FriendGroups {
		for _, f := range g.Friends {
			ids = append(ids, f.FriendID)
		}
	}
	slices.Sort(ids)
	return ids
}

func groupOf(h Home, friendID uint) string {
	for _, g := range h.FriendGroups {
		for _, f := range g.Friends {
			if f.FriendID == friendID {
				return g.Name
			}
		}
	}
	return ""
}

func chatEntry(h Home, chatID uint) *UserChatRelation {
	for i := range h.Chats {
		if h.Chats[i].ChatID == chatID {
			return &h.Chats[i]
		}
	}
	return nil
}

func chatInvitation(h Home, id uint) *ChatInvitation {
	for i := range h.ChatInvitations {
		if h.ChatInvitations[i].ID == id {
			return &h.ChatInvitations[i]
		}
	}
	return nil
}

func userIDs(us []User) []uint {
	ids := make([]uint, len(us))
	for i, u := range us {
		ids[i] = u.ID
	}
	slices.Sort(ids)
	return ids
}

func uids(xs ...uint) []uint {
	slices.Sort(xs)
	return xs
}

// want returns nil if got equals want, else an error showing both.
func want[T comparable](what string, got, want T) error {
	if got != want {
		return fmt.Errorf("%s: got %v, want %v", what, got, want)
	}
	return nil
}

func wantIDs(what string, got, want []uint) error {
	if !slices.Equal(got, want) {
		return fmt.Errorf("%s: got %v, want %v", what, got, want)
	}
	return nil
}
