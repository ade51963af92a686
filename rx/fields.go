package rx

import (
	"reflect"
	"slices"
	"strings"
	"sync"
	"unicode"
)

// jsonField is one field of a struct as encoding/json encodes it: the
// field that wins its JSON name after embedded structs are promoted.
type jsonField struct {
	name   string              // JSON name
	tagged bool                // the name comes from a json tag
	index  []int               // path from the struct, through embedded structs
	sf     reflect.StructField // the Go field itself
	// quoted: the ",string" option applies (a bool, number or string
	// field, possibly behind a pointer).
	quoted    bool
	omitEmpty bool
	omitZero  bool
}

var jsonFieldCache sync.Map // reflect.Type → []jsonField

// jsonFields returns the fields encoding/json encodes for struct type t, in
// its order (by index sequence), by encoding/json's rules: unexported
// fields are skipped except embedded structs (whose exported fields are
// promoted, through pointers too), `json:"-"` drops a field, an embedded
// struct without a tag name is flattened, and among fields sharing a JSON
// name the shallowest wins, a tagged one beating untagged ones at the same
// depth; two equally dominant fields cancel out and neither is encoded.
// This is the only walk of struct fields in rx: layers, codegen's types and
// encodability checks all use it.
func jsonFields(t reflect.Type) []jsonField {
	if v, ok := jsonFieldCache.Load(t); ok {
		return v.([]jsonField)
	}
	fs := walkJSONFields(t)
	v, _ := jsonFieldCache.LoadOrStore(t, fs)
	return v.([]jsonField)
}

// walkJSONFields follows encoding/json's typeFields (encode.go) without the
// encoders: a breadth-first walk of embedded structs, then the dominance
// rules per name.
func walkJSONFields(t reflect.Type) []jsonField {
	type level struct {
		typ   reflect.Type
		index []int
	}
	var (
		current []level
		next    = []level{{typ: t}}
		// count and nextCount: how many times a struct type is embedded at
		// the current and next depth. A type embedded twice at one depth
		// makes each of its fields ambiguous.
		count, nextCount map[reflect.Type]int
		visited          = map[reflect.Type]bool{}
		fields           []jsonField
	)
	for len(next) > 0 {
		current, next = next, current[:0]
		count, nextCount = nextCount, map[reflect.Type]int{}
		for _, f := range current {
			if visited[f.typ] {
				continue
			}
			visited[f.typ] = true
			for i := 0; i < f.typ.NumField(); i++ {
				sf := f.typ.Field(i)
				if sf.Anonymous {
					et := sf.Type
					if et.Kind() == reflect.Pointer {
						et = et.Elem()
					}
					if !sf.IsExported() && et.Kind() != reflect.Struct {
						continue
					}
					// An unexported embedded struct type may still have
					// exported fields, which are promoted.
				} else if !sf.IsExported() {
					continue
				}
				tag := sf.Tag.Get("json")
				if tag == "-" {
					continue
				}
				name, opts, _ := strings.Cut(tag, ",")
				if !validJSONTag(name) {
					name = ""
				}
				index := append(slices.Clone(f.index), i)
				ft := sf.Type
				if ft.Name() == "" && ft.Kind() == reflect.Pointer {
					ft = ft.Elem()
				}
				quoted := false
				if hasOpt(opts, "string") {
					switch ft.Kind() {
					case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
						reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr,
						reflect.Float32, reflect.Float64, reflect.String:
						quoted = true
					}
				}
				if name != "" || !sf.Anonymous || ft.Kind() != reflect.Struct {
					jf := jsonField{name: name, tagged: name != "", index: index, sf: sf, quoted: quoted,
						omitEmpty: hasOpt(opts, "omitempty"), omitZero: hasOpt(opts, "omitzero")}
					if jf.name == "" {
						jf.name = sf.Name
					}
					fields = append(fields, jf)
					if count[f.typ] > 1 {
						// The same struct embedded twice at this depth: a
						// duplicate, so that the dominance rules drop it.
						fields = append(fields, jf)
					}
					continue
				}
				nextCount[ft]++
				if nextCount[ft] == 1 {
					next = append(next, level{typ: ft, index: index})
				}
			}
		}
	}
	slices.SortStableFunc(fields, func(a, b jsonField) int {
		if c := strings.Compare(a.name, b.name); c != 0 {
			return c
		}
		if c := len(a.index) - len(b.index); c != 0 {
			return c
		}
		if a.tagged != b.tagged {
			if a.tagged {
				return -1
			}
			return 1
		}
		return slices.Compare(a.index, b.index)
	})
	out := fields[:0:0]
	for i := 0; i < len(fields); {
		j := i + 1
		for j < len(fields) && fields[j].name == fields[i].name {
			j++
		}
		group := fields[i:j]
		// The first field dominates unless the next is as shallow and as
		// tagged: then the name is ambiguous and neither is encoded.
		if len(group) == 1 || len(group[0].index) != len(group[1].index) || group[0].tagged != group[1].tagged {
			out = append(out, group[0])
		}
		i = j
	}
	slices.SortFunc(out, func(a, b jsonField) int { return slices.Compare(a.index, b.index) })
	return out
}

func hasOpt(opts, want string) bool {
	for opts != "" {
		var o string
		o, opts, _ = strings.Cut(opts, ",")
		if o == want {
			return true
		}
	}
	return false
}

// validJSONTag is encoding/json's isValidTag.
func validJSONTag(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		switch {
		case strings.ContainsRune("!#$%&()*+-./:;<=>?@[]^_{|}~ ", c):
			// Backslash and quote chars are reserved, but otherwise any
			// punctuation chars are allowed in a tag name.
		case !unicode.IsLetter(c) && !unicode.IsDigit(c):
			return false
		}
	}
	return true
}
