// Package launcher builds the FerretDB launcher that cache/mongotest and
// the load tool (bench/cmd/rxload) start: the module in
// testdata/tools/ferretdb, built once per machine into the user cache
// directory. It does not import package testing, so programs can use it.
package launcher

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"time"
)

// FerretDBVersion is the FerretDB release the launcher is built with.
const FerretDBVersion = "v1.24.0"

// buildTimeout bounds the first build, which downloads FerretDB's modules.
const buildTimeout = 10 * time.Minute

var (
	binaryOnce sync.Once
	binaryPath string
	binaryErr  error
)

// Binary returns the path of the FerretDB launcher, building it if it is
// not in the cache yet. The cache entry is named after a hash of the
// launcher's sources, so a change to them triggers a rebuild. Concurrent
// builds (several test binaries at once) are serialized by a lock file.
func Binary() (string, error) {
	binaryOnce.Do(func() { binaryPath, binaryErr = build() })
	return binaryPath, binaryErr
}

// toolDir returns the launcher's module directory, found relative to this
// source file.
func toolDir() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot locate the launcher sources")
	}
	dir := filepath.Join(filepath.Dir(file), "..", "..", "..", "testdata", "tools", "ferretdb")
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err != nil {
		return "", fmt.Errorf("FerretDB launcher module not found: %w", err)
	}
	return dir, nil
}

func build() (string, error) {
	src, err := toolDir()
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, name := range []string{"go.mod", "go.sum", "main.go"} {
		b, err := os.ReadFile(filepath.Join(src, name))
		if err != nil {
			return "", err
		}
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	fmt.Fprintf(h, "%s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	cacheRoot, err := os.UserCacheDir()
	if err != nil {
		cacheRoot = os.TempDir()
	}
	dir := filepath.Join(cacheRoot, "rxgorm", "ferretdb-"+FerretDBVersion)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	exe := ""
	if runtime.GOOS == "windows" {
		exe = ".exe"
	}
	bin := filepath.Join(dir, "ferretdb-"+hex.EncodeToString(h.Sum(nil)[:6])+exe)
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}

	unlock, err := lockFile(filepath.Join(dir, "build.lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	if _, err := os.Stat(bin); err == nil {
		return bin, nil // built by another process meanwhile
	}
	tmp := fmt.Sprintf("%s.%d.tmp", bin, os.Getpid())
	ctx, cancel := context.WithTimeout(context.Background(), buildTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, goTool(), "build", "-trimpath", "-o", tmp, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off", "GOFLAGS=-mod=readonly -buildvcs=false")
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	start := time.Now()
	if err := cmd.Run(); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("build FerretDB launcher in %s (%v): %w\n%s", src, time.Since(start).Round(time.Second), err, out.String())
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	// Launchers built from older sources are of no more use.
	if old, err := filepath.Glob(filepath.Join(dir, "ferretdb-*")); err == nil {
		for _, p := range old {
			if p != bin && !strings.HasSuffix(p, ".tmp") {
				os.Remove(p)
			}
		}
	}
	return bin, nil
}

// goTool returns the go command: the one on PATH, as the go command
// running the tests puts its own first.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "go"
}
