// Package cache holds the flat-instance store behind rxgorm's streams.
//
// A stream is the state of one channel for one anchor row. Its content is a
// set of flat instances: one per row of the state tree, each with its layer
// type, primary key, optional owner (per-user rows) and JSON-encoded fields.
// Every change to a stream gets the stream's next version number; deletes
// leave tombstones so that a client can resume from the last version it saw.
//
// The package holds the Store interface, the in-memory implementation used by
// default, and (in later files) the MongoDB implementation. It imports nothing
// else of rxgorm.
package cache
