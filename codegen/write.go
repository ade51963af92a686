package codegen

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
)

// Sync compares files with the output folder dir. With write it makes dir
// match: writes what changed and removes generated files no longer
// produced (the .ts and .js files under dir that start with Header; other
// files are never touched). It reports the stale paths (relative to dir) and writes a
// unified diff of each to w (nil: no diff).
func Sync(dir string, files map[string][]byte, write bool, w io.Writer) (stale []string, err error) {
	existing := map[string][]byte{}
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !(strings.HasSuffix(p, ".ts") || strings.HasSuffix(p, ".js")) {
			return nil
		}
		b, err := os.ReadFile(p)
		if err == nil && bytes.HasPrefix(b, []byte(Header)) {
			rel, _ := filepath.Rel(dir, p)
			existing[filepath.ToSlash(rel)] = b
		}
		return nil
	})
	paths := make([]string, 0, len(files))
	for p := range files {
		paths = append(paths, p)
	}
	for p := range existing {
		if _, ok := files[p]; !ok {
			paths = append(paths, p)
		}
	}
	slices.Sort(paths)
	for _, p := range paths {
		want, generated := files[p]
		old, onDisk := existing[p]
		if generated && onDisk && bytes.Equal(want, old) {
			continue
		}
		stale = append(stale, p)
		if w != nil {
			diff := difflib.UnifiedDiff{A: difflib.SplitLines(string(old)), B: difflib.SplitLines(string(want)), FromFile: "a/" + p, ToFile: "b/" + p, Context: 2}
			if err := difflib.WriteUnifiedDiff(w, diff); err != nil {
				return nil, err
			}
		}
		if !write {
			continue
		}
		full := filepath.Join(dir, filepath.FromSlash(p))
		if want == nil {
			if err := os.Remove(full); err != nil {
				return nil, err
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			return nil, err
		}
		if err := os.WriteFile(full, want, 0o644); err != nil {
			return nil, fmt.Errorf("codegen: %w", err)
		}
	}
	return stale, nil
}
