package channel

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/rxgorm/rxgorm/rx"
)

// Stats are a Server's figures, for monitoring: package rxprom exports
// them to Prometheus. Counters count since the server started; the
// others are read when Stats is called.
type Stats struct {
	// Sockets is the number of open sockets.
	Sockets int
	// Frames is the number of data messages written to clients, each in
	// a frame of its own or, for a client that announced batch in hello,
	// possibly joined with others in one frame (control frames such as
	// pings and closes are not counted).
	Frames int64
	// Writes is the number of writes to the clients' connections (each one
	// system call). A socket's writer sends every frame queued for it in
	// one write, so under load Writes is well below Frames.
	Writes int64
	// Bytes is the size of the data frames written to clients: their
	// payloads, without the WebSocket framing.
	Bytes int64
	// QueuedFrames is the number of frames waiting in the sockets' send
	// queues for their writers.
	QueuedFrames int64
	// QueuedBytes is the size of the frames queued or being written, as
	// counted against Options.SendBudget (snapshots are estimated).
	QueuedBytes int64
	// Errors counts the errors sent to clients, by code: error frames and
	// results carrying an error.
	Errors map[rx.Code]uint64
}

// Stats returns the server's figures. It visits every socket to add up
// the queues (a lock each), so it costs in proportion to the sockets:
// call it once per scrape, not per frame.
func (s *Server) Stats() Stats {
	st := Stats{
		Frames: s.frames.Load(),
		Writes: s.writes.Load(),
		Bytes:  s.stats.bytes.Load(),
		Errors: map[rx.Code]uint64{},
	}
	s.mu.Lock()
	st.Sockets = len(s.sessions)
	s.mu.Unlock()
	s.each(func(x *session) {
		x.qmu.Lock()
		st.QueuedFrames += int64(len(x.queue))
		st.QueuedBytes += int64(x.bytes)
		x.qmu.Unlock()
	})
	s.stats.errors.Range(func(k, v any) bool {
		st.Errors[k.(rx.Code)] = v.(*atomic.Uint64).Load()
		return true
	})
	return st
}

// Observer receives a Server's latencies as they happen. Its methods run
// on the sockets' writer goroutines, so they must be quick and must not
// block: a histogram's Observe is. Set it with Server.SetObserver.
type Observer interface {
	// ObserveCommitToSend is called for every delta frame written to a
	// socket with the time from its commit (rx.Event.Committed) to the
	// write. Deltas without a commit time are not observed.
	ObserveCommitToSend(time.Duration)
}

// serverStats holds the figures the Server counts besides frames and
// writes, with atomic operations only: no lock per frame.
type serverStats struct {
	bytes    atomic.Int64
	errors   sync.Map // rx.Code → *atomic.Uint64
	observer atomic.Pointer[observerBox]
}

// observerBox holds an Observer for atomic.Pointer.
type observerBox struct{ o Observer }

// SetObserver makes o receive the server's latencies from now on,
// replacing the previous observer; nil stops them.
func (s *Server) SetObserver(o Observer) {
	if o == nil {
		s.stats.observer.Store(nil)
		return
	}
	s.stats.observer.Store(&observerBox{o})
}

// countError counts an error sent to a client.
func (s *Server) countError(c rx.Code) {
	v, ok := s.stats.errors.Load(c)
	if !ok {
		v, _ = s.stats.errors.LoadOrStore(c, new(atomic.Uint64))
	}
	v.(*atomic.Uint64).Add(1)
}

// sentFrame counts a data frame of n bytes written at now; at is the
// commit time of a delta frame (zero otherwise).
func (s *Server) sentFrame(n int, at, now time.Time) {
	s.frames.Add(1)
	s.stats.bytes.Add(int64(n))
	if !at.IsZero() {
		if b := s.stats.observer.Load(); b != nil {
			b.o.ObserveCommitToSend(now.Sub(at))
		}
	}
}
