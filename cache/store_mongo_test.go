package cache_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/rxgorm/rxgorm/cache"
	"github.com/rxgorm/rxgorm/cache/mongotest"
	"github.com/rxgorm/rxgorm/cache/storetest"
)

var (
	sharedClientOnce sync.Once
	sharedClient     *mongo.Client
	sharedClientErr  error
	dbSeq            atomic.Int64
)

// testClient returns a client of the server shared by the package's tests.
func testClient(t testing.TB) *mongo.Client {
	t.Helper()
	uri := mongotest.Shared(t)
	sharedClientOnce.Do(func() {
		sharedClient, sharedClientErr = mongo.Connect(options.Client().ApplyURI(uri).
			SetServerSelectionTimeout(10 * time.Second))
	})
	if sharedClientErr != nil {
		t.Fatalf("connect to %s: %v", uri, sharedClientErr)
	}
	return sharedClient
}

// freshDB returns a new, empty database on client, dropped when t ends.
func freshDB(t testing.TB, client *mongo.Client) *mongo.Database {
	t.Helper()
	db := client.Database(fmt.Sprintf("rxtest_%d_%d", os.Getpid(), dbSeq.Add(1)))
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = db.Drop(ctx)
	})
	return db
}

func newMongoStore(t testing.TB, db *mongo.Database, opts cache.MongoOptions) *cache.MongoStore {
	t.Helper()
	st, err := cache.NewMongo(t.Context(), db, opts)
	if err != nil {
		t.Fatalf("NewMongo: %v", err)
	}
	return st
}

func TestMongoStore(t *testing.T) {
	client := testClient(t)
	storetest.Run(t, func(t *testing.T) cache.Store {
		return newMongoStore(t, freshDB(t, client), cache.MongoOptions{})
	})
}

// ---- helpers

func mustFill(t testing.TB, st cache.Store, s cache.Stream, ins ...*cache.Instance) uint64 {
	t.Helper()
	v, err := st.Fill(t.Context(), s, ins)
	if err != nil {
		t.Fatalf("Fill(%s): %v", s, err)
	}
	return v
}

func mustApply(t testing.TB, st cache.Store, s cache.Stream, changes ...*cache.Instance) cache.Delta {
	t.Helper()
	ds, err := st.Apply(t.Context(), []cache.Write{{Stream: s, Changes: changes}})
	if err != nil {
		t.Fatalf("Apply(%s): %v", s, err)
	}
	return ds[0]
}

func mustSnapshot(t testing.TB, st cache.Store, s cache.Stream) cache.Snapshot {
	t.Helper()
	snap, err := st.Snapshot(t.Context(), s)
	if err != nil {
		t.Fatalf("Snapshot(%s): %v", s, err)
	}
	return snap
}

// inst builds a live instance of type T from name, JSON-literal pairs.
func inst(id string, kv ...string) *cache.Instance {
	f := make(map[string]json.RawMessage, len(kv)/2)
	for i := 0; i < len(kv); i += 2 {
		f[kv[i]] = json.RawMessage(kv[i+1])
	}
	return &cache.Instance{Type: "T", ID: id, Fields: f}
}

// byID indexes instances of type T by id.
func byID(ins []*cache.Instance) map[string]*cache.Instance {
	m := make(map[string]*cache.Instance, len(ins))
	for _, in := range ins {
		m[in.ID] = in
	}
	return m
}

// ---- MongoDB-specific tests

// TestMongoOutage stops the server under a store: every operation fails
// within a few seconds with an error that wraps the driver's, and all
// works again, with the data kept, once the server is back.
func TestMongoOutage(t *testing.T) {
	srv := mongotest.NewServer(t)
	client, err := mongo.Connect(options.Client().ApplyURI(srv.URI()).
		SetServerSelectionTimeout(2 * time.Second).SetConnectTimeout(time.Second).
		SetHeartbeatInterval(500 * time.Millisecond).SetTimeout(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Disconnect(context.Background()) })
	st := newMongoStore(t, client.Database("outage"), cache.MongoOptions{})
	s := cache.Stream{Channel: "outage", Anchor: "1"}
	other := cache.Stream{Channel: "outage", Anchor: "2"}
	v0 := mustFill(t, st, s, inst("a", "n", `1`), inst("b", "n", `2`))
	v1 := mustApply(t, st, s, inst("a", "n", `10`)).Version

	srv.Stop()
	ctx := t.Context()
	ops := []struct {
		name string
		fn   func() error
	}{
		{"Snapshot", func() error { _, err := st.Snapshot(ctx, s); return err }},
		{"Since", func() error { _, _, _, err := st.Since(ctx, s, v0); return err }},
		{"Apply", func() error {
			_, err := st.Apply(ctx, []cache.Write{{Stream: s, Changes: []*cache.Instance{inst("a", "n", `11`)}}})
			return err
		}},
		{"Fill", func() error { _, err := st.Fill(ctx, other, []*cache.Instance{inst("x")}); return err }},
		{"Expire", func() error { return st.Expire(ctx, s) }},
		{"Streams", func() error { _, err := st.Streams(ctx); return err }},
	}
	for _, op := range ops {
		start := time.Now()
		err := op.fn()
		took := time.Since(start)
		if err == nil {
			t.Errorf("%s with MongoDB down: no error", op.name)
			continue
		}
		if took > 8*time.Second {
			t.Errorf("%s with MongoDB down took %v", op.name, took)
		}
		var cerr mongo.ServerError
		driverErr := mongo.IsNetworkError(err) || mongo.IsTimeout(err) || errors.As(err, &cerr) ||
			errors.Is(err, context.DeadlineExceeded) || strings.Contains(err.Error(), "server selection")
		if !driverErr || errors.Is(err, cache.ErrCold) {
			t.Errorf("%s with MongoDB down: error %v does not wrap a driver error", op.name, err)
		}
		t.Logf("%s with MongoDB down: %v after %v", op.name, err, took.Round(time.Millisecond))
	}

	srv.Start()
	var snap cache.Snapshot
	deadline := time.Now().Add(20 * time.Second)
	for {
		snap, err = st.Snapshot(ctx, s)
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("Snapshot after the restart: %v", err)
	}
	if snap.Version != v1 {
		t.Errorf("Snapshot after the restart: version %d, want %d", snap.Version, v1)
	}
	got := byID(snap.Instances)
	if len(got) != 2 || string(got["a"].Fields["n"]) != `10` || string(got["b"].Fields["n"]) != `2` {
		t.Errorf("Snapshot after the restart lost data: %+v", snap.Instances)
	}
	d := mustApply(t, st, s, inst("b", "n", `20`))
	if d.Cold || d.Version != v1+1 || len(d.Instances) != 1 {
		t.Errorf("Apply after the restart: %+v, want version %d", d, v1+1)
	}
	changes, cur, ok, err := st.Since(ctx, s, v0)
	if err != nil || !ok || cur != v1+1 || len(changes) != 2 {
		t.Errorf("Since after the restart: %d changes, current %d, ok %v, err %v", len(changes), cur, ok, err)
	}
	if v := mustFill(t, st, other, inst("x")); v <= v1+1 {
		t.Errorf("Fill after the restart: version %d, want > %d", v, v1+1)
	}
}

// TestMongoConcurrentStores runs two stores on one database that write
// different streams, of one channel and of two, concurrently.
func TestMongoConcurrentStores(t *testing.T) {
	db := freshDB(t, testClient(t))
	stores := []*cache.MongoStore{newMongoStore(t, db, cache.MongoOptions{}), newMongoStore(t, db, cache.MongoOptions{})}
	streams := []cache.Stream{{Channel: "conc", Anchor: "1"}, {Channel: "conc", Anchor: "2"},
		{Channel: "conc-other", Anchor: "1"}, {Channel: "conc-other", Anchor: "2"}}
	base := make([]uint64, len(streams))
	for i, s := range streams {
		base[i] = mustFill(t, stores[0], s, inst("counter", "n", `0`))
	}
	const writes = 40
	var wg sync.WaitGroup
	for i, s := range streams {
		wg.Go(func() {
			st := stores[i%2]
			for w := 1; w <= writes; w++ {
				ds, err := st.Apply(t.Context(), []cache.Write{{Stream: s, Changes: []*cache.Instance{
					inst("counter", "n", strconv.Itoa(w)), inst("new-"+strconv.Itoa(w), "w", strconv.Itoa(w)),
				}}})
				if err != nil {
					t.Errorf("Apply %d to %s: %v", w, s, err)
					return
				}
				if d := ds[0]; d.Cold || d.Version != base[i]+uint64(w) || len(d.Instances) != 2 {
					t.Errorf("Apply %d to %s: %+v, want version %d with 2 instances", w, s, d, base[i]+uint64(w))
					return
				}
			}
		})
	}
	wg.Wait()
	for i, s := range streams {
		snap := mustSnapshot(t, stores[(i+1)%2], s)
		got := byID(snap.Instances)
		if snap.Version != base[i]+writes || len(got) != writes+1 || string(got["counter"].Fields["n"]) != strconv.Itoa(writes) {
			t.Errorf("%s: version %d with %d instances (counter %s), want %d with %d", s, snap.Version, len(got),
				got["counter"].Fields["n"], base[i]+writes, writes+1)
		}
	}
}

// TestMongoConcurrentWritersOneStream has two stores write the same stream
// at once, as two nodes do while ownership is in doubt (issue 20): every
// version is handed out once, and Since returns every write. On FerretDB
// v1, whose conditional updates are not atomic, the version claims
// (store_mongo_claim.go) are what serializes the writers.
func TestMongoConcurrentWritersOneStream(t *testing.T) {
	db := freshDB(t, testClient(t))
	stores := []*cache.MongoStore{newMongoStore(t, db, cache.MongoOptions{}), newMongoStore(t, db, cache.MongoOptions{})}
	s := cache.Stream{Channel: "conc", Anchor: "1"}
	start := mustFill(t, stores[0], s, inst("counter", "n", `0`))
	const writes = 40
	var wg sync.WaitGroup
	versions := make([][]uint64, 2)
	for k, st := range stores {
		wg.Go(func() {
			for w := range writes {
				id := fmt.Sprintf("s%d-%d", k, w)
				ds, err := st.Apply(t.Context(), []cache.Write{{Stream: s, Changes: []*cache.Instance{inst(id, "k", strconv.Itoa(k))}}})
				if err != nil {
					t.Errorf("store %d, Apply %d: %v", k, w, err)
					return
				}
				if ds[0].Cold || len(ds[0].Instances) != 1 {
					t.Errorf("store %d, Apply %d: %+v", k, w, ds[0])
					return
				}
				versions[k] = append(versions[k], ds[0].Version)
			}
		})
	}
	wg.Wait()
	all := append(append([]uint64(nil), versions[0]...), versions[1]...)
	slices.Sort(all)
	for i, v := range all {
		if v != start+uint64(i)+1 {
			t.Fatalf("versions of concurrent writers to one stream: %v, want %d..%d each once", all, start+1, start+2*writes)
		}
	}
	changes, cur, ok, err := stores[0].Since(t.Context(), s, start)
	if err != nil || !ok || cur != start+2*writes || len(changes) != 2*writes {
		t.Errorf("Since after concurrent writers: %d changes, current %d, ok %v, err %v; want %d, %d", len(changes), cur, ok, err, 2*writes, start+2*writes)
	}
}

// isFerretDB reports whether client talks to FerretDB.
func isFerretDB(t testing.TB, client *mongo.Client) bool {
	t.Helper()
	var info bson.M
	if err := client.Database("admin").RunCommand(t.Context(), bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		t.Fatalf("buildInfo: %v", err)
	}
	_, ok := info["ferretdbVersion"]
	return ok
}

// TestMongoWriterConflict makes another store write the stream between a
// store's read and its write: the store's lock fails, and it reads again
// and applies its change on top, at the next version.
func TestMongoWriterConflict(t *testing.T) {
	db := freshDB(t, testClient(t))
	a := newMongoStore(t, db, cache.MongoOptions{})
	b := newMongoStore(t, db, cache.MongoOptions{})
	s := cache.Stream{Channel: "conflict", Anchor: "1"}
	v0 := mustFill(t, a, s, inst("x", "n", `0`, "m", `0`))

	var bDelta cache.Delta
	calls := 0
	cache.SetMongoBeforeWrite(a, func() {
		calls++
		if calls == 1 {
			bDelta = mustApply(t, b, s, inst("x", "n", `1`))
		}
	})
	d := mustApply(t, a, s, inst("x", "n", `1`, "m", `2`))
	cache.SetMongoBeforeWrite(a, nil)
	if calls != 2 {
		t.Errorf("store a wrote %d times, want 2 (one failed lock, one retry)", calls)
	}
	if bDelta.Version != v0+1 || d.Version != v0+2 {
		t.Errorf("versions: b %d, a %d; want %d, %d", bDelta.Version, d.Version, v0+1, v0+2)
	}
	// a's change is computed against b's write: only m changed.
	if len(d.Instances) != 1 || len(d.Instances[0].Fields) != 1 || string(d.Instances[0].Fields["m"]) != `2` {
		t.Errorf("delta of a: %+v, want only m", d.Instances)
	}
	snap := mustSnapshot(t, b, s)
	if snap.Version != v0+2 || string(snap.Instances[0].Fields["n"]) != `1` || string(snap.Instances[0].Fields["m"]) != `2` {
		t.Errorf("snapshot: %d %+v", snap.Version, snap.Instances[0].Fields)
	}

	// A live writer holds the stream: Apply waits for its commit.
	coll := db.Collection(a.CollectionName(s.Channel))
	sid := bson.D{{Key: "_id", Value: "s:" + s.Anchor}}
	if _, err := coll.UpdateOne(t.Context(), sid, bson.D{{Key: "$set", Value: bson.D{
		{Key: "p", Value: int64(v0 + 3)}, {Key: "pw", Value: "other"}, {Key: "pt", Value: time.Now().UnixMilli()}}}}); err != nil {
		t.Fatal(err)
	}
	release := time.AfterFunc(300*time.Millisecond, func() {
		_, _ = coll.UpdateOne(context.Background(), sid, bson.D{{Key: "$set", Value: bson.D{
			{Key: "p", Value: int64(0)}, {Key: "pw", Value: ""}, {Key: "pt", Value: int64(0)}}}})
	})
	defer release.Stop()
	begin := time.Now()
	d = mustApply(t, a, s, inst("x", "n", `5`))
	if took := time.Since(begin); took < 250*time.Millisecond {
		t.Errorf("Apply did not wait for the pending write (%v)", took)
	}
	if d.Cold || d.Version != v0+3 {
		t.Errorf("Apply after the other writer: %+v, want version %d", d, v0+3)
	}
}

// TestMongoVersionsAcrossStores checks that versions stay monotonic across
// stores sharing a database and across a restart (a new store).
func TestMongoVersionsAcrossStores(t *testing.T) {
	db := freshDB(t, testClient(t))
	a := newMongoStore(t, db, cache.MongoOptions{})
	b := newMongoStore(t, db, cache.MongoOptions{})
	s := cache.Stream{Channel: "versions", Anchor: "1"}

	v := mustFill(t, a, s, inst("x", "n", `0`))
	step := func(st *cache.MongoStore, n int) {
		t.Helper()
		d := mustApply(t, st, s, inst("x", "n", strconv.Itoa(n)))
		if d.Cold || d.Version != v+1 {
			t.Fatalf("Apply %d: %+v, want version %d", n, d, v+1)
		}
		v = d.Version
		for _, other := range []*cache.MongoStore{a, b} {
			if snap := mustSnapshot(t, other, s); snap.Version != v || string(snap.Instances[0].Fields["n"]) != strconv.Itoa(n) {
				t.Fatalf("after Apply %d: snapshot %d %s, want %d", n, snap.Version, snap.Instances[0].Fields["n"], v)
			}
		}
	}
	step(a, 1)
	step(b, 2)
	step(a, 3)

	// A refill by one store exceeds every version; the other continues
	// from it.
	v2 := mustFill(t, b, s, inst("x", "n", `0`))
	if v2 <= v {
		t.Fatalf("Fill after applies: %d, want > %d", v2, v)
	}
	v = v2
	step(a, 4)
	if _, _, ok, _ := b.Since(t.Context(), s, v2-1); ok {
		t.Errorf("Since(version before the refill) answered")
	}

	// A new store on the same database, as after a restart.
	c := newMongoStore(t, db, cache.MongoOptions{})
	if snap := mustSnapshot(t, c, s); snap.Version != v {
		t.Errorf("new store: snapshot version %d, want %d", snap.Version, v)
	}
	step(c, 5)
	if err := c.Expire(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	d := newMongoStore(t, db, cache.MongoOptions{})
	for range 20 {
		v3 := mustFill(t, d, s, inst("x", "n", `0`))
		if v3 <= v {
			t.Fatalf("Fill after Expire by a new store: %d, want > %d", v3, v)
		}
		v = v3
	}
	step(a, 6)
}

// TestMongoCollectionNames checks that channels whose names reduce to the
// same text get different collections.
func TestMongoCollectionNames(t *testing.T) {
	db := freshDB(t, testClient(t))
	st := newMongoStore(t, db, cache.MongoOptions{})
	channels := []string{"room.chat", "room/chat", "room_chat", "room chat", strings.Repeat("x", 300)}
	names := make(map[string]bool)
	for i, ch := range channels {
		names[st.CollectionName(ch)] = true
		mustFill(t, st, cache.Stream{Channel: ch, Anchor: "1"}, inst("1", "ch", strconv.Itoa(i)))
	}
	if len(names) != len(channels) {
		t.Fatalf("%d channels got %d collection names: %v", len(channels), len(names), names)
	}
	for i, ch := range channels {
		snap := mustSnapshot(t, st, cache.Stream{Channel: ch, Anchor: "1"})
		if len(snap.Instances) != 1 || string(snap.Instances[0].Fields["ch"]) != strconv.Itoa(i) {
			t.Errorf("channel %q: %+v, want its own instance", ch, snap.Instances)
		}
	}
	list, err := db.ListCollectionNames(t.Context(), bson.D{})
	if err != nil {
		t.Fatal(err)
	}
	for name := range names {
		if !slices.Contains(list, name) {
			t.Errorf("collection %q missing from %v", name, list)
		}
	}
}

// TestMongoFieldRoundTrip stores awkward keys and values and checks that
// they come back byte-identical, that keys reach MongoDB escaped, and that
// native values can be queried.
func TestMongoFieldRoundTrip(t *testing.T) {
	db := freshDB(t, testClient(t))
	st := newMongoStore(t, db, cache.MongoOptions{})
	s := cache.Stream{Channel: "fields", Anchor: "1"}
	kv := []string{
		"plain", `"x"`, "a.b", `1`, "$set", `true`, "_id", `"shadow"`, "_v", `99`, "_d", `true`, "%", `null`,
		"", `"empty key"`, "a%2Eb", `"looks escaped"`, "é.ü", `"unicode key"`,
		"nested", `{"a.b":{"$x":[1,2,{"_y":null}]},"%":"p","":0}`,
		"int", `-42`, "big", `9007199254740993`, "max", `9223372036854775807`, "overflow", `18446744073709551616`,
		"float", `1.5`, "exp", `1e+21`, "small", `1e-7`, "floatInt", `1.0`, "negzero", `-0`,
		"ws", `{ "a" : 1 }`, "html", `"\u003cb\u003e \u0026"`, "unicode", `"héllo ✓ \u2028"`,
		"ctrl", `"a\nb\t\u0001"`, "time", `"2024-05-06T07:08:09.123456789Z"`, "ids", `["1","2","3"]`,
		"empty", `{}`, "emptyArr", `[]`, "dup", `{"a":1,"a":2}`, "nul", `"a\u0000b"`, "slash", `"a\/b"`,
		"deep", strings.Repeat("[", 80) + strings.Repeat("]", 80),
	}
	want := inst("1", kv...)
	v0 := mustFill(t, st, s, want, inst("2", "int", `7`))
	check := func(what string, got *cache.Instance) {
		t.Helper()
		if len(got.Fields) != len(want.Fields) {
			t.Errorf("%s: %d fields, want %d", what, len(got.Fields), len(want.Fields))
		}
		for k, v := range want.Fields {
			if g, ok := got.Fields[k]; !ok || !bytes.Equal(g, v) {
				t.Errorf("%s: field %q = %s (present %v), want %s", what, k, g, ok, v)
			}
		}
	}
	check("Snapshot", byID(mustSnapshot(t, st, s).Instances)["1"])

	// The same values again change nothing: they compare equal byte by byte.
	if d := mustApply(t, st, s, inst("1", kv...)); len(d.Instances) != 0 || d.Version != v0 {
		t.Errorf("re-applying the stored values: %+v, want no change", d)
	}
	d := mustApply(t, st, s, inst("1", "floatInt", `2.0`, "a.b", `1`))
	if len(d.Instances) != 1 || len(d.Instances[0].Fields) != 1 || string(d.Instances[0].Fields["floatInt"]) != `2.0` {
		t.Errorf("changing one field: %+v", d.Instances)
	}
	want.Fields["floatInt"] = json.RawMessage(`2.0`)
	changes, _, ok, err := st.Since(t.Context(), s, v0)
	if err != nil || !ok || len(changes) != 1 {
		t.Fatalf("Since: %d changes, ok %v, err %v", len(changes), ok, err)
	}
	check("Since", changes[0])

	// What MongoDB holds: escaped keys, native values where they round-trip.
	coll := db.Collection(st.CollectionName(s.Channel))
	var raw bson.Raw
	if err := coll.FindOne(t.Context(), bson.D{{Key: "_i", Value: "1"}}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	elems, _ := raw.Elements()
	for _, e := range elems {
		k := e.Key()
		if strings.Contains(k, ".") || strings.HasPrefix(k, "$") {
			t.Errorf("stored key %q is not escaped", k)
		}
	}
	for key, typ := range map[string]bson.Type{"int": bson.TypeInt64, "float": bson.TypeDouble, "time": bson.TypeString,
		"ids": bson.TypeArray, "nested": bson.TypeEmbeddedDocument, "html": bson.TypeString, "floatInt": bson.TypeBinary,
		"ws": bson.TypeBinary, "a%2Eb": bson.TypeInt64, "%24set": bson.TypeBoolean, "%5Fid": bson.TypeString} {
		if got := raw.Lookup(key).Type; got != typ {
			t.Errorf("stored %q has BSON type %v, want %v", key, got, typ)
		}
	}
	for _, q := range []bson.D{{{Key: "int", Value: -42}}, {{Key: "ids", Value: "2"}}, {{Key: "html", Value: "<b> &"}},
		{{Key: "nested.a%2Eb.%24x", Value: 2}}, {{Key: "float", Value: bson.D{{Key: "$gt", Value: 1}}}}} {
		n, err := coll.CountDocuments(t.Context(), q)
		if err != nil || n != 1 {
			t.Errorf("query %v: %d documents, err %v; want 1", q, n, err)
		}
	}
}

// TestMongoTooLarge checks that an instance over MongoDB's 16 MiB limit
// fails Fill and Apply with an error naming the stream and the instance,
// before anything is written.
func TestMongoTooLarge(t *testing.T) {
	db := freshDB(t, testClient(t))
	st := newMongoStore(t, db, cache.MongoOptions{})
	s := cache.Stream{Channel: "large", Anchor: "42"}
	big := &cache.Instance{Type: "Blob", ID: "7", Owner: "u1",
		Fields: map[string]json.RawMessage{"data": json.RawMessage(`"` + strings.Repeat("x", 17<<20) + `"`)}}
	checkErr := func(what string, err error) {
		t.Helper()
		var tl *cache.TooLargeError
		if !errors.As(err, &tl) {
			t.Fatalf("%s with a 17 MiB instance: error %v, want a *cache.TooLargeError", what, err)
		}
		if tl.Stream != s || tl.Key != big.Key() || tl.Size <= 16<<20 {
			t.Errorf("%s: %+v", what, tl)
		}
		for _, part := range []string{s.String(), `"Blob"`, `"7"`, `"u1"`} {
			if !strings.Contains(err.Error(), part) {
				t.Errorf("%s: error %q does not name %s", what, err, part)
			}
		}
	}
	_, err := st.Fill(t.Context(), s, []*cache.Instance{inst("small"), big})
	checkErr("Fill", err)
	if _, err := st.Snapshot(t.Context(), s); !errors.Is(err, cache.ErrCold) {
		t.Errorf("Snapshot after a failed Fill: %v, want ErrCold", err)
	}

	v := mustFill(t, st, s, inst("small", "n", `1`))
	_, err = st.Apply(t.Context(), []cache.Write{{Stream: s, Changes: []*cache.Instance{inst("small", "n", `2`), big}}})
	checkErr("Apply", err)
	snap := mustSnapshot(t, st, s)
	if snap.Version != v || len(snap.Instances) != 1 || string(snap.Instances[0].Fields["n"]) != `1` {
		t.Errorf("after a failed Apply: version %d, %+v; want %d and nothing changed", snap.Version, snap.Instances, v)
	}

	// Just under the limit works.
	fits := &cache.Instance{Type: "Blob", ID: "8", Fields: map[string]json.RawMessage{"data": json.RawMessage(`"` + strings.Repeat("y", 15<<20) + `"`)}}
	mustApply(t, st, s, fits)
	got := byID(mustSnapshot(t, st, s).Instances)["8"]
	if got == nil || !bytes.Equal(got.Fields["data"], fits.Fields["data"]) {
		t.Errorf("a 15 MiB instance did not round-trip")
	}
}

// TestMongoTombstonePruning checks that tombstones beyond MaxTombstones
// are dropped and that Since then refuses the versions they covered.
func TestMongoTombstonePruning(t *testing.T) {
	const limit = 4
	db := freshDB(t, testClient(t))
	st := newMongoStore(t, db, cache.MongoOptions{MaxTombstones: limit})
	s := cache.Stream{Channel: "prune", Anchor: "1"}
	v0 := mustFill(t, st, s, inst("keep"))
	const n = 10
	var deletedAt [n]uint64
	for i := range n {
		id := strconv.Itoa(i)
		mustApply(t, st, s, inst(id))
		deletedAt[i] = mustApply(t, st, s, &cache.Instance{Type: "T", ID: id, Deleted: true}).Version
	}
	if _, _, ok, err := st.Since(t.Context(), s, v0); err != nil || ok {
		t.Errorf("Since(fill version) after %d deletes with MaxTombstones %d: ok %v, err %v; want ok=false", n, limit, ok, err)
	}
	changes, _, ok, err := st.Since(t.Context(), s, deletedAt[n-3])
	if err != nil || !ok {
		t.Fatalf("Since(recent version): ok %v, err %v", ok, err)
	}
	if len(changes) != 2 || !changes[0].Deleted || !changes[1].Deleted {
		t.Errorf("Since(recent version): %+v, want the last 2 tombstones", changes)
	}
	gone := db.Collection(st.TombstoneCollectionName(s.Channel))
	if dead, err := gone.CountDocuments(t.Context(), bson.D{}); err != nil || dead > limit {
		t.Errorf("%d tombstones stored (err %v), want at most %d", dead, err, limit)
	}
	if snap := mustSnapshot(t, st, s); len(snap.Instances) != 1 {
		t.Errorf("snapshot: %+v, want only the kept instance", snap.Instances)
	}
}

// TestMongoStreams checks the listing of hot streams and ExpireChannel.
func TestMongoStreams(t *testing.T) {
	db := freshDB(t, testClient(t))
	st := newMongoStore(t, db, cache.MongoOptions{})
	a1 := cache.Stream{Channel: "list-a", Anchor: "1"}
	a2 := cache.Stream{Channel: "list-a", Anchor: "2"}
	b1 := cache.Stream{Channel: "list-b", Anchor: "1"}
	start := time.Now().Add(-time.Second)
	versions := map[cache.Stream]uint64{}
	for _, s := range []cache.Stream{a1, a2, b1} {
		versions[s] = mustFill(t, st, s, inst("x"))
	}
	versions[a2] = mustApply(t, st, a2, inst("y")).Version
	list := func() map[cache.Stream]cache.StreamInfo {
		t.Helper()
		infos, err := st.Streams(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		m := make(map[cache.Stream]cache.StreamInfo)
		for _, in := range infos {
			m[in.Stream] = in
		}
		return m
	}
	got := list()
	if len(got) != 3 {
		t.Errorf("Streams: %+v, want 3", got)
	}
	for s, v := range versions {
		if in := got[s]; in.Version != v || in.LastWrite.Before(start) || in.LastWrite.After(time.Now().Add(time.Second)) {
			t.Errorf("Streams: %s is %+v, want version %d written just now", s, in, v)
		}
	}
	if err := st.Expire(t.Context(), a1); err != nil {
		t.Fatal(err)
	}
	if got := list(); len(got) != 2 {
		t.Errorf("Streams after Expire: %+v, want 2", got)
	}
	if err := st.ExpireChannel(t.Context(), "list-a"); err != nil {
		t.Fatal(err)
	}
	if got := list(); len(got) != 1 || got[b1].Version != versions[b1] {
		t.Errorf("Streams after ExpireChannel: %+v, want only %s", got, b1)
	}
	if _, err := st.Snapshot(t.Context(), a2); !errors.Is(err, cache.ErrCold) {
		t.Errorf("Snapshot after ExpireChannel: %v, want ErrCold", err)
	}
	if d := mustApply(t, st, a2, inst("z")); !d.Cold {
		t.Errorf("Apply after ExpireChannel: %+v, want Cold", d)
	}
	if v := mustFill(t, st, a2, inst("x")); v <= versions[a2] {
		t.Errorf("Fill after ExpireChannel: version %d, want > %d", v, versions[a2])
	}
	if n, _ := db.Collection(st.CollectionName("list-a")).CountDocuments(t.Context(), bson.D{{Key: "_g", Value: bson.D{{Key: "$gte", Value: 0}}}}); n != 1 {
		t.Errorf("%d instance documents in list-a after ExpireChannel and one Fill, want 1", n)
	}
}

// TestMongoDeadWriter simulates a writer that died half-way through a
// write: the stream is then treated as cold until it is filled again.
func TestMongoDeadWriter(t *testing.T) {
	db := freshDB(t, testClient(t))
	const timeout = 300 * time.Millisecond
	st := newMongoStore(t, db, cache.MongoOptions{PendingTimeout: timeout})
	s := cache.Stream{Channel: "dead", Anchor: "1"}
	v0 := mustFill(t, st, s, inst("a", "n", `1`), inst("b", "n", `1`))
	v1 := mustApply(t, st, s, inst("b", "n", `2`)).Version
	coll := db.Collection(st.CollectionName(s.Channel))
	ctx := t.Context()

	// A live writer holds the stream but has written nothing yet: reads
	// answer at once.
	lock := bson.D{{Key: "$set", Value: bson.D{{Key: "p", Value: int64(v1 + 1)}, {Key: "pw", Value: "other-writer"},
		{Key: "pt", Value: time.Now().UnixMilli()}}}}
	if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_id", Value: "s:" + s.Anchor}}, lock); err != nil {
		t.Fatal(err)
	}
	if snap := mustSnapshot(t, st, s); snap.Version != v1 {
		t.Errorf("Snapshot with a write pending: version %d, want %d", snap.Version, v1)
	}
	// It wrote one of its two instances and died.
	if _, err := coll.UpdateOne(ctx, bson.D{{Key: "_i", Value: "a"}, {Key: "_g", Value: int64(v0)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "_v", Value: int64(v1 + 1)}, {Key: "n", Value: int64(3)}}}}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := st.Snapshot(ctx, s); !errors.Is(err, cache.ErrCold) {
		t.Errorf("Snapshot with a dead half-written write: %v, want ErrCold", err)
	}
	if took := time.Since(start); took > timeout+2*time.Second {
		t.Errorf("Snapshot took %v to give up on a dead writer (PendingTimeout %v)", took, timeout)
	}
	if changes, _, ok, err := st.Since(ctx, s, v0); ok || err != nil {
		t.Errorf("Since with a dead half-written write: ok %v (%d changes), err %v; want ok=false", ok, len(changes), err)
	}
	if d := mustApply(t, st, s, inst("b", "n", `4`)); !d.Cold {
		t.Errorf("Apply with a dead writer: %+v, want Cold", d)
	}
	if _, err := st.Snapshot(ctx, s); !errors.Is(err, cache.ErrCold) {
		t.Errorf("Snapshot after Apply marked the stream cold: %v, want ErrCold", err)
	}
	v2 := mustFill(t, st, s, inst("a", "n", `5`))
	if snap := mustSnapshot(t, st, s); v2 <= v1+1 || snap.Version != v2 || len(snap.Instances) != 1 {
		t.Errorf("after refill: version %d (fill %d), %+v", snap.Version, v2, snap.Instances)
	}
	if d := mustApply(t, st, s, inst("a", "n", `6`)); d.Cold || d.Version != v2+1 {
		t.Errorf("Apply after refill: %+v, want version %d", d, v2+1)
	}
}

// TestMongoClaims covers the version claims of Apply: a claim left by a
// writer that died between its claim and its lock holds the version back
// until PendingTimeout, then the next writer clears it; and a store deletes
// the claims of its committed writes, so they do not pile up.
func TestMongoClaims(t *testing.T) {
	db := freshDB(t, testClient(t))
	const timeout = 300 * time.Millisecond
	st := newMongoStore(t, db, cache.MongoOptions{PendingTimeout: timeout})
	s := cache.Stream{Channel: "claims", Anchor: "a:1"}
	v0 := mustFill(t, st, s, inst("a", "n", `1`))
	coll := db.Collection(st.CollectionName(s.Channel))
	ctx := t.Context()

	// A dead writer's claim of the move from the current version.
	dead := bson.D{{Key: "_id", Value: fmt.Sprintf("k:%s:%d", s.Anchor, v0)}, {Key: "w", Value: "dead-writer"},
		{Key: "_a", Value: s.Anchor}, {Key: "_g", Value: int64(-2)}, {Key: "_i", Value: int64(v0)},
		{Key: "t", Value: time.Now().UnixMilli()}}
	if _, err := coll.InsertOne(ctx, dead); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	d := mustApply(t, st, s, inst("a", "n", `2`))
	if d.Cold || d.Version != v0+1 {
		t.Errorf("Apply past a dead claim: %+v, want version %d", d, v0+1)
	}
	if took := time.Since(start); took < timeout {
		t.Errorf("Apply took the claim of a live writer (%v old) for dead: PendingTimeout is %v", took, timeout)
	}

	claims := func() int64 {
		n, err := coll.CountDocuments(ctx, bson.D{{Key: "_g", Value: int64(-2)}})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for i := range 40 {
		if d := mustApply(t, st, s, inst("a", "n", strconv.Itoa(3+i))); d.Version != v0+2+uint64(i) {
			t.Fatalf("Apply %d: %+v, want version %d", i, d, v0+2+uint64(i))
		}
	}
	if n := claims(); n >= 16 {
		t.Errorf("%d claims left after 41 committed writes; want fewer than 16 (deleted 16 at a time)", n)
	}
	// A Fill removes the claims of the versions below its own.
	mustFill(t, st, s, inst("a", "n", `0`))
	if n := claims(); n != 0 {
		t.Errorf("%d claims left after Fill, want 0", n)
	}
}

// TestMongoTombstoneCollection checks that tombstones are kept apart from
// the live state (issue 20: on FerretDB v1 a write costs more the more
// documents its collection holds), and that a key deleted, created again
// and deleted again reads back once, at its latest state.
func TestMongoTombstoneCollection(t *testing.T) {
	db := freshDB(t, testClient(t))
	st := newMongoStore(t, db, cache.MongoOptions{})
	s := cache.Stream{Channel: "gone", Anchor: "1"}
	v0 := mustFill(t, st, s, inst("keep"), inst("a", "n", `1`), inst("b", "n", `1`))
	del := func(ids ...string) cache.Delta {
		t.Helper()
		var ch []*cache.Instance
		for _, id := range ids {
			ch = append(ch, &cache.Instance{Type: "T", ID: id, Deleted: true})
		}
		return mustApply(t, st, s, ch...)
	}
	del("a", "b")
	v2 := mustApply(t, st, s, inst("a", "n", `2`)).Version
	// Created and deleted in one call: a tombstone, no live document.
	ds, err := st.Apply(t.Context(), []cache.Write{{Stream: s, Changes: []*cache.Instance{inst("c", "n", `1`)}},
		{Stream: s, Changes: []*cache.Instance{{Type: "T", ID: "c", Deleted: true}}}})
	if err != nil || len(ds) != 2 || !ds[1].Instances[0].Deleted {
		t.Fatalf("create and delete in one call: %+v, %v", ds, err)
	}
	v4 := del("a").Version

	live := db.Collection(st.CollectionName(s.Channel))
	if n, err := live.CountDocuments(t.Context(), bson.D{{Key: "_d", Value: true}}); err != nil || n != 0 {
		t.Errorf("%d tombstones in the channel collection (err %v), want none", n, err)
	}
	if n, err := live.CountDocuments(t.Context(), bson.D{{Key: "_g", Value: bson.D{{Key: "$gte", Value: 0}}}}); err != nil || n != 1 {
		t.Errorf("%d instance documents in the channel collection (err %v), want the 1 live one", n, err)
	}
	gone := db.Collection(st.TombstoneCollectionName(s.Channel))
	if n, err := gone.CountDocuments(t.Context(), bson.D{}); err != nil || n != 4 {
		t.Errorf("%d tombstones stored (err %v), want 4 (a twice, b, c)", n, err)
	}
	if snap := mustSnapshot(t, st, s); len(snap.Instances) != 1 || snap.Instances[0].ID != "keep" || snap.Version != v4 {
		t.Errorf("snapshot: version %d, %+v; want version %d with only keep", snap.Version, snap.Instances, v4)
	}
	for _, c := range []struct {
		from uint64
		want map[string]bool // id → deleted
	}{
		{v0, map[string]bool{"a": true, "b": true, "c": true}},
		{v2, map[string]bool{"a": true, "c": true}},
		{v4 - 1, map[string]bool{"a": true}},
		{v4, map[string]bool{}},
	} {
		changes, cur, ok, err := st.Since(t.Context(), s, c.from)
		if err != nil || !ok || cur != v4 {
			t.Fatalf("Since(%d): current %d, ok %v, err %v", c.from, cur, ok, err)
		}
		got := map[string]bool{}
		for _, in := range changes {
			if _, dup := got[in.ID]; dup {
				t.Errorf("Since(%d): %s twice: %+v", c.from, in.ID, changes)
			}
			got[in.ID] = in.Deleted
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("Since(%d): %v (id: deleted), want %v", c.from, got, c.want)
		}
	}
	if err := st.Expire(t.Context(), s); err != nil {
		t.Fatal(err)
	}
	if n, err := gone.CountDocuments(t.Context(), bson.D{}); err != nil || n != 0 {
		t.Errorf("%d tombstones after Expire (err %v), want none", n, err)
	}
}

// TestMongoConcurrentDeletes reads a stream while another store deletes
// and creates instances in it again: a deletion removes the live document
// of the channel collection after writing the tombstone to the tombstone
// collection, and no Snapshot or Since may see the stream between the two.
func TestMongoConcurrentDeletes(t *testing.T) {
	db := freshDB(t, testClient(t))
	writer := newMongoStore(t, db, cache.MongoOptions{MaxTombstones: 8})
	reader := newMongoStore(t, db, cache.MongoOptions{})
	s := cache.Stream{Channel: "toggle", Anchor: "1"}
	const keys = 3
	var initial []*cache.Instance
	for i := range keys {
		initial = append(initial, inst("k"+strconv.Itoa(i), "w", `0`))
	}
	v0 := mustFill(t, writer, s, append(initial, inst("static"))...)
	writes := 150
	if testing.Short() {
		writes = 40
	}
	// Write w (from 1) deletes every key when odd, and creates them again
	// with w when even, so that at version v0+w the keys are there, with
	// w, exactly when w is even.
	var done atomic.Bool
	var wg sync.WaitGroup
	var reads atomic.Int64
	for r := range 2 {
		wg.Go(func() {
			for i := 0; !done.Load() && !t.Failed(); i++ {
				if r == 1 && i%2 == 1 {
					changes, cur, ok, err := reader.Since(t.Context(), s, v0)
					if err != nil {
						t.Errorf("Since: %v", err)
						return
					}
					if !ok {
						continue // pruned: the floor rose past v0
					}
					w := cur - v0
					if w == 0 {
						continue
					}
					if len(changes) != keys {
						t.Errorf("Since(v0) at w=%d: %d changes, want %d: %+v", w, len(changes), keys, changes)
						return
					}
					for _, in := range changes {
						if in.Deleted != (w%2 == 1) || (!in.Deleted && string(in.Fields["w"]) != strconv.FormatUint(w, 10)) {
							t.Errorf("Since(v0) at w=%d: %+v (inconsistent read)", w, in)
							return
						}
					}
				} else {
					snap, err := reader.Snapshot(t.Context(), s)
					if err != nil {
						t.Errorf("Snapshot: %v", err)
						return
					}
					w := snap.Version - v0
					want := 1
					if w%2 == 0 {
						want += keys
					}
					if len(snap.Instances) != want {
						t.Errorf("Snapshot at w=%d: %d instances, want %d (inconsistent read)", w, len(snap.Instances), want)
						return
					}
				}
				reads.Add(1)
			}
		})
	}
	for w := 1; w <= writes && !t.Failed(); w++ {
		var ch []*cache.Instance
		for i := range keys {
			if w%2 == 1 {
				ch = append(ch, &cache.Instance{Type: "T", ID: "k" + strconv.Itoa(i), Deleted: true})
			} else {
				ch = append(ch, inst("k"+strconv.Itoa(i), "w", strconv.Itoa(w)))
			}
		}
		if d := mustApply(t, writer, s, ch...); d.Cold || d.Version != v0+uint64(w) {
			t.Fatalf("write %d: %+v, want version %d", w, d, v0+uint64(w))
		}
	}
	done.Store(true)
	wg.Wait()
	t.Logf("%d writes, %d concurrent reads", writes, reads.Load())
}

// TestMongoTombstoneCountCorrected checks that a stream whose tombstone
// count exceeds what its tombstone collection holds (tombstones kept
// beside the live documents by an earlier version of the store) gets the
// count corrected by its next prune instead of pruning on every write.
func TestMongoTombstoneCountCorrected(t *testing.T) {
	const limit = 4
	db := freshDB(t, testClient(t))
	st := newMongoStore(t, db, cache.MongoOptions{MaxTombstones: limit})
	s := cache.Stream{Channel: "count", Anchor: "1"}
	mustFill(t, st, s, inst("a"), inst("b"))
	coll := db.Collection(st.CollectionName(s.Channel))
	if _, err := coll.UpdateOne(t.Context(), bson.D{{Key: "_id", Value: "s:" + s.Anchor}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "ts", Value: int64(900)}}}}); err != nil {
		t.Fatal(err)
	}
	mustApply(t, st, s, &cache.Instance{Type: "T", ID: "a", Deleted: true})
	var sd struct {
		Tombstones int64 `bson:"ts"`
	}
	if err := coll.FindOne(t.Context(), bson.D{{Key: "_id", Value: "s:" + s.Anchor}}).Decode(&sd); err != nil {
		t.Fatal(err)
	}
	if sd.Tombstones != 1 {
		t.Errorf("tombstone count %d after the prune, want 1 (the one stored)", sd.Tombstones)
	}
	if changes, _, ok, err := st.Since(t.Context(), s, mustSnapshot(t, st, s).Version-1); err != nil || !ok || len(changes) != 1 || !changes[0].Deleted {
		t.Errorf("Since before the delete: %+v, ok %v, err %v; want its tombstone", changes, ok, err)
	}
}
