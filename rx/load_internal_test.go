package rx

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/rxgorm/rxgorm/rx/rxtest"
	"gorm.io/gorm"
)

// Types a one-row read must scan as GORM's Find does.
type (
	lrTag struct {
		Name  string `json:"name"`
		Level int    `json:"level"`
	}
	lrOwner struct {
		ID   int64  `gorm:"primaryKey" json:"id"`
		Name string `gorm:"size:40" json:"name"`
	}
	lrRow struct {
		ID        int64          `gorm:"primaryKey" json:"id"`
		Title     string         `gorm:"size:80" json:"title"`
		Note      *string        `json:"note"`
		N         int            `json:"n"`
		Big       uint64         `json:"big,string"`
		Ratio     float64        `json:"ratio"`
		Done      bool           `json:"done"`
		Blob      []byte         `json:"blob"`
		At        time.Time      `json:"at"`
		Maybe     *time.Time     `json:"maybe"`
		Tag       lrTag          `gorm:"serializer:json" json:"tag"`
		OwnerID   *int64         `json:"ownerId"`
		Owner     *lrOwner       `json:"owner"`
		DeletedAt gorm.DeletedAt `json:"-"`
	}
)

// TestReadOneRowMatchesFind: the engine's one-row read (a query built once
// per layer, scanned field by field) gives what the batched read through
// GORM's Find gives, on each database, for every column type here; a
// soft-deleted row and a missing one are absent from both.
func TestReadOneRowMatchesFind(t *testing.T) {
	onLRDatabases(t, func(t *testing.T, name string, db *gorm.DB) {
		ctx := context.Background()
		note := "a note"
		owner := lrOwner{ID: 7, Name: "o"}
		maybe := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
		rows := []lrRow{
			{ID: 1, Title: "full", Note: &note, N: -3, Big: 1<<53 + 5, Ratio: 0.25, Done: true, Blob: []byte{0, 1, 255},
				At: time.Date(2025, 6, 7, 8, 9, 10, 0, time.UTC), Maybe: &maybe, Tag: lrTag{"x", 2}, OwnerID: &owner.ID},
			{ID: 2, Title: "empty"},
			{ID: 3, Title: "deleted"},
		}
		if err := db.Create(&owner).Error; err != nil {
			t.Fatal(err)
		}
		if err := db.Create(&rows).Error; err != nil {
			t.Fatal(err)
		}
		if err := db.Delete(&lrRow{}, 3).Error; err != nil {
			t.Fatal(err)
		}
		l, err := newModel(db).layerFor(reflect.TypeOf(lrRow{}))
		if err != nil {
			t.Fatal(err)
		}
		s := db.Session(&gormSession)
		if l.oneRowSQL(s) == "" {
			t.Fatal("no one-row query was built")
		}
		for _, id := range []string{"1", "2", "3", "4"} {
			one, err := readRows(ctx, s, l, []string{id}, nil)
			if err != nil {
				t.Fatal(err)
			}
			// Two ids take GORM's Find.
			found, err := readRows(ctx, s, l, []string{id, "99"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			a, b := one[id], found[id]
			if (a == nil) != (b == nil) || (a == nil) != (id == "3" || id == "4") {
				t.Fatalf("row %s: one-row read %v, Find %v", id, a != nil, b != nil)
			}
			if a == nil {
				continue
			}
			ja, _ := json.Marshal(a.fields)
			jb, _ := json.Marshal(b.fields)
			if string(ja) != string(jb) || !reflect.DeepEqual(a.belongs, b.belongs) || a.owner != b.owner {
				t.Fatalf("row %s:\none-row read %s %v\nFind         %s %v", id, ja, a.belongs, jb, b.belongs)
			}
			if id == "1" && (!json.Valid(ja) || string(a.fields["title"]) != `"full"` || string(a.fields["big"]) != `"9007199254740997"`) {
				t.Fatalf("row 1 read as %s", ja)
			}
		}
	})
}

// TestReadOneRowPrepared: the one-row read is prepared once per layer on
// SQLite and MySQL (not on PostgreSQL, whose driver caches statements
// itself), keeps reading the current row after the table gains a column
// (on PostgreSQL the first read after it used to fail with "cached plan
// must not change result type"), and after Hub.Close has closed the
// statement reads unprepared.
func TestReadOneRowPrepared(t *testing.T) {
	onLRDatabases(t, func(t *testing.T, name string, db *gorm.DB) {
		ctx := context.Background()
		if err := db.Create(&lrRow{ID: 1, Title: "first"}).Error; err != nil {
			t.Fatal(err)
		}
		h, err := New(db, Config{})
		if err != nil {
			t.Fatal(err)
		}
		l, err := h.model.layerFor(reflect.TypeOf(lrRow{}))
		if err != nil {
			t.Fatal(err)
		}
		read := func(want string) {
			t.Helper()
			rows, err := readRows(ctx, h.engine.db, l, []string{"1"}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if r := rows["1"]; r == nil || string(r.fields["title"]) != want {
				t.Fatalf("row 1 read as %+v, want title %s", r, want)
			}
		}
		read(`"first"`)
		l.stmt.mu.Lock()
		prepared := l.stmt.stmt != nil
		l.stmt.mu.Unlock()
		if prepared != (name != "postgres") {
			t.Fatalf("prepared %v on %s", prepared, name)
		}
		if err := db.Exec("ALTER TABLE lr_rows ADD COLUMN extra INTEGER").Error; err != nil {
			t.Fatal(err)
		}
		if err := db.Exec("UPDATE lr_rows SET title = 'second', extra = 4 WHERE id = 1").Error; err != nil {
			t.Fatal(err)
		}
		read(`"second"`)
		if err := h.Close(); err != nil {
			t.Fatal(err)
		}
		l.stmt.mu.Lock()
		left, closed := l.stmt.stmt, l.stmt.closed
		l.stmt.mu.Unlock()
		if left != nil || !closed {
			t.Fatalf("after Close: statement %v, closed %v", left, closed)
		}
		if err := db.Exec("UPDATE lr_rows SET title = 'third' WHERE id = 1").Error; err != nil {
			t.Fatal(err)
		}
		read(`"third"`)
	})
}

// onLRDatabases runs f on a fresh SQLite, PostgreSQL and MariaDB database,
// each with the lr tables migrated.
func onLRDatabases(t *testing.T, f func(t *testing.T, name string, db *gorm.DB)) {
	for name, open := range map[string]func(testing.TB, ...string) *gorm.DB{
		"sqlite": rxtest.SQLite, "postgres": rxtest.Postgres, "mysql": rxtest.MySQL,
	} {
		t.Run(name, func(t *testing.T) {
			db := open(t)
			if err := db.AutoMigrate(&lrOwner{}, &lrRow{}); err != nil {
				t.Fatal(err)
			}
			f(t, name, db)
		})
	}
}
