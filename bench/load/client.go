package load

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rxgorm/rxgorm/bench"
	"github.com/rxgorm/rxgorm/bench/loadctl"
)

// Dialect is the wire protocol of a target server.
type Dialect string

// The servers rxload can drive. The bare server (bare.go) speaks the
// centrifuge dialect's handshake and publications.
const (
	RxGorm     Dialect = "rxgorm"
	Centrifuge Dialect = "centrifuge"
	Bare       Dialect = "bare"
)

// target is a server under load: its control endpoints and its sockets.
type target struct {
	dialect Dialect
	base    string   // http://host:port
	nodes   []string // base URLs of further nodes of a cluster
	stop    func()
	http    *http.Client

	clientProfile *os.File // the load tool's CPU profile while one runs
}

func newTarget(d Dialect, base string, stop func()) *target {
	if stop == nil {
		stop = func() {}
	}
	return &target{dialect: d, base: strings.TrimSuffix(base, "/"), stop: stop, http: &http.Client{}}
}

// wsURL is the socket address of client i: clients are spread over the
// nodes in turn.
func (t *target) wsURL(i int) string {
	base := t.base
	if n := len(t.nodes) + 1; i%n > 0 {
		base = t.nodes[i%n-1]
	}
	return "ws" + strings.TrimPrefix(base, "http") + "/ws"
}

func (t *target) stats(ctx context.Context, gc bool) (loadctl.Stats, error) {
	var st loadctl.Stats
	u := t.base + "/rxload/stats"
	if gc {
		u += "?gc=1"
	}
	return st, t.do(ctx, http.MethodGet, u, nil, &st)
}

func (t *target) write(ctx context.Context, req loadctl.WriteRequest) (loadctl.WriteResult, error) {
	var res loadctl.WriteResult
	if err := t.do(ctx, http.MethodPost, t.base+"/rxload/write", req, &res); err != nil {
		return res, err
	}
	if res.Error != "" {
		return res, fmt.Errorf("rxload: server write failed after %d writes: %s", len(res.Sent), res.Error)
	}
	return res, nil
}

func (t *target) expire(ctx context.Context, anchor uint) error {
	return t.do(ctx, http.MethodPost, fmt.Sprintf("%s/rxload/expire?anchor=%d", t.base, anchor), nil, nil)
}

// startProfile starts the server's CPU profile into prefix-<server>.cpu;
// an empty prefix does nothing.
func (t *target) startProfile(ctx context.Context, prefix string) error {
	if prefix == "" {
		return nil
	}
	if err := t.do(ctx, http.MethodPost, t.base+"/rxload/profile/start?cpu="+url.QueryEscape(prefix+"-"+string(t.dialect)+".cpu"), nil, nil); err != nil {
		return err
	}
	// The load tool's own profile, over the same writes: its clients'
	// reads and decoding (with -inproc, the server's work too).
	f, err := os.Create(prefix + "-" + string(t.dialect) + "-clients.cpu")
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		// With -inproc the server's profile already covers this process.
		f.Close()
		return os.Remove(f.Name())
	}
	t.clientProfile = f
	return nil
}

// stopProfile stops the CPU profile and writes the allocation profile to
// prefix-<server><ext>.
func (t *target) stopProfile(ctx context.Context, prefix, ext string) error {
	if prefix == "" {
		return nil
	}
	if t.clientProfile != nil {
		pprof.StopCPUProfile()
		if err := t.clientProfile.Close(); err != nil {
			return err
		}
		t.clientProfile = nil
	}
	return t.do(ctx, http.MethodPost, t.base+"/rxload/profile/stop?allocs="+url.QueryEscape(prefix+"-"+string(t.dialect)+ext), nil, nil)
}

func (t *target) do(ctx context.Context, method, url string, in, out any) error {
	var body bytes.Buffer
	if in != nil {
		if err := json.NewEncoder(&body).Encode(in); err != nil {
			return err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, url, &body)
	if err != nil {
		return err
	}
	resp, err := t.http.Do(req)
	if err != nil {
		return fmt.Errorf("rxload: %s %s: %w", method, url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var msg bytes.Buffer
		_, _ = msg.ReadFrom(resp.Body)
		return fmt.Errorf("rxload: %s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(msg.String()))
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// event is one received state of a client's anchor: the value n carried
// and the receive time (Unix ns).
type event struct{ n, t int64 }

// client is one WebSocket client subscribed to one anchor (index from 0).
type client struct {
	dialect Dialect
	conn    *websocket.Conn
	anchor  int
	wmu     sync.Mutex // writes: pong replies and close

	// Written by the reader goroutine; read after done is closed, or
	// through the atomics while it runs.
	events      []event
	lastVersion uint64
	frames      atomic.Int64
	bytes       atomic.Int64
	maxN        atomic.Int64
	dup, ooo    int64
	other       int64
	err         error
	dropped     bool // the socket closed before the run ended
	done        chan struct{}
}

var dialer = websocket.Dialer{HandshakeTimeout: 30 * time.Second, ReadBufferSize: 4096, WriteBufferSize: 1024}

// dial opens socket i to t and subscribes it to anchor a (index from 0).
// For rxgorm, anchor overrides the board id (0: the write board a + 1).
func dial(ctx context.Context, t *target, i, a int, board uint) (*client, error) {
	conn, _, err := dialer.DialContext(ctx, t.wsURL(i), nil)
	if err != nil {
		return nil, err
	}
	c := &client{dialect: t.dialect, conn: conn, anchor: a, done: make(chan struct{})}
	if board == 0 {
		board = uint(a + 1)
	}
	if err := c.subscribe(board); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

func (c *client) send(v string) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.conn.WriteMessage(websocket.TextMessage, []byte(v))
}

// readUntil reads frames until one contains marker, with a deadline.
func (c *client) readUntil(marker string, d time.Duration) error {
	_ = c.conn.SetReadDeadline(time.Now().Add(d))
	defer c.conn.SetReadDeadline(time.Time{})
	for {
		_, data, err := c.conn.ReadMessage()
		if err != nil {
			return err
		}
		if bytes.Contains(data, []byte(`"error"`)) {
			return fmt.Errorf("rxload: server answered %s", data)
		}
		if bytes.Contains(data, []byte(marker)) {
			return nil
		}
	}
}

func (c *client) subscribe(board uint) error {
	const wait = 60 * time.Second
	switch c.dialect {
	case RxGorm:
		// As the TypeScript runtime does, the client accepts several
		// messages in one frame, one per line (docs/PROTOCOL.md).
		if err := c.send(`{"type":"hello","v":1,"batch":true}`); err != nil {
			return err
		}
		if err := c.readUntil(`"welcome"`, wait); err != nil {
			return err
		}
		if err := c.send(fmt.Sprintf(`{"type":"sub","id":1,"channel":%q,"params":{"boardId":%d}}`, bench.ChannelName, board)); err != nil {
			return err
		}
		return c.readUntil(`{"type":"done"`, wait)
	default:
		if err := c.send(`{"id":1,"connect":{}}`); err != nil {
			return err
		}
		if err := c.readUntil(`"id":1`, wait); err != nil {
			return err
		}
		if err := c.send(fmt.Sprintf(`{"id":2,"subscribe":{"channel":"a%d"}}`, c.anchor)); err != nil {
			return err
		}
		return c.readUntil(`"id":2`, wait)
	}
}

// read is the client's reader goroutine: it records every state received
// until the socket closes.
func (c *client) read() {
	defer close(c.done)
	var buf bytes.Buffer
	for {
		_, r, err := c.conn.NextReader()
		if err != nil {
			c.err = err
			return
		}
		buf.Reset()
		if _, err := buf.ReadFrom(r); err != nil {
			c.err = err
			return
		}
		now := time.Now().UnixNano()
		data := buf.Bytes()
		c.frames.Add(1)
		c.bytes.Add(int64(len(data)))
		// Both protocols may put several messages in a frame, one per
		// line; for centrifuge an empty object is a ping.
		for len(data) > 0 {
			line, rest, _ := bytes.Cut(data, []byte{'\n'})
			data = rest
			if c.dialect != RxGorm && string(line) == "{}" {
				_ = c.send("{}")
				continue
			}
			c.handle(line, now)
		}
	}
}

func (c *client) handle(msg []byte, now int64) {
	n, ok := intField(msg, `"n":`)
	if !ok {
		c.other++
		return
	}
	if c.dialect == RxGorm {
		if v, ok := intField(msg, `"version":`); ok {
			if uint64(v) <= c.lastVersion {
				c.ooo++
			}
			c.lastVersion = uint64(v)
		}
	}
	last := c.maxN.Load()
	switch {
	case n == last && len(c.events) > 0:
		c.dup++
	case n < last:
		c.ooo++
	default:
		c.events = append(c.events, event{n, now})
		c.maxN.Store(n)
	}
}

// intField parses the integer after the first occurrence of key in msg.
func intField(msg []byte, key string) (int64, bool) {
	i := bytes.Index(msg, []byte(key))
	if i < 0 {
		return 0, false
	}
	s := msg[i+len(key):]
	j := 0
	for j < len(s) && (s[j] == '-' || (s[j] >= '0' && s[j] <= '9')) {
		j++
	}
	v, err := strconv.ParseInt(string(s[:j]), 10, 64)
	return v, err == nil
}

// ended reports whether the client's socket closed (the server dropped
// it) before close was called.
func (c *client) ended() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *client) close() {
	c.wmu.Lock()
	_ = c.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.wmu.Unlock()
	_ = c.conn.Close()
}

// connectAll opens n clients, client i on anchor i mod anchors, with a
// bounded number of handshakes in flight, printing progress.
func connectAll(ctx context.Context, t *target, n, anchors int, progress func(string)) ([]*client, error) {
	clients := make([]*client, n)
	sem := make(chan struct{}, 32)
	var (
		wg     sync.WaitGroup
		once   sync.Once
		first  error
		failed atomic.Bool
		done   atomic.Int64
	)
	stop := make(chan struct{})
	go func() {
		tk := time.NewTicker(time.Second)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
				progress(fmt.Sprintf("connecting %s clients: %d/%d", t.dialect, done.Load(), n))
			}
		}
	}()
	for i := range clients {
		sem <- struct{}{}
		if ctx.Err() != nil {
			break
		}
		wg.Add(1)
		go func(i int) {
			defer func() { <-sem; wg.Done() }()
			c, err := dial(ctx, t, i, i%anchors, 0)
			if err != nil {
				once.Do(func() { first = fmt.Errorf("rxload: client %d: %w", i, err) })
				failed.Store(true)
				return
			}
			clients[i] = c
			done.Add(1)
		}(i)
		if failed.Load() {
			break
		}
	}
	wg.Wait()
	close(stop)
	if first == nil {
		first = ctx.Err()
	}
	if first != nil {
		for _, c := range clients {
			if c != nil {
				c.close()
			}
		}
		return nil, first
	}
	for _, c := range clients {
		go c.read()
	}
	return clients, nil
}
