// Command groupcall is a sample bot for Switchboard, written with the Go
// SDK only, that places one group call with several users: Switchboard
// dials them all and mixes what each says for the others. The bot
// announces each person who joins ("Alice joined."), prints the roster as
// it changes (joined, left, muted, removed), invites more people with
// -invite or on command, and at the end reports who joined and who did
// not, with the reason when the platform gives one.
//
// Against the dev node (`make run`), calling Alice, Bob, Carol (always
// busy) and Eve (your SIP phone, if it is registered):
//
//	go run ./examples/groupcall
//
// While the call is up it reads commands on standard input: "invite
// USER-ID", "mute NAME", "remove NAME", "roster" and "hangup". Its
// announcements are spoken with espeak-ng when it is installed, else they
// are tone patterns; it serves them itself on -prompts.
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
	conn := sample.Flags(flag.CommandLine, true)
	var o Options
	users := flag.String("users", strings.Join([]string{
		"a11ce000-0000-4000-8000-000000000001", // Alice
		"b0b00000-0000-4000-8000-000000000002", // Bob
		"ca201000-0000-4000-8000-000000000003", // Carol, always busy
		"e0e00000-0000-4000-8000-000000000004", // Eve, your SIP phone
	}, ","), "comma-separated user ids to call (two or more)")
	invite := flag.String("invite", "", "comma-separated user ids to invite once the call is up (e.g. Dan: da400000-0000-4000-8000-000000000005)")
	flag.DurationVar(&o.InviteAfter, "invite-after", 10*time.Second, "when to invite the -invite users, after placing the call")
	flag.DurationVar(&o.Hold, "hold", 2*time.Minute, "how long the call lasts (0: until Ctrl-C or hangup); it ends sooner when everyone has left")
	flag.StringVar(&o.Subject, "subject", "Switchboard group call", "the call's subject")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	o.BaseURL, o.TenantID, o.AppID, o.Secret, o.CallbackURL = conn.BaseURL, conn.TenantID, conn.AppID, conn.Secret, conn.CallbackURL
	o.Logger, o.Out = log, os.Stdout
	if *invite != "" {
		o.Invite = strings.Split(*invite, ",")
	}
	if err := run(o, conn, strings.Split(*users, ",")); err != nil {
		log.Error("groupcall", "err", err)
		os.Exit(1)
	}
}

func run(o Options, conn *sample.Conn, users []string) error {
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
	rep, err := bot.Run(ctx, users, os.Stdin)
	if werr := rep.Write(os.Stdout); err == nil {
		err = werr
	}
	return err
}
