package rx_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/cache"
	"github.com/rxgorm/rxgorm/rx"
)

// Fuzz targets of the engine's decoders and delta logic; their seed
// corpora are in testdata/fuzz. .ci/fuzz runs each for FUZZTIME.

// RelArgs is what RelArgChannel.Take received, for comparison with an
// independent decoding.
type RelArgs struct {
	A int8               `json:"a"`
	B *uint16            `json:"b"`
	C []string           `json:"c"`
	D map[string]float64 `json:"d"`
	E RelArgStruct       `json:"e"`
	F any                `json:"f"`
	G json.RawMessage    `json:"g"`
	H time.Time          `json:"h"`
	I [2]bool            `json:"i"`
	J map[int]uint8      `json:"j"`
}

// RelArgStruct is a structured argument with nesting.
type RelArgStruct struct {
	Name  string         `json:"name"`
	Inner *RelArgStruct  `json:"inner"`
	Tags  map[string]int `json:"tags"`
}

// RelArgChannel's Take action takes arguments of many kinds.
type RelArgChannel struct{ rx.Channel[Chat, ChatParams] }

func (RelArgChannel) Authorize(context.Context, rx.User, ChatParams) error { return nil }

func (*RelArgChannel) Actions() []string { return []string{"Take", "None"} }

func (*RelArgChannel) Take(ctx context.Context, a int8, b *uint16, c []string, d map[string]float64, e RelArgStruct, f any, g json.RawMessage, h time.Time, i [2]bool, j map[int]uint8) (*RelArgs, error) {
	return &RelArgs{a, b, c, d, e, f, g, h, i, j}, nil
}

func (*RelArgChannel) None(ctx context.Context) error { return nil }

// relArgTypes are Take's argument types, in order.
var relArgTypes = func() []reflect.Type {
	m, _ := reflect.TypeFor[*RelArgChannel]().MethodByName("Take")
	var ts []reflect.Type
	for i := 2; i < m.Type.NumIn(); i++ {
		ts = append(ts, m.Type.In(i))
	}
	return ts
}()

// FuzzCallArgs: the action argument decoder never panics, refuses exactly
// the arguments encoding/json cannot decode into the parameter types (with
// bad_request naming the first bad one, or the arity), and hands the action
// exactly what encoding/json decodes.
func FuzzCallArgs(f *testing.F) {
	for _, s := range []string{
		`[1,2,["a"],{"x":1.5},{"name":"n","inner":{"name":"m"},"tags":{"t":1}},null,{"raw":[1]},"2026-01-02T03:04:05Z",[true,false],{"1":2}]`,
		`[-128,null,null,null,{},"any",null,"0001-01-01T00:00:00Z",[false,false],null]`,
		`[128,1,[],{},{},1,2,"2026-01-02T03:04:05Z",[true,true],{}]`,
		`[1,-1,[],{},{},1,2,"2026-01-02T03:04:05Z",[true,true],{}]`,
		`[1,1,[],{},{},1,2,"not a time",[true,true],{}]`,
		`[1,1,[1],{},{},1,2,"2026-01-02T03:04:05Z",[true],{"x":1}]`,
		`[1e400,1,[],{},{},1,2,"2026-01-02T03:04:05Z",[true,true],{}]`,
		`[1]`, `[]`, `null`, `[1,1,[],{},{"inner":` + strings.Repeat(`{"inner":`, 200) + `null` + strings.Repeat(`}`, 201) + `,1,2,"2026-01-02T03:04:05Z",[true,true],{}]`,
	} {
		f.Add([]byte(s))
	}
	db := openSQLite(f)
	migrate(f, db)
	db.Create(&Chat{Title: "x"})
	h, err := rx.New(db, rx.Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { h.Close() })
	if err := h.Register(&RelArgChannel{}); err != nil {
		f.Fatal(err)
	}
	ctx := context.Background()
	sub, err := h.Subscribe(ctx, "RelArgChannel", ChatParams{ChatID: 1}, rx.User{ID: "1"}, rx.SubscribeOptions{Deliver: func(*rx.Event) bool { return true }})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var args []json.RawMessage
		if json.Unmarshal(data, &args) != nil {
			return // not an args list: the frame decoder refuses it
		}
		// What encoding/json makes of each argument, independently.
		want := make([]reflect.Value, len(relArgTypes))
		firstBad := 0
		for i, typ := range relArgTypes {
			if i >= len(args) {
				break
			}
			pv := reflect.New(typ)
			// encoding/json's rules, plus the protocol's: 64-bit integers
			// may come as strings (ids), and null only where Go has a nil.
			null := string(bytes.TrimSpace(args[i])) == "null"
			nilable := typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Slice || typ.Kind() == reflect.Map || typ.Kind() == reflect.Interface
			if (rx.Unmarshal(args[i], pv.Interface()) != nil || null && !nilable) && firstBad == 0 {
				firstBad = i + 1
			}
			want[i] = pv.Elem()
		}
		got, err := sub.Call(ctx, "take", args)
		var e *rx.Error
		switch {
		case len(args) != len(relArgTypes):
			if !errors.As(err, &e) || e.Code != rx.CodeBadRequest || !strings.Contains(e.Message, "takes 10 argument") {
				t.Fatalf("%d arguments: %v", len(args), err)
			}
		case firstBad > 0:
			if !errors.As(err, &e) || e.Code != rx.CodeBadRequest || !strings.Contains(e.Message, fmt.Sprintf("argument %d: ", firstBad)) {
				t.Fatalf("argument %d does not decode, got %v", firstBad, err)
			}
		case err != nil:
			t.Fatalf("valid arguments refused: %v", err)
		default:
			r := got.(*RelArgs)
			gotV := reflect.ValueOf(*r)
			for i := range want {
				a, _ := json.Marshal(gotV.Field(i).Interface())
				b, _ := json.Marshal(want[i].Interface())
				if !bytes.Equal(a, b) {
					t.Fatalf("argument %d: the action got %s, encoding/json decodes %s", i+1, a, b)
				}
			}
		}
		if _, err := sub.Call(ctx, "none", args[:0]); err != nil {
			t.Fatalf("no-argument action: %v", err)
		}
	})
}

// relModel is the fuzz oracle of one stream: flat instances by key.
type relModel map[cache.Key]map[string]json.RawMessage

func (m relModel) instances() []*cache.Instance {
	out := make([]*cache.Instance, 0, len(m))
	for k, f := range m {
		out = append(out, &cache.Instance{Type: k.Type, ID: k.ID, Owner: k.Owner, Fields: maps.Clone(f)})
	}
	return out
}

// same reports whether the store's snapshot holds exactly the model.
func (m relModel) same(snap []*cache.Instance) error {
	if len(snap) != len(m) {
		return fmt.Errorf("%d instances, model has %d", len(snap), len(m))
	}
	for _, in := range snap {
		f, ok := m[in.Key()]
		if !ok {
			return fmt.Errorf("%v not in the model", in.Key())
		}
		if len(f) != len(in.Fields) {
			return fmt.Errorf("%v: fields %v, model %v", in.Key(), in.Fields, f)
		}
		for k, v := range f {
			if !bytes.Equal(in.Fields[k], v) {
				return fmt.Errorf("%v.%s = %s, model %s", in.Key(), k, in.Fields[k], v)
			}
		}
	}
	return nil
}

// FuzzDeltaApply drives the memory store and client-side State with a random
// sequence of writes to one stream of ChatChannel (messages and a per-user
// draft overlay created, edited and deleted; writes that change nothing;
// cold reloads; tombstone pruning; stale deltas replayed; a client that
// disconnects and resumes with Since) and checks them against a map model:
// after every write the store holds exactly the model, and at the end a
// client fed live deltas, a resumed client and a fresh snapshot build the
// same state and hold the same instances as the model.
func FuzzDeltaApply(f *testing.F) {
	for _, s := range []string{
		"\x00\x01\x00\x02\x01\x01\x02\x01",
		"\x00\x00\x00\x01\x05\x00\x02\x01\x00\x03\x03\x05\x00\x06\x00",
		"\x08\x01\x08\x02\x09\x01\x00\x04\x04\x04\x07\x00",
		"\x00\x01\x00\x02\x00\x03\x00\x04\x00\x05\x02\x01\x02\x02\x02\x03\x02\x04\x02\x05\x05\x00",
		"\x05\x00\x00\x01\x02\x01\x00\x01\x02\x01\x00\x01\x02\x01\x06\x00\x05\x00",
	} {
		f.Add([]byte(s))
	}
	db := openSQLite(f)
	migrate(f, db)
	h, err := rx.New(db, rx.Config{})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { h.Close() })
	if err := h.Register(&ChatChannel{}); err != nil {
		f.Fatal(err)
	}
	const owner = "7"
	user := rx.User{ID: owner}
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) > 400 {
			ops = ops[:400]
		}
		ctx := context.Background()
		store := cache.NewMemory(cache.MemoryOptions{MaxTombstones: 4})
		key := cache.Stream{Channel: "ChatChannel", Anchor: "1"}
		model := relModel{{Type: "Chat", ID: "1"}: {"id": json.RawMessage(`1`), "title": json.RawMessage(`"t"`), "members": json.RawMessage(`[]`), "messages": json.RawMessage(`[]`), "drafts": json.RawMessage(`[]`)}}
		v0, err := store.Fill(ctx, key, model.instances())
		if err != nil {
			t.Fatal(err)
		}
		newState := func() *rx.State {
			st, err := h.NewState("ChatChannel", user)
			if err != nil {
				t.Fatal(err)
			}
			return st
		}
		live, resumed := newState(), newState()
		snap := &rx.Event{Anchor: "1", Version: v0, Instances: model.instances(), Snapshot: true, Initial: true}
		live.Apply(snap)
		resumed.Apply(snap)
		away := false
		var past []*rx.Event
		messages := map[string]bool{}
		drafts := map[string]bool{}
		ids := func(set map[string]bool) json.RawMessage {
			var ns []int
			for id := range set {
				var n int
				fmt.Sscan(id, &n)
				ns = append(ns, n)
			}
			slices.Sort(ns)
			b, _ := json.Marshal(append([]int{}, ns...))
			return b
		}
		deliver := func(ev *rx.Event) {
			past = append(past, ev)
			live.Apply(ev)
			if !away {
				resumed.Apply(ev)
			}
		}
		for i := 0; i+1 < len(ops); i += 2 {
			op, arg := ops[i]%10, ops[i+1]
			id := fmt.Sprint(arg%6 + 1)
			var changes []*cache.Instance
			set := func(k cache.Key, fields map[string]json.RawMessage) {
				if model[k] == nil {
					model[k] = map[string]json.RawMessage{}
				}
				maps.Copy(model[k], fields)
				changes = append(changes, &cache.Instance{Type: k.Type, ID: k.ID, Owner: k.Owner, Fields: fields})
			}
			del := func(k cache.Key) {
				delete(model, k)
				changes = append(changes, &cache.Instance{Type: k.Type, ID: k.ID, Owner: k.Owner, Deleted: true})
			}
			chat := cache.Key{Type: "Chat", ID: "1"}
			overlay := cache.Key{Type: "Chat", ID: "1", Owner: owner}
			text := json.RawMessage(fmt.Sprintf(`"m%d"`, arg))
			switch op {
			case 0: // a message is created (or rewritten in full)
				messages[id] = true
				set(cache.Key{Type: "Message", ID: id}, map[string]json.RawMessage{"id": json.RawMessage(id), "chatId": json.RawMessage(`1`), "senderId": json.RawMessage(`0`), "sender": json.RawMessage(`null`), "text": text, "readers": json.RawMessage(`[]`)})
				set(chat, map[string]json.RawMessage{"messages": ids(messages)})
			case 1: // a message is edited
				if messages[id] {
					set(cache.Key{Type: "Message", ID: id}, map[string]json.RawMessage{"text": text})
				}
			case 2: // a message is deleted
				if messages[id] {
					delete(messages, id)
					del(cache.Key{Type: "Message", ID: id})
					set(chat, map[string]json.RawMessage{"messages": ids(messages)})
				}
			case 3: // the chat is renamed
				set(chat, map[string]json.RawMessage{"title": text})
			case 4: // a stale delta arrives again: ignored (snapshots only
				// come in order, first on a subscription or after a reload)
				if len(past) > 0 {
					ev := past[int(arg)%len(past)]
					if ev.Snapshot {
						continue
					}
					live.Apply(ev)
					if !away {
						resumed.Apply(ev)
					}
				}
				continue
			case 5: // the second client drops off, or resumes with Since
				if !away {
					away = true
					continue
				}
				away = false
				vs := resumed.Versions()
				changes, cur, ok, err := store.Since(ctx, key, vs["1"])
				if err != nil {
					t.Fatal(err)
				}
				if ok {
					resumed.Apply(&rx.Event{Anchor: "1", Version: cur, Instances: changes, Initial: true})
				} else {
					s, err := store.Snapshot(ctx, key)
					if err != nil {
						t.Fatal(err)
					}
					resumed.Apply(&rx.Event{Anchor: "1", Version: s.Version, Instances: s.Instances, Snapshot: true, Initial: true})
				}
				continue
			case 6: // the stream goes cold and is reloaded: a fresh snapshot
				if err := store.Expire(ctx, key); err != nil {
					t.Fatal(err)
				}
				v, err := store.Fill(ctx, key, model.instances())
				if err != nil {
					t.Fatal(err)
				}
				s, _ := store.Snapshot(ctx, key)
				deliver(&rx.Event{Anchor: "1", Version: v, Instances: s.Instances, Snapshot: true, Initial: true})
				continue
			case 7: // a write that changes nothing
				if messages[id] {
					changes = append(changes, &cache.Instance{Type: "Message", ID: id, Fields: map[string]json.RawMessage{"text": model[cache.Key{Type: "Message", ID: id}]["text"]}})
				}
			case 8: // the user's draft is created or edited, listed in their overlay
				drafts[id] = true
				set(cache.Key{Type: "Draft", ID: id, Owner: owner}, map[string]json.RawMessage{"id": json.RawMessage(id), "chatId": json.RawMessage(`1`), "userId": json.RawMessage(owner), "text": text})
				set(overlay, map[string]json.RawMessage{"drafts": ids(drafts)})
			case 9: // a draft is deleted; the overlay goes with the last one
				if drafts[id] {
					delete(drafts, id)
					del(cache.Key{Type: "Draft", ID: id, Owner: owner})
					if len(drafts) == 0 {
						del(overlay)
					} else {
						set(overlay, map[string]json.RawMessage{"drafts": ids(drafts)})
					}
				}
			}
			if len(changes) == 0 {
				continue
			}
			before, _ := store.Snapshot(ctx, key)
			ds, err := store.Apply(ctx, []cache.Write{{Stream: key, Changes: changes}})
			if err != nil {
				t.Fatal(err)
			}
			d := ds[0]
			if len(d.Instances) == 0 {
				if d.Version != before.Version {
					t.Fatalf("a write that changed nothing moved the version from %d to %d", before.Version, d.Version)
				}
			} else {
				if d.Version != before.Version+1 {
					t.Fatalf("version %d after %d", d.Version, before.Version)
				}
				deliver(&rx.Event{Anchor: "1", Version: d.Version, Instances: d.Instances})
			}
			s, _ := store.Snapshot(ctx, key)
			if err := model.same(s.Instances); err != nil {
				t.Fatalf("after op %d (%d): store differs from the model: %v", i/2, op, err)
			}
		}
		if away {
			vs := resumed.Versions()
			changes, cur, ok, _ := store.Since(ctx, key, vs["1"])
			if ok {
				resumed.Apply(&rx.Event{Anchor: "1", Version: cur, Instances: changes, Initial: true})
			} else {
				s, _ := store.Snapshot(ctx, key)
				resumed.Apply(&rx.Event{Anchor: "1", Version: s.Version, Instances: s.Instances, Snapshot: true, Initial: true})
			}
		}
		s, _ := store.Snapshot(ctx, key)
		fresh := newState()
		fresh.Apply(&rx.Event{Anchor: "1", Version: s.Version, Instances: s.Instances, Snapshot: true, Initial: true})
		var modelKeys []cache.Key
		for k := range model {
			modelKeys = append(modelKeys, k)
		}
		want, _ := fresh.JSON()
		for name, st := range map[string]*rx.State{"live": live, "resumed": resumed} {
			if got, _ := st.JSON(); !bytes.Equal(got, want) {
				t.Fatalf("%s client:\n got %s\nwant %s", name, got, want)
			}
			if keys := st.Keys()["1"]; !sameKeys(keys, modelKeys) {
				t.Fatalf("%s client holds %v, the model %v", name, keys, modelKeys)
			}
			if v := st.Versions()["1"]; v != s.Version {
				t.Fatalf("%s client at version %d, the stream at %d", name, v, s.Version)
			}
		}
	})
}

func sameKeys(a, b []cache.Key) bool {
	less := func(x, y cache.Key) int {
		return strings.Compare(x.Type+"/"+x.ID+"@"+x.Owner, y.Type+"/"+y.ID+"@"+y.Owner)
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.SortFunc(a, less)
	slices.SortFunc(b, less)
	return slices.Equal(a, b)
}
