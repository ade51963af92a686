package rx

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Presence: who is connected where. A place is a stream (a channel and one
// anchor) or a group. A subscription of a channel that implements
// PresenceTracker is present in its streams, and, with Groups set, in the
// groups it joins; its user is then counted there, once per subscription.
// Clients of such a channel receive the presence of their streams with the
// subscription (Event.Presence); channel code reads any place with
// Hub.Presence and hears of joins and leaves through OnPresence, for its
// own places and for the places it watches.
//
// Across nodes, each node announces its own counts on the broker topic
// "presence": every change as it happens, and its whole table every
// Config.PresenceHeartbeat. Each node keeps the other nodes' tables and
// drops a node it has not heard from for Config.PresenceTimeout, so the
// users of a node that vanished leave within that window. A client that
// vanishes (its socket goes silent) is dropped by the transport's
// keepalive (channel.Options.PingInterval), which ends its subscriptions.

// Place names where presence is counted: see StreamPlace and GroupPlace.
type Place string

// StreamPlace is the place of a channel's stream for one anchor.
func StreamPlace(channel string, anchorID any) Place {
	id, _ := idString(reflect.ValueOf(anchorID))
	return Place("stream:" + channel + "/" + id)
}

// GroupPlace is the place of a group (see Join).
func GroupPlace(group string) Place { return Place("group:" + group) }

// Present is one user present in a place.
type Present struct {
	// User is the user's id.
	User string `json:"user"`
	// Connections counts the user's connections there, on every node: their
	// subscriptions, or the connections holding them when the subscriptions
	// name one (SubscribeOptions.Conn, set by package channel to the socket).
	Connections int `json:"connections"`
}

// PresenceEvent is a user arriving in or leaving a place.
type PresenceEvent struct {
	Place Place
	User  string
	// Joined is true when the user arrived (their first connection), false
	// when they left (their last one ended).
	Joined bool
}

// StreamPresence is the presence of one anchor's stream, as an Event
// carries it to the stream's subscribers.
type StreamPresence struct {
	Anchor string
	// Users are the users present, by id; anonymous users are not counted.
	Users []Present
}

// PresenceTracker is implemented by a channel whose subscribers are
// counted in presence. Its clients receive their streams' presence.
type PresenceTracker interface {
	TrackPresence() PresenceOptions
}

// PresenceOptions are a channel's presence choices. The zero value tracks
// the channel's streams.
type PresenceOptions struct {
	// Groups makes a subscription present also in the groups it joins.
	Groups bool
}

// PresenceWatcher is implemented by a channel that hears of users joining
// and leaving its places (its streams, its groups when tracked, and the
// places it watches). When a subscription starts being in or watching a
// place it first hears a join for everyone already there. It runs with the
// channel's actions and consumers, one at a time.
type PresenceWatcher interface {
	OnPresence(ctx context.Context, ev PresenceEvent)
}

// declarePresence reads a channel's presence choice.
func declarePresence(def *channelDef) {
	if t, ok := def.proto.(PresenceTracker); ok {
		o := t.TrackPresence()
		def.presence = &o
	}
}

// Presence returns who is present in place, on every node, ordered by user
// id.
func (h *Hub) Presence(place Place) []Present {
	p := h.presence
	p.mu.Lock()
	defer p.mu.Unlock()
	return presentList(p.totals[place])
}

// Watch makes the subscription's OnPresence hear of joins and leaves in
// place, starting with a join for everyone present now.
func (b *binding) Watch(place Place) {
	if b.inst != nil {
		b.inst.sub.hub.presence.watch(place, b.inst)
	}
}

// Unwatch stops Watch.
func (b *binding) Unwatch(place Place) {
	if b.inst != nil {
		b.inst.sub.hub.presence.unwatch(place, b.inst)
	}
}

// Place returns the place of a single-anchor subscription's stream ("" on
// list channels and on the registered value).
func (b *binding) Place() Place {
	if b.inst == nil || b.inst.sub.def.many {
		return ""
	}
	anchors := b.inst.sub.Anchors()
	if len(anchors) == 0 {
		return ""
	}
	return StreamPlace(b.inst.sub.def.name, anchors[0])
}

type counts = map[string]int // user → connections

type remoteNode struct {
	seen   time.Time
	places map[Place]counts
}

// presence is a hub's presence table.
type presence struct {
	h        *Hub
	node     string
	interval time.Duration
	timeout  time.Duration
	unsub    func()
	out      *outbox
	stop     chan struct{}
	done     chan struct{}

	mu       sync.Mutex
	local    map[Place]counts                 // guarded by mu
	members  map[Place]map[*instance]string   // instance → anchor ("" in groups); guarded by mu
	watchers map[Place]map[*instance]struct{} // guarded by mu
	in       map[*instance]map[Place]bool     // places an instance is in or watches; guarded by mu
	conns    map[Place]map[string]map[any]int // place → user → connection → members; guarded by mu
	remote   map[string]*remoteNode           // guarded by mu
	totals   map[Place]counts                 // guarded by mu
	closed   bool                             // guarded by mu
}

// presenceMsg is an announcement on the broker topic "presence".
type presenceMsg struct {
	Node string `json:"node"`
	// Kind: "set" (one count), "table" (the node's whole table, also the
	// heartbeat), "sync" (asks every node for its table), "bye".
	Kind  string           `json:"kind"`
	Place Place            `json:"place,omitempty"`
	User  string           `json:"user,omitempty"`
	N     int              `json:"n,omitempty"`
	Table map[Place]counts `json:"table,omitempty"`
}

const presenceTopic = "presence"

func newPresence(h *Hub) (*presence, error) {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	p := &presence{
		h:        h,
		node:     hex.EncodeToString(b),
		interval: h.cfg.PresenceHeartbeat,
		timeout:  h.cfg.PresenceTimeout,
		out:      newOutbox(h.broker, h.log, "presence", h.cfg.BrokerQueue),
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
		local:    map[Place]counts{},
		members:  map[Place]map[*instance]string{},
		watchers: map[Place]map[*instance]struct{}{},
		in:       map[*instance]map[Place]bool{},
		conns:    map[Place]map[string]map[any]int{},
		remote:   map[string]*remoteNode{},
		totals:   map[Place]counts{},
	}
	unsub, err := h.broker.Subscribe(h.ctx, presenceTopic, p.receive)
	if err != nil {
		p.out.close(context.Background())
		return nil, err
	}
	p.unsub = unsub
	p.announceLocked(presenceMsg{Kind: "sync"})
	go p.run()
	return p, nil
}

// close says goodbye to the other nodes and stops the publisher.
func (p *presence) close() {
	p.mu.Lock()
	p.announceLocked(presenceMsg{Kind: "bye"})
	p.closed = true
	p.mu.Unlock()
	p.unsub()
	close(p.stop)
	<-p.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p.out.close(ctx)
}

// run heartbeats and expires the nodes that went silent.
func (p *presence) run() {
	defer close(p.done)
	tick := time.NewTicker(p.interval)
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case <-tick.C:
			p.mu.Lock()
			if len(p.local) > 0 {
				p.announceLocked(presenceMsg{Kind: "table", Table: p.local})
			}
			now := time.Now()
			for node, r := range p.remote {
				if now.Sub(r.seen) > p.timeout {
					delete(p.remote, node)
					for place := range r.places {
						p.recomputeLocked(place)
					}
				}
			}
			p.mu.Unlock()
		}
	}
}

// announceLocked queues an announcement. The table is encoded now, so later
// changes cannot slip into it.
func (p *presence) announceLocked(m presenceMsg) {
	if p.closed {
		return
	}
	m.Node = p.node
	b, _ := json.Marshal(m)
	p.out.send(presenceTopic, b)
}

// receive applies another node's announcement.
func (p *presence) receive(raw []byte) {
	var m presenceMsg
	if err := json.Unmarshal(raw, &m); err != nil || m.Node == "" || m.Node == p.node {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	r := p.remote[m.Node]
	if r == nil && m.Kind != "bye" && m.Kind != "sync" {
		r = &remoteNode{places: map[Place]counts{}}
		p.remote[m.Node] = r
	}
	if r != nil {
		r.seen = time.Now()
	}
	switch m.Kind {
	case "set":
		c := r.places[m.Place]
		if c == nil {
			c = counts{}
			r.places[m.Place] = c
		}
		if m.N > 0 {
			c[m.User] = m.N
		} else {
			delete(c, m.User)
			if len(c) == 0 {
				delete(r.places, m.Place)
			}
		}
		p.recomputeLocked(m.Place)
	case "table":
		old := r.places
		r.places = m.Table
		if r.places == nil {
			r.places = map[Place]counts{}
		}
		for place := range old {
			p.recomputeLocked(place)
		}
		for place := range r.places {
			if old[place] == nil {
				p.recomputeLocked(place)
			}
		}
	case "sync":
		if len(p.local) > 0 {
			p.announceLocked(presenceMsg{Kind: "table", Table: p.local})
		}
	case "bye":
		if r != nil {
			delete(p.remote, m.Node)
			for place := range r.places {
				p.recomputeLocked(place)
			}
		}
	}
}

// enter makes instance i present in place; anchor is set for stream
// places, whose presence is pushed to the subscription's client.
func (p *presence) enter(place Place, i *instance, anchor string) {
	user := i.sub.user.ID
	if user == "" {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	m := p.members[place]
	if m == nil {
		m = map[*instance]string{}
		p.members[place] = m
	}
	if _, ok := m[i]; ok {
		return
	}
	m[i] = anchor
	if _, watching := p.watchers[place][i]; !watching {
		p.replayLocked(place, i)
	}
	p.mark(i, place)
	if p.connLocked(place, i, +1) {
		p.countLocked(place, user, +1)
		return
	}
	// The user's connection was there already: the counts are unchanged,
	// and only the new member needs the list.
	if anchor != "" {
		list := presentList(p.totals[place])
		p.h.engine.do(func() { i.sub.push(&Event{Presence: &StreamPresence{Anchor: anchor, Users: list}}) })
	}
}

// connLocked counts a member of place in or out of its connection (see
// SubscribeOptions.Conn) and reports whether the connection arrived or
// left with it.
func (p *presence) connLocked(place Place, i *instance, d int) bool {
	var key any = i
	if i.sub.conn != nil {
		key = i.sub.conn
	}
	user := i.sub.user.ID
	byUser := p.conns[place]
	if byUser == nil {
		byUser = map[string]map[any]int{}
		p.conns[place] = byUser
	}
	c := byUser[user]
	if c == nil {
		c = map[any]int{}
		byUser[user] = c
	}
	c[key] += d
	n := c[key]
	if n <= 0 {
		delete(c, key)
		if len(c) == 0 {
			delete(byUser, user)
			if len(byUser) == 0 {
				delete(p.conns, place)
			}
		}
	}
	return (d > 0 && n == 1) || (d < 0 && n <= 0)
}

// exit ends instance i's presence in place.
func (p *presence) exit(place Place, i *instance) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.exitLocked(place, i)
}

func (p *presence) exitLocked(place Place, i *instance) {
	if !removeFrom(p.members, place, i) {
		return
	}
	p.unmark(i, place)
	if p.connLocked(place, i, -1) {
		p.countLocked(place, i.sub.user.ID, -1)
	}
}

// exitAll ends everything instance i is in or watches.
func (p *presence) exitAll(i *instance) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for place := range p.in[i] {
		p.exitLocked(place, i)
		p.unwatchLocked(place, i)
	}
	delete(p.in, i)
}

func (p *presence) watch(place Place, i *instance) {
	p.mu.Lock()
	defer p.mu.Unlock()
	w := p.watchers[place]
	if w == nil {
		w = map[*instance]struct{}{}
		p.watchers[place] = w
	}
	if _, ok := w[i]; ok {
		return
	}
	w[i] = struct{}{}
	if _, member := p.members[place][i]; !member {
		p.replayLocked(place, i)
	}
	p.mark(i, place)
}

func (p *presence) unwatch(place Place, i *instance) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.unwatchLocked(place, i)
}

func (p *presence) unwatchLocked(place Place, i *instance) {
	if removeFrom(p.watchers, place, i) {
		p.unmark(i, place)
	}
}

// removeFrom removes i from the set of place, dropping an emptied set, and
// reports whether it was there.
func removeFrom[V any](m map[Place]map[*instance]V, place Place, i *instance) bool {
	set := m[place]
	if _, ok := set[i]; !ok {
		return false
	}
	delete(set, i)
	if len(set) == 0 {
		delete(m, place)
	}
	return true
}

func (p *presence) mark(i *instance, place Place) {
	if p.in[i] == nil {
		p.in[i] = map[Place]bool{}
	}
	p.in[i][place] = true
}

func (p *presence) unmark(i *instance, place Place) {
	_, watched := p.watchers[place][i]
	_, member := p.members[place][i]
	if !watched && !member {
		delete(p.in[i], place)
	}
}

// countLocked changes this node's count of user in place, announces it and
// tells the place's members and watchers what changed.
func (p *presence) countLocked(place Place, user string, d int) {
	c := p.local[place]
	if c == nil {
		c = counts{}
		p.local[place] = c
	}
	c[user] += d
	n := c[user]
	if n <= 0 {
		delete(c, user)
		if len(c) == 0 {
			delete(p.local, place)
		}
	}
	p.announceLocked(presenceMsg{Kind: "set", Place: place, User: user, N: max(n, 0)})
	p.recomputeLocked(place)
}

// recomputeLocked sums a place's counts over the nodes and, if they
// changed, pushes the new list to the members' clients (stream places) and
// the joins and leaves to the hooks of members and watchers.
func (p *presence) recomputeLocked(place Place) {
	total := counts{}
	maps.Copy(total, p.local[place])
	for _, r := range p.remote {
		for u, n := range r.places[place] {
			total[u] += n
		}
	}
	old := p.totals[place]
	if maps.Equal(old, total) {
		return
	}
	if len(total) == 0 {
		delete(p.totals, place)
	} else {
		p.totals[place] = total
	}
	var evs []PresenceEvent
	for u := range total {
		if old[u] == 0 {
			evs = append(evs, PresenceEvent{Place: place, User: u, Joined: true})
		}
	}
	for u := range old {
		if total[u] == 0 {
			evs = append(evs, PresenceEvent{Place: place, User: u})
		}
	}
	slices.SortFunc(evs, func(a, b PresenceEvent) int { return compareIDs(a.User, b.User) })
	list := presentList(total)
	type push struct {
		sub    *Subscription
		anchor string
	}
	var pushes []push
	for i, anchor := range p.members[place] {
		if anchor != "" {
			pushes = append(pushes, push{i.sub, anchor})
		}
		p.tellLocked(i, evs)
	}
	for i := range p.watchers[place] {
		if _, member := p.members[place][i]; !member {
			p.tellLocked(i, evs)
		}
	}
	if len(pushes) > 0 {
		// Queued while holding mu, so that lists reach clients in the order
		// they were computed.
		p.h.engine.do(func() {
			for _, x := range pushes {
				x.sub.push(&Event{Presence: &StreamPresence{Anchor: x.anchor, Users: list}})
			}
		})
	}
}

// replayLocked tells an instance that just entered or watches place who is
// there already.
func (p *presence) replayLocked(place Place, i *instance) {
	var evs []PresenceEvent
	for _, x := range presentList(p.totals[place]) {
		evs = append(evs, PresenceEvent{Place: place, User: x.User, Joined: true})
	}
	p.tellLocked(i, evs)
}

// tellLocked queues events for an instance's OnPresence hook.
func (p *presence) tellLocked(i *instance, evs []PresenceEvent) {
	if len(evs) == 0 {
		return
	}
	w, ok := i.value.Interface().(PresenceWatcher)
	if !ok {
		return
	}
	i.queue(func() {
		for _, ev := range evs {
			w.OnPresence(i.ctx, ev)
		}
	})
}

func presentList(c counts) []Present {
	out := make([]Present, 0, len(c))
	for u, n := range c {
		out = append(out, Present{User: u, Connections: n})
	}
	slices.SortFunc(out, func(a, b Present) int { return compareIDs(a.User, b.User) })
	return out
}

// compareIDs orders ids numerically when both are decimal numbers, else as
// strings.
func compareIDs(a, b string) int {
	x, errA := strconv.ParseUint(a, 10, 64)
	y, errB := strconv.ParseUint(b, 10, 64)
	if errA == nil && errB == nil {
		return cmp.Compare(x, y)
	}
	return cmp.Compare(a, b)
}
