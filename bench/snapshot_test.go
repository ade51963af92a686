package bench

import (
	"context"
	"testing"

	"github.com/rxgorm/rxgorm/rx"
)

// Snapshot of a 10,000-instance stream: SnapshotTree, 1 board + 100 lists +
// 9,900 cards.

// snapshotHub seeds SnapshotTree into a fresh database and returns a hub on
// it, with the board's stream cold.
func snapshotHub(b *testing.B) (*rx.Hub, *Board) {
	db := openDB(b, "snap.db")
	board := seed(b, db, SnapshotTree)
	return newHub(b, db, rx.Config{}), board
}

// subscribeOnce subscribes, reads the snapshot event and closes. It returns
// the number of instances in the snapshot.
func subscribeOnce(b *testing.B, h *rx.Hub, boardID uint) int {
	sub := subscribe(b, h, boardID)
	n := len(first(b, sub).Instances)
	sub.Close()
	return n
}

// BenchmarkSnapshotCold measures a cold load from SQLite and the first
// snapshot event: each iteration expires the stream (timer stopped), then
// subscribes, reads the snapshot and closes.
func BenchmarkSnapshotCold(b *testing.B) {
	h, board := snapshotHub(b)
	ctx := context.Background()
	want := SnapshotTree.Instances()
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		if err := h.Expire(ctx, ChannelName, board.ID); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if n = subscribeOnce(b, h, board.ID); n != want {
			b.Fatalf("snapshot has %d instances, want %d", n, want)
		}
	}
	b.ReportMetric(float64(n), "instances/op")
}

// BenchmarkSnapshotHot measures a subscription to a hot stream: subscribe,
// read the snapshot event (served from the in-memory cache) and close.
func BenchmarkSnapshotHot(b *testing.B) {
	h, board := snapshotHub(b)
	want := SnapshotTree.Instances()
	subscribeOnce(b, h, board.ID) // load the stream; it stays hot
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for i := 0; i < b.N; i++ {
		if n = subscribeOnce(b, h, board.ID); n != want {
			b.Fatalf("snapshot has %d instances, want %d", n, want)
		}
	}
	b.ReportMetric(float64(n), "instances/op")
}

// BenchmarkSnapshotJSON measures hub.Snapshot on a hot stream: the nested
// JSON of the whole board, as an HTTP handler would serve it.
func BenchmarkSnapshotJSON(b *testing.B) {
	h, board := snapshotHub(b)
	ctx := context.Background()
	subscribeOnce(b, h, board.ID) // load the stream; it stays hot
	b.ReportAllocs()
	b.ResetTimer()
	size := 0
	for i := 0; i < b.N; i++ {
		js, err := h.Snapshot(ctx, ChannelName, BoardParams{BoardID: board.ID}, rx.User{})
		if err != nil {
			b.Fatal(err)
		}
		size = len(js)
	}
	b.StopTimer()
	b.SetBytes(int64(size))
	b.ReportMetric(float64(SnapshotTree.Instances()), "instances/op")
}
