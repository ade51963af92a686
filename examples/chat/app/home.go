package app

import (
	"context"
	"time"

	"github.com/rxgorm/rxgorm/rx"
)

// HomeParams select a user's home: the subscriber's own.
type HomeParams struct {
	UserID uint `json:"userId"`
}

// HomeRuntime is the runtime state of a Home subscription.
type HomeRuntime struct {
	// Notices are the latest notifications for the user, oldest first.
	Notices []Notice `json:"notices"`
	// Online are the ids of the friends online now (with a Home
	// subscription open on any node), ascending; null when none is.
	Online []uint `json:"online"`
}

// HomeChannel is a user's own state: profile, friend groups with friends,
// friend invitations both ways, the chat list with unread counts, and the
// chat invitations awaiting the user's decision or made by them. Its
// actions are everything a user does outside one chat.
type HomeChannel struct {
	rx.Channel[Home, HomeParams]
	rx.Runtime[HomeRuntime]
	// App is injected into the registered value and copied into every
	// subscription.
	App *App

	friends *friendsOnline // per subscription (presence.go)
}

// Authorize lets users into their own home only.
func (c *HomeChannel) Authorize(ctx context.Context, u rx.User, p HomeParams) error {
	uid, err := UserID(u)
	if err != nil {
		return err
	}
	if uid != p.UserID {
		return forbidden("this is not your home")
	}
	return nil
}

// OnConnect joins the user's notification group, which also makes the
// user online, and starts following the friends' presence.
func (c *HomeChannel) OnConnect(ctx context.Context) error {
	c.friends = &friendsOnline{watched: map[uint]bool{}, online: map[uint]bool{}}
	c.Join(userGroup(c.Params().UserID))
	c.watchFriends(ctx)
	return nil
}

// Consumers turn notices into runtime state.
func (c *HomeChannel) Consumers() rx.Consumers {
	return rx.Consumers{"notify": rx.On(c.onNotify)}
}

func (c *HomeChannel) onNotify(ctx context.Context, n Notice) {
	c.Runtime.Set(func(r *HomeRuntime) { r.Notices = pushNotice(r.Notices, n) })
	if isFriendNotice(n.Kind) {
		c.watchFriends(ctx)
	}
}

// Actions lists the actions of HomeChannel.
func (c *HomeChannel) Actions() []string {
	return []string{
		"UpdateProfile", "ChangePassword", "DeleteAccount",
		"InviteFriend", "AcceptFriendInvitation", "RejectFriendInvitation", "CancelFriendInvitation", "DeleteFriend",
		"CreateFriendGroup", "RenameFriendGroup", "DeleteFriendGroup", "MoveFriend",
		"CreateGroupChat",
		"ApproveChatInvitation", "AcceptChatInvitation", "RejectChatInvitation",
		"DismissNotices", "SetAvatar", "Ping",
	}
}

// me is the subscriber's user id (Authorize made it the home's).
func (c *HomeChannel) me() uint { return c.Params().UserID }

// UpdateProfile changes the display name.
func (c *HomeChannel) UpdateProfile(ctx context.Context, p ProfileUpdate) (*User, error) {
	return c.App.UpdateProfile(ctx, c.me(), p)
}

// ChangePassword replaces the password. The user's other sessions are
// logged out: their tokens are revoked, this session's is kept.
func (c *HomeChannel) ChangePassword(ctx context.Context, old, password string) error {
	var keep string
	if u, ok := c.User().Data.(*User); ok {
		keep = u.token
	}
	return c.App.ChangePassword(ctx, c.me(), old, password, keep)
}

// DeleteAccount deletes the account (see App.DeleteAccount). The caller's
// sockets are closed with 4001 right after.
func (c *HomeChannel) DeleteAccount(ctx context.Context, password string) error {
	return c.App.DeleteAccount(ctx, c.me(), password)
}

// InviteFriend sends a friend invitation by username.
func (c *HomeChannel) InviteFriend(ctx context.Context, username, message string) (*FriendInvitation, error) {
	return c.App.InviteFriend(ctx, c.me(), username, message)
}

// AcceptFriendInvitation accepts a received friend invitation.
func (c *HomeChannel) AcceptFriendInvitation(ctx context.Context, id uint) (*Friendship, error) {
	if err := checkIDs(id); err != nil {
		return nil, err
	}
	f, err := c.App.AcceptFriendInvitation(ctx, c.me(), id)
	if err == nil {
		c.watchFriends(ctx)
	}
	return f, err
}

// RejectFriendInvitation rejects a received friend invitation.
func (c *HomeChannel) RejectFriendInvitation(ctx context.Context, id uint) error {
	if err := checkIDs(id); err != nil {
		return err
	}
	return c.App.RejectFriendInvitation(ctx, c.me(), id)
}

// CancelFriendInvitation withdraws a sent friend invitation.
func (c *HomeChannel) CancelFriendInvitation(ctx context.Context, id uint) error {
	if err := checkIDs(id); err != nil {
		return err
	}
	return c.App.CancelFriendInvitation(ctx, c.me(), id)
}

// DeleteFriend ends a friendship and deletes the private chat.
func (c *HomeChannel) DeleteFriend(ctx context.Context, friendID uint) error {
	if err := checkIDs(friendID); err != nil {
		return err
	}
	err := c.App.DeleteFriend(ctx, c.me(), friendID)
	if err == nil {
		c.watchFriends(ctx)
	}
	return err
}

// CreateFriendGroup creates a friend group.
func (c *HomeChannel) CreateFriendGroup(ctx context.Context, name string) (*FriendGroup, error) {
	return c.App.CreateFriendGroup(ctx, c.me(), name)
}

// RenameFriendGroup renames a friend group.
func (c *HomeChannel) RenameFriendGroup(ctx context.Context, id uint, name string) (*FriendGroup, error) {
	if err := checkIDs(id); err != nil {
		return nil, err
	}
	return c.App.RenameFriendGroup(ctx, c.me(), id, name)
}

// DeleteFriendGroup deletes a friend group; its friends move to the
// default group.
func (c *HomeChannel) DeleteFriendGroup(ctx context.Context, id uint) error {
	if err := checkIDs(id); err != nil {
		return err
	}
	return c.App.DeleteFriendGroup(ctx, c.me(), id)
}

// MoveFriend moves a friend to another group.
func (c *HomeChannel) MoveFriend(ctx context.Context, friendID, groupID uint) (*Friendship, error) {
	if err := checkIDs(friendID, groupID); err != nil {
		return nil, err
	}
	return c.App.MoveFriend(ctx, c.me(), friendID, groupID)
}

// CreateGroupChat creates a group chat with friends as members.
func (c *HomeChannel) CreateGroupChat(ctx context.Context, name string, memberIDs []uint) (*ChatRef, error) {
	return c.App.CreateGroupChat(ctx, c.me(), name, memberIDs)
}

// ApproveChatInvitation approves a chat invitation (owners and admins).
func (c *HomeChannel) ApproveChatInvitation(ctx context.Context, id uint) (*ChatInvitation, error) {
	if err := checkIDs(id); err != nil {
		return nil, err
	}
	return c.App.ApproveChatInvitation(ctx, c.me(), id)
}

// AcceptChatInvitation joins the chat of an invitation.
func (c *HomeChannel) AcceptChatInvitation(ctx context.Context, id uint) (*ChatRef, error) {
	if err := checkIDs(id); err != nil {
		return nil, err
	}
	return c.App.AcceptChatInvitation(ctx, c.me(), id)
}

// RejectChatInvitation rejects a chat invitation (the invitee, or an admin
// while it awaits approval).
func (c *HomeChannel) RejectChatInvitation(ctx context.Context, id uint) error {
	if err := checkIDs(id); err != nil {
		return err
	}
	return c.App.RejectChatInvitation(ctx, c.me(), id)
}

// SetAvatar gives the user the avatar drawn from seed (16 hex digits, as
// the web UI's picker proposes; "" draws a random one).
func (c *HomeChannel) SetAvatar(ctx context.Context, seed string) (*User, error) {
	uid, err := UserID(c.User())
	if err != nil {
		return nil, err
	}
	return c.App.SetAvatar(ctx, uid, seed)
}

// Ping answers at once, with the server's time: the web UI's application
// heartbeat. A socket that stalls silently (no close, nothing arrives)
// leaves a ping unanswered, which the UI shows within 10 s and answers by
// reconnecting.
func (c *HomeChannel) Ping(ctx context.Context) (time.Time, error) {
	return time.Now().UTC(), nil
}

// DismissNotices clears this subscription's notices.
func (c *HomeChannel) DismissNotices(ctx context.Context) error {
	c.Runtime.Set(func(r *HomeRuntime) { r.Notices = nil })
	return nil
}
