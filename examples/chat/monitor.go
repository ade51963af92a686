package main

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rxgorm/rxgorm/rxprom"
)

// Monitoring: GET /metrics (Prometheus: rxgorm's figures through package
// rxprom, and Go's runtime and process figures) and GET /healthz (200 when
// the database, the cache store and the broker answer; 503 with what does
// not).

// healthTimeout bounds each check of /healthz.
const healthTimeout = 2 * time.Second

// check is a dependency /healthz checks: ping answers whether it is
// reachable; a nil ping is an in-process one, always up.
type check struct {
	ping func(context.Context) error
	// what it is when up: "ok", or "in memory" / "in process" for the
	// embedded defaults.
	up string
}

// health is the body of /healthz.
type health struct {
	// Status is "ok" or "unavailable".
	Status string `json:"status"`
	// Checks says, for database, store and broker, "ok" (or "in memory",
	// "in process" for the embedded defaults) or "unreachable".
	Checks map[string]string `json:"checks"`
}

// monitor serves /metrics and /healthz on s.
func (s *server) monitor() {
	reg := prometheus.NewRegistry()
	reg.MustRegister(rxprom.New(s.app.Hub, s.rx), collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	s.mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	s.checks = map[string]check{
		"database": {ping: func(ctx context.Context) error {
			db, err := s.app.DB.DB()
			if err != nil {
				return err
			}
			return db.PingContext(ctx)
		}, up: "ok"},
		"store":  {up: "in memory"},
		"broker": {up: "in process"},
	}
	s.mux.HandleFunc("GET /healthz", s.healthz)
}

// healthz checks the database, the store and the broker at once, each
// within healthTimeout. The causes of failures go to the log, not to the
// client.
func (s *server) healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), healthTimeout)
	defer cancel()
	h := health{Status: "ok", Checks: map[string]string{}}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, c := range s.checks {
		wg.Go(func() {
			state := c.up
			if c.ping != nil {
				if err := c.ping(ctx); err != nil {
					slog.Error("chat: health check failed", "check", name, "err", err)
					state = "unreachable"
				}
			}
			mu.Lock()
			h.Checks[name] = state
			mu.Unlock()
		})
	}
	wg.Wait()
	if h.Checks["broker"] != "unreachable" && s.app.Hub.BrokerStats().Down {
		h.Checks["broker"] = "unreachable" // pings, but publishing fails
	}
	code := http.StatusOK
	for _, state := range h.Checks {
		if state == "unreachable" {
			h.Status, code = "unavailable", http.StatusServiceUnavailable
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(h)
}
