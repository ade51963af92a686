package rx_test

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rxgorm/rxgorm/cache"
	"github.com/rxgorm/rxgorm/cache/mongotest"
	"github.com/rxgorm/rxgorm/rx"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"gorm.io/gorm"
)

// In a cluster, a node re-checks its own subscribers of a stream another
// node owns before it delivers a delta of a commit after the revoking one:
// here the revocation changes only a field the state does not send, so no
// delta carries it and the owner's mark is what tells the follower.
func TestReauthCluster(t *testing.T) {
	base := openSQLite(t)
	newHallEnv(t, base) // migrates and seeds; its hub is a third, idle node
	uri := mongotest.Start(t)
	dbName := fmt.Sprintf("rxreauth_%d_%d", time.Now().UnixNano()%1e9, mongoDBs.Add(1))
	prefix := fmt.Sprintf("rxreauth:%d:", time.Now().UnixNano())
	var hubs []*rx.Hub
	var dbs []*gorm.DB
	for i := 0; i < 2; i++ {
		client, err := mongo.Connect(options.Client().ApplyURI(uri).SetServerSelectionTimeout(2 * time.Second).SetTimeout(5 * time.Second))
		must(t, err)
		t.Cleanup(func() { client.Disconnect(context.Background()) })
		store, err := cache.NewMongo(context.Background(), client.Database(dbName), cache.MongoOptions{})
		must(t, err)
		rc := redis.NewClient(&redis.Options{Addr: redisAddr(), DialTimeout: 500 * time.Millisecond, MaxRetries: -1})
		b := rx.NewRedisBroker(rc, rx.RedisOptions{Prefix: prefix})
		db := reopen(t, base)
		h, err := rx.New(db, rx.Config{Store: store, Broker: b, NodeID: fmt.Sprint("node", i), LeaseTTL: time.Second})
		must(t, err)
		t.Cleanup(func() { h.Close(); b.Close(); rc.Close() })
		must(t, h.Register(&HallChannel{db: db, calls: &atomic.Int64{}}))
		hubs = append(hubs, h)
		dbs = append(dbs, db)
	}
	ctx := context.Background()
	subscribe := func(h *rx.Hub, user string) *rx.Subscription {
		sub, err := h.Subscribe(ctx, "HallChannel", HallParams{HallID: 1}, rx.User{ID: user}, rx.SubscribeOptions{})
		must(t, err)
		t.Cleanup(sub.Close)
		next(t, sub)
		return sub
	}
	alice := subscribe(hubs[0], "1") // node0 owns the stream
	bob := subscribe(hubs[1], "2")   // node1 follows it
	owner := dbs[0]
	must(t, owner.Create(&HallPost{HallID: 1, Text: "before"}).Error)
	until(t, bob, "before")

	must(t, owner.Model(&HallSeat{}).Where("hall_id = ? AND user_id = ?", 1, 2).Update("role", "banned").Error)
	must(t, owner.Create(&HallPost{HallID: 1, Text: "after"}).Error)
	assertForbidden(t, ended(t, bob, "after"))
	until(t, alice, "after")
}
