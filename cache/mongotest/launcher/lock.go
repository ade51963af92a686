package launcher

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"
)

// lockFile takes an exclusive lock by creating path, waiting while another
// process holds it. A lock older than the build timeout is taken for the
// leftover of a killed process and removed. It works on every platform and
// file system, unlike flock.
func lockFile(path string) (unlock func(), err error) {
	deadline := time.Now().Add(buildTimeout + time.Minute)
	for {
		f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err == nil {
			fmt.Fprintf(f, "%d\n", os.Getpid())
			f.Close()
			return func() { os.Remove(path) }, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		if fi, err := os.Stat(path); err == nil && time.Since(fi.ModTime()) > buildTimeout {
			os.Remove(path)
			continue
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("lock %s held for too long", path)
		}
		time.Sleep(500 * time.Millisecond)
	}
}
