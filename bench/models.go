// Package bench holds rxgorm's benchmarks: the cost of change capture on a
// single-row update, the cold and hot snapshot of a 10,000-instance stream,
// and the fan-out of one commit to many Go subscribers.
//
// The benchmarks live in this package's _test.go files; run them with
//
//	go test -run '^$' -bench . -benchmem ./bench/
//
// This file declares the models, the channel and the fixtures they share.
// docs/BENCHMARKS.md records the numbers and how they were taken.
package bench

import (
	"context"
	"fmt"
	"path/filepath"

	"github.com/rxgorm/rxgorm/rx"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Board is the anchor of the benchmark tree: a board has many lists.
type Board struct {
	ID    uint   `gorm:"primaryKey" json:"id"`
	Title string `json:"title"`
	Lists []List `json:"lists"`
}

// List is the middle layer of the tree: it belongs to a board and has many
// cards.
type List struct {
	ID      uint   `gorm:"primaryKey" json:"id"`
	BoardID uint   `gorm:"index" json:"boardId"`
	Title   string `json:"title"`
	Cards   []Card `json:"cards"`
}

// Card is the leaf layer of the tree. N is the column the update benchmarks
// write; the load tool (bench/cmd/rxload) also stamps Sent, the write's
// send time in Unix nanoseconds.
type Card struct {
	ID     uint   `gorm:"primaryKey" json:"id"`
	ListID uint   `gorm:"index" json:"listId"`
	Title  string `json:"title"`
	N      int    `json:"n"`
	Sent   int64  `json:"sent"`
}

// BoardParams are the parameters of BoardChannel: the anchor board's id.
type BoardParams struct {
	BoardID uint `json:"boardId"`
}

// BoardChannel is the channel every benchmark subscribes to: one board with
// its lists and their cards.
type BoardChannel struct {
	rx.Channel[Board, BoardParams]
}

// Authorize lets everyone subscribe: access checks are not what the
// benchmarks measure.
func (BoardChannel) Authorize(context.Context, rx.User, BoardParams) error { return nil }

// ChannelName is the registered name of BoardChannel.
const ChannelName = "BoardChannel"

// DSN returns the SQLite DSN the benchmarks use for the database file at
// path: WAL journal, a 10 s busy timeout and BEGIN IMMEDIATE transactions.
func DSN(path string) string {
	return "file:" + path + "?_journal_mode=WAL&_busy_timeout=10000&_txlock=immediate"
}

// Open opens (creating it if needed) the SQLite database file name in dir,
// with GORM's logger discarded, and migrates the benchmark schema.
func Open(dir, name string) (*gorm.DB, error) {
	db, err := gorm.Open(sqlite.Open(DSN(filepath.Join(dir, name))), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		return nil, err
	}
	if err := db.AutoMigrate(&Board{}, &List{}, &Card{}); err != nil {
		Close(db)
		return nil, err
	}
	return db, nil
}

// Close closes db's connection pool.
func Close(db *gorm.DB) {
	if s, err := db.DB(); err == nil {
		_ = s.Close()
	}
}

// Tree describes a board to seed: Lists lists of CardsPerList cards each.
type Tree struct {
	Lists        int
	CardsPerList int
}

// Instances is the number of rows in the tree: the board, its lists and
// their cards. It is the number of instances in the board's stream.
func (t Tree) Instances() int { return 1 + t.Lists + t.Lists*t.CardsPerList }

// SnapshotTree is the 3-level tree of the snapshot benchmarks:
// 1 board + 100 lists + 100×99 cards = 10,001 instances.
var SnapshotTree = Tree{Lists: 100, CardsPerList: 99}

// Seed inserts one board shaped like t, with explicit sequential ids, in
// batches, and returns it (lists and cards filled in). Ids start at 1, so
// seeding a fresh database gives the same rows every time.
func Seed(db *gorm.DB, t Tree) (*Board, error) { return SeedBoard(db, 1, 1, 1, t) }

// SeedBoard inserts board id shaped like t, its lists numbered from
// firstList and its cards from firstCard, in batches, and returns it (lists
// and cards filled in).
func SeedBoard(db *gorm.DB, id, firstList, firstCard uint, t Tree) (*Board, error) {
	b := &Board{ID: id, Title: fmt.Sprintf("board %d", id)}
	if err := db.Create(b).Error; err != nil {
		return nil, fmt.Errorf("seed board: %w", err)
	}
	lists := make([]List, t.Lists)
	for i := range lists {
		lid := firstList + uint(i)
		lists[i] = List{ID: lid, BoardID: b.ID, Title: fmt.Sprintf("list %d", lid)}
	}
	cards := make([]Card, 0, t.Lists*t.CardsPerList)
	for i := range lists {
		for j := 0; j < t.CardsPerList; j++ {
			cid := firstCard + uint(len(cards))
			cards = append(cards, Card{ID: cid, ListID: lists[i].ID, Title: fmt.Sprintf("card %d", cid)})
		}
	}
	// SQLite allows 32,766 bound variables per statement: 500 cards of 5
	// columns stay well below.
	if len(lists) > 0 {
		if err := db.CreateInBatches(lists, 500).Error; err != nil {
			return nil, fmt.Errorf("seed lists: %w", err)
		}
	}
	if len(cards) > 0 {
		if err := db.CreateInBatches(cards, 500).Error; err != nil {
			return nil, fmt.Errorf("seed cards: %w", err)
		}
	}
	for i := range lists {
		lists[i].Cards = cards[i*t.CardsPerList : (i+1)*t.CardsPerList]
	}
	b.Lists = lists
	return b, nil
}

// NewHub installs rx on db with the default configuration and registers
// BoardChannel.
func NewHub(db *gorm.DB, cfg rx.Config) (*rx.Hub, error) {
	h, err := rx.New(db, cfg)
	if err != nil {
		return nil, err
	}
	if err := h.Register(&BoardChannel{}); err != nil {
		h.Close()
		return nil, err
	}
	return h, nil
}
