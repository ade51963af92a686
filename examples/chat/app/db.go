package app

import (
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// OpenSQLite opens (creating it if needed) the SQLite database at path, in
// WAL mode with a busy timeout and immediate write transactions: readers do
// not block the writer, and concurrent write transactions queue instead of
// failing.
func OpenSQLite(path string) (*gorm.DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, err
	}
	dsn := "file:" + path + "?_journal_mode=WAL&_busy_timeout=10000&_txlock=immediate"
	return gorm.Open(sqlite.Open(dsn), gormConfig())
}

// OpenPostgres opens a PostgreSQL database.
func OpenPostgres(dsn string) (*gorm.DB, error) {
	return gorm.Open(postgres.Open(dsn), gormConfig())
}

// OpenMySQL opens a MariaDB or MySQL database. dsn is go-sql-driver/mysql's
// (user:password@tcp(host:port)/dbname?param=value); time columns are
// scanned as time.Time (parseTime=true) whatever dsn says.
func OpenMySQL(dsn string) (*gorm.DB, error) {
	cfg, err := mysqldriver.ParseDSN(dsn)
	if err != nil {
		return nil, fmt.Errorf("mysql dsn: %w", err)
	}
	cfg.ParseTime = true
	return gorm.Open(mysql.Open(cfg.FormatDSN()), gormConfig())
}

// sqlLog receives GORM's log: failed and slow statements.
var sqlLog io.Writer = os.Stderr

func gormConfig() *gorm.Config {
	l := logger.New(log.New(sqlLog, "", log.LstdFlags), logger.Config{
		SlowThreshold:             time.Second,
		LogLevel:                  logger.Error,
		IgnoreRecordNotFoundError: true,
		// Log statements with their placeholders, never with the values
		// bound to them: those are user data (message texts, names,
		// password hashes).
		ParameterizedQueries: true,
	})
	return &gorm.Config{
		Logger:         l,
		TranslateError: true,
		// A user's id keys both their User and their Home, so several
		// columns point at either table, and the two many2many relations
		// sharing chat_invitation_deciders (from ChatInvitation and from
		// Home) would each add constraints to it. The app deletes
		// dependants itself, through GORM, in one transaction per
		// operation (rxgorm must see every change, so the database must
		// not cascade), and the tests check that nothing dangles.
		DisableForeignKeyConstraintWhenMigrating: true,
	}
}
