package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"gorm.io/gorm"
)

// Friends: invitations, friendships with their private chats, and friend
// groups.

func (a *App) areFriends(tx *gorm.DB, uid, other uint) (bool, error) {
	var n int64
	err := tx.Model(&Friendship{}).Where("user_id = ? AND friend_id = ?", uid, other).Count(&n).Error
	return n > 0, err
}

func defaultGroup(tx *gorm.DB, uid uint) (*FriendGroup, error) {
	var g FriendGroup
	if err := tx.Where("user_id = ? AND is_default = ?", uid, true).Take(&g).Error; err != nil {
		return nil, fmt.Errorf("app: default friend group of user %d: %w", uid, err)
	}
	return &g, nil
}

// InviteFriend sends a friend invitation to the user with username.
func (a *App) InviteFriend(ctx context.Context, uid uint, username, message string) (*FriendInvitation, error) {
	message, err := cleanText("an invitation message", message, 200, true)
	if err != nil {
		return nil, err
	}
	if !usernameRE.MatchString(username) {
		return nil, notFound("no user %s", username)
	}
	var inv FriendInvitation
	err = a.write(ctx, func(tx *gorm.DB, out *outbox) error {
		me, err := activeUser(tx, uid)
		if err != nil {
			return err
		}
		var to User
		err = tx.Where("username = ?", username).Take(&to).Error
		if errors.Is(err, gorm.ErrRecordNotFound) || to.ID == a.deletedID {
			return notFound("no user %s", username)
		}
		if err != nil {
			return err
		}
		if to.ID == uid {
			return badRequest("you cannot befriend yourself")
		}
		if ok, err := a.areFriends(tx, uid, to.ID); err != nil || ok {
			return orBadRequest(err, "%s is already your friend", to.DisplayName)
		}
		var pending []FriendInvitation
		if err := tx.Where("(sender_id = ? AND receiver_id = ?) OR (sender_id = ? AND receiver_id = ?)", uid, to.ID, to.ID, uid).Find(&pending).Error; err != nil {
			return err
		}
		if len(pending) > 0 {
			if pending[0].SenderID == uid {
				return badRequest("you already invited %s", to.DisplayName)
			}
			return badRequest("%s already invited you: accept their invitation", to.DisplayName)
		}
		inv = FriendInvitation{SenderID: uid, ReceiverID: to.ID, Message: message, Sender: *me, Receiver: to}
		if err := tx.Omit("Sender", "Receiver").Create(&inv).Error; err != nil {
			return err
		}
		out.user(to.ID, NoticeFriendInvited, fmt.Sprintf("%s wants to be your friend", me.DisplayName), 0)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &inv, nil
}

// receivedInvitation loads a friend invitation sent to uid.
func receivedInvitation(tx *gorm.DB, id, uid uint) (*FriendInvitation, error) {
	var inv FriendInvitation
	if err := tx.Preload("Sender").Preload("Receiver").Take(&inv, id).Error; err != nil || inv.ReceiverID != uid {
		if err != nil && !errors.Is(err, gorm.ErrRecordNotFound) {
			return nil, err
		}
		return nil, notFound("no friend invitation %d for you", id)
	}
	return &inv, nil
}

// AcceptFriendInvitation accepts a friend invitation: the two become
// friends (each in their default group) and get a private chat.
func (a *App) AcceptFriendInvitation(ctx context.Context, uid, id uint) (*Friendship, error) {
	var mine Friendship
	err := a.write(ctx, func(tx *gorm.DB, out *outbox) error {
		inv, err := receivedInvitation(tx, id, uid)
		if err != nil {
			return err
		}
		if err := tx.Delete(&FriendInvitation{ID: inv.ID}).Error; err != nil {
			return err
		}
		chat := Chat{Kind: KindPrivate, CreatedAt: time.Now()}
		if err := tx.Create(&chat).Error; err != nil {
			return err
		}
		for _, side := range [][2]uint{{inv.SenderID, inv.ReceiverID}, {inv.ReceiverID, inv.SenderID}} {
			user, friend := side[0], side[1]
			g, err := defaultGroup(tx, user)
			if err != nil {
				return err
			}
			f := Friendship{UserID: user, FriendID: friend, GroupID: g.ID, ChatID: chat.ID}
			if err := tx.Create(&f).Error; err != nil {
				return err
			}
			if user == uid {
				mine = f
			}
			if err := addMemberTx(tx, &chat, user, &friend); err != nil {
				return err
			}
		}
		mine.Friend = inv.Sender
		out.user(inv.SenderID, NoticeFriendAccepted, fmt.Sprintf("%s accepted your friend invitation", inv.Receiver.DisplayName), chat.ID)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &mine, nil
}

// RejectFriendInvitation rejects a friend invitation sent to the caller.
func (a *App) RejectFriendInvitation(ctx context.Context, uid, id uint) error {
	return a.write(ctx, func(tx *gorm.DB, out *outbox) error {
		inv, err := receivedInvitation(tx, id, uid)
		if err != nil {
			return err
		}
		if err := tx.Delete(&FriendInvitation{ID: inv.ID}).Error; err != nil {
			return err
		}
		out.user(inv.SenderID, NoticeFriendRejected, fmt.Sprintf("%s rejected your friend invitation", inv.Receiver.DisplayName), 0)
		return nil
	})
}

// CancelFriendInvitation withdraws a friend invitation the caller sent.
func (a *App) CancelFriendInvitation(ctx context.Context, uid, id uint) error {
	return a.write(ctx, func(tx *gorm.DB, _ *outbox) error {
		res := tx.Where("id = ? AND sender_id = ?", id, uid).Delete(&FriendInvitation{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return notFound("no friend invitation %d from you", id)
		}
		return nil
	})
}

// DeleteFriend ends a friendship, on both sides, and deletes the private
// chat.
func (a *App) DeleteFriend(ctx context.Context, uid, friendID uint) error {
	return a.write(ctx, func(tx *gorm.DB, out *outbox) error {
		me, err := activeUser(tx, uid)
		if err != nil {
			return err
		}
		var f Friendship
		err = tx.Where("user_id = ? AND friend_id = ?", uid, friendID).Take(&f).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return notFound("user %d is not your friend", friendID)
		}
		if err != nil {
			return err
		}
		if err := lockChats(tx, []uint{f.ChatID}); err != nil {
			return err
		}
		if err := tx.Where("(user_id = ? AND friend_id = ?) OR (user_id = ? AND friend_id = ?)", uid, friendID, friendID, uid).Delete(&Friendship{}).Error; err != nil {
			return err
		}
		if err := deleteChatTx(tx, f.ChatID); err != nil {
			return err
		}
		out.user(friendID, NoticeFriendRemoved, fmt.Sprintf("%s removed you from their friends", me.DisplayName), 0)
		return nil
	})
}

func cleanGroupName(name string) (string, error) {
	return cleanName("a group name", name, 32)
}

// ownGroup loads one of uid's friend groups.
func ownGroup(tx *gorm.DB, uid, id uint) (*FriendGroup, error) {
	var g FriendGroup
	err := tx.Where("id = ? AND user_id = ?", id, uid).Take(&g).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, notFound("no friend group %d", id)
	}
	return &g, err
}

func groupNameTaken(tx *gorm.DB, uid uint, name string, except uint) error {
	var n int64
	if err := tx.Model(&FriendGroup{}).Where("user_id = ? AND name = ? AND id <> ?", uid, name, except).Count(&n).Error; err != nil {
		return err
	}
	if n > 0 {
		return badRequest("you already have a group named %s", name)
	}
	return nil
}

// CreateFriendGroup creates an empty friend group.
func (a *App) CreateFriendGroup(ctx context.Context, uid uint, name string) (*FriendGroup, error) {
	name, err := cleanGroupName(name)
	if err != nil {
		return nil, err
	}
	g := FriendGroup{UserID: uid, Name: name}
	err = a.write(ctx, func(tx *gorm.DB, _ *outbox) error {
		if _, err := activeUser(tx, uid); err != nil {
			return err
		}
		if err := groupNameTaken(tx, uid, name, 0); err != nil {
			return err
		}
		return tx.Create(&g).Error
	})
	if err != nil {
		return nil, err
	}
	return &g, nil
}

// RenameFriendGroup renames one of the caller's friend groups.
func (a *App) RenameFriendGroup(ctx context.Context, uid, id uint, name string) (*FriendGroup, error) {
	name, err := cleanGroupName(name)
	if err != nil {
		return nil, err
	}
	var g *FriendGroup
	err = a.write(ctx, func(tx *gorm.DB, _ *outbox) error {
		if g, err = ownGroup(tx, uid, id); err != nil {
			return err
		}
		if err := groupNameTaken(tx, uid, name, id); err != nil {
			return err
		}
		g.Name = name
		return tx.Model(g).Update("name", name).Error
	})
	return g, err
}

// DeleteFriendGroup deletes one of the caller's friend groups; its friends
// move to the default group, which cannot be deleted.
func (a *App) DeleteFriendGroup(ctx context.Context, uid, id uint) error {
	return a.write(ctx, func(tx *gorm.DB, _ *outbox) error {
		g, err := ownGroup(tx, uid, id)
		if err != nil {
			return err
		}
		if g.IsDefault {
			return badRequest("the default group cannot be deleted")
		}
		def, err := defaultGroup(tx, uid)
		if err != nil {
			return err
		}
		if err := tx.Model(&Friendship{}).Where("group_id = ?", g.ID).Update("group_id", def.ID).Error; err != nil {
			return err
		}
		return tx.Delete(g).Error
	})
}

// MoveFriend moves a friend into another of the caller's groups.
func (a *App) MoveFriend(ctx context.Context, uid, friendID, groupID uint) (*Friendship, error) {
	var f Friendship
	err := a.write(ctx, func(tx *gorm.DB, _ *outbox) error {
		if _, err := ownGroup(tx, uid, groupID); err != nil {
			return err
		}
		err := tx.Preload("Friend").Where("user_id = ? AND friend_id = ?", uid, friendID).Take(&f).Error
		if errors.Is(err, gorm.ErrRecordNotFound) {
			return notFound("user %d is not your friend", friendID)
		}
		if err != nil {
			return err
		}
		f.GroupID = groupID
		return tx.Model(&f).Update("group_id", groupID).Error
	})
	if err != nil {
		return nil, err
	}
	return &f, nil
}
