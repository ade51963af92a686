package app

import "gorm.io/gorm"

// System events of a chat (ChatEvent rows): what the chat's notices say,
// kept in the chat's state so that they survive a reload and show what
// happened while a member was away.

// NoticeChatCreated is the kind of a group chat's first event; it is
// stored, never published.
const NoticeChatCreated = "chat.created"

// eventTx stores a system event of chat chatID in the transaction and, if
// publish, queues it as a notice to the chat's subscriptions.
func eventTx(tx *gorm.DB, out *outbox, chatID uint, kind, text string, publish bool) error {
	if err := tx.Create(&ChatEvent{ChatID: chatID, Kind: kind, Text: truncate(text, 300)}).Error; err != nil {
		return err
	}
	if publish {
		out.chat(chatID, kind, text)
	}
	return nil
}

// truncate shortens s to at most n runes.
func truncate(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}
