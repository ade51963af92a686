package rx

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisBroker is a Broker on Redis pub/sub (github.com/redis/go-redis/v9),
// for several nodes. Topics are Redis channels under a prefix. One
// connection carries every subscription of the node; go-redis reconnects it
// and subscribes again after an outage, which is logged once, and OnRecover
// functions run when Redis is back (the engine uses them to resync what may
// have been missed).
type RedisBroker struct {
	client *redis.Client
	prefix string
	log    *slog.Logger

	mu       sync.Mutex
	ps       *redis.PubSub
	next     int
	handlers map[string]map[int]func([]byte) // guarded by mu
	confirm  map[string][]chan struct{}      // Redis channel → Subscribe calls waiting for its confirmation; guarded by mu
	down     bool                            // guarded by mu
	recover  []func()                        // guarded by mu
	done     chan struct{}
	stop     context.CancelFunc
}

var _ Broker = (*RedisBroker)(nil)

// RedisOptions configures NewRedisBroker. The zero value works.
type RedisOptions struct {
	// Prefix is put before every topic. Empty means "rx:".
	Prefix string
	// Logger receives the outage and recovery lines. Nil means
	// slog.Default().
	Logger *slog.Logger
}

// NewRedisBroker starts a broker on client. Call Close to stop it.
func NewRedisBroker(client *redis.Client, opts RedisOptions) *RedisBroker {
	if opts.Prefix == "" {
		opts.Prefix = "rx:"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	ctx, stop := context.WithCancel(context.Background())
	b := &RedisBroker{client: client, prefix: opts.Prefix, log: opts.Logger, handlers: map[string]map[int]func([]byte){}, confirm: map[string][]chan struct{}{}, done: make(chan struct{}), stop: stop}
	b.ps = client.Subscribe(ctx)
	go b.run(ctx)
	return b
}

// Publish implements Broker.
func (b *RedisBroker) Publish(ctx context.Context, topic string, payload []byte) error {
	if err := b.client.Publish(ctx, b.prefix+topic, payload).Err(); err != nil {
		return fmt.Errorf("rx: redis publish %s: %w", topic, err)
	}
	return nil
}

var _ BatchPublisher = (*RedisBroker)(nil)

// PublishBatch implements BatchPublisher: the messages go in one pipeline,
// one round trip, in order.
func (b *RedisBroker) PublishBatch(ctx context.Context, msgs []Message) error {
	if len(msgs) == 0 {
		return nil
	}
	_, err := b.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for _, m := range msgs {
			p.Publish(ctx, b.prefix+m.Topic, m.Payload)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rx: redis publish %d messages: %w", len(msgs), err)
	}
	return nil
}

// Subscribe implements Broker. The subscription is active on Redis when it
// returns: it waits for Redis to confirm it, at most 2 s (while Redis is
// down, or past that, it returns with the subscription pending: go-redis
// makes it when Redis is back, and OnRecover functions run).
func (b *RedisBroker) Subscribe(ctx context.Context, topic string, handle func([]byte)) (func(), error) {
	b.mu.Lock()
	b.next++
	id := b.next
	first := len(b.handlers[topic]) == 0
	if first {
		b.handlers[topic] = map[int]func([]byte){}
	}
	b.handlers[topic][id] = handle
	b.mu.Unlock()
	if first {
		if err := b.subscribe(ctx, topic); err != nil {
			b.remove(topic, id)
			return nil, err
		}
	}
	return func() { b.remove(topic, id) }, nil
}

// subscribeTimeout bounds the wait for Redis to confirm a subscription:
// past it (or at once while Redis is known to be down) Subscribe returns
// with the subscription pending, as go-redis makes it again when the
// connection is back, and the OnRecover functions resync what was missed.
// The engine subscribes on its goroutine (following a stream): a Redis
// outage must not hold it longer.
const subscribeTimeout = 2 * time.Second

// subscribe sends SUBSCRIBE for topic and waits until Redis confirms it
// (the confirmation arrives on the receiving goroutine), so that a message
// published after Subscribe returns reaches the handler.
func (b *RedisBroker) subscribe(ctx context.Context, topic string) error {
	channel := b.prefix + topic
	confirmed := make(chan struct{})
	b.mu.Lock()
	b.confirm[channel] = append(b.confirm[channel], confirmed)
	b.mu.Unlock()
	defer func() {
		b.mu.Lock()
		b.confirm[channel] = slices.DeleteFunc(b.confirm[channel], func(c chan struct{}) bool { return c == confirmed })
		if len(b.confirm[channel]) == 0 {
			delete(b.confirm, channel)
		}
		b.mu.Unlock()
	}()
	if err := b.ps.Subscribe(ctx, channel); err != nil {
		return fmt.Errorf("rx: redis subscribe %s: %w", topic, err)
	}
	b.mu.Lock()
	down := b.down
	b.mu.Unlock()
	if down {
		return nil // pending until Redis is back
	}
	timer := time.NewTimer(subscribeTimeout)
	defer timer.Stop()
	select {
	case <-confirmed:
		return nil
	case <-timer.C:
		b.log.Warn("rx: redis did not confirm a subscription in time; it stays pending", "topic", topic)
		return nil
	case <-b.done:
		return fmt.Errorf("rx: redis subscribe %s: %w", topic, redis.ErrClosed)
	case <-ctx.Done():
		return fmt.Errorf("rx: redis subscribe %s: no confirmation: %w", topic, ctx.Err())
	}
}

func (b *RedisBroker) remove(topic string, id int) {
	b.mu.Lock()
	delete(b.handlers[topic], id)
	last := len(b.handlers[topic]) == 0
	if last {
		delete(b.handlers, topic)
	}
	b.mu.Unlock()
	if last {
		_ = b.ps.Unsubscribe(context.Background(), b.prefix+topic)
	}
}

// OnRecover registers f to run each time Redis answers again after an
// outage.
func (b *RedisBroker) OnRecover(f func()) {
	b.mu.Lock()
	b.recover = append(b.recover, f)
	b.mu.Unlock()
}

func (b *RedisBroker) run(ctx context.Context) {
	defer close(b.done)
	for {
		msg, err := b.ps.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, redis.ErrClosed) {
				return
			}
			b.setDown(err)
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		switch m := msg.(type) {
		case *redis.Message:
			b.mu.Lock()
			topic := m.Channel[len(b.prefix):]
			hs := make([]func([]byte), 0, len(b.handlers[topic]))
			for _, h := range b.handlers[topic] {
				hs = append(hs, h)
			}
			b.mu.Unlock()
			for _, h := range hs {
				h([]byte(m.Payload))
			}
		case *redis.Subscription:
			if m.Kind == "subscribe" {
				b.mu.Lock()
				for _, c := range b.confirm[m.Channel] {
					close(c)
				}
				delete(b.confirm, m.Channel)
				b.mu.Unlock()
			}
			b.setUp()
		case *redis.Pong:
			b.setUp()
		}
	}
}

func (b *RedisBroker) setDown(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.down {
		b.down = true
		b.log.Error("rx: redis broker unavailable; serving local subscribers until it returns", "err", err)
	}
}

func (b *RedisBroker) setUp() {
	b.mu.Lock()
	was := b.down
	b.down = false
	fs := append([]func(){}, b.recover...)
	b.mu.Unlock()
	if was {
		b.log.Info("rx: redis broker is back")
		for _, f := range fs {
			f()
		}
	}
}

// Close stops the broker (not the client).
func (b *RedisBroker) Close() error {
	b.stop()
	err := b.ps.Close()
	<-b.done
	return err
}

// leaseScript acquires or renews KEYS[i] for ARGV[1] for ARGV[2] ms and
// returns each key's holder after the call.
var leaseScript = redis.NewScript(`
local out = {}
for i, k in ipairs(KEYS) do
  local v = redis.call('GET', k)
  if v == ARGV[1] then
    redis.call('PEXPIRE', k, ARGV[2])
  elseif not v then
    redis.call('SET', k, ARGV[1], 'PX', ARGV[2])
    v = ARGV[1]
  end
  out[i] = v
end
return out`)

// releaseScript deletes each of KEYS held by ARGV[1].
var releaseScript = redis.NewScript(`
for _, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then redis.call('DEL', k) end
end
return 0`)

var _ Leaser = (*RedisBroker)(nil)

// Lease implements Leaser with one Lua script per call, so that a whole
// renewal round is one round trip.
func (b *RedisBroker) Lease(ctx context.Context, holder string, ttl time.Duration, keys []string) ([]string, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	full := b.prefixed(keys)
	res, err := leaseScript.Run(ctx, b.client, full, holder, ttl.Milliseconds()).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("rx: redis lease: %w", err)
	}
	return res, nil
}

// Holders implements Leaser.
func (b *RedisBroker) Holders(ctx context.Context, keys []string) ([]string, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	full := b.prefixed(keys)
	vals, err := b.client.MGet(ctx, full...).Result()
	if err != nil {
		return nil, fmt.Errorf("rx: redis lease holders: %w", err)
	}
	out := make([]string, len(vals))
	for i, v := range vals {
		out[i], _ = v.(string)
	}
	return out, nil
}

// Release implements Leaser.
func (b *RedisBroker) Release(ctx context.Context, holder string, keys []string) error {
	if len(keys) == 0 {
		return nil
	}
	full := b.prefixed(keys)
	if err := releaseScript.Run(ctx, b.client, full, holder).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("rx: redis lease release: %w", err)
	}
	return nil
}

func (b *RedisBroker) prefixed(keys []string) []string {
	full := make([]string, len(keys))
	for i, k := range keys {
		full[i] = b.prefix + k
	}
	return full
}
