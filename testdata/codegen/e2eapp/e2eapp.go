// Package e2eapp is the channel package of codegen's end-to-end test: the
// generated TypeScript talks to a live server built on it.
package e2eapp

import (
	"context"
	"errors"

	"github.com/rxgorm/rxgorm/rx"
	"gorm.io/gorm"
)

// Author writes posts.
type Author struct {
	ID   uint   `gorm:"primaryKey" json:"id"`
	Name string `json:"name"`
}

// Board is the anchor.
type Board struct {
	ID    uint   `gorm:"primaryKey" json:"id"`
	Title string `json:"title"`
	Posts []Post `json:"posts" rx:"order=id"`
}

// Post is on a board.
type Post struct {
	ID       uint   `gorm:"primaryKey" json:"id"`
	BoardID  uint   `json:"boardId"`
	AuthorID uint   `json:"authorId"`
	Author   Author `json:"author"`
	Text     string `json:"text"`
}

// BoardParams select a board.
type BoardParams struct {
	BoardID uint `json:"boardId"`
}

// BoardRuntime is pushed to each subscriber.
type BoardRuntime struct {
	Calls int `json:"calls"`
}

// BoardChannel is one board.
type BoardChannel struct {
	rx.Channel[Board, BoardParams]
	rx.Runtime[BoardRuntime]
	DB *gorm.DB
}

// Authorize lets signed-in users in.
func (BoardChannel) Authorize(ctx context.Context, u rx.User, p BoardParams) error {
	if u.Anonymous() {
		return rx.Errorf(rx.CodeUnauthenticated, "sign in")
	}
	return nil
}

// Actions lists the actions.
func (*BoardChannel) Actions() []string { return []string{"AddPost", "Fail", "Crash"} }

// AddPost adds a post by the caller.
func (c *BoardChannel) AddPost(ctx context.Context, text string) (*Post, error) {
	if text == "" {
		return nil, rx.Errorf(rx.CodeBadRequest, "empty post")
	}
	p := &Post{BoardID: c.Params().BoardID, AuthorID: 1, Text: text}
	if err := c.DB.WithContext(ctx).Create(p).Error; err != nil {
		return nil, err
	}
	c.Runtime.Set(func(r *BoardRuntime) { r.Calls++ })
	return p, nil
}

// Fail fails with the code given, or as a plain error.
func (*BoardChannel) Fail(ctx context.Context, code string) error {
	if code == "plain" {
		return errors.New("secret detail")
	}
	return rx.Errorf(rx.Code(code), "failed: %s", code)
}

// Crash panics.
func (*BoardChannel) Crash(ctx context.Context) error { panic("crash") }

// TrackPresence: subscribers see who else is on the board.
func (*BoardChannel) TrackPresence() rx.PresenceOptions { return rx.PresenceOptions{} }

// Writable lets clients write posts: edit their text, add posts to the
// board, delete them.
func (c *BoardChannel) Writable() []rx.Writable {
	return []rx.Writable{
		rx.Writes[Post]{Fields: []string{"text"}, Save: true, Create: []string{"Board.posts"}, Delete: true, Allow: c.allowPost},
	}
}

// allowPost refuses the text "forbidden" and deleting a post whose text is
// "keep"; new posts are by author 1.
func (c *BoardChannel) allowPost(ctx context.Context, w rx.Write[Post]) error {
	if w.New != nil && w.New.Text == "forbidden" {
		return rx.Errorf(rx.CodeForbidden, "that text is forbidden")
	}
	if w.Op == rx.OpDelete && w.Old.Text == "keep" {
		return rx.Errorf(rx.CodeForbidden, "this post stays")
	}
	if w.Op == rx.OpCreate {
		w.New.AuthorID = 1
	}
	return nil
}

// Models lists the models to migrate.
func Models() []any { return []any{&Author{}, &Board{}, &Post{}} }

// Channels returns the channels for makefrontend (the DB is injected by the
// server for real use).
func Channels() []any { return []any{&BoardChannel{}} }
