package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"sync"
	"time"

	"github.com/switchboard-voice/switchboard/sdk"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Options configure a Bot.
type Options struct {
	BaseURL, TenantID, AppID, Secret string
	// CallbackURL is the bot's webhook as the platform reaches it.
	CallbackURL string
	// MediaCommand, when set, hosts each call's media in another program
	// instead of in the bot: it is run with the call's media socket URL and
	// a token as its last two arguments (the Python echo of
	// docs/media-socket.md is one), and the bot only answers and waits.
	MediaCommand []string
	// CommandOutput gets MediaCommand's output; os.Stderr when nil.
	CommandOutput io.Writer
	// Out gets one line per event: incoming, answered, echoing (the
	// socket's hello), ended (with the call's result). Nil discards it.
	Out    io.Writer
	Logger *slog.Logger
}

// Bot answers every call with application-hosted media and says back
// whatever it hears. It is safe for concurrent use.
type Bot struct {
	o       Options
	client  *sdk.Client
	handler *sdk.Handler
	log     *slog.Logger
	outMu   sync.Mutex
	wg      sync.WaitGroup // the calls' media loops
}

// New builds the bot: an SDK client and its webhook handler.
func New(o Options) (*Bot, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.CommandOutput == nil {
		o.CommandOutput = os.Stderr
	}
	client, err := sdk.NewClient(sdk.ClientOptions{BaseURL: o.BaseURL, TenantID: o.TenantID, ClientID: o.AppID, ClientSecret: o.Secret})
	if err != nil {
		return nil, err
	}
	h, err := sdk.NewHandler(sdk.HandlerOptions{Client: client, CallbackURL: o.CallbackURL, Logger: o.Logger})
	if err != nil {
		return nil, err
	}
	b := &Bot{o: o, client: client, handler: h, log: o.Logger}
	h.OnIncomingCall(b.answer)
	return b, nil
}

// Handler is the bot's webhook; serve it at Options.CallbackURL.
func (b *Bot) Handler() *sdk.Handler { return b.handler }

// Wait waits for the calls' media loops to end (they end with their
// calls), or ctx.
func (b *Bot) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *Bot) printf(format string, args ...any) {
	b.outMu.Lock()
	defer b.outMu.Unlock()
	fmt.Fprintf(b.o.Out, format+"\n", args...)
}

// appHosted is the media configuration of every answer: the bot hosts the
// media. The blob is opaque to Switchboard (Graph's media library keeps
// its session there); it is echoed back as it is.
var appHosted = &graph.MediaConfig{ODataType: graph.TypeAppHostedMediaConfig, Blob: "examples/echo"}

// answer opens the call's media socket, then answers: the socket is open
// before the first frame of audio, so none is lost.
func (b *Bot) answer(ctx context.Context, c *sdk.Call) {
	log := b.log.With("call", c.ID())
	b.printf("incoming %s", c.Snapshot().Source.String())
	if len(b.o.MediaCommand) > 0 {
		b.answerForCommand(ctx, c, log)
		return
	}
	m, err := c.OpenMedia(ctx, nil)
	if err != nil {
		log.Error("open media", "err", err)
		_ = c.Reject(ctx, graph.RejectNone)
		return
	}
	if err := c.Answer(ctx, &graph.AnswerRequest{MediaConfig: appHosted}); err != nil {
		log.Error("answer", "err", err)
		_ = m.Close()
		return
	}
	b.printf("answered %s", c.ID())
	b.wg.Go(func() { b.events(m) })
	b.wg.Go(func() { b.echo(m, log) })
}

// echo sends every frame of the mix (source 0: everyone but the bot) back
// as it comes, until the call ends.
func (b *Bot) echo(m *sdk.MediaSocket, log *slog.Logger) {
	var f sdk.MediaFrame // one frame, read into again and again
	for {
		if err := m.ReadFrame(&f); err != nil {
			if !errors.Is(err, sdk.ErrCallEnded) && !errors.Is(err, sdk.ErrMediaClosed) {
				log.Warn("media socket", "err", err)
			}
			return
		}
		if f.SourceID != 0 {
			continue
		}
		if err := m.WriteFrame(&f); err != nil {
			log.Warn("echo", "err", err)
			return
		}
	}
}

// events prints what the socket tells.
func (b *Bot) events(m *sdk.MediaSocket) {
	for ev := range m.Events() {
		switch ev := ev.(type) {
		case sdk.MediaHello:
			b.printf("echoing %s", ev.CallID)
		case sdk.MediaReconnected:
			b.printf("reconnected %s", ev.Down.Round(time.Millisecond))
		case sdk.MediaBye:
			b.printf("ended %s", ev.ResultInfo.String())
		}
	}
}

// answerForCommand answers and hands the media to Options.MediaCommand,
// which opens the socket itself. It is started first, so that it is
// connecting while the call is answered; the platform waits for it up to
// its reconnect window.
func (b *Bot) answerForCommand(ctx context.Context, c *sdk.Call, log *slog.Logger) {
	token, err := b.client.Token(ctx)
	if err != nil {
		log.Error("token", "err", err)
		return
	}
	args := append(append([]string(nil), b.o.MediaCommand[1:]...), b.client.MediaURL(c.ID()), token)
	cmd := exec.Command(b.o.MediaCommand[0], args...)
	cmd.Stdout, cmd.Stderr = b.o.CommandOutput, b.o.CommandOutput
	if err := cmd.Start(); err != nil {
		log.Error("media command", "err", err)
		_ = c.Reject(ctx, graph.RejectNone)
		return
	}
	b.wg.Go(func() {
		err := cmd.Wait()
		b.printf("command-exited %v", err)
	})
	if err := c.Answer(ctx, &graph.AnswerRequest{MediaConfig: appHosted}); err != nil {
		log.Error("answer", "err", err)
		_ = cmd.Process.Kill()
		return
	}
	b.printf("answered %s", c.ID())
	b.wg.Go(func() {
		<-c.Done()
		b.printf("ended %s", c.Snapshot().ResultInfo.String())
	})
}
