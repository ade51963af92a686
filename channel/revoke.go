package channel

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/rxgorm/rxgorm/rx"
)

// Ending access when credentials end (docs/DECISIONS.md, "Access ends when
// permission ends"): a socket lives as long as the token it authenticated
// with. A Server closes with 4001 the sockets of a revoked token or user
// (Revoker), on every node of a cluster through the hub's broker, and a
// socket whose token expires (ExpiringAuthenticator), at that moment.

// Revocation names sockets whose credentials were revoked: those
// authenticated with the token whose HashToken is Token, or, with User
// set, every socket of that user but those authenticated with the token
// whose hash is Except.
type Revocation struct {
	Token  string `json:"t,omitempty"`
	User   string `json:"u,omitempty"`
	Except string `json:"x,omitempty"`
}

// Revoker is implemented by an Authenticator that revokes credentials
// (TokenAuth). A Server subscribes to it and closes the matching sockets
// with 4001 on every node of the cluster: it publishes each revocation on
// its hub's broker, topic "rx.revoke", and every Server listening there
// closes its own.
type Revoker interface {
	OnRevoke(f func(Revocation)) (remove func())
}

// ExpiringAuthenticator is implemented by an Authenticator whose
// credentials expire (TokenAuth): a socket is closed with 4001 when the
// token it authenticated with expires.
type ExpiringAuthenticator interface {
	Authenticator
	// AuthenticateUntil is Authenticate, and returns when the credentials
	// expire; the zero time means never.
	AuthenticateUntil(ctx context.Context, token string) (rx.User, time.Time, error)
}

// revokeTopic is the broker topic of revocations.
const revokeTopic = "rx.revoke"

// revocations is a registry of revocation listeners.
type revocations struct {
	mu   sync.Mutex
	next int
	fs   map[int]func(Revocation) // guarded by mu
}

func (r *revocations) add(f func(Revocation)) func() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.fs == nil {
		r.fs = map[int]func(Revocation){}
	}
	id := r.next
	r.next++
	r.fs[id] = f
	return func() {
		r.mu.Lock()
		delete(r.fs, id)
		r.mu.Unlock()
	}
}

func (r *revocations) notify(rv Revocation) {
	r.mu.Lock()
	fs := make([]func(Revocation), 0, len(r.fs))
	for _, f := range r.fs {
		fs = append(fs, f)
	}
	r.mu.Unlock()
	for _, f := range fs {
		f(rv)
	}
}

// listenRevocations wires the server to its authenticator's revocations and
// to the other nodes'. It returns what undoes it.
func (s *Server) listenRevocations() func() {
	var undo []func()
	if unsub, err := s.hub.Broker().Subscribe(context.Background(), revokeTopic, func(b []byte) {
		var rv Revocation
		if json.Unmarshal(b, &rv) == nil {
			s.Revoke(rv)
		}
	}); err == nil {
		undo = append(undo, unsub)
	} else {
		s.opts.Logger.Error("channel: listen to revocations of other nodes", "err", err)
	}
	if r, ok := s.opts.Auth.(Revoker); ok {
		undo = append(undo, r.OnRevoke(func(rv Revocation) {
			s.Revoke(rv) // here at once, whatever the broker does
			b, _ := json.Marshal(rv)
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := s.hub.Broker().Publish(ctx, revokeTopic, b); err != nil {
				s.opts.Logger.Error("channel: tell other nodes of a revocation", "err", err)
			}
		}))
	}
	return func() {
		for _, f := range undo {
			f()
		}
	}
}

// Revoke closes with 4001 the sockets on this node that rv names. A
// Revoker authenticator's revocations reach it on every node by
// themselves; call it for credentials revoked some other way.
func (s *Server) Revoke(rv Revocation) {
	s.each(func(x *session) {
		if !x.ready() {
			return
		}
		x.mu.Lock()
		user, hash := x.user.ID, x.tokenHash
		x.mu.Unlock()
		if (rv.Token != "" && hash == rv.Token) || (rv.User != "" && user == rv.User && (rv.Except == "" || hash != rv.Except)) {
			x.kill(CloseAuthFailed, "credentials revoked")
		}
	})
}

// authenticate authenticates a hello's token, with its expiry when the
// authenticator tells it.
func (s *Server) authenticate(ctx context.Context, token string) (rx.User, time.Time, error) {
	if ea, ok := s.opts.Auth.(ExpiringAuthenticator); ok {
		return ea.AuthenticateUntil(ctx, token)
	}
	u, err := s.opts.Auth.Authenticate(ctx, token)
	return u, time.Time{}, err
}

// signedIn records the credentials of an accepted hello: the token's hash,
// for revocations, and its expiry, when the socket is closed.
func (s *session) signedIn(token string, until time.Time) {
	s.mu.Lock()
	if token != "" {
		s.tokenHash = HashToken(token)
	}
	s.mu.Unlock()
	if until.IsZero() {
		return
	}
	t := time.AfterFunc(time.Until(until), func() { s.kill(CloseAuthFailed, "token expired") })
	context.AfterFunc(s.ctx, func() { t.Stop() })
}
