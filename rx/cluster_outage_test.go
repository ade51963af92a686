package rx_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/rx"
	"gorm.io/gorm"
)

// Broker outages while every node commits (issue 20): two nodes on their
// own GORM pools, MongoDB clients and Redis clients, sharing one PostgreSQL
// schema, one FerretDB database and a private redis-server that the test
// stops and starts while writers on both nodes keep committing. Afterwards
// every client, every client resumed with its versions on the other node
// and every fresh subscription must equal the database.

// progress counts the writers' commits; wait blocks until a count is
// reached.
type progress struct {
	mu   sync.Mutex
	cond *sync.Cond
	n    int
	stop bool
}

func newProgress() *progress {
	p := &progress{}
	p.cond = sync.NewCond(&p.mu)
	return p
}

func (p *progress) add() {
	p.mu.Lock()
	p.n++
	p.mu.Unlock()
	p.cond.Broadcast()
}

// wait blocks until n more commits than now were made.
func (p *progress) waitMore(n int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	target := p.n + n
	for p.n < target && !p.stop {
		p.cond.Wait()
	}
}

func (p *progress) halt() {
	p.mu.Lock()
	p.stop = true
	p.mu.Unlock()
	p.cond.Broadcast()
}

func (p *progress) stopped() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.stop
}

// chatWriter commits what users of a chat app do: messages, read receipts,
// edits and deletions, in a few chats shared by everyone.
type chatWriter struct {
	db    *gorm.DB
	r     *rand.Rand
	users []uint
	chats []uint
}

// step commits one change. Errors from races between writers (a read
// receipt for a message another writer just deleted) are the application's
// and are ignored: the commit did not happen.
func (w *chatWriter) step() bool {
	chat := w.chats[w.r.IntN(len(w.chats))]
	user := w.users[w.r.IntN(len(w.users))]
	var ids []uint
	if err := w.db.Model(&Message{}).Where("chat_id = ?", chat).Order("id desc").Limit(6).Pluck("id", &ids).Error; err != nil {
		return false
	}
	switch p := w.r.IntN(100); {
	case p < 40 || len(ids) == 0:
		return w.db.Create(&Message{ChatID: chat, SenderID: user, Text: fmt.Sprintf("m%d", w.r.IntN(1e6))}).Error == nil
	case p < 68:
		return w.db.Model(&Message{ID: ids[w.r.IntN(len(ids))]}).Association("Readers").Append(&User{ID: user}) == nil
	case p < 80:
		return w.db.Model(&Message{ID: ids[w.r.IntN(len(ids))]}).Update("text", fmt.Sprintf("e%d", w.r.IntN(1e6))).Error == nil
	default:
		id := ids[len(ids)-1]
		return w.db.Transaction(func(tx *gorm.DB) error {
			if err := tx.Model(&Message{ID: id}).Association("Readers").Clear(); err != nil {
				return err
			}
			return tx.Delete(&Message{}, id).Error
		}) == nil
	}
}

type outageRun struct {
	t        *testing.T
	seed     uint64
	base     *gorm.DB
	c        *testCluster
	srv      *redisServer
	users    []uint
	chats    []uint
	watchers []*watcher
	on       map[*watcher]int
	p        *progress
	wg       [2]sync.WaitGroup
	down     [2]atomic.Bool
	commits  [2]int
	mu       sync.Mutex
}

// convergeWithin bounds the wait for clients to converge, so that a lost
// delta fails the test instead of hanging it.
const convergeWithin = 20 * time.Second

// writePace is the interval between two commits of one writer.
const writePace = 15 * time.Millisecond

func newOutageRun(t *testing.T) *outageRun {
	o := &outageRun{t: t, seed: seed(t), srv: startRedis(t), on: map[*watcher]int{}, p: newProgress()}
	o.base = openPostgres(t)
	migrate(t, o.base)
	for i := 0; i < 3; i++ {
		u := User{Name: "user" + strconv.Itoa(i)}
		if err := o.base.Create(&u).Error; err != nil {
			t.Fatal(err)
		}
		o.users = append(o.users, u.ID)
	}
	for i := 0; i < 3; i++ {
		c := Chat{Title: "chat" + strconv.Itoa(i)}
		for _, u := range o.users[:2+i%2] { // private chats and a group
			c.Members = append(c.Members, User{ID: u})
		}
		if err := o.base.Omit("Members.*").Create(&c).Error; err != nil {
			t.Fatal(err)
		}
		o.chats = append(o.chats, c.ID)
	}
	o.c = newTestCluster(t, o.base, o.srv.addr, 2)
	// Chat i is subscribed to on node i first: each node owns one stream
	// and follows the other. The third chat is cold until the outage.
	for i, chat := range o.chats[:2] {
		for k := range o.c.nodes {
			node := (i + k) % 2
			for _, u := range o.users {
				o.join(node, chat, u)
			}
		}
	}
	return o
}

func (o *outageRun) join(node int, chat, user uint) *watcher {
	wt := &watcher{name: fmt.Sprintf("chat%d(u%d)@node%d", chat, user, node), channel: "ChatChannel",
		params: ChatParams{ChatID: chat}, user: rx.User{ID: strconv.Itoa(int(user))}, chatID: chat}
	wt.start(o.t, o.c.nodes[node].hub, false)
	o.watchers = append(o.watchers, wt)
	o.on[wt] = node
	return wt
}

// joinCold subscribes to the third chat, cold so far, on both nodes.
func (o *outageRun) joinCold() {
	for node := range o.c.nodes {
		for _, u := range o.users[:2] {
			o.join(node, o.chats[2], u)
		}
	}
}

// write starts n writers on node i; they commit until halt.
func (o *outageRun) write(i, n int) {
	for k := 0; k < n; k++ {
		w := &chatWriter{db: o.c.nodes[i].db, r: rand.New(rand.NewPCG(o.seed, uint64(100*i+k))), users: o.users, chats: o.chats}
		o.wg[i].Add(1)
		go func() {
			defer o.wg[i].Done()
			// Paced as people chat, so that the nodes keep up: the test
			// is about outages, not overload.
			tick := time.NewTicker(writePace)
			defer tick.Stop()
			for !o.p.stopped() && !o.down[i].Load() {
				<-tick.C
				if w.step() {
					o.mu.Lock()
					o.commits[i]++
					o.mu.Unlock()
				}
				o.p.add()
			}
		}()
	}
}

// halt stops every writer.
func (o *outageRun) halt() {
	o.p.halt()
	o.wg[0].Wait()
	o.wg[1].Wait()
}

// check waits until every watcher equals the database, then resumes each
// one with its versions on the other live node and checks again, and
// checks fresh subscriptions on every live node.
func (o *outageRun) check(live []int) {
	t := o.t
	ref := reopen(t, o.base)
	o.diagnose(ref)
	waitConverged(t, ref, o.watchers, convergeWithin)
	if t.Failed() {
		return
	}
	for _, wt := range o.watchers {
		to := live[0]
		for _, n := range live {
			if n != o.on[wt] {
				to = n
			}
		}
		wt.stop()
		wt.start(t, o.c.nodes[to].hub, true)
		o.on[wt] = to
	}
	waitConverged(t, ref, o.watchers, convergeWithin)
	var fresh []*watcher
	for _, n := range live {
		for _, chat := range o.chats {
			wt := &watcher{name: fmt.Sprintf("fresh chat%d@node%d", chat, n), channel: "ChatChannel",
				params: ChatParams{ChatID: chat}, user: rx.User{ID: strconv.Itoa(int(o.users[0]))}, chatID: chat}
			wt.start(t, o.c.nodes[n].hub, false)
			fresh = append(fresh, wt)
		}
	}
	waitConverged(t, ref, fresh, convergeWithin)
	for _, wt := range append(o.watchers, fresh...) {
		wt.stop()
	}
	t.Logf("commits: node0 %d, node1 %d", o.commits[0], o.commits[1])
}

// diagnose logs, for a watcher that does not converge, each node's view
// of its stream (the version the engine holds, the store's, the role, the
// lease's holder, the broker's state) and whether fresh subscriptions on
// each node are right: a wrong store, or lost deltas.
func (o *outageRun) diagnose(ref *gorm.DB) {
	deadline := time.Now().Add(convergeWithin)
	for _, wt := range o.watchers {
		for {
			wt.mu.Lock()
			got, _ := wt.state.JSON()
			wt.mu.Unlock()
			if sameJSON(o.t, got, oracle(o.t, ref, wt)) {
				break
			}
			if time.Now().After(deadline) {
				o.views(wt)
				for i, n := range o.c.nodes {
					f := &watcher{name: "probe", channel: wt.channel, params: wt.params, user: wt.user, chatID: wt.chatID}
					f.start(o.t, n.hub, false)
					n.hub.Wait(context.Background())
					time.Sleep(200 * time.Millisecond)
					f.mu.Lock()
					fj, _ := f.state.JSON()
					f.mu.Unlock()
					o.t.Logf("%s wrong; fresh subscription on node%d right: %v", wt.name, i, sameJSON(o.t, fj, oracle(o.t, ref, wt)))
					f.stop()
				}
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// views logs each node's view of wt's stream, and the versions wt holds.
func (o *outageRun) views(wt *watcher) {
	wt.mu.Lock()
	held := wt.state.Versions()
	wt.mu.Unlock()
	o.t.Logf("%s (on node%d) holds versions %v", wt.name, o.on[wt], held)
	anchor := strconv.Itoa(int(wt.chatID))
	for i, n := range o.c.nodes {
		v := rx.ViewStream(n.hub, wt.channel, anchor)
		holder := "?"
		if hs, err := n.broker.Holders(context.Background(), []string{v.Lease}); err == nil {
			holder = hs[0]
		}
		o.t.Logf("node%d: hot %v owned %v parked %v subscribers %d; engine version %d, store version %d (%v); lease holder %q; broker down %v; outbox %+v",
			i, v.Hot, v.Owned, v.Parked, v.Subs, v.Version, v.Store, v.StoreErr, holder, rx.BrokerDown(n.broker), n.hub.BrokerStats())
	}
}

// TestClusterRedisOutageConcurrentWrites: Redis stops and starts again
// (empty) while writers on both nodes commit to the streams each node owns
// and follows.
func TestClusterRedisOutageConcurrentWrites(t *testing.T) {
	o := newOutageRun(t)
	o.write(0, 2)
	o.write(1, 2)
	o.p.waitMore(20)
	o.srv.stop()
	o.p.waitMore(50)
	o.joinCold()
	o.p.waitMore(50)
	o.srv.start(t)
	o.p.waitMore(200)
	o.halt()
	o.check([]int{0, 1})
}

// TestClusterRedisOutageOwnerDies: as above, and the node owning the first
// chat dies during the outage; its clients resume on the other node, and a
// new process takes its place once Redis is back.
func TestClusterRedisOutageOwnerDies(t *testing.T) {
	o := newOutageRun(t)
	o.write(0, 2)
	o.write(1, 2)
	o.p.waitMore(20)
	o.srv.stop()
	o.p.waitMore(15)
	o.joinCold()
	o.p.waitMore(15)
	// Node 0 dies: its writers stop with it.
	o.down[0].Store(true)
	o.wg[0].Wait()
	o.c.nodes[0].kill()
	for _, wt := range o.watchers {
		if o.on[wt] == 0 {
			<-wt.done // the hub ended the subscription
			wt.sub = nil
			wt.start(t, o.c.nodes[1].hub, true)
			o.on[wt] = 1
		}
	}
	o.p.waitMore(30)
	o.srv.start(t)
	o.c.start(t, 0)
	o.down[0].Store(false)
	o.write(0, 1)
	o.p.waitMore(60)
	o.halt()
	o.check([]int{0, 1})
}
