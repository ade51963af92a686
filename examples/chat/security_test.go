package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"image/png"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/channel"
	"github.com/rxgorm/rxgorm/examples/chat/app"
)

// Issue 14 part C over the real HTTP server and WebSocket.

// wantLimited checks a 429 answer: code overloaded and a Retry-After.
func wantLimited(t *testing.T, what string, code int, e apiError, retry string) {
	t.Helper()
	if code != http.StatusTooManyRequests || e.Error.Code != "overloaded" {
		t.Fatalf("%s: %d %+v, want 429 overloaded", what, code, e)
	}
	if n, err := strconv.Atoi(retry); err != nil || n < 1 {
		t.Fatalf("%s: Retry-After %q", what, retry)
	}
}

// postRetry posts JSON, decodes the answer into out and returns the
// status and the Retry-After header.
func postRetry(t *testing.T, url string, body any, out any) (int, string) {
	t.Helper()
	b, _ := json.Marshal(body)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		t.Fatalf("%s: %v", url, err)
	}
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// Login attempts are limited per client IP, and per username from
// anywhere; over the limit the answer is 429 with code overloaded and
// Retry-After, even for the right password.
func TestLoginRateLimit(t *testing.T) {
	hs, s, _ := testServerAll(t)
	var alice session
	if code := post(t, hs.URL+"/api/register", "", app.Registration{Username: "alice", Password: "secret-1"}, &alice); code != http.StatusCreated {
		t.Fatalf("register: %d", code)
	}

	// Per username: three attempts on alice, then 429; bob is not limited.
	s.loginUser = app.NewLimiter(app.Rate{Every: time.Hour, Burst: 3})
	for i := range 3 {
		var e apiError
		if code := post(t, hs.URL+"/api/login", "", credentials{"alice", fmt.Sprint("wrong-", i)}, &e); code != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d %+v", i+1, code, e)
		}
	}
	var e apiError
	code, retry := postRetry(t, hs.URL+"/api/login", credentials{"alice", "secret-1"}, &e)
	wantLimited(t, "fourth login as alice", code, e, retry)
	if code := post(t, hs.URL+"/api/login", "", credentials{"bob", "secret-2"}, &e); code != http.StatusUnauthorized {
		t.Fatalf("login as bob: %d", code)
	}

	// Per IP: five attempts from this address, whatever the usernames.
	s.loginUser = app.NewLimiter(app.DefaultLoginUserRate)
	s.loginIP = app.NewLimiter(app.Rate{Every: time.Hour, Burst: 5})
	for i := range 5 {
		if code := post(t, hs.URL+"/api/login", "", credentials{fmt.Sprint("user", i), "secret"}, &e); code != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d", i+1, code)
		}
	}
	code, retry = postRetry(t, hs.URL+"/api/login", credentials{"alice", "secret-1"}, &e)
	wantLimited(t, "sixth login from one address", code, e, retry)
}

// Registrations are limited per client IP.
func TestRegisterRateLimit(t *testing.T) {
	hs, s, _ := testServerAll(t)
	s.register = app.NewLimiter(app.Rate{Every: time.Hour, Burst: 2})
	for _, name := range []string{"alice", "bob"} {
		if code := post(t, hs.URL+"/api/register", "", app.Registration{Username: name, Password: "secret-1"}, nil); code != http.StatusCreated {
			t.Fatalf("register %s: %d", name, code)
		}
	}
	var e apiError
	code, retry := postRetry(t, hs.URL+"/api/register", app.Registration{Username: "carol", Password: "secret-1"}, &e)
	wantLimited(t, "third registration", code, e, retry)
}

// The avatar endpoint answers the same for a username with an account and
// one without: it does not tell which usernames exist.
func TestAvatarDoesNotRevealUsers(t *testing.T) {
	hs, _ := testServer(t)
	post(t, hs.URL+"/api/register", "", app.Registration{Username: "alice", Password: "secret-1"}, nil)
	for _, name := range []string{"alice", "nobody"} {
		code, ctype, body := get(t, hs.URL+app.AvatarURL(name), "")
		if code != http.StatusOK || ctype != "image/png" {
			t.Fatalf("avatar of %s: %d %s", name, code, ctype)
		}
		if _, err := png.Decode(bytes.NewReader(body)); err != nil {
			t.Fatalf("avatar of %s: %v", name, err)
		}
		if !bytes.Equal(body, app.Avatar(name)) {
			t.Fatalf("avatar of %s is not its identicon", name)
		}
	}
	// A seed draws the avatar (random ones since issue 18), for any
	// username; a malformed seed has none.
	const seed = "0123456789abcdef"
	if code, _, body := get(t, hs.URL+app.AvatarSeedURL("nobody", seed), ""); code != http.StatusOK || !bytes.Equal(body, app.Avatar(seed)) {
		t.Fatalf("avatar of seed %s: %d", seed, code)
	}
	if code, _, _ := get(t, hs.URL+"/api/avatar/alice.png?seed=../x", ""); code != http.StatusNotFound {
		t.Fatalf("malformed seed: %d", code)
	}
}

// Changing the password over the WebSocket revokes the user's other
// tokens and keeps the one of the session that changed it.
func TestPasswordChangeRevokesOtherSessions(t *testing.T) {
	hs, _ := testServer(t)
	var mine, other session
	if code := post(t, hs.URL+"/api/register", "", app.Registration{Username: "alice", Password: "secret-1"}, &mine); code != http.StatusCreated {
		t.Fatalf("register: %d", code)
	}
	if code := post(t, hs.URL+"/api/login", "", credentials{"alice", "secret-1"}, &other); code != http.StatusOK {
		t.Fatalf("login: %d", code)
	}
	ws := dialWS(t, hs.URL, "alice", mine.Token)
	ws.subscribe("home", "HomeChannel", map[string]any{"userId": mine.User.ID})
	otherWS := dialWS(t, hs.URL, "alice elsewhere", other.Token)
	otherWS.subscribe("home", "HomeChannel", map[string]any{"userId": mine.User.ID})
	ws.call("home", "changePassword", "secret-1", "secret-2")
	// The other session's socket closes (4001); this one stays.
	otherWS.awaitClosed(channel.CloseAuthFailed)
	ws.call("home", "createFriendGroup", "still signed in")

	var me app.User
	if code := getJSON(t, hs.URL+"/api/me", other.Token, "", &me); code != http.StatusUnauthorized {
		t.Fatalf("the other session after the password change: %d", code)
	}
	if code := getJSON(t, hs.URL+"/api/me", mine.Token, "", &me); code != http.StatusOK || me.Username != "alice" {
		t.Fatalf("the session that changed the password: %d", code)
	}
	var s session
	if code := post(t, hs.URL+"/api/login", "", credentials{"alice", "secret-1"}, &s); code != http.StatusUnauthorized {
		t.Fatalf("login with the old password: %d", code)
	}
	if code := post(t, hs.URL+"/api/login", "", credentials{"alice", "secret-2"}, &s); code != http.StatusOK {
		t.Fatalf("login with the new password: %d", code)
	}
}
