package app

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"gorm.io/gorm"
)

// Chat invitations follow the flow the seed wanted ("the ideal process"):
//
//  1. A member of a group chat invites one of their friends.
//  2. If the inviter is the owner or an admin, the invitee is asked at once
//     (status awaiting_invitee). Otherwise the owner and admins are asked
//     to approve first (status awaiting_approval); one of them approves
//     (the invitee is then asked) or rejects (the invitation is deleted).
//  3. The invitee accepts (they become a member) or rejects; either way the
//     invitation is deleted.
//
// Whoever must act now is in the invitation's Deciders, which is also what
// puts it in their Home. Admin changes keep the deciders of invitations
// awaiting approval in step.

// InviteToChat invites a friend of the caller into a group chat the caller
// is a member of.
func (a *App) InviteToChat(ctx context.Context, uid, chatID, invitee uint) (*ChatInvitation, error) {
	var inv ChatInvitation
	err := a.write(ctx, func(tx *gorm.DB, out *outbox) error {
		c, err := groupChat(tx, chatID, uid)
		if err != nil {
			return err
		}
		me, err := activeUser(tx, uid)
		if err != nil {
			return err
		}
		if ok, err := a.areFriends(tx, uid, invitee); err != nil || !ok {
			return orBadRequest(err, "you can only invite your friends")
		}
		if ok, err := isMember(tx, c.ID, invitee); err != nil || ok {
			return orBadRequest(err, "user %d is already a member of %s", invitee, c.Name)
		}
		var n int64
		if err := tx.Model(&ChatInvitation{}).Where("chat_id = ? AND invitee_id = ?", c.ID, invitee).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return badRequest("user %d is already invited to %s", invitee, c.Name)
		}
		var who User
		if err := take(tx, &who, invitee, "user"); err != nil {
			return err
		}
		admin, err := isAdmin(tx, c, uid)
		if err != nil {
			return err
		}
		inv = ChatInvitation{ChatID: c.ID, ChatName: c.Name, InviterID: uid, InviteeID: invitee, Status: AwaitingInvitee}
		if !admin {
			inv.Status = AwaitingApproval
		}
		if err := tx.Create(&inv).Error; err != nil {
			return err
		}
		if admin {
			out.user(invitee, NoticeChatInvited, fmt.Sprintf("%s invites you to %s", me.DisplayName, c.Name), c.ID)
			return setDecidersTx(tx, inv.ID, []uint{invitee})
		}
		admins, err := adminIDs(tx, c)
		if err != nil {
			return err
		}
		for _, id := range admins {
			out.user(id, NoticeChatApproval, fmt.Sprintf("%s wants to invite %s to %s", me.DisplayName, who.DisplayName, c.Name), c.ID)
		}
		return setDecidersTx(tx, inv.ID, admins)
	})
	if err != nil {
		return nil, err
	}
	return &inv, a.DB.WithContext(ctx).Preload("Inviter").Preload("Invitee").Preload("Deciders").Take(&inv, inv.ID).Error
}

// invitationFor loads a chat invitation and its chat for uid, who must be
// concerned by it (a member of the chat, the inviter or the invitee): to
// anyone else it does not exist.
func invitationFor(tx *gorm.DB, id, uid uint) (*ChatInvitation, *Chat, error) {
	var inv ChatInvitation
	err := tx.Preload("Invitee").Preload("Inviter").Take(&inv, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, nil, notFound("no chat invitation %d", id)
	}
	if err != nil {
		return nil, nil, err
	}
	var c Chat
	if err := lockChat(tx, &c, inv.ChatID); err != nil {
		return nil, nil, err
	}
	if uid != inv.InviteeID && uid != inv.InviterID {
		if ok, err := isMember(tx, c.ID, uid); err != nil || !ok {
			if err != nil {
				return nil, nil, err
			}
			return nil, nil, notFound("no chat invitation %d", id)
		}
	}
	return &inv, &c, nil
}

// ApproveChatInvitation approves an invitation awaiting approval; the
// chat's owner and admins may. The invitee is asked next.
func (a *App) ApproveChatInvitation(ctx context.Context, uid, id uint) (*ChatInvitation, error) {
	var inv *ChatInvitation
	err := a.write(ctx, func(tx *gorm.DB, out *outbox) error {
		var c *Chat
		var err error
		if inv, c, err = invitationFor(tx, id, uid); err != nil {
			return err
		}
		if ok, err := isAdmin(tx, c, uid); err != nil || !ok {
			return orForbidden(err, "only the owner and admins of %s may approve invitations", c.Name)
		}
		if inv.Status != AwaitingApproval {
			return badRequest("the invitation was already approved")
		}
		me, err := activeUser(tx, uid)
		if err != nil {
			return err
		}
		inv.Status, inv.ApprovedByID = AwaitingInvitee, &uid
		if err := tx.Model(inv).Updates(map[string]any{"status": AwaitingInvitee, "approved_by_id": uid}).Error; err != nil {
			return err
		}
		out.user(inv.InviteeID, NoticeChatInvited, fmt.Sprintf("%s invites you to %s", inv.Inviter.DisplayName, c.Name), c.ID)
		if inv.InviterID != uid {
			out.user(inv.InviterID, NoticeChatApproved, fmt.Sprintf("%s approved your invitation of %s to %s", me.DisplayName, inv.Invitee.DisplayName, c.Name), c.ID)
		}
		return setDecidersTx(tx, inv.ID, []uint{inv.InviteeID})
	})
	if err != nil {
		return nil, err
	}
	return inv, nil
}

// AcceptChatInvitation accepts an invitation addressed to the caller, who
// becomes a member of the chat.
func (a *App) AcceptChatInvitation(ctx context.Context, uid, id uint) (*ChatRef, error) {
	var ref ChatRef
	err := a.write(ctx, func(tx *gorm.DB, out *outbox) error {
		inv, c, err := invitationFor(tx, id, uid)
		if err != nil {
			return err
		}
		if uid != inv.InviteeID {
			return forbidden("only the invitee may accept an invitation")
		}
		if inv.Status != AwaitingInvitee {
			return badRequest("the invitation awaits approval by an admin of %s", c.Name)
		}
		if ok, err := isMember(tx, c.ID, uid); err != nil || ok {
			return orBadRequest(err, "you are already a member of %s", c.Name)
		}
		if err := deleteInvitationsTx(tx, []uint{inv.ID}); err != nil {
			return err
		}
		if err := addMemberTx(tx, c, uid, nil); err != nil {
			return err
		}
		ref = ChatRef{ID: c.ID, Kind: c.Kind, Name: c.Name}
		return eventTx(tx, out, c.ID, NoticeChatJoined, fmt.Sprintf("%s joined the chat", inv.Invitee.DisplayName), true)
	})
	if err != nil {
		return nil, err
	}
	return &ref, nil
}

// RejectChatInvitation rejects an invitation: the invitee may once asked,
// the chat's owner and admins while it awaits approval. The inviter is
// told.
func (a *App) RejectChatInvitation(ctx context.Context, uid, id uint) error {
	return a.write(ctx, func(tx *gorm.DB, out *outbox) error {
		inv, c, err := invitationFor(tx, id, uid)
		if err != nil {
			return err
		}
		me, err := activeUser(tx, uid)
		if err != nil {
			return err
		}
		switch inv.Status {
		case AwaitingApproval:
			if ok, err := isAdmin(tx, c, uid); err != nil || !ok {
				return orForbidden(err, "only the owner and admins of %s may reject this invitation", c.Name)
			}
		case AwaitingInvitee:
			if uid != inv.InviteeID {
				return forbidden("only the invitee may reject this invitation")
			}
		}
		if err := deleteInvitationsTx(tx, []uint{inv.ID}); err != nil {
			return err
		}
		text := fmt.Sprintf("%s rejected your invitation of %s to %s", me.DisplayName, inv.Invitee.DisplayName, c.Name)
		if uid == inv.InviteeID {
			text = fmt.Sprintf("%s declined your invitation to %s", me.DisplayName, c.Name)
		}
		if inv.InviterID != uid {
			out.user(inv.InviterID, NoticeChatRejected, text, c.ID)
		}
		return nil
	})
}

// setDecidersTx makes users the deciders of invitation id, adding and
// removing only the difference.
func setDecidersTx(tx *gorm.DB, id uint, users []uint) error {
	var have []uint
	if err := tx.Model(&ChatInvitationDecider{}).Where("chat_invitation_id = ?", id).Pluck("user_id", &have).Error; err != nil {
		return err
	}
	var gone []uint
	for _, u := range have {
		if !slices.Contains(users, u) {
			gone = append(gone, u)
		}
	}
	if len(gone) > 0 {
		if err := tx.Where("chat_invitation_id = ? AND user_id IN ?", id, gone).Delete(&ChatInvitationDecider{}).Error; err != nil {
			return err
		}
	}
	var add []ChatInvitationDecider
	for _, u := range users {
		if !slices.Contains(have, u) {
			add = append(add, ChatInvitationDecider{ChatInvitationID: id, UserID: u})
		}
	}
	if len(add) == 0 {
		return nil
	}
	return tx.Create(&add).Error
}

// syncDecidersTx makes the owner and admins of chat c the deciders of its
// invitations awaiting approval, after the admins changed.
func syncDecidersTx(tx *gorm.DB, c *Chat) error {
	var ids []uint
	if err := tx.Model(&ChatInvitation{}).Where("chat_id = ? AND status = ?", c.ID, AwaitingApproval).Pluck("id", &ids).Error; err != nil {
		return err
	}
	if len(ids) == 0 {
		return nil
	}
	admins, err := adminIDs(tx, c)
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := setDecidersTx(tx, id, admins); err != nil {
			return err
		}
	}
	return nil
}

// deleteInvitationsTx deletes chat invitations with their deciders.
func deleteInvitationsTx(tx *gorm.DB, ids []uint) error {
	for _, part := range chunks(ids) {
		if err := tx.Where("chat_invitation_id IN ?", part).Delete(&ChatInvitationDecider{}).Error; err != nil {
			return err
		}
		if err := tx.Where("id IN ?", part).Delete(&ChatInvitation{}).Error; err != nil {
			return err
		}
	}
	return nil
}
