// Command makefrontend generates TypeScript (or plain JavaScript with
// .d.ts declarations) for the rxgorm channels of a Go package: interfaces,
// typed channel classes and the client runtime they use.
//
//	go run github.com/rxgorm/rxgorm/cmd/makefrontend -pkg ./app -out web/src/rx
//	go run github.com/rxgorm/rxgorm/cmd/makefrontend -pkg ./app -out web/rx -js -bindings svelte
//
// The package must have a function Channels() []any returning its channel
// values (the ones it registers on its Hub). Flags:
//
//	-pkg DIR|IMPORT   Go package with the channels (required)
//	-out DIR          output folder (required)
//	-name NAME        base name of the generated files (default: the Go
//	                  package name)
//	-func NAME        function returning the channels (default Channels)
//	-js               emit NAME.channels.js, NAME.channels.d.ts,
//	                  NAME.interfaces.d.ts and the runtime as rxgorm/*.js
//	                  with rxgorm/*.d.ts, instead of NAME.channels.ts,
//	                  NAME.interfaces.ts and rxgorm/*.ts
//	-bindings LIST    framework bindings written with the runtime,
//	                  comma-separated, of react (rxgorm/react: useChannel),
//	                  vue (rxgorm/vue: useChannel) and svelte (rxgorm/svelte:
//	                  readableChannel); default react, empty for none
//	-check            exit 1 and print a diff when the files on disk are
//	                  stale; write nothing
//	-dry-run          print the diff; write nothing
//
// Without -check or -dry-run it makes the folder match: writes what changed
// and removes generated files no longer produced. Package codegen's
// documentation (go doc github.com/rxgorm/rxgorm/codegen) is the reference of
// what is emitted: the type mapping, the channel classes and the runtime
// API.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/rxgorm/rxgorm/codegen"
)

func main() {
	pkg := flag.String("pkg", "", "Go package with the channels: import path or ./dir (required)")
	out := flag.String("out", "", "output folder (required)")
	name := flag.String("name", "", "base name of the generated files (default: the Go package name)")
	fn := flag.String("func", "Channels", "function of the package returning its channels")
	check := flag.Bool("check", false, "exit 1 with a diff if the files on disk are stale; write nothing")
	dry := flag.Bool("dry-run", false, "print the diff; write nothing")
	js := flag.Bool("js", false, "emit plain JavaScript with .d.ts declarations instead of TypeScript")
	bindings := flag.String("bindings", "react", "framework bindings to write with the runtime, comma-separated: react, vue, svelte (empty: none)")
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
	opts := codegen.Options{JS: *js, Bindings: []string{}}
	for _, b := range strings.Split(*bindings, ",") {
		if b = strings.TrimSpace(b); b != "" {
			opts.Bindings = append(opts.Bindings, b)
		}
	}
	files, err := codegen.GenerateWith(in, opts)
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
