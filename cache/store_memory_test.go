package cache_test

import (
	"encoding/json"
	"strconv"
	"testing"

	"github.com/rxgorm/rxgorm/cache"
	"github.com/rxgorm/rxgorm/cache/storetest"
)

func TestMemoryStore(t *testing.T) {
	storetest.Run(t, func(t *testing.T) cache.Store {
		return cache.NewMemory(cache.MemoryOptions{})
	})
}

func applyOne(t *testing.T, st cache.Store, s cache.Stream, ch *cache.Instance) uint64 {
	t.Helper()
	ds, err := st.Apply(t.Context(), []cache.Write{{Stream: s, Changes: []*cache.Instance{ch}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Cold || len(ds[0].Instances) != 1 {
		t.Fatalf("Apply(%+v): %+v, want one hot delta with one instance", ch, ds)
	}
	return ds[0].Version
}

func live(id string) *cache.Instance {
	return &cache.Instance{Type: "T", ID: id, Fields: map[string]json.RawMessage{"id": json.RawMessage(strconv.Quote(id))}}
}

func dead(id string) *cache.Instance {
	return &cache.Instance{Type: "T", ID: id, Deleted: true}
}

func TestMemoryStoreTombstonePruning(t *testing.T) {
	const limit = 4
	ctx := t.Context()
	st := cache.NewMemory(cache.MemoryOptions{MaxTombstones: limit})
	s := cache.Stream{Channel: "prune", Anchor: "1"}
	v0, err := st.Fill(ctx, s, []*cache.Instance{live("keep")})
	if err != nil {
		t.Fatal(err)
	}

	// deletedAt[i] is the version at which instance i was deleted.
	const n = 10
	var createdAt, deletedAt [n]uint64
	for i := range n {
		id := strconv.Itoa(i)
		createdAt[i] = applyOne(t, st, s, live(id))
		deletedAt[i] = applyOne(t, st, s, dead(id))
	}
	cur := deletedAt[n-1]

	// The oldest tombstones are gone, so the store cannot resume from the
	// fill any more.
	if changes, _, ok, err := st.Since(ctx, s, v0); err != nil || ok {
		t.Errorf("Since(fill version) after %d deletes with MaxTombstones %d: ok %v (%d changes), err %v; want ok=false",
			n, limit, ok, len(changes), err)
	}

	// A recent version still resumes, with the latest tombstones.
	changes, c, ok, err := st.Since(ctx, s, createdAt[n-2])
	if err != nil || !ok {
		t.Fatalf("Since(recent version %d): ok %v, err %v; want an answer", createdAt[n-2], ok, err)
	}
	if c != cur {
		t.Errorf("Since: current %d, want %d", c, cur)
	}
	want := map[string]uint64{strconv.Itoa(n - 2): deletedAt[n-2], strconv.Itoa(n - 1): deletedAt[n-1]}
	if len(changes) != len(want) {
		t.Errorf("Since(recent version) returned %d changes, want %d", len(changes), len(want))
	}
	for _, in := range changes {
		if !in.Deleted || in.Fields != nil || in.Version != want[in.ID] {
			t.Errorf("Since(recent version): got %+v, want a tombstone at version %d", in, want[in.ID])
		}
	}

	// Every version the store still answers for gets exactly the tombstones
	// deleted after it, and the store answers from the current version.
	answered := 0
	for v := v0; v <= cur; v++ {
		changes, _, ok, err := st.Since(ctx, s, v)
		if err != nil {
			t.Fatalf("Since(%d): %v", v, err)
		}
		if !ok {
			if answered > 0 {
				t.Errorf("Since(%d) refused after answering for an older version", v)
			}
			continue
		}
		answered++
		var wantIDs []string
		for i := range n {
			if deletedAt[i] > v {
				wantIDs = append(wantIDs, strconv.Itoa(i))
			}
		}
		if len(wantIDs) > limit {
			t.Errorf("Since(%d) answered with %d tombstones, more than MaxTombstones %d", v, len(wantIDs), limit)
		}
		got := make(map[string]bool)
		for _, in := range changes {
			if !in.Deleted {
				t.Errorf("Since(%d): live instance %+v, want only tombstones", v, in)
			}
			got[in.ID] = true
		}
		for _, id := range wantIDs {
			if !got[id] {
				t.Errorf("Since(%d): missing tombstone of %s", v, id)
			}
		}
		if len(changes) != len(wantIDs) {
			t.Errorf("Since(%d): %d changes, want %d", v, len(changes), len(wantIDs))
		}
	}
	if answered == 0 {
		t.Errorf("Since answered for no version")
	}

	// Pruned instances can be re-created in full.
	v := applyOne(t, st, s, live("0"))
	changes, _, ok, err = st.Since(ctx, s, cur)
	if err != nil || !ok || len(changes) != 1 || changes[0].Deleted || changes[0].Version != v ||
		string(changes[0].Fields["id"]) != `"0"` {
		t.Errorf("Since after re-creating a pruned instance: %+v, ok %v, err %v", changes, ok, err)
	}
	snap, err := st.Snapshot(ctx, s)
	if err != nil || len(snap.Instances) != 2 {
		t.Errorf("Snapshot: %d instances, err %v; want 2", len(snap.Instances), err)
	}
}

func TestMemoryStoreRecreateReleasesTombstone(t *testing.T) {
	// Tombstones replaced by re-created instances do not count against
	// MaxTombstones: cycling fewer than MaxTombstones instances through
	// delete and re-create never prunes.
	const limit = 4
	ctx := t.Context()
	st := cache.NewMemory(cache.MemoryOptions{MaxTombstones: limit})
	s := cache.Stream{Channel: "prune", Anchor: "2"}
	v0, err := st.Fill(ctx, s, nil)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		for i := range limit {
			applyOne(t, st, s, live(strconv.Itoa(i)))
		}
		for i := range limit {
			applyOne(t, st, s, dead(strconv.Itoa(i)))
		}
	}
	changes, _, ok, err := st.Since(ctx, s, v0)
	if err != nil || !ok {
		t.Fatalf("Since(fill version) with never more than %d tombstones: ok %v, err %v; want an answer", limit, ok, err)
	}
	if len(changes) != limit {
		t.Errorf("Since(fill version): %d changes, want %d tombstones", len(changes), limit)
	}
}
