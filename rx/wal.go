package rx

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pglogrepl"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/jackc/pgx/v5/pgtype"
	"gorm.io/gorm/schema"
)

// Capture from PostgreSQL's write-ahead log (docs/DECISIONS.md, "Capture
// from the WAL"). A walSource reads the logical replication stream of a
// durable slot with the pgoutput plugin, over a publication of the tables of
// the registered models. Each committed transaction becomes one batch of
// touches for the engine, carrying the new row images the WAL holds and
// the transaction's id (the engine waits for the transaction to be
// visible only before it reads the database for it: engine.ready); the
// slot's confirmed position advances to a transaction's end only after the
// engine has stored (and, in a cluster, handed to the broker) every batch
// up to it, so a process killed at any point resumes from the slot without
// losing a transaction.

// WALConfig turns on capture from PostgreSQL's logical replication stream
// (Config.WAL). Every committed write reaches the subscribers, whoever made
// it (psql, other services, migrations, raw SQL), and the GORM plugin stops
// handing over writes itself, so that each is broadcast once. The database
// needs wal_level=logical and a role with the REPLICATION attribute that
// may create publications on the models' tables (README, "PostgreSQL WAL
// capture").
type WALConfig struct {
	// DSN connects to the database for replication, as a libpq keyword/value
	// string or a postgres:// URL; replication=database is added. Required.
	DSN string
	// Slot names the durable logical replication slot, created when
	// missing. Empty means "rxgorm". Nodes of one application share it;
	// different applications on one database need different slots.
	Slot string
	// Publication names the publication over the models' tables, created
	// or extended when channels are registered. Empty means "rxgorm".
	Publication string
	// StatusInterval is how often the confirmed position is reported to
	// the server when it did not move; a position that moved is reported
	// at most every StatusInterval/4, and a keepalive asking for a reply
	// is answered at once. The consumer also wakes up at least every
	// StatusInterval (at most 200 ms) without WAL to read. Zero means 1 s.
	StatusInterval time.Duration
	// KeepReplicaIdentity leaves the tables' REPLICA IDENTITY as it is.
	// By default rx sets FULL on join tables and on tables with foreign
	// keys to a parent list, so that the WAL carries the old values that
	// route a row moving from one parent to another.
	KeepReplicaIdentity bool
}

// walSource is a hub's consumer of one replication slot.
type walSource struct {
	h   *Hub
	cfg WALConfig

	setupMu sync.Mutex
	started atomic.Bool
	schema  string // the search path's schema: where the models' tables are

	// Positions: enqueued is the end of the last transaction handed to the
	// engine (or of WAL known to hold nothing more for it), confirmed the
	// position the slot may advance to.
	enqueued  atomic.Uint64
	confirmed atomic.Uint64
	consuming atomic.Bool // this node streams the slot now

	// Counters for tests and operators.
	restarts   atomic.Int64 // streaming sessions started
	recreated  atomic.Int64 // slots created because they were missing
	resyncs    atomic.Int64 // resyncs for TRUNCATE, schema changes and new slots
	images     atomic.Int64 // rows handed over with their WAL image
	rereads    atomic.Int64 // rows handed over to be re-read
	statusSent atomic.Int64 // standby status updates sent

	wmu     sync.Mutex
	waitSeq uint64
	waiters map[string]chan struct{} // guarded by wmu

	done chan struct{}
}

const (
	walMessagePrefix = "rxgorm.wait"
	walLeaseKey      = "wal:"
	sqlStateNoObject = "42704" // undefined_object: the slot is gone
)

func newWALSource(h *Hub, cfg WALConfig) (*walSource, error) {
	if cfg.DSN == "" {
		return nil, errors.New("rx: Config.WAL.DSN is empty")
	}
	if h.db.Dialector.Name() != "postgres" {
		return nil, fmt.Errorf("rx: Config.WAL needs PostgreSQL, not %s", h.db.Dialector.Name())
	}
	if cfg.Slot == "" {
		cfg.Slot = "rxgorm"
	}
	if cfg.Publication == "" {
		cfg.Publication = "rxgorm"
	}
	if cfg.StatusInterval <= 0 {
		cfg.StatusInterval = time.Second
	}
	return &walSource{h: h, cfg: cfg, waiters: map[string]chan struct{}{}, done: make(chan struct{})}, nil
}

func quoteIdent(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// tables returns the tables of the registered models and their join tables.
func (w *walSource) tables() (layers []string, joins []string) {
	m := w.h.model
	m.mu.Lock()
	defer m.mu.Unlock()
	for t := range m.byTable {
		layers = append(layers, t)
	}
	for t := range m.joinTables {
		if m.byTable[t] == nil {
			joins = append(joins, t)
		}
	}
	slices.Sort(layers)
	slices.Sort(joins)
	return layers, joins
}

// setup runs after each Register: the replica identities, the publication
// over every registered table and the slot, then (once) the consumer. It
// is synchronous, so that no commit after Register returns is missed.
func (w *walSource) setup(ctx context.Context) error {
	w.setupMu.Lock()
	defer w.setupMu.Unlock()
	db := w.h.db.Session(&gormSession).WithContext(ctx)
	if w.schema == "" {
		if err := db.Raw("SELECT current_schema()").Scan(&w.schema).Error; err != nil {
			return fmt.Errorf("rx: WAL: read the current schema: %w", err)
		}
	}
	layers, joins := w.tables()
	all := append(append([]string{}, layers...), joins...)
	if !w.cfg.KeepReplicaIdentity {
		full := map[string]bool{}
		for _, t := range joins {
			full[t] = true
		}
		w.h.model.mu.Lock()
		for _, t := range layers {
			if l := w.h.model.byTable[t]; l != nil && len(l.parents) > 0 {
				full[t] = true
			}
		}
		w.h.model.mu.Unlock()
		for _, t := range all {
			var ident string
			if err := db.Raw("SELECT relreplident::text FROM pg_class WHERE oid = to_regclass(?)", quoteIdent(w.schema)+"."+quoteIdent(t)).Scan(&ident).Error; err != nil {
				return fmt.Errorf("rx: WAL: read the replica identity of %s: %w", t, err)
			}
			if ident == "" {
				return fmt.Errorf("rx: WAL: table %s.%s does not exist", w.schema, t)
			}
			var hasPK bool
			if err := db.Raw("SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = to_regclass(?) AND indisprimary)", quoteIdent(w.schema)+"."+quoteIdent(t)).Scan(&hasPK).Error; err != nil {
				return fmt.Errorf("rx: WAL: read the primary key of %s: %w", t, err)
			}
			if (full[t] || !hasPK) && ident != "f" {
				if err := db.Exec("ALTER TABLE " + quoteIdent(w.schema) + "." + quoteIdent(t) + " REPLICA IDENTITY FULL").Error; err != nil {
					return fmt.Errorf("rx: WAL: set REPLICA IDENTITY FULL on %s: %w", t, err)
				}
			}
		}
	}
	var exists bool
	if err := db.Raw("SELECT EXISTS (SELECT 1 FROM pg_publication WHERE pubname = ?)", w.cfg.Publication).Scan(&exists).Error; err != nil {
		return fmt.Errorf("rx: WAL: read publication %s: %w", w.cfg.Publication, err)
	}
	var missing []string
	if exists {
		var have []string
		if err := db.Raw("SELECT tablename FROM pg_publication_tables WHERE pubname = ? AND schemaname = ?", w.cfg.Publication, w.schema).Scan(&have).Error; err != nil {
			return fmt.Errorf("rx: WAL: read publication %s: %w", w.cfg.Publication, err)
		}
		for _, t := range all {
			if !slices.Contains(have, t) {
				missing = append(missing, t)
			}
		}
	} else {
		missing = all
	}
	if len(missing) > 0 {
		names := make([]string, len(missing))
		for i, t := range missing {
			names[i] = quoteIdent(w.schema) + "." + quoteIdent(t)
		}
		q := "ALTER PUBLICATION " + quoteIdent(w.cfg.Publication) + " ADD TABLE " + strings.Join(names, ", ")
		if !exists {
			q = "CREATE PUBLICATION " + quoteIdent(w.cfg.Publication) + " FOR TABLE " + strings.Join(names, ", ")
		}
		if err := db.Exec(q).Error; err != nil {
			return fmt.Errorf("rx: WAL: publish %s: %w", strings.Join(missing, ", "), err)
		}
	}
	if _, err := w.ensureSlot(ctx); err != nil {
		return err
	}
	if !w.started.Load() {
		w.started.Store(true)
		go w.run()
	}
	return nil
}

// ensureSlot creates the slot when it does not exist and reports whether
// it did.
func (w *walSource) ensureSlot(ctx context.Context) (bool, error) {
	db := w.h.db.Session(&gormSession).WithContext(ctx)
	var n int64
	if err := db.Raw("SELECT count(*) FROM pg_replication_slots WHERE slot_name = ?", w.cfg.Slot).Scan(&n).Error; err != nil {
		return false, fmt.Errorf("rx: WAL: read slot %s: %w", w.cfg.Slot, err)
	}
	if n > 0 {
		return false, nil
	}
	err := db.Exec("SELECT pg_create_logical_replication_slot(?, 'pgoutput')", w.cfg.Slot).Error
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42710" { // duplicate_object: another node made it
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("rx: WAL: create slot %s: %w", w.cfg.Slot, err)
	}
	return true, nil
}

// WALLag returns how many bytes of WAL the replication slot of Config.WAL
// is behind the server's current position (what the server keeps for it).
// It fails without Config.WAL or when the slot does not exist.
func (h *Hub) WALLag(ctx context.Context) (int64, error) {
	if h.wal == nil {
		return 0, errors.New("rx: WALLag: Config.WAL is not set")
	}
	var lag *int64
	err := h.db.Session(&gormSession).WithContext(ctx).
		Raw("SELECT (pg_current_wal_lsn() - confirmed_flush_lsn)::bigint FROM pg_replication_slots WHERE slot_name = ?", h.wal.cfg.Slot).
		Scan(&lag).Error
	if err != nil {
		return 0, fmt.Errorf("rx: WALLag: %w", err)
	}
	if lag == nil {
		return 0, fmt.Errorf("rx: WALLag: replication slot %s does not exist", h.wal.cfg.Slot)
	}
	return *lag, nil
}

// WALStats are counters of a hub's WAL capture (Hub.WALStats).
type WALStats struct {
	// Consuming reports whether this node streams the slot now (in a
	// cluster exactly one node does).
	Consuming bool
	// Sessions counts the replication sessions this node started.
	Sessions int64
	// SlotsCreated counts the slots this node created because they were
	// missing (the first start, or a slot dropped under it).
	SlotsCreated int64
	// Resyncs counts full or per-table resyncs: TRUNCATE, a changed table
	// definition, a recreated slot.
	Resyncs int64
	// Confirmed is the position (LSN) up to which the slot may discard WAL.
	Confirmed uint64
	// Images counts the inserted and updated rows handed to the engine
	// with the row image of the WAL (no re-read).
	Images int64
	// Rereads counts the inserted and updated rows the WAL did not
	// describe fully (TOAST values left out, types or scopes rx does not
	// decode, transactions replayed after a restart): they are re-read.
	Rereads int64
	// VisibilityReads counts the snapshots the engine read to learn that
	// WAL transactions handed to it are visible, which it does only before
	// reading the database for them (a re-read, a list, a list channel's
	// query, Authorize): commits whose rows all come with their images and
	// move no list read none. In a cluster each node counts its own.
	VisibilityReads int64
	// StatusUpdates counts the standby status updates sent to the server:
	// one when the confirmed position moved, at most every
	// StatusInterval/4, one every StatusInterval, and one whenever the
	// server asks.
	StatusUpdates int64
}

// WALStats returns the counters of the WAL capture; the zero value without
// Config.WAL.
func (h *Hub) WALStats() WALStats {
	w := h.wal
	if w == nil {
		return WALStats{}
	}
	return WALStats{
		Consuming:       w.consuming.Load(),
		Sessions:        w.restarts.Load(),
		SlotsCreated:    w.recreated.Load(),
		Resyncs:         w.resyncs.Load(),
		Confirmed:       w.confirmed.Load(),
		Images:          w.images.Load(),
		Rereads:         w.rereads.Load(),
		VisibilityReads: h.engine.vis.reads.Load(),
		StatusUpdates:   w.statusSent.Load(),
	}
}

// wait returns once the consumer has handed to the engine every
// transaction committed before the call. In a cluster, on a node that does
// not consume the slot, it returns at once.
func (w *walSource) wait(ctx context.Context) error {
	if !w.started.Load() {
		return nil
	}
	if c := w.h.cluster; c != nil && c.lease != nil && !w.consuming.Load() {
		return nil // another node consumes the slot
	}
	w.wmu.Lock()
	w.waitSeq++
	token := w.h.nodeName() + ":" + strconv.FormatUint(w.waitSeq, 10)
	ch := make(chan struct{})
	w.waiters[token] = ch
	w.wmu.Unlock()
	defer func() {
		w.wmu.Lock()
		delete(w.waiters, token)
		w.wmu.Unlock()
	}()
	// A non-transactional logical message is decoded in WAL order: every
	// transaction committed before it reaches the consumer first.
	if err := w.h.db.Session(&gormSession).WithContext(ctx).Exec("SELECT pg_logical_emit_message(false, ?, ?)", walMessagePrefix, token).Error; err != nil {
		return fmt.Errorf("rx: Wait: mark the WAL: %w", err)
	}
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-w.h.ctx.Done():
		return errors.New("rx: hub is closed")
	}
}

func (h *Hub) nodeName() string {
	if h.cluster != nil {
		return h.cluster.node
	}
	return h.cfg.NodeID
}

// run consumes the slot until the hub closes, reconnecting after errors;
// in a cluster only while this node holds the slot's lease.
func (w *walSource) run() {
	defer close(w.done)
	ctx := w.h.ctx
	var lease Leaser
	if c := w.h.cluster; c != nil && c.lease != nil {
		lease = c.lease
	}
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		sctx, cancel := context.WithCancel(ctx)
		var leaseLost chan struct{}
		if lease != nil {
			holders, err := lease.Lease(ctx, w.h.cluster.node, w.h.cfg.LeaseTTL, []string{walLeaseKey + w.cfg.Slot})
			if err != nil || len(holders) != 1 || holders[0] != w.h.cluster.node {
				cancel()
				w.pause(ctx, w.h.cfg.LeaseTTL/3)
				continue
			}
			leaseLost = make(chan struct{})
			go w.keepLease(sctx, cancel, lease, leaseLost)
		}
		err := w.stream(sctx)
		cancel()
		if leaseLost != nil {
			<-leaseLost
		}
		if ctx.Err() != nil {
			break
		}
		if err != nil {
			w.h.log.Warn("rx: WAL capture stopped; reconnecting", "slot", w.cfg.Slot, "err", err)
		}
		w.pause(ctx, backoff)
		backoff = min(backoff*2, 2*time.Second)
	}
	if lease != nil {
		rctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = lease.Release(rctx, w.h.cluster.node, []string{walLeaseKey + w.cfg.Slot})
		cancel()
	}
}

func (w *walSource) pause(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	}
}

// keepLease renews the slot's lease every third of its life and cancels
// the session when it is lost.
func (w *walSource) keepLease(ctx context.Context, cancel context.CancelFunc, lease Leaser, lost chan struct{}) {
	defer close(lost)
	tick := time.NewTicker(w.h.cfg.LeaseTTL / 3)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		holders, err := lease.Lease(ctx, w.h.cluster.node, w.h.cfg.LeaseTTL, []string{walLeaseKey + w.cfg.Slot})
		if ctx.Err() != nil {
			return
		}
		if err != nil || len(holders) != 1 || holders[0] != w.h.cluster.node {
			w.h.log.Warn("rx: lost the lease of the WAL slot; another node consumes it", "slot", w.cfg.Slot, "err", err)
			cancel()
			return
		}
	}
}

func replicationDSN(dsn string) string {
	if strings.Contains(dsn, "://") {
		sep := "?"
		if strings.Contains(dsn, "?") {
			sep = "&"
		}
		return dsn + sep + "replication=database"
	}
	return dsn + " replication=database"
}

// walRel is what the consumer knows of one published table.
type walRel struct {
	msg    *pglogrepl.RelationMessage
	l      *layer      // nil for a join table
	joins  []*relation // the many2many relations of a join table
	fields []*schema.Field
	// image: every column of the model is a column of the table, of a type
	// decoded exactly as the driver scans it, and rows are not soft-deleted
	// by a query scope: the WAL's row is the row a re-read would return.
	image bool
}

// stream runs one replication session.
func (w *walSource) stream(ctx context.Context) error {
	created, err := w.ensureSlot(ctx)
	if err != nil {
		return err
	}
	w.restarts.Add(1)
	conn, err := pgconn.Connect(ctx, replicationDSN(w.cfg.DSN))
	if err != nil {
		return fmt.Errorf("rx: WAL: connect: %w", err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = conn.Close(cctx)
		cancel()
	}()
	// Transactions that ended before this point may have been stored by a
	// previous session (or process) already: they are re-read, so that a
	// replayed old image never overwrites a newer stored row.
	var current string
	if err := w.h.db.Session(&gormSession).WithContext(ctx).Raw("SELECT pg_current_wal_lsn()::text").Scan(&current).Error; err != nil {
		return fmt.Errorf("rx: WAL: read the current position: %w", err)
	}
	imagesFrom, err := pglogrepl.ParseLSN(current)
	if err != nil {
		return fmt.Errorf("rx: WAL: parse position %q: %w", current, err)
	}
	err = pglogrepl.StartReplication(ctx, conn, w.cfg.Slot, 0, pglogrepl.StartReplicationOptions{
		PluginArgs: []string{"proto_version '1'", "publication_names '" + strings.ReplaceAll(w.cfg.Publication, "'", "''") + "'", "messages 'true'"},
	})
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == sqlStateNoObject {
		return fmt.Errorf("rx: WAL: slot %s was dropped: %w", w.cfg.Slot, err)
	}
	if err != nil {
		return fmt.Errorf("rx: WAL: start replication: %w", err)
	}
	if created {
		// A new slot starts at the present: whatever happened before it
		// (the first start, or while a dropped slot was missing) is read
		// again from the database by every stream.
		w.recreated.Add(1)
		w.resyncAll(nil)
	}
	w.consuming.Store(true)
	defer w.consuming.Store(false)

	// The confirmer advances the confirmed position once the engine holds
	// everything enqueued up to it.
	confirmDone := make(chan struct{})
	cctx, stopConfirm := context.WithCancel(ctx)
	defer func() { stopConfirm(); <-confirmDone }()
	go w.confirmLoop(cctx, confirmDone)

	d := walDecoder{w: w, rels: map[uint32]*walRel{}, imagesFrom: imagesFrom, types: pgtype.NewMap()}
	// Status updates report the confirmed position when it moved, at most
	// every StatusInterval/4 (the confirmer's pace), and every
	// StatusInterval regardless; at once when the server asks for one.
	minGap := max(w.cfg.StatusInterval/4, 10*time.Millisecond)
	var lastStatus time.Time
	nextStatus := time.Now().Add(w.cfg.StatusInterval)
	sent := uint64(0)
	replyNow := false

	// The receive wakes up at least every wake for the status updates. It
	// does through a read deadline on the socket, not a context per call:
	// pgconn watches a context other than Background with a goroutine per
	// call, while a read timing out leaves the connection usable (pgconn
	// does not close it for a net timeout, and pgproto3 keeps a message
	// read in part for the next call). Cancelling ctx sets a deadline in
	// the past, which wakes a receive at once; the loop checks ctx after
	// every deadline it sets, so that it cannot push that one back.
	wake := min(w.cfg.StatusInterval, walWakeMax)
	nc := conn.Conn()
	var readBy time.Time
	stopWatch, watchDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(watchDone)
		select {
		case <-ctx.Done():
			_ = nc.SetReadDeadline(time.Unix(1, 0))
		case <-stopWatch:
		}
	}()
	defer func() { close(stopWatch); <-watchDone }()

	for {
		now := time.Now()
		if c := w.confirmed.Load(); replyNow || !now.Before(nextStatus) || (c != sent && now.Sub(lastStatus) >= minGap) {
			err := pglogrepl.SendStandbyStatusUpdate(ctx, conn, pglogrepl.StandbyStatusUpdate{WALWritePosition: pglogrepl.LSN(c)})
			if err != nil {
				return fmt.Errorf("rx: WAL: report position: %w", err)
			}
			w.statusSent.Add(1)
			sent, lastStatus, nextStatus, replyNow = c, now, now.Add(w.cfg.StatusInterval), false
		}
		if readBy.Sub(now) < wake/2 {
			readBy = now.Add(wake)
			if err := nc.SetReadDeadline(readBy); err != nil {
				return fmt.Errorf("rx: WAL: set a read deadline: %w", err)
			}
			if ctx.Err() != nil {
				return nil
			}
		}
		raw, err := conn.ReceiveMessage(context.Background())
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if pgconn.Timeout(err) {
				continue
			}
			return fmt.Errorf("rx: WAL: receive: %w", err)
		}
		switch m := raw.(type) {
		case *pgproto3.ErrorResponse:
			return fmt.Errorf("rx: WAL: server: %w", pgconn.ErrorResponseToPgError(m))
		case *pgproto3.CopyData:
			if len(m.Data) == 0 {
				continue
			}
			switch m.Data[0] {
			case pglogrepl.PrimaryKeepaliveMessageByteID:
				ka, err := pglogrepl.ParsePrimaryKeepaliveMessage(m.Data[1:])
				if err != nil {
					return fmt.Errorf("rx: WAL: parse keepalive: %w", err)
				}
				if !d.inTx {
					// Everything before ServerWALEnd was sent: nothing
					// more is pending up to it.
					w.advance(uint64(ka.ServerWALEnd))
				}
				if ka.ReplyRequested {
					replyNow = true
				}
			case pglogrepl.XLogDataByteID:
				xld, err := pglogrepl.ParseXLogData(m.Data[1:])
				if err != nil {
					return fmt.Errorf("rx: WAL: parse data: %w", err)
				}
				if err := d.decode(ctx, xld.WALData); err != nil {
					return err
				}
			}
		}
	}
}

// advance records that everything up to lsn was handed to the engine.
func (w *walSource) advance(lsn uint64) {
	for {
		cur := w.enqueued.Load()
		if lsn <= cur || w.enqueued.CompareAndSwap(cur, lsn) {
			return
		}
	}
}

func (w *walSource) confirmLoop(ctx context.Context, done chan struct{}) {
	defer close(done)
	tick := time.NewTicker(max(w.cfg.StatusInterval/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		target := w.enqueued.Load()
		if target <= w.confirmed.Load() {
			continue
		}
		// Every batch queued before the barrier is applied and stored, and
		// in a cluster handed to the broker.
		if err := w.h.engine.barrier(ctx); err != nil {
			continue
		}
		if c := w.h.cluster; c != nil {
			if err := c.out.flush(ctx); err != nil {
				continue
			}
		}
		w.confirmed.Store(target)
	}
}

// resyncAll reloads every stream whose channel includes one of layers (all
// of them for nil) and the list subscriptions, on the engine goroutine
// after everything queued before. In a cluster every node does: the
// streams other nodes own or follow, and their lists, were changed too.
func (w *walSource) resyncAll(layers map[*layer]bool) {
	w.resyncs.Add(1)
	e := w.h.engine
	e.do(func() { e.resyncLayers(layers) })
	if c := w.h.cluster; c != nil {
		c.sendResync(layers)
	}
}

// walWakeMax bounds how long the receive waits before it looks at the
// status updates (a test lengthens it).
var walWakeMax = 200 * time.Millisecond

// walDecoder turns pgoutput messages into engine batches.
type walDecoder struct {
	w          *walSource
	rels       map[uint32]*walRel
	imagesFrom pglogrepl.LSN
	inTx       bool
	final      pglogrepl.LSN // the open transaction's commit position
	xid        uint32        // the open transaction's id
	ts         []touch
	types      *pgtype.Map
}

// The WAL can deliver a commit a moment before the transaction is visible
// to new snapshots: the commit record is flushed (and decoded) before the
// transaction leaves the server's list of running ones. The decoder hands
// a commit's touches to the engine at once, each carrying its transaction
// id; the engine waits for the transactions to be visible only before it
// next reads the database (engine.ready): a batch whose rows all come with
// their WAL image, moving no list and re-checking no permission, reads
// nothing, so it neither waits nor asks the server.

// visibility is the engine's record of WAL transactions handed over but not
// yet known visible, with the last snapshot read (engine goroutine).
type visibility struct {
	unseen []uint32 // transaction ids, oldest first
	// snap is the last snapshot read: a transaction visible in it stays
	// visible.
	snapXmax uint64
	snapXip  map[uint64]bool
	reads    atomic.Int64 // snapshots read (WALStats.VisibilityReads)
}

// unseenPrune is the length of the list of transactions not known visible
// past which a commit that reads nothing still reads a snapshot, without
// waiting, to forget the visible ones.
const unseenPrune = 512

// add records the transactions of a batch of touches.
func (v *visibility) add(ts []touch) {
	for _, t := range ts {
		if t.xid != 0 && (len(v.unseen) == 0 || v.unseen[len(v.unseen)-1] != t.xid) {
			v.unseen = append(v.unseen, t.xid)
		}
	}
}

// known reports whether transaction xid is visible in the last snapshot.
func (v *visibility) known(xid uint32) bool {
	if v.snapXmax == 0 {
		return false
	}
	// The 64-bit id of xid, in the epoch of the snapshot.
	x := v.snapXmax&^0xffffffff | uint64(xid)
	if x >= v.snapXmax && x >= 1<<32 {
		x -= 1 << 32
	}
	return x < v.snapXmax && !v.snapXip[x]
}

// forget drops the transactions visible in the last snapshot and reports
// whether none is left.
func (v *visibility) forget() bool {
	keep := v.unseen[:0]
	for _, x := range v.unseen {
		if !v.known(x) {
			keep = append(keep, x)
		}
	}
	clear(v.unseen[len(keep):])
	v.unseen = keep
	return len(keep) == 0
}

// Backoff between snapshot reads while a transaction is still running.
const (
	visibleBackoffMin = 50 * time.Microsecond
	visibleBackoffMax = time.Millisecond
)

// ready returns once every WAL transaction handed to the engine is visible
// to new snapshots, so that a database read sees it; at once when all are
// known visible already. Every engine read of the database (rows, lists,
// list channels' queries, Authorize) calls it first (engine goroutine).
func (e *engine) ready(ctx context.Context) error {
	v := &e.vis
	if len(v.unseen) == 0 || v.forget() {
		return nil
	}
	wait := visibleBackoffMin
	for {
		if err := e.readSnapshot(ctx); err != nil {
			return err
		}
		if v.forget() {
			return nil
		}
		// Still running: let it finish.
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(2*wait, visibleBackoffMax)
	}
}

// pruneUnseen keeps the list of transactions not known visible short when
// no read asks for them: past unseenPrune it reads a snapshot (without
// waiting) and forgets the visible ones.
func (e *engine) pruneUnseen(ctx context.Context) {
	v := &e.vis
	if len(v.unseen) < unseenPrune || v.forget() || len(v.unseen) < unseenPrune {
		return
	}
	if e.readSnapshot(ctx) == nil {
		v.forget()
	}
}

// readSnapshot reads the server's current snapshot into e.vis.
func (e *engine) readSnapshot(ctx context.Context) error {
	v := &e.vis
	v.reads.Add(1)
	var snap string
	if err := e.db.WithContext(ctx).Raw("SELECT pg_current_snapshot()::text").Scan(&snap).Error; err != nil {
		return fmt.Errorf("rx: WAL: read a snapshot: %w", err)
	}
	parts := strings.Split(snap, ":")
	if len(parts) != 3 {
		return fmt.Errorf("rx: WAL: unexpected snapshot %q", snap)
	}
	xmax, err := strconv.ParseUint(parts[1], 10, 64)
	if err != nil {
		return fmt.Errorf("rx: WAL: unexpected snapshot %q: %w", snap, err)
	}
	xip := map[uint64]bool{}
	for _, f := range strings.Split(parts[2], ",") {
		if f == "" {
			continue
		}
		n, err := strconv.ParseUint(f, 10, 64)
		if err != nil {
			return fmt.Errorf("rx: WAL: unexpected snapshot %q: %w", snap, err)
		}
		xip[n] = true
	}
	v.snapXmax, v.snapXip = xmax, xip
	return nil
}

// imageOIDs are the column types whose text form decodes to the value the
// driver scans.
var imageOIDs = map[uint32]bool{
	pgtype.BoolOID: true, pgtype.Int2OID: true, pgtype.Int4OID: true, pgtype.Int8OID: true,
	pgtype.Float4OID: true, pgtype.Float8OID: true, pgtype.TextOID: true, pgtype.VarcharOID: true,
	pgtype.BPCharOID: true, pgtype.TimestamptzOID: true, pgtype.TimestampOID: true, pgtype.ByteaOID: true,
}

func (d *walDecoder) relation(m *pglogrepl.RelationMessage) {
	w := d.w
	if m.Namespace != w.schema {
		return
	}
	old := d.rels[m.RelationID]
	r := &walRel{msg: m}
	mdl := w.h.model
	mdl.mu.Lock()
	r.l = mdl.byTable[m.RelationName]
	r.joins = mdl.joinTables[m.RelationName]
	mdl.mu.Unlock()
	if r.l != nil {
		r.fields = make([]*schema.Field, len(m.Columns))
		r.image = len(r.l.schema.QueryClauses) == 0 // soft delete: re-read
		seen := map[string]bool{}
		for i, c := range m.Columns {
			f := r.l.schema.LookUpField(c.Name)
			if f == nil || f.DBName != c.Name || f.Set == nil {
				continue
			}
			r.fields[i] = f
			seen[c.Name] = true
			if !imageOIDs[c.DataType] {
				r.image = false
			}
		}
		for _, f := range r.l.schema.Fields {
			if f.DBName != "" && f.Readable && !seen[f.DBName] {
				r.image = false
			}
		}
	}
	d.rels[m.RelationID] = r
	if old != nil && !sameColumns(old.msg, m) {
		// ALTER TABLE: rows may have changed with no row in the WAL (a
		// column added with a default), so the streams are read again.
		d.resyncRel(r)
	}
}

func sameColumns(a, b *pglogrepl.RelationMessage) bool {
	if a.RelationName != b.RelationName || len(a.Columns) != len(b.Columns) {
		return false
	}
	for i := range a.Columns {
		if a.Columns[i].Name != b.Columns[i].Name || a.Columns[i].DataType != b.Columns[i].DataType || a.Columns[i].TypeModifier != b.Columns[i].TypeModifier {
			return false
		}
	}
	return true
}

func (d *walDecoder) resyncRel(r *walRel) {
	layers := map[*layer]bool{}
	if r.l != nil {
		layers[r.l] = true
	}
	for _, j := range r.joins {
		layers[j.from] = true
	}
	if len(layers) > 0 {
		d.flush()
		d.w.resyncAll(layers)
	}
}

// flush hands the touches decoded so far to the engine, so that a resync
// queued next runs after them. They carry the transaction's id: the engine
// waits for it to be visible before it reads the database (engine.ready).
func (d *walDecoder) flush() {
	if len(d.ts) > 0 {
		for i := range d.ts {
			d.ts[i].xid = d.xid
		}
		d.w.h.engine.enqueue(d.ts)
		d.ts = nil
	}
}

// value decodes column i of a tuple; ok is false for a TOAST value the WAL
// does not carry.
func (r *walRel) value(types *pgtype.Map, tuple *pglogrepl.TupleData, i int) (v any, ok bool, err error) {
	if tuple == nil || i >= len(tuple.Columns) {
		return nil, false, nil
	}
	c := tuple.Columns[i]
	switch c.DataType {
	case pglogrepl.TupleDataTypeNull:
		return nil, true, nil
	case pglogrepl.TupleDataTypeToast:
		return nil, false, nil
	}
	oid := r.msg.Columns[i].DataType
	format := int16(pgtype.TextFormatCode)
	if c.DataType == pglogrepl.TupleDataTypeBinary {
		format = pgtype.BinaryFormatCode
	}
	if t, found := types.TypeForOID(oid); found {
		v, err = t.Codec.DecodeValue(types, oid, format, c.Data)
		if err != nil {
			return nil, false, fmt.Errorf("rx: WAL: decode %s.%s: %w", r.msg.RelationName, r.msg.Columns[i].Name, err)
		}
		if tm, isTime := v.(time.Time); isTime && oid == pgtype.TimestamptzOID {
			v = tm.Local() // as the driver scans it
		}
		return v, true, nil
	}
	return string(c.Data), true, nil
}

func (r *walRel) column(name string) int {
	for i, c := range r.msg.Columns {
		if c.Name == name {
			return i
		}
	}
	return -1
}

// rowID is the primary key of a layer's row in tuple.
func (r *walRel) rowID(types *pgtype.Map, tuple *pglogrepl.TupleData) (string, bool) {
	i := r.column(r.l.pk.DBName)
	v, ok, err := r.value(types, tuple, i)
	if err != nil || !ok {
		return "", false
	}
	return idString(reflect.ValueOf(v))
}

// image builds the row a re-read would return from a complete new tuple;
// nil when the WAL does not describe it fully.
func (d *walDecoder) image(ctx context.Context, r *walRel, tuple *pglogrepl.TupleData) *row {
	if !r.image || d.final <= d.imagesFrom {
		return nil
	}
	v := reflect.New(r.l.typ)
	for i, f := range r.fields {
		if f == nil {
			continue
		}
		val, ok, err := r.value(d.types, tuple, i)
		if err != nil || !ok {
			return nil
		}
		if err := f.Set(ctx, v.Elem(), val); err != nil {
			return nil
		}
	}
	img, _, err := encodeRow(ctx, r.l, v.Elem())
	if err != nil {
		return nil
	}
	return img
}

// rowTouch records a changed layer row: its new image (nil: re-read) or
// its deletion, and for an old tuple carrying foreign keys (REPLICA
// IDENTITY FULL) the lists of the parents it may have left.
func (d *walDecoder) rowTouch(ctx context.Context, r *walRel, oldT, newT *pglogrepl.TupleData) {
	l := r.l
	if oldT != nil {
		if id, ok := r.rowID(d.types, oldT); ok {
			if newT == nil {
				t := touch{l: l, id: id}
				if d.final > d.imagesFrom {
					t.img = &walImage{deleted: true}
				}
				d.ts = append(d.ts, t)
			} else if nid, ok := r.rowID(d.types, newT); !ok || nid != id {
				d.ts = append(d.ts, touch{l: l, id: id}) // key changed: re-read
			}
		}
		for _, p := range l.parents {
			i := r.column(p.rel.References[0].ForeignKey.DBName)
			if v, ok, err := r.value(d.types, oldT, i); err == nil && ok {
				if pid, ok := idString(reflect.ValueOf(v)); ok {
					if newT != nil && sameKey(r, d.types, newT, i, pid) {
						// The row stays under its parent: the engine
						// recomputes the list if the row's new image moves
						// it (commit.go, moveParents), and otherwise
						// reads nothing.
						continue
					}
					d.ts = append(d.ts, touch{l: p.from, id: pid, rel: p})
				}
			}
		}
	}
	if newT != nil {
		if id, ok := r.rowID(d.types, newT); ok {
			t := touch{l: l, id: id}
			if img := d.image(ctx, r, newT); img != nil {
				t.img = &walImage{row: img}
				d.w.images.Add(1)
			} else {
				d.w.rereads.Add(1)
			}
			d.ts = append(d.ts, t)
		}
	}
}

// sameKey reports whether column i of tuple holds the key id.
func sameKey(r *walRel, types *pgtype.Map, tuple *pglogrepl.TupleData, i int, id string) bool {
	v, ok, err := r.value(types, tuple, i)
	if err != nil || !ok {
		return false
	}
	nid, ok := idString(reflect.ValueOf(v))
	return ok && nid == id
}

// joinTouch records a changed join-table row as touches of the lists on
// both sides.
func (d *walDecoder) joinTouch(r *walRel, tuple *pglogrepl.TupleData) {
	if tuple == nil {
		return
	}
	d.ts = append(d.ts, joinTouches(r.joins, func(col string) reflect.Value {
		v, ok, err := r.value(d.types, tuple, r.column(col))
		if err != nil || !ok {
			return reflect.Value{}
		}
		return reflect.ValueOf(v)
	})...)
}

func (d *walDecoder) decode(ctx context.Context, data []byte) error {
	msg, err := pglogrepl.Parse(data)
	if err != nil {
		return fmt.Errorf("rx: WAL: parse message: %w", err)
	}
	switch m := msg.(type) {
	case *pglogrepl.BeginMessage:
		d.inTx, d.final, d.xid, d.ts = true, m.FinalLSN, m.Xid, nil
	case *pglogrepl.RelationMessage:
		d.relation(m)
	case *pglogrepl.InsertMessage:
		if r := d.rels[m.RelationID]; r != nil {
			if r.l != nil {
				d.rowTouch(ctx, r, nil, m.Tuple)
			} else {
				d.joinTouch(r, m.Tuple)
			}
		}
	case *pglogrepl.UpdateMessage:
		if r := d.rels[m.RelationID]; r != nil {
			if r.l != nil {
				d.rowTouch(ctx, r, m.OldTuple, m.NewTuple)
			} else {
				d.joinTouch(r, m.OldTuple)
				d.joinTouch(r, m.NewTuple)
			}
		}
	case *pglogrepl.DeleteMessage:
		if r := d.rels[m.RelationID]; r != nil {
			if r.l != nil {
				d.rowTouch(ctx, r, m.OldTuple, nil)
			} else {
				d.joinTouch(r, m.OldTuple)
			}
		}
	case *pglogrepl.TruncateMessage:
		for _, id := range m.RelationIDs {
			if r := d.rels[id]; r != nil {
				d.resyncRel(r)
			}
		}
	case *pglogrepl.CommitMessage:
		d.flush()
		d.inTx = false
		d.w.advance(uint64(m.TransactionEndLSN))
	case *pglogrepl.LogicalDecodingMessage:
		if m.Prefix == walMessagePrefix {
			d.w.wmu.Lock()
			ch := d.w.waiters[string(m.Content)]
			delete(d.w.waiters, string(m.Content))
			d.w.wmu.Unlock()
			if ch != nil {
				close(ch)
			}
		}
	}
	return nil
}

// walImage is a row as the WAL describes it: the engine uses it instead of
// re-reading the row.
type walImage struct {
	row     *row // nil with deleted
	deleted bool
}

// readRowsOrImages reads rows of l by primary key into out (as readRows),
// except those whose
// every touch in the batch carries a WAL image: the last image stands for
// them (deleted rows are absent from the result, as with readRows).
//
// Only a re-read waits for the WAL transactions handed over to be visible
// (engine.ready): rows taken from their images read nothing.
func readRowsOrImages(ctx context.Context, e *engine, l *layer, ids []string, imgs map[ikey]*walImage, out map[string]*row) (map[string]*row, error) {
	if len(imgs) == 0 {
		if err := e.ready(ctx); err != nil {
			return nil, err
		}
		return readRows(ctx, e.db, l, ids, out)
	}
	var reread []string
	if out == nil {
		out = map[string]*row{}
	}
	for _, id := range ids {
		img, ok := imgs[ikey{l, id}]
		switch {
		case !ok:
			reread = append(reread, id)
		case !img.deleted:
			out[id] = img.row
		}
	}
	if len(reread) > 0 {
		if err := e.ready(ctx); err != nil {
			return nil, err
		}
		if _, err := readRows(ctx, e.db, l, reread, out); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// batchImages returns, for each row touched in a batch only with images,
// its last image.
func batchImages(ts []touch) map[ikey]*walImage {
	if !slices.ContainsFunc(ts, func(t touch) bool { return t.img != nil }) {
		return nil // the plugin's touches: no images
	}
	var imgs map[ikey]*walImage
	var without map[ikey]bool
	for _, t := range ts {
		if t.rel != nil {
			continue
		}
		k := ikey{t.l, t.id}
		if t.img == nil {
			if without == nil {
				without = map[ikey]bool{}
			}
			without[k] = true
			continue
		}
		if imgs == nil {
			imgs = map[ikey]*walImage{}
		}
		imgs[k] = t.img
	}
	for k := range without {
		delete(imgs, k)
	}
	return imgs
}
