package channel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rxgorm/rxgorm/channel"
)

// TestQueuedFramesOneWrite: frames that queue up for a socket while its
// writer is blocked go out together, in far fewer writes than frames, and
// all of them arrive, in order, intact.
func TestQueuedFramesOneWrite(t *testing.T) {
	e := newEnv(t, openSQLite, channel.Options{})
	const rooms = 40
	conn := subscribeRooms(e, rooms, false)
	for snapshots := 0; snapshots < rooms; {
		var m map[string]any
		if err := conn.ReadJSON(&m); err != nil {
			t.Fatal(err)
		}
		if m["type"] == "snapshot" {
			snapshots++
		}
	}
	// Stop reading: a frame per room queues behind a blocked write.
	before := queueBehindBlockedWrite(t, e, rooms)
	// Read the big delta, then one delta per room, each carrying its post.
	conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	seen := map[string]bool{}
	for len(seen) < rooms {
		var m map[string]any
		if err := conn.ReadJSON(&m); err != nil {
			t.Fatal(err)
		}
		if m["type"] != "delta" {
			continue
		}
		for _, in := range instances(m) {
			f, _ := in["fields"].(map[string]any)
			if txt, _ := f["text"].(string); strings.HasPrefix(txt, "post in ") {
				seen[txt] = true
			}
		}
	}
	after := e.srv.Stats()
	frames, writes := after.Frames-before.Frames, after.Writes-before.Writes
	t.Logf("%d frames in %d writes", frames, writes)
	if frames < rooms {
		t.Fatalf("%d frames for %d rooms", frames, rooms)
	}
	if writes*4 > frames {
		t.Fatalf("%d frames queued behind a blocked write went out in %d writes; want them batched (at most a quarter as many writes)", frames, writes)
	}
}

// TestJoinedFrames: for a client that announced batch in hello, the
// messages queued behind a blocked write arrive joined in few frames, one
// message per line, each whole and once; a client that did not gets
// one message per frame, as before.
func TestJoinedFrames(t *testing.T) {
	for _, batch := range []bool{true, false} {
		t.Run(fmt.Sprint("batch=", batch), func(t *testing.T) {
			e := newEnv(t, openSQLite, channel.Options{})
			const rooms = 40
			conn := subscribeRooms(e, rooms, batch)
			frames, messages := 0, 0
			// read returns the messages of the next frame.
			read := func() []map[string]any {
				_, data, err := conn.ReadMessage()
				if err != nil {
					t.Fatal(err)
				}
				frames++
				var out []map[string]any
				for _, line := range strings.Split(string(data), "\n") {
					var m map[string]any
					if err := json.Unmarshal([]byte(line), &m); err != nil {
						t.Fatalf("a frame's line is not a message: %v\n%q", err, data)
					}
					out = append(out, m)
				}
				if len(out) > 1 && !batch {
					t.Fatalf("a frame of %d messages for a client that did not announce batch", len(out))
				}
				messages += len(out)
				return out
			}
			for snapshots := 0; snapshots < rooms; {
				for _, m := range read() {
					if m["type"] == "snapshot" {
						snapshots++
					}
				}
			}
			queueBehindBlockedWrite(t, e, rooms)
			conn.SetReadDeadline(time.Now().Add(30 * time.Second))
			frames, messages = 0, 0
			seen := map[string]bool{}
			for len(seen) < rooms {
				for _, m := range read() {
					if m["type"] != "delta" {
						continue
					}
					for _, in := range instances(m) {
						f, _ := in["fields"].(map[string]any)
						if txt, _ := f["text"].(string); strings.HasPrefix(txt, "post in ") {
							if seen[txt] {
								t.Fatalf("%q twice", txt)
							}
							seen[txt] = true
						}
					}
				}
			}
			t.Logf("%d messages in %d frames", messages, frames)
			if batch && frames*4 > messages {
				t.Fatalf("%d messages queued behind a blocked write came in %d frames; want them joined (at most a quarter as many frames)", messages, frames)
			}
			if !batch && frames != messages {
				t.Fatalf("%d messages in %d frames without batch", messages, frames)
			}
		})
	}
}

// queueBehindBlockedWrite creates a large post in room 1, which fills the
// socket's buffers of a client that stopped reading and blocks its writer,
// then one post "post in <i>" per room i, each queueing a frame behind
// it; it returns the server's stats from between the two.
func queueBehindBlockedWrite(t *testing.T, e *env, rooms int) channel.Stats {
	t.Helper()
	e.db.Create(&Post{RoomID: 1, AuthorID: 1, Text: strings.Repeat("x", 64<<10)})
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := e.hub.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	before := e.srv.Stats()
	for i := 1; i <= rooms; i++ {
		e.db.Create(&Post{RoomID: uint(i), AuthorID: 1, Text: fmt.Sprint("post in ", i)})
	}
	if err := e.hub.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	return before
}

// subscribeRooms creates rooms public rooms and a socket with small
// buffers (e.smallBuffers) that says hello as user 1, announcing batch or
// not, and subscribes to each room (ids 1 to rooms); the snapshots are
// left for the caller to read.
func subscribeRooms(e *env, rooms int, batch bool) *websocket.Conn {
	e.smallBuffers()
	for i := 0; i < rooms; i++ {
		e.db.Create(&Room{Name: fmt.Sprint("room", i), Public: true})
	}
	conn := e.dialSmall()
	conn.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"type":"hello","v":1,"token":%q,"batch":%t}`, e.tokens["1"], batch)))
	for i := 1; i <= rooms; i++ {
		conn.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"type":"sub","id":%d,"channel":"RoomChannel","params":{"roomId":%d}}`, i, i)))
	}
	return conn
}
