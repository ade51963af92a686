package codegen

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strings"
)

// The TypeScript runtime, shipped with the generator: codegen/ts/src/runtime
// is its source (tested there with node), written verbatim under rxgorm/
// next to the generated files. codegen/ts/dist/runtime is its build to
// JavaScript and declarations (npm run dist), written instead with
// Options.JS.
//
//go:embed ts/src/runtime/*.ts ts/dist/runtime/*.js ts/dist/runtime/*.d.ts
var runtimeFS embed.FS

const (
	runtimeSrc  = "ts/src/runtime"
	runtimeDist = "ts/dist/runtime"
)

// runtimeFiles returns the runtime's files, in JavaScript or TypeScript,
// with the bindings named (react.ts, vue.ts, svelte.ts and their builds).
func runtimeFiles(js bool, bindings []string) (map[string][]byte, error) {
	dir := runtimeSrc
	if js {
		dir = runtimeDist
	}
	out := map[string][]byte{}
	err := fs.WalkDir(runtimeFS, dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		base := path.Base(p)
		stem := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(base, ".js"), ".ts"), ".d")
		if slices.Contains(Bindings, stem) && !slices.Contains(bindings, stem) {
			return nil
		}
		if js != (strings.HasSuffix(base, ".js") || strings.HasSuffix(base, ".d.ts")) {
			return nil
		}
		b, err := runtimeFS.ReadFile(p)
		if err != nil {
			return err
		}
		out[path.Join(RuntimeDir, base)] = append([]byte(Header), b...)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("codegen: runtime: %w", err)
	}
	return out, nil
}
