package rx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// publishTimeout bounds one publish (one batch) to the broker: a hung
// broker costs a batch this long, then the outbox counts as down.
const publishTimeout = 2 * time.Second

// retryPause is the pause before a batch whose publish failed is tried
// again.
const retryPause = 250 * time.Millisecond

// maxBatch is the most messages the outbox hands a BatchPublisher at once.
const maxBatch = 256

// Message is one message for a broker topic.
type Message struct {
	Topic   string
	Payload []byte
}

// BatchPublisher is implemented by brokers that can publish several
// messages in one round trip (RedisBroker pipelines them). The messages
// must reach subscribers in order, as if published one by one. The outbox
// uses it when the broker has it.
type BatchPublisher interface {
	PublishBatch(ctx context.Context, msgs []Message) error
}

// BrokerStats describes the queue of messages a hub hands to its broker
// (commits and presence for the other nodes), for monitoring.
type BrokerStats struct {
	// Queued is the number of messages waiting to be published.
	Queued int
	// Limit is the most messages that may wait (Config.BrokerQueue, per
	// queue: commits and presence each have one).
	Limit int
	// Dropped counts the messages dropped since the hub started because
	// their queue was full.
	Dropped uint64
	// Failed counts the messages whose publish failed since the hub
	// started, once per attempt: a failed batch stays at the head of its
	// queue and is tried again every 250 ms until the broker takes it.
	Failed uint64
	// Down reports that the last publish failed or a queue is full: Wait
	// then fails at once with CodeOverloaded.
	Down bool
}

// outbox publishes messages to a broker in the order they were queued, on
// its own goroutine and in batches, so that the engine and callers holding
// locks never wait for the network. Its queue is bounded: when the broker
// is slower than the messages come (a hung broker), messages past the
// limit are dropped and counted, and flush fails at once. A batch whose
// publish fails is kept and tried again until the broker takes it (or the
// outbox closes), so that the other nodes get every commit that fits in the
// queue, late rather than never. A failing broker is logged once per
// outage.
type outbox struct {
	broker Broker
	log    *slog.Logger
	what   string // what the messages are, for the log
	limit  int

	mu      sync.Mutex
	queue   []Message     // guarded by mu
	queued  uint64        // guarded by mu: messages accepted since the start
	done    uint64        // guarded by mu: accepted messages published or failed
	dropped uint64        // guarded by mu
	failed  uint64        // guarded by mu
	down    bool          // guarded by mu: the last publish failed
	closed  bool          // guarded by mu
	moved   chan struct{} // guarded by mu: closed (and replaced) when done or down change
	wake    chan struct{}
	closing chan struct{} // closed by close: ends a pause between retries
	stopped chan struct{}
}

func newOutbox(b Broker, log *slog.Logger, what string, limit int) *outbox {
	o := &outbox{broker: b, log: log, what: what, limit: limit, moved: make(chan struct{}), wake: make(chan struct{}, 1), closing: make(chan struct{}), stopped: make(chan struct{})}
	go o.run()
	return o
}

// errUnavailableLocked is the error of a flush while the broker is down or
// the queue full: CodeOverloaded (errors.Is(err, ErrOverloaded)), with the
// queue's figures as the internal cause.
func (o *outbox) errUnavailableLocked() error {
	return &Error{Code: CodeOverloaded, Message: "the broker to the other nodes is not keeping up", Err: fmt.Errorf("rx: %s queue to the broker: %d of %d queued, %d dropped: %w", o.what, len(o.queue), o.limit, o.dropped, ErrBrokerDown)}
}

// ErrBrokerDown is the internal cause of Hub.Wait's CodeOverloaded error
// when the broker does not take the messages for the other nodes: its last
// publish failed (it is down or hung) or its queue (Config.BrokerQueue) is
// full.
var ErrBrokerDown = errors.New("rx: the broker is down or not keeping up")

// send queues payload for topic. It reports false when the message was
// dropped: the queue is full, or the outbox closed.
func (o *outbox) send(topic string, payload []byte) bool {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return false
	}
	if len(o.queue) >= o.limit {
		if o.dropped == 0 || !o.down {
			o.log.Error("rx: the queue of "+o.what+" to the broker is full; dropping messages until it drains (other nodes resync at the next reconcile)", "limit", o.limit)
		}
		o.dropped++
		o.down = true
		o.notifyLocked()
		o.mu.Unlock()
		return false
	}
	o.queue = append(o.queue, Message{topic, payload})
	o.queued++
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
	return true
}

// notifyLocked wakes the flushes waiting for progress.
func (o *outbox) notifyLocked() {
	close(o.moved)
	o.moved = make(chan struct{})
}

func (o *outbox) run() {
	defer close(o.stopped)
	for {
		o.mu.Lock()
		if o.closed && o.down && len(o.queue) > 0 {
			// Closing with the broker down: what is left is dropped.
			o.dropped += uint64(len(o.queue))
			o.done += uint64(len(o.queue))
			o.queue = nil
			o.notifyLocked()
		}
		n := min(len(o.queue), maxBatch)
		batch := o.queue[:n:n]
		closed := o.closed
		o.mu.Unlock()
		if n > 0 {
			err := o.publish(batch)
			o.mu.Lock()
			if err != nil {
				// Keep the batch at the head of the queue and try it again
				// after a pause: a commit published late is re-read by the
				// owner and still delivered, while a dropped one would be
				// lost for the streams other nodes own whenever they came
				// back from the outage before this node did (issue 20).
				if !o.down {
					o.log.Error("rx: publishing "+o.what+" to other nodes failed; retrying until the broker is back", "err", err)
				}
				o.failed += uint64(n)
				o.down = true
				o.notifyLocked()
				o.mu.Unlock()
				select {
				case <-time.After(retryPause):
				case <-o.closing:
				}
				continue
			}
			// The queue only grew meanwhile: drop the batch from its head.
			o.queue = o.queue[n:]
			if len(o.queue) == 0 {
				o.queue = nil
			}
			o.down = false
			o.done += uint64(n)
			o.notifyLocked()
			o.mu.Unlock()
			continue
		}
		if closed {
			return
		}
		<-o.wake
	}
}

// publish sends a batch, in one round trip when the broker can.
func (o *outbox) publish(batch []Message) error {
	ctx, cancel := context.WithTimeout(context.Background(), publishTimeout)
	defer cancel()
	if bp, ok := o.broker.(BatchPublisher); ok {
		return bp.PublishBatch(ctx, batch)
	}
	for _, m := range batch {
		if err := o.broker.Publish(ctx, m.Topic, m.Payload); err != nil {
			return err
		}
	}
	return nil
}

// flush waits until every message queued before the call was published.
// While the broker is down (the last publish failed) or the queue is full
// it fails at once with CodeOverloaded, as it does when a publish fails
// meanwhile: waiting costs at most one publish timeout.
func (o *outbox) flush(ctx context.Context) error {
	o.mu.Lock()
	target := o.queued
	for o.done < target {
		if o.down {
			err := o.errUnavailableLocked()
			o.mu.Unlock()
			return err
		}
		moved := o.moved
		o.mu.Unlock()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-moved:
		}
		o.mu.Lock()
	}
	down := o.down
	o.mu.Unlock()
	if down {
		o.mu.Lock()
		defer o.mu.Unlock()
		return o.errUnavailableLocked()
	}
	return nil
}

// stats adds the outbox's figures to s.
func (o *outbox) stats(s *BrokerStats) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s.Queued += len(o.queue)
	s.Limit = o.limit
	s.Dropped += o.dropped
	s.Failed += o.failed
	s.Down = s.Down || o.down
}

// close sends what is queued, waiting at most until ctx is done, and stops.
func (o *outbox) close(ctx context.Context) {
	_ = o.flush(ctx)
	o.mu.Lock()
	if !o.closed {
		close(o.closing)
	}
	o.closed = true
	o.mu.Unlock()
	select {
	case o.wake <- struct{}{}:
	default:
	}
	select {
	case <-o.stopped:
	case <-ctx.Done():
	}
}
