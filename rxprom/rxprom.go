// Package rxprom exports the figures of an rx.Hub and a channel.Server to
// Prometheus. It lives apart from rx and channel so that applications that
// do not use Prometheus do not link its client.
//
//	reg := prometheus.NewRegistry()
//	reg.MustRegister(rxprom.New(hub, srv)) // srv may be nil: a hub alone
//	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
//
// The Collector reads Hub.Stats and Server.Stats at each scrape, and
// observes the two latencies as they happen through Hub.SetObserver and
// Server.SetObserver (a histogram observation per subscription and per
// delta frame written; no lock). Deltas and frames per second are the
// rates of their counters, e.g. rate(rxgorm_deltas_total[1m]).
//
// The metrics, all prefixed rxgorm_:
//
//	rxgorm_sockets                   gauge      open WebSocket connections
//	rxgorm_subscriptions             gauge      open subscriptions (sockets' and Go subscribers')
//	rxgorm_hot_streams               gauge      streams held hot on this node (owned or followed)
//	rxgorm_engine_backlog            gauge      items waiting in the engine's queue
//	rxgorm_deltas_total              counter    deltas made from commits, one per stream and version
//	rxgorm_cold_loads_total          counter    streams loaded from the database because they were cold
//	rxgorm_frames_total              counter    data frames written to sockets
//	rxgorm_writes_total              counter    writes (system calls) to the sockets' connections
//	rxgorm_sent_bytes_total          counter    bytes of data frames written to sockets (payloads)
//	rxgorm_queued_frames             gauge      frames waiting in the sockets' send queues
//	rxgorm_queued_bytes              gauge      bytes queued or being written to sockets
//	rxgorm_errors_total{code}        counter    errors sent to clients, by rx error code
//	rxgorm_broker_queue              gauge      messages waiting for the broker (other nodes)
//	rxgorm_broker_dropped_total      counter    broker messages dropped because the queue was full
//	rxgorm_broker_failed_total       counter    broker messages whose publish failed
//	rxgorm_broker_down               gauge      1 while the broker is failing or its queue is full
//	rxgorm_snapshot_seconds          histogram  time of a successful Subscribe (authorize, load, snapshot)
//	rxgorm_commit_to_send_seconds    histogram  time from a commit to its delta frame's write, per socket
//
// Without a Server the socket metrics are left out. rxgorm_errors_total
// has a series for every code of package rx from the start (zero until
// one is sent), so that rates work from the first scrape.
package rxprom

import (
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rxgorm/rxgorm/channel"
	"github.com/rxgorm/rxgorm/rx"
)

// Buckets are the upper bounds, in seconds, of the buckets of both
// latency histograms: from half a millisecond to ten seconds.
var Buckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// codes are the error codes of package rx, each given a series of
// rxgorm_errors_total from the start.
var codes = []rx.Code{
	rx.CodeUnauthenticated, rx.CodeForbidden, rx.CodeNotFound, rx.CodeBadRequest,
	rx.CodeUnknownAction, rx.CodeInternal, rx.CodeOverloaded, rx.CodeTooLarge,
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc("rxgorm_"+name, help, labels, nil)
}

var (
	descSockets       = desc("sockets", "Open WebSocket connections.")
	descSubscriptions = desc("subscriptions", "Open subscriptions, of sockets and Go subscribers.")
	descHotStreams    = desc("hot_streams", "Streams held hot on this node, owned or followed.")
	descBacklog       = desc("engine_backlog", "Items waiting in the engine's queue: commits, subscriptions, loads.")
	descDeltas        = desc("deltas_total", "Deltas made from commits, one per stream and version.")
	descColdLoads     = desc("cold_loads_total", "Streams loaded from the database because they were cold.")
	descFrames        = desc("frames_total", "Data messages written to sockets (a joined frame counts each of its messages).")
	descWrites        = desc("writes_total", "Writes (system calls) to the sockets' connections.")
	descSentBytes     = desc("sent_bytes_total", "Bytes of data frames written to sockets (payloads, without framing).")
	descQueuedFrames  = desc("queued_frames", "Frames waiting in the sockets' send queues.")
	descQueuedBytes   = desc("queued_bytes", "Bytes of frames queued for sockets or being written.")
	descErrors        = desc("errors_total", "Errors sent to clients (error frames and failed results), by code.", "code")
	descBrokerQueue   = desc("broker_queue", "Messages waiting to be published to the broker for the other nodes.")
	descBrokerDropped = desc("broker_dropped_total", "Broker messages dropped because their queue was full.")
	descBrokerFailed  = desc("broker_failed_total", "Broker messages whose publish failed.")
	descBrokerDown    = desc("broker_down", "1 while the broker's last publish failed or a queue is full, else 0.")
)

// Collector is a prometheus.Collector of a hub's and a server's figures.
// Create it with New and register it once.
type Collector struct {
	hub          *rx.Hub
	srv          *channel.Server
	snapshot     prometheus.Histogram
	commitToSend prometheus.Histogram
}

// New returns a Collector of hub's figures and, unless srv is nil, of
// srv's, and makes it the observer of both (Hub.SetObserver,
// Server.SetObserver), replacing any other: create one Collector per hub.
func New(hub *rx.Hub, srv *channel.Server) *Collector {
	c := &Collector{
		hub: hub,
		srv: srv,
		snapshot: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rxgorm_snapshot_seconds",
			Help:    "Time of a successful Subscribe: authorize, load cold streams, read the snapshots.",
			Buckets: Buckets,
		}),
		commitToSend: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "rxgorm_commit_to_send_seconds",
			Help:    "Time from a commit to the write of its delta frame, per socket.",
			Buckets: Buckets,
		}),
	}
	hub.SetObserver(observer{c})
	if srv != nil {
		srv.SetObserver(observer{c})
	}
	return c
}

// observer feeds the histograms; it implements rx.Observer and
// channel.Observer.
type observer struct{ c *Collector }

func (o observer) ObserveSnapshot(d time.Duration) { o.c.snapshot.Observe(d.Seconds()) }

func (o observer) ObserveCommitToSend(d time.Duration) { o.c.commitToSend.Observe(d.Seconds()) }

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSubscriptions, descHotStreams, descBacklog, descDeltas, descColdLoads,
		descBrokerQueue, descBrokerDropped, descBrokerFailed, descBrokerDown} {
		ch <- d
	}
	c.snapshot.Describe(ch)
	if c.srv != nil {
		for _, d := range []*prometheus.Desc{descSockets, descFrames, descWrites, descSentBytes, descQueuedFrames, descQueuedBytes, descErrors} {
			ch <- d
		}
		c.commitToSend.Describe(ch)
	}
}

// Collect implements prometheus.Collector: it reads Hub.Stats and
// Server.Stats.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	h := c.hub.Stats()
	gauge(descSubscriptions, float64(h.Subscriptions))
	gauge(descHotStreams, float64(h.HotStreams))
	gauge(descBacklog, float64(h.Backlog))
	counter(descDeltas, float64(h.Deltas))
	counter(descColdLoads, float64(h.ColdLoads))
	gauge(descBrokerQueue, float64(h.Broker.Queued))
	counter(descBrokerDropped, float64(h.Broker.Dropped))
	counter(descBrokerFailed, float64(h.Broker.Failed))
	down := 0.0
	if h.Broker.Down {
		down = 1
	}
	gauge(descBrokerDown, down)
	c.snapshot.Collect(ch)
	if c.srv == nil {
		return
	}
	s := c.srv.Stats()
	gauge(descSockets, float64(s.Sockets))
	counter(descFrames, float64(s.Frames))
	counter(descWrites, float64(s.Writes))
	counter(descSentBytes, float64(s.Bytes))
	gauge(descQueuedFrames, float64(s.QueuedFrames))
	gauge(descQueuedBytes, float64(s.QueuedBytes))
	for _, code := range codes {
		counter(descErrors, float64(s.Errors[code]), string(code))
	}
	others := make([]rx.Code, 0, len(s.Errors))
	for code := range s.Errors {
		if !slices.Contains(codes, code) {
			others = append(others, code)
		}
	}
	slices.Sort(others)
	for _, code := range others {
		counter(descErrors, float64(s.Errors[code]), string(code))
	}
	c.commitToSend.Collect(ch)
}
