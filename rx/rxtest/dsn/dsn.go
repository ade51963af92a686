// Package dsn holds the data source names of the databases rxgorm's tests
// and tools run on. Package rxtest opens them for tests; programs such as
// the load tool (bench/cmd/rxload) use this package, which does not import
// package testing.
package dsn

import "os"

// SQLite is the DSN rxgorm recommends for a SQLite file: WAL (readers,
// such as the engine's re-reads, do not block the writer), a busy timeout,
// and immediate transactions (concurrent writers queue instead of failing
// to upgrade their locks).
func SQLite(path string) string {
	return "file:" + path + "?_journal_mode=WAL&_busy_timeout=10000&_txlock=immediate"
}

// Postgres is RXGORM_POSTGRES_DSN, or the server every machine of this
// project runs: 127.0.0.1:5432, user postgres, database test.
func Postgres() string {
	if v := os.Getenv("RXGORM_POSTGRES_DSN"); v != "" {
		return v
	}
	return "host=127.0.0.1 port=5432 user=postgres dbname=test sslmode=disable"
}

// MySQL is RXGORM_MYSQL_DSN, or the MariaDB server every machine of this
// project runs: 127.0.0.1:3306, user root without a password, database
// test. The DSN is go-sql-driver/mysql's; rxgorm needs parseTime=true
// (time.Time columns) and utf8mb4.
func MySQL() string {
	if v := os.Getenv("RXGORM_MYSQL_DSN"); v != "" {
		return v
	}
	return "root@tcp(127.0.0.1:3306)/test?charset=utf8mb4&parseTime=true&loc=UTC"
}
