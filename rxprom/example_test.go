package rxprom_test

import (
	"bufio"
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/rxgorm/rxgorm/channel"
	"github.com/rxgorm/rxgorm/rx"
	"github.com/rxgorm/rxgorm/rxprom"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// A hub and its WebSocket server exported to Prometheus at /metrics: after
// one subscription and one commit, the scrape shows them.
func ExampleNew() {
	dir, err := os.MkdirTemp("", "rxprom-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	db, err := gorm.Open(sqlite.Open("file:"+filepath.Join(dir, "app.db")+"?_journal_mode=WAL&_busy_timeout=5000"), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		log.Fatal(err)
	}
	if s, err := db.DB(); err == nil {
		defer s.Close()
	}
	if err := db.AutoMigrate(&Board{}, &Note{}); err != nil {
		log.Fatal(err)
	}
	db.Create(&Board{Title: "ideas"})

	hub, err := rx.New(db, rx.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	if err := hub.Register(&BoardChannel{}); err != nil {
		log.Fatal(err)
	}
	srv := channel.NewServer(hub, channel.Options{})

	// The collector, in a registry of its own, served at /metrics.
	reg := prometheus.NewRegistry()
	reg.MustRegister(rxprom.New(hub, srv))
	mux := http.NewServeMux()
	mux.Handle("GET /rx", srv)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ts := httptest.NewServer(mux)
	defer ts.Close()

	ctx := context.Background()
	sub, err := hub.Subscribe(ctx, "BoardChannel", BoardParams{BoardID: 1}, rx.User{ID: "7"}, rx.SubscribeOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	<-sub.Events() // the snapshot
	db.Create(&Note{BoardID: 1, Text: "ship it"})
	<-sub.Events() // its delta

	res, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		log.Fatal(err)
	}
	defer res.Body.Close()
	sc := bufio.NewScanner(res.Body)
	for sc.Scan() {
		line := sc.Text()
		for _, name := range []string{"rxgorm_subscriptions ", "rxgorm_deltas_total ", "rxgorm_cold_loads_total ", "rxgorm_snapshot_seconds_count "} {
			if strings.HasPrefix(line, name) {
				fmt.Println(line)
			}
		}
	}
	// Output:
	// rxgorm_cold_loads_total 1
	// rxgorm_deltas_total 1
	// rxgorm_snapshot_seconds_count 1
	// rxgorm_subscriptions 1
}
