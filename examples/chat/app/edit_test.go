package app

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"

	"github.com/rxgorm/rxgorm/rx"
)

// Editing a message by a client write: the sender may, trimmed, and the
// chat list follows; others may not, nor may an edit be empty.
func TestEditMessage(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ann, bob := e.user("ann"), e.user("bob")
		chatID := e.befriend(ann, bob)
		ac, bc := e.openChat(ann, chatID), e.openChat(bob, chatID)
		m := must[Message](ac, "sendMessage", "helo")
		edit := func(w *watch, text string) error {
			_, err := w.sub.Write(bg, rx.WriteRequest{Op: rx.OpSave, Layer: "Message", Row: idString(m.ID), Fields: map[string]json.RawMessage{"text": json.RawMessage(strconv.Quote(text))}})
			return err
		}
		if err := edit(ac, "  hello "); err != nil {
			t.Fatal(err)
		}
		eventually(t, "bob sees the edit", func() error {
			c := bc.chat()
			if c == nil || len(c.Messages) == 0 {
				return fmt.Errorf("no messages")
			}
			if c.Messages[0].EditedAt == nil {
				return fmt.Errorf("editedAt is null")
			}
			return want("text", c.Messages[0].Text, "hello")
		})
		eventually(t, "the chat list follows", func() error { return want("preview", chatEntry(bob.home.home(), chatID).LastMessage, "hello") })
		for _, c := range []struct {
			w    *watch
			text string
			code rx.Code
		}{{bc, "bob was here", rx.CodeForbidden}, {ac, "   ", rx.CodeBadRequest}} {
			if err := edit(c.w, c.text); rx.Public(err) == nil || rx.Public(err).Code != c.code {
				t.Fatalf("edit %q: %v, want %s", c.text, err, c.code)
			}
		}
		var got Message
		e.app.DB.First(&got, m.ID)
		if got.Text != "hello" || got.EditedAt == nil {
			t.Fatalf("message %q edited at %v", got.Text, got.EditedAt)
		}
		// The same text again, spaces aside, changes nothing.
		stamp := *got.EditedAt
		if err := edit(ac, "hello  "); err != nil {
			t.Fatal(err)
		}
		got = Message{}
		e.app.DB.First(&got, m.ID)
		if got.Text != "hello" || got.EditedAt == nil || !got.EditedAt.Equal(stamp) {
			t.Fatalf("unchanged edit: message %q edited at %v, want %v", got.Text, got.EditedAt, stamp)
		}
	})
}
