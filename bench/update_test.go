package bench

import (
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/rx"
	"gorm.io/gorm"
)

// Capture overhead: the same single-row update, `db.Model(&row).Update("n",
// i)`, on the same schema and the same kind of database (a SQLite file in
// WAL mode), without rx and with rx in four situations.

// updateTree is the board the update benchmarks write to: 111 rows. The
// size of the stream does not enter the per-update cost (the engine looks
// rows up by key), so a small tree keeps the setup short.
var updateTree = Tree{Lists: 10, CardsPerList: 10}

// updateRow returns the card the update benchmarks write: one in the middle
// of the board.
func updateRow(board *Board) Card {
	l := board.Lists[len(board.Lists)/2]
	return l.Cards[len(l.Cards)/2]
}

// updateLoop runs b.N single-row updates of row. The timer is running.
func updateLoop(b *testing.B, db *gorm.DB, row *Card) {
	for i := 0; i < b.N; i++ {
		if err := db.Model(row).Update("n", i+1).Error; err != nil {
			b.Fatal(err)
		}
	}
}

// cpuMeter measures the process's CPU time over the timed part of a
// benchmark, reported as cpu-ns/op. Unlike ns/op (wall time of the writer)
// it includes work done on other threads: rx's engine goroutine, SQLite
// and the garbage collector.
type cpuMeter struct{ start time.Duration }

func startCPU() cpuMeter { return cpuMeter{processCPU()} }

func (m cpuMeter) report(b *testing.B) {
	b.ReportMetric(float64(processCPU()-m.start)/float64(b.N), "cpu-ns/op")
}

// BenchmarkUpdateWithoutPlugin is the reference: no rx plugin on the
// connection.
func BenchmarkUpdateWithoutPlugin(b *testing.B) {
	db := openDB(b, "plain.db")
	row := updateRow(seed(b, db, updateTree))
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	updateLoop(b, db, &row)
	b.StopTimer()
	cpu.report(b)
}

// BenchmarkUpdateWithPluginNoSubscriber has the plugin installed and the
// channel registered, but the board's stream is cold: every commit is
// captured and handed to the engine, which drops it at once.
func BenchmarkUpdateWithPluginNoSubscriber(b *testing.B) {
	db := openDB(b, "rx.db")
	row := updateRow(seed(b, db, updateTree))
	h := newHub(b, db, rx.Config{})
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	updateLoop(b, db, &row)
	b.StopTimer()
	cpu.report(b)
	wait(b, h)
}

// drained counts the deltas a subscriber's goroutine received and keeps the
// last value of the updated row's "n" it saw.
type drained struct {
	deltas atomic.Int64
	lastN  atomic.Int64
}

// withSubscriber installs rx on a seeded database and subscribes one user to
// the board holding row; a goroutine drains the subscription's events.
func withSubscriber(b *testing.B) (*gorm.DB, *rx.Hub, *Card, *rx.Subscription, *drained) {
	db := openDB(b, "rx.db")
	board := seed(b, db, updateTree)
	row := updateRow(board)
	// A deep buffer: the drain goroutine shares two CPUs with the writer and
	// the engine, and with the default 256 a scheduling hiccup of a few tens
	// of milliseconds ends the subscription with ErrOverloaded mid-run. The
	// buffer's depth does not change the cost of a delivery.
	h := newHub(b, db, rx.Config{SubscriptionBuffer: 1 << 16})
	sub := subscribe(b, h, board.ID)
	if ev := first(b, sub); len(ev.Instances) != updateTree.Instances() {
		b.Fatalf("snapshot has %d instances, want %d", len(ev.Instances), updateTree.Instances())
	}
	d := &drained{}
	key := strconv.FormatUint(uint64(row.ID), 10)
	go func() {
		for ev := range sub.Events() {
			d.deltas.Add(1)
			for _, in := range ev.Instances {
				if in.Type == "Card" && in.ID == key {
					if n, err := strconv.ParseInt(string(in.Fields["n"]), 10, 64); err == nil {
						d.lastN.Store(n)
					}
				}
			}
		}
	}()
	return db, h, &row, sub, d
}

// checkDelivered fails b if the subscription ended (it fell behind) or if
// the subscriber did not end up with the last value written, n = b.N.
func checkDelivered(b *testing.B, sub *rx.Subscription, d *drained) {
	deadline := time.Now().Add(5 * time.Second)
	for d.lastN.Load() != int64(b.N) && sub.Err() == nil && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if err := sub.Err(); err != nil {
		b.Fatalf("subscription ended: %v", err)
	}
	if got := d.lastN.Load(); got != int64(b.N) {
		b.Fatalf("subscriber holds n=%d, want %d", got, b.N)
	}
}

// BenchmarkUpdateWithPlugin is the realistic case: the row is in a hot
// stream with one live subscriber. The timer covers the writer's side only
// (the update returns once committed and queued to the engine); the engine
// re-reads the row and fans it out asynchronously, on another goroutine that
// competes for the same CPUs. The backlog is drained after the timer stops.
func BenchmarkUpdateWithPlugin(b *testing.B) {
	db, h, row, sub, d := withSubscriber(b)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	updateLoop(b, db, row)
	b.StopTimer()
	cpu.report(b)
	wait(b, h)
	checkDelivered(b, sub, d)
}

// BenchmarkUpdateWithPluginDelivered is BenchmarkUpdateWithPlugin with
// hub.Wait inside the timer, at the end of the loop: ns/op then includes
// the engine's re-read, cache write and delivery of every commit.
func BenchmarkUpdateWithPluginDelivered(b *testing.B) {
	db, h, row, sub, d := withSubscriber(b)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	updateLoop(b, db, row)
	wait(b, h)
	b.StopTimer()
	cpu.report(b)
	checkDelivered(b, sub, d)
	// The engine re-reads a row when it processes a commit. When later
	// commits landed meanwhile it reads their value, and their own re-reads
	// then find nothing new: fewer deltas than commits is coalescing, not
	// loss (checkDelivered saw the last value arrive).
	b.ReportMetric(float64(d.deltas.Load())/float64(b.N), "deltas/op")
}

// BenchmarkUpdateWithPluginDeliveredEach calls hub.Wait after every update:
// ns/op is the latency from the update's start until its delta was handed
// to the subscriber, and no two commits can share one re-read (a write
// pattern of isolated commits).
func BenchmarkUpdateWithPluginDeliveredEach(b *testing.B) {
	db, h, row, sub, d := withSubscriber(b)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for i := 0; i < b.N; i++ {
		if err := db.Model(row).Update("n", i+1).Error; err != nil {
			b.Fatal(err)
		}
		wait(b, h)
	}
	b.StopTimer()
	cpu.report(b)
	checkDelivered(b, sub, d)
	b.ReportMetric(float64(d.deltas.Load())/float64(b.N), "deltas/op")
}
