package load

import (
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestServerGOGC builds rxload and runs a small fan-out with -server-gogc
// off: the rxgorm server, a child process, runs without collections and
// the report says so. The setting needs the server in a child process.
func TestServerGOGC(t *testing.T) {
	if err := Main([]string{"-inproc", "-server-gogc", "off"}, io.Discard, io.Discard); err == nil || !strings.Contains(err.Error(), "child process") {
		t.Fatalf("-server-gogc with -inproc: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "rxload")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/rxgorm/rxgorm/bench/cmd/rxload").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	for _, gogc := range []string{"off", ""} {
		args := []string{"-c", "4", "-w", "600", "-json"}
		if gogc != "" {
			args = append(args, "-server-gogc", gogc)
		}
		out, err := exec.Command(bin, args...).Output()
		if err != nil {
			t.Fatalf("rxload %v: %v", args, err)
		}
		var rep Report
		if err := json.Unmarshal(out, &rep); err != nil {
			t.Fatalf("report does not parse: %v\n%s", err, out)
		}
		if rep.ServerGOGC != gogc || rep.Lost != 0 || rep.Deliveries != 2400 {
			t.Fatalf("GOGC %q: report says %q, lost %d, %d deliveries", gogc, rep.ServerGOGC, rep.Lost, rep.Deliveries)
		}
		// 600 writes allocate about 8 MB: at Go's default the collector
		// runs; with GOGC=off it never does.
		if off := gogc == "off"; off != (rep.ServerGCCycles == 0) {
			t.Fatalf("GOGC %q: %d collections, %.0f B allocated per write", gogc, rep.ServerGCCycles, rep.ServerAllocPerWrite)
		}
	}
}
