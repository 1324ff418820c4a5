// Command ivr is a sample IVR bot for Switchboard, written with the Go SDK.
// It answers calls to its number, plays a menu, reads a key, and either
// records a message (saved to -messages, then played back to the caller) or
// says goodbye. With -call it calls a user instead and plays the menu.
//
// Against the dev node (`make run`):
//
//	go run ./examples/ivr
//
// Its prompts are spoken with espeak-ng when it is installed, else they are
// tone patterns; it serves them itself on -prompts.
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
	flag.StringVar(&o.MessagesDir, "messages", "messages", "folder for recorded messages")
	call := flag.String("call", "", "call this user id (or +E.164 number with -from-instance) instead of waiting")
	flag.StringVar(&o.FromInstance, "from-instance", "", "applicationInstance id to call phone numbers from")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	o.BaseURL, o.TenantID, o.AppID, o.Secret, o.CallbackURL = conn.BaseURL, conn.TenantID, conn.AppID, conn.Secret, conn.CallbackURL
	o.Logger = log
	if err := run(o, conn, *call); err != nil {
		log.Error("ivr", "err", err)
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
	o.Logger.Info("IVR bot ready", "webhook", o.CallbackURL, "prompts", o.Prompts.URL(""))
	if call != "" {
		return bot.Call(ctx, call)
	}
	<-ctx.Done()
	return nil
}
