package cache

import (
	"context"
	"errors"
	"strconv"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Version claims (issue 20).
//
// FerretDB v1 evaluates an update's filter and applies its change in
// separate steps, so the conditional update that locks a stream in Apply
// (see MongoStore) can let two writers through that read the stream at the
// same version: both then wrote and committed one version with different
// content, and the clients of each missed the other's changes for good.
// Refusing a second document with an existing _id is atomic on every
// server, FerretDB's SQLite and PostgreSQL backends included. So each
// Apply first claims the version it is about to commit by inserting a
// claim document whose _id names the stream and the version; of two
// writers that read the stream at one version, exactly one inserts it, and
// the other's ordered write stops there, before anything of the stream is
// written, and reads again (it is retried like a failed lock). The claim
// is an upsert on {_id, w: token}: an insert when the _id is free, a
// duplicate key when another writer holds it. It is the first operation of
// the stream in the same update command as the lock, so it costs no round
// trip.
//
// A claim is only needed until the version it names is committed: a writer
// that read the stream before that commit and claims the version after it
// can only evaluate its lock after the commit, and the lock, which wants
// the stream at the version before, fails. So each store deletes the claims
// of its committed writes, claimSweep at a time in one command (a lookup by
// _id each), and a claim whose lock failed at once. A claim left by a
// writer that died between its claim and its commit is taken for dead
// after PendingTimeout, as a pending marker is, and removed by the next
// writer that meets it; Fill removes the claims of the versions below its
// own.

// claimGen is the _g of claim documents: negative like streamGen, so that
// no instance query matches one, and distinct from it. The claimed version
// is in _i, which keeps claim documents apart in the unique index on
// (_a, _g, _t, _i, _o).
const claimGen = -2

// claimSweep is the number of committed claims a store deletes at once.
const claimSweep = 16

// claimDocID returns the _id of the claim of version v of the stream of
// anchor: "k:", the anchor, ':' and the version. The version is the text
// after the last ':', so two claims never share an _id.
func claimDocID(anchor string, v int64) string {
	return "k:" + anchor + ":" + strconv.FormatInt(v, 10)
}

// claimModel returns the operation that claims version v of the stream of
// anchor for the write token.
func claimModel(anchor string, v int64, token string, now time.Time) mongo.WriteModel {
	return mongo.NewUpdateOneModel().
		SetFilter(bson.D{{Key: keyID, Value: claimDocID(anchor, v)}, {Key: "w", Value: token}}).
		SetUpdate(bson.D{{Key: "$setOnInsert", Value: bson.D{{Key: keyAnchor, Value: anchor},
			{Key: keyGen, Value: int64(claimGen)}, {Key: keyIDField, Value: v}, {Key: "t", Value: now.UnixMilli()}}}}).
		SetUpsert(true)
}

// claimDoc is a claim document.
type claimDoc struct {
	Writer string `bson:"w"`
	At     int64  `bson:"t"` // Unix milliseconds
}

// clearDeadClaim removes the claim of version v of st's stream if its
// writer will never commit it: it is ours and failed, or it is older than
// PendingTimeout. Errors are ignored: the next attempt tries again.
func (m *MongoStore) clearDeadClaim(ctx context.Context, coll *mongo.Collection, st *applyStream, v int64) {
	id := claimDocID(st.s.Anchor, v)
	var c claimDoc
	if err := coll.FindOne(ctx, bson.D{{Key: keyID, Value: id}}).Decode(&c); err != nil {
		return
	}
	m.deadMu.Lock()
	tok, ours := m.dead[st.s]
	m.deadMu.Unlock()
	if (ours && tok == c.Writer) || time.Since(time.UnixMilli(c.At)) > m.pendingTimeout {
		_, _ = coll.DeleteOne(ctx, bson.D{{Key: keyID, Value: id}, {Key: "w", Value: c.Writer}})
	}
}

// dropClaim deletes the claim of version v of the stream of anchor held by
// token, after its lock failed. Errors are ignored: the claim then waits
// for PendingTimeout.
func (m *MongoStore) dropClaim(ctx context.Context, coll *mongo.Collection, anchor string, v int64, token string) {
	_, _ = coll.DeleteOne(ctx, bson.D{{Key: keyID, Value: claimDocID(anchor, v)}, {Key: "w", Value: token}})
}

// sweepClaims records the claims of committed writes to coll and deletes
// them once there are claimSweep of them, in one command. Errors are
// ignored: a claim left behind does no harm, as the stream has moved past
// its version.
func (m *MongoStore) sweepClaims(ctx context.Context, coll *mongo.Collection, ids []string) {
	m.claimMu.Lock()
	all := append(m.claims[coll.Name()], ids...)
	if len(all) < claimSweep {
		m.claims[coll.Name()] = all
		m.claimMu.Unlock()
		return
	}
	delete(m.claims, coll.Name())
	m.claimMu.Unlock()
	models := make([]mongo.WriteModel, len(all))
	for i, id := range all {
		models[i] = mongo.NewDeleteOneModel().SetFilter(bson.D{{Key: keyID, Value: id}})
	}
	batch := m.opsPerWrite(ctx)
	for lo := 0; lo < len(models); lo += batch {
		_, err := coll.BulkWrite(ctx, models[lo:min(lo+batch, len(models))], options.BulkWrite().SetOrdered(false))
		var bwe mongo.BulkWriteException
		if err != nil && !errors.As(err, &bwe) {
			return
		}
	}
}

// dropClaimsBelow deletes the claims of anchor's versions below v (Fill,
// with v its own version). Errors are ignored.
func dropClaimsBelow(ctx context.Context, coll *mongo.Collection, anchor string, v int64) {
	_, _ = coll.DeleteMany(ctx, bson.D{{Key: keyAnchor, Value: anchor}, {Key: keyGen, Value: int64(claimGen)},
		{Key: keyIDField, Value: bson.D{{Key: "$lt", Value: v}}}})
}
