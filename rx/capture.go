package rx

import (
	"context"
	"database/sql"
	"fmt"
	"reflect"
	"strings"
	"sync"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Change capture. The plugin wraps GORM's connection pool so that every
// transaction opened through the rx-enabled *gorm.DB carries a buffer, and
// registers callbacks after each create, update and delete that record which
// rows were touched. On commit the buffer is handed to the engine once; on
// rollback it is dropped; a rollback to a savepoint truncates it to the
// length it had when the savepoint was taken. The buffer belongs to its
// transaction and nothing else, so one rollback cannot affect any later
// transaction.

// touch names a row whose state must be re-read, or (rel != nil) a to-many
// or has-one relation list of a row that must be recomputed.
type touch struct {
	l   *layer
	id  string
	rel *relation
	// img is the row as the WAL describes it (wal.go): the engine uses it
	// instead of a re-read. Nil from the plugin and Touch.
	img *walImage
	// xid is the id of the WAL transaction that made the change, 0 from
	// the plugin and Touch: the engine's first database read after it
	// waits until the transaction is visible (engine.ready, wal.go).
	xid uint32
}

type capture struct {
	hub *Hub
}

const pluginName = "rxgorm"

func (c *capture) Name() string { return pluginName }

func (c *capture) Initialize(db *gorm.DB) (err error) {
	pool := db.ConnPool
	switch p := db.ConnPool.(type) {
	case *gorm.PreparedStmtDB:
		inner := p.ConnPool
		p.ConnPool = &dbPool{ConnPool: inner, c: c}
		defer func() {
			if err != nil {
				p.ConnPool = inner
			}
		}()
	default:
		db.ConnPool = &dbPool{ConnPool: db.ConnPool, c: c}
	}
	db.Statement.ConnPool = db.ConnPool

	cb := db.Callback()
	type step struct {
		proc interface {
			Remove(string) error
		}
		name string
		reg  func() error
	}
	steps := []step{
		// Writes on db.Connection's *sql.Conn: their default transaction
		// must begin through rx, or it could not be broadcast.
		{cb.Create(), "rx:own_connection", func() error {
			return cb.Create().Before("gorm:begin_transaction").Register("rx:own_connection", c.ownConnection)
		}},
		{cb.Update(), "rx:own_connection", func() error {
			return cb.Update().Before("gorm:begin_transaction").Register("rx:own_connection", c.ownConnection)
		}},
		{cb.Delete(), "rx:own_connection", func() error {
			return cb.Delete().Before("gorm:begin_transaction").Register("rx:own_connection", c.ownConnection)
		}},
		{cb.Create(), "rx:after_create", func() error {
			return cb.Create().After("gorm:create").Before("gorm:commit_or_rollback_transaction").Register("rx:after_create", c.afterWrite)
		}},
		{cb.Update(), "rx:before_update", func() error {
			return cb.Update().After("gorm:begin_transaction").Before("gorm:update").Register("rx:before_update", c.beforeWrite)
		}},
		{cb.Update(), "rx:after_update", func() error {
			return cb.Update().After("gorm:update").Before("gorm:commit_or_rollback_transaction").Register("rx:after_update", c.afterWrite)
		}},
		{cb.Delete(), "rx:before_delete", func() error {
			return cb.Delete().After("gorm:begin_transaction").Before("gorm:delete").Register("rx:before_delete", c.beforeWrite)
		}},
		{cb.Delete(), "rx:after_delete", func() error {
			return cb.Delete().After("gorm:delete").Before("gorm:commit_or_rollback_transaction").Register("rx:after_delete", c.afterWrite)
		}},
	}
	for i, st := range steps {
		if err := st.reg(); err != nil {
			// Leave db as it was: a half-installed plugin would capture
			// some writes and not others.
			for _, done := range steps[:i] {
				_ = done.proc.Remove(done.name)
			}
			if _, prepared := pool.(*gorm.PreparedStmtDB); !prepared {
				db.ConnPool = pool
				db.Statement.ConnPool = pool
			}
			return fmt.Errorf("rx: register gorm callback %s: %w", st.name, err)
		}
	}
	return nil
}

// ownConnection runs before GORM begins a statement's default transaction:
// on db.Connection's *sql.Conn, the transaction would begin on the raw
// connection, so the connection is wrapped like the database's pool and
// the transaction is rx's own.
func (c *capture) ownConnection(db *gorm.DB) {
	if conn, ok := db.Statement.ConnPool.(*sql.Conn); ok {
		db.Statement.ConnPool = &dbPool{ConnPool: conn, c: c}
	}
}

// dbPool wraps the database's pool so that transactions begin as *txPool.
type dbPool struct {
	gorm.ConnPool
	c *capture
}

func (p *dbPool) BeginTx(ctx context.Context, opts *sql.TxOptions) (gorm.ConnPool, error) {
	var (
		tx  gorm.ConnPool
		err error
	)
	switch b := p.ConnPool.(type) {
	case gorm.TxBeginner:
		var stx *sql.Tx
		stx, err = b.BeginTx(ctx, opts)
		tx = stx
	case gorm.ConnPoolBeginner:
		tx, err = b.BeginTx(ctx, opts)
	default:
		return nil, gorm.ErrInvalidTransaction
	}
	if err != nil {
		return nil, err
	}
	inner, ok := tx.(gorm.Tx)
	if !ok {
		return nil, gorm.ErrInvalidTransaction
	}
	return &txPool{Tx: inner, c: p.c}, nil
}

func (p *dbPool) GetDBConn() (*sql.DB, error) {
	if g, ok := p.ConnPool.(gorm.GetDBConnector); ok {
		return g.GetDBConn()
	}
	if d, ok := p.ConnPool.(*sql.DB); ok {
		return d, nil
	}
	return nil, gorm.ErrInvalidDB
}

// txPool is a transaction opened through dbPool: it buffers touches until
// Commit. It must not implement BeginTx, so that GORM treats it as "already
// in a transaction".
type txPool struct {
	gorm.Tx
	c *capture

	mu      sync.Mutex
	pending []touch        // guarded by mu
	marks   map[string]int // savepoint name → len(pending); guarded by mu
}

func (t *txPool) GetDBConn() (*sql.DB, error) {
	if g, ok := t.Tx.(gorm.GetDBConnector); ok {
		return g.GetDBConn()
	}
	return nil, gorm.ErrInvalidDB
}

func (t *txPool) add(ts []touch) {
	t.mu.Lock()
	t.pending = append(t.pending, ts...)
	t.mu.Unlock()
}

func (t *txPool) Commit() error {
	if err := t.Tx.Commit(); err != nil {
		t.drop()
		return err
	}
	t.mu.Lock()
	ts := t.pending
	t.pending, t.marks = nil, nil
	t.mu.Unlock()
	if len(ts) > 0 {
		t.c.hub.engine.enqueue(ts)
	}
	return nil
}

func (t *txPool) Rollback() error {
	t.drop()
	return t.Tx.Rollback()
}

func (t *txPool) drop() {
	t.mu.Lock()
	t.pending, t.marks = nil, nil
	t.mu.Unlock()
}

// ExecContext watches savepoint statements so that a rollback to a savepoint
// drops exactly what was recorded after it.
func (t *txPool) ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error) {
	res, err := t.Tx.ExecContext(ctx, query, args...)
	if err == nil {
		t.savepoint(query)
	}
	return res, err
}

func (t *txPool) savepoint(query string) {
	q := strings.TrimSpace(query)
	if len(q) < 9 || !isSavepointVerb(q) {
		return // most statements: checked without allocating
	}
	fields := strings.Fields(q)
	up := func(i int) string {
		if i < len(fields) {
			return strings.ToUpper(fields[i])
		}
		return ""
	}
	name := func(i int) string {
		if i < len(fields) {
			return strings.Trim(fields[i], "`\"; ")
		}
		return ""
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case up(0) == "SAVEPOINT":
		if t.marks == nil {
			t.marks = map[string]int{}
		}
		t.marks[name(1)] = len(t.pending)
	case up(0) == "ROLLBACK" && up(1) == "TO":
		n := name(2)
		if up(2) == "SAVEPOINT" {
			n = name(3)
		}
		if m, ok := t.marks[n]; ok && m <= len(t.pending) {
			t.pending = t.pending[:m]
		}
	case up(0) == "RELEASE":
		n := name(1)
		if up(1) == "SAVEPOINT" {
			n = name(2)
		}
		delete(t.marks, n)
	}
}

// isSavepointVerb reports whether q starts with a verb of a savepoint
// statement: SAVEPOINT, ROLLBACK (TO) or RELEASE, in any case.
func isSavepointVerb(q string) bool {
	for _, v := range [...]string{"SAVEPOINT", "ROLLBACK", "RELEASE"} {
		if len(q) >= len(v) && strings.EqualFold(q[:len(v)], v) {
			return true
		}
	}
	return false
}

// findTx returns the rx transaction behind a statement's pool, and whether
// the pool is a transaction rx does not own.
func findTx(p gorm.ConnPool) (tx *txPool, foreign bool) {
	switch v := p.(type) {
	case *txPool:
		return v, false
	case *gorm.PreparedStmtTX:
		if t, ok := v.Tx.(*txPool); ok {
			return t, false
		}
		return nil, true
	case *dbPool, *gorm.PreparedStmtDB, *sql.DB, *sql.Conn:
		return nil, false
	}
	if _, ok := p.(gorm.TxCommitter); ok {
		return nil, true
	}
	return nil, false
}

const preKeysKey = "rx:pre_keys"

// beforeWrite runs before a conditional update or delete: it selects, in the
// same transaction and with the same WHERE clause, the rows about to be
// written, because GORM does not report their keys.
func (c *capture) beforeWrite(db *gorm.DB) {
	if c.hub.wal != nil {
		return // the WAL delivers every write
	}
	if db.Error != nil || db.Statement.Schema == nil {
		return
	}
	where, ok := db.Statement.Clauses["WHERE"]
	if !ok || where.Expression == nil {
		return
	}
	table := db.Statement.Table
	if table == "" {
		table = db.Statement.Schema.Table
	}
	var cols []string
	l := c.hub.model.tracked(table)
	rels := c.hub.model.joinRelations(table)
	switch {
	case l != nil:
		cols = []string{l.pk.DBName}
	case len(rels) > 0:
		cols = joinColumns(rels)
	default:
		return
	}
	q := db.Session(&gorm.Session{NewDB: true, SkipHooks: true}).
		Model(reflect.New(db.Statement.Schema.ModelType).Interface()).Table(table)
	q.Statement.ConnPool = db.Statement.ConnPool
	if w, ok := where.Expression.(clause.Where); ok {
		q.Statement.AddClause(w)
	} else {
		return
	}
	if db.Statement.Unscoped {
		q = q.Unscoped()
	}
	var rows []map[string]any
	if err := q.Select(cols).Find(&rows).Error; err != nil {
		db.AddError(fmt.Errorf("rx: select rows about to change in %s: %w", table, err))
		return
	}
	var ts []touch
	if l != nil {
		for _, r := range rows {
			if id, ok := idString(reflect.ValueOf(r[l.pk.DBName])); ok {
				ts = append(ts, touch{l: l, id: id})
			}
		}
	} else {
		for _, r := range rows {
			ts = append(ts, joinTouches(rels, func(col string) reflect.Value { return reflect.ValueOf(r[col]) })...)
		}
	}
	db.InstanceSet(preKeysKey, ts)
}

// afterWrite records the rows a statement touched, in its transaction's
// buffer, or hands them to the engine at once outside a transaction.
func (c *capture) afterWrite(db *gorm.DB) {
	if c.hub.wal != nil {
		return // the WAL delivers every write
	}
	if db.Error != nil || db.Statement.Schema == nil {
		return
	}
	var ts []touch
	if v, ok := db.InstanceGet(preKeysKey); ok {
		ts, _ = v.([]touch)
	}
	if db.RowsAffected == 0 && len(ts) == 0 {
		return
	}
	table := db.Statement.Table
	if table == "" {
		table = db.Statement.Schema.Table
	}
	if l := c.hub.model.tracked(table); l != nil {
		ts = append(ts, rowTouches(l, db.Statement.ReflectValue)...)
		if db.Statement.Model != nil && !sameValue(db.Statement.Model, db.Statement.Dest) {
			ts = append(ts, rowTouches(l, reflect.ValueOf(db.Statement.Model))...)
		}
	} else if rels := c.hub.model.joinRelations(table); len(rels) > 0 {
		eachStruct(db.Statement.ReflectValue, func(v reflect.Value) {
			ts = append(ts, joinTouches(rels, func(col string) reflect.Value {
				if f := db.Statement.Schema.LookUpField(col); f != nil {
					fv, _ := f.ValueOf(db.Statement.Context, v)
					return reflect.ValueOf(fv)
				}
				return reflect.Value{}
			})...)
		})
	} else {
		return
	}
	if len(ts) == 0 {
		return
	}
	tx, foreign := findTx(db.Statement.ConnPool)
	switch {
	case tx != nil:
		tx.add(ts)
	case foreign:
		db.AddError(fmt.Errorf("%w (table %s)", ErrUnownedTransaction, table))
	default:
		c.hub.engine.enqueue(ts)
	}
}

// sameValue reports whether a and b are the same value, without panicking on
// uncomparable dynamic types: GORM passes slices (not pointers to them) as
// both Model and Dest when it saves associations.
func sameValue(a, b any) bool {
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	return va.IsValid() && vb.IsValid() && va.Type() == vb.Type() && va.Comparable() && va.Equal(vb)
}

// rowTouches extracts primary keys from a struct, a slice of structs, a map
// or a slice of maps.
func rowTouches(l *layer, v reflect.Value) []touch {
	var ts []touch
	add := func(id reflect.Value) {
		if s, ok := idString(id); ok {
			ts = append(ts, touch{l: l, id: s})
		}
	}
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return nil
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Map:
		add(mapKey(l, v))
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			e := v.Index(i)
			for e.Kind() == reflect.Pointer || e.Kind() == reflect.Interface {
				if e.IsNil() {
					break
				}
				e = e.Elem()
			}
			switch e.Kind() {
			case reflect.Struct:
				if e.Type() == l.typ {
					add(e.FieldByIndex(l.pk.StructField.Index))
				}
			case reflect.Map:
				add(mapKey(l, e))
			}
		}
	case reflect.Struct:
		if v.Type() == l.typ {
			add(v.FieldByIndex(l.pk.StructField.Index))
		}
	}
	return ts
}

func mapKey(l *layer, m reflect.Value) reflect.Value {
	for _, k := range []string{l.pk.Name, l.pk.DBName} {
		if v := m.MapIndex(reflect.ValueOf(k)); v.IsValid() {
			return v
		}
	}
	return reflect.Value{}
}

func eachStruct(v reflect.Value, f func(reflect.Value)) {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		f(v)
	case reflect.Slice, reflect.Array:
		for i := 0; i < v.Len(); i++ {
			eachStruct(v.Index(i), f)
		}
	}
}

// joinColumns are the join-table columns of many2many relations.
func joinColumns(rels []*relation) []string {
	seen := map[string]bool{}
	var cols []string
	for _, r := range rels {
		for _, ref := range r.rel.References {
			if !seen[ref.ForeignKey.DBName] {
				seen[ref.ForeignKey.DBName] = true
				cols = append(cols, ref.ForeignKey.DBName)
			}
		}
	}
	return cols
}

// joinTouches turns one join-table row into touches of the relation lists
// of the owners on each side.
func joinTouches(rels []*relation, col func(string) reflect.Value) []touch {
	var ts []touch
	for _, r := range rels {
		for _, ref := range r.rel.References {
			if !ref.OwnPrimaryKey {
				continue
			}
			if id, ok := idString(col(ref.ForeignKey.DBName)); ok {
				ts = append(ts, touch{l: r.from, id: id, rel: r})
			}
		}
	}
	return ts
}

// tracked returns the layer whose table is table, if any channel uses it.
func (m *model) tracked(table string) *layer {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.byTable[table]
}

func (m *model) joinRelations(table string) []*relation {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.joinTables[table]
}
