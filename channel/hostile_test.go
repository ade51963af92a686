package channel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rxgorm/rxgorm/channel"
	"github.com/rxgorm/rxgorm/rx"
	"gorm.io/gorm"
)

// Regression tests for issue 14 (what a hostile client found against
// examples/chat), each over a real socket. Each failed on the code before
// the fix: see docs/RELIABILITY.md, "Hostile clients".

// HostileRoom is a room with a history action whose result grows with the
// room's posts, like examples/chat's history.
type HostileRoom struct {
	rx.Channel[Room, RoomParams]
	DB *gorm.DB
}

func (HostileRoom) Authorize(ctx context.Context, u rx.User, p RoomParams) error {
	if u.Anonymous() {
		return rx.Errorf(rx.CodeUnauthenticated, "sign in")
	}
	return nil
}

func (HostileRoom) TrackPresence() rx.PresenceOptions { return rx.PresenceOptions{} }

func (c *HostileRoom) Actions() []string { return []string{"History"} }

// History returns limit posts of the room from offset.
func (c *HostileRoom) History(ctx context.Context, offset, limit int) ([]Post, error) {
	var posts []Post
	err := c.DB.WithContext(ctx).Where("room_id = ?", c.Params().RoomID).Order("id").Offset(offset).Limit(limit).Find(&posts).Error
	return posts, err
}

// hostileEnv is a server with HostileRoom registered and room 1 created,
// its sockets given 4 KiB send buffers: a client that stops reading then
// fills them after kilobytes, not the megabytes loopback autotunes to.
func hostileEnv(t *testing.T, opts channel.Options) *env {
	t.Helper()
	e := newEnv(t, openSQLite, opts)
	if err := e.hub.Register(&HostileRoom{DB: e.db}); err != nil {
		t.Fatal(err)
	}
	e.db.Create(&Room{Name: "lobby", Public: true})
	e.http.Close()
	e.http = httptest.NewUnstartedServer(e.srv)
	e.http.Listener = smallBuffers{e.http.Listener}
	e.http.Start()
	e.url = "ws" + strings.TrimPrefix(e.http.URL, "http")
	return e
}

// stalledDial opens a raw socket with a 4 KiB receive buffer, for a client
// that does not read.
func stalledDial(t testing.TB, url string) (*websocket.Conn, error) {
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			_ = conn.(*net.TCPConn).SetReadBuffer(4096)
		}
		return conn, err
	}}
	conn, _, err := d.Dial(url, nil)
	if err == nil {
		t.Cleanup(func() { conn.Close() })
	}
	return conn, err
}

// waitNoSockets waits until the server holds no socket.
func waitNoSockets(t *testing.T, e *env, why string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for e.srv.Sockets() > 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%s: %d sockets still open after 15 s", why, e.srv.Sockets())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// rawNext reads the next frame's bytes.
func rawNext(t *testing.T, conn *websocket.Conn) []byte {
	t.Helper()
	conn.SetReadDeadline(time.Now().Add(15 * time.Second))
	_, data, err := conn.ReadMessage()
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return data
}

// Hole 1: error frames echoed client input at length (6.24 bytes out per
// byte in, with JSON escaping). Now an error frame quotes at most a short
// prefix, and ids are at most 128 bytes.
func TestHostileErrorEcho(t *testing.T) {
	e := newEnv(t, openSQLite, channel.Options{})
	big := strings.Repeat("<", 64<<10)
	conn, _, err := websocket.DefaultDialer.Dial(e.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	frames := []string{
		fmt.Sprintf(`{"type":%q}`, big),                                 // before hello: unknown type
		fmt.Sprintf(`{"type":"hello","v":1,%q:1}`, big),                 // unknown field
		fmt.Sprintf(`{"type":"hello","v":1,"token":%q}`, e.tokens["1"]), // sign in
		fmt.Sprintf(`{"type":"unsub","id":%q}`, big),                    // a huge id
		fmt.Sprintf(`{"type":"sub","id":1,"channel":%q}`, big),          // a huge channel name
		fmt.Sprintf(`{"type":"call","id":1,"sub":%q,"action":"x"}`, big[:100]),
	}
	for _, f := range frames {
		if err := conn.WriteMessage(websocket.TextMessage, []byte(f)); err != nil {
			t.Fatal(err)
		}
		data := rawNext(t, conn)
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			t.Fatal(err)
		}
		if m["type"] == "welcome" {
			continue
		}
		if len(data) > 1024 {
			t.Fatalf("a %d-byte frame was answered with a %d-byte %v frame: %.200s", len(f), len(data), m["type"], data)
		}
		if m["type"] != "error" && m["type"] != "result" {
			t.Fatalf("want an error, got %.200s", data)
		}
	}
}

// Hole 1 and 2: the send queue was bounded in frames, not bytes. A client
// that calls and stops reading is closed once its answers pass
// Options.SendBudget, long before the write timeout.
func TestHostileSendBudget(t *testing.T) {
	e := hostileEnv(t, channel.Options{SendBudget: 256 << 10, WriteTimeout: time.Minute})
	text := strings.Repeat("y", 2000)
	for i := 0; i < 20; i++ {
		e.db.Create(&Post{RoomID: 1, AuthorID: 1, Text: text})
	}
	conn, err := stalledDial(t, e.url)
	if err != nil {
		t.Fatal(err)
	}
	conn.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"type":"hello","v":1,"token":%q}`, e.tokens["1"]))
	conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"sub","id":"h","channel":"HostileRoom","params":{"roomId":1}}`))
	// 40 KB a result, 50 of them: 2 MB, 8 times the budget. Old code
	// queued them all (1,024 frames) and held them for the write timeout.
	for i := 0; i < 50; i++ {
		if err := conn.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"type":"call","id":%d,"sub":"h","action":"history","args":[0,20]}`, i)); err != nil {
			break // closed already
		}
	}
	waitNoSockets(t, e, "a client over its send budget")
}

// Hole 2: a call's result had no size limit. Now a result over
// Options.MaxResult is answered with too_large.
func TestHostileResultLimit(t *testing.T) {
	e := hostileEnv(t, channel.Options{MaxResult: 16 << 10})
	text := strings.Repeat("z", 2000)
	for i := 0; i < 20; i++ {
		e.db.Create(&Post{RoomID: 1, AuthorID: 1, Text: text})
	}
	c := e.login("1")
	c.relSubscribe("h", "HostileRoom", `{"roomId":1}`)
	c.send(`{"type":"call","id":1,"sub":"h","action":"history","args":[0,2]}`)
	if m, _ := c.relUntil("result"); m["id"] != float64(1) || m["error"] != nil || len(m["value"].([]any)) != 2 {
		t.Fatalf("a small result: %.300v", m)
	}
	c.send(`{"type":"call","id":2,"sub":"h","action":"history","args":[0,20]}`)
	m, _ := c.relUntil("result")
	er, _ := m["error"].(map[string]any)
	if m["id"] != float64(2) || er == nil || er["code"] != string(rx.CodeTooLarge) {
		t.Fatalf("want too_large, got %.300s", fmt.Sprint(m))
	}
}

// Hole 4: one pong before hello pushed the read deadline forward by two
// ping intervals. The hello deadline is now absolute from the upgrade.
func TestHostileHelloDeadline(t *testing.T) {
	e := newEnv(t, openSQLite, channel.Options{HelloTimeout: 300 * time.Millisecond, PingInterval: time.Hour})
	c := e.dial(nil)
	if err := c.conn.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	c.send(`{"type":"nope"}`) // nor does a frame of any other kind
	c.expect("error")
	if code := c.waitClose(); code != channel.CloseAuthFailed {
		t.Fatalf("close code %d, want %d", code, channel.CloseAuthFailed)
	}
}

// Hole 4: there was no connection cap. Upgrades past the per-IP or the
// global cap are refused with HTTP 503; a freed slot is reusable.
func TestHostileConnectionCaps(t *testing.T) {
	dial := func(e *env) (int, error) {
		conn, resp, err := websocket.DefaultDialer.Dial(e.url, nil)
		if err == nil {
			t.Cleanup(func() { conn.Close() })
			return http.StatusSwitchingProtocols, nil
		}
		if resp == nil {
			return 0, err
		}
		return resp.StatusCode, nil
	}
	for _, tc := range []struct {
		name string
		opts channel.Options
	}{
		{"per IP", channel.Options{MaxConnectionsPerIP: 2, MaxConnections: -1}},
		{"global", channel.Options{MaxConnectionsPerIP: -1, MaxConnections: 2}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, openSQLite, tc.opts)
			a := e.login("1")
			e.dial(nil) // waiting for hello: counted too
			if code, err := dial(e); code != http.StatusServiceUnavailable {
				t.Fatalf("third socket: HTTP %d (%v), want 503", code, err)
			}
			// Both sockets are registered before one closes: the dial
			// returns on the 101, maybe before the server counts it.
			deadline := time.Now().Add(15 * time.Second)
			for e.srv.Sockets() < 2 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			a.conn.Close()
			for e.srv.Sockets() > 1 && time.Now().Before(deadline) {
				time.Sleep(10 * time.Millisecond)
			}
			if code, err := dial(e); code != http.StatusSwitchingProtocols {
				t.Fatalf("after one closed: HTTP %d (%v)", code, err)
			}
		})
	}
}

// Weak point: the bad-frame counter reset on any good frame. Bad frames
// are now limited by rate: MaxProtocolErrors of them in a minute close the
// socket, whatever comes between them.
func TestHostileBadFrameRate(t *testing.T) {
	e := newEnv(t, openSQLite, channel.Options{MaxProtocolErrors: 5})
	c := e.login("1")
	for i := 0; i < 4; i++ {
		c.send(`{`)
		if m := c.expect("error"); m["code"] != "bad_request" {
			t.Fatalf("%v", m)
		}
		c.send(`{"type":"unsub","id":"none"}`) // a good frame
		if m := c.expect("error"); m["code"] != "not_found" {
			t.Fatalf("%v", m)
		}
	}
	c.send(`{`)
	if code := c.waitClose(); code != channel.ClosePolicyViolation {
		t.Fatalf("close code %d, want %d", code, channel.ClosePolicyViolation)
	}
	// Before hello, frames other than hello count as bad too.
	c = e.dial(nil)
	for i := 0; i < 5; i++ {
		c.send(`{"type":"sub","id":1,"channel":"RoomChannel"}`)
	}
	if code := c.waitClose(); code != channel.ClosePolicyViolation {
		t.Fatalf("before hello: close code %d, want %d", code, channel.ClosePolicyViolation)
	}
}

// Weak point: pipelining n subscriptions of one stream on one socket sent
// n² presence frames (each new subscription changed the user's count, and
// every subscription heard of it). Presence now counts a user's sockets,
// not subscriptions: each subscription gets one list, and one more per
// real change.
func TestHostilePresencePipelined(t *testing.T) {
	const n = 200
	e := hostileEnv(t, channel.Options{})
	c := e.login("1")
	for i := 0; i < n; i++ {
		c.send(`{"type":"sub","id":"s%d","channel":"HostileRoom","params":{"roomId":1}}`, i)
	}
	presence, done, joined := 0, 0, map[any]bool{}
	for done < n {
		switch m := c.next(); m["type"] {
		case "error":
			t.Fatalf("%v", m)
		case "presence":
			presence++
		case "done":
			done++
		}
	}
	// Another user joins: every subscription hears of it, after all the
	// lists sent before (one socket's frames keep the engine's order).
	other := e.login("3")
	other.relSubscribe("o", "HostileRoom", `{"roomId":1}`)
	for len(joined) < n {
		m := c.next()
		if m["type"] == "error" {
			t.Fatalf("%v", m)
		}
		if m["type"] != "presence" {
			continue
		}
		presence++
		users := m["users"].([]any)
		if len(users) == 2 {
			joined[m["sub"]] = true
		}
		for _, u := range users {
			if u := u.(map[string]any); u["connections"] != float64(1) {
				t.Fatalf("user %v has %v connections, want 1: one socket", u["user"], u["connections"])
			}
		}
	}
	t.Logf("%d subscriptions: %d presence frames", n, presence)
	if presence > 2*n {
		t.Fatalf("%d subscriptions got %d presence frames, want at most %d", n, presence, 2*n)
	}
}
