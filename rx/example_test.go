package rx_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"

	"github.com/rxgorm/rxgorm/rx"
	"gorm.io/driver/sqlite"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"
)

// Models of the examples: a project with its tasks.
type Project struct {
	ID    uint   `gorm:"primaryKey" json:"id"`
	Name  string `json:"name"`
	Tasks []Task `json:"tasks" rx:"order=position"`
}

type Task struct {
	ID        uint   `gorm:"primaryKey" json:"id"`
	ProjectID uint   `json:"projectId"`
	Position  int    `json:"position"`
	Title     string `json:"title"`
	Notes     string `json:"-"` // never leaves the server
}

// ProjectParams are what a client subscribes with.
type ProjectParams struct {
	ProjectID uint `json:"projectId"`
}

// ProjectChannel is one project with its tasks.
type ProjectChannel struct {
	rx.Channel[Project, ProjectParams]
}

// Authorize lets signed-in users in.
func (ProjectChannel) Authorize(ctx context.Context, u rx.User, p ProjectParams) error {
	if u.Anonymous() {
		return rx.Errorf(rx.CodeUnauthenticated, "sign in first")
	}
	return nil
}

func exampleDB() (*gorm.DB, func()) {
	dir, err := os.MkdirTemp("", "rxgorm-example")
	if err != nil {
		log.Fatal(err)
	}
	db, err := gorm.Open(sqlite.Open("file:"+filepath.Join(dir, "app.db")+"?_journal_mode=WAL&_busy_timeout=5000"), &gorm.Config{Logger: logger.Discard})
	if err != nil {
		log.Fatal(err)
	}
	if err := db.AutoMigrate(&Project{}, &Task{}); err != nil {
		log.Fatal(err)
	}
	return db, func() { os.RemoveAll(dir) }
}

// Declare a channel, register it, and serve its state as REST.
func Example_declare() {
	db, cleanup := exampleDB()
	defer cleanup()
	hub, err := rx.New(db, rx.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	if err := hub.Register(&ProjectChannel{}); err != nil {
		log.Fatal(err)
	}
	db.Create(&Project{Name: "Launch", Tasks: []Task{{Position: 2, Title: "ship"}, {Position: 1, Title: "build", Notes: "secret"}}})

	state, err := hub.Snapshot(context.Background(), "ProjectChannel", ProjectParams{ProjectID: 1}, rx.User{ID: "7"})
	fmt.Println(string(state), err)

	_, err = hub.Snapshot(context.Background(), "ProjectChannel", ProjectParams{ProjectID: 1}, rx.User{})
	fmt.Println(errors.Is(err, rx.ErrUnauthenticated))
	// Output:
	// {"id":"1","name":"Launch","tasks":[{"id":"2","position":1,"projectId":"1","title":"build"},{"id":"1","position":2,"projectId":"1","title":"ship"}]} <nil>
	// true
}

// Subscribe: a snapshot, then a delta carrying only what changed.
func ExampleHub_Subscribe() {
	db, cleanup := exampleDB()
	defer cleanup()
	hub, _ := rx.New(db, rx.Config{})
	defer hub.Close()
	hub.Register(&ProjectChannel{})
	db.Create(&Project{Name: "Launch"})

	ctx := context.Background()
	sub, err := hub.Subscribe(ctx, "ProjectChannel", ProjectParams{ProjectID: 1}, rx.User{ID: "7"}, rx.SubscribeOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	state, _ := hub.NewState("ProjectChannel", rx.User{ID: "7"})

	ev := <-sub.Events()
	state.Apply(ev)
	fmt.Println("snapshot:", ev.Snapshot, len(ev.Instances), "instance")

	db.Model(&Project{ID: 1}).Update("name", "Launch v2")
	ev = <-sub.Events()
	state.Apply(ev)
	fmt.Printf("delta: %s %s %s\n", ev.Instances[0].Type, ev.Instances[0].ID, ev.Instances[0].Fields["name"])

	js, _ := state.JSON()
	fmt.Println(string(js))
	// Output:
	// snapshot: true 1 instance
	// delta: Project 1 "Launch v2"
	// {"id":"1","name":"Launch v2","tasks":[]}
}

// Transactions: nothing is delivered before commit, one deduplicated delta
// per commit, nothing at all on rollback.
func Example_transactions() {
	db, cleanup := exampleDB()
	defer cleanup()
	hub, _ := rx.New(db, rx.Config{})
	defer hub.Close()
	hub.Register(&ProjectChannel{})
	db.Create(&Project{Name: "Launch"})

	ctx := context.Background()
	sub, _ := hub.Subscribe(ctx, "ProjectChannel", ProjectParams{ProjectID: 1}, rx.User{ID: "7"}, rx.SubscribeOptions{})
	defer sub.Close()
	<-sub.Events() // snapshot

	// Rolled back: nothing is broadcast.
	db.Transaction(func(tx *gorm.DB) error {
		tx.Create(&Task{ProjectID: 1, Title: "draft"})
		return errors.New("changed my mind")
	})
	// Committed: three writes, one delta with the final values.
	db.Transaction(func(tx *gorm.DB) error {
		task := Task{ProjectID: 1, Title: "first"}
		tx.Create(&task)
		tx.Model(&task).Update("title", "final")
		return tx.Model(&Project{ID: 1}).Update("name", "Launch!").Error
	})
	hub.Wait(ctx)
	fmt.Println(len(sub.Events()), "event")
	ev := <-sub.Events()
	for _, in := range ev.Instances {
		if in.Type == "Task" {
			fmt.Println(in.Type, in.ID, "title", string(in.Fields["title"]))
		} else {
			fmt.Println(in.Type, in.ID, "name", string(in.Fields["name"]), "tasks", string(in.Fields["tasks"]))
		}
	}
	// Unordered output:
	// 1 event
	// Task 1 title "final"
	// Project 1 name "Launch!" tasks ["1"]
}
