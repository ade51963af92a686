package channel_test

import (
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rxgorm/rxgorm/channel"
)

// relGoroutinesBack waits until the number of goroutines is back to at most
// base+slack, and returns it.
func relGoroutinesBack(t *testing.T, base, slack int) int {
	t.Helper()
	var n int
	deadline := time.Now().Add(30 * time.Second)
	for {
		runtime.GC()
		if n = runtime.NumGoroutine(); n <= base+slack {
			return n
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, %d before:\n%s", n, base, buf)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Clients that vanish (TCP reset, no close frame) while their snapshot is
// being written: the server frees the socket, its subscription and its
// goroutines, and keeps serving the others.
func TestClientVanishesMidSnapshot(t *testing.T) {
	gone := &atomic.Int64{}
	e := newEnv(t, openSQLite, channel.Options{SnapshotBatch: 5})
	relRegister(t, e, &RelTools{Gone: gone})
	e.db.Create(&Room{Name: "big", Public: true})
	posts := make([]Post, 3000)
	for i := range posts {
		posts[i] = Post{RoomID: 1, AuthorID: uint(i%3 + 1), Text: strings.Repeat("p", 100)}
	}
	if err := e.db.CreateInBatches(posts, 500).Error; err != nil {
		t.Fatal(err)
	}
	// Warm up the stream, then count the goroutines at rest.
	relHealthy(t, e)
	relWait(t, "idle sockets", func() bool { return e.srv.Sockets() == 0 })
	base := runtime.NumGoroutine()
	const clients = 40
	for i := 0; i < clients; i++ {
		conn, _, err := websocket.DefaultDialer.Dial(e.url, nil)
		if err != nil {
			t.Fatal(err)
		}
		conn.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"type":"hello","v":1,"token":%q}`, e.tokens["1"])))
		conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"sub","id":"t","channel":"RelTools","params":{"roomId":1}}`))
		// Half vanish at once, half after the first snapshot frames.
		for n := 0; i%2 == 1 && n < 3; {
			var m map[string]any
			if err := conn.ReadJSON(&m); err != nil {
				t.Fatal(err)
			}
			if m["type"] == "snapshot" {
				n++
			}
		}
		tcp := conn.UnderlyingConn().(*net.TCPConn)
		tcp.SetLinger(0) // reset, no close frame
		tcp.Close()
	}
	relWait(t, "sockets closed", func() bool { return e.srv.Sockets() == 0 })
	relWait(t, "subscriptions ended", func() bool { return gone.Load() == clients })
	relHealthy(t, e)
	relWait(t, "idle sockets", func() bool { return e.srv.Sockets() == 0 })
	n := relGoroutinesBack(t, base, 5)
	t.Logf("%d clients vanished mid-snapshot; goroutines %d before, %d after", clients, base, n)
}

// Shutdown while actions run: clients are told to go away (1001) at once;
// an action that honours its context is cancelled; one that does not
// finishes and its write is committed and broadcast; its result is lost
// with the socket. The client reconnects (to a new server on the same hub
// here) and resumes: the write reaches it.
func TestShutdownMidAction(t *testing.T) {
	tools := &RelTools{Gate: make(chan struct{}), Started: make(chan struct{}, 2), Cancelled: make(chan struct{}, 1)}
	e := newEnv(t, openSQLite, channel.Options{})
	relRegister(t, e, tools)
	e.db.Create(&Room{Name: "lobby", Public: true})
	writer, blocker := e.login("1"), e.login("2")
	var version float64
	for _, m := range writer.relSubscribe("t", "RelTools", `{"roomId":1}`) {
		if m["type"] == "snapshot" {
			version = m["version"].(float64)
		}
	}
	blocker.relSubscribe("t", "RelTools", `{"roomId":1}`)
	writer.send(`{"type":"call","id":1,"sub":"t","action":"write","args":["written during shutdown"]}`)
	<-tools.Started
	blocker.send(`{"type":"call","id":1,"sub":"t","action":"block"}`)
	<-tools.Started
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	for _, c := range []*client{writer, blocker} {
		if code := c.waitClose(); code != channel.CloseGoingAway {
			t.Fatalf("close code %d", code)
		}
	}
	select {
	case <-tools.Cancelled:
	case <-time.After(10 * time.Second):
		t.Fatal("the blocked action's context was not cancelled")
	}
	close(tools.Gate) // the write that ignores its context goes through
	e.hub.Wait(context.Background())
	relWait(t, "the write", func() bool {
		var n int64
		e.db.Model(&Post{}).Where("text = ?", "written during shutdown").Count(&n)
		return n == 1
	})
	e.hub.Wait(context.Background())
	// A new server on the same hub, as after a deploy: resume.
	srv2 := channel.NewServer(e.hub, channel.Options{Auth: e.auth})
	http2 := httptest.NewServer(srv2)
	defer http2.Close()
	defer srv2.Shutdown(context.Background())
	e.url = "ws" + strings.TrimPrefix(http2.URL, "http")
	c := e.login("1")
	c.send(`{"type":"sub","id":"t","channel":"RelTools","params":{"roomId":1},"since":{"1":%d}}`, int64(version))
	m := c.expect("snapshot")
	if m["reset"] != false || !strings.Contains(fmt.Sprint(m["instances"]), "written during shutdown") {
		t.Fatalf("resume after shutdown: %v", m)
	}
}
