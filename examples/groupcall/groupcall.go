package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"text/tabwriter"
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
	// Prompts serves the announcements ("Alice joined."), which the
	// platform fetches from it.
	Prompts *prompts.Server
	// Voice renders an announcement's text as a WAV file; prompts.Speak
	// when nil.
	Voice func(text string) []byte
	// Subject is the group call's subject.
	Subject string
	// Hold is how long Run keeps the call up once it is placed; it ends
	// sooner when everyone who joined has left. Zero: until Run's context
	// ends or the "hangup" command.
	Hold time.Duration
	// Invite are users Run invites InviteAfter after placing the call.
	Invite      []string
	InviteAfter time.Duration
	// Out gets what happens to the roster, one line per event: joined,
	// left, removed, muted, announced, invited, notJoined, and the roster
	// after each change. Nil discards it.
	Out    io.Writer
	Logger *slog.Logger
}

// Outcome is what became of one person the bot called or invited.
type Outcome string

// Outcomes. A failed invitation's outcome comes from its operation's
// resultInfo code (https://learn.microsoft.com/graph/api/participant-invite).
const (
	Ringing     Outcome = "ringing"     // still being called
	Joined      Outcome = "joined"      // in the call (when it ended)
	Left        Outcome = "left"        // joined, then hung up
	Removed     Outcome = "removed"     // joined, then removed by the bot
	Busy        Outcome = "busy"        // invitation failed: 486
	Declined    Outcome = "declined"    // 603
	NoAnswer    Outcome = "noAnswer"    // 408: rang until the ringing timeout
	Unreachable Outcome = "unreachable" // 480: no phone to ring
	Failed      Outcome = "failed"      // any other failure, or the invitation could not be sent
	// NotJoined is a target of the created call who never joined, when
	// the call ended before its invitation did.
	NotJoined Outcome = "notJoined"
)

// noReason is the report's reason for a target that never joined and whose
// invitation had not ended.
const noReason = "the call ended while it rang"

// outcome classifies a failed invitation.
func outcome(r *graph.ResultInfo) Outcome {
	if r == nil {
		return Failed
	}
	switch r.Code {
	case 486:
		return Busy
	case 603:
		return Declined
	case 408:
		return NoAnswer
	case 480:
		return Unreachable
	}
	return Failed
}

// Member is one person the bot called or invited.
type Member struct {
	UserID string
	Name   string // the display name, as the platform resolved it
	// Invited is set for those invited into the running call, unset for
	// the targets it was created with.
	Invited bool
	Outcome Outcome
	// Muted is set while the bot has the member muted.
	Muted bool
	// Result is how an invitation failed: its operation's resultInfo.
	Result *graph.ResultInfo
	// Err is why an invitation could not be sent (Outcome Failed).
	Err error

	pid      string // participant id while in the call
	removing bool   // the bot asked to remove it
}

// Reason says why a member did not join, or is empty.
func (m Member) Reason() string {
	switch {
	case m.Err != nil:
		return m.Err.Error()
	case m.Result != nil:
		return m.Result.String()
	case m.Outcome == NotJoined:
		return noReason
	}
	return ""
}

// Report is the result of a group call: one Member per person called or
// invited, the call's targets first, in the order given.
type Report struct{ Members []Member }

// Write prints the report as a table.
func (r Report) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tNAME\tOUTCOME\tREASON")
	for _, m := range r.Members {
		out := string(m.Outcome)
		if m.Muted && (m.Outcome == Joined || m.Outcome == Left || m.Outcome == Removed) {
			out += " (muted)"
		}
		if m.Invited {
			out += " (invited)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.UserID, m.Name, out, m.Reason())
	}
	return tw.Flush()
}

// Bot places group calls. It is safe for concurrent use.
type Bot struct {
	o       Options
	handler *sdk.Handler
	log     *slog.Logger

	mu     sync.Mutex
	groups map[string]*Group                   // by call id
	early  map[string][]sdk.ParticipantsChange // roster changes that came before their call's create response
	// earlyOps are operations that ended before their call's create
	// response: a target busy at once.
	earlyOps map[string][]graph.Operation
	phrases  *prompts.Phrases // the announcements, spoken once each
}

// New builds the bot: an SDK client and its webhook handler.
func New(o Options) (*Bot, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Prompts == nil {
		return nil, errors.New("groupcall: no prompt server")
	}
	if o.Voice == nil {
		o.Voice = prompts.Speak
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	client, err := sdk.NewClient(sdk.ClientOptions{BaseURL: o.BaseURL, TenantID: o.TenantID, ClientID: o.AppID, ClientSecret: o.Secret})
	if err != nil {
		return nil, err
	}
	h, err := sdk.NewHandler(sdk.HandlerOptions{Client: client, CallbackURL: o.CallbackURL, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	b := &Bot{o: o, handler: h, log: o.Logger,
		groups: map[string]*Group{}, early: map[string][]sdk.ParticipantsChange{},
		earlyOps: map[string][]graph.Operation{},
		phrases:  &prompts.Phrases{Server: o.Prompts, Prefix: "announce", Voice: o.Voice}}
	h.OnParticipants(b.onParticipants)
	h.OnOperation(b.onOperation)
	h.OnTerminated(func(_ context.Context, c *sdk.Call) {
		b.mu.Lock()
		delete(b.groups, c.ID())
		delete(b.early, c.ID())
		delete(b.earlyOps, c.ID())
		b.mu.Unlock()
	})
	return b, nil
}

// onOperation hands an ended invitation of one of the call's targets (the
// platform invites each target of a created group call by an operation
// of its own) to its group.
func (b *Bot) onOperation(_ context.Context, c *sdk.Call, op graph.Operation) {
	if op.ODataType != graph.TypeInviteParticipantsOperation || op.Status != graph.OperationFailed {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	g := b.groups[c.ID()]
	if g == nil {
		b.earlyOps[c.ID()] = append(b.earlyOps[c.ID()], op)
		return
	}
	g.targetFailed(op)
}

// Handler is the bot's webhook; serve it at Options.CallbackURL.
func (b *Bot) Handler() *sdk.Handler { return b.handler }

// onParticipants hands a roster change to its group. The roster's first
// changes can come before CreateCall returns (the SDK reports a call's
// events from the start): they wait in early until Start registers the
// group.
func (b *Bot) onParticipants(_ context.Context, c *sdk.Call, ch sdk.ParticipantsChange) {
	b.mu.Lock()
	g := b.groups[c.ID()]
	if g == nil {
		b.early[c.ID()] = append(b.early[c.ID()], ch)
		b.mu.Unlock()
		return
	}
	b.mu.Unlock()
	g.apply(ch)
}

// voice returns the prompt file saying text, made once.
func (b *Bot) voice(text string) string { return b.phrases.Name(text) }

// Run places a group call with users, invites Options.Invite after
// Options.InviteAfter, carries out the commands read from commands (one a
// line, see Group.Do; nil for none), and hangs up after Options.Hold, when
// everyone who joined has left, on the command "hangup", or when ctx ends.
// It returns the report. Reading commands may outlast Run (a read blocks).
func (b *Bot) Run(ctx context.Context, users []string, commands io.Reader) (Report, error) {
	g, err := b.Start(ctx, users)
	if err != nil {
		return Report{}, err
	}
	var hold, invite <-chan time.Time
	if b.o.Hold > 0 {
		t := time.NewTimer(b.o.Hold)
		defer t.Stop()
		hold = t.C
	}
	if len(b.o.Invite) > 0 {
		t := time.NewTimer(b.o.InviteAfter)
		defer t.Stop()
		invite = t.C
	}
	var lines chan string
	if commands != nil {
		lines = make(chan string)
		quit := make(chan struct{})
		defer close(quit)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(commands)
			for sc.Scan() {
				select {
				case lines <- sc.Text():
				case <-quit:
					return
				}
			}
		}()
	}
loop:
	for {
		select {
		case <-invite:
			if err := g.Invite(ctx, b.o.Invite...); err != nil {
				b.log.Warn("invite", "err", err)
			}
		case line, ok := <-lines:
			if !ok {
				lines = nil
				continue
			}
			if err := g.Do(ctx, line); errors.Is(err, errHangUp) {
				break loop
			} else if err != nil {
				g.mu.Lock()
				g.printf("error", "%v", err)
				g.mu.Unlock()
			}
		case <-hold:
			break loop
		case <-g.Empty():
			b.log.Info("everyone who joined has left")
			break loop
		case <-g.call.Done():
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	stop, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	return g.HangUp(stop)
}

// Start places one group call with users (at least two: one target makes
// a two-party call) and returns it. Each user who joins is announced to
// everyone ("Alice joined."), and every roster change is written to
// Options.Out.
func (b *Bot) Start(ctx context.Context, users []string) (*Group, error) {
	var ids []string
	seen := map[string]bool{}
	for _, u := range users {
		if u = strings.TrimSpace(u); u != "" && !seen[strings.ToLower(u)] {
			seen[strings.ToLower(u)] = true
			ids = append(ids, u)
		}
	}
	if len(ids) < 2 {
		return nil, fmt.Errorf("group call: %d users given; a group call needs two or more (invite more later)", len(ids))
	}
	targets := make([]graph.InvitationParticipantInfo, len(ids))
	for i, id := range ids {
		targets[i] = sdk.UserTarget(id, "")
	}
	req := sdk.NewCall(targets...)
	req.Subject = b.o.Subject
	call, err := b.handler.CreateCall(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("group call: %w", err)
	}
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	g := &Group{b: b, call: call, ctx: gctx, cancel: cancel, empty: make(chan struct{}), wake: make(chan struct{}, 1)}
	// The platform names each target in the call it returns.
	snap := call.Snapshot()
	for i, id := range ids {
		m := &Member{UserID: id, Name: id, Outcome: Ringing}
		if i < len(snap.Targets) {
			if _, who := snap.Targets[i].Identity.Primary(); who != nil && who.DisplayName != "" {
				m.Name = who.DisplayName
			}
		}
		g.members = append(g.members, m)
	}
	b.log.Info("group call placed", "call", call.ID(), "targets", len(ids))
	g.wg.Go(g.announce)

	b.mu.Lock()
	b.groups[call.ID()] = g
	early := b.early[call.ID()]
	delete(b.early, call.ID())
	for _, ch := range early { // under b.mu: no later change overtakes them
		g.apply(ch)
	}
	for _, op := range b.earlyOps[call.ID()] {
		g.targetFailed(op)
	}
	delete(b.earlyOps, call.ID())
	b.mu.Unlock()
	return g, nil
}

// targetFailed records why a target the call was created with did not
// join: its invitation's resultInfo.
func (g *Group) targetFailed(op graph.Operation) {
	if len(op.Participants) == 0 {
		return
	}
	_, who := op.Participants[0].Identity.Primary()
	if who == nil {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, m := range g.members {
		if strings.EqualFold(m.UserID, who.ID) && !m.Invited && m.Outcome == Ringing {
			m.Result = op.ResultInfo
			m.Outcome = outcome(m.Result)
			if !g.ending {
				g.printf("notJoined", "%s: %s (%s)", m.Name, m.Outcome, m.Result)
			}
			g.checkEmpty()
		}
	}
}

// Group is a running group call. It is safe for concurrent use.
type Group struct {
	b      *Bot
	call   *sdk.Call
	ctx    context.Context // announcements and invitations; cancelled by HangUp
	cancel context.CancelFunc
	wg     sync.WaitGroup // the announcer, invitation waits

	mu        sync.Mutex // guards what follows and orders the lines written to Out
	members   []*Member  // targets, then invitees
	present   []*Member  // in the call, in the order they joined
	queue     []*Member  // to announce
	wake      chan struct{}
	pending   int  // invitations still ringing
	joinedAny bool // someone has joined
	ending    bool
	empty     chan struct{}
	emptied   bool
}

// CallID is the group call's Graph id.
func (g *Group) CallID() string { return g.call.ID() }

// Empty is closed once everyone who joined has left and no invitation is
// still ringing. (Targets of the created call still ringing are not
// known: the platform reports them only when they join.)
func (g *Group) Empty() <-chan struct{} { return g.empty }

// printf writes one event line to Out. The caller holds g.mu.
func (g *Group) printf(event, format string, args ...any) {
	fmt.Fprintf(g.b.o.Out, "%-10s %s\n", event, fmt.Sprintf(format, args...))
}

// printRoster writes the roster line. The caller holds g.mu.
func (g *Group) printRoster() {
	names := make([]string, len(g.present))
	for i, m := range g.present {
		names[i] = m.Name
		if m.Muted {
			names[i] += " (muted)"
		}
	}
	g.printf("roster", "%s", strings.Join(names, ", "))
}

// apply takes in one roster change: who joined, left or was muted.
func (g *Group) apply(ch sdk.ParticipantsChange) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ending {
		return
	}
	me := g.call.Snapshot().MyParticipantID
	changed := false
	for _, p := range ch.Added {
		if strings.EqualFold(p.ID, me) {
			continue
		}
		m := g.memberFor(p)
		m.pid, m.Outcome, m.Muted, m.Result, m.Err, m.removing = p.ID, Joined, p.IsMuted, nil, nil, false
		g.present = append(g.present, m)
		g.joinedAny, changed = true, true
		g.printf("joined", "%s", m.Name)
		g.queue = append(g.queue, m)
		select {
		case g.wake <- struct{}{}:
		default:
		}
	}
	for _, p := range ch.Updated {
		if m := g.byParticipant(p.ID); m != nil && m.Muted != p.IsMuted {
			m.Muted, changed = p.IsMuted, true
			if m.Muted {
				g.printf("muted", "%s", m.Name)
			} else {
				g.printf("unmuted", "%s", m.Name)
			}
		}
	}
	for _, p := range ch.Removed {
		m := g.byParticipant(p.ID)
		if m == nil {
			continue
		}
		m.pid, changed = "", true
		for i, x := range g.present {
			if x == m {
				g.present = append(g.present[:i], g.present[i+1:]...)
				break
			}
		}
		if m.removing {
			m.Outcome = Removed
			g.printf("removed", "%s", m.Name)
		} else {
			m.Outcome = Left
			g.printf("left", "%s", m.Name)
		}
	}
	if changed {
		g.printRoster()
	}
	g.checkEmpty()
}

// memberFor finds the member a participant who joined is, by user id, or
// adds one (someone the platform put in the call that the bot did not
// name). The caller holds g.mu.
func (g *Group) memberFor(p graph.Participant) *Member {
	var id, name string
	if p.Info != nil {
		if _, who := p.Info.Identity.Primary(); who != nil {
			id, name = who.ID, who.DisplayName
		}
	}
	for _, m := range g.members {
		if id != "" && strings.EqualFold(m.UserID, id) && m.pid == "" {
			if name != "" {
				m.Name = name
			}
			return m
		}
	}
	if name == "" {
		name = id
	}
	m := &Member{UserID: id, Name: name}
	g.members = append(g.members, m)
	return m
}

func (g *Group) byParticipant(pid string) *Member {
	for _, m := range g.members {
		if m.pid != "" && strings.EqualFold(m.pid, pid) {
			return m
		}
	}
	return nil
}

// checkEmpty closes Empty once the call has emptied. The caller holds g.mu.
func (g *Group) checkEmpty() {
	if g.emptied || !g.joinedAny || len(g.present) > 0 || g.pending > 0 {
		return
	}
	g.emptied = true
	close(g.empty)
}

// announce plays "X joined." to everyone for each member who joins, one
// after the other, until the call ends.
func (g *Group) announce() {
	for {
		select {
		case <-g.wake:
		case <-g.ctx.Done():
			return
		case <-g.call.Done():
			return
		}
		for {
			g.mu.Lock()
			if len(g.queue) == 0 {
				g.mu.Unlock()
				break
			}
			m := g.queue[0]
			g.queue = g.queue[1:]
			name := m.Name
			g.mu.Unlock()
			file := g.b.voice(spoken(name) + " joined.")
			if err := g.b.o.Prompts.Play(g.ctx, g.call, file); err != nil {
				if g.ctx.Err() != nil || errors.Is(err, sdk.ErrCallEnded) {
					return
				}
				g.b.log.Warn("announce", "call", g.call.ID(), "who", name, "err", err)
				continue
			}
			g.mu.Lock()
			if !g.ending {
				g.printf("announced", "%s", name)
			}
			g.mu.Unlock()
		}
	}
}

// spoken is a display name as the announcement says it: without a
// parenthesised remark ("Eve (your SIP phone)" is "Eve").
func spoken(name string) string {
	if i := strings.Index(name, " ("); i > 0 {
		return name[:i]
	}
	return name
}

// Invite invites users into the call, one invitation each so that each
// failure says whose it is. It returns once the invitations are sent; who
// joins shows in the roster, who does not as a notJoined line with the
// invitation's resultInfo.
func (g *Group) Invite(ctx context.Context, users ...string) error {
	var errs []error
	for _, id := range users {
		if id = strings.TrimSpace(id); id != "" {
			errs = append(errs, g.invite(ctx, id))
		}
	}
	return errors.Join(errs...)
}

func (g *Group) invite(ctx context.Context, id string) error {
	g.mu.Lock()
	var m *Member
	for _, x := range g.members {
		if strings.EqualFold(x.UserID, id) {
			m = x
		}
	}
	switch {
	case m == nil:
		m = &Member{UserID: id, Name: id}
		g.members = append(g.members, m)
	case m.Outcome == Joined || m.Outcome == Ringing:
		g.mu.Unlock()
		return fmt.Errorf("invite %s: %s is %s already", id, m.Name, m.Outcome)
	}
	// Ringing before the invitation is sent: a quick answer may reach the
	// roster before the response.
	m.Invited, m.Outcome, m.Result, m.Err = true, Ringing, nil, nil
	g.pending++
	g.mu.Unlock()

	op, err := g.call.Invite(ctx, sdk.UserTarget(id, ""))

	g.mu.Lock()
	defer g.mu.Unlock()
	if err != nil {
		g.pending--
		m.Outcome, m.Err = Failed, err
		g.printf("notJoined", "%s: %v", m.Name, err)
		g.checkEmpty()
		return fmt.Errorf("invite %s: %w", id, err)
	}
	if len(op.Participants) > 0 {
		if _, who := op.Participants[0].Identity.Primary(); who != nil && who.DisplayName != "" && m.Name == m.UserID {
			m.Name = who.DisplayName
		}
	}
	g.printf("invited", "%s", m.Name)
	g.wg.Go(func() { g.awaitInvite(m, op) })
	return nil
}

// awaitInvite records how an invitation ended. One that completed shows in
// the roster; one that failed says why.
func (g *Group) awaitInvite(m *Member, op *graph.Operation) {
	_, err := g.call.Await(g.ctx, op)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pending--
	var failed *sdk.OperationError
	if errors.As(err, &failed) && m.Outcome == Ringing {
		m.Result = failed.Operation.ResultInfo
		m.Outcome = outcome(m.Result)
		if !g.ending {
			g.printf("notJoined", "%s: %s (%s)", m.Name, m.Outcome, m.Result)
		}
	}
	g.checkEmpty()
}

// find returns the member in the call that who names: a user id, a
// participant id, a display name or its first word ("eve"), any case.
func (g *Group) find(who string) (*Member, error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, m := range g.present {
		if matches(m, who) || strings.EqualFold(m.pid, who) {
			return m, nil
		}
	}
	return nil, fmt.Errorf("%q is not in the call", who)
}

func matches(m *Member, who string) bool {
	first, _, _ := strings.Cut(m.Name, " ")
	return strings.EqualFold(m.UserID, who) || strings.EqualFold(m.Name, who) || strings.EqualFold(first, who)
}

// Mute server-mutes a member (see find for who): the others stop hearing
// them. The roster shows it.
func (g *Group) Mute(ctx context.Context, who string) error {
	m, err := g.find(who)
	if err != nil {
		return fmt.Errorf("mute: %w", err)
	}
	g.mu.Lock()
	pid := m.pid
	g.mu.Unlock()
	if _, err := g.call.MuteParticipant(ctx, pid); err != nil {
		return fmt.Errorf("mute %s: %w", m.Name, err)
	}
	return nil
}

// Remove drops a member from the call (their phone is hung up); the
// roster shows them removed.
func (g *Group) Remove(ctx context.Context, who string) error {
	m, err := g.find(who)
	if err != nil {
		return fmt.Errorf("remove: %w", err)
	}
	g.mu.Lock()
	pid := m.pid
	m.removing = true
	g.mu.Unlock()
	if err := g.call.RemoveParticipant(ctx, pid); err != nil {
		g.mu.Lock()
		m.removing = false
		g.mu.Unlock()
		return fmt.Errorf("remove %s: %w", m.Name, err)
	}
	return nil
}

// errHangUp is Do's answer to "hangup".
var errHangUp = errors.New("hang up")

// commandHelp lists what Do understands.
const commandHelp = "commands: invite USER-ID..., mute WHO, remove WHO, roster, hangup"

// Do carries out one command, as typed on the sample's standard input:
// "invite USER-ID..." (ids separated by spaces or commas), "mute WHO",
// "remove WHO" (WHO a name, its first word, or a user id), "roster", or
// "hangup" (which Do leaves to its caller, returning errHangUp).
func (g *Group) Do(ctx context.Context, line string) error {
	f := strings.Fields(strings.ReplaceAll(line, ",", " "))
	if len(f) == 0 {
		return nil
	}
	args := strings.Join(f[1:], " ")
	switch strings.ToLower(f[0]) {
	case "invite":
		if len(f) < 2 {
			return errors.New("invite: whom? " + commandHelp)
		}
		return g.Invite(ctx, f[1:]...)
	case "mute":
		return g.Mute(ctx, args)
	case "remove":
		return g.Remove(ctx, args)
	case "roster":
		g.mu.Lock()
		g.printRoster()
		g.mu.Unlock()
		return nil
	case "hangup", "quit", "exit":
		return errHangUp
	}
	return fmt.Errorf("%q: unknown command; %s", f[0], commandHelp)
}

// HangUp ends the call (every phone is hung up), waits for the platform
// to say it ended, and returns the report.
func (g *Group) HangUp(ctx context.Context) (Report, error) {
	g.mu.Lock()
	g.ending = true
	g.mu.Unlock()
	var err error
	select {
	case <-g.call.Done():
	default:
		if herr := g.call.HangUp(ctx); herr != nil {
			err = fmt.Errorf("hang up: %w", herr)
		}
		select {
		case <-g.call.Done():
		case <-ctx.Done():
			err = errors.Join(err, fmt.Errorf("group call %s did not end: %w", g.call.ID(), ctx.Err()))
		}
	}
	g.cancel()
	g.wg.Wait()
	return g.Report(), err
}

// Report is who joined, left, was removed or never joined, so far.
// Those still ringing when the call has ended never joined.
func (g *Group) Report() Report {
	g.mu.Lock()
	defer g.mu.Unlock()
	ended := g.ending
	select {
	case <-g.call.Done():
		ended = true
	default:
	}
	rep := Report{Members: make([]Member, len(g.members))}
	for i, m := range g.members {
		rep.Members[i] = *m
		if ended && m.Outcome == Ringing {
			rep.Members[i].Outcome = NotJoined
		}
	}
	return rep
}
