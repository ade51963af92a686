package channel

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
