package channel_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"

	"github.com/gorilla/websocket"
	"github.com/rxgorm/rxgorm/channel"
	"github.com/rxgorm/rxgorm/rx"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Models of the examples: a note board.
type Board struct {
	ID    uint   `gorm:"primaryKey" json:"id"`
	Title string `json:"title"`
	Notes []Memo `json:"notes"`
}

type Memo struct {
	ID      uint   `gorm:"primaryKey" json:"id"`
	BoardID uint   `json:"boardId"`
	Text    string `json:"text"`
}

type BoardParams struct {
	BoardID uint `json:"boardId"`
}

// BoardChannel is one board; signed-in users may subscribe and call Add.
type BoardChannel struct {
	rx.Channel[Board, BoardParams]
	DB *gorm.DB
}

func (BoardChannel) Authorize(ctx context.Context, u rx.User, p BoardParams) error {
	if u.Anonymous() {
		return rx.Errorf(rx.CodeUnauthenticated, "sign in first")
	}
	return nil
}

func (c *BoardChannel) Actions() []string { return []string{"Add"} }

// Add is an action: clients call it as "add".
func (c *BoardChannel) Add(ctx context.Context, text string) (*Memo, error) {
	m := &Memo{BoardID: c.Params().BoardID, Text: text}
	return m, c.DB.WithContext(ctx).Create(m).Error
}

func exampleDB() (*gorm.DB, func()) {
	dir, err := os.MkdirTemp("", "rxgorm-channel-example")
	if err != nil {
		log.Fatal(err)
	}
	db, err := gorm.Open(sqlite.Open("file:"+filepath.Join(dir, "app.db")+"?_journal_mode=WAL&_busy_timeout=5000"), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		log.Fatal(err)
	}
	if err := db.AutoMigrate(&Board{}, &Memo{}); err != nil {
		log.Fatal(err)
	}
	return db, func() {
		if s, err := db.DB(); err == nil {
			s.Close()
		}
		os.RemoveAll(dir)
	}
}

// readType reads frames until one of type typ and returns it as text.
func readType(conn *websocket.Conn, typ string) string {
	for {
		_, data, err := conn.ReadMessage()
		if err != nil {
			log.Fatal(err)
		}
		if strings.Contains(string(data), `"type":"`+typ+`"`) {
			return string(data)
		}
	}
}

// A WebSocket server with token sign-in: a client says hello with its
// token, subscribes, calls an action, and receives the delta of the row
// the action wrote.
func ExampleNewServer() {
	db, done := exampleDB()
	defer done()
	db.Create(&Board{Title: "ideas"})

	hub, err := rx.New(db, rx.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	if err := hub.Register(&BoardChannel{DB: db}); err != nil {
		log.Fatal(err)
	}
	auth, err := channel.NewTokenAuth(db) // tokens in rx_tokens, stored hashed
	if err != nil {
		log.Fatal(err)
	}
	srv := channel.NewServer(hub, channel.Options{Auth: auth})
	mux := http.NewServeMux()
	mux.Handle("/rx", srv)
	// Sign-in: after checking a password, issue a token for the user id.
	mux.HandleFunc("POST /login", func(w http.ResponseWriter, r *http.Request) {
		token, err := auth.Create(r.Context(), "7")
		if err != nil {
			http.Error(w, "cannot sign in", http.StatusInternalServerError)
			return
		}
		fmt.Fprint(w, token)
	})
	web := httptest.NewServer(mux)
	defer web.Close()
	defer srv.Shutdown(context.Background())

	resp, err := http.Post(web.URL+"/login", "", nil)
	if err != nil {
		log.Fatal(err)
	}
	token, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		log.Fatal(err)
	}

	conn, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(web.URL, "http")+"/rx", nil)
	if err != nil {
		log.Fatal(err)
	}
	defer conn.Close()
	conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"hello","v":1,"token":"`+string(token)+`"}`))
	fmt.Println(readType(conn, "welcome"))
	conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"sub","id":"b","channel":"BoardChannel","params":{"boardId":"1"}}`))
	readType(conn, "done")
	conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"call","id":1,"sub":"b","action":"add","args":["buy milk"]}`))
	// The delta of the write and the call's result, in either order.
	var result, delta string
	for result == "" || delta == "" {
		_, data, err := conn.ReadMessage()
		if err != nil {
			log.Fatal(err)
		}
		switch f := string(data); {
		case strings.Contains(f, `"type":"result"`):
			result = f
		case strings.Contains(f, `"type":"delta"`):
			delta = f
		}
	}
	fmt.Println(result)
	fmt.Println(strings.Contains(delta, `"text":"buy milk"`))
	// Output:
	// {"type":"welcome","v":1,"user":"7","maxMessage":1048576}
	// {"type":"result","id":1,"value":{"boardId":"1","id":"1","text":"buy milk"}}
	// true
}
