// Package storetest is a conformance suite for implementations of
// cache.Store. An implementation's tests call Run with a constructor for a
// fresh, empty store; every subtest gets its own store.
package storetest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/rxgorm/rxgorm/cache"
)

// Run runs the conformance suite against the stores returned by newStore,
// which is called once per subtest and must return an empty store (no hot
// streams). It checks the contract documented on cache.Store: versions,
// deltas, tombstones, resume with Since, expiry, isolation from the
// caller's maps and consistency of reads that run concurrently with writes.
// It expects the store to keep at least 10 tombstones per stream (no
// subtest deletes more before resuming with Since) and each write to a hot
// stream that changes something to take exactly the next version (previous
// version + 1).
func Run(t *testing.T, newStore func(t *testing.T) cache.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, st cache.Store)
	}{
		{"Fill", testFill},
		{"Refill", testRefill},
		{"ColdStream", testColdStream},
		{"ApplyCreate", testApplyCreate},
		{"ApplyUpdate", testApplyUpdate},
		{"ApplyNoop", testApplyNoop},
		{"ApplyDelete", testApplyDelete},
		{"ApplySharedVersion", testApplySharedVersion},
		{"ApplyCold", testApplyCold},
		{"ApplyManyStreams", testApplyManyStreams},
		{"Owner", testOwner},
		{"Since", testSince},
		{"SinceBounds", testSinceBounds},
		{"Expire", testExpire},
		{"RefillAfterBurst", testRefillAfterBurst},
		{"NoAliasing", testNoAliasing},
		{"ConcurrentReads", testConcurrentReads},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.fn(t, newStore(t))
		})
	}
}

var (
	streamA = cache.Stream{Channel: "storetest", Anchor: "a"}
	streamB = cache.Stream{Channel: "storetest", Anchor: "b"}
	streamC = cache.Stream{Channel: "storetest-other", Anchor: "a"}
)

// fields builds a field map from name, JSON-literal pairs.
func fields(kv ...string) map[string]json.RawMessage {
	if len(kv)%2 != 0 {
		panic("storetest: odd number of arguments to fields")
	}
	m := make(map[string]json.RawMessage, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = json.RawMessage(kv[i+1])
	}
	return m
}

// row returns a live, shared instance with the given fields.
func row(typ, id string, kv ...string) *cache.Instance {
	return &cache.Instance{Type: typ, ID: id, Fields: fields(kv...)}
}

// owned returns a live instance owned by owner.
func owned(typ, id, owner string, kv ...string) *cache.Instance {
	in := row(typ, id, kv...)
	in.Owner = owner
	return in
}

// gone returns a delete change (or expected tombstone) for a shared row.
func gone(typ, id string) *cache.Instance {
	return &cache.Instance{Type: typ, ID: id, Deleted: true}
}

// at returns a copy of in with Version set, for expectations.
func at(in *cache.Instance, v uint64) *cache.Instance {
	c := *in
	c.Version = v
	return &c
}

func fill(t *testing.T, st cache.Store, s cache.Stream, ins ...*cache.Instance) uint64 {
	t.Helper()
	v, err := st.Fill(t.Context(), s, ins)
	if err != nil {
		t.Fatalf("Fill(%s): %v", s, err)
	}
	if v == 0 {
		t.Fatalf("Fill(%s) returned version 0", s)
	}
	return v
}

func apply(t *testing.T, st cache.Store, writes ...cache.Write) []cache.Delta {
	t.Helper()
	ds, err := st.Apply(t.Context(), writes)
	if err != nil {
		t.Fatalf("Apply: %v", err)
	}
	if len(ds) != len(writes) {
		t.Fatalf("Apply returned %d deltas for %d writes", len(ds), len(writes))
	}
	for i, d := range ds {
		if d.Stream != writes[i].Stream {
			t.Fatalf("Apply: delta %d is for stream %s, want %s", i, d.Stream, writes[i].Stream)
		}
	}
	return ds
}

// apply1 applies one write to s and returns its delta.
func apply1(t *testing.T, st cache.Store, s cache.Stream, changes ...*cache.Instance) cache.Delta {
	t.Helper()
	return apply(t, st, cache.Write{Stream: s, Changes: changes})[0]
}

// applyHot applies one write to the hot stream s and checks that it was
// not reported cold and that its version is prev+1.
func applyHot(t *testing.T, st cache.Store, s cache.Stream, prev uint64, changes ...*cache.Instance) cache.Delta {
	t.Helper()
	d := apply1(t, st, s, changes...)
	if d.Cold {
		t.Fatalf("Apply to hot stream %s reported Cold", s)
	}
	if d.Version != prev+1 {
		t.Fatalf("Apply to %s: delta version %d, want previous version %d + 1", s, d.Version, prev)
	}
	return d
}

// applyNoop applies one write to the hot stream s that must change nothing.
func applyNoop(t *testing.T, st cache.Store, s cache.Stream, cur uint64, changes ...*cache.Instance) {
	t.Helper()
	d := apply1(t, st, s, changes...)
	if d.Cold {
		t.Fatalf("Apply to hot stream %s reported Cold", s)
	}
	if len(d.Instances) != 0 {
		t.Errorf("write that changes nothing returned delta instances %s", describe(d.Instances))
	}
	if d.Version != cur {
		t.Errorf("write that changes nothing: delta version %d, want unchanged %d", d.Version, cur)
	}
	if snap := snapshot(t, st, s); snap.Version != cur {
		t.Errorf("write that changes nothing: snapshot version %d, want unchanged %d", snap.Version, cur)
	}
}

func snapshot(t *testing.T, st cache.Store, s cache.Stream) cache.Snapshot {
	t.Helper()
	snap, err := st.Snapshot(t.Context(), s)
	if err != nil {
		t.Fatalf("Snapshot(%s): %v", s, err)
	}
	for _, in := range snap.Instances {
		if in.Deleted {
			t.Errorf("Snapshot(%s) contains tombstone %v", s, in.Key())
		}
		if in.Version > snap.Version {
			t.Errorf("Snapshot(%s) at version %d contains %v at later version %d", s, snap.Version, in.Key(), in.Version)
		}
	}
	return snap
}

// since calls Since and checks that it answers.
func since(t *testing.T, st cache.Store, s cache.Stream, v uint64) ([]*cache.Instance, uint64) {
	t.Helper()
	changes, cur, ok, err := st.Since(t.Context(), s, v)
	if err != nil {
		t.Fatalf("Since(%s, %d): %v", s, v, err)
	}
	if !ok {
		t.Fatalf("Since(%s, %d): ok = false, want an answer", s, v)
	}
	for _, in := range changes {
		if in.Version <= v {
			t.Errorf("Since(%s, %d) returned %v at version %d, not after it", s, v, in.Key(), in.Version)
		}
		if in.Version > cur {
			t.Errorf("Since(%s, %d) returned %v at version %d, after current %d", s, v, in.Key(), in.Version, cur)
		}
	}
	return changes, cur
}

// sinceRefused checks that Since cannot answer for version v.
func sinceRefused(t *testing.T, st cache.Store, s cache.Stream, v uint64, why string) {
	t.Helper()
	changes, _, ok, err := st.Since(t.Context(), s, v)
	if err != nil {
		t.Fatalf("Since(%s, %d) (%s): %v", s, v, why, err)
	}
	if ok {
		t.Errorf("Since(%s, %d) (%s): ok = true with %s, want false", s, v, why, describe(changes))
	}
}

func checkCold(t *testing.T, st cache.Store, s cache.Stream) {
	t.Helper()
	snap, err := st.Snapshot(t.Context(), s)
	if !errors.Is(err, cache.ErrCold) {
		t.Errorf("Snapshot(%s) of a cold stream: error %v (snapshot %+v), want one wrapping ErrCold", s, err, snap)
	}
	sinceRefused(t, st, s, 1, "cold stream")
}

func describe(ins []*cache.Instance) string {
	parts := make([]string, 0, len(ins))
	for _, in := range ins {
		parts = append(parts, describe1(in))
	}
	slices.Sort(parts)
	return "[" + strings.Join(parts, ", ") + "]"
}

func describe1(in *cache.Instance) string {
	if in == nil {
		return "<nil>"
	}
	s := fmt.Sprintf("%s/%s/%s", in.Type, in.ID, in.Owner)
	if in.Version != 0 {
		s += fmt.Sprintf(" v%d", in.Version)
	}
	if in.Deleted {
		return s + fmt.Sprintf(" deleted (fields=%v)", in.Fields)
	}
	names := slices.Sorted(maps.Keys(in.Fields))
	s += " {"
	for i, f := range names {
		if i > 0 {
			s += " "
		}
		s += f + ":" + string(in.Fields[f])
	}
	return s + "}"
}

// sameJSON reports whether a and b are the same JSON text up to
// insignificant white space.
func sameJSON(a, b json.RawMessage) bool {
	if bytes.Equal(a, b) {
		return true
	}
	var ca, cb bytes.Buffer
	if json.Compact(&ca, a) != nil || json.Compact(&cb, b) != nil {
		return false
	}
	return bytes.Equal(ca.Bytes(), cb.Bytes())
}

func sameFields(a, b map[string]json.RawMessage) bool {
	if len(a) != len(b) {
		return false
	}
	for f, v := range a {
		w, ok := b[f]
		if !ok || !sameJSON(v, w) {
			return false
		}
	}
	return true
}

// expect checks that got holds exactly the instances of want, in any
// order: same keys, same Deleted, same fields (exactly; tombstones must have
// nil Fields) and, where the wanted Version is not zero, the same Version.
func expect(t *testing.T, what string, got []*cache.Instance, want ...*cache.Instance) {
	t.Helper()
	bad := false
	seen := make(map[cache.Key]*cache.Instance, len(got))
	for _, in := range got {
		if in == nil {
			t.Errorf("%s: nil instance", what)
			bad = true
			continue
		}
		if _, dup := seen[in.Key()]; dup {
			t.Errorf("%s: key %v appears twice", what, in.Key())
			bad = true
		}
		seen[in.Key()] = in
	}
	wantKeys := make(map[cache.Key]bool, len(want))
	for _, w := range want {
		wantKeys[w.Key()] = true
		g, ok := seen[w.Key()]
		switch {
		case !ok:
			t.Errorf("%s: missing %s", what, describe1(w))
			bad = true
		case g.Deleted != w.Deleted:
			t.Errorf("%s: got %s, want %s", what, describe1(g), describe1(w))
			bad = true
		case g.Deleted && g.Fields != nil:
			t.Errorf("%s: tombstone %v has fields %v, want nil", what, g.Key(), g.Fields)
			bad = true
		case !g.Deleted && !sameFields(g.Fields, w.Fields):
			t.Errorf("%s: got %s, want fields of %s", what, describe1(g), describe1(w))
			bad = true
		case w.Version != 0 && g.Version != w.Version:
			t.Errorf("%s: %v has version %d, want %d", what, g.Key(), g.Version, w.Version)
			bad = true
		}
	}
	for k, g := range seen {
		if !wantKeys[k] {
			t.Errorf("%s: unexpected %s", what, describe1(g))
			bad = true
		}
	}
	if bad {
		t.Logf("%s: got  %s", what, describe(got))
		t.Logf("%s: want %s", what, describe(want))
	}
}

func testFill(t *testing.T, st cache.Store) {
	a1 := row("A", "1", "name", `"x"`, "n", `1`)
	a2 := row("A", "2", "name", `"y"`, "tags", `["p","q"]`)
	b1 := row("B", "1", "a", `"1"`, "obj", `{"k":[1,2]}`)
	empty := row("B", "2")
	v0 := fill(t, st, streamA, a1, a2, gone("A", "3"), b1, empty)

	snap := snapshot(t, st, streamA)
	if snap.Version != v0 {
		t.Errorf("Snapshot version %d, want the fill's version %d", snap.Version, v0)
	}
	expect(t, "snapshot after fill", snap.Instances, a1, a2, b1, empty)
	for _, in := range snap.Instances {
		if in.Version == 0 {
			t.Errorf("filled instance %v has version 0", in.Key())
		}
	}
	if changes, cur := since(t, st, streamA, v0); len(changes) != 0 || cur != v0 {
		t.Errorf("Since(fill version) = %s, %d; want nothing, %d", describe(changes), cur, v0)
	}

	// Another stream is independent.
	checkCold(t, st, streamB)
	fill(t, st, streamB, row("A", "1", "name", `"other"`))
	expect(t, "snapshot of second stream", snapshot(t, st, streamB).Instances, row("A", "1", "name", `"other"`))
	expect(t, "first stream after filling second", snapshot(t, st, streamA).Instances, a1, a2, b1, empty)

	// An empty fill makes a hot, empty stream.
	fill(t, st, streamC)
	snapC := snapshot(t, st, streamC)
	expect(t, "empty fill", snapC.Instances)
	if snapC.Version == 0 {
		t.Errorf("empty fill: snapshot version 0")
	}
}

func testRefill(t *testing.T, st cache.Store) {
	v0 := fill(t, st, streamA, row("A", "1", "n", `1`), row("A", "2", "n", `2`))
	v1 := fill(t, st, streamA, row("A", "1", "n", `10`), row("A", "3", "n", `3`))
	if v1 <= v0 {
		t.Fatalf("second Fill version %d, want > first %d", v1, v0)
	}
	snap := snapshot(t, st, streamA)
	if snap.Version != v1 {
		t.Errorf("snapshot version %d, want %d", snap.Version, v1)
	}
	expect(t, "snapshot after refill", snap.Instances, row("A", "1", "n", `10`), row("A", "3", "n", `3`))

	// A refill after applies exceeds the applied versions too.
	d := applyHot(t, st, streamA, v1, row("A", "4", "n", `4`))
	d = applyHot(t, st, streamA, d.Version, gone("A", "4"))
	v2 := fill(t, st, streamA)
	if v2 <= d.Version {
		t.Errorf("Fill after applies: version %d, want > %d", v2, d.Version)
	}
	expect(t, "snapshot after empty refill", snapshot(t, st, streamA).Instances)
	sinceRefused(t, st, streamA, d.Version, "version from before the last fill")

	// Fills in quick succession still get strictly increasing versions.
	prev := v2
	for i := range 200 {
		v := fill(t, st, streamA, row("A", "1", "n", strconv.Itoa(i)))
		if v <= prev {
			t.Fatalf("rapid Fill %d: version %d, want > %d", i, v, prev)
		}
		prev = v
	}
	expect(t, "snapshot after rapid fills", snapshot(t, st, streamA).Instances, row("A", "1", "n", `199`))
}

func testColdStream(t *testing.T, st cache.Store) {
	checkCold(t, st, streamA)
	// Touching a cold stream does not make it hot.
	checkCold(t, st, streamA)
	if err := st.Expire(t.Context(), streamA); err != nil {
		t.Errorf("Expire of a cold stream: %v", err)
	}
	checkCold(t, st, streamA)
}

func testApplyCreate(t *testing.T, st cache.Store) {
	a1 := row("A", "1", "name", `"x"`)
	v0 := fill(t, st, streamA, a1)
	a2 := row("A", "2", "name", `"y"`, "n", `2`, "obj", `{"a":null}`)
	d := applyHot(t, st, streamA, v0, a2)
	expect(t, "delta of create", d.Instances, at(a2, v0+1))

	snap := snapshot(t, st, streamA)
	if snap.Version != v0+1 {
		t.Errorf("snapshot version %d, want %d", snap.Version, v0+1)
	}
	expect(t, "snapshot after create", snap.Instances, a1, at(a2, v0+1))
	for _, in := range snap.Instances {
		if in.ID == "1" && in.Version > v0 {
			t.Errorf("unchanged instance got version %d > fill version %d", in.Version, v0)
		}
	}

	// A new instance with no fields still counts as a change.
	d = applyHot(t, st, streamA, v0+1, row("A", "3"))
	expect(t, "delta of create without fields", d.Instances, at(row("A", "3"), v0+2))
	expect(t, "snapshot", snapshot(t, st, streamA).Instances, a1, a2, row("A", "3"))
}

func testApplyUpdate(t *testing.T, st cache.Store) {
	v := fill(t, st, streamA, row("A", "1", "name", `"x"`, "n", `1`, "tags", `[]`), row("A", "2", "name", `"y"`))

	// Full row with one changed field: the delta carries only that field.
	d := applyHot(t, st, streamA, v, row("A", "1", "name", `"x"`, "n", `2`, "tags", `[]`))
	v = d.Version
	expect(t, "delta of one-field update", d.Instances, at(row("A", "1", "n", `2`), v))
	expect(t, "snapshot after update", snapshot(t, st, streamA).Instances,
		at(row("A", "1", "name", `"x"`, "n", `2`, "tags", `[]`), v), row("A", "2", "name", `"y"`))

	// Partial change: the other stored fields stay.
	d = applyHot(t, st, streamA, v, row("A", "1", "tags", `["t"]`))
	v = d.Version
	expect(t, "delta of partial update", d.Instances, at(row("A", "1", "tags", `["t"]`), v))
	expect(t, "snapshot after partial update", snapshot(t, st, streamA).Instances,
		at(row("A", "1", "name", `"x"`, "n", `2`, "tags", `["t"]`), v), row("A", "2", "name", `"y"`))

	// Partial change with one field equal and one different.
	d = applyHot(t, st, streamA, v, row("A", "1", "name", `"x"`, "n", `3`))
	v = d.Version
	expect(t, "delta of mixed partial update", d.Instances, at(row("A", "1", "n", `3`), v))

	// A new field is a change.
	d = applyHot(t, st, streamA, v, row("A", "2", "extra", `true`))
	v = d.Version
	expect(t, "delta of added field", d.Instances, at(row("A", "2", "extra", `true`), v))
	snap := snapshot(t, st, streamA)
	if snap.Version != v {
		t.Errorf("snapshot version %d, want %d", snap.Version, v)
	}
	expect(t, "final snapshot", snap.Instances,
		row("A", "1", "name", `"x"`, "n", `3`, "tags", `["t"]`), at(row("A", "2", "name", `"y"`, "extra", `true`), v))
}

func testApplyNoop(t *testing.T, st cache.Store) {
	v := fill(t, st, streamA, row("A", "1", "name", `"x"`, "n", `1`))
	applyNoop(t, st, streamA, v, row("A", "1", "name", `"x"`, "n", `1`))
	applyNoop(t, st, streamA, v, row("A", "1", "n", `1`))
	applyNoop(t, st, streamA, v, row("A", "1"))
	applyNoop(t, st, streamA, v)
	applyNoop(t, st, streamA, v, gone("A", "404"))

	// After a real change, a no-op keeps the new version.
	d := applyHot(t, st, streamA, v, row("A", "1", "n", `2`))
	applyNoop(t, st, streamA, d.Version, row("A", "1", "name", `"x"`, "n", `2`))
	expect(t, "snapshot", snapshot(t, st, streamA).Instances, at(row("A", "1", "name", `"x"`, "n", `2`), d.Version))

	// The next real change takes the next version: no-ops used none.
	applyHot(t, st, streamA, d.Version, row("A", "1", "n", `3`))
}

func testApplyDelete(t *testing.T, st cache.Store) {
	v := fill(t, st, streamA, row("A", "1", "name", `"x"`, "n", `1`), row("A", "2", "name", `"y"`))

	d := applyHot(t, st, streamA, v, gone("A", "1"))
	v = d.Version
	expect(t, "delta of delete", d.Instances, at(gone("A", "1"), v))
	snap := snapshot(t, st, streamA)
	if snap.Version != v {
		t.Errorf("snapshot version %d, want %d", snap.Version, v)
	}
	expect(t, "snapshot after delete", snap.Instances, row("A", "2", "name", `"y"`))

	// Deleting it again, or deleting an absent instance, changes nothing.
	applyNoop(t, st, streamA, v, gone("A", "1"))
	applyNoop(t, st, streamA, v, gone("A", "3"))
	applyNoop(t, st, streamA, v, gone("A", "1"), gone("A", "3"))
	// A delete change carrying fields is still a delete.
	applyNoop(t, st, streamA, v, &cache.Instance{Type: "A", ID: "1", Deleted: true, Fields: fields("name", `"z"`)})

	// Re-creating it yields the full new instance, without the old fields.
	d = applyHot(t, st, streamA, v, row("A", "1", "name", `"z"`))
	v = d.Version
	expect(t, "delta of re-create", d.Instances, at(row("A", "1", "name", `"z"`), v))
	expect(t, "snapshot after re-create", snapshot(t, st, streamA).Instances,
		at(row("A", "1", "name", `"z"`), v), row("A", "2", "name", `"y"`))

	// And it can be deleted again.
	d = applyHot(t, st, streamA, v, gone("A", "1"), gone("A", "2"))
	expect(t, "delta of second delete", d.Instances, at(gone("A", "1"), d.Version), at(gone("A", "2"), d.Version))
	expect(t, "snapshot after deleting all", snapshot(t, st, streamA).Instances)
}

func testApplySharedVersion(t *testing.T, st cache.Store) {
	v := fill(t, st, streamA,
		row("A", "1", "n", `1`), row("A", "2", "n", `2`), row("A", "3", "n", `3`))
	d := applyHot(t, st, streamA, v,
		row("A", "1", "n", `10`), // update
		gone("A", "2"),           // delete
		row("A", "3", "n", `3`),  // no-op
		row("A", "4", "n", `4`),  // create
		gone("A", "5"),           // delete of absent: nothing
	)
	v++
	expect(t, "delta of mixed write", d.Instances,
		at(row("A", "1", "n", `10`), v), at(gone("A", "2"), v), at(row("A", "4", "n", `4`), v))
	snap := snapshot(t, st, streamA)
	if snap.Version != v {
		t.Errorf("snapshot version %d, want %d", snap.Version, v)
	}
	expect(t, "snapshot after mixed write", snap.Instances,
		at(row("A", "1", "n", `10`), v), row("A", "3", "n", `3`), at(row("A", "4", "n", `4`), v))
	for _, in := range snap.Instances {
		if in.ID == "3" && in.Version >= v {
			t.Errorf("instance untouched by the write has version %d, want < %d", in.Version, v)
		}
	}
}

func testApplyCold(t *testing.T, st cache.Store) {
	d := apply1(t, st, streamA, row("A", "1", "n", `1`), gone("A", "2"))
	if !d.Cold {
		t.Errorf("Apply to a never-filled stream: Cold = false")
	}
	if len(d.Instances) != 0 {
		t.Errorf("Apply to a cold stream returned instances %s", describe(d.Instances))
	}
	checkCold(t, st, streamA)

	// Once filled, the ignored write is not there.
	v := fill(t, st, streamA, row("A", "3", "n", `3`))
	expect(t, "snapshot after fill", snapshot(t, st, streamA).Instances, row("A", "3", "n", `3`))

	// Cold and hot writes in one call.
	ds := apply(t, st,
		cache.Write{Stream: streamB, Changes: []*cache.Instance{row("A", "1", "n", `1`)}},
		cache.Write{Stream: streamA, Changes: []*cache.Instance{row("A", "1", "n", `1`)}},
	)
	if !ds[0].Cold || len(ds[0].Instances) != 0 {
		t.Errorf("cold write in a mixed Apply: delta %+v, want Cold with no instances", ds[0])
	}
	if ds[1].Cold || ds[1].Version != v+1 {
		t.Errorf("hot write in a mixed Apply: Cold %v version %d, want false %d", ds[1].Cold, ds[1].Version, v+1)
	}
	expect(t, "hot delta in mixed Apply", ds[1].Instances, at(row("A", "1", "n", `1`), v+1))
	checkCold(t, st, streamB)
}

func testApplyManyStreams(t *testing.T, st cache.Store) {
	va := fill(t, st, streamA, row("A", "1", "n", `1`))
	vb := fill(t, st, streamB, row("A", "1", "n", `1`))
	ds := apply(t, st,
		cache.Write{Stream: streamA, Changes: []*cache.Instance{row("A", "1", "n", `2`)}},
		cache.Write{Stream: streamB, Changes: []*cache.Instance{row("A", "2", "n", `5`)}},
		cache.Write{Stream: streamC, Changes: []*cache.Instance{row("A", "1", "n", `2`)}},
		cache.Write{Stream: streamA, Changes: []*cache.Instance{gone("A", "1")}},
		cache.Write{Stream: streamB, Changes: []*cache.Instance{row("A", "1", "n", `1`)}},
	)
	if ds[0].Cold || ds[0].Version != va+1 {
		t.Errorf("write 0: Cold %v version %d, want false %d", ds[0].Cold, ds[0].Version, va+1)
	}
	expect(t, "write 0", ds[0].Instances, at(row("A", "1", "n", `2`), va+1))
	if ds[1].Cold || ds[1].Version != vb+1 {
		t.Errorf("write 1: Cold %v version %d, want false %d", ds[1].Cold, ds[1].Version, vb+1)
	}
	expect(t, "write 1", ds[1].Instances, at(row("A", "2", "n", `5`), vb+1))
	if !ds[2].Cold || len(ds[2].Instances) != 0 {
		t.Errorf("write 2 to a cold stream: %+v, want Cold and no instances", ds[2])
	}
	if ds[3].Cold || ds[3].Version != va+2 {
		t.Errorf("write 3: Cold %v version %d, want false %d", ds[3].Cold, ds[3].Version, va+2)
	}
	expect(t, "write 3", ds[3].Instances, at(gone("A", "1"), va+2))
	if ds[4].Cold || ds[4].Version != vb+1 || len(ds[4].Instances) != 0 {
		t.Errorf("write 4 (no-op): %+v, want not Cold, version %d, no instances", ds[4], vb+1)
	}

	snapA := snapshot(t, st, streamA)
	if snapA.Version != va+2 {
		t.Errorf("stream A version %d, want %d", snapA.Version, va+2)
	}
	expect(t, "stream A", snapA.Instances)
	snapB := snapshot(t, st, streamB)
	if snapB.Version != vb+1 {
		t.Errorf("stream B version %d, want %d", snapB.Version, vb+1)
	}
	expect(t, "stream B", snapB.Instances, row("A", "1", "n", `1`), at(row("A", "2", "n", `5`), vb+1))
	checkCold(t, st, streamC)
}

func testOwner(t *testing.T, st cache.Store) {
	shared := owned("A", "1", "", "name", `"shared"`)
	u1 := owned("A", "1", "u1", "name", `"mine"`, "star", `true`)
	v0 := fill(t, st, streamA, shared, u1)
	expect(t, "snapshot after fill", snapshot(t, st, streamA).Instances, shared, u1)

	d := applyHot(t, st, streamA, v0, owned("A", "1", "u1", "star", `false`))
	expect(t, "delta of owned update", d.Instances, at(owned("A", "1", "u1", "star", `false`), v0+1))

	d = applyHot(t, st, streamA, v0+1, owned("A", "1", "u2", "name", `"theirs"`))
	expect(t, "delta of owned create", d.Instances, at(owned("A", "1", "u2", "name", `"theirs"`), v0+2))

	d = applyHot(t, st, streamA, v0+2, gone("A", "1"))
	expect(t, "delta of shared delete", d.Instances, at(gone("A", "1"), v0+3))
	u1now := owned("A", "1", "u1", "name", `"mine"`, "star", `false`)
	u2now := owned("A", "1", "u2", "name", `"theirs"`)
	expect(t, "snapshot", snapshot(t, st, streamA).Instances, u1now, u2now)

	// Deleting the shared row again is a no-op even though owned rows with
	// the same Type and ID exist.
	applyNoop(t, st, streamA, v0+3, gone("A", "1"))

	d = applyHot(t, st, streamA, v0+3, &cache.Instance{Type: "A", ID: "1", Owner: "u2", Deleted: true})
	expect(t, "delta of owned delete", d.Instances, &cache.Instance{Type: "A", ID: "1", Owner: "u2", Deleted: true, Version: v0 + 4})
	expect(t, "snapshot after owned delete", snapshot(t, st, streamA).Instances, u1now)

	changes, cur := since(t, st, streamA, v0)
	if cur != v0+4 {
		t.Errorf("Since current %d, want %d", cur, v0+4)
	}
	expect(t, "Since(fill)", changes,
		at(u1now, v0+1),
		at(gone("A", "1"), v0+3),
		&cache.Instance{Type: "A", ID: "1", Owner: "u2", Deleted: true, Version: v0 + 4})
}

func testSince(t *testing.T, st cache.Store) {
	v0 := fill(t, st, streamA,
		row("A", "1", "name", `"x"`, "n", `1`),
		row("A", "2", "name", `"y"`),
		row("A", "3", "name", `"z"`, "n", `3`),
		row("A", "9", "name", `"still"`))

	d := applyHot(t, st, streamA, v0, row("A", "1", "n", `2`)) // partial update
	v1 := d.Version
	d = applyHot(t, st, streamA, v1, row("A", "4", "name", `"new"`), gone("A", "2"))
	v2 := d.Version
	d = applyHot(t, st, streamA, v2, row("A", "3", "n", `30`))
	v3 := d.Version
	d = applyHot(t, st, streamA, v3, row("A", "5", "name", `"brief"`))
	v4 := d.Version
	d = applyHot(t, st, streamA, v4, gone("A", "5"), row("A", "3", "name", `"zz"`))
	v5 := d.Version
	applyNoop(t, st, streamA, v5, row("A", "1", "n", `2`))

	a1 := at(row("A", "1", "name", `"x"`, "n", `2`), v1)
	a2 := at(gone("A", "2"), v2)
	a3 := at(row("A", "3", "name", `"zz"`, "n", `30`), v5)
	a4 := at(row("A", "4", "name", `"new"`), v2)
	a5 := at(gone("A", "5"), v5)

	changes, cur := since(t, st, streamA, v0)
	if cur != v5 {
		t.Errorf("Since current %d, want %d", cur, v5)
	}
	expect(t, "Since(fill version)", changes, a1, a2, a3, a4, a5)

	changes, _ = since(t, st, streamA, v1)
	expect(t, "Since(v1)", changes, a2, a3, a4, a5)
	changes, _ = since(t, st, streamA, v2)
	expect(t, "Since(v2)", changes, a3, a5)
	changes, _ = since(t, st, streamA, v4)
	expect(t, "Since(v4)", changes, a3, a5)

	changes, cur = since(t, st, streamA, v5)
	if cur != v5 {
		t.Errorf("Since(current): current %d, want %d", cur, v5)
	}
	expect(t, "Since(current)", changes)

	snap := snapshot(t, st, streamA)
	if snap.Version != v5 {
		t.Errorf("snapshot version %d, want %d", snap.Version, v5)
	}
	expect(t, "snapshot", snap.Instances, a1, a3, a4, row("A", "9", "name", `"still"`))
}

func testSinceBounds(t *testing.T, st cache.Store) {
	v0 := fill(t, st, streamA, row("A", "1", "n", `1`))
	d := applyHot(t, st, streamA, v0, row("A", "1", "n", `2`))
	d = applyHot(t, st, streamA, d.Version, gone("A", "1"))
	cur := d.Version

	sinceRefused(t, st, streamA, v0-1, "version older than the fill")
	sinceRefused(t, st, streamA, 0, "version zero")
	sinceRefused(t, st, streamA, cur+1, "version after current")
	sinceRefused(t, st, streamA, cur+1000, "version far after current")
	checkCold(t, st, streamB)

	// After a refill, versions of the previous fill are refused.
	v1 := fill(t, st, streamA, row("A", "1", "n", `3`))
	sinceRefused(t, st, streamA, v0, "fill version before a refill")
	sinceRefused(t, st, streamA, cur, "applied version before a refill")
	changes, c := since(t, st, streamA, v1)
	if c != v1 || len(changes) != 0 {
		t.Errorf("Since(refill) = %s, %d; want nothing, %d", describe(changes), c, v1)
	}
}

func testExpire(t *testing.T, st cache.Store) {
	v0 := fill(t, st, streamA, row("A", "1", "n", `1`))
	fill(t, st, streamB, row("B", "1", "n", `1`))
	d := applyHot(t, st, streamA, v0, row("A", "2", "n", `2`))
	last := d.Version

	if err := st.Expire(t.Context(), streamA); err != nil {
		t.Fatalf("Expire: %v", err)
	}
	checkCold(t, st, streamA)
	sinceRefused(t, st, streamA, last, "expired stream")
	d = apply1(t, st, streamA, row("A", "3", "n", `3`))
	if !d.Cold || len(d.Instances) != 0 {
		t.Errorf("Apply to expired stream: %+v, want Cold and no instances", d)
	}
	checkCold(t, st, streamA)

	// Other streams stay hot.
	expect(t, "other stream after Expire", snapshot(t, st, streamB).Instances, row("B", "1", "n", `1`))

	// A re-fill starts afresh, above every earlier version.
	v1 := fill(t, st, streamA, row("A", "9", "n", `9`))
	if v1 <= last {
		t.Errorf("Fill after Expire: version %d, want > %d", v1, last)
	}
	snap := snapshot(t, st, streamA)
	if snap.Version != v1 {
		t.Errorf("snapshot version %d, want %d", snap.Version, v1)
	}
	expect(t, "snapshot after re-fill", snap.Instances, row("A", "9", "n", `9`))
	sinceRefused(t, st, streamA, last, "version from before Expire")
	applyHot(t, st, streamA, v1, row("A", "9", "n", `10`))
}

// testRefillAfterBurst applies many writes in quick succession, so that a
// store whose versions derive from a clock runs ahead of it, and checks
// that a later fill still exceeds every version handed out.
func testRefillAfterBurst(t *testing.T, st cache.Store) {
	n := 10000
	if testing.Short() {
		n = 2000
	}
	for _, expire := range []bool{false, true} {
		v := fill(t, st, streamA, row("A", "1", "n", `0`))
		writes := make([]cache.Write, n)
		for i := range writes {
			writes[i] = cache.Write{Stream: streamA, Changes: []*cache.Instance{
				row("A", "1", "n", strconv.Itoa(i+1)),
			}}
		}
		ds := apply(t, st, writes...)
		for i, d := range ds {
			if d.Cold || d.Version != v+uint64(i)+1 || len(d.Instances) != 1 {
				t.Fatalf("burst write %d: Cold %v version %d with %d instances, want false %d with 1",
					i, d.Cold, d.Version, len(d.Instances), v+uint64(i)+1)
			}
		}
		last := ds[n-1].Version
		if expire {
			if err := st.Expire(t.Context(), streamA); err != nil {
				t.Fatalf("Expire: %v", err)
			}
		}
		v1 := fill(t, st, streamA, row("A", "1", "n", `0`))
		if v1 <= last {
			t.Errorf("Fill after %d writes (expired first: %v): version %d, want > %d", n, expire, v1, last)
		}
		sinceRefused(t, st, streamA, last, "version from before the fill")
	}
}

func testNoAliasing(t *testing.T, st cache.Store) {
	fillFields := fields("name", `"x"`, "n", `1`)
	fillIn := &cache.Instance{Type: "A", ID: "1", Fields: fillFields}
	v0 := fill(t, st, streamA, fillIn)
	v := v0
	fillFields["name"] = json.RawMessage(`"mutated"`)
	delete(fillFields, "n")
	fillFields["added"] = json.RawMessage(`1`)
	fillIn.ID = "mutated"
	fillIn.Fields = nil
	fillIn.Deleted = true
	expect(t, "snapshot after mutating the filled map", snapshot(t, st, streamA).Instances,
		row("A", "1", "name", `"x"`, "n", `1`))

	createFields := fields("name", `"y"`)
	createIn := &cache.Instance{Type: "A", ID: "2", Fields: createFields}
	d := applyHot(t, st, streamA, v, createIn)
	v = d.Version
	createFields["name"] = json.RawMessage(`"mutated"`)
	createFields["added"] = json.RawMessage(`1`)
	createIn.ID = "mutated"
	expect(t, "delta after mutating the created map", d.Instances, at(row("A", "2", "name", `"y"`), v))

	updateFields := fields("n", `2`)
	d = applyHot(t, st, streamA, v, &cache.Instance{Type: "A", ID: "1", Fields: updateFields})
	v = d.Version
	updateFields["n"] = json.RawMessage(`3`)
	updateFields["name"] = json.RawMessage(`"mutated"`)

	want := []*cache.Instance{row("A", "1", "name", `"x"`, "n", `2`), row("A", "2", "name", `"y"`)}
	snap := snapshot(t, st, streamA)
	expect(t, "snapshot after mutating applied maps", snap.Instances, want...)
	changes, _ := since(t, st, streamA, v0)
	expect(t, "Since after mutating applied maps", changes, want...)

	// Re-applying the original values is a no-op: the store kept them.
	applyNoop(t, st, streamA, v, row("A", "1", "name", `"x"`, "n", `2`), row("A", "2", "name", `"y"`))
}

// testConcurrentReads runs one writer against several readers. Every write
// sets the counter field of the same few instances to the write's ordinal,
// so that in any consistent read all of them hold the same counter, equal to
// the read's version minus the fill version.
func testConcurrentReads(t *testing.T, st cache.Store) {
	const (
		counters = 3
		readers  = 4
	)
	writes := 2000
	if testing.Short() {
		writes = 300
	}
	key := func(i int) string { return "c" + strconv.Itoa(i) }
	initial := []*cache.Instance{row("S", "static", "name", `"static"`)}
	for i := range counters {
		initial = append(initial, row("C", key(i), "name", `"counter"`, "n", `0`))
	}
	v0 := fill(t, st, streamA, initial...)

	var (
		done   atomic.Bool
		failed atomic.Bool
		reads  atomic.Int64
		wg     sync.WaitGroup
	)
	fail := func(format string, args ...any) {
		if failed.CompareAndSwap(false, true) {
			t.Errorf(format, args...)
		}
	}
	// check verifies one read at version v: the instances of ins hold the
	// counters and, if full, the static row.
	check := func(what string, v uint64, ins []*cache.Instance, full bool) {
		if v < v0 || v > v0+uint64(writes) {
			fail("%s: version %d outside [%d, %d]", what, v, v0, v0+uint64(writes))
			return
		}
		want := v - v0
		seen := 0
		static := false
		for _, in := range ins {
			if in.Deleted {
				fail("%s: tombstone %v", what, in.Key())
				return
			}
			if in.Version > v {
				fail("%s at version %d: %v has version %d", what, v, in.Key(), in.Version)
				return
			}
			if in.Type == "S" {
				if !full {
					fail("%s at version %d: unchanged %v reported", what, v, in.Key())
					return
				}
				static = true
				continue
			}
			seen++
			n, err := strconv.ParseUint(string(in.Fields["n"]), 10, 64)
			if err != nil {
				fail("%s: %v has counter %q: %v", what, in.Key(), in.Fields["n"], err)
				return
			}
			if n != want {
				fail("%s at version %d: %v has counter %d, want %d (inconsistent read)", what, v, in.Key(), n, want)
				return
			}
			if n > 0 && in.Version != v0+n {
				fail("%s: %v with counter %d has version %d, want %d", what, in.Key(), n, in.Version, v0+n)
				return
			}
			if string(in.Fields["name"]) != `"counter"` {
				fail("%s: %v lost its name field: %s", what, in.Key(), describe1(in))
				return
			}
		}
		if full || want > 0 {
			if seen != counters {
				fail("%s at version %d: %d counter instances, want %d", what, v, seen, counters)
			}
		} else if seen != 0 {
			fail("%s at version %d: %d changed instances, want none", what, v, seen)
		}
		if full && !static {
			fail("%s at version %d: static instance missing", what, v)
		}
	}

	for r := range readers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var last uint64
			for i := 0; ; i++ {
				stop := done.Load()
				if r%2 == 1 && i%2 == 1 {
					changes, cur, ok, err := st.Since(t.Context(), streamA, v0)
					if err != nil || !ok {
						fail("concurrent Since(%d): ok %v, err %v", v0, ok, err)
						return
					}
					check("concurrent Since", cur, changes, false)
				} else {
					snap, err := st.Snapshot(t.Context(), streamA)
					if err != nil {
						fail("concurrent Snapshot: %v", err)
						return
					}
					if snap.Version < last {
						fail("snapshot version went back from %d to %d", last, snap.Version)
					}
					last = snap.Version
					check("concurrent Snapshot", snap.Version, snap.Instances, true)
				}
				reads.Add(1)
				if stop || failed.Load() {
					return
				}
			}
		}()
	}

	for w := 1; w <= writes && !failed.Load(); w++ {
		changes := make([]*cache.Instance, counters)
		for i := range changes {
			changes[i] = row("C", key(i), "n", strconv.Itoa(w))
		}
		ds, err := st.Apply(t.Context(), []cache.Write{{Stream: streamA, Changes: changes}})
		if err != nil {
			fail("Apply %d: %v", w, err)
			break
		}
		if len(ds) != 1 || ds[0].Cold || ds[0].Version != v0+uint64(w) || len(ds[0].Instances) != counters {
			fail("Apply %d: deltas %+v, want one at version %d with %d instances", w, ds, v0+uint64(w), counters)
			break
		}
	}
	done.Store(true)
	wg.Wait()
	if failed.Load() {
		return
	}
	snap := snapshot(t, st, streamA)
	check("final Snapshot", snap.Version, snap.Instances, true)
	if snap.Version != v0+uint64(writes) {
		t.Errorf("final version %d, want %d", snap.Version, v0+uint64(writes))
	}
	t.Logf("%d writes, %d concurrent reads", writes, reads.Load())
}
