package bench

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/rxgorm/rxgorm/rx"
)

// BenchmarkFanout measures one commit delivered to N Go subscribers of one
// stream: each iteration updates one row and waits until every subscriber's
// goroutine has received the delta.
func BenchmarkFanout(b *testing.B) {
	for _, n := range []int{100, 1000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) { fanout(b, n) })
	}
}

func fanout(b *testing.B, n int) {
	db := openDB(b, "fanout.db")
	board := seed(b, db, updateTree)
	row := updateRow(board)
	h := newHub(b, db, rx.Config{})
	var remaining atomic.Int64
	done := make(chan struct{}, 1)
	subs := make([]*rx.Subscription, n)
	for i := range subs {
		subs[i] = subscribe(b, h, board.ID)
		first(b, subs[i])
		go func(sub *rx.Subscription) {
			for range sub.Events() {
				if remaining.Add(-1) == 0 {
					done <- struct{}{}
				}
			}
		}(subs[i])
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		remaining.Store(int64(n))
		if err := db.Model(&row).Update("n", i+1).Error; err != nil {
			b.Fatal(err)
		}
		<-done
	}
	b.StopTimer()
	for _, sub := range subs {
		if err := sub.Err(); err != nil {
			b.Fatalf("subscription ended: %v", err)
		}
	}
	b.ReportMetric(float64(n), "deliveries/op")
}
