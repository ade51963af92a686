package rx_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rxgorm/rxgorm/rx"
	"gorm.io/gorm"
)

// prChat tracks presence in its streams and groups, and records what its
// OnPresence hook hears.
type prChat struct {
	rx.Channel[Chat, ChatParams]
	Log   *eventLog
	Watch string // a group place to watch at connect
}

func (prChat) Authorize(context.Context, rx.User, ChatParams) error { return nil }

func (prChat) TrackPresence() rx.PresenceOptions { return rx.PresenceOptions{Groups: true} }

func (c *prChat) OnConnect(ctx context.Context) error {
	c.Join("lobby")
	c.Join("user:" + c.User().ID)
	if c.Watch != "" {
		c.Channel.Watch(rx.GroupPlace(c.Watch))
	}
	return nil
}

func (c *prChat) OnPresence(ctx context.Context, ev rx.PresenceEvent) {
	verb := "left"
	if ev.Joined {
		verb = "joined"
	}
	c.Log.add(fmt.Sprintf("%s: %s %s %s", c.User().ID, ev.User, verb, ev.Place))
}

// prQuiet tracks nothing.
type prQuiet struct{ rx.Channel[Chat, ChatParams] }

func (prQuiet) Authorize(context.Context, rx.User, ChatParams) error { return nil }

func (c *prQuiet) OnConnect(ctx context.Context) error {
	c.Join("lobby")
	return nil
}

func prHub(t *testing.T, db *gorm.DB, cfg rx.Config, log *eventLog) *rx.Hub {
	t.Helper()
	h, err := rx.New(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if err := h.Register(&prChat{Log: log}, &prQuiet{}); err != nil {
		t.Fatal(err)
	}
	return h
}

func prSub(t *testing.T, h *rx.Hub, channel, user string) *rx.Subscription {
	t.Helper()
	sub, err := h.Subscribe(context.Background(), channel, ChatParams{ChatID: 1}, rx.User{ID: user}, rx.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	return sub
}

// presenceOf waits for a presence event of sub whose list reads want
// ("user×connections" joined by spaces) and fails on anything else than
// snapshots, deltas and presence.
func presenceOf(t *testing.T, sub *rx.Subscription, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	last := "(none)"
	for {
		select {
		case ev, ok := <-sub.Events():
			if !ok {
				t.Fatalf("subscription ended: %v", sub.Err())
			}
			if ev.Presence == nil {
				continue
			}
			if ev.Anchor != "" || len(ev.Instances) > 0 || ev.Presence.Anchor != "1" {
				t.Fatalf("presence event carries more: %+v", ev)
			}
			last = presenceString(ev.Presence.Users)
			if last == want {
				return
			}
		case <-deadline:
			t.Fatalf("presence never became %q; last %q", want, last)
		}
	}
}

func presenceString(ps []rx.Present) string {
	var parts []string
	for _, p := range ps {
		parts = append(parts, fmt.Sprintf("%s×%d", p.User, p.Connections))
	}
	return strings.Join(parts, " ")
}

// waitPresence waits until h counts place as want.
func waitPresence(t *testing.T, h *rx.Hub, place rx.Place, want string) {
	t.Helper()
	waitFor(t, func() bool { return presenceString(h.Presence(place)) == want })
}

// waitLog waits until the log holds every line of want.
func waitLog(t *testing.T, log *eventLog, want ...string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		all := log.all()
		missing := ""
		for _, w := range want {
			if !slices.Contains(all, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("log lacks %q:\n%s", missing, strings.Join(all, "\n"))
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// One node: subscribers of a tracking channel are counted per user in the
// stream and in the groups they join, receive the stream's list, and hear
// joins and leaves; a channel that does not track is not counted.
func TestPresenceOneNode(t *testing.T) {
	db := openSQLite(t)
	migrate(t, db)
	db.Create(&Chat{Title: "x"})
	log := &eventLog{}
	h := prHub(t, db, rx.Config{}, log)
	stream := rx.StreamPlace("prChat", 1)

	a := prSub(t, h, "prChat", "7")
	presenceOf(t, a, "7×1")
	b := prSub(t, h, "prChat", "9")
	presenceOf(t, a, "7×1 9×1")
	presenceOf(t, b, "7×1 9×1")
	b2 := prSub(t, h, "prChat", "9")
	presenceOf(t, a, "7×1 9×2")
	prSub(t, h, "prQuiet", "5") // not tracked
	waitPresence(t, h, stream, "7×1 9×2")
	waitPresence(t, h, rx.GroupPlace("lobby"), "7×1 9×2")
	waitLog(t, log,
		"7: 7 joined stream:prChat/1", "7: 9 joined stream:prChat/1", "7: 9 joined group:lobby",
		"9: 7 joined stream:prChat/1", // replayed when 9 arrived
	)

	b2.Close()
	presenceOf(t, a, "7×1 9×1")
	b.Close()
	presenceOf(t, a, "7×1")
	waitLog(t, log, "7: 9 left stream:prChat/1", "7: 9 left group:lobby")
	if n := strings.Count(strings.Join(log.all(), "\n"), "7: 9 left stream"); n != 1 {
		t.Fatalf("9 left %d times (one connection of two does not leave)", n)
	}
	a.Close()
	waitPresence(t, h, stream, "")
	waitPresence(t, h, rx.GroupPlace("lobby"), "")
}

// Two nodes on one database and one Redis: each counts the other's users,
// sees them leave, and drops the users of a node that vanished (its broker
// gone without a goodbye) once the presence timeout has passed.
func TestPresenceAcrossNodes(t *testing.T) {
	db := openSQLite(t)
	migrate(t, db)
	db.Create(&Chat{Title: "x"})
	prefix := fmt.Sprintf("rxtest:presence:%d:", time.Now().UnixNano())
	cfg := func(b rx.Broker) rx.Config {
		return rx.Config{Broker: b, PresenceHeartbeat: 50 * time.Millisecond, PresenceTimeout: 300 * time.Millisecond}
	}
	// Node A's Redis client is the test's, to cut it off later.
	clientA := redis.NewClient(&redis.Options{Addr: redisAddr(), MaxRetries: -1})
	brokerA := rx.NewRedisBroker(clientA, rx.RedisOptions{Prefix: prefix})
	logA, logB := &eventLog{}, &eventLog{}
	nodeA := prHub(t, reopen(t, db), cfg(brokerA), logA)
	nodeB := prHub(t, reopen(t, db), cfg(redisBroker(t, redisAddr(), prefix)), logB)
	stream := rx.StreamPlace("prChat", 1)

	a := prSub(t, nodeA, "prChat", "7")
	presenceOf(t, a, "7×1")
	waitPresence(t, nodeB, stream, "7×1")
	b := prSub(t, nodeB, "prChat", "9")
	presenceOf(t, a, "7×1 9×1")
	presenceOf(t, b, "7×1 9×1")
	waitLog(t, logA, "7: 9 joined stream:prChat/1")
	waitLog(t, logB, "9: 7 joined stream:prChat/1")

	// A user connected to both nodes counts twice, and leaves only when
	// both connections are gone.
	a9 := prSub(t, nodeA, "prChat", "9")
	presenceOf(t, b, "7×1 9×2")
	a9.Close()
	presenceOf(t, b, "7×1 9×1")
	b.Close()
	waitPresence(t, nodeA, stream, "7×1")
	waitLog(t, logA, "7: 9 left stream:prChat/1")

	// A node joining later learns the others' tables at once.
	logC := &eventLog{}
	nodeC := prHub(t, reopen(t, db), cfg(redisBroker(t, redisAddr(), prefix)), logC)
	waitPresence(t, nodeC, stream, "7×1")

	// Node A vanishes: its broker is gone, no goodbye reaches anyone. The
	// others drop its users after PresenceTimeout without a heartbeat.
	b = prSub(t, nodeB, "prChat", "9")
	presenceOf(t, b, "7×1 9×1")
	brokerA.Close()
	clientA.Close()
	presenceOf(t, b, "9×1")
	waitLog(t, logB, "9: 7 left stream:prChat/1")
	waitPresence(t, nodeC, stream, "9×1")
}

// Watch: a subscription hears of a place it is not in, starting with who
// is there already.
func TestPresenceWatch(t *testing.T) {
	db := openSQLite(t)
	migrate(t, db)
	db.Create(&Chat{Title: "x"})
	log := &eventLog{}
	h, err := rx.New(db, rx.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if err := h.Register(&prChat{Log: log, Watch: "user:2"}); err != nil {
		t.Fatal(err)
	}
	prSub(t, h, "prChat", "1")
	two := prSub(t, h, "prChat", "2")
	waitLog(t, log, "1: 2 joined group:user:2", "2: 2 joined group:user:2")
	prSub(t, h, "prChat", "3")
	waitLog(t, log, "3: 2 joined group:user:2") // replayed
	two.Close()
	waitLog(t, log, "1: 2 left group:user:2", "3: 2 left group:user:2")
	if n := strings.Count(strings.Join(log.all(), "\n"), "2: 2 joined group:user:2"); n != 1 {
		t.Fatalf("a member that also watches heard its join %d times", n)
	}
}
