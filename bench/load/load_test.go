package load

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"

	"github.com/rxgorm/rxgorm/bench/loadctl"
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
