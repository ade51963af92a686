// Package rxtest opens the real databases that tests of rxgorm, and of
// applications built on it, run on: a SQLite file in the test's temporary
// directory, a private schema on a PostgreSQL server and a private database
// on a MariaDB or MySQL server. All are closed (and the schema or database
// dropped) when the test ends. A server that cannot be
// reached fails the test; it is never skipped.
package rxtest

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
	"github.com/rxgorm/rxgorm/rx/rxtest/dsn"
	"gorm.io/driver/mysql"
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

// MySQLDSN is RXGORM_MYSQL_DSN, or the MariaDB server every machine of
// this project runs (dsn.MySQL).
func MySQLDSN() string { return dsn.MySQL() }

// MySQL opens a private database of the MariaDB or MySQL server for t,
// dropped when the test ends. params are extra connection settings for
// every connection, as "innodb_lock_wait_timeout=5" (session variables).
func MySQL(t testing.TB, params ...string) *gorm.DB {
	t.Helper()
	cfg, err := mysqldriver.ParseDSN(MySQLDSN())
	if err != nil {
		t.Fatalf("mysql (set RXGORM_MYSQL_DSN): %v", err)
	}
	cfg.ParseTime = true
	name := fmt.Sprintf("rxtest_%d_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9, schemas.Add(1))
	admin, err := gorm.Open(mysql.Open(cfg.FormatDSN()), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatalf("mysql (set RXGORM_MYSQL_DSN): %v", err)
	}
	if err := admin.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4").Error; err != nil {
		closeDB(admin)
		t.Fatalf("mysql (set RXGORM_MYSQL_DSN): %v", err)
	}
	cfg.DBName = name
	for _, p := range params {
		k, v, _ := strings.Cut(p, "=")
		if cfg.Params == nil {
			cfg.Params = map[string]string{}
		}
		cfg.Params[k] = v
	}
	db, err := gorm.Open(mysql.Open(cfg.FormatDSN()), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		admin.Exec("DROP DATABASE " + name)
		closeDB(admin)
		t.Fatal(err)
	}
	t.Cleanup(func() {
		closeDB(db)
		admin.Exec("DROP DATABASE " + name)
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
