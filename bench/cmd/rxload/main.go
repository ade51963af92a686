// Command rxload puts an rxgorm server under WebSocket load and reports
// deliveries/s, commit → client latency, lost, duplicate and out-of-order
// deliveries, and the server's CPU and memory; with -centrifuge it runs the
// same scenario against a bare centrifuge server and reports the ratio;
// with -bare, against a server with no library at all (the machine's
// floor for one frame per socket). With -db postgres, -wal captures the
// writes from PostgreSQL's logical replication stream (rx.Config.WAL)
// instead of the GORM plugin, and -capture plugin,wal runs both in turn.
//
//	go run ./bench/cmd/rxload -c 1000 -w 2000 -centrifuge
//	go run ./bench/cmd/rxload -c 10000 -w 400 -rate 20 -bare
//	go run ./bench/cmd/rxload -c 100 -w 2000 -rate 200
//	go run ./bench/cmd/rxload -c 100 -w 2000 -rate 200 -db postgres -capture plugin,wal -centrifuge
//	go run ./bench/cmd/rxload -mode snapshot
//	go run ./bench/cmd/rxload -mode idle -c 10000
//
// By default the server runs as a child process (rxload -serve), so that
// its CPU and memory are its own and each process holds its half of the
// sockets. docs/BENCHMARKS.md records the figures and how they were taken.
package main

import (
	"fmt"
	"os"

	"github.com/rxgorm/rxgorm/bench/load"
)

func main() {
	if err := load.Main(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "rxload:", err)
		os.Exit(1)
	}
}
