package rx_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/rxgorm/rxgorm/rx"
	"gorm.io/gorm"
)

// Bad declarations fail at registration, naming the type and the field.

type noAnchorChannel struct{}

type Funky struct {
	ID       uint        `gorm:"primaryKey" json:"id"`
	Callback func()      `gorm:"-" json:"callback"`
	Ch       chan int    `gorm:"-" json:"-"` // skipped: fine
	C        complex128  `gorm:"-" json:"c,omitempty"`
	Tags     []string    `gorm:"serializer:json" json:"tags"`
	Meta     map[int]any `gorm:"serializer:json" json:"meta"`
}
type FunkyChannel struct {
	rx.Channel[Funky, struct{ ID uint }]
}

// A type cycle: Team → Players → Team.
type Team struct {
	ID      uint     `gorm:"primaryKey" json:"id"`
	Players []Player `json:"players"`
}
type Player struct {
	ID     uint `gorm:"primaryKey" json:"id"`
	TeamID uint `json:"teamId"`
	Team   Team `json:"team"`
}
type TeamChannel struct {
	rx.Channel[Team, struct{ ID uint }]
}

// The same cycle with a stop.
type Club struct {
	ID      uint     `gorm:"primaryKey" json:"id"`
	Members []Person `json:"members"`
}
type Person struct {
	ID     uint `gorm:"primaryKey" json:"id"`
	ClubID uint `json:"clubId"`
	Club   Club `json:"club" rx:"ids"`
}
type ClubChannel struct {
	rx.Channel[Club, struct{ ID uint }]
}

type Composite struct {
	A string `gorm:"primaryKey"`
	B string `gorm:"primaryKey"`
}
type CompositeChannel struct {
	rx.Channel[Composite, struct{ A string }]
}

type TwoParams struct {
	A, B uint
}
type AmbiguousChannel struct{ rx.Channel[Chat, TwoParams] }

type BadTag struct {
	ID   uint   `gorm:"primaryKey" json:"id"`
	Name string `json:"name" rx:"limit=3"`
}
type BadTagChannel struct {
	rx.Channel[BadTag, struct{ ID uint }]
}

type OtherChatChannel struct{ rx.Channel[Chat, ChatParams] }

func (OtherChatChannel) ChannelName() string { return "ChatChannel" }

func TestDeclarationErrors(t *testing.T) {
	db := openSQLite(t)
	cases := []struct {
		name    string
		channel any
		want    []string // substrings of the error
	}{
		{"not a channel", &noAnchorChannel{}, []string{"noAnchorChannel", "not a channel"}},
		{"unsupported field type", &FunkyChannel{}, []string{"rx_test.Funky.Callback", "func()"}},
		{"cycle without stop", &TeamChannel{}, []string{"type cycle", "Team.Players", "Player.Team", "rx:\"ids\""}},
		{"composite key", &CompositeChannel{}, []string{"rx_test.Composite", "primary key"}},
		{"ambiguous params", &AmbiguousChannel{}, []string{"AmbiguousChannel", "rx:\"anchor\""}},
		{"option on a plain field", &BadTagChannel{}, []string{"rx_test.BadTag.Name", "not a gorm association"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			h, err := rx.New(openSQLite(t), rx.Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			err = h.Register(c.channel)
			var de *rx.DeclarationError
			if !errors.As(err, &de) {
				t.Fatalf("want *rx.DeclarationError, got %v", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
	t.Run("duplicate name", func(t *testing.T) {
		h := newHub(t, db)
		err := h.Register(&OtherChatChannel{})
		if err == nil || !strings.Contains(err.Error(), `"ChatChannel" is already registered`) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("cycle with stop", func(t *testing.T) {
		h, err := rx.New(openSQLite(t), rx.Config{})
		if err != nil {
			t.Fatal(err)
		}
		defer h.Close()
		if err := h.Register(&ClubChannel{}); err != nil {
			t.Fatal(err)
		}
	})
}

// Deny by default: a channel without Authorize refuses everyone.
type OpenChat struct{ rx.Channel[Chat, ChatParams] }

func TestDenyByDefault(t *testing.T) {
	db := openSQLite(t)
	migrate(t, db)
	h := newHub(t, db)
	if err := h.Register(&OpenChat{}); err != nil {
		t.Fatal(err)
	}
	c := Chat{Title: "x"}
	db.Create(&c)
	ctx := context.Background()
	_, err := h.Subscribe(ctx, "OpenChat", ChatParams{ChatID: c.ID}, rx.User{ID: "1"}, rx.SubscribeOptions{})
	if !errors.Is(err, rx.ErrForbidden) {
		t.Fatalf("want forbidden, got %v", err)
	}
	if _, err := h.Snapshot(ctx, "OpenChat", ChatParams{ChatID: c.ID}, rx.User{ID: "1"}); !errors.Is(err, rx.ErrForbidden) {
		t.Fatalf("Snapshot: want forbidden, got %v", err)
	}
	// The hook's own error reaches the caller with its code.
	_, err = h.Subscribe(ctx, "ChatChannel", ChatParams{ChatID: c.ID}, rx.User{ID: "banned"}, rx.SubscribeOptions{})
	if !errors.Is(err, rx.ErrForbidden) || !strings.Contains(err.Error(), "banned") {
		t.Fatalf("want forbidden banned, got %v", err)
	}
	// Unknown anchors and channels, and mistyped params.
	if _, err := h.Subscribe(ctx, "ChatChannel", ChatParams{ChatID: 999}, rx.User{}, rx.SubscribeOptions{}); !errors.Is(err, rx.ErrNotFound) {
		t.Fatalf("want not_found, got %v", err)
	}
	if _, err := h.Subscribe(ctx, "Nope", nil, rx.User{}, rx.SubscribeOptions{}); !errors.Is(err, rx.ErrNotFound) {
		t.Fatalf("want not_found, got %v", err)
	}
	if _, err := h.Subscribe(ctx, "ChatChannel", json.RawMessage(`{"chatId":"x"}`), rx.User{}, rx.SubscribeOptions{}); !errors.Is(err, rx.ErrBadRequest) {
		t.Fatalf("want bad_request, got %v", err)
	}
	if _, err := h.Subscribe(ctx, "ChatChannel", 42, rx.User{}, rx.SubscribeOptions{}); !errors.Is(err, rx.ErrBadRequest) {
		t.Fatalf("want bad_request, got %v", err)
	}
	// JSON params work like typed ones.
	sub, err := h.Subscribe(ctx, "ChatChannel", json.RawMessage(`{"chatId":`+jsonNum(c.ID)+`}`), rx.User{}, rx.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if ev := next(t, sub); !ev.Snapshot || len(ev.Instances) != 1 {
		t.Fatalf("snapshot: %s", dump(ev))
	}
}

func jsonNum(id uint) string { b, _ := json.Marshal(id); return string(b) }

// Per-user rows reach only their owner, and their ids do not appear in what
// other users receive: not in snapshots, deltas, or parents' lists.
func TestPerUserRows(t *testing.T) {
	db := openSQLite(t)
	migrate(t, db)
	h := newHub(t, db)
	ctx := context.Background()
	c := Chat{Title: "x"}
	db.Create(&c)
	db.Create(&Draft{ChatID: c.ID, UserID: 1, Text: "mine"})
	db.Create(&Draft{ChatID: c.ID, UserID: 2, Text: "theirs"})

	subs := map[string]*rx.Subscription{}
	states := map[string]*rx.State{}
	for _, u := range []string{"1", "2", "3"} {
		sub, err := h.Subscribe(ctx, "ChatChannel", ChatParams{ChatID: c.ID}, rx.User{ID: u}, rx.SubscribeOptions{})
		if err != nil {
			t.Fatal(err)
		}
		subs[u] = sub
		states[u], _ = h.NewState("ChatChannel", rx.User{ID: u})
	}
	var raw = map[string][]string{}
	collect := func() {
		h.Wait(ctx)
		for u, sub := range subs {
			for len(sub.Events()) > 0 {
				ev := <-sub.Events()
				states[u].Apply(ev)
				raw[u] = append(raw[u], dump(ev))
			}
		}
	}
	collect()
	db.Create(&Draft{ChatID: c.ID, UserID: 1, Text: "second"})
	db.Model(&Draft{}).Where("text = ?", "theirs").Update("text", "theirs, edited")
	db.Model(&Draft{}).Where("text = ?", "mine").Update("user_id", 3) // ownership moves to user 3
	collect()

	want := map[string]string{
		"1": `{"drafts":[{"chatId":"1","id":"3","text":"second","userId":"1"}],"id":"1","members":[],"messages":[],"title":"x"}`,
		"2": `{"drafts":[{"chatId":"1","id":"2","text":"theirs, edited","userId":"2"}],"id":"1","members":[],"messages":[],"title":"x"}`,
		"3": `{"drafts":[{"chatId":"1","id":"1","text":"mine","userId":"3"}],"id":"1","members":[],"messages":[],"title":"x"}`,
	}
	for u, w := range want {
		got, _ := states[u].JSON()
		if string(got) != w {
			t.Errorf("user %s state\n got %s\nwant %s", u, got, w)
		}
		snap, _ := h.Snapshot(ctx, "ChatChannel", ChatParams{ChatID: c.ID}, rx.User{ID: u})
		if string(snap) != w {
			t.Errorf("user %s Snapshot\n got %s\nwant %s", u, snap, w)
		}
	}
	// No frame to user 2 mentions user 1's or user 3's draft ids anywhere.
	for _, frame := range raw["2"] {
		for _, leak := range []string{`"Draft","ID":"1"`, `"Draft","ID":"3"`, `"drafts":[1`, `,1]`, `3]`, `[3`} {
			if strings.Contains(frame, leak) {
				t.Errorf("user 2 received %s in %s", leak, frame)
			}
		}
	}
	// An anonymous subscriber sees no per-user row at all.
	sub, _ := h.Subscribe(ctx, "ChatChannel", ChatParams{ChatID: c.ID}, rx.User{}, rx.SubscribeOptions{})
	ev := next(t, sub)
	for _, in := range ev.Instances {
		if in.Type == "Draft" || in.Owner != "" {
			t.Errorf("anonymous got %s", dump(ev))
		}
	}
}

// A self-referencing tree (rx:"recursive"), a has-one and ordering/limits.
type Folder struct {
	ID       uint     `gorm:"primaryKey" json:"id"`
	ParentID *uint    `json:"parentId"`
	Name     string   `json:"name"`
	Children []Folder `gorm:"foreignKey:ParentID" json:"children" rx:"recursive,order=name desc"`
	Readme   *Readme  `json:"readme"`
	Latest   []Memo   `json:"latest" rx:"order=id desc,limit=2"`
}
type Readme struct {
	ID       uint   `gorm:"primaryKey" json:"id"`
	FolderID uint   `json:"folderId"`
	Body     string `json:"body"`
}
type Memo struct {
	ID       uint   `gorm:"primaryKey" json:"id"`
	FolderID uint   `json:"folderId"`
	Text     string `json:"text"`
}
type FolderChannel struct {
	rx.Channel[Folder, struct{ ID uint }]
}

func (FolderChannel) Authorize(context.Context, rx.User, struct{ ID uint }) error { return nil }

func TestRecursiveHasOneOrderLimit(t *testing.T) {
	for name, open := range openers {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			if err := db.AutoMigrate(&Folder{}, &Readme{}, &Memo{}); err != nil {
				t.Fatal(err)
			}
			h, err := rx.New(db, rx.Config{})
			if err != nil {
				t.Fatal(err)
			}
			defer h.Close()
			if err := h.Register(&FolderChannel{}); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			root := Folder{Name: "root"}
			db.Create(&root)
			ptr := func(v uint) *uint { return &v }
			a := Folder{Name: "a", ParentID: ptr(root.ID)}
			b := Folder{Name: "b", ParentID: ptr(root.ID)}
			db.Create(&a)
			db.Create(&b)
			aa := Folder{Name: "aa", ParentID: ptr(a.ID)}
			db.Create(&aa)
			params := struct{ ID uint }{root.ID}
			sub, err := h.Subscribe(ctx, "FolderChannel", params, rx.User{}, rx.SubscribeOptions{})
			if err != nil {
				t.Fatal(err)
			}
			st, _ := h.NewState("FolderChannel", rx.User{})
			st.Apply(next(t, sub))
			check := func(want string) {
				t.Helper()
				h.Wait(ctx)
				for len(sub.Events()) > 0 {
					st.Apply(<-sub.Events())
				}
				got, _ := st.JSON()
				if string(got) != want {
					t.Fatalf("\n got %s\nwant %s", got, want)
				}
				snap, _ := h.Snapshot(ctx, "FolderChannel", params, rx.User{})
				if string(snap) != want {
					t.Fatalf("Snapshot\n got %s\nwant %s", snap, want)
				}
			}
			check(`{"children":[{"children":[],"id":"3","latest":[],"name":"b","parentId":"1","readme":null},{"children":[{"children":[],"id":"4","latest":[],"name":"aa","parentId":"2","readme":null}],"id":"2","latest":[],"name":"a","parentId":"1","readme":null}],"id":"1","latest":[],"name":"root","parentId":null,"readme":null}`)
			// Move aa under b; give root a readme and three notes (only the
			// latest two are in the state); rename a to "c" (reorders).
			db.Model(&aa).Update("parent_id", b.ID)
			db.Create(&Readme{FolderID: root.ID, Body: "hello"})
			for _, n := range []string{"n1", "n2", "n3"} {
				db.Create(&Memo{FolderID: root.ID, Text: n})
			}
			db.Model(&a).Update("name", "c")
			check(`{"children":[{"children":[],"id":"2","latest":[],"name":"c","parentId":"1","readme":null},{"children":[{"children":[],"id":"4","latest":[],"name":"aa","parentId":"3","readme":null}],"id":"3","latest":[],"name":"b","parentId":"1","readme":null}],"id":"1","latest":[{"folderId":"1","id":"3","text":"n3"},{"folderId":"1","id":"2","text":"n2"}],"name":"root","parentId":null,"readme":{"body":"hello","folderId":"1","id":"1"}}`)
			// Deleting the newest note brings the oldest back into the window.
			db.Delete(&Memo{}, 3)
			db.Where("folder_id = ?", root.ID).Delete(&Readme{})
			check(`{"children":[{"children":[],"id":"2","latest":[],"name":"c","parentId":"1","readme":null},{"children":[{"children":[],"id":"4","latest":[],"name":"aa","parentId":"3","readme":null}],"id":"3","latest":[],"name":"b","parentId":"1","readme":null}],"id":"1","latest":[{"folderId":"1","id":"2","text":"n2"},{"folderId":"1","id":"1","text":"n1"}],"name":"root","parentId":null,"readme":null}`)
		})
	}
}

var openers = map[string]func(testing.TB) *gorm.DB{
	"sqlite":   openSQLite,
	"postgres": openPostgres,
	"mysql":    openMySQL,
}

// ChatSummary is a second Go type on the chats table.
type ChatSummary struct {
	ID    uint   `gorm:"primaryKey" json:"id"`
	Title string `json:"title"`
}

func (ChatSummary) TableName() string { return "chats" }

type SummaryChannel struct {
	rx.Channel[ChatSummary, ChatParams]
}

// Ticket refers to its queue by a non-key column.
type Queue struct {
	ID      uint     `gorm:"primaryKey" json:"id"`
	Code    string   `gorm:"uniqueIndex" json:"code"`
	Tickets []Ticket `gorm:"foreignKey:QueueCode;references:Code" json:"tickets"`
}
type Ticket struct {
	ID        uint   `gorm:"primaryKey" json:"id"`
	QueueCode string `json:"queueCode"`
}
type QueueChannel struct {
	rx.Channel[Queue, struct{ ID uint }]
}

func TestDeclarationErrorsTablesAndKeys(t *testing.T) {
	h := newHub(t, openSQLite(t)) // ChatChannel owns the chats table
	if err := h.Register(&SummaryChannel{}); err == nil || !strings.Contains(err.Error(), `table "chats" is also the table of rx_test.Chat`) {
		t.Fatalf("got %v", err)
	}
	if err := h.Register(&QueueChannel{}); err == nil || !strings.Contains(err.Error(), "Queue.Tickets") || !strings.Contains(err.Error(), "not a primary key") {
		t.Fatalf("got %v", err)
	}
}

// Revoke ends a user's subscriptions to an anchor with forbidden.
func TestRevoke(t *testing.T) {
	db := openSQLite(t)
	migrate(t, db)
	h := newHub(t, db)
	db.Create(&Chat{Title: "x"})
	ctx := context.Background()
	a, _ := h.Subscribe(ctx, "ChatChannel", ChatParams{ChatID: 1}, rx.User{ID: "a"}, rx.SubscribeOptions{})
	b, _ := h.Subscribe(ctx, "ChatChannel", ChatParams{ChatID: 1}, rx.User{ID: "b"}, rx.SubscribeOptions{})
	next(t, a)
	next(t, b)
	if err := h.Revoke(ctx, "ChatChannel", 1, "a"); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-a.Events(); ok || !errors.Is(a.Err(), rx.ErrForbidden) {
		t.Fatalf("a: %v", a.Err())
	}
	db.Model(&Chat{ID: 1}).Update("title", "y")
	if ev := next(t, b); len(ev.Instances) != 1 {
		t.Fatalf("b: %s", dump(ev))
	}
}
