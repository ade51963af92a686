package cache_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/rxgorm/rxgorm/cache"
)

// Benchmarks of the stores on a 10,000-instance stream: a hot snapshot, and
// a flush of 1,000 changed instances in one Apply. The raw-driver
// benchmarks run the same work without the store on the same server, to
// tell the store's cost from the server's (FerretDB on SQLite unless
// RXGORM_MONGO_URI points at a MongoDB).

const (
	benchInstances = 10000
	benchChanged   = 1000
)

var benchStream = cache.Stream{Channel: "bench.messages", Anchor: "42"}

// benchRow returns a typical flat instance: a chat message with an author
// id, a body, a time stamp and a list of ids.
func benchRow(i, n int) *cache.Instance {
	created := time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC).Add(time.Duration(i) * time.Second)
	f := map[string]json.RawMessage{
		"id":         json.RawMessage(strconv.Itoa(i)),
		"author":     json.RawMessage(`"` + strconv.Itoa(i%50) + `"`),
		"body":       json.RawMessage(fmt.Sprintf(`"message number %d, with a few words of text in it"`, i)),
		"created_at": json.RawMessage(`"` + created.Format(time.RFC3339Nano) + `"`),
		"edited":     json.RawMessage(`false`),
		"reactions":  json.RawMessage(`["1","7","12"]`),
		"n":          json.RawMessage(strconv.Itoa(n)),
	}
	return &cache.Instance{Type: "Message", ID: strconv.Itoa(i), Fields: f}
}

func benchRows() []*cache.Instance {
	rows := make([]*cache.Instance, benchInstances)
	for i := range rows {
		rows[i] = benchRow(i, 0)
	}
	return rows
}

func benchMongo(b *testing.B) (*cache.MongoStore, *mongo.Database) {
	db := freshDB(b, testClient(b))
	return newMongoStore(b, db, cache.MongoOptions{}), db
}

func benchSnapshot(b *testing.B, st cache.Store) {
	ctx := b.Context()
	if _, err := st.Fill(ctx, benchStream, benchRows()); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		snap, err := st.Snapshot(ctx, benchStream)
		if err != nil {
			b.Fatal(err)
		}
		if len(snap.Instances) != benchInstances {
			b.Fatalf("snapshot of %d instances, want %d", len(snap.Instances), benchInstances)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchInstances, "ns/instance")
}

func benchApply(b *testing.B, st cache.Store) {
	ctx := b.Context()
	if _, err := st.Fill(ctx, benchStream, benchRows()); err != nil {
		b.Fatal(err)
	}
	round := 0
	for b.Loop() {
		round++
		changes := make([]*cache.Instance, benchChanged)
		first := (round * benchChanged) % benchInstances
		for i := range changes {
			changes[i] = benchRow(first+i, round)
		}
		ds, err := st.Apply(ctx, []cache.Write{{Stream: benchStream, Changes: changes}})
		if err != nil {
			b.Fatal(err)
		}
		if len(ds[0].Instances) != benchChanged {
			b.Fatalf("delta of %d instances, want %d", len(ds[0].Instances), benchChanged)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchChanged, "ns/instance")
}

// BenchmarkMongoSnapshot10k reads a hot 10,000-instance stream.
func BenchmarkMongoSnapshot10k(b *testing.B) {
	st, _ := benchMongo(b)
	benchSnapshot(b, st)
}

// BenchmarkMongoApply1000 flushes 1,000 changed instances of a
// 10,000-instance stream in one Apply.
func BenchmarkMongoApply1000(b *testing.B) {
	st, _ := benchMongo(b)
	benchApply(b, st)
}

func BenchmarkMemorySnapshot10k(b *testing.B) {
	benchSnapshot(b, cache.NewMemory(cache.MemoryOptions{}))
}

func BenchmarkMemoryApply1000(b *testing.B) {
	benchApply(b, cache.NewMemory(cache.MemoryOptions{}))
}

// BenchmarkMongoRawFind10k is the server's share of a snapshot: one find
// of the 10,000 documents the store wrote, iterated without decoding.
func BenchmarkMongoRawFind10k(b *testing.B) {
	st, db := benchMongo(b)
	ctx := b.Context()
	if _, err := st.Fill(ctx, benchStream, benchRows()); err != nil {
		b.Fatal(err)
	}
	coll := db.Collection(st.CollectionName(benchStream.Channel))
	filter := bson.D{{Key: "_a", Value: benchStream.Anchor}, {Key: "_g", Value: bson.D{{Key: "$gte", Value: 0}}}}
	benchFind(b, coll, filter, benchInstances)
}

// benchFind times one find of filter per iteration, iterating the
// documents without decoding them; there must be want of them.
func benchFind(b *testing.B, coll *mongo.Collection, filter bson.D, want int) {
	ctx := b.Context()
	for b.Loop() {
		cur, err := coll.Find(ctx, filter, options.Find().SetBatchSize(1000))
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for cur.Next(ctx) {
			n++
		}
		if err := cur.Err(); err != nil {
			b.Fatal(err)
		}
		cur.Close(ctx)
		if n != want {
			b.Fatalf("found %d documents, want %d", n, want)
		}
	}
}

// BenchmarkMongoRawPackedFind10k is the server's floor for reading 10,000
// instances whatever the store's layout: the instances' JSON packed into
// ten opaque binary documents of 1,000 each (the fewest, cheapest values
// a server can return), read with one find and iterated without decoding.
// It tells whether any layout could reach a snapshot target on the
// server at hand.
func BenchmarkMongoRawPackedFind10k(b *testing.B) {
	db := freshDB(b, testClient(b))
	ctx := b.Context()
	coll := db.Collection("packed")
	rows := benchRows()
	const per = 1000
	for k := 0; k < benchInstances/per; k++ {
		blob, err := json.Marshal(rows[k*per : (k+1)*per])
		if err != nil {
			b.Fatal(err)
		}
		if _, err := coll.InsertOne(ctx, bson.D{{Key: "_id", Value: k}, {Key: "_a", Value: benchStream.Anchor},
			{Key: "x", Value: bson.Binary{Data: blob}}}); err != nil {
			b.Fatal(err)
		}
	}
	benchFind(b, coll, bson.D{{Key: "_a", Value: benchStream.Anchor}}, benchInstances/per)
}

// BenchmarkMongoRawBulk1000 is the server's share of a flush: 1,000
// replacements by _id in a 10,000-document collection, in ordered
// BulkWrites of the size the store uses on this server (16 on FerretDB,
// whose update command stalls at about 100 statements).
func BenchmarkMongoRawBulk1000(b *testing.B) {
	client := testClient(b)
	db := freshDB(b, client)
	ctx := b.Context()
	batch := 1000
	if isFerretDB(b, client) {
		batch = 16
	}
	coll := db.Collection("raw")
	docs := make([]any, benchInstances)
	for i := range docs {
		docs[i] = rawDoc(i, 0)
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		b.Fatal(err)
	}
	round := 0
	for b.Loop() {
		round++
		first := (round * benchChanged) % benchInstances
		models := make([]mongo.WriteModel, benchChanged)
		for i := range models {
			models[i] = mongo.NewReplaceOneModel().SetFilter(bson.D{{Key: "_id", Value: strconv.Itoa(first + i)}}).
				SetReplacement(rawDoc(first+i, round)).SetUpsert(true)
		}
		for lo := 0; lo < len(models); lo += batch {
			res, err := coll.BulkWrite(ctx, models[lo:min(lo+batch, len(models))], options.BulkWrite().SetOrdered(true))
			if err != nil {
				b.Fatal(err)
			}
			if res.MatchedCount != int64(min(batch, len(models)-lo)) {
				b.Fatalf("matched %d", res.MatchedCount)
			}
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/benchChanged, "ns/instance")
}

func rawDoc(i, n int) bson.D {
	return bson.D{{Key: "_id", Value: strconv.Itoa(i)}, {Key: "_a", Value: "42"}, {Key: "_v", Value: int64(n)},
		{Key: "id", Value: int64(i)}, {Key: "author", Value: strconv.Itoa(i % 50)},
		{Key: "body", Value: fmt.Sprintf("message number %d, with a few words of text in it", i)},
		{Key: "created_at", Value: "2026-01-02T03:04:05.123456789Z"}, {Key: "edited", Value: false},
		{Key: "reactions", Value: bson.A{"1", "7", "12"}}, {Key: "n", Value: int64(n)}}
}

// BenchmarkMongoApplyOne measures one delta (one changed instance, the
// common case of a chat message or a read receipt) on a stream of 50 live
// instances beside 0, 2,000 and 8,000 tombstones of deleted ones: the cost
// per delta must not grow with them (issue 20). BenchmarkMongoRawReplaceOne
// is the driver's write of the same document.
func BenchmarkMongoApplyOne(b *testing.B) {
	for _, dead := range []int{0, 2000, 8000} {
		b.Run(fmt.Sprintf("tombstones=%d", dead), func(b *testing.B) {
			st, _ := benchMongo(b)
			ctx := b.Context()
			rows := make([]*cache.Instance, 50+dead)
			for i := range rows {
				rows[i] = benchRow(i, 0)
			}
			if _, err := st.Fill(ctx, benchStream, rows); err != nil {
				b.Fatal(err)
			}
			for lo := 50; lo < len(rows); lo += 1000 {
				var gone []*cache.Instance
				for i := lo; i < min(lo+1000, len(rows)); i++ {
					gone = append(gone, &cache.Instance{Type: "Message", ID: strconv.Itoa(i), Deleted: true})
				}
				if _, err := st.Apply(ctx, []cache.Write{{Stream: benchStream, Changes: gone}}); err != nil {
					b.Fatal(err)
				}
			}
			round := 0
			for b.Loop() {
				round++
				ds, err := st.Apply(ctx, []cache.Write{{Stream: benchStream, Changes: []*cache.Instance{benchRow(round%50, round)}}})
				if err != nil {
					b.Fatal(err)
				}
				if len(ds[0].Instances) != 1 {
					b.Fatalf("delta of %d instances, want 1", len(ds[0].Instances))
				}
			}
		})
	}
}

// BenchmarkMongoRawReplaceOne writes one document by _id with the driver,
// in a collection of 8,050 documents.
func BenchmarkMongoRawReplaceOne(b *testing.B) {
	client := testClient(b)
	db := freshDB(b, client)
	ctx := b.Context()
	coll := db.Collection("raw")
	docs := make([]any, 8050)
	for i := range docs {
		docs[i] = rawDoc(i, 0)
	}
	if _, err := coll.InsertMany(ctx, docs); err != nil {
		b.Fatal(err)
	}
	round := 0
	for b.Loop() {
		round++
		res, err := coll.ReplaceOne(ctx, bson.D{{Key: "_id", Value: strconv.Itoa(round % 50)}}, rawDoc(round%50, round), options.Replace().SetUpsert(true))
		if err != nil {
			b.Fatal(err)
		}
		if res.MatchedCount != 1 {
			b.Fatalf("matched %d", res.MatchedCount)
		}
	}
}
