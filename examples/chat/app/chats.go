package app

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Chats: group chat management. Private chats come and go with
// friendships (friends.go).

// ChatRef names a chat in action results.
type ChatRef struct {
	ID   uint   `json:"id"`
	Kind string `json:"kind"`
	Name string `json:"name"`
}

func cleanChatName(name string) (string, error) {
	return cleanName("a chat name", name, 64)
}

// memberIDs returns the ids of a chat's members.
func memberIDs(tx *gorm.DB, chatID uint) ([]uint, error) {
	var ids []uint
	err := tx.Model(&ChatMember{}).Where("chat_id = ?", chatID).Order("user_id").Pluck("user_id", &ids).Error
	return ids, err
}

// adminIDs returns the owner and admins of a chat, the owner first.
func adminIDs(tx *gorm.DB, c *Chat) ([]uint, error) {
	var ids []uint
	if err := tx.Model(&ChatAdmin{}).Where("chat_id = ?", c.ID).Order("user_id").Pluck("user_id", &ids).Error; err != nil {
		return nil, err
	}
	if c.OwnerID != nil {
		ids = append([]uint{*c.OwnerID}, ids...)
	}
	return ids, nil
}

func isMember(tx *gorm.DB, chatID, uid uint) (bool, error) {
	var n int64
	err := tx.Model(&ChatMember{}).Where("chat_id = ? AND user_id = ?", chatID, uid).Count(&n).Error
	return n > 0, err
}

func isAdmin(tx *gorm.DB, c *Chat, uid uint) (bool, error) {
	if c.OwnerID != nil && *c.OwnerID == uid {
		return true, nil
	}
	var n int64
	err := tx.Model(&ChatAdmin{}).Where("chat_id = ? AND user_id = ?", c.ID, uid).Count(&n).Error
	return n > 0, err
}

// Lock order. Every transaction that writes rows of a chat (its
// messages, read receipts, members' relations with their unread counts,
// invitations) first locks the chat's row (SELECT … FOR UPDATE), and a
// transaction that writes several chats locks them in ascending id order
// (lockChats). Writers of one chat therefore run one after the other and
// never hold rows another one waits for: no deadlock, and message ids
// grow in commit order within a chat, so "unread = messages of others
// after the last one read" and the +1 of each send stay equal. SQLite
// ignores row locks; its write transactions are serialized anyway
// (_txlock=immediate).

// lockChat loads chat chatID into c and locks its row until the end of
// the transaction.
func lockChat(tx *gorm.DB, c *Chat, chatID uint) error {
	err := tx.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate}).Take(c, chatID).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return notFound("no chat %d", chatID)
	}
	return err
}

// lockChats locks the rows of chats ids, in ascending id order, until the
// end of the transaction.
func lockChats(tx *gorm.DB, ids []uint) error {
	ids = slices.Compact(slices.Sorted(slices.Values(ids)))
	for _, part := range chunks(ids) {
		var got []uint
		if err := tx.Model(&Chat{}).Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate}).
			Where("id IN ?", part).Order("id").Pluck("id", &got).Error; err != nil {
			return err
		}
	}
	return nil
}

// memberChat loads and locks (lockChat) a chat the user is a member of.
// Non-members learn nothing about it: the error is the same as for a chat
// that does not exist.
func memberChat(tx *gorm.DB, chatID, uid uint) (*Chat, error) {
	var c Chat
	if err := lockChat(tx, &c, chatID); err != nil {
		return nil, err
	}
	ok, err := isMember(tx, chatID, uid)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, notFound("no chat %d", chatID)
	}
	return &c, nil
}

// groupChat loads a group chat the user is a member of.
func groupChat(tx *gorm.DB, chatID, uid uint) (*Chat, error) {
	c, err := memberChat(tx, chatID, uid)
	if err != nil {
		return nil, err
	}
	if c.Kind != KindGroup {
		return nil, badRequest("chat %d is a private chat", chatID)
	}
	return c, nil
}

// ownedChat loads a group chat the user owns.
func ownedChat(tx *gorm.DB, chatID, uid uint) (*Chat, error) {
	c, err := groupChat(tx, chatID, uid)
	if err != nil {
		return nil, err
	}
	if c.OwnerID == nil || *c.OwnerID != uid {
		return nil, forbidden("only the owner of %s may do this", c.Name)
	}
	return c, nil
}

// addMemberTx makes uid a member of chat c with their chat relation.
func addMemberTx(tx *gorm.DB, c *Chat, uid uint, peer *uint) error {
	if err := tx.Create(&ChatMember{ChatID: c.ID, UserID: uid}).Error; err != nil {
		return err
	}
	var last Message
	lastAt := c.CreatedAt
	var lastID uint
	var lastText string
	if err := tx.Where("chat_id = ?", c.ID).Order("id desc").Limit(1).Find(&last).Error; err != nil {
		return err
	}
	if last.ID != 0 {
		lastAt, lastID, lastText = last.CreatedAt, last.ID, preview(last.Text)
	}
	// A new member starts with everything before them read.
	return tx.Create(&UserChatRelation{UserID: uid, ChatID: c.ID, Kind: c.Kind, Name: c.Name, PeerID: peer,
		LastReadMessageID: lastID, LastMessage: lastText, LastMessageAt: lastAt}).Error
}

// removeMemberTx removes uid from a chat: membership, admin role, chat
// relation, and the decisions they were asked to make about its
// invitations.
func removeMemberTx(tx *gorm.DB, chatID, uid uint) error {
	if err := tx.Where("chat_id = ? AND user_id = ?", chatID, uid).Delete(&ChatMember{}).Error; err != nil {
		return err
	}
	if err := tx.Where("chat_id = ? AND user_id = ?", chatID, uid).Delete(&ChatAdmin{}).Error; err != nil {
		return err
	}
	if err := tx.Where("chat_id = ? AND user_id = ?", chatID, uid).Delete(&UserChatRelation{}).Error; err != nil {
		return err
	}
	var invIDs []uint
	if err := tx.Model(&ChatInvitation{}).Where("chat_id = ?", chatID).Pluck("id", &invIDs).Error; err != nil {
		return err
	}
	if len(invIDs) == 0 {
		return nil
	}
	return tx.Where("chat_invitation_id IN ? AND user_id = ?", invIDs, uid).Delete(&ChatInvitationDecider{}).Error
}

// deleteChatTx deletes a chat and everything that hangs on it, through
// GORM so that every subscriber sees it go.
func deleteChatTx(tx *gorm.DB, chatID uint) error {
	var msgIDs, invIDs []uint
	if err := tx.Model(&Message{}).Where("chat_id = ?", chatID).Pluck("id", &msgIDs).Error; err != nil {
		return err
	}
	if err := tx.Model(&ChatInvitation{}).Where("chat_id = ?", chatID).Pluck("id", &invIDs).Error; err != nil {
		return err
	}
	for _, ids := range chunks(msgIDs) {
		if err := tx.Where("message_id IN ?", ids).Delete(&MessageRead{}).Error; err != nil {
			return err
		}
	}
	if err := deleteInvitationsTx(tx, invIDs); err != nil {
		return err
	}
	for _, del := range []any{&Message{}, &ChatEvent{}, &UserChatRelation{}, &ChatMember{}, &ChatAdmin{}} {
		if err := tx.Where("chat_id = ?", chatID).Delete(del).Error; err != nil {
			return err
		}
	}
	return tx.Delete(&Chat{ID: chatID}).Error
}

// chunks splits ids into slices small enough for one IN list.
func chunks(ids []uint) [][]uint {
	var out [][]uint
	for len(ids) > 0 {
		n := min(len(ids), 1000)
		out = append(out, ids[:n])
		ids = ids[n:]
	}
	return out
}

// CreateGroupChat creates a group chat owned by uid with some of their
// friends as members.
func (a *App) CreateGroupChat(ctx context.Context, uid uint, name string, memberIDs []uint) (*ChatRef, error) {
	name, err := cleanChatName(name)
	if err != nil {
		return nil, err
	}
	if len(memberIDs) > MaxNewMembers {
		return nil, badRequest("a new group chat has at most %d members besides you", MaxNewMembers)
	}
	var c Chat
	err = a.write(ctx, func(tx *gorm.DB, out *outbox) error {
		me, err := activeUser(tx, uid)
		if err != nil {
			return err
		}
		ids := slices.Compact(slices.Sorted(slices.Values(memberIDs)))
		if err := checkIDs(ids...); err != nil {
			return err
		}
		ids = slices.DeleteFunc(ids, func(id uint) bool { return id == uid })
		if len(ids) > 0 {
			var n int64
			if err := tx.Model(&Friendship{}).Where("user_id = ? AND friend_id IN ?", uid, ids).Count(&n).Error; err != nil {
				return err
			}
			if int(n) != len(ids) {
				return badRequest("members of a new group chat must be your friends")
			}
		}
		c = Chat{Kind: KindGroup, Name: name, OwnerID: &uid, CreatedAt: time.Now()}
		if err := tx.Create(&c).Error; err != nil {
			return err
		}
		for _, id := range append([]uint{uid}, ids...) {
			if err := addMemberTx(tx, &c, id, nil); err != nil {
				return err
			}
			if id != uid {
				out.user(id, NoticeChatAdded, fmt.Sprintf("%s added you to %s", me.DisplayName, name), c.ID)
			}
		}
		return eventTx(tx, out, c.ID, NoticeChatCreated, fmt.Sprintf("%s created %s", me.DisplayName, name), false)
	})
	if err != nil {
		return nil, err
	}
	return &ChatRef{ID: c.ID, Kind: c.Kind, Name: c.Name}, nil
}

// RenameChat renames a group chat; its owner and admins may.
func (a *App) RenameChat(ctx context.Context, uid, chatID uint, name string) (*ChatRef, error) {
	name, err := cleanChatName(name)
	if err != nil {
		return nil, err
	}
	var c *Chat
	err = a.write(ctx, func(tx *gorm.DB, out *outbox) error {
		if c, err = groupChat(tx, chatID, uid); err != nil {
			return err
		}
		if ok, err := isAdmin(tx, c, uid); err != nil || !ok {
			return orForbidden(err, "only the owner and admins may rename %s", c.Name)
		}
		me, err := activeUser(tx, uid)
		if err != nil {
			return err
		}
		old := c.Name
		c.Name = name
		if err := tx.Model(c).Update("name", name).Error; err != nil {
			return err
		}
		if err := tx.Model(&UserChatRelation{}).Where("chat_id = ?", c.ID).Update("name", name).Error; err != nil {
			return err
		}
		if err := tx.Model(&ChatInvitation{}).Where("chat_id = ?", c.ID).Update("chat_name", name).Error; err != nil {
			return err
		}
		return eventTx(tx, out, c.ID, NoticeChatRenamed, fmt.Sprintf("%s renamed %s to %s", me.DisplayName, old, name), true)
	})
	if err != nil {
		return nil, err
	}
	return &ChatRef{ID: c.ID, Kind: c.Kind, Name: c.Name}, nil
}

// orForbidden returns err if it is set, else a forbidden error.
func orForbidden(err error, format string, args ...any) error {
	if err != nil {
		return err
	}
	return forbidden(format, args...)
}

// orNotFound returns err if it is set, else a not_found error.
func orNotFound(err error, format string, args ...any) error {
	if err != nil {
		return err
	}
	return notFound(format, args...)
}

// DeleteChat deletes a group chat; only its owner may. Private chats go
// with their friendship (DeleteFriend).
func (a *App) DeleteChat(ctx context.Context, uid, chatID uint) error {
	return a.write(ctx, func(tx *gorm.DB, out *outbox) error {
		c, err := memberChat(tx, chatID, uid)
		if err != nil {
			return err
		}
		if c.Kind == KindPrivate {
			return badRequest("a private chat goes with its friendship: delete the friend instead")
		}
		if c.OwnerID == nil || *c.OwnerID != uid {
			return forbidden("only the owner may delete %s", c.Name)
		}
		members, err := memberIDs(tx, c.ID)
		if err != nil {
			return err
		}
		if err := deleteChatTx(tx, c.ID); err != nil {
			return err
		}
		for _, m := range members {
			if m != uid {
				out.user(m, NoticeChatDeleted, fmt.Sprintf("%s was deleted by its owner", c.Name), c.ID)
			}
		}
		out.chat(c.ID, NoticeChatDeleted, fmt.Sprintf("%s was deleted by its owner", c.Name))
		return nil
	})
}

// SetOwner hands a group chat over to another member; the old owner stays
// as an admin.
func (a *App) SetOwner(ctx context.Context, uid, chatID, newOwner uint) error {
	return a.write(ctx, func(tx *gorm.DB, out *outbox) error {
		c, err := ownedChat(tx, chatID, uid)
		if err != nil {
			return err
		}
		if newOwner == uid {
			return badRequest("you already own %s", c.Name)
		}
		target, err := chatMember(tx, c, newOwner)
		if err != nil {
			return err
		}
		if err := tx.Where("chat_id = ? AND user_id = ?", c.ID, newOwner).Delete(&ChatAdmin{}).Error; err != nil {
			return err
		}
		if err := tx.Create(&ChatAdmin{ChatID: c.ID, UserID: uid}).Error; err != nil {
			return err
		}
		if err := tx.Model(c).Update("owner_id", newOwner).Error; err != nil {
			return err
		}
		c.OwnerID = &newOwner
		if err := syncDecidersTx(tx, c); err != nil {
			return err
		}
		out.user(newOwner, NoticeChatOwner, fmt.Sprintf("You now own %s", c.Name), c.ID)
		return eventTx(tx, out, c.ID, NoticeChatOwner, fmt.Sprintf("%s now owns %s", target.DisplayName, c.Name), true)
	})
}

// chatMember loads a member of chat c, or refuses with bad_request.
func chatMember(tx *gorm.DB, c *Chat, uid uint) (*User, error) {
	ok, err := isMember(tx, c.ID, uid)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, badRequest("user %d is not a member of %s", uid, c.Name)
	}
	var u User
	return &u, take(tx, &u, uid, "user")
}

// AddAdmin makes a member an admin; only the owner may.
func (a *App) AddAdmin(ctx context.Context, uid, chatID, target uint) error {
	return a.write(ctx, func(tx *gorm.DB, out *outbox) error {
		c, err := ownedChat(tx, chatID, uid)
		if err != nil {
			return err
		}
		if target == uid {
			return badRequest("the owner is not an admin")
		}
		u, err := chatMember(tx, c, target)
		if err != nil {
			return err
		}
		if ok, err := isAdmin(tx, c, target); err != nil || ok {
			return orBadRequest(err, "%s is already an admin", u.DisplayName)
		}
		if err := tx.Create(&ChatAdmin{ChatID: c.ID, UserID: target}).Error; err != nil {
			return err
		}
		if err := syncDecidersTx(tx, c); err != nil {
			return err
		}
		out.user(target, NoticeChatAdmin, fmt.Sprintf("You are now an admin of %s", c.Name), c.ID)
		return eventTx(tx, out, c.ID, NoticeChatAdmin, fmt.Sprintf("%s is now an admin", u.DisplayName), false)
	})
}

// orBadRequest returns err if it is set, else a bad_request error.
func orBadRequest(err error, format string, args ...any) error {
	if err != nil {
		return err
	}
	return badRequest(format, args...)
}

// RemoveAdmin takes the admin role away from a member; only the owner may.
func (a *App) RemoveAdmin(ctx context.Context, uid, chatID, target uint) error {
	return a.write(ctx, func(tx *gorm.DB, out *outbox) error {
		c, err := ownedChat(tx, chatID, uid)
		if err != nil {
			return err
		}
		u, err := chatMember(tx, c, target)
		if err != nil {
			return err
		}
		res := tx.Where("chat_id = ? AND user_id = ?", c.ID, target).Delete(&ChatAdmin{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return badRequest("user %d is not an admin of %s", target, c.Name)
		}
		if err := syncDecidersTx(tx, c); err != nil {
			return err
		}
		out.user(target, NoticeChatUnadmin, fmt.Sprintf("You are no longer an admin of %s", c.Name), c.ID)
		return eventTx(tx, out, c.ID, NoticeChatUnadmin, fmt.Sprintf("%s is no longer an admin", u.DisplayName), false)
	})
}

// LeaveChat removes the caller from a group chat. The owner must hand the
// chat over (SetOwner) or delete it first.
func (a *App) LeaveChat(ctx context.Context, uid, chatID uint) error {
	return a.write(ctx, func(tx *gorm.DB, out *outbox) error {
		c, err := memberChat(tx, chatID, uid)
		if err != nil {
			return err
		}
		if c.Kind == KindPrivate {
			return badRequest("a private chat cannot be left: delete the friend instead")
		}
		if c.OwnerID != nil && *c.OwnerID == uid {
			return badRequest("the owner cannot leave: hand %s over or delete it", c.Name)
		}
		me, err := activeUser(tx, uid)
		if err != nil {
			return err
		}
		if err := removeMemberTx(tx, c.ID, uid); err != nil {
			return err
		}
		out.leftChat(c.ID, uid)
		return eventTx(tx, out, c.ID, NoticeChatLeft, fmt.Sprintf("%s left the chat", me.DisplayName), true)
	})
}
