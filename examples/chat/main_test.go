package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"image/png"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rxgorm/rxgorm/channel"
	"github.com/rxgorm/rxgorm/examples/chat/app"
	"github.com/rxgorm/rxgorm/rx"
	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"
)

// urlWriter hands the first line run prints to the test.
type urlWriter struct {
	once sync.Once
	ch   chan string
}

func (w *urlWriter) Write(p []byte) (int, error) {
	w.once.Do(func() { w.ch <- strings.TrimSpace(string(p)) })
	return len(p), nil
}

// startCommand runs the command on a free port and a fresh data
// directory (with cfg's other fields), and returns its URL and a function
// that stops it and checks that it stopped cleanly.
func startCommand(t *testing.T, cfg config) (string, func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &urlWriter{ch: make(chan string, 1)}
	done := make(chan error, 1)
	cfg.addr, cfg.data = "127.0.0.1:0", t.TempDir()
	go func() { done <- run(ctx, cfg, out) }()
	var url string
	select {
	case line := <-out.ch:
		_, url, _ = strings.Cut(line, ": ")
	case err := <-done:
		t.Fatalf("run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("no URL printed")
	}
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("printed %q", url)
	}
	stop := func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("run did not stop")
		}
	}
	return url, stop
}

// TestRun starts the command on a free port and a fresh data directory
// (SQLite), and with -mysql on a fresh MariaDB database, reads its URL and
// the embedded UI, and stops it.
func TestRun(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) { testRun(t, config{}) })
	t.Run("mysql", func(t *testing.T) { testRun(t, config{mysql: mysqlDatabase(t)}) })
}

func testRun(t *testing.T, cfg config) {
	url, stop := startCommand(t, cfg)
	defer stop()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `<div id="root">`) {
		t.Fatalf("GET /: %d %s", resp.StatusCode, body)
	}
	// The page's script and style sheet are embedded too.
	assets := regexp.MustCompile(`(?:src|href)="/(assets/[^"]+)"`).FindAllStringSubmatch(string(body), -1)
	if len(assets) < 2 {
		t.Fatalf("GET /: no script and style sheet in %s", body)
	}
	for _, a := range assets {
		code, ctype, _ := get(t, url+a[1], "")
		if code != http.StatusOK || !(strings.HasPrefix(ctype, "text/javascript") || strings.HasPrefix(ctype, "text/css")) {
			t.Fatalf("GET /%s: %d %s", a[1], code, ctype)
		}
	}
	// The #DELETED user exists from the start, with its avatar.
	resp, err = http.Get(url + "api/avatar/%23DELETED.png")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("#DELETED avatar: %d", resp.StatusCode)
	}
}

// testServer is the HTTP server of a fresh app.
func testServer(t *testing.T) (*httptest.Server, *app.App) {
	t.Helper()
	hs, _, a := testServerAll(t)
	return hs, a
}

// testServerAll is testServer with the server, to change its limits.
func testServerAll(t *testing.T) (*httptest.Server, *server, *app.App) {
	t.Helper()
	db, err := app.OpenSQLite(filepath.Join(t.TempDir(), "chat.db"))
	if err != nil {
		t.Fatal(err)
	}
	return testServerOn(t, db)
}

// testServerOn is testServerAll on the database db, closed at the end.
func testServerOn(t *testing.T, db *gorm.DB) (*httptest.Server, *server, *app.App) {
	t.Helper()
	a, err := app.New(db, app.Options{BcryptCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	static, err := fs.Sub(dist, "web/dist")
	if err != nil {
		t.Fatal(err)
	}
	s := newServer(a, static)
	hs := httptest.NewServer(s)
	t.Cleanup(func() {
		s.rx.Shutdown(context.Background())
		hs.Close()
		a.Close()
		if sqlDB, err := db.DB(); err == nil {
			sqlDB.Close()
		}
	})
	return hs, s, a
}

// post sends JSON and decodes the JSON answer.
func post(t *testing.T, url, token string, body any, out any) int {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		raw, _ := io.ReadAll(resp.Body)
		if len(raw) > 0 {
			if err := rx.Unmarshal(raw, out); err != nil {
				t.Fatalf("%s: %v: %s", url, err, raw)
			}
		}
	}
	return resp.StatusCode
}

func get(t *testing.T, url, token string) (int, string, []byte) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), body
}

// getJSON GETs url with a Bearer token or an rx_token cookie and decodes
// the JSON answer into out.
func getJSON(t *testing.T, url, bearer, cookie string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	if cookie != "" {
		req.AddCookie(&http.Cookie{Name: tokenCookie, Value: cookie})
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return resp.StatusCode
}

type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func TestREST(t *testing.T) {
	hs, _ := testServer(t)
	var s session
	if code := post(t, hs.URL+"/api/register", "", app.Registration{Username: "alice", Password: "secret-1", DisplayName: "Alice"}, &s); code != http.StatusCreated || s.Token == "" || s.User.Username != "alice" {
		t.Fatalf("register: %d %+v", code, s)
	}
	var e apiError
	if code := post(t, hs.URL+"/api/register", "", app.Registration{Username: "alice", Password: "secret-1"}, &e); code != http.StatusBadRequest || e.Error.Code != "bad_request" || !strings.Contains(e.Error.Message, "taken") {
		t.Fatalf("duplicate register: %d %+v", code, e)
	}
	req, _ := http.NewRequest(http.MethodPost, hs.URL+"/api/register", strings.NewReader("{"))
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("bad JSON: %v %v", resp, err)
	}
	if code := post(t, hs.URL+"/api/login", "", credentials{"alice", "wrong-one"}, &e); code != http.StatusUnauthorized || e.Error.Code != "unauthenticated" {
		t.Fatalf("wrong login: %d %+v", code, e)
	}
	var l session
	if code := post(t, hs.URL+"/api/login", "", credentials{"alice", "secret-1"}, &l); code != http.StatusOK || l.Token == "" || l.Token == s.Token {
		t.Fatalf("login: %d %+v", code, l)
	}

	// Who is signed in, by the Bearer token or by the cookie.
	var me app.User
	if code := getJSON(t, hs.URL+"/api/me", l.Token, "", &me); code != http.StatusOK || me.Username != "alice" || me.ID != s.User.ID {
		t.Fatalf("me: %d %+v", code, me)
	}
	me = app.User{}
	if code := getJSON(t, hs.URL+"/api/me", "", l.Token, &me); code != http.StatusOK || me.Username != "alice" {
		t.Fatalf("me by cookie: %d %+v", code, me)
	}
	if code, _, body := get(t, hs.URL+"/api/me", ""); code != http.StatusUnauthorized || strings.Contains(string(body), "alice") {
		t.Fatalf("me without token: %d %s", code, body)
	}

	// The home as REST, with the token.
	code, ctype, body := get(t, hs.URL+"/api/home", l.Token)
	if code != http.StatusOK || ctype != "application/json" || !strings.Contains(string(body), `"username":"alice"`) || strings.Contains(string(body), "asswor") {
		t.Fatalf("home: %d %s %s", code, ctype, body)
	}
	if code, _, _ := get(t, hs.URL+"/api/home", ""); code != http.StatusUnauthorized {
		t.Fatalf("home without token: %d", code)
	}
	if code, _, _ := get(t, hs.URL+"/api/chats/1", l.Token); code != http.StatusNotFound {
		t.Fatalf("someone else's chat: %d", code)
	}
	if code, _, _ := get(t, hs.URL+"/api/chats/x", l.Token); code != http.StatusBadRequest {
		t.Fatalf("bad chat id: %d", code)
	}

	// Avatars.
	code, ctype, body = get(t, hs.URL+s.User.Avatar, "")
	if code != http.StatusOK || ctype != "image/png" {
		t.Fatalf("avatar: %d %s", code, ctype)
	}
	if _, err := png.Decode(bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/api/avatar/no%20body.png", "/api/avatar/alice.gif"} {
		if code, _, _ := get(t, hs.URL+p, ""); code != http.StatusNotFound {
			t.Fatalf("%s: %d", p, code)
		}
	}

	// Logout revokes that token only.
	if code := post(t, hs.URL+"/api/logout", l.Token, nil, nil); code != http.StatusNoContent {
		t.Fatalf("logout: %d", code)
	}
	if code, _, _ := get(t, hs.URL+"/api/home", l.Token); code != http.StatusUnauthorized {
		t.Fatalf("home after logout: %d", code)
	}
	if code, _, _ := get(t, hs.URL+"/api/home", s.Token); code != http.StatusOK {
		t.Fatalf("other session after logout: %d", code)
	}
	if code := post(t, hs.URL+"/api/logout", "", nil, nil); code != http.StatusUnauthorized {
		t.Fatalf("logout without token: %d", code)
	}
}

// wsClient is a protocol v1 client on a real WebSocket.
type wsClient struct {
	t       *testing.T
	name    string
	conn    *websocket.Conn
	frames  chan map[string]any
	closed  chan int         // the close code
	pending []map[string]any // frames received, not awaited yet
	nextID  int
}

// dialWS opens the WebSocket of the server at base (http://host:port) as
// the user of token, and says hello.
func dialWS(t *testing.T, base, name, token string) *wsClient {
	t.Helper()
	url := "ws" + strings.TrimPrefix(strings.TrimSuffix(base, "/"), "http") + "/rx"
	conn, _, err := websocket.DefaultDialer.Dial(url, http.Header{"Authorization": {"Bearer " + token}})
	if err != nil {
		t.Fatal(err)
	}
	c := &wsClient{t: t, name: name, conn: conn, frames: make(chan map[string]any, 1000), closed: make(chan int, 1)}
	go func() {
		defer close(c.frames)
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					c.closed <- ce.Code
				}
				return
			}
			var m map[string]any
			if err := rx.Unmarshal(data, &m); err != nil {
				t.Errorf("%s: bad frame %s", name, data)
				return
			}
			c.frames <- m
		}
	}()
	t.Cleanup(func() { conn.Close() })
	c.send(map[string]any{"type": "hello", "v": 1})
	c.await("welcome", func(m map[string]any) bool { return m["type"] == "welcome" })
	return c
}

func (c *wsClient) send(v any) {
	b, _ := json.Marshal(v)
	if err := c.conn.WriteMessage(websocket.TextMessage, b); err != nil {
		c.t.Fatalf("%s: %v", c.name, err)
	}
}

// await returns the first frame, received earlier and not awaited yet or
// arriving within 5 s, that satisfies pred.
func (c *wsClient) await(what string, pred func(map[string]any) bool) map[string]any {
	c.t.Helper()
	for i, m := range c.pending {
		if pred(m) {
			c.pending = append(c.pending[:i], c.pending[i+1:]...)
			return m
		}
	}
	timeout := time.After(5 * time.Second)
	for {
		select {
		case m, ok := <-c.frames:
			if !ok {
				c.t.Fatalf("%s: socket closed waiting for %s", c.name, what)
			}
			if pred(m) {
				return m
			}
			c.pending = append(c.pending, m)
		case <-timeout:
			c.t.Fatalf("%s: no %s within 5s", c.name, what)
		}
	}
}

// subscribe subscribes and waits for the end of the initial state.
func (c *wsClient) subscribe(id, channel string, params any) {
	c.t.Helper()
	c.send(map[string]any{"type": "sub", "id": id, "channel": channel, "params": params})
	c.await("done of "+id, func(m map[string]any) bool {
		if m["type"] == "error" {
			c.t.Fatalf("%s: subscribe %s: %v", c.name, channel, m)
		}
		return m["type"] == "done" && m["sub"] == id
	})
}

// call calls an action and returns its result value.
func (c *wsClient) call(sub, action string, args ...any) json.RawMessage {
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
	if m["error"] != nil {
		c.t.Fatalf("%s: %s: %v", c.name, action, m["error"])
	}
	b, _ := json.Marshal(m["value"])
	return b
}

// instance finds an instance of type typ in a snapshot or delta frame
// whose fields satisfy pred.
func instance(m map[string]any, typ string, pred func(fields map[string]any) bool) bool {
	if m["type"] != "delta" && m["type"] != "snapshot" {
		return false
	}
	list, _ := m["instances"].([]any)
	for _, x := range list {
		in, _ := x.(map[string]any)
		fields, _ := in["fields"].(map[string]any)
		if in["type"] == typ && fields != nil && pred(fields) {
			return true
		}
	}
	return false
}

// TestEndToEnd drives two users over real WebSockets: register, log in,
// hello, subscribe to their homes, befriend, and chat. On SQLite through
// the app's HTTP server, and on MariaDB through the command with -mysql.
func TestEndToEnd(t *testing.T) {
	t.Run("sqlite", func(t *testing.T) {
		hs, _ := testServer(t)
		testEndToEnd(t, hs.URL)
	})
	t.Run("mysql", func(t *testing.T) {
		url, stop := startCommand(t, config{mysql: mysqlDatabase(t), bcryptCost: bcrypt.MinCost})
		defer stop()
		testEndToEnd(t, strings.TrimSuffix(url, "/"))
	})
}

func testEndToEnd(t *testing.T, base string) {
	var alice, bob session
	post(t, base+"/api/register", "", app.Registration{Username: "alice", Password: "secret-1"}, &alice)
	post(t, base+"/api/register", "", app.Registration{Username: "bob", Password: "secret-2"}, &bob)
	if code := post(t, base+"/api/login", "", credentials{"bob", "secret-2"}, &bob); code != http.StatusOK {
		t.Fatalf("login: %d", code)
	}
	wa, wb := dialWS(t, base, "alice", alice.Token), dialWS(t, base, "bob", bob.Token)
	wa.subscribe("home", "HomeChannel", map[string]any{"userId": alice.User.ID})
	wb.subscribe("home", "HomeChannel", map[string]any{"userId": bob.User.ID})

	// Someone else's home is refused, on the socket, which stays open.
	wb.send(map[string]any{"type": "sub", "id": "x", "channel": "HomeChannel", "params": map[string]any{"userId": alice.User.ID}})
	wb.await("forbidden", func(m map[string]any) bool {
		return m["type"] == "error" && m["sub"] == "x" && m["code"] == "forbidden"
	})

	// Alice invites bob: the invitation reaches bob's socket as a delta.
	var inv app.FriendInvitation
	rx.Unmarshal(wa.call("home", "inviteFriend", "bob", "hello!"), &inv)
	wb.await("friend invitation", func(m map[string]any) bool {
		return instance(m, "FriendInvitation", func(f map[string]any) bool { return f["message"] == "hello!" })
	})
	wb.await("notice", func(m map[string]any) bool {
		return m["type"] == "runtime" && m["key"] == "notices" && strings.Contains(fmt.Sprint(m["value"]), "alice wants to be your friend")
	})

	// Bob accepts: both homes get the private chat.
	var f app.Friendship
	rx.Unmarshal(wb.call("home", "acceptFriendInvitation", inv.ID), &f)
	hasChat := func(m map[string]any) bool {
		return instance(m, "UserChatRelation", func(fl map[string]any) bool { return fl["chatId"] == fmt.Sprint(f.ChatID) })
	}
	wa.await("alice's chat entry", hasChat)
	wb.await("bob's chat entry", hasChat)

	// A message in the private chat appears on the other socket.
	wa.subscribe("chat", "ChatChannel", map[string]any{"chatId": f.ChatID})
	wb.subscribe("chat", "ChatChannel", map[string]any{"chatId": f.ChatID})
	wa.call("chat", "sendMessage", "hello bob")
	wb.await("the message", func(m map[string]any) bool {
		return m["channel"] == "ChatChannel" && instance(m, "Message", func(fl map[string]any) bool { return fl["text"] == "hello bob" })
	})
	// And bob's unread count reaches his home only.
	wb.await("unread count", func(m map[string]any) bool {
		return m["channel"] == "HomeChannel" && instance(m, "UserChatRelation", func(fl map[string]any) bool { return fl["unreadCount"] == float64(1) })
	})

	// Alice deletes her account: her socket is closed with 4001 (before
	// the call's result: the close is the answer), bob's home loses the
	// friendship and gets a notice.
	wa.send(map[string]any{"type": "call", "id": 99, "sub": "home", "action": "deleteAccount", "args": []any{"secret-1"}})
	select {
	case code := <-wa.closed:
		if code != channel.CloseAuthFailed {
			t.Fatalf("alice's socket closed with %d", code)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("alice's socket stayed open")
	}
	wb.await("friend deleted notice", func(m map[string]any) bool {
		return m["type"] == "runtime" && strings.Contains(fmt.Sprint(m["value"]), "alice deleted their account")
	})
	code, _, body := get(t, base+"/api/home", bob.Token)
	if code != http.StatusOK || strings.Contains(string(body), `"friendId"`) || strings.Contains(string(body), "alice") {
		t.Fatalf("bob's home after alice left: %s", body)
	}
	// Alice's token is gone.
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/rx", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.WriteJSON(map[string]any{"type": "hello", "v": 1, "token": alice.Token})
	var m map[string]any
	if err := conn.ReadJSON(&m); err != nil || m["code"] != "unauthenticated" {
		t.Fatalf("hello with a deleted user's token: %v %v", m, err)
	}
}

// -postgres and -mysql together are refused before anything is opened.
func TestDatabaseFlagsExclusive(t *testing.T) {
	err := run(context.Background(), config{postgres: "host=127.0.0.1", mysql: "root@tcp(127.0.0.1:3306)/test", data: t.TempDir()}, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "exclusive") {
		t.Fatalf("run with -postgres and -mysql: %v, want an error", err)
	}
}
