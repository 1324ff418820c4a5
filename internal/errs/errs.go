// Package errs is Switchboard's one table of stable error codes. A failure
// is classified where it starts, as an *Error with a Kind; each edge maps
// the Kind exactly once: graphapi to an HTTP status and Graph error code,
// sipgw to a SIP final response, metrics to a label.
//
// Call ends have their own table (EndReason): the resultInfo code, subcode
// and human message a bot sees in the terminated notification, and the SIP
// status the far end gets.
package errs

import (
	"errors"
	"fmt"
	"net/http"
)

// Kind classifies a failure.
type Kind int

// The kinds of failure.
const (
	Internal         Kind = iota // a bug or an unexpected failure of a dependency
	BadRequest                   // the request is malformed or names bad values
	Unauthenticated              // no token, a bad or expired one
	Forbidden                    // the token lacks a permission
	NotFound                     // no such resource (or not this caller's)
	Conflict                     // the resource is in a state that forbids the action
	TooLarge                     // the body exceeds the limit
	Throttled                    // too many requests or calls
	Unavailable                  // the node is shutting down or a dependency is down
	NotSupported                 // valid but not supported here (yet)
	UnsupportedMedia             // content type or encoding not accepted
	MethodNotAllowed             // the path exists but not with this method
)

type kindInfo struct {
	name   string
	status int
	graph  string // Graph error.code
}

var kinds = map[Kind]kindInfo{
	Internal:         {"internal", http.StatusInternalServerError, "generalException"},
	BadRequest:       {"bad_request", http.StatusBadRequest, "BadRequest"},
	Unauthenticated:  {"unauthenticated", http.StatusUnauthorized, "InvalidAuthenticationToken"},
	Forbidden:        {"forbidden", http.StatusForbidden, "Forbidden"},
	NotFound:         {"not_found", http.StatusNotFound, "itemNotFound"},
	Conflict:         {"conflict", http.StatusConflict, "conflict"},
	TooLarge:         {"too_large", http.StatusRequestEntityTooLarge, "requestTooLarge"},
	Throttled:        {"throttled", http.StatusTooManyRequests, "TooManyRequests"},
	Unavailable:      {"unavailable", http.StatusServiceUnavailable, "serviceNotAvailable"},
	NotSupported:     {"not_supported", http.StatusBadRequest, "notSupported"},
	UnsupportedMedia: {"unsupported_media", http.StatusUnsupportedMediaType, "unsupportedMediaType"},
	MethodNotAllowed: {"method_not_allowed", http.StatusMethodNotAllowed, "methodNotAllowed"},
}

// String is the kind's metric label.
func (k Kind) String() string { return kinds[k].name }

// HTTPStatus is the status a Graph response carries for k.
func (k Kind) HTTPStatus() int { return kinds[k].status }

// GraphCode is the error.code a Graph response carries for k.
func (k Kind) GraphCode() string { return kinds[k].graph }

// Error is a classified failure. Msg is safe to show to the API caller.
type Error struct {
	Kind Kind
	Msg  string
	Err  error // the cause, for logs; never shown to callers
}

func (e *Error) Error() string {
	if e.Err != nil {
		return e.Msg + ": " + e.Err.Error()
	}
	return e.Msg
}

func (e *Error) Unwrap() error { return e.Err }

// E returns a classified error with a caller-safe message.
func E(k Kind, format string, args ...any) *Error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...)}
}

// Wrap classifies cause with a caller-safe message.
func Wrap(k Kind, cause error, format string, args ...any) *Error {
	return &Error{Kind: k, Msg: fmt.Sprintf(format, args...), Err: cause}
}

// KindOf returns the kind of err: Internal when err is not classified.
func KindOf(err error) Kind {
	var e *Error
	if errors.As(err, &e) {
		return e.Kind
	}
	return Internal
}

// Message returns the caller-safe message of err.
func Message(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Msg
	}
	return "An internal server error occurred."
}
