package rx_test

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/rx"
)

// Dialect differences that reach subscribers (docs/DECISIONS.md, MariaDB
// and MySQL): a time column keeps what the database keeps, so what a
// subscriber receives is the database's value, never the writer's
// in-memory one.

type Stamp struct {
	ID   uint      `gorm:"primaryKey" json:"id"`
	Name string    `gorm:"size:32;uniqueIndex" json:"name"` // MySQL indexes no TEXT column: a size makes it varchar
	At   time.Time `json:"at"`
}

type StampParams struct {
	StampID uint `json:"stampId"`
}

type StampChannel struct{ rx.Channel[Stamp, StampParams] }

func (StampChannel) Authorize(context.Context, rx.User, StampParams) error { return nil }

// TestTimePrecision: a time with nanoseconds is stored as each database
// keeps it (SQLite: as written; PostgreSQL: microseconds; MariaDB's
// datetime(3), GORM's default: milliseconds), and the snapshot and the
// delta carry exactly the value a fresh read returns.
func TestTimePrecision(t *testing.T) {
	keeps := map[string]time.Duration{"sqlite": time.Nanosecond, "postgres": time.Microsecond, "mysql": time.Millisecond}
	for name, open := range openers {
		t.Run(name, func(t *testing.T) {
			ctx := context.Background()
			db := open(t)
			noErr(t, db.AutoMigrate(&Stamp{}))
			h, err := rx.New(db, rx.Config{})
			noErr(t, err)
			t.Cleanup(func() { h.Close() })
			noErr(t, h.Register(&StampChannel{}))
			at := time.Date(2026, 3, 4, 5, 6, 7, 123456789, time.UTC)
			s := Stamp{Name: "a", At: at}
			noErr(t, db.Create(&s).Error)

			// fresh is the row's at as a new read returns it, as JSON.
			fresh := func() string {
				t.Helper()
				var got Stamp
				noErr(t, reopen(t, db).Take(&got, s.ID).Error)
				if !got.At.Equal(at.Truncate(keeps[name])) {
					t.Errorf("stored %v, want %v (%v kept)", got.At, at.Truncate(keeps[name]), keeps[name])
				}
				js, err := json.Marshal(got.At)
				noErr(t, err)
				return string(js)
			}
			atOf := func(ev *rx.Event) string {
				t.Helper()
				for _, in := range ev.Instances {
					if in.Type == "Stamp" {
						return string(in.Fields["at"])
					}
				}
				t.Fatalf("no Stamp in %s", dump(ev))
				return ""
			}
			sub, err := h.Subscribe(ctx, "StampChannel", StampParams{StampID: s.ID}, rx.User{ID: "1"}, rx.SubscribeOptions{})
			noErr(t, err)
			if got, want := atOf(next(t, sub)), fresh(); got != want {
				t.Errorf("snapshot at %s, want %s", got, want)
			}
			at = at.Add(time.Second + 987654321)
			noErr(t, db.Model(&s).Update("at", at).Error)
			if got, want := atOf(next(t, sub)), fresh(); got != want {
				t.Errorf("delta at %s, want %s", got, want)
			}
		})
	}
}

type Room struct {
	Code string `gorm:"primaryKey;size:16" json:"code"`
	Name string `json:"name"`
}

type RoomParams struct {
	Code string `json:"code"`
}

type RoomChannel struct{ rx.Channel[Room, RoomParams] }

func (RoomChannel) Authorize(context.Context, rx.User, RoomParams) error { return nil }

// TestStringKeysExact: rxgorm compares string keys exactly on every
// database, so a subscription to "ab" does not find the row "AB" even on
// MariaDB, whose default collation (utf8mb4_general_ci) finds it in SQL;
// there, "ab" and "AB" are also one key to a unique index.
func TestStringKeysExact(t *testing.T) {
	for name, open := range openers {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			noErr(t, db.AutoMigrate(&Room{}))
			h, err := rx.New(db, rx.Config{})
			noErr(t, err)
			t.Cleanup(func() { h.Close() })
			noErr(t, h.Register(&RoomChannel{}))
			noErr(t, db.Create(&Room{Code: "AB", Name: "x"}).Error)
			var n int64
			noErr(t, db.Model(&Room{}).Where("code = ?", "ab").Count(&n).Error)
			if ci := name == "mysql"; (n == 1) != ci {
				t.Errorf("SQL finds %d rows for ab; case-insensitive: %v", n, ci)
			}
			dupErr := db.Create(&Room{Code: "ab", Name: "y"}).Error
			if ci := name == "mysql"; (dupErr != nil) != ci {
				t.Errorf("creating ab beside AB: %v; case-insensitive: %v", dupErr, ci)
			}
			_, err = h.Subscribe(context.Background(), "RoomChannel", RoomParams{Code: "ab"}, rx.User{ID: "1"}, rx.SubscribeOptions{})
			var rerr *rx.Error
			if name == "mysql" && !(errors.As(err, &rerr) && rerr.Code == rx.CodeNotFound) {
				t.Errorf("subscribe to ab: %v, want not_found", err)
			}
			sub, err := h.Subscribe(context.Background(), "RoomChannel", RoomParams{Code: "AB"}, rx.User{ID: "1"}, rx.SubscribeOptions{})
			noErr(t, err)
			if ev := next(t, sub); ev.Anchor != "AB" {
				t.Errorf("anchor %q, want AB", ev.Anchor)
			}
		})
	}
}
