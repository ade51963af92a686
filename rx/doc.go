// Package rx is rxgorm's engine: reactive state sync for GORM models.
//
// A channel declares a state tree rooted at one anchor row (or an ordered
// list of them): the anchor model and every model reachable from it through
// GORM associations. The tree is derived from the model types themselves;
// json tags name the fields, `json:"-"` keeps a field on the server, and
// the `rx` tag adjusts relations (see the layer documentation in model.go
// and docs/DECISIONS.md).
//
//	type ChatChannel struct{ rx.Channel[Chat, ChatParams] }
//
//	func (ChatChannel) Authorize(ctx context.Context, u rx.User, p ChatParams) error { ... }
//
// New installs a GORM plugin that captures every create, update and delete
// made through the *gorm.DB, including conditional updates and deletes,
// association changes and soft deletes. Writes inside a transaction are
// buffered with it and handed over once, deduplicated, after a successful
// commit; a rollback (or a rollback to a savepoint) drops what it covers.
//
// After a commit the engine re-reads the touched rows in bulk, finds every
// hot stream (channel and anchor) that holds them or now should, writes the
// changes to the cache store, which assigns the stream's next version and
// computes field-level deltas, and delivers the deltas to subscriptions in
// commit order. A Subscription starts with a snapshot (or, when resuming,
// the changes since a version) and continues with deltas; State rebuilds the
// nested value from them, and Hub.Snapshot serves the same nested JSON to
// plain HTTP handlers.
//
// Clients may also write rows of a channel's state directly, when the
// channel declares it (Writer, Writes): each write is checked against the
// declaration, the subscription's state and an Allow hook, and committed
// through GORM like any other write (write.go). Channels that implement
// PresenceTracker count who is connected to their streams and groups,
// across nodes through the Broker (presence.go).
//
// The WebSocket transport lives in package channel; the cache stores in
// package cache.
package rx
