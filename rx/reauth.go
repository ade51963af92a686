package rx

import (
	"context"
	"fmt"
	"reflect"
	"sync/atomic"

	"gorm.io/gorm/schema"
)

// Reactive authorization (docs/DECISIONS.md, "Access ends when permission
// ends"). Authorize is checked at subscribe, and again after every commit
// that changes a row the channel says its answer depends on: the engine
// re-checks the subscribers of the streams the commit affects, before it
// hands them any delta of that commit, and ends those now refused with a
// forbidden error. The cost is one Authorize call per distinct (user,
// params) among the subscribers of the affected streams; commits that do
// not touch a dependency cost a map lookup per touched row.

// Dependency names rows a channel's Authorize answer reads, so that a
// commit changing one of them re-checks the channel's live subscriptions.
//
// When Model is a layer of the channel's state tree (the membership rows of
// a chat, its member list, the chat row itself), the re-check is exact: it
// covers the subscribers of the streams that hold (or held) a changed row,
// found by the engine's own routing, and it runs even when the change is
// to a field the state does not send (json:"-"). When Model lies outside
// the state, set User if the row's primary key is a user id (the user
// model itself): only that user's subscriptions of the channel are
// re-checked. Otherwise every subscription of the channel on this node is
// re-checked after each commit that touches Model: prefer a dependency in
// the state.
type Dependency struct {
	// Model is a value of (or pointer to) the GORM model whose rows the
	// answer reads, for example Membership{} or &User{}.
	Model any
	// Relation, when set, narrows the dependency to one relation of Model,
	// named by its Go field or its JSON name: a change of that relation's
	// list (a many2many join row added or removed, a child row moving in
	// or out) re-checks, a change of Model's own columns does not. Use it
	// for membership kept in a join table: {Model: Chat{}, Relation:
	// "Members"}.
	Relation string
	// User says that a row's primary key is a user id: a commit touching
	// the row re-checks only that user's subscriptions. It applies to a
	// Model outside the channel's state (inside it, routing is exact).
	User bool
}

// Reauthorizer is implemented by a channel type whose Authorize answer can
// change while a subscription lives (a member leaves, a role changes, a
// user is deleted). AuthorizeDependsOn is called once, at Register.
//
// After a commit that changes a dependency, the subscribers of the affected
// streams are re-checked with Authorize before any delta of that commit or
// a later one reaches them; a refused subscription ends with a forbidden
// *Error (whatever code Authorize returned), leaves its streams' presence,
// and refuses actions (Call) and client writes (Write) with forbidden.
// Authorize runs on several goroutines at once for one commit: it must be
// safe for concurrent use, as it already is for concurrent subscribers.
// The engine waits for the re-check (at most 10 s; an error or the
// timeout refuses), so Authorize must not wait on the hub (Wait, Snapshot,
// Subscribe, Touch): read the database.
type Reauthorizer interface {
	AuthorizeDependsOn() []Dependency
}

// UsersAuthorizer is optionally implemented by a Reauthorizer channel that
// can answer Authorize for many users of one params value at once (one
// query with user_id IN (...) instead of one per user). A re-check then
// calls it once per distinct params among the affected subscribers, with
// their distinct users; errs[i] is the answer for users[i], as Authorize
// would give it. Subscribe still calls Authorize.
type UsersAuthorizer[P any] interface {
	AuthorizeUsers(ctx context.Context, p P, users []User) (errs []error)
}

// reauthDef is a channel's resolved dependencies.
type reauthDef struct {
	layers map[*layer]bool    // in the state: a changed row re-checks
	rels   map[*relation]bool // in the state: a changed list re-checks
	// types and fields name the same on the wire, to spot a dependency in
	// a delta from another node: instance types, and relation fields per
	// type.
	types  map[string]bool
	fields map[string]map[string]bool
}

// outsideDep is a dependency outside a channel's state.
type outsideDep struct {
	def  *channelDef
	l    *layer
	rel  *relation // nil: any change of the row
	user bool
}

// declareReauth resolves a channel's dependencies (at Register).
func (h *Hub) declareReauth(def *channelDef) ([]outsideDep, error) {
	ra, ok := def.proto.(Reauthorizer)
	if !ok {
		return nil, nil
	}
	var outside []outsideDep
	rd := &reauthDef{layers: map[*layer]bool{}, rels: map[*relation]bool{}, types: map[string]bool{}, fields: map[string]map[string]bool{}}
	for _, d := range ra.AuthorizeDependsOn() {
		t := reflect.TypeOf(d.Model)
		for t != nil && t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t == nil || t.Kind() != reflect.Struct {
			return nil, &DeclarationError{Type: typeName(def.goType), Reason: fmt.Sprintf("AuthorizeDependsOn: model %T is not a struct model", d.Model)}
		}
		// A model on a many2many join table (ChatMember on chat_members)
		// must not become a layer: its writes are the relation's changes.
		if sc, err := schema.Parse(reflect.New(t).Interface(), h.model.cache, h.model.namer); err == nil {
			if rels := h.model.joinRelations(sc.Table); len(rels) > 0 {
				r := rels[0]
				return nil, &DeclarationError{Type: typeName(def.goType), Reason: fmt.Sprintf("AuthorizeDependsOn: %s is the join table of %s.%s: name the relation instead, {Model: %s{}, Relation: %q}", t.Name(), r.from.name, r.goName, r.from.typ.Name(), r.goName)}
			}
		}
		l, err := h.model.layerFor(t)
		if err != nil {
			return nil, err
		}
		var rel *relation
		if d.Relation != "" {
			for _, r := range l.rels {
				if r.name == d.Relation || r.goName == d.Relation {
					rel = r
				}
			}
			if rel == nil {
				return nil, &DeclarationError{Type: typeName(def.goType), Reason: fmt.Sprintf("AuthorizeDependsOn: %s has no relation %q", l.name, d.Relation)}
			}
		}
		if !def.hasLayer[l] {
			outside = append(outside, outsideDep{def: def, l: l, rel: rel, user: d.User})
			continue
		}
		if rel != nil {
			rd.rels[rel] = true
			if rd.fields[l.name] == nil {
				rd.fields[l.name] = map[string]bool{}
			}
			rd.fields[l.name][rel.name] = true
			continue
		}
		rd.layers[l] = true
		rd.types[l.name] = true
	}
	if len(rd.layers) > 0 || len(rd.rels) > 0 {
		def.reauth = rd
	}
	return outside, nil
}

// reauthIndex is what the engine looks up per commit: the dependencies
// outside each channel's state, by layer, and whether any channel has one
// in its state. It is replaced whole at Register.
type reauthIndex struct {
	// deps lists, by layer, the channels depending on it, in their state
	// or outside it (for depEpoch).
	deps    map[*layer][]*channelDef
	outside map[*layer][]outsideDep
	inState map[*layer]bool    // layers some channel depends on in its state
	inRels  map[*relation]bool // relations some channel depends on in its state
}

// reauthIdx holds the current *reauthIndex (nil: no channel has any).
type reauthIdx struct{ p atomic.Pointer[reauthIndex] }

func (x *reauthIdx) add(def *channelDef, outside []outsideDep) {
	if def.reauth == nil && len(outside) == 0 {
		return
	}
	old := x.p.Load()
	n := &reauthIndex{deps: map[*layer][]*channelDef{}, outside: map[*layer][]outsideDep{}, inState: map[*layer]bool{}, inRels: map[*relation]bool{}}
	if old != nil {
		for l, ds := range old.deps {
			n.deps[l] = append([]*channelDef(nil), ds...)
		}
		for l, ds := range old.outside {
			n.outside[l] = append([]outsideDep(nil), ds...)
		}
		for l := range old.inState {
			n.inState[l] = true
		}
		for r := range old.inRels {
			n.inRels[r] = true
		}
	}
	dep := map[*layer]bool{}
	for _, d := range outside {
		n.outside[d.l] = append(n.outside[d.l], d)
		dep[d.l] = true
	}
	if rd := def.reauth; rd != nil {
		for l := range rd.layers {
			n.inState[l] = true
			dep[l] = true
		}
		for r := range rd.rels {
			n.inRels[r] = true
			dep[r.from] = true
		}
	}
	for l := range dep {
		n.deps[l] = append(n.deps[l], def)
	}
	x.p.Store(n)
}

// Broker returns the hub's broker (Config.Broker, or the in-process one).
// Transports use it to reach the other nodes: channel.Server closes the
// sockets of revoked credentials on every node through it.
func (h *Hub) Broker() Broker { return h.broker }
