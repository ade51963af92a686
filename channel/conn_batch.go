package channel

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"
)

// maxHeld is the most bytes a batchConn holds before it writes them out,
// so holding never costs more than one send buffer of memory.
const maxHeld = 64 << 10

// batchConn is the connection under a session's websocket.Conn. While the
// writer holds it, the frames of one batch (everything the socket's queue
// held when the writer took it) collect in one buffer and go out in one
// write when the writer releases it: n queued frames cost one syscall and,
// with TCP_NODELAY, one segment train instead of n. Outside a hold it
// writes through.
//
// gorilla/websocket serialises every write to the connection (data frames
// and control frames alike) under its own lock, so held bytes stay in
// frame order; a control frame written by another goroutine during a hold
// (a ping, a pong, a close) goes out with the batch, and Close sends what
// is held before closing, so a close frame is never lost.
type batchConn struct {
	net.Conn
	mu     sync.Mutex
	held   []byte // guarded by mu
	hold   bool   // guarded by mu
	writes *atomic.Int64
}

// Write implements net.Conn.
func (c *batchConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hold {
		if len(c.held)+len(p) > maxHeld {
			if err := c.flushLocked(); err != nil {
				return 0, err
			}
		}
		if len(p) <= maxHeld {
			c.held = append(c.held, p...) // c.held is empty after a flush
			return len(p), nil
		}
	}
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// heldPool recycles the hold buffers: a socket holds one only while its
// writer writes a batch, so idle sockets keep none.
var heldPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// begin holds the writes that follow until end.
func (c *batchConn) begin() {
	c.mu.Lock()
	c.hold = true
	if c.held == nil {
		c.held = (*heldPool.Get().(*[]byte))[:0]
	}
	c.mu.Unlock()
}

// end writes what is held, in one write, stops holding and gives the
// buffer back.
func (c *batchConn) end() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.hold = false
	err := c.flushLocked()
	if c.held != nil {
		b := c.held[:0]
		heldPool.Put(&b)
		c.held = nil
	}
	return err
}

func (c *batchConn) flushLocked() error {
	if len(c.held) == 0 {
		return nil
	}
	c.writes.Add(1)
	_, err := c.Conn.Write(c.held)
	c.held = c.held[:0]
	return err
}

// Close implements net.Conn: it sends what is held (for at most a
// second), then closes. If a write is blocked (a client that stopped
// reading), it closes at once: that unblocks the write, as closing a
// plain connection does.
func (c *batchConn) Close() error {
	if c.mu.TryLock() {
		c.hold = false
		if len(c.held) > 0 {
			_ = c.Conn.SetWriteDeadline(time.Now().Add(time.Second))
			_ = c.flushLocked()
		}
		c.mu.Unlock()
	}
	return c.Conn.Close()
}

// batchWriter hands gorilla/websocket's Upgrade a hijacked connection
// wrapped in a batchConn.
type batchWriter struct {
	http.ResponseWriter
	writes *atomic.Int64
}

// Hijack implements http.Hijacker.
func (w batchWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	return &batchConn{Conn: conn, writes: w.writes}, brw, nil
}
