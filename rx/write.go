package rx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"

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

// Writer is implemented by a channel whose clients may write rows of its
// state. Writable is called once at Register, for the declaration (checked
// there, and described to code generators), and once per write on the
// subscription's own channel value, for its Allow hook: a hook that is a
// method value sees that subscription's User, Params and runtime state.
//
//	func (c *ChatChannel) Writable() []rx.Writable {
//		return []rx.Writable{
//			rx.Writes[Message]{
//				Fields: []string{"text"},
//				Save:   true,
//				Create: []string{"Chat.messages"},
//				Delete: true,
//				Allow:  c.allowMessage,
//			},
//		}
//	}
type Writer interface {
	Writable() []Writable
}

// Writable is one layer's write declaration: a Writes value.
type Writable interface {
	rxWritable() writable
}

// Writes declares what clients may write in rows of layer T (the model
// type, not a pointer).
type Writes[T any] struct {
	// Fields are the fields a client may set, by JSON or Go name: on save,
	// and on create. The primary key, the per-user owner field and foreign
	// keys that place the row under a parent of the channel cannot be
	// writable (a row is moved by an action, not by a client write).
	Fields []string
	// Save lets clients update Fields of rows in their state.
	Save bool
	// Create lists the relations, as "Layer.field" (JSON or Go name of the
	// field), under which clients may create rows: the relation's foreign
	// key is set to the parent, a per-user row's owner to the user.
	// Has-many and has-one relations only.
	Create []string
	// Delete lets clients delete rows in their state (and their many2many
	// join rows).
	Delete bool
	// Allow decides each write, after every other check passed. It may set
	// server-side fields of w.New (an author, a timestamp): a create
	// inserts New as it is, a save updates the columns where New differs
	// from Old. A nil Allow denies every write; an error denies this one
	// (an *Error keeps its code, anything else is sent as forbidden).
	Allow func(ctx context.Context, w Write[T]) error
}

// Op is the kind of a client write.
type Op string

// The write operations.
const (
	OpSave   Op = "save"
	OpCreate Op = "create"
	OpDelete Op = "delete"
)

// Write is one client write, as an Allow hook sees it.
type Write[T any] struct {
	Op   Op
	User User
	// Old is the row as it is in the database (locked until the write
	// commits); nil on create.
	Old *T
	// New is the row as it will be written; nil on delete. The hook may
	// change it.
	New *T
	// Fields are the JSON names of the fields the client set.
	Fields []string
	// Relation ("Chat.messages") and Parent (the parent's id) of a create.
	Relation string
	Parent   string
	// Tx is the write's transaction, for reads that must be consistent with
	// the write. Writes through it are broadcast like any other.
	Tx *gorm.DB
}

// Validator is implemented by a model that checks its own values: a client
// write whose new row fails Validate is refused (an *Error keeps its code,
// anything else is sent as bad_request with its message).
type Validator interface {
	Validate() error
}

// WriteRequest is one client write, as it arrives from a client.
type WriteRequest struct {
	Op Op
	// Layer is the wire type name of the row ("Message").
	Layer string
	// Row is the row's id (save, delete).
	Row string
	// Relation ("Chat.messages") and Parent (the parent row's id) place a
	// created row.
	Relation string
	Parent   string
	// Fields are the JSON-encoded values the client sets, by JSON name.
	Fields map[string]json.RawMessage
}

// writable is the type-erased form of a Writes value.
type writable struct {
	typ    reflect.Type
	fields []string
	save   bool
	create []string
	del    bool
	allow  func(ctx context.Context, c *writeCall) error // nil: deny
}

func (w Writes[T]) rxWritable() writable {
	out := writable{typ: reflect.TypeFor[T](), fields: w.Fields, save: w.Save, create: w.Create, del: w.Delete}
	if f := w.Allow; f != nil {
		out.allow = func(ctx context.Context, c *writeCall) error {
			x := Write[T]{Op: c.op, User: c.user, Fields: c.fields, Relation: c.relation, Parent: c.parent, Tx: c.tx}
			if c.old.IsValid() {
				x.Old = c.old.Interface().(*T)
			}
			if c.new.IsValid() {
				x.New = c.new.Interface().(*T)
			}
			return f(ctx, x)
		}
	}
	return out
}

// writeCall is one write under way.
type writeCall struct {
	op       Op
	user     User
	old, new reflect.Value // *T, or invalid
	fields   []string
	relation string
	parent   string
	tx       *gorm.DB
}

// writeDef is a checked write declaration of one layer of a channel.
type writeDef struct {
	index  int // in the Writable() list, to find the hook on an instance
	l      *layer
	fields []*scalarField // writable, declaration order
	byName map[string]*scalarField
	save   bool
	del    bool
	create []*relation // declaration order
}

func (wd *writeDef) createRel(name string) *relation {
	for _, r := range wd.create {
		if relName(r) == name {
			return r
		}
	}
	return nil
}

func relName(r *relation) string { return r.from.name + "." + r.name }

// declareWrites checks a channel's write declarations against its layers.
func declareWrites(def *channelDef) error {
	w, ok := def.proto.(Writer)
	if !ok {
		return nil
	}
	fail := func(field, format string, args ...any) error {
		return &DeclarationError{Type: typeName(def.goType), Field: field, Reason: fmt.Sprintf(format, args...)}
	}
	def.writes = map[string]*writeDef{}
	for i, x := range w.Writable() {
		if x == nil {
			return fail("Writable", "entry %d is nil", i)
		}
		spec := x.rxWritable()
		if spec.typ.Kind() != reflect.Struct {
			return fail("Writable", "Writes[%s]: the type argument must be a model struct, not %s", spec.typ, spec.typ.Kind())
		}
		var l *layer
		for _, x := range def.layers {
			if x.typ == spec.typ {
				l = x
			}
		}
		if l == nil {
			return fail("Writable", "Writes[%s]: %s is not a layer of the channel's state", typeName(spec.typ), typeName(spec.typ))
		}
		if def.writes[l.name] != nil {
			return fail("Writable", "Writes[%s] is declared twice", typeName(spec.typ))
		}
		wd := &writeDef{index: i, l: l, byName: map[string]*scalarField{}, save: spec.save, del: spec.del}
		if !spec.save && !spec.del && len(spec.create) == 0 {
			return fail("Writable", "Writes[%s] allows nothing: set Save, Create or Delete", typeName(spec.typ))
		}
		if spec.save && len(spec.fields) == 0 {
			return fail("Writable", "Writes[%s]: Save needs Fields", typeName(spec.typ))
		}
		// Foreign keys that place rows of l under a parent of the channel.
		placing := map[string]*relation{}
		for _, p := range l.parents {
			if slices.Contains(def.layers, p.from) {
				placing[p.rel.References[0].ForeignKey.Name] = p
			}
		}
		for _, name := range spec.fields {
			f := l.field(name)
			switch {
			case f == nil && l.relation(name) != nil:
				return fail("Writable", "Writes[%s]: %q is a relation; only plain fields are writable", typeName(spec.typ), name)
			case f == nil:
				return fail("Writable", "Writes[%s]: %s has no field %q", typeName(spec.typ), l.name, name)
			case f.goName == l.pk.Name:
				return fail("Writable", "Writes[%s]: the primary key %s cannot be writable", typeName(spec.typ), f.goName)
			case l.owner != nil && f.goName == l.owner.Name:
				return fail("Writable", "Writes[%s]: the owner field %s cannot be writable (a create sets it to the user)", typeName(spec.typ), f.goName)
			case placing[f.goName] != nil:
				return fail("Writable", "Writes[%s]: %s places the row under %s and cannot be writable; move rows with an action", typeName(spec.typ), f.goName, relName(placing[f.goName]))
			case wd.byName[f.name] != nil:
				return fail("Writable", "Writes[%s]: field %s is listed twice", typeName(spec.typ), f.goName)
			}
			wd.fields = append(wd.fields, f)
			wd.byName[f.name] = f
		}
		for _, path := range spec.create {
			r, err := createRelation(def, l, path)
			if err != nil {
				return fail("Writable", "Writes[%s]: Create %q: %v", typeName(spec.typ), path, err)
			}
			if wd.createRel(relName(r)) != nil {
				return fail("Writable", "Writes[%s]: Create %q is listed twice", typeName(spec.typ), path)
			}
			wd.create = append(wd.create, r)
		}
		def.writes[l.name] = wd
		def.writeOrder = append(def.writeOrder, wd)
	}
	return nil
}

// createRelation resolves "Layer.field" to a relation of the channel under
// which rows of l can be created.
func createRelation(def *channelDef, l *layer, path string) (*relation, error) {
	ln, fn, ok := strings.Cut(path, ".")
	if !ok {
		return nil, fmt.Errorf("want \"Layer.field\"")
	}
	var from *layer
	for _, x := range def.layers {
		if x.name == ln {
			from = x
		}
	}
	if from == nil {
		return nil, fmt.Errorf("%s is not a layer of the channel", ln)
	}
	r := from.relation(fn)
	switch {
	case r == nil:
		return nil, fmt.Errorf("%s has no relation %q", ln, fn)
	case r.to != l:
		return nil, fmt.Errorf("the relation holds %s rows, not %s", r.to.name, l.name)
	case !r.follow:
		return nil, fmt.Errorf("the relation is rx:\"ids\": its rows are not in the state")
	case r.kind != relHasMany && r.kind != relHasOne:
		return nil, fmt.Errorf("only has-many and has-one relations can hold created rows")
	}
	return r, nil
}

// field finds a scalar field by JSON or Go name.
func (l *layer) field(name string) *scalarField {
	return byName(l.fields, name, func(f *scalarField) (string, string) { return f.name, f.goName })
}

// relation finds a relation by JSON or Go name.
func (l *layer) relation(name string) *relation {
	return byName(l.rels, name, func(r *relation) (string, string) { return r.name, r.goName })
}

// byName returns the item whose JSON name is name, else the one whose Go
// name is, else nil.
func byName[T any](items []*T, name string, names func(*T) (json, goName string)) *T {
	var goMatch *T
	for _, x := range items {
		j, g := names(x)
		if j == name {
			return x
		}
		if g == name && goMatch == nil {
			goMatch = x
		}
	}
	return goMatch
}

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
		for _, p := range k.l.parents {
			if len(st.parentsVia(k, p)) == 0 {
				continue
			}
			placed = true
			if fk := r.fks[p]; fk != "" && st.nodes[ikey{p.from, fk}] != nil {
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
		old := reflect.New(l.typ)
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).
			Where(map[string]any{l.pk.DBName: keyArgs(l.pk, []string{req.Row})[0]}).
			Take(old.Interface()).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return "", Errorf(CodeNotFound, "no %s %s", l.name, req.Row)
		}
		if err != nil {
			return "", fmt.Errorf("rx: read %s %s for a write: %w", l.name, req.Row, err)
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
		parent := reflect.New(p.typ)
		err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).
			Where(map[string]any{p.pk.DBName: keyArgs(p.pk, []string{c.parent})[0]}).
			Take(parent.Interface()).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return "", Errorf(CodeNotFound, "no %s %s", p.name, c.parent)
		}
		if err != nil {
			return "", fmt.Errorf("rx: read %s %s for a create: %w", p.name, c.parent, err)
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

// WriteDesc describes the client writes a channel allows in one layer.
type WriteDesc struct {
	Layer string `json:"layer"`
	// Key is the JSON name of the primary key; IDType how ids are encoded
	// ("number" or "string").
	Key    string `json:"key"`
	IDType string `json:"idType"`
	// Owner is the JSON name of the per-user owner field, if any: a create
	// sets it to the user.
	Owner string `json:"owner,omitempty"`
	// Fields are the writable fields, by JSON name.
	Fields []string `json:"fields"`
	Save   bool     `json:"save"`
	Delete bool     `json:"delete"`
	// Create lists the relations rows may be created under.
	Create []CreateDesc `json:"create,omitempty"`
	// Template is the flat instance of the model's zero value: what a
	// created row holds before its fields are set.
	Template map[string]json.RawMessage `json:"template"`
}

// CreateDesc describes one relation under which clients may create rows.
type CreateDesc struct {
	// Relation is the wire name, "Layer.field".
	Relation string `json:"relation"`
	// Parent is the parent layer; Field its relation field, a list when
	// Many.
	Parent string `json:"parent"`
	Field  string `json:"field"`
	Many   bool   `json:"many"`
	// ForeignKey is the JSON name of the created row's field that holds
	// the parent's id ("" when it is not sent).
	ForeignKey string `json:"foreignKey,omitempty"`
	// First: the relation is ordered descending, so new rows usually come
	// first.
	First bool `json:"first,omitempty"`
}

func describeWrites(wd *writeDef) WriteDesc {
	l := wd.l
	d := WriteDesc{Layer: l.name, IDType: l.idType(), Fields: []string{}, Save: wd.save, Delete: wd.del}
	if f := l.field(l.pk.Name); f != nil {
		d.Key = f.name
	}
	if l.owner != nil {
		if f := l.field(l.owner.Name); f != nil {
			d.Owner = f.name
		}
	}
	for _, f := range wd.fields {
		d.Fields = append(d.Fields, f.name)
	}
	for _, r := range wd.create {
		cd := CreateDesc{Relation: relName(r), Parent: r.from.name, Field: r.name, Many: r.many(), First: strings.HasSuffix(r.order, "DESC")}
		if f := l.field(r.rel.References[0].ForeignKey.Name); f != nil {
			cd.ForeignKey = f.name
		}
		d.Create = append(d.Create, cd)
	}
	d.Template = map[string]json.RawMessage{}
	if row, _, err := encodeRow(context.Background(), l, reflect.New(l.typ).Elem()); err == nil {
		d.Template = row.fields
	}
	for _, r := range l.rels {
		switch r.kind {
		case relHasMany, relMany2Many:
			d.Template[r.name] = json.RawMessage("[]")
		case relHasOne:
			d.Template[r.name] = json.RawMessage("null")
		}
	}
	return d
}
