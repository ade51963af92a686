package rx_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rxgorm/rxgorm/rx"
	"github.com/rxgorm/rxgorm/rx/rxtest"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Crash safety of WAL capture by LSN: a child server process consuming
// the slot is killed with SIGKILL at random points of a write storm (GORM
// writes in the child, psql writes from the parent); after each restart
// every client resumes and equals the database.

const walChildEnv = "RXGORM_WAL_CHILD"

type walChildSpec struct {
	Schema, MongoURI, MongoDB, Prefix, Slot, Pub string
	Seed                                         uint64
}

// walNode opens a cluster node on the test's PostgreSQL schema, MongoDB
// database and Redis prefix; wal turns on capture from the slot.
func walNode(t testing.TB, spec walChildSpec, node string, wal bool) (*gorm.DB, *rx.Hub, *redis.Client) {
	t.Helper()
	db, err := gorm.Open(postgres.Open(rxtest.PostgresDSN()+" search_path="+spec.Schema), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if sqlDB, err := db.DB(); err == nil {
		sqlDB.SetMaxOpenConns(8)
		t.Cleanup(func() { sqlDB.Close() })
	}
	store := openMongoStore(t, spec.MongoURI, spec.MongoDB)
	rc := redis.NewClient(&redis.Options{Addr: redisAddr(), DialTimeout: 500 * time.Millisecond, MaxRetries: -1})
	b := rx.NewRedisBroker(rc, rx.RedisOptions{Prefix: spec.Prefix})
	var broker rx.Broker = b
	if wal && spec.Seed != 0 {
		// The child publishes commits late, widening the window between
		// reading a commit from the WAL and handing it to the broker,
		// where a kill must not lose it.
		broker = &slowBroker{RedisBroker: b, r: rand.New(rand.NewPCG(spec.Seed, 3))}
	}
	cfg := rx.Config{Store: store, Broker: broker, NodeID: node, LeaseTTL: time.Second, ReconcileInterval: -1, ProbeInterval: 200 * time.Millisecond}
	if wal {
		cfg.WAL = &rx.WALConfig{DSN: rxtest.PostgresDSN(), Slot: spec.Slot, Publication: spec.Pub, StatusInterval: 50 * time.Millisecond}
	}
	h, err := rx.New(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(); b.Close(); rc.Close() })
	if err := h.Register(&ChatChannel{}, &ChatList{}); err != nil {
		t.Fatal(err)
	}
	return db, h, rc
}

// slowBroker delays each publish by up to 20 ms (RXGORM_WAL_SLOW_MS).
type slowBroker struct {
	*rx.RedisBroker
	mu sync.Mutex
	r  *rand.Rand
}

func (b *slowBroker) delay() {
	b.mu.Lock()
	ms := 20
	if v, err := strconv.Atoi(os.Getenv("RXGORM_WAL_SLOW_MS")); err == nil && v > 0 {
		ms = v
	}
	d := time.Duration(b.r.IntN(ms)) * time.Millisecond
	b.mu.Unlock()
	time.Sleep(d) // fault injection: a slow broker
}

func (b *slowBroker) Publish(ctx context.Context, topic string, payload []byte) error {
	b.delay()
	return b.RedisBroker.Publish(ctx, topic, payload)
}

func (b *slowBroker) PublishBatch(ctx context.Context, msgs []rx.Message) error {
	b.delay()
	return b.RedisBroker.PublishBatch(ctx, msgs)
}

// TestWALKillChild is the child server process of TestWALKill9: it
// consumes the slot, prints READY, and after a line on stdin writes through
// GORM until it is killed.
func TestWALKillChild(t *testing.T) {
	raw := os.Getenv(walChildEnv)
	if raw == "" {
		return
	}
	var spec walChildSpec
	if err := json.Unmarshal([]byte(raw), &spec); err != nil {
		t.Fatal(err)
	}
	db, _, _ := walNode(t, spec, "walchild", true)
	fmt.Println("READY")
	if _, err := bufio.NewReader(os.Stdin).ReadString('\n'); err != nil {
		return // the parent is done with this process
	}
	w := &writer{db: db, r: rand.New(rand.NewPCG(spec.Seed, 7))}
	if err := db.Model(&User{}).Order("id").Pluck("id", &w.users).Error; err != nil {
		t.Fatal(err)
	}
	w.refreshChats(t)
	for {
		w.step(t)
	}
}

// walChild is a running child process.
type walChild struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	logs  *bytes.Buffer
}

func startWALChild(t *testing.T, spec walChildSpec) *walChild {
	t.Helper()
	b, _ := json.Marshal(spec)
	cmd := exec.Command(os.Args[0], "-test.run=^TestWALKillChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), walChildEnv+"="+string(b))
	logs := &bytes.Buffer{}
	cmd.Stderr = logs
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &walChild{cmd: cmd, stdin: in, logs: logs}
	t.Cleanup(func() { c.kill() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if sc.Text() == "READY" {
			go func() { _, _ = io.Copy(io.Discard, out) }()
			return c
		}
		fmt.Fprintln(logs, sc.Text())
	}
	_ = cmd.Wait()
	t.Fatalf("child exited before READY: %s", logs)
	return nil
}

func (c *walChild) kill() {
	if c.cmd.ProcessState != nil {
		return
	}
	_ = c.cmd.Process.Signal(syscall.SIGKILL)
	_ = c.cmd.Wait()
}

// walKills is the number of kills: RXGORM_WAL_KILLS, or 5 (CI).
func walKills(t *testing.T) int {
	if v := os.Getenv("RXGORM_WAL_KILLS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			t.Fatalf("RXGORM_WAL_KILLS: %v", err)
		}
		return n
	}
	return 5
}

// psqlStorm writes through separate psql processes until stop is closed.
func psqlStorm(t *testing.T, schema string, r *rand.Rand, stop chan struct{}, n *atomic.Int64) {
	for k := 0; ; k++ {
		select {
		case <-stop:
			return
		default:
		}
		var sql string
		switch r.IntN(3) {
		case 0:
			sql = fmt.Sprintf("UPDATE messages SET text = 'psql %d' WHERE id = (SELECT id FROM messages ORDER BY random() LIMIT 1)", k)
		case 1:
			sql = fmt.Sprintf("INSERT INTO messages (chat_id, sender_id, text) SELECT (SELECT id FROM chats ORDER BY random() LIMIT 1), (SELECT id FROM users ORDER BY random() LIMIT 1), 'psql %d'", k)
		default:
			sql = fmt.Sprintf("UPDATE chats SET title = 'psql %d' WHERE id = (SELECT id FROM chats ORDER BY random() LIMIT 1)", k)
		}
		cmd := exec.Command("psql", "-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "test", "-c", "SET search_path TO "+schema, "-c", sql)
		// A row deleted by the child meanwhile fails the statement: that
		// write is simply not made.
		if cmd.Run() == nil {
			n.Add(1)
		}
	}
}

// sqlStorm updates random rows with plain SQL until stop is closed.
func sqlStorm(db *gorm.DB, r *rand.Rand, stop chan struct{}, n *atomic.Int64) {
	for k := 0; ; k++ {
		select {
		case <-stop:
			return
		default:
		}
		var err error
		if r.IntN(2) == 0 {
			err = db.Exec("UPDATE messages SET text = ? WHERE id = (SELECT id FROM messages ORDER BY random() LIMIT 1)", fmt.Sprint("sql ", k)).Error
		} else {
			err = db.Exec("UPDATE chats SET title = ? WHERE id = (SELECT id FROM chats ORDER BY random() LIMIT 1)", fmt.Sprint("sql ", k)).Error
		}
		if err == nil {
			n.Add(1)
		}
	}
}

// TestWALKill9: a child process consuming the WAL slot is killed with
// SIGKILL at random points of a write storm, RXGORM_WAL_KILLS times (5 by
// default). Clients live on another node (no WAL, no reconcile: only the
// slot's replay can bring them what a dead child never published). After
// each restart every client resumes by version and equals the database:
// nothing lost, no version delivered twice.
func TestWALKill9(t *testing.T) {
	base := openPostgres(t)
	migrate(t, base)
	sd := seed(t)
	r := rand.New(rand.NewPCG(sd, 1))
	setup := seededWriter(t, base, rand.New(rand.NewPCG(sd, 2)), 6, 4)
	spec := newWALSpec(t, base)
	_, watch, _ := walNode(t, spec, "watch", false)
	var watchers []*watcher
	for i, cid := range setup.chats {
		uid := setup.users[i%len(setup.users)]
		wt := &watcher{name: fmt.Sprintf("chat%d(u%d)", cid, uid), channel: "ChatChannel", params: ChatParams{ChatID: cid}, user: rx.User{ID: strconv.Itoa(int(uid))}, chatID: cid}
		wt.start(t, watch, false)
		watchers = append(watchers, wt)
	}
	for i := 0; i < 2; i++ {
		uid := setup.users[i]
		wt := &watcher{name: fmt.Sprintf("list(u%d)", uid), channel: "ChatList", params: rx.NoParams{}, user: rx.User{ID: strconv.Itoa(int(uid))}}
		wt.start(t, watch, false)
		watchers = append(watchers, wt)
	}
	stopAtCleanup(t, &watchers)
	kills := walKills(t)
	var psqlWrites, sqlWrites atomic.Int64
	spec.Seed = sd
	child := startWALChild(t, spec)
	for k := 0; k < kills; k++ {
		// The child writes (unless this kill lands during its start),
		// psql writes, and the child dies at a random point.
		early := r.IntN(5) == 0
		delay := time.Duration(r.IntN(1000)) * time.Millisecond
		t.Logf("kill %d: after %v%s", k+1, delay, map[bool]string{true: ", before the child writes"}[early])
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for j := 0; j < 2; j++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				psqlStorm(t, spec.Schema, rand.New(rand.NewPCG(sd, uint64(100+2*k+j))), stop, &psqlWrites)
			}()
		}
		// Plain SQL from this process (another service, as far as the
		// child can tell): many small commits.
		wg.Add(1)
		go func() {
			defer wg.Done()
			sqlStorm(base, rand.New(rand.NewPCG(sd, uint64(1000+k))), stop, &sqlWrites)
		}()
		if !early {
			if _, err := io.WriteString(child.stdin, "go\n"); err != nil {
				t.Fatal(err)
			}
		}
		time.Sleep(delay) // the kill point: fault injection, not synchronization
		// The storms stop first: a write after the kill would make the
		// next child re-read rows a lost commit changed, hiding the loss.
		// The child writes until it dies.
		close(stop)
		wg.Wait()
		child.kill()
		var pos struct{ Confirmed, Current string }
		base.Raw("SELECT confirmed_flush_lsn::text AS confirmed, pg_current_wal_lsn()::text AS current FROM pg_replication_slots WHERE slot_name = ?", spec.Slot).Scan(&pos)
		t.Logf("killed: slot confirmed at %s, WAL at %s", pos.Confirmed, pos.Current)
		// The next child resumes from the slot; the clients resume from
		// the versions they hold and must equal the database.
		spec.Seed = sd + uint64(k) + 1
		child = startWALChild(t, spec)
		// First with the subscriptions kept (a resume reconciles the
		// stream with the database, which would hide a lost commit),
		// then resumed from the versions held.
		waitConverged(t, base, watchers, 60*time.Second)
		if t.Failed() {
			t.Fatalf("after kill %d (seed %d); last child's log:\n%s", k+1, sd, child.logs)
		}
		for _, wt := range watchers {
			wt.stop()
			wt.start(t, watch, true)
		}
		waitConverged(t, base, watchers, 60*time.Second)
		if t.Failed() {
			t.Fatalf("after kill %d (seed %d); last child's log:\n%s", k+1, sd, child.logs)
		}
	}
	var msgs int64
	base.Model(&Message{}).Count(&msgs)
	t.Logf("%d kills, %d psql writes, %d SQL writes, %d messages; seed %d", kills, psqlWrites.Load(), sqlWrites.Load(), msgs, sd)
}

// walWaitFor polls cond until it holds, failing the test after within.
func walWaitFor(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Two nodes capture from one slot: exactly one consumes it (a lease
// through the Redis broker). When it dies, the other takes over from the
// confirmed position: a psql write made while nobody consumed reaches the
// clients, nothing twice.
func TestWALFailover(t *testing.T) {
	base := openPostgres(t)
	migrate(t, base)
	setup := seededWriter(t, base, rand.New(rand.NewPCG(seed(t), 2)), 3, 1)
	spec := newWALSpec(t, base)
	type node struct {
		hub   *rx.Hub
		redis *redis.Client
	}
	var nodes []node
	for i := 0; i < 2; i++ {
		_, h, rc := walNode(t, spec, fmt.Sprint("n", i), true)
		nodes = append(nodes, node{h, rc})
	}
	owner := -1
	walWaitFor(t, 10*time.Second, "one node consumes the slot", func() bool {
		a, b := nodes[0].hub.WALStats().Consuming, nodes[1].hub.WALStats().Consuming
		if a && b {
			t.Fatal("both nodes consume the slot")
		}
		switch {
		case a:
			owner = 0
		case b:
			owner = 1
		}
		return owner >= 0
	})
	survivor := nodes[1-owner]
	cid := setup.chats[0]
	wt := &watcher{name: fmt.Sprintf("chat%d", cid), channel: "ChatChannel", params: ChatParams{ChatID: cid}, user: rx.User{ID: strconv.Itoa(int(setup.users[0]))}, chatID: cid}
	wt.start(t, survivor.hub, false)
	t.Cleanup(wt.stop)
	insert := func(text string) {
		psql(t, spec.Schema, fmt.Sprintf("INSERT INTO messages (chat_id, sender_id, text) VALUES (%d, %d, '%s')", cid, setup.users[0], text))
	}
	insert("before")
	waitConverged(t, base, []*watcher{wt}, 30*time.Second)
	// The owner dies: its Redis connection first, so its lease runs out.
	nodes[owner].redis.Close()
	nodes[owner].hub.Close()
	insert("while nobody consumes")
	walWaitFor(t, 10*time.Second, "the survivor takes the slot over", func() bool { return survivor.hub.WALStats().Consuming })
	insert("after")
	waitConverged(t, base, []*watcher{wt}, 30*time.Second)
	if st := survivor.hub.WALStats(); st.Sessions != 1 {
		t.Fatalf("survivor started %d sessions, want 1", st.Sessions)
	}
}
