package rx_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/rxgorm/rxgorm/rx"
	"gorm.io/gorm"
)

// Issue 17, item 4: writes through db.Connection's dedicated connection are
// captured like any other (GORM wraps each in a transaction of its own);
// only an explicit transaction begun on that connection is refused.
func TestCaptureConnection(t *testing.T) {
	runChatCases(t, []chatCase{
		{"create, update and delete on db.Connection", func(t *testing.T, f *chatFx) {
			m := Message{ChatID: f.chatA.ID, SenderID: f.alice.ID, Text: "on a connection"}
			noErr(t, f.db.Connection(func(tx *gorm.DB) error { return tx.Create(&m).Error }))
			f.expect(f.a,
				chatField(f.chatA.ID, "messages", idList(f.m1.ID, f.m2.ID, m.ID)),
				msgFull(m),
			)
			noErr(t, f.db.Connection(func(tx *gorm.DB) error {
				return tx.Model(&Message{}).Where("id = ?", f.m1.ID).Update("text", "edited").Error
			}))
			f.expect(f.a, live("Message", f.m1.ID, Fld{"text": "edited"}))
			noErr(t, f.db.Connection(func(tx *gorm.DB) error { return tx.Delete(&Message{}, m.ID).Error }))
			f.expect(f.a, tomb("Message", m.ID), chatField(f.chatA.ID, "messages", idList(f.m1.ID, f.m2.ID)))
		}},
		{"explicit transaction on db.Connection is refused", func(t *testing.T, f *chatFx) {
			err := f.db.Connection(func(tx *gorm.DB) error {
				return tx.Transaction(func(tx2 *gorm.DB) error {
					return tx2.Model(&Message{}).Where("id = ?", f.m1.ID).Update("text", "unowned").Error
				})
			})
			if !errors.Is(err, rx.ErrUnownedTransaction) {
				t.Fatalf("err = %v, want rx.ErrUnownedTransaction", err)
			}
			if m := f.msg(f.m1.ID); m.Text != "hello" {
				t.Fatalf("the refused write committed: %+v", m)
			}
			f.quiet()
		}},
	})
}

// failingBroker refuses subscriptions to one topic.
type failingBroker struct {
	*rx.MemoryBroker
	topic string
}

func (b failingBroker) Subscribe(ctx context.Context, topic string, handle func([]byte)) (func(), error) {
	if topic == b.topic {
		return nil, errors.New("broker refuses " + topic)
	}
	return b.MemoryBroker.Subscribe(ctx, topic, handle)
}

// Issue 17, item 9: a New that fails after its first steps leaves db as it
// found it: no plugin, no callbacks, and a later New installs its own.
func TestNewFailureLeavesDBClean(t *testing.T) {
	db := openSQLite(t)
	migrate(t, db)
	_, err := rx.New(db, rx.Config{Broker: failingBroker{MemoryBroker: rx.NewMemoryBroker(), topic: "presence"}})
	if err == nil {
		t.Fatal("New succeeded with a broker that refuses the presence topic")
	}
	if _, ok := db.Plugins["rxgorm"]; ok {
		t.Error("the failed New left the rxgorm plugin registered on db")
	}
	for _, name := range []string{"rx:after_create", "rx:own_connection"} {
		if db.Callback().Create().Get(name) != nil {
			t.Errorf("the failed New left callback %s on db", name)
		}
	}
	// db still works, and a later New captures its writes.
	h := newHub(t, db)
	u := User{Name: "zoe"}
	noErr(t, db.Create(&u).Error)
	c := Chat{Title: "after", Members: []User{u}}
	noErr(t, db.Create(&c).Error)
	sub, err := h.Subscribe(context.Background(), "ChatChannel", ChatParams{ChatID: c.ID}, rx.User{ID: "1"}, rx.SubscribeOptions{})
	noErr(t, err)
	if ev := next(t, sub); !ev.Snapshot {
		t.Fatalf("first event is not a snapshot: %s", dump(ev))
	}
	noErr(t, db.Model(&Chat{}).Where("id = ?", c.ID).Update("title", "renamed").Error)
	ev := next(t, sub)
	if len(ev.Instances) != 1 || string(ev.Instances[0].Fields["title"]) != `"renamed"` {
		t.Fatalf("delta after the second New = %s, want the new title", dump(ev))
	}
}

// Near-miss hooks (issue 17, item 5): each would be silently ignored.
type ptrAuthChannel struct{ rx.Channel[Chat, ChatParams] }

func (c *ptrAuthChannel) Authorize(context.Context, rx.User, ChatParams) error { return nil }

type ptrParamAuthChannel struct{ rx.Channel[Chat, ChatParams] }

func (ptrParamAuthChannel) Authorize(context.Context, rx.User, *ChatParams) error { return nil }

type ptrActionsChannel struct{ rx.Channel[Chat, ChatParams] }

func (ptrActionsChannel) Authorize(context.Context, rx.User, ChatParams) error { return nil }
func (c *ptrActionsChannel) Actions() []string                                 { return []string{"Ping"} }
func (c *ptrActionsChannel) Ping(context.Context) error                        { return nil }

type badWritableChannel struct{ rx.Channel[Chat, ChatParams] }

func (badWritableChannel) Authorize(context.Context, rx.User, ChatParams) error { return nil }
func (badWritableChannel) Writable() []rx.Writes[Message]                       { return nil }

type badConnectChannel struct{ rx.Channel[Chat, ChatParams] }

func (badConnectChannel) Authorize(context.Context, rx.User, ChatParams) error { return nil }
func (*badConnectChannel) OnConnect(context.Context)                           {}

type badAnchorsList struct{ rx.List[Chat, rx.NoParams] }

func (badAnchorsList) Authorize(context.Context, rx.User, rx.NoParams) error { return nil }
func (badAnchorsList) Anchors(ctx context.Context, db *gorm.DB, u rx.User) *gorm.DB {
	return db
}

func TestRegisterNearMissHooks(t *testing.T) {
	for _, c := range []struct {
		name    string
		channel any
		field   string
		reason  string
	}{
		{"pointer receiver, registered by value", ptrAuthChannel{}, "Authorize",
			"Authorize has a pointer receiver, but the channel was registered as a value, so it would never run: register &ptrAuthChannel{} (the method is Authorize(context.Context, rx.User, rx_test.ChatParams) error)"},
		{"pointer params", &ptrParamAuthChannel{}, "Authorize",
			"method Authorize(context.Context, rx.User, *rx_test.ChatParams) error does not match the hook, so it would never run: want Authorize(context.Context, rx.User, rx_test.ChatParams) error"},
		{"actions on a pointer receiver, registered by value", ptrActionsChannel{}, "Actions", "register &ptrActionsChannel{}"},
		{"writes of the wrong type", &badWritableChannel{}, "Writable", "want Writable() []rx.Writable"},
		{"OnConnect without error", badConnectChannel{}, "OnConnect", "want OnConnect(context.Context) error"},
		{"Anchors without params", &badAnchorsList{}, "Anchors", "want Anchors(context.Context, *gorm.DB, rx.User, rx.NoParams) *gorm.DB"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, check := range []struct {
				what string
				err  func() error
			}{
				{"Register", func() error { return newHub(t, openSQLite(t)).Register(c.channel) }},
				{"Describe", func() error { _, err := rx.Describe(c.channel); return err }},
			} {
				err := check.err()
				var de *rx.DeclarationError
				if !errors.As(err, &de) {
					t.Fatalf("%s: err = %v, want a DeclarationError", check.what, err)
				}
				if de.Field != c.field || !strings.Contains(de.Reason, c.reason) {
					t.Errorf("%s: %s: %q, want field %s and %q", check.what, c.name, err, c.field, c.reason)
				}
			}
		})
	}
	// The right forms register: a pointer receiver on a pointer, hooks on
	// the instance with pointer receivers on a value.
	if err := newHub(t, openSQLite(t)).Register(&ptrAuthChannel{}, &ptrActionsChannel{}); err != nil {
		t.Fatal(err)
	}
}

// Shadowing (issue 17, item 3): the outer Title hides the embedded one,
// as in encoding/json, in layers, action arguments and the state.
type ShadowExtra struct {
	Title int    `gorm:"column:extra_title" json:"title"`
	Note  string `json:"note"`
}

type ShadowNote struct {
	ShadowExtra
	ID    uint   `gorm:"primaryKey" json:"id"`
	Title string `json:"title"`
}

type ShadowArgs struct {
	ShadowExtra
	Title string `json:"title"`
}

type ShadowParams struct {
	ID uint `json:"id"`
}

type ShadowChannel struct {
	rx.Channel[ShadowNote, ShadowParams]
}

func (ShadowChannel) Authorize(context.Context, rx.User, ShadowParams) error { return nil }
func (ShadowChannel) Actions() []string                                      { return []string{"Set"} }
func (ShadowChannel) Set(context.Context, ShadowArgs) error                  { return nil }

func TestShadowedFields(t *testing.T) {
	d, err := rx.Describe(&ShadowChannel{})
	noErr(t, err)
	var titles []string
	for _, f := range d.Layers[0].Fields {
		if f.Name == "title" {
			titles = append(titles, string(f.Type.Kind))
		}
	}
	if !slices.Equal(titles, []string{"string"}) {
		t.Errorf("layer field title: kinds %v, want one string", titles)
	}
	args := d.Types[d.Channels[0].Actions[0].Args[0].Ref]
	titles = nil
	for _, f := range args.Fields {
		if f.Name == "title" {
			titles = append(titles, string(f.Type.Kind))
		}
	}
	if !slices.Equal(titles, []string{"string"}) {
		t.Errorf("argument field title: kinds %v, want one string", titles)
	}

	db := openSQLite(t)
	noErr(t, db.AutoMigrate(&ShadowNote{}))
	h, err := rx.New(db, rx.Config{})
	noErr(t, err)
	t.Cleanup(func() { h.Close() })
	noErr(t, h.Register(&ShadowChannel{}))
	n := ShadowNote{ShadowExtra: ShadowExtra{Title: 7, Note: "n"}, Title: "outer"}
	noErr(t, db.Create(&n).Error)
	got, err := h.Snapshot(context.Background(), "ShadowChannel", ShadowParams{ID: n.ID}, rx.User{ID: "1"})
	noErr(t, err)
	want, _ := json.Marshal(map[string]any{"id": sid(n.ID), "title": "outer", "note": "n"})
	if !reflect.DeepEqual(normJSON(t, got), normJSON(t, want)) {
		t.Errorf("state %s, want what encoding/json writes: %s", got, want)
	}
}

// 64-bit ids (issue 17, item 1): 2^53+1 and 2^63-1 survive every path
// exactly, as JSON strings.
type BigChat struct {
	ID       int64    `gorm:"primaryKey;autoIncrement:false" json:"id"`
	Title    string   `json:"title"`
	Messages []BigMsg `gorm:"foreignKey:ChatID" json:"messages"`
}

type BigMsg struct {
	ID     int64  `gorm:"primaryKey;autoIncrement:false" json:"id"`
	ChatID int64  `json:"chatId"`
	Reply  *int64 `json:"reply"` // a nullable id by name? no: "Reply" is not an id
	RefID  *int64 `json:"refId"` // a nullable id
	Count  int64  `json:"count"` // not an id: a number
	Text   string `json:"text"`
}

type BigParams struct {
	ChatID int64 `json:"chatId"`
}

type BigChannel struct{ rx.Channel[BigChat, BigParams] }

func (BigChannel) Authorize(context.Context, rx.User, BigParams) error { return nil }
func (BigChannel) Actions() []string                                   { return []string{"Echo"} }

// Echo returns its id argument, as a string so the result is exact too.
func (BigChannel) Echo(_ context.Context, id int64, ids []uint64) (string, error) {
	return fmt.Sprint(id, ids), nil
}

func (BigChannel) Writable() []rx.Writable {
	return []rx.Writable{rx.Writes[BigMsg]{Fields: []string{"text", "refId"}, Save: true, Allow: func(context.Context, rx.Write[BigMsg]) error { return nil }}}
}

// TestWideIDs runs on every database: 64-bit ids must survive each
// driver's column types and scanning.
func TestWideIDs(t *testing.T) {
	for name, open := range openers {
		t.Run(name, func(t *testing.T) { testWideIDs(t, open(t)) })
	}
}

func testWideIDs(t *testing.T, db *gorm.DB) {
	const (
		p53  = int64(1) << 53
		max  = int64(^uint64(0) >> 1)
		smax = "9223372036854775807"
	)
	ctx := context.Background()
	noErr(t, db.AutoMigrate(&BigChat{}, &BigMsg{}))
	h, err := rx.New(db, rx.Config{})
	noErr(t, err)
	t.Cleanup(func() { h.Close() })
	noErr(t, h.Register(&BigChannel{}))
	ref := max
	noErr(t, db.Create(&BigChat{ID: max, Title: "big"}).Error)
	for _, id := range []int64{p53, p53 + 1, p53 + 3} {
		noErr(t, db.Create(&BigMsg{ID: id, ChatID: max, RefID: &ref, Count: 1, Text: fmt.Sprint(id)}).Error)
	}

	// Params may carry the id as a string (as the client holds it).
	sub, err := h.Subscribe(ctx, "BigChannel", json.RawMessage(`{"chatId":"`+smax+`"}`), rx.User{ID: "1"}, rx.SubscribeOptions{})
	noErr(t, err)
	st, err := h.NewState("BigChannel", rx.User{ID: "1"})
	noErr(t, err)
	ev := next(t, sub)
	st.Apply(ev)
	got, err := st.JSON()
	noErr(t, err)
	want := `{"id":"9223372036854775807","messages":[` +
		`{"chatId":"9223372036854775807","count":1,"id":"9007199254740992","refId":"9223372036854775807","reply":null,"text":"9007199254740992"},` +
		`{"chatId":"9223372036854775807","count":1,"id":"9007199254740993","refId":"9223372036854775807","reply":null,"text":"9007199254740993"},` +
		`{"chatId":"9223372036854775807","count":1,"id":"9007199254740995","refId":"9223372036854775807","reply":null,"text":"9007199254740995"}],"title":"big"}`
	if string(got) != want {
		t.Fatalf("snapshot state\n got %s\nwant %s", got, want)
	}
	if ev.Anchor != smax {
		t.Errorf("anchor %q, want %q", ev.Anchor, smax)
	}

	// A delta: the relation list and the new row, ids as strings.
	noErr(t, db.Create(&BigMsg{ID: max, ChatID: max, Text: "last"}).Error)
	ev = next(t, sub)
	st.Apply(ev)
	fields := map[string]string{}
	for _, in := range ev.Instances {
		for k, v := range in.Fields {
			fields[in.Type+"."+in.ID+"."+k] = string(v)
		}
	}
	for k, v := range map[string]string{
		"BigChat." + smax + ".messages": `["9007199254740992","9007199254740993","9007199254740995","9223372036854775807"]`,
		"BigMsg." + smax + ".id":        `"9223372036854775807"`,
		"BigMsg." + smax + ".chatId":    `"9223372036854775807"`,
		"BigMsg." + smax + ".refId":     `null`,
	} {
		if fields[k] != v {
			t.Errorf("delta %s = %s, want %s", k, fields[k], v)
		}
	}

	// Resume from the first version: only what changed, exactly.
	noErr(t, db.Model(&BigMsg{}).Where("id = ?", p53+1).Update("text", "edited").Error)
	next(t, sub)
	resumed, err := h.Subscribe(ctx, "BigChannel", BigParams{ChatID: max}, rx.User{ID: "1"}, rx.SubscribeOptions{Since: map[string]uint64{smax: ev.Version}})
	noErr(t, err)
	rev := next(t, resumed)
	if rev.Snapshot || len(rev.Instances) != 1 || rev.Instances[0].ID != "9007199254740993" || string(rev.Instances[0].Fields["chatId"]) != `"`+smax+`"` {
		t.Errorf("resume: %s", dump(rev))
	}

	// Actions take 64-bit integers as strings or numbers.
	for _, args := range [][]string{
		{`"9007199254740993"`, `["9223372036854775807","9007199254740993"]`},
		{`9007199254740993`, `[9223372036854775807,"9007199254740993"]`},
	} {
		res, err := sub.Call(ctx, "echo", []json.RawMessage{json.RawMessage(args[0]), json.RawMessage(args[1])})
		if err != nil || res != "9007199254740993 [9223372036854775807 9007199254740993]" {
			t.Errorf("echo%v = %v, %v", args, res, err)
		}
	}
	if _, err := sub.Call(ctx, "echo", []json.RawMessage{json.RawMessage(`"9223372036854775808"`), json.RawMessage(`[]`)}); rx.Public(err) == nil || rx.Public(err).Code != rx.CodeBadRequest {
		t.Errorf("echo(2^63) = %v, want bad_request", err)
	}

	// Client writes name the row by its exact id and may set id fields
	// with strings.
	row, err := sub.Write(ctx, rx.WriteRequest{Op: rx.OpSave, Layer: "BigMsg", Row: "9007199254740995", Fields: map[string]json.RawMessage{
		"text": json.RawMessage(`"written"`), "refId": json.RawMessage(`"9007199254740993"`),
	}})
	noErr(t, err)
	if row != "9007199254740995" {
		t.Errorf("write row %q", row)
	}
	var m BigMsg
	noErr(t, db.First(&m, p53+3).Error)
	if m.Text != "written" || m.RefID == nil || *m.RefID != p53+1 {
		t.Errorf("written row %+v", m)
	}
	var other BigMsg
	noErr(t, db.First(&other, p53).Error)
	if other.Text != fmt.Sprint(p53) {
		t.Errorf("the write touched row 2^53: %+v", other)
	}

	// A Go client decodes the state back with rx.Unmarshal.
	snap, err := h.Snapshot(ctx, "BigChannel", BigParams{ChatID: max}, rx.User{ID: "1"})
	noErr(t, err)
	var back BigChat
	noErr(t, rx.Unmarshal(snap, &back))
	if back.ID != max || len(back.Messages) != 4 || back.Messages[1].ID != p53+1 || back.Messages[2].RefID == nil || *back.Messages[2].RefID != p53+1 {
		t.Errorf("decoded %+v", back)
	}
}
