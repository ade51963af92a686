// Command makefrontend generates TypeScript for the rxgorm channels of a Go
// package: interfaces, typed channel classes and the runtime they use.
//
//	go run github.com/rxgorm/rxgorm/cmd/makefrontend -pkg ./app -out web/src/rx
//
// The package must have a function Channels() []any returning its channel
// values (the ones it registers on its Hub). -check exits 1 and prints a diff
// when the files on disk are stale; -dry-run prints the diff and writes
// nothing.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/rxgorm/rxgorm/codegen"
)

func main() {
	pkg := flag.String("pkg", "", "Go package with the channels: import path or ./dir (required)")
	out := flag.String("out", "", "output folder (required)")
	name := flag.String("name", "", "base name of the generated files (default: the Go package name)")
	fn := flag.String("func", "Channels", "function of the package returning its channels")
	check := flag.Bool("check", false, "exit 1 with a diff if the files on disk are stale; write nothing")
	dry := flag.Bool("dry-run", false, "print the diff; write nothing")
	flag.Parse()
	if *pkg == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	in, err := codegen.Load(context.Background(), *pkg, codegen.LoadOptions{Func: *fn})
	if err != nil {
		fmt.Fprintln(os.Stderr, "makefrontend:", err)
		os.Exit(1)
	}
	if *name != "" {
		in.Name = *name
	}
	files, err := codegen.Generate(in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "makefrontend:", err)
		os.Exit(1)
	}
	var diff io.Writer
	if *check || *dry {
		diff = os.Stdout
	}
	stale, err := codegen.Sync(*out, files, !*check && !*dry, diff)
	if err != nil {
		fmt.Fprintln(os.Stderr, "makefrontend:", err)
		os.Exit(1)
	}
	switch {
	case *check && len(stale) > 0:
		fmt.Fprintf(os.Stderr, "makefrontend: %d file(s) in %s are stale; run makefrontend without -check\n", len(stale), *out)
		os.Exit(1)
	case !*check && !*dry:
		fmt.Fprintf(os.Stderr, "makefrontend: %d file(s) written to %s\n", len(stale), *out)
	}
}
