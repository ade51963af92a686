package app

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/rx"
)

// online is a Home subscription's list of friends online.
func (w *watch) online() []uint {
	var ids []uint
	w.runtime("online", &ids)
	return ids
}

// typing is a Chat subscription's list of members typing.
func (w *watch) typing() []uint {
	var ids []uint
	w.runtime("typing", &ids)
	return ids
}

// present lists the users present in a subscription's stream.
func (w *watch) present() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, p := range w.who {
		out = append(out, fmt.Sprintf("%s×%d", p.User, p.Connections))
	}
	return out
}

func wantOnline(w *watch, ids ...uint) func() error {
	return func() error { return wantIDs("online", w.online(), uids(ids...)) }
}

// Friends online: a friend with a Home open is listed, one without is not,
// nor is a user who is not a friend; friendships made and ended update
// the list.
func TestOnlineFriends(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	ann, bob, cyd := e.user("ann"), e.user("bob"), e.user("cyd")
	e.befriend(ann, bob)
	eventually(t, "ann sees bob online", wantOnline(ann.home, bob.ID))
	eventually(t, "bob sees ann online", wantOnline(bob.home, ann.ID))
	if ids := ann.home.online(); slices.Contains(ids, cyd.ID) {
		t.Fatalf("cyd is no friend of ann's but listed: %v", ids)
	}

	// Offline when the last Home subscription ends, online with the first.
	bob.home.sub.Close()
	eventually(t, "bob went offline", wantOnline(ann.home))
	second := e.watch("HomeChannel", HomeParams{UserID: bob.ID}, bob.ID)
	third := e.watch("HomeChannel", HomeParams{UserID: bob.ID}, bob.ID)
	eventually(t, "bob is back", wantOnline(ann.home, bob.ID))
	second.sub.Close()
	if got := e.app.Hub.Presence(rx.GroupPlace(userGroup(bob.ID))); len(got) != 1 || got[0].Connections != 1 {
		t.Fatalf("bob's presence with one Home left: %+v", got)
	}
	eventually(t, "bob with one Home left is still online", wantOnline(ann.home, bob.ID))

	// A new friendship lists cyd on both sides; an ended one unlists bob.
	e.befriend(cyd, ann)
	eventually(t, "ann sees cyd", wantOnline(ann.home, bob.ID, cyd.ID))
	eventually(t, "cyd sees ann", wantOnline(cyd.home, ann.ID))
	must[any](third, "deleteFriend", ann.ID)
	eventually(t, "bob unlisted", wantOnline(ann.home, cyd.ID))
	eventually(t, "ann unlisted", wantOnline(third))
}

// Typing: the other members see who types until they stop, send, or
// close the chat; the chat's clients see who has it open.
func TestTypingAndChatPresence(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	e.app.TypingTimeout = time.Hour // expiry is TestTypingExpires's
	ann, bob := e.user("ann"), e.user("bob")
	chatID := e.befriend(ann, bob)
	ac, bc := e.openChat(ann, chatID), e.openChat(bob, chatID)
	a, b := idString(ann.ID), idString(bob.ID)
	eventually(t, "both present", func() error { return wantIDs2("present", bc.present(), []string{a + "×1", b + "×1"}) })

	must[any](ac, "typing", true)
	eventually(t, "bob sees ann typing", func() error { return wantIDs("typing", bc.typing(), uids(ann.ID)) })
	if ids := ac.typing(); len(ids) != 0 {
		t.Fatalf("ann sees herself typing: %v", ids)
	}
	must[any](ac, "typing", false)
	eventually(t, "ann stopped", func() error { return wantIDs("typing", bc.typing(), nil) })

	must[any](ac, "typing", true)
	eventually(t, "typing again", func() error { return wantIDs("typing", bc.typing(), uids(ann.ID)) })
	must[Message](ac, "sendMessage", "hi")
	eventually(t, "sending stops typing", func() error { return wantIDs("typing", bc.typing(), nil) })

	must[any](ac, "typing", true)
	eventually(t, "typing once more", func() error { return wantIDs("typing", bc.typing(), uids(ann.ID)) })
	ac.sub.Close()
	eventually(t, "closing the chat stops typing", func() error { return wantIDs("typing", bc.typing(), nil) })
	eventually(t, "ann left the chat", func() error { return wantIDs2("present", bc.present(), []string{b + "×1"}) })
}

// A member who goes quiet stops counting as typing after TypingTimeout.
func TestTypingExpires(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	e.app.TypingTimeout = time.Second
	ann, bob := e.user("ann"), e.user("bob")
	chatID := e.befriend(ann, bob)
	ac, bc := e.openChat(ann, chatID), e.openChat(bob, chatID)
	must[any](ac, "typing", true)
	eventually(t, "bob sees ann typing", func() error { return wantIDs("typing", bc.typing(), uids(ann.ID)) })
	eventually(t, "the indicator expired", func() error { return wantIDs("typing", bc.typing(), nil) })
}

func wantIDs2(what string, got, want []string) error {
	if !slices.Equal(got, want) {
		return fmt.Errorf("%s: got %v, want %v", what, got, want)
	}
	return nil
}
