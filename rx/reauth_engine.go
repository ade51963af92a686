package rx

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"time"
)

// The engine's side of reactive authorization (reauth.go): which
// subscribers a commit re-checks, the checks themselves, the end of the
// refused subscriptions, the marks for the nodes following a stream, and
// the window at subscribe.

// reauthWorkers bounds the Authorize calls one re-check runs at once.
const reauthWorkers = 8

// reauthTimeout bounds one re-check: the engine waits for it, and a
// refusal by timeout is a refusal (fail closed).
const reauthTimeout = 10 * time.Second

// reauthTargets adds to set the hot streams holding a changed row or list
// their channel depends on, as the index is now (call it before and after
// applying the changes: rows leave and enter streams).
func (e *engine) reauthTargets(set map[*hotStream]bool, changes map[ikey]*change) {
	idx := e.h.reauth.p.Load()
	if idx == nil || (len(idx.inState) == 0 && len(idx.inRels) == 0) {
		return
	}
	for k, c := range changes {
		row := idx.inState[k.l]
		list := false
		for r := range c.lists {
			if idx.inRels[r] {
				list = true
			}
		}
		if !row && !list {
			continue
		}
		for s := range e.index[k] {
			rd := s.def.reauth
			if rd == nil || set[s] {
				continue
			}
			if row && rd.layers[k.l] {
				set[s] = true
				continue
			}
			for r := range c.lists {
				if rd.rels[r] {
					set[s] = true
					break
				}
			}
		}
	}
}

// reauthOutside returns the subscriptions to re-check for touches of
// dependencies outside the channels' states.
func (e *engine) reauthOutside(ts []touch) map[*Subscription]bool {
	idx := e.h.reauth.p.Load()
	if idx == nil || len(idx.outside) == 0 {
		return nil
	}
	var out map[*Subscription]bool
	all := map[*channelDef]bool{}
	users := map[*channelDef]map[string]bool{}
	for _, t := range ts {
		for _, d := range idx.outside[t.l] {
			if d.rel != nil && t.rel != d.rel {
				continue
			}
			if d.rel == nil && t.rel != nil {
				continue // a relation list of the row, not the row
			}
			if d.user {
				if users[d.def] == nil {
					users[d.def] = map[string]bool{}
				}
				users[d.def][t.id] = true
			} else {
				all[d.def] = true
			}
		}
	}
	if len(all) == 0 && len(users) == 0 {
		return nil
	}
	add := func(s *hotStream) {
		us := users[s.def]
		if !all[s.def] && us == nil {
			return
		}
		for sub := range s.subs {
			if all[s.def] || us[sub.user.ID] {
				if out == nil {
					out = map[*Subscription]bool{}
				}
				out[sub] = true
			}
		}
	}
	for _, s := range e.streams {
		add(s)
	}
	for s := range e.parked {
		add(s)
	}
	return out
}

// reauthorize re-checks subs with their channels' Authorize and ends those
// refused (engine goroutine). Subscriptions of one user with equal params
// share one call.
func (e *engine) reauthorize(ctx context.Context, subs map[*Subscription]bool) {
	byKey := map[checkKey]*check{}
	var checks []*check
	for sub := range subs {
		sub.mu.Lock()
		closed := sub.closed
		sub.mu.Unlock()
		if closed || sub.def.authorize == nil {
			continue
		}
		k := checkKey{def: sub.def, user: sub.user.ID}
		if sub.params != nil && reflect.TypeOf(sub.params).Comparable() {
			k.p = sub.params
		} else {
			k.p = sub // not comparable: one call per subscription
		}
		c := byKey[k]
		if c == nil {
			c = &check{sub: sub}
			byKey[k] = c
			checks = append(checks, c)
		}
		c.subs = append(c.subs, sub)
	}
	if len(checks) == 0 {
		return
	}
	// Authorize reads the database: it must see the commits handed over
	// (if telling fails, so does the database, and Authorize meets it).
	_ = e.ready(ctx)
	hubCtx := ctx
	ctx, cancel := context.WithTimeout(ctx, reauthTimeout)
	defer cancel()
	all := checks
	checks = e.batchChecks(ctx, checks)
	run := func(c *check) {
		defer func() {
			if p := recover(); p != nil {
				c.err = fmt.Errorf("rx: Authorize panicked: %v", p)
			}
		}()
		c.err = c.sub.def.authorize(ctx, c.sub.user, c.sub.params)
	}
	if len(checks) == 1 {
		run(checks[0])
	} else if len(checks) > 1 {
		var wg sync.WaitGroup
		next := make(chan *check)
		for w := 0; w < min(reauthWorkers, len(checks)); w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for c := range next {
					run(c)
				}
			}()
		}
		for _, c := range checks {
			next <- c
		}
		close(next)
		wg.Wait()
	}
	if hubCtx.Err() != nil {
		return // the hub is closing: its subscriptions end anyway
	}
	for _, c := range all {
		if c.err == nil {
			continue
		}
		for _, sub := range c.subs {
			sub.revoke(c.err)
		}
	}
}

// checkKey groups subscriptions that share one Authorize answer.
type checkKey struct {
	def  *channelDef
	user string
	p    any // the params, or the subscription when they are not comparable
}

// check is one Authorize answer to find.
type check struct {
	sub  *Subscription // the first, whose user and params are used
	subs []*Subscription
	err  error
}

// batchChecks answers the checks of UsersAuthorizer channels, one call per
// channel and params, and returns the checks left for Authorize.
func (e *engine) batchChecks(ctx context.Context, checks []*check) []*check {
	type group struct {
		def    *channelDef
		p      any
		checks []*check
	}
	var groups []*group
	byParams := map[[2]any]*group{}
	rest := checks[:0:0]
	for _, c := range checks {
		def := c.sub.def
		if def.authorizeUsers == nil || c.sub.params == nil || !reflect.TypeOf(c.sub.params).Comparable() {
			rest = append(rest, c)
			continue
		}
		k := [2]any{def, c.sub.params}
		g := byParams[k]
		if g == nil {
			g = &group{def: def, p: c.sub.params}
			byParams[k] = g
			groups = append(groups, g)
		}
		g.checks = append(g.checks, c)
	}
	for _, g := range groups {
		users := make([]User, len(g.checks))
		for i, c := range g.checks {
			users[i] = c.sub.user
		}
		errs, err := callUsers(ctx, g.def, g.p, users)
		for i, c := range g.checks {
			switch {
			case err != nil:
				c.err = err
			case i < len(errs):
				c.err = errs[i]
			default:
				c.err = fmt.Errorf("rx: %s.AuthorizeUsers returned %d answers for %d users", g.def.name, len(errs), len(users))
			}
		}
	}
	return rest
}

// callUsers calls a channel's AuthorizeUsers, turning a panic into an
// error.
func callUsers(ctx context.Context, def *channelDef, p any, users []User) (errs []error, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("rx: AuthorizeUsers panicked: %v", r)
		}
	}()
	return def.authorizeUsers(ctx, p, users), nil
}

// revoke ends sub because Authorize now refuses it (engine goroutine).
func (s *Subscription) revoke(cause error) {
	// The hook's own message is shown (as at subscribe); a plain error
	// stays in Err, out of the message.
	msg, wrapped := "access denied", cause
	var e *Error
	if asError(cause, &e) && e.Message != "" {
		msg, wrapped = e.Message, nil
	}
	s.mu.Lock()
	s.revoked = true
	s.mu.Unlock()
	s.end(&Error{Code: CodeForbidden, Message: fmt.Sprintf("access to %s ended: %s", s.def.name, msg), Err: wrapped})
}

// refused returns the error for an action or write on a subscription that
// ended by re-authorization, or nil.
func (s *Subscription) refused() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.revoked {
		return nil
	}
	if e, ok := s.err.(*Error); ok {
		return e
	}
	return Errorf(CodeForbidden, "access to %s ended", s.def.name)
}

// reauthStreams re-checks the subscribers of streams.
func (e *engine) reauthStreams(ctx context.Context, streams map[*hotStream]bool, also map[*Subscription]bool) {
	if len(streams) == 0 && len(also) == 0 {
		return
	}
	subs := also
	if subs == nil {
		subs = map[*Subscription]bool{}
	}
	for s := range streams {
		for sub := range s.subs {
			subs[sub] = true
		}
	}
	e.reauthorize(ctx, subs)
}

// carriesDependency reports whether a delta of a stream of def (from
// another node) changes something def's Authorize depends on.
func (rd *reauthDef) carriesDependency(ev *Event) bool {
	if rd == nil {
		return false
	}
	for _, in := range ev.Instances {
		if rd.types[in.Type] {
			return true
		}
		if fs := rd.fields[in.Type]; fs != nil {
			for f := range in.Fields {
				if fs[f] {
					return true
				}
			}
		}
	}
	return false
}

// publishReauth tells the nodes following owned streams to re-check their
// own subscribers of them. A stream with a delta in this commit carried the
// mark on the delta (store, which took it out of streams); one without gets
// a mark of its own, at its current version, published before the stream's
// later deltas.
func (e *engine) publishReauth(streams map[*hotStream]bool) {
	c := e.h.cluster
	if c == nil || c.lease == nil {
		return
	}
	for s := range streams {
		if s.remote == nil {
			c.publish(deltaTopic(s.key), deltaMsg{Version: s.version, Reauth: true})
		}
	}
}

// remoteReauth re-checks a followed stream's subscribers on its owner's
// mark, and reports whether the message carried nothing else.
func (e *engine) remoteReauth(s *hotStream, m *deltaMsg) bool {
	e.reauthStreams(e.ctx(), map[*hotStream]bool{s: true}, nil)
	s.authAt = m.Version
	if len(m.Instances) > 0 || m.Reset || m.Release {
		return false
	}
	if m.Version > s.version {
		e.catchUp(s) // a delta before the mark was missed
	}
	return true
}

// followedReauth re-checks a followed stream's subscribers before ev
// reaches them when ev changes a dependency in the state: it covers
// catch-ups from the store, where the owner's marks are not seen.
func (e *engine) followedReauth(s *hotStream, ev *Event) {
	if s.def.reauth == nil || s.authAt == ev.Version || !s.def.reauth.carriesDependency(ev) {
		return
	}
	s.authAt = ev.Version
	e.reauthStreams(e.ctx(), map[*hotStream]bool{s: true}, nil)
}

// reauthFailed re-checks, when a commit could not be processed, the
// subscribers of every stream of a channel depending on a touched layer:
// the streams are resynced, and their permission may have changed.
func (e *engine) reauthFailed(ctx context.Context, ts []touch, layers map[*layer]bool) {
	subs := e.reauthOutside(ts)
	streams := map[*hotStream]bool{}
	for _, s := range e.streams {
		rd := s.def.reauth
		if rd == nil {
			continue
		}
		for l := range layers {
			dep := rd.layers[l]
			for r := range rd.rels {
				dep = dep || r.from == l || r.to == l
			}
			if dep {
				streams[s] = true
				break
			}
		}
	}
	e.reauthStreams(ctx, streams, subs)
}

// bumpEpochs counts, per channel, the commits that touched a dependency of
// its permission, hot or not (engine goroutine, before anything else of
// the commit). Subscribe compares the count around its Authorize call.
func (e *engine) bumpEpochs(ts []touch) {
	idx := e.h.reauth.p.Load()
	if idx == nil {
		return
	}
	var bumped map[*channelDef]bool
	for _, t := range ts {
		for _, def := range idx.deps[t.l] {
			if !bumped[def] {
				if bumped == nil {
					bumped = map[*channelDef]bool{}
				}
				bumped[def] = true
			}
		}
	}
	if len(bumped) == 0 {
		return
	}
	// A Subscribe whose Authorize starts after the bump must see the
	// commit: wait until its WAL transactions are visible (a failure to
	// tell is the database failing, which Authorize will meet too).
	_ = e.ready(e.ctx())
	for def := range bumped {
		def.depEpoch.Add(1)
	}
}

// depEpoch returns the dependency count of a channel (0 for an unknown
// one), read by Subscribe before it calls Authorize.
func (h *Hub) depEpoch(channel string) uint64 {
	h.mu.RLock()
	def := h.channels[channel]
	h.mu.RUnlock()
	if def == nil {
		return 0
	}
	return def.depEpoch.Load()
}

// recheckSubscribe closes the window between Subscribe's Authorize call
// and its attaching to the streams (engine goroutine): if a commit touching
// a dependency was processed since epoch, Authorize is asked again here,
// where no commit can come in between.
func (h *Hub) recheckSubscribe(ctx context.Context, def *channelDef, user User, p any, epoch uint64) error {
	if def.depEpoch.Load() == epoch {
		return nil
	}
	if err := h.engine.ready(ctx); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, reauthTimeout)
	defer cancel()
	err := def.authorize(ctx, user, p)
	if err == nil {
		return nil
	}
	var e *Error
	if asError(err, &e) {
		return err
	}
	return &Error{Code: CodeForbidden, Message: "access denied", Err: err}
}
