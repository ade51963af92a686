package rx_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rxgorm/rxgorm/cache"
	"github.com/rxgorm/rxgorm/rx"
	"gorm.io/gorm"
)

// Several nodes in one test process: each with its own GORM pool (and rx
// plugin), MongoDB client and Redis client, sharing the SQLite database,
// one MongoDB database (FerretDB) and Redis, as several servers behind a
// load balancer would.

type clusterNode struct {
	name   string
	db     *gorm.DB
	hub    *rx.Hub
	redis  *redis.Client
	broker *rx.RedisBroker
}

type testCluster struct {
	base     *gorm.DB
	mongoURI string
	mongoDB  string
	redis    string
	prefix   string
	nodes    []*clusterNode
	// reconcile is the nodes' Config.ReconcileInterval (0: the default).
	reconcile time.Duration
	// leaseTTL is the nodes' Config.LeaseTTL (0: 1 s).
	leaseTTL time.Duration
	// wrap, if set, wraps node i's store (fault injection).
	wrap func(i int, s *cache.MongoStore) cache.Store
	// logger, if set, receives node i's log.
	logger func(i int) *slog.Logger
}

func newTestCluster(t *testing.T, base *gorm.DB, redisAddr string, n int) *testCluster {
	t.Helper()
	c := newCluster(t, base, redisAddr, "rxcluster")
	for i := 0; i < n; i++ {
		c.start(t, i)
	}
	return c
}

// start (re)starts node i.
func (c *testCluster) start(t *testing.T, i int) *clusterNode {
	t.Helper()
	store := openMongoStore(t, c.mongoURI, c.mongoDB)
	rc := redis.NewClient(&redis.Options{Addr: c.redis, DialTimeout: 500 * time.Millisecond, MaxRetries: -1})
	b := rx.NewRedisBroker(rc, rx.RedisOptions{Prefix: c.prefix})
	n := &clusterNode{name: fmt.Sprint("node", i), db: reopen(t, c.base), redis: rc, broker: b}
	var st cache.Store = store
	if c.wrap != nil {
		st = c.wrap(i, store)
	}
	ttl := c.leaseTTL
	if ttl == 0 {
		ttl = time.Second
	}
	cfg := rx.Config{Store: st, Broker: b, NodeID: n.name, LeaseTTL: ttl, ReconcileInterval: c.reconcile, ProbeInterval: 200 * time.Millisecond}
	if c.logger != nil {
		cfg.Logger = c.logger(i)
	}
	hub, err := rx.New(n.db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.hub = hub
	if err := n.hub.Register(&ChatChannel{}, &ChatList{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.hub.Close(); b.Close(); rc.Close() })
	for len(c.nodes) <= i {
		c.nodes = append(c.nodes, nil)
	}
	c.nodes[i] = n
	return n
}

// kill stops a node the way a crash does, as far as the others can tell:
// its Redis connection goes first, so it neither releases its leases nor
// says goodbye.
func (n *clusterNode) kill() {
	n.redis.Close()
	n.hub.Close()
	n.broker.Close()
}

// waitConverged polls until every watcher holds what the database holds.
func waitConverged(t *testing.T, ref *gorm.DB, watchers []*watcher, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for _, wt := range watchers {
		for {
			wt.mu.Lock()
			got, err := wt.state.JSON()
			wt.mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			want := oracle(t, ref, wt)
			if sameJSON(t, got, want) {
				break
			}
			if time.Now().After(deadline) {
				wt.mu.Lock()
				vs := wt.state.Versions()
				wt.mu.Unlock()
				t.Fatalf("%s did not converge (versions %v, subscription %v)\n got: %s\nwant: %s", wt.name, vs, wt.sub.Err(), got, want)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	for _, wt := range watchers {
		if d := wt.dups.Load(); d > 0 {
			t.Errorf("%s received %d deltas at or below a version it held", wt.name, d)
		}
		if g := wt.gaps.Load(); g > 0 {
			t.Errorf("%s received %d events that apply to a version above the one it held (changes missed)", wt.name, g)
		}
	}
}

// clusterLoad runs writers on the given nodes and moves watchers between
// nodes (resuming by version) while they write.
type clusterLoad struct {
	t        *testing.T
	c        *testCluster
	seed     uint64
	setup    *writer
	mu       sync.Mutex
	watchers []*watcher
	live     map[*watcher]int // watcher → node index
	runs     atomic.Uint64
}

func newClusterLoad(t *testing.T, c *testCluster, seed uint64) *clusterLoad {
	l := &clusterLoad{t: t, c: c, seed: seed, live: map[*watcher]int{}}
	l.setup = &writer{db: c.nodes[0].db, r: rand.New(rand.NewPCG(seed, 1))}
	for i := 0; i < 6; i++ {
		l.setup.newUser(c.nodes[0].db)
	}
	for i := 0; i < 4; i++ {
		l.setup.newChat(c.nodes[0].db)
	}
	return l
}

// startClusterLoad starts n nodes on a fresh SQLite database and joins
// watchers clients to them in turn.
func startClusterLoad(t *testing.T, redisAddr string, n, watchers int) (*gorm.DB, *testCluster, *clusterLoad, *rand.Rand) {
	base := openSQLite(t)
	migrate(t, base)
	c := newTestCluster(t, base, redisAddr, n)
	l := newClusterLoad(t, c, seed(t))
	r := rand.New(rand.NewPCG(l.seed, 99))
	for i := 0; i < watchers; i++ {
		l.join(r, i%n)
	}
	return base, c, l, r
}

// join adds a watcher on node i.
func (l *clusterLoad) join(r *rand.Rand, i int) {
	uid := l.setup.users[r.IntN(len(l.setup.users))]
	user := rx.User{ID: strconv.Itoa(int(uid))}
	n := len(l.watchers)
	var wt *watcher
	if n%4 == 3 {
		wt = &watcher{name: fmt.Sprintf("list#%d(u%d)", n, uid), channel: "ChatList", params: rx.NoParams{}, user: user}
	} else {
		cid := l.setup.chats[r.IntN(len(l.setup.chats))]
		wt = &watcher{name: fmt.Sprintf("chat%d#%d(u%d)", cid, n, uid), channel: "ChatChannel", params: ChatParams{ChatID: cid}, user: user, chatID: cid}
	}
	wt.start(l.t, l.c.nodes[i].hub, false)
	l.watchers = append(l.watchers, wt)
	l.live[wt] = i
}

// move resumes a watcher on node i from the versions it holds.
func (l *clusterLoad) move(wt *watcher, i int) {
	wt.stop()
	wt.start(l.t, l.c.nodes[i].hub, true)
	l.live[wt] = i
}

// write runs ops random writes through node i's database.
func (l *clusterLoad) write(i, ops int) {
	w := &writer{db: l.c.nodes[i].db, r: rand.New(rand.NewPCG(l.seed, uint64(i)+10*l.runs.Add(1))), users: slices.Clone(l.setup.users), chats: slices.Clone(l.setup.chats)}
	ft := &fatalT{T: l.t}
	for k := 0; k < ops && !ft.failed; k++ {
		w.step(ft)
	}
}

func (l *clusterLoad) stopAll() {
	for _, wt := range l.watchers {
		wt.stop()
	}
}

func clusterOps() int {
	if testing.Short() {
		return 60
	}
	return 150
}

// Clients on three nodes converge under concurrent random writes made on
// every node, while they move between nodes resuming by version: every
// delta exactly once, in version order.
func TestClusterConvergence(t *testing.T) {
	base, c, l, r := startClusterLoad(t, redisAddr(), 3, 9)
	var wg sync.WaitGroup
	for i := range c.nodes {
		wg.Add(1)
		go func() { defer wg.Done(); l.write(i, clusterOps()) }()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	moves := 0
	for running := true; running; {
		select {
		case <-done:
			running = false
		case <-time.After(time.Duration(10+r.IntN(40)) * time.Millisecond):
			l.mu.Lock()
			if r.IntN(3) == 0 {
				l.join(r, r.IntN(3))
			} else {
				wt := l.watchers[r.IntN(len(l.watchers))]
				l.move(wt, (l.live[wt]+1+r.IntN(2))%3)
				moves++
			}
			l.mu.Unlock()
		}
	}
	waitConverged(t, reopen(t, base), l.watchers, 30*time.Second)
	l.stopAll()
	t.Logf("%d watchers, %d moves between nodes", len(l.watchers), moves)
}

// Cold loads are coordinated: two nodes subscribing to the same cold
// stream at once query the database once between them.
func TestClusterColdLoadOnce(t *testing.T) {
	base := openSQLite(t)
	migrate(t, base)
	base.Create(&Chat{Title: "x", Messages: []Message{{Text: "a"}, {Text: "b"}}})
	c := newTestCluster(t, base, redisAddr(), 2)
	var counts []interface{ Load() int64 }
	for _, n := range c.nodes {
		counts = append(counts, countQueries(t, n.db, "messages"))
	}
	var wg sync.WaitGroup
	subs := make([]*rx.Subscription, 2)
	for i, n := range c.nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sub, err := n.hub.Subscribe(context.Background(), "ChatChannel", ChatParams{ChatID: 1}, rx.User{ID: "1"}, rx.SubscribeOptions{})
			if err != nil {
				t.Error(err)
				return
			}
			subs[i] = sub
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	for i, sub := range subs {
		ev := next(t, sub)
		if !ev.Snapshot || len(ev.Instances) != 3 {
			t.Fatalf("node%d: want a snapshot of 3 instances, got %s", i, dump(ev))
		}
		defer sub.Close()
	}
	if a, b := counts[0].Load(), counts[1].Load(); (a == 0) == (b == 0) {
		t.Fatalf("messages queried %d and %d times by the two nodes: want exactly one node loading", a, b)
	}
	// And a commit on either node reaches both, with the same version.
	c.nodes[1].db.Create(&Message{ChatID: 1, Text: "c"})
	v0, v1 := next(t, subs[0]), next(t, subs[1])
	if v0.Version != v1.Version || len(v0.Instances) == 0 {
		t.Fatalf("versions differ across nodes: %s / %s", dump(v0), dump(v1))
	}
}

// A node dies mid-run: its clients resume on the other nodes from their
// last version and lose nothing; the streams it owned are taken over once
// its leases run out.
func TestClusterNodeFailure(t *testing.T) {
	// Node 0 subscribes first: it owns the streams; the others follow.
	base, c, l, _ := startClusterLoad(t, redisAddr(), 3, 12)
	var wg sync.WaitGroup
	for _, i := range []int{1, 2} {
		wg.Add(1)
		go func() { defer wg.Done(); l.write(i, clusterOps()) }()
	}
	// Node 0 writes too, then dies, its last commits published.
	l.write(0, clusterOps()/2)
	if err := c.nodes[0].hub.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.nodes[0].kill()
	moved := 0
	for _, wt := range l.watchers {
		if l.live[wt] != 0 {
			continue
		}
		<-wt.done // the hub ended the subscription
		wt.sub = nil
		wt.start(t, c.nodes[1+moved%2].hub, true)
		l.live[wt] = 1 + moved%2
		moved++
	}
	wg.Wait()
	waitConverged(t, reopen(t, base), l.watchers, 30*time.Second)
	l.stopAll()
	t.Logf("%d watchers moved off the dead node", moved)
}

// Redis restarts mid-run (a private redis-server, which keeps nothing):
// nodes keep serving their clients, and once Redis is back every client
// converges, whatever it missed meanwhile.
func TestClusterRedisRestart(t *testing.T) {
	srv := startRedis(t)
	base, _, l, _ := startClusterLoad(t, srv.addr, 2, 8)
	l.write(0, clusterOps()/3)
	l.write(1, clusterOps()/3)
	srv.stop()
	l.write(0, clusterOps()/3)
	l.write(1, clusterOps()/3)
	srv.start(t)
	l.write(1, clusterOps()/3)
	waitConverged(t, reopen(t, base), l.watchers, 30*time.Second)
	l.stopAll()
}

// A commit whose touches never reach any node (its node died between the
// commit and publishing them; here: a write without the rx plugin) reaches
// the subscribers of both nodes when the owner reconciles the stream.
func TestClusterReconcile(t *testing.T) {
	base := openSQLite(t)
	migrate(t, base)
	base.Create(&User{Name: "u"})
	base.Create(&Chat{Title: "x"})
	c := newCluster(t, base, redisAddr(), "rxrecon")
	c.reconcile = 500 * time.Millisecond
	var ws []*watcher
	for i := 0; i < 2; i++ {
		c.start(t, i)
		wt := &watcher{name: fmt.Sprint("chat1@node", i), channel: "ChatChannel", params: ChatParams{ChatID: 1}, user: rx.User{ID: "1"}, chatID: 1}
		wt.start(t, c.nodes[i].hub, false)
		ws = append(ws, wt)
	}
	plain := reopen(t, base) // no rx plugin: nobody hears of this commit
	if err := plain.Create(&Message{ChatID: 1, SenderID: 1, Text: "lost with its node"}).Error; err != nil {
		t.Fatal(err)
	}
	waitConverged(t, reopen(t, base), ws, 20*time.Second)
	for _, wt := range ws {
		wt.stop()
	}
}
