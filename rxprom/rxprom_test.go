package rxprom_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"
	"github.com/rxgorm/rxgorm/channel"
	"github.com/rxgorm/rxgorm/rx"
	"github.com/rxgorm/rxgorm/rx/rxtest"
	"github.com/rxgorm/rxgorm/rxprom"
	"gorm.io/gorm"
)

// Models: a board of notes.
type Board struct {
	ID    uint   `gorm:"primaryKey" json:"id"`
	Title string `json:"title"`
	Notes []Note `json:"notes"`
}

type Note struct {
	ID      uint   `gorm:"primaryKey" json:"id"`
	BoardID uint   `json:"boardId"`
	Text    string `json:"text"`
}

type BoardParams struct {
	BoardID uint `json:"boardId"`
}

// BoardChannel is one board, open to everyone.
type BoardChannel struct{ rx.Channel[Board, BoardParams] }

func (BoardChannel) Authorize(context.Context, rx.User, BoardParams) error { return nil }

// setup opens a database with board 1, a hub, a WebSocket server at /rx,
// the collector in a registry and /metrics.
func setup(t *testing.T) (*gorm.DB, *rx.Hub, *httptest.Server, *prometheus.Registry, *rxprom.Collector) {
	t.Helper()
	db := rxtest.SQLite(t)
	if err := db.AutoMigrate(&Board{}, &Note{}); err != nil {
		t.Fatal(err)
	}
	if err := db.Create(&Board{Title: "ideas"}).Error; err != nil {
		t.Fatal(err)
	}
	hub, err := rx.New(db, rx.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = hub.Close() })
	if err := hub.Register(&BoardChannel{}); err != nil {
		t.Fatal(err)
	}
	srv := channel.NewServer(hub, channel.Options{})
	reg := prometheus.NewRegistry()
	c := rxprom.New(hub, srv)
	reg.MustRegister(c)
	mux := http.NewServeMux()
	mux.Handle("GET /rx", srv)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ts := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		ts.Close()
	})
	return db, hub, ts, reg, c
}

// values gathers reg: gauges and counters by name (with labels as
// name{k="v"}), histograms as name_count and name_sum.
func values(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			if len(m.GetLabel()) > 0 {
				var ls []string
				for _, l := range m.GetLabel() {
					ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
				sort.Strings(ls)
				name += "{" + strings.Join(ls, ",") + "}"
			}
			switch mf.GetType() {
			case dto.MetricType_GAUGE:
				out[name] = m.GetGauge().GetValue()
			case dto.MetricType_COUNTER:
				out[name] = m.GetCounter().GetValue()
			case dto.MetricType_HISTOGRAM:
				out[name+"_count"] = float64(m.GetHistogram().GetSampleCount())
				out[name+"_sum"] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

// client is a WebSocket client of the protocol.
type client struct {
	t    *testing.T
	conn *websocket.Conn
}

func dial(t *testing.T, ts *httptest.Server) *client {
	t.Helper()
	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(ts.URL, "http")+"/rx", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &client{t, conn}
	c.send(`{"type":"hello","v":1}`)
	c.read("welcome")
	return c
}

func (c *client) send(frame string) {
	c.t.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
		c.t.Fatal(err)
	}
}

// read returns the next frame, which must be of type typ.
func (c *client) read(typ string) map[string]any {
	c.t.Helper()
	_ = c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, data, err := c.conn.ReadMessage()
	if err != nil {
		c.t.Fatalf("waiting for %s: %v", typ, err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		c.t.Fatal(err)
	}
	if m["type"] != typ {
		c.t.Fatalf("got %s, want a %s frame", data, typ)
	}
	return m
}

// The collector over a live hub and server: a socket subscribes, a commit
// is delivered to it, a bad subscription is refused, and every figure
// moves as it should.
func TestCollectorLive(t *testing.T) {
	db, hub, ts, reg, c := setup(t)
	if problems, err := testutil.CollectAndLint(c); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
	v := values(t, reg)
	for _, name := range []string{"rxgorm_sockets", "rxgorm_subscriptions", "rxgorm_hot_streams", "rxgorm_deltas_total",
		"rxgorm_frames_total", "rxgorm_sent_bytes_total", "rxgorm_cold_loads_total", "rxgorm_snapshot_seconds_count",
		"rxgorm_commit_to_send_seconds_count", `rxgorm_errors_total{code="not_found"}`, "rxgorm_engine_backlog",
		"rxgorm_queued_bytes", "rxgorm_queued_frames", "rxgorm_broker_queue", "rxgorm_broker_down", "rxgorm_writes_total",
		"rxgorm_broker_dropped_total", "rxgorm_broker_failed_total"} {
		got, ok := v[name]
		if !ok {
			t.Fatalf("%s missing before any traffic; have %v", name, v)
		}
		if got != 0 {
			t.Errorf("%s = %v before any traffic, want 0", name, got)
		}
	}

	cl := dial(t, ts)
	cl.send(`{"type":"sub","id":"s1","channel":"BoardChannel","params":{"boardId":1}}`)
	cl.read("snapshot")
	cl.read("done")
	if err := hub.Wait(context.Background()); err != nil { // the engine's figures are stored after each item
		t.Fatal(err)
	}
	v = values(t, reg)
	want := map[string]float64{
		"rxgorm_sockets": 1, "rxgorm_subscriptions": 1, "rxgorm_hot_streams": 1, "rxgorm_cold_loads_total": 1,
		"rxgorm_snapshot_seconds_count": 1, "rxgorm_deltas_total": 0,
	}
	for name, w := range want {
		if v[name] != w {
			t.Errorf("after subscribing: %s = %v, want %v", name, v[name], w)
		}
	}
	if v["rxgorm_frames_total"] < 3 { // welcome, snapshot, done
		t.Errorf("after subscribing: rxgorm_frames_total = %v, want >= 3", v["rxgorm_frames_total"])
	}
	if v["rxgorm_snapshot_seconds_sum"] <= 0 {
		t.Errorf("rxgorm_snapshot_seconds_sum = %v, want > 0", v["rxgorm_snapshot_seconds_sum"])
	}
	frames, sent := v["rxgorm_frames_total"], v["rxgorm_sent_bytes_total"]

	if err := db.Create(&Note{BoardID: 1, Text: "ship it"}).Error; err != nil {
		t.Fatal(err)
	}
	cl.read("delta")
	v = values(t, reg)
	if v["rxgorm_deltas_total"] != 1 {
		t.Errorf("after a commit: rxgorm_deltas_total = %v, want 1", v["rxgorm_deltas_total"])
	}
	if v["rxgorm_commit_to_send_seconds_count"] != 1 || v["rxgorm_commit_to_send_seconds_sum"] <= 0 {
		t.Errorf("after a commit: rxgorm_commit_to_send_seconds count %v sum %v, want 1 and > 0",
			v["rxgorm_commit_to_send_seconds_count"], v["rxgorm_commit_to_send_seconds_sum"])
	}
	if v["rxgorm_frames_total"] != frames+1 {
		t.Errorf("after a commit: rxgorm_frames_total = %v, want %v", v["rxgorm_frames_total"], frames+1)
	}
	if v["rxgorm_sent_bytes_total"] <= sent {
		t.Errorf("after a commit: rxgorm_sent_bytes_total = %v, want > %v", v["rxgorm_sent_bytes_total"], sent)
	}

	cl.send(`{"type":"sub","id":"s2","channel":"NoSuchChannel","params":{}}`)
	cl.read("error")
	cl.send(`{"type":"unsub","id":"s1"}`)
	cl.read("unsubscribed")
	v = values(t, reg)
	if v[`rxgorm_errors_total{code="not_found"}`] != 1 || v[`rxgorm_errors_total{code="forbidden"}`] != 0 {
		t.Errorf("errors: not_found %v forbidden %v, want 1 and 0", v[`rxgorm_errors_total{code="not_found"}`], v[`rxgorm_errors_total{code="forbidden"}`])
	}
	if v["rxgorm_subscriptions"] != 0 {
		t.Errorf("after unsub: rxgorm_subscriptions = %v, want 0", v["rxgorm_subscriptions"])
	}

	// The exposition format, as Prometheus scrapes it.
	res, err := http.Get(ts.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, line := range []string{"rxgorm_sockets 1", "rxgorm_deltas_total 1", `rxgorm_errors_total{code="not_found"} 1`,
		"# TYPE rxgorm_commit_to_send_seconds histogram", `rxgorm_commit_to_send_seconds_bucket{le="+Inf"} 1`} {
		if !strings.Contains(string(body), line+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", line, body)
		}
	}
}

// Without a server only the hub's figures are collected; a Go subscriber
// counts as a subscription.
func TestCollectorHubOnly(t *testing.T) {
	db, hub, _, _, _ := setup(t)
	reg := prometheus.NewRegistry()
	reg.MustRegister(rxprom.New(hub, nil))
	sub, err := hub.Subscribe(context.Background(), "BoardChannel", BoardParams{BoardID: 1}, rx.User{ID: "1"}, rx.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	<-sub.Events() // the snapshot
	if err := db.Create(&Note{BoardID: 1, Text: "a"}).Error; err != nil {
		t.Fatal(err)
	}
	<-sub.Events() // the delta
	v := values(t, reg)
	if _, ok := v["rxgorm_sockets"]; ok {
		t.Error("rxgorm_sockets collected without a server")
	}
	if v["rxgorm_subscriptions"] != 1 || v["rxgorm_deltas_total"] != 1 || v["rxgorm_snapshot_seconds_count"] != 1 {
		t.Errorf("subscriptions %v deltas %v snapshots %v, want 1, 1, 1", v["rxgorm_subscriptions"], v["rxgorm_deltas_total"], v["rxgorm_snapshot_seconds_count"])
	}
	if n := testutil.CollectAndCount(rxprom.New(hub, nil), "rxgorm_errors_total"); n != 0 {
		t.Errorf("%d rxgorm_errors_total series without a server, want 0", n)
	}
}

// README's table and the package doc list exactly the metrics the
// collector exports.
func TestDocsListMetrics(t *testing.T) {
	_, _, _, reg, _ := setup(t)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mf := range mfs {
		name := mf.GetName()
		if len(mf.GetMetric()) > 0 && len(mf.GetMetric()[0].GetLabel()) > 0 {
			name += "{code}"
		}
		names = append(names, name)
	}
	sort.Strings(names)
	readme, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var listed []string
	for _, m := range regexp.MustCompile("(?m)^\\| `(rxgorm_[a-z_]+(?:\\{code\\})?)` \\|").FindAllSubmatch(readme, -1) {
		listed = append(listed, string(m[1]))
	}
	sort.Strings(listed)
	if strings.Join(listed, " ") != strings.Join(names, " ") {
		t.Errorf("README lists\n%v\nthe collector exports\n%v", listed, names)
	}
	src, err := os.ReadFile("rxprom.go")
	if err != nil {
		t.Fatal(err)
	}
	listed = nil
	for _, m := range regexp.MustCompile(`(?m)^//\t(rxgorm_[a-z_]+(?:\{code\})?) `).FindAllSubmatch(src, -1) {
		listed = append(listed, string(m[1]))
	}
	sort.Strings(listed)
	if strings.Join(listed, " ") != strings.Join(names, " ") {
		t.Errorf("the package doc lists\n%v\nthe collector exports\n%v", listed, names)
	}
}
