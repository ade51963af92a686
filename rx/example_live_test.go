package rx_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log"
	"strings"

	"github.com/rxgorm/rxgorm/rx"
	"gorm.io/gorm"
)

// MyProjects is a list channel: every project, by name. The list follows
// its query: a project created later enters it at its place.
type MyProjects struct {
	rx.List[Project, rx.NoParams]
}

func (MyProjects) Authorize(context.Context, rx.User, rx.NoParams) error { return nil }

// Anchors is the query that selects the list, with its order.
func (MyProjects) Anchors(ctx context.Context, db *gorm.DB, u rx.User, p rx.NoParams) *gorm.DB {
	return db.Model(&Project{}).Order("name")
}

// A list channel: the state is an ordered list of anchors, each with its
// nested rows, kept in the order of the channel's query as rows are
// created.
func ExampleList() {
	db, cleanup := exampleDB()
	defer cleanup()
	hub, err := rx.New(db, rx.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	if err := hub.Register(&MyProjects{}); err != nil {
		log.Fatal(err)
	}
	db.Create(&Project{Name: "Launch", Tasks: []Task{{Position: 1, Title: "build"}}})
	db.Create(&Project{Name: "Zebra"})

	ctx := context.Background()
	user := rx.User{ID: "7"}
	sub, err := hub.Subscribe(ctx, "MyProjects", rx.NoParams{}, user, rx.SubscribeOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	state, _ := hub.NewState("MyProjects", user)
	// names applies events until the list has n projects, and returns
	// their names in order.
	names := func(n int) []string {
		for {
			var list []struct{ Name string }
			js, _ := state.JSON()
			json.Unmarshal(js, &list)
			if len(list) == n {
				out := make([]string, n)
				for i, p := range list {
					out[i] = p.Name
				}
				return out
			}
			state.Apply(<-sub.Events())
		}
	}
	fmt.Println(names(2))

	db.Create(&Project{Name: "Moon"}) // enters the list between the two
	fmt.Println(names(3))

	js, _ := hub.Snapshot(ctx, "MyProjects", rx.NoParams{}, user) // the same, as REST
	fmt.Println(string(js))
	// Output:
	// [Launch Zebra]
	// [Launch Moon Zebra]
	// [{"id":"1","name":"Launch","tasks":[{"id":"1","position":1,"projectId":"1","title":"build"}]},{"id":"3","name":"Moon","tasks":[]},{"id":"2","name":"Zebra","tasks":[]}]
}

// ProjectRoom is a project with runtime state (who is typing, notices),
// an action, and a consumer of the events published to its group.
type ProjectRoom struct {
	rx.Channel[Project, ProjectParams]
	rx.Runtime[RoomRuntime]
}

// RoomRuntime is the runtime state each subscription of ProjectRoom has:
// not stored, pushed to its own client only.
type RoomRuntime struct {
	Typing bool   `json:"typing"`
	Notice string `json:"notice,omitempty"`
}

// Notice is the payload of the "notice" group event.
type Notice struct {
	Text string `json:"text"`
}

func (ProjectRoom) Authorize(context.Context, rx.User, ProjectParams) error { return nil }

// OnConnect runs as a subscription starts: it joins the project's group.
func (c *ProjectRoom) OnConnect(ctx context.Context) error {
	c.Join(fmt.Sprintf("project:%d", c.Params().ProjectID))
	return nil
}

// Consumers handle the group's events, each subscription for itself.
func (c *ProjectRoom) Consumers() rx.Consumers {
	return rx.Consumers{
		"notice": rx.On(func(ctx context.Context, n Notice) {
			c.Runtime.Set(func(r *RoomRuntime) { r.Notice = n.Text })
		}),
	}
}

// Actions are the methods clients may call.
func (c *ProjectRoom) Actions() []string { return []string{"SetTyping"} }

// SetTyping is the action "setTyping": it changes the caller's runtime
// state and returns whether it changed.
func (c *ProjectRoom) SetTyping(ctx context.Context, typing bool) (bool, error) {
	changed := c.Runtime.Get().Typing != typing
	c.Runtime.Set(func(r *RoomRuntime) { r.Typing = typing })
	return changed, nil
}

// Actions, runtime state, groups and consumers: an action sets the
// caller's runtime state; an event published to a group reaches the
// consumer of every subscription that joined it, which sets its runtime
// state too. Each change reaches the client as a runtime event.
func Example_runtime() {
	db, cleanup := exampleDB()
	defer cleanup()
	hub, err := rx.New(db, rx.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer hub.Close()
	if err := hub.Register(&ProjectRoom{}); err != nil {
		log.Fatal(err)
	}
	db.Create(&Project{Name: "Launch"})

	ctx := context.Background()
	sub, err := hub.Subscribe(ctx, "ProjectRoom", ProjectParams{ProjectID: 1}, rx.User{ID: "7"}, rx.SubscribeOptions{})
	if err != nil {
		log.Fatal(err)
	}
	defer sub.Close()
	// runtime returns the next runtime event's fields, as JSON.
	runtime := func() string {
		for ev := range sub.Events() {
			if ev.Runtime != nil {
				js, _ := json.Marshal(ev.Runtime)
				return string(js)
			}
		}
		return "ended"
	}
	fmt.Println("after the snapshot:", runtime())

	// An action, as a client's call frame makes it: arguments as JSON.
	changed, err := sub.Call(ctx, "setTyping", []json.RawMessage{json.RawMessage("true")})
	fmt.Println("setTyping:", changed, err)
	fmt.Println("runtime:", runtime())
	_, err = sub.Call(ctx, "setTyping", []json.RawMessage{json.RawMessage(`"yes"`)})
	fmt.Println(strings.Contains(err.Error(), "bad_request"))

	// A group event, from anywhere in the server (any node of a cluster).
	if err := hub.Publish(ctx, "project:1", "notice", Notice{Text: "deploy at 5"}); err != nil {
		log.Fatal(err)
	}
	fmt.Println("runtime:", runtime())
	// Output:
	// after the snapshot: {"typing":false}
	// setTyping: true <nil>
	// runtime: {"typing":true}
	// true
	// runtime: {"notice":"deploy at 5"}
}
