package rx_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rxgorm/rxgorm/rx"
)

// redisAddr is the Redis server of this machine kind (make test starts it).
func redisAddr() string {
	if a := os.Getenv("RXGORM_REDIS_ADDR"); a != "" {
		return a
	}
	return "127.0.0.1:6379"
}

func redisBroker(t *testing.T, addr, prefix string) *rx.RedisBroker {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: 500 * time.Millisecond})
	if addr == redisAddr() {
		if err := c.Ping(context.Background()).Err(); err != nil {
			t.Fatalf("redis at %s (set RXGORM_REDIS_ADDR): %v", addr, err)
		}
	}
	b := rx.NewRedisBroker(c, rx.RedisOptions{Prefix: prefix})
	t.Cleanup(func() { b.Close(); c.Close() })
	return b
}

// Group events and system broadcasts published on one node reach the
// members and listeners of another, through Redis.
func TestRedisBrokerAcrossNodes(t *testing.T) {
	db := openSQLite(t)
	migrate(t, db)
	prefix := fmt.Sprintf("rxtest:%d:", time.Now().UnixNano())
	log := &eventLog{}
	hubs := make([]*rx.Hub, 2)
	for i := range hubs {
		h, err := rx.New(reopen(t, db), rx.Config{Broker: redisBroker(t, redisAddr(), prefix)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		if err := h.Register(&ActiveChat{DB: db, Log: log}); err != nil {
			t.Fatal(err)
		}
		hubs[i] = h
	}
	db.Create(&Chat{Title: "x"})
	ctx := context.Background()
	// A member on node 0.
	sub, err := hubs[0].Subscribe(ctx, "ActiveChat", ChatParams{ChatID: 1}, rx.User{ID: "a"}, rx.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	var mu sync.Mutex
	var got []string
	hubs[0].OnBroadcast(func(m json.RawMessage) { mu.Lock(); got = append(got, string(m)); mu.Unlock() })
	// The group's Redis subscription was confirmed before Subscribe
	// returned: no wait for it to reach Redis.
	// Published on node 1.
	if err := hubs[1].Publish(ctx, "chat-1", "two", typingEvent{Who: "remote"}); err != nil {
		t.Fatal(err)
	}
	if err := hubs[1].Broadcast(ctx, "hello nodes"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, e := range log.all() {
			if e == "two:remote@a" {
				return len(got) == 1 && got[0] == `"hello nodes"`
			}
		}
		return false
	})
}

// A Redis outage is logged once; when Redis returns, subscriptions are
// restored and recovery hooks run.
func TestRedisBrokerOutage(t *testing.T) {
	srv := startRedis(t)
	b := redisBroker(t, srv.addr, "rxtest:")
	recovered := make(chan struct{}, 1)
	b.OnRecover(func() { recovered <- struct{}{} })
	msgs := make(chan string, 10)
	ctx := context.Background()
	if _, err := b.Subscribe(ctx, "t", func(p []byte) { msgs <- string(p) }); err != nil {
		t.Fatal(err)
	}
	if err := b.Publish(ctx, "t", []byte("one")); err != nil {
		t.Fatal(err)
	}
	if m := <-msgs; m != "one" {
		t.Fatal(m)
	}
	srv.stop()
	if err := b.Publish(ctx, "t", []byte("lost")); err == nil {
		t.Fatal("publish succeeded with Redis down")
	}
	srv.start(t)
	select {
	case <-recovered:
	case <-time.After(10 * time.Second):
		t.Fatal("no recovery after Redis came back")
	}
	if err := b.Publish(ctx, "t", []byte("two")); err != nil {
		t.Fatal(err)
	}
	select {
	case m := <-msgs:
		if m != "two" {
			t.Fatalf("got %q", m)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("subscription not restored")
	}
}

// redisServer is a private redis-server on a free loopback port.
type redisServer struct {
	addr string
	port int
	cmd  *exec.Cmd
}

func startRedis(t *testing.T) *redisServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	s := &redisServer{addr: "127.0.0.1:" + strconv.Itoa(port), port: port}
	s.start(t)
	t.Cleanup(s.stop)
	return s
}

func (s *redisServer) start(t *testing.T) {
	t.Helper()
	s.cmd = exec.Command("redis-server", "--port", strconv.Itoa(s.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no")
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("redis-server: %v", err)
	}
	c := redis.NewClient(&redis.Options{Addr: s.addr})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for c.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatal("private redis-server did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *redisServer) stop() {
	if s.cmd != nil && s.cmd.Process != nil {
		s.cmd.Process.Kill()
		s.cmd.Wait()
		s.cmd = nil
	}
}
