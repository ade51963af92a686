// Package loadctl is the control protocol between the rxload load tool and
// the servers it drives: the rxgorm server it starts (or re-execs as
// `rxload -serve`) and the bare centrifuge server of bench/centrifuge, which
// is its own module. It depends on the standard library only, so that both
// modules can import it.
//
// A server prints one line "RXLOAD_ADDR=host:port" on its standard output
// once it listens, exits when its standard input closes, and serves:
//
//	POST /rxload/write  WriteRequest → WriteResult: perform the writes
//	GET  /rxload/stats  → Stats (?gc=1 collects garbage first)
//	POST /rxload/profile/start?cpu=FILE, /rxload/profile/stop?allocs=FILE:
//	     CPU and allocation profiles of the server process
//
// WebSocket clients connect to /ws.
package loadctl

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// AddrPrefix starts the line a server prints once it listens.
const AddrPrefix = "RXLOAD_ADDR="

// WriteRequest asks a server to perform Count single-row writes.
type WriteRequest struct {
	// Count is the number of writes (commits, or publications).
	Count int `json:"count"`
	// Rate is the pace in writes per second; 0 means back to back.
	Rate float64 `json:"rate"`
	// Anchors spreads the writes: write i goes to anchor i mod Anchors, as
	// the (i / Anchors + 1)-th write of that anchor.
	Anchors int `json:"anchors"`
	// Payload is the size in bytes of a publication (centrifuge only: an
	// rxgorm write is a row update, whose frame size follows from it).
	Payload int `json:"payload,omitempty"`
}

// WriteResult reports the writes a server performed.
type WriteResult struct {
	// Sent holds the send time of each write (Unix ns), in order: the time
	// stamped into the row (or publication) just before it was committed.
	Sent []int64 `json:"sent"`
	// Committed holds, in order, when each write's data was committed and
	// handed to the server to deliver (Unix ns): for rxgorm the time its
	// GORM update returned; for a pub/sub server, whose application would
	// commit to its own database and then publish, the time just before
	// the publication (Sent). Latency is measured from it, so that neither
	// side is charged for the database write of the other's application.
	Committed []int64 `json:"committed,omitempty"`
	// Due holds, for a paced run, when each write was due on the fixed
	// schedule that began with the first (Unix ns). A server that falls
	// behind the pace delays its later writes past it: latency from Due
	// counts that backlog, which latency from Sent or Committed hides
	// (coordinated omission).
	Due []int64 `json:"due,omitempty"`
	// Done is the time the last write returned (Unix ns).
	Done int64 `json:"done"`
	// Base holds, per anchor, the value of n before the first write (rxgorm
	// rows keep counting across runs); nil means 0.
	Base []int `json:"base,omitempty"`
	// Error is set when a write failed; Sent then stops at it.
	Error string `json:"error,omitempty"`
}

// Seq returns the anchor index and the per-anchor sequence number (from 1)
// of write i spread over anchors anchors.
func Seq(i, anchors int) (anchor, seq int) { return i % anchors, i/anchors + 1 }

// Stats is a snapshot of a server process's resource use.
type Stats struct {
	// CPU is the process's user + system CPU time so far, all threads.
	CPU time.Duration `json:"cpu"`
	// MaxRSS is the peak resident set size in bytes.
	MaxRSS int64 `json:"maxRss"`
	// RSS is the current resident set size in bytes.
	RSS int64 `json:"rss"`
	// HeapInuse is runtime.MemStats.HeapInuse.
	HeapInuse uint64 `json:"heapInuse"`
	// HeapAlloc is runtime.MemStats.HeapAlloc.
	HeapAlloc uint64 `json:"heapAlloc"`
	// StackInuse is runtime.MemStats.StackInuse: goroutine stacks, which
	// the heap figures leave out.
	StackInuse uint64 `json:"stackInuse"`
	// Goroutines is runtime.NumGoroutine.
	Goroutines int `json:"goroutines"`
	// Sockets is the number of open client sockets, when the server knows.
	Sockets int `json:"sockets"`
	// WriteCalls is the number of write system calls the process has made
	// (syscw of /proc/self/io, Linux; 0 elsewhere): a socket write is one.
	WriteCalls int64 `json:"writeCalls"`
	// NumGC is runtime.MemStats.NumGC: the collections completed so far.
	NumGC uint32 `json:"numGC"`
	// TotalAlloc is runtime.MemStats.TotalAlloc: the bytes allocated so
	// far, freed or not.
	TotalAlloc uint64 `json:"totalAlloc"`
}

// ReadStats returns the calling process's Stats; gc runs a garbage
// collection first, so that the heap figures count live memory only.
func ReadStats(gc bool) Stats {
	if gc {
		runtime.GC()
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	st := Stats{HeapInuse: ms.HeapInuse, HeapAlloc: ms.HeapAlloc, StackInuse: ms.StackInuse, Goroutines: runtime.NumGoroutine(), RSS: currentRSS(), WriteCalls: WriteCalls(),
		NumGC: ms.NumGC, TotalAlloc: ms.TotalAlloc}
	st.CPU = ProcessCPU()
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err == nil {
		st.MaxRSS = int64(ru.Maxrss) * 1024 // kilobytes on Linux
	}
	return st
}

// ProcessCPU is the calling process's user + system CPU time so far.
func ProcessCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// WriteCalls returns the number of write system calls the calling process
// has made, from syscw in /proc/self/io (Linux); 0 elsewhere.
func WriteCalls() int64 {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "syscw: "); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}

// currentRSS reads the resident set size from /proc/self/statm (Linux); 0
// elsewhere.
func currentRSS() int64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, _ := strconv.ParseInt(f[1], 10, 64)
	return pages * int64(os.Getpagesize())
}

// RaiseNoFile raises the soft limit of open files to the hard limit, and
// returns the new soft limit: each socket is a file.
func RaiseNoFile() (uint64, error) {
	var l syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
		return 0, fmt.Errorf("loadctl: getrlimit: %w", err)
	}
	if l.Cur < l.Max {
		l.Cur = l.Max
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &l); err != nil {
			return 0, fmt.Errorf("loadctl: setrlimit: %w", err)
		}
	}
	return l.Cur, nil
}

// Pace calls write(i) for i in [0, count), one after the other: back to
// back when rate is 0, else on a fixed schedule of rate calls per second
// (a late call is made at once, and the calls after it follow one another
// until the schedule is caught up: the clients of a service keep coming
// whatever its delays, and a pause that shifted the rest of the schedule
// would show in every later call's latency from Due).
// It returns the send times (Unix ns) taken just before each call, and the
// commit times write returns (0 for "the send time"), and for a paced run
// when each call was due.
func Pace(ctx context.Context, count int, rate float64, write func(i int, sent int64) (committed int64, err error)) WriteResult {
	res := WriteResult{Sent: make([]int64, 0, count), Committed: make([]int64, 0, count)}
	var period time.Duration
	if rate > 0 {
		period = time.Duration(float64(time.Second) / rate)
	}
	next := time.Now()
	first := next
	for i := 0; i < count; i++ {
		if period > 0 {
			res.Due = append(res.Due, first.Add(time.Duration(i)*period).UnixNano())
			if d := time.Until(next); d > 0 {
				select {
				case <-time.After(d):
				case <-ctx.Done():
					res.Error = ctx.Err().Error()
					return res
				}
			}
			next = next.Add(period)
		}
		sent := time.Now().UnixNano()
		committed, err := write(i, sent)
		if err != nil {
			res.Error = err.Error()
			break
		}
		if committed == 0 {
			committed = sent
		}
		res.Sent = append(res.Sent, sent)
		res.Committed = append(res.Committed, committed)
	}
	res.Done = time.Now().UnixNano()
	return res
}

// Handle registers the control endpoints on mux: write performs the
// writes of a request, sockets (may be nil) counts the open sockets.
func Handle(mux *http.ServeMux, write func(context.Context, WriteRequest) WriteResult, sockets func() int) {
	mux.HandleFunc("POST /rxload/write", func(w http.ResponseWriter, r *http.Request) {
		var req WriteRequest
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Count < 0 {
			http.Error(w, "bad write request", http.StatusBadRequest)
			return
		}
		if req.Anchors <= 0 {
			req.Anchors = 1
		}
		reply(w, write(r.Context(), req))
	})
	// Profiles of the server process, written to files named by the
	// caller (the load tool runs on the same machine).
	mux.HandleFunc("POST /rxload/profile/start", func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Create(r.URL.Query().Get("cpu"))
		if err == nil {
			if err = pprof.StartCPUProfile(f); err != nil {
				f.Close()
			}
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		profMu.Lock()
		profFile = f
		profMu.Unlock()
	})
	mux.HandleFunc("POST /rxload/profile/stop", func(w http.ResponseWriter, r *http.Request) {
		pprof.StopCPUProfile()
		profMu.Lock()
		if profFile != nil {
			profFile.Close()
			profFile = nil
		}
		profMu.Unlock()
		if name := r.URL.Query().Get("allocs"); name != "" {
			f, err := os.Create(name)
			if err == nil {
				err = pprof.Lookup("allocs").WriteTo(f, 0)
				f.Close()
			}
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
			}
		}
	})
	mux.HandleFunc("GET /rxload/stats", func(w http.ResponseWriter, r *http.Request) {
		st := ReadStats(r.URL.Query().Get("gc") == "1")
		if sockets != nil {
			st.Sockets = sockets()
		}
		reply(w, st)
	})
}

var (
	profMu   sync.Mutex
	profFile *os.File // guarded by profMu
)

func reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// ExitOnStdinEOF exits the process when its standard input closes: a
// server started by rxload does not outlive it.
func ExitOnStdinEOF() {
	go func() {
		buf := make([]byte, 64)
		for {
			if _, err := os.Stdin.Read(buf); err != nil {
				os.Exit(0)
			}
		}
	}()
}

// Payload returns the publication of the bare pub/sub servers:
// {"n":seq,"sent":sent,"pad":"xx…"} of size bytes (or longer, when size is
// too small for the fields).
func Payload(seq int, sent int64, size int) []byte {
	b := fmt.Appendf(nil, `{"n":%d,"sent":%d,"pad":"`, seq, sent)
	if pad := size - len(b) - 2; pad > 0 {
		b = append(b, strings.Repeat("x", pad)...)
	}
	return append(b, `"}`...)
}
