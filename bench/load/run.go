// Package load is the rxload load tool (bench/cmd/rxload): it drives an
// rxgorm server, and for comparison the bare centrifuge server of
// bench/centrifuge, with WebSocket clients on loopback and reports
// throughput, latency, losses and the server's resource use.
// docs/BENCHMARKS.md records its figures and how they were taken.
package load

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/rxgorm/rxgorm/bench/loadctl"
)

// Config is one rxload invocation.
type Config struct {
	Mode    string  // fanout, idle or snapshot
	Clients int     // C
	Anchors int     // A
	Writes  int     // W
	Rate    float64 // writes per second; 0: back to back
	Server  ServerConfig
	// Connect is the base URL of a running `rxload -serve`; "" starts one.
	Connect string
	// InProc runs the rxgorm server in this process instead of a child.
	InProc bool
	// Nodes is the number of rxgorm nodes (in this process, sharing the
	// database, -mongo and -redis) the clients are spread over; the writes
	// go through the first.
	Nodes int
	// Captures are the capture modes of the rxgorm server ("plugin",
	// "wal") the scenario runs under, one after the other, before the
	// other servers; empty means the one Server.WAL names.
	Captures []string
	// Centrifuge also runs the scenario against the centrifuge server.
	Centrifuge bool
	// CentrifugeDir is the bench/centrifuge module; "" finds it beside
	// this package's source.
	CentrifugeDir string
	// Bare also runs a fan-out against the bare server (bare.go): the
	// floor of one-frame-per-socket delivery on the machine.
	Bare bool
	// Repeat is the number of subscriptions per case in snapshot mode.
	Repeat int
	// Hold keeps idle sockets open this long before measuring.
	Hold time.Duration
	// ServerGOGC, if set, is the GOGC of the rxgorm server's child
	// process alone (the load tool and the other servers keep theirs): a
	// diagnosis of how much of the tail is the server's collector, not a
	// fair comparison.
	ServerGOGC string
	// Profile, if set, is the file prefix of the server's CPU and
	// allocation profiles over the writes of a fan-out run
	// (PREFIX-<server>.cpu, PREFIX-<server>.allocs), and of the load
	// tool's own CPU over them (PREFIX-<server>-clients.cpu).
	Profile string
	// Progress receives the progress line; nil discards it.
	Progress io.Writer
}

// Main runs rxload with command-line args, writing the report to stdout
// and the progress line to stderr.
func Main(args []string, stdout, stderr io.Writer) error {
	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()
	return run(ctx, args, stdout, stderr)
}

// run is Main until ctx ends (-serve stops then).
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rxload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var cfg Config
	fs.StringVar(&cfg.Mode, "mode", "fanout", "fanout, idle or snapshot")
	fs.IntVar(&cfg.Clients, "c", 100, "WebSocket clients")
	fs.IntVar(&cfg.Anchors, "a", 1, "anchors the clients and writes are spread over")
	fs.IntVar(&cfg.Writes, "w", 1000, "single-row commits")
	fs.Float64Var(&cfg.Rate, "rate", 0, "writes per second (0: back to back)")
	fs.StringVar(&cfg.Server.DB, "db", "sqlite", "database: sqlite, postgres (RXGORM_POSTGRES_DSN) or mysql (RXGORM_MYSQL_DSN)")
	fs.StringVar(&cfg.Server.Mongo, "mongo", "", `MongoDB URI of the cache store ("ferretdb": start cache/mongotest's FerretDB; "": memory)`)
	fs.StringVar(&cfg.Server.Redis, "redis", "", "Redis address of the broker (\"\": in-process)")
	fs.StringVar(&cfg.Connect, "connect", "", "base URL of a running `rxload -serve` (\"\": start one)")
	fs.BoolVar(&cfg.InProc, "inproc", false, "run the rxgorm server in this process, not as a child")
	fs.IntVar(&cfg.Nodes, "nodes", 1, "rxgorm nodes in a cluster, in this process (needs -mongo and -redis); clients are spread over them, writes go through the first")
	fs.BoolVar(&cfg.Server.WAL, "wal", false, "with -db postgres: capture the writes from the WAL (rx.Config.WAL, a slot and publication of the run's own, dropped at the end) instead of the GORM plugin")
	captures := fs.String("capture", "", "capture modes of the rxgorm server to run in turn, side by side with the other servers: plugin, wal or plugin,wal (\"\": -wal's)")
	fs.BoolVar(&cfg.Centrifuge, "centrifuge", false, "also run the scenario against the centrifuge server and report the ratio")
	fs.StringVar(&cfg.CentrifugeDir, "centrifuge-dir", "", "the bench/centrifuge module (\"\": beside rxload's source)")
	fs.BoolVar(&cfg.Bare, "bare", false, "fanout: also run the scenario against a bare server (no queues, no library): the machine's floor")
	fs.IntVar(&cfg.Repeat, "repeat", 5, "subscriptions per case in snapshot mode")
	fs.StringVar(&cfg.Profile, "profile", "", "fanout: write the server's CPU and allocs profiles over the writes to PREFIX-<server>.cpu/.allocs, and the load tool's CPU profile to PREFIX-<server>-clients.cpu")
	fs.StringVar(&cfg.ServerGOGC, "server-gogc", "", "GOGC of the rxgorm server's child process only (a diagnosis of its collector's share of the tail: the other servers keep theirs)")
	fs.DurationVar(&cfg.Hold, "hold", 2*time.Second, "idle mode: how long the sockets stay open before measuring")
	serve := fs.Bool("serve", false, "run only the rxgorm server (prints RXLOAD_ADDR=host:port)")
	serveBare := fs.Bool("serve-bare", false, "run only the bare server (prints RXLOAD_ADDR=host:port)")
	stdinEOF := fs.Bool("exit-on-stdin-eof", false, "with -serve: exit when standard input closes")
	jsonOut := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.ServerGOGC != "" && (cfg.Connect != "" || cfg.InProc || cfg.Nodes > 1) {
		return errors.New("rxload: -server-gogc needs the rxgorm server in a child process (not -connect, -inproc or -nodes)")
	}
	if *captures != "" {
		cfg.Captures = strings.Split(*captures, ",")
		if cfg.Server.WAL && !slices.Equal(cfg.Captures, []string{"wal"}) {
			return fmt.Errorf("rxload: -wal and -capture %s disagree", *captures)
		}
	}
	if _, err := loadctl.RaiseNoFile(); err != nil {
		fmt.Fprintln(stderr, err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	if *serveBare {
		return serveBareChild(ctx, stdout, *stdinEOF)
	}
	if *serve {
		cfg.Server.Anchors = cfg.Anchors
		cfg.Server.Snapshot = true
		srv, err := StartServer(ctx, cfg.Server)
		if err != nil {
			return err
		}
		defer srv.Close()
		fmt.Fprintf(stdout, "%s%s\n", loadctl.AddrPrefix, strings.TrimPrefix(srv.URL, "http://"))
		if *stdinEOF {
			go func() {
				_, _ = io.Copy(io.Discard, os.Stdin)
				cancel()
			}()
		}
		<-ctx.Done()
		return nil
	}
	cfg.Progress = stderr
	rep, err := Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(rep)
	}
	rep.Print(stdout)
	return nil
}

// Run runs one scenario and returns its report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Anchors <= 0 {
		cfg.Anchors = 1
	}
	if cfg.Clients <= 0 && cfg.Mode != "snapshot" {
		return nil, errors.New("rxload: -c must be at least 1")
	}
	if cfg.Repeat <= 0 {
		cfg.Repeat = 5
	}
	cfg.Server.Anchors = cfg.Anchors
	cfg.Server.Snapshot = cfg.Mode == "snapshot"
	captures := slices.Clone(cfg.Captures)
	if len(captures) == 0 {
		captures = []string{captureOf(cfg.Server.WAL)}
	}
	for i, c := range captures {
		c = strings.TrimSpace(c)
		captures[i] = c
		if c != "plugin" && c != "wal" {
			return nil, fmt.Errorf("rxload: unknown capture %q (plugin or wal)", c)
		}
		if c == "wal" && cfg.Connect == "" && cfg.Server.db() != "postgres" {
			return nil, fmt.Errorf("rxload: WAL capture needs -db postgres, not %s", cfg.Server.db())
		}
	}
	if len(captures) > 1 && cfg.Connect != "" {
		return nil, errors.New("rxload: -capture with several modes starts its own servers: it cannot -connect")
	}
	p := newProgress(cfg.Progress)
	defer p.end()
	var rep *Report
	for _, c := range captures {
		cfg.Server.WAL = c == "wal"
		r, err := runRx(ctx, cfg, p)
		if err != nil {
			return nil, err
		}
		if rep == nil {
			rep = r
		} else {
			rep.Captures = append(rep.Captures, r)
		}
	}
	if cfg.Bare && cfg.Mode == "fanout" {
		bt, err := startBare()
		if err != nil {
			return nil, err
		}
		rep.Bare, err = runFanout(ctx, bt, cfg, int(rep.FrameBytes), p)
		bt.stop()
		if err != nil {
			return nil, err
		}
	}
	if !cfg.Centrifuge || cfg.Mode == "snapshot" {
		return rep, nil
	}
	ct, err := startCentrifuge(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer ct.stop()
	var crep *Report
	switch cfg.Mode {
	case "fanout":
		crep, err = runFanout(ctx, ct, cfg, int(rep.FrameBytes), p)
	case "idle":
		crep, err = runIdle(ctx, ct, cfg, p)
	}
	if err != nil {
		return nil, err
	}
	rep.Centrifuge = crep
	if crep.DeliveriesPerSec > 0 {
		for _, r := range rep.rx() {
			r.Ratio = r.DeliveriesPerSec / crep.DeliveriesPerSec
		}
	}
	return rep, nil
}

func captureOf(wal bool) string {
	if wal {
		return "wal"
	}
	return "plugin"
}

// runRx runs the scenario against an rxgorm server (started for it, unless
// cfg.Connect names one) with cfg.Server's capture mode.
func runRx(ctx context.Context, cfg Config, p *progress) (*Report, error) {
	t, err := startRx(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var rep *Report
	switch cfg.Mode {
	case "fanout":
		rep, err = runFanout(ctx, t, cfg, 0, p)
	case "idle":
		rep, err = runIdle(ctx, t, cfg, p)
	case "snapshot":
		rep, err = runSnapshot(ctx, t, cfg, p)
	default:
		err = fmt.Errorf("rxload: unknown mode %q (fanout, idle or snapshot)", cfg.Mode)
	}
	t.stop()
	if err != nil {
		return nil, err
	}
	if cfg.Connect == "" {
		rep.Capture = captureOf(cfg.Server.WAL)
	}
	rep.ServerGOGC = cfg.ServerGOGC
	return rep, nil
}

// startRx connects to, starts in process, or re-execs as a child the rxgorm
// server.
func startRx(ctx context.Context, cfg Config) (*target, error) {
	switch {
	case cfg.Connect != "":
		return newTarget(RxGorm, cfg.Connect, nil), nil
	case cfg.InProc || cfg.Nodes > 1:
		if cfg.Nodes > 1 && (cfg.Server.Mongo == "" || cfg.Server.Redis == "") {
			return nil, errors.New("rxload: -nodes needs -mongo and -redis: the nodes share the cache store and the broker")
		}
		srv, err := StartServer(ctx, cfg.Server)
		if err != nil {
			return nil, err
		}
		t := newTarget(RxGorm, srv.URL, srv.Close)
		for i := 1; i < cfg.Nodes; i++ {
			n, err := StartNode(ctx, srv)
			if err != nil {
				t.stop()
				return nil, err
			}
			t.nodes = append(t.nodes, n.URL)
			stop := t.stop
			t.stop = func() { n.Close(); stop() }
		}
		return t, nil
	}
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	args := []string{"-serve", "-exit-on-stdin-eof", "-a", strconv.Itoa(cfg.Anchors), "-db", cfg.Server.DB}
	if cfg.Server.Mongo != "" {
		args = append(args, "-mongo", cfg.Server.Mongo)
	}
	if cfg.Server.Redis != "" {
		args = append(args, "-redis", cfg.Server.Redis)
	}
	if cfg.Server.WAL {
		args = append(args, "-wal")
	}
	cmd := exec.Command(exe, args...)
	if cfg.ServerGOGC != "" {
		cmd.Env = append(os.Environ(), "GOGC="+cfg.ServerGOGC)
	}
	addr, stop, err := startChild(cmd, loadctl.AddrPrefix)
	if err != nil {
		return nil, err
	}
	return newTarget(RxGorm, "http://"+addr, stop), nil
}

// startCentrifuge builds and starts the centrifuge server of
// bench/centrifuge.
func startCentrifuge(ctx context.Context, cfg Config) (*target, error) {
	dir := cfg.CentrifugeDir
	if dir == "" {
		_, file, _, ok := runtime.Caller(0)
		if !ok {
			return nil, errors.New("rxload: cannot locate bench/centrifuge; pass -centrifuge-dir")
		}
		dir = filepath.Join(filepath.Dir(file), "..", "centrifuge")
	}
	tmp, err := os.MkdirTemp("", "rxload-centrifuge-")
	if err != nil {
		return nil, err
	}
	bin := filepath.Join(tmp, "cfserver")
	build := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	build.Dir = dir
	build.Env = append(os.Environ(), "GOWORK=off")
	if out, err := build.CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("rxload: build %s: %w\n%s", dir, err, out)
	}
	addr, stop, err := startChild(exec.Command(bin, "-exit-on-stdin-eof"), loadctl.AddrPrefix)
	if err != nil {
		os.RemoveAll(tmp)
		return nil, err
	}
	return newTarget(Centrifuge, "http://"+addr, func() { stop(); os.RemoveAll(tmp) }), nil
}

// startBare re-execs this binary as the bare server (rxload -serve-bare).
func startBare() (*target, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	addr, stop, err := startChild(exec.Command(exe, "-serve-bare", "-exit-on-stdin-eof"), loadctl.AddrPrefix)
	if err != nil {
		return nil, err
	}
	return newTarget(Bare, "http://"+addr, stop), nil
}

// serveBareChild is rxload -serve-bare.
func serveBareChild(ctx context.Context, stdout io.Writer, stdinEOF bool) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s%s\n", loadctl.AddrPrefix, ln.Addr())
	if stdinEOF {
		loadctl.ExitOnStdinEOF()
	}
	return ServeBare(ctx, ln)
}

// runFanout runs the writes with every client subscribed and measures what
// reaches them. payload sets the publication size (centrifuge).
func runFanout(ctx context.Context, t *target, cfg Config, payload int, p *progress) (*Report, error) {
	clients, err := connectAll(ctx, t, cfg.Clients, cfg.Anchors, p.set)
	if err != nil {
		return nil, err
	}
	closeAll := func() {
		for _, c := range clients {
			c.close()
			<-c.done
		}
		clients = nil
	}
	defer closeAll()
	cpu0 := loadctl.ProcessCPU()
	pg := t.dialect == RxGorm && cfg.Server.db() == "postgres"
	db0, _ := postgresCPU()
	st0, err := t.stats(ctx, false)
	if err != nil {
		return nil, err
	}
	if err := t.startProfile(ctx, cfg.Profile); err != nil {
		return nil, err
	}
	start := time.Now()
	stopTicker := p.every(func() string {
		var frames int64
		for _, c := range clients {
			frames += c.frames.Load()
		}
		el := time.Since(start).Seconds()
		return fmt.Sprintf("%s: %.0fs, %d frames received (%.0f/s)", t.dialect, el, frames, float64(frames)/el)
	})
	res, err := t.write(ctx, loadctl.WriteRequest{Count: cfg.Writes, Rate: cfg.Rate, Anchors: cfg.Anchors, Payload: payload})
	if err != nil {
		stopTicker()
		return nil, err
	}
	// Wait until every client holds its anchor's last write, or give up
	// after a generous grace period (what is missing then is lost).
	final := make([]int64, cfg.Anchors)
	for i := range res.Sent {
		a, seq := loadctl.Seq(i, cfg.Anchors)
		final[a] = int64(baseOf(res, a) + seq)
	}
	grace := time.Now().Add(10*time.Second + 2*time.Since(start))
	for time.Now().Before(grace) && ctx.Err() == nil {
		all := true
		for _, c := range clients {
			if c.maxN.Load() < final[c.anchor] && !c.ended() {
				all = false
				break
			}
		}
		if all {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	// Late duplicates would land now.
	time.Sleep(100 * time.Millisecond)
	stopTicker()
	if err := t.stopProfile(ctx, cfg.Profile, ".allocs"); err != nil {
		return nil, err
	}
	st1, err := t.stats(ctx, false)
	if err != nil {
		return nil, err
	}
	db1, dbOK := postgresCPU()
	all := clients
	for _, c := range all {
		c.dropped = c.ended()
	}
	closeAll()
	rep := &Report{Mode: "fanout", Server: t.dialect, Clients: cfg.Clients, Anchors: cfg.Anchors, Writes: len(res.Sent), Rate: cfg.Rate,
		ServerCPU: (st1.CPU - st0.CPU).Seconds(), ServerMaxRSS: st1.MaxRSS,
		ServerWriteCalls: st1.WriteCalls - st0.WriteCalls, ClientCPU: (loadctl.ProcessCPU() - cpu0).Seconds(),
		ServerGCCycles: int64(st1.NumGC) - int64(st0.NumGC)}
	if pg && dbOK {
		rep.DBCPU = (db1 - db0).Seconds()
	}
	if len(res.Sent) > 0 {
		rep.ServerCPUPerWriteUs = rep.ServerCPU / float64(len(res.Sent)) * 1e6
		rep.ServerAllocPerWrite = float64(st1.TotalAlloc-st0.TotalAlloc) / float64(len(res.Sent))
		rep.DBCPUPerWriteUs = rep.DBCPU / float64(len(res.Sent)) * 1e6
	}
	if t.dialect == RxGorm {
		rep.Store, rep.DB = cfg.Server.store(), cfg.Server.db()
	}
	if len(res.Sent) > 0 {
		rep.WriteRate = float64(len(res.Sent)) / (float64(res.Done-res.Sent[0]) / 1e9)
	}
	rep.tally(all, res)
	return rep, nil
}
