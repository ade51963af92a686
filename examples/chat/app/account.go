package app

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/rxgorm/rxgorm/channel"
	"github.com/rxgorm/rxgorm/rx"
	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// Accounts: register, log in and out, profile, password, and deleting an
// account with everything that hangs on it.

var usernameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{3,32}$`)

// Registration is what a new user sends.
type Registration struct {
	Username    string `json:"username"`
	Password    string `json:"password"`
	DisplayName string `json:"displayName"`
}

// ProfileUpdate changes the caller's profile.
type ProfileUpdate struct {
	DisplayName string `json:"displayName"`
}

func checkPassword(p string) error {
	if len(p) < 6 || len(p) > 72 {
		return badRequest("a password has 6 to 72 bytes")
	}
	return nil
}

func cleanDisplayName(name, fallback string) (string, error) {
	if strings.TrimSpace(name) == "" {
		name = fallback
	}
	return cleanName("a display name", name, 64)
}

// Register creates a user with their home and default friend group.
func (a *App) Register(ctx context.Context, r Registration) (*User, error) {
	if !usernameRE.MatchString(r.Username) {
		return nil, badRequest("a username has 3 to 32 letters, digits, '_', '.' or '-'")
	}
	if err := checkPassword(r.Password); err != nil {
		return nil, err
	}
	name, err := cleanDisplayName(r.DisplayName, r.Username)
	if err != nil {
		return nil, err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(r.Password), a.cost)
	if err != nil {
		return nil, err
	}
	u := &User{Username: r.Username, DisplayName: name, Avatar: AvatarSeedURL(r.Username, RandomAvatarSeed()), PasswordHash: string(hash)}
	err = a.write(ctx, func(tx *gorm.DB, _ *outbox) error {
		var n int64
		if err := tx.Model(&User{}).Where("username = ?", r.Username).Count(&n).Error; err != nil {
			return err
		}
		if n > 0 {
			return badRequest("the username %s is taken", r.Username)
		}
		if err := tx.Create(u).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return badRequest("the username %s is taken", r.Username)
			}
			return err
		}
		if err := tx.Create(&Home{ID: u.ID, UserID: u.ID}).Error; err != nil {
			return err
		}
		return tx.Create(&FriendGroup{UserID: u.ID, Name: "Friends", IsDefault: true}).Error
	})
	if err != nil {
		return nil, err
	}
	return u, nil
}

// ValidUsername reports whether name is a well-formed username: 3 to 32
// ASCII letters, digits, '_', '.' or '-'.
func ValidUsername(name string) bool { return usernameRE.MatchString(name) }

// Login checks a username and password and returns a new token.
//
// It takes as long for a username that does not exist (or is malformed,
// or cannot log in) as for a wrong password: the password is checked
// against a dummy hash of the same cost, so the time of the answer does
// not tell which usernames exist.
func (a *App) Login(ctx context.Context, username, password string) (string, *User, error) {
	var u User
	found := false
	if ValidUsername(username) {
		err := a.DB.WithContext(ctx).Where("username = ?", username).Take(&u).Error
		switch {
		case err == nil:
			found = u.PasswordHash != ""
		case !errors.Is(err, gorm.ErrRecordNotFound):
			return "", nil, fmt.Errorf("app: log in: %w", err)
		}
	}
	hash := a.dummyHash
	if found {
		hash = []byte(u.PasswordHash)
	}
	if a.compare(hash, []byte(password)) != nil || !found {
		return "", nil, rx.Errorf(rx.CodeUnauthenticated, "wrong username or password")
	}
	tok, err := a.Tokens.Create(ctx, idString(u.ID))
	if err != nil {
		return "", nil, err
	}
	return tok, &u, nil
}

// Logout revokes one token: every socket authenticated with it (every
// tab of the browser that holds it in its cookie) is closed with 4001, on
// every node.
func (a *App) Logout(ctx context.Context, token string) error {
	if err := a.Tokens.Revoke(ctx, token); err != nil {
		return fmt.Errorf("app: log out: %w", err)
	}
	return nil
}

// LogoutEverywhere revokes every token of the user of token: every socket
// of the user, in every browser and on every node, is closed with 4001.
// The web UI's "Sign out" calls it.
func (a *App) LogoutEverywhere(ctx context.Context, token string) error {
	u, err := a.Tokens.Authenticate(ctx, token)
	if err != nil {
		return err
	}
	if err := a.Tokens.RevokeUser(ctx, u.ID); err != nil {
		return fmt.Errorf("app: log out everywhere: %w", err)
	}
	return nil
}

// UpdateProfile changes the caller's display name. Every stream that shows
// the user (friends' homes, chats) receives the change.
func (a *App) UpdateProfile(ctx context.Context, uid uint, p ProfileUpdate) (*User, error) {
	var u *User
	err := a.write(ctx, func(tx *gorm.DB, _ *outbox) error {
		var err error
		if u, err = activeUser(tx, uid); err != nil {
			return err
		}
		name, err := cleanDisplayName(p.DisplayName, "")
		if err != nil {
			return err
		}
		u.DisplayName = name
		return tx.Model(u).Update("display_name", name).Error
	})
	return u, err
}

// SetAvatar gives the caller the avatar drawn from seed (16 hex digits;
// "" draws a random one).
func (a *App) SetAvatar(ctx context.Context, uid uint, seed string) (*User, error) {
	if seed == "" {
		seed = RandomAvatarSeed()
	}
	if !ValidAvatarSeed(seed) {
		return nil, badRequest("an avatar seed has 16 hex digits")
	}
	var u *User
	err := a.write(ctx, func(tx *gorm.DB, _ *outbox) error {
		var err error
		if u, err = activeUser(tx, uid); err != nil {
			return err
		}
		u.Avatar = AvatarSeedURL(u.Username, seed)
		return tx.Model(u).Update("avatar", u.Avatar).Error
	})
	return u, err
}

// ChangePassword replaces the caller's password after checking the old one,
// and revokes every other token of the user in the same transaction: a
// session someone else opened with the old password ends with it. keep is
// the token of the session that asked, which stays valid ("" revokes them
// all). After the commit, the revocation is announced through a.Tokens:
// the sockets of the other tokens close with 4001 on every node, those of
// keep stay open.
func (a *App) ChangePassword(ctx context.Context, uid uint, old, password, keep string) error {
	if err := checkPassword(password); err != nil {
		return err
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), a.cost)
	if err != nil {
		return err
	}
	err = a.write(ctx, func(tx *gorm.DB, _ *outbox) error {
		u, err := activeUser(tx, uid)
		if err != nil {
			return err
		}
		if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(old)) != nil {
			return forbidden("wrong password")
		}
		if err := tx.Model(u).Update("password_hash", string(hash)).Error; err != nil {
			return err
		}
		// rx_tokens holds hashes of the tokens (channel.HashToken). Its
		// column key is quoted by the dialect (a reserved word in MySQL).
		return tx.Where("user_id = ?", idString(uid)).Where(clause.Neq{Column: clause.Column{Name: "key"}, Value: channel.HashToken(keep)}).Delete(&channel.Token{}).Error
	})
	if err != nil {
		return err
	}
	// The tokens went with the transaction; RevokeOthers (RevokeUser
	// without keep) finds none left and closes their sockets.
	if keep == "" {
		err = a.Tokens.RevokeUser(ctx, idString(uid))
	} else {
		err = a.Tokens.RevokeOthers(ctx, idString(uid), keep)
	}
	if err != nil {
		return fmt.Errorf("app: change password: %w", err)
	}
	return nil
}

// Authenticate implements channel.Authenticator for the REST endpoints
// and the WebSocket: a.Tokens, remembering the token in the *User it
// loads, so that ChangePassword keeps the caller's own session.
func (a *App) Authenticate(ctx context.Context, token string) (rx.User, error) {
	u, _, err := a.AuthenticateUntil(ctx, token)
	return u, err
}

// AuthenticateUntil implements channel.ExpiringAuthenticator: the server
// closes a socket when its token expires.
func (a *App) AuthenticateUntil(ctx context.Context, token string) (rx.User, time.Time, error) {
	u, until, err := a.Tokens.AuthenticateUntil(ctx, token)
	if err != nil {
		return u, until, err
	}
	if p, ok := u.Data.(*User); ok {
		p.token = token
	}
	return u, until, nil
}

// OnRevoke implements channel.Revoker with a.Tokens' revocations: the
// server given the App as its Authenticator closes (with 4001, on every
// node) the sockets of the tokens and users that Logout,
// LogoutEverywhere, ChangePassword and DeleteAccount revoke.
func (a *App) OnRevoke(f func(channel.Revocation)) (remove func()) {
	return a.Tokens.OnRevoke(f)
}

var (
	_ channel.Revoker               = (*App)(nil)
	_ channel.ExpiringAuthenticator = (*App)(nil)
)

// DeleteAccount deletes the caller's account after checking the password,
// following the seed's cascade:
//
//  1. friends are notified, and their friendship and private chat with
//     the user disappear from their homes;
//  2. private chats are deleted;
//  3. group chats the user owns are deleted, and their members notified;
//  4. the other group chats are told that the user left, and lose them
//     from their members and admins;
//  5. friendships are deleted;
//  6. every session of the user is logged out (tokens deleted; after
//     the commit TokenAuth.RevokeUser closes the sockets on every node);
//  7. the user's sent messages are re-assigned to #DELETED, the user is
//     removed from read lists, and their friend groups, pending friend and
//     chat invitations (sent, received or awaiting their decision) and
//     chat relations are deleted, then their home and profile.
//
// It all happens in one transaction; the notices follow the commit. Only
// messages re-assigned to #DELETED remain of the user.
func (a *App) DeleteAccount(ctx context.Context, uid uint, password string) error {
	var u *User
	err := a.write(ctx, func(tx *gorm.DB, out *outbox) error {
		var err error
		if u, err = activeUser(tx, uid); err != nil {
			return err
		}
		if bcrypt.CompareHashAndPassword([]byte(u.PasswordHash), []byte(password)) != nil {
			return forbidden("wrong password")
		}
		return a.deleteUserTx(tx, u, out)
	})
	if err != nil {
		return err
	}
	// Sessions: the tokens went with the transaction; RevokeUser announces
	// it, and every socket of the user closes (with 4001: sign in again),
	// on every node. Their chat streams drop the user from presence.
	if err := a.Tokens.RevokeUser(ctx, idString(uid)); err != nil {
		return fmt.Errorf("app: delete account: %w", err)
	}
	return nil
}

func (a *App) deleteUserTx(tx *gorm.DB, u *User, out *outbox) error {
	name := u.DisplayName
	// 1. Friends.
	var friends []Friendship
	if err := tx.Where("user_id = ?", u.ID).Find(&friends).Error; err != nil {
		return err
	}
	for _, f := range friends {
		out.user(f.FriendID, NoticeFriendDeleted, fmt.Sprintf("%s deleted their account", name), 0)
	}
	// 2-4. Chats.
	var rels []UserChatRelation
	if err := tx.Where("user_id = ?", u.ID).Order("chat_id").Find(&rels).Error; err != nil {
		return err
	}
	chatIDs := make([]uint, len(rels))
	for i, r := range rels {
		chatIDs[i] = r.ChatID
	}
	if err := lockChats(tx, chatIDs); err != nil {
		return err
	}
	for _, r := range rels {
		var c Chat
		if err := take(tx, &c, r.ChatID, "chat"); err != nil {
			return err
		}
		switch {
		case c.Kind == KindPrivate:
			if err := deleteChatTx(tx, c.ID); err != nil {
				return err
			}
		case c.OwnerID != nil && *c.OwnerID == u.ID:
			members, err := memberIDs(tx, c.ID)
			if err != nil {
				return err
			}
			if err := deleteChatTx(tx, c.ID); err != nil {
				return err
			}
			for _, m := range members {
				if m != u.ID {
					out.user(m, NoticeChatDeleted, fmt.Sprintf("%s deleted their account: the chat %s is gone", name, c.Name), c.ID)
				}
			}
			out.chat(c.ID, NoticeChatDeleted, fmt.Sprintf("%s deleted their account: the chat %s is gone", name, c.Name))
		default:
			if err := removeMemberTx(tx, c.ID, u.ID); err != nil {
				return err
			}
			out.leftChat(c.ID, u.ID)
			if err := eventTx(tx, out, c.ID, NoticeChatLeft, fmt.Sprintf("%s left the chat (account deleted)", name), true); err != nil {
				return err
			}
		}
	}
	// 5. Friendships, both sides.
	if err := tx.Where("user_id = ? OR friend_id = ?", u.ID, u.ID).Delete(&Friendship{}).Error; err != nil {
		return err
	}
	// 6. Sessions: revoke every token in this transaction.
	if err := tx.Where("user_id = ?", idString(u.ID)).Delete(&channel.Token{}).Error; err != nil {
		return err
	}
	out.user(u.ID, NoticeAccountDeleting, "Your account was deleted", 0)
	// 7. What remains points at the user.
	if err := tx.Model(&Message{}).Where("sender_id = ?", u.ID).Updates(map[string]any{"sender_id": a.deletedID, "client_id": nil}).Error; err != nil {
		return err
	}
	if err := tx.Where("user_id = ?", u.ID).Delete(&MessageRead{}).Error; err != nil {
		return err
	}
	if err := tx.Where("user_id = ?", u.ID).Delete(&FriendGroup{}).Error; err != nil {
		return err
	}
	if err := tx.Where("sender_id = ? OR receiver_id = ?", u.ID, u.ID).Delete(&FriendInvitation{}).Error; err != nil {
		return err
	}
	var invIDs []uint
	if err := tx.Model(&ChatInvitation{}).Where("inviter_id = ? OR invitee_id = ?", u.ID, u.ID).Pluck("id", &invIDs).Error; err != nil {
		return err
	}
	if err := deleteInvitationsTx(tx, invIDs); err != nil {
		return err
	}
	if err := tx.Where("user_id = ?", u.ID).Delete(&ChatInvitationDecider{}).Error; err != nil {
		return err
	}
	if err := tx.Model(&ChatInvitation{}).Where("approved_by_id = ?", u.ID).Update("approved_by_id", nil).Error; err != nil {
		return err
	}
	if err := tx.Where("user_id = ?", u.ID).Delete(&UserChatRelation{}).Error; err != nil {
		return err
	}
	if err := tx.Delete(&Home{ID: u.ID}).Error; err != nil {
		return err
	}
	return tx.Delete(u).Error
}
