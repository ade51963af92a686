package app

import (
	"errors"
	"fmt"
	"testing"

	"github.com/rxgorm/rxgorm/rx"
)

// group sets up alice (owner) with friends bob and carol in a group chat,
// and dave, a friend of alice's who is not in it. Everyone has the chat
// open except dave.
type groupSetup struct {
	alice, bob, carol, dave *person
	chatID, privAB          uint // the group chat, alice and bob's private chat
	chatA, chatB, chatC     *watch
}

func newGroup(t *testing.T, e *env) *groupSetup {
	g := &groupSetup{alice: e.user("alice"), bob: e.user("bob"), carol: e.user("carol"), dave: e.user("dave")}
	g.privAB = e.befriend(g.alice, g.bob)
	e.befriend(g.alice, g.carol)
	e.befriend(g.alice, g.dave)
	ref := must[ChatRef](g.alice.home, "createGroupChat", "Team", []uint{g.bob.ID, g.carol.ID, g.bob.ID, g.alice.ID})
	g.chatID = ref.ID
	g.chatA, g.chatB, g.chatC = e.openChat(g.alice, ref.ID), e.openChat(g.bob, ref.ID), e.openChat(g.carol, ref.ID)
	return g
}

func TestCreateGroupChat(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		g := newGroup(t, e)
		c := g.chatB.chat()
		if c.Kind != KindGroup || c.Name != "Team" || c.Owner == nil || c.Owner.ID != g.alice.ID || len(c.Admins) != 0 {
			t.Fatalf("chat: %+v", c)
		}
		if err := wantIDs("members", userIDs(c.Members), uids(g.alice.ID, g.bob.ID, g.carol.ID)); err != nil {
			t.Fatal(err)
		}
		eventually(t, "in every member's chat list, with a notice", func() error {
			for _, p := range []*person{g.alice, g.bob, g.carol} {
				if r := chatEntry(p.home.home(), g.chatID); r == nil || r.Name != "Team" || r.Kind != KindGroup {
					return fmt.Errorf("%s's entry: %+v", p.Username, r)
				}
			}
			if chatEntry(g.dave.home.home(), g.chatID) != nil {
				return errors.New("dave has it")
			}
			if !g.bob.home.hasNotice(NoticeChatAdded, "Alice added you to Team") {
				return errors.New("no notice for bob")
			}
			return nil
		})
		refuse(g.bob.home, rx.CodeBadRequest, "must be your friends", "createGroupChat", "Mine", []uint{g.carol.ID})
		refuse(g.alice.home, rx.CodeBadRequest, "a chat name has", "createGroupChat", " ", []uint{})
		// A group of one is allowed.
		if ref := must[ChatRef](g.dave.home, "createGroupChat", "Solo", []uint(nil)); ref.Kind != KindGroup {
			t.Fatalf("%+v", ref)
		}
	})
}

func TestRenameChat(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		g := newGroup(t, e)
		refuse(g.chatB, rx.CodeForbidden, "only the owner and admins", "rename", "Mine")
		refuse(g.chatA, rx.CodeBadRequest, "a chat name has", "rename", "")
		ref := must[ChatRef](g.chatA, "rename", "Crew")
		if ref.Name != "Crew" {
			t.Fatalf("%+v", ref)
		}
		eventually(t, "new name in chats and chat lists", func() error {
			if g.chatC.chat().Name != "Crew" {
				return errors.New("chat state")
			}
			for _, p := range []*person{g.alice, g.bob, g.carol} {
				if r := chatEntry(p.home.home(), g.chatID); r.Name != "Crew" {
					return fmt.Errorf("%s's entry: %q", p.Username, r.Name)
				}
			}
			if !g.chatB.hasNotice(NoticeChatRenamed, "Alice renamed Team to Crew") {
				return errors.New("no notice in the chat")
			}
			return nil
		})
		// Admins may rename too; private chats have no name.
		must[any](g.chatA, "addAdmin", g.bob.ID)
		must[ChatRef](g.chatB, "rename", "Bob's crew")
		privateID := g.privAB
		refuse(e.openChat(g.alice, privateID), rx.CodeBadRequest, "private chat", "rename", "x")
	})
}

func TestAdminsAndOwner(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		g := newGroup(t, e)
		// Only the owner manages admins.
		refuse(g.chatB, rx.CodeForbidden, "only the owner", "addAdmin", g.carol.ID)
		refuse(g.chatA, rx.CodeBadRequest, "not a member", "addAdmin", g.dave.ID)
		refuse(g.chatA, rx.CodeBadRequest, "the owner is not an admin", "addAdmin", g.alice.ID)
		must[any](g.chatA, "addAdmin", g.bob.ID)
		refuse(g.chatA, rx.CodeBadRequest, "already an admin", "addAdmin", g.bob.ID)
		eventually(t, "bob is an admin", func() error {
			if err := wantIDs("admins", userIDs(g.chatC.chat().Admins), uids(g.bob.ID)); err != nil {
				return err
			}
			if !g.bob.home.hasNotice(NoticeChatAdmin, "admin of Team") {
				return errors.New("no notice for bob")
			}
			return nil
		})
		refuse(g.chatB, rx.CodeForbidden, "only the owner", "removeAdmin", g.bob.ID)
		refuse(g.chatA, rx.CodeBadRequest, "not an admin", "removeAdmin", g.carol.ID)
		must[any](g.chatA, "removeAdmin", g.bob.ID)
		eventually(t, "bob is no longer an admin", func() error {
			if len(g.chatC.chat().Admins) != 0 {
				return errors.New("still listed")
			}
			if !g.bob.home.hasNotice(NoticeChatUnadmin, "no longer an admin of Team") {
				return errors.New("no notice for bob")
			}
			return nil
		})

		// Handing over: the old owner stays as an admin.
		refuse(g.chatB, rx.CodeForbidden, "only the owner", "setOwner", g.bob.ID)
		refuse(g.chatA, rx.CodeBadRequest, "already own", "setOwner", g.alice.ID)
		refuse(g.chatA, rx.CodeBadRequest, "not a member", "setOwner", g.dave.ID)
		must[any](g.chatA, "addAdmin", g.carol.ID)
		must[any](g.chatA, "setOwner", g.carol.ID)
		eventually(t, "carol owns the chat", func() error {
			c := g.chatB.chat()
			if c.Owner == nil || c.Owner.ID != g.carol.ID {
				return fmt.Errorf("owner %+v", c.Owner)
			}
			if err := wantIDs("admins", userIDs(c.Admins), uids(g.alice.ID)); err != nil {
				return err
			}
			if !g.chatB.hasNotice(NoticeChatOwner, "Carol now owns Team") || !g.carol.home.hasNotice(NoticeChatOwner, "You now own Team") {
				return errors.New("no notices")
			}
			return nil
		})
		refuse(g.chatA, rx.CodeForbidden, "only the owner", "addAdmin", g.bob.ID)
		must[any](g.chatC, "addAdmin", g.bob.ID)
	})
}

func TestLeaveChat(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		g := newGroup(t, e)
		refuse(g.chatA, rx.CodeBadRequest, "the owner cannot leave", "leave")
		privateID := g.privAB
		refuse(e.openChat(g.bob, privateID), rx.CodeBadRequest, "cannot be left", "leave")
		must[any](g.chatA, "addAdmin", g.bob.ID)
		must[any](g.chatB, "leave")
		eventually(t, "bob left", func() error {
			c := g.chatC.chat()
			if err := wantIDs("members", userIDs(c.Members), uids(g.alice.ID, g.carol.ID)); err != nil {
				return err
			}
			if len(c.Admins) != 0 {
				return errors.New("still an admin")
			}
			if chatEntry(g.bob.home.home(), g.chatID) != nil {
				return errors.New("still in bob's chat list")
			}
			if !g.chatC.hasNotice(NoticeChatLeft, "Bob left the chat") {
				return errors.New("no notice in the chat")
			}
			if !g.chatB.closed() || g.chatC.closed() {
				return fmt.Errorf("closed: bob %v carol %v", g.chatB.closed(), g.chatC.closed())
			}
			return nil
		})
		// Bob can no longer do anything there (the re-check of Authorize
		// ended his subscription), nor subscribe again.
		if !g.chatB.refused() {
			t.Fatalf("bob's chat subscription: %v, want forbidden", g.chatB.sub.Err())
		}
		refuse(g.chatB, rx.CodeForbidden, "access to ChatChannel ended", "sendMessage", "still here?")
		refuse(g.chatB, rx.CodeForbidden, "access to ChatChannel ended", "leave")
		if _, err := e.app.Hub.Subscribe(bg, "ChatChannel", ChatParams{ChatID: g.chatID}, rx.User{ID: idString(g.bob.ID)}, rx.SubscribeOptions{}); code(err) != rx.CodeNotFound {
			t.Fatalf("resubscribe: %v", err)
		}
	})
}

func TestDeleteChat(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		g := newGroup(t, e)
		must[Message](g.chatB, "sendMessage", "hi all")
		must[any](g.chatA, "addAdmin", g.bob.ID)
		refuse(g.chatB, rx.CodeForbidden, "only the owner may delete", "delete")
		privateID := g.privAB
		refuse(e.openChat(g.bob, privateID), rx.CodeBadRequest, "delete the friend instead", "delete")
		must[any](g.chatA, "delete")
		eventually(t, "chat gone for everyone", func() error {
			for _, w := range []*watch{g.chatA, g.chatB, g.chatC} {
				if w.chat() != nil {
					return errors.New("a subscriber still holds the chat")
				}
			}
			for _, p := range []*person{g.alice, g.bob, g.carol} {
				if chatEntry(p.home.home(), g.chatID) != nil {
					return fmt.Errorf("still in %s's chat list", p.Username)
				}
			}
			if !g.bob.home.hasNotice(NoticeChatDeleted, "Team was deleted") || !g.carol.home.hasNotice(NoticeChatDeleted, "Team was deleted") {
				return errors.New("no notices")
			}
			if g.alice.home.hasNotice(NoticeChatDeleted, "") {
				return errors.New("the owner was notified of their own deletion")
			}
			if !g.chatB.closed() {
				return errors.New("bob's chat not closed")
			}
			return nil
		})
		for _, m := range []any{&Chat{}, &Message{}, &ChatMember{}, &ChatAdmin{}, &UserChatRelation{}} {
			var n int64
			q := e.app.DB.Model(m)
			if _, ok := m.(*Chat); ok {
				q = q.Where("id = ?", g.chatID)
			} else {
				q = q.Where("chat_id = ?", g.chatID)
			}
			if q.Count(&n); n != 0 {
				t.Errorf("%T: %d rows left", m, n)
			}
		}
	})
}

// AuthorizeUsers, the re-check's batch form of Authorize, answers each
// user as Authorize does: members in, others not_found, a user without an
// id unauthenticated.
func TestAuthorizeUsers(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		alice, bob, carol := e.user("alice"), e.user("bob"), e.user("carol")
		chatID := e.befriend(alice, bob)
		c := &ChatChannel{App: e.app}
		users := []rx.User{{ID: idString(alice.ID)}, {ID: idString(carol.ID)}, {}, {ID: idString(bob.ID)}}
		errs := c.AuthorizeUsers(bg, ChatParams{ChatID: chatID}, users)
		want := []rx.Code{"", rx.CodeNotFound, rx.CodeUnauthenticated, ""}
		if len(errs) != len(users) {
			t.Fatalf("%d answers for %d users", len(errs), len(users))
		}
		for i, err := range errs {
			if code(err) != want[i] {
				t.Errorf("user %q: %v, want %q", users[i].ID, err, want[i])
			}
			if single := c.Authorize(bg, users[i], ChatParams{ChatID: chatID}); code(single) != want[i] {
				t.Errorf("Authorize of user %q: %v, want %q", users[i].ID, single, want[i])
			}
		}
		for _, err := range c.AuthorizeUsers(bg, ChatParams{ChatID: ^uint(0)}, users[:1]) {
			if code(err) != rx.CodeBadRequest {
				t.Errorf("chat id out of range: %v", err)
			}
		}
	})
}
