package main

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rxgorm/rxgorm/examples/chat/app"
)

// TestRedisFlag starts the command with -redis against the Redis at
// 127.0.0.1:6379 and checks that the broker is wired: a notice from one
// user to another reaches the other's socket, and an observer subscribed
// to the broker's Redis channels saw it go through Redis.
func TestRedisFlag(t *testing.T) {
	const url = "redis://127.0.0.1:6379/0"
	opt, err := redis.ParseURL(url)
	if err != nil {
		t.Fatal(err)
	}
	client := redis.NewClient(opt)
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := client.Ping(ctx).Err(); err != nil {
		t.Fatalf("no Redis at %s: run `bash .ci/setup` (%v)", url, err)
	}
	prefix := fmt.Sprintf("chattest-%d:", time.Now().UnixNano())
	observer := client.PSubscribe(ctx, prefix+"*")
	defer observer.Close()
	if _, err := observer.Receive(ctx); err != nil { // the subscription's confirmation
		t.Fatal(err)
	}

	base, stop := startCommand(t, config{redis: url, redisPrefix: prefix})
	defer stop()
	var alice, bob session
	post(t, base+"api/register", "", app.Registration{Username: "alice", Password: "secret-1"}, &alice)
	post(t, base+"api/register", "", app.Registration{Username: "bob", Password: "secret-2"}, &bob)
	wa, wb := dialWS(t, base, "alice", alice.Token), dialWS(t, base, "bob", bob.Token)
	wa.subscribe("home", "HomeChannel", map[string]any{"userId": alice.User.ID})
	wb.subscribe("home", "HomeChannel", map[string]any{"userId": bob.User.ID})
	wa.call("home", "inviteFriend", "bob", "over Redis")
	const text = "alice wants to be your friend"
	wb.await("notice", func(m map[string]any) bool {
		return m["type"] == "runtime" && m["key"] == "notices" && strings.Contains(fmt.Sprint(m["value"]), text)
	})
	for {
		msg, err := observer.ReceiveMessage(ctx)
		if err != nil {
			t.Fatalf("the notice never went through Redis under %s: %v", prefix, err)
		}
		if strings.HasPrefix(msg.Channel, prefix) && strings.Contains(msg.Payload, text) {
			break
		}
	}

	// A bad URL or an unreachable Redis stops the command at start.
	for _, bad := range []string{"mysql://x", "redis://127.0.0.1:1/0"} {
		err := run(ctx, config{addr: "127.0.0.1:0", data: t.TempDir(), redis: bad}, &urlWriter{ch: make(chan string, 1)})
		if err == nil || !strings.Contains(err.Error(), "redis") {
			t.Errorf("-redis %s: %v", bad, err)
		}
	}
}
