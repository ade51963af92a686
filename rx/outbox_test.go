package rx_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/rx"
)

// A hung Redis (a private redis-server stopped with SIGSTOP: connections
// stay open, nothing answers) neither grows the queue of messages for the
// other nodes past Config.BrokerQueue nor stalls Wait: Wait fails at once
// with overloaded (ErrBrokerDown), BrokerStats shows the queue, the drops
// and the outage, and local subscribers keep getting every delta. Once
// Redis answers again the queue drains and Wait succeeds (issue 17, item
// 6). Before, the queue grew with every commit and Wait waited for each
// message's 2 s publish timeout in turn.
func TestBrokerQueueHungRedis(t *testing.T) {
	srv := startRedis(t)
	db := openSQLite(t)
	migrate(t, db)
	db.Create(&Chat{Title: "x"})
	const limit = 20
	prefix := fmt.Sprintf("rxq:%d:", time.Now().UnixNano())
	h, err := rx.New(db, rx.Config{Broker: redisBroker(t, srv.addr, prefix), BrokerQueue: limit})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if err := h.Register(&ChatChannel{}, &ChatList{}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	sub, err := h.Subscribe(ctx, "ChatChannel", ChatParams{ChatID: 1}, rx.User{ID: "1"}, rx.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	next(t, sub)
	if err := h.Wait(ctx); err != nil {
		t.Fatal(err)
	}

	pid := srv.cmd.Process.Pid
	if err := syscall.Kill(pid, syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			resumed = true
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil {
				t.Error(err)
			}
		}
	}
	t.Cleanup(resume)
	const commits = 5 * limit
	for i := 0; i < commits; i++ {
		if err := db.Create(&Message{ChatID: 1, SenderID: 1, Text: fmt.Sprint("hung ", i)}).Error; err != nil {
			t.Fatal(err)
		}
	}
	// Every delta reaches the local subscriber.
	for got := 0; got < commits; {
		ev := next(t, sub)
		got += strings.Count(dump(ev), `"hung `)
	}
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	err = h.Wait(wctx)
	if !errors.Is(err, rx.ErrOverloaded) || !errors.Is(err, rx.ErrBrokerDown) {
		t.Fatalf("Wait with Redis hung: want overloaded (ErrBrokerDown), got %v", err)
	}
	st := h.BrokerStats()
	t.Logf("with Redis hung, after %d commits: %+v", commits, st)
	if st.Limit != limit || st.Queued > 2*limit || st.Dropped == 0 || !st.Down {
		t.Fatalf("want a bounded queue (≤ %d per queue) with drops while Redis hangs, got %+v", limit, st)
	}

	resume()
	relEventually(t, func() bool { return h.Wait(ctx) == nil })
	if st := h.BrokerStats(); st.Queued != 0 || st.Down {
		t.Fatalf("after Redis answered again: %+v", st)
	}
	if err := db.Create(&Message{ChatID: 1, SenderID: 1, Text: "after"}).Error; err != nil {
		t.Fatal(err)
	}
	if err := h.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if ev := next(t, sub); !strings.Contains(dump(ev), `"after"`) {
		t.Fatalf("want the delta of the write after the outage, got %s", dump(ev))
	}
}
