package rx

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"

	"gorm.io/gorm/schema"
)

// Description is the state model of a set of channels, for code generators:
// every channel with its params, runtime state and actions, every layer with
// its fields and relations, and the named Go types they use. It is built
// from the Go types alone, without a database, by the same code that
// registers channels on a Hub, and it encodes to JSON.
type Description struct {
	Channels []ChannelDesc       `json:"channels"`
	Layers   []LayerDesc         `json:"layers"`
	Types    map[string]TypeDesc `json:"types"` // named struct types by TypeDesc.Ref key
}

// ChannelDesc describes one channel.
type ChannelDesc struct {
	Name    string       `json:"name"`
	GoType  string       `json:"goType"`
	Anchor  string       `json:"anchor"` // layer name
	Many    bool         `json:"many"`
	Layers  []string     `json:"layers"` // reachable layers, anchor first
	Params  TypeDesc     `json:"params"`
	Runtime *TypeDesc    `json:"runtime,omitempty"`
	Actions []ActionDesc `json:"actions,omitempty"`
	// Writes are the client writes the channel allows, per layer.
	Writes []WriteDesc `json:"writes,omitempty"`
	// Presence: the channel tracks presence (PresenceTracker).
	Presence bool `json:"presence,omitempty"`
}

// ActionDesc describes one action: its wire name, Go method name, argument
// types and result type (nil when it returns only an error).
type ActionDesc struct {
	Name   string     `json:"name"`
	GoName string     `json:"goName"`
	Args   []TypeDesc `json:"args"`
	Result *TypeDesc  `json:"result,omitempty"`
}

// LayerDesc describes one layer: a model type as it appears in the state.
type LayerDesc struct {
	Name    string      `json:"name"`
	GoType  string      `json:"goType"`
	PkgPath string      `json:"pkgPath"`
	Fields  []FieldDesc `json:"fields"`
}

// FieldDesc describes one field of a layer. Layer fields are always
// present in the state (the engine sends every field, omitempty or not);
// relation fields hold nested objects in the nested state and ids in flat
// instances.
type FieldDesc struct {
	Name     string        `json:"name"` // JSON name
	GoName   string        `json:"goName"`
	Type     TypeDesc      `json:"type"`
	Relation *RelationDesc `json:"relation,omitempty"`
	Owner    bool          `json:"owner,omitempty"` // the per-user owner field
	Key      bool          `json:"key,omitempty"`   // the primary key
}

// RelationDesc describes a relation field.
type RelationDesc struct {
	Target  string `json:"target"` // layer name
	Many    bool   `json:"many"`
	IDsOnly bool   `json:"idsOnly,omitempty"` // rx:"ids": ids, not nested objects
	IDType  string `json:"idType"`            // "number" or "string": how ids are encoded
}

// Kind is the kind of a described type, as encoding/json encodes it. Go
// types are mapped to kinds in one place (Describe); a code generator maps
// each kind to its own type system.
type Kind string

// The kinds of TypeDesc.
const (
	KindBool   Kind = "bool"
	KindInt    Kind = "int"
	KindUint   Kind = "uint"
	KindFloat  Kind = "float"
	KindString Kind = "string"
	KindTime   Kind = "time"
	KindBytes  Kind = "bytes"
	KindAny    Kind = "any"
	KindSlice  Kind = "slice"
	KindArray  Kind = "array"
	KindMap    Kind = "map"
	KindStruct Kind = "struct"
	KindRef    Kind = "ref"
)

// TypeDesc describes a Go type as encoding/json encodes it.
type TypeDesc struct {
	// Kind is what the type is to a JSON client: the one mapping from Go
	// types that code generators translate.
	Kind Kind `json:"kind"`
	// Name and PkgPath name a named type (enums, structs).
	Name    string `json:"name,omitempty"`
	PkgPath string `json:"pkgPath,omitempty"`
	// Bits is the size of an int, uint or float (int and uint: 64).
	Bits int `json:"bits,omitempty"`
	// Nullable: the JSON value may be null (pointers, slices, maps,
	// interfaces).
	Nullable bool `json:"nullable,omitempty"`
	// Quoted: a number or bool encoded as a string (the ",string" option).
	Quoted bool `json:"quoted,omitempty"`
	// Elem is the element of slice, array and map; Key the key of map.
	Elem *TypeDesc `json:"elem,omitempty"`
	Key  *TypeDesc `json:"key,omitempty"`
	// Fields of an anonymous struct; named structs are Kind "ref" with Ref
	// naming an entry of Description.Types.
	Fields []StructFieldDesc `json:"fields,omitempty"`
	Ref    string            `json:"ref,omitempty"`
}

// StructFieldDesc is one JSON field of a struct type.
type StructFieldDesc struct {
	Name     string   `json:"name"`
	GoName   string   `json:"goName"`
	Type     TypeDesc `json:"type"`
	Optional bool     `json:"optional,omitempty"` // omitempty or omitzero: may be absent
}

// Describe builds the Description of channels (values or pointers of types
// embedding Channel or List), with the same validation as Hub.Register.
func Describe(channels ...any) (*Description, error) {
	m := &model{
		cache:      &sync.Map{},
		namer:      schema.NamingStrategy{},
		byType:     map[reflect.Type]*layer{},
		byName:     map[string]*layer{},
		byTable:    map[string]*layer{},
		joinTables: map[string][]*relation{},
	}
	d := &Description{Types: map[string]TypeDesc{}}
	tb := &typeBuilder{types: d.Types}
	seenLayer := map[*layer]bool{}
	names := map[string]bool{}
	for _, c := range channels {
		dc, ok := c.(declarer)
		if !ok {
			return nil, &DeclarationError{Type: fmt.Sprintf("%T", c), Reason: "not a channel: embed rx.Channel[Model, Params] or rx.List[Model, Params]"}
		}
		def, err := dc.rxDeclare(c)
		if err != nil {
			return nil, err
		}
		if names[def.name] {
			return nil, &DeclarationError{Type: typeName(def.goType), Reason: fmt.Sprintf("channel name %q is already used", def.name)}
		}
		names[def.name] = true
		l, err := m.layerFor(def.anchorType)
		if err != nil {
			return nil, err
		}
		def.anchor, def.layers = l, l.reachable()
		if err := declareWrites(def); err != nil {
			return nil, err
		}
		declarePresence(def)
		cd := ChannelDesc{Name: def.name, GoType: typeName(def.elemType), Anchor: l.name, Many: def.many, Params: tb.desc(def.paramsType), Presence: def.presence != nil}
		for _, wd := range def.writeOrder {
			cd.Writes = append(cd.Writes, describeWrites(wd))
		}
		for _, x := range l.reachable() {
			cd.Layers = append(cd.Layers, x.name)
			if !seenLayer[x] {
				seenLayer[x] = true
				d.Layers = append(d.Layers, describeLayer(x, tb))
			}
		}
		if def.runtime != nil {
			rt := tb.desc(def.runtime)
			cd.Runtime = &rt
		}
		for _, name := range slices.Sorted(mapKeys(def.actions)) {
			a := def.actions[name]
			ad := ActionDesc{Name: a.name, GoName: a.goName, Args: []TypeDesc{}}
			for _, t := range a.args {
				ad.Args = append(ad.Args, tb.desc(t))
			}
			if a.result != nil {
				r := tb.desc(a.result)
				ad.Result = &r
			}
			cd.Actions = append(cd.Actions, ad)
		}
		d.Channels = append(d.Channels, cd)
	}
	slices.SortFunc(d.Layers, func(a, b LayerDesc) int { return strings.Compare(a.Name, b.Name) })
	return d, nil
}

func mapKeys[V any](m map[string]V) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

func describeLayer(l *layer, tb *typeBuilder) LayerDesc {
	ld := LayerDesc{Name: l.name, GoType: typeName(l.typ), PkgPath: l.typ.PkgPath()}
	byIndex := func(index []int) reflect.StructField { return l.typ.FieldByIndex(index) }
	rels := map[string]*relation{}
	for _, r := range l.rels {
		rels[r.name] = r
	}
	// Fields in declaration order: walk the struct as buildFields did.
	type entry struct {
		index []int
		fd    FieldDesc
	}
	var entries []entry
	for _, f := range l.fields {
		sf := byIndex(f.index)
		fd := FieldDesc{Name: f.name, GoName: f.goName, Type: tb.field(jsonField{sf: sf, quoted: f.quoted})}
		if l.owner != nil && l.owner.StructField.Name == sf.Name {
			fd.Owner = true
		}
		if l.pk.StructField.Name == sf.Name {
			fd.Key = true
		}
		entries = append(entries, entry{f.index, fd})
	}
	for _, r := range l.rels {
		fd := FieldDesc{Name: r.name, GoName: r.goName, Relation: &RelationDesc{Target: r.to.name, Many: r.many(), IDsOnly: !r.follow, IDType: r.to.idType()}}
		switch {
		case r.many():
			fd.Type = TypeDesc{Kind: KindSlice, Elem: &TypeDesc{Kind: KindRef, Ref: "layer:" + r.to.name}}
		default:
			fd.Type = TypeDesc{Kind: KindRef, Ref: "layer:" + r.to.name, Nullable: true}
		}
		entries = append(entries, entry{r.index, fd})
	}
	slices.SortFunc(entries, func(a, b entry) int { return slices.Compare(a.index, b.index) })
	for _, e := range entries {
		ld.Fields = append(ld.Fields, e.fd)
	}
	return ld
}

// idType is how the layer's key is encoded on the wire.
func (l *layer) idType() string {
	if l.pkQuoted {
		return "string"
	}
	switch l.pk.FieldType.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "number"
	}
	return "string"
}

// typeBuilder describes Go types, collecting named structs into types.
type typeBuilder struct {
	types map[string]TypeDesc
}

// field describes a struct field's type, with the ",string" option.
func (tb *typeBuilder) field(jf jsonField) TypeDesc {
	td := tb.desc(jf.sf.Type)
	if jf.quoted || idField(jf) {
		switch td.Kind {
		case KindInt, KindUint, KindFloat, KindBool:
			td.Quoted = true
		}
	}
	return td
}

func (tb *typeBuilder) desc(t reflect.Type) TypeDesc {
	nullable := false
	for t.Kind() == reflect.Pointer {
		nullable = true
		t = t.Elem()
	}
	td := tb.descNonPtr(t)
	td.Nullable = td.Nullable || nullable
	return td
}

func (tb *typeBuilder) descNonPtr(t reflect.Type) TypeDesc {
	named := func(td TypeDesc) TypeDesc {
		if t.Name() != "" && t.PkgPath() != "" {
			td.Name, td.PkgPath = t.Name(), t.PkgPath()
		}
		return td
	}
	switch {
	case t == timeType:
		return TypeDesc{Kind: KindTime}
	case t.Implements(jsonMarshalerType) || reflect.PointerTo(t).Implements(jsonMarshalerType):
		return named(TypeDesc{Kind: KindAny})
	case t.Implements(textMarshalerType) || reflect.PointerTo(t).Implements(textMarshalerType):
		return named(TypeDesc{Kind: KindString})
	}
	switch t.Kind() {
	case reflect.Bool:
		return named(TypeDesc{Kind: KindBool})
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return named(TypeDesc{Kind: KindInt, Bits: t.Bits()})
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		return named(TypeDesc{Kind: KindUint, Bits: t.Bits()})
	case reflect.Float32, reflect.Float64:
		return named(TypeDesc{Kind: KindFloat, Bits: t.Bits()})
	case reflect.String:
		return named(TypeDesc{Kind: KindString})
	case reflect.Interface:
		return TypeDesc{Kind: KindAny, Nullable: true}
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			return TypeDesc{Kind: KindBytes, Nullable: true}
		}
		e := tb.desc(t.Elem())
		return named(TypeDesc{Kind: KindSlice, Elem: &e, Nullable: true})
	case reflect.Array:
		e := tb.desc(t.Elem())
		return named(TypeDesc{Kind: KindArray, Elem: &e, Bits: t.Len()})
	case reflect.Map:
		k := tb.desc(t.Key())
		e := tb.desc(t.Elem())
		return named(TypeDesc{Kind: KindMap, Key: &k, Elem: &e, Nullable: true})
	case reflect.Struct:
		if t.Name() == "" {
			return TypeDesc{Kind: KindStruct, Fields: tb.structFields(t)}
		}
		key := t.PkgPath() + "." + t.Name()
		if _, ok := tb.types[key]; !ok {
			tb.types[key] = TypeDesc{Kind: KindStruct} // placeholder for recursion
			tb.types[key] = TypeDesc{Kind: KindStruct, Name: t.Name(), PkgPath: t.PkgPath(), Fields: tb.structFields(t)}
		}
		return TypeDesc{Kind: KindRef, Ref: key, Name: t.Name(), PkgPath: t.PkgPath()}
	}
	return TypeDesc{Kind: KindAny}
}

// structFields lists a struct's JSON fields as encoding/json does (see
// jsonFields).
func (tb *typeBuilder) structFields(t reflect.Type) []StructFieldDesc {
	var out []StructFieldDesc
	for _, jf := range jsonFields(t) {
		out = append(out, StructFieldDesc{Name: jf.name, GoName: jf.sf.Name, Type: tb.field(jf), Optional: jf.omitEmpty || jf.omitZero})
	}
	return out
}

// MarshalIndent is a convenience for tools: the description as indented
// JSON.
func (d *Description) MarshalIndent() ([]byte, error) { return json.MarshalIndent(d, "", "  ") }
