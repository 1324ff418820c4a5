package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/bottest"
	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/media/prompt"
	"github.com/switchboard-voice/switchboard/internal/webrtcgw/rtcphone"
)

// The README's IVR scenario from a browser's protocols: a WebRTC phone
// (pion media, SIP over WebSocket at /sip/ws) registers as eve, calls the
// sample bot, hears the menu (its envelope in what the phone decoded),
// presses 1 (RFC 4733 over SRTP), leaves a message the bot saves, and hears
// it played back before the bot hangs up.
func TestIVRWithWebRTCPhone(t *testing.T) {
	p, served, saved := startIVR(t)
	menu := menuOf(t, served)

	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	ph, err := rtcphone.NewPhone(strings.TrimPrefix(p.URL, "http://"), p.Config.SIP.Domain, "eve", calltest.EvePassword, bottest.Logger(t, false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ph.Close)
	if code, err := ph.Register(ctx, 300); err != nil || code != 200 {
		t.Fatalf("REGISTER: %d %v", code, err)
	}
	call, code, err := ph.Call(ctx, calltest.BotNumber, nil)
	if err != nil || code != 200 {
		t.Fatalf("call the IVR: %d %v", code, err)
	}
	defer call.Media.Close()
	if err := call.Media.Connected(ctx); err != nil {
		t.Fatal(err)
	}
	// The whole menu, heard: its envelope is in what the phone decoded.
	want := calltest.Envelope(menu)
	var corr float64
	if _, err := call.Media.WaitHeard(ctx, func(heard []int16) bool {
		env := calltest.Envelope(heard)
		corr, _ = calltest.BestCorrelation(want, env, len(env), len(want)*9/10)
		return corr >= 0.9
	}); err != nil {
		t.Fatalf("the phone did not hear the menu: envelope correlation %.2f", corr)
	}
	t.Logf("menu heard: envelope correlation %.2f", corr)
	voice := calltest.Pattern(600, 20, 5)
	call.Media.Press("1")
	call.Media.Say(voice) // after the key: the bot beeps, then records

	var path string
	select {
	case path = <-saved:
	case <-ctx.Done():
		t.Fatal("no message was saved")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := prompt.DecodeWAV(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("saved message is not a WAV: %v", err)
	}
	if sim := bottest.Similarity(voice, msg); sim < 0.8 {
		t.Fatalf("the saved message does not sound like the caller: similarity %.2f", sim)
	}
	// The bot plays the message back, says goodbye and hangs up.
	select {
	case <-call.Done():
	case <-ctx.Done():
		t.Fatal("the bot did not hang up")
	}
}
