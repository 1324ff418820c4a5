package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-voice/switchboard/examples/internal/prompts"
	"github.com/switchboard-voice/switchboard/sdk"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Options configure a Bot.
type Options struct {
	BaseURL, TenantID, AppID, Secret string
	// CallbackURL is the bot's webhook as the platform reaches it.
	CallbackURL string
	// Prompts serves the greetings, which the platform fetches from it.
	Prompts *prompts.Server
	// Voice renders a greeting's text as a WAV file; prompts.Speak when nil.
	Voice func(text string) []byte
	// User is the user the bot creates the meeting for (its organizer);
	// with JoinURL, the user the meeting is looked up for.
	User string
	// Subject is the subject of the meeting the bot creates.
	Subject string
	// JoinURL, when set, is an existing meeting's join link: the bot joins
	// it instead of creating one.
	JoinURL string
	// Admit lets in everyone who waits in the meeting's lobby (people who
	// dial in wait there unless the meeting lets them bypass it).
	Admit bool
	// Invite are users the bot invites into the meeting once it is in it;
	// invited people skip the lobby.
	Invite []string
	// Hold is how long Run stays in the meeting; it leaves sooner when
	// everyone who came has left. Zero: until Run's context ends.
	Hold time.Duration
	// Out gets the meeting's details and what happens in it, one line per
	// event: lobby, admitted, joined, greeted, left, invited, notJoined.
	// Nil discards it.
	Out    io.Writer
	Logger *slog.Logger
	// Now is the clock time in the meeting is measured on; time.Now when nil.
	Now func() time.Time
}

// Bot creates a meeting, joins it, greets and admits people, and reports
// who came. It is safe for concurrent use.
type Bot struct {
	o       Options
	client  *sdk.Client
	handler *sdk.Handler
	log     *slog.Logger

	mu       sync.Mutex
	meetings map[string]*Meeting                 // by the bot's call id
	early    map[string][]sdk.ParticipantsChange // roster changes that came before their call's create response
	phrases  *prompts.Phrases                    // the greetings, spoken once each
}

// New builds the bot: an SDK client and its webhook handler.
func New(o Options) (*Bot, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Prompts == nil {
		return nil, errors.New("meetingbot: no prompt server")
	}
	if o.User == "" {
		return nil, errors.New("meetingbot: no user to organize (or look up) the meeting")
	}
	if o.Voice == nil {
		o.Voice = prompts.Speak
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	client, err := sdk.NewClient(sdk.ClientOptions{BaseURL: o.BaseURL, TenantID: o.TenantID, ClientID: o.AppID, ClientSecret: o.Secret})
	if err != nil {
		return nil, err
	}
	h, err := sdk.NewHandler(sdk.HandlerOptions{Client: client, CallbackURL: o.CallbackURL, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	b := &Bot{o: o, client: client, handler: h, log: o.Logger,
		meetings: map[string]*Meeting{}, early: map[string][]sdk.ParticipantsChange{},
		phrases: &prompts.Phrases{Server: o.Prompts, Prefix: "greeting", Voice: o.Voice}}
	h.OnParticipants(b.onParticipants)
	h.OnTerminated(func(_ context.Context, c *sdk.Call) {
		b.mu.Lock()
		delete(b.meetings, c.ID())
		delete(b.early, c.ID())
		b.mu.Unlock()
	})
	return b, nil
}

// Handler is the bot's webhook; serve it at Options.CallbackURL.
func (b *Bot) Handler() *sdk.Handler { return b.handler }

// onParticipants hands a roster change to its meeting. The first rosters
// can come before the join request returns (the SDK reports a call's
// events from the start): they wait in early until Start registers the
// meeting.
func (b *Bot) onParticipants(_ context.Context, c *sdk.Call, ch sdk.ParticipantsChange) {
	b.mu.Lock()
	m := b.meetings[c.ID()]
	if m == nil {
		b.early[c.ID()] = append(b.early[c.ID()], ch)
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	m.apply(ch)
}

// voice returns the prompt file saying text, made once.
func (b *Bot) voice(text string) string { return b.phrases.Name(text) }

// Run creates the meeting (or finds the one at Options.JoinURL), prints
// how to join it, joins it, invites Options.Invite, and stays until
// everyone who came has left, Options.Hold has passed, or ctx ends. Then
// it leaves and returns who came and for how long.
func (b *Bot) Run(ctx context.Context) (Report, error) {
	m, err := b.Start(ctx)
	if err != nil {
		return Report{}, err
	}
	var hold <-chan time.Time
	if b.o.Hold > 0 {
		t := time.NewTimer(b.o.Hold)
		defer t.Stop()
		hold = t.C
	}
	if len(b.o.Invite) > 0 {
		if err := m.call.WaitState(ctx, graph.StateEstablished); err == nil {
			if err := m.Invite(ctx, b.o.Invite...); err != nil {
				b.log.Warn("invite", "err", err)
			}
		}
	}
	select {
	case <-m.Alone():
		b.log.Info("everyone who came has left")
	case <-hold:
	case <-m.call.Done():
	case <-ctx.Done():
	}
	stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return m.Leave(stop)
}

// Start creates the meeting for Options.User, or looks up the one at
// Options.JoinURL, prints its join link, dial-in number, conference id and
// meeting id, and joins it by its link.
func (b *Bot) Start(ctx context.Context) (*Meeting, error) {
	var info *graph.OnlineMeeting
	var err error
	if b.o.JoinURL != "" {
		info, err = b.client.FindMeetingByJoinURL(ctx, b.o.User, b.o.JoinURL)
		if err != nil {
			// Joining does not need the details: say so and go on.
			b.log.Warn("the meeting's details are unknown", "user", b.o.User, "err", err)
			info = &graph.OnlineMeeting{JoinWebURL: b.o.JoinURL}
		}
	} else {
		info, err = b.client.CreateMeeting(ctx, b.o.User, &graph.OnlineMeeting{Subject: b.o.Subject})
		if err != nil {
			return nil, fmt.Errorf("meetingbot: %w", err)
		}
	}
	printDetails(b.o.Out, info)

	call, err := b.handler.JoinMeetingByURL(ctx, info.JoinWebURL, nil)
	if err != nil {
		return nil, fmt.Errorf("meetingbot: %w", err)
	}
	mctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m := &Meeting{b: b, Info: info, call: call, ctx: mctx, cancel: cancel, att: newAttendance(),
		wake: make(chan struct{}, 1), alone: make(chan struct{})}
	b.log.Info("joined the meeting", "call", call.ID(), "meeting", info.ID)
	m.wg.Go(m.greet)

	b.mu.Lock()
	b.meetings[call.ID()] = m
	early := b.early[call.ID()]
	delete(b.early, call.ID())
	for _, ch := range early { // under b.mu: no later change overtakes them
		m.apply(ch)
	}
	b.mu.Unlock()
	return m, nil
}

// printDetails writes what people join the meeting by.
func printDetails(w io.Writer, m *graph.OnlineMeeting) {
	line := func(ev, format string, args ...any) {
		fmt.Fprintf(w, "%-10s %s\n", ev, fmt.Sprintf(format, args...))
	}
	if m.Subject != "" {
		line("meeting", "%s", m.Subject)
	}
	if p := m.Participants; p != nil && p.Organizer != nil {
		line("organizer", "%s", p.Organizer.Identity)
	}
	line("link", "%s", m.JoinWebURL)
	if a := m.AudioConferencing; a != nil && a.ConferenceID != "" {
		if a.TollNumber != "" {
			line("dial-in", "%s, conference id %s#", a.TollNumber, spaced(a.ConferenceID))
		} else {
			line("dial-in", "conference id %s# (the tenant has no dial-in number)", spaced(a.ConferenceID))
		}
	}
	if s := m.JoinMeetingIDSettings; s != nil && s.JoinMeetingID != "" {
		if s.Passcode != nil && *s.Passcode != "" {
			line("meeting-id", "%s, passcode %s", spaced(s.JoinMeetingID), *s.Passcode)
		} else {
			line("meeting-id", "%s", spaced(s.JoinMeetingID))
		}
	}
}

// spaced groups digits by three, as Teams shows ids ("312 882 374").
func spaced(id string) string {
	var b strings.Builder
	for i, r := range id {
		if i > 0 && i%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Meeting is the bot in a meeting. It is safe for concurrent use.
type Meeting struct {
	// Info is the meeting as the bot created or found it.
	Info *graph.OnlineMeeting

	b      *Bot
	call   *sdk.Call
	ctx    context.Context // greetings, admits, invitations; cancelled by Leave
	cancel context.CancelFunc
	wg     sync.WaitGroup // the greeter, admits, invitation waits

	mu     sync.Mutex // guards what follows and orders the lines written to Out
	att    *attendance
	queue  []*Attendee // to greet
	wake   chan struct{}
	alone  chan struct{}
	closed bool // alone is closed
	ending bool
}

// CallID is the bot's call in the meeting.
func (m *Meeting) CallID() string { return m.call.ID() }

// Alone is closed once everyone who came has left: someone was in the
// meeting, and no person is in it now (other bots do not count).
func (m *Meeting) Alone() <-chan struct{} { return m.alone }

// printf writes one event line to Out. The caller holds m.mu.
func (m *Meeting) printf(event, format string, args ...any) {
	fmt.Fprintf(m.b.o.Out, "%-10s %s\n", event, fmt.Sprintf(format, args...))
}

// apply takes in one roster change: who arrived in the lobby, came in or
// left. Those who come in are greeted; those in the lobby admitted.
func (m *Meeting) apply(ch sdk.ParticipantsChange) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.ending {
		return
	}
	for _, c := range m.att.apply(ch, m.call.Snapshot().MyParticipantID, m.b.o.Now()) {
		switch c.kind {
		case toLobby:
			m.printf("lobby", "%s", c.who.Name)
			if m.b.o.Admit {
				m.wg.Go(func() { m.admit(c.pid, c.who.Name) })
			}
		case joined:
			m.printf("joined", "%s", c.who.Name)
			if c.who.Kind != "bot" {
				m.queue = append(m.queue, c.who)
				select {
				case m.wake <- struct{}{}:
				default:
				}
			}
		case left:
			if c.lobby {
				m.printf("left", "%s (from the lobby)", c.who.Name)
			} else {
				m.printf("left", "%s", c.who.Name)
			}
		}
	}
	if m.att.alone() && !m.closed {
		m.closed = true
		close(m.alone)
	}
}

// admit lets a participant in from the lobby. The roster then shows them
// in the meeting, and they are greeted.
func (m *Meeting) admit(pid, name string) {
	err := m.call.Admit(m.ctx, pid)
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case m.ending:
	case err != nil:
		m.printf("error", "admit %s: %v", name, err)
	default:
		m.printf("admitted", "%s", name)
	}
}

// greet says "Hello NAME." to everyone for each person who comes in, one
// after the other, until the bot leaves.
func (m *Meeting) greet() {
	for {
		select {
		case <-m.wake:
		case <-m.ctx.Done():
			return
		case <-m.call.Done():
			return
		}
		for {
			m.mu.Lock()
			if len(m.queue) == 0 {
				m.mu.Unlock()
				break
			}
			who := m.queue[0]
			m.queue = m.queue[1:]
			name := who.Name
			m.mu.Unlock()
			file := m.b.voice("Hello " + spoken(who) + ".")
			if err := m.b.o.Prompts.Play(m.ctx, m.call, file); err != nil {
				if m.ctx.Err() != nil || errors.Is(err, sdk.ErrCallEnded) {
					return
				}
				m.b.log.Warn("greet", "call", m.call.ID(), "who", name, "err", err)
				continue
			}
			m.mu.Lock()
			if !m.ending {
				m.printf("greeted", "%s", name)
			}
			m.mu.Unlock()
		}
	}
}

// spoken is how a greeting says who: the display name without a
// parenthesised remark ("Eve (your SIP phone)" is "Eve"), or, for a
// number without a name, "caller ending in 0 1 7 7".
func spoken(a *Attendee) string {
	name := a.Name
	if i := strings.Index(name, " ("); i > 0 {
		name = name[:i]
	}
	if a.Kind == "phone" && name == a.ID && len(name) > 4 {
		return "caller ending in " + strings.Join(strings.Split(name[len(name)-4:], ""), " ")
	}
	return name
}

// Invite invites users into the meeting, one invitation each so that each
// failure says whose it is. They come in without the lobby; the roster
// shows them, and they are greeted.
func (m *Meeting) Invite(ctx context.Context, users ...string) error {
	var errs []error
	for _, id := range users {
		if id = strings.TrimSpace(id); id == "" {
			continue
		}
		op, err := m.call.Invite(ctx, sdk.UserTarget(id, ""))
		if err != nil {
			errs = append(errs, fmt.Errorf("invite %s: %w", id, err))
			continue
		}
		name := id
		if len(op.Participants) > 0 {
			if _, who := op.Participants[0].Identity.Primary(); who != nil && who.DisplayName != "" {
				name = who.DisplayName
			}
		}
		m.mu.Lock()
		m.printf("invited", "%s", name)
		m.mu.Unlock()
		m.wg.Go(func() {
			_, err := m.call.Await(m.ctx, op)
			var failed *sdk.OperationError
			if errors.As(err, &failed) {
				m.mu.Lock()
				if !m.ending {
					m.printf("notJoined", "%s: %s", name, failed.Operation.ResultInfo)
				}
				m.mu.Unlock()
			}
		})
	}
	return errors.Join(errs...)
}

// Leave hangs up the bot's call (the people stay in the meeting), waits
// for the platform to say it ended, and returns who came and for how
// long, counting those still there up to now.
func (m *Meeting) Leave(ctx context.Context) (Report, error) {
	m.mu.Lock()
	m.ending = true
	rep := m.att.report(m.b.o.Now())
	m.mu.Unlock()
	var err error
	select {
	case <-m.call.Done():
	default:
		if herr := m.call.HangUp(ctx); herr != nil {
			err = fmt.Errorf("leave the meeting: %w", herr)
		}
		select {
		case <-m.call.Done():
		case <-ctx.Done():
			err = errors.Join(err, fmt.Errorf("the bot's call %s did not end: %w", m.call.ID(), ctx.Err()))
		}
	}
	m.cancel()
	m.wg.Wait()
	return rep, err
}

// Report is who came and for how long, so far.
func (m *Meeting) Report() Report {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.att.report(m.b.o.Now())
}
