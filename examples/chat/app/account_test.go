package app

import (
	"bytes"
	"errors"
	"image/png"
	"strings"
	"testing"

	"github.com/rxgorm/rxgorm/rx"
)

func code(err error) rx.Code {
	if err == nil {
		return ""
	}
	return rx.Public(err).Code
}

func TestRegisterLoginLogout(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		u, err := e.app.Register(bg, Registration{Username: "alice", Password: password})
		if err != nil {
			t.Fatal(err)
		}
		if u.DisplayName != "alice" || !strings.HasPrefix(u.Avatar, "/api/avatar/alice.png?seed=") || u.PasswordHash == password {
			t.Fatalf("registered %+v", u)
		}
		// The home and the default friend group exist.
		h := e.watch("HomeChannel", HomeParams{UserID: u.ID}, u.ID).home()
		if h.ID != u.ID || h.User.Username != "alice" || len(h.FriendGroups) != 1 || !h.FriendGroups[0].IsDefault {
			t.Fatalf("home: %+v", h)
		}

		for _, c := range []struct {
			reg Registration
			msg string
		}{
			{Registration{Username: "al", Password: password}, "a username has"},
			{Registration{Username: "al ice", Password: password}, "a username has"},
			{Registration{Username: DeletedUsername, Password: password}, "a username has"},
			{Registration{Username: "bob", Password: "short"}, "a password has"},
			{Registration{Username: "bob", Password: strings.Repeat("x", 73)}, "a password has"},
			{Registration{Username: "bob", Password: password, DisplayName: strings.Repeat("é", 65)}, "a display name"},
			{Registration{Username: "alice", Password: password}, "is taken"},
		} {
			_, err := e.app.Register(bg, c.reg)
			if code(err) != rx.CodeBadRequest || !strings.Contains(err.Error(), c.msg) {
				t.Errorf("register %+v: %v, want bad_request %q", c.reg, err, c.msg)
			}
		}

		tok, lu, err := e.app.Login(bg, "alice", password)
		if err != nil || lu.ID != u.ID || tok == "" {
			t.Fatalf("login: %v %v", lu, err)
		}
		ru, err := e.app.Tokens.Authenticate(bg, tok)
		if err != nil || ru.ID != idString(u.ID) || ru.Data.(*User).Username != "alice" {
			t.Fatalf("authenticate: %+v %v", ru, err)
		}
		for _, c := range [][2]string{{"alice", "wrong-password"}, {"nobody", password}, {DeletedUsername, ""}} {
			if _, _, err := e.app.Login(bg, c[0], c[1]); code(err) != rx.CodeUnauthenticated {
				t.Errorf("login %v: %v, want unauthenticated", c, err)
			}
		}
		if err := e.app.Logout(bg, tok); err != nil {
			t.Fatal(err)
		}
		if _, err := e.app.Tokens.Authenticate(bg, tok); code(err) != rx.CodeUnauthenticated {
			t.Fatalf("token after logout: %v", err)
		}
	})
}

func TestProfileAndPassword(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		alice, bob := e.user("alice"), e.user("bob")
		chatID := e.befriend(alice, bob)
		bobChat := e.openChat(bob, chatID)

		u := must[User](alice.home, "updateProfile", ProfileUpdate{DisplayName: "  Alice A.  "})
		if u.DisplayName != "Alice A." {
			t.Fatalf("updateProfile: %+v", u)
		}
		// The new name reaches alice's own home, bob's friend list, bob's chat
		// list (the peer) and the chat's member list.
		eventually(t, "profile change everywhere", func() error {
			if h := alice.home.home(); h.User.DisplayName != "Alice A." {
				return errors.New("alice's home")
			}
			h := bob.home.home()
			if h.FriendGroups[0].Friends[0].Friend.DisplayName != "Alice A." {
				return errors.New("bob's friend list")
			}
			if r := chatEntry(h, chatID); r == nil || r.Peer == nil || r.Peer.DisplayName != "Alice A." {
				return errors.New("bob's chat list")
			}
			for _, m := range bobChat.chat().Members {
				if m.ID == alice.ID && m.DisplayName == "Alice A." {
					return nil
				}
			}
			return errors.New("chat members")
		})
		refuse(alice.home, rx.CodeBadRequest, "a display name", "updateProfile", ProfileUpdate{DisplayName: " "})
		refuse(alice.home, rx.CodeBadRequest, "argument 1", "updateProfile", "not an object")

		refuse(alice.home, rx.CodeForbidden, "wrong password", "changePassword", "nope", "new-password")
		refuse(alice.home, rx.CodeBadRequest, "a password has", "changePassword", password, "short")
		must[any](alice.home, "changePassword", password, "new-password")
		if _, _, err := e.app.Login(bg, "alice", password); code(err) != rx.CodeUnauthenticated {
			t.Fatalf("old password still works: %v", err)
		}
		if _, _, err := e.app.Login(bg, "alice", "new-password"); err != nil {
			t.Fatalf("new password: %v", err)
		}
	})
}

func TestAuthorize(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		alice, bob, carol := e.user("alice"), e.user("bob"), e.user("carol")
		chatID := e.befriend(alice, bob)
		hub := e.app.Hub
		for _, c := range []struct {
			channel string
			params  any
			user    rx.User
			code    rx.Code
		}{
			{"HomeChannel", HomeParams{UserID: alice.ID}, rx.User{ID: idString(bob.ID)}, rx.CodeForbidden},
			{"HomeChannel", HomeParams{UserID: alice.ID}, rx.User{}, rx.CodeUnauthenticated},
			{"ChatChannel", ChatParams{ChatID: chatID}, rx.User{ID: idString(carol.ID)}, rx.CodeNotFound},
			{"ChatChannel", ChatParams{ChatID: 999}, rx.User{ID: idString(carol.ID)}, rx.CodeNotFound},
			{"ChatChannel", ChatParams{ChatID: chatID}, rx.User{}, rx.CodeUnauthenticated},
		} {
			if _, err := hub.Subscribe(bg, c.channel, c.params, c.user, rx.SubscribeOptions{}); code(err) != c.code {
				t.Errorf("%s %+v as %q: %v, want %s", c.channel, c.params, c.user.ID, err, c.code)
			}
			if _, err := hub.Snapshot(bg, c.channel, c.params, c.user); code(err) != c.code {
				t.Errorf("snapshot %s %+v as %q: %v, want %s", c.channel, c.params, c.user.ID, err, c.code)
			}
		}
		// Members get in; the REST snapshot is the state a subscriber rebuilds.
		js, err := hub.Snapshot(bg, "ChatChannel", ChatParams{ChatID: chatID}, rx.User{ID: idString(alice.ID)})
		if err != nil || !strings.Contains(string(js), `"kind":"private"`) {
			t.Fatalf("snapshot: %s %v", js, err)
		}
		// Unknown actions and mistyped arguments.
		refuse(alice.home, rx.CodeUnknownAction, "no action", "sendMessage", "hi")
		refuse(alice.home, rx.CodeBadRequest, "argument 1", "acceptFriendInvitation", "one")
	})
}

func TestAvatar(t *testing.T) {
	a, b := Avatar("alice"), Avatar("bob")
	if !bytes.Equal(a, Avatar("alice")) {
		t.Fatal("avatars are not deterministic")
	}
	if bytes.Equal(a, b) {
		t.Fatal("two users share an avatar")
	}
	img, err := png.Decode(bytes.NewReader(a))
	if err != nil {
		t.Fatal(err)
	}
	if r := img.Bounds(); r.Dx() != AvatarSize || r.Dy() != AvatarSize {
		t.Fatalf("size %v", r)
	}
	if AvatarURL(DeletedUsername) != "/api/avatar/%23DELETED.png" {
		t.Fatal(AvatarURL(DeletedUsername))
	}
}
