package channel

// RelQueues reports, for every open socket, how many frames wait in its
// send queue and the queue's bound (Options.SendQueue): what a slow client
// can make the server hold for it.
func (s *Server) RelQueues() (lens, caps []int) {
	s.each(func(x *session) {
		x.qmu.Lock()
		lens = append(lens, len(x.queue))
		x.qmu.Unlock()
		caps = append(caps, x.srv.opts.SendQueue)
	})
	return lens, caps
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
