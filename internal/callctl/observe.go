package callctl

import (
	"fmt"
	"strings"
	"time"

	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Observer watches this node's calls (the operator console). ObserveCall
// runs on the call's actor, once a step's record is stored and before its
// notifications are queued, when the step changed what a CallEvent shows (the call appeared, its state or roster changed, it
// ended): it must return at once, handing the event off without blocking
// (the console copies it under a short lock and drops what a slow reader
// cannot take). The event is the observer's to keep.
type Observer interface {
	ObserveCall(CallEvent)
}

// Tracer is told, in a few words, what a call's SIP dialog and media did
// (the console's timeline): SIP requests and responses of its legs (the
// SIP gateway), prompts, recordings and tones (the call's media jobs),
// media failures. Trace is called on the goroutine where the thing
// happened (a leg's, the actor's, never the media clock's tick) and must
// return at once: the console only takes a short lock. The event is the
// tracer's to keep. The Manager's Observer is its tracer too when it
// implements Tracer; the SIP gateway is given one in its options.
type Tracer interface {
	Trace(TraceEvent)
}

// TraceEvent kinds.
const (
	TraceSIP   = "sip"   // a SIP request or response of one of the call's legs
	TraceMedia = "media" // a prompt, recording, tone or media failure
)

// TraceEvent is one thing a call's signalling or media did.
type TraceEvent struct {
	CallID string
	At     time.Time
	Kind   string // TraceSIP or TraceMedia
	Text   string // what happened; never a key's digit, a token or a password
	// Recording is the id of a recording of the call just stored (its
	// recordingLocation's last segment), for the console to play.
	Recording string
}

var _ Tracer = (*Manager)(nil)

// Trace hands ev to the Manager's Observer when it is a Tracer too: the
// SIP gateway traces its legs through the Manager it gives them to.
func (m *Manager) Trace(ev TraceEvent) {
	if t, ok := m.o.Observer.(Tracer); ok {
		t.Trace(ev)
	}
}

// trace tells the Manager's tracer what the call's media did.
func (a *actor) trace(text string, recording string) {
	if _, ok := a.m.o.Observer.(Tracer); ok {
		a.m.Trace(TraceEvent{CallID: a.rec.Call.ID, At: a.m.clk.Now(), Kind: TraceMedia, Text: text, Recording: recording})
	}
}

// CallEvent kinds.
const (
	ObservedCreated      = "created"      // first seen on this node (new, incoming, or resumed after a restart)
	ObservedState        = "state"        // its state changed
	ObservedParticipants = "participants" // its roster changed
	ObservedEnded        = "ended"        // it ended for the bot; Call.ResultInfo says why
	// ObservedLeg: the call's far end (its SIP dialog, browser or simulated
	// user) reported something, told as it reaches the actor, before the
	// step it causes is stored; Detail says what. A key's digit is not
	// told (it may be a PIN).
	ObservedLeg = "leg"
	// ObservedNotified: notifications of the call were queued for its bot
	// (stored); Notifications says which.
	ObservedNotified = "notified"
)

// CallEvent is one observed change of a call.
type CallEvent struct {
	Kind   string
	At     time.Time
	Call   CallSnapshot
	Detail string // for ObservedLeg
	// Notifications are those the step queued (ObservedNotified).
	Notifications []NotificationSnapshot
}

// NotificationSnapshot names a queued notification: its id (the webhook
// outbox's Result.ID) and what it says, in a few words (no body: a bot's
// clientContext or a key's digit is not repeated).
type NotificationSnapshot struct {
	ID      string
	Summary string
}

// CallSnapshot is what an operator may see of a call: no callback URI, no
// media blob, no token.
type CallSnapshot struct {
	ID           string
	State        string
	Direction    string
	MediaMode    string // "serviceHosted" or "appHosted"
	AppID        string
	TenantID     string
	Meeting      string // the meeting id of a meeting call
	Group        bool
	Participants []ParticipantSnapshot
	ResultInfo   *graph.ResultInfo // set once ended
}

// ParticipantSnapshot is one roster entry as an operator sees it.
type ParticipantSnapshot struct {
	ID      string
	Name    string // display name, else the identity's id
	Kind    string // user, phone, application, guest…
	Muted   bool
	InLobby bool
}

// observed is what the observer last saw of the call.
type observed struct {
	seen   bool
	ended  bool
	state  graph.CallState
	roster string
}

// observe tells the Manager's observer what the stored step changed.
func (a *actor) observe() {
	ob := a.m.o.Observer
	if ob == nil || a.seenBy.ended {
		return
	}
	if len(a.notified) > 0 {
		// Before they are queued: a delivery's result always finds its
		// notification named.
		ob.ObserveCall(CallEvent{Kind: ObservedNotified, At: a.m.clk.Now(), Call: a.snapshot(), Notifications: a.notified})
		a.notified = nil
	}
	roster := rosterKey(a.rec.Participants)
	kind := ""
	switch {
	case !a.seenBy.seen:
		kind = ObservedCreated
	case a.deleted:
		kind = ObservedEnded
	case a.rec.Call.State != a.seenBy.state:
		kind = ObservedState
	case roster != a.seenBy.roster:
		kind = ObservedParticipants
	default:
		return
	}
	a.seenBy = observed{seen: true, ended: a.deleted, state: a.rec.Call.State, roster: roster}
	ob.ObserveCall(CallEvent{Kind: kind, At: a.m.clk.Now(), Call: a.snapshot()})
	if kind == ObservedCreated && a.deleted { // created and ended in one step
		ob.ObserveCall(CallEvent{Kind: ObservedEnded, At: a.m.clk.Now(), Call: a.snapshot()})
	}
}

func rosterKey(ps []graph.Participant) string {
	var b strings.Builder
	for i := range ps {
		b.WriteString(ps[i].ID)
		if ps[i].IsMuted {
			b.WriteByte('m')
		}
		if ps[i].IsInLobby {
			b.WriteByte('l')
		}
		b.WriteByte(';')
	}
	return b.String()
}

func (a *actor) snapshot() CallSnapshot {
	c := &a.rec.Call
	s := CallSnapshot{ID: c.ID, State: string(c.State), Direction: string(c.Direction), MediaMode: "serviceHosted",
		AppID: a.rec.AppID, TenantID: a.rec.TenantID, Meeting: a.rec.Meeting, Group: a.rec.Group}
	if c.MediaConfig.AppHosted() {
		s.MediaMode = "appHosted"
	}
	if c.ResultInfo != nil {
		ri := *c.ResultInfo
		s.ResultInfo = &ri
	}
	for i := range a.rec.Participants {
		p := &a.rec.Participants[i]
		ps := ParticipantSnapshot{ID: p.ID, Muted: p.IsMuted, InLobby: p.IsInLobby}
		if p.Info != nil && p.Info.Identity != nil {
			ps.Kind, ps.Name = identityName(p.Info.Identity)
		}
		s.Participants = append(s.Participants, ps)
	}
	return s
}

func identityName(is *graph.IdentitySet) (kind, name string) {
	for _, c := range []struct {
		kind string
		id   *graph.Identity
	}{{"user", is.User}, {"phone", is.Phone}, {"application", is.Application}, {"applicationInstance", is.ApplicationInstance},
		{"guest", is.Guest}, {"acsUser", is.AzureCommunicationServicesUser}} {
		if c.id == nil {
			continue
		}
		if c.id.DisplayName != "" {
			return c.kind, c.id.DisplayName
		}
		return c.kind, c.id.ID
	}
	return "", ""
}

// noteNotification names a notification the step queues, for the observer.
func (a *actor) noteNotification(id string, change graph.ChangeType, data any) {
	if a.m.o.Observer == nil {
		return
	}
	var what string
	switch d := data.(type) {
	case *graph.Call:
		switch {
		case d.ToneInfo != nil:
			what = "call updated: a key pressed"
		case d.State != "":
			what = fmt.Sprintf("call %s: %s", change, d.State)
		default:
			what = fmt.Sprintf("call %s", change)
		}
	case *graph.Operation:
		kind := strings.TrimPrefix(d.ODataType, "#microsoft.graph.")
		if kind == "" {
			kind = "operation"
		}
		what = fmt.Sprintf("%s %s", kind, d.Status)
		if ri := d.ResultInfo; ri != nil && d.Status == graph.OperationFailed {
			what += fmt.Sprintf(" %d/%d", ri.Code, ri.Subcode)
		}
	default:
		what = fmt.Sprintf("participants %s", change)
	}
	a.notified = append(a.notified, NotificationSnapshot{ID: id, Summary: what})
}

// observeLeg tells the observer what the call's far end reported, or a
// group call's member pid.
func (a *actor) observeLeg(pid string, ev LegEvent) {
	ob := a.m.o.Observer
	if ob == nil || a.seenBy.ended || !a.seenBy.seen {
		return
	}
	d := "far end "
	if pid != "" {
		d = "participant " + pid + " "
	}
	switch ev.Kind {
	case LegRinging:
		d += "ringing (SIP 180)"
	case LegProgress:
		d += "in progress (SIP 183)"
	case LegAnswered:
		d += "answered (SIP 200), media flowing"
	case LegEnded:
		d += fmt.Sprintf("gone: %d/%d %s", ev.Reason.Code, ev.Reason.Subcode, ev.Reason.Message)
	case LegTone:
		d += "pressed a key (DTMF)"
	case LegRefer:
		d += "asked to be transferred (SIP REFER)"
	default:
		return
	}
	ob.ObserveCall(CallEvent{Kind: ObservedLeg, At: a.m.clk.Now(), Call: a.snapshot(), Detail: d})
}
