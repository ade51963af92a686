// Package rxtest opens the real databases that tests of rxgorm, and of
// applications built on it, run on: a SQLite file in the test's temporary
// directory, and a private schema on a PostgreSQL server. Both are closed
// (and the schema dropped) when the test ends. A server that cannot be
// reached fails the test; it is never skipped.
package rxtest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// SQLiteDSN is the DSN rxgorm recommends for a SQLite file: WAL (readers,
// such as the engine's re-reads, do not block the writer), a busy timeout,
// and immediate transactions (concurrent writers queue instead of failing
// to upgrade their locks).
func SQLiteDSN(path string) string {
	return "file:" + path + "?_journal_mode=WAL&_busy_timeout=10000&_txlock=immediate"
}

// SQLite opens a new SQLite file database for t.
func SQLite(t testing.TB) *gorm.DB {
	t.Helper()
	db, err := gorm.Open(sqlite.Open(SQLiteDSN(filepath.Join(t.TempDir(), "test.db"))), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeDB(db) })
	return db
}

// PostgresDSN is RXGORM_POSTGRES_DSN, or the server every machine of this
// project runs: 127.0.0.1:5432, user postgres, database test.
func PostgresDSN() string {
	if dsn := os.Getenv("RXGORM_POSTGRES_DSN"); dsn != "" {
		return dsn
	}
	return "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable"
}

var schemas atomic.Int64

// Postgres opens a private schema of the PostgreSQL database for t.
func Postgres(t testing.TB) *gorm.DB {
	t.Helper()
	schema := fmt.Sprintf("rxtest_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9, schemas.Add(1))
	admin, err := gorm.Open(postgres.Open(PostgresDSN()), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatalf("postgres (set RXGORM_POSTGRES_DSN): %v", err)
	}
	if err := admin.Exec("CREATE SCHEMA " + schema).Error; err != nil {
		t.Fatalf("postgres (set RXGORM_POSTGRES_DSN): %v", err)
	}
	db, err := gorm.Open(postgres.Open(PostgresDSN()+" search_path="+schema), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		closeDB(db)
		admin.Exec("DROP SCHEMA " + schema + " CASCADE")
		closeDB(admin)
	})
	return db
}

func closeDB(db *gorm.DB) {
	if s, err := db.DB(); err == nil {
		s.Close()
	}
}

// Seed returns the seed of a randomized test: RXGORM_SEED if set, else a
// fixed one, logged so that a failure can be replayed.
func Seed(t testing.TB) uint64 {
	t.Helper()
	s := uint64(20261123)
	if v := os.Getenv("RXGORM_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("RXGORM_SEED: %v", err)
		}
		s = n
	}
	t.Logf("seed %d (replay with RXGORM_SEED=%d)", s, s)
	return s
}
