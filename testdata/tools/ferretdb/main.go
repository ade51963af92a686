// Command ferretdb runs FerretDB v1.24.0, a MongoDB wire-protocol server,
// for rxgorm's tests. It lives in its own module so that the library's
// go.mod does not carry FerretDB's dependencies.
//
// FerretDB's own main package cannot be used: `go install ...@v1.24.0`
// fails on the module proxy, and a binary built from it panics at start
// because the module zip lacks build/version/version.txt. The embeddable
// package github.com/FerretDB/FerretDB/ferretdb works.
//
// Usage:
//
//	ferretdb [-listen 127.0.0.1:0] [-dir DIR] [-sqlite-params QUERY]
//	         [-handler sqlite|postgresql] [-postgresql-url URL]
//	         [-log-level warn] [-exit-on-stdin-eof]
//
// Once it listens, it prints one line MONGODB_URI=<uri> on standard output.
// It stops cleanly on SIGTERM or SIGINT, and with -exit-on-stdin-eof also
// when its standard input reaches end of file: a parent that gives it a
// pipe need not outlive it to stop it (rxgorm's cache/mongotest does so).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/FerretDB/FerretDB/ferretdb"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "ferretdb:", err)
		os.Exit(1)
	}
}

func run() error {
	listen := flag.String("listen", "127.0.0.1:0", "TCP address to listen on (port 0 picks a free port)")
	dir := flag.String("dir", "", "data directory of the sqlite handler (default: a new temporary directory, removed at exit)")
	handler := flag.String("handler", "sqlite", "FerretDB backend: sqlite or postgresql")
	pgURL := flag.String("postgresql-url", "", "PostgreSQL URL for -handler postgresql, e.g. postgres://127.0.0.1:5432/ferretdb")
	sqliteParams := flag.String("sqlite-params", "_pragma=synchronous(normal)",
		"query of the SQLite URI: the default keeps WAL commits without fsync, which test data does not need; empty for FerretDB's defaults")
	logLevel := flag.String("log-level", "warn", "log level on standard error: debug, info, warn or error")
	stdinEOF := flag.Bool("exit-on-stdin-eof", false, "also stop when standard input reaches end of file (the parent exited)")
	flag.Parse()

	var level slog.Level
	if err := level.UnmarshalText([]byte(*logLevel)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	cfg := &ferretdb.Config{
		Listener: ferretdb.ListenerConfig{TCP: *listen},
		Logger:   logger,
		Handler:  *handler,
	}
	switch *handler {
	case "sqlite":
		d := *dir
		if d == "" {
			tmp, err := os.MkdirTemp("", "ferretdb-")
			if err != nil {
				return err
			}
			defer os.RemoveAll(tmp)
			d = tmp
		}
		abs, err := filepath.Abs(d)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(abs, 0o755); err != nil {
			return err
		}
		cfg.SQLiteURL = "file:" + abs + "/"
		if *sqliteParams != "" {
			cfg.SQLiteURL += "?" + *sqliteParams
		}
	case "postgresql":
		if *pgURL == "" {
			return fmt.Errorf("-handler postgresql needs -postgresql-url")
		}
		cfg.PostgreSQLURL = *pgURL
	default:
		return fmt.Errorf("unknown -handler %q (want sqlite or postgresql)", *handler)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	if *stdinEOF {
		ctx2, cancel := context.WithCancel(ctx)
		defer cancel()
		ctx = ctx2
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			cancel()
		}()
	}

	f, err := ferretdb.New(cfg)
	if err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- f.Run(ctx) }()

	// New has already bound the listener, so the URI is known now.
	// os.Stdout is unbuffered: the line reaches a pipe reader at once.
	fmt.Printf("MONGODB_URI=%s\n", f.MongoDBURI())
	return <-done
}
