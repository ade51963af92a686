package channel_test

import (
	"cmp"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rxgorm/rxgorm/channel"
)

// relBadCase is one kind of bad input sent over a real socket.
type relBadCase struct {
	name string
	// anon: the frames go out before hello (no token); else the socket is
	// signed in as user 1 and subscribed to room 1 as "r".
	anon bool
	as   string // the user signed in when not anon; "" means "1"
	// setup runs before the frames are sent.
	setup func(t *testing.T, e *env, c *client)
	send  []relFrame
	// code is the error code the server must answer with: on an "error"
	// frame, or on a "result" frame when result is set. Empty: no error;
	// check then says what must happen.
	code   string
	result bool
	sub    any    // the subscription id the error frame names; nil: none
	msg    string // part of the error's message
	// close is the close code the socket must be closed with; zero: it
	// must stay open and keep working.
	close int
	check func(t *testing.T, e *env, c *client)
}

type relFrame struct {
	binary bool
	data   string
}

func text(format string, args ...any) relFrame {
	return relFrame{data: fmt.Sprintf(format, args...)}
}

// TestBadInputTable sends every kind of bad input the protocol can meet
// and checks the exact error code on the wire, the close code where the
// socket must close, that the same socket keeps working where it stays
// open, and that the server keeps serving other clients.
func TestBadInputTable(t *testing.T) {
	tools := &RelTools{Gate: make(chan struct{})}
	e := newEnv(t, openSQLite, channel.Options{ReadLimit: 64 << 10, MaxCalls: 4, MaxSubscriptions: 4})
	relRegister(t, e, tools)
	e.db.Create(&Room{Name: "lobby", Public: true})
	e.db.Create(&Room{Name: "private"})
	e.db.Create(&Note{RoomID: 1, UserID: 2, Text: "bob's secret note"})
	deep := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	past := time.Now().Add(-time.Hour)
	expired := channel.Token{Key: channel.HashToken("expired-token-of-user-1"), UserID: "1", CreatedAt: past.Add(-time.Hour), ExpiresAt: &past}
	if err := e.db.Create(&expired).Error; err != nil {
		t.Fatal(err)
	}
	revoked, err := e.auth.Create(context.Background(), "1")
	if err != nil {
		t.Fatal(err)
	}
	if err := e.auth.Revoke(context.Background(), revoked); err != nil {
		t.Fatal(err)
	}

	cases := []relBadCase{
		// Malformed JSON and frames that are not one object.
		{name: "truncated JSON", send: []relFrame{text(`{"type":"sub","id":"a",`)}, code: "bad_request", msg: "malformed message"},
		{name: "not JSON", send: []relFrame{text(`hello server`)}, code: "bad_request", msg: "malformed message"},
		{name: "empty frame", send: []relFrame{text(``)}, code: "bad_request", msg: "malformed message"},
		{name: "array", send: []relFrame{text(`[{"type":"unsub","id":1}]`)}, code: "bad_request", msg: "malformed message"},
		{name: "null", send: []relFrame{text(`null`)}, code: "bad_request", msg: "no type"},
		{name: "two objects", send: []relFrame{text(`{"type":"unsub","id":1} {"type":"unsub","id":2}`)}, code: "bad_request", msg: "trailing data"},
		{name: "unknown field", send: []relFrame{text(`{"type":"unsub","id":1,"force":true}`)}, code: "bad_request", msg: "unknown field"},
		// Wrong field types.
		{name: "channel is a number", send: []relFrame{text(`{"type":"sub","id":"a","channel":5}`)}, code: "bad_request", msg: "field channel"},
		{name: "id is an object", send: []relFrame{text(`{"type":"sub","id":{},"channel":"RoomChannel"}`)}, code: "bad_request", msg: "id must be"},
		{name: "id is null", send: []relFrame{text(`{"type":"unsub","id":null}`)}, code: "bad_request", msg: "id must be"},
		{name: "id is fractional", send: []relFrame{text(`{"type":"unsub","id":1.5}`)}, code: "bad_request", msg: "id must be"},
		{name: "since is a list", send: []relFrame{text(`{"type":"sub","id":"a","channel":"RoomChannel","params":{"roomId":1},"since":[1]}`)}, code: "bad_request", msg: "since"},
		{name: "args is not a list", send: []relFrame{text(`{"type":"call","id":1,"sub":"r","action":"post","args":"hi"}`)}, code: "bad_request", msg: "args"},
		{name: "type is a number", send: []relFrame{text(`{"type":1}`)}, code: "bad_request", msg: "field type"},
		// Huge numbers.
		{name: "huge id", send: []relFrame{text(`{"type":"unsub","id":1e400}`)}, code: "bad_request", msg: "id must be"},
		{name: "id past int64", send: []relFrame{text(`{"type":"unsub","id":92233720368547758070}`)}, code: "bad_request", msg: "id must be"},
		{name: "huge since version", send: []relFrame{text(`{"type":"sub","id":"a","channel":"RoomChannel","params":{"roomId":1},"since":{"1":18446744073709551616}}`)}, code: "bad_request", msg: "since"},
		{name: "negative since version", send: []relFrame{text(`{"type":"sub","id":"a","channel":"RoomChannel","params":{"roomId":1},"since":{"1":-1}}`)}, code: "bad_request", msg: "since"},
		{name: "huge anchor id", send: []relFrame{text(`{"type":"sub","id":"a","channel":"RoomChannel","params":{"roomId":1e400}}`)}, code: "bad_request", sub: "a", msg: "params of RoomChannel"},
		{name: "anchor id past uint", send: []relFrame{text(`{"type":"sub","id":"a","channel":"RoomChannel","params":{"roomId":18446744073709551616}}`)}, code: "bad_request", sub: "a", msg: "params of RoomChannel"},
		{name: "huge argument", setup: relSubTools, send: []relFrame{text(`{"type":"call","id":1,"sub":"t","action":"add","args":[1e400,1,{}]}`)}, code: "bad_request", result: true, msg: "argument 1"},
		{name: "argument past int8", setup: relSubTools, send: []relFrame{text(`{"type":"call","id":1,"sub":"t","action":"add","args":[128,1,{}]}`)}, code: "bad_request", result: true, msg: "argument 1"},
		{name: "negative unsigned argument", setup: relSubTools, send: []relFrame{text(`{"type":"call","id":1,"sub":"t","action":"add","args":[1,-1,{}]}`)}, code: "bad_request", result: true, msg: "argument 2"},
		{name: "huge hello version", anon: true, send: []relFrame{text(`{"type":"hello","v":1e400}`)}, code: "bad_request", msg: "field v"},
		// Deeply nested JSON.
		{name: "nesting past the decoder's limit", send: []relFrame{text(`{"type":"sub","id":"a","channel":"RoomChannel","params":%s}`, deep(20000))}, code: "bad_request", msg: "exceeded max depth"},
		{name: "nested params", send: []relFrame{text(`{"type":"sub","id":"a","channel":"RoomChannel","params":{"roomId":%s}}`, deep(5000))}, code: "bad_request", sub: "a", msg: "params of RoomChannel"},
		{name: "nested argument", setup: relSubTools, send: []relFrame{text(`{"type":"call","id":1,"sub":"t","action":"add","args":[1,1,{"tags":%s}]}`, deep(5000))}, code: "bad_request", result: true, msg: "argument 3"},
		// Unknown message types.
		{name: "unknown type", send: []relFrame{text(`{"type":"subscribe","id":1}`)}, code: "bad_request", msg: `unknown message type "subscribe"`},
		{name: "server frame type", send: []relFrame{text(`{"type":"delta"}`)}, code: "bad_request", msg: `unknown message type "delta"`},
		{name: "no type", send: []relFrame{text(`{"id":1}`)}, code: "bad_request", msg: "no type"},
		{name: "sub without channel", send: []relFrame{text(`{"type":"sub","id":"a"}`)}, code: "bad_request", msg: "sub needs id and channel"},
		{name: "call without action", send: []relFrame{text(`{"type":"call","id":1,"sub":"r"}`)}, code: "bad_request", msg: "call needs"},
		// Subscriptions to what does not exist, params of the wrong type.
		{name: "unknown channel", send: []relFrame{text(`{"type":"sub","id":"a","channel":"NoSuchChannel"}`)}, code: "not_found", sub: "a", msg: `no channel "NoSuchChannel"`},
		{name: "unknown anchor", send: []relFrame{text(`{"type":"sub","id":7,"channel":"RoomChannel","params":{"roomId":999}}`)}, code: "not_found", sub: float64(7)},
		{name: "params string for number", send: []relFrame{text(`{"type":"sub","id":"a","channel":"RoomChannel","params":{"roomId":"one"}}`)}, code: "bad_request", sub: "a", msg: "params of RoomChannel"},
		{name: "params not an object", send: []relFrame{text(`{"type":"sub","id":"a","channel":"RoomChannel","params":[1]}`)}, code: "bad_request", sub: "a", msg: "params of RoomChannel"},
		{name: "params a string", send: []relFrame{text(`{"type":"sub","id":"a","channel":"RoomChannel","params":"1"}`)}, code: "bad_request", sub: "a", msg: "params of RoomChannel"},
		{name: "negative anchor id", send: []relFrame{text(`{"type":"sub","id":"a","channel":"RoomChannel","params":{"roomId":-1}}`)}, code: "bad_request", sub: "a", msg: "params of RoomChannel"},
		// Actions: unknown, wrong arity, wrong types.
		{name: "unknown action", send: []relFrame{text(`{"type":"call","id":1,"sub":"r","action":"drop"}`)}, code: "unknown_action", result: true, msg: `no action "drop"`},
		{name: "Go method name", send: []relFrame{text(`{"type":"call","id":1,"sub":"r","action":"Post","args":["x"]}`)}, code: "unknown_action", result: true},
		{name: "undeclared method", send: []relFrame{text(`{"type":"call","id":1,"sub":"r","action":"onTyping","args":["x"]}`)}, code: "unknown_action", result: true},
		{name: "too few arguments", send: []relFrame{text(`{"type":"call","id":1,"sub":"r","action":"post"}`)}, code: "bad_request", result: true, msg: "takes 1 argument"},
		{name: "too many arguments", send: []relFrame{text(`{"type":"call","id":1,"sub":"r","action":"post","args":["a","b"]}`)}, code: "bad_request", result: true, msg: "takes 1 argument"},
		{name: "number for string", send: []relFrame{text(`{"type":"call","id":1,"sub":"r","action":"post","args":[5]}`)}, code: "bad_request", result: true, msg: "argument 1: want string, got number"},
		{name: "null for int8", setup: relSubTools, send: []relFrame{text(`{"type":"call","id":1,"sub":"t","action":"add","args":[1,null,{}]}`)}, code: "bad_request", result: true, msg: "argument 2: want integer from 0 to 65535, got null"},
		{name: "null for struct", setup: relSubTools, send: []relFrame{text(`{"type":"call","id":1,"sub":"t","action":"add","args":[null,1,null]}`)}, code: "bad_request", result: true, msg: "argument 1: want integer from -128 to 127, got null"},
		{name: "string for struct", setup: relSubTools, send: []relFrame{text(`{"type":"call","id":1,"sub":"t","action":"add","args":[1,2,"x"]}`)}, code: "bad_request", result: true, msg: "argument 3"},
		{name: "wrong field type in struct", setup: relSubTools, send: []relFrame{text(`{"type":"call","id":1,"sub":"t","action":"add","args":[1,2,{"limit":"ten"}]}`)}, code: "bad_request", result: true, msg: "field limit"},
		{name: "call on unknown subscription", send: []relFrame{text(`{"type":"call","id":1,"sub":"zz","action":"post","args":["x"]}`)}, code: "not_found", result: true, msg: "no subscription"},
		// Frames the transport refuses.
		{name: "oversized frame", send: []relFrame{text(`{"type":"call","id":1,"sub":"r","action":"post","args":[%q]}`, strings.Repeat("x", 70<<10))}, close: channel.CloseTooLarge},
		{name: "binary frame", send: []relFrame{{binary: true, data: `{"type":"unsub","id":"r"}`}}, code: "bad_request", msg: "binary frames"},
		{name: "invalid UTF-8 frame", send: []relFrame{text("\xff\xfe{\"type\":\"unsub\"}")}, code: "bad_request", msg: "UTF-8"},
		{name: "invalid UTF-8 in a string", send: []relFrame{text("{\"type\":\"sub\",\"id\":\"a\xc3\",\"channel\":\"RoomChannel\"}")}, code: "bad_request", msg: "UTF-8"},
		{name: "repeated protocol errors", send: relRepeat(text(`{`), 10), close: channel.ClosePolicyViolation},
		// Replayed and out-of-order ids.
		{name: "replayed subscription id", send: []relFrame{text(`{"type":"sub","id":"r","channel":"RoomChannel","params":{"roomId":1}}`)}, code: "bad_request", sub: "r", msg: "already in use"},
		{name: "replayed unsubscribe", setup: func(t *testing.T, e *env, c *client) {
			c.send(`{"type":"unsub","id":"r"}`)
			c.expect("unsubscribed")
		}, send: []relFrame{text(`{"type":"unsub","id":"r"}`)}, code: "not_found", sub: "r", msg: "no subscription"},
		{name: "replayed call id in flight", setup: func(t *testing.T, e *env, c *client) {
			relSubTools(t, e, c)
			c.send(`{"type":"call","id":5,"sub":"t","action":"block"}`)
		}, send: []relFrame{text(`{"type":"call","id":5,"sub":"t","action":"add","args":[1,2,{}]}`)}, code: "bad_request", msg: "already in progress", check: func(t *testing.T, e *env, c *client) {
			tools.Gate <- struct{}{}
			m, _ := c.relUntil("result")
			if m["id"] != float64(5) || m["value"] != "released" {
				t.Fatalf("first call 5: %v", m)
			}
			// Done, its id is free again.
			c.send(`{"type":"call","id":5,"sub":"t","action":"add","args":[1,2,{}]}`)
			if m, _ := c.relUntil("result"); m["id"] != float64(5) || m["value"] != float64(3) {
				t.Fatalf("call 5 again: %v", m)
			}
		}},
		{name: "too many calls in flight", setup: relSubTools, send: []relFrame{
			text(`{"type":"call","id":1,"sub":"t","action":"block"}`),
			text(`{"type":"call","id":2,"sub":"t","action":"block"}`),
			text(`{"type":"call","id":3,"sub":"t","action":"block"}`),
			text(`{"type":"call","id":4,"sub":"t","action":"block"}`),
			text(`{"type":"call","id":5,"sub":"t","action":"block"}`),
		}, code: "overloaded", result: true, msg: "4 calls are in progress", check: func(t *testing.T, e *env, c *client) {
			for i := 1; i <= 4; i++ {
				tools.Gate <- struct{}{}
				if m, _ := c.relUntil("result"); m["value"] != "released" {
					t.Fatalf("call %d: %v", i, m)
				}
			}
		}},
		{name: "too many subscriptions", setup: func(t *testing.T, e *env, c *client) {
			for _, id := range []string{"a", "b", "c"} {
				c.relSubscribe(id, "RoomChannel", `{"roomId":1}`)
			}
		}, send: []relFrame{text(`{"type":"sub","id":"d","channel":"RoomChannel","params":{"roomId":1}}`)}, code: "bad_request", sub: "d", msg: "4 subscriptions", check: func(t *testing.T, e *env, c *client) {
			c.send(`{"type":"unsub","id":"a"}`)
			c.relUntil("unsubscribed")
		}},
		{name: "out-of-order call ids", setup: relSubTools, send: []relFrame{
			text(`{"type":"call","id":9,"sub":"t","action":"add","args":[9,0,{}]}`),
			text(`{"type":"call","id":3,"sub":"t","action":"add","args":[3,0,{}]}`),
			text(`{"type":"call","id":"x","sub":"t","action":"add","args":[1,0,{}]}`),
			text(`{"type":"call","id":-4,"sub":"t","action":"add","args":[-4,0,{}]}`),
		}, check: func(t *testing.T, e *env, c *client) {
			got := map[any]any{}
			for len(got) < 4 {
				m, _ := c.relUntil("result")
				got[m["id"]] = m["value"]
			}
			for id, v := range map[any]any{float64(9): float64(9), float64(3): float64(3), "x": float64(1), float64(-4): float64(-4)} {
				if got[id] != v {
					t.Fatalf("results by id: %v", got)
				}
			}
		}},
		{name: "resume from a future version", send: []relFrame{text(`{"type":"sub","id":"f","channel":"RoomChannel","params":{"roomId":1},"since":{"1":18446744073709551615}}`)}, check: func(t *testing.T, e *env, c *client) {
			if m := c.expect("snapshot"); m["sub"] != "f" || m["reset"] != true {
				t.Fatalf("want a full snapshot: %v", m)
			}
		}},
		{name: "resume naming another anchor", send: []relFrame{text(`{"type":"sub","id":"f","channel":"RoomChannel","params":{"roomId":1},"since":{"2":5,"x":1}}`)}, check: func(t *testing.T, e *env, c *client) {
			if m := c.expect("snapshot"); m["sub"] != "f" || m["anchor"] != "1" || m["reset"] != true {
				t.Fatalf("want a full snapshot of room 1: %v", m)
			}
		}},
		// Authentication.
		{name: "call before hello", anon: true, send: []relFrame{text(`{"type":"call","id":1,"sub":"r","action":"post","args":["x"]}`)}, code: "unauthenticated", msg: "hello first"},
		{name: "subscribe before hello", anon: true, send: []relFrame{text(`{"type":"sub","id":"a","channel":"RoomChannel","params":{"roomId":1}}`)}, code: "unauthenticated", msg: "hello first"},
		{name: "hello twice", send: []relFrame{text(`{"type":"hello","v":1,"token":%q}`, e.tokens["2"])}, code: "bad_request", msg: "already accepted", check: func(t *testing.T, e *env, c *client) {
			// Still user 1: the private room is open to it.
			c.relSubscribe("p", "RoomChannel", `{"roomId":2}`)
		}},
		{name: "hello without version", anon: true, send: []relFrame{text(`{"type":"hello","token":%q}`, e.tokens["1"])}, code: "bad_request", msg: "protocol version"},
		{name: "unsupported version", anon: true, send: []relFrame{text(`{"type":"hello","v":2,"token":%q}`, e.tokens["1"])}, code: "bad_request", msg: "unsupported protocol version", close: channel.CloseBadVersion},
		{name: "unknown token", anon: true, send: []relFrame{text(`{"type":"hello","v":1,"token":"0123456789"}`)}, code: "unauthenticated", close: channel.CloseAuthFailed},
		{name: "expired token", anon: true, send: []relFrame{text(`{"type":"hello","v":1,"token":%q}`, expired.Key)}, code: "unauthenticated", msg: "expired", close: channel.CloseAuthFailed},
		{name: "revoked token", anon: true, send: []relFrame{text(`{"type":"hello","v":1,"token":%q}`, revoked)}, code: "unauthenticated", close: channel.CloseAuthFailed},
		{name: "no token", anon: true, send: []relFrame{text(`{"type":"hello","v":1}`)}, code: "unauthenticated", close: channel.CloseAuthFailed},
		// User 1's token asking for user 2's per-user rows.
		{name: "another user's inbox", send: []relFrame{text(`{"type":"sub","id":"i","channel":"RelInbox","params":{"userId":2}}`)}, code: "forbidden", sub: "i", msg: "not your inbox"},
		{name: "private room for another user", as: "2", send: []relFrame{text(`{"type":"sub","id":"p","channel":"RoomChannel","params":{"roomId":2}}`)}, code: "forbidden", sub: "p", msg: "private room"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			relRunBad(t, e, tc)
			relHealthy(t, e)
		})
	}
}

// relSubTools subscribes the client to RelTools on room 1 as "t".
func relSubTools(t *testing.T, e *env, c *client) {
	c.relSubscribe("t", "RelTools", `{"roomId":1}`)
}

func relRepeat(f relFrame, n int) []relFrame {
	out := make([]relFrame, n)
	for i := range out {
		out[i] = f
	}
	return out
}

func relRunBad(t *testing.T, e *env, tc relBadCase) {
	saved := e.t
	e.t = t
	defer func() { e.t = saved }()
	var c *client
	if tc.anon {
		c = e.dial(nil)
	} else {
		c = e.login(cmp.Or(tc.as, "1"))
		c.relSubscribe("r", "RoomChannel", `{"roomId":1}`)
	}
	c.t = t
	if tc.setup != nil {
		tc.setup(t, e, c)
	}
	for _, f := range tc.send {
		typ := websocket.TextMessage
		if f.binary {
			typ = websocket.BinaryMessage
		}
		// A socket the server closes may close while a frame is sent in
		// fragments: the close code is what counts then.
		if err := c.conn.WriteMessage(typ, []byte(f.data)); err != nil && tc.close == 0 {
			t.Fatalf("send: %v", err)
		}
	}
	if tc.code != "" {
		want := "error"
		if tc.result {
			want = "result"
		}
		m, skipped := c.relUntil(want)
		for _, s := range skipped {
			if s["type"] == "error" || s["type"] == "result" {
				t.Fatalf("unexpected %v before the %s frame", s, want)
			}
		}
		code, msg := m["code"], m["message"]
		if tc.result {
			er, _ := m["error"].(map[string]any)
			if er == nil {
				t.Fatalf("want an error result, got %v", m)
			}
			code, msg = er["code"], er["message"]
		}
		if code != tc.code || !strings.Contains(fmt.Sprint(msg), tc.msg) {
			t.Fatalf("want %s %q, got %v", tc.code, tc.msg, m)
		}
		if !tc.result && m["sub"] != tc.sub {
			t.Fatalf("error names sub %v, want %v: %v", m["sub"], tc.sub, m)
		}
	}
	if tc.close != 0 {
		if code := c.waitClose(); code != tc.close {
			t.Fatalf("close code %d, want %d", code, tc.close)
		}
		return
	}
	if tc.check != nil {
		tc.check(t, e, c)
	}
	// The socket stays open and keeps working.
	if tc.anon {
		c.send(`{"type":"hello","v":1,"token":%q}`, e.tokens["1"])
		c.relUntil("welcome")
	}
	c.relSubscribe("after", "RoomChannel", `{"roomId":1}`)
	c.conn.Close()
}
