package rx

import (
	"context"
	"time"
)

// HoldRetries makes h's engine hand each retry of a failed batch to the
// returned channel instead of scheduling it after retryDelays: the test
// calls it (it queues the attempt on the engine) when it chooses, so that
// what runs before the retry does not depend on timing.
func HoldRetries(h *Hub) <-chan func() {
	ch := make(chan func(), 16)
	_ = h.engine.call(context.Background(), func() {
		h.engine.retryAfter = func(_ time.Duration, f func()) { ch <- f }
	})
	return ch
}
