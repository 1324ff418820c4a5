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
	"os"
	"os/signal"

	"github.com/switchboard-voice/switchboard/examples/internal/sample"
)

func main() {
	conn := sample.Flags(flag.CommandLine, true)
	var o Options
	flag.StringVar(&o.Dir, "dir", "recordings", "folder for the recordings")
	flag.IntVar(&o.MaxRecordSeconds, "max", 30, "longest recording, in seconds")
	call := flag.String("call", "", "call this user id instead of waiting for calls")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	o.BaseURL, o.TenantID, o.AppID, o.Secret, o.CallbackURL = conn.BaseURL, conn.TenantID, conn.AppID, conn.Secret, conn.CallbackURL
	o.Logger = log
	if err := run(o, conn, *call); err != nil {
		log.Error("recorder", "err", err)
		os.Exit(1)
	}
}

func run(o Options, conn *sample.Conn, call string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	var err error
	if o.Prompts, err = conn.ServePrompts(); err != nil {
		return err
	}
	bot, err := New(o)
	if err != nil {
		return err
	}
	shutdown, err := conn.ServeWebhook(bot.Handler())
	if err != nil {
		return err
	}
	defer shutdown()
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
