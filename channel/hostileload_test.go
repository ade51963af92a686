package channel_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rxgorm/rxgorm/channel"
)

// TestHostileLoad runs the attacks of issue 14 at once: 50 anonymous and 50
// signed-in hostile sockets that never read, for RXGORM_HOSTILE (default
// 5 s in CI; 30 s for the full run: RXGORM_HOSTILE=30s), while a healthy
// client keeps writing and receiving each write's delta. It asserts the
// live heap (after GC) never passes a bound derived from the budgets:
//
//	baseline + sockets × (SendBudget + ReadLimit + 4 × largest answer + 64 KiB) + 16 MiB
//
// Per socket the server holds at most its send budget besides the largest
// frame waiting, that frame (an answer: at most the largest snapshot or
// result of this room), one frame being read (ReadLimit), one answer being
// built (a result is encoded before it is found too large, a snapshot is
// loaded before it is queued) and its fixed cost (buffers, goroutines,
// maps: 64 KiB is generous). The 16 MiB cover the test's own clients
// (100 senders of 60 KiB frames) and the engine's caches. Before the fix
// one anonymous socket alone held 309 MB.
func TestHostileLoad(t *testing.T) {
	dur := 5 * time.Second
	if v := os.Getenv("RXGORM_HOSTILE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("RXGORM_HOSTILE=%q: %v", v, err)
		}
		dur = d
	}
	const anon, authed = 50, 50
	opts := channel.Options{
		ReadLimit:           64 << 10,
		SendBudget:          256 << 10,
		MaxResult:           64 << 10,
		HelloTimeout:        time.Second,
		WriteTimeout:        5 * time.Second,
		MaxConnectionsPerIP: -1,
	}
	e := hostileEnv(t, opts)
	// Room 2 is full of long posts: history(0,100) is over MaxResult,
	// history(0,25) is a quarter of it, and so is the room's snapshot.
	e.db.Create(&Room{Name: "history", Public: true})
	long := strings.Repeat("m", 1000)
	for i := 0; i < 100; i++ {
		e.db.Create(&Post{RoomID: 2, AuthorID: 1, Text: long})
	}
	const largest = 110 << 10 // the room's snapshot, or history(0,100) encoded
	healthy := e.login("2")
	healthy.relSubscribe("r", "RoomChannel", `{"roomId":1}`)

	base := liveHeap()
	bound := base + uint64(anon+authed)*uint64(opts.SendBudget+int(opts.ReadLimit)+4*largest+64<<10) + 16<<20
	ctx, cancel := context.WithTimeout(context.Background(), dur)
	defer cancel()
	var peak atomic.Uint64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for ctx.Err() == nil {
			h := liveHeap()
			if h > peak.Load() {
				peak.Store(h)
			}
			if h > bound {
				cancel() // stop before the machine runs out of memory
				return
			}
			select {
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
	}()

	var wg sync.WaitGroup
	var dials, frames atomic.Int64
	bigType := fmt.Appendf(nil, `{"type":%q}`, strings.Repeat("<", 60<<10))
	bigID := fmt.Appendf(nil, `{"type":"unsub","id":%q}`, strings.Repeat("<", 60<<10))
	attack := func(script func(conn *websocket.Conn, send func([]byte) bool)) {
		defer wg.Done()
		for ctx.Err() == nil {
			conn, err := stalledConn(e.url)
			if err != nil {
				continue // refused or reset under load: try again
			}
			dials.Add(1)
			send := func(b []byte) bool {
				if ctx.Err() != nil {
					return false
				}
				conn.SetWriteDeadline(time.Now().Add(2 * time.Second))
				if err := conn.WriteMessage(websocket.TextMessage, b); err != nil {
					return false
				}
				frames.Add(1)
				return true
			}
			script(conn, send)
			conn.Close()
		}
	}
	for i := 0; i < anon; i++ {
		wg.Add(1)
		// Hole 1 and 4: 60 KiB types before hello, a pong to push the
		// deadline, a good frame to reset the bad-frame count.
		go attack(func(conn *websocket.Conn, send func([]byte) bool) {
			for {
				conn.WriteControl(websocket.PongMessage, nil, time.Now().Add(time.Second))
				if !send(bigType) || !send([]byte(`{"type":"sub","id":1,"channel":"HostileRoom"}`)) {
					return
				}
			}
		})
	}
	for i := 0; i < authed; i++ {
		wg.Add(1)
		user := []string{"1", "3"}[i%2]
		// Hole 2 and the weak points: history calls never read, 60 KiB
		// ids, pipelined subscriptions (snapshots and presence).
		go attack(func(conn *websocket.Conn, send func([]byte) bool) {
			if !send(fmt.Appendf(nil, `{"type":"hello","v":1,"token":%q}`, e.tokens[user])) {
				return
			}
			for n := 0; ; n++ {
				ok := send(fmt.Appendf(nil, `{"type":"sub","id":"s%d","channel":"HostileRoom","params":{"roomId":2}}`, n)) &&
					send(fmt.Appendf(nil, `{"type":"call","id":%d,"sub":"s0","action":"history","args":[0,100]}`, 2*n)) &&
					send(fmt.Appendf(nil, `{"type":"call","id":%d,"sub":"s0","action":"history","args":[0,25]}`, 2*n+1)) &&
					(n%4 != 0 || send(bigID))
				if !ok {
					return
				}
			}
		})
	}

	// The healthy client writes and receives each write's delta, for as
	// long as the attack lasts.
	deltas := 0
	for ctx.Err() == nil {
		p := Post{RoomID: 1, AuthorID: 2, Text: fmt.Sprint("healthy ", deltas)}
		if err := e.db.Create(&p).Error; err != nil {
			t.Fatal(err)
		}
		key := fmt.Sprintf("Post/%d", p.ID)
		for {
			m, _ := healthy.relUntil("delta")
			if instances(m)[key] != nil {
				break
			}
		}
		deltas++
	}
	cancel()
	wg.Wait()
	<-sampled
	if h := liveHeap(); h > peak.Load() {
		peak.Store(h)
	}
	t.Logf("%v: %d hostile sockets opened, %d frames sent; healthy client got %d deltas; live heap baseline %.1f MiB, peak %.1f MiB, bound %.1f MiB",
		dur, dials.Load(), frames.Load(), deltas, mib(base), mib(peak.Load()), mib(bound))
	if peak.Load() > bound {
		t.Fatalf("live heap reached %.1f MiB, over the bound of %.1f MiB", mib(peak.Load()), mib(bound))
	}
	if deltas == 0 {
		t.Fatal("the healthy client received no delta")
	}
}

// liveHeap is the heap in use after a collection.
func liveHeap() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// stalledConn is stalledDial without a test: a raw socket with a 4 KiB
// receive buffer, for a client that never reads.
func stalledConn(url string) (*websocket.Conn, error) {
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if err == nil {
			_ = conn.(*net.TCPConn).SetReadBuffer(4096)
		}
		return conn, err
	}}
	conn, _, err := d.Dial(url, nil)
	return conn, err
}
