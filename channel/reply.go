package channel

import (
	"context"
	"errors"
	"log/slog"

	"github.com/rxgorm/rxgorm/rx"
)

// Requests answered by a result frame: calls and client writes.

// target returns the subscription a call or write names, its id now in
// progress, or answers the refusal (not_found, overloaded past
// Options.MaxCalls) and returns nil. A request reusing the id of one in
// progress gets an error (an error frame, not a result: a result would
// settle the one in progress).
func (s *session) target(m *ClientMessage) (*subState, error) {
	key, limit := m.ID.String(), s.srv.opts.MaxCalls
	s.mu.Lock()
	st := s.subs[m.Sub.String()]
	busy, n := s.calls[key], len(s.calls)
	ok := !busy && st != nil && st.rs != nil && n < limit
	if ok {
		if s.calls == nil {
			s.calls = map[string]bool{} // made at the first call: most sockets only subscribe
		}
		s.calls[key] = true
	}
	s.mu.Unlock()
	var refuse *rx.Error
	switch {
	case busy:
		return nil, rx.Errorf(rx.CodeBadRequest, "call id %s is already in progress", key)
	case st == nil || st.rs == nil:
		refuse = rx.Errorf(rx.CodeNotFound, "no subscription %s", m.Sub.String())
	case !ok:
		refuse = rx.Errorf(rx.CodeOverloaded, "%d calls are in progress; wait for their results", limit)
	}
	if refuse != nil {
		s.srv.countError(refuse.Code)
		frame, _ := resultFrame(m.ID, nil, refuse)
		s.enqueue(dataItem(frame))
		return nil, nil
	}
	return st, nil
}

// answer sends the result of request m: its value, or its error; a value
// whose frame is over Options.MaxResult is answered with too_large. A plain
// error (not an *rx.Error) is logged and sent as "internal error", with
// nothing of its cause; one of a request cut short by the socket closing
// is not a fault, and is logged at debug level.
func (s *session) answer(m *ClientMessage, st *subState, v any, err error) {
	log := s.srv.opts.Logger
	name := m.Action
	if m.Type != "call" {
		name = m.Layer
	}
	e := rx.Public(err)
	var re *rx.Error
	if e != nil && e.Code == rx.CodeInternal && !errors.As(err, &re) {
		level := slog.LevelError
		if s.ctx.Err() != nil {
			level = slog.LevelDebug
		}
		log.Log(context.Background(), level, "channel: request failed", "type", m.Type, "channel", st.channel, "name", name, "err", err)
		e = rx.Errorf(rx.CodeInternal, "internal error")
	}
	frame, ferr := resultFrame(m.ID, v, e)
	if ferr != nil {
		log.Error("channel: encode result", "type", m.Type, "channel", st.channel, "name", name, "err", ferr)
		e = rx.Errorf(rx.CodeInternal, "internal error")
		frame, _ = resultFrame(m.ID, nil, e)
	}
	if limit := s.srv.opts.MaxResult; len(frame) > limit {
		e = rx.Errorf(rx.CodeTooLarge, "the result is %d bytes; the limit is %d", len(frame), limit)
		frame, _ = resultFrame(m.ID, nil, e)
	}
	if e != nil {
		s.srv.countError(e.Code)
	}
	s.mu.Lock()
	delete(s.calls, m.ID.String()) // before the result: the client may reuse the id
	s.mu.Unlock()
	s.enqueue(dataItem(frame))
}
