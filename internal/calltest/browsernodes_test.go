package calltest_test

import (
	"context"
	"fmt"
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
	// expired: b answers a's INVITE 430 (Flow Failed), the bot's call ends
	// with the callee unreachable, and a drops the binding.
	ph.Close()
	call3 := a.CreateCall(calltest.EveID)
	end := a.Hook.WaitState(t, call3.ID, graph.StateTerminated).Call(t)
	if end.ResultInfo.Code != 480 || end.ResultInfo.Subcode != 10076 {
		t.Fatalf("a call to a browser whose WebSocket closed ended with %+v, want 480/10076 (unreachable)", end.ResultInfo)
	}
	// Node a has dropped that binding: the next call finds no endpoint.
	call4 := a.CreateCall(calltest.EveID)
	end = a.Hook.WaitState(t, call4.ID, graph.StateTerminated).Call(t)
	if end.ResultInfo.Code != 480 || end.ResultInfo.Subcode != 10037 {
		t.Fatalf("a call after the flow failed ended with %+v, want 480/10037 (no endpoint): the binding is still there", end.ResultInfo)
	}
}

// The /phone page in a real Chromium signs in on node b; a bot calls eve
// through node a. The page rings and answers, hears the bot's prompt from
// a's WebRTC peer, and its microphone is in the bot's recording; a key
// sent as SIP INFO, its hold and resume (re-INVITEs from the browser) and
// its hang-up cross b's relay to a.
func TestChromiumPhonePageOnAnotherNode(t *testing.T) {
	natsAddr := freeAddr(t)
	a := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) { c.NATS.Listen = natsAddr }})
	b := calltest.Start(t, calltest.Options{Hook: a.Hook, WeakHook: a.WeakHook, Edit: func(c *config.Config) {
		c.NATS.URL = "nats://" + natsAddr
		c.HTTP.PublicURL = a.URL
	}})
	page := calltest.StartChromium(t, b.URL+"/phone", calltest.Pattern(700, 30, 4))
	page.Until(20*time.Second, "the page", `document.readyState === 'complete' && window.SipUA && document.activeElement.id === 'user'`)
	page.Eval(fmt.Sprintf(`document.getElementById('user').value = 'eve'; document.getElementById('password').value = %q;
document.getElementById('signin-button').click()`, calltest.EvePassword))
	page.Until(10*time.Second, "eve signed in on node b", `!document.getElementById('phone').hidden && document.getElementById('status').textContent.startsWith('Signed in as eve@')`)

	out := a.CreateCall(calltest.EveID)
	page.Until(20*time.Second, "the incoming call", `!document.getElementById('incoming').hidden && document.activeElement.id === 'answer'`)
	page.Eval(`document.getElementById('answer').click()`)
	a.Hook.WaitState(t, out.ID, graph.StateEstablished)
	page.Until(20*time.Second, "the answered call", `document.getElementById('status').textContent.startsWith('In a call with')`)

	page.Eval(listenRemoteAudio)
	c := calls + "/" + out.ID
	base := wavServer(t, map[string][]byte{"/tone.wav": calltest.WAV(tone(1200, 3*time.Second), 8000)})
	op := opDone(t, a, out.ID, a.Bot("POST", c+"/playPrompt", prompts(base+"/tone.wav")))
	if op.Status != graph.OperationCompleted {
		t.Fatalf("playPrompt: %+v %+v", op, op.ResultInfo)
	}
	page.Until(5*time.Second, "the bot's 1200 Hz prompt heard", `window.heard.some(f => f > 1150 && f < 1250)`)
	op = opDone(t, a, out.ID, a.Bot("POST", c+"/recordResponse", map[string]any{
		"maxRecordDurationInSeconds": 4, "initialSilenceTimeoutInSeconds": 5, "maxSilenceTimeoutInSeconds": 5, "playBeep": false}))
	if op.Status != graph.OperationCompleted {
		t.Fatalf("recordResponse: %+v %+v", op, op.ResultInfo)
	}
	if level := framesToneLevel(download(t, a, op), 700); level < 0.6 {
		t.Fatalf("the recording is not the page's microphone: 700 Hz is %.2f of its energy", level)
	}

	// A key as SIP INFO, from the browser through b to a.
	if r := a.Bot("POST", c+"/subscribeToTone", map[string]string{}); r.StatusCode != 200 {
		t.Fatalf("subscribeToTone: %s", r.Status)
	}
	page.Eval(`document.getElementById('dtmf-mode').value = 'info'; document.querySelector('#keypad [data-key="9"]').click()`)
	a.Hook.Wait(t, out.ID, 10*time.Second, "the page's key 9 as SIP INFO", func(ns []calltest.Notification) bool {
		for _, n := range ns {
			if n.ResourceURL == "/communications/calls/"+out.ID {
				if ci := n.Call(t); ci.ToneInfo != nil && ci.ToneInfo.Tone == "tone9" {
					return true
				}
			}
		}
		return false
	})

	page.Eval(`document.getElementById('hold').click()`)
	page.Until(10*time.Second, "on hold", `document.getElementById('hold').getAttribute('aria-pressed') === 'true' && document.getElementById('status').textContent.startsWith('On hold')`)
	page.Eval(`document.getElementById('hold').click()`)
	page.Until(10*time.Second, "resumed", `document.getElementById('hold').getAttribute('aria-pressed') === 'false' && document.getElementById('status').textContent.startsWith('In a call')`)

	page.Eval(`document.getElementById('hangup').click()`)
	end := a.Hook.WaitState(t, out.ID, graph.StateTerminated).Call(t)
	if end.ResultInfo.Code != 200 {
		t.Fatalf("the page's hang-up ended the call with %+v", end.ResultInfo)
	}
	page.Until(5*time.Second, "the call ended", `document.getElementById('status').textContent.startsWith('Call ended')`)
}
