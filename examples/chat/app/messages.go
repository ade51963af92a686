package app

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/rxgorm/rxgorm/rx"
	"gorm.io/gorm"
)

// Messages: sending, read receipts and unread counts, history pages.

// MaxMessage is the longest message, in characters.
const MaxMessage = 4000

// MaxPage is the most messages History returns at once.
const MaxPage = 100

// MaxPageBytes bounds the JSON size of the messages of a History page:
// a call's result larger than the server's MaxResult (256 KiB by default)
// would be refused with too_large, and 100 long messages with their
// readers can pass it. A page stops before the message that would pass
// this bound (More is then true); it always holds at least one message,
// which is far smaller (MaxMessage runes).
const MaxPageBytes = 128 << 10

// MessagePage is a page of older messages, newest first.
type MessagePage struct {
	Messages []Message `json:"messages"`
	// More says older messages remain.
	More bool `json:"more"`
	// Events are the chat's system events of the same stretch of time,
	// newest first: from the page's oldest message (or the chat's start,
	// on its last page) to the message before, at most MaxPage.
	Events []ChatEvent `json:"events"`
}

// preview shortens a message for the chat list.
func preview(text string) string {
	text = strings.Join(strings.Fields(text), " ")
	if utf8.RuneCountInString(text) <= 100 {
		return text
	}
	r := []rune(text)
	return string(r[:99]) + "…"
}

// SendMessage posts a message to a chat the caller is a member of. Every
// other member's unread count grows; the sender has read everything up to
// their message.
func (a *App) SendMessage(ctx context.Context, uid, chatID uint, text string) (*Message, error) {
	return a.PostMessage(ctx, uid, chatID, text, "")
}

// clientIDRE is what a client id (PostMessage) looks like: a UUID or
// another token of 8 to 40 letters, digits, '-' and '_'.
var clientIDRE = regexp.MustCompile(`^[A-Za-z0-9_-]{8,40}$`)

// PostMessage is SendMessage with an idempotency key: a client that does
// not know whether its message arrived (the connection was lost while it
// was sent) sends it again with the same clientID and gets the message
// stored the first time instead of a second one. An empty clientID is
// SendMessage.
func (a *App) PostMessage(ctx context.Context, uid, chatID uint, text, clientID string) (*Message, error) {
	text, err := cleanText("a message", text, MaxMessage, false)
	if err != nil {
		return nil, err
	}
	if clientID != "" && !clientIDRE.MatchString(clientID) {
		return nil, badRequest("a client id has 8 to 40 letters, digits, '-' or '_'")
	}
	var m Message
	err = a.write(ctx, func(tx *gorm.DB, _ *outbox) error {
		if _, err := memberChat(tx, chatID, uid); err != nil {
			return err
		}
		if clientID != "" {
			// The chat's row lock (memberChat) orders this check with the
			// other writers of the chat.
			var sent []Message
			if err := tx.Where("sender_id = ? AND client_id = ?", uid, clientID).Limit(1).Find(&sent).Error; err != nil {
				return err
			}
			if len(sent) > 0 {
				if sent[0].ChatID != chatID {
					return badRequest("client id %s was used in another chat", clientID)
				}
				m = sent[0]
				return nil
			}
		}
		var mine UserChatRelation
		if err := tx.Where("chat_id = ? AND user_id = ?", chatID, uid).Take(&mine).Error; err != nil {
			return err
		}
		m = Message{ChatID: chatID, SenderID: uid, Text: text}
		if clientID != "" {
			m.ClientID = &clientID
		}
		if err := tx.Create(&m).Error; err != nil {
			return err
		}
		// One statement for every member's relation: the others have one
		// more message unread; the sender has read everything up to their
		// message, the chat's newest (the chat's row lock orders the
		// chat's messages by commit), so none unread.
		err := tx.Model(&UserChatRelation{}).Where("chat_id = ?", chatID).Updates(map[string]any{
			"last_message":         preview(text),
			"last_message_at":      m.CreatedAt,
			"unread_count":         gorm.Expr("CASE WHEN user_id = ? THEN 0 ELSE unread_count + 1 END", uid),
			"last_read_message_id": gorm.Expr("CASE WHEN user_id = ? THEN ? ELSE last_read_message_id END", uid, m.ID),
		}).Error
		if err != nil {
			return err
		}
		return addReadsTx(tx, uid, chatID, mine.LastReadMessageID, m.ID)
	})
	if err != nil {
		return nil, err
	}
	return &m, a.DB.WithContext(ctx).Preload("Sender").Take(&m, m.ID).Error
}

// MarkRead marks the messages of a chat up to message upTo (0: the latest)
// as read by the caller: they join the messages' read lists, and the
// caller's unread count drops to the messages after upTo.
func (a *App) MarkRead(ctx context.Context, uid, chatID, upTo uint) (*UserChatRelation, error) {
	var rel *UserChatRelation
	err := a.write(ctx, func(tx *gorm.DB, _ *outbox) error {
		if _, err := memberChat(tx, chatID, uid); err != nil {
			return err
		}
		if upTo == 0 {
			if err := tx.Model(&Message{}).Where("chat_id = ?", chatID).Select("COALESCE(MAX(id), 0)").Scan(&upTo).Error; err != nil {
				return err
			}
		} else {
			var n int64
			if err := tx.Model(&Message{}).Where("chat_id = ? AND id = ?", chatID, upTo).Count(&n).Error; err != nil {
				return err
			}
			if n == 0 {
				return notFound("no message %d in chat %d", upTo, chatID)
			}
		}
		var err error
		rel, err = markReadTx(tx, uid, chatID, upTo)
		return err
	})
	if err != nil {
		return nil, err
	}
	return rel, nil
}

// markReadTx records that uid read the messages of a chat up to upTo: read
// receipts for the messages of others not read yet, the last read message
// and the unread count of the user's chat relation.
func markReadTx(tx *gorm.DB, uid, chatID, upTo uint) (*UserChatRelation, error) {
	var rel UserChatRelation
	if err := tx.Where("chat_id = ? AND user_id = ?", chatID, uid).Take(&rel).Error; err != nil {
		return nil, err
	}
	if upTo <= rel.LastReadMessageID {
		return &rel, nil // already read
	}
	if err := addReadsTx(tx, uid, chatID, rel.LastReadMessageID, upTo); err != nil {
		return nil, err
	}
	var unread int64
	if err := tx.Model(&Message{}).Where("chat_id = ? AND id > ? AND sender_id <> ?", chatID, upTo, uid).Count(&unread).Error; err != nil {
		return nil, err
	}
	rel.LastReadMessageID, rel.UnreadCount = upTo, int(unread)
	return &rel, tx.Model(&rel).Updates(map[string]any{"last_read_message_id": upTo, "unread_count": unread}).Error
}

// addReadsTx adds uid's read receipts to the messages of others in a chat
// after message from up to message upTo that uid has not read yet.
func addReadsTx(tx *gorm.DB, uid, chatID, from, upTo uint) error {
	var ids []uint
	err := tx.Model(&Message{}).
		Where("chat_id = ? AND id > ? AND id <= ? AND sender_id <> ?", chatID, from, upTo, uid).
		Where("id NOT IN (?)", tx.Model(&MessageRead{}).Select("message_id").Where("user_id = ?", uid)).
		Pluck("id", &ids).Error
	if err != nil || len(ids) == 0 {
		return err
	}
	reads := make([]MessageRead, len(ids))
	for i, id := range ids {
		reads[i] = MessageRead{MessageID: id, UserID: uid}
	}
	return tx.CreateInBatches(reads, 500).Error
}

// History returns up to limit messages of a chat older than message
// before (0: from the newest), with senders and readers. The channel's
// state holds the latest 50; clients page further back with this.
func (a *App) History(ctx context.Context, uid, chatID, before uint, limit int) (*MessagePage, error) {
	if limit <= 0 || limit > MaxPage {
		return nil, badRequest("a page has 1 to %d messages", MaxPage)
	}
	db := a.DB.WithContext(ctx)
	if ok, err := isMember(db, chatID, uid); err != nil || !ok {
		return nil, orNotFound(err, "no chat %d", chatID)
	}
	q := db.Where("chat_id = ?", chatID)
	if before > 0 {
		q = q.Where("id < ?", before)
	}
	var ms []Message
	if err := q.Preload("Sender").Preload("Readers").Order("id desc").Limit(limit + 1).Find(&ms).Error; err != nil {
		return nil, err
	}
	page := &MessagePage{Messages: ms, More: len(ms) > limit}
	if page.More {
		page.Messages = ms[:limit]
	}
	size := 0
	for i, m := range page.Messages {
		b, err := json.Marshal(m)
		if err != nil {
			return nil, fmt.Errorf("app: history: %w", err)
		}
		if size += len(b) + 1; size > MaxPageBytes && i > 0 {
			page.Messages, page.More = page.Messages[:i], true
			break
		}
	}
	if page.Messages == nil {
		page.Messages = []Message{}
	}
	if err := pageEvents(db, chatID, before, page); err != nil {
		return nil, err
	}
	return page, nil
}

// pageEvents adds to page the chat's events between its oldest message
// (the chat's start if no more remain) and message before (now if 0).
func pageEvents(db *gorm.DB, chatID, before uint, page *MessagePage) error {
	q := db.Where("chat_id = ?", chatID)
	if before > 0 {
		var b []Message
		if err := db.Select("id", "created_at").Where("chat_id = ? AND id = ?", chatID, before).Limit(1).Find(&b).Error; err != nil {
			return fmt.Errorf("app: history events: %w", err)
		}
		if len(b) > 0 {
			q = q.Where("created_at < ?", b[0].CreatedAt)
		}
	}
	if page.More && len(page.Messages) > 0 {
		q = q.Where("created_at >= ?", page.Messages[len(page.Messages)-1].CreatedAt)
	}
	page.Events = []ChatEvent{}
	if err := q.Order("id desc").Limit(MaxPage).Find(&page.Events).Error; err != nil {
		return fmt.Errorf("app: history events: %w", err)
	}
	return nil
}

// Writable lets members edit the text of their own messages by client
// writes (the generated ChatChannel.save("Message", id, {text}) shows the
// edit at once and rolls it back if refused).
func (c *ChatChannel) Writable() []rx.Writable {
	return []rx.Writable{rx.Writes[Message]{Fields: []string{"text"}, Save: true, Allow: c.allowEdit}}
}

// allowEdit lets the sender edit their message's text, trimmed, stamps
// EditedAt, and keeps the chat list's preview in step when it is the
// chat's latest message.
func (c *ChatChannel) allowEdit(ctx context.Context, w rx.Write[Message]) error {
	uid, err := c.me()
	if err != nil {
		return err
	}
	if w.Old.SenderID != uid {
		return forbidden("you can edit only your own messages")
	}
	text, err := cleanText("a message", w.New.Text, MaxMessage, false)
	if err != nil {
		return err
	}
	w.New.Text = text
	if text == w.Old.Text {
		return nil // nothing changes: no write, no stamp
	}
	now := time.Now().UTC()
	w.New.EditedAt = &now
	var chat Chat
	if err := lockChat(w.Tx, &chat, w.Old.ChatID); err != nil {
		return err
	}
	var latest Message
	if err := w.Tx.Where("chat_id = ?", w.Old.ChatID).Order("id desc").Take(&latest).Error; err != nil {
		return err
	}
	if latest.ID == w.Old.ID {
		return w.Tx.Model(&UserChatRelation{}).Where("chat_id = ?", w.Old.ChatID).Update("last_message", preview(text)).Error
	}
	return nil
}
