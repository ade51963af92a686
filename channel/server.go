package channel

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rxgorm/rxgorm/rx"
)

// Options configures a Server. The zero value works: anonymous users only,
// same-origin browsers only, the documented limits.
type Options struct {
	// Auth authenticates clients. Nil means every client is anonymous (the
	// channels' Authorize hooks still decide what they may see).
	Auth Authenticator
	// Cookie is the cookie a token may come in. Empty means "rx_token".
	Cookie string
	// AllowedOrigins lists the origins (scheme://host[:port]) allowed to
	// open a socket from a browser besides the server's own; "*" allows
	// any. Requests without an Origin header (non-browser clients) are
	// always allowed.
	AllowedOrigins []string
	// HelloTimeout is how long a client has to send a valid hello. Zero
	// means 10 s.
	HelloTimeout time.Duration
	// ReadLimit is the largest frame accepted; a larger one closes the
	// socket with 1009. Zero means 1 MiB.
	ReadLimit int64
	// SendQueue is the number of frames that may wait for a slow client;
	// past it the socket is closed with 4008 and the client resumes. Zero
	// means 1024.
	SendQueue int
	// SendBudget is the most bytes that may wait for a slow client besides
	// the largest frame waiting: snapshots, deltas (a delta frame shared
	// with other sockets counts its whole size), results, errors, presence
	// and system frames. Past it the socket is closed with 4008 and the
	// client resumes, as for SendQueue. The largest frame is not counted,
	// so that one frame larger than the budget (a big snapshot) may go out.
	// Zero means 1 MiB (Centrifugo's default).
	SendBudget int
	// MaxResult is the largest result frame of a call or client write; a
	// larger value is answered with the error too_large instead. Zero
	// means 256 KiB.
	MaxResult int
	// MaxCalls is the most action calls one socket may have in progress; a
	// call past it is answered at once with overloaded. Zero means 64.
	MaxCalls int
	// MaxSubscriptions is the most subscriptions one socket may hold; a sub
	// past it is refused with bad_request. Zero means 1000.
	MaxSubscriptions int
	// SnapshotBatch is the most instances per snapshot frame. Zero means 500.
	SnapshotBatch int
	// MaxProtocolErrors is how many bad frames (bad_request, or anything
	// but hello before hello) a socket may send in ProtocolErrorWindow;
	// one more closes it with 1008. Good frames in between do not reset
	// the count: it is a token bucket of MaxProtocolErrors tokens refilled
	// evenly over the window. Zero means 10.
	MaxProtocolErrors int
	// ProtocolErrorWindow is the period of MaxProtocolErrors. Zero means
	// one minute.
	ProtocolErrorWindow time.Duration
	// MaxConnections caps the sockets the server holds, those still
	// waiting for hello included; an upgrade past it is refused with HTTP
	// 503. Zero means 10,000; negative means no cap.
	MaxConnections int
	// MaxConnectionsPerIP caps the sockets of one client address (see
	// ClientIP); an upgrade past it is refused with HTTP 503. Zero means
	// 100; negative means no cap. Behind a reverse proxy every client has
	// the proxy's address: set ClientIP, or turn this cap off.
	MaxConnectionsPerIP int
	// ClientIP returns the address a request counts against
	// MaxConnectionsPerIP. Nil means the host of the request's RemoteAddr
	// (X-Forwarded-For is not trusted unless ClientIP reads it).
	ClientIP func(*http.Request) string
	// PingInterval is the keepalive period; a client silent for two of
	// them is dropped. Zero means 25 s.
	PingInterval time.Duration
	// WriteTimeout bounds one frame write. Zero means 10 s.
	WriteTimeout time.Duration
	// Logger receives connection errors. Nil means slog.Default().
	Logger *slog.Logger
}

func (o *Options) defaults() {
	if o.Cookie == "" {
		o.Cookie = "rx_token"
	}
	if o.HelloTimeout <= 0 {
		o.HelloTimeout = 10 * time.Second
	}
	if o.ReadLimit <= 0 {
		o.ReadLimit = 1 << 20
	}
	if o.SendQueue <= 0 {
		o.SendQueue = 1024
	}
	if o.MaxCalls <= 0 {
		o.MaxCalls = 64
	}
	if o.MaxSubscriptions <= 0 {
		o.MaxSubscriptions = 1000
	}
	if o.SnapshotBatch <= 0 {
		o.SnapshotBatch = 500
	}
	if o.MaxProtocolErrors <= 0 {
		o.MaxProtocolErrors = 10
	}
	if o.ProtocolErrorWindow <= 0 {
		o.ProtocolErrorWindow = time.Minute
	}
	if o.SendBudget <= 0 {
		o.SendBudget = 1 << 20
	}
	if o.MaxResult <= 0 {
		o.MaxResult = 256 << 10
	}
	if o.MaxConnections == 0 {
		o.MaxConnections = 10000
	}
	if o.MaxConnectionsPerIP == 0 {
		o.MaxConnectionsPerIP = 100
	}
	if o.ClientIP == nil {
		o.ClientIP = remoteHost
	}
	if o.PingInterval <= 0 {
		o.PingInterval = 25 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Auth == nil {
		o.Auth = AuthFunc(func(context.Context, string) (rx.User, error) { return rx.User{}, nil })
	}
}

// Server serves a Hub's channels over WebSockets: mount it as an
// http.Handler. One socket carries any number of subscriptions.
type Server struct {
	hub      *rx.Hub
	opts     Options
	upgrader websocket.Upgrader
	unlisten func()
	unrevoke func() // revoke.go

	mu       sync.Mutex
	sessions map[*session]struct{} // guarded by mu
	closing  bool                  // guarded by mu
	conns    int                   // guarded by mu: sockets admitted (upgrading or open)
	perIP    map[string]int        // guarded by mu: conns by client address
	wg       sync.WaitGroup

	frames atomic.Int64 // frames written to sockets
	writes atomic.Int64 // writes to their connections (syscalls)
	// peakQueue is the most frames any socket's send queue has held.
	peakQueue atomic.Int64
	stats     serverStats // stats.go
}

// NewServer returns a Server for hub.
func NewServer(hub *rx.Hub, opts Options) *Server {
	opts.defaults()
	s := &Server{hub: hub, opts: opts, sessions: map[*session]struct{}{}, perIP: map[string]int{}}
	// Small read buffers (client frames are small; larger ones are read
	// in several reads) and pooled write buffers, held only while a
	// frame is written: an idle socket keeps neither net/http's 4 KiB
	// buffers nor its own.
	s.upgrader = websocket.Upgrader{
		ReadBufferSize:  1024,
		WriteBufferSize: 4096,
		WriteBufferPool: &sync.Pool{},
		CheckOrigin:     s.checkOrigin,
	}
	s.unlisten = hub.OnBroadcast(s.system)
	s.unrevoke = s.listenRevocations()
	return s
}

func (s *Server) checkOrigin(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if slices.Contains(s.opts.AllowedOrigins, "*") || slices.Contains(s.opts.AllowedOrigins, origin) {
		return true
	}
	u, err := url.Parse(origin)
	return err == nil && strings.EqualFold(u.Host, r.Host)
}

// ServeHTTP upgrades the request to a WebSocket and serves it until it
// closes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	defer s.wg.Done()
	if !s.checkOrigin(r) {
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	ip := s.opts.ClientIP(r)
	if !s.admit(ip) {
		http.Error(w, "too many connections", http.StatusServiceUnavailable)
		return
	}
	token := tokenFromRequest(r, s.opts.Cookie)
	conn, err := s.upgrader.Upgrade(batchWriter{w, &s.writes}, r, nil)
	if err != nil {
		s.release(ip)
		return // the upgrader answered the client
	}
	ss := newSession(s, conn, token)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		s.release(ip)
		ss.kill(CloseGoingAway, "server shutting down")
		return
	}
	s.sessions[ss] = struct{}{}
	s.wg.Add(1)
	s.mu.Unlock()
	// The session runs on a goroutine of its own and ServeHTTP returns:
	// net/http's connection goroutine then ends and its buffers (about
	// 6 KiB a socket, held for as long as the handler runs) are freed.
	go func() {
		defer s.wg.Done()
		ss.serve()
		s.release(ip) // first: once Sockets counts it out, its slot is free
		s.mu.Lock()
		delete(s.sessions, ss)
		s.mu.Unlock()
	}()
}

func (s *Server) each(f func(*session)) {
	s.mu.Lock()
	ss := make([]*session, 0, len(s.sessions))
	for x := range s.sessions {
		ss = append(ss, x)
	}
	s.mu.Unlock()
	for _, x := range ss {
		f(x)
	}
}

// system forwards a hub broadcast to every authenticated socket.
func (s *Server) system(msg json.RawMessage) {
	m := systemFrame(msg)
	f := textFrame(m)
	s.each(func(x *session) {
		if x.ready() {
			x.enqueue(outItem{frame: f, size: len(m)})
		}
	})
}

// DisconnectUser closes every socket of a user on this node (for example
// after logout or account deletion) with code 4001: the client must
// authenticate again. TokenAuth's RevokeUser does it on every node.
func (s *Server) DisconnectUser(userID string) {
	s.each(func(x *session) {
		if x.ready() && x.user.ID == userID {
			x.kill(CloseAuthFailed, "logged out")
		}
	})
}

// Sockets returns the number of open sockets.
func (s *Server) Sockets() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// Shutdown stops accepting sockets, tells every client to reconnect
// elsewhere (close code 1001: they resume from their last version) and
// waits for the connections to finish, or for ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	s.unlisten()
	s.unrevoke()
	s.each(func(x *session) { x.kill(CloseGoingAway, "server shutting down") })
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// notePeak raises peakQueue to n.
func (s *Server) notePeak(n int64) {
	for {
		p := s.peakQueue.Load()
		if n <= p || s.peakQueue.CompareAndSwap(p, n) {
			return
		}
	}
}
