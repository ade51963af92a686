package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
	"github.com/rxgorm/rxgorm/channel"
	"github.com/rxgorm/rxgorm/examples/chat/app"
	"github.com/rxgorm/rxgorm/rx"
	"github.com/rxgorm/rxgorm/rx/rxtest/dsn"
)

// Issue 14 part C: leaving, being removed or being deleted ends the
// streams; logout signs out every tab; presence drops left members. Over
// the real HTTP server and WebSocket, on SQLite, PostgreSQL and MariaDB.

// eachServer runs f against the HTTP server of a fresh app on SQLite, on a
// private schema of the PostgreSQL test database and on a private MariaDB
// database (as the app's tests: RXGORM_POSTGRES_DSN, RXGORM_MYSQL_DSN, a
// missing database is a failure).
func eachServer(t *testing.T, f func(t *testing.T, base string)) {
	t.Run("sqlite", func(t *testing.T) {
		hs, _ := testServer(t)
		f(t, hs.URL)
	})
	t.Run("postgres", func(t *testing.T) {
		hs := pgServer(t)
		f(t, hs.URL)
	})
	t.Run("mysql", func(t *testing.T) {
		db, err := app.OpenMySQL(mysqlDatabase(t))
		if err != nil {
			t.Fatal(err)
		}
		hs, _, _ := testServerOn(t, db)
		f(t, hs.URL)
	})
}

// mysqlDatabase creates a private database on the MariaDB test server
// (RXGORM_MYSQL_DSN, a missing server is a failure), dropped at the end,
// and returns its DSN.
func mysqlDatabase(t *testing.T) string {
	t.Helper()
	cfg, err := mysqldriver.ParseDSN(dsn.MySQL())
	if err != nil {
		t.Fatalf("mysql (set RXGORM_MYSQL_DSN): %v", err)
	}
	name := fmt.Sprintf("chatmain_%d_%d_%d", os.Getpid(), time.Now().UnixMilli()%1e6, pgSchemaSeq.Add(1))
	admin, err := app.OpenMySQL(dsn.MySQL())
	if err != nil {
		t.Fatalf("mysql (set RXGORM_MYSQL_DSN): %v", err)
	}
	if err := admin.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4").Error; err != nil {
		t.Fatalf("mysql (set RXGORM_MYSQL_DSN): %v", err)
	}
	t.Cleanup(func() { // after the server's cleanup, registered later
		admin.Exec("DROP DATABASE " + name)
		if s, err := admin.DB(); err == nil {
			s.Close()
		}
	})
	cfg.DBName = name
	return cfg.FormatDSN()
}

var pgSchemaSeq atomic.Int64

func pgServer(t *testing.T) *httptest.Server {
	t.Helper()
	dsn := os.Getenv("RXGORM_POSTGRES_DSN")
	if dsn == "" {
		dsn = "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable"
	}
	schema := fmt.Sprintf("chatmain_%d_%d_%d", os.Getpid(), time.Now().UnixMilli()%1e6, pgSchemaSeq.Add(1))
	admin, err := app.OpenPostgres(dsn)
	if err != nil {
		t.Fatalf("postgres (set RXGORM_POSTGRES_DSN): %v", err)
	}
	if err := admin.Exec("CREATE SCHEMA " + schema).Error; err != nil {
		t.Fatalf("postgres: %v", err)
	}
	t.Cleanup(func() { // after the server's cleanup, registered later
		admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		if s, err := admin.DB(); err == nil {
			s.Close()
		}
	})
	db, err := app.OpenPostgres(dsn + " search_path=" + schema)
	if err != nil {
		t.Fatal(err)
	}
	hs, _, _ := testServerOn(t, db)
	return hs
}

// signup registers a user and returns the session.
func signup(t *testing.T, base, name string) session {
	t.Helper()
	var s session
	if code := post(t, base+"/api/register", "", app.Registration{Username: name, Password: "secret-1"}, &s); code != http.StatusCreated {
		t.Fatalf("register %s: %d", name, code)
	}
	return s
}

// signin logs a user in again: a second token, as another browser.
func signin(t *testing.T, base, name string) session {
	t.Helper()
	var s session
	if code := post(t, base+"/api/login", "", credentials{name, "secret-1"}, &s); code != http.StatusOK {
		t.Fatalf("login %s: %d", name, code)
	}
	return s
}

// befriend makes b a's friend (both subscribed to "home") and returns
// their private chat's id.
func befriend(a, b *wsClient, bName string) uint {
	a.t.Helper()
	var inv app.FriendInvitation
	if err := rx.Unmarshal(a.call("home", "inviteFriend", bName, "hi"), &inv); err != nil || inv.ID == 0 {
		a.t.Fatalf("invitation: %v", err)
	}
	var f app.Friendship
	if err := rx.Unmarshal(b.call("home", "acceptFriendInvitation", inv.ID), &f); err != nil || f.ChatID == 0 {
		a.t.Fatalf("friendship: %v", err)
	}
	return f.ChatID
}

// groupChat has c create a group chat with members and returns its id.
func groupChat(c *wsClient, name string, members ...uint) uint {
	c.t.Helper()
	var ref app.ChatRef
	if err := rx.Unmarshal(c.call("home", "createGroupChat", name, members), &ref); err != nil || ref.ID == 0 {
		c.t.Fatalf("create group chat: %v", err)
	}
	return ref.ID
}

// awaitRefused waits for the error frame forbidden that ends sub.
func (c *wsClient) awaitRefused(sub string) {
	c.t.Helper()
	c.await(sub+" refused", func(m map[string]any) bool {
		return m["type"] == "error" && m["sub"] == sub && m["code"] == "forbidden"
	})
}

// awaitPresence waits for a presence frame of sub whose users are exactly
// ids, and forgets the earlier presence frames of sub not awaited.
func (c *wsClient) awaitPresence(sub string, ids ...uint) {
	c.t.Helper()
	want := make([]string, len(ids))
	for i, id := range ids {
		want[i] = fmt.Sprint(id)
	}
	c.await(fmt.Sprintf("presence of %s: %v", sub, want), func(m map[string]any) bool {
		if m["type"] != "presence" || m["sub"] != sub {
			return false
		}
		list, _ := m["users"].([]any)
		var got []string
		for _, x := range list {
			u, _ := x.(map[string]any)
			got = append(got, fmt.Sprint(u["user"]))
		}
		return fmt.Sprint(got) == fmt.Sprint(want)
	})
	c.drop(func(m map[string]any) bool { return m["type"] == "presence" && m["sub"] == sub })
}

// drop forgets the frames received and not awaited that satisfy pred.
func (c *wsClient) drop(pred func(map[string]any) bool) {
	kept := c.pending[:0]
	for _, m := range c.pending {
		if !pred(m) {
			kept = append(kept, m)
		}
	}
	c.pending = kept
}

// callError calls an action and returns the error of its result (nil if
// it succeeded).
func (c *wsClient) callError(sub, action string, args ...any) map[string]any {
	c.t.Helper()
	c.nextID++
	id := c.nextID
	if args == nil {
		args = []any{}
	}
	c.send(map[string]any{"type": "call", "id": id, "sub": sub, "action": action, "args": args})
	m := c.await(fmt.Sprintf("result of %s", action), func(m map[string]any) bool {
		return m["type"] == "result" && m["id"] == float64(id)
	})
	e, _ := m["error"].(map[string]any)
	return e
}

// awaitClosed waits for the server to close the socket and checks the code.
func (c *wsClient) awaitClosed(code int) {
	c.t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case got := <-c.closed:
			if got != code {
				c.t.Fatalf("%s: socket closed with %d, want %d", c.name, got, code)
			}
			return
		case _, ok := <-c.frames:
			if !ok {
				select {
				case got := <-c.closed:
					if got != code {
						c.t.Fatalf("%s: socket closed with %d, want %d", c.name, got, code)
					}
				default:
					c.t.Fatalf("%s: socket ended without a close code", c.name)
				}
				return
			}
		case <-timeout:
			c.t.Fatalf("%s: socket still open after 5s", c.name)
		}
	}
}

// message reports whether m is a delta or snapshot of chat carrying a
// message with text.
func message(m map[string]any, chat uint, text string) bool {
	return m["channel"] == "ChatChannel" && m["anchor"] == fmt.Sprint(chat) &&
		instance(m, "Message", func(f map[string]any) bool { return f["text"] == text })
}

// A member who leaves a group chat gets forbidden on its subscription and
// no later message of it; the others' presence drops them.
func TestLeaveEndsChatStream(t *testing.T) {
	eachServer(t, func(t *testing.T, base string) {
		alice, bob := signup(t, base, "alice"), signup(t, base, "bob")
		wa, wb := dialWS(t, base, "alice", alice.Token), dialWS(t, base, "bob", bob.Token)
		wa.subscribe("home", "HomeChannel", map[string]any{"userId": alice.User.ID})
		wb.subscribe("home", "HomeChannel", map[string]any{"userId": bob.User.ID})
		private := befriend(wa, wb, "bob")
		group := groupChat(wa, "plans", bob.User.ID)
		wa.subscribe("g", "ChatChannel", map[string]any{"chatId": group})
		wb.subscribe("g", "ChatChannel", map[string]any{"chatId": group})
		wb.subscribe("p", "ChatChannel", map[string]any{"chatId": private})
		wa.awaitPresence("g", alice.User.ID, bob.User.ID)

		wb.drop(func(map[string]any) bool { return true }) // what came before the leave
		wb.send(map[string]any{"type": "call", "id": 1000, "sub": "g", "action": "leave", "args": []any{}})
		wb.awaitRefused("g")
		wa.awaitPresence("g", alice.User.ID)

		// A message after the leave reaches alice, not bob; a message in
		// their private chat, sent later, marks the point by which it
		// would have reached him.
		wa.call("g", "sendMessage", "after bob left")
		wa.await("alice's message", func(m map[string]any) bool { return message(m, group, "after bob left") })
		wa.subscribe("p", "ChatChannel", map[string]any{"chatId": private})
		wa.call("p", "sendMessage", "sync")
		wb.await("the sync message", func(m map[string]any) bool { return message(m, private, "sync") })
		for _, m := range wb.pending {
			if m["sub"] == "g" && m["type"] != "result" || message(m, group, "after bob left") {
				t.Fatalf("bob got %v after leaving", m)
			}
		}
		// The ended subscription takes no more calls.
		if e := wb.callError("g", "sendMessage", "still here?"); e == nil {
			t.Fatal("bob sent a message to the chat he left")
		}
	})
}

// Members removed from a chat (the owner deletes the group, a friend
// deletes the friendship and with it the private chat) get forbidden on
// its subscription.
func TestRemovedMemberStreamsEnd(t *testing.T) {
	eachServer(t, func(t *testing.T, base string) {
		alice, bob := signup(t, base, "alice"), signup(t, base, "bob")
		wa, wb := dialWS(t, base, "alice", alice.Token), dialWS(t, base, "bob", bob.Token)
		wa.subscribe("home", "HomeChannel", map[string]any{"userId": alice.User.ID})
		wb.subscribe("home", "HomeChannel", map[string]any{"userId": bob.User.ID})
		private := befriend(wa, wb, "bob")
		group := groupChat(wa, "plans", bob.User.ID)
		wb.subscribe("g", "ChatChannel", map[string]any{"chatId": group})
		wb.subscribe("p", "ChatChannel", map[string]any{"chatId": private})

		wa.subscribe("g", "ChatChannel", map[string]any{"chatId": group})
		wa.call("g", "delete")
		wb.awaitRefused("g")
		wa.awaitRefused("g")

		wa.call("home", "deleteFriend", bob.User.ID)
		wb.awaitRefused("p")
		for _, m := range wb.pending {
			if m["type"] == "error" && m["sub"] != nil {
				t.Fatalf("bob: %v", m)
			}
		}
		// His home lives on.
		wb.call("home", "createFriendGroup", "still here")
	})
}

// Deleting an account closes every socket of the user with 4001 (two
// logins, two sockets); the private chats with the user end for the peer
// (forbidden), and the group chats' presence drops the user.
func TestDeleteAccountEndsStreams(t *testing.T) {
	eachServer(t, func(t *testing.T, base string) {
		alice, bob, carol := signup(t, base, "alice"), signup(t, base, "bob"), signup(t, base, "carol")
		alice2 := signin(t, base, "alice")
		wa, wa2 := dialWS(t, base, "alice", alice.Token), dialWS(t, base, "alice 2", alice2.Token)
		wb, wc := dialWS(t, base, "bob", bob.Token), dialWS(t, base, "carol", carol.Token)
		for _, c := range []struct {
			w  *wsClient
			id uint
		}{{wa, alice.User.ID}, {wb, bob.User.ID}, {wc, carol.User.ID}} {
			c.w.subscribe("home", "HomeChannel", map[string]any{"userId": c.id})
		}
		private := befriend(wb, wa, "alice")
		befriend(wb, wc, "carol")
		group := groupChat(wb, "plans", alice.User.ID, carol.User.ID)
		wb.subscribe("g", "ChatChannel", map[string]any{"chatId": group})
		wb.subscribe("p", "ChatChannel", map[string]any{"chatId": private})
		wa2.subscribe("g", "ChatChannel", map[string]any{"chatId": group})
		wb.awaitPresence("g", alice.User.ID, bob.User.ID)

		wa.send(map[string]any{"type": "call", "id": 1000, "sub": "home", "action": "deleteAccount", "args": []any{"secret-1"}})
		wa.awaitClosed(channel.CloseAuthFailed)
		wa2.awaitClosed(channel.CloseAuthFailed)
		wb.awaitRefused("p")
		wb.awaitPresence("g", bob.User.ID)
		wb.await("alice out of the members", func(m map[string]any) bool {
			return m["type"] == "delta" && m["anchor"] == fmt.Sprint(group) &&
				instance(m, "Chat", func(f map[string]any) bool {
					ms, ok := f["members"].([]any)
					return ok && len(ms) == 2 && !strings.Contains(fmt.Sprint(ms), fmt.Sprint(alice.User.ID))
				})
		})
	})
}

// Sign out everywhere (/api/logout-all, the web UI's "Sign out") closes
// every socket of the user with 4001, whichever token it used; /api/logout
// closes those of its token only (the tabs of one browser).
func TestLogoutSignsOutEveryTab(t *testing.T) {
	eachServer(t, func(t *testing.T, base string) {
		one := signup(t, base, "alice")
		two := signin(t, base, "alice")
		three := signin(t, base, "alice")
		tab1, tab1b := dialWS(t, base, "tab 1", one.Token), dialWS(t, base, "tab 1b", one.Token)
		tab2, tab3 := dialWS(t, base, "tab 2", two.Token), dialWS(t, base, "tab 3", three.Token)
		for _, c := range []*wsClient{tab1, tab1b, tab2, tab3} {
			c.subscribe("home", "HomeChannel", map[string]any{"userId": one.User.ID})
		}

		// This browser only: both tabs of token one.
		if code := post(t, base+"/api/logout", one.Token, nil, nil); code != http.StatusNoContent {
			t.Fatalf("logout: %d", code)
		}
		tab1.awaitClosed(channel.CloseAuthFailed)
		tab1b.awaitClosed(channel.CloseAuthFailed)
		tab2.call("home", "createFriendGroup", "still signed in")

		// Everywhere.
		if code := post(t, base+"/api/logout-all", two.Token, nil, nil); code != http.StatusNoContent {
			t.Fatalf("logout-all: %d", code)
		}
		tab2.awaitClosed(channel.CloseAuthFailed)
		tab3.awaitClosed(channel.CloseAuthFailed)
		var me app.User
		for _, tok := range []string{one.Token, two.Token, three.Token} {
			if code := getJSON(t, base+"/api/me", tok, "", &me); code != http.StatusUnauthorized {
				t.Fatalf("me after logout-all: %d", code)
			}
		}
		if code := post(t, base+"/api/logout-all", two.Token, nil, nil); code != http.StatusUnauthorized {
			t.Fatalf("logout-all with a revoked token: %d", code)
		}
	})
}
