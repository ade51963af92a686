package app

import (
	"bytes"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/rx"
	"golang.org/x/crypto/bcrypt"
)

// Issue 14 part C: the app's side of hardening.

// Names (display names, chat and friend group names) refuse control and
// text-direction characters with bad_request, through the actions as
// clients call them; usernames keep their strict form.
func TestNamesRefuseControlAndBidi(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ann, bob := e.user("ann"), e.user("bob")
		chatID := e.befriend(ann, bob)
		ref := must[ChatRef](ann.home, "createGroupChat", "plain", []uint{bob.ID})
		ac := e.openChat(ann, ref.ID)
		bad := []string{
			"ann\u202Egnp.exe", // right-to-left override
			"\u2066ann\u2069",  // isolate
			"ann\u200F",        // right-to-left mark
			"ann\u200E",        // left-to-right mark
			"a\u202Ab",         // embedding
			"a\u061Cb",         // Arabic letter mark
			"ann\x07",          // bell
			"a\nb",             // line break
			"a\u0085b",         // next line (C1)
			"a\u2028b",         // line separator
			"a\x00b",           // NUL
		}
		for _, name := range bad {
			refuse(ann.home, rx.CodeBadRequest, "cannot contain", "updateProfile", ProfileUpdate{DisplayName: name})
			refuse(ann.home, rx.CodeBadRequest, "cannot contain", "createGroupChat", name, []uint{bob.ID})
			refuse(ac, rx.CodeBadRequest, "cannot contain", "rename", name)
			refuse(ann.home, rx.CodeBadRequest, "cannot contain", "createFriendGroup", name)
			if _, err := e.app.Register(bg, Registration{Username: "cyd", Password: password, DisplayName: name}); code(err) != rx.CodeBadRequest {
				t.Errorf("register with display name %q: %v, want bad_request", name, err)
			}
			if _, err := e.app.Register(bg, Registration{Username: "cyd" + name, Password: password}); code(err) != rx.CodeBadRequest {
				t.Errorf("register username %q: %v, want bad_request", "cyd"+name, err)
			}
		}
		// Nothing changed; right-to-left text without controls is fine.
		if h := ann.home.home(); h.User.DisplayName != "Ann" {
			t.Fatalf("display name became %q", h.User.DisplayName)
		}
		must[User](ann.home, "updateProfile", ProfileUpdate{DisplayName: "آن"})
		must[ChatRef](ac, "rename", "گروه")
		// Messages keep line breaks and direction marks but refuse other
		// controls, NUL among them (PostgreSQL refuses it).
		bc := e.openChat(bob, chatID)
		must[Message](bc, "sendMessage", "line one\nline two \u200F!")
		refuse(bc, rx.CodeBadRequest, "cannot contain control characters", "sendMessage", "nul\x00here")
		refuse(bc, rx.CodeBadRequest, "cannot contain control characters", "sendMessage", "esc\x1b[31m")
		refuse(ann.home, rx.CodeBadRequest, "cannot contain control characters", "inviteFriend", "cyd", "hi\x00")
	})
}

// Oversized and out-of-range inputs are bad_request with a message
// saying what is allowed, never internal.
func TestOversizedInputs(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		ann, bob := e.user("ann"), e.user("bob")
		chatID := e.befriend(ann, bob)
		bc := e.openChat(bob, chatID)
		many := make([]uint, 40000)
		for i := range many {
			many[i] = uint(i + 1)
		}
		refuse(ann.home, rx.CodeBadRequest, "at most 200 members", "createGroupChat", "big", many)
		refuse(bc, rx.CodeBadRequest, "a message has 1 to 4000 characters", "sendMessage", strings.Repeat("x", MaxMessage+1))
		refuse(bc, rx.CodeBadRequest, "a message has 1 to 4000 characters", "sendMessage", strings.Repeat("😀", MaxMessage+1))
		refuse(ann.home, rx.CodeBadRequest, "a display name has 1 to 64", "updateProfile", ProfileUpdate{DisplayName: strings.Repeat("x", 100000)})
		refuse(ann.home, rx.CodeBadRequest, "a chat name has 1 to 64", "createGroupChat", strings.Repeat("x", 65), []uint{bob.ID})
		refuse(ann.home, rx.CodeBadRequest, "an invitation message has at most 200", "inviteFriend", "cyd", strings.Repeat("x", 201))
		// Ids beyond a bigint.
		huge := uint(math.MaxUint64)
		refuse(bc, rx.CodeBadRequest, "not a valid id", "markRead", huge)
		refuse(bc, rx.CodeBadRequest, "not a valid id", "history", huge, 10)
		refuse(ann.home, rx.CodeBadRequest, "not a valid id", "createGroupChat", "x", []uint{huge})
		refuse(ann.home, rx.CodeBadRequest, "not a valid id", "deleteFriend", huge)
		refuse(ann.home, rx.CodeBadRequest, "not a valid id", "acceptChatInvitation", huge)
		refuse(ann.home, rx.CodeBadRequest, "not a valid id", "moveFriend", bob.ID, huge)
		if _, err := e.app.Hub.Subscribe(bg, "ChatChannel", ChatParams{ChatID: huge}, rx.User{ID: idString(ann.ID)}, rx.SubscribeOptions{}); code(err) != rx.CodeBadRequest {
			t.Errorf("subscribe to chat %d: %v, want bad_request", huge, err)
		}
		// A malformed username (NUL, too long) is just no user.
		refuse(ann.home, rx.CodeNotFound, "no user", "inviteFriend", "bo\x00b", "")
		refuse(ann.home, rx.CodeNotFound, "no user", "inviteFriend", strings.Repeat("b", 10000), "")
		if _, _, err := e.app.Login(bg, "an\x00n", password); code(err) != rx.CodeUnauthenticated {
			t.Errorf("login with NUL in the username: %v, want unauthenticated", err)
		}
	})
}

// Login checks the password of an unknown, malformed or password-less
// username against a dummy hash, as it does a real one: one bcrypt
// comparison per attempt whatever the username, so the time of the answer
// does not tell which usernames exist. The test counts the comparisons;
// it also logs the times at a realistic cost (8; the default, 10, is 4
// times slower), without asserting on them.
func TestLoginComparesForUnknownUsers(t *testing.T) {
	e := newEnv(t, openSQLite(t))
	e.user("ann")
	var mu sync.Mutex
	var hashes [][]byte
	compare := e.app.compare
	e.app.compare = func(hash, pw []byte) error {
		mu.Lock()
		hashes = append(hashes, hash)
		mu.Unlock()
		return compare(hash, pw)
	}
	for _, c := range []struct{ user, pw string }{
		{"ann", "wrong-password"}, {"nobody", password}, {"no\x00body", password}, {DeletedUsername, ""}, {"ann", password},
	} {
		mu.Lock()
		hashes = nil
		mu.Unlock()
		_, _, err := e.app.Login(bg, c.user, c.pw)
		mu.Lock()
		n := len(hashes)
		var cost int
		if n == 1 {
			cost, _ = bcrypt.Cost(hashes[0])
		}
		mu.Unlock()
		if n != 1 || cost != bcrypt.MinCost {
			t.Errorf("login %q: %d comparisons (cost %d), want 1 at the app's cost %d", c.user, n, cost, bcrypt.MinCost)
		}
		if (c.pw == password && c.user == "ann") != (err == nil) {
			t.Errorf("login %q: %v", c.user, err)
		}
	}

	// The times at cost 8, for the log.
	db := openSQLite(t)
	a, err := New(db, Options{BcryptCost: 8})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Register(bg, Registration{Username: "ann", Password: password}); err != nil {
		t.Fatal(err)
	}
	for _, user := range []string{"ann", "nobody"} {
		start := time.Now()
		const n = 2
		for range n {
			if _, _, err := a.Login(bg, user, "wrong-password"); code(err) != rx.CodeUnauthenticated {
				t.Fatalf("login %s: %v", user, err)
			}
		}
		t.Logf("wrong login for %s (bcrypt cost 8): %v each", user, time.Since(start)/n)
	}
}

// Typing is limited per user: past the burst the call fails with
// overloaded, and the others do not hear it.
func TestTypingRateLimit(t *testing.T) {
	db := openSQLite(t)
	e := newEnvWith(t, db, Options{BcryptCost: bcrypt.MinCost, TypingRate: Rate{Every: time.Hour, Burst: 3}, TypingTimeout: time.Hour})
	ann, bob := e.user("ann"), e.user("bob")
	chatID := e.befriend(ann, bob)
	ac, bc := e.openChat(ann, chatID), e.openChat(bob, chatID)
	for range 3 {
		must[any](ac, "typing", true)
	}
	refuse(ac, rx.CodeOverloaded, "too many typing events", "typing", true)
	refuse(ac, rx.CodeOverloaded, "too many typing events", "typing", false)
	// Per user: bob still may.
	must[any](bc, "typing", true)
	eventually(t, "ann sees bob typing", func() error { return wantIDs("typing", ac.typing(), uids(bob.ID)) })
	// Sending still stops ann's indicator: that is not a Typing call.
	eventually(t, "bob sees ann typing", func() error { return wantIDs("typing", bc.typing(), uids(ann.ID)) })
	must[Message](ac, "sendMessage", "hi")
	eventually(t, "sending stopped ann", func() error { return wantIDs("typing", bc.typing(), nil) })
}

// A member who leaves a chat stops typing for the others at once, and the
// subscription they left open may not type any more.
func TestTypingEndsWhenMemberLeaves(t *testing.T) {
	eachDB(t, func(t *testing.T, e *env) {
		e.app.TypingTimeout = time.Hour
		ann, bob, cyd := e.user("ann"), e.user("bob"), e.user("cyd")
		e.befriend(ann, bob)
		e.befriend(ann, cyd)
		ref := must[ChatRef](ann.home, "createGroupChat", "team", []uint{bob.ID, cyd.ID})
		ac, bc, cc := e.openChat(ann, ref.ID), e.openChat(bob, ref.ID), e.openChat(cyd, ref.ID)
		must[any](bc, "typing", true)
		must[any](cc, "typing", true)
		eventually(t, "ann sees bob and cyd typing", func() error { return wantIDs("typing", ac.typing(), uids(bob.ID, cyd.ID)) })
		must[any](bc, "leave")
		eventually(t, "bob left: ann sees only cyd typing", func() error { return wantIDs("typing", ac.typing(), uids(cyd.ID)) })
		eventually(t, "bob's chat subscription refused", func() error {
			if !bc.refused() {
				return fmt.Errorf("ended with %v", bc.sub.Err())
			}
			return nil
		})
		refuse(bc, rx.CodeForbidden, "access to ChatChannel ended", "typing", true)
		// cyd deletes their account: gone from the typing list too.
		must[any](cyd.home, "deleteAccount", password)
		eventually(t, "cyd deleted: nobody types", func() error { return wantIDs("typing", ac.typing(), nil) })
	})
}

// syncBuffer is a bytes.Buffer for concurrent writers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// GORM logs failed statements with placeholders, never with the user data
// bound to them.
func TestSQLLogHasNoValues(t *testing.T) {
	var log syncBuffer
	old := sqlLog
	sqlLog = &log
	t.Cleanup(func() { sqlLog = old })
	const secret = "secret-username-42"
	sqlite := openSQLiteAt(t, filepath.Join(t.TempDir(), "chat.db"))
	pg := openPostgres(t)
	my := openMySQL(t)
	for _, db := range []struct {
		name string
		e    *env
	}{{"sqlite", newEnv(t, sqlite)}, {"postgres", newEnv(t, pg)}, {"mysql", newEnv(t, my)}} {
		u := User{Username: secret, DisplayName: "Secret", Avatar: "x", PasswordHash: "hash-value-1"}
		if err := db.e.app.DB.Create(&u).Error; err != nil {
			t.Fatal(err)
		}
		dup := User{Username: secret, DisplayName: "Secret", Avatar: "x", PasswordHash: "hash-value-2"}
		if err := db.e.app.DB.Create(&dup).Error; err == nil {
			t.Fatalf("%s: a duplicate username was stored", db.name)
		}
	}
	out := log.String()
	if strings.Count(out, `INSERT INTO`) < 3 {
		t.Fatalf("the failed statements were not logged: %s", out)
	}
	for _, v := range []string{secret, "hash-value-2"} {
		if strings.Contains(out, v) {
			t.Errorf("the SQL log shows the value %q: %s", v, out)
		}
	}
}
