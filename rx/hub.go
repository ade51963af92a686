package rx

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"reflect"
	"sync"
	"time"

	"github.com/rxgorm/rxgorm/cache"
	"gorm.io/gorm"
)

// Config configures a Hub. The zero value works.
type Config struct {
	// Store keeps the flat instances of hot streams. Nil means a fresh
	// cache.NewMemory store.
	Store cache.Store
	// Logger receives the engine's errors. Nil means slog.Default().
	Logger *slog.Logger
	// SubscriptionBuffer is the number of events a Go subscriber may leave
	// unread before the subscription ends with ErrOverloaded. Zero means 256.
	SubscriptionBuffer int
	// CacheTTL is how long a stream without subscribers stays hot. Zero
	// means one hour.
	CacheTTL time.Duration
	// ProbeInterval is how often a failed cache store is probed. Zero means
	// 2 s.
	ProbeInterval time.Duration
	// Broker connects the nodes of a cluster. Nil means an in-process
	// MemoryBroker: one node. With a RedisBroker and a shared Store
	// (cache.MongoStore) the hub runs in cluster mode: see docs/SCALING.md.
	Broker Broker
	// NodeID names this node in a cluster (stream leases). Empty means a
	// random id per Hub.
	NodeID string
	// LeaseTTL is how long a node owns a stream without renewing its
	// lease: the time for another node to take over the streams of a node
	// that died. Zero means 5 s.
	LeaseTTL time.Duration
	// ReconcileInterval is, in cluster mode, how often the owner of a
	// stream reloads it from the database and reconciles the store with
	// it: a commit whose node died before publishing it reaches the
	// subscribers within this time. Zero means 10 minutes; negative never.
	ReconcileInterval time.Duration
	// PresenceHeartbeat is how often a node announces its presence table
	// to the others (presence.go). Zero means 5 s.
	PresenceHeartbeat time.Duration
	// PresenceTimeout is how long a node's users stay present after the
	// node was last heard from. Zero means three heartbeats.
	PresenceTimeout time.Duration
	// BrokerQueue bounds each queue of messages waiting for the broker
	// (commits for the other nodes; presence): past it messages are
	// dropped and Wait fails at once with CodeOverloaded, so that a hung
	// broker holds neither memory nor callers. Zero means 10,000.
	BrokerQueue int
	// WAL turns on capture from PostgreSQL's logical replication stream
	// (WALConfig): every committed write is broadcast, whoever made it.
	// Nil means the GORM plugin alone captures writes made through db.
	WAL *WALConfig
}

// Hub is the engine: it captures writes made through its *gorm.DB, keeps
// the state of hot streams in its cache store, and delivers snapshots and
// deltas to subscriptions. Create one with New per database.
type Hub struct {
	db     *gorm.DB
	cfg    Config
	store  cache.Store
	broker Broker
	log    *slog.Logger
	model  *model
	engine *engine
	// cluster links the hub to other nodes; nil with the in-process
	// broker.
	cluster *cluster
	// wal consumes PostgreSQL's replication stream; nil without
	// Config.WAL.
	wal *walSource

	ctx    context.Context
	cancel context.CancelFunc
	once   sync.Once

	mu       sync.RWMutex
	channels map[string]*channelDef // guarded by mu

	groups      groups
	presence    *presence
	reauth      reauthIdx // dependencies of Authorize answers (reauth.go)
	unsubSystem func()

	bmu          sync.RWMutex
	listeners    map[int]func(json.RawMessage) // guarded by bmu
	nextListener int                           // guarded by bmu

	stats hubStats // stats.go
}

var gormSession = gorm.Session{NewDB: true, SkipHooks: true}

// New installs the rx plugin on db and starts the engine. Every write made
// through db (and sessions and transactions derived from it) is captured
// from now on. Call Close to stop the engine.
func New(db *gorm.DB, cfg Config) (*Hub, error) {
	if cfg.Store == nil {
		cfg.Store = cache.NewMemory(cache.MemoryOptions{})
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.SubscriptionBuffer <= 0 {
		cfg.SubscriptionBuffer = 256
	}
	if cfg.CacheTTL <= 0 {
		cfg.CacheTTL = time.Hour
	}
	if cfg.ProbeInterval <= 0 {
		cfg.ProbeInterval = 2 * time.Second
	}
	if cfg.Broker == nil {
		cfg.Broker = NewMemoryBroker()
	}
	if cfg.LeaseTTL <= 0 {
		cfg.LeaseTTL = 5 * time.Second
	}
	if cfg.ReconcileInterval == 0 {
		cfg.ReconcileInterval = 10 * time.Minute
	}
	if cfg.PresenceHeartbeat <= 0 {
		cfg.PresenceHeartbeat = 5 * time.Second
	}
	if cfg.PresenceTimeout <= 0 {
		cfg.PresenceTimeout = 3 * cfg.PresenceHeartbeat
	}
	if cfg.BrokerQueue <= 0 {
		cfg.BrokerQueue = 10000
	}
	h := &Hub{
		db:       db,
		cfg:      cfg,
		store:    cfg.Store,
		broker:   cfg.Broker,
		log:      cfg.Logger,
		model:    newModel(db),
		channels: map[string]*channelDef{},
	}
	h.ctx, h.cancel = context.WithCancel(context.WithValue(context.Background(), hubContextKey{}, h))
	h.groups.hub = h
	if cfg.WAL != nil {
		w, err := newWALSource(h, *cfg.WAL)
		if err != nil {
			h.cancel()
			return nil, err
		}
		h.wal = w
	}
	// Every step that can fail comes before the plugin is installed on db,
	// and each is undone if a later one fails, so a failed New leaves db
	// as it found it (and a later New on it can install the plugin).
	var undo []func()
	fail := func(err error) (*Hub, error) {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
		h.cancel()
		return nil, err
	}
	unsub, err := cfg.Broker.Subscribe(h.ctx, "system", h.system)
	if err != nil {
		return fail(fmt.Errorf("rx: subscribe to system broadcasts: %w", err))
	}
	h.unsubSystem = unsub
	undo = append(undo, unsub)
	h.engine = newEngine(h, db.Session(&gormSession))
	if _, local := cfg.Broker.(*MemoryBroker); !local {
		if h.cluster, err = newCluster(h); err != nil {
			return fail(err)
		}
		undo = append(undo, h.cluster.abandon)
	}
	if h.presence, err = newPresence(h); err != nil {
		return fail(fmt.Errorf("rx: subscribe to presence: %w", err))
	}
	undo = append(undo, h.presence.close)
	if err := db.Use(&capture{hub: h}); err != nil {
		return fail(fmt.Errorf("rx: install gorm plugin: %w", err))
	}
	go h.engine.run()
	go h.engine.janitor()
	if h.cluster != nil {
		h.cluster.start()
	}
	return h, nil
}

// Register declares channels. Each value is a channel type embedding
// Channel[T, P] or List[T, P] (a pointer or a value). The state tree of
// each is derived from its anchor model; a bad declaration returns a
// *DeclarationError naming the type and field, and nothing is registered.
func (h *Hub) Register(channels ...any) error {
	defs := make([]*channelDef, 0, len(channels))
	names := map[string]bool{}
	for _, c := range channels {
		d, ok := c.(declarer)
		if !ok {
			return &DeclarationError{Type: fmt.Sprintf("%T", c), Reason: "not a channel: embed rx.Channel[Model, Params] or rx.List[Model, Params]"}
		}
		def, err := d.rxDeclare(c)
		if err != nil {
			return err
		}
		l, err := h.model.layerFor(def.anchorType)
		if err != nil {
			return err
		}
		def.anchor = l
		def.layers = l.reachable()
		def.fingerprint = fingerprint(def)
		def.hasLayer = map[*layer]bool{}
		for _, x := range def.layers {
			def.hasLayer[x] = true
		}
		if err := declareWrites(def); err != nil {
			return err
		}
		declarePresence(def)
		outside, err := h.declareReauth(def)
		if err != nil {
			return err
		}
		def.outside = outside
		h.mu.RLock()
		_, dup := h.channels[def.name]
		h.mu.RUnlock()
		if dup || names[def.name] {
			return &DeclarationError{Type: typeName(def.goType), Reason: fmt.Sprintf("channel name %q is already registered; implement ChannelName to choose another", def.name)}
		}
		names[def.name] = true
		defs = append(defs, def)
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, def := range defs {
		if _, dup := h.channels[def.name]; dup {
			return &DeclarationError{Type: typeName(def.goType), Reason: fmt.Sprintf("channel name %q is already registered", def.name)}
		}
	}
	for _, def := range defs {
		h.channels[def.name] = def
		h.reauth.add(def, def.outside)
	}
	if h.wal != nil {
		ctx, cancel := context.WithTimeout(h.ctx, 30*time.Second)
		defer cancel()
		if err := h.wal.setup(ctx); err != nil {
			return err
		}
	}
	return nil
}

// Touch re-reads rows of model (a value or pointer of a registered model
// type) by primary key and broadcasts what changed, including their
// relation lists. Use it after writes GORM cannot see, such as raw SQL.
func (h *Hub) Touch(ctx context.Context, model any, ids ...any) error {
	t := reflect.TypeOf(model)
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	h.model.mu.Lock()
	l := h.model.byType[t]
	h.model.mu.Unlock()
	if l == nil {
		return fmt.Errorf("rx: Touch: %v is not a model of any registered channel", t)
	}
	var ts []touch
	for _, id := range ids {
		s, ok := idString(reflect.ValueOf(id))
		if !ok {
			return fmt.Errorf("rx: Touch: invalid id %v", id)
		}
		ts = append(ts, touch{l: l, id: s})
		for _, r := range l.rels {
			if r.kind != relBelongsTo {
				ts = append(ts, touch{l: l, id: s, rel: r})
			}
		}
	}
	if len(ts) > 0 {
		h.engine.enqueue(ts)
	}
	return h.Wait(ctx)
}

// Wait returns once every write committed before the call has been applied
// to the cache and handed to subscriptions. With Config.WAL, on the node
// that consumes the replication slot, that includes every write committed
// to the database before the call, through the WAL.
//
// In a cluster it also waits until they were handed to the broker for the
// other nodes. While the broker does not take them (its last publish
// failed, or its queue, Config.BrokerQueue, is full) it fails at once
// with CodeOverloaded wrapping ErrBrokerDown, after the local part: local
// subscriptions have the writes.
func (h *Hub) Wait(ctx context.Context) error {
	if h.wal != nil {
		if err := h.wal.wait(ctx); err != nil {
			return err
		}
	}
	if err := h.engine.barrier(ctx); err != nil {
		return err
	}
	if h.cluster != nil {
		return h.cluster.out.flush(ctx)
	}
	return nil
}

// BrokerStats returns the figures of the queues of messages this hub hands
// to its broker for the other nodes.
func (h *Hub) BrokerStats() BrokerStats {
	var s BrokerStats
	if h.cluster != nil {
		h.cluster.out.stats(&s)
	}
	if h.presence != nil {
		h.presence.out.stats(&s)
	}
	return s
}

// Snapshot returns the nested JSON state of a channel for user, exactly as a
// subscribed client rebuilds it, so that a plain HTTP handler can serve the
// same state as the real-time channel. Access is checked as for Subscribe.
func (h *Hub) Snapshot(ctx context.Context, channel string, params any, user User) (json.RawMessage, error) {
	def, p, anchor, err := h.prepare(ctx, channel, params, user)
	if err != nil {
		return nil, err
	}
	// Only the store reads run on the engine goroutine; the nested value is
	// built here (store instances are immutable).
	type part struct {
		anchor string
		snap   cache.Snapshot
	}
	var (
		anchors []string
		parts   []part
		serr    error
	)
	err = h.engine.call(ctx, func() {
		anchors = []string{anchor}
		if def.many {
			if anchors, serr = h.listAnchors(ctx, def, user, p); serr != nil {
				return
			}
		}
		for _, a := range anchors {
			s, err := h.engine.hot(ctx, def, a)
			if err != nil {
				if def.many && isNotFound(err) {
					continue
				}
				serr = err
				return
			}
			snap, err := h.engine.snapshot(ctx, s.key)
			if err != nil {
				serr = err
				return
			}
			parts = append(parts, part{a, snap})
		}
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return nil, err
	}
	st := newState(def, user)
	st.anchors = anchors
	for _, pt := range parts {
		st.Apply(filterOwner(&Event{Anchor: pt.anchor, Version: pt.snap.Version, Instances: pt.snap.Instances, Snapshot: true}, user.ID))
	}
	return st.JSON()
}

// Expire makes one anchor's stream of a channel cold: its cache entry is
// dropped and current subscribers receive a fresh snapshot.
func (h *Hub) Expire(ctx context.Context, channel string, anchorID any) error {
	def, id, err := h.anchorOf("Expire", channel, anchorID)
	if err != nil {
		return err
	}
	return h.engine.call(ctx, func() {
		if s := h.engine.streams[storeKey(def, id)]; s != nil {
			h.engine.resync(s)
		}
	})
}

// Revoke ends the subscriptions of user to one anchor of a channel, with a
// forbidden error, for when the user loses access (leaves a chat, is
// removed from a group). Their clients receive the error and stop receiving
// the stream. A channel implementing Reauthorizer needs no call: the
// commit that removes the access ends them, before its own deltas.
func (h *Hub) Revoke(ctx context.Context, channel string, anchorID any, userID string) error {
	def, id, err := h.anchorOf("Revoke", channel, anchorID)
	if err != nil {
		return err
	}
	return h.engine.call(ctx, func() {
		key := storeKey(def, id)
		streams := []*hotStream{h.engine.streams[key]}
		for s := range h.engine.parked {
			if s.key == key {
				streams = append(streams, s)
			}
		}
		for _, s := range streams {
			if s == nil {
				continue
			}
			for sub := range s.subs {
				if sub.user.ID == userID {
					sub.end(Errorf(CodeForbidden, "access to %s %s was revoked", channel, id))
				}
			}
		}
	})
}

// anchorOf returns the channel named channel and the id of anchorID, for
// the method op.
func (h *Hub) anchorOf(op, channel string, anchorID any) (*channelDef, string, error) {
	id, ok := idString(reflect.ValueOf(anchorID))
	if !ok {
		return nil, "", fmt.Errorf("rx: %s: invalid anchor id %v", op, anchorID)
	}
	h.mu.RLock()
	def := h.channels[channel]
	h.mu.RUnlock()
	if def == nil {
		return nil, "", fmt.Errorf("rx: %s: no channel %q", op, channel)
	}
	return def, id, nil
}

// Close stops the engine and ends every subscription. Writes committed
// afterwards are no longer broadcast. It closes the statements the hub
// prepared on the database (the engine's one-row reads on SQLite, MariaDB
// and MySQL); the *gorm.DB stays open. Close is idempotent.
func (h *Hub) Close() error {
	h.once.Do(func() {
		h.engine.close()
		if h.cluster != nil {
			h.cluster.close()
		}
		h.presence.close()
		h.unsubSystem()
		h.cancel()
		if h.wal != nil && h.wal.started.Load() {
			<-h.wal.done // the replication connection is closed
		}
		h.model.closeStatements()
	})
	return nil
}

func asError(err error, target **Error) bool { return errors.As(err, target) }
