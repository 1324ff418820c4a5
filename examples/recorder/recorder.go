package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/switchboard-voice/switchboard/examples/internal/prompts"
	"github.com/switchboard-voice/switchboard/sdk"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Options configure a Bot.
type Options struct {
	BaseURL, TenantID, AppID, Secret string
	// CallbackURL is the bot's webhook as the platform reaches it.
	CallbackURL string
	// Prompts serves the bot's prompts and the recordings it plays back;
	// the platform must be able to fetch its URLs.
	Prompts *prompts.Server
	// Dir is where recordings are saved.
	Dir string
	// MaxRecordSeconds is the longest recording; 30 when zero.
	MaxRecordSeconds int
	Logger           *slog.Logger
	// OnDone is told how each call went, once the bot is done with it.
	OnDone func(Result)
}

// Result is how one call went.
type Result struct {
	CallID string
	Caller string
	// Path is the saved recording; empty when nothing was recorded.
	Path string
	// CompletionReason is the recordResponse operation's: why recording
	// stopped (maxRecordDurationReached, maxSilenceTimeout, stopToneDetected…).
	CompletionReason string
	// PlayedBack is set when the recording was played to the caller in full.
	PlayedBack bool
	// Err is the first thing that went wrong, if anything did.
	Err error
}

// Bot is the voice recorder: it answers a call (or places one), records
// the caller after a beep, saves the recording and plays it back.
type Bot struct {
	o       Options
	client  *sdk.Client
	handler *sdk.Handler
	prompts *prompts.Server
	log     *slog.Logger
}

// What the bot says, by file name.
var texts = map[string]string{
	"record.wav":   "Record your message after the beep.",
	"playback.wav": "You said:",
	"nothing.wav":  "I did not hear anything.",
	"goodbye.wav":  "Goodbye.",
}

// New builds the bot: an SDK client, its webhook handler, and its prompts
// added to o.Prompts.
func New(o Options) (*Bot, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Prompts == nil {
		return nil, errors.New("recorder: no prompt server")
	}
	if o.MaxRecordSeconds == 0 {
		o.MaxRecordSeconds = 30
	}
	client, err := sdk.NewClient(sdk.ClientOptions{BaseURL: o.BaseURL, TenantID: o.TenantID, ClientID: o.AppID, ClientSecret: o.Secret})
	if err != nil {
		return nil, err
	}
	h, err := sdk.NewHandler(sdk.HandlerOptions{Client: client, CallbackURL: o.CallbackURL, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(o.Dir, 0o755); err != nil {
		return nil, err
	}
	for name, text := range texts {
		o.Prompts.Say(name, text)
	}
	b := &Bot{o: o, client: client, handler: h, prompts: o.Prompts, log: o.Logger}
	h.OnIncomingCall(b.incoming)
	return b, nil
}

// Handler is the bot's webhook; serve it at Options.CallbackURL.
func (b *Bot) Handler() *sdk.Handler { return b.handler }

func (b *Bot) incoming(ctx context.Context, c *sdk.Call) {
	from := c.Snapshot().Source.String()
	b.log.Info("incoming call", "call", c.ID(), "from", from)
	if err := c.Answer(ctx, nil); err != nil {
		b.done(Result{CallID: c.ID(), Caller: from, Err: fmt.Errorf("answer: %w", err)})
		return
	}
	if err := c.WaitState(ctx, graph.StateEstablished); err != nil {
		b.done(Result{CallID: c.ID(), Caller: from, Err: err})
		return
	}
	b.done(b.record(ctx, c, from))
}

// Call calls a user (by object id), records them and plays the recording
// back.
func (b *Bot) Call(ctx context.Context, userID string) (Result, error) {
	c, err := b.handler.CreateCall(ctx, sdk.NewCall(sdk.UserTarget(userID, "")))
	if err != nil {
		return Result{}, err
	}
	if err := c.WaitState(ctx, graph.StateEstablished, graph.StateTerminated); err != nil {
		return Result{}, err
	}
	if c.State() != graph.StateEstablished {
		return Result{}, fmt.Errorf("call %s ended before it was answered: %s", c.ID(), c.Snapshot().ResultInfo.String())
	}
	r := b.record(ctx, c, userID)
	b.done(r)
	return r, r.Err
}

func (b *Bot) done(r Result) {
	if r.Err != nil && !errors.Is(r.Err, sdk.ErrCallEnded) {
		b.log.Error("call failed", "call", r.CallID, "err", r.Err)
	}
	if b.o.OnDone != nil {
		b.o.OnDone(r)
	}
}

// record runs the recorder on an established call and hangs up.
func (b *Bot) record(ctx context.Context, c *sdk.Call, from string) (r Result) {
	r = Result{CallID: c.ID(), Caller: from}
	log := b.log.With("call", c.ID())
	defer func() { _ = c.HangUp(context.WithoutCancel(ctx)) }() // 404 once the caller has hung up: nothing to do

	if r.Err = b.prompts.Play(ctx, c, "record.wav"); r.Err != nil {
		return r
	}
	maxSecs, initialSilence, maxSilence, beep := b.o.MaxRecordSeconds, 5, 3, true
	op, err := c.RecordResponse(ctx, &graph.RecordResponseRequest{
		PlayBeep:                       &beep,
		MaxRecordDurationInSeconds:     &maxSecs,
		InitialSilenceTimeoutInSeconds: &initialSilence,
		MaxSilenceTimeoutInSeconds:     &maxSilence,
		StopTones:                      []string{"#"},
	})
	if err != nil {
		r.Err = err
		return r
	}
	done, err := c.Await(ctx, op)
	if err != nil {
		r.Err = err
		return r
	}
	r.CompletionReason = done.CompletionReason
	if done.RecordingLocation == nil || *done.RecordingLocation == "" || done.RecordingAccessToken == nil {
		// initialSilenceTimeout: the caller said nothing.
		log.Info("nothing recorded", "reason", done.CompletionReason)
		r.Err = b.prompts.Play(ctx, c, "nothing.wav", "goodbye.wav")
		return r
	}
	data, err := b.download(ctx, *done.RecordingLocation, *done.RecordingAccessToken)
	if err != nil {
		r.Err = err
		return r
	}
	if r.Path, r.Err = b.save(c.ID(), data); r.Err != nil {
		return r
	}
	log.Info("recording saved", "file", r.Path, "bytes", len(data), "reason", done.CompletionReason)

	// Play it back: the platform fetches the saved recording from the
	// bot's own prompt server, like any prompt.
	name := filepath.Base(r.Path)
	b.prompts.Add(name, data)
	defer b.prompts.Remove(name)
	if r.Err = b.prompts.Play(ctx, c, "playback.wav", name); r.Err != nil {
		return r
	}
	r.PlayedBack = true
	log.Info("recording played back")
	r.Err = b.prompts.Play(ctx, c, "goodbye.wav")
	return r
}

// download fetches a recording with its operation's recordingAccessToken
// (not the Graph token).
func (b *Bot) download(ctx context.Context, location, token string) ([]byte, error) {
	rc, err := b.client.DownloadRecording(ctx, location, token)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("download recording: %w", err)
	}
	return data, nil
}

// save writes a recording to Dir; a file that exists is complete (it is
// written under another name and renamed).
func (b *Bot) save(callID string, data []byte) (string, error) {
	path := filepath.Join(b.o.Dir, "recording-"+callID+".wav")
	tmp, err := os.CreateTemp(b.o.Dir, ".recording-*")
	if err != nil {
		return "", fmt.Errorf("save recording: %w", err)
	}
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(0o644) // CreateTemp makes it private; a saved recording is an ordinary file
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), path)
	}
	if err != nil {
		_ = os.Remove(tmp.Name())
		return "", fmt.Errorf("save recording: %w", err)
	}
	return path, nil
}
