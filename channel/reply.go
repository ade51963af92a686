package channel

import (
	"errors"

	"github.com/rxgorm/rxgorm/rx"
)

// Requests answered by a result frame: calls and client writes.

// target returns the subscription a call or write names, or answers
// not_found and returns nil.
func (s *session) target(m *ClientMessage) *subState {
	s.mu.Lock()
	st := s.subs[m.Sub.String()]
	s.mu.Unlock()
	if st == nil || st.rs == nil {
		frame, _ := resultFrame(m.ID, nil, rx.Errorf(rx.CodeNotFound, "no subscription %s", m.Sub.String()))
		s.enqueue(outItem{data: frame})
		return nil
	}
	return st
}

// answer sends the result of request m: its value, or its error. A plain
// error (not an *rx.Error) is logged and sent as "internal error", with
// nothing of its cause.
func (s *session) answer(m *ClientMessage, st *subState, v any, err error) {
	log := s.srv.opts.Logger
	name := m.Action
	if m.Type != "call" {
		name = m.Layer
	}
	e := rx.Public(err)
	var re *rx.Error
	if e != nil && e.Code == rx.CodeInternal && !errors.As(err, &re) {
		log.Error("channel: request failed", "type", m.Type, "channel", st.channel, "name", name, "err", err)
		e = rx.Errorf(rx.CodeInternal, "internal error")
	}
	frame, ferr := resultFrame(m.ID, v, e)
	if ferr != nil {
		log.Error("channel: encode result", "type", m.Type, "channel", st.channel, "name", name, "err", ferr)
		frame, _ = resultFrame(m.ID, nil, rx.Errorf(rx.CodeInternal, "internal error"))
	}
	s.enqueue(outItem{data: frame})
}
