package rxprom

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// The cost the collector adds per delta frame written: one histogram
// observation (docs/BENCHMARKS.md, issue 16).
func BenchmarkObserveCommitToSend(b *testing.B) {
	c := &Collector{commitToSend: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Buckets: Buckets})}
	o := observer{c}
	d := 3 * time.Millisecond
	for b.Loop() {
		o.ObserveCommitToSend(d)
	}
}

// The same from every core at once: the writers of many sockets observing
// into the one histogram.
func BenchmarkObserveCommitToSendParallel(b *testing.B) {
	c := &Collector{commitToSend: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Buckets: Buckets})}
	o := observer{c}
	b.RunParallel(func(pb *testing.PB) {
		d := 3 * time.Millisecond
		for pb.Next() {
			o.ObserveCommitToSend(d)
		}
	})
}
