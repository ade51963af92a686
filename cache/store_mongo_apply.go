package cache

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Apply of MongoStore: see the MongoStore documentation for the protocol.

// applyStream is the part of an Apply call that concerns one stream.
type applyStream struct {
	s      Stream
	writes []int // indexes of the stream's writes in the call, in order

	sd     *streamDoc
	guess  int64             // generation whose instances were read with the stream document; 0 for none
	stored map[Key]*Instance // affected instances as stored
	dirty  map[Key]*Instance // instances to write, merged
	end    int64             // version after the call
	dts    int64             // tombstones written

	// The writes, from merge: documents to insert into the channel
	// collection (instances it does not hold), to replace there, the _id
	// values of documents to delete there, and the tombstones to insert
	// into the tombstone collection.
	inserts  [][]byte
	replaces [][]byte
	replIDs  []string
	deletes  []string
	tombs    []any
}

// deleteManyFrom is the number of deletions of one stream from which Apply
// deletes the live documents with one DeleteMany by a list of _id values
// instead of a DeleteOne each. FerretDB v1 answers a list by decoding and
// matching every document of the collection in Go (about 20 ms for 60
// documents on the test machine), and a bare _id by a scan in SQLite
// (about a millisecond), so the list pays only for large deletions, such
// as those of a whole thread.
const deleteManyFrom = 64

// ops returns the number of operations of st's writes in the channel
// collection, the commit excluded.
func (st *applyStream) ops() int {
	n := len(st.inserts) + len(st.replaces)
	if len(st.deletes) >= deleteManyFrom {
		return n + 1 // one DeleteMany
	}
	return n + len(st.deletes)
}

// duplicateKey is MongoDB's error code for a duplicate key.
const duplicateKey = 11000

// Apply implements Store. Per collection, it reads the stream documents and
// the affected instances with one query (two when the generation of a
// stream is not known yet) and sends one ordered BulkWrite that locks,
// writes and commits every changed stream: a fixed number of round trips
// whatever the number of instances. Several writes to one stream in one call
// take consecutive versions. An instance too large for MongoDB fails the
// call with a *TooLargeError before anything is written.
func (m *MongoStore) Apply(ctx context.Context, writes []Write) ([]Delta, error) {
	out := make([]Delta, len(writes))
	byStream := make(map[Stream]*applyStream)
	byColl := make(map[string][]*applyStream)
	var colls []string
	for i, w := range writes {
		out[i].Stream = w.Stream
		st := byStream[w.Stream]
		if st == nil {
			st = &applyStream{s: w.Stream}
			byStream[w.Stream] = st
			name := m.CollectionName(w.Stream.Channel)
			if byColl[name] == nil {
				colls = append(colls, name)
			}
			byColl[name] = append(byColl[name], st)
		}
		st.writes = append(st.writes, i)
	}
	for _, name := range colls {
		coll := m.db.Collection(name)
		todo := byColl[name]
		for attempt := 0; len(todo) > 0; attempt++ {
			retry, err := m.applyColl(ctx, coll, writes, out, todo)
			if err != nil {
				return nil, err
			}
			if len(retry) > 0 {
				if err := pause(ctx, attempt); err != nil {
					return nil, fmt.Errorf("cache: mongo: apply to %s: waiting for another writer: %w", retry[0].s, err)
				}
			}
			todo = retry
		}
	}
	return out, nil
}

func setCold(out []Delta, st *applyStream) {
	for _, i := range st.writes {
		out[i] = Delta{Stream: st.s, Cold: true}
	}
}

// applyColl applies the writes of streams, which share the collection
// coll, and returns the streams to retry because another writer holds them.
func (m *MongoStore) applyColl(ctx context.Context, coll *mongo.Collection, writes []Write, out []Delta, streams []*applyStream) ([]*applyStream, error) {
	if err := m.readState(ctx, coll, writes, streams); err != nil {
		return nil, fmt.Errorf("cache: mongo: apply to %s: read: %w", streams[0].s, err)
	}
	var retry, active []*applyStream
	for _, st := range streams {
		sd := st.sd
		switch {
		case sd == nil || !sd.Hot:
			setCold(out, st)
		case sd.Pending != 0:
			if !m.writerDead(st.s, sd) {
				retry = append(retry, st) // another writer is at it
				continue
			}
			ok, err := m.markCold(ctx, coll, st.s, sd)
			if err != nil {
				return nil, fmt.Errorf("cache: mongo: apply to %s: mark cold after a failed write: %w", st.s, err)
			}
			if ok {
				setCold(out, st)
			} else {
				retry = append(retry, st)
			}
		default:
			active = append(active, st)
		}
	}
	var changed, same []*applyStream
	for _, st := range active {
		if err := m.merge(writes, out, st); err != nil {
			return nil, err
		}
		if st.end != st.sd.Version {
			changed = append(changed, st)
		} else {
			same = append(same, st)
		}
	}
	if len(same) > 0 {
		moved, err := m.movedSince(ctx, coll, same)
		if err != nil {
			return nil, fmt.Errorf("cache: mongo: apply to %s: read again: %w", same[0].s, err)
		}
		retry = append(retry, moved...)
	}
	if len(changed) == 0 {
		return retry, nil
	}

	token := m.token + "-" + strconv.FormatUint(m.seq.Add(1), 10)
	if m.beforeWrite != nil {
		m.beforeWrite()
	}
	// Claim each stream's move from the version read: of the writers that
	// read one version, one only goes on (store_mongo_claim.go).
	changed, moved, err := m.claim(ctx, coll, changed, token)
	if err != nil {
		return nil, fmt.Errorf("cache: mongo: apply to %s: claim: %w", changed[0].s, err)
	}
	retry = append(retry, moved...)
	if len(changed) == 0 {
		return retry, nil
	}
	markers, models, first, want := writeModels(changed, token)
	var tombs []any
	for _, st := range changed {
		tombs = append(tombs, st.tombs...)
	}
	var (
		stop    int
		dup     bool
		counted int64
	)
	if len(tombs) == 0 {
		stop, dup, counted, err = m.writeOrdered(ctx, coll, append(markers, models...))
	} else {
		// The markers first, then the tombstones, then the live documents:
		// a reader that misses a deleted document finds its tombstone.
		stop, dup, counted, err = m.writeOrdered(ctx, coll, markers)
		if err == nil {
			if _, err = m.gone(coll).InsertMany(ctx, tombs, options.InsertMany().SetOrdered(true)); err != nil {
				m.setDead(changed, token)
				return nil, fmt.Errorf("cache: mongo: apply to %s: write tombstones: %w", changed[0].s, err)
			}
			var n int64
			stop, dup, n, err = m.writeOrdered(ctx, coll, models)
			counted += n
			if stop >= 0 {
				stop += len(markers)
			}
		}
	}
	if err == nil && counted == want {
		m.committed(ctx, coll, changed)
		return retry, nil
	}
	if stop < 0 {
		m.setDead(changed, token)
		return nil, fmt.Errorf("cache: mongo: apply to %s: write: %w", changed[0].s, err)
	}

	// Some stream did not take the write. The writes stopped at the first
	// failed operation: the streams whose operations all come before it
	// were written in full; those whose marker comes after it not at all
	// (they hold their claims, which go: they are read and written again);
	// the others in part.
	var written, half []*applyStream
	for i, st := range changed {
		switch {
		case stop > first[i]+st.ops():
			written = append(written, st)
		case stop <= i:
			m.dropClaim(ctx, coll, st.s.Anchor, st.sd.Version)
			retry = append(retry, st)
		default:
			half = append(half, st) // its marker, part of its documents, or not its commit
		}
	}
	if len(half) > 0 {
		m.setDead(half, token)
		if dup {
			// A duplicate key on one of the stream's documents: another
			// writer inserted it meanwhile.
			return nil, &ConflictError{Stream: half[0].s, Err: fmt.Errorf("cache: mongo: apply to %s: write: %w", half[0].s, err)}
		}
		return nil, fmt.Errorf("cache: mongo: apply to %s: write: %w", half[0].s, err)
	}
	if len(written) == 0 {
		return retry, nil
	}
	// A written stream whose commit did not match was changed meanwhile
	// (a writer that took this one for dead).
	sds, err := m.loadStreams(ctx, coll, written)
	if err != nil {
		m.setDead(written, token)
		return nil, fmt.Errorf("cache: mongo: apply to %s: check commit: %w", written[0].s, err)
	}
	var committed []*applyStream
	for _, st := range written {
		if sd := sds[st.s.Anchor]; sd == nil || !sd.Hot || sd.Gen != st.sd.Gen || sd.Version < st.end {
			setCold(out, st)
		} else {
			committed = append(committed, st)
		}
	}
	m.committed(ctx, coll, committed)
	return retry, nil
}

// committed does what follows the commit of streams: their claims are
// deleted (a batch at a time) and their tombstones pruned if too many.
func (m *MongoStore) committed(ctx context.Context, coll *mongo.Collection, streams []*applyStream) {
	ids := make([]string, len(streams))
	for i, st := range streams {
		ids[i] = claimDocID(st.s.Anchor, st.sd.Version)
	}
	m.sweepClaims(ctx, coll, ids)
	m.pruneAll(ctx, coll, streams)
}

// writeOrdered sends models in order, in BulkWrites of at most
// opsPerWrite operations, and stops at the first failed operation. It
// returns the index of that operation (len(models) if none; -1 if it is
// not known), whether it failed on a duplicate key, and the number of
// documents the operations matched, upserted, inserted or deleted.
func (m *MongoStore) writeOrdered(ctx context.Context, coll *mongo.Collection, models []mongo.WriteModel) (stop int, dup bool, counted int64, err error) {
	batch := m.opsPerWrite(ctx)
	for lo := 0; lo < len(models); lo += batch {
		hi := min(lo+batch, len(models))
		res, err := coll.BulkWrite(ctx, models[lo:hi], options.BulkWrite().SetOrdered(true))
		if err == nil {
			counted += res.MatchedCount + res.UpsertedCount + res.InsertedCount + res.DeletedCount
			continue
		}
		var bwe mongo.BulkWriteException
		if !errors.As(err, &bwe) || len(bwe.WriteErrors) == 0 || bwe.WriteConcernError != nil {
			return -1, false, counted, err
		}
		we := bwe.WriteErrors[0]
		return lo + we.Index, we.Code == duplicateKey, counted, err
	}
	return len(models), false, counted, nil
}

// writeModels returns the operations in the channel collection that lock,
// write and commit each of streams, whose moves from the versions read are
// claimed: the pending markers of all streams (one per stream, in order),
// and then for each stream its documents and its commit. first holds the
// index of each stream's first operation after the markers, counted from
// the first marker, and want the number of documents the operations must
// match, insert or delete. The tombstones go to the tombstone collection
// between the markers and the rest.
//
// Every filter is a bare _id (or a list of them for many deletions, see
// deleteManyFrom):
// FerretDB v1 pushes only a bare _id down to SQLite, where the lookup
// still reads the whole table (issue 20, see MongoStore), so the
// collection is kept to the live state; the claims make conditions
// unneeded. New documents are inserted, which FerretDB checks against the
// unique index on _id without reading the table.
func writeModels(streams []*applyStream, token string) (markers, models []mongo.WriteModel, first []int, want int64) {
	now := time.Now()
	markers = make([]mongo.WriteModel, len(streams))
	first = make([]int, len(streams))
	for i, st := range streams {
		sid := bson.D{{Key: keyID, Value: streamDocID(st.s.Anchor)}}
		// The pending marker: readers meeting documents of the new
		// version, or a missing document, know a write is in flight.
		markers[i] = mongo.NewUpdateOneModel().SetFilter(sid).
			SetUpdate(bson.D{
				{Key: "$set", Value: bson.D{{Key: "p", Value: st.end}, {Key: "pw", Value: token}, {Key: "pt", Value: now.UnixMilli()}}},
				{Key: "$max", Value: bson.D{{Key: "hi", Value: st.end}}},
			})
		want++
		first[i] = len(streams) + len(models)
		for _, doc := range st.inserts {
			models = append(models, mongo.NewInsertOneModel().SetDocument(bson.Raw(doc)))
		}
		for j, doc := range st.replaces {
			models = append(models, mongo.NewReplaceOneModel().
				SetFilter(bson.D{{Key: keyID, Value: st.replIDs[j]}}).SetReplacement(bson.Raw(doc)).SetUpsert(true))
		}
		if len(st.deletes) >= deleteManyFrom {
			models = append(models, mongo.NewDeleteManyModel().
				SetFilter(bson.D{{Key: keyID, Value: bson.D{{Key: "$in", Value: st.deletes}}}}))
		} else {
			for _, id := range st.deletes {
				models = append(models, mongo.NewDeleteOneModel().SetFilter(bson.D{{Key: keyID, Value: id}}))
			}
		}
		want += int64(len(st.inserts) + len(st.replaces) + len(st.deletes))
		models = append(models, mongo.NewUpdateOneModel().SetFilter(sid).
			SetUpdate(bson.D{
				{Key: "$set", Value: bson.D{{Key: "v", Value: st.end}, {Key: "p", Value: int64(0)},
					{Key: "pw", Value: ""}, {Key: "pt", Value: int64(0)}, {Key: "t", Value: now}}},
				{Key: "$inc", Value: bson.D{{Key: "ts", Value: st.dts}}},
			}))
		want++
	}
	return markers, models, first, want
}

// movedSince returns, of streams whose writes changed nothing, those whose
// stream document moved since readState read it, or is held by a write in
// flight. A write that changes nothing reports the version read, but
// readState reads the stream document and the instances with one query,
// which is not a snapshot: it can find the instances another writer has
// written before that writer's commit, and so the change already there
// under a version the stream is leaving. A writer marks the stream
// document before it writes any instance, so reading the document again
// tells (a node that took the same change for its own would otherwise
// report the old version, and its subscribers miss the new one: issue 20).
func (m *MongoStore) movedSince(ctx context.Context, coll *mongo.Collection, streams []*applyStream) ([]*applyStream, error) {
	byAnchor := make(map[string]*applyStream, len(streams))
	ids := make([]string, 0, len(streams))
	for _, st := range streams {
		byAnchor[st.s.Anchor] = st
		ids = append(ids, streamDocID(st.s.Anchor))
	}
	now := make(map[*applyStream]*streamDoc, len(streams))
	err := findIDs(ctx, coll, ids, func(doc bson.Raw) error {
		var sd streamDoc
		if err := bson.Unmarshal(doc, &sd); err != nil {
			return err
		}
		if st := byAnchor[sd.Anchor]; st != nil {
			now[st] = &sd
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	var moved []*applyStream
	for _, st := range streams {
		if sd := now[st]; !sameState(st.sd, sd) || sd.Pending != 0 {
			moved = append(moved, st)
		}
	}
	return moved, nil
}

// readState reads the stream documents of streams and the stored instances
// their changes touch. The instances are read in the same query as the
// stream documents at the generation last seen, and again if the stream
// turns out to be at another one.
func (m *MongoStore) readState(ctx context.Context, coll *mongo.Collection, writes []Write, streams []*applyStream) error {
	byAnchor := make(map[string]*applyStream, len(streams))
	ids := make([]string, 0, len(streams))
	for _, st := range streams {
		byAnchor[st.s.Anchor] = st
		st.sd, st.guess = nil, 0
		st.stored = make(map[Key]*Instance)
		ids = append(ids, streamDocID(st.s.Anchor))
		if g, ok := m.gens.Load(st.s); ok {
			st.guess = g.(int64)
			ids = append(ids, st.keyIDs(writes, st.guess)...)
		}
	}
	take := func(doc bson.Raw) error {
		if id, _ := doc.Lookup(keyID).StringValueOK(); strings.HasPrefix(id, "s:") {
			var sd streamDoc
			if err := bson.Unmarshal(doc, &sd); err != nil {
				return err
			}
			if st := byAnchor[sd.Anchor]; st != nil {
				st.sd = &sd
			}
			return nil
		}
		in, meta, err := decodeDoc(doc)
		if err != nil {
			return err
		}
		if st := byAnchor[meta.anchor]; st != nil && meta.gen == st.guess {
			st.stored[in.Key()] = in
		}
		return nil
	}
	if err := findIDs(ctx, coll, ids, take); err != nil {
		return err
	}
	ids = ids[:0]
	for _, st := range streams {
		if st.sd == nil || !st.sd.Hot {
			continue
		}
		m.gens.Store(st.s, st.sd.Gen)
		if st.sd.Gen != st.guess {
			clear(st.stored)
			st.guess = st.sd.Gen
			ids = append(ids, st.keyIDs(writes, st.guess)...)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	return findIDs(ctx, coll, ids, take)
}

// keyIDs returns the _id values of the instances the writes of st touch,
// at generation gen.
func (st *applyStream) keyIDs(writes []Write, gen int64) []string {
	seen := make(map[Key]bool)
	var ids []string
	for _, wi := range st.writes {
		for _, ch := range writes[wi].Changes {
			if k := ch.Key(); !seen[k] {
				seen[k] = true
				ids = append(ids, docID(st.s.Anchor, gen, k))
			}
		}
	}
	return ids
}

// pointReads is the number of _id values up to which findIDs reads each
// document with its own query: a query on one _id is a primary-key lookup
// on every server, while FerretDB v1 answers {_id: {$in: ...}} by scanning
// the collection, tombstones and every other stream included, so that the
// cost of a delta grew with them (issue 20).
const pointReads = 8

// findIDs calls fn with each document of coll whose _id is in ids.
func findIDs(ctx context.Context, coll *mongo.Collection, ids []string, fn func(bson.Raw) error) error {
	if len(ids) > 1 && len(ids) <= pointReads {
		for _, id := range ids {
			if err := findIDs(ctx, coll, []string{id}, fn); err != nil {
				return err
			}
		}
		return nil
	}
	var filter bson.D
	if len(ids) == 1 {
		filter = bson.D{{Key: keyID, Value: ids[0]}}
	} else {
		filter = bson.D{{Key: keyID, Value: bson.D{{Key: "$in", Value: ids}}}}
	}
	cur, err := coll.Find(ctx, filter)
	if err != nil {
		return err
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		if err := fn(cur.Current); err != nil {
			return err
		}
	}
	return cur.Err()
}

// loadStreams reads the stream documents of streams, by anchor.
func (m *MongoStore) loadStreams(ctx context.Context, coll *mongo.Collection, streams []*applyStream) (map[string]*streamDoc, error) {
	ids := make([]string, len(streams))
	for i, st := range streams {
		ids[i] = streamDocID(st.s.Anchor)
	}
	out := make(map[string]*streamDoc, len(ids))
	err := findIDs(ctx, coll, ids, func(doc bson.Raw) error {
		var sd streamDoc
		if err := bson.Unmarshal(doc, &sd); err != nil {
			return err
		}
		out[sd.Anchor] = &sd
		return nil
	})
	return out, err
}

// merge computes the deltas of the writes of st in order, and encodes the
// documents to write.
func (m *MongoStore) merge(writes []Write, out []Delta, st *applyStream) error {
	cur := make(map[Key]*Instance, len(st.stored))
	for k, in := range st.stored {
		cur[k] = in
	}
	st.dirty = make(map[Key]*Instance)
	st.dts = 0
	v := st.sd.Version
	for _, wi := range st.writes {
		next := uint64(v) + 1
		var delta []*Instance
		for _, ch := range writes[wi].Changes {
			k := ch.Key()
			d, merged := Merge(cur[k], ch, next)
			if d == nil {
				continue
			}
			cur[k] = merged
			st.dirty[k] = merged
			delta = append(delta, d)
		}
		if len(delta) > 0 {
			v = int64(next)
		}
		out[wi] = Delta{Stream: st.s, Version: uint64(v), Instances: delta}
	}
	st.end = v
	st.inserts, st.replaces, st.replIDs, st.deletes, st.tombs = nil, nil, nil, nil, nil
	for k, in := range st.dirty {
		old := st.stored[k]
		if !in.Deleted {
			doc, err := encodeDoc(nil, st.s, st.sd.Gen, in)
			if err != nil {
				return err
			}
			if old == nil {
				st.inserts = append(st.inserts, doc)
			} else {
				st.replaces = append(st.replaces, doc)
				st.replIDs = append(st.replIDs, docID(st.s.Anchor, st.sd.Gen, k))
			}
			continue
		}
		// A deletion: the tombstone goes to the tombstone collection,
		// also for an instance created and deleted within the call, and
		// the live document goes. A tombstone of an earlier deletion of
		// the key stays there, older: Since keeps the latest.
		doc, err := encodeDocID(nil, tombstoneID(st.s.Anchor, st.sd.Gen, k, in.Version), st.s, st.sd.Gen, in)
		if err != nil {
			return err
		}
		st.tombs = append(st.tombs, bson.Raw(doc))
		st.dts++
		if old != nil {
			st.deletes = append(st.deletes, docID(st.s.Anchor, st.sd.Gen, k))
		}
	}
	return nil
}

// pruneAll prunes the streams with too many tombstones.
func (m *MongoStore) pruneAll(ctx context.Context, coll *mongo.Collection, streams []*applyStream) {
	for _, st := range streams {
		if st.sd.Tombstones+st.dts > int64(m.maxTombstones) {
			m.prune(ctx, coll, st)
		}
	}
}

// prune drops the older half of the tombstones of st and raises its
// resume floor above them, as MemoryStore does. The floor rises before the
// tombstones go, so that a concurrent Since notices. Tombstones of keys
// created again since count until they are pruned. It runs after the
// commit: errors are ignored, and a later write tries again.
func (m *MongoStore) prune(ctx context.Context, coll *mongo.Collection, st *applyStream) {
	gone := m.gone(coll)
	tombstones := func(upTo int64) bson.D {
		return bson.D{{Key: keyAnchor, Value: st.s.Anchor}, {Key: keyGen, Value: st.sd.Gen},
			{Key: keyVersion, Value: bson.D{{Key: "$lte", Value: upTo}}}}
	}
	cur, err := gone.Find(ctx, tombstones(st.end),
		options.Find().SetProjection(bson.D{{Key: keyVersion, Value: 1}, {Key: keyID, Value: 0}}).SetBatchSize(m.batchSize))
	if err != nil {
		return
	}
	var versions []uint64
	for cur.Next(ctx) {
		if n, ok := cur.Current.Lookup(keyVersion).AsInt64OK(); ok {
			versions = append(versions, uint64(n))
		}
	}
	err = cur.Err()
	cur.Close(ctx)
	if err != nil {
		return
	}
	stream := bson.D{{Key: keyID, Value: streamDocID(st.s.Anchor)}, {Key: "g", Value: st.sd.Gen}}
	n := len(versions) - m.maxTombstones/2
	if n <= 0 {
		// The count was above what the tombstone collection holds (it
		// included tombstones kept beside the live documents before they
		// had a collection of their own): correct it, or every write
		// would read the tombstones again. A deletion another store
		// commits meanwhile may go uncounted until the next prune.
		_, _ = coll.UpdateOne(ctx, stream, bson.D{{Key: "$set", Value: bson.D{{Key: "ts", Value: int64(len(versions))}}}})
		return
	}
	cut := int64(nthSmallest(versions, n-1))
	if _, err := coll.UpdateOne(ctx, stream, bson.D{{Key: "$max", Value: bson.D{{Key: "floor", Value: cut + 1}}}}); err != nil {
		return
	}
	res, err := gone.DeleteMany(ctx, tombstones(cut))
	if err != nil {
		return
	}
	_, _ = coll.UpdateOne(ctx, stream, bson.D{{Key: "$inc", Value: bson.D{{Key: "ts", Value: -res.DeletedCount}}}})
}
