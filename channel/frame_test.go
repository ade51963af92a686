package channel

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"unsafe"

	"github.com/gorilla/websocket"
)

// TestTextFrame: frames made by textFrame, in each of the three length
// encodings and at their edges, written straight to the connection under
// gorilla's, read back by a gorilla client as the same text messages, in
// order, between messages gorilla writes itself.
func TestTextFrame(t *testing.T) {
	sizes := []int{0, 1, 125, 126, 127, 65535, 65536, 200000}
	done := make(chan error, 1)
	up := websocket.Upgrader{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			done <- err
			return
		}
		defer c.Close()
		for _, n := range sizes {
			if _, err := c.NetConn().Write(textFrame(payload(n))); err != nil {
				done <- err
				return
			}
			if err := c.WriteMessage(websocket.TextMessage, []byte("gorilla")); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}))
	defer srv.Close()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, n := range sizes {
		for _, want := range [][]byte{payload(n), []byte("gorilla")} {
			typ, got, err := c.ReadMessage()
			if err != nil {
				t.Fatalf("frame of %d bytes: %v", n, err)
			}
			if typ != websocket.TextMessage || !bytes.Equal(got, want) {
				t.Fatalf("frame of %d bytes: got type %d, %d bytes; want a text message of %d bytes", n, typ, len(got), len(want))
			}
		}
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// payload is n bytes of JSON-ish text.
func payload(n int) []byte {
	return bytes.Repeat([]byte("x"), n)
}

// TestSessionSize keeps the per-socket session struct in its size class:
// every open socket holds one (docs/BENCHMARKS.md, idle sockets), and a
// field added in the wrong place pads it into the next class.
func TestSessionSize(t *testing.T) {
	if n := unsafe.Sizeof(session{}); n > 240 {
		t.Fatalf("session is %d bytes, over the 240-byte size class it was packed into", n)
	}
}
