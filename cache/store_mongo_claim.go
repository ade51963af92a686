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
// separate steps, so a conditional update cannot lock a stream there: two
// writers that read the stream at one version both passed such a lock,
// wrote and committed one version with different content, and the clients
// of each missed the other's changes for good. And FerretDB v1 looks a
// document up by key only when the filter is a bare _id: any other filter
// scans the collection, so a conditional update cost more with every
// document and tombstone the collection holds (hundreds of milliseconds at
// a thousand). Refusing a second document with an existing _id is atomic
// on every server, FerretDB's backends included, and inserting by _id
// costs the same whatever the collection holds. So every move of a stream
// from one version to another (an Apply, the switch of a Fill) is first
// claimed by inserting a claim document whose _id names the stream and the
// version it moves from. Of the writers that read one version, exactly one
// inserts the claim; the others read again. The claimant then reads the
// stream document again: a writer that read the stream before another's
// commit and claims after it finds the stream moved on, drops its claim
// and reads again. What follows (the pending marker, the documents, the
// commit) needs no condition: every filter is a bare _id.
//
// A claim is needed only until the stream has moved past its version, so
// each store deletes the claims of its committed writes, claimSweep at a
// time in one command (a lookup by _id each). A claim left by a writer that
// died between its claim and its commit is taken for dead after
// PendingTimeout, as a pending marker is, and removed by the next writer
// that meets it; Fill removes the claims of the versions below its own.

// claimGen is the _g of claim documents: negative like streamGen, so that
// no instance query matches one, and distinct from it. The claimed version
// is in _i, which keeps claim documents apart in the unique index on
// (_a, _g, _t, _i, _o).
const claimGen = -2

// claimSweep is the number of committed claims a store deletes at once.
const claimSweep = 16

// claimDocID returns the _id of the claim of the move of the stream of
// anchor from version v: "k:", the anchor, ':' and the version. The
// version is the text after the last ':', so two claims never share an _id.
func claimDocID(anchor string, v int64) string {
	return "k:" + anchor + ":" + strconv.FormatInt(v, 10)
}

// claimDocument returns the claim of the move of the stream of anchor from
// version v by the write token.
func claimDocument(anchor string, v int64, token string, now time.Time) bson.D {
	return bson.D{{Key: keyID, Value: claimDocID(anchor, v)}, {Key: "w", Value: token},
		{Key: keyAnchor, Value: anchor}, {Key: keyGen, Value: int64(claimGen)}, {Key: keyIDField, Value: v},
		{Key: "t", Value: now.UnixMilli()}}
}

// claimDoc is a claim document.
type claimDoc struct {
	Writer string `bson:"w"`
	At     int64  `bson:"t"` // Unix milliseconds
}

// claim claims the move of each of streams from the version read, and
// checks that the stream is still as read. It returns the streams claimed
// and those to read and write again. After an error, claims it may have
// made count as dead.
func (m *MongoStore) claim(ctx context.Context, coll *mongo.Collection, streams []*applyStream, token string) (claimed, again []*applyStream, err error) {
	now := time.Now()
	docs := make([]any, len(streams))
	for i, st := range streams {
		docs[i] = claimDocument(st.s.Anchor, st.sd.Version, token, now)
	}
	taken := make(map[int]bool)
	if _, err := coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false)); err != nil {
		var bwe mongo.BulkWriteException
		if !errors.As(err, &bwe) || bwe.WriteConcernError != nil || len(bwe.WriteErrors) == 0 {
			m.setDead(streams, token)
			return streams, nil, err
		}
		for _, we := range bwe.WriteErrors {
			if we.Code != duplicateKey {
				m.setDead(streams, token)
				return streams, nil, err
			}
			taken[we.Index] = true
		}
	}
	var mine []*applyStream
	for i, st := range streams {
		if taken[i] {
			// Another writer's: it commits, or it died and its claim
			// goes once it counts as dead.
			m.clearDeadClaim(ctx, coll, st.s, st.sd.Version)
			again = append(again, st)
		} else {
			mine = append(mine, st)
		}
	}
	if len(mine) == 0 {
		return nil, again, nil
	}
	sds, err := m.loadStreams(ctx, coll, mine)
	if err != nil {
		m.setDead(mine, token)
		return mine, nil, err
	}
	for _, st := range mine {
		if sd := sds[st.s.Anchor]; sd == nil || !sameState(sd, st.sd) || sd.Pending != 0 {
			m.dropClaim(ctx, coll, st.s.Anchor, st.sd.Version) // moved on since the read
			again = append(again, st)
		} else {
			claimed = append(claimed, st)
		}
	}
	return claimed, again, nil
}

// clearDeadClaim removes the claim of stream s's move from version v if
// its writer will never commit it: it is ours and failed, or it is older
// than PendingTimeout. Errors are ignored: the next attempt tries again.
func (m *MongoStore) clearDeadClaim(ctx context.Context, coll *mongo.Collection, s Stream, v int64) {
	id := claimDocID(s.Anchor, v)
	var c claimDoc
	if err := coll.FindOne(ctx, bson.D{{Key: keyID, Value: id}}).Decode(&c); err != nil {
		return
	}
	m.deadMu.Lock()
	tok, ours := m.dead[s]
	m.deadMu.Unlock()
	if (ours && tok == c.Writer) || time.Since(time.UnixMilli(c.At)) > m.pendingTimeout {
		// Rare: the only filter beside _id, so that a claim made anew
		// meanwhile stays.
		_, _ = coll.DeleteOne(ctx, bson.D{{Key: keyID, Value: id}, {Key: "w", Value: c.Writer}})
	}
}

// dropClaim deletes a claim this store holds on the move of the stream of
// anchor from version v, which it will not use. Errors are ignored: the
// claim then waits for PendingTimeout.
func (m *MongoStore) dropClaim(ctx context.Context, coll *mongo.Collection, anchor string, v int64) {
	_, _ = coll.DeleteOne(ctx, bson.D{{Key: keyID, Value: claimDocID(anchor, v)}})
}

// claimFill claims the move of stream s from its current version for a
// Fill that switches it to generation gen, and returns the stream document
// it claimed. It returns a nil document, with no claim, when the stream is
// already at generation gen or later (a Fill with a later version switched
// first).
func (m *MongoStore) claimFill(ctx context.Context, coll *mongo.Collection, s Stream, gen int64, token string) (*streamDoc, error) {
	for attempt := 0; ; attempt++ {
		sd, err := m.loadStream(ctx, coll, s)
		if err != nil {
			return nil, err
		}
		if sd == nil {
			return nil, &ConflictError{Stream: s, Err: errors.New("stream document missing during Fill")}
		}
		if sd.Gen >= gen {
			return nil, nil
		}
		_, err = coll.InsertOne(ctx, claimDocument(s.Anchor, sd.Version, token, time.Now()))
		if err == nil {
			now, err := m.loadStream(ctx, coll, s)
			if err != nil {
				m.dropClaim(ctx, coll, s.Anchor, sd.Version)
				return nil, err
			}
			if now != nil && now.Hot == sd.Hot && now.Gen == sd.Gen && now.Version == sd.Version {
				return sd, nil
			}
			m.dropClaim(ctx, coll, s.Anchor, sd.Version)
		} else if mongo.IsDuplicateKeyError(err) {
			m.clearDeadClaim(ctx, coll, s, sd.Version)
		} else {
			return nil, err
		}
		if err := pause(ctx, attempt); err != nil {
			return nil, err
		}
	}
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
