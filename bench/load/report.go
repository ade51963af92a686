package load

import (
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/rxgorm/rxgorm/bench/loadctl"
)

// Report is what one rxload run measured. Durations are in milliseconds,
// sizes in bytes.
type Report struct {
	Mode   string  `json:"mode"`
	Server Dialect `json:"server"`
	DB     string  `json:"db,omitempty"`
	Store  string  `json:"store,omitempty"`
	// Capture is how the rxgorm server captured the writes: "plugin" (the
	// GORM plugin) or "wal" (PostgreSQL's logical replication, -wal).
	Capture string  `json:"capture,omitempty"`
	Clients int     `json:"clients"`
	Anchors int     `json:"anchors"`
	Writes  int     `json:"writes"`
	Rate    float64 `json:"rate"`

	// Fan-out.
	WriteRate        float64 `json:"writeRate"`        // writes/s achieved
	Deliveries       int64   `json:"deliveries"`       // (commit, client) pairs delivered
	DeliveriesPerSec float64 `json:"deliveriesPerSec"` // Deliveries / (first write → last delivery)
	Frames           int64   `json:"frames"`           // data frames received
	FramesPerSec     float64 `json:"framesPerSec"`
	FrameBytes       float64 `json:"frameBytes"` // mean size of a data frame
	SpanMs           float64 `json:"spanMs"`     // first write → last delivery
	// Latency runs from each write's commit (loadctl.WriteResult.Committed)
	// to the client; WriteLatency from just before the write started
	// (Sent), so for rxgorm it includes the database write and commit.
	Latency      Latency `json:"latency"`
	WriteLatency Latency `json:"writeLatency"`
	// DueLatency (paced runs) runs from when each write was due on the
	// pace's schedule: a server that falls behind the pace shows its
	// backlog here, not in Latency (loadctl.WriteResult.Due).
	DueLatency *Latency `json:"dueLatency,omitempty"`
	Lost       int64    `json:"lost"`
	Duplicate  int64    `json:"duplicate"`
	OutOfOrder int64    `json:"outOfOrder"`
	Dropped    int      `json:"dropped"` // sockets the server closed during the run
	ServerCPU  float64  `json:"serverCpuSeconds"`
	// ServerCPUPerWriteUs is ServerCPU over the writes, in microseconds.
	ServerCPUPerWriteUs float64 `json:"serverCpuPerWriteUs"`
	ServerMaxRSS        int64   `json:"serverMaxRss"`
	// DBCPU is the CPU time of every postgres process on the machine over
	// the run (-db postgres): the writes, and the engine's re-reads
	// (plugin) or the WAL sender's decoding (WAL); other sessions' work
	// too, so it is read on a quiet machine only.
	DBCPU           float64 `json:"dbCpuSeconds,omitempty"`
	DBCPUPerWriteUs float64 `json:"dbCpuPerWriteUs,omitempty"`
	// ServerWriteCalls is the server process's write system calls during
	// the run (0 when it is not a child process on Linux); per delivery it
	// shows how well queued frames are merged into one write.
	ServerWriteCalls int64 `json:"serverWriteCalls"`
	// ServerGCCycles is the server process's garbage collections during
	// the writes, and ServerAllocPerWrite the bytes it allocated then per
	// write: its garbage brings the collections, which show in the
	// latency's tail (docs/BENCHMARKS.md, "Latency under load, session 8").
	ServerGCCycles      int64   `json:"serverGcCycles"`
	ServerAllocPerWrite float64 `json:"serverAllocPerWriteBytes"`
	// ServerGOGC is -server-gogc: the GOGC the rxgorm server ran with
	// when it was not the inherited one.
	ServerGOGC string `json:"serverGogc,omitempty"`
	// ClientCPU is the load tool's own CPU time during the run: the
	// clients' (and, with -inproc, the server's too).
	ClientCPU float64 `json:"clientCpuSeconds"`

	// Idle.
	HeapPerSocket float64 `json:"heapPerSocket,omitempty"`
	RSSPerSocket  float64 `json:"rssPerSocket,omitempty"`
	// Goroutine stacks are not heap: reported apart.
	StackPerSocket      float64 `json:"stackPerSocket,omitempty"`
	GoroutinesPerSocket float64 `json:"goroutinesPerSocket,omitempty"`
	Sockets             int     `json:"sockets,omitempty"`

	// Snapshot.
	Snapshots []SnapshotCase `json:"snapshots,omitempty"`

	// The same scenario against rxgorm in the further capture modes of
	// -capture, in order.
	Captures []*Report `json:"captures,omitempty"`
	// The same scenario against centrifuge, and rxgorm's deliveries/s over
	// centrifuge's (in each rxgorm report).
	Centrifuge *Report `json:"centrifuge,omitempty"`
	// The same fan-out against the bare server: the machine's floor.
	Bare  *Report  `json:"bare,omitempty"`
	Ratio float64  `json:"ratio,omitempty"`
	Notes []string `json:"notes,omitempty"`
}

// Latency is the distribution of commit → client times over every
// delivered (commit, client) pair, in milliseconds.
type Latency struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// SnapshotCase is the subscribe → done time of one anchor size, cold or
// hot, over Repeat subscriptions.
type SnapshotCase struct {
	Instances int       `json:"instances"`
	Cold      bool      `json:"cold"`
	Store     string    `json:"store"`
	Ms        []float64 `json:"ms"`
	MedianMs  float64   `json:"medianMs"`
}

func (c ServerConfig) store() string {
	switch c.Mongo {
	case "":
		return "memory"
	case "ferretdb":
		return "mongodb (ferretdb)"
	}
	return "mongodb"
}

func (c ServerConfig) db() string {
	if c.DB == "" {
		return "sqlite"
	}
	return c.DB
}

func baseOf(res loadctl.WriteResult, a int) int {
	if a < len(res.Base) {
		return res.Base[a]
	}
	return 0
}

// tally fills the delivery figures from the clients' records: commit k of
// an anchor reached a client at the first state it received with n ≥ k
// (a delta may carry several commits: the engine re-reads a row once for
// the commits queued meanwhile).
func (r *Report) tally(clients []*client, res loadctl.WriteResult) {
	var (
		lat, wlat    []int64
		dlat         []int64
		last         int64
		bytes        int64
		perAnchor    = make([]int, r.Anchors)
		first        int64
		deliveries   int64
		lost, frames int64
	)
	for i := range res.Sent {
		a, _ := loadctl.Seq(i, r.Anchors)
		perAnchor[a]++
	}
	if len(res.Sent) > 0 {
		first = res.Sent[0]
	}
	for _, c := range clients {
		if c.dropped {
			r.Dropped++
		}
		frames += c.frames.Load()
		bytes += c.bytes.Load()
		r.Duplicate += c.dup
		r.OutOfOrder += c.ooo
		base := int64(baseOf(res, c.anchor))
		ei := 0
		for k := 1; k <= perAnchor[c.anchor]; k++ {
			for ei < len(c.events) && c.events[ei].n-base < int64(k) {
				ei++
			}
			if ei == len(c.events) {
				lost += int64(perAnchor[c.anchor] - k + 1)
				break
			}
			t := c.events[ei].t
			i := (k-1)*r.Anchors + c.anchor
			lat = append(lat, t-committedAt(res, i))
			wlat = append(wlat, t-res.Sent[i])
			if i < len(res.Due) {
				dlat = append(dlat, t-res.Due[i])
			}
			last = max(last, t)
			deliveries++
		}
	}
	r.Deliveries, r.Lost, r.Frames = deliveries, lost, frames
	if frames > 0 {
		r.FrameBytes = float64(bytes) / float64(frames)
	}
	if last > first {
		span := float64(last-first) / 1e9
		r.SpanMs = span * 1e3
		r.DeliveriesPerSec = float64(deliveries) / span
		r.FramesPerSec = float64(frames) / span
	}
	r.Latency = latency(lat)
	r.WriteLatency = latency(wlat)
	if len(dlat) > 0 {
		d := latency(dlat)
		r.DueLatency = &d
	}
}

// committedAt is when write i was committed: its send time for a server
// that does not report commit times.
func committedAt(res loadctl.WriteResult, i int) int64 {
	if i < len(res.Committed) && res.Committed[i] != 0 {
		return res.Committed[i]
	}
	return res.Sent[i]
}

// rx returns the rxgorm reports of the run: r and its further captures.
func (r *Report) rx() []*Report {
	return append([]*Report{r}, r.Captures...)
}

// label names the server of the report, with its capture mode.
func (r *Report) label() string {
	if r.Capture != "" {
		return fmt.Sprintf("%s[%s]", r.Server, r.Capture)
	}
	return string(r.Server)
}

func latency(ns []int64) Latency {
	if len(ns) == 0 {
		return Latency{}
	}
	slices.Sort(ns)
	q := func(p float64) float64 {
		i := int(p * float64(len(ns)-1))
		return float64(ns[i]) / 1e6
	}
	return Latency{P50: q(0.50), P95: q(0.95), P99: q(0.99), Max: float64(ns[len(ns)-1]) / 1e6}
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// Print writes the report for people.
func (r *Report) Print(w io.Writer) {
	rxs := r.rx()
	for _, x := range rxs {
		x.print(w, "")
	}
	if r.Bare != nil {
		r.Bare.print(w, "")
		fmt.Fprintf(w, "ratio rxgorm/bare: p50 latency %.2f×, p99 latency %.2f×, server CPU %.2f×\n",
			r.Latency.P50/r.Bare.Latency.P50, r.Latency.P99/r.Bare.Latency.P99, r.ServerCPU/r.Bare.ServerCPU)
		if r.DueLatency != nil && r.Bare.DueLatency != nil {
			fmt.Fprintf(w, "ratio rxgorm/bare from the pace's schedule: p50 latency %.2f×, p99 latency %.2f×\n",
				r.DueLatency.P50/r.Bare.DueLatency.P50, r.DueLatency.P99/r.Bare.DueLatency.P99)
		}
	}
	if r.Centrifuge != nil {
		r.Centrifuge.print(w, "")
		if r.Mode == "fanout" {
			for _, x := range rxs {
				fmt.Fprintf(w, "ratio %s/centrifuge: deliveries/s %.2f×, p99 latency %.2f× (from the write's start %.2f×), server CPU per write %.2f×\n",
					x.label(), x.Ratio, x.Latency.P99/r.Centrifuge.Latency.P99, x.WriteLatency.P99/r.Centrifuge.WriteLatency.P99,
					x.ServerCPUPerWriteUs/r.Centrifuge.ServerCPUPerWriteUs)
			}
		}
	}
	if r.Mode == "fanout" {
		for _, x := range rxs[1:] {
			fmt.Fprintf(w, "ratio %s/%s: p99 latency %.2f× (from the write's start %.2f×), server CPU per write %.2f×, server + database %.2f×\n",
				x.label(), r.label(), x.Latency.P99/r.Latency.P99, x.WriteLatency.P99/r.WriteLatency.P99, x.ServerCPUPerWriteUs/r.ServerCPUPerWriteUs,
				(x.ServerCPUPerWriteUs+x.DBCPUPerWriteUs)/(r.ServerCPUPerWriteUs+r.DBCPUPerWriteUs))
		}
	}
	for _, x := range rxs {
		for _, n := range x.Notes {
			fmt.Fprintf(w, "note: %s\n", n)
		}
	}
}

func (r *Report) print(w io.Writer, _ string) {
	pace := "back to back"
	if r.Rate > 0 {
		pace = fmt.Sprintf("paced %g/s", r.Rate)
	}
	where := string(r.Server)
	if r.DB != "" {
		where += fmt.Sprintf(" (%s, %s store", r.DB, r.Store)
		if r.Capture != "" {
			where += ", " + r.Capture + " capture"
		}
		where += ")"
	}
	switch r.Mode {
	case "fanout":
		fmt.Fprintf(w, "%s fanout: C=%d clients, A=%d anchors, W=%d writes %s\n", where, r.Clients, r.Anchors, r.Writes, pace)
		fmt.Fprintf(w, "  writes      %.0f/s achieved\n", r.WriteRate)
		fmt.Fprintf(w, "  deliveries  %d in %.0f ms = %.0f/s; %d frames = %.0f/s, %.0f B/frame, %.2f commits/frame\n",
			r.Deliveries, r.SpanMs, r.DeliveriesPerSec, r.Frames, r.FramesPerSec, r.FrameBytes, float64(r.Deliveries)/max(1, float64(r.Frames)))
		fmt.Fprintf(w, "  latency     p50 %.2f ms  p95 %.2f ms  p99 %.2f ms  max %.2f ms (commit → client)\n", r.Latency.P50, r.Latency.P95, r.Latency.P99, r.Latency.Max)
		if r.WriteLatency != r.Latency {
			fmt.Fprintf(w, "              p50 %.2f ms  p95 %.2f ms  p99 %.2f ms  max %.2f ms (write started → client)\n", r.WriteLatency.P50, r.WriteLatency.P95, r.WriteLatency.P99, r.WriteLatency.Max)
		}
		if d := r.DueLatency; d != nil {
			fmt.Fprintf(w, "              p50 %.2f ms  p95 %.2f ms  p99 %.2f ms  max %.2f ms (write due on the pace → client)\n", d.P50, d.P95, d.P99, d.Max)
		}
		fmt.Fprintf(w, "  lost %d  duplicate %d  out-of-order %d  sockets dropped by the server %d\n", r.Lost, r.Duplicate, r.OutOfOrder, r.Dropped)
		fmt.Fprintf(w, "  server      CPU %.2f s = %.0f µs per write, peak RSS %.1f MiB, %d write calls = %.3f per delivery, %.3f per frame\n",
			r.ServerCPU, r.ServerCPUPerWriteUs, float64(r.ServerMaxRSS)/(1<<20),
			r.ServerWriteCalls, float64(r.ServerWriteCalls)/max(1, float64(r.Deliveries)), float64(r.ServerWriteCalls)/max(1, float64(r.Frames)))
		fmt.Fprintf(w, "              %d garbage collections, %.1f KB allocated per write\n", r.ServerGCCycles, r.ServerAllocPerWrite/1000)
		if r.ServerGOGC != "" {
			fmt.Fprintf(w, "              GOGC=%s for this server only (-server-gogc)\n", r.ServerGOGC)
		}
		if r.DBCPU > 0 {
			fmt.Fprintf(w, "  database    CPU %.2f s = %.0f µs per write (every postgres process on the machine)\n", r.DBCPU, r.DBCPUPerWriteUs)
		}
		fmt.Fprintf(w, "  clients     CPU %.2f s\n", r.ClientCPU)
	case "idle":
		fmt.Fprintf(w, "%s idle: %d subscribed sockets (server counts %d), A=%d anchors\n", where, r.Clients, r.Sockets, r.Anchors)
		fmt.Fprintf(w, "  per socket  heap %.1f KiB, stacks %.1f KiB (%.1f goroutines), RSS %.1f KiB; server peak RSS %.1f MiB\n",
			r.HeapPerSocket/1024, r.StackPerSocket/1024, r.GoroutinesPerSocket, r.RSSPerSocket/1024, float64(r.ServerMaxRSS)/(1<<20))
	case "snapshot":
		fmt.Fprintf(w, "%s snapshot: subscribe → done\n", where)
		for _, c := range r.Snapshots {
			kind := "hot "
			if c.Cold {
				kind = "cold"
			}
			ms := make([]string, len(c.Ms))
			for i, v := range c.Ms {
				ms[i] = fmt.Sprintf("%.1f", v)
			}
			fmt.Fprintf(w, "  %6d instances %s (%s): median %.1f ms  [%s]\n", c.Instances, kind, c.Store, c.MedianMs, strings.Join(ms, " "))
		}
	}
}

// progress rewrites one status line on a terminal (or any writer).
type progress struct {
	mu   sync.Mutex
	w    io.Writer
	line bool
}

func newProgress(w io.Writer) *progress { return &progress{w: w} }

func (p *progress) set(s string) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	fmt.Fprintf(p.w, "\r\033[K%s", s)
	p.line = true
}

// every shows f() once a second until the returned stop is called.
func (p *progress) every(f func() string) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		tk := time.NewTicker(time.Second)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				p.set(f())
			}
		}
	}()
	var once sync.Once
	return func() { once.Do(func() { close(done); <-finished }) }
}

func (p *progress) end() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.line && p.w != nil {
		fmt.Fprint(p.w, "\r\033[K")
		p.line = false
	}
}
