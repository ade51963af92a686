package channel_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http/httptest"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rxgorm/rxgorm/channel"
	"github.com/rxgorm/rxgorm/rx"
	"github.com/rxgorm/rxgorm/rx/rxtest"
)

// The soak test: many sockets, continuous random writes, random reconnects
// with resume, slow and stalling readers. At the end every client's state
// must equal a fresh snapshot, the sockets' send queues must never have
// held more than Options.SendQueue frames, and goroutines and heap must be
// back to their level before the clients came. It reports delivery
// latency (not asserted).
//
// RXGORM_SOAK=2m runs the long version (1,000 sockets for two minutes of
// writes); without it a short version runs (100 sockets, 10 s).

const relSoakRooms = 8

type relSoakSub struct {
	id, channel, params string
}

type relSoakClient struct {
	n    int
	user string
	subs []relSoakSub
	slow time.Duration // pause per frame while slow
	// stall: the client stops reading for a while now and then.
	stall bool

	mu         sync.Mutex
	states     map[string]*rx.State // by subscription id
	conn       *websocket.Conn
	kicked     int // closed by the server for being slow
	reconnects int // closed by the client to resume
	errs       []string
}

type relSoak struct {
	t        *testing.T
	e        *env
	stop     atomic.Bool // end of the write phase: stop reconnecting
	fast     atomic.Bool // end phase: no more slow reading
	quit     atomic.Bool
	latMu    sync.Mutex
	lat      []time.Duration
	deltas   atomic.Int64
	frames   atomic.Int64
	maxQueue atomic.Int64
}

func TestSoak(t *testing.T) {
	dur, sockets := 10*time.Second, 100
	if v := os.Getenv("RXGORM_SOAK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("RXGORM_SOAK: %v", err)
		}
		dur, sockets = d, 1000
	}
	const sendQueue = 64
	e := newEnv(t, openSQLite, channel.Options{SendQueue: sendQueue, MaxConnectionsPerIP: -1})
	// Small server socket buffers, so that a stalling reader fills them and
	// its send queue after kilobytes, not the megabytes of loopback.
	e.http.Close()
	e.http = httptest.NewUnstartedServer(e.srv)
	e.http.Listener = smallBuffers{e.http.Listener}
	e.http.Start()
	e.url = "ws" + strings.TrimPrefix(e.http.URL, "http")
	for r := 1; r <= relSoakRooms; r++ {
		e.db.Create(&Room{Name: fmt.Sprint("room ", r), Public: true})
		for i := 0; i < 10; i++ {
			e.db.Create(&Post{RoomID: uint(r), AuthorID: uint(i%3 + 1), Text: "seed"})
		}
	}
	// Warm the streams, then take the baseline.
	for r := 1; r <= relSoakRooms; r++ {
		for _, u := range []string{"1", "2", "3"} {
			relSnapshotJSON(t, e.hub, "RoomChannel", RoomParams{RoomID: uint(r)}, rx.User{ID: u})
		}
	}
	baseG, baseHeap := relSettle()
	s := &relSoak{t: t, e: e}
	rng := rand.New(rand.NewPCG(rxtest.Seed(t), 7))
	clients := make([]*relSoakClient, sockets)
	for i := range clients {
		c := &relSoakClient{n: i, user: fmt.Sprint(rng.IntN(3) + 1), states: map[string]*rx.State{}}
		r1, r2 := rng.IntN(relSoakRooms)+1, rng.IntN(relSoakRooms)+1
		c.subs = append(c.subs, relSoakSub{"a", "RoomChannel", fmt.Sprintf(`{"roomId":%d}`, r1)})
		if r2 != r1 {
			c.subs = append(c.subs, relSoakSub{"b", "RoomChannel", fmt.Sprintf(`{"roomId":%d}`, r2)})
		}
		if i%10 == 0 {
			c.subs = append(c.subs, relSoakSub{"l", "RoomList", `null`})
		}
		switch {
		case i%10 == 1:
			c.slow = time.Duration(rng.IntN(20)+2) * time.Millisecond
		case i%25 == 2:
			c.stall = true
		}
		for _, sb := range c.subs {
			st, err := e.hub.NewState(sb.channel, rx.User{ID: c.user})
			if err != nil {
				t.Fatal(err)
			}
			c.states[sb.id] = st
		}
		clients[i] = c
	}
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s.run(c, uint64(c.n))
		}()
	}
	// Writers and the queue watcher run for the write phase.
	writes := &atomic.Int64{}
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); s.write(rng.Uint64(), writes) }()
	go func() {
		defer bg.Done()
		for !s.stop.Load() {
			lens, _ := e.srv.RelQueues()
			for _, n := range lens {
				if int64(n) > s.maxQueue.Load() {
					s.maxQueue.Store(int64(n))
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	time.Sleep(dur)
	s.stop.Store(true)
	bg.Wait()
	s.fast.Store(true)
	e.hub.Wait(context.Background())

	// Every client converges to a fresh snapshot of what it subscribed.
	oracles := map[string]string{}
	oracle := func(user string, sb relSoakSub) string {
		k := user + sb.channel + sb.params
		if _, ok := oracles[k]; !ok {
			var p any = rx.NoParams{}
			if sb.channel == "RoomChannel" {
				var rp RoomParams
				json.Unmarshal([]byte(sb.params), &rp)
				p = rp
			}
			oracles[k] = relSnapshotJSON(t, e.hub, sb.channel, p, rx.User{ID: user})
		}
		return oracles[k]
	}
	deadline := time.Now().Add(dur + 60*time.Second)
	for _, c := range clients {
		for _, sb := range c.subs {
			want := oracle(c.user, sb)
			for {
				c.mu.Lock()
				js, _ := c.states[sb.id].JSON()
				errs := slices.Clone(c.errs)
				c.mu.Unlock()
				if len(errs) > 0 {
					t.Fatalf("client %d: %v", c.n, errs)
				}
				got := relNorm(t, js)
				if got == want {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("client %d (user %s, %s %s) did not converge\n got %s\nwant %s", c.n, c.user, sb.channel, sb.params, got, want)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}
	}
	s.quit.Store(true)
	for _, c := range clients {
		c.mu.Lock()
		if c.conn != nil {
			c.conn.Close()
		}
		c.mu.Unlock()
	}
	wg.Wait()
	relWait(t, "sockets closed", func() bool { return e.srv.Sockets() == 0 })

	var kicked, reconnects, slowN, stallN int
	for _, c := range clients {
		kicked += c.kicked
		reconnects += c.reconnects
		if c.slow > 0 {
			slowN++
		}
		if c.stall {
			stallN++
		}
	}
	s.latMu.Lock()
	lat := s.lat
	s.lat = nil
	s.latMu.Unlock()
	slices.Sort(lat)
	pct := func(p float64) time.Duration {
		if len(lat) == 0 {
			return 0
		}
		return lat[min(len(lat)-1, int(float64(len(lat))*p))]
	}
	samples, p50, p99, pmax := len(lat), pct(0.5), pct(0.99), pct(1)
	lat = nil
	// Every frame queued was counted, not only those a sample saw: a
	// queue past SendQueue fails, whenever it happened.
	if _, peak := e.srv.RelQueues(); peak > sendQueue || int64(peak) < s.maxQueue.Load() {
		t.Fatalf("a send queue held %d frames (%d sampled), over Options.SendQueue = %d", peak, s.maxQueue.Load(), sendQueue)
	}
	clients = nil
	g, heap := relSettle()
	t.Logf("soak: %d sockets (%d slow, %d stalling), %v of writes: %d writes, %d frames, %d delta frames, %d latency samples",
		sockets, slowN, stallN, dur, writes.Load(), s.frames.Load(), s.deltas.Load(), samples)
	t.Logf("soak: delivery latency p50 %v, p99 %v, max %v", p50, p99, pmax)
	t.Logf("soak: %d client reconnects with resume, %d sockets dropped as slow (4008 or 1006), largest send queue seen %d of %d",
		reconnects, kicked, s.maxQueue.Load(), sendQueue)
	t.Logf("soak: goroutines %d before, %d after; heap %.1f MiB before, %.1f MiB after", baseG, g, mib(baseHeap), mib(heap))
	if g > baseG+10 {
		t.Errorf("goroutines did not return to baseline: %d before, %d after", baseG, g)
	}
	// The cache holds more rows and tombstones than before the writes: a
	// few MiB at most; leaked sockets (about 10 KiB each, buffers and
	// state) would exceed it in the long run.
	if heap > baseHeap+8<<20 {
		t.Errorf("heap did not return to baseline: %.1f MiB before, %.1f MiB after", mib(baseHeap), mib(heap))
	}
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

// relSettle waits for goroutines to settle and returns their number and the
// live heap after a GC.
func relSettle() (int, uint64) {
	var last int
	for i := 0; i < 50; i++ {
		runtime.GC()
		n := runtime.NumGoroutine()
		if n == last {
			break
		}
		last = n
		time.Sleep(50 * time.Millisecond)
	}
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return runtime.NumGoroutine(), ms.HeapAlloc
}

// write makes random writes until the write phase ends: posts created,
// edited and deleted, per-user notes likewise. Texts carry the time of the
// write, for latency.
func (s *relSoak) write(seed uint64, n *atomic.Int64) {
	rng := rand.New(rand.NewPCG(seed, 11))
	db := s.e.db
	stamp := func() string { return "t=" + strconv.FormatInt(time.Now().UnixNano(), 10) }
	for !s.stop.Load() {
		room := uint(rng.IntN(relSoakRooms) + 1)
		var err error
		switch op := rng.IntN(10); {
		case op < 4:
			var count int64
			db.Model(&Post{}).Where("room_id = ?", room).Count(&count)
			if count > 30 {
				err = db.Where("id = (SELECT MIN(id) FROM posts WHERE room_id = ?)", room).Delete(&Post{}).Error
			} else {
				err = db.Create(&Post{RoomID: room, AuthorID: uint(rng.IntN(3) + 1), Text: stamp()}).Error
			}
		case op < 7:
			err = db.Model(&Post{}).Where("id = (SELECT MAX(id) - ? FROM posts WHERE room_id = ?)", rng.IntN(5), room).Update("text", stamp()).Error
		case op < 8:
			err = db.Where("id = (SELECT MAX(id) FROM posts WHERE room_id = ?)", room).Delete(&Post{}).Error
		default:
			user := uint(rng.IntN(3) + 1)
			var count int64
			db.Model(&Note{}).Where("room_id = ? AND user_id = ?", room, user).Count(&count)
			switch {
			case count > 3:
				err = db.Where("room_id = ? AND user_id = ?", room, user).Delete(&Note{}).Error
			case count > 0 && rng.IntN(2) == 0:
				err = db.Model(&Note{}).Where("room_id = ? AND user_id = ?", room, user).Update("text", stamp()).Error
			default:
				err = db.Create(&Note{RoomID: room, UserID: user, Text: stamp()}).Error
			}
		}
		if err != nil {
			s.t.Errorf("write: %v", err)
			return
		}
		n.Add(1)
		time.Sleep(5 * time.Millisecond)
	}
}

// run keeps client c connected until the end: it reconnects (resuming
// with the versions it holds) after the server closed it or after it
// closed the socket itself at random.
func (s *relSoak) run(c *relSoakClient, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 13))
	for !s.quit.Load() {
		err := s.session(c, rng)
		// Dropped for being slow: 4008, or 1006 when the close frame did
		// not fit in the full socket buffers. Either way: resume.
		var ce *websocket.CloseError
		kicked := errors.As(err, &ce) && (ce.Code == channel.CloseSlowClient || ce.Code == websocket.CloseAbnormalClosure)
		c.mu.Lock()
		switch {
		case s.quit.Load():
		case kicked:
			c.kicked++
		case errors.Is(err, errRelResume):
			c.reconnects++
		case err != nil:
			c.errs = append(c.errs, err.Error())
		}
		c.mu.Unlock()
		if err != nil && !kicked && !errors.Is(err, errRelResume) {
			return
		}
	}
}

var errRelResume = errors.New("client closed the socket to resume")

// session is one connection of c: hello, subscriptions (with since), then
// frames until the socket closes.
func (s *relSoak) session(c *relSoakClient, rng *rand.Rand) error {
	dialer := websocket.DefaultDialer
	if c.stall {
		dialer = &websocket.Dialer{NetDialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			conn, err := (&net.Dialer{}).DialContext(ctx, network, addr)
			if err == nil {
				conn.(*net.TCPConn).SetReadBuffer(4096)
			}
			return conn, err
		}}
	}
	conn, _, err := dialer.Dial(s.e.url, nil)
	if err != nil {
		return err
	}
	defer conn.Close()
	c.mu.Lock()
	c.conn = conn
	c.mu.Unlock()
	if s.quit.Load() {
		return nil
	}
	send := func(v string) error { return conn.WriteMessage(websocket.TextMessage, []byte(v)) }
	if err := send(fmt.Sprintf(`{"type":"hello","v":1,"token":%q}`, s.e.tokens[c.user])); err != nil {
		return err
	}
	subscribe := func(sb relSoakSub) error {
		c.mu.Lock()
		since, _ := json.Marshal(c.states[sb.id].Versions())
		c.mu.Unlock()
		return send(fmt.Sprintf(`{"type":"sub","id":%q,"channel":%q,"params":%s,"since":%s}`, sb.id, sb.channel, sb.params, since))
	}
	for _, sb := range c.subs {
		if err := subscribe(sb); err != nil {
			return err
		}
	}
	// Leave after a random number of frames, while writes go on.
	leaveAfter := -1
	if rng.IntN(3) == 0 {
		leaveAfter = rng.IntN(200) + 20
	}
	stallAt := rng.IntN(100) + 50
	for n := 0; ; n++ {
		_, data, err := conn.ReadMessage()
		if err != nil {
			return err
		}
		s.frames.Add(1)
		var m map[string]any
		if err := json.Unmarshal(data, &m); err != nil {
			return fmt.Errorf("invalid frame %q: %w", data, err)
		}
		now := time.Now()
		switch m["type"] {
		case "error":
			if m["code"] == "overloaded" && m["sub"] != nil {
				sid := fmt.Sprint(m["sub"])
				for _, sb := range c.subs {
					if sb.id == sid {
						if err := subscribe(sb); err != nil {
							return err
						}
					}
				}
				continue
			}
			return fmt.Errorf("error frame %v", m)
		case "delta":
			s.deltas.Add(1)
			for _, x := range m["instances"].([]any) {
				in := x.(map[string]any)
				f, _ := in["fields"].(map[string]any)
				if txt, ok := f["text"].(string); ok && strings.HasPrefix(txt, "t=") {
					if ns, err := strconv.ParseInt(txt[2:], 10, 64); err == nil {
						s.latMu.Lock()
						s.lat = append(s.lat, now.Sub(time.Unix(0, ns)))
						s.latMu.Unlock()
					}
				}
			}
		}
		if ev := relEvent(m); ev != nil {
			c.mu.Lock()
			for _, sb := range c.subs {
				// A delta names its stream; a snapshot or list its sub.
				if (m["sub"] != nil && m["sub"] == sb.id) || (m["sub"] == nil && m["channel"] == sb.channel && slices.Contains(c.anchorsOf(sb), ev.Anchor)) {
					c.states[sb.id].Apply(ev)
				}
			}
			c.mu.Unlock()
		}
		if s.fast.Load() {
			continue
		}
		if c.slow > 0 {
			time.Sleep(c.slow)
		}
		if c.stall && n == stallAt {
			time.Sleep(3 * time.Second)
		}
		if n == leaveAfter && !s.stop.Load() {
			return errRelResume
		}
	}
}

// anchorsOf returns the anchors a subscription holds.
func (c *relSoakClient) anchorsOf(sb relSoakSub) []string {
	var out []string
	for a := range c.states[sb.id].Versions() {
		out = append(out, a)
	}
	return out
}
