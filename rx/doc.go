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
// Access is a live fact. A channel whose Authorize answer can change while
// a subscription lives (a member leaves, a role changes, a user is
// deleted) names what it reads by implementing Reauthorizer:
//
//	func (*ChatChannel) AuthorizeDependsOn() []rx.Dependency {
//		return []rx.Dependency{{Model: Chat{}, Relation: "Members"}}
//	}
//
// After a commit that changes a dependency, the engine re-checks the
// subscribers of the streams holding the changed rows (found by the same
// routing as deltas) before it hands out any delta of that commit, and
// ends those refused with a forbidden *Error: they receive nothing of that
// commit or a later one, leave presence, and their actions and writes are
// refused. Commits that touch no dependency cost nothing more; a channel
// may answer a re-check for many users at once (UsersAuthorizer). In a
// cluster each node re-checks its own subscribers, in the order of the
// stream's deltas (reauth.go, docs/DECISIONS.md).
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
