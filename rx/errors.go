package rx

import (
	"errors"
	"fmt"
)

// Code is a stable, client-facing error code. The same strings appear on the
// wire and in the generated TypeScript runtime.
type Code string

// The error codes.
const (
	CodeUnauthenticated Code = "unauthenticated" // no or invalid credentials
	CodeForbidden       Code = "forbidden"       // the user may not do this
	CodeNotFound        Code = "not_found"       // the anchor or row does not exist
	CodeBadRequest      Code = "bad_request"     // malformed or mistyped input
	CodeUnknownAction   Code = "unknown_action"  // no such action on the channel
	CodeInternal        Code = "internal"        // a server fault; details are logged, not sent
	CodeOverloaded      Code = "overloaded"      // a client could not keep up; resume
	CodeTooLarge        Code = "too_large"       // an answer over the server's size limit
)

// Error is an error with a stable code and a public message, kept apart from
// the internal cause. Return one from a channel hook or action to choose the
// code the client sees; any other error reaches clients as CodeInternal.
type Error struct {
	Code    Code   // stable code
	Message string // public message, safe to show to the client
	Err     error  // internal cause, never sent
}

// Error implements error.
func (e *Error) Error() string {
	if e.Err != nil {
		return fmt.Sprintf("rx: %s: %s: %v", e.Code, e.Message, e.Err)
	}
	return fmt.Sprintf("rx: %s: %s", e.Code, e.Message)
}

// Unwrap returns the internal cause.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is an *Error with the same code, so that
// errors.Is(err, rx.ErrForbidden) matches any forbidden error.
func (e *Error) Is(target error) bool {
	var t *Error
	return errors.As(target, &t) && t.Message == "" && t.Err == nil && t.Code == e.Code
}

// Errorf returns an *Error with code and a formatted public message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Sentinels for errors.Is: each matches any *Error with its code.
var (
	ErrUnauthenticated = &Error{Code: CodeUnauthenticated}
	ErrForbidden       = &Error{Code: CodeForbidden}
	ErrNotFound        = &Error{Code: CodeNotFound}
	ErrBadRequest      = &Error{Code: CodeBadRequest}
	ErrUnknownAction   = &Error{Code: CodeUnknownAction}
	ErrInternal        = &Error{Code: CodeInternal}
	ErrOverloaded      = &Error{Code: CodeOverloaded}
	ErrTooLarge        = &Error{Code: CodeTooLarge}
)

// Public converts any error into the *Error a client may see: an *Error in
// the chain is returned as is; anything else becomes CodeInternal with a
// generic message and the original as the internal cause.
func Public(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	return &Error{Code: CodeInternal, Message: "internal error", Err: err}
}

// ErrUnownedTransaction is returned (and added to the statement) when a
// tracked model is written through a transaction rxgorm did not open: one
// begun explicitly (Transaction, Begin) inside db.Connection, or a raw
// *sql.Tx passed as the connection pool. Such a write could not be broadcast
// after its commit, so it is refused instead of being broadcast wrongly.
// Plain writes inside db.Connection are captured; for a transaction, use
// db.Transaction or db.Begin. With Config.WAL nothing is refused: the WAL
// delivers every committed transaction.
var ErrUnownedTransaction = errors.New("rx: write in a transaction not opened through the rx-enabled *gorm.DB (such as Transaction inside db.Connection); use db.Transaction or db.Begin")

// DeclarationError reports a bad channel or model declaration at
// registration, naming the Go type and field at fault.
type DeclarationError struct {
	Type   string // Go type, e.g. "chat.Chat"
	Field  string // Go field name, if the problem is a field
	Reason string
}

// Error implements error.
func (e *DeclarationError) Error() string {
	if e.Field != "" {
		return fmt.Sprintf("rx: %s.%s: %s", e.Type, e.Field, e.Reason)
	}
	return fmt.Sprintf("rx: %s: %s", e.Type, e.Reason)
}
