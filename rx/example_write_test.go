package rx_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"strings"

	"github.com/rxgorm/rxgorm/rx"
)

// EditableProject lets clients rename tasks and add them, and tracks who
// has the project open.
type EditableProject struct {
	rx.Channel[Project, ProjectParams]
}

func (EditableProject) Authorize(context.Context, rx.User, ProjectParams) error { return nil }

func (EditableProject) TrackPresence() rx.PresenceOptions { return rx.PresenceOptions{} }

func (c *EditableProject) Writable() []rx.Writable {
	return []rx.Writable{
		rx.Writes[Task]{Fields: []string{"title"}, Save: true, Create: []string{"Project.tasks"}, Allow: c.allowTask},
	}
}

// allowTask refuses empty titles and files new tasks last.
func (c *EditableProject) allowTask(ctx context.Context, w rx.Write[Task]) error {
	if strings.TrimSpace(w.New.Title) == "" {
		return rx.Errorf(rx.CodeBadRequest, "a task needs a title")
	}
	if w.Op == rx.OpCreate {
		var last Task
		w.Tx.Where("project_id = ?", w.New.ProjectID).Order("position desc").Limit(1).Find(&last)
		w.New.Position = last.Position + 1
	}
	return nil
}

// Client writes: what a client's save and create frames do, through the
// Go API, and presence.
func Example_writes() {
	db, cleanup := exampleDB()
	defer cleanup()
	hub, err := rx.New(db, rx.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	if err := hub.Register(&EditableProject{}); err != nil {
		log.Fatal(err)
	}
	db.Create(&Project{Name: "Launch", Tasks: []Task{{Position: 1, Title: "build"}}})
	ctx := context.Background()
	sub, err := hub.Subscribe(ctx, "EditableProject", ProjectParams{ProjectID: 1}, rx.User{ID: "7"}, rx.SubscribeOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()

	title := func(s string) map[string]json.RawMessage {
		return map[string]json.RawMessage{"title": json.RawMessage(fmt.Sprintf("%q", s))}
	}
	id, err := sub.Write(ctx, rx.WriteRequest{Op: rx.OpCreate, Layer: "Task", Relation: "Project.tasks", Parent: "1", Fields: title("ship")})
	fmt.Println("created", id, err)
	_, err = sub.Write(ctx, rx.WriteRequest{Op: rx.OpSave, Layer: "Task", Row: "1", Fields: title(" ")})
	fmt.Println(err)
	_, err = sub.Write(ctx, rx.WriteRequest{Op: rx.OpSave, Layer: "Task", Row: "1", Fields: map[string]json.RawMessage{"position": json.RawMessage("9")}})
	fmt.Println(err)

	state, _ := hub.Snapshot(ctx, "EditableProject", ProjectParams{ProjectID: 1}, rx.User{ID: "7"})
	fmt.Println(string(state))
	fmt.Println(hub.Presence(rx.StreamPlace("EditableProject", 1)))
	// Output:
	// created 2 <nil>
	// rx: bad_request: a task needs a title
	// rx: forbidden: field position of Task is not writable
	// {"id":"1","name":"Launch","tasks":[{"id":"1","position":1,"projectId":"1","title":"build"},{"id":"2","position":2,"projectId":"1","title":"ship"}]}
	// [{7 1}]
}
