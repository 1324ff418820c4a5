// Command echo is a sample bot for Switchboard, written with the Go SDK
// only, that hosts its calls' media itself: the counterpart of Microsoft's
// local-media sample bot. It answers every call to its number with
// appHostedMediaConfig, having opened the call's media socket first
// (docs/media-socket.md), and sends every frame it hears straight back:
// the caller hears themselves, a few tens of milliseconds late.
//
// Its application must be registered with mediaMode: app and hold
// Calls.AccessMedia.All. Against the dev node (`make run`, whose demo bot
// is such an application):
//
//	go run ./examples/echo
//
// then call the bot's number from a SIP phone registered as eve:
// /dial sip:+15550199@127.0.0.1:5060 in baresip.
//
// With -media, each call's media is hosted by another program instead,
// run with the call's media socket URL and a token as its last two
// arguments: -media "python3 echo.py" runs the Python echo of
// docs/media-socket.md.
package main

import (
	"context"
	"flag"
	"log/slog"
	"os"
	"os/signal"
	"strings"

	"github.com/switchboard-voice/switchboard/examples/internal/sample"
)

func main() {
	conn := sample.Flags(flag.CommandLine, false)
	media := flag.String("media", "", "host each call's media with this command (given the socket URL and a token) instead of echoing in the bot")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	o := Options{BaseURL: conn.BaseURL, TenantID: conn.TenantID, AppID: conn.AppID, Secret: conn.Secret,
		CallbackURL: conn.CallbackURL, MediaCommand: strings.Fields(*media), Out: os.Stdout, Logger: log}
	if err := run(o, conn); err != nil {
		log.Error("echo", "err", err)
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
	o.Logger.Info("echo bot ready: call it", "webhook", o.CallbackURL)
	<-ctx.Done()
	return nil
}
