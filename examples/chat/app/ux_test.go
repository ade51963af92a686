package app

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rxgorm/rxgorm/rx"
)

// Issue 18: what the web UI needs to be used daily.

// System events are rows of the chat's state: a member who opens the
// chat later (a reload, a reconnect) sees what happened meanwhile, and
// they go with the chat.
func TestChatEvents(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ann, bob := e.user("ann"), e.user("bob")
		e.befriend(ann, bob)
		ref := must[ChatRef](ann.home, "createGroupChat", "Team", []uint{bob.ID})
		ac := e.openChat(ann, ref.ID)
		must[ChatRef](ac, "rename", "Team 2")
		must[any](ac, "addAdmin", bob.ID)
		must[any](ac, "setOwner", bob.ID)
		// Bob opens the chat only now: the events are in its state.
		bc := e.openChat(bob, ref.ID)
		wantTexts := []string{"Ann created Team", "Bob is now an admin", "Ann renamed Team to Team 2", "Bob now owns Team 2"}
		eventually(t, "the events in the chat's state", func() error {
			c := bc.chat()
			if c == nil {
				return fmt.Errorf("no state")
			}
			var got []string
			for _, ev := range c.Events {
				got = append(got, ev.Text)
			}
			// Newest first.
			if len(got) != 4 || got[0] != wantTexts[3] || got[3] != wantTexts[0] {
				return fmt.Errorf("events %q", got)
			}
			return nil
		})
		must[any](ac, "leave")
		eventually(t, "the leave as an event", func() error {
			c := bc.chat()
			if c == nil || len(c.Events) == 0 {
				return fmt.Errorf("no events")
			}
			return want("kind", c.Events[0].Kind, NoticeChatLeft)
		})
		must[any](bc, "delete")
		var n int64
		e.app.DB.Model(&ChatEvent{}).Where("chat_id = ?", ref.ID).Count(&n)
		if n != 0 {
			t.Fatalf("%d events outlive their chat", n)
		}
	})
}

// PostMessage with a client id stores a message once, however often it
// is sent again.
func TestPostMessageOnce(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ann, bob := e.user("ann"), e.user("bob")
		chatID := e.befriend(ann, bob)
		ac := e.openChat(ann, chatID)
		const id = "0b7c2a4e-5f10-4c7e-9a51-3a1f0e6c2d11"
		first := must[Message](ac, "postMessage", "hello once", id)
		again := must[Message](ac, "postMessage", "hello once", id)
		if first.ID == 0 || again.ID != first.ID || first.ClientID == nil || *first.ClientID != id {
			t.Fatalf("first %+v, again %+v", first, again)
		}
		var n int64
		e.app.DB.Model(&Message{}).Where("chat_id = ?", chatID).Count(&n)
		if n != 1 {
			t.Fatalf("%d messages stored", n)
		}
		eventually(t, "one unread", func() error { return want("unread", chatEntry(bob.home.home(), chatID).UnreadCount, 1) })
		// Another sender's key is theirs: bob may use the same one.
		bc := e.openChat(bob, chatID)
		if m := must[Message](bc, "postMessage", "hi", id); m.ID == first.ID {
			t.Fatal("bob got ann's message")
		}
		refuse(ac, rx.CodeBadRequest, "a client id", "postMessage", "x", "no")
		refuse(ac, rx.CodeBadRequest, "a message", "postMessage", strings.Repeat("x", MaxMessage+1), "0b7c2a4e-5f10-4c7e-9a51-3a1f0e6c2d12")
	})
}

// A new account gets a random avatar; SetAvatar picks another.
func TestRandomAvatar(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ann, bob := e.user("ann"), e.user("bob")
		if !strings.HasPrefix(ann.Avatar, "/api/avatar/ann.png?seed=") || !ValidAvatarSeed(strings.TrimPrefix(ann.Avatar, "/api/avatar/ann.png?seed=")) {
			t.Fatalf("avatar %q", ann.Avatar)
		}
		if strings.TrimPrefix(ann.Avatar, "/api/avatar/ann.png") == strings.TrimPrefix(bob.Avatar, "/api/avatar/bob.png") {
			t.Fatal("two accounts drew the same seed")
		}
		u := must[User](ann.home, "setAvatar", "0123456789abcdef")
		if u.Avatar != "/api/avatar/ann.png?seed=0123456789abcdef" {
			t.Fatalf("avatar %q", u.Avatar)
		}
		eventually(t, "the home follows", func() error { return want("avatar", ann.home.home().User.Avatar, u.Avatar) })
		if r := must[User](ann.home, "setAvatar", ""); r.Avatar == u.Avatar || !strings.HasPrefix(r.Avatar, "/api/avatar/ann.png?seed=") {
			t.Fatalf("random avatar %q", r.Avatar)
		}
		refuse(ann.home, rx.CodeBadRequest, "16 hex digits", "setAvatar", "../../x")
		if must[string](ann.home, "ping") == "" {
			t.Fatal("ping answered nothing")
		}
	})
}

// History pages carry the system events of their stretch of time, for
// chats with more events than the state's latest 50.
func TestHistoryEvents(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ann, bob := e.user("ann"), e.user("bob")
		e.befriend(ann, bob)
		ref := must[ChatRef](ann.home, "createGroupChat", "Team", []uint{bob.ID})
		ac := e.openChat(ann, ref.ID)
		m1 := must[Message](ac, "sendMessage", "one")
		must[ChatRef](ac, "rename", "Team 2")
		m2 := must[Message](ac, "sendMessage", "two")
		texts := func(p MessagePage) []string {
			var out []string
			for _, ev := range p.Events {
				out = append(out, ev.Text)
			}
			return out
		}
		// Before m2: m1, and both events (the last page reaches the start).
		p := must[MessagePage](ac, "history", m2.ID, 10)
		if len(p.Messages) != 1 || p.Messages[0].ID != m1.ID || p.More {
			t.Fatalf("page before m2: %+v", p)
		}
		if got := texts(p); len(got) != 2 || got[0] != "Ann renamed Team to Team 2" || got[1] != "Ann created Team" {
			t.Fatalf("events before m2: %q", got)
		}
		// Before m1: no message, the creation only.
		if got := texts(must[MessagePage](ac, "history", m1.ID, 10)); len(got) != 1 || got[0] != "Ann created Team" {
			t.Fatalf("events before m1: %q", got)
		}
		// A page that stops at m2 (more remain) has the events after m2: none.
		p = must[MessagePage](ac, "history", 0, 1)
		if len(p.Messages) != 1 || p.Messages[0].ID != m2.ID || !p.More || len(p.Events) != 0 {
			t.Fatalf("newest page: %+v", p)
		}
	})
}
