// Command quickstart is the app of docs/QUICKSTART.md: a board of cards
// served live over WebSockets, from a SQLite file.
//
//	go run ./examples/quickstart -addr :8080
package main

import (
	"flag"
	"log"
	"net/http"

	"github.com/rxgorm/rxgorm/examples/quickstart/board"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:8080", "listen address")
	file := flag.String("db", "quickstart.db", "SQLite file")
	flag.Parse()
	db, err := gorm.Open(sqlite.Open(*file+"?_journal_mode=WAL&_busy_timeout=5000"), &gorm.Config{})
	if err != nil {
		log.Fatal(err)
	}
	h, stop, err := board.New(db)
	if err != nil {
		log.Fatal(err)
	}
	defer stop()
	// One board to look at.
	db.FirstOrCreate(&board.Board{ID: 1, Title: "Welcome"})
	log.Printf("quickstart: http://%s (POST /login, WebSocket /rx)", *addr)
	log.Fatal(http.ListenAndServe(*addr, h))
}
