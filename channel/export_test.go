package channel

import "time"

// RelQueues reports, for every open socket, how many frames wait in its
// send queue, and the most frames any socket's queue has held since the
// server started (closed sockets included): what a slow client can make
// the server hold for it, which Options.SendQueue bounds.
func (s *Server) RelQueues() (lens []int, peak int) {
	s.each(func(x *session) {
		x.qmu.Lock()
		lens = append(lens, len(x.queue))
		x.qmu.Unlock()
	})
	return lens, int(s.peakQueue.Load())
}

// RelWriters reports how many open sockets have a writer goroutine.
func (s *Server) RelWriters() (n int) {
	s.each(func(x *session) {
		x.qmu.Lock()
		if x.writing {
			n++
		}
		x.qmu.Unlock()
	})
	return n
}

// SetWriterLinger sets how long an idle writer waits before its linger
// check runs, until the test ends.
func SetWriterLinger(t interface{ Cleanup(func()) }, d time.Duration) {
	old := writerLinger.Load()
	writerLinger.Store(int64(d))
	t.Cleanup(func() { writerLinger.Store(old) })
}

// CheckWriters runs the linger check of every socket's writer now, as its
// timer would: a writer that took no batch since its last check exits.
func (s *Server) CheckWriters() {
	var checks []func()
	s.each(func(x *session) {
		x.qmu.Lock()
		if x.writing && x.check != nil {
			checks = append(checks, x.check)
		}
		x.qmu.Unlock()
	})
	for _, c := range checks {
		c()
	}
}
