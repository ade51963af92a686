package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/rx"
)

// Client writes and presence.

// writableBoard is BoardChannel with client saves of a card's n allowed,
// and presence tracked.
type writableBoard struct {
	rx.Channel[Board, BoardParams]
}

func (writableBoard) ChannelName() string { return "WritableBoard" }

func (writableBoard) Authorize(context.Context, rx.User, BoardParams) error { return nil }

func (writableBoard) TrackPresence() rx.PresenceOptions { return rx.PresenceOptions{} }

func (*writableBoard) Writable() []rx.Writable {
	return []rx.Writable{rx.Writes[Card]{Fields: []string{"n"}, Save: true, Allow: func(context.Context, rx.Write[Card]) error { return nil }}}
}

// BenchmarkClientWrite is one client save of a card's n through
// Subscription.Write, the path of a save frame: the checks, the state
// lookup on the engine, the transaction (SELECT … FOR UPDATE, the hook,
// UPDATE), and the wait until the delta was handed to the subscriber.
// Compare with UpdateWithPluginDeliveredEach: a direct update, then Wait.
func BenchmarkClientWrite(b *testing.B) {
	db := openDB(b, "write.db")
	board := seed(b, db, updateTree)
	row := updateRow(board)
	h := newHub(b, db, rx.Config{SubscriptionBuffer: 1 << 16})
	if err := h.Register(&writableBoard{}); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	sub, err := h.Subscribe(ctx, "WritableBoard", BoardParams{BoardID: board.ID}, rx.User{ID: "1"}, rx.SubscribeOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Close()
	var deltas atomic.Int64
	go func() {
		for ev := range sub.Events() {
			if len(ev.Instances) > 0 {
				deltas.Add(1)
			}
		}
	}()
	id := strconv.FormatUint(uint64(row.ID), 10)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for i := 0; i < b.N; i++ {
		req := rx.WriteRequest{Op: rx.OpSave, Layer: "Card", Row: id, Fields: map[string]json.RawMessage{"n": json.RawMessage(strconv.Itoa(i + 1))}}
		if _, err := sub.Write(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	cpu.report(b)
	var got Card
	db.First(&got, row.ID)
	if got.N != b.N {
		b.Fatalf("card holds n=%d, want %d", got.N, b.N)
	}
}

// BenchmarkPresenceChange: N users hold one stream of a channel that
// tracks presence; one op is one more user subscribing and leaving (a join
// and a leave), until every one of the N subscriptions received both
// presence lists (each of N+1 entries at most).
func BenchmarkPresenceChange(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("present=%d", n), func(b *testing.B) {
			db := openDB(b, "presence.db")
			board := seed(b, db, Tree{Lists: 1, CardsPerList: 1})
			h := newHub(b, db, rx.Config{SubscriptionBuffer: 1 << 16})
			if err := h.Register(&writableBoard{}); err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			var lists atomic.Int64
			for u := 1; u <= n; u++ {
				sub, err := h.Subscribe(ctx, "WritableBoard", BoardParams{BoardID: board.ID}, rx.User{ID: strconv.Itoa(u)}, rx.SubscribeOptions{Deliver: func(ev *rx.Event) bool {
					if ev.Presence != nil {
						lists.Add(1)
					}
					return true
				}})
				if err != nil {
					b.Fatal(err)
				}
				defer sub.Close()
			}
			waitCount := func(want int64) {
				deadline := time.Now().Add(time.Minute)
				for lists.Load() < want {
					if time.Now().After(deadline) {
						b.Fatalf("%d presence lists delivered, want %d", lists.Load(), want)
					}
					time.Sleep(50 * time.Microsecond)
				}
			}
			// Joining one by one sent 1 + 2 + … + n lists.
			waitCount(int64(n) * int64(n+1) / 2)
			base := lists.Load()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				sub, err := h.Subscribe(ctx, "WritableBoard", BoardParams{BoardID: board.ID}, rx.User{ID: "visitor"}, rx.SubscribeOptions{Deliver: func(*rx.Event) bool { return true }})
				if err != nil {
					b.Fatal(err)
				}
				sub.Close()
				waitCount(base + int64(2*n*(i+1)))
			}
			b.StopTimer()
			b.ReportMetric(float64(2*n), "lists/op")
		})
	}
}
