package calltest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// A browser phone's WebSocket is on node b, the bot's call is created on
// node a: a's INVITE goes to b (the binding's Path), which relays it over
// the phone's WebSocket and record-routes (sipgw/flow.go), while the
// media flows between the phone and a's WebRTC peer. Both ways of
// hanging up cross the relay; a phone whose WebSocket has closed is
// unreachable.
func TestBotCallsBrowserPhoneOnAnotherNode(t *testing.T) {
	natsAddr := freeAddr(t)
	a := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) { c.NATS.Listen = natsAddr }})
	b := calltest.Start(t, calltest.Options{Hook: a.Hook, WeakHook: a.WeakHook, Edit: func(c *config.Config) {
		c.NATS.URL = "nats://" + natsAddr
		c.HTTP.PublicURL = a.URL // one issuer, as behind a balancer
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ph := newRTCPhone(t, b, "eve", calltest.EvePassword)
	if code, err := ph.Register(ctx, 300); err != nil || code != 200 {
		t.Fatalf("REGISTER through node b: %d %v", code, err)
	}

	// The bot calls Eve through node a; the phone rings with a WebRTC
	// offer, though a reaches it over UDP through b.
	promptPCM := calltest.Pattern(600, 3, 9)
	base := wavServer(t, map[string][]byte{"/prompt.wav": calltest.WAV(promptPCM, 8000)})
	call := a.CreateCall(calltest.EveID)
	in, err := ph.Ringing(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"UDP/TLS/RTP/SAVPF", "a=fingerprint:", "a=ice-ufrag:"} {
		if !strings.Contains(string(in.Offer), want) {
			t.Fatalf("node a's offer to a browser on node b lacks %q:\n%s", want, in.Offer)
		}
	}
	m, err := in.Answer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	a.Hook.WaitState(t, call.ID, graph.StateEstablished)
	if err := m.Connected(ctx); err != nil {
		t.Fatal(err)
	}

	// Audio both ways between the phone and node a: the bot's prompt is
	// heard, and what the phone says is in the bot's recording.
	c := calls + "/" + call.ID
	op := opDone(t, a, call.ID, a.Bot("POST", c+"/playPrompt", prompts(base+"/prompt.wav")))
	if op.Status != graph.OperationCompleted {
		t.Fatalf("playPrompt: %+v %+v", op, op.ResultInfo)
	}
	hears(t, m, promptPCM)
	m.Say(tone(700, 8*time.Second))
	op = opDone(t, a, call.ID, a.Bot("POST", c+"/recordResponse", map[string]any{
		"maxRecordDurationInSeconds": 3, "initialSilenceTimeoutInSeconds": 5, "maxSilenceTimeoutInSeconds": 5, "playBeep": false}))
	if op.Status != graph.OperationCompleted {
		t.Fatalf("recordResponse: %+v %+v", op, op.ResultInfo)
	}
	if level := framesToneLevel(download(t, a, op), 700); level < 0.6 {
		t.Fatalf("the recording is not the phone's tone: 700 Hz is %.2f of its energy", level)
	}

	// The bot hangs up on node a: the BYE reaches the phone through b.
	if r := a.Bot("DELETE", c, nil); r.StatusCode != 204 {
		t.Fatalf("hang up: %s", r.Status)
	}
	select {
	case <-in.Done():
	case <-ctx.Done():
		t.Fatal("the phone got no BYE")
	}
	if end := a.Hook.WaitState(t, call.ID, graph.StateTerminated).Call(t); end.ResultInfo.Code != 200 {
		t.Fatalf("end %+v", end.ResultInfo)
	}
	m.Close()

	// The bot gives up while the phone rings: a's CANCEL reaches b, which
	// cancels the INVITE it relayed, and the phone stops ringing.
	ringing := a.CreateCall(calltest.EveID)
	inR, err := ph.Ringing(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if r := a.Bot("DELETE", calls+"/"+ringing.ID, nil); r.StatusCode != 204 {
		t.Fatalf("hang up a ringing call: %s", r.Status)
	}
	select {
	case <-inR.Done():
	case <-ctx.Done():
		t.Fatal("the phone still rings after the bot hung up")
	}
	a.Hook.WaitState(t, ringing.ID, graph.StateTerminated)

	// A second call: the phone hangs up, and its BYE (over its WebSocket,
	// routed by b's Record-Route) ends the call on a.
	call2 := a.CreateCall(calltest.EveID)
	in2, err := ph.Ringing(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := in2.Answer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	a.Hook.WaitState(t, call2.ID, graph.StateEstablished)
	if err := in2.HangUp(ctx); err != nil {
		t.Fatalf("the phone's BYE through node b: %v", err)
	}
	if end := a.Hook.WaitState(t, call2.ID, graph.StateTerminated).Call(t); end.ResultInfo.Code != 200 {
		t.Fatalf("the phone hung up: end %+v", end.ResultInfo)
	}

	// The phone's WebSocket closes (the tab is gone), its binding not yet
	// expired: b answers a's INVITE 430 (Flow Failed), and the bot's call
	// ends with the callee unreachable.
	ph.Close()
	call3 := a.CreateCall(calltest.EveID)
	end := a.Hook.WaitState(t, call3.ID, graph.StateTerminated).Call(t)
	if end.ResultInfo.Code != 480 || end.ResultInfo.Subcode != 10076 {
		t.Fatalf("a call to a browser whose WebSocket closed ended with %+v, want 480/10076 (unreachable)", end.ResultInfo)
	}
}
