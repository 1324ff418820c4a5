// Command speakers is a sample bot for Switchboard, written with the Go
// SDK only, that hosts its media itself to hear everyone in a meeting
// apart: the shape of a transcription bot. It creates a Meet Now meeting
// for a user (Alice on the dev node), or finds the one at -join, prints
// its join link and dial-in, and joins it with appHostedMediaConfig. On
// the call's media socket (docs/media-socket.md) it subscribes to every
// participant's own audio, unmixed, and writes each one's to a WAV file of
// its own (16 kHz mono, named after them, all laid on the call's media
// clock so they line up). It prints who spoke when, from each one's
// level, and each change of the platform's dominant speaker; when
// everyone has left it leaves and reports each one's speech.
//
// Its application must be registered with mediaMode: app and hold
// Calls.AccessMedia.All. Against the dev node (`make run`):
//
//	go run ./examples/speakers -invite b0b00000-0000-4000-8000-000000000002
//
// then dial in from baresip registered as eve: call the meeting
// (/dial sip:meeting-CONFERENCEID@127.0.0.1:5060); the bot admits the
// lobby.
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
	flag.StringVar(&o.User, "user", "a11ce000-0000-4000-8000-000000000001", "the user the meeting is created for, its organizer (default: the dev tenant's Alice)")
	flag.StringVar(&o.Subject, "subject", "Switchboard meeting", "the meeting's subject")
	flag.StringVar(&o.JoinURL, "join", "", "join the meeting at this join link instead of creating one")
	flag.BoolVar(&o.Admit, "admit", true, "admit everyone who waits in the lobby")
	flag.StringVar(&o.Dir, "dir", "speakers", "folder for the WAV files, one per participant")
	invite := flag.String("invite", "", "comma-separated user ids to invite into the meeting")
	flag.DurationVar(&o.Hold, "hold", 30*time.Minute, "how long the bot stays (0: until Ctrl-C); it leaves sooner when everyone who came has left")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	o.BaseURL, o.TenantID, o.AppID, o.Secret, o.CallbackURL = conn.BaseURL, conn.TenantID, conn.AppID, conn.Secret, conn.CallbackURL
	o.Logger, o.Out = log, os.Stdout
	if *invite != "" {
		o.Invite = strings.Split(*invite, ",")
	}
	if err := run(o, conn); err != nil {
		log.Error("speakers", "err", err)
		os.Exit(1)
	}
}

func run(o Options, conn *sample.Conn) error {
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
	rep, err := bot.Run(ctx)
	if werr := rep.Write(os.Stdout); err == nil {
		err = werr
	}
	return err
}
