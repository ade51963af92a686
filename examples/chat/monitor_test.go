package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/examples/chat/app"
	"golang.org/x/crypto/bcrypt"
)

// metric returns the value of the sample named name (with its labels, as
// written) in a Prometheus text exposition, failing if there is none.
func metric(t *testing.T, body []byte, name string) float64 {
	t.Helper()
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(name) + ` (\S+)$`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("/metrics has no %s:\n%s", name, body)
	}
	v, err := strconv.ParseFloat(string(m[1]), 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// healthz GETs /healthz and decodes its body.
func healthz(t *testing.T, base string) (int, health) {
	t.Helper()
	res, err := http.Get(base + "healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var h health
	if err := json.NewDecoder(res.Body).Decode(&h); err != nil {
		t.Fatalf("/healthz: %v", err)
	}
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("/healthz Content-Type %q", ct)
	}
	return res.StatusCode, h
}

// TestMetricsAndHealth runs the command with its Redis broker (the Redis
// at 127.0.0.1:6379): /healthz answers 200 with every dependency up, and
// /metrics, scraped while two users are connected and one's invitation
// reaches the other, shows live figures.
func TestMetricsAndHealth(t *testing.T) {
	prefix := fmt.Sprintf("chatmetrics-%d:", time.Now().UnixNano())
	base, stop := startCommand(t, config{redis: "redis://127.0.0.1:6379/0", redisPrefix: prefix, bcryptCost: bcrypt.MinCost})
	defer stop()

	code, h := healthz(t, base)
	want := map[string]string{"database": "ok", "store": "in memory", "broker": "ok"}
	if code != http.StatusOK || h.Status != "ok" || fmt.Sprint(h.Checks) != fmt.Sprint(want) {
		t.Fatalf("/healthz: %d %+v, want 200 ok %v", code, h, want)
	}

	var alice, bob session
	post(t, base+"api/register", "", app.Registration{Username: "alice", Password: "secret-1"}, &alice)
	post(t, base+"api/register", "", app.Registration{Username: "bob", Password: "secret-2"}, &bob)
	wa, wb := dialWS(t, base, "alice", alice.Token), dialWS(t, base, "bob", bob.Token)
	wa.subscribe("home", "HomeChannel", map[string]any{"userId": alice.User.ID})
	wb.subscribe("home", "HomeChannel", map[string]any{"userId": bob.User.ID})
	wa.call("home", "inviteFriend", "bob", "metrics")
	wb.await("friend invitation", func(m map[string]any) bool {
		return instance(m, "FriendInvitation", func(f map[string]any) bool { return f["message"] == "metrics" })
	})
	// A refused subscription is counted by its code.
	wb.send(map[string]any{"type": "sub", "id": "x", "channel": "HomeChannel", "params": map[string]any{"userId": alice.User.ID}})
	wb.await("forbidden", func(m map[string]any) bool { return m["type"] == "error" && m["sub"] == "x" })

	code, _, body := get(t, base+"metrics", "")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d %s", code, body)
	}
	at := func(name string, least float64) {
		t.Helper()
		if v := metric(t, body, name); v < least {
			t.Errorf("%s = %v while the chat is in use, want >= %v", name, v, least)
		}
	}
	at("rxgorm_sockets", 2)
	at("rxgorm_subscriptions", 2)
	at("rxgorm_hot_streams", 2)
	at("rxgorm_deltas_total", 1)
	at("rxgorm_frames_total", 6) // welcomes, snapshots, dones, the delta
	at("rxgorm_sent_bytes_total", 100)
	at("rxgorm_cold_loads_total", 2)
	at("rxgorm_snapshot_seconds_count", 2)
	at("rxgorm_commit_to_send_seconds_count", 1)
	at(`rxgorm_errors_total{code="forbidden"}`, 1)
	for _, name := range []string{"rxgorm_engine_backlog", "rxgorm_queued_bytes", "rxgorm_broker_queue", "rxgorm_broker_down"} {
		metric(t, body, name) // present
	}
	if !strings.Contains(string(body), "go_goroutines ") {
		t.Error("/metrics lacks Go's runtime figures")
	}
}

// TestHealthzUnavailable: on the embedded defaults /healthz answers what
// README shows; with the database gone it answers 503 and says which
// dependency is down, and not why (the cause is logged).
func TestHealthzUnavailable(t *testing.T) {
	hs, _, a := testServerAll(t)
	code, _, body := get(t, hs.URL+"/healthz", "")
	const readme = `{"status":"ok","checks":{"broker":"in process","database":"ok","store":"in memory"}}`
	if code != http.StatusOK || strings.TrimSpace(string(body)) != readme {
		t.Fatalf("/healthz: %d %s, want 200 %s", code, body, readme)
	}
	sqlDB, err := a.DB.DB()
	if err != nil {
		t.Fatal(err)
	}
	if err := sqlDB.Close(); err != nil {
		t.Fatal(err)
	}
	code, h := healthz(t, hs.URL+"/")
	want := map[string]string{"database": "unreachable", "store": "in memory", "broker": "in process"}
	if code != http.StatusServiceUnavailable || h.Status != "unavailable" || fmt.Sprint(h.Checks) != fmt.Sprint(want) {
		t.Fatalf("/healthz: %d %+v, want 503 unavailable %v", code, h, want)
	}
}
