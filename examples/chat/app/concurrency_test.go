package app

import (
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rxgorm/rxgorm/rx"
	"golang.org/x/crypto/bcrypt"
	"gorm.io/gorm"
)

// Issue 20 item 5: concurrent sendMessage calls through two nodes on one
// database deadlocked on the chat's relations (UPDATE user_chat_relations
// … WHERE chat_id), and let stored unread counts drift from the messages.

// twoNodes opens two apps on one database (two *gorm.DB, as two servers
// have), connected by a Redis broker: a cluster of two nodes.
func twoNodes(t *testing.T, open func(t *testing.T) (*gorm.DB, *gorm.DB)) (*env, *env) {
	t.Helper()
	client := redis.NewClient(&redis.Options{Addr: "127.0.0.1:6379"})
	t.Cleanup(func() { client.Close() })
	if err := client.Ping(bg).Err(); err != nil {
		t.Fatalf("no Redis at 127.0.0.1:6379: %v", err)
	}
	prefix := fmt.Sprintf("chatapp-%d:", time.Now().UnixNano())
	db1, db2 := open(t)
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil)) // the unshared memory store warns
	node := func(db *gorm.DB) *env {
		b := rx.NewRedisBroker(client, rx.RedisOptions{Prefix: prefix})
		t.Cleanup(func() { b.Close() })
		return newEnvWith(t, db, Options{BcryptCost: bcrypt.MinCost, Broker: b, Logger: quiet})
	}
	return node(db1), node(db2)
}

func sqlitePair(t *testing.T) (*gorm.DB, *gorm.DB) {
	path := filepath.Join(t.TempDir(), "chat.db")
	return openSQLiteAt(t, path), openSQLiteAt(t, path)
}

func postgresPair(t *testing.T) (*gorm.DB, *gorm.DB) {
	dsn := createSchema(t)
	return openPostgresDSN(t, dsn), openPostgresDSN(t, dsn)
}

func mysqlPair(t *testing.T) (*gorm.DB, *gorm.DB) {
	dsn := createMySQLDatabase(t)
	return openMySQLDSN(t, dsn), openMySQLDSN(t, dsn)
}

// 500 messages sent at once by four members of a group chat, half through
// each node: none fails, and every member's stored unread count is exactly
// the number of messages of others after their own last one (sending
// marks everything before one's message read), as are their read
// receipts; each node's Home subscriptions show those counts (rxgorm saw
// the updates).
func TestConcurrentSendsTwoNodes(t *testing.T) {
	for _, db := range []struct {
		name string
		open func(t *testing.T) (*gorm.DB, *gorm.DB)
	}{{"sqlite", sqlitePair}, {"postgres", postgresPair}, {"mysql", mysqlPair}} {
		t.Run(db.name, func(t *testing.T) { testConcurrentSends(t, db.open) })
	}
}

func testConcurrentSends(t *testing.T, open func(t *testing.T) (*gorm.DB, *gorm.DB)) {
	const (
		sends   = 500
		perNode = 6 // Chat subscriptions per member and node: actions run one at a time per subscription
	)
	n1, n2 := twoNodes(t, open)
	ann, bob, cyd, dan := n1.user("ann"), n1.user("bob"), n1.user("cyd"), n1.user("dan")
	people := []*person{ann, bob, cyd, dan}
	for _, p := range people[1:] {
		n1.befriend(ann, p)
	}
	ref := must[ChatRef](ann.home, "createGroupChat", "load", []uint{bob.ID, cyd.ID, dan.ID})

	type sender struct {
		who *person
		sub *watch
	}
	var senders []sender
	homes := map[uint][]*watch{}
	for _, n := range []*env{n1, n2} {
		for _, p := range people {
			homes[p.ID] = append(homes[p.ID], n.watch("HomeChannel", HomeParams{UserID: p.ID}, p.ID))
			for range perNode {
				senders = append(senders, sender{p, n.openChat(p, ref.ID)})
			}
		}
	}

	start := time.Now()
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		failed []error
	)
	gate := make(chan struct{})
	for i := range sends {
		s := senders[i%len(senders)]
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-gate
			if _, err := call[Message](s.sub, "sendMessage", fmt.Sprintf("message %d from %s", i, s.who.Username)); err != nil {
				mu.Lock()
				failed = append(failed, err)
				mu.Unlock()
			}
		}()
	}
	close(gate)
	wg.Wait()
	elapsed := time.Since(start)
	t.Logf("%d concurrent sendMessage calls through 2 nodes: %d failed, %v (%.0f messages/s)", sends, len(failed), elapsed, sends/elapsed.Seconds())
	if len(failed) > 0 {
		t.Fatalf("%d of %d sends failed, the first: %v", len(failed), sends, failed[0])
	}

	db := n1.app.DB
	var msgs []Message
	if err := db.Where("chat_id = ?", ref.ID).Order("id").Find(&msgs).Error; err != nil {
		t.Fatal(err)
	}
	if len(msgs) != sends {
		t.Fatalf("%d messages stored, want %d", len(msgs), sends)
	}
	for _, p := range people {
		var last uint // p's last message
		for _, m := range msgs {
			if m.SenderID == p.ID {
				last = m.ID
			}
		}
		var wantUnread, wantReads int
		for _, m := range msgs {
			switch {
			case m.SenderID == p.ID:
			case m.ID > last:
				wantUnread++
			default:
				wantReads++
			}
		}
		var rel UserChatRelation
		if err := db.Where("chat_id = ? AND user_id = ?", ref.ID, p.ID).Take(&rel).Error; err != nil {
			t.Fatal(err)
		}
		if rel.UnreadCount != wantUnread || rel.LastReadMessageID != last {
			t.Errorf("%s: stored unread %d, last read %d; want %d after their last message %d", p.Username, rel.UnreadCount, rel.LastReadMessageID, wantUnread, last)
		}
		var reads int64
		if err := db.Model(&MessageRead{}).Where("user_id = ? AND message_id IN (?)", p.ID, db.Model(&Message{}).Select("id").Where("chat_id = ?", ref.ID)).Count(&reads).Error; err != nil {
			t.Fatal(err)
		}
		if int(reads) != wantReads {
			t.Errorf("%s: %d read receipts, want %d", p.Username, reads, wantReads)
		}
		for i, h := range homes[p.ID] {
			eventually(t, fmt.Sprintf("%s's home on node %d", p.Username, i+1), func() error {
				e := chatEntry(h.home(), ref.ID)
				if e == nil {
					return fmt.Errorf("no chat %d", ref.ID)
				}
				if err := want("unread", e.UnreadCount, wantUnread); err != nil {
					return err
				}
				return want("last read", e.LastReadMessageID, last)
			})
		}
	}
}
