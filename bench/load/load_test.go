package load

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"testing"

	"github.com/rxgorm/rxgorm/bench"
	"github.com/rxgorm/rxgorm/bench/loadctl"
	"github.com/rxgorm/rxgorm/rx/rxtest/dsn"
	"gorm.io/driver/postgres"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// runMain runs rxload with args plus -json (and -inproc unless args has
// -connect) and decodes the report.
func runMain(t *testing.T, args ...string) *Report {
	t.Helper()
	var out, errOut bytes.Buffer
	if !strings.Contains(strings.Join(args, " "), "-connect") {
		args = append(args, "-inproc")
	}
	if err := Main(append(args, "-json"), &out, &errOut); err != nil {
		t.Fatalf("rxload %v: %v\n%s", args, err, errOut.String())
	}
	var rep Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("report does not parse: %v\n%s", err, out.String())
	}
	return &rep
}

// TestFanoutSmoke runs a tiny fan-out over two anchors: every commit must
// reach every client of its anchor, once and in order.
func TestFanoutSmoke(t *testing.T) {
	rep := runMain(t, "-c", "4", "-a", "2", "-w", "30")
	if rep.Mode != "fanout" || rep.Server != RxGorm || rep.Writes != 30 {
		t.Fatalf("report = %+v", rep)
	}
	if rep.Lost != 0 || rep.Duplicate != 0 || rep.OutOfOrder != 0 {
		t.Fatalf("lost %d, duplicate %d, out of order %d", rep.Lost, rep.Duplicate, rep.OutOfOrder)
	}
	// 30 writes over 2 anchors, 2 clients per anchor.
	if rep.Deliveries != 60 {
		t.Fatalf("deliveries = %d, want 60", rep.Deliveries)
	}
	if rep.Frames == 0 || rep.Frames > rep.Deliveries || rep.Latency.Max <= 0 || rep.DeliveriesPerSec <= 0 {
		t.Fatalf("frames %d, latency %+v, deliveries/s %v", rep.Frames, rep.Latency, rep.DeliveriesPerSec)
	}
	// Each write is a GORM update and a delivery: the server allocates.
	if rep.ServerAllocPerWrite <= 0 || rep.ServerGCCycles < 0 {
		t.Fatalf("allocated per write %v B, %d collections", rep.ServerAllocPerWrite, rep.ServerGCCycles)
	}
}

// TestIdleAndSnapshotSmoke checks the other two modes report what they
// measured: the snapshot sizes are verified against the seeded boards.
func TestIdleAndSnapshotSmoke(t *testing.T) {
	idle := runMain(t, "-mode", "idle", "-c", "3", "-hold", "0s")
	if idle.Clients != 3 || idle.Sockets != 3 || idle.ServerMaxRSS <= 0 {
		t.Fatalf("idle report = %+v", idle)
	}
	snap := runMain(t, "-mode", "snapshot", "-repeat", "1")
	if len(snap.Snapshots) != 4 {
		t.Fatalf("snapshot cases = %+v", snap.Snapshots)
	}
	for _, c := range snap.Snapshots {
		if len(c.Ms) != 1 || c.MedianMs <= 0 || (c.Instances != 1001 && c.Instances != 10001) {
			t.Fatalf("snapshot case = %+v", c)
		}
	}
}

// TestServeAndConnect runs `rxload -serve` (as the child process would)
// and drives it with -connect, spreading over its anchors.
func TestServeAndConnect(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-serve", "-a", "3"}, pw, io.Discard)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("no address from -serve: %v (%v)", err, <-done)
	}
	go func() { _, _ = io.Copy(io.Discard, pr) }()
	addr, ok := strings.CutPrefix(strings.TrimSpace(line), loadctl.AddrPrefix)
	if !ok {
		t.Fatalf("-serve printed %q", line)
	}
	rep := runMain(t, "-connect", "http://"+addr, "-a", "3", "-c", "6", "-w", "30")
	if rep.Lost != 0 || rep.Duplicate != 0 || rep.OutOfOrder != 0 || rep.Deliveries != 60 {
		t.Fatalf("deliveries %d, lost %d, duplicate %d, out of order %d", rep.Deliveries, rep.Lost, rep.Duplicate, rep.OutOfOrder)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestBareFloor drives the bare server (the floor of one-frame-per-socket
// delivery) with the centrifuge-dialect clients: every publication must
// reach every client of its anchor once, in order, at the payload size
// asked for.
func TestBareFloor(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- ServeBare(ctx, ln) }()
	bt := newTarget(Bare, "http://"+ln.Addr().String(), nil)
	rep, err := runFanout(ctx, bt, Config{Clients: 6, Anchors: 3, Writes: 30}, 200, newProgress(nil))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Server != Bare || rep.Lost != 0 || rep.Duplicate != 0 || rep.OutOfOrder != 0 || rep.Dropped != 0 {
		t.Fatalf("report = %+v", rep)
	}
	// 30 writes over 3 anchors, 2 clients per anchor, one frame each.
	if rep.Deliveries != 60 || rep.Frames != 60 {
		t.Fatalf("deliveries %d, frames %d, want 60 and 60", rep.Deliveries, rep.Frames)
	}
	if rep.FrameBytes != 200 {
		t.Fatalf("frame size %v, want the 200 bytes asked for", rep.FrameBytes)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// TestWALFanout runs a small fan-out on PostgreSQL with WAL capture (-wal)
// end to end: every commit must reach every client of its anchor, once and
// in order, with both latencies and the server's CPU per write reported,
// and the run's replication slot and publication must be gone afterwards.
func TestWALFanout(t *testing.T) {
	rep := runMain(t, "-db", "postgres", "-wal", "-c", "4", "-a", "2", "-w", "20")
	if rep.Capture != "wal" || rep.DB != "postgres" || rep.Writes != 20 {
		t.Fatalf("report = %+v", rep)
	}
	if rep.Lost != 0 || rep.Duplicate != 0 || rep.OutOfOrder != 0 || rep.Dropped != 0 {
		t.Fatalf("lost %d, duplicate %d, out of order %d, dropped %d", rep.Lost, rep.Duplicate, rep.OutOfOrder, rep.Dropped)
	}
	// 20 writes over 2 anchors, 2 clients per anchor.
	if rep.Deliveries != 40 || rep.Frames == 0 {
		t.Fatalf("deliveries %d, frames %d, want 40 deliveries", rep.Deliveries, rep.Frames)
	}
	if rep.Latency.Max <= 0 || rep.WriteLatency.Max <= 0 || rep.Latency.P50 > rep.WriteLatency.P50 || rep.ServerCPUPerWriteUs <= 0 {
		t.Fatalf("latency from the commit %+v, from the write's start %+v, CPU per write %v µs", rep.Latency, rep.WriteLatency, rep.ServerCPUPerWriteUs)
	}
	assertNoWALLeft(t)
}

// TestCapturePluginAndWAL runs both capture modes in one invocation
// (-capture plugin,wal): two rxgorm reports, in order, each complete.
func TestCapturePluginAndWAL(t *testing.T) {
	rep := runMain(t, "-db", "postgres", "-capture", "plugin,wal", "-c", "2", "-w", "10")
	if len(rep.Captures) != 1 {
		t.Fatalf("%d further captures, want 1", len(rep.Captures))
	}
	for i, r := range rep.rx() {
		want := []string{"plugin", "wal"}[i]
		if r.Capture != want || r.Lost != 0 || r.Deliveries != 20 || r.ServerCPUPerWriteUs <= 0 {
			t.Fatalf("report %d (want %s capture): %+v", i, want, r)
		}
	}
	assertNoWALLeft(t)
}

// assertNoWALLeft checks that no replication slot or publication of this
// process's runs is left on the server.
func assertNoWALLeft(t *testing.T) {
	t.Helper()
	db, err := gorm.Open(postgres.Open(dsn.Postgres()), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	defer bench.Close(db)
	like := fmt.Sprintf(`rxload\_%d\_%%`, os.Getpid())
	var slots, pubs int64
	if err := db.Raw("SELECT count(*) FROM pg_replication_slots WHERE slot_name LIKE ?", like).Scan(&slots).Error; err != nil {
		t.Fatal(err)
	}
	if err := db.Raw("SELECT count(*) FROM pg_publication WHERE pubname LIKE ?", like).Scan(&pubs).Error; err != nil {
		t.Fatal(err)
	}
	if slots != 0 || pubs != 0 {
		t.Fatalf("%d replication slots and %d publications of this run left", slots, pubs)
	}
}

// TestPostgresCPU reads the local PostgreSQL server's CPU time. (Not
// compared between two readings: a backend reaped while a reading walks
// /proc can be missed by it.)
func TestPostgresCPU(t *testing.T) {
	cpu, ok := postgresCPU()
	if !ok {
		t.Skip("no postgres process visible on this machine")
	}
	if cpu <= 0 {
		t.Fatalf("postgres CPU %v", cpu)
	}
}
