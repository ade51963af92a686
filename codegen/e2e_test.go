package codegen_test

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/channel"
	"github.com/rxgorm/rxgorm/codegen"
	"github.com/rxgorm/rxgorm/rx"
	"github.com/rxgorm/rxgorm/testdata/codegen/e2eapp"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// TestNodeE2E generates TypeScript for testdata/codegen/e2eapp, compiles it
// with codegen/ts/e2e/e2e.test.ts, and runs that node test against a live
// server on this process: snapshot, server writes, actions and their
// errors, a dropped socket and the resume.
func TestNodeE2E(t *testing.T) {
	env := e2eServer(t)

	in, err := codegen.Load(context.Background(), "../testdata/codegen/e2eapp", codegen.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	files, err := codegen.Generate(in)
	if err != nil {
		t.Fatal(err)
	}
	// Everything is built in a temporary directory, never in the source
	// tree: the test, the generated package, and node_modules linked from
	// codegen/ts.
	work := t.TempDir()
	nodeModules, err := filepath.Abs("ts/node_modules")
	if err != nil {
		t.Fatal(err)
	}
	tscBin := filepath.Join(nodeModules, ".bin", "tsc")
	if _, err := os.Stat(tscBin); err != nil {
		t.Fatalf("tsc not installed: run npm ci in codegen/ts (make test does): %v", err)
	}
	if err := os.Symlink(nodeModules, filepath.Join(work, "node_modules")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "package.json"), []byte(`{"type":"module"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("ts/e2e/e2e.test.ts")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(work, "e2e"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "e2e", "e2e.test.ts"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := codegen.Sync(filepath.Join(work, "e2e-gen"), files, true, nil); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(work, "build")
	args := []string{"--strict", "--target", "ES2022", "--module", "NodeNext", "--moduleResolution", "NodeNext", "--lib", "ES2022,DOM", "--types", "node", "--rootDir", ".", "--outDir", "build", "e2e/e2e.test.ts"}
	for name := range files {
		if strings.HasSuffix(name, ".ts") && !strings.HasSuffix(name, "react.ts") {
			args = append(args, filepath.Join("e2e-gen", name))
		}
	}
	tsc := exec.Command(tscBin, args...)
	tsc.Dir = work
	if b, err := tsc.CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	node := exec.CommandContext(ctx, "node", "--test", "--test-timeout=60000", filepath.Join(out, "e2e", "e2e.test.js"))
	node.WaitDelay = 5 * time.Second // a killed runner's children must not hold the pipes
	node.Env = append(os.Environ(), env...)
	b, err := node.CombinedOutput()
	if err != nil {
		t.Fatalf("node test failed: %v\n%s", err, b)
	}
	t.Logf("%s", b)
}

// e2eServer starts the live server of the node end-to-end tests on
// testdata/codegen/e2eapp, with its control endpoints (POST /write,
// /kick-and-write, /state), and returns the environment of the node
// process: RX_URL, RX_TOKEN and RX_CONTROL.
func e2eServer(t *testing.T) []string {
	db, err := gorm.Open(sqlite.Open("file:"+filepath.Join(t.TempDir(), "e2e.db")+"?_journal_mode=WAL&_busy_timeout=10000&_txlock=immediate"), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.AutoMigrate(e2eapp.Models()...); err != nil {
		t.Fatal(err)
	}
	hub, err := rx.New(db, rx.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	if err := hub.Register(&e2eapp.BoardChannel{DB: db}); err != nil {
		t.Fatal(err)
	}
	auth, err := channel.NewTokenAuth(db)
	if err != nil {
		t.Fatal(err)
	}
	token, _ := auth.Create(context.Background(), "1")
	db.Create(&e2eapp.Author{Name: "ann"})
	db.Create(&e2eapp.Board{Title: "board", Posts: []e2eapp.Post{{AuthorID: 1, Text: "first"}, {AuthorID: 1, Text: "second"}}})
	// Ids past 2^53 (issue 17): board 2^63-1 with posts 2^53, 2^53+1 and
	// 2^53+3, which JavaScript numbers cannot tell apart.
	wide := []e2eapp.Post{{ID: 1 << 53, AuthorID: 1, Text: "2^53"}, {ID: 1<<53 + 1, AuthorID: 1, Text: "2^53+1"}, {ID: 1<<53 + 3, AuthorID: 1, Text: "2^53+3"}}
	if err := db.Create(&e2eapp.Board{ID: 1<<63 - 1, Title: "wide", Posts: wide}).Error; err != nil {
		t.Fatal(err)
	}

	srv := channel.NewServer(hub, channel.Options{Auth: auth})
	conns := &tracked{}
	ws := httptest.NewUnstartedServer(srv)
	ws.Listener = conns.wrap(ws.Listener)
	ws.Start()
	t.Cleanup(func() { srv.Shutdown(context.Background()); ws.Close() })
	ctl := http.NewServeMux()
	ctl.HandleFunc("POST /write", func(w http.ResponseWriter, r *http.Request) {
		db.Create(&e2eapp.Post{BoardID: 1, AuthorID: 1, Text: r.URL.Query().Get("text")})
	})
	ctl.HandleFunc("POST /kick-and-write", func(w http.ResponseWriter, r *http.Request) {
		conns.closeAll()
		for _, text := range []string{"while away 1", "while away 2", "while away 3"} {
			db.Create(&e2eapp.Post{BoardID: 1, AuthorID: 1, Text: text})
		}
		db.Where("text = ?", "second").Delete(&e2eapp.Post{})
	})
	ctl.HandleFunc("POST /state", func(w http.ResponseWriter, r *http.Request) {
		hub.Wait(r.Context())
		board := json.RawMessage(`{"boardId":1}`)
		if b := r.URL.Query().Get("board"); b != "" {
			board = json.RawMessage(`{"boardId":"` + b + `"}`)
		}
		js, err := hub.Snapshot(r.Context(), "BoardChannel", board, rx.User{ID: "1"})
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Write(js)
	})
	control := httptest.NewServer(ctl)
	t.Cleanup(control.Close)

	return []string{"RX_URL=ws" + strings.TrimPrefix(ws.URL, "http"), "RX_TOKEN=" + token, "RX_CONTROL=" + control.URL}
}

// tracked remembers accepted connections so the test can drop them, as a
// network failure would.
type tracked struct {
	mu    sync.Mutex
	conns []net.Conn
}

func (t *tracked) wrap(l net.Listener) net.Listener { return &trackingListener{l, t} }

func (t *tracked) closeAll() {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, c := range t.conns {
		c.Close()
	}
	// Closed here, the sockets carry nothing more to the client: the
	// writes that follow reach it only by its resume.
	t.conns = nil
}

type trackingListener struct {
	net.Listener
	t *tracked
}

func (l *trackingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err == nil {
		l.t.mu.Lock()
		l.t.conns = append(l.t.conns, c)
		l.t.mu.Unlock()
	}
	return c, err
}

// TestNodePlainJS generates the plain JavaScript form of
// testdata/codegen/e2eapp (Options.JS, with the Svelte and Vue bindings)
// and runs codegen/ts/e2e/plain.test.mjs, JavaScript that node runs with
// no TypeScript build, against a live server: the framework-agnostic
// store, an action, a server write, a client write, runtime state, and
// the Svelte and Vue bindings with the real svelte and vue packages.
func TestNodePlainJS(t *testing.T) {
	env := e2eServer(t)
	in, err := codegen.Load(context.Background(), "../testdata/codegen/e2eapp", codegen.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	files, err := codegen.GenerateWith(in, codegen.Options{JS: true, Bindings: []string{"svelte", "vue"}})
	if err != nil {
		t.Fatal(err)
	}
	for name := range files {
		if strings.HasSuffix(name, ".ts") && !strings.HasSuffix(name, ".d.ts") {
			t.Errorf("the JavaScript form has a TypeScript file: %s", name)
		}
	}
	work := t.TempDir()
	nodeModules, err := filepath.Abs("ts/node_modules")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(nodeModules, "ws")); err != nil {
		t.Fatalf("ws not installed: run npm ci in codegen/ts (make test does): %v", err)
	}
	if err := os.Symlink(nodeModules, filepath.Join(work, "node_modules")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "package.json"), []byte(`{"type":"module"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("ts/e2e/plain.test.mjs")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(work, "e2e"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "e2e", "plain.test.mjs"), src, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := codegen.Sync(filepath.Join(work, "plain-gen"), files, true, nil); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	node := exec.CommandContext(ctx, "node", "--test", "--test-timeout=60000", filepath.Join(work, "e2e", "plain.test.mjs"))
	node.WaitDelay = 5 * time.Second
	node.Env = append(os.Environ(), env...)
	b, err := node.CombinedOutput()
	if err != nil {
		t.Fatalf("node test failed: %v\n%s", err, b)
	}
	t.Logf("%s", b)
}
