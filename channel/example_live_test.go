package channel_test

import (
	"context"
	"fmt"
	"log"
	"net/http/httptest"
	"strings"

	"github.com/gorilla/websocket"
	"github.com/rxgorm/rxgorm/channel"
	"github.com/rxgorm/rxgorm/rx"
)

// SharedBoard is a board that signed-in users edit together: they may
// save the text of its notes and add notes, and see who else is there.
type SharedBoard struct {
	rx.Channel[Board, BoardParams]
}

func (SharedBoard) Authorize(ctx context.Context, u rx.User, p BoardParams) error {
	if u.Anonymous() {
		return rx.Errorf(rx.CodeUnauthenticated, "sign in first")
	}
	return nil
}

// TrackPresence: each subscription receives who is connected to its board.
func (SharedBoard) TrackPresence() rx.PresenceOptions { return rx.PresenceOptions{} }

// Writable: clients save the text of notes and create notes on the board,
// not empty ones.
func (SharedBoard) Writable() []rx.Writable {
	return []rx.Writable{rx.Writes[Memo]{
		Fields: []string{"text"},
		Save:   true,
		Create: []string{"Board.notes"},
		Allow: func(ctx context.Context, w rx.Write[Memo]) error {
			if strings.TrimSpace(w.New.Text) == "" {
				return rx.Errorf(rx.CodeBadRequest, "a note needs a text")
			}
			return nil
		},
	}}
}

// dial opens a socket signed in with a new token of user id, and
// subscribes to board 1 as sub "b".
func dial(url string, auth *channel.TokenAuth, id string) *websocket.Conn {
	token, err := auth.Create(context.Background(), id)
	if err != nil {
		log.Fatal(err)
	}
	conn, _, err := websocket.DefaultDialer.Dial(url, nil)
	if err != nil {
		log.Fatal(err)
	}
	conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"hello","v":1,"token":"`+token+`"}`))
	readType(conn, "welcome")
	conn.WriteMessage(websocket.TextMessage, []byte(`{"type":"sub","id":"b","channel":"SharedBoard","params":{"boardId":"1"}}`))
	readType(conn, "done")
	return conn
}

// Presence and client writes over the WebSocket: two users on one board
// see each other, one adds a note with a create frame, and the other
// receives it as a delta; a write the channel refuses is answered with
// an error and changes nothing.
func Example_clientWrites() {
	db, done := exampleDB()
	defer done()
	db.Create(&Board{Title: "ideas"})
	hub, err := rx.New(db, rx.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	if err := hub.Register(&SharedBoard{}); err != nil {
		log.Fatal(err)
	}
	auth, err := channel.NewTokenAuth(db)
	if err != nil {
		log.Fatal(err)
	}
	srv := channel.NewServer(hub, channel.Options{Auth: auth})
	web := httptest.NewServer(srv)
	defer web.Close()
	defer srv.Shutdown(context.Background())
	url := "ws" + strings.TrimPrefix(web.URL, "http")

	ann := dial(url, auth, "7")
	defer ann.Close()
	bob := dial(url, auth, "9")
	defer bob.Close()
	// Ann's presence list changes when Bob arrives.
	for {
		if f := readType(ann, "presence"); strings.Contains(f, `"user":"9"`) {
			fmt.Println(f)
			break
		}
	}

	bob.WriteMessage(websocket.TextMessage, []byte(`{"type":"create","id":1,"sub":"b","layer":"Memo","relation":"Board.notes","parent":"1","fields":{"text":"ship it"}}`))
	fmt.Println(readType(bob, "result"))
	delta := readType(ann, "delta")
	fmt.Println(strings.Contains(delta, `"text":"ship it"`))

	bob.WriteMessage(websocket.TextMessage, []byte(`{"type":"save","id":2,"sub":"b","layer":"Memo","row":"1","fields":{"text":" "}}`))
	fmt.Println(readType(bob, "result"))
	// Output:
	// {"type":"presence","sub":"b","anchor":"1","users":[{"user":"7","connections":1},{"user":"9","connections":1}]}
	// {"type":"result","id":1,"value":{"row":"1"}}
	// true
	// {"type":"result","id":2,"error":{"code":"bad_request","message":"a note needs a text"}}
}
