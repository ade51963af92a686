// Package board is the rxgorm quickstart (docs/QUICKSTART.md): a board of
// cards, live in every browser that shows it.
package board

import (
	"context"
	"net/http"

	"github.com/rxgorm/rxgorm/channel"
	"github.com/rxgorm/rxgorm/rx"
	"gorm.io/gorm"
)

// Board is the anchor of a BoardChannel: its cards are its nested state.
type Board struct {
	ID    uint   `gorm:"primaryKey" json:"id"`
	Title string `json:"title"`
	Cards []Card `json:"cards"`
}

// Card is a row of a board.
type Card struct {
	ID      uint   `gorm:"primaryKey" json:"id"`
	BoardID uint   `json:"boardId"`
	Text    string `gorm:"size:200" json:"text"`
	Done    bool   `json:"done"`
}

// BoardParams names the board a client subscribes to.
type BoardParams struct {
	BoardID uint `json:"boardId"`
}

// BoardChannel is one board and its cards, for signed-in users.
type BoardChannel struct {
	rx.Channel[Board, BoardParams]
	DB *gorm.DB
}

// Authorize lets every signed-in user see any board that exists.
func (c BoardChannel) Authorize(ctx context.Context, u rx.User, p BoardParams) error {
	if u.Anonymous() {
		return rx.Errorf(rx.CodeUnauthenticated, "sign in first")
	}
	var n int64
	if err := c.DB.WithContext(ctx).Model(&Board{}).Where("id = ?", p.BoardID).Count(&n).Error; err != nil {
		return err
	}
	if n == 0 {
		return rx.Errorf(rx.CodeNotFound, "no such board")
	}
	return nil
}

// Actions lists the methods clients may call.
func (c *BoardChannel) Actions() []string { return []string{"AddCard", "Toggle"} }

// AddCard adds a card to the board. Every subscriber sees it arrive.
func (c *BoardChannel) AddCard(ctx context.Context, text string) (*Card, error) {
	if text == "" || len(text) > 200 {
		return nil, rx.Errorf(rx.CodeBadRequest, "a card's text is 1 to 200 bytes")
	}
	card := &Card{BoardID: c.Params().BoardID, Text: text}
	return card, c.DB.WithContext(ctx).Create(card).Error
}

// Toggle marks a card of this board done or not done.
func (c *BoardChannel) Toggle(ctx context.Context, cardId uint) error {
	res := c.DB.WithContext(ctx).Model(&Card{}).
		Where("id = ? AND board_id = ?", cardId, c.Params().BoardID).
		Update("done", gorm.Expr("NOT done"))
	if res.Error != nil {
		return res.Error
	}
	if res.RowsAffected == 0 {
		return rx.Errorf(rx.CodeNotFound, "no such card on this board")
	}
	return nil
}

// Channels returns the channels of this package: makefrontend reads it.
func Channels() []any { return []any{&BoardChannel{}} }

// New migrates db, starts a hub with the board channel and returns the
// HTTP handler of the app: POST /login (a name in, a token out) and the
// WebSocket at /rx. close stops the hub.
func New(db *gorm.DB) (h http.Handler, close func(), err error) {
	if err := db.AutoMigrate(&Board{}, &Card{}); err != nil {
		return nil, nil, err
	}
	hub, err := rx.New(db, rx.Config{})
	if err != nil {
		return nil, nil, err
	}
	if err := hub.Register(&BoardChannel{DB: db}); err != nil {
		hub.Close()
		return nil, nil, err
	}
	auth, err := channel.NewTokenAuth(db)
	if err != nil {
		hub.Close()
		return nil, nil, err
	}
	srv := channel.NewServer(hub, channel.Options{Auth: auth})
	mux := http.NewServeMux()
	mux.Handle("/rx", srv)
	// A demo sign-in: any name gets a token. A real app checks a password
	// first (examples/chat does).
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		name := r.FormValue("name")
		if name == "" || len(name) > 64 {
			http.Error(w, "name: 1 to 64 bytes", http.StatusBadRequest)
			return
		}
		token, err := auth.Create(r.Context(), name)
		if err != nil {
			http.Error(w, "cannot sign in", http.StatusInternalServerError)
			return
		}
		w.Write([]byte(token))
	})
	return mux, func() {
		srv.Shutdown(context.Background())
		hub.Close()
	}, nil
}
