package rx

import (
	"encoding"
	"encoding/json"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"
)

// The state model: one layer per GORM model type reachable from a channel's
// anchor. A layer knows the fields it sends (as encoding/json would name
// them), its relations to other layers, and the per-user owner field.
//
// Relations are found with GORM's own schema parser, so has-one, has-many,
// belongs-to and many2many are read exactly as GORM reads them.
//
// Struct tag `rx` on a model field adjusts the state (comma-separated):
//
//	rx:"owner"            the field holds the owning user's id: per-user row
//	rx:"ids"              relation sent as ids only, target rows not included
//	rx:"recursive"        relation may close a type cycle; data must end it
//	rx:"order=<column> [desc]"  order of a to-many relation (default: primary key)
//	rx:"limit=<n>"        keep only the first n rows of a to-many relation (after ordering)
type layer struct {
	name   string // type name on the wire
	typ    reflect.Type
	schema *schema.Schema
	pk     *schema.Field
	fields []*scalarField
	rels   []*relation
	owner  *schema.Field // per-user rows; nil for shared rows
	// pkQuoted: the key field is tagged json:",string", so the key and the
	// ids referring to it travel as JSON strings (for keys past 2^53).
	pkQuoted bool
	// parents are relations of any layer whose target is this layer and
	// whose foreign key lives on this layer (has-many, has-one): a change of
	// a row here can change those parents' lists.
	parents []*relation
	// one builds oneSQL, the query reading one row by key (load.go).
	one    sync.Once
	oneSQL string
	// stmt is oneSQL prepared on the hub's database (prepared.go).
	stmt preparedRead
}

type scalarField struct {
	name   string // JSON name
	goName string
	index  []int
	quoted bool // sent as a JSON string: the ",string" option
	enc    func(reflect.Value) (json.RawMessage, error)
}

type relKind int

const (
	relBelongsTo relKind = iota
	relHasOne
	relHasMany
	relMany2Many
)

type relation struct {
	from   *layer
	name   string // JSON name
	goName string
	index  []int
	kind   relKind
	rel    *schema.Relationship
	to     *layer
	follow bool // false for rx:"ids"
	recur  bool // rx:"recursive"
	order  string
	limit  int
}

// many reports whether the relation holds a list.
func (r *relation) many() bool { return r.kind == relHasMany || r.kind == relMany2Many }

// model is the registry of layers of one Hub.
type model struct {
	mu         sync.Mutex
	cache      *sync.Map
	namer      schema.Namer
	byType     map[reflect.Type]*layer
	byName     map[string]*layer
	byTable    map[string]*layer
	joinTables map[string][]*relation // join table → many2many relations using it
}

func newModel(db *gorm.DB) *model {
	return &model{
		cache:      &sync.Map{},
		namer:      db.NamingStrategy,
		byType:     map[reflect.Type]*layer{},
		byName:     map[string]*layer{},
		byTable:    map[string]*layer{},
		joinTables: map[string][]*relation{},
	}
}

// layerFor returns the layer of Go struct type t, building it and every
// layer reachable from it. New layers are committed to the registry only if
// the whole graph is valid.
func (m *model) layerFor(t reflect.Type) (*layer, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pending := map[reflect.Type]*layer{}
	l, err := m.build(t, pending)
	if err != nil {
		return nil, err
	}
	if err := checkCycles(l); err != nil {
		return nil, err
	}
	if err := quoteForeignKeys(pending); err != nil {
		return nil, err
	}
	for _, nl := range pending {
		if other, ok := m.byName[nl.name]; ok && other != nl {
			return nil, &DeclarationError{Type: typeName(nl.typ), Reason: fmt.Sprintf("layer name %q is also used by %s; two models with one name cannot share a hub", nl.name, typeName(other.typ))}
		}
		// Writes are attributed to a layer by table: two Go types on one
		// table would see only their own writes.
		if other, ok := m.byTable[nl.schema.Table]; ok && other != nl {
			return nil, &DeclarationError{Type: typeName(nl.typ), Reason: fmt.Sprintf("table %q is also the table of %s; one table can back only one model type in a hub", nl.schema.Table, typeName(other.typ))}
		}
		for _, x := range pending {
			if x != nl && x.schema.Table == nl.schema.Table {
				return nil, &DeclarationError{Type: typeName(nl.typ), Reason: fmt.Sprintf("table %q is also the table of %s; one table can back only one model type in a hub", nl.schema.Table, typeName(x.typ))}
			}
		}
	}
	for t, nl := range pending {
		m.byType[t] = nl
		m.byName[nl.name] = nl
		m.byTable[nl.schema.Table] = nl
		for _, r := range nl.rels {
			if r.kind == relMany2Many {
				jt := r.rel.JoinTable.Table
				m.joinTables[jt] = append(m.joinTables[jt], r)
			}
			if r.kind == relHasMany || r.kind == relHasOne {
				r.to.parents = append(r.to.parents, r)
			}
		}
	}
	return l, nil
}

func typeName(t reflect.Type) string { return t.String() }

func (m *model) build(t reflect.Type, pending map[reflect.Type]*layer) (*layer, error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if l, ok := m.byType[t]; ok {
		return l, nil
	}
	if l, ok := pending[t]; ok {
		return l, nil
	}
	if t.Kind() != reflect.Struct {
		return nil, &DeclarationError{Type: typeName(t), Reason: "a layer must be a struct model"}
	}
	s, err := schema.Parse(reflect.New(t).Interface(), m.cache, m.namer)
	if err != nil {
		return nil, &DeclarationError{Type: typeName(t), Reason: fmt.Sprintf("gorm cannot parse the model: %v", err)}
	}
	if len(s.PrimaryFields) != 1 {
		return nil, &DeclarationError{Type: typeName(t), Reason: fmt.Sprintf("a layer needs exactly one primary key field, found %d", len(s.PrimaryFields))}
	}
	l := &layer{name: t.Name(), typ: t, schema: s, pk: s.PrimaryFields[0]}
	pending[t] = l
	if err := m.buildFields(l, t, pending); err != nil {
		return nil, err
	}
	return l, nil
}

type rxTag struct {
	owner, ids, recursive bool
	order                 string
	limit                 int
}

func parseRxTag(t reflect.Type, sf reflect.StructField) (rxTag, error) {
	var out rxTag
	raw, ok := sf.Tag.Lookup("rx")
	if !ok {
		return out, nil
	}
	for _, opt := range strings.Split(raw, ",") {
		opt = strings.TrimSpace(opt)
		key, val, _ := strings.Cut(opt, "=")
		switch key {
		case "":
		case "owner":
			out.owner = true
		case "ids":
			out.ids = true
		case "recursive":
			out.recursive = true
		case "order":
			out.order = strings.TrimSpace(val)
		case "limit":
			n, err := strconv.Atoi(val)
			if err != nil || n <= 0 {
				return out, &DeclarationError{Type: typeName(t), Field: sf.Name, Reason: fmt.Sprintf("rx tag limit=%q is not a positive integer", val)}
			}
			out.limit = n
		default:
			return out, &DeclarationError{Type: typeName(t), Field: sf.Name, Reason: fmt.Sprintf("unknown rx tag option %q", key)}
		}
	}
	return out, nil
}

func (m *model) buildFields(l *layer, t reflect.Type, pending map[reflect.Type]*layer) error {
	for _, jf := range jsonFields(t) {
		sf, idx, name, quoted := jf.sf, jf.index, jf.name, jf.quoted
		tag, err := parseRxTag(l.typ, sf)
		if err != nil {
			return err
		}
		if tag.owner {
			f := l.schema.LookUpField(sf.Name)
			if f == nil || f.DBName == "" {
				return &DeclarationError{Type: typeName(l.typ), Field: sf.Name, Reason: "rx:\"owner\" must be on a database column"}
			}
			l.owner = f
		}
		if rel := l.schema.Relationships.Relations[sf.Name]; rel != nil && len(idx) == 1 {
			r, err := m.buildRelation(l, sf, idx, name, rel, tag, pending)
			if err != nil {
				return err
			}
			l.rels = append(l.rels, r)
			continue
		}
		if tag.ids || tag.recursive || tag.order != "" || tag.limit != 0 {
			return &DeclarationError{Type: typeName(l.typ), Field: sf.Name, Reason: "rx relation options on a field that is not a gorm association"}
		}
		gf := l.schema.LookUpField(sf.Name)
		if wide64(sf.Type) && (gf == l.pk || tag.owner || idName(sf.Name) || ownForeignKey(l.schema, sf.Name)) {
			// Ids past 2^53 would lose precision as JSON numbers in
			// JavaScript: 64-bit keys and ids travel as strings.
			quoted = true
		}
		if gf == l.pk && quoted {
			l.pkQuoted = true
		}
		enc, err := encoderFor(sf.Type, quoted)
		if err != nil {
			return &DeclarationError{Type: typeName(l.typ), Field: sf.Name, Reason: err.Error()}
		}
		l.fields = append(l.fields, &scalarField{name: name, goName: sf.Name, index: idx, quoted: quoted, enc: enc})
	}
	return nil
}

func (m *model) buildRelation(l *layer, sf reflect.StructField, idx []int, name string, rel *schema.Relationship, tag rxTag, pending map[reflect.Type]*layer) (*relation, error) {
	r := &relation{from: l, name: name, goName: sf.Name, index: idx, rel: rel, follow: !tag.ids, recur: tag.recursive, order: tag.order, limit: tag.limit}
	if rel.Polymorphic != nil {
		return nil, &DeclarationError{Type: typeName(l.typ), Field: sf.Name, Reason: "polymorphic associations are not supported in a state tree; use json:\"-\""}
	}
	switch rel.Type {
	case schema.BelongsTo:
		r.kind = relBelongsTo
	case schema.HasOne:
		r.kind = relHasOne
	case schema.HasMany:
		r.kind = relHasMany
	case schema.Many2Many:
		r.kind = relMany2Many
	default:
		return nil, &DeclarationError{Type: typeName(l.typ), Field: sf.Name, Reason: fmt.Sprintf("unsupported association type %q", rel.Type)}
	}
	if len(rel.References) == 0 || (r.kind != relMany2Many && len(rel.References) != 1) {
		return nil, &DeclarationError{Type: typeName(l.typ), Field: sf.Name, Reason: "composite foreign keys are not supported"}
	}
	// Relations must join on primary keys: lists are read by the parent's
	// key and rows are identified by their own.
	for _, ref := range rel.References {
		if ref.PrimaryKey != nil && !ref.PrimaryKey.PrimaryKey {
			return nil, &DeclarationError{Type: typeName(l.typ), Field: sf.Name, Reason: fmt.Sprintf("relation references %s, not a primary key; rxgorm relations join on primary keys", ref.PrimaryKey.Name)}
		}
	}
	if (tag.order != "" || tag.limit != 0) && !r.many() {
		return nil, &DeclarationError{Type: typeName(l.typ), Field: sf.Name, Reason: "order and limit apply to has-many and many2many relations only"}
	}
	to, err := m.build(rel.FieldSchema.ModelType, pending)
	if err != nil {
		return nil, err
	}
	r.to = to
	if r.order != "" {
		col, dir, _ := strings.Cut(r.order, " ")
		dir = strings.ToLower(strings.TrimSpace(dir))
		if to.schema.LookUpField(col) == nil || (dir != "" && dir != "asc" && dir != "desc") {
			return nil, &DeclarationError{Type: typeName(l.typ), Field: sf.Name, Reason: fmt.Sprintf("order %q: want \"<column of %s> [asc|desc]\"", r.order, to.name)}
		}
		r.order = to.schema.LookUpField(col).DBName + " " + strings.ToUpper(dir)
		r.order = strings.TrimSpace(r.order)
	}
	return r, nil
}

// wide64 reports whether t (or what it points to) is an integer kind that
// can exceed 2^53: int, int64, uint, uint64 (int and uint count as 64-bit
// on every platform, so the wire does not depend on GOARCH). Types with
// their own JSON encoding are left alone.
func wide64(t reflect.Type) bool {
	if t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t.Implements(jsonMarshalerType) || reflect.PointerTo(t).Implements(jsonMarshalerType) ||
		t.Implements(textMarshalerType) || reflect.PointerTo(t).Implements(textMarshalerType) {
		return false
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int64, reflect.Uint, reflect.Uint64:
		return true
	}
	return false
}

// idName reports whether a Go field name says it holds an id: "ID" or a
// name ending in "ID" (GORM's convention for foreign keys).
func idName(name string) bool { return strings.HasSuffix(name, "ID") }

// ownForeignKey reports whether the field is a foreign key of one of the
// model's own GORM relationships (a belongs-to's key, whatever its name).
func ownForeignKey(s *schema.Schema, goName string) bool {
	for _, rel := range s.Relationships.Relations {
		for _, ref := range rel.References {
			if ref.ForeignKey != nil && ref.ForeignKey.Schema == s && ref.ForeignKey.Name == goName {
				return true
			}
		}
	}
	return false
}

// quoteForeignKeys makes the foreign keys of has-one and has-many relations
// into ids (strings on the wire) on their target layers, whatever their
// names, so that a row's parent id has the type of the parent's key.
func quoteForeignKeys(pending map[reflect.Type]*layer) error {
	for _, l := range pending {
		for _, r := range l.rels {
			if r.kind != relHasMany && r.kind != relHasOne || pending[r.to.typ] != r.to {
				continue
			}
			fk := r.rel.References[0].ForeignKey
			for _, f := range r.to.fields {
				if f.goName != fk.Name || f.quoted || !wide64(fk.StructField.Type) || len(f.index) != len(fk.StructField.Index) {
					continue
				}
				enc, err := encoderFor(r.to.typ.FieldByIndex(f.index).Type, true)
				if err != nil {
					return &DeclarationError{Type: typeName(r.to.typ), Field: f.goName, Reason: err.Error()}
				}
				f.quoted, f.enc = true, enc
			}
		}
	}
	return nil
}

// checkCycles rejects type cycles through followed relations unless one of
// the relations in the cycle is marked rx:"recursive".
func checkCycles(root *layer) error {
	const (
		white = iota
		grey
		black
	)
	color := map[*layer]int{}
	var path []*relation
	var visit func(l *layer) error
	visit = func(l *layer) error {
		color[l] = grey
		for _, r := range l.rels {
			if !r.follow || r.recur {
				continue
			}
			path = append(path, r)
			switch color[r.to] {
			case grey:
				var names []string
				start := 0
				for i, p := range path {
					if p.from == r.to {
						start = i
						break
					}
				}
				for _, p := range path[start:] {
					names = append(names, p.from.name+"."+p.goName)
				}
				return &DeclarationError{Type: typeName(r.from.typ), Field: r.goName, Reason: fmt.Sprintf("type cycle %s → %s without a stop; mark one relation rx:\"ids\" (not followed) or rx:\"recursive\" (followed, the data ends it)", strings.Join(names, " → "), r.to.name)}
			case white:
				if err := visit(r.to); err != nil {
					return err
				}
			}
			path = path[:len(path)-1]
		}
		color[l] = black
		return nil
	}
	return visit(root)
}

var (
	timeType          = reflect.TypeFor[time.Time]()
	jsonMarshalerType = reflect.TypeFor[json.Marshaler]()
	textMarshalerType = reflect.TypeFor[encoding.TextMarshaler]()
)

// encoderFor returns the JSON encoder of one field: fast paths for the common
// kinds, encoding/json for the rest. Types encoding/json cannot encode are
// rejected at registration.
func encoderFor(t reflect.Type, quoted bool) (func(reflect.Value) (json.RawMessage, error), error) {
	if err := encodable(t, map[reflect.Type]bool{}); err != nil {
		return nil, err
	}
	generic := func(v reflect.Value) (json.RawMessage, error) {
		if v.Kind() == reflect.Pointer && v.IsNil() {
			return json.RawMessage("null"), nil
		}
		if !v.CanInterface() && v.CanAddr() {
			// An exported field promoted from an unexported embedded
			// struct: encoding/json encodes it, so do we.
			v = reflect.NewAt(v.Type(), unsafe.Pointer(v.UnsafeAddr())).Elem()
		}
		return json.Marshal(v.Interface())
	}
	if t.Implements(jsonMarshalerType) || reflect.PointerTo(t).Implements(jsonMarshalerType) ||
		t.Implements(textMarshalerType) || reflect.PointerTo(t).Implements(textMarshalerType) {
		return generic, nil
	}
	if t.Kind() == reflect.Pointer && quoted {
		switch t.Elem().Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr, reflect.Bool:
			elem, err := encoderFor(t.Elem(), true)
			if err != nil {
				return nil, err
			}
			return func(v reflect.Value) (json.RawMessage, error) {
				if v.IsNil() {
					return json.RawMessage("null"), nil
				}
				return elem(v.Elem())
			}, nil
		}
	}
	wrap := func(f func(reflect.Value) json.RawMessage) func(reflect.Value) (json.RawMessage, error) {
		if quoted {
			return func(v reflect.Value) (json.RawMessage, error) { return strconv.AppendQuote(nil, string(f(v))), nil }
		}
		return func(v reflect.Value) (json.RawMessage, error) { return f(v), nil }
	}
	switch t.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return wrap(func(v reflect.Value) json.RawMessage { return strconv.AppendInt(nil, v.Int(), 10) }), nil
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return wrap(func(v reflect.Value) json.RawMessage { return strconv.AppendUint(nil, v.Uint(), 10) }), nil
	case reflect.Bool:
		return wrap(func(v reflect.Value) json.RawMessage { return strconv.AppendBool(nil, v.Bool()) }), nil
	}
	if quoted {
		return func(v reflect.Value) (json.RawMessage, error) {
			b, err := generic(v)
			if err != nil {
				return nil, err
			}
			if t.Kind() == reflect.String {
				return json.Marshal(string(b))
			}
			return b, nil
		}, nil
	}
	return generic, nil
}

// encodable reports why encoding/json could not encode t, if it could not.
func encodable(t reflect.Type, seen map[reflect.Type]bool) error {
	if seen[t] {
		return nil
	}
	seen[t] = true
	if t.Implements(jsonMarshalerType) || reflect.PointerTo(t).Implements(jsonMarshalerType) ||
		t.Implements(textMarshalerType) || reflect.PointerTo(t).Implements(textMarshalerType) {
		return nil
	}
	switch t.Kind() {
	case reflect.Chan, reflect.Func, reflect.Complex64, reflect.Complex128, reflect.UnsafePointer:
		return fmt.Errorf("unsupported field type %s (encoding/json cannot encode it); tag it json:\"-\"", t)
	case reflect.Pointer, reflect.Slice, reflect.Array:
		return encodable(t.Elem(), seen)
	case reflect.Map:
		switch t.Key().Kind() {
		case reflect.String, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		default:
			if !t.Key().Implements(textMarshalerType) {
				return fmt.Errorf("unsupported map key type in %s", t)
			}
		}
		return encodable(t.Elem(), seen)
	case reflect.Struct:
		if t == timeType {
			return nil
		}
		for _, jf := range jsonFields(t) {
			if err := encodable(jf.sf.Type, seen); err != nil {
				return err
			}
		}
	}
	return nil
}

// idString returns the canonical string form of a primary or foreign key
// value, and false for a zero or nil key (no row).
func idString(v reflect.Value) (string, bool) {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return "", false
		}
		v = v.Elem()
	}
	if !v.IsValid() || v.IsZero() {
		return "", false
	}
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10), true
	case reflect.String:
		return v.String(), true
	case reflect.Slice:
		if v.Type().Elem().Kind() == reflect.Uint8 {
			return string(v.Bytes()), true
		}
	}
	if s, ok := v.Interface().(fmt.Stringer); ok {
		return s.String(), true
	}
	if vr, ok := v.Interface().(interface{ Value() (any, error) }); ok {
		if x, err := vr.Value(); err == nil && x != nil {
			return idString(reflect.ValueOf(x))
		}
		return "", false
	}
	return fmt.Sprint(v.Interface()), true
}

// idJSON encodes a canonical id as the JSON value the key field has on the
// wire: a number for integer keys, a string otherwise.
func (l *layer) idJSON(id string) json.RawMessage {
	if l.pkQuoted {
		b, _ := json.Marshal(id)
		return b
	}
	switch l.pk.FieldType.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return json.RawMessage(id)
	}
	b, _ := json.Marshal(id)
	return b
}

// idFromJSON is the inverse of idJSON.
func idFromJSON(raw json.RawMessage) string {
	if len(raw) > 0 && raw[0] == '"' {
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	}
	return string(raw)
}

// reachable returns the layers reachable from l through followed relations,
// l first, in a stable order.
func (l *layer) reachable() []*layer {
	seen := map[*layer]bool{l: true}
	out := []*layer{l}
	for i := 0; i < len(out); i++ {
		for _, r := range out[i].rels {
			if r.follow && !seen[r.to] {
				seen[r.to] = true
				out = append(out, r.to)
			}
		}
	}
	return out
}
