package rx_test

import (
	"context"
	"testing"

	"github.com/rxgorm/rxgorm/rx"
)

func TestSmoke(t *testing.T) {
	db := openSQLite(t)
	migrate(t, db)
	h := newHub(t, db)
	ctx := context.Background()
	alice, bob := User{Name: "alice"}, User{Name: "bob"}
	db.Create(&alice)
	db.Create(&bob)
	chat := Chat{Title: "hi", Members: []User{alice}}
	if err := db.Create(&chat).Error; err != nil {
		t.Fatal(err)
	}
	sub, err := h.Subscribe(ctx, "ChatChannel", ChatParams{ChatID: chat.ID}, rx.User{ID: "1"}, rx.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// step applies the next event and checks the state after it.
	st, err := h.NewState("ChatChannel", rx.User{ID: "1"})
	if err != nil {
		t.Fatal(err)
	}
	step := func(what string, snapshot bool, check func(c Chat) bool) {
		t.Helper()
		ev := next(t, sub)
		if ev.Snapshot != snapshot {
			t.Fatalf("%s: snapshot %v, want %v: %s", what, ev.Snapshot, snapshot, dump(ev))
		}
		st.Apply(ev)
		js, err := st.JSON()
		if err != nil {
			t.Fatal(err)
		}
		var c Chat
		if err := rx.Unmarshal(js, &c); err != nil {
			t.Fatalf("%s: %v: %s", what, err, js)
		}
		if !check(c) {
			t.Fatalf("%s: state %s", what, js)
		}
	}
	step("snapshot", true, func(c Chat) bool {
		return c.Title == "hi" && len(c.Members) == 1 && c.Members[0].Name == "alice" && len(c.Messages) == 0
	})
	db.Create(&Message{ChatID: chat.ID, SenderID: bob.ID, Text: "yo"})
	step("create", false, func(c Chat) bool {
		return len(c.Messages) == 1 && c.Messages[0].Text == "yo" && c.Messages[0].Sender.Name == "bob"
	})
	db.Model(&Message{}).Where("text = ?", "yo").Update("text", "yo!")
	step("update", false, func(c Chat) bool { return len(c.Messages) == 1 && c.Messages[0].Text == "yo!" })
	db.Model(&chat).Association("Members").Append(&bob)
	step("join", false, func(c Chat) bool { return len(c.Members) == 2 && c.Members[1].Name == "bob" })
	db.Where("1=1").Delete(&Message{})
	step("delete", false, func(c Chat) bool { return len(c.Messages) == 0 && len(c.Members) == 2 })
	none(t, h, sub)
	js, err := h.Snapshot(ctx, "ChatChannel", ChatParams{ChatID: chat.ID}, rx.User{ID: "1"})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := st.JSON(); !sameJSON(t, js, got) {
		t.Fatalf("Snapshot %s, the subscriber's state %s", js, got)
	}
}
