package rx_test

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/rx"
	"gorm.io/gorm"
)

// ActiveChat exercises actions, runtime state, consumers and hooks.
type ActiveChat struct {
	rx.Channel[Chat, ChatParams]
	rx.Runtime[ActiveRuntime]
	DB  *gorm.DB // injected into the registered value, copied to every subscription
	Log *eventLog
}

type ActiveRuntime struct {
	Typing []string `json:"typing"`
	Count  int      `json:"count"`
}

type eventLog struct {
	mu     sync.Mutex
	events []string
}

func (l *eventLog) add(s string) {
	l.mu.Lock()
	l.events = append(l.events, s)
	l.mu.Unlock()
}

func (l *eventLog) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.events...)
}

func (ActiveChat) Authorize(context.Context, rx.User, ChatParams) error { return nil }

func (c *ActiveChat) Actions() []string {
	return []string{"SendMessage", "Rename", "Fail", "Boom", "Echo", "Slow", "Schedule"}
}

func (c *ActiveChat) OnConnect(ctx context.Context) error {
	c.Log.add("connect " + c.User().ID)
	c.Join("chat-" + jsonNum(c.Params().ChatID))
	return nil
}

func (c *ActiveChat) OnDisconnect(ctx context.Context) { c.Log.add("disconnect " + c.User().ID) }

func (c *ActiveChat) Consumers() rx.Consumers {
	return rx.Consumers{"one": rx.On(c.onOne), "two": rx.On(c.onTwo)}
}

type typingEvent struct {
	Who string `json:"who"`
}

func (c *ActiveChat) onOne(ctx context.Context, e typingEvent) {
	c.Log.add("one:" + e.Who + "@" + c.User().ID)
	c.Runtime.Set(func(r *ActiveRuntime) { r.Typing = append(r.Typing, e.Who) })
}

func (c *ActiveChat) onTwo(ctx context.Context, e typingEvent) {
	c.Log.add("two:" + e.Who + "@" + c.User().ID)
}

func (c *ActiveChat) SendMessage(ctx context.Context, text string) (*Message, error) {
	m := &Message{ChatID: c.Params().ChatID, Text: text}
	if err := c.DB.WithContext(ctx).Create(m).Error; err != nil {
		return nil, err
	}
	c.Runtime.Set(func(r *ActiveRuntime) { r.Count++ })
	return m, nil
}

type renameArgs struct {
	Title string    `json:"title"`
	At    time.Time `json:"at"`
	Tags  []string  `json:"tags"`
	Note  *string   `json:"note"`
}

func (c *ActiveChat) Rename(ctx context.Context, a renameArgs, n int) (string, error) {
	return a.Title + "/" + a.At.UTC().Format(time.RFC3339) + "/" + strings.Join(a.Tags, ",") + "/" + jsonNum(uint(n)), c.DB.Model(&Chat{ID: c.Params().ChatID}).Update("title", a.Title).Error
}

func (c *ActiveChat) Fail(ctx context.Context) error {
	return rx.Errorf(rx.CodeForbidden, "only admins")
}

func (c *ActiveChat) Boom(ctx context.Context) error {
	panic("boom")
}

func (c *ActiveChat) Echo(ctx context.Context, v any) (any, error) {
	return v, errors.New("plain error")
}

func (c *ActiveChat) Schedule(ctx context.Context, at time.Time) (string, error) {
	return at.UTC().Format(time.RFC3339), nil
}

func (c *ActiveChat) Slow(ctx context.Context) error {
	c.Log.add("slow started")
	<-ctx.Done()
	c.Log.add("slow cancelled")
	return ctx.Err()
}

func TestActionsRuntimeConsumers(t *testing.T) {
	db := openSQLite(t)
	migrate(t, db)
	h := newHub(t, db)
	log := &eventLog{}
	if err := h.Register(&ActiveChat{DB: db, Log: log}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	chat := Chat{Title: "x"}
	db.Create(&chat)
	params := ChatParams{ChatID: chat.ID}
	subA, err := h.Subscribe(ctx, "ActiveChat", params, rx.User{ID: "a"}, rx.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	subB, err := h.Subscribe(ctx, "ActiveChat", params, rx.User{ID: "b"}, rx.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*rx.Subscription{subA, subB} {
		if ev := next(t, s); !ev.Snapshot {
			t.Fatal("want snapshot first")
		}
		if ev := next(t, s); string(ev.Runtime["count"]) != "0" || string(ev.Runtime["typing"]) != "null" {
			t.Fatalf("initial runtime: %v", ev.Runtime)
		}
	}
	call := func(action string, args ...string) (any, error) {
		raw := make([]json.RawMessage, len(args))
		for i, a := range args {
			raw[i] = json.RawMessage(a)
		}
		return subA.Call(ctx, action, raw)
	}

	// Success: the action writes through GORM; the delta reaches both, the
	// runtime change only the caller.
	v, err := call("sendMessage", `"hello"`)
	if err != nil || v.(*Message).Text != "hello" {
		t.Fatalf("sendMessage: %v %v", v, err)
	}
	h.Wait(ctx)
	gotDelta, gotRuntime := false, false
	for len(subA.Events()) > 0 {
		ev := <-subA.Events()
		gotDelta = gotDelta || len(ev.Instances) > 0
		gotRuntime = gotRuntime || string(ev.Runtime["count"]) == "1"
	}
	if !gotDelta || !gotRuntime {
		t.Fatalf("caller got delta=%v runtime=%v", gotDelta, gotRuntime)
	}
	for len(subB.Events()) > 0 {
		if ev := <-subB.Events(); ev.Runtime != nil {
			t.Fatalf("runtime state leaked to another subscription: %v", ev.Runtime)
		}
	}

	// Typed arguments: structs with time.Time, slices, pointers; and ints.
	v, err = call("rename", `{"title":"new","at":"2026-11-23T10:00:00+01:00","tags":["a","b"],"note":null}`, `3`)
	if err != nil || v != "new/2026-11-23T09:00:00Z/a,b/3" {
		t.Fatalf("rename: %v %v", v, err)
	}

	// Every error path.
	for _, c := range []struct {
		action string
		args   []string
		code   rx.Code
		msg    string
	}{
		{"nope", nil, rx.CodeUnknownAction, `no action "nope"`},
		{"SendMessage", []string{`"x"`}, rx.CodeUnknownAction, `no action "SendMessage"`},
		{"sendMessage", nil, rx.CodeBadRequest, "takes 1 argument(s), got 0"},
		{"sendMessage", []string{`"a"`, `"b"`}, rx.CodeBadRequest, "got 2"},
		{"sendMessage", []string{`42`}, rx.CodeBadRequest, "argument 1: want string, got number"},
		{"rename", []string{`{"title":1}`, `1`}, rx.CodeBadRequest, "argument 1: field title: want string, got number"},
		{"rename", []string{`{"at":"yesterday"}`, `1`}, rx.CodeBadRequest, `rename: argument 1: want a time string (RFC 3339), got "yesterday"`},
		{"schedule", []string{`"noon"`}, rx.CodeBadRequest, `schedule: argument 1: want a time string (RFC 3339), got "noon"`},
		{"schedule", []string{`null`}, rx.CodeBadRequest, "schedule: argument 1: want a time string (RFC 3339), got null"},
		{"schedule", []string{`5`}, rx.CodeBadRequest, "schedule: argument 1: want a time string (RFC 3339), got number"},
		{"rename", []string{`{}`, `1.5`}, rx.CodeBadRequest, "argument 2: want integer from"},
		{"rename", []string{`{}`, `null`}, rx.CodeBadRequest, "argument 2: want integer from -9223372036854775808 to 9223372036854775807, got null"},
		{"rename", []string{`null`, `1`}, rx.CodeBadRequest, "argument 1: want object, got null"},
		{"sendMessage", []string{`null`}, rx.CodeBadRequest, "argument 1: want string, got null"},
		{"rename", []string{`{}`, `{`}, rx.CodeBadRequest, "argument 2"},
		{"fail", nil, rx.CodeForbidden, "only admins"},
		{"boom", nil, rx.CodeInternal, "internal error"},
	} {
		_, err := call(c.action, c.args...)
		e := rx.Public(err)
		if e == nil || e.Code != c.code || !strings.Contains(e.Message, c.msg) {
			t.Errorf("%s%v: got %v, want %s %q", c.action, c.args, err, c.code, c.msg)
		}
	}
	if v, err := call("schedule", `"2026-11-23T10:00:00+01:00"`); err != nil || v != "2026-11-23T09:00:00Z" {
		t.Fatalf("schedule: %v %v", v, err)
	}
	// A plain error is internal to the client, the cause kept for the log.
	_, err = call("echo", `1`)
	if e := rx.Public(err); e.Code != rx.CodeInternal || e.Message != "internal error" || !strings.Contains(e.Err.Error(), "plain error") {
		t.Errorf("echo: %#v", e)
	}
	// After a panic the subscription still works.
	if _, err := call("sendMessage", `"after panic"`); err != nil {
		t.Fatal(err)
	}

	// Consumers: each event runs its own handler (RxDjango ran the last
	// decorated one for every event), in every member of the group.
	h.Publish(ctx, "chat-"+jsonNum(chat.ID), "one", typingEvent{Who: "zed"})
	h.Publish(ctx, "chat-"+jsonNum(chat.ID), "two", typingEvent{Who: "amy"})
	h.Publish(ctx, "chat-"+jsonNum(chat.ID), "unknown", nil)
	h.Publish(ctx, "other-group", "one", typingEvent{Who: "nobody"})
	waitFor(t, func() bool { return len(log.all()) >= 6 })
	want := map[string]bool{"connect a": true, "connect b": true, "one:zed@a": true, "one:zed@b": true, "two:amy@a": true, "two:amy@b": true}
	for _, e := range log.all() {
		if !want[e] {
			t.Errorf("unexpected log entry %q", e)
		}
		delete(want, e)
	}
	if len(want) > 0 {
		t.Errorf("missing log entries %v", want)
	}
	// The consumer's runtime change reached its subscriber.
	waitFor(t, func() bool {
		for len(subB.Events()) > 0 {
			if ev := <-subB.Events(); string(ev.Runtime["typing"]) == `["zed"]` {
				return true
			}
		}
		return false
	})

	// An action's context is cancelled when its subscription ends, and
	// OnDisconnect runs.
	done := make(chan error, 1)
	go func() { _, err := call("slow"); done <- err }()
	waitFor(t, func() bool { return slices.Contains(log.all(), "slow started") })
	subA.Close()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("slow: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("action not cancelled")
	}
	waitFor(t, func() bool { return strings.Contains(strings.Join(log.all(), ";"), "disconnect a") })
	// A closed subscription left its groups.
	before := len(log.all())
	h.Publish(ctx, "chat-"+jsonNum(chat.ID), "two", typingEvent{Who: "last"})
	// The open subscription handles it; the closed one, no longer a
	// member when Publish handed the event to the group's members, does
	// not.
	waitFor(t, func() bool { return slices.Contains(log.all()[before:], "two:last@b") })
	for _, e := range log.all()[before:] {
		if strings.HasSuffix(e, "@a") {
			t.Errorf("closed subscription still handles events: %s", e)
		}
	}
}

func TestActionDeclarationErrors(t *testing.T) {
	for _, c := range []struct {
		ch   any
		want string
	}{
		{&missingAction{}, "missingAction.Nope: declared as an action but there is no such exported method"},
		{&noCtxAction{}, "noCtxAction.Do: an action takes a context.Context first"},
		{&noErrAction{}, "noErrAction.Do: an action returns error or (result, error)"},
		{&badArgAction{}, "badArgAction.Do: argument 1: unsupported field type func()"},
	} {
		h, err := rx.New(openSQLite(t), rx.Config{})
		if err != nil {
			t.Fatal(err)
		}
		err = h.Register(c.ch)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("got %v, want %q", err, c.want)
		}
		h.Close()
	}
}

type missingAction struct{ rx.Channel[Chat, ChatParams] }

func (missingAction) Actions() []string { return []string{"Nope"} }

type noCtxAction struct{ rx.Channel[Chat, ChatParams] }

func (noCtxAction) Actions() []string { return []string{"Do"} }
func (noCtxAction) Do(s string) error { return nil }

type noErrAction struct{ rx.Channel[Chat, ChatParams] }

func (noErrAction) Actions() []string                    { return []string{"Do"} }
func (noErrAction) Do(ctx context.Context) (int, string) { return 0, "" }

type badArgAction struct{ rx.Channel[Chat, ChatParams] }

func (badArgAction) Actions() []string                      { return []string{"Do"} }
func (badArgAction) Do(ctx context.Context, f func()) error { return nil }

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Explicit add/remove of anchors from list-channel code.
type PickedChats struct{ rx.List[Chat, rx.NoParams] }

func (PickedChats) Authorize(context.Context, rx.User, rx.NoParams) error { return nil }

func (PickedChats) Anchors(ctx context.Context, db *gorm.DB, u rx.User, p rx.NoParams) *gorm.DB {
	return db.Where("title LIKE ?", "pub%").Order("id")
}

func (c *PickedChats) Actions() []string { return []string{"Pin", "Hide"} }

func (c *PickedChats) Pin(ctx context.Context, id uint, atStart bool) error {
	return c.AddAnchor(id, atStart)
}

func (c *PickedChats) Hide(ctx context.Context, id uint) error { return c.RemoveAnchor(id) }

func TestListAddRemove(t *testing.T) {
	db := openSQLite(t)
	migrate(t, db)
	h := newHub(t, db)
	if err := h.Register(&PickedChats{}); err != nil {
		t.Fatal(err)
	}
	for _, title := range []string{"pub1", "private2", "pub3", "private4"} {
		db.Create(&Chat{Title: title})
	}
	ctx := context.Background()
	sub, err := h.Subscribe(ctx, "PickedChats", rx.NoParams{}, rx.User{ID: "1"}, rx.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, _ := h.NewState("PickedChats", rx.User{ID: "1"})
	titles := func() string {
		h.Wait(ctx)
		for len(sub.Events()) > 0 {
			st.Apply(<-sub.Events())
		}
		var out []string
		for _, c := range st.Value().([]any) {
			var title string
			json.Unmarshal(c.(map[string]any)["title"].(json.RawMessage), &title)
			out = append(out, title)
		}
		return strings.Join(out, ",")
	}
	if got := titles(); got != "pub1,pub3" {
		t.Fatalf("initial: %s", got)
	}
	call := func(action string, args ...string) {
		raw := make([]json.RawMessage, len(args))
		for i, a := range args {
			raw[i] = json.RawMessage(a)
		}
		if _, err := sub.Call(ctx, action, raw); err != nil {
			t.Fatal(err)
		}
	}
	call("pin", "4", "true")
	call("pin", "2", "false")
	if got := titles(); got != "private4,pub1,pub3,private2" {
		t.Fatalf("after pins: %s", got)
	}
	call("hide", "1")
	db.Create(&Chat{Title: "pub5"}) // the query still drives the rest
	if got := titles(); got != "private4,pub3,pub5,private2" {
		t.Fatalf("after hide and create: %s", got)
	}
	if got := sub.Anchors(); strings.Join(got, ",") != "4,3,5,2" {
		t.Fatalf("Anchors() = %v", got)
	}
}
