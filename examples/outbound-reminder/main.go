// Command outbound-reminder is a sample bot for Switchboard, written with
// the Go SDK only, that calls a phone number from the bot's own number,
// plays a reminder, asks the callee to press 1 to confirm, reports whether
// they did, and hangs up.
//
// A call to a phone number must come from one of the application's
// numbers: -from-instance is its applicationInstance id (the dev node's
// +15550199 by default). Switchboard routes the number through a SIP trunk
// (sip.trunks), or to the registered phone of the user who owns it.
//
// Against the dev node (`make run`), calling Eve's number (+15550103),
// which rings your SIP phone registered as eve:
//
//	go run ./examples/outbound-reminder
//
// Its prompts are spoken with espeak-ng when it is installed, else they are
// tone patterns; it serves them itself on -prompts.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/switchboard-voice/switchboard/examples/internal/sample"
)

func main() {
	conn := sample.Flags(flag.CommandLine, true)
	var o Options
	to := flag.String("to", "+15550103", "the E.164 number to call (the dev node's +15550103 rings eve's SIP phone)")
	flag.StringVar(&o.FromInstance, "from-instance", "b8982d3a-ded3-5631-9d1d-38fe159a01e3",
		"applicationInstance id of the number to call from (the dev node's +15550199; configured as applications[].numbers[].instanceId, else derived)")
	flag.StringVar(&o.Text, "text", "Hello, this is a reminder from the Switchboard demo: your appointment is tomorrow at ten in the morning.", "the reminder")
	wav := flag.String("wav", "", "a WAV file to play as the reminder instead of speaking -text")
	flag.BoolVar(&o.Confirm, "confirm", true, "ask the callee to press 1 to confirm")
	flag.DurationVar(&o.ConfirmWait, "wait", 10*time.Second, "how long to wait for the key")
	flag.IntVar(&o.RingSeconds, "ring", 30, "how long the phone rings, in seconds (at most 115)")
	flag.Parse()

	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	o.BaseURL, o.TenantID, o.AppID, o.Secret, o.CallbackURL = conn.BaseURL, conn.TenantID, conn.AppID, conn.Secret, conn.CallbackURL
	o.Logger = log
	if *wav != "" {
		data, err := os.ReadFile(*wav)
		if err != nil {
			log.Error("reminder", "err", err)
			os.Exit(1)
		}
		o.WAV = data
	}
	if err := run(o, conn, *to); err != nil {
		log.Error("reminder", "err", err)
		os.Exit(1)
	}
}

func run(o Options, conn *sample.Conn, to string) error {
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
	r, err := bot.Remind(ctx, to)
	if err != nil {
		return err
	}
	switch {
	case !r.Answered:
		fmt.Printf("%s did not answer: %s\n", to, r.End.String())
	case r.Confirmed:
		fmt.Printf("%s confirmed (pressed 1)\n", to)
	case r.Key != "":
		fmt.Printf("%s pressed %s, not 1: not confirmed\n", to, r.Key)
	case r.Heard:
		fmt.Printf("%s heard the reminder but did not confirm\n", to)
	default:
		fmt.Printf("%s hung up before the end of the reminder: %s\n", to, r.End.String())
	}
	return nil
}
