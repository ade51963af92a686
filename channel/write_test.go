package channel_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rxgorm/rxgorm/channel"
	"github.com/rxgorm/rxgorm/rx"
)

// wrRoom is a room whose clients write posts and their own notes, with
// presence tracked.
type wrRoom struct {
	rx.Channel[Room, RoomParams]
}

func (wrRoom) ChannelName() string { return "WrRoom" }

func (wrRoom) Authorize(ctx context.Context, u rx.User, p RoomParams) error {
	if u.Anonymous() {
		return rx.Errorf(rx.CodeUnauthenticated, "sign in")
	}
	return nil
}

func (wrRoom) TrackPresence() rx.PresenceOptions { return rx.PresenceOptions{} }

func (c *wrRoom) Writable() []rx.Writable {
	return []rx.Writable{
		rx.Writes[Post]{Fields: []string{"text"}, Save: true, Create: []string{"Room.posts"}, Delete: true, Allow: c.allowPost},
		rx.Writes[Note]{Fields: []string{"text"}, Save: true, Create: []string{"Room.notes"}, Allow: func(context.Context, rx.Write[Note]) error { return nil }},
	}
}

// allowPost lets users edit and delete their own posts; a new post is
// theirs.
func (c *wrRoom) allowPost(ctx context.Context, w rx.Write[Post]) error {
	uid := c.User().ID
	if w.Old != nil && fmt.Sprint(w.Old.AuthorID) != uid {
		return rx.Errorf(rx.CodeForbidden, "not your post")
	}
	if w.Op == rx.OpCreate {
		fmt.Sscan(uid, &w.New.AuthorID)
	}
	return nil
}

func newWrEnv(t *testing.T, opts channel.Options) *env {
	t.Helper()
	e := newEnv(t, openSQLite, opts)
	if err := e.hub.Register(&wrRoom{}); err != nil {
		t.Fatal(err)
	}
	e.db.Create(&Room{Name: "one", Public: true, Posts: []Post{{AuthorID: 1, Text: "ann's"}, {AuthorID: 2, Text: "bob's"}}})
	e.db.Create(&Room{Name: "two", Public: true, Posts: []Post{{AuthorID: 1, Text: "elsewhere"}}})
	return e
}

// subscribe subscribes c to a room of WrRoom and returns the snapshot.
func (c *client) subscribe(id string, room int) map[string]any {
	c.t.Helper()
	c.send(`{"type":"sub","id":%q,"channel":"WrRoom","params":{"roomId":%d}}`, id, room)
	snap := c.expect("snapshot")
	if m := c.skipPresence(); m["type"] != "done" {
		c.t.Fatalf("want done, got %v", m)
	}
	return snap
}

// skipPresence returns the next frame that is not a presence frame.
func (c *client) skipPresence() map[string]any {
	c.t.Helper()
	for {
		if m := c.next(); m["type"] != "presence" {
			return m
		}
	}
}

// Writes over the wire: the delta comes before the reply, refusals answer
// the write alone.
func TestClientWrites(t *testing.T) {
	e := newWrEnv(t, channel.Options{})
	ann := e.login("1")
	ann.subscribe("s1", 1)

	ann.send(`{"type":"save","id":1,"sub":"s1","layer":"Post","row":"1","fields":{"text":"edited"}}`)
	d := ann.skipPresence()
	if d["type"] != "delta" || instances(d)["Post/1"]["fields"].(map[string]any)["text"] != "edited" {
		t.Fatalf("want the save's delta first, got %v", d)
	}
	if r := ann.skipPresence(); r["type"] != "result" || r["id"] != float64(1) || r["value"].(map[string]any)["row"] != "1" {
		t.Fatalf("result: %v", r)
	}

	ann.send(`{"type":"create","id":"c","sub":"s1","layer":"Post","relation":"Room.posts","parent":"1","fields":{"text":"new"}}`)
	d = ann.skipPresence()
	post := instances(d)["Post/4"]
	if d["type"] != "delta" || post == nil || post["fields"].(map[string]any)["authorId"] != "1" {
		t.Fatalf("want the create's delta first, got %v", d)
	}
	if r := ann.skipPresence(); r["type"] != "result" || r["id"] != "c" || r["value"].(map[string]any)["row"] != "4" {
		t.Fatalf("result: %v", r)
	}

	ann.send(`{"type":"delete","id":3,"sub":"s1","layer":"Post","row":"4"}`)
	if d := ann.skipPresence(); d["type"] != "delta" || instances(d)["Post/4"]["deleted"] != true {
		t.Fatalf("want the delete's delta first, got %v", d)
	}
	ann.expect("result")

	for _, c := range []struct{ frame, code, msg string }{
		{`{"type":"save","id":10,"sub":"s1","layer":"Post","row":"2","fields":{"text":"mine now"}}`, "forbidden", "not your post"},
		{`{"type":"save","id":11,"sub":"s1","layer":"Post","row":"3","fields":{"text":"x"}}`, "not_found", "Post 3"},
		{`{"type":"save","id":12,"sub":"s1","layer":"Post","row":"1","fields":{"text":7}}`, "bad_request", "field text"},
		{`{"type":"save","id":13,"sub":"s1","layer":"Post","row":"1","fields":{"authorId":2}}`, "forbidden", "authorId"},
		{`{"type":"delete","id":14,"sub":"s1","layer":"Note","row":"1"}`, "forbidden", "delete Note"},
		{`{"type":"create","id":15,"sub":"s1","layer":"Room","relation":"Room.posts","parent":"1"}`, "forbidden", "Room rows"},
		{`{"type":"save","id":16,"sub":"nope","layer":"Post","row":"1","fields":{"text":"x"}}`, "not_found", "subscription"},
	} {
		ann.send("%s", c.frame)
		r := ann.skipPresence()
		errBody, _ := r["error"].(map[string]any)
		if r["type"] != "result" || errBody["code"] != c.code || !strings.Contains(errBody["message"].(string), c.msg) {
			t.Fatalf("%s: got %v, want %s %q", c.frame, r, c.code, c.msg)
		}
	}
	// Malformed writes are protocol errors, answered without killing the
	// socket.
	ann.send(`{"type":"save","id":20,"sub":"s1","layer":"Post","row":"1"}`)
	if m := ann.skipPresence(); m["type"] != "error" || m["code"] != "bad_request" {
		t.Fatalf("%v", m)
	}
	ann.send(`{"type":"save","id":21,"sub":"s1","layer":"Post","row":"1","fields":{"text":"still open"}}`)
	ann.skipPresence() // delta
	if r := ann.skipPresence(); r["type"] != "result" || r["error"] != nil {
		t.Fatalf("%v", r)
	}
	var p Post
	e.db.First(&p, 1)
	if p.Text != "still open" {
		t.Fatalf("post 1: %+v", p)
	}
}

// Presence over the wire: every subscriber gets the list of its stream;
// a client that vanishes without closing its socket leaves once the
// keepalive gives up on it (two ping intervals).
func TestPresenceFrames(t *testing.T) {
	e := newWrEnv(t, channel.Options{PingInterval: 500 * time.Millisecond})
	ann := e.login("1")
	ann.send(`{"type":"sub","id":"s1","channel":"WrRoom","params":{"roomId":1}}`)
	waitPresenceFrame(t, ann, "1×1")

	// bob's client answers nothing after subscribing: no pongs.
	conn, _, err := websocket.DefaultDialer.Dial(e.url, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, `{"type":"hello","v":1,"token":%q}`, e.tokens["2"]))
	conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"sub","id":"b","channel":"WrRoom","params":{"roomId":1}}`))
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(data), `"done"`) {
			break
		}
	}
	waitPresenceFrame(t, ann, "1×1 2×1")
	waitPresenceFrame(t, ann, "1×1")
	// The socket was dropped (its subscriptions end first, then the socket
	// is forgotten).
	deadline := time.Now().Add(10 * time.Second)
	for e.srv.Sockets() != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("%d sockets open, want ann's only", e.srv.Sockets())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func waitPresenceFrame(t *testing.T, c *client, want string) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	last := "(none)"
	for {
		select {
		case m := <-c.frames:
			if m["type"] != "presence" {
				continue
			}
			if m["sub"] != "s1" || m["anchor"] != "1" {
				t.Fatalf("presence frame %v", m)
			}
			var parts []string
			for _, u := range m["users"].([]any) {
				u := u.(map[string]any)
				parts = append(parts, fmt.Sprintf("%s×%v", u["user"], u["connections"]))
			}
			last = strings.Join(parts, " ")
			if last == want {
				return
			}
		case <-deadline:
			t.Fatalf("no presence %q; last %q", want, last)
		}
	}
}

// The Go API refuses a write on a closed subscription like any other
// refused write.
func TestWriteAfterClose(t *testing.T) {
	e := newWrEnv(t, channel.Options{})
	sub, err := e.hub.Subscribe(context.Background(), "WrRoom", RoomParams{RoomID: 1}, rx.User{ID: "1"}, rx.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sub.Close()
	_, err = sub.Write(context.Background(), rx.WriteRequest{Op: rx.OpSave, Layer: "Post", Row: "1", Fields: map[string]json.RawMessage{"text": json.RawMessage(`"x"`)}})
	var re *rx.Error
	if !errors.As(err, &re) || re.Code != rx.CodeNotFound {
		t.Fatalf("got %v", err)
	}
}
