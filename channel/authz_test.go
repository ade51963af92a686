package channel_test

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/channel"
)

// The authorization matrix: users × channels × paths (snapshot, delta,
// list add and remove, resume, groups). Every frame any user receives is
// checked against what that user may see. Forbidden data carries canaries
// ("SECRET" for what only user 1 may see, "NOTE-of-<user>" for per-user
// rows), checked in the frame's JSON, and rows and ids are checked
// structurally. Positive controls prove the data did flow to those allowed.

// relWatcher is one user's socket, recording every frame.
type relWatcher struct {
	t    *testing.T
	e    *env
	user string // "" for anonymous
	c    *client

	mu       sync.Mutex
	frames   []map[string]any
	channels []string          // the channel each frame belongs to, if any
	cuts     map[string]int    // room id → index of the first frame it is private for
	versions map[string]uint64 // channel/anchor → last version
	subs     map[string]relSub // live subscriptions by id
	stop     chan struct{}
	done     chan struct{}
}

type relSub struct{ channel, params string }

func relWatch(t *testing.T, e *env, user string) *relWatcher {
	w := &relWatcher{t: t, e: e, user: user, versions: map[string]uint64{}, subs: map[string]relSub{}, cuts: map[string]int{}}
	w.connect()
	return w
}

func (w *relWatcher) connect() {
	w.t.Helper()
	if w.user == "" {
		w.c = w.e.dial(nil)
		w.c.send(`{"type":"hello","v":1}`)
	} else {
		w.c = w.e.dial(nil)
		w.c.send(`{"type":"hello","v":1,"token":%q}`, w.e.tokens[w.user])
	}
	w.stop, w.done = make(chan struct{}), make(chan struct{})
	go w.drain(w.c, w.stop, w.done)
	w.wait("welcome", func(m map[string]any) bool { return m["type"] == "welcome" })
}

func (w *relWatcher) drain(c *client, stop, done chan struct{}) {
	defer close(done)
	for {
		select {
		case m := <-c.frames:
			w.record(m)
		case <-c.closed:
			for {
				select {
				case m := <-c.frames:
					w.record(m)
				default:
					return
				}
			}
		case <-stop:
			return
		}
	}
}

func (w *relWatcher) record(m map[string]any) {
	w.mu.Lock()
	defer w.mu.Unlock()
	ch, _ := m["channel"].(string)
	if ch == "" && m["sub"] != nil {
		ch = w.subs[fmt.Sprint(m["sub"])].channel
	}
	w.frames = append(w.frames, m)
	w.channels = append(w.channels, ch)
	switch m["type"] {
	case "snapshot", "delta":
		k := fmt.Sprint(ch, "/", m["anchor"])
		w.versions[k] = max(w.versions[k], uint64(m["version"].(float64)))
	case "error":
		if m["sub"] != nil {
			delete(w.subs, fmt.Sprint(m["sub"]))
		}
	}
}

// wait waits until some frame received so far satisfies f, and returns it.
func (w *relWatcher) wait(what string, f func(map[string]any) bool) map[string]any {
	w.t.Helper()
	return w.waitFrom(0, what, f)
}

// waitFrom is wait over the frames from index start on.
func (w *relWatcher) waitFrom(start int, what string, f func(map[string]any) bool) map[string]any {
	w.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		w.mu.Lock()
		for _, m := range w.frames[start:] {
			if f(m) {
				w.mu.Unlock()
				return m
			}
		}
		w.mu.Unlock()
		if time.Now().After(deadline) {
			w.t.Fatalf("user %q: no %s", w.user, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// sub subscribes and returns "" once done arrives, or the error code.
func (w *relWatcher) sub(id, channel, params string) string {
	w.t.Helper()
	w.mu.Lock()
	w.subs[id] = relSub{channel, params}
	since := map[string]uint64{}
	for k, v := range w.versions {
		if a, ok := strings.CutPrefix(k, channel+"/"); ok {
			since[a] = v
		}
	}
	start := len(w.frames)
	w.mu.Unlock()
	sinceJSON, _ := json.Marshal(since)
	w.c.send(`{"type":"sub","id":%q,"channel":%q,"params":%s,"since":%s}`, id, channel, params, sinceJSON)
	m := w.waitFrom(start, "end of subscribe "+id, func(m map[string]any) bool {
		return m["sub"] == id && (m["type"] == "done" || m["type"] == "error")
	})
	if m["type"] == "error" {
		return m["code"].(string)
	}
	return ""
}

// reconnect drops the socket and subscribes again to every live
// subscription, resuming from the versions seen.
func (w *relWatcher) reconnect() map[string]string {
	w.t.Helper()
	w.c.conn.Close()
	<-w.done
	w.mu.Lock()
	subs := w.subs
	w.subs = map[string]relSub{}
	w.mu.Unlock()
	w.connect()
	out := map[string]string{}
	for _, id := range slices.Sorted(func(yield func(string) bool) {
		for id := range subs {
			if !yield(id) {
				return
			}
		}
	}) {
		out[id] = w.sub(id, subs[id].channel, subs[id].params)
	}
	return out
}

func (w *relWatcher) close() {
	w.c.conn.Close()
	<-w.done
}

func (w *relWatcher) saw(s string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	for _, m := range w.frames {
		b, _ := json.Marshal(m)
		if strings.Contains(string(b), s) {
			return true
		}
	}
	return false
}

// relACL is what the test knows about who may see what.
type relACL struct {
	mu          sync.Mutex
	noteOwners  map[string]map[string]bool // note id → every user who owned it
	secretPosts map[string]bool            // posts only user 1 may see
}

// roomChannels are the channels whose anchors are rooms.
var roomChannels = map[string]bool{"RoomChannel": true, "RoomList": true, "RelVisibleRooms": true}

// check returns what is wrong with frame m of channel received by user,
// when the rooms in private were private to it.
func (a *relACL) check(user string, m map[string]any, channel string, private map[string]bool) []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	var bad []string
	raw, _ := json.Marshal(m)
	js := string(raw)
	if user != "1" && strings.Contains(js, "SECRET") {
		bad = append(bad, "SECRET canary")
	}
	for _, u := range []string{"1", "2", "3"} {
		if u != user && strings.Contains(js, "NOTE-of-"+u) {
			bad = append(bad, "note canary of user "+u)
		}
	}
	if roomChannels[channel] {
		if private[fmt.Sprint(m["anchor"])] {
			bad = append(bad, "a private room's stream")
		}
		if ids, ok := m["ids"].([]any); ok {
			for _, id := range ids {
				if private[fmt.Sprint(id)] {
					bad = append(bad, "a private room's id in a list")
				}
			}
		}
	}
	list, _ := m["instances"].([]any)
	for _, x := range list {
		in := x.(map[string]any)
		typ, id := in["type"].(string), in["id"].(string)
		owner, owned := in["owner"].(string)
		if owned && owner != user {
			bad = append(bad, fmt.Sprintf("%s/%s of owner %s", typ, id, owner))
		}
		fields, _ := in["fields"].(map[string]any)
		switch typ {
		case "Note":
			if !a.noteOwners[id][user] {
				bad = append(bad, "note "+id+" of another user")
			}
		case "Post":
			if user != "1" && a.secretPosts[id] {
				bad = append(bad, "private post "+id)
			}
		case "Room":
			if private[id] {
				bad = append(bad, "private room "+id)
			}
			if notes, ok := fields["notes"].([]any); ok {
				for _, n := range notes {
					nid := fmt.Sprint(n)
					if !owned || !a.noteOwners[nid][user] {
						bad = append(bad, fmt.Sprintf("room %s lists note %s", id, nid))
					}
				}
			}
		}
	}
	return bad
}

func (a *relACL) note(id uint, user string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	k := fmt.Sprint(id)
	if a.noteOwners[k] == nil {
		a.noteOwners[k] = map[string]bool{}
	}
	a.noteOwners[k][user] = true
}

func TestAuthorizationMatrix(t *testing.T) {
	e := newEnv(t, openSQLite, channel.Options{})
	relRegister(t, e, nil)
	e.auth.Anonymous = true
	acl := &relACL{noteOwners: map[string]map[string]bool{}, secretPosts: map[string]bool{}}
	db := e.db
	note := func(room uint, user uint, text string) Note {
		n := Note{RoomID: room, UserID: user, Text: text}
		if err := db.Create(&n).Error; err != nil {
			t.Fatal(err)
		}
		acl.note(n.ID, fmt.Sprint(user))
		return n
	}
	post := func(room uint, author uint, text string) Post {
		p := Post{RoomID: room, AuthorID: author, Text: text}
		if err := db.Create(&p).Error; err != nil {
			t.Fatal(err)
		}
		if room == 2 || strings.Contains(text, "SECRET") {
			acl.mu.Lock()
			acl.secretPosts[fmt.Sprint(p.ID)] = true
			acl.mu.Unlock()
		}
		return p
	}
	db.Create(&Room{Name: "lobby", Public: true})    // 1
	db.Create(&Room{Name: "SECRET-room-2"})          // 2: user 1 only
	db.Create(&Room{Name: "toggle-3", Public: true}) // 3: goes private later
	post(1, 2, "public hello")
	post(2, 1, "SECRET-post in room 2")
	note(1, 1, "NOTE-of-1 in lobby")
	n2 := note(1, 2, "NOTE-of-2 in lobby")
	note(1, 3, "NOTE-of-3 in lobby")
	note(2, 1, "SECRET NOTE-of-1 in room 2")
	note(3, 2, "NOTE-of-2 in room 3")

	users := []string{"1", "2", "3", ""}
	ws := map[string]*relWatcher{}
	for _, u := range users {
		ws[u] = relWatch(t, e, u)
		if u != "1" {
			for _, r := range []string{"2", "5", "6"} {
				ws[u].cuts[r] = 0 // private from the start
			}
		}
	}
	other := map[string]string{"1": "2", "2": "3", "3": "1", "": "1"}
	self := func(u string) string {
		if u == "" {
			return "0"
		}
		return u
	}
	// Snapshots: the matrix of who may subscribe to what.
	type cell struct{ id, channel, params string }
	row := func(u string) []cell {
		return []cell{
			{"rc1", "RoomChannel", `{"roomId":1}`},
			{"rc2", "RoomChannel", `{"roomId":2}`},
			{"rc3", "RoomChannel", `{"roomId":3}`},
			{"list", "RoomList", `null`},
			{"vis", "RelVisibleRooms", `null`},
			{"inbox", "RelInbox", fmt.Sprintf(`{"userId":%s}`, self(u))},
			{"inbox-other", "RelInbox", fmt.Sprintf(`{"userId":%s}`, other[u])},
		}
	}
	want := map[string]map[string]string{
		"1": {"rc1": "", "rc2": "", "rc3": "", "list": "", "vis": "", "inbox": "", "inbox-other": "forbidden"},
		"2": {"rc1": "", "rc2": "forbidden", "rc3": "", "list": "", "vis": "", "inbox": "", "inbox-other": "forbidden"},
		"3": {"rc1": "", "rc2": "forbidden", "rc3": "", "list": "", "vis": "", "inbox": "", "inbox-other": "forbidden"},
		"":  {"rc1": "unauthenticated", "rc2": "unauthenticated", "rc3": "unauthenticated", "list": "", "vis": "", "inbox": "forbidden", "inbox-other": "forbidden"},
	}
	for _, u := range users {
		for _, c := range row(u) {
			if got := ws[u].sub(c.id, c.channel, c.params); got != want[u][c.id] {
				t.Errorf("user %q subscribing %s %s: got %q, want %q", u, c.channel, c.params, got, want[u][c.id])
			}
		}
	}
	anchors := func(u, sub string) string {
		m := ws[u].wait("anchors of "+sub, func(m map[string]any) bool { return m["type"] == "anchors" && m["sub"] == sub })
		return fmt.Sprint(m["ids"])
	}
	for u, lists := range map[string][2]string{"1": {"[3 1]", "[1 2 3]"}, "2": {"[3 1]", "[1 3]"}, "3": {"[3 1]", "[1 3]"}, "": {"[3 1]", "[1 3]"}} {
		if got := anchors(u, "list"); got != lists[0] {
			t.Errorf("user %q RoomList %s, want %s", u, got, lists[0])
		}
		if got := anchors(u, "vis"); got != lists[1] {
			t.Errorf("user %q RelVisibleRooms %s, want %s", u, got, lists[1])
		}
	}
	step := 0
	barrier := func() {
		t.Helper()
		step++
		marker := fmt.Sprintf("SYNC-%d", step)
		post(1, 1, marker)
		for _, u := range users {
			ws[u].wait(marker, func(m map[string]any) bool {
				b, _ := json.Marshal(m)
				return strings.Contains(string(b), marker)
			})
		}
	}
	barrier()

	// Deltas: per-user rows, private posts, an ownership change, deletes.
	note(1, 1, "NOTE-of-1 second")
	note(1, 2, "NOTE-of-2 second")
	note(2, 3, "NOTE-of-3 in the private room")
	post(2, 1, "SECRET-post two")
	p := post(1, 3, "public post")
	db.Model(&Post{}).Where("room_id = ?", 2).Update("text", "SECRET-post edited")
	db.Model(&n2).Updates(map[string]any{"user_id": 3, "text": "NOTE-of-3 moved from 2"})
	acl.note(n2.ID, "3")
	db.Delete(&Note{}, "text = ?", "NOTE-of-3 in lobby")
	db.Model(&p).Update("text", "public post edited")
	barrier()

	// List add and remove: a new public room joins everyone's lists, a new
	// private room only user 1's; room 3 turns private, leaves the lists of
	// the others, who also lose their room 3 subscriptions.
	db.Create(&Room{Name: "open-4", Public: true})
	db.Create(&Room{Name: "SECRET-room-5"})
	e.hub.Wait(context.Background())
	db.Model(&Room{ID: 3}).Update("public", false)
	for _, u := range []string{"2", "3"} {
		if err := e.hub.Revoke(context.Background(), "RoomChannel", 3, u); err != nil {
			t.Fatal(err)
		}
	}
	e.hub.Wait(context.Background())
	// Once a user's lists dropped room 3 and its room 3 subscription was
	// revoked, nothing of room 3 may reach it.
	for u, lists := range map[string][2]string{"1": {"[4 1]", "[1 2 3 4 5]"}, "2": {"[4 1]", "[1 4]"}, "3": {"[4 1]", "[1 4]"}, "": {"[4 1]", "[1 4]"}} {
		w := ws[u]
		for i, sub := range []string{"list", "vis"} {
			w.wait(fmt.Sprintf("%s list %s", sub, lists[i]), func(m map[string]any) bool {
				return m["type"] == "anchors" && m["sub"] == sub && fmt.Sprint(m["ids"]) == lists[i]
			})
		}
		if u == "2" || u == "3" {
			w.wait("revocation of rc3", func(m map[string]any) bool {
				return m["type"] == "error" && m["sub"] == "rc3" && m["code"] == "forbidden"
			})
		}
		if u != "1" {
			w.mu.Lock()
			w.cuts["3"] = len(w.frames)
			w.mu.Unlock()
		}
	}
	post(3, 1, "SECRET-post in room 3 now private")
	note(3, 2, "NOTE-of-2 in room 3 now private") // user 2's own row: its inbox shows it
	barrier()

	// Groups: runtime values published to a room's group reach only that
	// room's subscribers.
	ws["2"].c.send(`{"type":"call","id":1,"sub":"rc1","action":"typing"}`)
	for _, g := range []string{"room-2", "room-3"} {
		if err := e.hub.Publish(context.Background(), g, "typing", "SECRET-typing-"+g); err != nil {
			t.Fatal(err)
		}
	}
	for _, g := range []string{"room-2", "room-3"} {
		ws["1"].wait("typing in "+g, func(m map[string]any) bool {
			return m["type"] == "runtime" && strings.Contains(fmt.Sprint(m["value"]), "SECRET-typing-"+g)
		})
	}
	for _, u := range []string{"1", "2", "3"} {
		ws[u].wait("typing of user 2 in the lobby", func(m map[string]any) bool {
			return m["type"] == "runtime" && m["sub"] == "rc1" && fmt.Sprint(m["value"]) == "[2]"
		})
	}
	barrier()

	// Resume: everyone drops off; meanwhile more private and per-user
	// writes; everyone comes back with since.
	for _, u := range users {
		ws[u].close()
	}
	note(1, 1, "NOTE-of-1 while away")
	note(1, 3, "NOTE-of-3 while away")
	note(2, 1, "SECRET NOTE-of-1 while away")
	post(2, 1, "SECRET-post while away")
	db.Delete(&Note{}, "text = ?", "NOTE-of-1 second")
	db.Create(&Room{Name: "SECRET-room-6"})
	for _, u := range users {
		got := ws[u].reconnect()
		for id, code := range got {
			if code != "" {
				t.Errorf("user %q resuming %s: %s", u, id, code)
			}
		}
	}
	// Resuming a subscription the user was refused is refused again.
	if code := ws["2"].sub("rc2", "RoomChannel", `{"roomId":2}`); code != "forbidden" {
		t.Errorf("user 2 resuming room 2: %q", code)
	}
	if code := ws["3"].sub("rc3", "RoomChannel", `{"roomId":3}`); code != "forbidden" {
		t.Errorf("user 3 resuming room 3 after it went private: %q", code)
	}
	barrier()
	for _, u := range users {
		ws[u].close()
	}

	// Every frame, of every user, on every path.
	frames := 0
	for _, u := range users {
		w := ws[u]
		for i, m := range w.frames {
			frames++
			private := map[string]bool{}
			for r, cut := range w.cuts {
				private[r] = i >= cut
			}
			if bad := acl.check(u, m, w.channels[i], private); len(bad) > 0 {
				t.Errorf("user %q received %v: %v", u, bad, m)
			}
		}
	}
	// Positive controls: the data did flow to who may see it.
	for u, must := range map[string][]string{
		"1": {"SECRET-post edited", "SECRET NOTE-of-1 in room 2", "SECRET-post in room 3 now private", "SECRET-typing-room-2", "SECRET-typing-room-3", "SECRET-room-5", "SECRET NOTE-of-1 while away", "SECRET-post while away", "NOTE-of-1 while away"},
		"2": {"NOTE-of-2 in lobby", "NOTE-of-2 second", "NOTE-of-2 in room 3", "NOTE-of-2 in room 3 now private", "public post edited", "open-4"},
		"3": {"NOTE-of-3 moved from 2", "NOTE-of-3 while away", "public post edited"},
		"":  {"public post edited", "open-4"},
	} {
		for _, s := range must {
			if !ws[u].saw(s) {
				t.Errorf("user %q never received %q", u, s)
			}
		}
	}
	// User 2 was told its moved note left its view.
	ws["2"].wait("tombstone of the moved note", func(m map[string]any) bool {
		in := instances(m)[fmt.Sprintf("Note/%d@2", n2.ID)]
		return in != nil && in["deleted"] == true
	})
	t.Logf("%d frames to %d users checked", frames, len(users))
}
