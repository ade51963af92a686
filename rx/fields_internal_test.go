package rx

import (
	"encoding/json"
	"reflect"
	"slices"
	"testing"
)

// Struct shapes for the field walk (issue 17, item 3).
type (
	fwInner struct {
		A int
		B string `json:"b"`
		C bool
	}
	fwShadow struct {
		fwInner
		A string // shadows fwInner.A: shallower wins
	}
	fwOther struct {
		A int
		D int
	}
	fwConflict struct { // A at the same depth twice, untagged: dropped
		fwInner
		fwOther
	}
	fwTaggedOther struct {
		A int `json:"A"`
		D int
	}
	fwTaggedWins struct { // A twice at one depth, one tagged: the tagged wins
		fwInner
		fwTaggedOther
	}
	fwPtrEmbed struct {
		*fwInner
		E int
	}
	fwunexported struct {
		X int `json:"x"`
		//lint:ignore U1000 an unexported field encoding/json skips
		y int
	}
	fwUnexportedEmbed struct {
		fwunexported // unexported type, exported fields promoted
		Z            int
	}
	fwNamedEmbed struct {
		fwInner `json:"inner"` // a tag name: a field, not flattened
		A       float64
	}
	fwSkip struct {
		A int `json:"-"`
		//lint:ignore SA5008 encoding/json names this field "-"
		B int `json:"-,"`
		C int `json:",omitempty"`
		D int `json:"d,string"`
		//lint:ignore SA5008 an invalid name: encoding/json uses the Go name
		E int `json:"bad\"name"`
		//lint:ignore U1000 an unexported field encoding/json skips
		f int
	}
	fwDeep struct {
		fwShadow
		fwOther // fwOther.A (depth 1) vs fwShadow.A (depth 1): both untagged, dropped
	}
	fwTwice struct { // fwInner embedded twice at one depth through two paths
		fwA
		fwB
	}
	fwA         struct{ fwInner }
	fwB         struct{ fwInner }
	fwRecursive struct {
		*fwRecursive
		R int
	}
)

func TestJSONFieldsFollowEncodingJSON(t *testing.T) {
	one := fwInner{A: 1, B: "b", C: true}
	for _, v := range []any{
		fwInner{}, fwShadow{}, fwConflict{}, fwTaggedWins{}, fwPtrEmbed{fwInner: &one},
		fwUnexportedEmbed{}, fwNamedEmbed{}, fwSkip{C: 1}, fwDeep{}, fwTwice{}, fwRecursive{fwRecursive: &fwRecursive{}},
	} {
		t.Run(reflect.TypeOf(v).Name(), func(t *testing.T) {
			b, err := json.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			var want []string
			for k := range m {
				want = append(want, k)
			}
			slices.Sort(want)
			var got []string
			rv := reflect.New(reflect.TypeOf(v)).Elem()
			rv.Set(reflect.ValueOf(v))
			for _, f := range jsonFields(rv.Type()) {
				got = append(got, f.name)
				// The field is the one encoding/json encodes under that name.
				fv, err := rv.FieldByIndexErr(f.index)
				if err != nil {
					t.Fatalf("%s: %v", f.name, err)
				}
				encode, err := encoderFor(f.sf.Type, f.quoted)
				if err != nil {
					t.Fatal(err)
				}
				enc, err := encode(fv)
				if err != nil {
					t.Fatal(err)
				}
				if string(enc) != string(m[f.name]) {
					t.Errorf("field %s: the walk chose %s (%s), encoding/json wrote %s", f.name, f.sf.Name, enc, m[f.name])
				}
			}
			slices.Sort(got)
			if !slices.Equal(got, want) {
				t.Errorf("walk names %v, encoding/json wrote %v", got, want)
			}
		})
	}
	// Options are read as encoding/json reads them.
	fs := jsonFields(reflect.TypeFor[fwSkip]())
	byName := map[string]jsonField{}
	for _, f := range fs {
		byName[f.name] = f
	}
	if !byName["C"].omitEmpty || !byName["d"].quoted || byName["E"].sf.Name != "E" || byName["-"].sf.Name != "B" {
		t.Errorf("options: %+v", fs)
	}
}
