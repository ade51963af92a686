package channel

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/rxgorm/rxgorm/rx"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
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
// user, like Django REST framework's Token. Only a hash of the key is
// stored: a copy of the table does not sign anyone in.
type Token struct {
	// Key is HashToken of the token, never the token itself.
	Key       string     `gorm:"primaryKey;size:64"`
	UserID    string     `gorm:"index;size:64;not null"`
	CreatedAt time.Time  `gorm:"not null"`
	ExpiresAt *time.Time // nil: never expires
}

// TableName is rx_tokens.
func (Token) TableName() string { return "rx_tokens" }

// HashToken is the SHA-256 of a token, in hex: the form rx_tokens keeps
// and Revocation names.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// TokenAuth is the built-in Authenticator: tokens stored hashed in a GORM
// table (rx_tokens), created, rotated and revoked per user. A Server using
// it closes the sockets of revoked tokens and users with 4001, on every
// node of a cluster (see Revoker), and a socket's when its token expires.
type TokenAuth struct {
	db *gorm.DB
	// TTL is the lifetime of new tokens, counted from their creation (an
	// absolute expiry: use Rotate to extend a session); zero means they
	// never expire.
	TTL time.Duration
	// Load, if set, fills rx.User.Data for an authenticated user id (for
	// example with the application's user row). An error refuses the token.
	Load func(ctx context.Context, userID string) (any, error)
	// Anonymous allows clients without a token, as the zero rx.User.
	Anonymous bool

	rv revocations
}

// OnRevoke implements Revoker: f is called after each revocation, and
// until remove is called. A Server calls it for itself.
func (a *TokenAuth) OnRevoke(f func(Revocation)) (remove func()) { return a.rv.add(f) }

// NewTokenAuth creates the token table if needed and returns a TokenAuth.
// Tokens a former version stored in plaintext are hashed in place.
func NewTokenAuth(db *gorm.DB) (*TokenAuth, error) {
	if err := db.AutoMigrate(&Token{}); err != nil {
		return nil, fmt.Errorf("channel: migrate rx_tokens: %w", err)
	}
	if err := hashPlaintext(db); err != nil {
		return nil, err
	}
	return &TokenAuth{db: db}, nil
}

// keyColumn is the token table's key column, quoted by each dialect in
// the statements that name it (key is a reserved word in MySQL).
var keyColumn = clause.Column{Name: "key"}

// hashPlaintext replaces the keys of tokens stored in plaintext (40 hex
// digits; hashes have 64) by their hashes.
func hashPlaintext(db *gorm.DB) error {
	var old []Token
	if err := db.Where(clause.Expr{SQL: "length(?) < ?", Vars: []any{keyColumn, 64}}).Find(&old).Error; err != nil {
		return fmt.Errorf("channel: read plaintext tokens: %w", err)
	}
	for _, t := range old {
		if err := db.Model(&Token{}).Where(clause.Eq{Column: keyColumn, Value: t.Key}).Update("key", HashToken(t.Key)).Error; err != nil {
			return fmt.Errorf("channel: hash a plaintext token: %w", err)
		}
	}
	return nil
}

// Create issues a new token for userID.
func (a *TokenAuth) Create(ctx context.Context, userID string) (string, error) {
	return a.create(ctx, a.db, userID)
}

func (a *TokenAuth) create(ctx context.Context, db *gorm.DB, userID string) (string, error) {
	var raw [20]byte
	if _, err := rand.Read(raw[:]); err != nil {
		return "", fmt.Errorf("channel: token entropy: %w", err)
	}
	token := hex.EncodeToString(raw[:])
	t := Token{Key: HashToken(token), UserID: userID, CreatedAt: time.Now()}
	if a.TTL > 0 {
		exp := t.CreatedAt.Add(a.TTL)
		t.ExpiresAt = &exp
	}
	if err := db.WithContext(ctx).Create(&t).Error; err != nil {
		return "", fmt.Errorf("channel: create token: %w", err)
	}
	return token, nil
}

// Revoke deletes one token. Every socket authenticated with it is closed
// with 4001, on every node of the cluster, within a second.
func (a *TokenAuth) Revoke(ctx context.Context, token string) error {
	h := HashToken(token)
	if err := a.db.WithContext(ctx).Where(clause.Eq{Column: keyColumn, Value: h}).Delete(&Token{}).Error; err != nil {
		return fmt.Errorf("channel: revoke token: %w", err)
	}
	a.rv.notify(Revocation{Token: h})
	return nil
}

// RevokeUser deletes every token of a user (logout everywhere, account
// deletion). Every socket of the user is closed with 4001, on every node.
func (a *TokenAuth) RevokeUser(ctx context.Context, userID string) error {
	if err := a.db.WithContext(ctx).Where("user_id = ?", userID).Delete(&Token{}).Error; err != nil {
		return fmt.Errorf("channel: revoke tokens of user: %w", err)
	}
	a.rv.notify(Revocation{User: userID})
	return nil
}

// RevokeOthers deletes every token of a user but keep (after a password
// change made with keep): the user's other sockets are closed with 4001,
// those authenticated with keep stay open.
func (a *TokenAuth) RevokeOthers(ctx context.Context, userID, keep string) error {
	h := HashToken(keep)
	if err := a.db.WithContext(ctx).Where("user_id = ?", userID).Where(clause.Neq{Column: keyColumn, Value: h}).Delete(&Token{}).Error; err != nil {
		return fmt.Errorf("channel: revoke other tokens of user: %w", err)
	}
	a.rv.notify(Revocation{User: userID, Except: h})
	return nil
}

// Rotate replaces a valid token with a new one for the same user, with a
// fresh TTL, and revokes the old one: sockets authenticated with it are
// closed with 4001 and reconnect with the new token. An invalid or expired
// token is refused with unauthenticated.
func (a *TokenAuth) Rotate(ctx context.Context, old string) (string, error) {
	h := HashToken(old)
	var token string
	err := a.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		t, err := a.lookup(ctx, tx, old)
		if err != nil {
			return err
		}
		res := tx.Where(clause.Eq{Column: keyColumn, Value: h}).Delete(&Token{})
		if res.Error != nil {
			return fmt.Errorf("channel: revoke rotated token: %w", res.Error)
		}
		if res.RowsAffected == 0 {
			return rx.Errorf(rx.CodeUnauthenticated, "invalid or expired token") // rotated meanwhile
		}
		token, err = a.create(ctx, tx, t.UserID)
		return err
	})
	if err != nil {
		return "", err
	}
	a.rv.notify(Revocation{Token: h})
	return token, nil
}

// lookup returns the valid, unexpired row of token.
func (a *TokenAuth) lookup(ctx context.Context, db *gorm.DB, token string) (*Token, error) {
	h := HashToken(token)
	var t Token
	err := db.WithContext(ctx).Where(clause.Eq{Column: keyColumn, Value: h}).Take(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) || (err == nil && subtle.ConstantTimeCompare([]byte(t.Key), []byte(h)) != 1) {
		return nil, rx.Errorf(rx.CodeUnauthenticated, "invalid or expired token")
	}
	if err != nil {
		return nil, fmt.Errorf("channel: look up token: %w", err)
	}
	if t.ExpiresAt != nil && !time.Now().Before(*t.ExpiresAt) {
		return nil, rx.Errorf(rx.CodeUnauthenticated, "invalid or expired token")
	}
	return &t, nil
}

// Authenticate implements Authenticator.
func (a *TokenAuth) Authenticate(ctx context.Context, token string) (rx.User, error) {
	u, _, err := a.AuthenticateUntil(ctx, token)
	return u, err
}

// AuthenticateUntil implements ExpiringAuthenticator: it is Authenticate,
// and returns when the token expires (zero: never).
func (a *TokenAuth) AuthenticateUntil(ctx context.Context, token string) (rx.User, time.Time, error) {
	if token == "" {
		if a.Anonymous {
			return rx.User{}, time.Time{}, nil
		}
		return rx.User{}, time.Time{}, rx.Errorf(rx.CodeUnauthenticated, "a token is required")
	}
	t, err := a.lookup(ctx, a.db, token)
	if err != nil {
		return rx.User{}, time.Time{}, err
	}
	u := rx.User{ID: t.UserID}
	if a.Load != nil {
		if u.Data, err = a.Load(ctx, t.UserID); err != nil {
			return rx.User{}, time.Time{}, &rx.Error{Code: rx.CodeUnauthenticated, Message: "invalid or expired token", Err: err}
		}
	}
	var until time.Time
	if t.ExpiresAt != nil {
		until = *t.ExpiresAt
	}
	return u, until, nil
}
