package rx

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
)

// Ids travel as JSON strings (see layer fields), so clients send them back
// as strings: in subscription params, action arguments and client writes, a
// 64-bit integer (int, int64, uint, uint64) may be a JSON number or a JSON
// string holding a decimal integer.

// unmarshalInput decodes client input into v (a pointer), accepting
// strings for 64-bit integers anywhere in it.
func unmarshalInput(raw []byte, v any) error {
	return json.Unmarshal(relaxInts(reflect.TypeOf(v).Elem(), raw), v)
}

// Unmarshal is json.Unmarshal for JSON that rx writes (Hub.Snapshot,
// State.JSON, instance fields): a 64-bit integer in v may be a JSON
// string holding a decimal integer, as ids are sent, or a number.
func Unmarshal(data []byte, v any) error {
	t := reflect.TypeOf(v)
	if t == nil || t.Kind() != reflect.Pointer {
		return json.Unmarshal(data, v)
	}
	return unmarshalInput(data, v)
}

// relaxInts rewrites raw so that strings holding decimal integers become
// numbers where t has a 64-bit integer without the ",string" option. Input
// without strings, or that does not parse, is returned unchanged
// (encoding/json then reports the problem).
func relaxInts(t reflect.Type, raw []byte) []byte {
	if bytes.IndexByte(raw, '"') < 0 || !hasWide(t, map[reflect.Type]bool{}) {
		return raw
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var v any
	if err := d.Decode(&v); err != nil {
		return raw
	}
	v, changed := relaxValue(t, v)
	if !changed {
		return raw
	}
	out, err := json.Marshal(v)
	if err != nil {
		return raw
	}
	return out
}

// hasWide reports whether a value of t can hold a 64-bit integer.
func hasWide(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] {
		return false
	}
	seen[t] = true
	if wide64(t) {
		return true
	}
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
		if t.Kind() == reflect.Map && wide64(t.Key()) {
			return true
		}
		return hasWide(t.Elem(), seen)
	case reflect.Struct:
		for _, f := range jsonFields(t) {
			if hasWide(f.sf.Type, seen) {
				return true
			}
		}
	}
	return false
}

func relaxValue(t reflect.Type, v any) (any, bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if wide64(t) {
		if s, ok := v.(string); ok && isDecimal(s) {
			return json.Number(s), true
		}
		return v, false
	}
	changed := false
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		xs, ok := v.([]any)
		if !ok {
			return v, false
		}
		for i, x := range xs {
			var c bool
			if xs[i], c = relaxValue(t.Elem(), x); c {
				changed = true
			}
		}
	case reflect.Map:
		m, ok := v.(map[string]any)
		if !ok {
			return v, false
		}
		for k, x := range m {
			var c bool
			if m[k], c = relaxValue(t.Elem(), x); c {
				changed = true
			}
		}
	case reflect.Struct:
		m, ok := v.(map[string]any)
		if !ok {
			return v, false
		}
		fs := jsonFields(t)
		for k, x := range m {
			f := fieldFor(fs, k)
			if f == nil || f.quoted {
				continue
			}
			var c bool
			if m[k], c = relaxValue(f.sf.Type, x); c {
				changed = true
			}
		}
	}
	return v, changed
}

// fieldFor finds the field a JSON key decodes into, as encoding/json does:
// the exact name, else a case-insensitive match.
func fieldFor(fs []jsonField, key string) *jsonField {
	for i := range fs {
		if fs[i].name == key {
			return &fs[i]
		}
	}
	for i := range fs {
		if strings.EqualFold(fs[i].name, key) {
			return &fs[i]
		}
	}
	return nil
}

// isDecimal reports whether s is an integer in decimal, as ids are written.
func isDecimal(s string) bool {
	s = strings.TrimPrefix(s, "-")
	if s == "" || len(s) > 20 {
		return false
	}
	_, err := strconv.ParseUint(s, 10, 64)
	return err == nil
}

// Marshal is json.Marshal with the wire's rule for ids outside layers
// (action results, runtime state): a struct field of a 64-bit integer type
// whose Go name is ID or ends in ID is written as a JSON string, as layer
// ids are, so a client compares ids of every origin as strings. Types with
// their own MarshalJSON are written as they choose.
func Marshal(v any) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil || v == nil {
		return b, err
	}
	t := reflect.TypeOf(v)
	if !hasIDField(t, map[reflect.Type]bool{}) {
		return b, nil
	}
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber()
	var x any
	if d.Decode(&x) != nil {
		return b, nil
	}
	x, changed := quoteIDs(t, x)
	if !changed {
		return b, nil
	}
	return json.Marshal(x)
}

// idField reports whether a struct field is an id outside layers: a 64-bit
// integer named ID or …ID, not already quoted.
func idField(f jsonField) bool { return !f.quoted && wide64(f.sf.Type) && idName(f.sf.Name) }

func ownJSON(t reflect.Type) bool {
	return t.Implements(jsonMarshalerType) || reflect.PointerTo(t).Implements(jsonMarshalerType) ||
		t.Implements(textMarshalerType) || reflect.PointerTo(t).Implements(textMarshalerType)
}

func hasIDField(t reflect.Type, seen map[reflect.Type]bool) bool {
	if seen[t] || ownJSON(t) {
		return false
	}
	seen[t] = true
	switch t.Kind() {
	case reflect.Pointer, reflect.Slice, reflect.Array, reflect.Map:
		return hasIDField(t.Elem(), seen)
	case reflect.Struct:
		for _, f := range jsonFields(t) {
			if idField(f) || hasIDField(f.sf.Type, seen) {
				return true
			}
		}
	}
	return false
}

func quoteIDs(t reflect.Type, v any) (any, bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if ownJSON(t) {
		return v, false
	}
	changed := false
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		xs, _ := v.([]any)
		for i, x := range xs {
			var c bool
			if xs[i], c = quoteIDs(t.Elem(), x); c {
				changed = true
			}
		}
	case reflect.Map:
		m, _ := v.(map[string]any)
		for k, x := range m {
			var c bool
			if m[k], c = quoteIDs(t.Elem(), x); c {
				changed = true
			}
		}
	case reflect.Struct:
		m, _ := v.(map[string]any)
		fs := jsonFields(t)
		for k, x := range m {
			f := fieldFor(fs, k)
			if f == nil {
				continue
			}
			if idField(*f) {
				if n, ok := x.(json.Number); ok {
					m[k], changed = string(n), true
				}
				continue
			}
			var c bool
			if m[k], c = quoteIDs(f.sf.Type, x); c {
				changed = true
			}
		}
	}
	return v, changed
}
