package rx

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	"gorm.io/gorm"
)

// Client writes, declared: what a channel lets its clients write (Writer,
// Writes), checked at Register and described to code generators. The
// pipeline that runs a write is in write_apply.go.

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
