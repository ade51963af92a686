package rx

import (
	"context"
	"database/sql"
	"errors"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"

	"gorm.io/gorm"
)

// The one-row read runs for almost every commit the plugin captures, so it
// is prepared once per layer and kept: database/sql prepares it on each
// pooled connection the first time it runs there. On SQLite this saves
// parsing the query at every commit; on MySQL and MariaDB, whose driver
// runs a query with arguments as prepare, execute and close unless
// interpolateParams is set, it saves two round trips per read, on the
// engine's goroutine. PostgreSQL is left alone: pgx already caches its
// prepared statements per connection, and a statement prepared through
// database/sql would not survive a transaction-mode pooler such as
// PgBouncer.

// preparedRead is a layer's prepared one-row read.
type preparedRead struct {
	mu     sync.Mutex
	stmt   *sql.Stmt
	db     *sql.DB // the database stmt is prepared on
	failed bool    // preparing failed once: read unprepared from then on
	closed bool    // the hub closed: read unprepared from then on
}

// queryOne runs the one-row read q with args: through the layer's prepared
// statement when it can have one, else on the statement's pool as is.
func (l *layer) queryOne(ctx context.Context, db *gorm.DB, q string, args []any) (*sql.Rows, error) {
	if hooks, ok := rowReadHooks.Load(db.Dialector); ok {
		for _, hook := range hooks.([]rowReadHook) {
			q = hook(ctx, l.schema.Table, q, args)
		}
		return db.Statement.ConnPool.QueryContext(ctx, q, args...)
	}
	if st := l.stmt.get(ctx, db, q); st != nil {
		rows, err := st.QueryContext(ctx, args...)
		if err == nil || !l.stmt.isClosed() {
			return rows, err
		}
		// Closed by Hub.Close since get: read unprepared.
	}
	rows, err := db.Statement.ConnPool.QueryContext(ctx, q, args...)
	if stalePlan(err) {
		// pgx dropped the cached statement on this error: once more
		// prepares it for the table as it is now.
		rows, err = db.Statement.ConnPool.QueryContext(ctx, q, args...)
	}
	return rows, err
}

// stalePlan reports whether err is PostgreSQL refusing a cached statement
// whose result columns changed (a column added or dropped since it was
// prepared: "SELECT *" reads every column).
func stalePlan(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && pg.Code == "0A000" && strings.Contains(pg.Message, "cached plan")
}

// get returns the statement of q prepared on db's pool, preparing it at the
// first call; nil when the read should not be prepared: a transaction,
// PostgreSQL, a pool of GORM's PrepareStmt mode (it prepares by itself), a
// failed prepare, or a closed hub.
func (p *preparedRead) get(ctx context.Context, db *gorm.DB, q string) *sql.Stmt {
	if db.Dialector.Name() == "postgres" {
		return nil
	}
	sdb := plainDB(db.Statement.ConnPool)
	if sdb == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case p.failed || p.closed:
		return nil
	case p.stmt != nil:
		if p.db != sdb {
			return nil // another database than the hub's: not worth a second statement
		}
		return p.stmt
	}
	st, err := sdb.PrepareContext(ctx, q)
	if err != nil {
		// A cancelled context says nothing about the query: try again
		// next time.
		p.failed = ctx.Err() == nil
		return nil
	}
	p.stmt, p.db = st, sdb
	return st
}

func (p *preparedRead) isClosed() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.closed
}

// close closes the statement; later reads run unprepared.
func (p *preparedRead) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	if p.stmt != nil {
		_ = p.stmt.Close()
		p.stmt = nil
	}
}

// plainDB returns the *sql.DB behind a connection pool that is neither a
// transaction nor GORM's prepared-statement pool, or nil.
func plainDB(p gorm.ConnPool) *sql.DB {
	switch v := p.(type) {
	case *sql.DB:
		return v
	case *dbPool:
		return plainDB(v.ConnPool)
	}
	return nil
}

// closeStatements closes the prepared reads of every layer.
func (m *model) closeStatements() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, l := range m.byType {
		l.stmt.close()
	}
}
