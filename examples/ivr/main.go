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
	"net"
	"net/http"
	"os"
	"os/signal"
)

func main() {
	var o Options
	flag.StringVar(&o.BaseURL, "graph", "http://127.0.0.1:8080/v1.0", "Switchboard's (or Graph's) base URL")
	flag.StringVar(&o.TenantID, "tenant", "8f6e4b1a-0c2d-4e5f-9a1b-2c3d4e5f6a70", "tenant id")
	flag.StringVar(&o.AppID, "app", "b07ab07a-0000-4000-8000-00000000b07a", "the bot's app id")
	flag.StringVar(&o.Secret, "secret", "dev-secret-change-me", "the bot's client secret")
	listen := flag.String("listen", "127.0.0.1:9000", "where the bot's webhook listens")
	flag.StringVar(&o.CallbackURL, "callback", "http://127.0.0.1:9000/callback", "the webhook's public URL")
	prompts := flag.String("prompts", "127.0.0.1:9001", "where the bot serves its prompts")
	flag.StringVar(&o.MessagesDir, "messages", "messages", "folder for recorded messages")
	call := flag.String("call", "", "call this user id (or +E.164 number with -from-number) instead of waiting")
	flag.StringVar(&o.FromInstance, "from-instance", "", "applicationInstance id to call phone numbers from")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	o.Logger = log
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	pl, err := net.Listen("tcp", *prompts)
	if err != nil {
		log.Error("prompts listener", "err", err)
		os.Exit(1)
	}
	o.PromptsURL = "http://" + pl.Addr().String()
	bot, err := New(o)
	if err != nil {
		log.Error("start", "err", err)
		os.Exit(1)
	}
	go func() { _ = http.Serve(pl, bot.Prompts()) }()
	hl, err := net.Listen("tcp", *listen)
	if err != nil {
		log.Error("webhook listener", "err", err)
		os.Exit(1)
	}
	go func() { _ = http.Serve(hl, bot.Handler()) }()
	log.Info("IVR bot ready", "webhook", o.CallbackURL, "prompts", o.PromptsURL)
	if *call != "" {
		if err := bot.Call(ctx, *call); err != nil {
			log.Error("call", "err", err)
			os.Exit(1)
		}
		return
	}
	<-ctx.Done()
	_ = bot.Handler().Shutdown(context.Background())
}
