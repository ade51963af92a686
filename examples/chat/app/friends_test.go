package app

import (
	"errors"
	"fmt"
	"testing"

	"github.com/rxgorm/rxgorm/rx"
)

func TestFriendInvitations(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		alice, bob, carol := e.user("alice"), e.user("bob"), e.user("carol")

		// Send: it appears on both sides, and bob is notified.
		inv := must[FriendInvitation](alice.home, "inviteFriend", "bob", "hi bob")
		if inv.SenderID != alice.ID || inv.ReceiverID != bob.ID || inv.Message != "hi bob" || inv.Receiver.Username != "bob" {
			t.Fatalf("invitation: %+v", inv)
		}
		eventually(t, "invitation on both sides", func() error {
			out, in := alice.home.home().FriendInvitationsOut, bob.home.home().FriendInvitationsIn
			if len(out) != 1 || out[0].ID != inv.ID || out[0].Receiver.Username != "bob" {
				return fmt.Errorf("alice's outgoing: %+v", out)
			}
			if len(in) != 1 || in[0].ID != inv.ID || in[0].Sender.DisplayName != "Alice" || in[0].Message != "hi bob" {
				return fmt.Errorf("bob's incoming: %+v", in)
			}
			if !bob.home.hasNotice(NoticeFriendInvited, "Alice wants to be your friend") {
				return errors.New("no notice for bob")
			}
			return nil
		})

		// Refusals.
		refuse(alice.home, rx.CodeBadRequest, "yourself", "inviteFriend", "alice", "")
		refuse(alice.home, rx.CodeNotFound, "no user nobody", "inviteFriend", "nobody", "")
		refuse(alice.home, rx.CodeNotFound, "no user", "inviteFriend", DeletedUsername, "")
		refuse(alice.home, rx.CodeBadRequest, "already invited Bob", "inviteFriend", "bob", "")
		refuse(bob.home, rx.CodeBadRequest, "Alice already invited you", "inviteFriend", "alice", "")
		refuse(alice.home, rx.CodeBadRequest, "at most 200", "inviteFriend", "carol", string(make([]byte, 201)))
		refuse(alice.home, rx.CodeNotFound, "no friend invitation", "acceptFriendInvitation", inv.ID) // the sender cannot accept
		refuse(carol.home, rx.CodeNotFound, "no friend invitation", "rejectFriendInvitation", inv.ID)
		refuse(bob.home, rx.CodeNotFound, "no friend invitation", "cancelFriendInvitation", inv.ID) // the receiver cannot cancel
		refuse(bob.home, rx.CodeNotFound, "no friend invitation", "acceptFriendInvitation", 999)

		// Cancel by the sender: gone on both sides.
		must[any](alice.home, "cancelFriendInvitation", inv.ID)
		eventually(t, "cancelled invitation gone", func() error {
			if n := len(alice.home.home().FriendInvitationsOut) + len(bob.home.home().FriendInvitationsIn); n != 0 {
				return fmt.Errorf("%d left", n)
			}
			return nil
		})

		// Reject by the receiver: gone, the sender is notified.
		inv = must[FriendInvitation](carol.home, "inviteFriend", "alice", "")
		must[any](alice.home, "rejectFriendInvitation", inv.ID)
		eventually(t, "rejected invitation gone", func() error {
			if n := len(carol.home.home().FriendInvitationsOut) + len(alice.home.home().FriendInvitationsIn); n != 0 {
				return fmt.Errorf("%d left", n)
			}
			if !carol.home.hasNotice(NoticeFriendRejected, "Alice rejected") {
				return errors.New("no notice for carol")
			}
			return nil
		})

		// Accept: friends on both sides in the default group, with a private
		// chat in both chat lists, and the sender is notified.
		inv = must[FriendInvitation](alice.home, "inviteFriend", "bob", "")
		f := must[Friendship](bob.home, "acceptFriendInvitation", inv.ID)
		if f.UserID != bob.ID || f.FriendID != alice.ID || f.Friend.Username != "alice" || f.ChatID == 0 {
			t.Fatalf("friendship: %+v", f)
		}
		eventually(t, "friends on both sides", func() error {
			ha, hb := alice.home.home(), bob.home.home()
			if err := wantIDs("alice's friends", friendIDs(ha), uids(bob.ID)); err != nil {
				return err
			}
			if err := wantIDs("bob's friends", friendIDs(hb), uids(alice.ID)); err != nil {
				return err
			}
			if groupOf(ha, bob.ID) != "Friends" || groupOf(hb, alice.ID) != "Friends" {
				return errors.New("not in the default group")
			}
			if len(ha.FriendInvitationsOut)+len(hb.FriendInvitationsIn) != 0 {
				return errors.New("invitation still listed")
			}
			ra, rb := chatEntry(ha, f.ChatID), chatEntry(hb, f.ChatID)
			if ra == nil || rb == nil || ra.Kind != KindPrivate || ra.Peer == nil || ra.Peer.ID != bob.ID || rb.Peer == nil || rb.Peer.ID != alice.ID {
				return fmt.Errorf("private chat entries: %+v %+v", ra, rb)
			}
			if !alice.home.hasNotice(NoticeFriendAccepted, "Bob accepted") {
				return errors.New("no notice for alice")
			}
			return nil
		})
		refuse(alice.home, rx.CodeBadRequest, "already your friend", "inviteFriend", "bob", "")
		// Notices are runtime state of the subscription; dismissing clears
		// them.
		must[any](alice.home, "dismissNotices")
		eventually(t, "notices dismissed", func() error { return want("notices", len(alice.home.notices()), 0) })
		c := e.openChat(alice, f.ChatID).chat()
		if c == nil || c.Kind != KindPrivate || c.OwnerID != nil || !equal(userIDs(c.Members), uids(alice.ID, bob.ID)) {
			t.Fatalf("private chat: %+v", c)
		}
	})
}

func equal(a, b []uint) bool { return wantIDs("", a, b) == nil }

func TestDeleteFriend(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		alice, bob, carol := e.user("alice"), e.user("bob"), e.user("carol")
		chatID := e.befriend(alice, bob)
		e.befriend(alice, carol)
		chatA, chatB := e.openChat(alice, chatID), e.openChat(bob, chatID)
		must[Message](chatA, "sendMessage", "hello")

		refuse(alice.home, rx.CodeNotFound, "not your friend", "deleteFriend", 999)
		must[any](alice.home, "deleteFriend", bob.ID)
		eventually(t, "friendship and private chat gone", func() error {
			ha, hb := alice.home.home(), bob.home.home()
			if err := wantIDs("alice's friends", friendIDs(ha), uids(carol.ID)); err != nil {
				return err
			}
			if err := wantIDs("bob's friends", friendIDs(hb), nil); err != nil {
				return err
			}
			if chatEntry(ha, chatID) != nil || chatEntry(hb, chatID) != nil {
				return errors.New("private chat still listed")
			}
			if chatA.chat() != nil || chatB.chat() != nil {
				return errors.New("chat subscribers still hold the chat")
			}
			if !bob.home.hasNotice(NoticeFriendRemoved, "Alice removed you") {
				return errors.New("no notice for bob")
			}
			return nil
		})
		var n int64
		e.app.DB.Model(&Message{}).Where("chat_id = ?", chatID).Count(&n)
		if n != 0 {
			t.Fatalf("%d messages of the deleted chat remain", n)
		}
		refuse(alice.home, rx.CodeNotFound, "not your friend", "deleteFriend", bob.ID)
	})
}

func TestFriendGroups(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		alice, bob, carol := e.user("alice"), e.user("bob"), e.user("carol")
		e.befriend(alice, bob)

		g := must[FriendGroup](alice.home, "createFriendGroup", " Work ")
		if g.Name != "Work" || g.UserID != alice.ID || g.IsDefault {
			t.Fatalf("group: %+v", g)
		}
		refuse(alice.home, rx.CodeBadRequest, "already have a group named Work", "createFriendGroup", "Work")
		refuse(alice.home, rx.CodeBadRequest, "1 to 32", "createFriendGroup", "")
		refuse(carol.home, rx.CodeNotFound, "no friend group", "renameFriendGroup", g.ID, "Mine")
		refuse(alice.home, rx.CodeBadRequest, "already have a group named Friends", "renameFriendGroup", g.ID, "Friends")

		must[FriendGroup](alice.home, "renameFriendGroup", g.ID, "Colleagues")
		f := must[Friendship](alice.home, "moveFriend", bob.ID, g.ID)
		if f.GroupID != g.ID || f.Friend.Username != "bob" {
			t.Fatalf("moved: %+v", f)
		}
		eventually(t, "bob in Colleagues", func() error {
			return want("bob's group", groupOf(alice.home.home(), bob.ID), "Colleagues")
		})
		// Bob's own groups are his: alice's move does not touch them.
		eventually(t, "bob's side unchanged", func() error {
			return want("alice's group", groupOf(bob.home.home(), alice.ID), "Friends")
		})
		refuse(alice.home, rx.CodeNotFound, "not your friend", "moveFriend", carol.ID, g.ID)
		refuse(carol.home, rx.CodeNotFound, "no friend group", "moveFriend", bob.ID, g.ID)

		def := alice.home.home().FriendGroups[0]
		if !def.IsDefault {
			t.Fatalf("first group is not the default one: %+v", def)
		}
		refuse(alice.home, rx.CodeBadRequest, "default group cannot be deleted", "deleteFriendGroup", def.ID)
		refuse(carol.home, rx.CodeNotFound, "no friend group", "deleteFriendGroup", g.ID)
		must[any](alice.home, "deleteFriendGroup", g.ID)
		eventually(t, "group deleted, bob back in the default group", func() error {
			h := alice.home.home()
			if len(h.FriendGroups) != 1 {
				return fmt.Errorf("%d groups", len(h.FriendGroups))
			}
			return want("bob's group", groupOf(h, bob.ID), "Friends")
		})
	})
}
