package app

import (
	"math"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rxgorm/rxgorm/rx"
	"golang.org/x/time/rate"
)

// Input limits. Everything a client sends is checked here before it
// reaches the database: too long, too many, out of range or unprintable
// input is refused with bad_request and a message saying what is allowed,
// never passed on to fail as an internal error (PostgreSQL refuses NUL
// bytes, ids beyond its bigint and more than 65,535 bound parameters).

// MaxNewMembers is the most friends a new group chat can start with.
const MaxNewMembers = 200

// maxID is the largest id the databases store (a signed 64-bit integer).
const maxID = math.MaxInt64

// checkIDs refuses ids that no row can have.
func checkIDs(ids ...uint) error {
	for _, id := range ids {
		if uint64(id) > maxID {
			return badRequest("%d is not a valid id", id)
		}
	}
	return nil
}

// bidiControl reports whether r is an invisible character that changes
// the direction of the text around it: the marks (U+200E, U+200F,
// U+061C), embeddings and overrides (U+202A–U+202E) and isolates
// (U+2066–U+2069). In a name they make it read differently from what it
// is ("Trojan Source").
func bidiControl(r rune) bool {
	switch {
	case r == 0x200E, r == 0x200F, r == 0x061C:
		return true
	case r >= 0x202A && r <= 0x202E:
		return true
	case r >= 0x2066 && r <= 0x2069:
		return true
	}
	return false
}

// cleanName trims a name (a display name, a chat or friend group name)
// and checks it: 1 to max characters of valid UTF-8, none of them a
// control character (C0, DEL, C1), a line or paragraph separator, or a
// bidirectional control. what names it in the error ("a display name").
func cleanName(what, name string, max int) (string, error) {
	name = strings.TrimSpace(name)
	if name == "" || len(name) > 4*max || utf8.RuneCountInString(name) > max {
		return "", badRequest("%s has 1 to %d characters", what, max)
	}
	if !utf8.ValidString(name) {
		return "", badRequest("%s must be valid UTF-8", what)
	}
	for _, r := range name {
		if unicode.IsControl(r) || r == '\u2028' || r == '\u2029' || bidiControl(r) {
			return "", badRequest("%s cannot contain control or text-direction characters (U+%04X)", what, r)
		}
	}
	return name, nil
}

// cleanText trims a free text (a message, an invitation's note) and checks
// it: at most max characters (at least one unless empty is allowed), no
// control characters but tab and line breaks. Direction marks stay
// allowed: right-to-left writing needs them.
func cleanText(what, text string, max int, empty bool) (string, error) {
	text = strings.TrimSpace(text)
	if (text == "" && !empty) || len(text) > 4*max || utf8.RuneCountInString(text) > max {
		if empty {
			return "", badRequest("%s has at most %d characters", what, max)
		}
		return "", badRequest("%s has 1 to %d characters", what, max)
	}
	if !utf8.ValidString(text) {
		return "", badRequest("%s must be valid UTF-8", what)
	}
	for _, r := range text {
		if unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' {
			return "", badRequest("%s cannot contain control characters (U+%04X)", what, r)
		}
	}
	return text, nil
}

// Rate is a token bucket: Burst events at once, then one more every
// Every.
type Rate struct {
	Every time.Duration
	Burst int
}

// Default rates.
var (
	// DefaultTypingRate limits Typing calls per user, over all their
	// chats. The web UI sends one every 2 s at most while the user types.
	DefaultTypingRate = Rate{Every: 500 * time.Millisecond, Burst: 10}
	// DefaultLoginIPRate limits login attempts per client IP address.
	DefaultLoginIPRate = Rate{Every: 3 * time.Second, Burst: 20}
	// DefaultLoginUserRate limits login attempts per username, from
	// anywhere: guessing one user's password from many addresses.
	DefaultLoginUserRate = Rate{Every: 6 * time.Second, Burst: 10}
	// DefaultRegisterRate limits registrations per client IP address.
	DefaultRegisterRate = Rate{Every: 30 * time.Second, Burst: 10}
)

// Limiter limits events per key (a user id, an IP address, a username)
// with one golang.org/x/time/rate token bucket per key. Buckets that
// refilled completely are dropped from time to time, so memory follows
// the keys active lately, not every key ever seen.
type Limiter struct {
	rate Rate

	mu      sync.Mutex
	buckets map[string]*rate.Limiter // guarded by mu
	added   int                      // buckets added since the last sweep; guarded by mu
}

// NewLimiter returns a Limiter allowing r per key. A zero Rate allows
// everything.
func NewLimiter(r Rate) *Limiter {
	return &Limiter{rate: r, buckets: map[string]*rate.Limiter{}}
}

// sweepEvery is how many new buckets trigger a sweep of the full ones.
const sweepEvery = 1024

// Allow takes one event from key's bucket. When the bucket is empty it
// returns false and how long until the next event is allowed.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	if l == nil || l.rate.Every <= 0 || l.rate.Burst <= 0 {
		return true, 0
	}
	now := time.Now()
	l.mu.Lock()
	b := l.buckets[key]
	if b == nil {
		if l.added++; l.added >= sweepEvery {
			l.added = 0
			for k, old := range l.buckets {
				if old.TokensAt(now) >= float64(l.rate.Burst) {
					delete(l.buckets, k)
				}
			}
		}
		b = rate.NewLimiter(rate.Every(l.rate.Every), l.rate.Burst)
		l.buckets[key] = b
	}
	l.mu.Unlock()
	r := b.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// limited is the error of an action refused by a Limiter: overloaded,
// with when to try again.
func limited(what string, wait time.Duration) error {
	return rx.Errorf(rx.CodeOverloaded, "too many %s: try again in %d s", what, RetrySeconds(wait))
}

// RetrySeconds rounds a wait up to whole seconds, at least one (for
// messages and the Retry-After header).
func RetrySeconds(wait time.Duration) int {
	return max(1, int(math.Ceil(wait.Seconds())))
}
