// Command chat runs the rxgorm chat example: the Nova 210 SE chat backend
// rebuilt on rxgorm, with its web UI embedded.
//
//	go run ./examples/chat
//
// starts it on embedded defaults (a SQLite file under ./data, the
// in-memory cache) and prints its URL. Flags, or the environment variables
// named in their help, switch the database to PostgreSQL or MariaDB/MySQL,
// the cache to MongoDB and the broker to Redis (for several servers on one
// database):
//
//	go run ./examples/chat -addr :8080 -postgres 'host=127.0.0.1 user=postgres dbname=chat' -mongo mongodb://127.0.0.1:27017/chat -redis redis://127.0.0.1:6379/0
//	go run ./examples/chat -mysql 'root@tcp(127.0.0.1:3306)/chat'
//
// Besides the UI, the REST API and the WebSocket at /rx, it serves
// Prometheus metrics at /metrics and a health check at /healthz (200 when
// the database, the store and the broker answer, 503 naming those that do
// not).
package main

import (
	"context"
	"embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rxgorm/rxgorm/cache"
	"github.com/rxgorm/rxgorm/examples/chat/app"
	"github.com/rxgorm/rxgorm/rx"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"gorm.io/gorm"
)

// dist is the built web UI (web/dist; see README.md for rebuilding it).
//
//go:embed all:web/dist
var dist embed.FS

// config is the command line.
type config struct {
	addr     string // listen address
	data     string // SQLite directory
	postgres string // PostgreSQL DSN; empty: SQLite (or mysql)
	mysql    string // MariaDB/MySQL DSN; empty: SQLite (or postgres)
	mongo    string // MongoDB URI of the cache store; empty: in memory
	redis    string // Redis URL of the broker; empty: in process
	// redisPrefix is put before the broker's Redis channels; empty means
	// "chat:" (tests set their own).
	redisPrefix string
	// bcryptCost is the cost of password hashes; zero means bcrypt's
	// default (tests lower it: under -race a default hash takes seconds).
	bcryptCost int
}

func env(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}

func main() {
	var cfg config
	flag.StringVar(&cfg.addr, "addr", env("CHAT_ADDR", "127.0.0.1:8080"), "listen address (env CHAT_ADDR)")
	flag.StringVar(&cfg.data, "data", env("CHAT_DATA", "data"), "directory of the SQLite database (env CHAT_DATA)")
	flag.StringVar(&cfg.postgres, "postgres", env("CHAT_POSTGRES", ""), "PostgreSQL DSN; empty means SQLite under -data (env CHAT_POSTGRES)")
	flag.StringVar(&cfg.mysql, "mysql", env("CHAT_MYSQL", ""), "MariaDB or MySQL DSN (user:password@tcp(host:port)/dbname); empty means SQLite under -data (env CHAT_MYSQL)")
	flag.StringVar(&cfg.mongo, "mongo", env("CHAT_MONGO", ""), "MongoDB URI for the rxgorm cache store, database from its path (default chat); empty means in memory (env CHAT_MONGO)")
	flag.StringVar(&cfg.redis, "redis", env("CHAT_REDIS", ""), "Redis URL (redis://host:port/db) of the rxgorm broker, to run several servers on one database; empty means in process (env CHAT_REDIS)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg, os.Stdout); err != nil {
		log.Fatal(err)
	}
}

// run serves the example until ctx is done, printing its URL to out.
func run(ctx context.Context, cfg config, out io.Writer) error {
	var (
		db  *gorm.DB
		err error
	)
	switch {
	case cfg.postgres != "" && cfg.mysql != "":
		return errors.New("chat: -postgres and -mysql are exclusive: choose one database")
	case cfg.postgres != "":
		db, err = app.OpenPostgres(cfg.postgres)
	case cfg.mysql != "":
		db, err = app.OpenMySQL(cfg.mysql)
	default:
		db, err = app.OpenSQLite(filepath.Join(cfg.data, "chat.db"))
	}
	if err != nil {
		return err
	}
	if sqlDB, err := db.DB(); err == nil {
		defer sqlDB.Close()
	}
	opts := app.Options{BcryptCost: cfg.bcryptCost}
	checks := map[string]check{} // for /healthz (monitor.go)
	if cfg.mongo != "" {
		store, ping, closeStore, err := openMongo(ctx, cfg.mongo)
		if err != nil {
			return err
		}
		defer closeStore()
		opts.Store = store
		checks["store"] = check{ping: ping, up: "ok"}
	}
	if cfg.redis != "" {
		broker, ping, closeBroker, err := openRedis(ctx, cfg.redis, cfg.redisPrefix)
		if err != nil {
			return err
		}
		defer closeBroker() // after the app: deferred calls run last-first
		opts.Broker = broker
		checks["broker"] = check{ping: ping, up: "ok"}
	}
	a, err := app.New(db, opts)
	if err != nil {
		return err
	}
	defer a.Close()

	static, err := fs.Sub(dist, "web/dist")
	if err != nil {
		return err
	}
	srv := newServer(a, static)
	maps.Copy(srv.checks, checks)
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "rxgorm chat example: http://%s/\n", ln.Addr())
	hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		defer close(done)
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.rx.Shutdown(sctx) // sockets first: they are hijacked, hs does not track them
		_ = hs.Shutdown(sctx)
	}()
	if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	<-done
	return nil
}

// openRedis connects to Redis and starts the rxgorm broker on it, under
// prefix. It returns the broker, a ping of Redis and a function closing
// both.
func openRedis(ctx context.Context, url, prefix string) (rx.Broker, func(context.Context) error, func(), error) {
	opt, err := redis.ParseURL(url)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("redis: %w", err)
	}
	client := redis.NewClient(opt)
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := client.Ping(pctx).Err(); err != nil {
		_ = client.Close()
		return nil, nil, nil, fmt.Errorf("redis %s: %w", opt.Addr, err)
	}
	if prefix == "" {
		prefix = "chat:"
	}
	b := rx.NewRedisBroker(client, rx.RedisOptions{Prefix: prefix})
	ping := func(ctx context.Context) error { return client.Ping(ctx).Err() }
	return b, ping, func() {
		_ = b.Close()
		_ = client.Close()
	}, nil
}

// openMongo connects to MongoDB and returns the cache store on the URI's
// database, a ping of MongoDB and a function closing the connection.
func openMongo(ctx context.Context, uri string) (cache.Store, func(context.Context) error, func(), error) {
	name := "chat"
	if u, err := url.Parse(uri); err == nil && strings.Trim(u.Path, "/") != "" {
		name = strings.Trim(u.Path, "/")
	}
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return nil, nil, nil, fmt.Errorf("mongo: %w", err)
	}
	closeClient := func() { _ = client.Disconnect(context.Background()) }
	store, err := cache.NewMongo(ctx, client.Database(name), cache.MongoOptions{CollectionPrefix: "chat_"})
	if err != nil {
		closeClient()
		return nil, nil, nil, err
	}
	ping := func(ctx context.Context) error { return client.Ping(ctx, nil) }
	return store, ping, closeClient, nil
}
