package rx

import (
	"context"
	"sync"
)

// Broker carries messages between the nodes (processes) serving one
// application, so that what happens on one node reaches subscribers on all:
// group events and system broadcasts today, stream deltas next.
//
// A message published to a topic reaches every handler subscribed to that
// topic on every node, the publishing node included, in the order one
// publisher published them. Handlers run on the broker's goroutine and must
// not block.
type Broker interface {
	// Publish sends payload to every subscriber of topic.
	Publish(ctx context.Context, topic string, payload []byte) error
	// Subscribe calls handle with every message of topic until the
	// returned function is called.
	Subscribe(ctx context.Context, topic string, handle func(payload []byte)) (unsubscribe func(), err error)
}

// MemoryBroker is the in-process Broker, the default: one node.
type MemoryBroker struct {
	mu     sync.RWMutex
	next   int
	topics map[string]map[int]func([]byte) // guarded by mu
}

var _ Broker = (*MemoryBroker)(nil)

// NewMemoryBroker returns an in-process broker.
func NewMemoryBroker() *MemoryBroker {
	return &MemoryBroker{topics: map[string]map[int]func([]byte){}}
}

// Publish implements Broker: handlers run before it returns.
func (b *MemoryBroker) Publish(ctx context.Context, topic string, payload []byte) error {
	b.mu.RLock()
	hs := make([]func([]byte), 0, len(b.topics[topic]))
	for _, h := range b.topics[topic] {
		hs = append(hs, h)
	}
	b.mu.RUnlock()
	for _, h := range hs {
		h(payload)
	}
	return nil
}

// Subscribe implements Broker.
func (b *MemoryBroker) Subscribe(ctx context.Context, topic string, handle func([]byte)) (func(), error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.next++
	id := b.next
	if b.topics[topic] == nil {
		b.topics[topic] = map[int]func([]byte){}
	}
	b.topics[topic][id] = handle
	return func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		delete(b.topics[topic], id)
		if len(b.topics[topic]) == 0 {
			delete(b.topics, topic)
		}
	}, nil
}
