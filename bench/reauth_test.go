package bench

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/rxgorm/rxgorm/rx"
	"github.com/rxgorm/rxgorm/rx/rxtest"
	"gorm.io/gorm"
)

// Models of the re-authorization benchmark: a hall whose seats decide who
// may subscribe (issue 14).
type Hall struct {
	ID    uint       `gorm:"primaryKey" json:"id"`
	Title string     `json:"title"`
	Seats []HallSeat `json:"seats"`
	Posts []HallPost `json:"posts"`
}

// HallSeat is one member of a hall; Role is not sent.
type HallSeat struct {
	ID     uint   `gorm:"primaryKey" json:"id"`
	HallID uint   `gorm:"index:idx_hall_user" json:"hallId"`
	UserID uint   `gorm:"index:idx_hall_user" json:"userId"`
	Role   string `json:"-"`
}

// HallPost is content of a hall, not a dependency of its permission.
type HallPost struct {
	ID     uint   `gorm:"primaryKey" json:"id"`
	HallID uint   `gorm:"index" json:"hallId"`
	Text   string `json:"text"`
}

// HallParams are the parameters of the hall channels.
type HallParams struct {
	HallID uint `json:"hallId"`
}

// hallAuth is the permission of both hall channels: a seat not banned.
type hallAuth struct {
	db    *gorm.DB
	calls *atomic.Int64
	// memory answers without a query: the engine's own cost.
	memory bool
}

func (a hallAuth) authorize(ctx context.Context, u rx.User, p HallParams) error {
	a.calls.Add(1)
	if a.memory {
		return nil
	}
	uid, _ := strconv.ParseUint(u.ID, 10, 64)
	var n int64
	if err := a.db.WithContext(ctx).Model(&HallSeat{}).Where("hall_id = ? AND user_id = ? AND role <> ?", p.HallID, uid, "banned").Count(&n).Error; err != nil {
		return err
	}
	if n == 0 {
		return rx.Errorf(rx.CodeForbidden, "no seat")
	}
	return nil
}

// HallChannel declares that its permission depends on the seats.
type HallChannel struct {
	rx.Channel[Hall, HallParams]
	auth hallAuth
}

// Authorize lets in users with a seat.
func (c *HallChannel) Authorize(ctx context.Context, u rx.User, p HallParams) error {
	return c.auth.authorize(ctx, u, p)
}

// AuthorizeDependsOn names the seats.
func (*HallChannel) AuthorizeDependsOn() []rx.Dependency {
	return []rx.Dependency{{Model: HallSeat{}}}
}

// BatchHallChannel is HallChannel with rx.UsersAuthorizer: a re-check is
// one query for all the users.
type BatchHallChannel struct {
	HallChannel
}

// ChannelName names it apart from HallChannel.
func (*BatchHallChannel) ChannelName() string { return "BatchHallChannel" }

// AuthorizeUsers answers for many users with one query.
func (c *BatchHallChannel) AuthorizeUsers(ctx context.Context, p HallParams, users []rx.User) []error {
	c.auth.calls.Add(1)
	ids := make([]uint64, len(users))
	for i, u := range users {
		ids[i], _ = strconv.ParseUint(u.ID, 10, 64)
	}
	var seated []uint64
	err := c.auth.db.WithContext(ctx).Model(&HallSeat{}).Where("hall_id = ? AND user_id IN ? AND role <> ?", p.HallID, ids, "banned").Pluck("user_id", &seated).Error
	errs := make([]error, len(users))
	in := make(map[uint64]bool, len(seated))
	for _, id := range seated {
		in[id] = true
	}
	for i, id := range ids {
		switch {
		case err != nil:
			errs[i] = err
		case !in[id]:
			errs[i] = rx.Errorf(rx.CodeForbidden, "no seat")
		}
	}
	return errs
}

// StaticHallChannel has the same permission, checked at subscribe only:
// the baseline of a commit's cost.
type StaticHallChannel struct {
	rx.Channel[Hall, HallParams]
	auth hallAuth
}

// Authorize lets in users with a seat.
func (c *StaticHallChannel) Authorize(ctx context.Context, u rx.User, p HallParams) error {
	return c.auth.authorize(ctx, u, p)
}

// BenchmarkReauth measures re-authorization (issue 14): N subscribers of
// one stream, each iteration one commit and hub.Wait (the commit processed
// and its deltas handed out).
//
//   - dependency: the commit changes a seat (a field the state does not
//     send, so no delta): every subscriber is re-checked, one Authorize
//     call (one indexed COUNT) per distinct user.
//   - dependency,users=1: the same with one user holding all N
//     subscriptions (tabs): one call.
//   - dependency,batch: the channel implements rx.UsersAuthorizer: one
//     query for the 1,000 users.
//   - dependency,memory: Authorize answers from memory, without a query:
//     the engine's own cost of re-checking 1,000 subscribers.
//   - other: the commit adds a post (a delta to every subscriber); the
//     channel declares the dependency, which it does not touch.
//   - other,static: the same on a channel that declares none.
func BenchmarkReauth(b *testing.B) {
	for _, db := range []string{"sqlite", "postgres"} {
		for _, c := range []struct {
			name   string
			users  int
			dep    bool
			static bool
		}{
			{"dependency", 1000, true, false},
			{"dependency,users=1", 1, true, false},
			{"dependency,batch", 1000, true, false},
			{"dependency,memory", 1000, true, false},
			{"other", 1000, false, false},
			{"other,static", 1000, false, true},
		} {
			b.Run(fmt.Sprintf("db=%s/subscribers=1000/%s", db, c.name), func(b *testing.B) {
				reauthBench(b, db, 1000, c.users, c.dep, c.static, strings.HasSuffix(c.name, "batch"), strings.HasSuffix(c.name, "memory"))
			})
		}
	}
}

func reauthBench(b *testing.B, dbName string, subs, users int, dep, static, batch, memory bool) {
	var db *gorm.DB
	if dbName == "postgres" {
		db = rxtest.Postgres(b)
	} else {
		db = openDB(b, "reauth.db")
	}
	// Keep the connections of the eight concurrent re-checks: with
	// database/sql's default of two idle connections, PostgreSQL would
	// open six new ones per re-check.
	if sqlDB, err := db.DB(); err == nil {
		sqlDB.SetMaxIdleConns(16)
	}
	if err := db.AutoMigrate(&Hall{}, &HallSeat{}, &HallPost{}); err != nil {
		b.Fatal(err)
	}
	hall := Hall{Title: "hall"}
	for u := 1; u <= users; u++ {
		hall.Seats = append(hall.Seats, HallSeat{UserID: uint(u), Role: "member"})
	}
	if err := db.CreateInBatches(&hall, 200).Error; err != nil {
		b.Fatal(err)
	}
	h := newHub(b, db, rx.Config{})
	calls := &atomic.Int64{}
	auth := hallAuth{db: db, calls: calls, memory: memory}
	name := "HallChannel"
	var err error
	switch {
	case static:
		name = "StaticHallChannel"
		err = h.Register(&StaticHallChannel{auth: auth})
	case batch:
		name = "BatchHallChannel"
		err = h.Register(&BatchHallChannel{HallChannel{auth: auth}})
	default:
		err = h.Register(&HallChannel{auth: auth})
	}
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	list := make([]*rx.Subscription, subs)
	for i := range list {
		user := rx.User{ID: strconv.Itoa(i%users + 1)}
		if list[i], err = h.Subscribe(ctx, name, HallParams{HallID: hall.ID}, user, rx.SubscribeOptions{Deliver: func(*rx.Event) bool { return true }}); err != nil {
			b.Fatal(err)
		}
	}
	seat := hall.Seats[0]
	calls.Store(0)
	b.ReportAllocs()
	b.ResetTimer()
	cpu := startCPU()
	for i := 0; i < b.N; i++ {
		if dep {
			err = db.Model(&seat).Update("role", fmt.Sprint("member", i%2)).Error
		} else {
			err = db.Create(&HallPost{HallID: hall.ID, Text: "hi"}).Error
		}
		if err != nil {
			b.Fatal(err)
		}
		wait(b, h)
	}
	b.StopTimer()
	cpu.report(b)
	for _, s := range list {
		if err := s.Err(); err != nil {
			b.Fatalf("subscription ended: %v", err)
		}
	}
	b.ReportMetric(float64(calls.Load())/float64(b.N), "authorize/op")
}
