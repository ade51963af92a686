package channel

// RelQueues reports, for every open socket, how many frames wait in its
// send queue and the queue's capacity: what a slow client can make the
// server hold for it.
func (s *Server) RelQueues() (lens, caps []int) {
	s.each(func(x *session) {
		lens = append(lens, len(x.send))
		caps = append(caps, cap(x.send))
	})
	return lens, caps
}
