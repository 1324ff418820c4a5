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
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/switchboard-voice/switchboard/examples/internal/sample"
)

func main() {
	conn := sample.Flags(flag.CommandLine, false)
	var o Options
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
	o.BaseURL, o.TenantID, o.AppID, o.Secret, o.CallbackURL = conn.BaseURL, conn.TenantID, conn.AppID, conn.Secret, conn.CallbackURL
	o.Logger = log
	if err := run(o, conn, strings.Split(*users, ",")); err != nil {
		log.Error("groupcall", "err", err)
		os.Exit(1)
	}
}

func run(o Options, conn *sample.Conn, users []string) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	bot, err := New(o)
	if err != nil {
		return err
	}
	shutdown, err := conn.ServeWebhook(bot.Handler())
	if err != nil {
		return err
	}
	defer shutdown()
	rep, err := bot.Run(ctx, users)
	if werr := rep.Write(os.Stdout); err == nil {
		err = werr
	}
	return err
}
