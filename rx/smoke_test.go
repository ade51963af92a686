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
	t.Log(dump(next(t, sub)))
	db.Create(&Message{ChatID: chat.ID, SenderID: bob.ID, Text: "yo"})
	t.Log(dump(next(t, sub)))
	db.Model(&Message{}).Where("text = ?", "yo").Update("text", "yo!")
	t.Log(dump(next(t, sub)))
	db.Model(&chat).Association("Members").Append(&bob)
	t.Log(dump(next(t, sub)))
	db.Where("1=1").Delete(&Message{})
	t.Log(dump(next(t, sub)))
	none(t, h, sub)
	js, err := h.Snapshot(ctx, "ChatChannel", ChatParams{ChatID: chat.ID}, rx.User{ID: "1"})
	t.Log(string(js), err)
}
