package main

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"

	"github.com/rxgorm/rxgorm/channel"
	"github.com/rxgorm/rxgorm/examples/chat/app"
	"github.com/rxgorm/rxgorm/rx"
)

// The HTTP side: REST where it fits better than a channel action (getting
// a token, images), the rxgorm WebSocket at /rx, and the web UI.

// tokenCookie carries the token for browsers; the WebSocket server reads
// the same cookie (channel.Options.Cookie's default).
const tokenCookie = "rx_token"

// server routes the example's HTTP requests.
type server struct {
	app *app.App
	rx  *channel.Server
	mux *http.ServeMux
	// Rate limits: login attempts per client IP and per username,
	// registrations per client IP (app.Default…Rate).
	loginIP, loginUser, register *app.Limiter
	// checks are the dependencies /healthz checks, by name (monitor.go).
	checks map[string]check
}

func newServer(a *app.App, static fs.FS) *server {
	s := &server{app: a, mux: http.NewServeMux(),
		loginIP:   app.NewLimiter(app.DefaultLoginIPRate),
		loginUser: app.NewLimiter(app.DefaultLoginUserRate),
		register:  app.NewLimiter(app.DefaultRegisterRate),
	}
	s.rx = channel.NewServer(a.Hub, channel.Options{Auth: a, Cookie: tokenCookie})
	s.mux.Handle("GET /rx", s.rx)
	s.mux.HandleFunc("POST /api/register", s.registerUser)
	s.mux.HandleFunc("POST /api/login", s.login)
	s.mux.HandleFunc("POST /api/logout", s.logout)
	s.mux.HandleFunc("POST /api/logout-all", s.logoutAll)
	s.mux.HandleFunc("GET /api/avatar/{file}", s.avatar)
	s.mux.HandleFunc("GET /api/me", s.me)
	s.mux.HandleFunc("GET /api/home", s.home)
	s.mux.HandleFunc("GET /api/chats/{id}", s.chat)
	s.monitor() // GET /metrics, GET /healthz
	if _, err := fs.Stat(static, "index.html"); err == nil {
		s.mux.Handle("GET /", http.FileServerFS(static))
	} else {
		s.mux.HandleFunc("GET /", func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "the web UI is not built; see examples/chat/README.md", http.StatusNotFound)
		})
	}
	return s
}

// ServeHTTP implements http.Handler.
func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// session is the answer to register and login.
type session struct {
	Token string    `json:"token"`
	User  *app.User `json:"user"`
}

type credentials struct {
	Username string `json:"username"`
	Password string `json:"password"`
}

// register creates an account and logs it in:
// {"username","password","displayName"} → 201 {"token","user"}.
func (s *server) registerUser(w http.ResponseWriter, r *http.Request) {
	if !s.allow(w, s.register, clientIP(r), "registrations") {
		return
	}
	var reg app.Registration
	if !decode(w, r, &reg) {
		return
	}
	if _, err := s.app.Register(r.Context(), reg); err != nil {
		fail(w, err)
		return
	}
	tok, u, err := s.app.Login(r.Context(), reg.Username, reg.Password)
	if err != nil {
		fail(w, err)
		return
	}
	setToken(w, tok)
	reply(w, http.StatusCreated, session{tok, u})
}

// login: {"username","password"} → {"token","user"}.
func (s *server) login(w http.ResponseWriter, r *http.Request) {
	if !s.allow(w, s.loginIP, clientIP(r), "login attempts") {
		return
	}
	var c credentials
	if !decode(w, r, &c) {
		return
	}
	if !s.allow(w, s.loginUser, strings.ToLower(c.Username), "login attempts for this username") {
		return
	}
	tok, u, err := s.app.Login(r.Context(), c.Username, c.Password)
	if err != nil {
		fail(w, err)
		return
	}
	setToken(w, tok)
	reply(w, http.StatusOK, session{tok, u})
}

// logout revokes the request's token → 204: the sockets authenticated
// with it (every tab of this browser) close with 4001.
func (s *server) logout(w http.ResponseWriter, r *http.Request) {
	s.signOut(w, r, s.app.Logout)
}

// logoutAll revokes every token of the request's user → 204: all their
// sockets, in every browser, close with 4001. The web UI's "Sign out".
func (s *server) logoutAll(w http.ResponseWriter, r *http.Request) {
	s.signOut(w, r, s.app.LogoutEverywhere)
}

func (s *server) signOut(w http.ResponseWriter, r *http.Request, revoke func(context.Context, string) error) {
	tok := token(r)
	if tok == "" {
		fail(w, rx.Errorf(rx.CodeUnauthenticated, "no token"))
		return
	}
	if err := revoke(r.Context(), tok); err != nil {
		fail(w, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: "", Path: "/", MaxAge: -1, HttpOnly: true, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

// avatar serves GET /api/avatar/{username}.png[?seed=<16 hex digits>].
// Avatars are drawn from the seed, or from the username without one, so
// any well-formed username and seed have one, whether an account has them
// or not: the answer does not tell which usernames exist.
func (s *server) avatar(w http.ResponseWriter, r *http.Request) {
	name, ok := strings.CutSuffix(r.PathValue("file"), ".png")
	seed := r.URL.Query().Get("seed")
	if !ok || !(app.ValidUsername(name) || name == app.DeletedUsername) || (seed != "" && !app.ValidAvatarSeed(seed)) {
		http.NotFound(w, r)
		return
	}
	if seed == "" {
		seed = name
	}
	w.Header().Set("Content-Type", "image/png")
	w.Header().Set("Cache-Control", "public, max-age=86400, immutable")
	_, _ = w.Write(app.Avatar(seed))
}

// me answers the caller's profile: how the web UI, holding only the
// HttpOnly cookie after a reload, learns who is signed in.
func (s *server) me(w http.ResponseWriter, r *http.Request) {
	u, ok := s.user(w, r)
	if !ok {
		return
	}
	reply(w, http.StatusOK, u.Data)
}

// home serves the caller's HomeChannel state as REST: the same JSON a
// subscribed client rebuilds.
func (s *server) home(w http.ResponseWriter, r *http.Request) {
	u, ok := s.user(w, r)
	if !ok {
		return
	}
	uid, _ := app.UserID(u)
	s.snapshot(w, r, "HomeChannel", app.HomeParams{UserID: uid}, u)
}

// chat serves a ChatChannel state as REST.
func (s *server) chat(w http.ResponseWriter, r *http.Request) {
	u, ok := s.user(w, r)
	if !ok {
		return
	}
	id, err := strconv.ParseUint(r.PathValue("id"), 10, 64)
	if err != nil {
		fail(w, rx.Errorf(rx.CodeBadRequest, "bad chat id"))
		return
	}
	s.snapshot(w, r, "ChatChannel", app.ChatParams{ChatID: uint(id)}, u)
}

func (s *server) snapshot(w http.ResponseWriter, r *http.Request, channel string, params any, u rx.User) {
	js, err := s.app.Hub.Snapshot(r.Context(), channel, params, u)
	if err != nil {
		fail(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(js)
}

// user authenticates a REST request by its token.
func (s *server) user(w http.ResponseWriter, r *http.Request) (rx.User, bool) {
	u, err := s.app.Authenticate(r.Context(), token(r))
	if err != nil {
		fail(w, err)
		return rx.User{}, false
	}
	return u, true
}

// token reads the request's token: Authorization: Bearer, else the cookie.
func token(r *http.Request) string {
	if scheme, tok, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "Bearer") {
		return strings.TrimSpace(tok)
	}
	if c, err := r.Cookie(tokenCookie); err == nil {
		return c.Value
	}
	return ""
}

func setToken(w http.ResponseWriter, tok string) {
	http.SetCookie(w, &http.Cookie{Name: tokenCookie, Value: tok, Path: "/", HttpOnly: true, SameSite: http.SameSiteStrictMode})
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<16))
	if err := dec.Decode(v); err != nil {
		fail(w, rx.Errorf(rx.CodeBadRequest, "invalid JSON body"))
		return false
	}
	return true
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// allow takes an event of key from l, or answers 429 Too Many Requests
// (code overloaded) with Retry-After and returns false.
func (s *server) allow(w http.ResponseWriter, l *app.Limiter, key, what string) bool {
	ok, wait := l.Allow(key)
	if !ok {
		secs := app.RetrySeconds(wait)
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		fail(w, rx.Errorf(rx.CodeOverloaded, "too many %s: try again in %d s", what, secs))
	}
	return ok
}

// clientIP is the address the request came from. X-Forwarded-For is not
// trusted: behind a reverse proxy, limit there or adapt this.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

var statuses = map[rx.Code]int{
	rx.CodeOverloaded:      http.StatusTooManyRequests,
	rx.CodeUnauthenticated: http.StatusUnauthorized,
	rx.CodeForbidden:       http.StatusForbidden,
	rx.CodeNotFound:        http.StatusNotFound,
	rx.CodeBadRequest:      http.StatusBadRequest,
}

// fail answers an error as {"error":{"code","message"}}; internal errors
// are logged, not shown.
func fail(w http.ResponseWriter, err error) {
	e := rx.Public(err)
	status, ok := statuses[e.Code]
	if !ok {
		status = http.StatusInternalServerError
		if !errors.Is(err, context.Canceled) {
			slog.Error("chat: request failed", "err", err)
		}
		e = rx.Errorf(rx.CodeInternal, "internal error")
	}
	reply(w, status, map[string]any{"error": map[string]string{"code": string(e.Code), "message": e.Message}})
}
