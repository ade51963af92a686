package app

import (
	"math"
	"strings"
	"unicode"
	"unicode/utf8"
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
