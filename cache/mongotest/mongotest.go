// Package mongotest provides a MongoDB wire-protocol server for tests.
//
// Start returns the URI in RXGORM_MONGO_URI when it is set, so that the same
// tests run against a real MongoDB. Otherwise it runs FerretDB v1.24.0 with
// its SQLite backend: the launcher in testdata/tools/ferretdb (its own
// module, so that the library's go.mod does not carry FerretDB's
// dependencies) is built once per machine into the user cache directory and
// started as a child process on a free loopback port. The first build
// downloads FerretDB's modules and takes a few minutes; later starts take
// well under a second.
//
// A server that cannot be built or started fails the test: tests never skip
// for want of MongoDB.
package mongotest

import (
	"bufio"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/cache/mongotest/launcher"
)

// EnvURI names the environment variable that points the tests at an
// existing MongoDB instead of a FerretDB they start.
const EnvURI = "RXGORM_MONGO_URI"

// FerretDBVersion is the FerretDB release the launcher is built with.
const FerretDBVersion = launcher.FerretDBVersion

const (
	startTimeout = 30 * time.Second
	stopTimeout  = 10 * time.Second
)

// Start returns the URI of a MongoDB server for t: RXGORM_MONGO_URI when it
// is set, else a FerretDB server started for t and stopped when t and its
// subtests end.
func Start(t testing.TB) (uri string) {
	t.Helper()
	if uri := os.Getenv(EnvURI); uri != "" {
		return uri
	}
	return NewServer(t).URI()
}

// Server is a FerretDB process that a test can stop and start again, for
// example to test a MongoDB outage. It keeps its port and data directory
// across restarts, so clients reconnect to the same URI and find their
// data.
type Server struct {
	t   testing.TB
	bin string
	dir string

	mu   sync.Mutex
	addr string    // host:port, fixed by the first start; guarded by mu
	uri  string    // guarded by mu
	proc *process  // running process, nil when stopped; guarded by mu
	logs *tailFile // the server's standard error, over all its runs
}

type process struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	done  chan struct{} // closed when the process has exited
}

// NewServer builds the launcher if needed and starts a FerretDB server with
// a new data directory under t.TempDir(). It ignores RXGORM_MONGO_URI: use
// it when the test must control the server. The server stops when t ends.
func NewServer(t testing.TB) *Server {
	t.Helper()
	bin, err := Binary()
	if err != nil {
		t.Fatalf("mongotest: %v", err)
	}
	s := &Server{t: t, bin: bin, dir: t.TempDir(), addr: "127.0.0.1:0", logs: &tailFile{max: 16 << 10}}
	t.Cleanup(s.Stop)
	s.Start()
	return s
}

// URI returns the server's MongoDB URI. It stays the same across Stop and
// Start.
func (s *Server) URI() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.uri
}

// Start starts the server if it is stopped, on the same address and data
// directory as before. It fails the test if the server does not come up.
func (s *Server) Start() {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc != nil {
		return
	}
	var err error
	// The port of a stopped server may be briefly unavailable; retry.
	deadline := time.Now().Add(startTimeout)
	for {
		err = s.startLocked()
		if err == nil || time.Now().After(deadline) || s.addr == "127.0.0.1:0" {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("mongotest: start FerretDB: %v\n%s", err, s.logs.String())
	}
}

func (s *Server) startLocked() error {
	p, uri, err := launch(s.bin, s.addr, s.dir, s.logs)
	if err != nil {
		return err
	}
	parsed, err := url.Parse(uri)
	if err != nil {
		p.kill()
		return fmt.Errorf("bad URI %q: %w", uri, err)
	}
	s.addr = parsed.Host
	s.uri = uri
	s.proc = p
	return nil
}

// launch starts the launcher bin listening on addr with data directory dir
// ("" for a temporary one that the launcher removes when it exits) and
// waits for its URI. The launcher also exits when its standard input
// closes, so it does not outlive the test binary.
func launch(bin, addr, dir string, logs io.Writer) (*process, string, error) {
	cmd := exec.Command(bin, "-listen", addr, "-dir", dir, "-exit-on-stdin-eof")
	cmd.Stderr = logs
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, "", err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, "", err
	}
	if err := cmd.Start(); err != nil {
		return nil, "", err
	}
	p := &process{cmd: cmd, stdin: stdin, done: make(chan struct{})}
	uriCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		sent := false
		for sc.Scan() {
			if u, ok := strings.CutPrefix(sc.Text(), "MONGODB_URI="); ok && !sent {
				uriCh <- u
				sent = true
			}
		}
		_, _ = io.Copy(io.Discard, stdout)
		_ = cmd.Wait()
		close(p.done)
	}()
	select {
	case u := <-uriCh:
		return p, u, nil
	case <-p.done:
		return nil, "", fmt.Errorf("FerretDB exited: %v", cmd.ProcessState)
	case <-time.After(startTimeout):
		p.kill()
		return nil, "", fmt.Errorf("FerretDB did not print its URI within %v", startTimeout)
	}
}

// Stop stops the server: SIGTERM, then SIGKILL if it has not exited within
// 10 seconds. It does nothing if the server is stopped.
func (s *Server) Stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.proc == nil {
		return
	}
	s.proc.stop()
	s.proc = nil
}

func (p *process) stop() {
	if runtime.GOOS == "windows" {
		p.kill() // no SIGTERM there
		return
	}
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(stopTimeout):
		p.kill()
	}
	_ = p.stdin.Close()
}

func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
	_ = p.stdin.Close()
}

var (
	sharedOnce sync.Once
	sharedURI  string
	sharedErr  error
	sharedLogs = &tailFile{max: 16 << 10}
)

// Shared returns the URI of a server shared by every test of the test
// binary: RXGORM_MONGO_URI when it is set, else a FerretDB server started on
// the first call. That server runs on a temporary data directory until the
// test binary exits. Give each test its own database.
func Shared(t testing.TB) (uri string) {
	t.Helper()
	if uri := os.Getenv(EnvURI); uri != "" {
		return uri
	}
	sharedOnce.Do(func() {
		bin, err := Binary()
		if err != nil {
			sharedErr = err
			return
		}
		// The process is never stopped explicitly: it exits when the test
		// binary does, as its standard input closes.
		_, sharedURI, sharedErr = launch(bin, "127.0.0.1:0", "", sharedLogs)
	})
	if sharedErr != nil {
		t.Fatalf("mongotest: start FerretDB: %v\n%s", sharedErr, sharedLogs.String())
	}
	return sharedURI
}

// Logs returns the end of the server's standard error.
func (s *Server) Logs() string { return s.logs.String() }

// Binary returns the path of the FerretDB launcher, building it if it is
// not in the cache yet (see package launcher).
func Binary() (string, error) { return launcher.Binary() }

// tailFile is an io.Writer keeping the last max bytes written.
type tailFile struct {
	mu  sync.Mutex
	max int
	buf []byte
}

func (w *tailFile) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	if len(w.buf) > w.max {
		w.buf = append(w.buf[:0], w.buf[len(w.buf)-w.max:]...)
	}
	return len(p), nil
}

func (w *tailFile) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return string(w.buf)
}
