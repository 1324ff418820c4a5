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

// Result codes of a failed playPrompt (or the prompt of a recordResponse),
// for the operation's resultInfo. Graph documents only 200/0 (success),
// 200/8515 (record hit its maximum duration) and 400/8508 (cancelled) for
// media operations (graph-calls.md §6.2, §13); the codes for a prompt that
// cannot be fetched or decoded are Switchboard's choice, in the 85xx range
// Graph uses for media operations and above the ones it documents:
//
//	400 8520  the media URI is unreachable (refused, timed out, DNS failure)
//	400 8521  the media server answered with a status other than 200
//	400 8522  the media is not a WAV file, or uses an unsupported encoding
//	400 8523  the media is too large (bytes or duration)
//	403 8524  the media URI is not allowed by the outbound allow-list
//	400 8525  the media URI is invalid (missing, not http/https)
//	500 8526  an internal error while preparing the prompt
//
// The message is the error's caller-safe text; it names the URI and what
// was wrong, for the bot author.
const (
	SubcodeUnreachable = 8520
	SubcodeStatus      = 8521
	SubcodeFormat      = 8522
	SubcodeTooLarge    = 8523
	SubcodeForbidden   = 8524
	SubcodeInvalidURI  = 8525
	SubcodeInternal    = 8526
	SubcodeCancelled   = 8508 // Graph's own, §2.12
)

// ResultFor maps the outcome of preparing a prompt to the resultInfo of
// the operation that wanted to play it: 200/0 for nil, 400/8508 when ctx
// was cancelled (the operation was cancelled or the call ended), and the
// codes above otherwise.
func ResultFor(err error) (code, subcode int, message string) {
	if err == nil {
		return 200, 0, "Action completed successfully."
	}
	failed := func(code, subcode int) (int, int, string) {
		msg := errs.Message(err)
		if !strings.HasSuffix(msg, ".") {
			msg += "."
		}
		return code, subcode, "Action failed, " + msg
	}
	switch {
	case errors.Is(err, context.Canceled):
		return 400, SubcodeCancelled, "Action failed, the operation was cancelled."
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
	return 500, SubcodeInternal, "Action failed, an internal error occurred while preparing the prompt."
}
