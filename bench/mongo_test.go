package bench

import (
	"encoding/json"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/cache"
	"github.com/rxgorm/rxgorm/cache/mongotest"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// BenchmarkMongoDelta measures the MongoDB store's write of one delta (one
// changed message of a stream of 50 live ones, as a chat message or a read
// receipt) beside 0, 1,000 and 10,000 tombstones of deleted messages, on
// the server mongotest gives (FerretDB v1.24 on SQLite, or
// RXGORM_MONGO_URI), against the driver's own write of the same document
// in a collection of the same documents (issue 20: the store's cost per
// delta must stay flat as tombstones accumulate, and near the driver's).
//
//   - store: cache.MongoStore.Apply of the change: the reads of the stream
//     document and the instance, the version's claim, the check of the
//     stream document, and one ordered write (the lock, the document, the
//     commit), plus a delete of 16 claims every 16 deltas.
//   - raw: mongo-driver ReplaceOne by _id of a document the store wrote,
//     with the same change (the edit count and the version), in a copy of
//     the store's channel collection (the live state: the tombstones are
//     in a collection of their own).
//   - raw-onecoll: the same write in one collection holding every
//     document of the store, tombstones included: the layout before issue
//     20 was closed, whose cost on FerretDB v1 grows with the tombstones
//     (it reads the whole table to find an _id).
//
// The tombstones are made in batches of 1,000 deletes per Apply.
func BenchmarkMongoDelta(b *testing.B) {
	uri := mongotest.Start(b)
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = client.Disconnect(b.Context()) })
	for _, dead := range []int{0, 1000, 10000} {
		db := client.Database(fmt.Sprintf("rxbench_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e6, dead))
		b.Cleanup(func() { _ = db.Drop(b.Context()) })
		// Tombstones are kept, not pruned, so that they accumulate.
		st, err := cache.NewMongo(b.Context(), db, cache.MongoOptions{MaxTombstones: 1 << 20})
		if err != nil {
			b.Fatal(err)
		}
		s := cache.Stream{Channel: "bench", Anchor: "42"}
		rows := make([]*cache.Instance, 50+dead)
		for i := range rows {
			rows[i] = message(i, 0)
		}
		if _, err := st.Fill(b.Context(), s, rows); err != nil {
			b.Fatal(err)
		}
		for lo := 50; lo < len(rows); lo += 1000 {
			var gone []*cache.Instance
			for i := lo; i < min(lo+1000, len(rows)); i++ {
				gone = append(gone, &cache.Instance{Type: "Message", ID: strconv.Itoa(i), Deleted: true})
			}
			if _, err := st.Apply(b.Context(), []cache.Write{{Stream: s, Changes: gone}}); err != nil {
				b.Fatal(err)
			}
		}
		round := 0
		b.Run(fmt.Sprintf("store/tombstones=%d", dead), func(b *testing.B) {
			for b.Loop() {
				round++
				ds, err := st.Apply(b.Context(), []cache.Write{{Stream: s, Changes: []*cache.Instance{message(round%50, round)}}})
				if err != nil {
					b.Fatal(err)
				}
				if ds[0].Cold || len(ds[0].Instances) != 1 {
					b.Fatalf("delta %+v, want one instance", ds[0])
				}
			}
		})

		// The same documents in collections of their own.
		var docs, tombs []any
		gone, err := db.Collection(st.TombstoneCollectionName(s.Channel)).Find(b.Context(), bson.D{})
		if err != nil {
			b.Fatal(err)
		}
		for gone.Next(b.Context()) {
			tombs = append(tombs, append(bson.Raw(nil), gone.Current...))
		}
		if err := gone.Err(); err != nil {
			b.Fatal(err)
		}
		gone.Close(b.Context())
		if len(tombs) != dead {
			b.Fatalf("found %d tombstones, want %d", len(tombs), dead)
		}
		src := db.Collection(st.CollectionName(s.Channel))
		cur, err := src.Find(b.Context(), bson.D{})
		if err != nil {
			b.Fatal(err)
		}
		live := map[int]bson.D{}
		for cur.Next(b.Context()) {
			doc := append(bson.Raw(nil), cur.Current...)
			docs = append(docs, doc)
			if id, ok := doc.Lookup("_i").StringValueOK(); ok {
				if n, err := strconv.Atoi(id); err == nil && n < 50 {
					var d bson.D
					if err := bson.Unmarshal(doc, &d); err != nil {
						b.Fatal(err)
					}
					live[n] = d
				}
			}
		}
		if err := cur.Err(); err != nil {
			b.Fatal(err)
		}
		cur.Close(b.Context())
		if len(live) != 50 {
			b.Fatalf("found %d live messages, want 50", len(live))
		}
		raw := db.Collection("raw")
		if _, err := raw.InsertMany(b.Context(), docs); err != nil {
			b.Fatal(err)
		}
		one := db.Collection("raw_onecoll")
		if _, err := one.InsertMany(b.Context(), append(docs, tombs...)); err != nil {
			b.Fatal(err)
		}
		for _, c := range []struct {
			name string
			coll *mongo.Collection
		}{{"raw", raw}, {"raw-onecoll", one}} {
			b.Run(fmt.Sprintf("%s/tombstones=%d", c.name, dead), func(b *testing.B) {
				for b.Loop() {
					round++
					doc := live[round%50]
					for i := range doc { // the same change as the store's: the edit count and the version
						if doc[i].Key == "n" || doc[i].Key == "_v" {
							doc[i].Value = int64(round)
						}
					}
					res, err := c.coll.ReplaceOne(b.Context(), bson.D{{Key: "_id", Value: doc[0].Value}}, doc)
					if err != nil {
						b.Fatal(err)
					}
					if res.MatchedCount != 1 {
						b.Fatalf("matched %d documents, want 1", res.MatchedCount)
					}
				}
			})
		}
	}
}

// message is message i of the benchmark's stream, at edit n.
func message(i, n int) *cache.Instance {
	f := map[string][]byte{
		"id":         []byte(strconv.Itoa(i)),
		"author":     []byte(`"` + strconv.Itoa(i%50) + `"`),
		"body":       fmt.Appendf(nil, `"message number %d, with a few words of text in it"`, i),
		"created_at": []byte(`"2026-01-02T03:04:05.123456789Z"`),
		"edited":     []byte(`false`),
		"n":          []byte(strconv.Itoa(n)),
	}
	in := &cache.Instance{Type: "Message", ID: strconv.Itoa(i), Fields: map[string]json.RawMessage{}}
	for k, v := range f {
		in.Fields[k] = v
	}
	return in
}
