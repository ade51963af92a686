package rx_test

import (
	"context"
	"errors"
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
