package channel_test

import (
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/redis/go-redis/v9"
	"github.com/rxgorm/rxgorm/channel"
	"github.com/rxgorm/rxgorm/rx"
	"github.com/rxgorm/rxgorm/rx/rxtest"
)

// Two nodes (a Hub and a Server each) on one database and one Redis: a
// client on one sees who is connected through the other, joins and
// leaves, and a client that vanished from the other node leaves after the
// keepalive window (two ping intervals: generous, as a loaded machine
// must not drop the clients that do answer).
func TestPresenceAcrossServers(t *testing.T) {
	dsn := rxtest.SQLiteDSN(filepath.Join(t.TempDir(), "nodes.db"))
	prefix := fmt.Sprintf("rxtest:channel-presence:%d:", time.Now().UnixNano())
	tokens := map[string]string{}
	var nodes []*env
	for i := 0; i < 2; i++ {
		db := relOpenSQLite(t, dsn)
		auth, err := channel.NewTokenAuth(db)
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			if err := db.AutoMigrate(&User{}, &Room{}, &Post{}, &Note{}); err != nil {
				t.Fatal(err)
			}
			db.Create(&Room{Name: "one", Public: true})
			for _, u := range []string{"1", "2", "3"} {
				if tokens[u], err = auth.Create(context.Background(), u); err != nil {
					t.Fatal(err)
				}
			}
		}
		rc := redis.NewClient(&redis.Options{Addr: redisAddr()})
		if err := rc.Ping(context.Background()).Err(); err != nil {
			t.Fatalf("redis at %s (set RXGORM_REDIS_ADDR): %v", redisAddr(), err)
		}
		broker := rx.NewRedisBroker(rc, rx.RedisOptions{Prefix: prefix})
		hub, err := rx.New(db, rx.Config{Broker: broker, PresenceHeartbeat: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		if err := hub.Register(&wrRoom{}); err != nil {
			t.Fatal(err)
		}
		srv := channel.NewServer(hub, channel.Options{Auth: auth, PingInterval: 500 * time.Millisecond})
		ts := httptest.NewServer(srv)
		t.Cleanup(func() {
			srv.Shutdown(context.Background())
			ts.Close()
			hub.Close()
			broker.Close()
			rc.Close()
		})
		nodes = append(nodes, &env{t: t, db: db, hub: hub, srv: srv, http: ts, url: "ws" + strings.TrimPrefix(ts.URL, "http"), tokens: tokens})
	}

	// waitPresenceFrame skips the snapshots, which may come before or
	// after the first presence frame.
	ann := nodes[0].login("1")
	ann.send(`{"type":"sub","id":"s1","channel":"WrRoom","params":{"roomId":1}}`)
	waitPresenceFrame(t, ann, "1×1")
	bob := nodes[1].login("2")
	bob.send(`{"type":"sub","id":"s1","channel":"WrRoom","params":{"roomId":1}}`)
	waitPresenceFrame(t, ann, "1×1 2×1")
	waitPresenceFrame(t, bob, "1×1 2×1")

	bob.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	waitPresenceFrame(t, ann, "1×1")

	// cyd subscribes on node 1, then answers nothing: no pongs.
	conn, _, err := websocket.DefaultDialer.Dial(nodes[1].url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"type":"hello","v":1,"token":%q}`, tokens["3"]))
	conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"sub","id":"c","channel":"WrRoom","params":{"roomId":1}}`))
	waitPresenceFrame(t, ann, "1×1 3×1")
	waitPresenceFrame(t, ann, "1×1")
}
