package rx_test

import (
	"context"
	"fmt"
	"log"
	"strconv"

	"github.com/rxgorm/rxgorm/rx"
	"gorm.io/gorm"
)

// Models of the re-authorization example: a board with its members.
type Board struct {
	ID      uint          `gorm:"primaryKey" json:"id"`
	Name    string        `json:"name"`
	Members []BoardMember `json:"members"`
}

type BoardMember struct {
	ID      uint   `gorm:"primaryKey" json:"id"`
	BoardID uint   `json:"boardId"`
	UserID  uint   `json:"userId"`
	Role    string `json:"role"`
}

type BoardParams struct {
	BoardID uint `json:"boardId"`
}

// BoardChannel lets the board's members in, unless banned.
type BoardChannel struct {
	rx.Channel[Board, BoardParams]
	DB *gorm.DB
}

func (c *BoardChannel) Authorize(ctx context.Context, u rx.User, p BoardParams) error {
	uid, _ := strconv.ParseUint(u.ID, 10, 64)
	var n int64
	err := c.DB.WithContext(ctx).Model(&BoardMember{}).
		Where("board_id = ? AND user_id = ? AND role <> ?", p.BoardID, uid, "banned").Count(&n).Error
	if err != nil {
		return err
	}
	if n == 0 {
		return rx.Errorf(rx.CodeForbidden, "not a member of board %d", p.BoardID)
	}
	return nil
}

// AuthorizeDependsOn says the answer reads the membership rows: a commit
// that changes one re-checks the subscribers of the boards holding it.
func (*BoardChannel) AuthorizeDependsOn() []rx.Dependency {
	return []rx.Dependency{{Model: BoardMember{}}}
}

// A member who is banned loses the subscription before the next change of
// the board reaches them.
func ExampleReauthorizer() {
	db, cleanup := exampleDB()
	defer cleanup()
	if err := db.AutoMigrate(&Board{}, &BoardMember{}); err != nil {
		log.Fatal(err)
	}
	hub, _ := rx.New(db, rx.Config{})
	defer hub.Close()
	if err := hub.Register(&BoardChannel{DB: db}); err != nil {
		log.Fatal(err)
	}
	db.Create(&Board{Name: "plans", Members: []BoardMember{{UserID: 1, Role: "owner"}, {UserID: 2, Role: "member"}}})

	ctx := context.Background()
	sub, err := hub.Subscribe(ctx, "BoardChannel", BoardParams{BoardID: 1}, rx.User{ID: "2"}, rx.SubscribeOptions{})
	if err != nil {
		log.Fatal(err)
	}
	<-sub.Events() // the snapshot

	db.Model(&BoardMember{}).Where("user_id = ?", 2).Update("role", "banned")
	db.Model(&Board{ID: 1}).Update("name", "secret plans")
	for ev := range sub.Events() {
		fmt.Println("delta:", len(ev.Instances), "instances")
	}
	fmt.Println(sub.Err())
	_, err = sub.Call(ctx, "anything", nil)
	fmt.Println(rx.Public(err).Code)
	// Output:
	// rx: forbidden: access to BoardChannel ended: not a member of board 1
	// forbidden
}
