package app

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/rxgorm/rxgorm/rx"
)

// ChatParams select a chat.
type ChatParams struct {
	ChatID uint `json:"chatId"`
}

// ChatRuntime is the runtime state of a Chat subscription.
type ChatRuntime struct {
	// Notices are the latest events of the chat (joins, leaves, renames…),
	// oldest first.
	Notices []Notice `json:"notices"`
	// Closed says the subscriber is no longer in the chat (they left, or
	// the chat was deleted): the client should unsubscribe.
	Closed bool `json:"closed"`
	// Typing are the ids of the other members typing now, ascending; null
	// when nobody is (see the Typing action).
	Typing []uint `json:"typing"`
}

// ChatChannel is one chat: its members and admins, the subscriber's own
// relation (unread count, last read message), pending invitations and the
// latest 50 messages with read receipts. Its actions are what a member
// does inside a chat.
type ChatChannel struct {
	rx.Channel[Chat, ChatParams]
	rx.Runtime[ChatRuntime]
	// App is injected into the registered value and copied into every
	// subscription.
	App *App

	typing *typing // per subscription (presence.go)
}

// Authorize lets members in. Everyone else is told the chat does not
// exist, whether it does or not.
func (c *ChatChannel) Authorize(ctx context.Context, u rx.User, p ChatParams) error {
	uid, err := UserID(u)
	if err != nil {
		return err
	}
	if err := checkIDs(p.ChatID); err != nil {
		return err
	}
	ok, err := isMember(c.App.DB.WithContext(ctx), p.ChatID, uid)
	if err != nil {
		return err
	}
	if !ok {
		return notFound("no chat %d", p.ChatID)
	}
	return nil
}

// AuthorizeDependsOn makes the membership a live condition (rx.Reauthorizer):
// Authorize reads chat_members only, the join table of Chat.Members, which
// the state holds. A commit that removes a member (Leave, removal by the
// group's deletion, account deletion) re-checks that chat's subscribers,
// and the ones no longer members get the error forbidden for their
// subscription before any later delta: no message after the leave reaches
// them, and they drop out of the chat's presence. Roles (owner, admins)
// are checked by each action, not by Authorize, so they are no
// dependency; a deleted user's sockets are closed by the token revocation.
func (c *ChatChannel) AuthorizeDependsOn() []rx.Dependency {
	return []rx.Dependency{{Model: Chat{}, Relation: "Members"}}
}

var (
	_ rx.Reauthorizer                = (*ChatChannel)(nil)
	_ rx.UsersAuthorizer[ChatParams] = (*ChatChannel)(nil)
)

// AuthorizeUsers answers Authorize for many users of one chat with one
// query (rx.UsersAuthorizer), for the re-checks.
func (c *ChatChannel) AuthorizeUsers(ctx context.Context, p ChatParams, users []rx.User) []error {
	errs := make([]error, len(users))
	if err := checkIDs(p.ChatID); err != nil {
		for i := range errs {
			errs[i] = err
		}
		return errs
	}
	ids := make([]uint, 0, len(users))
	for i, u := range users {
		uid, err := UserID(u)
		if err != nil {
			errs[i] = err
			continue
		}
		ids = append(ids, uid)
	}
	var members []uint
	if len(ids) > 0 {
		err := c.App.DB.WithContext(ctx).Model(&ChatMember{}).
			Where("chat_id = ? AND user_id IN ?", p.ChatID, ids).Pluck("user_id", &members).Error
		if err != nil {
			err = fmt.Errorf("app: chat members: %w", err)
			for i := range errs {
				if errs[i] == nil {
					errs[i] = err
				}
			}
			return errs
		}
	}
	for i, u := range users {
		if errs[i] != nil {
			continue
		}
		uid, _ := UserID(u)
		if !slices.Contains(members, uid) {
			errs[i] = notFound("no chat %d", p.ChatID)
		}
	}
	return errs
}

// OnConnect joins the chat's notification group.
func (c *ChatChannel) OnConnect(ctx context.Context) error {
	c.typing = &typing{until: map[uint]time.Time{}}
	c.Join("chat:" + idString(c.Params().ChatID))
	return nil
}

// Consumers turn the chat's notices and typing events into runtime state.
func (c *ChatChannel) Consumers() rx.Consumers {
	return rx.Consumers{"notify": rx.On(c.onNotify), "typing": rx.On(c.onTyping)}
}

func (c *ChatChannel) onNotify(ctx context.Context, n Notice) {
	closed := n.Kind == NoticeChatDeleted
	if n.Kind == NoticeChatLeft {
		// Whether the subscriber is the one who left: ask the database.
		uid, _ := UserID(c.User())
		ok, err := isMember(c.App.DB.WithContext(ctx), c.Params().ChatID, uid)
		closed = err == nil && !ok
	}
	c.Runtime.Set(func(r *ChatRuntime) {
		r.Notices = pushNotice(r.Notices, n)
		r.Closed = r.Closed || closed
	})
	if closed {
		// No longer a member: stop hearing the chat's notices and typing.
		c.Channel.Leave("chat:" + idString(c.Params().ChatID))
	}
}

// Actions lists the actions of ChatChannel.
func (c *ChatChannel) Actions() []string {
	return []string{
		"SendMessage", "PostMessage", "MarkRead", "History", "Typing",
		"Rename", "SetOwner", "AddAdmin", "RemoveAdmin", "Leave", "Delete",
		"Invite",
	}
}

func (c *ChatChannel) me() (uint, error) { return UserID(c.User()) }

// SendMessage posts a message; the sender stops typing.
func (c *ChatChannel) SendMessage(ctx context.Context, text string) (*Message, error) {
	uid, err := c.me()
	if err != nil {
		return nil, err
	}
	m, err := c.App.SendMessage(ctx, uid, c.Params().ChatID, text)
	if err == nil {
		_ = c.App.publishTyping(ctx, c.Params().ChatID, uid, false)
	}
	return m, err
}

// PostMessage is SendMessage with the client's idempotency key: sent
// again with the same clientID (after a lost connection), it returns the
// message stored the first time instead of storing another.
func (c *ChatChannel) PostMessage(ctx context.Context, text, clientID string) (*Message, error) {
	uid, err := c.me()
	if err != nil {
		return nil, err
	}
	m, err := c.App.PostMessage(ctx, uid, c.Params().ChatID, text, clientID)
	if err == nil {
		_ = c.App.publishTyping(ctx, c.Params().ChatID, uid, false)
	}
	return m, err
}

// MarkRead marks the messages up to upTo (0: all) as read.
func (c *ChatChannel) MarkRead(ctx context.Context, upTo uint) (*UserChatRelation, error) {
	if err := checkIDs(upTo); err != nil {
		return nil, err
	}
	uid, err := c.me()
	if err != nil {
		return nil, err
	}
	return c.App.MarkRead(ctx, uid, c.Params().ChatID, upTo)
}

// History returns up to limit messages older than message before (0: the
// newest), for paging past the 50 the state holds.
func (c *ChatChannel) History(ctx context.Context, before uint, limit int) (*MessagePage, error) {
	if err := checkIDs(before); err != nil {
		return nil, err
	}
	uid, err := c.me()
	if err != nil {
		return nil, err
	}
	return c.App.History(ctx, uid, c.Params().ChatID, before, limit)
}

// Rename renames the group chat (owner and admins).
func (c *ChatChannel) Rename(ctx context.Context, name string) (*ChatRef, error) {
	uid, err := c.me()
	if err != nil {
		return nil, err
	}
	return c.App.RenameChat(ctx, uid, c.Params().ChatID, name)
}

// SetOwner hands the group chat over to another member (owner only).
func (c *ChatChannel) SetOwner(ctx context.Context, userID uint) error {
	if err := checkIDs(userID); err != nil {
		return err
	}
	uid, err := c.me()
	if err != nil {
		return err
	}
	return c.App.SetOwner(ctx, uid, c.Params().ChatID, userID)
}

// AddAdmin makes a member an admin (owner only).
func (c *ChatChannel) AddAdmin(ctx context.Context, userID uint) error {
	if err := checkIDs(userID); err != nil {
		return err
	}
	uid, err := c.me()
	if err != nil {
		return err
	}
	return c.App.AddAdmin(ctx, uid, c.Params().ChatID, userID)
}

// RemoveAdmin takes the admin role from a member (owner only).
func (c *ChatChannel) RemoveAdmin(ctx context.Context, userID uint) error {
	if err := checkIDs(userID); err != nil {
		return err
	}
	uid, err := c.me()
	if err != nil {
		return err
	}
	return c.App.RemoveAdmin(ctx, uid, c.Params().ChatID, userID)
}

// Leave leaves the group chat (not the owner).
func (c *ChatChannel) Leave(ctx context.Context) error {
	uid, err := c.me()
	if err != nil {
		return err
	}
	if err := c.App.LeaveChat(ctx, uid, c.Params().ChatID); err != nil {
		return err
	}
	c.Runtime.Set(func(r *ChatRuntime) { r.Closed = true })
	return nil
}

// Delete deletes the group chat (owner only).
func (c *ChatChannel) Delete(ctx context.Context) error {
	uid, err := c.me()
	if err != nil {
		return err
	}
	return c.App.DeleteChat(ctx, uid, c.Params().ChatID)
}

// Invite invites a friend into the group chat; see invitations.go for the
// flow.
func (c *ChatChannel) Invite(ctx context.Context, userID uint) (*ChatInvitation, error) {
	if err := checkIDs(userID); err != nil {
		return nil, err
	}
	uid, err := c.me()
	if err != nil {
		return nil, err
	}
	return c.App.InviteToChat(ctx, uid, c.Params().ChatID, userID)
}
