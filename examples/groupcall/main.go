// Command groupcall is a sample bot for Switchboard, written with the Go
// SDK only, that calls several users at once, reports who joined and who
// did not (busy, declined, no answer…, with Graph's resultInfo code and
// subcode), keeps the calls up for -hold and hangs up.
//
// Each user gets a call of their own: Switchboard does not mix several
// parties into one call yet, so this is the two-party part of a group call.
//
// Against the dev node (`make run`), calling Alice, Bob, Carol (always
// busy) and Eve (your SIP phone, if it is registered):
//
//	go run ./examples/groupcall
package main

import (
	"context"
	"flag"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"
)

func main() {
	var o Options
	flag.StringVar(&o.BaseURL, "graph", "http://127.0.0.1:8080/v1.0", "Switchboard's (or Graph's) base URL")
	flag.StringVar(&o.TenantID, "tenant", "8f6e4b1a-0c2d-4e5f-9a1b-2c3d4e5f6a70", "tenant id")
	flag.StringVar(&o.AppID, "app", "b07ab07a-0000-4000-8000-00000000b07a", "the bot's app id")
	flag.StringVar(&o.Secret, "secret", "dev-secret-change-me", "the bot's client secret")
	listen := flag.String("listen", "127.0.0.1:9000", "where the bot's webhook listens")
	flag.StringVar(&o.CallbackURL, "callback", "http://127.0.0.1:9000/callback", "the webhook's URL as the platform reaches it")
	users := flag.String("users", strings.Join([]string{
		"a11ce000-0000-4000-8000-000000000001", // Alice
		"b0b00000-0000-4000-8000-000000000002", // Bob
		"ca201000-0000-4000-8000-000000000003", // Carol, always busy
		"e0e00000-0000-4000-8000-000000000004", // Eve, your SIP phone
	}, ","), "comma-separated user ids to call")
	flag.DurationVar(&o.Hold, "hold", 20*time.Second, "how long to keep the calls up once everyone has answered or not")
	flag.IntVar(&o.RingSeconds, "ring", 30, "how long each phone rings, in seconds (at most 115)")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	o.Logger = log
	if err := run(o, *listen, strings.Split(*users, ",")); err != nil {
		log.Error("groupcall", "err", err)
		os.Exit(1)
	}
}

func run(o Options, listen string, users []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	bot, err := New(o)
	if err != nil {
		return err
	}
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
	rep, err := bot.Run(ctx, users)
	if werr := rep.Write(os.Stdout); err == nil {
		err = werr
	}
	return err
}
