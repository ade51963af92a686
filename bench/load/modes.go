package load

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/gorilla/websocket"
)

// quietLogger logs warnings and errors only: a load run would otherwise
// print a line per closed socket.
func quietLogger() *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// runIdle opens the clients, subscribes them, lets them sit, and reports
// the server's heap and RSS growth per socket.
func runIdle(ctx context.Context, t *target, cfg Config, p *progress) (*Report, error) {
	st0, err := t.stats(ctx, true)
	if err != nil {
		return nil, err
	}
	clients, err := connectAll(ctx, t, cfg.Clients, cfg.Anchors, p.set)
	if err != nil {
		return nil, err
	}
	defer func() {
		for _, c := range clients {
			c.close()
		}
	}()
	p.set(fmt.Sprintf("%s: %d sockets open, holding %v", t.dialect, len(clients), cfg.Hold))
	select {
	case <-time.After(cfg.Hold):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	st1, err := t.stats(ctx, true)
	if err != nil {
		return nil, err
	}
	// The heap profile (inuse_space) of the server with the sockets open.
	if err := t.stopProfile(ctx, cfg.Profile, ".heap"); err != nil {
		return nil, err
	}
	n := float64(len(clients))
	rep := &Report{Mode: "idle", Server: t.dialect, Clients: len(clients), Anchors: cfg.Anchors, Sockets: st1.Sockets,
		HeapPerSocket:       (float64(st1.HeapInuse) - float64(st0.HeapInuse)) / n,
		RSSPerSocket:        (float64(st1.RSS) - float64(st0.RSS)) / n,
		StackPerSocket:      (float64(st1.StackInuse) - float64(st0.StackInuse)) / n,
		GoroutinesPerSocket: float64(st1.Goroutines-st0.Goroutines) / n,
		ServerMaxRSS:        st1.MaxRSS}
	if t.dialect == RxGorm {
		rep.Store, rep.DB = cfg.Server.store(), cfg.Server.db()
	}
	if cfg.InProc && cfg.Connect == "" {
		rep.Notes = append(rep.Notes, "-inproc: the per-socket figures include the clients' own sockets and buffers")
	}
	return rep, nil
}

// runSnapshot times subscribe → done on one socket for each snapshot
// board, cold (the stream expired first, so it loads from the database)
// and hot (from the cache store).
func runSnapshot(ctx context.Context, t *target, cfg Config, p *progress) (*Report, error) {
	rep := &Report{Mode: "snapshot", Server: t.dialect, Store: cfg.Server.store(), DB: cfg.Server.db()}
	c, err := dial(ctx, t, 0, 0, 0)
	if err != nil {
		return nil, err
	}
	defer c.close()
	if err := t.startProfile(ctx, cfg.Profile); err != nil {
		return nil, err
	}
	sub := 1
	for _, sb := range SnapshotBoards {
		for _, cold := range []bool{true, false} {
			sc := SnapshotCase{Instances: sb.Tree.Instances(), Cold: cold, Store: rep.Store}
			for i := 0; i < cfg.Repeat; i++ {
				p.set(fmt.Sprintf("snapshot %d instances cold=%v: %d/%d", sc.Instances, cold, i, cfg.Repeat))
				if cold {
					if err := t.expire(ctx, sb.ID); err != nil {
						return nil, err
					}
				}
				sub++
				start := time.Now()
				got, err := c.snapshot(sub, sb.ID)
				if err != nil {
					return nil, err
				}
				ms := float64(time.Since(start).Microseconds()) / 1e3
				if got != sc.Instances {
					return nil, fmt.Errorf("rxload: snapshot of board %d had %d instances, want %d", sb.ID, got, sc.Instances)
				}
				sc.Ms = append(sc.Ms, ms)
				if err := c.send(fmt.Sprintf(`{"type":"unsub","id":%d}`, sub)); err != nil {
					return nil, err
				}
				if err := c.readUntil(`"unsubscribed"`, time.Minute); err != nil {
					return nil, err
				}
			}
			sc.MedianMs = median(sc.Ms)
			rep.Snapshots = append(rep.Snapshots, sc)
		}
	}
	return rep, t.stopProfile(ctx, cfg.Profile, ".allocs")
}

// snapshot subscribes to board with subscription id sub and reads until
// done, counting the instances received.
func (c *client) snapshot(sub int, board uint) (int, error) {
	if err := c.send(fmt.Sprintf(`{"type":"sub","id":%d,"channel":"BoardChannel","params":{"boardId":%d}}`, sub, board)); err != nil {
		return 0, err
	}
	_ = c.conn.SetReadDeadline(time.Now().Add(5 * time.Minute))
	defer c.conn.SetReadDeadline(time.Time{})
	n := 0
	for {
		typ, data, err := c.conn.ReadMessage()
		if err != nil {
			return n, err
		}
		if typ != websocket.TextMessage {
			continue
		}
		switch {
		case bytes.HasPrefix(data, []byte(`{"type":"snapshot"`)):
			// Each instance object starts with its "type" key.
			n += bytes.Count(data, []byte(`{"type":"`)) - 1
		case bytes.HasPrefix(data, []byte(`{"type":"done"`)):
			return n, nil
		case bytes.HasPrefix(data, []byte(`{"type":"error"`)):
			return n, fmt.Errorf("rxload: %s", data)
		}
	}
}
