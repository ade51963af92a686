package app

import (
	"fmt"
	"strings"
	"testing"

	"github.com/rxgorm/rxgorm/rx"
)

func TestMessagesAndReadReceipts(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		alice, bob, carol := e.user("alice"), e.user("bob"), e.user("carol")
		chatID := e.befriend(alice, bob)
		chatA, chatB := e.openChat(alice, chatID), e.openChat(bob, chatID)

		m := must[Message](chatA, "sendMessage", "  hello bob  ")
		if m.Text != "hello bob" || m.SenderID != alice.ID || m.Sender.Username != "alice" || m.ChatID != chatID {
			t.Fatalf("sent: %+v", m)
		}
		eventually(t, "message and unread counts everywhere", func() error {
			for _, w := range []*watch{chatA, chatB} {
				c := w.chat()
				if len(c.Messages) != 1 || c.Messages[0].Text != "hello bob" || c.Messages[0].Sender.DisplayName != "Alice" {
					return fmt.Errorf("messages: %+v", c.Messages)
				}
			}
			ra, rb := chatEntry(alice.home.home(), chatID), chatEntry(bob.home.home(), chatID)
			if ra.UnreadCount != 0 || ra.LastReadMessageID != m.ID || rb.UnreadCount != 1 || rb.LastMessage != "hello bob" {
				return fmt.Errorf("chat list entries: alice %+v bob %+v", ra, rb)
			}
			// Each member's Chat state holds their own relation only.
			if rels := chatB.chat().Relations; len(rels) != 1 || rels[0].UserID != bob.ID || rels[0].UnreadCount != 1 {
				return fmt.Errorf("bob's relations in the chat: %+v", rels)
			}
			if rels := chatA.chat().Relations; len(rels) != 1 || rels[0].UserID != alice.ID || rels[0].UnreadCount != 0 {
				return fmt.Errorf("alice's relations in the chat: %+v", rels)
			}
			return nil
		})
		// No instance of another user's relation reached either subscriber.
		for _, w := range []*watch{chatA, chatB} {
			w.mu.Lock()
			for _, keys := range w.st.Keys() {
				for _, k := range keys {
					if k.Type == "UserChatRelation" && k.Owner != w.sub.Channel().(*ChatChannel).User().ID {
						t.Errorf("relation %v leaked", k)
					}
				}
			}
			w.mu.Unlock()
		}
		if strings.Contains(chatA.json(), `"unreadCount":1`) {
			t.Fatalf("bob's unread count reached alice: %s", chatA.json())
		}

		m2 := must[Message](chatA, "sendMessage", "are you there?")
		eventually(t, "two unread", func() error {
			return want("bob's unread", chatEntry(bob.home.home(), chatID).UnreadCount, 2)
		})
		// Bob reads the first: it lists him as reader, one stays unread.
		rel := must[UserChatRelation](chatB, "markRead", m.ID)
		if rel.UnreadCount != 1 || rel.LastReadMessageID != m.ID {
			t.Fatalf("markRead: %+v", rel)
		}
		eventually(t, "read receipt and unread count", func() error {
			c := chatA.chat()
			for _, msg := range c.Messages {
				readers := userIDs(msg.Readers)
				if msg.ID == m.ID && !equal(readers, uids(bob.ID)) || msg.ID == m2.ID && len(readers) != 0 {
					return fmt.Errorf("readers of %d: %v", msg.ID, readers)
				}
			}
			return want("bob's unread", chatEntry(bob.home.home(), chatID).UnreadCount, 1)
		})
		// Reading up to an older message changes nothing; 0 reads everything.
		if rel := must[UserChatRelation](chatB, "markRead", m.ID); rel.UnreadCount != 1 {
			t.Fatalf("re-read: %+v", rel)
		}
		if rel := must[UserChatRelation](chatB, "markRead", 0); rel.UnreadCount != 0 || rel.LastReadMessageID != m2.ID {
			t.Fatalf("read all: %+v", rel)
		}
		eventually(t, "all read", func() error {
			for _, msg := range chatA.chat().Messages {
				if !equal(userIDs(msg.Readers), uids(bob.ID)) {
					return fmt.Errorf("readers of %d: %v", msg.ID, userIDs(msg.Readers))
				}
			}
			return want("bob's unread", chatEntry(bob.home.home(), chatID).UnreadCount, 0)
		})
		// A sender does not read their own messages.
		must[UserChatRelation](chatA, "markRead", 0)
		var n int64
		e.app.DB.Model(&MessageRead{}).Where("user_id = ?", alice.ID).Count(&n)
		if n != 0 {
			t.Fatalf("alice read her own messages: %d", n)
		}

		refuse(chatA, rx.CodeBadRequest, "a message has", "sendMessage", "   ")
		refuse(chatA, rx.CodeBadRequest, "a message has", "sendMessage", strings.Repeat("x", MaxMessage+1))
		refuse(chatA, rx.CodeNotFound, "no message 999", "markRead", 999)
		// Outsiders cannot post, read or page, even through the Go API.
		if _, err := e.app.SendMessage(bg, carol.ID, chatID, "hi"); code(err) != rx.CodeNotFound {
			t.Fatalf("outsider sent: %v", err)
		}
		if _, err := e.app.MarkRead(bg, carol.ID, chatID, 0); code(err) != rx.CodeNotFound {
			t.Fatalf("outsider read: %v", err)
		}
		if _, err := e.app.History(bg, carol.ID, chatID, 0, 10); code(err) != rx.CodeNotFound {
			t.Fatalf("outsider paged: %v", err)
		}
	})
}

func TestHistoryPaging(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		alice, bob := e.user("alice"), e.user("bob")
		chatID := e.befriend(alice, bob)
		chat := e.openChat(alice, chatID)
		var sent []uint
		for i := range 60 {
			sent = append(sent, must[Message](chat, "sendMessage", fmt.Sprintf("message %d", i)).ID)
		}
		// The state is bounded: the latest 50, newest first.
		eventually(t, "latest 50 in the state", func() error {
			ms := chat.chat().Messages
			if len(ms) != 50 || ms[0].ID != sent[59] || ms[49].ID != sent[10] {
				return fmt.Errorf("%d messages, first %v", len(ms), ms[0].ID)
			}
			return nil
		})
		oldest := chat.chat().Messages[49].ID
		page := must[MessagePage](chat, "history", oldest, 20)
		if len(page.Messages) != 10 || page.More || page.Messages[0].ID != sent[9] || page.Messages[9].ID != sent[0] || page.Messages[0].Sender.Username != "alice" {
			t.Fatalf("older page: %d more=%v", len(page.Messages), page.More)
		}
		page = must[MessagePage](chat, "history", 0, 5)
		if len(page.Messages) != 5 || !page.More || page.Messages[0].ID != sent[59] {
			t.Fatalf("newest page: %+v", page)
		}
		page = must[MessagePage](chat, "history", sent[0], 5)
		if len(page.Messages) != 0 || page.More {
			t.Fatalf("before the first: %+v", page)
		}
		refuse(chat, rx.CodeBadRequest, "a page has", "history", 0, 0)
		refuse(chat, rx.CodeBadRequest, "a page has", "history", 0, MaxPage+1)
		// Readers of paged messages come along.
		must[UserChatRelation](e.openChat(bob, chatID), "markRead", 0)
		page = must[MessagePage](chat, "history", oldest, 1)
		if len(page.Messages) != 1 || !equal(userIDs(page.Messages[0].Readers), uids(bob.ID)) {
			t.Fatalf("readers in a page: %+v", page.Messages)
		}
	})
}

func TestChatListOrder(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		alice, bob := e.user("alice"), e.user("bob")
		private := e.befriend(alice, bob)
		group := must[ChatRef](alice.home, "createGroupChat", "Later", []uint{bob.ID}).ID
		order := func() []uint {
			var ids []uint
			for _, r := range bob.home.home().Chats {
				ids = append(ids, r.ChatID)
			}
			return ids
		}
		// Most recently active first: the new group, then the private chat
		// once it has a new message.
		eventually(t, "group first", func() error { return wantIDs("bob's chats", order(), []uint{group, private}) })
		must[Message](e.openChat(alice, private), "sendMessage", "news")
		eventually(t, "private first", func() error { return wantIDs("bob's chats", order(), []uint{private, group}) })
		if r := chatEntry(bob.home.home(), private); r.LastMessage != "news" {
			t.Fatalf("preview: %+v", r)
		}
	})
}

func TestPreviewAndNotices(t *testing.T) {
	if p := preview("  a\n\tb  "); p != "a b" {
		t.Fatalf("%q", p)
	}
	if p := []rune(preview(strings.Repeat("é", 300))); len(p) != 100 || p[99] != '…' {
		t.Fatalf("%d runes", len(p))
	}
	var ns []Notice
	for i := range MaxNotices + 5 {
		ns = pushNotice(ns, Notice{Text: fmt.Sprint(i)})
	}
	if len(ns) != MaxNotices || ns[0].Text != "5" || ns[MaxNotices-1].Text != fmt.Sprint(MaxNotices+4) {
		t.Fatalf("notices: %+v", ns)
	}
}
