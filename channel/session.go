package channel

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rxgorm/rxgorm/cache"
	"github.com/rxgorm/rxgorm/rx"
)

// session is one client connection. Goroutines: the read loop (started by
// ServeHTTP), a writer while frames flow, and one per running action.
// Events from the engine are queued by the subscriptions' Deliver
// functions, which never block: a full queue closes the socket with
// CloseSlowClient. An idle socket has no writer goroutine and no queue
// storage (a goroutine stack and a 1,024-slot channel were most of its
// memory); its keepalive ping is a timer.
type session struct {
	// The fields are ordered so that the struct packs into a 240-byte
	// size class (small fields together, no padding between them): every
	// open socket holds one (docs/BENCHMARKS.md, idle sockets;
	// TestSessionSize).
	srv   *Server
	conn  *websocket.Conn
	token string // from the upgrade request
	ctx   context.Context
	stop  context.CancelFunc
	ping  *time.Timer
	once  sync.Once
	// ended is set when the session starts closing, before ctx ends: the
	// hot paths read it instead of ctx.Err, which takes a lock.
	ended atomic.Bool
	// joinFrames: the client's hello announced batch, so the writer may
	// join queued messages into one frame (frame.go).
	joinFrames atomic.Bool
	gen        uint32 // guarded by qmu: numbers writer goroutines, for their linger checks
	qmu        sync.Mutex
	mu         sync.Mutex
	writing    bool      // guarded by qmu: a writer goroutine is running
	busy       bool      // guarded by qmu: the writer is writing frames
	idle       bool      // guarded by qmu: the linger check found the writer idle
	authed     bool      // guarded by mu
	wrote      uint32    // guarded by qmu: batches the writer has taken (compared, never summed)
	queue      []outItem // guarded by qmu: frames waiting for the writer
	// bytes is the size of the frames queued or being written; big is
	// the size of the largest of them, which Options.SendBudget does not
	// count (one frame may exceed the budget).
	bytes int    // guarded by qmu
	big   int    // guarded by qmu
	check func() // guarded by qmu: the running writer's linger check (tests run it)
	// wake wakes the writer: a frame was queued, the session is closing,
	// or the linger check found it idle.
	wake chan struct{}

	user     rx.User              // set once at hello
	subs     map[string]*subState // guarded by mu; by sub id
	calls    map[string]bool      // guarded by mu; ids of calls in progress (nil before the first)
	lastSent map[cache.Stream]uint64

	// tokenHash is HashToken of the token of hello, for revocations
	// (revoke.go); guarded by mu.
	tokenHash string
}

// subState is one subscription of the socket.
type subState struct {
	id      ID
	channel string
	rs      *rx.Subscription
}

// outItem is one frame to write: ready bytes, a shared frame (a delta,
// encoded and framed once per stream and version, or a system message: see
// frame.go), or a snapshot the writer encodes in batches. size is its bytes on the wire
// (estimated for snapshots), counted against Options.SendBudget.
type outItem struct {
	data  []byte
	frame []byte // a textFrame
	ev    *rx.Event
	sub   *subState
	size  int
	at    time.Time // a delta's rx.Event.Committed, for Observer
}

// dataItem is a frame of ready bytes.
func dataItem(b []byte) outItem { return outItem{data: b, size: len(b)} }

func newSession(srv *Server, conn *websocket.Conn, token string) *session {
	ctx, stop := context.WithCancel(context.Background())
	// The hello deadline is absolute, from the upgrade: no frame before
	// hello (a pong included) extends it.
	_ = conn.SetReadDeadline(time.Now().Add(srv.opts.HelloTimeout))
	return &session{
		srv:      srv,
		conn:     conn,
		token:    token,
		ctx:      ctx,
		stop:     stop,
		wake:     make(chan struct{}, 1),
		subs:     map[string]*subState{},
		lastSent: map[cache.Stream]uint64{},
	}
}

func (s *session) ready() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.authed
}

// enqueue queues a frame without blocking; a full queue (in frames, or in
// bytes besides its largest frame) means the client cannot keep up, and it
// is told to reconnect and resume.
func (s *session) enqueue(it outItem) bool {
	if s.ended.Load() {
		return false
	}
	o := &s.srv.opts
	s.qmu.Lock()
	big := max(s.big, it.size)
	if len(s.queue) >= o.SendQueue || s.bytes+it.size-big > o.SendBudget {
		s.qmu.Unlock()
		s.kill(CloseSlowClient, "client too slow; resume")
		return false
	}
	s.bytes += it.size
	s.big = big
	s.queue = append(s.queue, it)
	if n := int64(len(s.queue)); n > s.srv.peakQueue.Load() {
		s.srv.notePeak(n)
	}
	running := s.writing
	s.writing = true
	s.qmu.Unlock()
	if !running {
		go s.writer()
		return true
	}
	s.signal()
	return true
}

// signal wakes the writer if it is waiting.
func (s *session) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// pending reports whether frames are queued or being written.
func (s *session) pending() bool {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	return len(s.queue) > 0 || s.busy
}

// kill closes the socket with a close code, from any goroutine, without
// blocking: it may run on the engine goroutine, and writing the close frame
// to a stalled client can take up to its deadline.
func (s *session) kill(code int, reason string) { s.close(code, reason, false) }

// close is kill; drain reads and drops what the client still sends, for
// up to a second, before closing: closing a connection with unread data
// resets it, and the client could lose the close frame (after an
// oversized frame, and then send it again).
func (s *session) close(code int, reason string, drain bool) {
	s.once.Do(func() {
		s.ended.Store(true)
		s.stop()
		s.signal()
		go func() {
			_ = s.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason), time.Now().Add(time.Second))
			if drain {
				nc := s.conn.NetConn()
				_ = nc.SetReadDeadline(time.Now().Add(time.Second))
				_, _ = io.Copy(io.Discard, nc)
			}
			_ = s.conn.Close()
		}()
	})
}

func (s *session) serve() {
	o := &s.srv.opts
	s.conn.SetReadLimit(o.ReadLimit)
	// Set before it can fire: keepalive reads s.ping.
	s.ping = time.AfterFunc(time.Hour, s.keepalive)
	s.ping.Reset(o.PingInterval)
	defer s.teardown()
	// Until hello the read deadline newSession set stands.
	s.conn.SetPongHandler(func(string) error {
		if !s.ready() {
			return nil
		}
		return s.conn.SetReadDeadline(time.Now().Add(2 * o.PingInterval))
	})
	errs := newErrBucket(o.MaxProtocolErrors, o.ProtocolErrorWindow)
	for {
		typ, data, err := s.conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			switch {
			case errors.Is(err, websocket.ErrReadLimit):
				s.close(CloseTooLarge, "message too large", true)
			case !s.ready() && !errors.As(err, &ce):
				s.kill(CloseAuthFailed, "no hello in time")
			case errors.As(err, &ce):
				s.kill(websocket.CloseNormalClosure, "") // the client closed
			default:
				// A silent or broken connection: the client should
				// reconnect and resume, not stop.
				s.kill(CloseGoingAway, "connection lost")
			}
			return
		}
		if s.ready() {
			_ = s.conn.SetReadDeadline(time.Now().Add(2 * o.PingInterval))
		}
		var m *ClientMessage
		if typ != websocket.TextMessage {
			err = rx.Errorf(rx.CodeBadRequest, "binary frames are not part of the protocol")
		} else {
			m, err = DecodeClient(data)
		}
		if err == nil {
			if err = s.handle(m); err == nil {
				continue
			}
		}
		if s.ctx.Err() != nil {
			return // the socket closed while the message was handled
		}
		e := rx.Public(err)
		if e.Code == rx.CodeInternal {
			o.Logger.Error("channel: session error", "err", err)
		}
		var sid *ID
		var se *subErr
		if errors.As(err, &se) {
			sid = &se.id
		}
		s.srv.countError(e.Code)
		if !s.enqueue(dataItem(errorFrame(sid, e))) {
			return
		}
		// Bad frames are limited by rate: good frames in between do not
		// reset the count. Before hello, any frame but hello is bad.
		if e.Code == rx.CodeBadRequest || (e.Code == rx.CodeUnauthenticated && !s.ready()) {
			if !errs.take(time.Now()) {
				s.kill(ClosePolicyViolation, "too many protocol errors")
				return
			}
		}
		if s.ctx.Err() != nil {
			return
		}
	}
}

// handle dispatches one message. Returned errors become error frames.
func (s *session) handle(m *ClientMessage) error {
	if m.Type == "hello" {
		return s.hello(m)
	}
	if !s.ready() {
		return rx.Errorf(rx.CodeUnauthenticated, "send hello first")
	}
	switch m.Type {
	case "sub":
		return s.subscribe(m)
	case "unsub":
		return s.unsubscribe(m)
	case "call":
		return s.call(m)
	case "save", "create", "delete":
		return s.clientWrite(m)
	}
	return rx.Errorf(rx.CodeBadRequest, "unknown message type %s", quote(m.Type))
}

func (s *session) hello(m *ClientMessage) error {
	if s.ready() {
		return rx.Errorf(rx.CodeBadRequest, "hello was already accepted")
	}
	if m.V != ProtocolVersion {
		s.srv.countError(rx.CodeBadRequest)
		s.enqueue(dataItem(errorFrame(nil, rx.Errorf(rx.CodeBadRequest, "unsupported protocol version %d; this server speaks %d", m.V, ProtocolVersion))))
		s.closeAfterFlush(CloseBadVersion, "unsupported protocol version")
		return nil
	}
	token := m.Token
	if token == "" {
		token = s.token
	}
	ctx, cancel := context.WithTimeout(s.ctx, s.srv.opts.HelloTimeout)
	defer cancel()
	u, until, err := s.srv.authenticate(ctx, token)
	if err != nil {
		e := rx.Public(err)
		if e.Code != rx.CodeUnauthenticated {
			s.srv.opts.Logger.Error("channel: authenticator failed", "err", err)
			e = rx.Errorf(rx.CodeUnauthenticated, "authentication failed")
		}
		s.srv.countError(e.Code)
		s.enqueue(dataItem(errorFrame(nil, e)))
		s.closeAfterFlush(CloseAuthFailed, "authentication failed")
		return nil
	}
	s.signedIn(token, until)
	s.joinFrames.Store(m.Batch)
	s.mu.Lock()
	s.user, s.authed = u, true
	s.mu.Unlock()
	_ = s.conn.SetReadDeadline(time.Now().Add(2 * s.srv.opts.PingInterval))
	s.enqueue(dataItem(welcomeFrame(u.ID, s.srv.opts.ReadLimit)))
	return nil
}

// closeAfterFlush lets queued frames go out, then closes with code.
func (s *session) closeAfterFlush(code int, reason string) {
	go func() {
		deadline := time.Now().Add(time.Second)
		for s.pending() && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(10 * time.Millisecond)
		s.kill(code, reason)
	}()
}

func (s *session) subscribe(m *ClientMessage) error {
	key := m.ID.String()
	st := &subState{id: m.ID, channel: m.Channel}
	s.mu.Lock()
	if _, dup := s.subs[key]; dup {
		s.mu.Unlock()
		return subError(m.ID, rx.Errorf(rx.CodeBadRequest, "subscription id %s is already in use", key))
	}
	if limit := s.srv.opts.MaxSubscriptions; len(s.subs) >= limit {
		s.mu.Unlock()
		return subError(m.ID, rx.Errorf(rx.CodeBadRequest, "a socket may hold %d subscriptions; unsubscribe first", limit))
	}
	s.subs[key] = st
	user := s.user
	s.mu.Unlock()
	rs, err := s.srv.hub.Subscribe(s.ctx, m.Channel, []byte(m.Params), user, rx.SubscribeOptions{
		Since:   m.Since,
		Deliver: func(ev *rx.Event) bool { return s.deliver(st, ev) },
		Conn:    s,
	})
	if err != nil {
		s.mu.Lock()
		delete(s.subs, key)
		s.mu.Unlock()
		return subError(m.ID, err)
	}
	s.mu.Lock()
	st.rs = rs
	live := s.subs[key] == st // not ended already (forbidden, overloaded)
	s.mu.Unlock()
	if live {
		s.enqueue(dataItem(simpleFrame("done", m.ID)))
	}
	return nil
}

// subErr is an error answered with the subscription's id.
type subErr struct {
	id  ID
	err error
}

func (e *subErr) Error() string { return e.err.Error() }
func (e *subErr) Unwrap() error { return e.err }

func subError(id ID, err error) error { return &subErr{id, err} }

func (s *session) unsubscribe(m *ClientMessage) error {
	key := m.ID.String()
	s.mu.Lock()
	st := s.subs[key]
	delete(s.subs, key)
	s.mu.Unlock()
	if st == nil {
		return subError(m.ID, rx.Errorf(rx.CodeNotFound, "no subscription %s", key))
	}
	if st.rs != nil {
		st.rs.Close()
	}
	s.enqueue(dataItem(simpleFrame("unsubscribed", m.ID)))
	return nil
}

func (s *session) call(m *ClientMessage) error {
	st, err := s.target(m)
	if st != nil {
		go func() {
			v, err := st.rs.Call(s.ctx, m.Action, m.Args)
			s.answer(m, st, v, err)
		}()
	}
	return err
}

// deliver is a subscription's Deliver function: it runs on the engine
// goroutine and only queues.
func (s *session) deliver(st *subState, ev *rx.Event) bool {
	switch {
	case ev.End:
		s.mu.Lock()
		live := s.subs[st.id.String()] == st
		if live {
			delete(s.subs, st.id.String())
		}
		s.mu.Unlock()
		if live && ev.Err != nil && !s.ended.Load() {
			e := rx.Public(ev.Err)
			s.srv.countError(e.Code)
			s.enqueue(dataItem(errorFrame(&st.id, e)))
		}
		return true
	case ev.Presence != nil:
		s.enqueue(dataItem(presenceFrame(st.id, ev.Presence)))
	case ev.Runtime != nil:
		for k, v := range ev.Runtime {
			s.enqueue(dataItem(runtimeFrame(st.id, k, v)))
		}
	case ev.Anchors != nil:
		s.enqueue(dataItem(anchorsFrame(st.id, ev.Anchors)))
	case ev.Initial:
		key := cache.Stream{Channel: st.channel, Anchor: ev.Anchor}
		s.mu.Lock()
		s.lastSent[key] = max(s.lastSent[key], ev.Version)
		s.mu.Unlock()
		s.enqueue(outItem{ev: ev, sub: st, size: 128 + instancesSize(ev.Instances)})
	default:
		// One delta frame per stream and version, however many of this
		// socket's subscriptions hold the stream.
		key := cache.Stream{Channel: st.channel, Anchor: ev.Anchor}
		s.mu.Lock()
		dup := s.lastSent[key] >= ev.Version
		if !dup {
			s.lastSent[key] = ev.Version
		}
		s.mu.Unlock()
		if !dup {
			// Encoded here, once per event for every socket, so that its
			// size counts against the budget.
			d := deltaMessage(st.channel, ev)
			if d == nil {
				s.srv.opts.Logger.Error("channel: cannot prepare delta frame", "channel", st.channel)
				s.kill(CloseSlowClient, "internal error; resume")
				return true
			}
			s.enqueue(outItem{frame: d.frame, size: d.size, at: ev.Committed})
		}
	}
	return true
}

// writerLinger is how long a writer with nothing to write waits for more
// before it exits (between one and two of it): a socket receiving steady
// traffic keeps its writer (a wake-up costs the engine less than starting
// a goroutine), an idle one has none. A variable for tests, which set it
// long and run the checks themselves: atomic, since writers of sockets an
// earlier test left may still read it.
var writerLinger atomic.Int64

func init() { writerLinger.Store(int64(time.Second)) }

// lingerFor is writerLinger as a duration.
func lingerFor() time.Duration { return time.Duration(writerLinger.Load()) }

// writer writes the queued frames; once the queue has stayed empty for
// writerLinger it exits, and enqueue starts it again. At most one runs at a
// time: it is the only goroutine writing data frames.
//
// Between frames it waits on wake alone: a select over wake, a linger
// timer and the session's context, with the timer reset at every wait,
// was a tenth of the server's CPU at 10,000 sockets. Instead a timer
// checks once per writerLinger whether the writer took any batch since
// its last check, and if not wakes it to exit.
func (s *session) writer() {
	s.qmu.Lock()
	s.gen++
	gen, last := s.gen, s.wrote
	s.idle = false
	// The check locks qmu first, so it sees linger assigned.
	var linger *time.Timer
	s.check = func() {
		s.qmu.Lock()
		if s.gen != gen {
			s.qmu.Unlock()
			return // this writer has exited
		}
		if s.wrote == last && len(s.queue) == 0 {
			s.idle = true
			s.qmu.Unlock()
			s.signal()
			return
		}
		last = s.wrote
		s.qmu.Unlock()
		linger.Reset(lingerFor())
	}
	linger = time.AfterFunc(lingerFor(), s.check)
	s.qmu.Unlock()
	defer linger.Stop()
	var batch []outItem
	for {
		s.qmu.Lock()
		s.busy = false
		for len(s.queue) == 0 && !s.idle && !s.ended.Load() {
			s.qmu.Unlock()
			<-s.wake
			s.qmu.Lock()
		}
		if len(s.queue) == 0 || s.ended.Load() {
			s.queue = nil
			s.writing = false
			s.gen++ // retire this writer's linger check
			// and let it go, with its timer: an idle socket keeps neither.
			s.check = nil
			s.qmu.Unlock()
			return
		}
		if s.idle {
			// The check found the writer idle while it was still
			// writing, and stopped; new frames came: check again.
			s.idle = false
			linger.Reset(lingerFor())
		}
		// Swap the queue with the drained batch's storage.
		batch, s.queue = s.queue, batch[:0]
		s.busy = true
		s.wrote++
		s.qmu.Unlock()
		// Several frames go out in one write; one is written through.
		bc, _ := s.conn.NetConn().(*batchConn)
		if len(batch) < 2 {
			bc = nil
		}
		if bc != nil {
			bc.begin()
		}
		for i := 0; i < len(batch); {
			// A client that announced batch in hello gets the messages
			// in a run of ready frames as one frame, joined by "\n".
			n := 1
			if s.joinFrames.Load() {
				n = joinable(batch[i:])
			}
			var err error
			if n > 1 {
				err = s.writeJoined(batch[i : i+n])
			} else {
				err = s.write(batch[i])
			}
			if err == nil && i+n == len(batch) && bc != nil {
				err = bc.end() // the whole batch in one write
			}
			s.qmu.Lock()
			for k := i; k < i+n; k++ {
				s.sent(batch[k].size, batch[k+1:])
			}
			s.qmu.Unlock()
			if err != nil {
				if bc != nil {
					_ = bc.end()
				}
				s.srv.opts.Logger.Debug("channel: write failed", "err", err)
				s.kill(CloseSlowClient, "write failed; resume")
				s.qmu.Lock()
				s.gen++ // retire the linger check
				s.qmu.Unlock()
				return // writing stays set: nothing is written after a failure
			}
			clear(batch[i : i+n])
			i += n
		}
	}
}

// keepalive sends a ping and schedules the next one (timer goroutine).
// gorilla/websocket allows WriteControl beside the writer.
func (s *session) keepalive() {
	if s.ended.Load() {
		return
	}
	if err := s.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(s.srv.opts.WriteTimeout)); err != nil {
		s.kill(CloseSlowClient, "write failed; resume")
		return
	}
	s.ping.Reset(s.srv.opts.PingInterval)
}

func (s *session) write(it outItem) error {
	now := time.Now()
	_ = s.conn.SetWriteDeadline(now.Add(s.srv.opts.WriteTimeout))
	switch {
	case it.frame != nil:
		s.srv.sentFrame(it.size, it.at, now)
		return s.writeFrame(it.frame, now.Add(s.srv.opts.WriteTimeout))
	case it.data != nil:
		s.srv.sentFrame(len(it.data), time.Time{}, now)
		return s.conn.WriteMessage(websocket.TextMessage, it.data)
	case it.ev != nil:
		ev, n := it.ev, s.srv.opts.SnapshotBatch
		insts := ev.Instances
		for first := true; first || len(insts) > 0; first = false {
			batch := insts[:min(n, len(insts))]
			insts = insts[len(batch):]
			frame := snapshotFrame(it.sub.id, ev.Anchor, ev.Version, ev.Snapshot && first, len(insts) > 0, batch)
			// A batch is tens of KB: WriteMessage would send it as
			// fragments of the 4 KiB write buffer, one syscall each; a
			// frame goes out in one.
			s.srv.sentFrame(len(frame), time.Time{}, now)
			if err := s.writeFrame(textFrame(frame), now.Add(s.srv.opts.WriteTimeout)); err != nil {
				return err
			}
		}
		return nil
	}
	return errors.New("channel: empty frame")
}

// teardown ends the session's subscriptions and goroutines.
func (s *session) teardown() {
	s.kill(websocket.CloseNormalClosure, "")
	s.ping.Stop()
	s.mu.Lock()
	subs := s.subs
	s.subs = map[string]*subState{}
	s.mu.Unlock()
	for _, st := range subs {
		if st.rs != nil {
			st.rs.Close()
		}
	}
}
