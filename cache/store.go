package cache

import (
	"context"
	"errors"
	"fmt"
)

// ErrCold is returned (wrapped) when an operation needs a stream that the
// store does not hold: it was never filled, or it expired.
var ErrCold = errors.New("cache: stream is cold")

// ErrConflict is returned (wrapped, by a *ConflictError) when a write met
// another writer's write to the same stream: two servers wrote one stream
// at once. The store is not down: the caller should reload the stream and
// write again, not give up on the store.
var ErrConflict = errors.New("cache: concurrent write to the stream")

// ConflictError reports a write that conflicted with another writer's.
// errors.Is(err, ErrConflict) holds for it.
type ConflictError struct {
	Stream Stream
	Err    error // the store's own error, for example a duplicate key
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("cache: concurrent write to %s: %v", e.Stream, e.Err)
}

// Unwrap returns the store's own error.
func (e *ConflictError) Unwrap() error { return e.Err }

// Is reports whether target is ErrConflict.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// Store keeps the flat instances of hot streams with per-stream versions.
//
// Implementations are safe for concurrent use. Writes to one stream are
// expected from one goroutine at a time (the engine orders them), but reads
// may run concurrently with writes and must see a consistent state: the
// instances of a Snapshot are exactly those at its Version.
type Store interface {
	// Fill replaces the whole content of a stream with instances built from
	// the database (a cold load) and returns the stream's version. The
	// version is greater than any version the stream had before, also across
	// restarts, so that clients holding an older version resume with a full
	// snapshot.
	Fill(ctx context.Context, s Stream, instances []*Instance) (uint64, error)

	// Apply merges changes into hot streams. For each write it returns the
	// delta: the changed instances carrying only their changed fields (new
	// instances in full, tombstones for deletes), all stamped with the
	// stream's next version. A write that changes nothing yields a Delta
	// with no instances and the version unchanged: the stream's version
	// once every write that had begun on it is over, so a writer that finds
	// another's change already stored learns the version it came with. A
	// write to a cold stream
	// yields a Delta with Cold set and is otherwise ignored.
	Apply(ctx context.Context, writes []Write) ([]Delta, error)

	// Snapshot returns the live (non-deleted) instances of a stream and its
	// version. It returns an error wrapping ErrCold for a cold stream.
	Snapshot(ctx context.Context, s Stream) (Snapshot, error)

	// Since returns every instance of a stream that changed after version,
	// tombstones included, in full, and the current version. ok is false
	// when the store cannot answer (cold stream, version from before the
	// stream was last filled, or tombstones already pruned): the caller
	// then needs a full snapshot.
	Since(ctx context.Context, s Stream, version uint64) (changes []*Instance, current uint64, ok bool, err error)

	// Expire drops a stream: it becomes cold.
	Expire(ctx context.Context, s Stream) error
}

// Write is a batch of changes to one stream. A change carries the fields to
// set (a full row for a new instance) or Deleted.
type Write struct {
	Stream  Stream
	Changes []*Instance
}

// Delta is what a Write changed.
type Delta struct {
	Stream    Stream
	Version   uint64
	Instances []*Instance
	Cold      bool
}

// Snapshot is the content of a stream at one version.
type Snapshot struct {
	Version   uint64
	Instances []*Instance
}
