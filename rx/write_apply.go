package rx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/schema"
)

// Client writes. A channel may let its clients change rows of its state
// directly: save (update some fields of a row), create (a row under a
// parent's relation) and delete. What is allowed is declared per layer by
// the channel's Writable method; everything else is refused with
// CodeForbidden. Each write runs this pipeline:
//
//  1. the layer and operation (and, for a create, the parent relation) are
//     declared;
//  2. the client sets only declared fields;
//  3. the values decode into the Go model (a type error names the field);
//  4. the row (or a create's parent) is in this subscription's state, and a
//     per-user row is the user's own: checked before the transaction, and
//     again inside it once the row (or parent) is locked, against the row
//     as the database has it then;
//  5. the model's Validate method, if any, accepts the new row;
//  6. the layer's Allow hook accepts the write, seeing the user and the old
//     and new rows; without a hook every write is denied;
//  7. the write is made through GORM in that transaction (the row is
//     locked first, so concurrent writes to it apply one after another),
//     and the normal change capture broadcasts it;
//  8. the call returns once the resulting delta was handed to the
//     subscriptions, so a client sees the change before the reply.
//
// A refusal comes from the first step that fails, in this order
// (docs/PROTOCOL.md lists it for clients).

// Write applies one client write to the subscription's state: a save, a
// create or a delete of a row, checked as the file comment says. It
// returns the row's id (the new id on create) once the change was handed
// to the subscriptions of every stream it touched. Errors are *Error
// values: forbidden (undeclared, denied by the hook, or the subscription
// ended because Authorize now refuses it: Reauthorizer), bad_request (a
// malformed or mistyped value, naming the field), not_found (the row is
// not in this subscription's state), or internal.
func (s *Subscription) Write(ctx context.Context, req WriteRequest) (string, error) {
	if err := s.refused(); err != nil {
		return "", err
	}
	def := s.def
	wd := def.writes[req.Layer]
	if wd == nil {
		return "", Errorf(CodeForbidden, "%s rows are not writable in %s", req.Layer, def.name)
	}
	l := wd.l
	call := &writeCall{op: req.Op, user: s.user}
	var rel *relation
	switch req.Op {
	case OpSave:
		if !wd.save {
			return "", Errorf(CodeForbidden, "%s does not let clients save %s rows", def.name, l.name)
		}
	case OpDelete:
		if !wd.del {
			return "", Errorf(CodeForbidden, "%s does not let clients delete %s rows", def.name, l.name)
		}
		if len(req.Fields) > 0 {
			return "", Errorf(CodeBadRequest, "a delete carries no fields")
		}
	case OpCreate:
		if rel = wd.createRel(req.Relation); rel == nil {
			return "", Errorf(CodeForbidden, "%s does not let clients create %s rows under %q", def.name, l.name, req.Relation)
		}
		if req.Parent == "" {
			return "", Errorf(CodeBadRequest, "a create needs the parent's id")
		}
		if l.owner != nil && s.user.Anonymous() {
			return "", Errorf(CodeForbidden, "sign in to create %s rows", l.name)
		}
		call.relation, call.parent = req.Relation, req.Parent
	default:
		return "", Errorf(CodeBadRequest, "unknown write operation %q", req.Op)
	}
	if req.Op != OpCreate && req.Row == "" {
		return "", Errorf(CodeBadRequest, "a %s needs the row's id", req.Op)
	}
	// Only writable fields, decoded into the model.
	set, err := wd.decode(req.Fields)
	if err != nil {
		return "", err
	}
	for _, f := range wd.fields {
		if _, ok := req.Fields[f.name]; ok {
			call.fields = append(call.fields, f.name)
		}
	}
	// The row, or the parent, is in this subscription's state.
	k := ikey{l, req.Row}
	if req.Op == OpCreate {
		k = ikey{rel.from, req.Parent}
	}
	var held bool
	if err := s.hub.engine.call(ctx, func() { held = s.holds(k) }); err != nil {
		return "", err
	}
	if !held {
		return "", Errorf(CodeNotFound, "no %s %s in this subscription", k.l.name, k.id)
	}
	var allow func(context.Context, *writeCall) error
	if i := s.inst; i != nil {
		if w, ok := i.value.Interface().(Writer); ok {
			if ws := w.Writable(); wd.index < len(ws) && ws[wd.index] != nil {
				allow = ws[wd.index].rxWritable().allow
			}
		}
		i.mu.Lock()
	}
	var id string
	err = s.hub.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		call.tx = tx
		var err error
		id, err = s.apply(ctx, wd, rel, call, req, set, allow)
		return err
	})
	if s.inst != nil {
		s.inst.mu.Unlock()
	}
	if err != nil {
		return "", err
	}
	// The reply follows the delta: by now the commit's touches are queued
	// to the engine, and Wait runs after they were processed. A broker
	// that does not take them for the other nodes fails Wait at once,
	// after the local delta: the write is committed and the client has
	// it, so it succeeded (the other nodes catch up as Wait documents).
	if err := s.hub.Wait(ctx); err != nil && !errors.Is(err, ErrBrokerDown) {
		return "", err
	}
	return id, nil
}

// holds reports whether the subscription's state holds row k as its user
// sees it (engine goroutine only).
func (s *Subscription) holds(k ikey) bool {
	s.mu.Lock()
	closed := s.closed
	s.mu.Unlock()
	if closed {
		return false
	}
	for _, st := range s.streams {
		if n := st.nodes[k]; n != nil && (n.owner == "" || n.owner == s.user.ID) {
			return true
		}
	}
	return false
}

// stillHolds checks again, inside the write's transaction and with row id
// of l locked (v, as the database has it now), that the subscription's
// state holds it: the check before the transaction could have been passed
// by a row that a concurrent commit moved out of the state since.
func (s *Subscription) stillHolds(ctx context.Context, l *layer, id string, v reflect.Value) error {
	r, _, err := encodeRow(ctx, l, v.Elem())
	if err != nil {
		return fmt.Errorf("rx: read %s %s for a write: %w", l.name, id, err)
	}
	var held bool
	if err := s.hub.engine.call(ctx, func() { held = s.holdsRow(ikey{l, id}, r) }); err != nil {
		return err
	}
	if !held {
		return Errorf(CodeNotFound, "no %s %s in this subscription", l.name, id)
	}
	return nil
}

// holdsRow is holds for row k as the database has it now (r): besides
// being in a stream of the subscription as its user sees it, a row that
// the stream placed under a parent through a foreign key must still point
// at a parent the stream holds; the stream may not have seen a commit that
// moved it yet (engine goroutine only).
func (s *Subscription) holdsRow(k ikey, r *row) bool {
	if !s.holds(k) || (r.owner != "" && r.owner != s.user.ID) {
		return false
	}
	for _, st := range s.streams {
		n := st.nodes[k]
		if n == nil || (n.owner != "" && n.owner != s.user.ID) {
			continue
		}
		if k == st.anchor {
			return true
		}
		placed := false
		for i, p := range k.l.parents {
			if len(st.parentsVia(k, p)) == 0 {
				continue
			}
			placed = true
			if fk := r.fk(i); fk != "" && st.nodes[ikey{p.from, fk}] != nil {
				return true
			}
		}
		if !placed {
			return true // reached otherwise (many2many, belongs-to)
		}
	}
	return false
}

// decode decodes the client's fields into a zero model value and returns
// it with the fields set.
func (wd *writeDef) decode(fields map[string]json.RawMessage) (reflect.Value, error) {
	l := wd.l
	v := reflect.New(l.typ)
	if len(fields) == 0 {
		return v, nil
	}
	for _, name := range slices.Sorted(mapKeys(fields)) {
		if wd.byName[name] != nil {
			continue
		}
		if l.field(name) != nil || l.relation(name) != nil {
			return v, Errorf(CodeForbidden, "field %s of %s is not writable", name, l.name)
		}
		return v, Errorf(CodeBadRequest, "%s has no field %s", l.name, name)
	}
	obj, err := json.Marshal(fields)
	if err != nil {
		return v, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("%s: %v", l.name, err), Err: err}
	}
	if err := unmarshalInput(obj, v.Interface()); err != nil {
		return v, &Error{Code: CodeBadRequest, Message: fmt.Sprintf("%s %s", l.name, jsonProblem(err)), Err: err}
	}
	return v, nil
}

// apply runs a write inside its transaction and returns the row's id.
func (s *Subscription) apply(ctx context.Context, wd *writeDef, rel *relation, c *writeCall, req WriteRequest, set reflect.Value, allow func(context.Context, *writeCall) error) (string, error) {
	l := wd.l
	tx := c.tx
	if c.op != OpCreate {
		old, err := lockRow(tx, l, req.Row, "a write")
		if err != nil {
			return "", err
		}
		if l.owner != nil {
			ov, _ := l.owner.ValueOf(ctx, old.Elem())
			if owner, ok := idString(reflect.ValueOf(ov)); ok && owner != s.user.ID {
				return "", Errorf(CodeNotFound, "no %s %s in this subscription", l.name, req.Row)
			}
		}
		if err := s.stillHolds(ctx, l, req.Row, old); err != nil {
			return "", err
		}
		c.old = old
	} else {
		// The parent, locked against a concurrent move or delete until the
		// create commits, is still in the state.
		p := rel.from
		parent, err := lockRow(tx, p, c.parent, "a create")
		if err != nil {
			return "", err
		}
		if err := s.stillHolds(ctx, p, c.parent, parent); err != nil {
			return "", err
		}
	}
	if c.op != OpDelete {
		nv := reflect.New(l.typ)
		if c.old.IsValid() {
			nv.Elem().Set(c.old.Elem())
		}
		for _, name := range c.fields {
			f := wd.byName[name]
			nv.Elem().FieldByIndex(f.index).Set(set.Elem().FieldByIndex(f.index))
		}
		if c.op == OpCreate {
			fk := rel.rel.References[0].ForeignKey
			if err := setKey(ctx, fk, nv.Elem(), c.parent); err != nil {
				return "", Errorf(CodeBadRequest, "parent id %q: %v", c.parent, err)
			}
			if l.owner != nil {
				if err := setKey(ctx, l.owner, nv.Elem(), s.user.ID); err != nil {
					return "", fmt.Errorf("rx: set the owner of a new %s: %w", l.name, err)
				}
			}
		}
		if v, ok := nv.Interface().(Validator); ok {
			if err := v.Validate(); err != nil {
				var e *Error
				if asError(err, &e) {
					return "", err
				}
				return "", &Error{Code: CodeBadRequest, Message: fmt.Sprintf("%s: %v", l.name, err), Err: err}
			}
		}
		c.new = nv
	}
	if allow == nil {
		return "", Errorf(CodeForbidden, "%s has no Allow hook for %s rows: writes are denied by default", s.def.name, l.name)
	}
	if err := allow(ctx, c); err != nil {
		var e *Error
		if asError(err, &e) {
			return "", err
		}
		return "", &Error{Code: CodeForbidden, Message: "write denied", Err: err}
	}
	switch c.op {
	case OpSave:
		cols := changedColumns(ctx, l, c.old.Elem(), c.new.Elem())
		if len(cols) > 0 {
			if err := tx.Model(c.new.Interface()).Select(cols).Updates(c.new.Interface()).Error; err != nil {
				return "", fmt.Errorf("rx: save %s %s: %w", l.name, req.Row, err)
			}
		}
		return req.Row, nil
	case OpCreate:
		if err := tx.Omit(clause.Associations).Create(c.new.Interface()).Error; err != nil {
			return "", fmt.Errorf("rx: create %s: %w", l.name, err)
		}
		id, _ := idString(c.new.Elem().FieldByIndex(l.pk.StructField.Index))
		return id, nil
	default:
		q := tx
		if m2m := joinRelations(l); len(m2m) > 0 {
			q = q.Select(m2m)
		}
		if err := q.Delete(c.old.Interface()).Error; err != nil {
			return "", fmt.Errorf("rx: delete %s %s: %w", l.name, req.Row, err)
		}
		return req.Row, nil
	}
}

// lockRow reads row id of layer l in tx, locked for update until tx ends
// (a missing row is not_found); what names the write in errors.
func lockRow(tx *gorm.DB, l *layer, id, what string) (reflect.Value, error) {
	v := reflect.New(l.typ)
	err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).
		Where(map[string]any{l.pk.DBName: keyArgs(l.pk, []string{id})[0]}).
		Take(v.Interface()).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return reflect.Value{}, Errorf(CodeNotFound, "no %s %s", l.name, id)
	}
	if err != nil {
		return reflect.Value{}, fmt.Errorf("rx: read %s %s for %s: %w", l.name, id, what, err)
	}
	return v, nil
}

// setKey sets a key field (a foreign key or owner) from a canonical id.
func setKey(ctx context.Context, f *schema.Field, v reflect.Value, id string) error {
	return f.Set(ctx, v, keyArgs(f, []string{id})[0])
}

// changedColumns lists the columns where the rows differ.
func changedColumns(ctx context.Context, l *layer, old, new reflect.Value) []string {
	var cols []string
	for _, f := range l.schema.Fields {
		if f.DBName == "" || f.PrimaryKey {
			continue
		}
		a, _ := f.ValueOf(ctx, old)
		b, _ := f.ValueOf(ctx, new)
		if !reflect.DeepEqual(a, b) {
			cols = append(cols, f.DBName)
		}
	}
	return cols
}

// joinRelations names the many2many associations of the model, whose join
// rows go with a deleted row.
func joinRelations(l *layer) []string {
	var out []string
	for name, r := range l.schema.Relationships.Relations {
		if r.Type == schema.Many2Many {
			out = append(out, name)
		}
	}
	slices.Sort(out)
	return out
}
