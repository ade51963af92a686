package channel_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rxgorm/rxgorm/channel"
	"github.com/rxgorm/rxgorm/rx"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"
	"gorm.io/gorm/logger"
)

// GuardedRoomChannel is RoomChannel's permission (public rooms for
// everyone signed in, private ones for user 1) declared as depending on
// the room row: making a room private ends the others' subscriptions.
type GuardedRoomChannel struct {
	rx.Channel[Room, RoomParams]
	DB *gorm.DB
}

func (c *GuardedRoomChannel) Authorize(ctx context.Context, u rx.User, p RoomParams) error {
	return RoomChannel{DB: c.DB}.Authorize(ctx, u, p)
}

func (*GuardedRoomChannel) AuthorizeDependsOn() []rx.Dependency {
	return []rx.Dependency{{Model: Room{}}}
}

func (*GuardedRoomChannel) Actions() []string { return []string{"Ping"} }

func (*GuardedRoomChannel) Ping(ctx context.Context) (string, error) { return "pong", nil }

func (*GuardedRoomChannel) Writable() []rx.Writable {
	return []rx.Writable{rx.Writes[Post]{Fields: []string{"text"}, Save: true}}
}

func TestReauthOverSocketSQLite(t *testing.T)   { testReauthOverSocket(t, openSQLite) }
func TestReauthOverSocketPostgres(t *testing.T) { testReauthOverSocket(t, openPostgres) }
func TestReauthOverSocketMySQL(t *testing.T)    { testReauthOverSocket(t, openMySQL) }

// A room made private: user 2's subscription ends with forbidden before
// any delta of a later commit, and its actions and writes are refused;
// user 1 keeps it.
func testReauthOverSocket(t *testing.T, open func(testing.TB) *gorm.DB) {
	e := newEnv(t, open, channel.Options{})
	if err := e.hub.Register(&GuardedRoomChannel{DB: e.db}); err != nil {
		t.Fatal(err)
	}
	e.db.Create(&Room{ID: 1, Name: "lobby", Public: true, Posts: []Post{{AuthorID: 2, Text: "mine"}}})
	ann, bob := e.login("1"), e.login("2")
	for _, c := range []*client{ann, bob} {
		c.send(`{"type":"sub","id":"g","channel":"GuardedRoomChannel","params":{"roomId":1}}`)
		c.expect("snapshot")
		c.expect("done")
	}
	if err := e.db.Model(&Room{ID: 1}).Update("public", false).Error; err != nil {
		t.Fatal(err)
	}
	if err := e.db.Create(&Post{RoomID: 1, AuthorID: 1, Text: "after"}).Error; err != nil {
		t.Fatal(err)
	}
	for {
		m := bob.next()
		if m["type"] == "delta" && strings.Contains(fmt.Sprint(m), "after") {
			t.Fatalf("a delta of a later commit reached the subscriber: %v", m)
		}
		if m["type"] == "error" {
			if m["sub"] != "g" || m["code"] != "forbidden" {
				t.Fatalf("want the subscription's forbidden end, got %v", m)
			}
			break
		}
	}
	for !strings.Contains(fmt.Sprint(ann.next()), "after") {
	}
	bob.send(`{"type":"call","id":1,"sub":"g","action":"ping","args":[]}`)
	bob.send(`{"type":"save","id":2,"sub":"g","layer":"Post","row":"1","fields":{"text":"edited"}}`)
	for id := 1; id <= 2; id++ {
		m := bob.next()
		if m["type"] != "result" || m["id"] != float64(id) {
			t.Fatalf("want the result of request %d, got %v", id, m)
		}
		if errv, _ := m["error"].(map[string]any); errv == nil || errv["code"] != "not_found" {
			t.Fatalf("request %d through the ended subscription: %v", id, m)
		}
	}
	var p Post
	e.db.First(&p, 1)
	if p.Text != "mine" {
		t.Fatalf("the write went through: %q", p.Text)
	}
	ann.send(`{"type":"call","id":3,"sub":"g","action":"ping","args":[]}`)
	if m := ann.expect("result"); m["value"] != "pong" {
		t.Fatalf("the member's action: %v", m)
	}
}

func TestRevokeClosesSocketsSQLite(t *testing.T)   { testRevokeClosesSockets(t, openSQLite) }
func TestRevokeClosesSocketsPostgres(t *testing.T) { testRevokeClosesSockets(t, openPostgres) }
func TestRevokeClosesSocketsMySQL(t *testing.T)    { testRevokeClosesSockets(t, openMySQL) }

// alive asserts the socket still answers.
func alive(c *client) {
	c.t.Helper()
	c.send(`{"type":"unsub","id":"nothing"}`)
	if m := c.expect("error"); m["code"] != "not_found" {
		c.t.Fatalf("%v", m)
	}
}

func testRevokeClosesSockets(t *testing.T, open func(testing.TB) *gorm.DB) {
	e := newEnv(t, open, channel.Options{})
	ctx := context.Background()
	token := func(user string) string {
		tok, err := e.auth.Create(ctx, user)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	as := func(user, tok string) *client {
		c := e.dial(nil)
		c.send(`{"type":"hello","v":1,"token":%q}`, tok)
		if w := c.expect("welcome"); w["user"] != user {
			t.Fatalf("welcome: %v", w)
		}
		return c
	}
	refused := func(tok string) {
		t.Helper()
		c := e.dial(nil)
		c.send(`{"type":"hello","v":1,"token":%q}`, tok)
		if m := c.expect("error"); m["code"] != "unauthenticated" {
			t.Fatalf("%v", m)
		}
	}
	closed := func(c *client) {
		t.Helper()
		if code := c.waitClose(); code != channel.CloseAuthFailed {
			t.Fatalf("close code %d, want %d", code, channel.CloseAuthFailed)
		}
	}

	// Revoke one token: its sockets close, the user's other tab stays.
	t1, t2 := e.tokens["1"], token("1")
	a1, a1b, a2 := as("1", t1), as("1", t1), as("1", t2)
	bob := e.login("2")
	if err := e.auth.Revoke(ctx, t1); err != nil {
		t.Fatal(err)
	}
	closed(a1)
	closed(a1b)
	alive(a2)
	alive(bob)
	refused(t1)

	// Revoke a user: every socket of theirs closes.
	a3 := as("1", token("1"))
	if err := e.auth.RevokeUser(ctx, "1"); err != nil {
		t.Fatal(err)
	}
	closed(a2)
	closed(a3)
	alive(bob)
	refused(t2)

	// A password change keeps the token it was made with.
	keep := token("2")
	kept := as("2", keep)
	if err := e.auth.RevokeOthers(ctx, "2", keep); err != nil {
		t.Fatal(err)
	}
	closed(bob)
	alive(kept)
	refused(e.tokens["2"])

	// Rotation: the old token is revoked, the new one works.
	fresh, err := e.auth.Rotate(ctx, keep)
	if err != nil {
		t.Fatal(err)
	}
	closed(kept)
	refused(keep)
	alive(as("2", fresh))
	if _, err := e.auth.Rotate(ctx, keep); rx.Public(err).Code != rx.CodeUnauthenticated {
		t.Fatalf("rotating a revoked token: %v", err)
	}
}

// Tokens are stored as their SHA-256, never in plaintext.
func TestTokensHashedAtRest(t *testing.T) {
	e := newEnv(t, openSQLite, channel.Options{})
	tok, err := e.auth.Create(context.Background(), "7")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	if err := e.db.Table("rx_tokens").Where("user_id = ?", "7").Pluck("key", &keys).Error; err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0] == tok || strings.Contains(keys[0], tok) {
		t.Fatalf("rx_tokens holds %q for token %q", keys, tok)
	}
	if keys[0] != channel.HashToken(tok) || len(keys[0]) != 64 {
		t.Fatalf("rx_tokens holds %q, want the SHA-256 of the token", keys[0])
	}
	if u, err := e.auth.Authenticate(context.Background(), tok); err != nil || u.ID != "7" {
		t.Fatalf("authenticate: %v, %v", u, err)
	}
	if _, err := e.auth.Authenticate(context.Background(), keys[0]); err == nil {
		t.Fatal("the stored hash signs in")
	}
}

// Plaintext tokens of a former version are hashed when TokenAuth starts,
// and keep working.
func TestPlaintextTokensMigrated(t *testing.T) {
	for name, open := range dbs {
		t.Run(name, func(t *testing.T) { testPlaintextTokensMigrated(t, open(t)) })
	}
}

func testPlaintextTokensMigrated(t *testing.T, db *gorm.DB) {
	if err := db.AutoMigrate(&channel.Token{}); err != nil {
		t.Fatal(err)
	}
	old := strings.Repeat("ab", 20)
	if err := db.Create(&channel.Token{Key: old, UserID: "3", CreatedAt: time.Now()}).Error; err != nil {
		t.Fatal(err)
	}
	auth, err := channel.NewTokenAuth(db)
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	if err := db.Model(&channel.Token{}).Where(clause.Eq{Column: clause.Column{Name: "key"}, Value: old}).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Fatal("the plaintext token is still stored")
	}
	if err := db.Model(&channel.Token{}).Count(&n).Error; err != nil || n != 1 {
		t.Fatalf("%d tokens stored (%v), want the hashed one", n, err)
	}
	if u, err := auth.Authenticate(context.Background(), old); err != nil || u.ID != "3" {
		t.Fatalf("authenticate a migrated token: %v, %v", u, err)
	}
}

// A socket is closed with 4001 when its token expires, and the token no
// longer signs in.
func TestTokenExpiryClosesSocket(t *testing.T) {
	e := newEnv(t, openSQLite, channel.Options{})
	e.auth.TTL = 2 * time.Second
	tok, err := e.auth.Create(context.Background(), "1")
	if err != nil {
		t.Fatal(err)
	}
	c := e.dial(nil)
	c.send(`{"type":"hello","v":1,"token":%q}`, tok)
	c.expect("welcome")
	if code := c.waitClose(); code != channel.CloseAuthFailed {
		t.Fatalf("close code %d, want %d", code, channel.CloseAuthFailed)
	}
	c = e.dial(nil)
	c.send(`{"type":"hello","v":1,"token":%q}`, tok)
	if m := c.expect("error"); m["code"] != "unauthenticated" {
		t.Fatalf("%v", m)
	}
}

// Revoking on one node closes the sockets on the others, through the
// broker.
func TestRevokeAcrossNodes(t *testing.T) {
	base := openSQLite(t)
	if err := base.AutoMigrate(&User{}, &Room{}, &Post{}, &Note{}); err != nil {
		t.Fatal(err)
	}
	auth, err := channel.NewTokenAuth(base)
	if err != nil {
		t.Fatal(err)
	}
	tokens := map[string]string{}
	for _, u := range []string{"1", "2"} {
		if tokens[u], err = auth.Create(context.Background(), u); err != nil {
			t.Fatal(err)
		}
	}
	prefix := fmt.Sprintf("rxrevoke:%d:", time.Now().UnixNano())
	node := func() *env {
		rc := redis.NewClient(&redis.Options{Addr: redisAddr(), MaxRetries: -1, DialTimeout: 500 * time.Millisecond})
		b := rx.NewRedisBroker(rc, rx.RedisOptions{Prefix: prefix})
		t.Cleanup(func() { b.Close(); rc.Close() })
		db, err := gorm.Open(base.Dialector, &gorm.Config{Logger: logger.Discard})
		if err != nil {
			t.Fatal(err)
		}
		return startEnv(t, db, rx.Config{Broker: b}, channel.Options{}, tokens)
	}
	n0, n1 := node(), node()
	ann, bob := n1.login("1"), n1.login("2")
	if err := n0.auth.RevokeUser(context.Background(), "1"); err != nil {
		t.Fatal(err)
	}
	if code := ann.waitClose(); code != channel.CloseAuthFailed {
		t.Fatalf("close code %d on the other node, want %d", code, channel.CloseAuthFailed)
	}
	alive(bob)
}
