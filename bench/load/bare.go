package load

import (
	"context"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rxgorm/rxgorm/bench/loadctl"
)

// The bare server is the floor of one-frame-per-socket delivery on this
// machine: no library, no per-socket queue or writer goroutine, no
// deadlines. A write encodes its payload once (one prepared frame) and
// GOMAXPROCS goroutines write it to their share of the sockets, directly
// from the publishing call, which returns when every socket has it. It
// speaks the handshake of rxload's centrifuge dialect (connect reply,
// subscribe reply, one publication per frame), so the same clients
// measure it.
//
// Nothing serious would deliver this way: a slow client stalls a whole
// share of the fan-out, and a publish waits for all of it. That is what
// makes it a floor: what any server adds above it is its queueing,
// scheduling and safety.

// bareServer is a running bare server.
type bareServer struct {
	mu    sync.Mutex
	conns map[int][]*websocket.Conn // by anchor: subscribed sockets
	n     int
}

// ServeBare runs the bare server on ln until ctx ends.
func ServeBare(ctx context.Context, ln net.Listener) error {
	b := &bareServer{conns: map[int][]*websocket.Conn{}}
	mux := http.NewServeMux()
	mux.HandleFunc("/ws", b.serveWS)
	loadctl.Handle(mux, b.write, b.sockets)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		return err
	}
	return nil
}

var bareUpgrader = websocket.Upgrader{ReadBufferSize: 1024, WriteBufferSize: 1024,
	CheckOrigin: func(*http.Request) bool { return true }}

func (b *bareServer) serveWS(w http.ResponseWriter, r *http.Request) {
	conn, err := bareUpgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	defer conn.Close()
	anchor := -1
	for {
		_, msg, err := conn.ReadMessage()
		if err != nil {
			break
		}
		// {"id":1,"connect":{}} and {"id":2,"subscribe":{"channel":"a<N>"}}
		id, _ := intField(msg, `"id":`)
		if a, ok := intField(msg, `"channel":"a`); ok && anchor < 0 {
			anchor = int(a)
			b.mu.Lock()
			b.conns[anchor] = append(b.conns[anchor], conn)
			b.n++
			b.mu.Unlock()
		}
		if id > 0 {
			reply := `{"id":` + strconv.FormatInt(id, 10) + `,"connect":{}}`
			if id > 1 {
				reply = `{"id":` + strconv.FormatInt(id, 10) + `,"subscribe":{}}`
			}
			// Under the lock: once subscribed, the socket belongs to the
			// fan-out writers.
			b.mu.Lock()
			err = conn.WriteMessage(websocket.TextMessage, []byte(reply))
			b.mu.Unlock()
			if err != nil {
				break
			}
		}
	}
	if anchor >= 0 {
		b.mu.Lock()
		cs := b.conns[anchor]
		for i, c := range cs {
			if c == conn {
				b.conns[anchor] = append(cs[:i], cs[i+1:]...)
				b.n--
				break
			}
		}
		b.mu.Unlock()
	}
}

func (b *bareServer) sockets() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n
}

// write publishes each write to its anchor's sockets and returns once
// every socket has it. The fan-out holds the lock, so sockets neither
// join nor leave during it and replies never interleave with it.
func (b *bareServer) write(ctx context.Context, req loadctl.WriteRequest) loadctl.WriteResult {
	workers := runtime.GOMAXPROCS(0)
	return loadctl.Pace(ctx, req.Count, req.Rate, func(i int, sent int64) (int64, error) {
		a, seq := loadctl.Seq(i, req.Anchors)
		pm, err := websocket.NewPreparedMessage(websocket.TextMessage, loadctl.Payload(seq, sent, req.Payload))
		if err != nil {
			return 0, err
		}
		b.mu.Lock()
		defer b.mu.Unlock()
		conns := b.conns[a]
		var wg sync.WaitGroup
		for w := range workers {
			wg.Go(func() {
				for j := w; j < len(conns); j += workers {
					_ = conns[j].WritePreparedMessage(pm) // a failed socket ends in its reader
				}
			})
		}
		wg.Wait()
		return 0, nil
	})
}
