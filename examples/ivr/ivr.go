package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-voice/switchboard/examples/internal/prompts"
	"github.com/switchboard-voice/switchboard/sdk"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Options configure the bot.
type Options struct {
	BaseURL, TenantID, AppID, Secret string
	CallbackURL                      string
	Prompts                          *prompts.Server // serves the prompts and the messages played back
	MessagesDir                      string
	FromInstance                     string // applicationInstance for calls to phone numbers
	MaxRecordSeconds                 int    // longest message; 30 when zero
	Logger                           *slog.Logger
	// OnMessage is told of each message saved.
	OnMessage func(path string)
}

// Bot is the IVR.
type Bot struct {
	o       Options
	client  *sdk.Client
	handler *sdk.Handler
	log     *slog.Logger

	mu       sync.Mutex
	messages []string
}

// The prompts the bot says, by file name.
var texts = map[string]string{
	"menu.wav":     "Welcome to the Switchboard demo. Press 1 to leave a message. Press 2 to hear the time.",
	"record.wav":   "Please leave your message after the tone. Press the pound key when you are done.",
	"playback.wav": "You said:",
	"time.wav":     "Thank you for trying the time service. It is time to build something.",
	"goodbye.wav":  "Goodbye.",
	"sorry.wav":    "Sorry, I did not get that.",
	"hello.wav":    "Hello, this is the Switchboard demo bot calling you back.",
}

// New builds the bot: an SDK client, a webhook handler and its prompts.
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
	if o.Prompts == nil {
		return nil, errors.New("ivr: no prompt server")
	}
	b := &Bot{o: o, client: client, handler: h, log: o.Logger}
	for name, text := range texts {
		o.Prompts.Say(name, text)
	}
	if err := os.MkdirAll(o.MessagesDir, 0o755); err != nil {
		return nil, err
	}
	h.OnIncomingCall(b.answer)
	return b, nil
}

// Handler is the bot's webhook.
func (b *Bot) Handler() *sdk.Handler { return b.handler }

// Messages lists the files of the messages recorded so far.
func (b *Bot) Messages() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.messages...)
}

// say plays prompts and waits until they have played.
func (b *Bot) say(ctx context.Context, c *sdk.Call, names ...string) error {
	return b.o.Prompts.Play(ctx, c, names...)
}

func (b *Bot) answer(ctx context.Context, c *sdk.Call) {
	log := b.log.With("call", c.ID())
	log.Info("incoming call", "from", c.Snapshot().Source.String())
	if err := c.Answer(ctx, nil); err != nil {
		log.Error("answer", "err", err)
		return
	}
	// Subscribe at once: keys pressed before the subscription are not reported.
	if _, err := c.SubscribeToTone(ctx); err != nil {
		log.Error("subscribeToTone", "err", err)
	}
	if err := c.WaitState(ctx, graph.StateEstablished); err != nil {
		return
	}
	b.menu(ctx, c, log)
}

// menu is the IVR: a menu, a key, then a message or the time.
func (b *Bot) menu(ctx context.Context, c *sdk.Call, log *slog.Logger) {
	defer func() { _ = c.HangUp(context.WithoutCancel(ctx)) }()
	if _, err := c.SubscribeToTone(ctx); err != nil { // again for outbound calls; harmless twice
		log.Error("subscribeToTone", "err", err)
		return
	}
	for try := 0; try < 2; try++ {
		if err := b.say(ctx, c, "menu.wav"); err != nil {
			log.Error("menu", "err", err)
			return
		}
		select {
		case t := <-c.Tones():
			log.Info("key pressed", "tone", t.Tone)
			switch t.Tone {
			case graph.Tone1:
				b.takeMessage(ctx, c, log)
				return
			case graph.Tone2:
				_ = b.say(ctx, c, "time.wav", "goodbye.wav")
				return
			}
			_ = b.say(ctx, c, "sorry.wav")
		case <-time.After(10 * time.Second):
			_ = b.say(ctx, c, "sorry.wav")
		case <-c.Done():
			return
		}
	}
	_ = b.say(ctx, c, "goodbye.wav")
}

// takeMessage records the caller, saves the recording and plays it back.
func (b *Bot) takeMessage(ctx context.Context, c *sdk.Call, log *slog.Logger) {
	if err := b.say(ctx, c, "record.wav"); err != nil {
		return
	}
	max, silence := b.o.MaxRecordSeconds, 3
	if max == 0 {
		max = 30
	}
	op, err := c.RecordResponse(ctx, &graph.RecordResponseRequest{
		MaxRecordDurationInSeconds: &max, MaxSilenceTimeoutInSeconds: &silence, StopTones: []string{"#"}})
	if err != nil {
		log.Error("recordResponse", "err", err)
		return
	}
	done, err := c.Await(ctx, op)
	if err != nil || done.RecordingLocation == nil || *done.RecordingLocation == "" {
		log.Info("no message", "err", err)
		return
	}
	path, err := b.save(ctx, c.ID(), *done.RecordingLocation, *done.RecordingAccessToken)
	if err != nil {
		log.Error("download message", "err", err)
		return
	}
	log.Info("message saved", "file", path, "reason", done.CompletionReason)
	if b.o.OnMessage != nil {
		b.o.OnMessage(path)
	}
	// Play it back: serve the saved file as a prompt.
	name := filepath.Base(path)
	data, _ := os.ReadFile(path)
	b.o.Prompts.Add(name, data)
	_ = b.say(ctx, c, "playback.wav", name, "goodbye.wav")
}

func (b *Bot) save(ctx context.Context, callID, location, token string) (string, error) {
	rc, err := b.client.DownloadRecording(ctx, location, token)
	if err != nil {
		return "", err
	}
	defer rc.Close()
	path := filepath.Join(b.o.MessagesDir, fmt.Sprintf("message-%s-%d.wav", callID[:8], time.Now().Unix()))
	f, err := os.Create(path)
	if err != nil {
		return "", err
	}
	if _, err := io.Copy(f, rc); err != nil {
		f.Close()
		return "", err
	}
	if err := f.Close(); err != nil {
		return "", err
	}
	b.mu.Lock()
	b.messages = append(b.messages, path)
	b.mu.Unlock()
	return path, nil
}

// Call calls a user (by id) or a phone number, says hello and runs the menu.
func (b *Bot) Call(ctx context.Context, target string) error {
	req := sdk.NewCall(sdk.UserTarget(target, ""))
	if strings.HasPrefix(target, "+") {
		req = sdk.NewCall(sdk.PhoneTarget(target))
		if b.o.FromInstance == "" {
			return errors.New("calling a phone number needs -from-instance (the bot's applicationInstance id)")
		}
		req.Source = &graph.ParticipantInfo{Identity: &graph.IdentitySet{ApplicationInstance: &graph.Identity{ID: b.o.FromInstance}}}
	}
	c, err := b.handler.CreateCall(ctx, req)
	if err != nil {
		return err
	}
	if err := c.WaitState(ctx, graph.StateEstablished, graph.StateTerminated); err != nil {
		return err
	}
	if c.State() != graph.StateEstablished {
		return fmt.Errorf("call ended: %s", c.Snapshot().ResultInfo.Message)
	}
	_ = b.say(ctx, c, "hello.wav")
	b.menu(ctx, c, b.log.With("call", c.ID()))
	<-c.Done()
	return nil
}
