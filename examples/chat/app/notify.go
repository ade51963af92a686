package app

import (
	"context"
	"time"
)

// Notifications. A change reaches the affected users as state (their Home
// and Chat channels follow the database); a notice additionally tells them
// what happened, as a toast. Notices are published to groups after the
// commit: "user:<id>" reaches every Home subscription of a user,
// "chat:<id>" every Chat subscription of a chat. The channels keep the
// last MaxNotices in their runtime state.

// Notice kinds.
const (
	NoticeFriendInvited   = "friend.invited"   // someone sent you a friend invitation
	NoticeFriendAccepted  = "friend.accepted"  // your friend invitation was accepted
	NoticeFriendRejected  = "friend.rejected"  // your friend invitation was rejected
	NoticeFriendRemoved   = "friend.removed"   // a friend deleted you
	NoticeFriendDeleted   = "friend.deleted"   // a friend deleted their account
	NoticeChatAdded       = "chat.added"       // you were added to a new group chat
	NoticeChatDeleted     = "chat.deleted"     // a chat you were in was deleted
	NoticeChatRenamed     = "chat.renamed"     // a chat was renamed
	NoticeChatLeft        = "chat.left"        // a member left the chat
	NoticeChatJoined      = "chat.joined"      // a member joined the chat
	NoticeChatOwner       = "chat.owner"       // the chat has a new owner
	NoticeChatAdmin       = "chat.admin"       // you were made an admin
	NoticeChatUnadmin     = "chat.unadmin"     // you are no longer an admin
	NoticeChatInvited     = "chat.invited"     // you were invited into a chat
	NoticeChatApproval    = "chat.approval"    // an invitation awaits your approval
	NoticeChatApproved    = "chat.approved"    // an invitation you made was approved
	NoticeChatRejected    = "chat.rejected"    // an invitation you made was rejected
	NoticeAccountDeleting = "account.deleting" // your account is being deleted (its sessions end)
)

// MaxNotices is how many notices a channel keeps in its runtime state.
const MaxNotices = 20

// Notice is one notification, as runtime state of a channel.
type Notice struct {
	Kind   string    `json:"kind"`
	Text   string    `json:"text"`
	ChatID uint      `json:"chatId,omitempty"`
	At     time.Time `json:"at"`
}

// outbox collects the notices of a transaction, sent after its commit.
type outbox struct {
	users []addressed
	chats []addressed
	left  []membership // members who left a chat
}

// membership names a member of a chat.
type membership struct{ chat, user uint }

type addressed struct {
	id uint
	n  Notice
}

// user queues a notice for every Home subscription of user id.
func (o *outbox) user(id uint, kind, text string, chatID uint) {
	o.users = append(o.users, addressed{id, Notice{Kind: kind, Text: text, ChatID: chatID}})
}

// leftChat queues the end of uid's typing in chat id: a member who left
// stops typing at once for the others, whatever their last Typing said.
func (o *outbox) leftChat(id, uid uint) {
	o.left = append(o.left, membership{id, uid})
}

// chat queues a notice for every Chat subscription of chat id.
func (o *outbox) chat(id uint, kind, text string) {
	o.chats = append(o.chats, addressed{id, Notice{Kind: kind, Text: text, ChatID: id}})
}

func (a *App) deliver(ctx context.Context, o *outbox) {
	now := time.Now().UTC()
	for _, x := range o.users {
		x.n.At = now
		if err := a.Hub.Publish(ctx, "user:"+idString(x.id), "notify", x.n); err != nil {
			a.log.Error("app: publish notice", "err", err)
		}
	}
	for _, x := range o.chats {
		x.n.At = now
		if err := a.Hub.Publish(ctx, "chat:"+idString(x.id), "notify", x.n); err != nil {
			a.log.Error("app: publish notice", "err", err)
		}
	}
	for _, x := range o.left {
		if err := a.publishTyping(ctx, x.chat, x.user, false); err != nil {
			a.log.Error("app: publish typing", "err", err)
		}
	}
}

// pushNotice appends n to a notice list, keeping the last MaxNotices.
func pushNotice(list []Notice, n Notice) []Notice {
	list = append(list, n)
	if len(list) > MaxNotices {
		list = append([]Notice(nil), list[len(list)-MaxNotices:]...)
	}
	return list
}
