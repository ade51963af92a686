package rx_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/rx"
	"github.com/rxgorm/rxgorm/rx/rxtest"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Models of the test tree: a Chat with members (many2many), messages
// (has-many), each message with a sender (belongs-to) and readers
// (many2many), and per-user drafts.
type User struct {
	ID   uint   `gorm:"primaryKey" json:"id"`
	Name string `json:"name"`
}

type Chat struct {
	ID       uint      `gorm:"primaryKey" json:"id"`
	Title    string    `json:"title"`
	Secret   string    `json:"-"`
	Members  []User    `gorm:"many2many:chat_members" json:"members"`
	Messages []Message `json:"messages"`
	Drafts   []Draft   `json:"drafts"`
}

type Message struct {
	ID       uint   `gorm:"primaryKey" json:"id"`
	ChatID   uint   `json:"chatId"`
	SenderID uint   `json:"senderId"`
	Sender   User   `json:"sender"`
	Text     string `json:"text"`
	Readers  []User `gorm:"many2many:message_reads" json:"readers"`
}

type Draft struct {
	ID     uint   `gorm:"primaryKey" json:"id"`
	ChatID uint   `json:"chatId"`
	UserID uint   `json:"userId" rx:"owner"`
	Text   string `json:"text"`
}

type ChatParams struct {
	ChatID uint `json:"chatId"`
}

type ChatChannel struct{ rx.Channel[Chat, ChatParams] }

func (ChatChannel) Authorize(ctx context.Context, u rx.User, p ChatParams) error {
	if u.ID == "banned" {
		return rx.Errorf(rx.CodeForbidden, "banned")
	}
	return nil
}

type ChatList struct{ rx.List[Chat, rx.NoParams] }

func (ChatList) Authorize(context.Context, rx.User, rx.NoParams) error { return nil }

func (ChatList) Anchors(ctx context.Context, db *gorm.DB, u rx.User, p rx.NoParams) *gorm.DB {
	return db.Order("id desc")
}

func openSQLite(t testing.TB) *gorm.DB { return rxtest.SQLite(t) }

// reopen opens a second connection pool on the same database, without the
// rx plugin: the reference for "a fresh serialization".
func reopen(t testing.TB, db *gorm.DB) *gorm.DB {
	t.Helper()
	d2, err := gorm.Open(db.Dialector, &gorm.Config{Logger: logger.Discard})
	if err != nil {
		t.Fatal(err)
	}
	return d2
}

func openPostgres(t testing.TB) *gorm.DB { return rxtest.Postgres(t) }

func openMySQL(t testing.TB) *gorm.DB { return rxtest.MySQL(t) }

func migrate(t testing.TB, db *gorm.DB) {
	t.Helper()
	if err := db.AutoMigrate(&User{}, &Chat{}, &Message{}, &Draft{}); err != nil {
		t.Fatal(err)
	}
}

func newHub(t testing.TB, db *gorm.DB) *rx.Hub {
	t.Helper()
	h, err := rx.New(db, rx.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if err := h.Register(&ChatChannel{}, &ChatList{}); err != nil {
		t.Fatal(err)
	}
	return h
}

// next waits for one event.
func next(t testing.TB, sub *rx.Subscription) *rx.Event {
	t.Helper()
	select {
	case ev, ok := <-sub.Events():
		if !ok {
			t.Fatalf("subscription ended: %v", sub.Err())
		}
		return ev
	case <-time.After(15 * time.Second):
		t.Fatal("no event within 15s")
	}
	return nil
}

// none asserts that no event is pending after the hub processed everything.
func none(t testing.TB, h *rx.Hub, sub *rx.Subscription) {
	t.Helper()
	if err := h.Wait(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case ev := <-sub.Events():
		t.Fatalf("unexpected event: %s", dump(ev))
	default:
	}
}

func dump(ev *rx.Event) string {
	type inst struct {
		Type, ID, Owner string
		Deleted         bool
		Fields          map[string]json.RawMessage
	}
	var out []inst
	for _, in := range ev.Instances {
		out = append(out, inst{in.Type, in.ID, in.Owner, in.Deleted, in.Fields})
	}
	b, _ := json.Marshal(map[string]any{"anchor": ev.Anchor, "version": ev.Version, "snapshot": ev.Snapshot, "instances": out})
	return string(b)
}

// onQuery registers f on db as a GORM query callback named name (before
// gorm:query) and as a hook of the engine's one-row reads, which pass
// GORM's callbacks: f gets each query's context and table and returns the
// table to query, another name making the database fail the query.
func onQuery(t testing.TB, db *gorm.DB, name string, f func(ctx context.Context, table string) string) {
	t.Helper()
	err := db.Callback().Query().Before("gorm:query").Register(name, func(tx *gorm.DB) {
		tx.Statement.Table = f(tx.Statement.Context, tx.Statement.Table)
	})
	if err != nil {
		t.Fatal(err)
	}
	rx.OnRowRead(t, db, func(ctx context.Context, table, sql string, _ []any) string {
		if to := f(ctx, table); to != table {
			return strings.ReplaceAll(sql, table, to)
		}
		return sql
	})
}

// fxCase is one named scenario of a capture test, run on a fixture F.
type fxCase[F any] struct {
	name string
	run  func(t *testing.T, f F)
}

// runFxCases runs every case on each of capDialects, as subtests
// dialect/case, each on a fresh fixture from newFx whose end state is
// checked (finish) after the case.
func runFxCases[F interface{ finish() }](t *testing.T, newFx func(*testing.T, *gorm.DB) F, cases []fxCase[F]) {
	for _, d := range capDialects {
		t.Run(d.name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					f := newFx(t, d.open(t))
					c.run(t, f)
					f.finish()
				})
			}
		})
	}
}
