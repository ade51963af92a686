// Command centrifuge is the bare pub/sub server rxload compares rxgorm
// with: a minimal github.com/centrifugal/centrifuge node, anonymous
// clients, every subscription allowed, publications made from its own
// process. It speaks rxload's control protocol (bench/loadctl): a write
// is one publication to channel "a<anchor>" of a JSON object
// {"n":seq,"sent":unixNanos,"pad":"…"} padded to the requested size.
//
// It is its own module, so that the library's go.mod does not carry
// centrifuge's dependencies; rxload -centrifuge builds and starts it
// (`make bench-centrifuge` runs that comparison).
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"

	"github.com/centrifugal/centrifuge"
	"github.com/rxgorm/rxgorm/bench/loadctl"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	stdinEOF := flag.Bool("exit-on-stdin-eof", false, "exit when standard input closes")
	flag.Parse()
	if _, err := loadctl.RaiseNoFile(); err != nil {
		log.Print(err)
	}
	node, err := centrifuge.New(centrifuge.Config{LogLevel: centrifuge.LogLevelError})
	if err != nil {
		log.Fatal(err)
	}
	node.OnConnecting(func(context.Context, centrifuge.ConnectEvent) (centrifuge.ConnectReply, error) {
		return centrifuge.ConnectReply{Credentials: &centrifuge.Credentials{UserID: ""}}, nil
	})
	node.OnConnect(func(c *centrifuge.Client) {
		c.OnSubscribe(func(_ centrifuge.SubscribeEvent, cb centrifuge.SubscribeCallback) {
			cb(centrifuge.SubscribeReply{}, nil)
		})
	})
	if err := node.Run(); err != nil {
		log.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.Handle("/ws", centrifuge.NewWebsocketHandler(node, centrifuge.WebsocketConfig{}))
	loadctl.Handle(mux, func(ctx context.Context, req loadctl.WriteRequest) loadctl.WriteResult {
		return loadctl.Pace(ctx, req.Count, req.Rate, func(i int, sent int64) (int64, error) {
			a, seq := loadctl.Seq(i, req.Anchors)
			_, err := node.Publish("a"+strconv.Itoa(a), loadctl.Payload(seq, sent, req.Payload))
			return 0, err
		})
	}, node.Hub().NumClients)
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%s%s\n", loadctl.AddrPrefix, ln.Addr())
	if *stdinEOF {
		go func() {
			_, _ = io.Copy(io.Discard, os.Stdin)
			os.Exit(0)
		}()
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.Serve(ln))
}
