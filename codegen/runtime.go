package codegen

import (
	"embed"
	"io/fs"
	"path"
)

// The TypeScript runtime, shipped with the generator: codegen/ts/src/runtime
// is its source (tested there with node), written verbatim under rxgorm/
// next to the generated files.
//
//go:embed ts/src/runtime/*.ts
var runtimeFS embed.FS

const runtimeSrc = "ts/src/runtime"

func runtimeFiles() (map[string][]byte, error) {
	out := map[string][]byte{}
	err := fs.WalkDir(runtimeFS, runtimeSrc, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := runtimeFS.ReadFile(p)
		if err != nil {
			return err
		}
		out[path.Join(RuntimeDir, path.Base(p))] = append([]byte(Header), b...)
		return nil
	})
	return out, err
}
