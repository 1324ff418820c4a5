package prompt

import (
	"context"
	"errors"
	"strings"

	"github.com/switchboard-voice/switchboard/internal/errs"
)

// The reasons a prompt cannot be played. Every error Get returns is an
// *errs.Error whose cause chain holds exactly one of these (test with
// errors.Is); ResultFor maps them to resultInfo subcodes.
var (
	ErrInvalidURI  = errors.New("prompt: invalid media uri")
	ErrUnreachable = errors.New("prompt: media uri unreachable")
	ErrStatus      = errors.New("prompt: media server did not answer 200 OK")
	ErrFormat      = errors.New("prompt: not a supported WAV file")
	ErrTooLarge    = errors.New("prompt: media too large")
	ErrForbidden   = errors.New("prompt: media uri not allowed by outbound.allow")
)

// Subcodes of a prompt that cannot be played, for the operation's
// resultInfo; the table with their meanings is errs' (internal/errs).
const (
	SubcodeUnreachable = errs.SubcodeUnreachable
	SubcodeStatus      = errs.SubcodeStatus
	SubcodeFormat      = errs.SubcodeFormat
	SubcodeTooLarge    = errs.SubcodeTooLarge
	SubcodeForbidden   = errs.SubcodeForbidden
	SubcodeInvalidURI  = errs.SubcodeInvalidURI
	SubcodeInternal    = errs.SubcodeInternal
	SubcodeCancelled   = errs.SubcodeCancelled
)

// ResultFor maps the outcome of preparing a prompt to the result of the
// operation that wanted to play it: errs.OpCompleted for nil,
// errs.OpCancelled when ctx was cancelled (the operation was cancelled or
// the call ended), and the 852x subcodes otherwise, with the error's
// caller-safe text, which names the URI and what was wrong.
func ResultFor(err error) errs.Result {
	if err == nil {
		return errs.OpCompleted
	}
	failed := func(code, subcode int) errs.Result {
		msg := errs.Message(err)
		if !strings.HasSuffix(msg, ".") {
			msg += "."
		}
		return errs.Result{Code: code, Subcode: subcode, Message: "Action failed, " + msg}
	}
	switch {
	case errors.Is(err, context.Canceled):
		return errs.OpCancelled
	case errors.Is(err, ErrForbidden):
		return failed(403, SubcodeForbidden)
	case errors.Is(err, ErrUnreachable):
		return failed(400, SubcodeUnreachable)
	case errors.Is(err, ErrStatus):
		return failed(400, SubcodeStatus)
	case errors.Is(err, ErrFormat):
		return failed(400, SubcodeFormat)
	case errors.Is(err, ErrTooLarge):
		return failed(400, SubcodeTooLarge)
	case errors.Is(err, ErrInvalidURI):
		return failed(400, SubcodeInvalidURI)
	}
	return errs.Result{Code: 500, Subcode: SubcodeInternal, Message: "Action failed, an internal error occurred while preparing the prompt."}
}
