package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/switchboard-voice/switchboard/sdk"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Options configure a Bot.
type Options struct {
	BaseURL, TenantID, AppID, Secret string
	// CallbackURL is the bot's webhook as the platform reaches it.
	CallbackURL string
	// Hold is how long the calls of those who joined stay up once every
	// invitee has answered or failed to.
	Hold time.Duration
	// RingSeconds is how long each invitee's phone rings
	// (ringingTimeoutInSeconds, at most 115); the platform's default when 0.
	RingSeconds int
	Logger      *slog.Logger
}

// Outcome is what became of one invitation.
type Outcome string

// Outcomes, from the call's resultInfo code when it did not connect.
const (
	Joined      Outcome = "joined"      // answered: the call was established
	Busy        Outcome = "busy"        // 486
	Declined    Outcome = "declined"    // 603
	NoAnswer    Outcome = "noAnswer"    // 408: rang until the ringing timeout
	Unreachable Outcome = "unreachable" // 480: no phone to ring
	Failed      Outcome = "failed"      // anything else, or the call could not be placed
)

// outcome classifies the end of a call that never connected.
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

// Member is one invitee in a Report.
type Member struct {
	UserID string
	Name   string // the user's display name, as the platform resolved it
	CallID string
	// Outcome is whether the user joined, and if not, why not.
	Outcome Outcome
	// End is how the user's call ended: for those who did not join, Graph's
	// reason (486/9005 busy…); for those who did, 200/5001 when the bot hung
	// up after the hold, or the reason they left early.
	End *graph.ResultInfo
	// LeftEarly is set when a member who joined hung up during the hold.
	LeftEarly bool
	// Err is why the call could not be placed (Outcome Failed, no CallID).
	Err error
}

// Report is the result of a group call, one Member per invitee in the
// order they were given.
type Report struct{ Members []Member }

// Joined returns the members who joined.
func (r Report) Joined() []Member {
	var out []Member
	for _, m := range r.Members {
		if m.Outcome == Joined {
			out = append(out, m)
		}
	}
	return out
}

// Write prints the report as a table.
func (r Report) Write(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "USER\tNAME\tOUTCOME\tEND\tREASON")
	for _, m := range r.Members {
		end, reason := "-", ""
		if m.End != nil {
			end, reason = fmt.Sprintf("%d/%d", m.End.Code, m.End.Subcode), m.End.Message
		}
		if m.Err != nil {
			reason = m.Err.Error()
		}
		out := string(m.Outcome)
		if m.LeftEarly {
			out += " (left early)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", m.UserID, m.Name, out, end, reason)
	}
	return tw.Flush()
}

// Bot places the group call: one Graph call per invitee (a two-party call
// each; the platform does not mix several parties into one call yet).
type Bot struct {
	o       Options
	handler *sdk.Handler
	log     *slog.Logger
}

// New builds the bot: an SDK client and its webhook handler.
func New(o Options) (*Bot, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	client, err := sdk.NewClient(sdk.ClientOptions{BaseURL: o.BaseURL, TenantID: o.TenantID, ClientID: o.AppID, ClientSecret: o.Secret})
	if err != nil {
		return nil, err
	}
	h, err := sdk.NewHandler(sdk.HandlerOptions{Client: client, CallbackURL: o.CallbackURL, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	return &Bot{o: o, handler: h, log: o.Logger}, nil
}

// Handler is the bot's webhook; serve it at Options.CallbackURL.
func (b *Bot) Handler() *sdk.Handler { return b.handler }

// Run calls every user at once, waits until each has answered or failed
// to, keeps the calls of those who joined up for Options.Hold, hangs them
// up and reports. It returns early (hanging up) when ctx ends.
func (b *Bot) Run(ctx context.Context, userIDs []string) (Report, error) {
	if len(userIDs) == 0 {
		return Report{}, errors.New("group call: nobody to call")
	}
	rep := Report{Members: make([]Member, len(userIDs))}
	calls := make([]*sdk.Call, len(userIDs))
	var wg sync.WaitGroup
	for i, id := range userIDs {
		wg.Go(func() { calls[i] = b.invite(ctx, id, &rep.Members[i]) })
	}
	wg.Wait()
	b.log.Info("everyone has answered or not", "joined", len(rep.Joined()), "invited", len(userIDs))

	// The hold, cut short if everyone who joined has hung up.
	var joined []int
	for i, m := range rep.Members {
		if m.Outcome == Joined {
			joined = append(joined, i)
		}
	}
	allGone, quit := make(chan struct{}), make(chan struct{})
	defer close(quit)
	go func() {
		for _, i := range joined {
			select {
			case <-calls[i].Done():
			case <-quit:
				return
			}
		}
		close(allGone)
	}()
	hold := time.NewTimer(b.o.Hold)
	defer hold.Stop()
	select {
	case <-hold.C:
	case <-allGone:
	case <-ctx.Done():
	}

	// Hang up on those still there (or still ringing, when ctx ended
	// first), then wait for every call to say how it ended.
	stop := context.WithoutCancel(ctx)
	for i, c := range calls {
		if c == nil {
			continue
		}
		select {
		case <-c.Done():
			rep.Members[i].LeftEarly = rep.Members[i].Outcome == Joined
		default:
			if err := c.HangUp(stop); err != nil {
				b.log.Warn("hang up", "user", rep.Members[i].Name, "err", err)
			}
		}
	}
	wait, cancel := context.WithTimeout(stop, 10*time.Second)
	defer cancel()
	for _, i := range joined {
		c := calls[i]
		if err := c.WaitState(wait, graph.StateTerminated); err != nil && !errors.Is(err, sdk.ErrCallEnded) {
			return rep, fmt.Errorf("group call: %s's call did not end: %w", rep.Members[i].Name, err)
		}
		rep.Members[i].End = c.Snapshot().ResultInfo
	}
	return rep, ctx.Err()
}

// invite calls one user and fills in m once the call is established or
// has ended; it returns the call, nil if it could not be placed.
func (b *Bot) invite(ctx context.Context, userID string, m *Member) *sdk.Call {
	m.UserID, m.Name = userID, userID
	req := sdk.NewCall(sdk.UserTarget(userID, ""))
	if b.o.RingSeconds > 0 {
		req.RingingTimeoutInSeconds = &b.o.RingSeconds
	}
	c, err := b.handler.CreateCall(ctx, req)
	if err != nil {
		m.Outcome, m.Err = Failed, err
		b.log.Warn("could not call", "user", userID, "err", err)
		return nil
	}
	m.CallID = c.ID()
	if name := targetName(c.Snapshot()); name != "" {
		m.Name = name
	}
	if err := c.WaitState(ctx, graph.StateEstablished, graph.StateTerminated); err != nil && !errors.Is(err, sdk.ErrCallEnded) {
		m.Outcome, m.Err = Failed, err
		return c
	}
	if c.State() == graph.StateEstablished {
		m.Outcome = Joined
		b.log.Info("joined", "user", m.Name, "call", c.ID())
		return c
	}
	m.End = c.Snapshot().ResultInfo
	if m.End != nil && m.End.Code == 200 {
		// Answered and already hung up before this wait woke: only a
		// call that connected ends with 200
		// (https://learn.microsoft.com/graph/api/resources/resultinfo).
		m.Outcome = Joined
		b.log.Info("joined and left", "user", m.Name, "call", c.ID())
		return c
	}
	m.Outcome = outcome(m.End)
	b.log.Info("did not join", "user", m.Name, "outcome", m.Outcome, "end", m.End.String())
	return c
}

// targetName is the display name of the call's (only) target.
func targetName(call graph.Call) string {
	for _, t := range call.Targets {
		if _, id := t.Identity.Primary(); id != nil && id.DisplayName != "" {
			return id.DisplayName
		}
	}
	return ""
}
