package app

import (
	"errors"
	"sync"
	"testing"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"
)

// A real deadlock between two transactions that lock two rows in opposite
// orders: the database aborts one of them, and retryable says that the
// victim may run again (PostgreSQL's 40P01, MariaDB's 1213); the other
// commits.
func TestDeadlockVictimIsRetryable(t *testing.T) {
	for _, d := range []struct {
		name string
		open func(t *testing.T) *gorm.DB
	}{{"postgres", openPostgres}, {"mysql", openMySQL}} {
		t.Run(d.name, func(t *testing.T) {
			db := d.open(t)
			if err := db.AutoMigrate(&Chat{}); err != nil {
				t.Fatal(err)
			}
			a, b := Chat{Kind: "group", Name: "a"}, Chat{Kind: "group", Name: "b"}
			if err := db.Create(&a).Error; err != nil {
				t.Fatal(err)
			}
			if err := db.Create(&b).Error; err != nil {
				t.Fatal(err)
			}
			var locked sync.WaitGroup // both hold their first row before either asks for its second
			locked.Add(2)
			lockTwo := func(first, second uint) error {
				return db.Transaction(func(tx *gorm.DB) error {
					var c Chat
					if err := tx.Clauses(clause.Locking{Strength: clause.LockingStrengthUpdate}).Take(&c, first).Error; err != nil {
						return err
					}
					locked.Done()
					locked.Wait()
					return tx.Model(&Chat{}).Where("id = ?", second).Update("name", "x").Error
				})
			}
			errs := make(chan error, 2)
			go func() { errs <- lockTwo(a.ID, b.ID) }()
			go func() { errs <- lockTwo(b.ID, a.ID) }()
			e1, e2 := <-errs, <-errs
			failed := 0
			for _, err := range []error{e1, e2} {
				if err == nil {
					continue
				}
				failed++
				if !retryable(err) {
					t.Errorf("the deadlock victim's error is not retryable: %v", err)
				}
			}
			if failed != 1 {
				t.Fatalf("want exactly one deadlock victim, got errors %v and %v", e1, e2)
			}
			if retryable(errors.New("other")) {
				t.Error("a plain error is retryable")
			}
		})
	}
}
