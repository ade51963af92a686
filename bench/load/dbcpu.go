package load

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// clockTick is the unit of the CPU times of /proc/PID/stat (USER_HZ,
// 100 on Linux whatever the kernel's HZ).
const clockTick = 10 * time.Millisecond

// postgresCPU returns the CPU time so far of the PostgreSQL server on this
// machine: user + system time of every process named postgres, plus the
// time of the exited children the postmaster collected (cutime + cstime),
// so that a backend ending between two readings does not take its time
// away. ok is false when no postgres process is visible (another machine,
// or not Linux). It counts every session of the server, the load's and
// any other's, and may miss a backend reaped while it walks /proc: compare
// readings over a whole run on a quiet machine only.
func postgresCPU() (cpu time.Duration, ok bool) {
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	var ticks int64
	for _, p := range stats {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // the process ended
		}
		open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
		if open < 0 || end < open || string(b[open+1:end]) != "postgres" {
			continue
		}
		// Fields after the command, from field 3 (state): utime is field
		// 14, stime 15, cutime 16, cstime 17, ppid 4.
		f := bytes.Fields(b[end+1:])
		if len(f) < 15 {
			continue
		}
		n := func(field int) int64 {
			v, _ := strconv.ParseInt(string(f[field-3]), 10, 64)
			return v
		}
		ticks += n(14) + n(15)
		if !isPostgres(n(4)) { // the postmaster: its children's time
			ticks += n(16) + n(17)
		}
		ok = true
	}
	return time.Duration(ticks) * clockTick, ok
}

// isPostgres reports whether process pid is named postgres.
func isPostgres(pid int64) bool {
	b, err := os.ReadFile("/proc/" + strconv.FormatInt(pid, 10) + "/comm")
	return err == nil && string(bytes.TrimSpace(b)) == "postgres"
}
