package rx

import (
	"encoding/json"
	"time"

	"github.com/rxgorm/rxgorm/cache"
)

// A hot stream's membership graph. The cache store keeps the instances'
// fields and versions; the engine keeps, for each hot stream, which rows
// are in it and how they link, so that it can tell which rows enter or
// leave the stream when a relation changes. Only the engine goroutine
// touches these.

type ikey struct {
	l  *layer
	id string
}

type edge struct {
	from ikey
	rel  *relation
}

type node struct {
	owner    string
	out      map[*relation][]ikey          // followed relations only
	overlays map[string]map[*relation]bool // owner → relations listing rows of theirs
}

type hotStream struct {
	key    cache.Stream
	def    *channelDef
	anchor ikey
	nodes  map[ikey]*node
	in     map[ikey]map[edge]struct{}
	subs   map[*Subscription]struct{}
	used   time.Time // last load or subscription, for TTL expiry
	loaded time.Time // last load from the database
	lost   bool      // a reload failed (logged once); parked until one succeeds
	// version is the last version handed to subscribers.
	version uint64
	// remote is set on a stream another node owns (cluster mode): it has
	// no graph, and its deltas come from the owner.
	remote *follower
	// authAt is the version whose subscribers were last re-checked
	// (followed streams, reauth.go).
	authAt uint64
}

func newHotStream(key cache.Stream, def *channelDef, anchorID string) *hotStream {
	return &hotStream{
		key:    key,
		def:    def,
		anchor: ikey{def.anchor, anchorID},
		nodes:  map[ikey]*node{},
		in:     map[ikey]map[edge]struct{}{},
		subs:   map[*Subscription]struct{}{},
	}
}

// setEdges replaces the targets of n's relation r and reports targets that
// are new to the stream and whether any target was dropped.
func (s *hotStream) setEdges(from ikey, n *node, r *relation, targets []ikey) (added []ikey, dropped bool) {
	old := n.out[r]
	keep := make(map[ikey]bool, len(targets))
	for _, t := range targets {
		keep[t] = true
	}
	for _, t := range old {
		if !keep[t] {
			dropped = true
			if in := s.in[t]; in != nil {
				delete(in, edge{from, r})
				if len(in) == 0 {
					delete(s.in, t)
				}
			}
		}
	}
	if n.out == nil {
		n.out = map[*relation][]ikey{}
	}
	n.out[r] = targets
	for _, t := range targets {
		in := s.in[t]
		if in == nil {
			in = map[edge]struct{}{}
			s.in[t] = in
		}
		in[edge{from, r}] = struct{}{}
		if s.nodes[t] == nil {
			added = append(added, t)
		}
	}
	return added, dropped
}

// parentsVia returns the ids of rows that list k through relation r.
func (s *hotStream) parentsVia(k ikey, r *relation) []string {
	var ids []string
	for e := range s.in[k] {
		if e.rel == r {
			ids = append(ids, e.from.id)
		}
	}
	return ids
}

// sweep removes the nodes no longer reachable from the anchor and returns
// their tombstones.
func (s *hotStream) sweep(e *engine) []*cache.Instance {
	seen := make(map[ikey]bool, len(s.nodes))
	queue := []ikey{s.anchor}
	if s.nodes[s.anchor] != nil {
		seen[s.anchor] = true
	} else {
		queue = nil
	}
	for len(queue) > 0 {
		k := queue[len(queue)-1]
		queue = queue[:len(queue)-1]
		for _, ts := range s.nodes[k].out {
			for _, t := range ts {
				if !seen[t] && s.nodes[t] != nil {
					seen[t] = true
					queue = append(queue, t)
				}
			}
		}
	}
	var out []*cache.Instance
	for k := range s.nodes {
		if !seen[k] {
			out = append(out, s.remove(e, k)...)
		}
	}
	return out
}

// remove drops node k and returns its tombstones (the row and its overlays).
func (s *hotStream) remove(e *engine, k ikey) []*cache.Instance {
	n := s.nodes[k]
	if n == nil {
		return nil
	}
	for r := range n.out {
		s.setEdges(k, n, r, nil)
	}
	delete(s.nodes, k)
	e.unindex(k, s)
	out := []*cache.Instance{{Type: k.l.name, ID: k.id, Owner: n.owner, Deleted: true}}
	for o := range n.overlays {
		out = append(out, &cache.Instance{Type: k.l.name, ID: k.id, Owner: o, Deleted: true})
	}
	return out
}

// fullRow is everything needed to add a row to a stream: its fields and
// every relation list.
type fullRow struct {
	row   *row
	lists map[*relation][]member
}

// put adds or refreshes node k from a full row and returns the instances to
// store (public or owned row, plus per-user overlays) and targets new to
// the stream.
func (s *hotStream) put(k ikey, fr *fullRow) (insts []*cache.Instance, added []ikey, dropped bool) {
	n := s.nodes[k]
	if n == nil {
		if fr.row == nil {
			return nil, nil, false
		}
		n = &node{owner: fr.row.owner}
		s.nodes[k] = n
	}
	fields := make(map[string]json.RawMessage, len(fr.lists)+8)
	if fr.row != nil {
		if n.owner != fr.row.owner {
			insts = append(insts, &cache.Instance{Type: k.l.name, ID: k.id, Owner: n.owner, Deleted: true})
			n.owner = fr.row.owner
		}
		for f, v := range fr.row.fields {
			fields[f] = v
		}
		for r, target := range fr.row.belongs {
			if !r.follow {
				continue
			}
			var ts []ikey
			if target != "" {
				ts = []ikey{{r.to, target}}
			}
			a, d := s.setEdges(k, n, r, ts)
			added, dropped = append(added, a...), dropped || d
		}
	}
	var overlays map[string]map[string]json.RawMessage
	var gone []string
	for r, ms := range fr.lists {
		fields[r.name] = listJSON(r, ms, "")
		if r.to.owner != nil {
			views, g := s.overlayFields(n, r, ms)
			gone = append(gone, g...)
			for o, f := range views {
				if overlays == nil {
					overlays = map[string]map[string]json.RawMessage{}
				}
				if overlays[o] == nil {
					overlays[o] = map[string]json.RawMessage{}
				}
				for name, v := range f {
					overlays[o][name] = v
				}
			}
		}
		if r.follow {
			ts := make([]ikey, len(ms))
			for i, m := range ms {
				ts[i] = ikey{r.to, m.id}
			}
			a, d := s.setEdges(k, n, r, ts)
			added, dropped = append(added, a...), dropped || d
		}
	}
	if len(fields) > 0 {
		insts = append(insts, &cache.Instance{Type: k.l.name, ID: k.id, Owner: n.owner, Fields: fields})
	}
	for o, f := range overlays {
		if n.overlays[o] != nil {
			insts = append(insts, &cache.Instance{Type: k.l.name, ID: k.id, Owner: o, Fields: f})
		}
	}
	for _, o := range gone {
		if n.overlays[o] == nil {
			insts = append(insts, &cache.Instance{Type: k.l.name, ID: k.id, Owner: o, Deleted: true})
		}
	}
	return insts, added, dropped
}

// overlayFields returns, for each owner holding rows in ms or an overlay of
// n already, that owner's view of relation r, and the owners whose overlay
// is now empty (it must be removed: they see the shared row).
func (s *hotStream) overlayFields(n *node, r *relation, ms []member) (map[string]map[string]json.RawMessage, []string) {
	has := map[string]bool{}
	for _, m := range ms {
		if m.owner != "" {
			has[m.owner] = true
		}
	}
	out := map[string]map[string]json.RawMessage{}
	var gone []string
	for o, rels := range n.overlays {
		if !has[o] {
			delete(rels, r)
			if len(rels) == 0 {
				delete(n.overlays, o)
				gone = append(gone, o)
				continue
			}
		}
		out[o] = map[string]json.RawMessage{r.name: listJSON(r, ms, o)}
	}
	for o := range has {
		if n.overlays == nil {
			n.overlays = map[string]map[*relation]bool{}
		}
		if n.overlays[o] == nil {
			n.overlays[o] = map[*relation]bool{}
		}
		n.overlays[o][r] = true
		out[o] = map[string]json.RawMessage{r.name: listJSON(r, ms, o)}
	}
	return out, gone
}
