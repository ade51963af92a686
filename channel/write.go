package channel

import (
	"encoding/json"

	"github.com/rxgorm/rxgorm/rx"
)

// Client writes (save, create, delete) and presence frames. A write is
// answered like a call, with a result frame carrying the row's id, sent
// after the delta that carries the write's effect (rx.Subscription.Write
// waits for it).

// checkWrite checks a decoded save, create or delete frame has what its
// type needs.
func checkWrite(m *ClientMessage) error {
	if m.ID.raw == nil || m.Sub.raw == nil || m.Layer == "" {
		return rx.Errorf(rx.CodeBadRequest, "%s needs id, sub and layer", m.Type)
	}
	switch m.Type {
	case "save":
		if m.Row == "" || len(m.Fields) == 0 {
			return rx.Errorf(rx.CodeBadRequest, "save needs row and fields")
		}
	case "create":
		if m.Relation == "" || m.Parent == "" {
			return rx.Errorf(rx.CodeBadRequest, "create needs relation and parent")
		}
	case "delete":
		if m.Row == "" {
			return rx.Errorf(rx.CodeBadRequest, "delete needs row")
		}
		if len(m.Fields) > 0 {
			return rx.Errorf(rx.CodeBadRequest, "delete carries no fields")
		}
	}
	return nil
}

// writeResult is the value of a write's result frame.
type writeResult struct {
	Row string `json:"row"`
}

// clientWrite runs a client write on the subscription it names, off the
// read loop, and answers with a result frame.
func (s *session) clientWrite(m *ClientMessage) error {
	st, err := s.target(m)
	if st != nil {
		req := rx.WriteRequest{Op: rx.Op(m.Type), Layer: m.Layer, Row: m.Row, Relation: m.Relation, Parent: m.Parent, Fields: m.Fields}
		go func() {
			row, err := st.rs.Write(s.ctx, req)
			var v any
			if err == nil {
				v = writeResult{Row: row}
			}
			s.answer(m, st, v, err)
		}()
	}
	return err
}

// presenceFrame encodes who is present in one anchor's stream.
func presenceFrame(sub ID, p *rx.StreamPresence) []byte {
	users := p.Users
	if users == nil {
		users = []rx.Present{}
	}
	b, _ := json.Marshal(struct {
		Type   string       `json:"type"`
		Sub    ID           `json:"sub"`
		Anchor string       `json:"anchor"`
		Users  []rx.Present `json:"users"`
	}{"presence", sub, p.Anchor, users})
	return b
}
