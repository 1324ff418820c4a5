package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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
	// Prompts serves the bot's prompts; the platform must be able to fetch
	// its URLs.
	Prompts *prompts.Server
	// FromInstance is the applicationInstance id of the bot's number: a
	// call to a phone number must come from one, and the callee sees that
	// number (the PSTN example of
	// https://learn.microsoft.com/graph/api/application-post-calls).
	FromInstance string
	// Text is the reminder, spoken (see prompts.Speak) unless WAV is set.
	Text string
	// WAV, when set, is played as the reminder instead of Text.
	WAV []byte
	// Confirm asks the callee to press 1 to confirm.
	Confirm bool
	// ConfirmWait is how long to wait for the key after asking; 10 s when zero.
	ConfirmWait time.Duration
	// RingSeconds is how long the phone rings (ringingTimeoutInSeconds,
	// at most 115); the platform's default when 0.
	RingSeconds int
	Logger      *slog.Logger
}

// Result is how one reminder call went.
type Result struct {
	CallID string
	// Answered is set when the call was established.
	Answered bool
	// Heard is set when the reminder was played to the end.
	Heard bool
	// Confirmed is set when the callee pressed 1.
	Confirmed bool
	// Key is the first key the callee pressed, if any.
	Key graph.Tone
	// End is how the call ended (Graph's resultInfo): 200/5001 when the
	// bot hung up, 486/9005 busy, 408/10057 no answer…
	End *graph.ResultInfo
}

// Bot calls phone numbers with a reminder.
type Bot struct {
	o       Options
	handler *sdk.Handler
	prompts *prompts.Server
	log     *slog.Logger
}

// What the bot says besides the reminder, by file name.
var texts = map[string]string{
	"confirm.wav":   "Press 1 to confirm.",
	"confirmed.wav": "Thank you, that is confirmed. Goodbye.",
	"goodbye.wav":   "Goodbye.",
}

// New builds the bot: an SDK client, its webhook handler, and its prompts
// added to o.Prompts.
func New(o Options) (*Bot, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Prompts == nil {
		return nil, errors.New("reminder: no prompt server")
	}
	if o.FromInstance == "" {
		return nil, errors.New("reminder: no applicationInstance to call from")
	}
	if o.Text == "" && o.WAV == nil {
		return nil, errors.New("reminder: nothing to say")
	}
	if o.ConfirmWait == 0 {
		o.ConfirmWait = 10 * time.Second
	}
	client, err := sdk.NewClient(sdk.ClientOptions{BaseURL: o.BaseURL, TenantID: o.TenantID, ClientID: o.AppID, ClientSecret: o.Secret})
	if err != nil {
		return nil, err
	}
	h, err := sdk.NewHandler(sdk.HandlerOptions{Client: client, CallbackURL: o.CallbackURL, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	for name, text := range texts {
		o.Prompts.Say(name, text)
	}
	if o.WAV != nil {
		o.Prompts.Add("reminder.wav", o.WAV)
	} else {
		o.Prompts.Say("reminder.wav", o.Text)
	}
	return &Bot{o: o, handler: h, prompts: o.Prompts, log: o.Logger}, nil
}

// Handler is the bot's webhook; serve it at Options.CallbackURL.
func (b *Bot) Handler() *sdk.Handler { return b.handler }

// Remind calls number (E.164) from the bot's number, plays the reminder,
// asks for a 1 when Options.Confirm is set, and hangs up. An unanswered
// call is not an error: Result.End says why.
func (b *Bot) Remind(ctx context.Context, number string) (Result, error) {
	req := sdk.NewCall(sdk.PhoneTarget(number))
	req.Source = &graph.ParticipantInfo{ODataType: graph.TypeParticipantInfo,
		Identity: &graph.IdentitySet{ODataType: graph.TypeIdentitySet,
			ApplicationInstance: &graph.Identity{ODataType: graph.TypeIdentity, ID: b.o.FromInstance}}}
	if b.o.RingSeconds > 0 {
		req.RingingTimeoutInSeconds = &b.o.RingSeconds
	}
	c, err := b.handler.CreateCall(ctx, req)
	if err != nil {
		return Result{}, fmt.Errorf("call %s: %w", number, err)
	}
	r := Result{CallID: c.ID()}
	log := b.log.With("call", c.ID(), "to", number)
	if err := c.WaitState(ctx, graph.StateEstablished, graph.StateTerminated); err != nil && !errors.Is(err, sdk.ErrCallEnded) {
		_ = c.HangUp(context.WithoutCancel(ctx))
		return r, err
	}
	if c.State() != graph.StateEstablished {
		r.End = c.Snapshot().ResultInfo
		log.Info("not answered", "end", r.End.String())
		return r, nil
	}
	r.Answered = true
	log.Info("answered")
	err = b.talk(ctx, c, &r)
	_ = c.HangUp(context.WithoutCancel(ctx)) // 404 when the callee hung up first: nothing to do
	wait, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if werr := c.WaitState(wait, graph.StateTerminated); werr != nil && !errors.Is(werr, sdk.ErrCallEnded) && err == nil {
		err = werr
	}
	r.End = c.Snapshot().ResultInfo
	if errors.Is(err, sdk.ErrCallEnded) {
		err = nil // the callee hung up: End says so
	}
	log.Info("done", "heard", r.Heard, "confirmed", r.Confirmed, "key", r.Key, "end", r.End.String())
	return r, err
}

// talk plays the reminder and reads the confirmation on an established
// call.
func (b *Bot) talk(ctx context.Context, c *sdk.Call, r *Result) error {
	// Subscribe before saying anything: keys pressed before the
	// subscription are not reported, and a callee may press 1 at once.
	if _, err := c.SubscribeToTone(ctx); err != nil {
		return err
	}
	say := []string{"reminder.wav"}
	if b.o.Confirm {
		say = append(say, "confirm.wav")
	}
	if err := b.prompts.Play(ctx, c, say...); err != nil {
		return err
	}
	r.Heard = true
	if !b.o.Confirm {
		return b.prompts.Play(ctx, c, "goodbye.wav")
	}
	timeout := time.NewTimer(b.o.ConfirmWait)
	defer timeout.Stop()
	select {
	case t, ok := <-c.Tones(): // keys pressed while the prompts played are waiting here
		if !ok {
			return sdk.ErrCallEnded
		}
		r.Key = t.Tone
		r.Confirmed = t.Tone == graph.Tone1
	case <-timeout.C:
	case <-c.Done():
		return sdk.ErrCallEnded
	case <-ctx.Done():
		return ctx.Err()
	}
	if r.Confirmed {
		return b.prompts.Play(ctx, c, "confirmed.wav")
	}
	return b.prompts.Play(ctx, c, "goodbye.wav")
}
