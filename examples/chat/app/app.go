// Package app is the chat example's backend: the Nova 210 SE chat rebuilt on
// rxgorm. It holds the GORM models (models.go), the two channels clients
// subscribe to (HomeChannel in home.go, ChatChannel in chat.go) with an
// action for every change a client makes, and the operations behind them,
// one file per concept (account, friends, chats, messages, invitations).
//
// Every change is made through GORM inside a transaction, so rxgorm
// broadcasts it to every affected subscriber after the commit; dependants
// are deleted through GORM too (database cascades would be invisible).
// What the seed calls notifications are those state changes plus a notice
// published to the affected users' groups, which their channels turn into
// runtime state (a toast).
package app

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	mysqldriver "github.com/go-sql-driver/mysql"
	"github.com/rxgorm/rxgorm/cache"
	"github.com/rxgorm/rxgorm/channel"
	"github.com/rxgorm/rxgorm/rx"
	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"
)

// Options configure New. The zero value works.
type Options struct {
	// Store is the rxgorm cache store. Nil means in memory.
	Store cache.Store
	// Broker connects several chat servers on one database (rx.RedisBroker).
	// Nil means in process: one server.
	Broker rx.Broker
	// Logger receives errors. Nil means slog.Default().
	Logger *slog.Logger
	// BcryptCost is the cost of password hashes. Zero means
	// bcrypt.DefaultCost; tests use bcrypt.MinCost.
	BcryptCost int
	// TypingTimeout is how long a member counts as typing after their last
	// Typing(true). Zero means DefaultTypingTimeout.
	TypingTimeout time.Duration
	// TypingRate limits Typing calls per user. Zero means
	// DefaultTypingRate.
	TypingRate Rate
}

// App is the chat backend: the database, the rxgorm hub serving the
// channels, and the token store.
type App struct {
	// DB is the rx-enabled database: every write through it is broadcast.
	DB *gorm.DB
	// Hub serves HomeChannel and ChatChannel.
	Hub *rx.Hub
	// Tokens authenticates clients (REST and WebSocket).
	Tokens *channel.TokenAuth
	// TypingTimeout is Options.TypingTimeout.
	TypingTimeout time.Duration

	log       *slog.Logger
	cost      int
	deletedID uint
	typingLim *Limiter
	// sqliteWrites, on SQLite, queues this app's write transactions in
	// process: SQLite runs one writer at a time anyway, and writers
	// waiting in its busy handler poll and can time out ("database is
	// locked") under a burst, where a mutex queue just waits its turn.
	sqliteWrites *sync.Mutex
	// dummyHash is a bcrypt hash of a random password at the app's cost:
	// Login checks passwords of unknown users against it, so that they
	// take as long as known ones.
	dummyHash []byte
	// compare is bcrypt.CompareHashAndPassword (tests count its calls).
	compare func(hash, password []byte) error
}

// New migrates the database, installs rxgorm on db, registers the channels
// and makes sure the #DELETED user exists.
func New(db *gorm.DB, opts Options) (*App, error) {
	a := &App{DB: db, log: opts.Logger, cost: opts.BcryptCost, TypingTimeout: opts.TypingTimeout}
	if a.log == nil {
		a.log = slog.Default()
	}
	if a.cost == 0 {
		a.cost = bcrypt.DefaultCost
	}
	a.compare = bcrypt.CompareHashAndPassword
	if db.Dialector.Name() == "sqlite" {
		a.sqliteWrites = &sync.Mutex{}
	}
	typing := opts.TypingRate
	if typing == (Rate{}) {
		typing = DefaultTypingRate
	}
	a.typingLim = NewLimiter(typing)
	var random [16]byte
	_, _ = rand.Read(random[:]) // never fails
	dummy, err := bcrypt.GenerateFromPassword([]byte(hex.EncodeToString(random[:])), a.cost)
	if err != nil {
		return nil, fmt.Errorf("app: dummy password hash: %w", err)
	}
	a.dummyHash = dummy
	if err := db.AutoMigrate(Models()...); err != nil {
		return nil, fmt.Errorf("app: migrate: %w", err)
	}
	tokens, err := channel.NewTokenAuth(db)
	if err != nil {
		return nil, err
	}
	tokens.Load = a.loadUser
	a.Tokens = tokens
	hub, err := rx.New(db, rx.Config{Store: opts.Store, Logger: opts.Logger, Broker: opts.Broker})
	if err != nil {
		return nil, err
	}
	a.Hub = hub
	if err := hub.Register(a.channels()...); err != nil {
		hub.Close()
		return nil, err
	}
	if err := a.ensureDeletedUser(); err != nil {
		hub.Close()
		return nil, err
	}
	return a, nil
}

// Channels returns the app's channels as makefrontend reads them (without
// an App: codegen needs only their types).
func Channels() []any { return (&App{}).channels() }

func (a *App) channels() []any { return []any{&HomeChannel{App: a}, &ChatChannel{App: a}} }

// Close stops the hub.
func (a *App) Close() error { return a.Hub.Close() }

// DeletedUserID returns the id of the #DELETED user.
func (a *App) DeletedUserID() uint { return a.deletedID }

// ensureDeletedUser creates the #DELETED user on first start. It has no
// password hash, so no one can log in as it.
func (a *App) ensureDeletedUser() error {
	var u User
	err := a.DB.Where("username = ?", DeletedUsername).Take(&u).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		u = User{Username: DeletedUsername, DisplayName: "Deleted user", Avatar: AvatarURL(DeletedUsername)}
		err = a.DB.Transaction(func(tx *gorm.DB) error { return tx.Create(&u).Error })
	}
	if err != nil {
		return fmt.Errorf("app: #DELETED user: %w", err)
	}
	a.deletedID = u.ID
	return nil
}

// loadUser fills rx.User.Data for an authenticated token: the user's row.
// A deleted user's tokens are refused.
func (a *App) loadUser(ctx context.Context, id string) (any, error) {
	n, err := strconv.ParseUint(id, 10, 64)
	if err != nil {
		return nil, err
	}
	var u User
	if err := a.DB.WithContext(ctx).Take(&u, n).Error; err != nil {
		return nil, err
	}
	return &u, nil
}

// UserID returns the numeric id of an authenticated rx.User.
func UserID(u rx.User) (uint, error) {
	n, err := strconv.ParseUint(u.ID, 10, 64)
	if err != nil || n == 0 {
		return 0, rx.Errorf(rx.CodeUnauthenticated, "sign in first")
	}
	return uint(n), nil
}

func idString(id uint) string { return strconv.FormatUint(uint64(id), 10) }

func badRequest(format string, args ...any) error {
	return rx.Errorf(rx.CodeBadRequest, format, args...)
}

func forbidden(format string, args ...any) error {
	return rx.Errorf(rx.CodeForbidden, format, args...)
}

func notFound(format string, args ...any) error {
	return rx.Errorf(rx.CodeNotFound, format, args...)
}

// write runs f in a transaction and, after the commit, delivers the
// notices f left in the outbox. rxgorm broadcasts the transaction's
// changes after the commit, before the notices reach anyone.
//
// The transactions lock chats in one order (see lockChat), so they do not
// deadlock one another; should PostgreSQL still abort one as a deadlock
// victim or a serialization failure, it is run again, up to
// maxWriteAttempts times in all.
func (a *App) write(ctx context.Context, f func(tx *gorm.DB, out *outbox) error) error {
	for attempt := 1; ; attempt++ {
		out := &outbox{}
		err := a.transaction(ctx, func(tx *gorm.DB) error { return f(tx, out) })
		if err == nil {
			a.deliver(context.WithoutCancel(ctx), out)
			return nil
		}
		if attempt == maxWriteAttempts || !retryable(err) || ctx.Err() != nil {
			return err
		}
		a.log.Warn("app: transaction retried", "attempt", attempt, "err", err)
	}
}

// transaction runs f in a transaction, on SQLite one at a time (see
// sqliteWrites).
func (a *App) transaction(ctx context.Context, f func(tx *gorm.DB) error) error {
	if a.sqliteWrites != nil {
		a.sqliteWrites.Lock()
		defer a.sqliteWrites.Unlock()
	}
	return a.DB.WithContext(ctx).Transaction(f)
}

// maxWriteAttempts bounds how often write runs a transaction that
// PostgreSQL or MariaDB aborted as a deadlock victim or a serialization
// failure.
const maxWriteAttempts = 3

// retryable reports whether err is PostgreSQL's deadlock_detected (40P01)
// or serialization_failure (40001), or MariaDB/MySQL's ER_LOCK_DEADLOCK
// (1213): the transaction was rolled back and may simply run again. (A
// MariaDB lock wait timeout, 1205, rolls back only the statement, so it
// is not retried.)
func retryable(err error) bool {
	var my *mysqldriver.MySQLError
	if errors.As(err, &my) {
		return my.Number == 1213
	}
	var pg interface{ SQLState() string }
	if !errors.As(err, &pg) {
		return false
	}
	switch pg.SQLState() {
	case "40P01", "40001":
		return true
	}
	return false
}

// take loads the row with primary key id into dest, or returns a not_found
// error naming what.
func take(tx *gorm.DB, dest any, id uint, what string) error {
	err := tx.Take(dest, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return notFound("no %s %d", what, id)
	}
	return err
}

// activeUser loads the acting user, refusing one that no longer exists.
func activeUser(tx *gorm.DB, id uint) (*User, error) {
	var u User
	err := tx.Take(&u, id).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, rx.Errorf(rx.CodeUnauthenticated, "your account no longer exists")
	}
	return &u, err
}
