package cache

import (
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// MongoStore keeps streams in MongoDB, so that they survive restarts of the
// process and can be shared by several servers. Create it with NewMongo.
//
// # Layout
//
// Each channel has its own collection, named by CollectionName: a prefix,
// the channel name reduced to safe characters, and a hash of the exact
// name, so that two channels never share a collection.
//
// An instance document holds the instance's fields at the top level (keys
// escaped so that no '.' or leading '$' reaches MongoDB, values as native
// BSON when they round-trip to the same JSON bytes: see
// store_mongo_codec.go) and the meta keys _a (anchor), _g (generation), _t,
// _i, _o (type, id, owner), _v (version) and _d (tombstone). Instance
// fields whose names start with '_' are escaped, so they cannot collide
// with the meta keys.
//
// Each stream also has a stream document (_id "s:" + anchor) in the same
// collection: its current version, resume floor, generation, hot flag, the
// highest version ever handed out (the counter), the last write time and a
// pending-write marker. It is never deleted, so versions stay monotonic
// across Expire, restarts of the process and several MongoStore instances
// on one database. Keeping it beside the instances lets one Apply lock,
// write and commit a stream in a single ordered BulkWrite.
//
// Tombstones are kept apart, in the channel's tombstone collection
// (TombstoneCollectionName: the collection's name and "_gone"), so that
// the channel collection holds the live state only (issue 20): FerretDB
// v1 on SQLite answers even a filter on a bare _id by reading the whole
// table (its index on _id is on another expression than the one its
// queries use, so SQLite never picks it), and a write cost ten times more
// beside a thousand tombstones than beside none. A deletion removes the
// instance document and inserts a tombstone whose _id is the instance's
// and the version of the deletion (tombstoneID), so that a key deleted,
// created again and deleted again has one tombstone per deletion, each
// written with a plain insert, which FerretDB checks against the unique
// index without reading the table. A tombstone of a key that lives again
// stays, older than the live document; Since keeps the latest of each key,
// and pruning counts it until it goes. Apply never reads the tombstone
// collection: to Merge, a key without a live document and a deleted one
// are the same.
//
// # Generations
//
// Fill writes the new content beside the old one under a new generation
// (the fill's version) and then switches the stream document to it in one
// update; documents of older generations are deleted afterwards. A reader
// never sees a half-filled stream. The unique key of an instance document
// is (anchor, generation, type, id, owner).
//
// # Writes and consistent reads without transactions
//
// MongoDB has multi-document transactions, but FerretDB, which the tests
// use, does not, and the store needs none. Per collection, Apply reads the
// stream documents and the affected instances (by _id), then claims each
// changed stream's move from the version read by inserting a claim
// document whose _id names the stream and that version (one insert
// command for the call), reads the claimed stream documents again to check
// that they did not move meanwhile, and sends one ordered BulkWrite
// (several, in order, beyond WriteBatchSize operations) holding the
// pending marker of each claimed stream (the version being reached and a
// writer token) and then, for each, the changed instance documents and
// the commit of the new version, which clears the marker. When the call
// deletes instances, the markers go first in a command of their own, then
// the tombstones to the tombstone collection (one insert command), then
// the rest: a document leaves the channel collection only after its
// tombstone is written, under a marker. Of the writers that read a stream at
// one version, one only inserts the claim; the others, and a writer whose
// check finds the stream moved on, read and write again. A Fill claims its
// switch the same way. Only a duplicate _id being refused is relied on,
// which every server does atomically: FerretDB v1 evaluates an update's
// filter and applies its change in separate steps, and scans the whole
// collection for any filter other than a bare _id, so every update of
// Apply filters by _id alone (see store_mongo_claim.go). Claims of
// committed versions are deleted in batches.
//
// Snapshot and Since read the stream document, then the instance documents
// with one query streamed through a cursor, then (Since always, Snapshot
// when the stream document showed a write in flight) the tombstones changed
// after the version read, then the stream document again. The query of the
// channel collection also returns every document changed after the version
// read first. The read is kept only if no document is newer than that
// version and the stream document did not change (same version, generation
// and floor) and, for a Snapshot that did not read the tombstones, shows no
// write in flight; otherwise it is retried after a short pause. A document
// changed by a write in flight carries a version above the one read and
// forces a retry; a document the write has not reached yet still shows its
// state at the version read; a document the write deleted has its
// tombstone, of a version above the one read, written before it went and
// under the write's marker, which the read meets in the tombstones or in
// the second read of the stream document; and documents are otherwise only
// removed by Fill, Expire and tombstone pruning, which change the stream
// document first. So every accepted read is exactly the content at its
// version.
//
// # Failures
//
// Errors from MongoDB are returned wrapped with %w, so callers can inspect
// them with errors.Is/As and mongo.IsNetworkError or mongo.IsTimeout. After
// an error from Apply the streams of the call may or may not have taken
// the write: the caller should rebuild them with Fill. A write that fails
// half-way leaves its pending marker: the next Apply to that stream marks it
// cold (at once if the write was this store's, after PendingTimeout
// otherwise), and Snapshot and Since treat it as cold when they meet the
// half-written documents.
type MongoStore struct {
	db             *mongo.Database
	prefix         string
	batchSize      int32
	maxTombstones  int
	pendingTimeout time.Duration
	writeBatch     int          // WriteBatchSize; 0 to detect
	detected       atomic.Int64 // batch size found for the server; 0 until known

	token string        // random: identifies this store's writes
	seq   atomic.Uint64 // numbers this store's writes

	ensured sync.Map // collection name → struct{}: indexes created
	gens    sync.Map // Stream → int64: generation last seen, to read a stream and its instances in one query

	deadMu sync.Mutex
	dead   map[Stream]string // token of a write of ours that failed half-way; guarded by deadMu

	claimMu sync.Mutex
	claims  map[string][]string // collection name → claims of committed writes not yet deleted; guarded by claimMu

	beforeWrite func() // test hook: called before each BulkWrite of Apply
}

var _ Store = (*MongoStore)(nil)

// MongoOptions configures NewMongo. The zero value works.
type MongoOptions struct {
	// CollectionPrefix starts the name of every collection of the store.
	// Zero means "rx_".
	CollectionPrefix string

	// BatchSize is the number of documents per cursor batch when a stream
	// is read. Zero means 1,000.
	BatchSize int

	// MaxTombstones bounds the tombstones kept per stream for Since. When a
	// stream exceeds it, the older half is dropped and Since refuses
	// versions from before them. Zero means 1,000. Writes do not read the
	// tombstones, which are in a collection of their own, but Since reads
	// them, and FerretDB v1 reads every document of that collection to
	// answer it (issue 20, docs/BENCHMARKS.md); a client resuming from
	// before the pruned ones gets a fresh snapshot.
	MaxTombstones int

	// PendingTimeout is how long a write may stay unfinished before other
	// stores take its writer for dead: Apply then marks the stream cold, and
	// Snapshot and Since report it cold when they meet its documents; a
	// claim of the write's version is cleared by the next writer that meets
	// it. Failures this store saw itself count at once. Zero means 30s.
	PendingTimeout time.Duration

	// WriteBatchSize bounds the operations of one write command of Apply;
	// a larger flush takes several, sent in order. Zero means 1,000, or 16
	// when the server is FerretDB (found with buildInfo on the first
	// Apply): FerretDB v1.24 holds a SQLite connection for each statement of
	// an update command until the command ends, and stalls once its pool of
	// 100 connections per database runs out.
	WriteBatchSize int
}

// StreamInfo describes a hot stream, for Streams.
type StreamInfo struct {
	Stream    Stream
	Version   uint64
	LastWrite time.Time // last Fill, or Apply that changed the stream
}

// streamDoc is a stream document.
type streamDoc struct {
	ID         string    `bson:"_id"`
	Anchor     string    `bson:"_a"`
	Channel    string    `bson:"c"`
	Hot        bool      `bson:"hot"`
	Gen        int64     `bson:"g"`     // generation of the instances; 0 when cold
	Version    int64     `bson:"v"`     // current version
	Floor      int64     `bson:"floor"` // Since answers for versions >= Floor
	High       int64     `bson:"hi"`    // highest version handed out
	Pending    int64     `bson:"p"`     // version a write in flight is reaching; 0 for none
	Writer     string    `bson:"pw"`    // token of that write
	PendingAt  int64     `bson:"pt"`    // when it started, Unix milliseconds
	Tombstones int64     `bson:"ts"`    // tombstones of the current generation
	Written    time.Time `bson:"t"`
}

// sameState reports whether two reads of a stream document show the same
// content: same generation, version and floor.
func sameState(a, b *streamDoc) bool {
	return a != nil && b != nil && a.Hot == b.Hot && a.Gen == b.Gen && a.Version == b.Version && a.Floor == b.Floor
}

// coldFields is the $set of a stream that becomes cold.
func coldFields() bson.D {
	return bson.D{{Key: "hot", Value: false}, {Key: "g", Value: int64(0)}, {Key: "p", Value: int64(0)},
		{Key: "pw", Value: ""}, {Key: "pt", Value: int64(0)}, {Key: "ts", Value: int64(0)}}
}

// NewMongo returns a store on db. It does not contact the server: the
// collection of a channel is created, with its indexes, by its first Fill.
// ctx is reserved for setup work of later versions.
func NewMongo(ctx context.Context, db *mongo.Database, opts MongoOptions) (*MongoStore, error) {
	if db == nil {
		return nil, errors.New("cache: NewMongo: nil database")
	}
	if opts.CollectionPrefix == "" {
		opts.CollectionPrefix = "rx_"
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = 1000
	}
	if opts.MaxTombstones <= 0 {
		opts.MaxTombstones = 1000
	}
	if opts.PendingTimeout <= 0 {
		opts.PendingTimeout = 30 * time.Second
	}
	var tok [6]byte
	_, _ = crand.Read(tok[:])
	return &MongoStore{
		db:             db,
		prefix:         opts.CollectionPrefix,
		batchSize:      int32(min(opts.BatchSize, 1<<30)),
		maxTombstones:  opts.MaxTombstones,
		pendingTimeout: opts.PendingTimeout,
		writeBatch:     opts.WriteBatchSize,
		token:          hex.EncodeToString(tok[:]),
		dead:           make(map[Stream]string),
		claims:         make(map[string][]string),
	}, nil
}

// ferretDBWriteBatch is the write batch size used with FerretDB.
const ferretDBWriteBatch = 16

// opsPerWrite returns the number of operations per write command.
func (m *MongoStore) opsPerWrite(ctx context.Context) int {
	if m.writeBatch > 0 {
		return m.writeBatch
	}
	if n := m.detected.Load(); n > 0 {
		return int(n)
	}
	raw, err := m.db.RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Raw()
	if err != nil {
		return ferretDBWriteBatch // safe on any server; ask again next time
	}
	n := 1000
	if _, err := raw.LookupErr("ferretdbVersion"); err == nil {
		n = ferretDBWriteBatch
	}
	m.detected.Store(int64(n))
	return n
}

// CollectionName returns the name of the collection that holds the streams
// of channel.
func (m *MongoStore) CollectionName(channel string) string {
	return collectionName(m.prefix, channel)
}

func (m *MongoStore) coll(channel string) *mongo.Collection {
	return m.db.Collection(collectionName(m.prefix, channel))
}

// tombstoneSuffix ends the name of a channel's tombstone collection.
// isChannelCollection does not take such a name for a channel collection.
const tombstoneSuffix = "_gone"

// TombstoneCollectionName returns the name of the collection that holds
// the tombstones of the streams of channel: CollectionName and "_gone".
func (m *MongoStore) TombstoneCollectionName(channel string) string {
	return collectionName(m.prefix, channel) + tombstoneSuffix
}

// gone returns the tombstone collection of the channel collection coll.
func (m *MongoStore) gone(coll *mongo.Collection) *mongo.Collection {
	return m.db.Collection(coll.Name() + tombstoneSuffix)
}

// ensureIndexes creates the indexes of a channel collection and of its
// tombstone collection once per store. They are created one per command:
// FerretDB v1.24 drops the connection when one createIndexes command names
// several indexes that all exist.
func (m *MongoStore) ensureIndexes(ctx context.Context, coll *mongo.Collection) error {
	if _, ok := m.ensured.Load(coll.Name()); ok {
		return nil
	}
	// The tombstone collection: no unique key (a key deleted several times
	// has several tombstones), the versions for Since and pruning.
	gone := m.gone(coll)
	if _, err := gone.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: keyAnchor, Value: 1}, {Key: keyGen, Value: 1}, {Key: keyVersion, Value: 1}},
		Options: options.Index().SetName("stream_version"),
	}); err != nil {
		return fmt.Errorf("create indexes on %s: %w", gone.Name(), err)
	}
	for _, idx := range []mongo.IndexModel{
		{
			Keys: bson.D{{Key: keyAnchor, Value: 1}, {Key: keyGen, Value: 1},
				{Key: keyType, Value: 1}, {Key: keyIDField, Value: 1}, {Key: keyOwner, Value: 1}},
			Options: options.Index().SetName("stream_key").SetUnique(true),
		},
		{
			Keys:    bson.D{{Key: keyAnchor, Value: 1}, {Key: keyGen, Value: 1}, {Key: keyVersion, Value: 1}},
			Options: options.Index().SetName("stream_version"),
		},
	} {
		if _, err := coll.Indexes().CreateOne(ctx, idx); err != nil {
			return fmt.Errorf("create indexes on %s: %w", coll.Name(), err)
		}
	}
	m.ensured.Store(coll.Name(), struct{}{})
	return nil
}

// loadStream reads the stream document of s; nil if there is none.
func (m *MongoStore) loadStream(ctx context.Context, coll *mongo.Collection, s Stream) (*streamDoc, error) {
	var sd streamDoc
	err := coll.FindOne(ctx, bson.D{{Key: keyID, Value: streamDocID(s.Anchor)}}).Decode(&sd)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if sd.Hot {
		m.gens.Store(s, sd.Gen)
	}
	return &sd, nil
}

// writerDead reports whether the pending write of sd, a document of
// stream s, will never finish: it is ours and failed, or it is older than
// PendingTimeout.
func (m *MongoStore) writerDead(s Stream, sd *streamDoc) bool {
	if sd.Pending == 0 {
		return false
	}
	m.deadMu.Lock()
	tok, ours := m.dead[s]
	m.deadMu.Unlock()
	if ours && tok == sd.Writer {
		return true
	}
	return time.Since(time.UnixMilli(sd.PendingAt)) > m.pendingTimeout
}

func (m *MongoStore) setDead(streams []*applyStream, token string) {
	m.deadMu.Lock()
	defer m.deadMu.Unlock()
	for _, st := range streams {
		m.dead[st.s] = token
	}
}

func (m *MongoStore) forgetDead(s Stream) {
	m.deadMu.Lock()
	defer m.deadMu.Unlock()
	delete(m.dead, s)
}

// markCold makes s cold if its document still shows the pending write of
// sd, and reports whether it did.
func (m *MongoStore) markCold(ctx context.Context, coll *mongo.Collection, s Stream, sd *streamDoc) (bool, error) {
	res, err := coll.UpdateOne(ctx,
		bson.D{{Key: keyID, Value: sd.ID}, {Key: "g", Value: sd.Gen}, {Key: "pw", Value: sd.Writer}},
		bson.D{{Key: "$set", Value: coldFields()}})
	if err != nil {
		return false, err
	}
	m.forgetDead(s)
	if res.MatchedCount == 0 {
		return false, nil
	}
	m.dropGenerations(ctx, coll, s.Anchor, sd.Gen)
	return true, nil
}

// dropGenerations deletes the instance documents and tombstones of anchor
// up to generation gen. Errors are ignored: documents of other generations
// than the current one are never read, and the next Fill or Expire deletes
// them.
func (m *MongoStore) dropGenerations(ctx context.Context, coll *mongo.Collection, anchor string, gen int64) {
	filter := bson.D{{Key: keyAnchor, Value: anchor},
		{Key: keyGen, Value: bson.D{{Key: "$gte", Value: int64(0)}, {Key: "$lte", Value: gen}}}}
	_, _ = coll.DeleteMany(ctx, filter)
	_, _ = m.gone(coll).DeleteMany(ctx, filter)
}

// Fill implements Store. The version comes from the stream's counter (the
// highest version handed out plus one) and is at least the current time in
// microseconds, as MemoryStore's, so that it also exceeds versions handed
// out before the database was emptied. If a Fill of the same stream with a
// later version switches the stream first (two servers loading the same
// cold stream), Fill discards its documents and returns the other's
// version. An instance too large for MongoDB fails the Fill with a
// *TooLargeError before anything is written.
func (m *MongoStore) Fill(ctx context.Context, s Stream, instances []*Instance) (uint64, error) {
	v, err := m.fill(ctx, s, instances)
	if err != nil {
		var tl *TooLargeError
		var ce *ConflictError
		if errors.As(err, &tl) || errors.As(err, &ce) {
			return 0, err
		}
		return 0, fmt.Errorf("cache: mongo: fill %s: %w", s, err)
	}
	return v, nil
}

func (m *MongoStore) fill(ctx context.Context, s Stream, instances []*Instance) (uint64, error) {
	coll := m.coll(s.Channel)
	if err := m.ensureIndexes(ctx, coll); err != nil {
		return 0, err
	}
	gen, err := m.fillVersion(ctx, coll, s)
	if err != nil {
		return 0, err
	}
	// Encode everything before writing (a version handed out and never
	// used does no harm); the last instance of a key wins.
	index := make(map[Key]int, len(instances))
	var docs []any
	for _, in := range instances {
		if in.Deleted {
			continue
		}
		c := *in
		c.Version = uint64(gen)
		doc, err := encodeDoc(nil, s, gen, &c)
		if err != nil {
			return 0, err
		}
		if i, dup := index[in.Key()]; dup {
			docs[i] = bson.Raw(doc)
			continue
		}
		index[in.Key()] = len(docs)
		docs = append(docs, bson.Raw(doc))
	}
	if len(docs) > 0 {
		// The driver splits the insert into batches by count and size.
		if _, err := coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false)); err != nil {
			m.dropGeneration(coll, s.Anchor, gen)
			if mongo.IsDuplicateKeyError(err) {
				return 0, &ConflictError{Stream: s, Err: err}
			}
			return 0, err
		}
	}

	// The switch, claimed like an Apply (store_mongo_claim.go) so that no
	// writer moves the stream at the same time.
	token := m.token + "-" + strconv.FormatUint(m.seq.Add(1), 10)
	from, err := m.claimFill(ctx, coll, s, gen, token)
	if err != nil {
		m.dropGeneration(coll, s.Anchor, gen)
		return 0, err
	}
	if from != nil {
		_, err = coll.UpdateOne(ctx, bson.D{{Key: keyID, Value: streamDocID(s.Anchor)}},
			bson.D{{Key: "$set", Value: bson.D{
				{Key: "hot", Value: true}, {Key: "g", Value: gen}, {Key: "v", Value: gen}, {Key: "floor", Value: gen},
				{Key: "p", Value: int64(0)}, {Key: "pw", Value: ""}, {Key: "pt", Value: int64(0)},
				{Key: "ts", Value: int64(0)}, {Key: "t", Value: time.Now()},
			}}})
		if err != nil {
			return 0, err
		}
		m.sweepClaims(ctx, coll, []string{claimDocID(s.Anchor, from.Version)})
	}
	m.forgetDead(s)
	if from == nil {
		// A Fill with a later version switched the stream first.
		m.dropGeneration(coll, s.Anchor, gen)
		sd, err := m.loadStream(ctx, coll, s)
		if err != nil {
			return 0, err
		}
		if sd == nil || !sd.Hot {
			return 0, &ConflictError{Stream: s, Err: errors.New("concurrent Fill and Expire of the stream")}
		}
		return uint64(sd.Version), nil
	}
	m.gens.Store(s, gen)
	// Older generations are invisible now, and no writer can commit a
	// version below this one.
	m.dropGenerations(ctx, coll, s.Anchor, gen-1)
	dropClaimsBelow(ctx, coll, s.Anchor, gen)
	return uint64(gen), nil
}

// dropGeneration deletes the documents of an abandoned Fill, best effort.
func (m *MongoStore) dropGeneration(coll *mongo.Collection, anchor string, gen int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = coll.DeleteMany(ctx, bson.D{{Key: keyAnchor, Value: anchor}, {Key: keyGen, Value: gen}})
}

// fillVersion hands out the version of a Fill of s, creating the stream
// document if needed.
func (m *MongoStore) fillVersion(ctx context.Context, coll *mongo.Collection, s Stream) (int64, error) {
	v, err := m.fillVersionOnce(ctx, coll, s)
	if mongo.IsDuplicateKeyError(err) {
		// Two stores created the stream document at once: the other's
		// insert won, so the document exists now and the update matches.
		v, err = m.fillVersionOnce(ctx, coll, s)
	}
	if mongo.IsDuplicateKeyError(err) {
		return 0, &ConflictError{Stream: s, Err: err}
	}
	return v, err
}

func (m *MongoStore) fillVersionOnce(ctx context.Context, coll *mongo.Collection, s Stream) (int64, error) {
	id := streamDocID(s.Anchor)
	var sd streamDoc
	err := coll.FindOneAndUpdate(ctx, bson.D{{Key: keyID, Value: id}},
		bson.D{
			{Key: "$inc", Value: bson.D{{Key: "hi", Value: int64(1)}}},
			{Key: "$set", Value: bson.D{{Key: "c", Value: s.Channel}}},
			{Key: "$setOnInsert", Value: bson.D{{Key: keyAnchor, Value: s.Anchor}, {Key: keyGen, Value: int64(streamGen)},
				{Key: "hot", Value: false}, {Key: "g", Value: int64(0)}}},
		},
		options.FindOneAndUpdate().SetUpsert(true).SetReturnDocument(options.After)).Decode(&sd)
	if err != nil {
		return 0, err
	}
	if now := time.Now().UnixMicro(); sd.High < now {
		err := coll.FindOneAndUpdate(ctx, bson.D{{Key: keyID, Value: id}},
			bson.D{{Key: "$max", Value: bson.D{{Key: "hi", Value: now}}}},
			options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&sd)
		if err != nil {
			return 0, err
		}
	}
	return sd.High, nil
}

// Expire implements Store. The stream document stays, so that versions
// stay monotonic. Once the stream is cold, Expire deletes its instance
// documents; should that fail, the next Fill deletes them.
func (m *MongoStore) Expire(ctx context.Context, s Stream) error {
	coll := m.coll(s.Channel)
	var before streamDoc
	err := coll.FindOneAndUpdate(ctx,
		bson.D{{Key: keyID, Value: streamDocID(s.Anchor)}, {Key: "hot", Value: true}},
		bson.D{{Key: "$set", Value: coldFields()}},
		options.FindOneAndUpdate().SetReturnDocument(options.Before)).Decode(&before)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("cache: mongo: expire %s: %w", s, err)
	}
	m.forgetDead(s)
	m.dropGenerations(ctx, coll, s.Anchor, before.Gen)
	return nil
}

// ExpireChannel makes every stream of channel cold and deletes their
// instances, for example after the shape of the channel's instances
// changed. The stream documents stay, so that versions stay monotonic.
func (m *MongoStore) ExpireChannel(ctx context.Context, channel string) error {
	coll := m.coll(channel)
	if _, err := coll.UpdateMany(ctx, bson.D{{Key: keyGen, Value: int64(streamGen)}, {Key: "hot", Value: true}},
		bson.D{{Key: "$set", Value: coldFields()}}); err != nil {
		return fmt.Errorf("cache: mongo: expire channel %q: %w", channel, err)
	}
	if _, err := coll.DeleteMany(ctx, bson.D{{Key: keyGen, Value: bson.D{{Key: "$gte", Value: int64(0)}}}}); err != nil {
		return fmt.Errorf("cache: mongo: expire channel %q: %w", channel, err)
	}
	if _, err := m.gone(coll).DeleteMany(ctx, bson.D{}); err != nil {
		return fmt.Errorf("cache: mongo: expire channel %q: tombstones: %w", channel, err)
	}
	return nil
}

// Streams lists the hot streams of every channel with their versions and
// last write times, for example to expire the idle ones. It reads one
// query per channel collection.
func (m *MongoStore) Streams(ctx context.Context) ([]StreamInfo, error) {
	names, err := m.db.ListCollectionNames(ctx, bson.D{})
	if err != nil {
		return nil, fmt.Errorf("cache: mongo: list streams: %w", err)
	}
	var out []StreamInfo
	for _, name := range names {
		if !isChannelCollection(m.prefix, name) {
			continue
		}
		cur, err := m.db.Collection(name).Find(ctx, bson.D{{Key: keyGen, Value: int64(streamGen)}, {Key: "hot", Value: true}})
		if err != nil {
			return nil, fmt.Errorf("cache: mongo: list streams of %s: %w", name, err)
		}
		for cur.Next(ctx) {
			var sd streamDoc
			if err := cur.Decode(&sd); err != nil {
				cur.Close(ctx)
				return nil, fmt.Errorf("cache: mongo: list streams of %s: %w", name, err)
			}
			out = append(out, StreamInfo{Stream: Stream{Channel: sd.Channel, Anchor: sd.Anchor},
				Version: uint64(sd.Version), LastWrite: sd.Written})
		}
		err = cur.Err()
		cur.Close(ctx)
		if err != nil {
			return nil, fmt.Errorf("cache: mongo: list streams of %s: %w", name, err)
		}
	}
	return out, nil
}

// isChannelCollection reports whether name has the form of collectionName.
func isChannelCollection(prefix, name string) bool {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok || len(rest) < 9 || rest[len(rest)-9] != '_' {
		return false
	}
	_, err := hex.DecodeString(rest[len(rest)-8:])
	return err == nil
}

// Snapshot implements Store.
func (m *MongoStore) Snapshot(ctx context.Context, s Stream) (Snapshot, error) {
	sd, ins, err := m.read(ctx, s, func(sd *streamDoc) readQuery {
		stream := bson.D{{Key: keyAnchor, Value: s.Anchor}, {Key: keyGen, Value: sd.Gen}}
		return readQuery{
			// Live documents, and every document changed after the
			// version read, to detect writes in flight.
			live: append(stream, bson.E{Key: "$or", Value: bson.A{
				bson.D{{Key: keyDeleted, Value: false}},
				bson.D{{Key: keyVersion, Value: bson.D{{Key: "$gt", Value: sd.Version}}}},
			}}),
			// Tombstones of deletions in flight, read only while a write
			// is pending.
			gone: append(stream, bson.E{Key: keyVersion, Value: bson.D{{Key: "$gt", Value: sd.Version}}}),
		}
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("cache: mongo: snapshot %s: %w", s, err)
	}
	if sd == nil {
		return Snapshot{}, fmt.Errorf("cache: mongo: snapshot %s: %w", s, ErrCold)
	}
	live := ins[:0]
	for _, in := range ins {
		if !in.Deleted {
			live = append(live, in)
		}
	}
	return Snapshot{Version: uint64(sd.Version), Instances: live}, nil
}

// Since implements Store.
func (m *MongoStore) Since(ctx context.Context, s Stream, version uint64) ([]*Instance, uint64, bool, error) {
	refused := false
	sd, ins, err := m.read(ctx, s, func(sd *streamDoc) readQuery {
		refused = version < uint64(sd.Floor) || version > uint64(sd.Version)
		if refused || version == uint64(sd.Version) {
			return readQuery{}
		}
		changed := bson.D{{Key: keyAnchor, Value: s.Anchor}, {Key: keyGen, Value: sd.Gen},
			{Key: keyVersion, Value: bson.D{{Key: "$gt", Value: int64(version)}}}}
		return readQuery{live: changed, gone: changed, goneAlways: true}
	})
	if err != nil {
		return nil, 0, false, fmt.Errorf("cache: mongo: since %s: %w", s, err)
	}
	if sd == nil {
		return nil, 0, false, nil
	}
	if refused {
		return nil, uint64(sd.Version), false, nil
	}
	return latest(ins), uint64(sd.Version), true, nil
}

// latest keeps, of the instances of one key, the one of the highest
// version: a key deleted and created again has its live document and the
// tombstone of the deletion, and one deleted several times has several
// tombstones.
func latest(ins []*Instance) []*Instance {
	at := make(map[Key]int, len(ins))
	out := ins[:0]
	for _, in := range ins {
		i, seen := at[in.Key()]
		switch {
		case !seen:
			at[in.Key()] = len(out)
			out = append(out, in)
		case in.Version > out[i].Version:
			out[i] = in
		}
	}
	return out
}

// maxReadAttempts bounds the retries of a read that keeps meeting writes
// while no write is pending.
const maxReadAttempts = 1000

// readQuery is what read reads besides the stream document: the documents
// of the channel collection selected by live and the tombstones selected by
// gone (nil: none). gone is read when goneAlways is set, or else when the
// stream document shows a write in flight: a deletion removes the live
// document after writing the tombstone, so a read that missed a document
// finds its tombstone, of a version above the one read.
type readQuery struct {
	live, gone bson.D
	goneAlways bool
}

// read reads the stream document of s and then the documents selected by
// query, retrying until both belong to the same version (see MongoStore).
// It returns a nil stream document for a cold stream.
func (m *MongoStore) read(ctx context.Context, s Stream, query func(*streamDoc) readQuery) (*streamDoc, []*Instance, error) {
	coll := m.coll(s.Channel)
	for attempt := 0; ; attempt++ {
		sd, err := m.loadStream(ctx, coll, s)
		if err != nil {
			return nil, nil, err
		}
		if sd == nil || !sd.Hot {
			return nil, nil, nil
		}
		q := query(sd)
		if q.live == nil && q.gone == nil {
			return sd, nil, nil
		}
		var ins []*Instance
		newer := false
		if q.live != nil {
			if ins, newer, err = m.scan(ctx, coll, q.live, sd.Version); err != nil {
				return nil, nil, err
			}
		}
		goneRead := false
		if !newer && q.gone != nil && (q.goneAlways || sd.Pending != 0) {
			var tomb []*Instance
			if tomb, newer, err = m.scan(ctx, m.gone(coll), q.gone, sd.Version); err != nil {
				return nil, nil, err
			}
			ins = append(ins, tomb...)
			goneRead = true
		}
		if !newer {
			sd2, err := m.loadStream(ctx, coll, s)
			if err != nil {
				return nil, nil, err
			}
			// A write that started after the first read of the stream
			// document shows in the second one (its pending marker, or its
			// version), and it may have deleted documents the scan missed:
			// without the tombstones read after the scan, read again.
			if sameState(sd, sd2) && (sd2.Pending == 0 || goneRead || q.gone == nil) {
				return sd, ins, nil
			}
		} else if m.writerDead(s, sd) {
			return nil, nil, nil // a write died half-way: the content is lost
		}
		// A pending write ends or times out; without one, the stream
		// changed between two reads of its document, which cannot go on
		// for long unless something else writes it.
		if sd.Pending == 0 && attempt >= maxReadAttempts {
			return nil, nil, fmt.Errorf("stream kept changing during %d reads", attempt)
		}
		if err := pause(ctx, attempt); err != nil {
			return nil, nil, err
		}
	}
}

// scan reads the instance documents of filter in coll. It stops early,
// with newer set, at a document whose version exceeds version.
func (m *MongoStore) scan(ctx context.Context, coll *mongo.Collection, filter bson.D, version int64) (ins []*Instance, newer bool, err error) {
	cur, err := coll.Find(ctx, filter, options.Find().SetBatchSize(m.batchSize).
		SetProjection(bson.D{{Key: keyID, Value: 0}, {Key: keyAnchor, Value: 0}, {Key: keyGen, Value: 0}}))
	if err != nil {
		return nil, false, err
	}
	defer cur.Close(ctx)
	for cur.Next(ctx) {
		in, _, err := decodeDoc(cur.Current)
		if err != nil {
			return nil, false, err
		}
		if int64(in.Version) > version {
			return nil, true, nil
		}
		ins = append(ins, in)
	}
	return ins, false, cur.Err()
}

// pause waits before retry number attempt: 1ms doubling up to 32ms, with
// jitter.
func pause(ctx context.Context, attempt int) error {
	d := time.Millisecond << min(attempt, 5)
	d = d/2 + rand.N(d/2+1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// SharedAcrossNodes reports that several nodes may share the store: its
// versions are handed out by MongoDB (rx.SharedStore).
func (m *MongoStore) SharedAcrossNodes() bool { return true }
