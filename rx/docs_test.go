package rx_test

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/rxgorm/rxgorm/rx"
)

// The documents say what the code does (issue 17, item 12).

func readDoc(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "docs", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// RELIABILITY.md names every fuzz target of the module and their number.
func TestDocsFuzzTargets(t *testing.T) {
	re := regexp.MustCompile(`(?m)^func (Fuzz\w+)\(`)
	var targets []string
	err := filepath.WalkDir("..", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (d.Name() == "node_modules" || strings.HasPrefix(d.Name(), ".")) && path != ".." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, "_test.go") {
			return nil
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range re.FindAllStringSubmatch(string(b), -1) {
			targets = append(targets, m[1])
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(targets) == 0 {
		t.Fatal("no fuzz targets found")
	}
	doc := readDoc(t, "RELIABILITY.md")
	words := []string{"zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"}
	if len(targets) >= len(words) {
		t.Fatalf("%d targets: extend the number words", len(targets))
	}
	if want := words[len(targets)] + " targets"; !strings.Contains(doc, want) {
		t.Errorf("RELIABILITY.md does not say %q (targets: %v)", want, targets)
	}
	for _, name := range targets {
		if !strings.Contains(doc, "`"+name+"`") {
			t.Errorf("RELIABILITY.md does not name the fuzz target %s", name)
		}
	}
}

// PROTOCOL.md tells clients to treat 1006 (a connection lost without a
// close frame) like 4008: reconnect and resume.
func TestDocsClose1006(t *testing.T) {
	doc := readDoc(t, "PROTOCOL.md")
	row := regexp.MustCompile(`(?m)^\| 1006 \|.*resume.*$`)
	if !row.MatchString(doc) {
		t.Fatal("PROTOCOL.md's close codes do not tell clients to resume after 1006")
	}
}

// A write that both fails validation and names a row outside the state is
// refused with not_found: the state is checked before validation, as
// PROTOCOL.md's refusal order says.
func TestDocsWriteRefusalOrder(t *testing.T) {
	e := newWrEnv(t, openSQLite(t))
	w := e.watch("1", 1)
	long := `"far longer than twenty bytes"`
	// Note 3 is on board 2, outside the state; the text fails Validate.
	if _, err := w.write(rx.OpSave, "wrNote", "3", fields("text", long)); !errors.Is(err, rx.ErrNotFound) {
		t.Fatalf("outside the state and invalid: want not_found, got %v", err)
	}
	if _, err := w.write(rx.OpSave, "wrNote", "1", fields("text", long)); !errors.Is(err, rx.ErrBadRequest) {
		t.Fatalf("in the state and invalid: want bad_request, got %v", err)
	}
	if err := e.hub.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	doc := readDoc(t, "PROTOCOL.md")
	start := strings.Index(doc, "The server refuses, in this order")
	if start < 0 {
		t.Fatal("PROTOCOL.md has no refusal order for writes")
	}
	part := doc[start:]
	state := strings.Index(part, "not in this subscription's state")
	validation := strings.Index(part, "validation refuses")
	hook := strings.Index(part, "permission hook refuses")
	if state < 0 || validation < 0 || hook < 0 || !(state < validation && validation < hook) {
		t.Fatalf("PROTOCOL.md's refusal order: state at %d, validation at %d, hook at %d; want them in that order", state, validation, hook)
	}
}
