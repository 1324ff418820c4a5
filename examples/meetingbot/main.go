// Command meetingbot is a sample bot for Switchboard, written with the Go
// SDK only, that hosts an online meeting: it creates a Meet Now meeting for
// a user (Alice on the dev node), prints its join link, dial-in number,
// conference id and meeting id, and joins it by the link, as a Teams bot
// does. It greets each person who comes in by name ("Hello Alice.", a
// prompt everyone in the meeting hears), admits those who wait in the
// lobby (people who dial in wait there), and when the meeting is over
// reports who was there, for how long, and who was heard most.
//
// Against the dev node (`make run`):
//
//	go run ./examples/meetingbot
//
// then dial in: from baresip registered as eve, call the dial-in number
// (/dial sip:+15550150@127.0.0.1:5060) and key the conference id and #,
// or call the meeting itself (/dial sip:meeting-CONFERENCEID@127.0.0.1:5060);
// or have a simulated user dial in through the simulator's control API;
// or start the bot with -invite to have it call users in.
//
// The meeting is over when everyone who came has left (other bots in the
// meeting do not count), when -hold has passed, or on Ctrl-C. The report
// gives each person's time in the meeting and in the lobby, measured from
// the roster notifications, and the time each was the dominant speaker,
// the one heard most, as Switchboard marks it in the roster
// (@switchboard.dominantSpeaker, a change told at most once a second, so
// to about a second). That is who was heard, not who talked: two people
// talking at once count for the louder one. Microsoft Graph marks no
// dominant speaker for a bot with service-hosted media; against it the
// report has the times in the meeting only.
//
// Its greetings are spoken with espeak-ng when it is installed, else they
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
	flag.StringVar(&o.User, "user", "a11ce000-0000-4000-8000-000000000001", "the user the meeting is created for, its organizer (default: the dev tenant's Alice)")
	flag.StringVar(&o.Subject, "subject", "Switchboard meeting", "the meeting's subject")
	flag.StringVar(&o.JoinURL, "join", "", "join the meeting at this join link instead of creating one")
	flag.BoolVar(&o.Admit, "admit", true, "admit everyone who waits in the lobby")
	invite := flag.String("invite", "", "comma-separated user ids to invite into the meeting (e.g. Bob: b0b00000-0000-4000-8000-000000000002)")
	flag.DurationVar(&o.Hold, "hold", 30*time.Minute, "how long the bot stays (0: until Ctrl-C); it leaves sooner when everyone who came has left")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	o.BaseURL, o.TenantID, o.AppID, o.Secret, o.CallbackURL = conn.BaseURL, conn.TenantID, conn.AppID, conn.Secret, conn.CallbackURL
	o.Logger, o.Out = log, os.Stdout
	if *invite != "" {
		o.Invite = strings.Split(*invite, ",")
	}
	if err := run(o, conn); err != nil {
		log.Error("meetingbot", "err", err)
		os.Exit(1)
	}
}

func run(o Options, conn *sample.Conn) error {
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
	rep, err := bot.Run(ctx)
	if werr := rep.Write(os.Stdout); err == nil {
		err = werr
	}
	return err
}
