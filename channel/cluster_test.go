package channel_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rxgorm/rxgorm/cache"
	"github.com/rxgorm/rxgorm/cache/mongotest"
	"github.com/rxgorm/rxgorm/channel"
	"github.com/rxgorm/rxgorm/rx"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Two servers behind a load balancer, as WebSocket clients see them: one
// SQLite file, one MongoDB database (FerretDB) and Redis shared. A client
// of the server that dies resumes on the other from its last version.
func TestClusterWebSocketFailover(t *testing.T) {
	base := openSQLite(t)
	if err := base.AutoMigrate(&User{}, &Room{}, &Post{}, &Note{}); err != nil {
		t.Fatal(err)
	}
	uri := mongotest.Start(t)
	mdb := fmt.Sprintf("rxws_%d", time.Now().UnixNano())
	prefix := fmt.Sprintf("rxws:%d:", time.Now().UnixNano())
	var rcs []*redis.Client
	node := func(tokens map[string]string) *env {
		client, err := mongo.Connect(options.Client().ApplyURI(uri).SetTimeout(5 * time.Second))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { client.Disconnect(context.Background()) })
		store, err := cache.NewMongo(context.Background(), client.Database(mdb), cache.MongoOptions{})
		if err != nil {
			t.Fatal(err)
		}
		rc := redis.NewClient(&redis.Options{Addr: redisAddr(), MaxRetries: -1, DialTimeout: 500 * time.Millisecond})
		rcs = append(rcs, rc)
		b := rx.NewRedisBroker(rc, rx.RedisOptions{Prefix: prefix})
		t.Cleanup(func() { b.Close(); rc.Close() })
		db, err := gorm.Open(base.Dialector, &gorm.Config{Logger: logger.Discard})
		if err != nil {
			t.Fatal(err)
		}
		return startEnv(t, db, rx.Config{Store: store, Broker: b, LeaseTTL: time.Second}, channel.Options{}, tokens)
	}
	auth, err := channel.NewTokenAuth(base)
	if err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{}
	for _, name := range []string{"ann", "bob"} {
		u := User{Name: name}
		base.Create(&u)
		if tokens[fmt.Sprint(u.ID)], err = auth.Create(context.Background(), fmt.Sprint(u.ID)); err != nil {
			t.Fatal(err)
		}
	}
	n0 := node(tokens)
	n1 := node(tokens)
	n0.db.Create(&Room{Name: "lobby", Public: true})

	sub := func(c *client, since string) map[string]any {
		c.send(`{"type":"sub","id":"r","channel":"RoomChannel","params":{"roomId":1}%s}`, since)
		first := c.expect("snapshot")
		for m := first; m["more"] == true; m = c.expect("snapshot") {
		}
		c.expect("runtime")
		c.expect("done")
		return first
	}
	c0 := n0.login("1") // node 0 loads the room: it owns the stream
	sub(c0, "")
	c1 := n1.login("2") // node 1 follows it
	sub(c1, "")

	// A post made through an action on node 1 reaches both clients with
	// the same version; so does a write on node 0.
	c1.send(`{"type":"call","id":1,"sub":"r","action":"post","args":["from node 1"]}`)
	d0, d1 := c0.expect("delta"), nextOf(c1, "delta")
	if d0["version"] != d1["version"] || len(instances(d0)) == 0 {
		t.Fatalf("deltas differ across nodes:\n%v\n%v", d0, d1)
	}
	n0.db.Create(&Post{RoomID: 1, AuthorID: 1, Text: "from node 0"})
	d0, d1 = c0.expect("delta"), c1.expect("delta")
	if d0["version"] != d1["version"] {
		t.Fatalf("deltas differ across nodes:\n%v\n%v", d0, d1)
	}
	last := int64(d0["version"].(float64))

	// Node 0 dies: Redis connection first, so it releases nothing.
	rcs[0].Close()
	n0.srv.Shutdown(context.Background())
	n0.hub.Close()
	c0.waitClose()
	// Writes go on through node 1 meanwhile.
	for i := 0; i < 3; i++ {
		n1.db.Create(&Post{RoomID: 1, AuthorID: 2, Text: fmt.Sprint("while down ", i)})
	}
	// Node 0's client comes back on node 1, resuming from its version. It
	// gets the three posts exactly once, in the resume or in the deltas
	// that follow once node 1 took the stream over (the dead node's lease
	// runs out): no snapshot, nothing lost, nothing twice.
	c0b := n1.login("1")
	first := sub(c0b, fmt.Sprintf(`,"since":{"1":%d}`, last))
	if first["reset"] != false {
		t.Fatalf("resume on node 1 sent a full snapshot: %v", first)
	}
	seen := map[string]int{}
	count := func(m map[string]any) {
		for _, in := range instances(m) {
			if f, ok := in["fields"].(map[string]any); ok && f["text"] != nil {
				seen[fmt.Sprint(f["text"])]++
			}
		}
	}
	count(first)
	deadline := time.Now().Add(15 * time.Second)
	for len(seen) < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("after the resume, posts seen: %v", seen)
		}
		if m := c0b.next(); m["type"] == "delta" {
			count(m)
		}
	}
	for i := 0; i < 3; i++ {
		if k := fmt.Sprint("while down ", i); seen[k] != 1 {
			t.Fatalf("post %q seen %d times: %v", k, seen[k], seen)
		}
	}
	// Later writes reach both clients.
	n1.db.Create(&Post{RoomID: 1, AuthorID: 2, Text: "after takeover"})
	for _, c := range []*client{c1, c0b} {
		for m := c.next(); !containsText(m, "after takeover"); m = c.next() {
		}
	}
}

// nextOf skips frames of other types (an action's result) until one of typ.
func nextOf(c *client, typ string) map[string]any {
	for {
		if m := c.next(); m["type"] == typ {
			return m
		}
	}
}

func containsText(m map[string]any, text string) bool {
	for _, in := range instances(m) {
		if f, ok := in["fields"].(map[string]any); ok && f["text"] == text {
			return true
		}
	}
	return false
}

// redisAddr is the Redis server of this machine kind (make test starts it).
func redisAddr() string {
	if a := os.Getenv("RXGORM_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}
