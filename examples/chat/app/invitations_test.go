package app

import (
	"errors"
	"fmt"
	"testing"

	"github.com/rxgorm/rxgorm/rx"
)

// The chat invitation flow, on newGroup's chat: alice owns Team with bob
// and carol; dave is alice's friend. Each test makes the inviter a friend
// of the invitee as needed.

func TestInviteByOwner(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		g := newGroup(t, e)
		// The owner's invitation goes straight to the invitee.
		inv := must[ChatInvitation](g.chatA, "invite", g.dave.ID)
		if inv.Status != AwaitingInvitee || inv.ChatName != "Team" || inv.Invitee.Username != "dave" || !equal(userIDs(inv.Deciders), uids(g.dave.ID)) {
			t.Fatalf("invitation: %+v", inv)
		}
		eventually(t, "dave is asked", func() error {
			i := chatInvitation(g.dave.home.home(), inv.ID)
			if i == nil || i.Status != AwaitingInvitee || i.Inviter.DisplayName != "Alice" {
				return fmt.Errorf("dave's invitation: %+v", i)
			}
			if len(g.alice.home.home().SentChatInvitations) != 1 {
				return errors.New("not in alice's sent invitations")
			}
			if len(g.chatB.chat().Invitations) != 1 {
				return errors.New("not pending in the chat")
			}
			if !g.dave.home.hasNotice(NoticeChatInvited, "Alice invites you to Team") {
				return errors.New("no notice for dave")
			}
			return nil
		})
		refuse(g.chatA, rx.CodeBadRequest, "already invited", "invite", g.dave.ID)
		refuse(g.bob.home, rx.CodeForbidden, "only the invitee may accept", "acceptChatInvitation", inv.ID)
		refuse(g.alice.home, rx.CodeBadRequest, "already approved", "approveChatInvitation", inv.ID)

		ref := must[ChatRef](g.dave.home, "acceptChatInvitation", inv.ID)
		if ref.ID != g.chatID || ref.Name != "Team" {
			t.Fatalf("accepted: %+v", ref)
		}
		eventually(t, "dave joined", func() error {
			if err := wantIDs("members", userIDs(g.chatB.chat().Members), uids(g.alice.ID, g.bob.ID, g.carol.ID, g.dave.ID)); err != nil {
				return err
			}
			h := g.dave.home.home()
			if len(h.ChatInvitations) != 0 || chatEntry(h, g.chatID) == nil {
				return errors.New("dave's home")
			}
			if len(g.chatB.chat().Invitations) != 0 || len(g.alice.home.home().SentChatInvitations) != 0 {
				return errors.New("invitation still pending")
			}
			if !g.chatB.hasNotice(NoticeChatJoined, "Dave joined") {
				return errors.New("no notice in the chat")
			}
			return nil
		})
		// Dave, now a member, sees the chat.
		if c := e.openChat(g.dave, g.chatID).chat(); c == nil || c.Name != "Team" {
			t.Fatalf("dave's chat: %+v", c)
		}
		refuse(g.dave.home, rx.CodeNotFound, "no chat invitation", "acceptChatInvitation", inv.ID)
	})
}

func TestInviteWithApproval(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		g := newGroup(t, e)
		must[any](g.chatA, "addAdmin", g.carol.ID)
		e.befriend(g.bob, g.dave)

		// Bob is a plain member: the owner and admins must approve first.
		inv := must[ChatInvitation](g.chatB, "invite", g.dave.ID)
		if inv.Status != AwaitingApproval || !equal(userIDs(inv.Deciders), uids(g.alice.ID, g.carol.ID)) {
			t.Fatalf("invitation: %+v", inv)
		}
		eventually(t, "alice and carol are asked to approve", func() error {
			for _, p := range []*person{g.alice, g.carol} {
				if i := chatInvitation(p.home.home(), inv.ID); i == nil || i.Status != AwaitingApproval {
					return fmt.Errorf("%s's invitations: %+v", p.Username, p.home.home().ChatInvitations)
				}
				if !p.home.hasNotice(NoticeChatApproval, "Bob wants to invite Dave to Team") {
					return fmt.Errorf("no notice for %s", p.Username)
				}
			}
			if chatInvitation(g.dave.home.home(), inv.ID) != nil {
				return errors.New("dave is asked before approval")
			}
			if len(g.bob.home.home().SentChatInvitations) != 1 {
				return errors.New("not in bob's sent invitations")
			}
			return nil
		})
		refuse(g.dave.home, rx.CodeBadRequest, "awaits approval", "acceptChatInvitation", inv.ID)
		refuse(g.bob.home, rx.CodeForbidden, "only the owner and admins", "approveChatInvitation", inv.ID)
		refuse(g.bob.home, rx.CodeForbidden, "only the owner and admins", "rejectChatInvitation", inv.ID)
		outsider := e.user("erin")
		refuse(outsider.home, rx.CodeNotFound, "no chat invitation", "approveChatInvitation", inv.ID)

		// Admin changes keep the deciders in step.
		must[any](g.chatA, "removeAdmin", g.carol.ID)
		eventually(t, "carol no longer asked", func() error {
			if chatInvitation(g.carol.home.home(), inv.ID) != nil {
				return errors.New("still in carol's home")
			}
			return nil
		})
		must[any](g.chatA, "addAdmin", g.carol.ID)

		// Carol approves: the invitee is asked, the approvers no longer.
		approved := must[ChatInvitation](g.carol.home, "approveChatInvitation", inv.ID)
		if approved.Status != AwaitingInvitee || approved.ApprovedByID == nil || *approved.ApprovedByID != g.carol.ID {
			t.Fatalf("approved: %+v", approved)
		}
		eventually(t, "dave asked after approval", func() error {
			i := chatInvitation(g.dave.home.home(), inv.ID)
			if i == nil || i.Status != AwaitingInvitee || i.ApprovedBy == nil || i.ApprovedBy.Username != "carol" {
				return fmt.Errorf("dave's invitation: %+v", i)
			}
			if chatInvitation(g.alice.home.home(), inv.ID) != nil || chatInvitation(g.carol.home.home(), inv.ID) != nil {
				return errors.New("approvers still asked")
			}
			if !g.bob.home.hasNotice(NoticeChatApproved, "Carol approved your invitation of Dave") {
				return errors.New("no notice for bob")
			}
			if !g.dave.home.hasNotice(NoticeChatInvited, "Bob invites you to Team") {
				return errors.New("no notice for dave")
			}
			return nil
		})
		refuse(g.alice.home, rx.CodeForbidden, "only the invitee may reject", "rejectChatInvitation", inv.ID)

		// Dave rejects: gone, bob is told.
		must[any](g.dave.home, "rejectChatInvitation", inv.ID)
		eventually(t, "rejected", func() error {
			if len(g.dave.home.home().ChatInvitations) != 0 || len(g.bob.home.home().SentChatInvitations) != 0 || len(g.chatA.chat().Invitations) != 0 {
				return errors.New("still pending")
			}
			if !g.bob.home.hasNotice(NoticeChatRejected, "Dave declined your invitation to Team") {
				return fmt.Errorf("bob's notices: %+v", g.bob.home.notices())
			}
			return nil
		})

		// An admin may reject during approval.
		inv = must[ChatInvitation](g.chatB, "invite", g.dave.ID)
		must[any](g.alice.home, "rejectChatInvitation", inv.ID)
		eventually(t, "rejected by an admin", func() error {
			if chatInvitation(g.carol.home.home(), inv.ID) != nil || len(g.bob.home.home().SentChatInvitations) != 0 {
				return errors.New("still pending")
			}
			if !g.bob.home.hasNotice(NoticeChatRejected, "Alice rejected your invitation of Dave") {
				return errors.New("no notice for bob")
			}
			return nil
		})

		// And the full way: approve, accept.
		inv = must[ChatInvitation](g.chatB, "invite", g.dave.ID)
		must[ChatInvitation](g.alice.home, "approveChatInvitation", inv.ID)
		must[ChatRef](g.dave.home, "acceptChatInvitation", inv.ID)
		eventually(t, "dave joined", func() error {
			return wantIDs("members", userIDs(g.chatC.chat().Members), uids(g.alice.ID, g.bob.ID, g.carol.ID, g.dave.ID))
		})
	})
}

func TestInviteRefusals(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		g := newGroup(t, e)
		erin := e.user("erin")
		refuse(g.chatB, rx.CodeBadRequest, "only invite your friends", "invite", erin.ID)
		refuse(g.chatA, rx.CodeBadRequest, "already a member", "invite", g.bob.ID)
		privateID := g.privAB
		refuse(e.openChat(g.alice, privateID), rx.CodeBadRequest, "private chat", "invite", g.dave.ID)
		refuse(g.dave.home, rx.CodeNotFound, "no chat invitation", "acceptChatInvitation", 999)
		if _, err := e.app.InviteToChat(bg, g.dave.ID, g.chatID, g.alice.ID); code(err) != rx.CodeNotFound {
			t.Fatalf("outsider invited: %v", err)
		}
	})
}
