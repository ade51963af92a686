package rx_test

import (
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/rx"
	"gorm.io/gorm"
)

// Models of the re-authorization tests: a Hall whose seats (members, with
// a role the state does not send) decide who may subscribe, and accounts
// outside the state (a deleted account loses access).
type Hall struct {
	ID    uint       `gorm:"primaryKey" json:"id"`
	Title string     `json:"title"`
	Seats []HallSeat `json:"seats"`
	Posts []HallPost `json:"posts"`
}

type HallSeat struct {
	ID     uint   `gorm:"primaryKey" json:"id"`
	HallID uint   `json:"hallId"`
	UserID uint   `json:"userId"`
	Role   string `json:"-"`
}

type HallPost struct {
	ID     uint   `gorm:"primaryKey" json:"id"`
	HallID uint   `json:"hallId"`
	Text   string `json:"text"`
}

type Account struct {
	ID   uint `gorm:"primaryKey"`
	Name string
}

type HallParams struct {
	HallID uint `json:"hallId"`
}

// HallChannel lets in users with an account and a seat that is not
// banned.
type HallChannel struct {
	rx.Channel[Hall, HallParams]
	db    *gorm.DB
	calls *atomic.Int64
}

func (c *HallChannel) Authorize(ctx context.Context, u rx.User, p HallParams) error {
	c.calls.Add(1)
	uid, err := strconv.ParseUint(u.ID, 10, 64)
	if err != nil {
		return rx.Errorf(rx.CodeForbidden, "no such user")
	}
	var n int64
	err = c.db.WithContext(ctx).Model(&HallSeat{}).
		Joins("JOIN accounts ON accounts.id = hall_seats.user_id").
		Where("hall_seats.hall_id = ? AND hall_seats.user_id = ? AND hall_seats.role <> ?", p.HallID, uid, "banned").
		Count(&n).Error
	if err != nil {
		return err
	}
	if n == 0 {
		return rx.Errorf(rx.CodeNotFound, "no hall %d", p.HallID)
	}
	return nil
}

func (*HallChannel) AuthorizeDependsOn() []rx.Dependency {
	return []rx.Dependency{
		{Model: HallSeat{}},                // in the state: exact routing
		{Model: Account{}, User: true},     // outside: the row's key is the user id
		{Model: Hall{}, Relation: "Seats"}, // a seat moving to another hall
	}
}

func (*HallChannel) TrackPresence() rx.PresenceOptions { return rx.PresenceOptions{} }

func (*HallChannel) Actions() []string { return []string{"Ping"} }

// Ping is an action: it must be refused once access ended.
func (*HallChannel) Ping(ctx context.Context) (string, error) { return "pong", nil }

type hallEnv struct {
	db    *gorm.DB
	hub   *rx.Hub
	calls *atomic.Int64
}

func newHallEnv(t *testing.T, db *gorm.DB) *hallEnv {
	t.Helper()
	if err := db.AutoMigrate(&Hall{}, &HallSeat{}, &HallPost{}, &Account{}); err != nil {
		t.Fatal(err)
	}
	env := &hallEnv{db: db, calls: &atomic.Int64{}}
	h, err := rx.New(db, rx.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	if err := h.Register(&HallChannel{db: db, calls: env.calls}); err != nil {
		t.Fatal(err)
	}
	env.hub = h
	must(t, db.Create(&[]Account{{ID: 1, Name: "alice"}, {ID: 2, Name: "bob"}}).Error)
	must(t, db.Create(&Hall{ID: 1, Title: "hall", Seats: []HallSeat{{UserID: 1, Role: "member"}, {UserID: 2, Role: "member"}}}).Error)
	return env
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func (env *hallEnv) subscribe(t *testing.T, user string) *rx.Subscription {
	t.Helper()
	sub, err := env.hub.Subscribe(context.Background(), "HallChannel", HallParams{HallID: 1}, rx.User{ID: user}, rx.SubscribeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sub.Close)
	next(t, sub) // the snapshot
	return sub
}

// post commits a post and returns its text.
func (env *hallEnv) post(t *testing.T, text string) {
	t.Helper()
	must(t, env.db.Create(&HallPost{HallID: 1, Text: text}).Error)
}

// carries reports whether ev holds a post with text.
func carries(ev *rx.Event, text string) bool {
	for _, in := range ev.Instances {
		if in.Type == "HallPost" && strings.Contains(string(in.Fields["text"]), text) {
			return true
		}
	}
	return false
}

// ended reads sub's events until it ends, failing if one carries text, and
// returns its error.
func ended(t *testing.T, sub *rx.Subscription, text string) error {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		select {
		case ev, ok := <-sub.Events():
			if !ok {
				return sub.Err()
			}
			if carries(ev, text) {
				t.Fatalf("a delta of a commit after the revoking one reached the subscriber: %s", dump(ev))
			}
		case <-timeout:
			t.Fatal("the subscription did not end within 15s")
		}
	}
}

// until reads sub's events until one carries text.
func until(t *testing.T, sub *rx.Subscription, text string) {
	t.Helper()
	for {
		if ev := next(t, sub); carries(ev, text) {
			return
		}
	}
}

func assertForbidden(t *testing.T, err error) {
	t.Helper()
	var e *rx.Error
	if !errors.As(err, &e) || e.Code != rx.CodeForbidden {
		t.Fatalf("want a forbidden *rx.Error, got %v", err)
	}
}

func TestReauthSQLite(t *testing.T)   { testReauth(t, openSQLite) }
func TestReauthPostgres(t *testing.T) { testReauth(t, openPostgres) }
func TestReauthMySQL(t *testing.T)    { testReauth(t, openMySQL) }

func testReauth(t *testing.T, open func(testing.TB) *gorm.DB) {
	revocations := []struct {
		name string
		// calls is how many Authorize calls the revocation costs: one per
		// distinct user of the affected streams, or only the user's.
		calls  int64
		revoke func(t *testing.T, db *gorm.DB)
	}{
		{"seat deleted", 2, func(t *testing.T, db *gorm.DB) {
			must(t, db.Where("hall_id = ? AND user_id = ?", 1, 2).Delete(&HallSeat{}).Error)
		}},
		{"role changed", 2, func(t *testing.T, db *gorm.DB) {
			must(t, db.Model(&HallSeat{}).Where("hall_id = ? AND user_id = ?", 1, 2).Update("role", "banned").Error)
		}},
		{"account deleted", 1, func(t *testing.T, db *gorm.DB) {
			must(t, db.Delete(&Account{}, 2).Error)
		}},
		{"seat moved to another hall", 2, func(t *testing.T, db *gorm.DB) {
			must(t, db.Create(&Hall{ID: 2, Title: "other"}).Error)
			must(t, db.Model(&HallSeat{}).Where("hall_id = ? AND user_id = ?", 1, 2).Update("hall_id", 2).Error)
		}},
	}
	for _, rv := range revocations {
		t.Run(rv.name, func(t *testing.T) {
			env := newHallEnv(t, open(t))
			alice := env.subscribe(t, "1")
			bob := env.subscribe(t, "2")
			bob2 := env.subscribe(t, "2") // another tab
			ctx := context.Background()
			if got := env.hub.Presence(rx.StreamPlace("HallChannel", 1)); len(got) != 2 {
				t.Fatalf("presence before: %+v", got)
			}

			// A commit that touches no dependency re-checks nobody.
			before := env.calls.Load()
			env.post(t, "before")
			until(t, alice, "before")
			until(t, bob, "before")
			until(t, bob2, "before")
			if n := env.calls.Load() - before; n != 0 {
				t.Fatalf("a commit without a dependency ran Authorize %d times", n)
			}

			before = env.calls.Load()
			rv.revoke(t, env.db)
			env.post(t, "after")
			for _, sub := range []*rx.Subscription{bob, bob2} {
				assertForbidden(t, ended(t, sub, "after"))
			}
			until(t, alice, "after")
			must(t, env.hub.Wait(ctx))
			if n := env.calls.Load() - before; n != rv.calls {
				t.Fatalf("the revocation ran Authorize %d times, want %d", n, rv.calls)
			}
			if alice.Err() != nil {
				t.Fatalf("alice's subscription ended: %v", alice.Err())
			}
			_, err := bob.Call(ctx, "ping", nil)
			assertForbidden(t, err)
			_, err = bob.Write(ctx, rx.WriteRequest{Op: rx.OpSave, Layer: "HallPost", Row: "1", Fields: map[string]json.RawMessage{"text": json.RawMessage(`"x"`)}})
			assertForbidden(t, err)
			if v, err := alice.Call(ctx, "ping", nil); err != nil || v != "pong" {
				t.Fatalf("alice's action: %v, %v", v, err)
			}
			got := env.hub.Presence(rx.StreamPlace("HallChannel", 1))
			if len(got) != 1 || got[0].User != "1" {
				t.Fatalf("presence after: %+v, want alice only", got)
			}
		})
	}
}

// MemberChannel lets in the members of a chat, kept in a many2many join
// table (chat_members), as examples/chat does.
type MemberChannel struct {
	rx.Channel[Chat, ChatParams]
	db *gorm.DB
}

func (c *MemberChannel) Authorize(ctx context.Context, u rx.User, p ChatParams) error {
	var n int64
	if err := c.db.WithContext(ctx).Table("chat_members").Where("chat_id = ? AND user_id = ?", p.ChatID, u.ID).Count(&n).Error; err != nil {
		return err
	}
	if n == 0 {
		return rx.Errorf(rx.CodeForbidden, "not a member of chat %d", p.ChatID)
	}
	return nil
}

func (*MemberChannel) AuthorizeDependsOn() []rx.Dependency {
	return []rx.Dependency{{Model: Chat{}, Relation: "Members"}}
}

func TestReauthJoinTableSQLite(t *testing.T)   { testReauthJoinTable(t, openSQLite(t)) }
func TestReauthJoinTablePostgres(t *testing.T) { testReauthJoinTable(t, openPostgres(t)) }
func TestReauthJoinTableMySQL(t *testing.T)    { testReauthJoinTable(t, openMySQL(t)) }

func testReauthJoinTable(t *testing.T, db *gorm.DB) {
	migrate(t, db)
	h, err := rx.New(db, rx.Config{})
	must(t, err)
	t.Cleanup(func() { h.Close() })
	must(t, h.Register(&MemberChannel{db: db}))
	ann, bo := User{ID: 1, Name: "ann"}, User{ID: 2, Name: "bo"}
	must(t, db.Create(&Chat{ID: 1, Title: "t", Members: []User{ann, bo}}).Error)
	ctx := context.Background()
	sub := func(user string) *rx.Subscription {
		s, err := h.Subscribe(ctx, "MemberChannel", ChatParams{ChatID: 1}, rx.User{ID: user}, rx.SubscribeOptions{})
		must(t, err)
		t.Cleanup(s.Close)
		next(t, s)
		return s
	}
	a, b := sub("1"), sub("2")
	must(t, db.Model(&Chat{ID: 1}).Association("Members").Delete(&bo))
	must(t, db.Create(&Message{ChatID: 1, SenderID: 1, Text: "after"}).Error)
	for {
		ev, ok := <-b.Events()
		if !ok {
			break
		}
		for _, in := range ev.Instances {
			if in.Type == "Message" {
				t.Fatalf("the message after the removal reached the removed member: %s", dump(ev))
			}
		}
	}
	assertForbidden(t, b.Err())
	for got := false; !got; {
		for _, in := range next(t, a).Instances {
			got = got || in.Type == "Message"
		}
	}
}

// BatchHallChannel answers re-checks for all users at once.
type BatchHallChannel struct {
	HallChannel
	batches *atomic.Int64
}

func (*BatchHallChannel) ChannelName() string { return "BatchHallChannel" }

func (c *BatchHallChannel) AuthorizeUsers(ctx context.Context, p HallParams, users []rx.User) []error {
	c.batches.Add(1)
	errs := make([]error, len(users))
	for i, u := range users {
		errs[i] = c.HallChannel.Authorize(ctx, u, p)
	}
	return errs
}

// A UsersAuthorizer is called once per re-check, for every user.
func TestReauthUsersAuthorizer(t *testing.T) {
	env := newHallEnv(t, openSQLite(t))
	batches := &atomic.Int64{}
	must(t, env.hub.Register(&BatchHallChannel{HallChannel{db: env.db, calls: env.calls}, batches}))
	ctx := context.Background()
	sub := func(user string) *rx.Subscription {
		s, err := env.hub.Subscribe(ctx, "BatchHallChannel", HallParams{HallID: 1}, rx.User{ID: user}, rx.SubscribeOptions{})
		must(t, err)
		t.Cleanup(s.Close)
		next(t, s)
		return s
	}
	alice, bob := sub("1"), sub("2")
	must(t, env.db.Model(&HallSeat{}).Where("user_id = ?", 2).Update("role", "banned").Error)
	env.post(t, "after")
	assertForbidden(t, ended(t, bob, "after"))
	until(t, alice, "after")
	if n := batches.Load(); n != 1 {
		t.Fatalf("AuthorizeUsers ran %d times, want 1", n)
	}
}

// GatedHallChannel holds Authorize of user 2 until the test lets it go.
type GatedHallChannel struct {
	HallChannel
	hold          atomic.Bool
	entered, gate chan struct{}
}

func (*GatedHallChannel) ChannelName() string { return "GatedHallChannel" }

func (c *GatedHallChannel) Authorize(ctx context.Context, u rx.User, p HallParams) error {
	err := c.HallChannel.Authorize(ctx, u, p)
	if u.ID == "2" && c.hold.Swap(false) {
		c.entered <- struct{}{}
		<-c.gate
	}
	return err
}

// A revocation committed while Subscribe's Authorize is running (it said
// yes) does not let the subscription in: it is checked again where no
// commit can come in between.
func TestReauthDuringSubscribe(t *testing.T) {
	env := newHallEnv(t, openSQLite(t))
	ch := &GatedHallChannel{HallChannel: HallChannel{db: env.db, calls: env.calls}, entered: make(chan struct{}), gate: make(chan struct{})}
	ch.hold.Store(true)
	must(t, env.hub.Register(ch))
	ctx := context.Background()
	errc := make(chan error, 1)
	go func() {
		_, err := env.hub.Subscribe(ctx, "GatedHallChannel", HallParams{HallID: 1}, rx.User{ID: "2"}, rx.SubscribeOptions{})
		errc <- err
	}()
	<-ch.entered // Authorize read the seat: allowed
	must(t, env.db.Where("user_id = ?", 2).Delete(&HallSeat{}).Error)
	must(t, env.hub.Wait(ctx))
	close(ch.gate)
	// Refused as at subscribe: with the hook's own code.
	if err := <-errc; err == nil || rx.Public(err).Code != rx.CodeNotFound {
		t.Fatalf("subscribe after the seat was deleted: %v", err)
	}
}

// ChatMemberRow is a model on the join table of Chat.Members.
type ChatMemberRow struct {
	ChatID uint `gorm:"primaryKey"`
	UserID uint `gorm:"primaryKey"`
}

func (ChatMemberRow) TableName() string { return "chat_members" }

type JoinRowChannel struct{ MemberChannel }

func (*JoinRowChannel) ChannelName() string { return "JoinRowChannel" }

func (*JoinRowChannel) AuthorizeDependsOn() []rx.Dependency {
	return []rx.Dependency{{Model: ChatMemberRow{}}}
}

// A dependency on a join table's model is refused, naming the relation to
// declare instead: as a layer it would hide the relation's changes.
func TestReauthDeclarationErrors(t *testing.T) {
	db := openSQLite(t)
	migrate(t, db)
	h := newHub(t, db) // registers ChatChannel: chat_members is Chat.Members
	var de *rx.DeclarationError
	err := h.Register(&JoinRowChannel{MemberChannel{db: db}})
	if !errors.As(err, &de) || !strings.Contains(de.Reason, `Relation: "Members"`) {
		t.Fatalf("want a DeclarationError naming the relation, got %v", err)
	}
}

type BadRelationChannel struct{ MemberChannel }

func (*BadRelationChannel) ChannelName() string { return "BadRelationChannel" }

func (*BadRelationChannel) AuthorizeDependsOn() []rx.Dependency {
	return []rx.Dependency{{Model: Chat{}, Relation: "Nope"}}
}

func TestReauthUnknownRelation(t *testing.T) {
	db := openSQLite(t)
	migrate(t, db)
	h := newHub(t, db)
	var de *rx.DeclarationError
	if err := h.Register(&BadRelationChannel{}); !errors.As(err, &de) || !strings.Contains(de.Reason, "Nope") {
		t.Fatalf("want a DeclarationError naming the relation, got %v", err)
	}
}
