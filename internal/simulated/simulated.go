// Package simulated is the built-in simulated endpoint: users configured
// with `simulated: true` are answered by it, and simulated callers can dial
// bots' numbers. It stands in for phones wherever a test or a demo has none:
// it rings, answers, refuses, presses keys and hangs up as its user's
// simulation settings say, and records what the bot did to it.
//
// The Endpoint is a callctl.Dialer. Its control API (Handler) lets tests in
// any language place calls and inspect legs over HTTP. It is safe for
// concurrent use.
package simulated

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/clock"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/identity"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Defaults for users whose simulation leaves timings unset.
const (
	DefaultRingAfter    = 200 * time.Millisecond
	DefaultAnswerAfter  = time.Second
	DefaultDTMFInterval = 300 * time.Millisecond
)

// Incoming is how the endpoint hands a simulated caller's call to the platform.
type Incoming interface {
	Incoming(ctx context.Context, in callctl.IncomingCall) (string, error)
}

// Endpoint simulates users' phones.
type Endpoint struct {
	dir *identity.Directory
	clk clock.Clock
	log *slog.Logger

	mu       sync.Mutex
	incoming Incoming
	engine   *media.Engine   // simulated users have RTP handsets when set
	added    chan struct{}   // closed when a leg is added
	legs     map[string]*Leg // by leg id
	order    []string
}

var (
	_ callctl.Dialer  = (*Endpoint)(nil)
	_ callctl.PortLeg = (*Leg)(nil)
	_ callctl.RTPLeg  = (*Leg)(nil)
)

// New returns an endpoint for the directory's simulated users.
func New(dir *identity.Directory, clk clock.Clock, log *slog.Logger) *Endpoint {
	if clk == nil {
		clk = clock.Real{}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Endpoint{dir: dir, clk: clk, log: log, legs: map[string]*Leg{}, added: make(chan struct{})}
}

// UseMedia gives simulated users real RTP handsets on eng (simulator.audio):
// prompts are heard as audio, speech and keys go through the media engine.
// Without it, media is timed: prompts take their length and are counted,
// and the user is silent.
func (e *Endpoint) UseMedia(eng *media.Engine) {
	e.mu.Lock()
	e.engine = eng
	e.mu.Unlock()
}

// Attach sets where simulated callers' calls go (the call manager).
func (e *Endpoint) Attach(in Incoming) {
	e.mu.Lock()
	e.incoming = in
	e.mu.Unlock()
}

// Leg is one simulated phone in a call. Its exported methods are safe for
// concurrent use.
type Leg struct {
	e        *Endpoint
	id       string
	callID   string
	user     *config.User
	tenantID string
	incoming bool // the simulated user is the caller
	sim      config.Simulation
	ev       func(callctl.LegEvent)

	mu        sync.Mutex
	state     string // ringing, connected, ended
	reason    *errs.EndReason
	sipStatus int
	received  []graph.Tone
	media     *simMedia
	audio     *legAudio // nil with timed media
	played    int
	playedFor time.Duration
	playing   int // prompts playing on a handset's own line
	timers    []clock.Timer
	changed   chan struct{}
}

// LegState is what the control API reports about a leg.
type LegState struct {
	ID            string `json:"id"`
	CallID        string `json:"callId"`
	User          string `json:"user"`
	UserID        string `json:"userId"`
	Direction     string `json:"direction"` // incoming: the simulated user placed the call
	State         string `json:"state"`
	TonesReceived string `json:"tonesReceived"`
	// PromptsHeard counts the prompts (and beeps) played to the simulated user; PromptSeconds their length.
	PromptsHeard  int     `json:"promptsHeard"`
	PromptSeconds float64 `json:"promptSeconds"`
	// PromptPlaying says a prompt is playing to the user on their own line
	// now (with a handset): the bot's in a two-party call, or the
	// platform's own to a dial-in caller (its questions, the lobby's hold
	// music), which the user hears instead of the meeting.
	PromptPlaying bool `json:"promptPlaying,omitempty"`
	// Audio says the user has an RTP handset (simulator.audio); SoundSeconds
	// is how much sound (not silence) it has heard.
	Audio        bool    `json:"audio"`
	SoundSeconds float64 `json:"soundSeconds"`
	// SIPStatus is the final response the platform refused the leg with (486, 603, 480...); 0 after a BYE.
	SIPStatus  int    `json:"sipStatus,omitempty"`
	EndCode    int    `json:"endCode,omitempty"`
	EndSubcode int    `json:"endSubcode,omitempty"`
	EndReason  string `json:"endReason,omitempty"`
}

type ref struct {
	LegID    string            `json:"legId"`
	UserID   string            `json:"userId"`
	TenantID string            `json:"tenantId"`
	Incoming bool              `json:"incoming,omitempty"`
	Sim      config.Simulation `json:"sim"`
}

func (e *Endpoint) find(t callctl.Target) (*config.User, string, error) {
	if t.UserID != "" {
		u, ok := e.dir.User(t.TenantID, t.UserID)
		if !ok {
			return nil, "", &callctl.RouteError{Reason: errs.NoEndpoints}
		}
		return u, t.TenantID, nil
	}
	tid, u, ok := e.dir.UserByPhone(t.Phone)
	if !ok {
		return nil, "", &callctl.RouteError{Reason: errs.CannotRoute}
	}
	return u, tid, nil
}

// Dial calls a simulated user. Users that are not simulated have no
// endpoint here.
func (e *Endpoint) Dial(callID string, t callctl.Target, ev func(callctl.LegEvent)) (callctl.Leg, error) {
	u, tid, err := e.find(t)
	if err != nil {
		return nil, err
	}
	if !u.Simulated {
		return nil, &callctl.RouteError{Reason: errs.NoEndpoints}
	}
	a, err := e.openAudio()
	if err != nil {
		return nil, err
	}
	l := e.newLeg(callID, u, tid, false, u.Simulation, ev, a)
	l.ring()
	return l, nil
}

// Resume rebuilds a simulated leg after a restart.
func (e *Endpoint) Resume(callID string, r callctl.LegRef, state graph.CallState, ev func(callctl.LegEvent)) (callctl.Leg, error) {
	if r.Kind != "sim" {
		return nil, fmt.Errorf("simulated: cannot resume a %s leg", r.Kind)
	}
	var rf ref
	if err := json.Unmarshal(r.Data, &rf); err != nil {
		return nil, fmt.Errorf("simulated: leg ref: %w", err)
	}
	u, ok := e.dir.User(rf.TenantID, rf.UserID)
	if !ok {
		return nil, fmt.Errorf("simulated: user %s is gone from the configuration", rf.UserID)
	}
	a, err := e.openAudio()
	if err != nil {
		return nil, err
	}
	l := e.newLeg(callID, u, rf.TenantID, rf.Incoming, rf.Sim, ev, a)
	l.id = rf.LegID
	switch {
	case state == graph.StateEstablished || state == graph.StateHold:
		l.connected()
	case !rf.Incoming:
		l.ring()
	}
	return l, nil
}

func (e *Endpoint) newLeg(callID string, u *config.User, tid string, incoming bool, sim config.Simulation, ev func(callctl.LegEvent), a *legAudio) *Leg {
	l := &Leg{e: e, id: newLegID(), callID: callID, user: u, tenantID: tid, incoming: incoming,
		sim: sim, ev: ev, state: "ringing", changed: make(chan struct{}), audio: a}
	if a != nil {
		a.leg.Store(l)
	}
	e.mu.Lock()
	e.legs[l.id] = l
	e.order = append(e.order, l.id)
	close(e.added)
	e.added = make(chan struct{})
	if len(e.order) > 10000 { // forget the oldest ended legs
		old := e.order[0]
		if ol := e.legs[old]; ol != nil && ol.State().State == "ended" {
			delete(e.legs, old)
			e.order = e.order[1:]
		}
	}
	e.mu.Unlock()
	return l
}

func orDefault(d config.Duration, def time.Duration) time.Duration {
	if d.D() > 0 {
		return d.D()
	}
	return def
}

// after runs fn on the leg after d unless the leg has ended by then.
func (l *Leg) after(d time.Duration, fn func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state == "ended" {
		return
	}
	l.timers = append(l.timers, l.e.clk.AfterFunc(d, func() {
		if l.State().State != "ended" {
			fn()
		}
	}))
}

// emit reports an event unless the leg ended (a leg that was hung up or
// rejected by the platform reports nothing more).
func (l *Leg) emit(ev callctl.LegEvent) {
	l.mu.Lock()
	ended := l.state == "ended"
	l.mu.Unlock()
	if !ended {
		l.ev(ev)
	}
}

func (l *Leg) ring() {
	switch l.sim.Answer {
	case "unreachable":
		l.after(orDefault(l.sim.RingAfter, DefaultRingAfter), func() {
			l.finish(errs.Unreachable, true)
		})
		return
	}
	ringAt := orDefault(l.sim.RingAfter, DefaultRingAfter)
	answerAt := max(orDefault(l.sim.AnswerAfter, DefaultAnswerAfter), ringAt)
	// The answer is scheduled from the ring, so the two are reported in
	// order however late the timers fire.
	l.after(ringAt, func() {
		l.after(answerAt-ringAt, l.answerOrRefuse) // armed before ringing is reported
		l.emit(callctl.LegEvent{Kind: callctl.LegRinging})
	})
}

// answerOrRefuse is the simulated user picking up, or not.
func (l *Leg) answerOrRefuse() {
	switch l.sim.Answer {
	case "busy":
		l.finish(errs.RemoteBusy, true)
	case "decline":
		l.finish(errs.RemoteDeclined, true)
	case "noAnswer":
	default:
		l.connected()
		l.emit(callctl.LegEvent{Kind: callctl.LegAnswered})
	}
}

// connected starts what a simulated user does once the call is up.
func (l *Leg) connected() {
	l.setState("connected")
	if l.audio != nil {
		l.audio.hs.Start()
	}
	if l.sim.DTMF != "" {
		iv := orDefault(l.sim.DTMFInterval, DefaultDTMFInterval)
		for i, ch := range l.sim.DTMF {
			t, _ := graph.ParseTone(string(ch))
			l.after(time.Duration(i+1)*iv, func() { l.press(t) })
		}
	}
	if d := l.sim.HangUpAfter.D(); d > 0 {
		l.after(d, func() { l.finish(errs.EndedByRemote, true) })
	}
}

func (l *Leg) setState(s string) {
	l.mu.Lock()
	if l.state != s && l.state != "ended" {
		l.state = s
		close(l.changed)
		l.changed = make(chan struct{})
	}
	l.mu.Unlock()
}

// finish ends the leg; with report the call hears of it (the far end hung up).
func (l *Leg) finish(reason errs.EndReason, report bool) {
	l.mu.Lock()
	if l.state == "ended" {
		l.mu.Unlock()
		return
	}
	l.state = "ended"
	l.reason = &reason
	for _, t := range l.timers {
		t.Stop()
	}
	l.timers = nil
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
	if l.audio != nil {
		l.audio.close()
	}
	if report {
		l.ev(callctl.LegEvent{Kind: callctl.LegEnded, Reason: reason})
	}
}

// Answer is the platform answering the simulated caller.
func (l *Leg) Answer() error {
	if l.State().State == "ended" {
		return errors.New("simulated: the caller has hung up")
	}
	l.connected()
	go l.emit(callctl.LegEvent{Kind: callctl.LegAnswered})
	return nil
}

// Reject refuses the simulated caller with reason's SIP status.
func (l *Leg) Reject(reason errs.EndReason) {
	l.mu.Lock()
	l.sipStatus = reason.SIP
	if l.sipStatus == 0 {
		l.sipStatus = 480
	}
	l.mu.Unlock()
	l.finish(reason, false)
}

// HangUp ends the leg from the platform's side.
func (l *Leg) HangUp(reason errs.EndReason) { l.finish(reason, false) }

// SendTones records tones the platform played to the simulated user. With
// a handset they go as RFC 4733 events and are recorded as it hears them.
func (l *Leg) SendTones(tones []graph.Tone, gap time.Duration, done func()) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.state != "connected" {
		return errors.New("simulated: the leg is not connected")
	}
	if l.audio != nil {
		var b strings.Builder
		for _, t := range tones {
			if c := t.Char(); c != 0 && c != '!' {
				b.WriteByte(c)
			}
		}
		l.audio.sess.SendTones(b.String(), gap, done)
		return nil
	}
	l.received = append(l.received, tones...)
	// Timed media takes as long as the wire would: 100 ms a tone, then the gap.
	l.timers = append(l.timers, l.e.clk.AfterFunc(time.Duration(len(tones))*(100*time.Millisecond+gap), done))
	close(l.changed)
	l.changed = make(chan struct{})
	return nil
}

// Ref identifies the leg for a restart.
func (l *Leg) Ref() callctl.LegRef {
	data, _ := json.Marshal(ref{LegID: l.id, UserID: l.user.ID, TenantID: l.tenantID, Incoming: l.incoming, Sim: l.sim})
	return callctl.LegRef{Kind: "sim", Data: data}
}

// State reports the leg as the control API shows it.
func (l *Leg) State() LegState {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := LegState{ID: l.id, CallID: l.callID, User: l.user.DisplayName, UserID: l.user.ID, State: l.state, Direction: "outgoing"}
	if l.incoming {
		s.Direction = "incoming"
	}
	var b strings.Builder
	for _, t := range l.received {
		b.WriteByte(t.Char())
	}
	s.TonesReceived = b.String()
	s.PromptsHeard, s.PromptSeconds, s.PromptPlaying = l.played, l.playedFor.Seconds(), l.playing > 0
	if l.audio != nil {
		s.Audio = true
		s.SoundSeconds = l.audio.hs.Sound()
	}
	if l.reason != nil {
		s.EndCode, s.EndSubcode, s.EndReason, s.SIPStatus = l.reason.Code, l.reason.Subcode, l.reason.Message, l.sipStatus
	}
	return s
}

// Changed returns a channel closed at the leg's next change.
func (l *Leg) Changed() <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.changed
}

// PressKeys makes the simulated user press keys, one per interval.
func (l *Leg) PressKeys(keys string, interval time.Duration) error {
	if l.State().State != "connected" {
		return errors.New("the leg is not connected")
	}
	for i, ch := range keys {
		t, ok := graph.ParseTone(string(ch))
		if !ok {
			return fmt.Errorf("%q is not a DTMF key", ch)
		}
		if i == 0 {
			l.press(t)
			continue
		}
		l.after(time.Duration(i)*interval, func() { l.press(t) })
	}
	return nil
}

// HangUpNow makes the simulated user hang up.
func (l *Leg) HangUpNow() { l.finish(errs.EndedByRemote, true) }

// LegAdded returns a channel closed when the next leg is added.
func (e *Endpoint) LegAdded() <-chan struct{} {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.added
}

// Leg returns a leg by id.
func (e *Endpoint) Leg(id string) (*Leg, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	l, ok := e.legs[id]
	return l, ok
}

// Legs returns the legs of a Graph call id (or all legs when callID is empty).
func (e *Endpoint) Legs(callID string) []*Leg {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []*Leg
	for _, id := range e.order {
		l := e.legs[id]
		if l != nil && (callID == "" || belongs(l.callID, callID)) {
			out = append(out, l)
		}
	}
	return out
}

// belongs reports whether a leg dialed with legCallID is part of call
// callID: the call's own leg, a redirect's (-r…), a group call's or
// meeting's member (-m…), a transfer's target (-t).
func belongs(legCallID, callID string) bool {
	l, c := strings.ToLower(legCallID), strings.ToLower(callID)
	if l == c {
		return true
	}
	rest, ok := strings.CutPrefix(l, c+"-")
	return ok && rest != "" && strings.ContainsRune("rmt", rune(rest[0]))
}

// CallOptions tune a simulated caller.
type CallOptions struct {
	// From is the calling user: a user id, phone number or SIP user name.
	From string
	// To is the number (or SIP user) a bot owns, or the caller's tenant's
	// meeting dial-in number (see DialIn).
	To string
	// Simulation overrides the caller's behaviour once connected.
	Simulation *config.Simulation
}

// Call places a call from a simulated user to a bot's number, or to the
// tenant's meeting dial-in number (DialIn).
func (e *Endpoint) Call(ctx context.Context, o CallOptions) (*Leg, error) {
	tid, u, ok := e.user(o.From)
	if !ok {
		return nil, errs.E(errs.BadRequest, "from: %q is not a configured user (id, phone or SIP user name).", o.From)
	}
	app, appTenant, instanceID, ok := e.dir.Number(o.To)
	if !ok && e.tollTenant(o.From, o.To) {
		return e.DialIn(ctx, o) // the tenant's meeting dial-in number
	}
	if !ok {
		return nil, errs.E(errs.NotFound, "to: no application owns the number %q.", o.To)
	}
	if !strings.EqualFold(appTenant, tid) {
		// A caller from another tenant reaches the bot as an outside number.
		tid = appTenant
	}
	e.mu.Lock()
	in := e.incoming
	e.mu.Unlock()
	if in == nil {
		return nil, errs.E(errs.Unavailable, "the simulated endpoint is not attached to a call manager")
	}
	sim := u.Simulation
	if o.Simulation != nil {
		sim = *o.Simulation
	}
	caller := &graph.IdentitySet{User: &graph.Identity{ID: u.ID, DisplayName: u.DisplayName, TenantID: tid}}
	if u.Phone != "" {
		caller = &graph.IdentitySet{Phone: &graph.Identity{ID: u.Phone, DisplayName: u.DisplayName}}
	}
	called := &graph.IdentitySet{ApplicationInstance: &graph.Identity{ID: instanceID, DisplayName: app.DisplayName, TenantID: appTenant}}
	a, err := e.openAudio()
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "the simulated caller has no media: %v", err)
	}
	got := make(chan *Leg, 1)
	_, err = in.Incoming(ctx, callctl.IncomingCall{
		TenantID: appTenant, AppID: app.ID, Caller: caller, Called: called,
		NewLeg: func(callID string, ev func(callctl.LegEvent)) callctl.Leg {
			l := e.newLeg(callID, u, tid, true, sim, ev, a)
			got <- l
			return l
		},
	})
	if err != nil && a != nil {
		a.close()
	}
	if errors.Is(err, callctl.ErrNoBot) {
		return nil, errs.E(errs.Unavailable, "the application owning %s has no callbackUri: nobody would hear the call", o.To)
	}
	if err != nil {
		return nil, err
	}
	// NewLeg runs on the call's actor, right after Incoming returns.
	select {
	case l := <-got:
		return l, nil
	case <-ctx.Done():
		return nil, errs.Wrap(errs.Unavailable, ctx.Err(), "the call did not start")
	}
}

func (e *Endpoint) user(key string) (string, *config.User, bool) {
	if tid, u, ok := e.dir.UserByPhone(key); ok {
		return tid, u, true
	}
	if tid, u, ok := e.dir.UserBySIP(key); ok {
		return tid, u, true
	}
	return e.dir.UserByID(key)
}

func newLegID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "sim-" + hex.EncodeToString(b[:])
}
