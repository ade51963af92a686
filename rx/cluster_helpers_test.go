package rx_test

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/cache"
	"github.com/rxgorm/rxgorm/cache/mongotest"
	"github.com/rxgorm/rxgorm/rx"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"gorm.io/gorm"
)

// Setup shared by the cluster and WAL tests.

// clusterDB opens a SQLite database with the chat tables, and creates a
// user of each name (IDs from 1), then a chat of each title with one
// message, "hi", sent by user 1.
func clusterDB(t *testing.T, users, titles []string) *gorm.DB {
	t.Helper()
	base := openSQLite(t)
	migrate(t, base)
	for _, n := range users {
		if err := base.Create(&User{Name: n}).Error; err != nil {
			t.Fatal(err)
		}
	}
	for _, title := range titles {
		if err := base.Create(&Chat{Title: title, Messages: []Message{{SenderID: 1, Text: "hi"}}}).Error; err != nil {
			t.Fatal(err)
		}
	}
	return base
}

// newCluster describes a cluster on base, a fresh MongoDB database of the
// test's FerretDB and a fresh prefix on the Redis at redisAddr, both named
// after name; no node is started. The caller sets the other fields before
// starting nodes.
func newCluster(t *testing.T, base *gorm.DB, redisAddr, name string) *testCluster {
	t.Helper()
	return &testCluster{base: base, mongoURI: mongotest.Start(t),
		mongoDB: fmt.Sprintf("%s_%d_%d", name, time.Now().UnixNano()%1e9, mongoDBs.Add(1)),
		redis:   redisAddr,
		prefix:  fmt.Sprintf("%s:%d:", name, time.Now().UnixNano()),
	}
}

// openMongoStore connects to the MongoDB at uri (2 s to select a server,
// 5 s an operation), disconnecting at the test's cleanup, and opens the
// cache store on its database name.
func openMongoStore(t testing.TB, uri, name string) *cache.MongoStore {
	t.Helper()
	client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(2 * time.Second).SetTimeout(5 * time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Disconnect(context.Background()) })
	store, err := cache.NewMongo(context.Background(), client.Database(name), cache.MongoOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return store
}

// wrapNode is a testCluster.wrap that hands node n's store to set, which
// returns the store node n uses (fault injection); the other nodes keep
// theirs.
func wrapNode(n int, set func(*cache.MongoStore) cache.Store) func(int, *cache.MongoStore) cache.Store {
	return func(i int, s *cache.MongoStore) cache.Store {
		if i != n {
			return s
		}
		return set(s)
	}
}

// logNode is a testCluster.logger that collects node n's log in logs; the
// other nodes log to slog's default.
func logNode(n int, logs *nodeLog) func(int) *slog.Logger {
	return func(i int) *slog.Logger {
		if i != n {
			return slog.Default()
		}
		return slog.New(slog.NewTextHandler(logs, nil))
	}
}

// timeoutCluster starts the two nodes of the store-timeout tests, node 0
// then node 1, without reconcile: node 0's store is ts (armed by the test)
// and its log goes to logs.
func timeoutCluster(t *testing.T, base *gorm.DB) (ts *timeoutStore, logs *nodeLog, node0, node1 *clusterNode) {
	t.Helper()
	ts = &timeoutStore{}
	logs = &nodeLog{}
	c := newCluster(t, base, redisAddr(), "rxtimeout")
	c.reconcile = -1
	c.wrap = wrapNode(0, func(s *cache.MongoStore) cache.Store {
		ts.MongoStore = s
		return ts
	})
	c.logger = logNode(0, logs)
	node0 = c.start(t, 0)
	node1 = c.start(t, 1)
	return ts, logs, node0, node1
}

// watchChat1 starts a watcher of chat 1 as user 1 on the given node of c.
func watchChat1(t *testing.T, c *testCluster, node int) *watcher {
	t.Helper()
	wt := &watcher{name: fmt.Sprintf("chat1(u1)@node%d", node), channel: "ChatChannel", params: ChatParams{ChatID: 1}, user: rx.User{ID: "1"}, chatID: 1}
	wt.start(t, c.nodes[node].hub, false)
	return wt
}

// seededWriter returns a writer on base drawing from r, which has created
// the given numbers of users, then of chats.
func seededWriter(t *testing.T, base *gorm.DB, r *rand.Rand, users, chats int) *writer {
	t.Helper()
	w := &writer{db: base, r: r}
	for i := 0; i < users; i++ {
		if err := w.newUser(base); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < chats; i++ {
		if err := w.newChat(base); err != nil {
			t.Fatal(err)
		}
	}
	return w
}

// newWALSpec names a fresh slot and publication on base's schema, a fresh
// MongoDB database of the test's FerretDB and a fresh Redis prefix, for
// walNode and the WAL child; the slot and publication are dropped at
// cleanup.
func newWALSpec(t *testing.T, base *gorm.DB) walChildSpec {
	t.Helper()
	slot, pub := walNamesFor()
	spec := walChildSpec{
		Schema:   currentSchema(t, base),
		MongoURI: mongotest.Start(t),
		MongoDB:  fmt.Sprintf("rxwal_%d_%d", time.Now().UnixNano()%1e9, mongoDBs.Add(1)),
		Prefix:   fmt.Sprintf("rxwal:%d:", time.Now().UnixNano()),
		Slot:     slot,
		Pub:      pub,
	}
	t.Cleanup(func() { dropWAL(t, base, slot, pub) })
	return spec
}

// stopAtCleanup stops, at the test's cleanup, the watchers *ws holds then
// (those appended after this call too).
func stopAtCleanup(t *testing.T, ws *[]*watcher) {
	t.Cleanup(func() {
		for _, wt := range *ws {
			wt.stop()
		}
	})
}
