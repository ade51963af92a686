package codegen_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/rxgorm/rxgorm/codegen"
)

// TestRuntimeDistFresh: the committed codegen/ts/dist/runtime, which
// Options.JS writes, is exactly the build of codegen/ts/src/runtime (run
// npm run dist in codegen/ts after changing the runtime).
func TestRuntimeDistFresh(t *testing.T) {
	bin, _ := filepath.Abs("ts/node_modules/.bin/tsc")
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("tsc not installed: run npm ci in codegen/ts (make test does): %v", err)
	}
	out := t.TempDir()
	cmd := exec.Command(bin, "-p", "tsconfig.dist.json", "--outDir", out)
	cmd.Dir = "ts"
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("tsc: %v\n%s", err, b)
	}
	built := listFiles(t, out)
	committed := listFiles(t, "ts/dist/runtime")
	if !slices.Equal(built, committed) {
		t.Fatalf("codegen/ts/dist/runtime has %v, the build %v: run npm run dist in codegen/ts", committed, built)
	}
	for _, name := range built {
		a, _ := os.ReadFile(filepath.Join(out, name))
		b, _ := os.ReadFile(filepath.Join("ts/dist/runtime", name))
		if !bytes.Equal(a, b) {
			t.Errorf("codegen/ts/dist/runtime/%s is stale: run npm run dist in codegen/ts", name)
		}
	}
}

func listFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names
}

// TestGenerateFiles: the files of each form and choice of bindings.
func TestGenerateFiles(t *testing.T) {
	in := sink(t)
	names := func(opts codegen.Options) string {
		files, err := codegen.GenerateWith(in, opts)
		if err != nil {
			t.Fatal(err)
		}
		var n []string
		for name, b := range files {
			if !bytes.HasPrefix(b, []byte(codegen.Header)) {
				t.Errorf("%s lacks the do-not-edit header", name)
			}
			n = append(n, name)
		}
		slices.Sort(n)
		return strings.Join(n, " ")
	}
	core := "rxgorm/channel rxgorm/codes rxgorm/connection rxgorm/errors rxgorm/index rxgorm/listeners rxgorm/model rxgorm/protocol rxgorm/store rxgorm/subscription rxgorm/view"
	expand := func(list, ext string) []string {
		var out []string
		for _, f := range strings.Fields(list) {
			out = append(out, f+ext)
		}
		return out
	}
	ts := func(bindings ...string) string {
		n := append(expand(core+" "+strings.Join(bindings, " "), ".ts"), "sink.channels.ts", "sink.interfaces.ts")
		slices.Sort(n)
		return strings.Join(n, " ")
	}
	js := func(bindings ...string) string {
		list := core + " " + strings.Join(bindings, " ")
		n := append(append(expand(list, ".js"), expand(list, ".d.ts")...), "sink.channels.js", "sink.channels.d.ts", "sink.interfaces.d.ts")
		slices.Sort(n)
		return strings.Join(n, " ")
	}
	if got, want := names(codegen.Options{}), ts("rxgorm/react"); got != want {
		t.Errorf("default:\n got %s\nwant %s", got, want)
	}
	if got, want := names(codegen.Options{Bindings: []string{}}), ts(); got != want {
		t.Errorf("no bindings:\n got %s\nwant %s", got, want)
	}
	if got, want := names(codegen.Options{Bindings: []string{"vue", "svelte"}}), ts("rxgorm/svelte", "rxgorm/vue"); got != want {
		t.Errorf("vue, svelte:\n got %s\nwant %s", got, want)
	}
	if got, want := names(codegen.Options{JS: true, Bindings: codegen.Bindings}), js("rxgorm/react", "rxgorm/svelte", "rxgorm/vue"); got != want {
		t.Errorf("js:\n got %s\nwant %s", got, want)
	}
	if _, err := codegen.GenerateWith(in, codegen.Options{Bindings: []string{"angular"}}); err == nil || !strings.Contains(err.Error(), `unknown binding "angular"`) {
		t.Errorf("unknown binding: %v", err)
	}
	// The interfaces are the same in both forms.
	tsFiles, _ := codegen.Generate(in)
	jsFiles, _ := codegen.GenerateWith(in, codegen.Options{JS: true})
	if !bytes.Equal(tsFiles["sink.interfaces.ts"], jsFiles["sink.interfaces.d.ts"]) {
		t.Error("sink.interfaces.d.ts differs from sink.interfaces.ts")
	}
}

// TestCompilesJS type-checks a TypeScript program against the JavaScript
// form's declarations (every binding): a user of the .js files gets the
// same types as one of the .ts files.
func TestCompilesJS(t *testing.T) {
	files, err := codegen.GenerateWith(sink(t), codegen.Options{JS: true, Bindings: codegen.Bindings})
	if err != nil {
		t.Fatal(err)
	}
	var decls []string
	for name := range files {
		if strings.HasSuffix(name, ".d.ts") {
			decls = append(decls, name)
		}
	}
	slices.Sort(decls)
	dir := writeTemp(t, files)
	tsc(t, dir, decls...)
}
