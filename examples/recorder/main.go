// Command recorder is a sample voice-recorder bot for Switchboard, written
// with the Go SDK only. It answers calls to its number (or, with -call,
// calls a user), says "record your message after the beep", records the
// caller (recordResponse), downloads the recording with its access token,
// saves it under -dir, plays it back to the caller and hangs up.
//
// Against the dev node (`make run`):
//
//	go run ./examples/recorder
//
// Its prompts are spoken with espeak-ng when it is installed, else they are
// tone patterns; it serves them, and the recordings it plays back, itself
// on -prompts.
package main

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"time"

	"github.com/switchboard-voice/switchboard/examples/internal/prompts"
)

func main() {
	var o Options
	flag.StringVar(&o.BaseURL, "graph", "http://127.0.0.1:8080/v1.0", "Switchboard's (or Graph's) base URL")
	flag.StringVar(&o.TenantID, "tenant", "8f6e4b1a-0c2d-4e5f-9a1b-2c3d4e5f6a70", "tenant id")
	flag.StringVar(&o.AppID, "app", "b07ab07a-0000-4000-8000-00000000b07a", "the bot's app id")
	flag.StringVar(&o.Secret, "secret", "dev-secret-change-me", "the bot's client secret")
	listen := flag.String("listen", "127.0.0.1:9000", "where the bot's webhook listens")
	flag.StringVar(&o.CallbackURL, "callback", "http://127.0.0.1:9000/callback", "the webhook's URL as the platform reaches it")
	promptsAddr := flag.String("prompts", "127.0.0.1:9001", "where the bot serves its prompts and recordings")
	flag.StringVar(&o.Dir, "dir", "recordings", "folder for the recordings")
	flag.IntVar(&o.MaxRecordSeconds, "max", 30, "longest recording, in seconds")
	call := flag.String("call", "", "call this user id instead of waiting for calls")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	o.Logger = log
	if err := run(o, *listen, *promptsAddr, *call); err != nil {
		log.Error("recorder", "err", err)
		os.Exit(1)
	}
}

func run(o Options, listen, promptsAddr, call string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	pl, err := net.Listen("tcp", promptsAddr)
	if err != nil {
		return err
	}
	o.Prompts = prompts.NewServer("http://" + pl.Addr().String())
	bot, err := New(o)
	if err != nil {
		return err
	}
	go func() { _ = http.Serve(pl, o.Prompts) }()
	hl, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	go func() { _ = http.Serve(hl, bot.Handler()) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = bot.Handler().Shutdown(sctx)
	}()
	o.Logger.Info("recorder bot ready", "webhook", o.CallbackURL, "prompts", o.Prompts.URL(""), "dir", o.Dir)
	if call != "" {
		r, err := bot.Call(ctx, call)
		if err != nil {
			return err
		}
		o.Logger.Info("done", "file", r.Path, "playedBack", r.PlayedBack)
		return nil
	}
	<-ctx.Done()
	return nil
}
