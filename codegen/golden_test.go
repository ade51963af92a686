package codegen_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/rxgorm/rxgorm/codegen"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const golden = "../testdata/codegen/golden"

var (
	sinkOnce  sync.Once
	sinkInput *codegen.Input
	sinkErr   error
)

// sink loads the fixture package, a module of its own like a user's app.
func sink(t *testing.T) *codegen.Input {
	t.Helper()
	sinkOnce.Do(func() {
		sinkInput, sinkErr = codegen.Load(context.Background(), "../testdata/codegen/sink", codegen.LoadOptions{})
	})
	if sinkErr != nil {
		t.Fatal(sinkErr)
	}
	return sinkInput
}

// TestGolden compares the generated files with testdata/codegen/golden byte
// for byte (go test ./codegen -update rewrites them).
func TestGolden(t *testing.T) {
	files, err := codegen.Generate(sink(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"sink.interfaces.ts", "sink.channels.ts"} {
		got := files[name]
		path := filepath.Join(golden, name)
		if *update {
			if err := os.WriteFile(path, got, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		want, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s differs from the golden file; run go test ./codegen -update and review the diff", name)
		}
	}
	// The runtime is written verbatim, after the header.
	src, _ := os.ReadFile("ts/src/runtime/store.ts")
	if !bytes.Equal(files["rxgorm/store.ts"], append([]byte(codegen.Header), src...)) {
		t.Error("rxgorm/store.ts is not the runtime source")
	}
	for name, b := range files {
		if !bytes.HasPrefix(b, []byte(codegen.Header)) {
			t.Errorf("%s lacks the do-not-edit header", name)
		}
	}
}

// TestDeterministic: same input, same bytes.
func TestDeterministic(t *testing.T) {
	in := sink(t)
	a, err := codegen.Generate(in)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		b, _ := codegen.Generate(in)
		for name := range a {
			if !bytes.Equal(a[name], b[name]) {
				t.Fatalf("%s differs between two runs", name)
			}
		}
	}
}

// TestCompiles type-checks the generated files and the runtime (React hook
// included) with tsc --strict.
func TestCompiles(t *testing.T) {
	files, err := codegen.Generate(sink(t))
	if err != nil {
		t.Fatal(err)
	}
	dir := writeTemp(t, files)
	tsc(t, dir, "sink.channels.ts", "sink.interfaces.ts", "rxgorm/index.ts", "rxgorm/react.ts")
}

// TestSync: -check finds stale, missing and leftover files and prints a
// diff; writing makes the folder match.
func TestSync(t *testing.T) {
	dir := t.TempDir()
	files := map[string][]byte{"a.ts": []byte(codegen.Header + "one\n"), "rxgorm/b.ts": []byte(codegen.Header + "two\n")}
	stale, err := codegen.Sync(dir, files, false, nil)
	if err != nil || len(stale) != 2 {
		t.Fatalf("empty folder: %v %v", stale, err)
	}
	if _, err := codegen.Sync(dir, files, true, nil); err != nil {
		t.Fatal(err)
	}
	if stale, _ := codegen.Sync(dir, files, false, nil); len(stale) != 0 {
		t.Fatalf("after write: %v", stale)
	}
	os.WriteFile(filepath.Join(dir, "old.ts"), []byte(codegen.Header+"gone\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "mine.ts"), []byte("// not generated\n"), 0o644)
	files["a.ts"] = []byte(codegen.Header + "one changed\n")
	var diff bytes.Buffer
	stale, _ = codegen.Sync(dir, files, false, &diff)
	if strings.Join(stale, ",") != "a.ts,old.ts" || !strings.Contains(diff.String(), "-one\n+one changed") || !strings.Contains(diff.String(), "-gone") {
		t.Fatalf("stale %v\n%s", stale, diff.String())
	}
	codegen.Sync(dir, files, true, nil)
	if _, err := os.Stat(filepath.Join(dir, "old.ts")); !os.IsNotExist(err) {
		t.Fatal("leftover generated file not removed")
	}
	if _, err := os.Stat(filepath.Join(dir, "mine.ts")); err != nil {
		t.Fatal("a file that is not generated was removed")
	}
}

// writeTemp writes files under codegen/ts (so that node_modules resolves)
// and removes them at the end.
func writeTemp(t *testing.T, files map[string][]byte) string {
	t.Helper()
	dir, err := os.MkdirTemp("ts", "gen-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	for name, b := range files {
		p := filepath.Join(dir, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	abs, _ := filepath.Abs(dir)
	return abs
}

// tsc runs the TypeScript compiler of codegen/ts (installed by npm ci in
// make test) in strict mode without emitting.
func tsc(t *testing.T, dir string, files ...string) {
	t.Helper()
	bin, _ := filepath.Abs("ts/node_modules/.bin/tsc")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("tsc not installed: run npm ci in codegen/ts (make test does): %v", err)
	}
	args := []string{"--strict", "--noImplicitOverride", "--exactOptionalPropertyTypes", "--noUncheckedIndexedAccess", "--noEmit", "--target", "ES2022", "--module", "NodeNext", "--moduleResolution", "NodeNext", "--lib", "ES2022,DOM", "--jsx", "react-jsx"}
	for _, f := range files {
		args = append(args, filepath.Join(dir, f))
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, out)
	}
}
