package channel_test

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rxgorm/rxgorm/channel"
)

func TestAuth(t *testing.T) {
	e := newEnv(t, openSQLite, channel.Options{HelloTimeout: 300 * time.Millisecond, AllowedOrigins: []string{"https://app.example"}})

	t.Run("token in hello", func(t *testing.T) { e.login("1") })
	t.Run("bearer header", func(t *testing.T) {
		c := e.dial(http.Header{"Authorization": {"Bearer " + e.tokens["2"]}})
		c.send(`{"type":"hello","v":1}`)
		if w := c.expect("welcome"); w["user"] != "2" || w["maxMessage"] != float64(1<<20) {
			t.Fatalf("welcome: %v", w)
		}
	})
	t.Run("cookie", func(t *testing.T) {
		c := e.dial(http.Header{"Cookie": {"rx_token=" + e.tokens["3"]}})
		c.send(`{"type":"hello","v":1}`)
		if w := c.expect("welcome"); w["user"] != "3" {
			t.Fatalf("welcome: %v", w)
		}
	})
	t.Run("bad token", func(t *testing.T) {
		c := e.dial(nil)
		c.send(`{"type":"hello","v":1,"token":"nope"}`)
		if m := c.expect("error"); m["code"] != "unauthenticated" {
			t.Fatalf("%v", m)
		}
		if code := c.waitClose(); code != channel.CloseAuthFailed {
			t.Fatalf("close code %d", code)
		}
	})
	t.Run("revoked token", func(t *testing.T) {
		tok, _ := e.auth.Create(context.Background(), "9")
		e.auth.Revoke(context.Background(), tok)
		c := e.dial(nil)
		c.send(`{"type":"hello","v":1,"token":%q}`, tok)
		c.expect("error")
		if code := c.waitClose(); code != channel.CloseAuthFailed {
			t.Fatalf("close code %d", code)
		}
	})
	t.Run("no token", func(t *testing.T) {
		c := e.dial(nil)
		c.send(`{"type":"hello","v":1}`)
		if m := c.expect("error"); m["code"] != "unauthenticated" {
			t.Fatalf("%v", m)
		}
		c.waitClose()
	})
	t.Run("hello timeout", func(t *testing.T) {
		c := e.dial(nil)
		if code := c.waitClose(); code != channel.CloseAuthFailed {
			t.Fatalf("close code %d", code)
		}
	})
	t.Run("calls before hello, hello twice", func(t *testing.T) {
		c := e.dial(nil)
		c.send(`{"type":"sub","id":1,"channel":"RoomChannel","params":{"roomId":1}}`)
		if m := c.expect("error"); m["code"] != "unauthenticated" || !strings.Contains(m["message"].(string), "hello first") {
			t.Fatalf("%v", m)
		}
		c.send(`{"type":"hello","v":1,"token":%q}`, e.tokens["1"])
		c.expect("welcome")
		c.send(`{"type":"hello","v":1,"token":%q}`, e.tokens["2"])
		if m := c.expect("error"); m["code"] != "bad_request" {
			t.Fatalf("%v", m)
		}
	})
	t.Run("version", func(t *testing.T) {
		c := e.dial(nil)
		c.send(`{"type":"hello","v":2,"token":%q}`, e.tokens["1"])
		c.expect("error")
		if code := c.waitClose(); code != channel.CloseBadVersion {
			t.Fatalf("close code %d", code)
		}
	})
	t.Run("origins", func(t *testing.T) {
		_, resp, err := websocket.DefaultDialer.Dial(e.url, http.Header{"Origin": {"https://evil.example"}})
		if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("cross-origin upgrade not refused: %v", err)
		}
		conn, _, err := websocket.DefaultDialer.Dial(e.url, http.Header{"Origin": {"https://app.example"}})
		if err != nil {
			t.Fatalf("allowed origin refused: %v", err)
		}
		conn.Close()
		host := strings.TrimPrefix(e.http.URL, "http://")
		conn, _, err = websocket.DefaultDialer.Dial(e.url, http.Header{"Origin": {"http://" + host}})
		if err != nil {
			t.Fatalf("same origin refused: %v", err)
		}
		conn.Close()
	})
}

func TestSubscriptions(t *testing.T) {
	for name, open := range dbs {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, open, channel.Options{SnapshotBatch: 2})
			room := Room{Name: "lobby", Public: true}
			e.db.Create(&room)
			secret := Room{Name: "secret"}
			e.db.Create(&secret)
			e.db.Create(&Post{RoomID: room.ID, AuthorID: 1, Text: "one"})
			e.db.Create(&Post{RoomID: room.ID, AuthorID: 2, Text: "two"})
			e.db.Create(&Note{RoomID: room.ID, UserID: 2, Text: "bob's note"})

			c := e.login("1")
			// Forbidden, unknown channel, bad params, duplicate id: errors
			// with the sub id, and the socket stays open.
			c2 := e.login("2")
			c2.send(`{"type":"sub","id":"x","channel":"RoomChannel","params":{"roomId":%d}}`, secret.ID)
			if m := c2.expect("error"); m["code"] != "forbidden" || m["sub"] != "x" {
				t.Fatalf("%v", m)
			}
			c.send(`{"type":"sub","id":9,"channel":"Nope"}`)
			if m := c.expect("error"); m["code"] != "not_found" || m["sub"] != float64(9) {
				t.Fatalf("%v", m)
			}
			c.send(`{"type":"sub","id":9,"channel":"RoomChannel","params":{"roomId":"one"}}`)
			if m := c.expect("error"); m["code"] != "bad_request" {
				t.Fatalf("%v", m)
			}

			// Snapshot in batches of 2, then done.
			c.send(`{"type":"sub","id":"s1","channel":"RoomChannel","params":{"roomId":%d}}`, room.ID)
			got := map[string]map[string]any{}
			var version float64
			for i := 0; ; i++ {
				m := c.expect("snapshot")
				if m["sub"] != "s1" || m["anchor"] != fmt.Sprint(room.ID) || m["reset"] != (i == 0) {
					t.Fatalf("snapshot frame %d: %v", i, m)
				}
				version = m["version"].(float64)
				for k, v := range instances(m) {
					got[k] = v
				}
				if m["more"] == false {
					break
				}
			}
			c.expect("runtime")
			c.expect("done")
			for _, k := range []string{"Room/1", "Post/1", "Post/2", "User/1", "User/2"} {
				if got[k] == nil {
					t.Errorf("snapshot lacks %s: %v", k, got)
				}
			}
			if len(got) != 5 {
				t.Errorf("snapshot has %d instances (bob's note must not be there): %v", len(got), got)
			}
			if fields := got["Room/1"]["fields"].(map[string]any); fmt.Sprint(fields["notes"]) != "[]" {
				t.Errorf("room lists another user's note: %v", fields)
			}
			c.send(`{"type":"sub","id":"s1","channel":"RoomChannel","params":{"roomId":%d}}`, room.ID)
			if m := c.expect("error"); m["code"] != "bad_request" || m["sub"] != "s1" {
				t.Fatalf("duplicate id: %v", m)
			}

			// A write: one delta frame naming the stream, with the new post
			// in full and the room's list change only.
			e.db.Create(&Post{RoomID: room.ID, AuthorID: 3, Text: "three"})
			d := c.expect("delta")
			if d["channel"] != "RoomChannel" || d["anchor"] != "1" || d["version"].(float64) != version+1 {
				t.Fatalf("delta: %v", d)
			}
			ins := instances(d)
			if ins["Post/3"]["fields"].(map[string]any)["text"] != "three" || ins["User/3"] == nil || len(ins["Room/1"]["fields"].(map[string]any)) != 1 {
				t.Fatalf("delta instances: %v", ins)
			}
			// A second subscription of the same stream on the socket gets its
			// own snapshot, but deltas come once per stream.
			c.send(`{"type":"sub","id":"s2","channel":"RoomChannel","params":{"roomId":%d}}`, room.ID)
			for m := c.expect("snapshot"); m["more"] == true; m = c.expect("snapshot") {
			}
			c.expect("runtime")
			c.expect("done")
			e.db.Model(&Post{ID: 1}).Update("text", "ONE")
			d = c.expect("delta")
			if d["version"].(float64) != version+2 {
				t.Fatalf("delta: %v", d)
			}
			c.quiet(e.hub)

			// Unsubscribe stops deltas at once.
			c.send(`{"type":"unsub","id":"s1"}`)
			c.expect("unsubscribed")
			c.send(`{"type":"unsub","id":"s2"}`)
			c.expect("unsubscribed")
			e.db.Model(&Post{ID: 1}).Update("text", "one again")
			c.quiet(e.hub)
		})
	}
}

func TestListChannel(t *testing.T) {
	e := newEnv(t, openSQLite, channel.Options{})
	a := Room{Name: "a", Public: true}
	e.db.Create(&a)
	e.db.Create(&Room{Name: "private"})
	c := e.login("1")
	c.send(`{"type":"sub","id":1,"channel":"RoomList"}`)
	if m := c.expect("anchors"); fmt.Sprint(m["ids"]) != "[1]" {
		t.Fatalf("%v", m)
	}
	c.expect("snapshot")
	c.expect("done")
	// A new public room joins the list at its place; a private one doesn't.
	e.db.Create(&Room{Name: "hidden"})
	b := Room{Name: "b", Public: true}
	e.db.Create(&b)
	if m := c.expect("anchors"); fmt.Sprint(m["ids"]) != "[4 1]" {
		t.Fatalf("%v", m)
	}
	if m := c.expect("snapshot"); m["anchor"] != "4" || m["reset"] != true {
		t.Fatalf("%v", m)
	}
	// Making it private removes it; deleting the other empties the list.
	e.db.Model(&b).Update("public", false)
	e.hub.Wait(context.Background())
	e.db.Delete(&a)
	for {
		m := c.next()
		if m["type"] == "anchors" && fmt.Sprint(m["ids"]) == "[]" {
			break
		}
		if m["type"] != "anchors" && m["type"] != "delta" {
			t.Fatalf("unexpected %v", m)
		}
	}
}

func TestResume(t *testing.T) {
	for name, open := range dbs {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, open, channel.Options{})
			room := Room{Name: "lobby", Public: true}
			e.db.Create(&room)
			e.db.Create(&Post{RoomID: room.ID, AuthorID: 1, Text: "keep"})
			e.db.Create(&Post{RoomID: room.ID, AuthorID: 2, Text: "delete me"})
			c := e.login("1")
			c.send(`{"type":"sub","id":1,"channel":"RoomChannel","params":{"roomId":1}}`)
			v := c.expect("snapshot")["version"].(float64)
			c.expect("runtime")
			c.expect("done")
			c.conn.Close()
			// While away: a post deleted, one added, one edited.
			e.db.Delete(&Post{}, 2)
			e.db.Create(&Post{RoomID: room.ID, AuthorID: 3, Text: "new"})
			e.db.Model(&Post{ID: 1}).Update("text", "kept")
			c = e.login("1")
			c.send(`{"type":"sub","id":1,"channel":"RoomChannel","params":{"roomId":1},"since":{"1":%d}}`, int64(v))
			m := c.expect("snapshot")
			// The three commits take at most three versions (a re-read may
			// already see a later commit and fold it in).
			if m["reset"] != false || m["version"].(float64) <= v || m["version"].(float64) > v+3 {
				t.Fatalf("resume from %d: %v", int64(v), m)
			}
			ins := instances(m)
			if ins["Post/2"]["deleted"] != true || ins["Post/3"] == nil || ins["Post/1"]["fields"].(map[string]any)["text"] != "kept" || ins["User/3"] == nil {
				t.Fatalf("resume instances: %v", ins)
			}
			if ins["User/2"]["deleted"] != true {
				t.Fatalf("bob left the state with his post: %v", ins)
			}
			c.expect("runtime")
			c.expect("done")
			// A version the cache cannot answer gets a full snapshot.
			c.send(`{"type":"sub","id":2,"channel":"RoomChannel","params":{"roomId":1},"since":{"1":5}}`)
			if m := c.expect("snapshot"); m["reset"] != true {
				t.Fatalf("%v", m)
			}
		})
	}
}

func TestActions(t *testing.T) {
	for name, open := range dbs {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, open, channel.Options{})
			e.db.Create(&Room{Name: "lobby", Public: true})
			c := e.login("2")
			c.send(`{"type":"sub","id":"r","channel":"RoomChannel","params":{"roomId":1}}`)
			c.expect("snapshot")
			if m := c.expect("runtime"); m["key"] != "typing" {
				t.Fatalf("%v", m)
			}
			c.expect("done")
			c.send(`{"type":"call","id":1,"sub":"r","action":"post","args":["hello"]}`)
			var result map[string]any
			var sawDelta bool
			for result == nil || !sawDelta {
				m := c.next()
				switch m["type"] {
				case "result":
					result = m
				case "delta":
					sawDelta = true
				default:
					t.Fatalf("unexpected %v", m)
				}
			}
			if v := result["value"].(map[string]any); result["id"] != float64(1) || v["text"] != "hello" || v["authorId"] != "2" || v["id"] != "1" {
				t.Fatalf("result: %v", result)
			}
			for _, c2 := range []struct {
				frame, code, msg string
			}{
				{`{"type":"call","id":2,"sub":"r","action":"nope"}`, "unknown_action", `no action "nope"`},
				{`{"type":"call","id":3,"sub":"r","action":"post"}`, "bad_request", "takes 1 argument"},
				{`{"type":"call","id":4,"sub":"r","action":"post","args":[5]}`, "bad_request", "argument 1: want string, got number"},
				{`{"type":"call","id":5,"sub":"r","action":"fail","args":["forbidden"]}`, "forbidden", "failed with forbidden"},
				{`{"type":"call","id":6,"sub":"r","action":"fail","args":["plain"]}`, "internal", "internal error"},
				{`{"type":"call","id":7,"sub":"r","action":"panic"}`, "internal", "internal error"},
				{`{"type":"call","id":8,"sub":"zzz","action":"post","args":["x"]}`, "not_found", "no subscription"},
			} {
				c.send("%s", c2.frame)
				m := c.expect("result")
				er, _ := m["error"].(map[string]any)
				if er == nil || er["code"] != c2.code || !strings.Contains(er["message"].(string), c2.msg) || strings.Contains(er["message"].(string), "exploded") {
					t.Errorf("%s: got %v", c2.frame, m)
				}
			}
			// Still alive after the panic.
			c.send(`{"type":"call","id":9,"sub":"r","action":"post","args":["still here"]}`)
			for {
				if m := c.next(); m["type"] == "result" {
					if m["error"] != nil {
						t.Fatalf("%v", m)
					}
					break
				}
			}
		})
	}
}

func TestRuntimeGroupsSystem(t *testing.T) {
	e := newEnv(t, openSQLite, channel.Options{})
	e.db.Create(&Room{Name: "lobby", Public: true})
	a, b := e.login("1"), e.login("2")
	for _, c := range []*client{a, b} {
		c.send(`{"type":"sub","id":"r","channel":"RoomChannel","params":{"roomId":1}}`)
		c.expect("snapshot")
		c.expect("runtime")
		c.expect("done")
	}
	a.send(`{"type":"call","id":1,"sub":"r","action":"typing"}`)
	// The action's result and the runtime change its event causes race:
	// either may come first.
	first, second := a.next(), a.next()
	if first["type"] == "result" {
		first, second = second, first
	}
	if second["type"] != "result" {
		t.Fatalf("want a result, got %v and %v", first, second)
	}
	for _, m := range []map[string]any{first, b.expect("runtime")} {
		if m["type"] != "runtime" || m["sub"] != "r" || m["key"] != "typing" || fmt.Sprint(m["value"]) != "[1]" {
			t.Fatalf("%v", m)
		}
	}
	e.hub.Broadcast(context.Background(), map[string]string{"text": "maintenance"})
	for _, c := range []*client{a, b} {
		if m := c.expect("system"); fmt.Sprint(m["message"]) != "map[text:maintenance]" {
			t.Fatalf("%v", m)
		}
	}
	// Logging a user out closes their sockets only.
	e.srv.DisconnectUser("2")
	if code := b.waitClose(); code != channel.CloseAuthFailed {
		t.Fatalf("close code %d", code)
	}
	a.send(`{"type":"unsub","id":"r"}`)
	a.expect("unsubscribed")
}

func TestBadInput(t *testing.T) {
	e := newEnv(t, openSQLite, channel.Options{ReadLimit: 4096, MaxProtocolErrors: 10})
	c := e.login("1")
	for _, f := range []string{`{`, `[]`, `{"type":"subscribe"}`, `{"type":"sub","id":1}`, `{"type":"call","id":1,"sub":1,"action":"x","args":"no"}`, "{\"type\":\"hello\xff\"}", `{"type":"sub","id":{},"channel":"x"}`, `{"type":"unsub","id":1,"extra":true}`} {
		c.send("%s", f)
		if m := c.expect("error"); m["code"] != "bad_request" {
			t.Fatalf("%s: %v", f, m)
		}
		c.send(`{"type":"unsub","id":"nothing"}`) // a valid frame does not reset the count
		c.expect("error")
	}
	if err := c.conn.WriteMessage(websocket.BinaryMessage, []byte{1, 2, 3}); err != nil {
		t.Fatal(err)
	}
	if m := c.expect("error"); m["code"] != "bad_request" {
		t.Fatalf("%v", m)
	}
	c.send(`{"type":"unsub","id":"nothing"}`)
	c.expect("error")
	// Bad frames are limited by rate: the tenth within a minute closes
	// with 1008, whatever good frames came between them.
	c.send(`nope`)
	if code := c.waitClose(); code != channel.ClosePolicyViolation {
		t.Fatalf("close code %d", code)
	}
	// An oversized frame closes with 1009.
	c = e.login("1")
	c.send(`{"type":"unsub","id":"%s"}`, strings.Repeat("x", 5000))
	if code := c.waitClose(); code != channel.CloseTooLarge {
		t.Fatalf("close code %d", code)
	}
}

// A client that stops reading is disconnected once its queue fills; it then
// resumes from its last version without losing anything, and the server's
// memory per socket stays bounded by the queue.
func TestSlowClient(t *testing.T) {
	e := newEnv(t, openSQLite, channel.Options{SendQueue: 16, WriteTimeout: 2 * time.Second})
	// Small server socket buffers, so that a stalled reader fills them
	// after kilobytes instead of the megabytes loopback autotunes to.
	e.smallBuffers()
	e.db.Create(&Room{Name: "lobby", Public: true})
	// A raw client with a tiny receive buffer that stops reading.
	conn := e.dialSmall()
	conn.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"type":"hello","v":1,"token":%q}`, e.tokens["1"])))
	conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"sub","id":1,"channel":"RoomChannel","params":{"roomId":1}}`))
	var version float64
	var frames, delivered int // delta frames, and the posts they carried
	readFrame := func() (map[string]any, error) {
		var m map[string]any
		err := conn.ReadJSON(&m)
		return m, err
	}
	for version == 0 {
		m, err := readFrame()
		if err != nil {
			t.Fatal(err)
		}
		if m["type"] == "snapshot" {
			version = m["version"].(float64)
		}
	}
	// Stop reading; write until the server gives up on the socket.
	big := strings.Repeat("x", 32000)
	for i := 0; i < 100; i++ {
		e.db.Create(&Post{RoomID: 1, AuthorID: 1, Text: fmt.Sprint(i, big)})
	}
	deadline := time.Now().Add(10 * time.Second)
	for e.srv.Sockets() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("slow client never disconnected")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Read what got through, then the close.
	var closeCode int
	for {
		m, err := readFrame()
		if err != nil {
			if ce, ok := err.(*websocket.CloseError); ok {
				closeCode = ce.Code
			}
			break
		}
		if m["type"] == "delta" {
			version = m["version"].(float64)
			frames++
			// Back-to-back commits may share one delta frame.
			for k := range instances(m) {
				if strings.HasPrefix(k, "Post/") {
					delivered++
				}
			}
		}
	}
	// 4008 when the close frame fits in what the client still reads;
	// with the socket's buffers full it may be dropped (1006).
	if closeCode != channel.CloseSlowClient && closeCode != websocket.CloseAbnormalClosure {
		t.Fatalf("close code %d", closeCode)
	}
	// Resume, through a listener with normal buffers: everything after the
	// last delta seen arrives.
	normal := httptest.NewServer(e.srv)
	defer normal.Close()
	e.url = "ws" + strings.TrimPrefix(normal.URL, "http")
	var total int64
	e.db.Model(&Post{}).Count(&total)
	c := e.login("1")
	c.send(`{"type":"sub","id":1,"channel":"RoomChannel","params":{"roomId":1},"since":{"1":%d}}`, int64(version))
	m := c.expect("snapshot")
	posts := 0
	for {
		for k := range instances(m) {
			if strings.HasPrefix(k, "Post/") {
				posts++
			}
		}
		if m["more"] != true {
			break
		}
		m = c.expect("snapshot")
	}
	if m["reset"] != false || int64(posts+delivered) != total {
		t.Fatalf("resume after %d deltas (%d posts): reset=%v, %d posts, want %d in total", frames, delivered, m["reset"], posts, total)
	}
	t.Logf("slow client: %d deltas read before close %d, %d posts resumed", frames, closeCode, posts)
}

// smallBuffers restarts e's HTTP server on a listener with small socket
// send buffers, so that a stalled reader fills them after kilobytes
// instead of the megabytes loopback autotunes to.
func (e *env) smallBuffers() {
	e.http.Close()
	e.http = httptest.NewUnstartedServer(e.srv)
	e.http.Listener = smallBuffers{e.http.Listener}
	e.http.Start()
	e.url = "ws" + strings.TrimPrefix(e.http.URL, "http")
}

// dialSmall dials a raw client socket with a 4 KiB receive buffer.
func (e *env) dialSmall() *websocket.Conn {
	e.t.Helper()
	d := websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			conn.(*net.TCPConn).SetReadBuffer(4096)
		}
		return conn, err
	}}
	conn, _, err := d.Dial(e.url, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { conn.Close() })
	return conn
}

type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetWriteBuffer(4096)
	}
	return c, err
}

func TestShutdown(t *testing.T) {
	e := newEnv(t, openSQLite, channel.Options{})
	c := e.login("1")
	done := make(chan error)
	go func() { done <- e.srv.Shutdown(context.Background()) }()
	if code := c.waitClose(); code != channel.CloseGoingAway {
		t.Fatalf("close code %d", code)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(e.http.URL)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("after shutdown: %d", resp.StatusCode)
	}
}

// An idle socket gives its writer goroutine back after lingering, and a
// new frame starts one again: steady traffic keeps it, silence does not.
// The linger checks run when the test says, not on a clock.
func TestIdleWriterExits(t *testing.T) {
	channel.SetWriterLinger(t, time.Hour)
	e := newEnv(t, openSQLite, channel.Options{})
	e.db.Create(&Room{Name: "lobby", Public: true})
	c := e.login("1")
	c.send(`{"type":"sub","id":1,"channel":"RoomChannel","params":{"roomId":1}}`)
	c.expect("snapshot")
	delta := func() map[string]any {
		t.Helper()
		for {
			if m := c.next(); m["type"] == "delta" {
				return m
			}
		}
	}
	writersBack := func(want int) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for e.srv.RelWriters() != want {
			if time.Now().After(deadline) {
				t.Fatalf("%d sockets with a writer, want %d", e.srv.RelWriters(), want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	// Traffic between every two checks: the writer stays.
	for i := range 3 {
		e.db.Create(&Post{RoomID: 1, AuthorID: 1, Text: fmt.Sprint("keep ", i)})
		delta()
		e.srv.CheckWriters()
		if n := e.srv.RelWriters(); n != 1 {
			t.Fatalf("writer gone during steady traffic (after post %d)", i)
		}
	}
	// A check that finds nothing written since the last one ends it.
	e.srv.CheckWriters()
	writersBack(0)
	e.db.Create(&Post{RoomID: 1, AuthorID: 1, Text: "again"})
	if m := delta(); !strings.Contains(fmt.Sprint(m), "again") {
		t.Fatalf("delta after the writer came back: %v", m)
	}
	if n := e.srv.RelWriters(); n != 1 {
		t.Fatalf("%d sockets with a writer after a new frame, want 1", n)
	}
	e.srv.CheckWriters() // it wrote: stays
	e.srv.CheckWriters() // silence: exits
	writersBack(0)
}
