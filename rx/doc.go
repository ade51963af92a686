// Package rx is rxgorm's engine: reactive state sync for GORM models.
//
// A channel declares a state tree rooted at one anchor row (or an ordered
// list of them): the anchor model and every model reachable from it through
// GORM associations. Every create, update and delete made through the
// *gorm.DB is captured, and after the transaction commits the changed rows
// reach every subscriber whose state holds them, as field-level deltas.
//
//	type ChatChannel struct{ rx.Channel[Chat, ChatParams] }
//
//	func (ChatChannel) Authorize(ctx context.Context, u rx.User, p ChatParams) error { ... }
//
//	hub, err := rx.New(db, rx.Config{})
//	err = hub.Register(&ChatChannel{})
//
// docs/QUICKSTART.md walks from an empty folder to a live app; package
// channel serves the hub over WebSockets; package cache holds the stores.
//
// # Access is a live fact
//
// A channel whose Authorize answer can change while
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
// # The state tree
//
// The tree is derived from the model types with GORM's own schema parser:
// has-one, has-many, belongs-to and many2many relations are followed
// exactly as GORM reads them, and each model type reached is a layer. The
// fields of a layer are named as encoding/json names them (embedded
// structs, shadowing and `json:"-"` included): `json:"-"` keeps a field on
// the server. A field that is neither a column nor a relation is refused
// at Register with a *DeclarationError.
//
// # Struct tags
//
// The `rx` tag on a model field adjusts the tree (options comma-separated,
// e.g. `rx:"order=created_at desc,limit=50"`):
//
//	rx:"owner"                 the field holds the owning user's id: the row is
//	                           per user, sent only to that user's subscriptions
//	                           (instances carry "owner" on the wire)
//	rx:"ids"                   the relation is sent as a list of ids only; the
//	                           target rows are not part of the state
//	rx:"recursive"             the relation may close a type cycle (a tree of
//	                           comments); the data must end it. A cycle without
//	                           "ids" or "recursive" is refused at Register
//	rx:"order=<column> [desc]" the order of a to-many relation (default: the
//	                           primary key ascending)
//	rx:"limit=<n>"             keep only the first n rows of a to-many relation,
//	                           after ordering: a window that moves as rows
//	                           are added (rows leaving it are sent as removed)
//
// 64-bit integer keys, foreign keys and id lists travel as JSON strings, so
// that JavaScript clients hold them exactly (docs/PROTOCOL.md).
//
// # Channels and their hooks
//
// A channel type embeds Channel[T, P] (one anchor of model T, parameters P)
// or List[T, P] (the rows a query returns, in its order). It is
// registered once with Hub.Register; each subscription gets its own copy,
// whose embedded binding gives Params, User, Hub and the runtime state.
// Optional methods, each checked at Register (a near miss of a signature
// is a *DeclarationError naming the expected one):
//
//	Authorize(ctx, User, P) error         who may subscribe; required: without it
//	                                      every subscription is refused (Authorizer)
//	AnchorID(ctx, User, P) (any, error)   a single-anchor channel's anchor key, when
//	                                      it is not P's field tagged rx:"anchor"
//	                                      or P's only field (AnchorIDer)
//	Anchors(ctx, *gorm.DB, User, P) *gorm.DB  a list channel's query (Lister)
//	AuthorizeDependsOn() []Dependency     what Authorize reads: commits changing it
//	                                      re-check live subscriptions (Reauthorizer)
//	Actions() []string                    methods callable by clients (typed RPC)
//	OnConnect(ctx) error                  runs after the snapshot; may Join groups
//	Consumers() Consumers                 handlers of group events (Hub.Publish)
//	Writable() []Writable                 rows clients may create, update, delete
//	                                      (Writer)
//	TrackPresence() PresenceOptions       who is connected, per stream and group
//	                                      (PresenceTracker, PresenceWatcher)
//	ChannelName() string                  the registered name (Namer; default: the
//	                                      Go type name)
//
// Embedding Runtime[R] gives a channel runtime state: values of R, set on
// the server with Runtime.Set, that reach the subscription's client as
// runtime frames (typing indicators, progress).
//
// # Routing
//
// After a commit the engine re-reads the touched rows in bulk (through the
// Hub's *gorm.DB with hooks skipped; a single row by a query built once per
// model and sent to the connection pool directly, which GORM's logger sees
// but callback-based plugins such as tracers do not). For each row
// the state model knows every path from an anchor layer to the row's layer,
// so it finds every hot stream (channel and anchor) that holds the row, or
// now should (a foreign key that moved touches the old and the new parent;
// a row entering or leaving a limit window updates the window). The cache
// store writes the flat instances, assigns the stream's next version and
// computes field-level deltas; a save that changes nothing sends nothing.
// Deltas reach subscriptions in commit order; deletes leave tombstones, so
// a client resuming with Since learns about them.
//
// Writes inside a transaction are buffered with it and delivered once,
// deduplicated, after a successful commit; a rollback (or a rollback to a
// savepoint) drops what it covers. Writes made outside GORM are not seen:
// call Hub.Touch for the rows they changed, or, on PostgreSQL, capture
// from the write-ahead log (Config.WAL, WALConfig): every committed write,
// whoever made it, in commit order, resumable from the slot's confirmed
// position after a crash, with the WAL's row images instead of re-reads
// where they describe the row fully.
//
// # Client writes and presence
//
// Clients may write rows of a channel's state directly when the channel
// declares it (Writer): each write is checked against the declaration, the
// subscription's state and an Allow hook, and committed through GORM like
// any other write. Channels that track presence count who is connected
// to their streams and groups, across nodes through the Broker.
//
// # Several nodes
//
// With a RedisBroker and a shared store (cache.MongoStore), hubs on several
// servers share one database: each hot stream is owned by one node, and
// the others follow it through the broker (docs/SCALING.md).
//
// # Monitoring
//
// Hub.Stats returns the hub's figures (open subscriptions, hot streams,
// the engine's backlog, deltas made, cold loads, the broker's queues), and
// Hub.SetObserver receives the time of each successful Subscribe. Deltas
// carry the time their oldest commit reached the engine
// (Event.Committed), from which package channel measures the
// commit-to-send latency. Counters are atomic, with no lock on a hot
// path. Package rxprom exports them to Prometheus.
package rx
