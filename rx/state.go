package rx

import (
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"

	"github.com/rxgorm/rxgorm/cache"
)

// State rebuilds a channel's nested state from a subscription's events, the
// way the TypeScript runtime does: a normalized index of flat instances per
// anchor, and nesting rebuilt from the channel's layer model. It is not safe
// for concurrent use.
type State struct {
	def      *channelDef
	user     User
	anchors  []string
	streams  map[string]map[cache.Key]*entry
	versions map[string]uint64
}

// entry is a held instance; shared entries point at an event's instance
// and are copied before they are changed.
type entry struct {
	in     *cache.Instance
	shared bool
}

// NewState returns an empty State for a registered channel as user sees it.
func (h *Hub) NewState(channel string, user User) (*State, error) {
	h.mu.RLock()
	def := h.channels[channel]
	h.mu.RUnlock()
	if def == nil {
		return nil, fmt.Errorf("rx: no channel %q", channel)
	}
	return newState(def, user), nil
}

func newState(def *channelDef, user User) *State {
	return &State{def: def, user: user, streams: map[string]map[cache.Key]*entry{}, versions: map[string]uint64{}}
}

// Apply applies one event. Deltas at or below the version already held for
// their anchor are ignored.
func (s *State) Apply(ev *Event) {
	if ev.Anchors != nil {
		s.anchors = ev.Anchors
		keep := map[string]bool{}
		for _, a := range ev.Anchors {
			keep[a] = true
		}
		for a := range s.streams {
			if !keep[a] {
				delete(s.streams, a)
				delete(s.versions, a)
			}
		}
	}
	if ev.Anchor == "" {
		return
	}
	if !s.def.many && s.anchors == nil {
		s.anchors = []string{ev.Anchor}
	}
	idx := s.streams[ev.Anchor]
	if ev.Snapshot || idx == nil {
		idx = make(map[cache.Key]*entry, len(ev.Instances))
		s.streams[ev.Anchor] = idx
	} else if ev.Version <= s.versions[ev.Anchor] && len(ev.Instances) > 0 && ev.Version != 0 {
		return
	}
	for _, in := range ev.Instances {
		k := in.Key()
		if in.Deleted {
			delete(idx, k)
			continue
		}
		old := idx[k]
		if old == nil {
			idx[k] = &entry{in: in, shared: true}
			continue
		}
		if old.shared {
			c := *old.in
			c.Fields = maps.Clone(old.in.Fields)
			old.in, old.shared = &c, false
		}
		maps.Copy(old.in.Fields, in.Fields)
		old.in.Version = in.Version
	}
	s.versions[ev.Anchor] = ev.Version
}

// Keys returns the identities of the flat instances held, per anchor, in a
// stable order.
func (s *State) Keys() map[string][]cache.Key {
	out := make(map[string][]cache.Key, len(s.streams))
	for a, idx := range s.streams {
		ks := make([]cache.Key, 0, len(idx))
		for k := range idx {
			ks = append(ks, k)
		}
		slices.SortFunc(ks, func(x, y cache.Key) int {
			return cmp.Or(cmp.Compare(x.Type, y.Type), cmp.Compare(x.ID, y.ID), cmp.Compare(x.Owner, y.Owner))
		})
		out[a] = ks
	}
	return out
}

// Versions returns the version held per anchor, for SubscribeOptions.Since.
func (s *State) Versions() map[string]uint64 { return maps.Clone(s.versions) }

// Value returns the nested state: a map for a single-anchor channel (nil if
// the anchor is gone), a slice of maps in list order for a list channel.
func (s *State) Value() any {
	if !s.def.many {
		if len(s.anchors) == 0 {
			return nil
		}
		return s.build(s.anchors[0], s.def.anchor, s.anchors[0], map[ikey]bool{})
	}
	out := []any{}
	for _, a := range s.anchors {
		if v := s.build(a, s.def.anchor, a, map[ikey]bool{}); v != nil {
			out = append(out, v)
		}
	}
	return out
}

// JSON returns Value encoded as JSON, with object keys sorted.
func (s *State) JSON() (json.RawMessage, error) {
	v := s.Value()
	if m, ok := v.(map[string]any); ok && m == nil {
		return json.RawMessage("null"), nil
	}
	return json.Marshal(v)
}

// fields returns the instance's fields as user sees them: the shared row
// with the user's own view laid over it.
func (s *State) fields(anchor string, l *layer, id string) map[string]json.RawMessage {
	idx := s.streams[anchor]
	var pub, own *cache.Instance
	if e := idx[cache.Key{Type: l.name, ID: id}]; e != nil {
		pub = e.in
	}
	if s.user.ID != "" {
		if e := idx[cache.Key{Type: l.name, ID: id, Owner: s.user.ID}]; e != nil {
			own = e.in
		}
	}
	switch {
	case pub == nil && own == nil:
		return nil
	case own == nil:
		return pub.Fields
	case pub == nil:
		return own.Fields
	}
	f := maps.Clone(pub.Fields)
	maps.Copy(f, own.Fields)
	return f
}

func (s *State) build(anchor string, l *layer, id string, path map[ikey]bool) map[string]any {
	fields := s.fields(anchor, l, id)
	if fields == nil {
		return nil
	}
	k := ikey{l, id}
	path[k] = true
	defer delete(path, k)
	obj := make(map[string]any, len(fields))
	for f, v := range fields {
		obj[f] = v
	}
	for _, r := range l.rels {
		raw, ok := fields[r.name]
		if !ok || !r.follow {
			continue
		}
		child := func(rawID json.RawMessage) any {
			cid := idFromJSON(rawID)
			if path[ikey{r.to, cid}] {
				return rawID // a cycle in the data: keep the id
			}
			if c := s.build(anchor, r.to, cid, path); c != nil {
				return c
			}
			return nil
		}
		if r.many() {
			var ids []json.RawMessage
			_ = json.Unmarshal(raw, &ids)
			list := make([]any, 0, len(ids))
			for _, cid := range ids {
				if c := child(cid); c != nil {
					list = append(list, c)
				}
			}
			obj[r.name] = list
			continue
		}
		if string(raw) == "null" {
			obj[r.name] = nil
			continue
		}
		obj[r.name] = child(raw)
	}
	return obj
}
