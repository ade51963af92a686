package channel_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/rxgorm/rxgorm/channel"
	"github.com/rxgorm/rxgorm/rx"
	"github.com/rxgorm/rxgorm/rx/rxtest"
	"gorm.io/gorm"
)

// Test models: a Room with posts (each with an author) and per-user notes.
type User struct {
	ID   uint   `gorm:"primaryKey" json:"id"`
	Name string `json:"name"`
}

type Room struct {
	ID     uint   `gorm:"primaryKey" json:"id"`
	Name   string `json:"name"`
	Public bool   `json:"public"`
	Posts  []Post `json:"posts"`
	Notes  []Note `json:"notes"`
}

type Post struct {
	ID       uint   `gorm:"primaryKey" json:"id"`
	RoomID   uint   `json:"roomId"`
	AuthorID uint   `json:"authorId"`
	Author   User   `json:"author"`
	Text     string `json:"text"`
}

type Note struct {
	ID     uint   `gorm:"primaryKey" json:"id"`
	RoomID uint   `json:"roomId"`
	UserID uint   `json:"userId" rx:"owner"`
	Text   string `json:"text"`
}

type RoomParams struct {
	RoomID uint `json:"roomId"`
}

type RoomRuntime struct {
	Typing []string `json:"typing"`
}

// RoomChannel: one room. Public rooms are open to everyone signed in;
// private rooms only to user 1.
type RoomChannel struct {
	rx.Channel[Room, RoomParams]
	rx.Runtime[RoomRuntime]
	DB *gorm.DB
}

func (c RoomChannel) Authorize(ctx context.Context, u rx.User, p RoomParams) error {
	if u.Anonymous() {
		return rx.Errorf(rx.CodeUnauthenticated, "sign in")
	}
	var r Room
	if err := c.DB.First(&r, p.RoomID).Error; err != nil {
		return rx.Errorf(rx.CodeNotFound, "no room %d", p.RoomID)
	}
	if !r.Public && u.ID != "1" {
		return rx.Errorf(rx.CodeForbidden, "private room")
	}
	return nil
}

func (c *RoomChannel) Actions() []string { return []string{"Post", "Typing", "Fail", "Panic"} }

func (c *RoomChannel) OnConnect(ctx context.Context) error {
	c.Join(fmt.Sprintf("room-%d", c.Params().RoomID))
	return nil
}

func (c *RoomChannel) Consumers() rx.Consumers {
	return rx.Consumers{"typing": rx.On(c.onTyping)}
}

func (c *RoomChannel) onTyping(ctx context.Context, who string) {
	c.Runtime.Set(func(r *RoomRuntime) { r.Typing = append(r.Typing, who) })
}

func (c *RoomChannel) Post(ctx context.Context, text string) (*Post, error) {
	var uid uint
	fmt.Sscan(c.User().ID, &uid)
	p := &Post{RoomID: c.Params().RoomID, AuthorID: uid, Text: text}
	return p, c.DB.WithContext(ctx).Create(p).Error
}

func (c *RoomChannel) Typing(ctx context.Context) error {
	return c.Hub().Publish(ctx, fmt.Sprintf("room-%d", c.Params().RoomID), "typing", c.User().ID)
}

func (c *RoomChannel) Fail(ctx context.Context, code string) error {
	if code == "plain" {
		return errors.New("database exploded")
	}
	return rx.Errorf(rx.Code(code), "failed with %s", code)
}

func (c *RoomChannel) Panic(ctx context.Context) error { panic("boom") }

// RoomList: the public rooms, newest first.
type RoomList struct{ rx.List[Room, rx.NoParams] }

func (RoomList) Authorize(context.Context, rx.User, rx.NoParams) error { return nil }

func (RoomList) Anchors(ctx context.Context, db *gorm.DB, u rx.User, p rx.NoParams) *gorm.DB {
	return db.Where("public = ?", true).Order("id desc")
}

// env is a running server with a database, a hub and tokens for users 1-3.
type env struct {
	t      *testing.T
	db     *gorm.DB
	hub    *rx.Hub
	srv    *channel.Server
	http   *httptest.Server
	url    string
	auth   *channel.TokenAuth
	tokens map[string]string
}

var dbs = map[string]func(testing.TB) *gorm.DB{"sqlite": openSQLite, "postgres": openPostgres, "mysql": openMySQL}

func newEnv(t *testing.T, open func(testing.TB) *gorm.DB, opts channel.Options) *env {
	t.Helper()
	return newEnvWith(t, open(t), rx.Config{}, opts)
}

// newEnvWith is newEnv on db, with a hub configured by cfg.
func newEnvWith(t *testing.T, db *gorm.DB, cfg rx.Config, opts channel.Options) *env {
	t.Helper()
	if err := db.AutoMigrate(&User{}, &Room{}, &Post{}, &Note{}); err != nil {
		t.Fatal(err)
	}
	return startEnv(t, db, cfg, opts, nil)
}

// startEnv starts a hub and server on a migrated db. With tokens nil it
// creates users 1-3 and their tokens; else they exist (another node made
// them) and tokens are theirs.
func startEnv(t *testing.T, db *gorm.DB, cfg rx.Config, opts channel.Options, tokens map[string]string) *env {
	t.Helper()
	hub, err := rx.New(db, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hub.Close() })
	if err := hub.Register(&RoomChannel{DB: db}, &RoomList{}); err != nil {
		t.Fatal(err)
	}
	auth, err := channel.NewTokenAuth(db)
	if err != nil {
		t.Fatal(err)
	}
	if opts.Auth == nil {
		opts.Auth = auth
	}
	e := &env{t: t, db: db, hub: hub, auth: auth, tokens: tokens}
	if tokens == nil {
		e.tokens = map[string]string{}
		for _, name := range []string{"ann", "bob", "cyd"} {
			u := User{Name: name}
			db.Create(&u)
			tok, err := auth.Create(context.Background(), fmt.Sprint(u.ID))
			if err != nil {
				t.Fatal(err)
			}
			e.tokens[fmt.Sprint(u.ID)] = tok
		}
	}
	e.srv = channel.NewServer(hub, opts)
	e.http = httptest.NewServer(e.srv)
	t.Cleanup(func() {
		e.srv.Shutdown(context.Background())
		e.http.Close()
	})
	e.url = "ws" + strings.TrimPrefix(e.http.URL, "http")
	return e
}

// client is a test WebSocket client collecting frames.
type client struct {
	t      *testing.T
	conn   *websocket.Conn
	frames chan map[string]any
	closed chan struct{}
	code   atomic.Int64 // close code received
}

func (e *env) dial(header http.Header) *client {
	e.t.Helper()
	conn, resp, err := websocket.DefaultDialer.Dial(e.url, header)
	if err != nil {
		if resp != nil {
			e.t.Fatalf("dial: %v (HTTP %d)", err, resp.StatusCode)
		}
		e.t.Fatalf("dial: %v", err)
	}
	c := &client{t: e.t, conn: conn, frames: make(chan map[string]any, 10000), closed: make(chan struct{})}
	go func() {
		defer close(c.closed)
		for {
			_, data, err := conn.ReadMessage()
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					c.code.Store(int64(ce.Code))
				}
				return
			}
			var m map[string]any
			if err := json.Unmarshal(data, &m); err != nil {
				e.t.Errorf("server sent invalid JSON %q: %v", data, err)
				return
			}
			c.frames <- m
		}
	}()
	e.t.Cleanup(func() { conn.Close() })
	return c
}

// login dials and says hello with user's token.
func (e *env) login(user string) *client {
	e.t.Helper()
	c := e.dial(nil)
	c.send(`{"type":"hello","v":1,"token":%q}`, e.tokens[user])
	if w := c.expect("welcome"); w["user"] != user {
		e.t.Fatalf("welcome: %v", w)
	}
	return c
}

func (c *client) send(format string, args ...any) {
	c.t.Helper()
	if err := c.conn.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(format, args...))); err != nil {
		c.t.Fatalf("send: %v", err)
	}
}

// next returns the next frame.
func (c *client) next() map[string]any {
	c.t.Helper()
	select {
	case m := <-c.frames:
		return m
	case <-c.closed:
		select {
		case m := <-c.frames:
			return m
		default:
		}
		c.t.Fatalf("socket closed (code %d) while waiting for a frame", c.code.Load())
	case <-time.After(15 * time.Second):
		c.t.Fatal("no frame within 15s")
	}
	return nil
}

// expect returns the next frame, which must be of type typ.
func (c *client) expect(typ string) map[string]any {
	c.t.Helper()
	m := c.next()
	if m["type"] != typ {
		c.t.Fatalf("want %s frame, got %v", typ, m)
	}
	return m
}

// quiet asserts that the socket has nothing more for the client: once the
// hub has processed every commit (a delivered event is queued to the
// socket before Wait returns), the reply to a probe, queued after it, is
// the next frame.
func (c *client) quiet(h *rx.Hub) {
	c.t.Helper()
	if err := h.Wait(context.Background()); err != nil {
		c.t.Fatal(err)
	}
	c.send(`{"type":"unsub","id":"quiet-probe"}`)
	if m := c.next(); m["type"] != "error" || m["sub"] != "quiet-probe" {
		c.t.Fatalf("unexpected frame %v", m)
	}
}

// waitClose waits for the server to close the socket and returns the code.
func (c *client) waitClose() int {
	c.t.Helper()
	select {
	case <-c.closed:
		return int(c.code.Load())
	case <-time.After(15 * time.Second):
		c.t.Fatal("socket not closed within 15s")
	}
	return 0
}

func openSQLite(t testing.TB) *gorm.DB { return rxtest.SQLite(t) }

func openPostgres(t testing.TB) *gorm.DB { return rxtest.Postgres(t) }

func openMySQL(t testing.TB) *gorm.DB { return rxtest.MySQL(t) }

// instances returns the instances of a snapshot or delta frame by type/id.
func instances(m map[string]any) map[string]map[string]any {
	out := map[string]map[string]any{}
	list, _ := m["instances"].([]any)
	for _, x := range list {
		in := x.(map[string]any)
		key := in["type"].(string) + "/" + in["id"].(string)
		if o, ok := in["owner"].(string); ok {
			key += "@" + o
		}
		out[key] = in
	}
	return out
}
