package load

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
	"github.com/redis/go-redis/v9"
	"github.com/rxgorm/rxgorm/bench"
	"github.com/rxgorm/rxgorm/bench/loadctl"
	"github.com/rxgorm/rxgorm/cache"
	"github.com/rxgorm/rxgorm/cache/mongotest/launcher"
	"github.com/rxgorm/rxgorm/channel"
	"github.com/rxgorm/rxgorm/rx"
	"github.com/rxgorm/rxgorm/rx/rxtest/dsn"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"gorm.io/driver/mysql"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// ServerConfig describes the rxgorm server under load.
type ServerConfig struct {
	// DB is "sqlite" (a fresh file in a temporary directory; the default),
	// "postgres" (a private schema of the database in RXGORM_POSTGRES_DSN,
	// or of the local test database) or "mysql" (a private database on the
	// MariaDB or MySQL server of RXGORM_MYSQL_DSN, or the local one).
	DB string
	// Mongo is the MongoDB URI of the cache store; "ferretdb" starts the
	// FerretDB of cache/mongotest; "" keeps the cache in memory.
	Mongo string
	// Redis is the address of a Redis server for the broker; "" uses the
	// in-process broker.
	Redis string
	// Anchors is the number of boards the writes go to (at least 1).
	Anchors int
	// Snapshot also seeds the boards of the snapshot mode.
	Snapshot bool
	// WAL captures the writes from PostgreSQL's logical replication
	// stream (rx.Config.WAL) instead of the GORM plugin; DB must be
	// "postgres". The slot and the publication are named after the run's
	// schema, so that concurrent runs do not share them, and are dropped
	// when the server closes.
	WAL bool
}

// Ids of the seeded rows: board a (from 1) of the writes has one list and
// one card, all three with id a; the snapshot boards and their rows are
// numbered from SnapshotBase.
const SnapshotBase = 1_000_000

// SnapshotBoards are the snapshot mode's boards: 3 levels, board → lists →
// cards, of about 1,000 and 10,000 instances.
var SnapshotBoards = []struct {
	ID   uint
	Tree bench.Tree
}{
	{SnapshotBase + 1, bench.Tree{Lists: 10, CardsPerList: 99}},  // 1,001 instances
	{SnapshotBase + 2, bench.Tree{Lists: 100, CardsPerList: 99}}, // 10,001 instances
}

// Server is a running rxgorm server with the benchmark channel.
type Server struct {
	// URL is the server's base URL (http://127.0.0.1:port).
	URL string

	db      *gorm.DB
	hub     *rx.Hub
	ws      *channel.Server
	http    *http.Server
	mu      sync.Mutex
	base    []int // per anchor: the last n written
	cleanup []func()

	// What further nodes of the cluster share (StartNode).
	cfg         ServerConfig
	mongoURI    string
	mongoName   string
	redisPrefix string
	pgSchema    string // -db postgres: the run's schema
	walName     string // -wal: the replication slot's and the publication's name
}

// StartServer seeds a database and serves BoardChannel on a loopback port.
func StartServer(ctx context.Context, cfg ServerConfig) (srv *Server, err error) {
	if cfg.Anchors <= 0 {
		cfg.Anchors = 1
	}
	s := &Server{base: make([]int, cfg.Anchors), cfg: cfg, mongoName: fmt.Sprintf("rxload_%d", os.Getpid()), redisPrefix: fmt.Sprintf("rxload:%d:", os.Getpid())}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := s.openDB(cfg.DB); err != nil {
		return nil, err
	}
	if cfg.WAL {
		if cfg.db() != "postgres" {
			return nil, fmt.Errorf("rxload: -wal needs -db postgres, not %s", cfg.db())
		}
		// Registered after the schema's cleanup, so run before it (and
		// after the hub has closed its replication connection).
		s.walName = s.pgSchema
		s.cleanup = append(s.cleanup, func() {
			if err := dropWAL(s.walName); err != nil {
				fmt.Fprintln(os.Stderr, err)
			}
		})
	}
	if err := seed(s.db, cfg); err != nil {
		return nil, err
	}
	return s, s.serve(ctx)
}

// StartNode starts another node of peer's application: its own GORM pool
// (and rx plugin), hub, MongoDB and Redis clients and HTTP server, sharing
// peer's database, MongoDB database and Redis prefix, as a second server
// behind a load balancer would (rxgorm's cluster mode).
func StartNode(ctx context.Context, peer *Server) (srv *Server, err error) {
	s := &Server{base: make([]int, peer.cfg.Anchors), cfg: peer.cfg, mongoURI: peer.mongoURI, mongoName: peer.mongoName, redisPrefix: peer.redisPrefix,
		pgSchema: peer.pgSchema, walName: peer.walName}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if s.db, err = gorm.Open(peer.db.Dialector, &gorm.Config{Logger: logger.Discard}); err != nil {
		return nil, err
	}
	s.cfg.Mongo = peer.mongoURI
	return s, s.serve(ctx)
}

// serve starts the hub and the HTTP server on s.db.
func (s *Server) serve(ctx context.Context) (err error) {
	cfg := s.cfg
	rc := rx.Config{Logger: quietLogger()}
	if cfg.Mongo != "" {
		if rc.Store, err = s.mongoStore(ctx, cfg.Mongo); err != nil {
			return err
		}
	}
	if s.walName != "" {
		// Nodes of one application share the slot (rx's lease picks the
		// node that consumes it).
		rc.WAL = &rx.WALConfig{DSN: dsn.Postgres(), Slot: s.walName, Publication: s.walName}
	}
	if cfg.Redis != "" {
		client := redis.NewClient(&redis.Options{Addr: cfg.Redis})
		b := rx.NewRedisBroker(client, rx.RedisOptions{Prefix: s.redisPrefix})
		s.cleanup = append(s.cleanup, func() { b.Close(); client.Close() })
		rc.Broker = b
	}
	if s.hub, err = bench.NewHub(s.db, rc); err != nil {
		return err
	}
	// A load test opens every socket from one address, past the
	// default caps.
	s.ws = channel.NewServer(s.hub, channel.Options{Logger: quietLogger(), MaxConnections: -1, MaxConnectionsPerIP: -1})
	mux := http.NewServeMux()
	mux.Handle("/ws", s.ws)
	loadctl.Handle(mux, s.write, s.ws.Sockets)
	mux.HandleFunc("POST /rxload/expire", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.ParseUint(r.URL.Query().Get("anchor"), 10, 64)
		if err == nil {
			err = s.hub.Expire(r.Context(), bench.ChannelName, uint(id))
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	s.URL = "http://" + ln.Addr().String()
	s.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.http.Serve(ln) }()
	return nil
}

func (s *Server) openDB(kind string) error {
	var err error
	switch kind {
	case "", "sqlite":
		dir, derr := os.MkdirTemp("", "rxload-")
		if derr != nil {
			return derr
		}
		s.cleanup = append(s.cleanup, func() { os.RemoveAll(dir) })
		s.db, err = bench.Open(dir, "load.db")
		return err
	case "postgres":
		schema := fmt.Sprintf("rxload_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
		s.pgSchema = schema
		admin, err := gorm.Open(postgres.Open(dsn.Postgres()), &gorm.Config{Logger: logger.Discard})
		if err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		if err := admin.Exec("CREATE SCHEMA " + schema).Error; err != nil {
			bench.Close(admin)
			return fmt.Errorf("postgres: %w", err)
		}
		s.cleanup = append(s.cleanup, func() { admin.Exec("DROP SCHEMA " + schema + " CASCADE"); bench.Close(admin) })
		s.db, err = gorm.Open(postgres.Open(dsn.Postgres()+" search_path="+schema), &gorm.Config{Logger: logger.Discard})
		if err != nil {
			return err
		}
		return s.db.AutoMigrate(&bench.Board{}, &bench.List{}, &bench.Card{})
	case "mysql":
		cfg, err := mysqldriver.ParseDSN(dsn.MySQL())
		if err != nil {
			return fmt.Errorf("mysql: %w", err)
		}
		cfg.ParseTime = true
		name := fmt.Sprintf("rxload_%d_%d", os.Getpid(), time.Now().UnixNano()%1e9)
		admin, err := gorm.Open(mysql.Open(cfg.FormatDSN()), &gorm.Config{Logger: logger.Discard})
		if err != nil {
			return fmt.Errorf("mysql: %w", err)
		}
		if err := admin.Exec("CREATE DATABASE " + name + " CHARACTER SET utf8mb4").Error; err != nil {
			bench.Close(admin)
			return fmt.Errorf("mysql: %w", err)
		}
		s.cleanup = append(s.cleanup, func() { admin.Exec("DROP DATABASE " + name); bench.Close(admin) })
		cfg.DBName = name
		s.db, err = gorm.Open(mysql.Open(cfg.FormatDSN()), &gorm.Config{Logger: logger.Discard})
		if err != nil {
			return err
		}
		return s.db.AutoMigrate(&bench.Board{}, &bench.List{}, &bench.Card{})
	}
	return fmt.Errorf("rxload: unknown database %q (sqlite, postgres or mysql)", kind)
}

// dropWAL drops the replication slot and the publication named name,
// waiting (up to 10 s) for a closing replication session to release the
// slot: a slot left behind would hold the server's WAL forever.
func dropWAL(name string) error {
	admin, err := gorm.Open(postgres.Open(dsn.Postgres()), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		return fmt.Errorf("rxload: drop WAL slot %s: %w", name, err)
	}
	defer bench.Close(admin)
	lit := "'" + strings.ReplaceAll(name, "'", "''") + "'"
	err = admin.Exec(`DO $$ BEGIN
		FOR i IN 1..400 LOOP
			BEGIN
				PERFORM pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = ` + lit + ` AND active;
				PERFORM pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = ` + lit + `;
				RETURN;
			EXCEPTION WHEN object_in_use THEN PERFORM pg_sleep(0.025);
			END;
		END LOOP;
		RAISE 'slot still active';
	END $$`).Error
	if err != nil {
		return fmt.Errorf("rxload: drop WAL slot %s: %w", name, err)
	}
	if err := admin.Exec(`DROP PUBLICATION IF EXISTS "` + strings.ReplaceAll(name, `"`, `""`) + `"`).Error; err != nil {
		return fmt.Errorf("rxload: drop publication %s: %w", name, err)
	}
	return nil
}

func (s *Server) mongoStore(ctx context.Context, uri string) (cache.Store, error) {
	if uri == "ferretdb" {
		u, stop, err := startFerretDB()
		if err != nil {
			return nil, err
		}
		s.cleanup = append(s.cleanup, stop)
		uri = u
	}
	s.mongoURI = uri
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return nil, fmt.Errorf("mongo: %w", err)
	}
	name := s.mongoName
	s.cleanup = append(s.cleanup, func() {
		_ = client.Database(name).Drop(context.Background())
		_ = client.Disconnect(context.Background())
	})
	return cache.NewMongo(ctx, client.Database(name), cache.MongoOptions{})
}

// startFerretDB runs the FerretDB launcher of cache/mongotest on a free
// loopback port with a temporary data directory.
func startFerretDB() (uri string, stop func(), err error) {
	bin, err := launcher.Binary()
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0", "-dir", "", "-exit-on-stdin-eof")
	addr, stop, err := startChild(cmd, "MONGODB_URI=")
	return addr, stop, err
}

// startChild starts cmd, waits for a line of its standard output starting
// with prefix and returns the rest of it; stop closes its standard input
// (the child exits) and waits for it.
func startChild(cmd *exec.Cmd, prefix string) (string, func(), error) {
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return "", nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		return "", nil, err
	}
	got := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), prefix); ok {
				got <- v
				break
			}
		}
		close(got)
		for sc.Scan() {
		}
	}()
	stop := func() {
		_ = stdin.Close()
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	select {
	case v, ok := <-got:
		if ok {
			return v, stop, nil
		}
		stop()
		return "", nil, fmt.Errorf("%s exited before printing %s", cmd.Path, prefix)
	case <-time.After(2 * time.Minute):
		stop()
		return "", nil, fmt.Errorf("%s did not print %s in time", cmd.Path, prefix)
	}
}

// seed creates the write boards and, if asked, the snapshot boards.
func seed(db *gorm.DB, cfg ServerConfig) error {
	boards := make([]bench.Board, cfg.Anchors)
	lists := make([]bench.List, cfg.Anchors)
	cards := make([]bench.Card, cfg.Anchors)
	for i := range boards {
		id := uint(i + 1)
		boards[i] = bench.Board{ID: id, Title: fmt.Sprintf("board %d", id)}
		lists[i] = bench.List{ID: id, BoardID: id, Title: "list"}
		cards[i] = bench.Card{ID: id, ListID: id, Title: "card"}
	}
	for _, v := range []any{boards, lists, cards} {
		if err := db.CreateInBatches(v, 500).Error; err != nil {
			return fmt.Errorf("rxload: seed: %w", err)
		}
	}
	if cfg.Snapshot {
		next := uint(SnapshotBase + 1)
		for _, sb := range SnapshotBoards {
			if _, err := bench.SeedBoard(db, sb.ID, next, next, sb.Tree); err != nil {
				return fmt.Errorf("rxload: seed: %w", err)
			}
			next += uint(sb.Tree.Instances())
		}
	}
	return nil
}

// write performs the writes of req: single-row updates of the anchors'
// cards, each stamping n (the anchor's write count) and its send time.
func (s *Server) write(ctx context.Context, req loadctl.WriteRequest) loadctl.WriteResult {
	s.mu.Lock()
	defer s.mu.Unlock()
	if req.Anchors > len(s.base) {
		return loadctl.WriteResult{Error: fmt.Sprintf("the server has %d anchors", len(s.base))}
	}
	base := append([]int(nil), s.base...)
	res := loadctl.Pace(ctx, req.Count, req.Rate, func(i int, sent int64) (int64, error) {
		a, seq := loadctl.Seq(i, req.Anchors)
		n := base[a] + seq
		err := s.db.WithContext(ctx).Model(&bench.Card{ID: uint(a + 1)}).Updates(map[string]any{"n": n, "sent": sent}).Error
		if err != nil {
			return 0, err
		}
		s.base[a] = n
		return time.Now().UnixNano(), nil
	})
	res.Base = base[:req.Anchors]
	return res
}

// Close stops the server and removes what it created.
func (s *Server) Close() {
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = s.ws.Shutdown(ctx)
		_ = s.http.Shutdown(ctx)
		cancel()
	}
	if s.hub != nil {
		s.hub.Close()
	}
	if s.db != nil {
		bench.Close(s.db)
	}
	for i := len(s.cleanup) - 1; i >= 0; i-- {
		s.cleanup[i]()
	}
}
