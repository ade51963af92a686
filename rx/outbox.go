package rx

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// outbox publishes messages to a broker in the order they were queued, on
// its own goroutine, so that the engine and callers holding locks never
// wait for the network. A failing broker is logged once per outage.
type outbox struct {
	broker Broker
	log    *slog.Logger
	what   string // what the messages are, for the log

	mu      sync.Mutex
	queue   []outgoing // guarded by mu
	sending int        // guarded by mu: messages taken from queue, not yet sent
	down    bool       // guarded by mu: the last publish failed
	closed  bool       // guarded by mu
	wake    chan struct{}
	done    chan struct{}
}

type outgoing struct {
	topic   string
	payload []byte
}

func newOutbox(b Broker, log *slog.Logger, what string) *outbox {
	o := &outbox{broker: b, log: log, what: what, wake: make(chan struct{}, 1), done: make(chan struct{})}
	go o.run()
	return o
}

// send queues payload for topic; after close it is dropped.
func (o *outbox) send(topic string, payload []byte) {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	o.queue = append(o.queue, outgoing{topic, payload})
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

func (o *outbox) run() {
	defer close(o.done)
	for {
		o.mu.Lock()
		q, closed := o.queue, o.closed
		o.queue = nil
		o.sending = len(q)
		o.mu.Unlock()
		for _, m := range q {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			err := o.broker.Publish(ctx, m.topic, m.payload)
			cancel()
			o.mu.Lock()
			if err != nil && !o.down {
				o.log.Error("rx: publishing "+o.what+" to other nodes failed; they resync when the broker is back", "err", err)
			}
			o.down = err != nil
			o.sending--
			o.mu.Unlock()
		}
		if len(q) > 0 {
			continue
		}
		if closed {
			return
		}
		<-o.wake
	}
}

// flush waits until every message queued before the call was sent.
func (o *outbox) flush(ctx context.Context) error {
	for {
		o.mu.Lock()
		n := len(o.queue) + o.sending
		o.mu.Unlock()
		if n == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// close sends what is queued, waiting at most until ctx is done, and stops.
func (o *outbox) close(ctx context.Context) {
	_ = o.flush(ctx)
	o.mu.Lock()
	o.closed = true
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
	select {
	case <-o.done:
	case <-ctx.Done():
	}
}
