package channel

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rxgorm/rxgorm/rx"
	"gorm.io/gorm"
)

// Authenticator turns a token into a user. Return an error wrapping
// rx.ErrUnauthenticated (or any error) to refuse. token is "" when the
// client sent none; an authenticator that allows anonymous users returns
// the zero rx.User then.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (rx.User, error)
}

// AuthFunc adapts a function to Authenticator.
type AuthFunc func(ctx context.Context, token string) (rx.User, error)

// Authenticate implements Authenticator.
func (f AuthFunc) Authenticate(ctx context.Context, token string) (rx.User, error) {
	return f(ctx, token)
}

// tokenFromRequest reads a token from the upgrade request: the
// Authorization: Bearer header first, then the cookie.
func tokenFromRequest(r *http.Request, cookie string) string {
	if h := r.Header.Get("Authorization"); h != "" {
		if scheme, tok, ok := strings.Cut(h, " "); ok && strings.EqualFold(scheme, "Bearer") {
			return strings.TrimSpace(tok)
		}
	}
	if cookie != "" {
		if c, err := r.Cookie(cookie); err == nil {
			return c.Value
		}
	}
	return ""
}

// Token is a row of the token table: an opaque key that authenticates one
// user, like Django REST framework's Token.
type Token struct {
	Key       string     `gorm:"primaryKey;size:64"`
	UserID    string     `gorm:"index;size:64;not null"`
	CreatedAt time.Time  `gorm:"not null"`
	ExpiresAt *time.Time // nil: never expires
}

// TableName is rx_tokens.
func (Token) TableName() string { return "rx_tokens" }

// TokenAuth is the built-in Authenticator: tokens stored in a GORM table
// (rx_tokens), created and revoked per user.
type TokenAuth struct {
	db *gorm.DB
	// TTL is the lifetime of new tokens; zero means they never expire.
	TTL time.Duration
	// Load, if set, fills rx.User.Data for an authenticated user id (for
	// example with the application's user row). An error refuses the token.
	Load func(ctx context.Context, userID string) (any, error)
	// Anonymous allows clients without a token, as the zero rx.User.
	Anonymous bool
}

// NewTokenAuth creates the token table if needed and returns a TokenAuth.
func NewTokenAuth(db *gorm.DB) (*TokenAuth, error) {
	if err := db.AutoMigrate(&Token{}); err != nil {
		return nil, fmt.Errorf("channel: migrate rx_tokens: %w", err)
	}
	return &TokenAuth{db: db}, nil
}

// Create issues a new token for userID.
func (a *TokenAuth) Create(ctx context.Context, userID string) (string, error) {
	var raw [20]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", err
	}
	t := Token{Key: hex.EncodeToString(raw[:]), UserID: userID, CreatedAt: time.Now()}
	if a.TTL > 0 {
		exp := t.CreatedAt.Add(a.TTL)
		t.ExpiresAt = &exp
	}
	if err := a.db.WithContext(ctx).Create(&t).Error; err != nil {
		return "", fmt.Errorf("channel: create token: %w", err)
	}
	return t.Key, nil
}

// Revoke deletes one token. Sockets it opened stay open until they
// reconnect; use Server.DisconnectUser to end them now.
func (a *TokenAuth) Revoke(ctx context.Context, token string) error {
	return a.db.WithContext(ctx).Where("key = ?", token).Delete(&Token{}).Error
}

// RevokeUser deletes every token of a user.
func (a *TokenAuth) RevokeUser(ctx context.Context, userID string) error {
	return a.db.WithContext(ctx).Where("user_id = ?", userID).Delete(&Token{}).Error
}

// Authenticate implements Authenticator.
func (a *TokenAuth) Authenticate(ctx context.Context, token string) (rx.User, error) {
	if token == "" {
		if a.Anonymous {
			return rx.User{}, nil
		}
		return rx.User{}, rx.Errorf(rx.CodeUnauthenticated, "a token is required")
	}
	var t Token
	err := a.db.WithContext(ctx).Where("key = ?", token).Take(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) || (err == nil && subtle.ConstantTimeCompare([]byte(t.Key), []byte(token)) != 1) {
		return rx.User{}, rx.Errorf(rx.CodeUnauthenticated, "invalid or expired token")
	}
	if err != nil {
		return rx.User{}, fmt.Errorf("channel: look up token: %w", err)
	}
	if t.ExpiresAt != nil && time.Now().After(*t.ExpiresAt) {
		return rx.User{}, rx.Errorf(rx.CodeUnauthenticated, "invalid or expired token")
	}
	u := rx.User{ID: t.UserID}
	if a.Load != nil {
		if u.Data, err = a.Load(ctx, t.UserID); err != nil {
			return rx.User{}, &rx.Error{Code: rx.CodeUnauthenticated, Message: "invalid or expired token", Err: err}
		}
	}
	return u, nil
}
