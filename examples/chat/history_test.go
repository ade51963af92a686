package main

import (
	"strings"
	"testing"

	"github.com/rxgorm/rxgorm/examples/chat/app"
	"github.com/rxgorm/rxgorm/rx"
)

// A history page of long messages stays under the server's MaxResult
// (256 KiB): History stops a page at app.MaxPageBytes, and the client
// pages on; without the bound, 100 messages of 4000 two-byte characters
// are answered too_large.
func TestHistoryPagesFitMaxResult(t *testing.T) {
	eachServer(t, func(t *testing.T, base string) {
		alice, bob := signup(t, base, "alice"), signup(t, base, "bob")
		wa, wb := dialWS(t, base, "alice", alice.Token), dialWS(t, base, "bob", bob.Token)
		wa.subscribe("home", "HomeChannel", map[string]any{"userId": alice.User.ID})
		wb.subscribe("home", "HomeChannel", map[string]any{"userId": bob.User.ID})
		chat := befriend(wa, wb, "bob")
		wa.subscribe("c", "ChatChannel", map[string]any{"chatId": chat})
		long := strings.Repeat("é", app.MaxMessage)
		for range app.MaxPage {
			wa.call("c", "sendMessage", long)
		}
		wa.drop(func(map[string]any) bool { return true })

		seen := map[uint]bool{}
		before, pages := uint(0), 0
		for {
			var page app.MessagePage
			raw := wa.call("c", "history", before, app.MaxPage)
			if len(raw) > 256<<10 {
				t.Fatalf("a page of %d bytes", len(raw))
			}
			if err := rx.Unmarshal(raw, &page); err != nil {
				t.Fatal(err)
			}
			pages++
			for _, m := range page.Messages {
				if seen[m.ID] || m.Text != long {
					t.Fatalf("message %d twice or cut", m.ID)
				}
				seen[m.ID] = true
				before = m.ID
			}
			if !page.More {
				break
			}
			if len(page.Messages) == 0 {
				t.Fatal("an empty page with more")
			}
		}
		if len(seen) != app.MaxPage || pages < 2 {
			t.Fatalf("%d messages in %d pages", len(seen), pages)
		}
	})
}
