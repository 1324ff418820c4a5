package callctl

import (
	"encoding/json"
	"errors"
	"time"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Target is whom an outbound leg dials.
type Target struct {
	TenantID    string
	UserID      string // set for a user target
	Phone       string // E.164, set for a phone target
	DisplayName string
	// From is who the call presents: the bot's number (applicationInstance)
	// or app id; FromName its display name.
	From, FromName string
	// Replaces, when set, asks the target to replace one of its dialogs
	// with this call: the value of an RFC 3891 Replaces header (an
	// attended transfer a phone asked for, refer.go).
	Replaces string
	// Cascade, when set, is the leg carrying a person on this node into
	// their meeting's room on another node (cascade.go); the fields
	// above but FromName are unused.
	Cascade *Cascade
}

// LegEventKind says what happened on a leg.
type LegEventKind int

// Leg events, in the order a leg usually reports them.
const (
	LegRinging  LegEventKind = iota + 1 // SIP 180
	LegProgress                         // SIP 183: no call state change
	LegAnswered                         // SIP 200
	LegEnded                            // BYE, CANCEL, or a final failure
	LegTone                             // a DTMF key from the far end
	LegRefer                            // the far end asks to be transferred (SIP REFER, refer.go)
)

// LegEvent is reported by a leg to its call.
type LegEvent struct {
	Kind   LegEventKind
	Reason errs.EndReason // for LegEnded
	Tone   graph.Tone     // for LegTone
	Refer  *Refer         // for LegRefer
}

// Leg is the far end of a call: a simulated endpoint, a SIP dialog, a
// browser. Its methods must not block on the call (events go through the
// callback given at Dial, from the leg's own goroutines). After the call
// side ends a leg with HangUp or Reject, the leg reports nothing more.
type Leg interface {
	// Answer accepts an incoming leg: the far end is the caller. The leg
	// reports LegAnswered when media flows.
	Answer() error
	// Reject refuses an incoming leg with reason's SIP status.
	Reject(reason errs.EndReason)
	// HangUp ends the leg (BYE once answered, CANCEL before).
	HangUp(reason errs.EndReason)
	// SendTones plays DTMF toward the far end, 100 ms each and gap apart; done (never nil) is called, on any goroutine, once the last
	// has been sent or the leg has ended.
	SendTones(tones []graph.Tone, gap time.Duration, done func()) error
	// Ref identifies the leg so it can be resumed after a restart.
	Ref() LegRef
}

// The optional capabilities of a leg, which callctl looks for with a type
// assertion: a leg has the ones its media allows.
type (
	// RTPLeg is a leg whose RTP session the platform terminates (SIP,
	// WebRTC): prompts, recording and tones run on it, and a redirected
	// call bridges two of them.
	RTPLeg interface {
		Leg
		// Media is the leg's session; nil when its media failed to start.
		Media() *media.Session
	}
	// PortLeg is a leg with service-hosted media of its own making (a
	// simulated handset); it wins over RTPLeg.
	PortLeg interface {
		Leg
		MediaPort() MediaPort
	}
)

// LegRef is the persisted identity of a leg.
type LegRef struct {
	Kind string          `json:"kind"`
	Data json.RawMessage `json:"data,omitempty"`
}

// ErrNoRoute is returned by Dial when no endpoint can take the target; the
// wrapped EndReason says why.
var ErrNoRoute = errors.New("no route to target")

// RouteError carries why a target cannot be dialed.
type RouteError struct{ Reason errs.EndReason }

func (e *RouteError) Error() string { return "no route: " + e.Reason.Message }
func (e *RouteError) Unwrap() error { return ErrNoRoute }

// Dialer places outbound legs and resumes legs after a restart.
type Dialer interface {
	// Dial starts calling t. Events arrive through ev until LegEnded.
	Dial(callID string, t Target, ev func(LegEvent)) (Leg, error)
	// Resume rebuilds a leg of a call that was in state when the node
	// stopped. It fails when the leg cannot outlive its process; the far
	// end is then released if ref says how to reach it (a SIP BYE), so
	// nobody is left in dead air.
	Resume(callID string, ref LegRef, state graph.CallState, ev func(LegEvent)) (Leg, error)
}
