// Package rxtest opens the real databases that tests of rxgorm, and of
// applications built on it, run on: a SQLite file in the test's temporary
// directory, and a private schema on a PostgreSQL server. Both are closed
// (and the schema dropped) when the test ends. A server that cannot be
// reached fails the test; it is never skipped.
package rxtest

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/rx/rxtest/dsn"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// SQLiteDSN is the DSN rxgorm recommends for a SQLite file (dsn.SQLite).
func SQLiteDSN(path string) string { return dsn.SQLite(path) }

// SQLite opens a new SQLite file database for t. params are extra DSN
// settings for every connection, as "_synchronous=OFF".
func SQLite(t testing.TB, params ...string) *gorm.DB {
	t.Helper()
	dsn := SQLiteDSN(filepath.Join(t.TempDir(), "test.db"))
	for _, p := range params {
		dsn += "&" + p
	}
	db, err := gorm.Open(sqlite.Open(dsn), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeDB(db) })
	return db
}

// PostgresDSN is RXGORM_POSTGRES_DSN, or the server every machine of this
// project runs (dsn.Postgres).
func PostgresDSN() string { return dsn.Postgres() }

var schemas atomic.Int64

// Postgres opens a private schema of the PostgreSQL database for t. params
// are extra connection settings for every connection, as
// "synchronous_commit=off" (run-time parameters).
func Postgres(t testing.TB, params ...string) *gorm.DB {
	t.Helper()
	schema := fmt.Sprintf("rxtest_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9, schemas.Add(1))
	admin, err := gorm.Open(postgres.Open(PostgresDSN()), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatalf("postgres (set RXGORM_POSTGRES_DSN): %v", err)
	}
	if err := admin.Exec("CREATE SCHEMA " + schema).Error; err != nil {
		t.Fatalf("postgres (set RXGORM_POSTGRES_DSN): %v", err)
	}
	dsn := PostgresDSN() + " search_path=" + schema
	for _, p := range params {
		dsn += " " + p
	}
	db, err := gorm.Open(postgres.Open(dsn), &gorm.Config{Logger: logger.Discard})
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
// random one, different each run, logged so that a failure can be
// replayed.
func Seed(t testing.TB) uint64 {
	t.Helper()
	var s uint64
	if v := os.Getenv("RXGORM_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("RXGORM_SEED: %v", err)
		}
		s = n
	} else {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			t.Fatalf("seed: %v", err)
		}
		s = binary.LittleEndian.Uint64(b[:]) >> 1 // within int64, for tools that parse it so
	}
	t.Logf("seed %d (replay with RXGORM_SEED=%d)", s, s)
	return s
}
