package main

import (
	"bufio"
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/examples/quickstart/board"
	"github.com/rxgorm/rxgorm/rx/rxtest"
	"gorm.io/gorm"
)

// TestQuickstart runs docs/QUICKSTART.md's app and its node client as the
// tutorial does: the client signs in, subscribes, adds a card through the
// action, and sees a card written by the server with GORM arrive live.
func TestQuickstart(t *testing.T) {
	db, url := startApp(t)
	tsc, err := filepath.Abs("web/node_modules/.bin/tsc")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(tsc); err != nil {
		t.Fatalf("TypeScript not installed: run npm ci in examples/quickstart/web (make test does): %v", err)
	}
	out := t.TempDir()
	build := exec.Command(tsc, "-p", "tsconfig.json", "--outDir", out)
	build.Dir = "web"
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, b)
	}
	// node resolves ws from the web folder's node_modules: the build sits
	// beside it, as npm run build puts it.
	os.WriteFile(filepath.Join(out, "package.json"), []byte(`{"type":"module"}`), 0o644)
	nm, _ := filepath.Abs("web/node_modules")
	if err := os.Symlink(nm, filepath.Join(out, "node_modules")); err != nil {
		t.Fatal(err)
	}
	runClient(t, db, filepath.Join(out, "client.js"), url, "hello from node")
}

// TestQuickstartPlainJS runs the quickstart's plain JavaScript client,
// web/js/client.js, with node as it is (no TypeScript build) on the code
// makefrontend -js generated (web/js/rx): the same sign-in, action and
// live change, through the framework-agnostic store.
func TestQuickstartPlainJS(t *testing.T) {
	db, url := startApp(t)
	if _, err := os.Stat("web/node_modules/ws"); err != nil {
		t.Fatalf("ws not installed: run npm ci in examples/quickstart/web (make test does): %v", err)
	}
	client, err := filepath.Abs("web/js/client.js")
	if err != nil {
		t.Fatal(err)
	}
	runClient(t, db, client, url, "hello from js")
}

// startApp starts the quickstart's server on a fresh SQLite database with
// board 1, and returns the database and the server's URL.
func startApp(t *testing.T) (*gorm.DB, string) {
	db := rxtest.SQLite(t)
	h, stop, err := board.New(db)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	if err := db.Create(&board.Board{ID: 1, Title: "Welcome"}).Error; err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return db, srv.URL
}

// runClient runs a node client script against the app at url: it signs in
// as ann and adds a card with text; once the card is stored, the test
// writes a card with GORM, and the client must print a board with both.
func runClient(t *testing.T, db *gorm.DB, script, url, text string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	node := exec.CommandContext(ctx, "node", script, url, "ann", text, "--until", "hello from Go")
	node.WaitDelay = 5 * time.Second
	node.Stderr = os.Stderr
	stdout, err := node.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		lines = append(lines, line)
		if strings.HasPrefix(line, "added card ") {
			// The client's own card is stored; now a write from Go.
			if err := db.Create(&board.Card{BoardID: 1, Text: "hello from Go"}).Error; err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := node.Wait(); err != nil {
		t.Fatalf("client: %v\n%s", err, strings.Join(lines, "\n"))
	}
	if len(lines) == 0 {
		t.Fatal("the client printed nothing")
	}
	last := lines[len(lines)-1]
	if !strings.Contains(last, "[ ] "+text) || !strings.Contains(last, "[ ] hello from Go") {
		t.Fatalf("the client's last state lacks a card:\n%s", strings.Join(lines, "\n"))
	}
	t.Logf("client output:\n%s", strings.Join(lines, "\n"))
}
