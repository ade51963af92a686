package app

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/rxgorm/rxgorm/rx"
)

// TestDeleteAccount runs the seed's user deletion cascade with every kind
// of row pointing at the user, and checks what each connected user
// receives and that nothing references the user afterwards except
// messages re-assigned to #DELETED.
func TestDeleteAccount(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		alice, bob, carol, dave, erin, frank := e.user("alice"), e.user("bob"), e.user("carol"), e.user("dave"), e.user("erin"), e.user("frank")
		token, _, err := e.app.Login(bg, "alice", password)
		if err != nil {
			t.Fatal(err)
		}

		// Friends: alice-bob and alice-carol (with private chats), bob-dave,
		// carol-erin, dave-frank.
		privAB := e.befriend(alice, bob)
		privAC := e.befriend(alice, carol)
		e.befriend(bob, dave)
		e.befriend(carol, erin)
		e.befriend(dave, frank)
		privAB_A, privAB_B := e.openChat(alice, privAB), e.openChat(bob, privAB)
		must[Message](privAB_A, "sendMessage", "hi bob")
		must[Message](privAB_B, "sendMessage", "hi alice")

		// G1, owned by alice, with bob and carol.
		g1 := must[ChatRef](alice.home, "createGroupChat", "Alice's", []uint{bob.ID, carol.ID}).ID
		g1A, g1B, g1C := e.openChat(alice, g1), e.openChat(bob, g1), e.openChat(carol, g1)
		must[Message](g1A, "sendMessage", "welcome to my group")
		must[Message](g1B, "sendMessage", "thanks")

		// G2, owned by bob, with alice (an admin), carol and dave.
		e.befriend(bob, carol)
		g2 := must[ChatRef](bob.home, "createGroupChat", "Bob's", []uint{alice.ID, carol.ID, dave.ID}).ID
		g2A, g2B, g2C, g2D := e.openChat(alice, g2), e.openChat(bob, g2), e.openChat(carol, g2), e.openChat(dave, g2)
		must[any](g2B, "addAdmin", alice.ID)
		fromAlice := must[Message](g2A, "sendMessage", "alice was here")
		fromBob := must[Message](g2B, "sendMessage", "bob too")
		must[UserChatRelation](g2A, "markRead", 0) // alice reads bob's message
		must[UserChatRelation](g2B, "markRead", 0) // bob reads alice's

		// G3, owned by carol, with erin; carol invites alice.
		g3 := must[ChatRef](carol.home, "createGroupChat", "Carol's", []uint{erin.ID}).ID
		g3C := e.openChat(carol, g3)
		toAlice := must[ChatInvitation](g3C, "invite", alice.ID)

		// Pending: alice invited dave, erin invited alice; in G2 carol's
		// invitation of erin awaits approval by bob and alice, and dave's
		// invitation of frank was approved by alice.
		must[FriendInvitation](alice.home, "inviteFriend", "dave", "")
		must[FriendInvitation](erin.home, "inviteFriend", "alice", "")
		erinInG2 := must[ChatInvitation](g2C, "invite", erin.ID)
		if !equal(userIDs(erinInG2.Deciders), uids(alice.ID, bob.ID)) {
			t.Fatalf("deciders: %+v", erinInG2.Deciders)
		}
		frankInG2 := must[ChatInvitation](g2D, "invite", frank.ID)
		must[ChatInvitation](alice.home, "approveChatInvitation", frankInG2.ID)

		eventually(t, "setup visible", func() error {
			if len(alice.home.home().Chats) != 4 || len(alice.home.home().ChatInvitations) != 2 {
				return fmt.Errorf("alice's home: %s", alice.home.json())
			}
			return nil
		})

		// Wrong password: nothing happens.
		refuse(alice.home, rx.CodeForbidden, "wrong password", "deleteAccount", "nope")
		if len(e.closed.all()) != 0 {
			t.Fatal("sessions closed on a refused deletion")
		}

		must[any](alice.home, "deleteAccount", password)

		deleted := e.app.DeletedUserID()
		eventually(t, "friends: friendship and private chat gone, notified", func() error {
			hb, hc := bob.home.home(), carol.home.home()
			if err := wantIDs("bob's friends", friendIDs(hb), uids(carol.ID, dave.ID)); err != nil {
				return err
			}
			if err := wantIDs("carol's friends", friendIDs(hc), uids(bob.ID, erin.ID)); err != nil {
				return err
			}
			if chatEntry(hb, privAB) != nil || chatEntry(hc, privAC) != nil {
				return errors.New("private chat still listed")
			}
			for _, p := range []*person{bob, carol} {
				if !p.home.hasNotice(NoticeFriendDeleted, "Alice deleted their account") {
					return fmt.Errorf("no friend notice for %s", p.Username)
				}
			}
			if dave.home.hasNotice(NoticeFriendDeleted, "") {
				return errors.New("dave was no friend of alice's")
			}
			if privAB_B.chat() != nil {
				return errors.New("bob still holds the private chat")
			}
			return nil
		})
		eventually(t, "owned group chat deleted, members notified", func() error {
			for _, p := range []*person{bob, carol} {
				if chatEntry(p.home.home(), g1) != nil {
					return fmt.Errorf("G1 still in %s's chat list", p.Username)
				}
				if !p.home.hasNotice(NoticeChatDeleted, "the chat Alice's is gone") {
					return fmt.Errorf("no chat notice for %s", p.Username)
				}
			}
			for _, w := range []*watch{g1B, g1C} {
				if w.chat() != nil || !w.closed() {
					return errors.New("G1 subscribers still hold the chat")
				}
			}
			return nil
		})
		eventually(t, "remaining group chat told that alice left", func() error {
			for _, w := range []*watch{g2B, g2C, g2D} {
				c := w.chat()
				if err := wantIDs("G2 members", userIDs(c.Members), uids(bob.ID, carol.ID, dave.ID)); err != nil {
					return err
				}
				if len(c.Admins) != 0 {
					return fmt.Errorf("G2 admins: %v", userIDs(c.Admins))
				}
				for _, m := range c.Messages {
					switch m.ID {
					case fromAlice.ID:
						if m.SenderID != deleted || m.Sender.Username != DeletedUsername || !equal(userIDs(m.Readers), uids(bob.ID)) {
							return fmt.Errorf("alice's message: %+v", m)
						}
					case fromBob.ID:
						if len(m.Readers) != 0 {
							return fmt.Errorf("alice still reads bob's message: %v", userIDs(m.Readers))
						}
					}
				}
				if !w.hasNotice(NoticeChatLeft, "Alice left the chat") || w.closed() {
					return errors.New("no notice in G2, or closed")
				}
			}
			if !g2A.closed() {
				return errors.New("alice's own G2 subscription not closed")
			}
			return nil
		})
		eventually(t, "pending invitations", func() error {
			if n := len(dave.home.home().FriendInvitationsIn); n != 0 {
				return fmt.Errorf("dave has %d friend invitations", n)
			}
			if n := len(erin.home.home().FriendInvitationsOut); n != 0 {
				return fmt.Errorf("erin has %d sent friend invitations", n)
			}
			hc := carol.home.home()
			if len(hc.SentChatInvitations) != 1 || hc.SentChatInvitations[0].ID != erinInG2.ID {
				return fmt.Errorf("carol's sent chat invitations: %+v", hc.SentChatInvitations)
			}
			if len(g3C.chat().Invitations) != 0 {
				return fmt.Errorf("G3 still invites alice (%d)", toAlice.ID)
			}
			if i := chatInvitation(bob.home.home(), erinInG2.ID); i == nil || !equal(userIDs(i.Deciders), uids(bob.ID)) {
				return fmt.Errorf("bob's approval: %+v", i)
			}
			if i := chatInvitation(frank.home.home(), frankInG2.ID); i == nil || i.ApprovedByID != nil || i.ApprovedBy != nil || i.Status != AwaitingInvitee {
				return fmt.Errorf("frank's invitation: %+v", i)
			}
			return nil
		})
		// Alice's own subscriptions: her home is gone, her sessions closed.
		eventually(t, "alice's side", func() error {
			var v any
			if alice.home.decode(&v) {
				return fmt.Errorf("alice's home: %s", alice.home.json())
			}
			if !alice.home.hasNotice(NoticeAccountDeleting, "") {
				return errors.New("no notice for alice")
			}
			if privAB_A.chat() != nil || g1A.chat() != nil {
				return errors.New("alice still holds chats")
			}
			return nil
		})
		if got := e.closed.all(); !slices.Equal(got, []string{idString(alice.ID)}) {
			t.Fatalf("sessions closed: %v", got)
		}
		if _, err := e.app.Tokens.Authenticate(bg, token); code(err) != rx.CodeUnauthenticated {
			t.Fatalf("alice's token: %v", err)
		}
		if _, _, err := e.app.Login(bg, "alice", password); code(err) != rx.CodeUnauthenticated {
			t.Fatalf("alice logs in: %v", err)
		}
		// Her remaining subscriptions' actions fail.
		refuse(alice.home, rx.CodeUnauthenticated, "no longer exists", "createFriendGroup", "x")
		eventually(t, "alice's chat subscription refused", func() error {
			if !g2A.refused() {
				return fmt.Errorf("ended with %v", g2A.sub.Err())
			}
			return nil
		})
		refuse(g2A, rx.CodeForbidden, "access to ChatChannel ended", "sendMessage", "ghost")

		// Nothing in the database references alice.
		for _, c := range []struct{ table, column string }{
			{"users", "id"}, {"homes", "id"}, {"homes", "user_id"},
			{"friend_groups", "user_id"}, {"friendships", "user_id"}, {"friendships", "friend_id"},
			{"friend_invitations", "sender_id"}, {"friend_invitations", "receiver_id"},
			{"chats", "owner_id"}, {"chat_members", "user_id"}, {"chat_admins", "user_id"},
			{"user_chat_relations", "user_id"}, {"user_chat_relations", "peer_id"},
			{"chat_invitations", "inviter_id"}, {"chat_invitations", "invitee_id"}, {"chat_invitations", "approved_by_id"},
			{"chat_invitation_deciders", "user_id"},
			{"messages", "sender_id"}, {"message_reads", "user_id"},
			{"rx_tokens", "user_id"},
		} {
			var n int64
			var id any = alice.ID
			if c.table == "rx_tokens" {
				id = idString(alice.ID)
			}
			if err := e.app.DB.Table(c.table).Where(c.column+" = ?", id).Count(&n).Error; err != nil {
				t.Fatal(err)
			}
			if n != 0 {
				t.Errorf("%s.%s: %d rows reference alice", c.table, c.column, n)
			}
		}
		// Only her message in G2 remains, as #DELETED's; the chats she owned
		// or shared privately are gone.
		var msgs []Message
		e.app.DB.Where("sender_id = ?", deleted).Find(&msgs)
		if len(msgs) != 1 || msgs[0].ID != fromAlice.ID {
			t.Fatalf("#DELETED's messages: %+v", msgs)
		}
		var n int64
		e.app.DB.Model(&Chat{}).Where("id IN ?", []uint{privAB, privAC, g1}).Count(&n)
		if n != 0 {
			t.Fatalf("%d of alice's chats remain", n)
		}
	})
}
