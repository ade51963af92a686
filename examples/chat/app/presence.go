package app

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rxgorm/rxgorm/rx"
)

// Presence: which friends are online, who is in a chat, who is typing.
//
// A user is online while one of their Home subscriptions is open: Home
// tracks presence in its groups, so each is present in "user:<id>", on
// every node. Each Home subscription watches its friends' groups and keeps
// the ids of those online in its runtime state (HomeRuntime.Online); it
// re-reads the friend list when a friend notice arrives or a friendship
// changes through its own actions.
//
// ChatChannel tracks presence in its streams: its clients receive who has
// the chat open (the subscription's presence). Typing is runtime state:
// the Typing action publishes to the chat's group, and every subscription
// keeps the other members typing (ChatRuntime.Typing) until they stop,
// send a message, close the chat, or go quiet for TypingTimeout.

// DefaultTypingTimeout is how long a member counts as typing after their
// last Typing(true).
const DefaultTypingTimeout = 6 * time.Second

func userGroup(id uint) string { return "user:" + idString(id) }

// friendsOnline is a Home subscription's view of its friends' presence.
type friendsOnline struct {
	mu      sync.Mutex
	watched map[uint]bool // guarded by mu
	online  map[uint]bool // guarded by mu
}

// TrackPresence makes each Home subscription present in the groups it
// joins ("user:<id>"): that is what "online" means.
func (c *HomeChannel) TrackPresence() rx.PresenceOptions { return rx.PresenceOptions{Groups: true} }

// watchFriends watches the presence of the user's current friends and
// forgets former ones.
func (c *HomeChannel) watchFriends(ctx context.Context) {
	var ids []uint
	if err := c.App.DB.WithContext(ctx).Model(&Friendship{}).Where("user_id = ?", c.me()).Pluck("friend_id", &ids).Error; err != nil {
		c.App.log.Error("app: read friends for presence", "err", err)
		return
	}
	f := c.friends
	f.mu.Lock()
	var watch, unwatch []uint
	now := map[uint]bool{}
	for _, id := range ids {
		now[id] = true
		if !f.watched[id] {
			f.watched[id] = true
			watch = append(watch, id)
		}
	}
	for id := range f.watched {
		if !now[id] {
			delete(f.watched, id)
			delete(f.online, id)
			unwatch = append(unwatch, id)
		}
	}
	f.mu.Unlock()
	for _, id := range unwatch {
		c.Unwatch(rx.GroupPlace(userGroup(id)))
	}
	// A watch first reports everyone already there (OnPresence).
	for _, id := range watch {
		c.Watch(rx.GroupPlace(userGroup(id)))
	}
	if len(unwatch) > 0 {
		c.pushOnline()
	}
}

// OnPresence follows friends coming online and going offline.
func (c *HomeChannel) OnPresence(ctx context.Context, ev rx.PresenceEvent) {
	name, ok := strings.CutPrefix(string(ev.Place), string(rx.GroupPlace("user:")))
	if !ok {
		return
	}
	n, err := strconv.ParseUint(name, 10, 64)
	if err != nil || ev.User != name {
		return
	}
	f := c.friends
	id := uint(n)
	f.mu.Lock()
	if !f.watched[id] {
		f.mu.Unlock()
		return
	}
	if ev.Joined {
		f.online[id] = true
	} else {
		delete(f.online, id)
	}
	f.mu.Unlock()
	c.pushOnline()
}

func (c *HomeChannel) pushOnline() {
	f := c.friends
	f.mu.Lock()
	var ids []uint // null when no friend is online
	for id := range f.online {
		ids = append(ids, id)
	}
	f.mu.Unlock()
	slices.Sort(ids)
	c.Runtime.Set(func(r *HomeRuntime) { r.Online = ids })
}

// isFriendNotice reports whether a notice may have changed the friend list.
func isFriendNotice(kind string) bool {
	switch kind {
	case NoticeFriendAccepted, NoticeFriendRemoved, NoticeFriendDeleted:
		return true
	}
	return false
}

// typing is a Chat subscription's view of who is typing.
type typing struct {
	mu    sync.Mutex
	until map[uint]time.Time // guarded by mu
	timer *time.Timer        // guarded by mu: fires at the earliest expiry
}

// typingEvent is published to a chat's group by the Typing action.
type typingEvent struct {
	UserID uint `json:"userId"`
	Typing bool `json:"typing"`
}

// TrackPresence: a chat's clients see who has it open.
func (c *ChatChannel) TrackPresence() rx.PresenceOptions { return rx.PresenceOptions{} }

// Typing tells the other members of the chat that the caller is typing
// (true, repeated every few seconds while it lasts) or stopped (false).
//
// Calls are limited per user (Options.TypingRate): over the limit the
// action fails with overloaded. Only members may call it: a subscription
// left open after its user left the chat is told the chat does not exist.
func (c *ChatChannel) Typing(ctx context.Context, typing bool) error {
	uid, err := c.me()
	if err != nil {
		return err
	}
	if ok, wait := c.App.typingLim.Allow(idString(uid)); !ok {
		return limited("typing events", wait)
	}
	chatID := c.Params().ChatID
	if ok, err := isMember(c.App.DB.WithContext(ctx), chatID, uid); err != nil || !ok {
		return orNotFound(err, "no chat %d", chatID)
	}
	return c.App.publishTyping(ctx, chatID, uid, typing)
}

// publishTyping tells a chat's subscriptions that uid types or stopped.
func (a *App) publishTyping(ctx context.Context, chatID, uid uint, typing bool) error {
	return a.Hub.Publish(ctx, "chat:"+idString(chatID), "typing", typingEvent{UserID: uid, Typing: typing})
}

func (c *ChatChannel) typingTimeout() time.Duration {
	if c.App.TypingTimeout > 0 {
		return c.App.TypingTimeout
	}
	return DefaultTypingTimeout
}

// onTyping records another member typing, or stopping.
func (c *ChatChannel) onTyping(ctx context.Context, e typingEvent) {
	if me, _ := c.me(); e.UserID == me {
		return
	}
	t := c.typing
	t.mu.Lock()
	if e.Typing {
		t.until[e.UserID] = time.Now().Add(c.typingTimeout())
	} else {
		delete(t.until, e.UserID)
	}
	t.mu.Unlock()
	c.pushTyping()
}

// OnPresence: a member who closed the chat stops typing.
func (c *ChatChannel) OnPresence(ctx context.Context, ev rx.PresenceEvent) {
	if ev.Joined || ev.Place != c.Place() {
		return
	}
	n, err := strconv.ParseUint(ev.User, 10, 64)
	if err != nil {
		return
	}
	c.onTyping(ctx, typingEvent{UserID: uint(n)})
}

// pushTyping drops expired entries, publishes the list and arms the timer
// for the next expiry.
func (c *ChatChannel) pushTyping() {
	t := c.typing
	t.mu.Lock()
	now := time.Now()
	var ids []uint // null when nobody types
	var next time.Time
	for id, until := range t.until {
		if !until.After(now) {
			delete(t.until, id)
			continue
		}
		ids = append(ids, id)
		if next.IsZero() || until.Before(next) {
			next = until
		}
	}
	if t.timer != nil {
		t.timer.Stop()
		t.timer = nil
	}
	if !next.IsZero() {
		t.timer = time.AfterFunc(next.Sub(now), c.pushTyping)
	}
	t.mu.Unlock()
	slices.Sort(ids)
	c.Runtime.Set(func(r *ChatRuntime) {
		if !slices.Equal(r.Typing, ids) {
			r.Typing = ids
		}
	})
}

// OnDisconnect stops the typing timer.
func (c *ChatChannel) OnDisconnect(ctx context.Context) {
	t := c.typing
	if t == nil {
		return
	}
	t.mu.Lock()
	if t.timer != nil {
		t.timer.Stop()
	}
	t.mu.Unlock()
}
