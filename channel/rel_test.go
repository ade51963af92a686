package channel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/cache"
	"github.com/rxgorm/rxgorm/rx"
	"gorm.io/gorm"
)

// Channels and helpers of the reliability tests (bad input, authorization,
// faults, soak). Names carry a rel prefix so that they do not collide with
// other tests of the package.

// RelTools is a room channel whose actions take typed arguments and can
// block, for argument decoding and in-flight call tests.
type RelTools struct {
	rx.Channel[Room, RoomParams]
	DB *gorm.DB
	// Gate, when set, is what Block waits for (or the end of its context).
	Gate chan struct{}
	// Started receives a value each time Block or Write starts waiting.
	Started chan struct{}
	// Cancelled receives a value when Block's context is cancelled.
	Cancelled chan struct{}
	// Gone counts ended subscriptions.
	Gone *atomic.Int64
}

func (c *RelTools) OnDisconnect(ctx context.Context) {
	if c.Gone != nil {
		c.Gone.Add(1)
	}
}

// RelOpts is a structured action argument.
type RelOpts struct {
	Tags  []string `json:"tags"`
	Limit *int     `json:"limit"`
}

func (RelTools) Authorize(ctx context.Context, u rx.User, p RoomParams) error {
	if u.Anonymous() {
		return rx.Errorf(rx.CodeUnauthenticated, "sign in")
	}
	return nil
}

func (c *RelTools) Actions() []string { return []string{"Add", "Block", "Write"} }

// Add checks typed decoding: small and unsigned integers, a struct.
func (c *RelTools) Add(ctx context.Context, a int8, b uint16, o RelOpts) (int, error) {
	return int(a) + int(b) + len(o.Tags), nil
}

// Block waits for Gate, or for the call to be cancelled.
func (c *RelTools) Block(ctx context.Context) (string, error) {
	if c.Started != nil {
		c.Started <- struct{}{}
	}
	select {
	case <-c.Gate:
		return "released", nil
	case <-ctx.Done():
		if c.Cancelled != nil {
			c.Cancelled <- struct{}{}
		}
		return "", fmt.Errorf("relTools: block cancelled: %w", ctx.Err())
	}
}

// Write creates a post after waiting for Gate: a write committed while the
// server shuts down.
func (c *RelTools) Write(ctx context.Context, text string) (uint, error) {
	if c.Started != nil {
		c.Started <- struct{}{}
	}
	<-c.Gate
	p := Post{RoomID: c.Params().RoomID, AuthorID: 1, Text: text}
	if err := c.DB.Create(&p).Error; err != nil {
		return 0, err
	}
	return p.ID, nil
}

// RelInboxParams names whose notes to list.
type RelInboxParams struct {
	UserID uint `json:"userId"`
}

// RelInbox lists one user's notes; only that user may subscribe.
type RelInbox struct{ rx.List[Note, RelInboxParams] }

func (RelInbox) Authorize(ctx context.Context, u rx.User, p RelInboxParams) error {
	if u.ID != fmt.Sprint(p.UserID) {
		return rx.Errorf(rx.CodeForbidden, "not your inbox")
	}
	return nil
}

func (RelInbox) Anchors(ctx context.Context, db *gorm.DB, u rx.User, p RelInboxParams) *gorm.DB {
	return db.Where("user_id = ?", p.UserID).Order("id")
}

// RelVisibleRooms lists the rooms a user may open: the public ones, and
// every room for user 1 (the RoomChannel rule). The list depends on the user.
type RelVisibleRooms struct{ rx.List[Room, rx.NoParams] }

func (RelVisibleRooms) Authorize(context.Context, rx.User, rx.NoParams) error { return nil }

func (RelVisibleRooms) Anchors(ctx context.Context, db *gorm.DB, u rx.User, p rx.NoParams) *gorm.DB {
	if u.ID == "1" {
		return db.Order("id")
	}
	return db.Where("public = ?", true).Order("id")
}

// relRegister adds the rel channels to an env's hub.
func relRegister(t testing.TB, e *env, tools *RelTools) {
	t.Helper()
	if tools == nil {
		tools = &RelTools{}
	}
	tools.DB = e.db
	if err := e.hub.Register(tools, &RelInbox{}, &RelVisibleRooms{}); err != nil {
		t.Fatal(err)
	}
}

// relUntil reads frames until one of type typ arrives and returns it; the
// frames skipped are returned too.
func (c *client) relUntil(typ string) (map[string]any, []map[string]any) {
	c.t.Helper()
	var skipped []map[string]any
	for {
		m := c.next()
		if m["type"] == typ {
			return m, skipped
		}
		skipped = append(skipped, m)
	}
}

// relSubscribe subscribes and reads up to and including done.
func (c *client) relSubscribe(id, channel, params string) []map[string]any {
	c.t.Helper()
	c.send(`{"type":"sub","id":%q,"channel":%q,"params":%s}`, id, channel, params)
	var got []map[string]any
	for {
		m := c.next()
		if m["type"] == "error" {
			c.t.Fatalf("subscribe %s %s: %v", channel, params, m)
		}
		got = append(got, m)
		if m["type"] == "done" && m["sub"] == id {
			return got
		}
	}
}

// relHealthy proves the server still serves: a fresh client subscribes to
// a room, a write reaches it as a delta.
func relHealthy(t *testing.T, e *env) {
	t.Helper()
	c := e.login("2")
	c.relSubscribe("health", "RoomChannel", `{"roomId":1}`)
	p := Post{RoomID: 1, AuthorID: 2, Text: "health check"}
	if err := e.db.Create(&p).Error; err != nil {
		t.Fatal(err)
	}
	d, _ := c.relUntil("delta")
	if instances(d)[fmt.Sprintf("Post/%d", p.ID)] == nil {
		t.Fatalf("health check: delta without the new post: %v", d)
	}
	c.conn.Close()
}

// relWait polls cond until it holds or a generous deadline passes.
func relWait(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// relEvent turns a snapshot, delta or anchors frame into the rx.Event a
// client applies, so that a wire client's state can be rebuilt with
// rx.State and compared with the server's.
func relEvent(m map[string]any) *rx.Event {
	ev := &rx.Event{}
	switch m["type"] {
	case "anchors":
		ids, _ := m["ids"].([]any)
		ev.Anchors = []string{}
		for _, id := range ids {
			ev.Anchors = append(ev.Anchors, id.(string))
		}
		return ev
	case "snapshot":
		ev.Snapshot, ev.Initial = m["reset"] == true, true
	case "delta":
	default:
		return nil
	}
	ev.Anchor = m["anchor"].(string)
	ev.Version = uint64(m["version"].(float64))
	list, _ := m["instances"].([]any)
	for _, x := range list {
		in := x.(map[string]any)
		ci := &cache.Instance{Type: in["type"].(string), ID: in["id"].(string), Deleted: in["deleted"] == true}
		ci.Owner, _ = in["owner"].(string)
		if f, ok := in["fields"].(map[string]any); ok {
			ci.Fields = map[string]json.RawMessage{}
			for k, v := range f {
				ci.Fields[k], _ = json.Marshal(v)
			}
		}
		ev.Instances = append(ev.Instances, ci)
	}
	return ev
}

// relSnapshotJSON is the channel's state as a fresh subscriber of hub sees
// it, normalized like a state rebuilt from frames (numbers as float64).
func relSnapshotJSON(t testing.TB, hub *rx.Hub, channel string, params any, user rx.User) string {
	t.Helper()
	js, err := hub.Snapshot(context.Background(), channel, params, user)
	if err != nil {
		t.Fatal(err)
	}
	return relNorm(t, js)
}

// relNorm re-encodes JSON through map[string]any.
func relNorm(t testing.TB, js []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(js, &v); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(v)
	return string(b)
}
