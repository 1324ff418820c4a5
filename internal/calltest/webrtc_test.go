package calltest_test

import (
	"context"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/bottest"
	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/webrtcgw/rtcphone"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// The browser's protocols without a browser: a Go WebRTC phone (pion for
// ICE, DTLS-SRTP and G.711; sipgo for SIP over WebSocket at /sip/ws)
// registers as a configured user with digest credentials, as JsSIP or
// SIP.js would, and calls a bot.

func newRTCPhone(t *testing.T, p *calltest.Platform, user, password string) *rtcphone.Phone {
	t.Helper()
	ph, err := rtcphone.NewPhone(strings.TrimPrefix(p.URL, "http://"), p.Config.SIP.Domain, user, password, bottest.Logger(t, false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ph.Close)
	return ph
}

// waitIncoming waits for the bot's incoming-call notification and returns
// the call.
func waitIncoming(t *testing.T, p *calltest.Platform) graph.Call {
	t.Helper()
	var in graph.Call
	p.Hook.Wait(t, "", 20*time.Second, "incoming call", func(ns []calltest.Notification) bool {
		for _, n := range ns {
			if n.ChangeType == graph.ChangeCreated {
				in = n.Call(t)
				return true
			}
		}
		return false
	})
	return in
}

// A WebRTC phone registers over SIP over WebSocket (a wrong password is
// refused), calls the bot's number, and the bot gets it like any SIP
// caller: it answers, plays a prompt the phone hears (as audio: the
// prompt's envelope is in what the phone decoded), and the keys the phone
// sends as RFC 4733 events over SRTP arrive as tone notifications in
// order. The phone hangs up. The relay's latency is logged.
func TestWebRTCPhoneCallsBotHearsPromptPressesKeys(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	bad := newRTCPhone(t, p, "eve", "not-her-password")
	if code, err := bad.Register(ctx, 300); err != nil || code != 403 {
		t.Fatalf("REGISTER with a wrong password: %d %v, want 403", code, err)
	}
	ph := newRTCPhone(t, p, "eve", calltest.EvePassword)
	if code, err := ph.Register(ctx, 300); err != nil || code != 200 {
		t.Fatalf("REGISTER: %d %v", code, err)
	}

	promptPCM := calltest.Pattern(900, 3, 5)
	base := wavServer(t, map[string][]byte{"/prompt.wav": calltest.WAV(promptPCM, 8000)})

	dialled := webRTCCall(ctx, ph, calltest.BotNumber, nil)
	in := waitIncoming(t, p)
	if in.Source == nil || in.Source.Identity.User == nil || in.Source.Identity.User.ID != calltest.EveID {
		t.Fatalf("caller identity: %+v", in.Source)
	}
	c := calls + "/" + in.ID
	ans := map[string]any{"acceptedModalities": []string{"audio"},
		"mediaConfig": map[string]any{"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}}
	if r := p.Bot("POST", c+"/answer", ans); r.StatusCode != 202 {
		t.Fatalf("answer: %s %s", r.Status, r.Body)
	}
	res := <-dialled
	if res.err != nil || res.code != 200 {
		t.Fatalf("the phone's call: %d %v", res.code, res.err)
	}
	call := res.call
	defer call.Media.Close()
	p.Hook.WaitState(t, in.ID, graph.StateEstablished)
	if err := call.Media.Connected(ctx); err != nil {
		t.Fatal(err)
	}

	op := opDone(t, p, in.ID, p.Bot("POST", c+"/playPrompt", prompts(base+"/prompt.wav")))
	if op.Status != graph.OperationCompleted {
		t.Fatalf("playPrompt: %+v %+v", op, op.ResultInfo)
	}
	// The last packets of the prompt may still be on their way through
	// the relay, DTLS and the phone's jitter-free decoder: wait for them.
	hears(t, call.Media, promptPCM)

	if r := p.Bot("POST", c+"/subscribeToTone", map[string]string{}); r.StatusCode != 200 {
		t.Fatalf("subscribeToTone: %s", r.Status)
	}
	call.Media.Press("4#")
	var seq []string
	p.Hook.Wait(t, in.ID, 10*time.Second, "tones 4 and #", func(ns []calltest.Notification) bool {
		seq = seq[:0]
		for _, n := range ns {
			if n.ResourceURL == "/communications/calls/"+in.ID {
				if ci := n.Call(t); ci.ToneInfo != nil {
					seq = append(seq, string(ci.ToneInfo.Tone))
				}
			}
		}
		return len(seq) >= 2
	})
	if strings.Join(seq, " ") != "tone4 pound" {
		t.Fatalf("tones %v, want tone4 pound", seq)
	}

	// The phone hangs up.
	if err := call.HangUp(ctx); err != nil {
		t.Fatalf("BYE: %v", err)
	}
	end := p.Hook.WaitState(t, in.ID, graph.StateTerminated).Call(t)
	if end.ResultInfo.Code != 200 || end.ResultInfo.Subcode != 4521 {
		t.Fatalf("the phone's hang-up ended the call with %+v", end.ResultInfo)
	}

	// The relay's cost in this call, from the node's own metrics.
	code, metrics := getStatus(t, p.URL+"/metrics", nil)
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	for _, dir := range []string{"engine", "farEnd"} {
		sum, n := metricValue(metrics, `switchboard_webrtc_relay_seconds_sum{direction="`+dir+`"}`),
			metricValue(metrics, `switchboard_webrtc_relay_seconds_count{direction="`+dir+`"}`)
		if n < 50 {
			t.Fatalf("%s: %v packets through the relay", dir, n)
		}
		t.Logf("relay towards %s: %.0f packets, mean %.1f µs", dir, n, sum/n*1e6)
	}
}

// metricValue reads one sample of Prometheus text (0 when absent).
func metricValue(text, name string) float64 {
	for _, l := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(l, name+" "); ok {
			f, _ := strconv.ParseFloat(strings.TrimSpace(v), 64)
			return f
		}
	}
	return 0
}

// hears waits (5 s at most) until what the phone decoded holds pcm: its
// 20 ms envelope correlates 0.9 or more with some stretch of it.
func hears(t *testing.T, m *rtcphone.Media, pcm []int16) {
	t.Helper()
	want := calltest.Envelope(pcm)
	var corr float64
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := m.WaitHeard(ctx, func(heard []int16) bool {
		env := calltest.Envelope(heard)
		corr, _ = calltest.BestCorrelation(want, env, len(env), len(want)*9/10)
		return corr >= 0.9
	}); err != nil {
		t.Fatalf("the phone did not hear the prompt: envelope correlation %.2f", corr)
	}
}

// webRTCCall dials the bot from the phone on a goroutine (Call waits for
// the answer) and returns a channel with its result.
func webRTCCall(ctx context.Context, ph *rtcphone.Phone, number string, body []byte) chan callResult {
	ch := make(chan callResult, 1)
	go func() {
		c, code, err := ph.Call(ctx, number, body)
		ch <- callResult{c, code, err}
	}()
	return ch
}

type callResult struct {
	call *rtcphone.Call
	code int
	err  error
}

func getStatus(t *testing.T, url string, hdr map[string]string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", url, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// What a WebRTC phone may get wrong is refused with the right SIP status
// before any call exists, and the node goes on: an offer without a DTLS
// fingerprint, without ICE credentials, without G.711, or with a
// fingerprint that is no fingerprint gets 488; a plain GET of /sip/ws
// gets 426 and a WebSocket without the "sip" subprotocol 400. A good
// call afterwards still reaches the bot.
func TestWebRTCRefusals(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	if code, body := getStatus(t, p.URL+"/sip/ws", nil); code != 426 {
		t.Fatalf("GET /sip/ws without an upgrade: %d %s, want 426", code, body)
	}
	if code, body := getStatus(t, p.URL+"/sip/ws", map[string]string{"Connection": "Upgrade", "Upgrade": "websocket",
		"Sec-WebSocket-Version": "13", "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": "chat"}); code != 400 {
		t.Fatalf("a WebSocket without the sip subprotocol: %d %s, want 400", code, body)
	}

	ph := newRTCPhone(t, p, "eve", calltest.EvePassword)
	if code, err := ph.Register(ctx, 300); err != nil || code != 200 {
		t.Fatalf("REGISTER: %d %v", code, err)
	}
	m, err := rtcphone.NewMedia()
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	good, err := m.Offer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	strip := func(prefix string) []byte {
		var out []string
		for _, l := range strings.SplitAfter(string(good), "\n") {
			if !strings.HasPrefix(l, prefix) {
				out = append(out, l)
			}
		}
		return []byte(strings.Join(out, ""))
	}
	opus := strings.NewReplacer("PCMU/8000", "opus/48000/2", "SAVPF 0 101", "SAVPF 111 101", "rtpmap:0 ", "rtpmap:111 ").Replace(string(good))
	for _, c := range []struct {
		name string
		sdp  []byte
	}{
		{"no fingerprint", strip("a=fingerprint:")},
		{"no ICE credentials", strip("a=ice-pwd:")},
		{"no G.711", []byte(opus)},
		{"a fingerprint that is none", []byte(strings.Replace(string(good), "a=fingerprint:sha-256 ", "a=fingerprint:sha-256 nothex:", 1))},
	} {
		res := <-webRTCCall(ctx, ph, calltest.BotNumber, c.sdp)
		if res.code != 488 || res.call != nil {
			t.Errorf("%s: %d %v, want 488", c.name, res.code, res.err)
		}
	}
	if n := len(p.Hook.All()); n != 0 {
		t.Fatalf("refused offers reached the bot: %d notifications", n)
	}

	// The node is unharmed: a good offer still rings the bot.
	dialled := webRTCCall(ctx, ph, calltest.BotNumber, nil)
	in := waitIncoming(t, p)
	if r := p.Bot("POST", calls+"/"+in.ID+"/reject", map[string]any{"reason": "busy"}); r.StatusCode != 202 {
		t.Fatalf("reject: %s %s", r.Status, r.Body)
	}
	if res := <-dialled; res.code != 486 {
		t.Fatalf("a call the bot rejects as busy: %d %v, want 486", res.code, res.err)
	}
}

// A bot calls a user registered from a WebRTC phone: the INVITE rings the
// phone over its WebSocket with a WebRTC offer (DTLS-SRTP, ICE), the phone
// answers, hears the bot's prompt, and its keys reach the bot; the bot
// hangs up and the phone gets the BYE over the same socket.
func TestBotCallsWebRTCPhone(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ph := newRTCPhone(t, p, "eve", calltest.EvePassword)
	if code, err := ph.Register(ctx, 300); err != nil || code != 200 {
		t.Fatalf("REGISTER: %d %v", code, err)
	}
	promptPCM := calltest.Pattern(600, 3, 9)
	base := wavServer(t, map[string][]byte{"/prompt.wav": calltest.WAV(promptPCM, 8000)})

	call := p.CreateCall(calltest.EveID)
	in, err := ph.Ringing(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"UDP/TLS/RTP/SAVPF", "a=fingerprint:", "a=ice-ufrag:", "a=rtcp-mux", "PCMU/8000", "telephone-event/8000"} {
		if !strings.Contains(string(in.Offer), want) {
			t.Fatalf("the node's offer to a browser lacks %q:\n%s", want, in.Offer)
		}
	}
	m, err := in.Answer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	p.Hook.WaitState(t, call.ID, graph.StateEstablished)
	if err := m.Connected(ctx); err != nil {
		t.Fatal(err)
	}
	c := calls + "/" + call.ID
	op := opDone(t, p, call.ID, p.Bot("POST", c+"/playPrompt", prompts(base+"/prompt.wav")))
	if op.Status != graph.OperationCompleted {
		t.Fatalf("playPrompt: %+v %+v", op, op.ResultInfo)
	}
	hears(t, m, promptPCM)
	if r := p.Bot("POST", c+"/subscribeToTone", map[string]string{}); r.StatusCode != 200 {
		t.Fatalf("subscribeToTone: %s", r.Status)
	}
	m.Press("7")
	p.Hook.Wait(t, call.ID, 10*time.Second, "tone 7", func(ns []calltest.Notification) bool {
		for _, n := range ns {
			if n.ResourceURL == "/communications/calls/"+call.ID {
				if ci := n.Call(t); ci.ToneInfo != nil && ci.ToneInfo.Tone == "tone7" {
					return true
				}
			}
		}
		return false
	})
	if r := p.Bot("DELETE", c, nil); r.StatusCode != 204 {
		t.Fatalf("hang up: %s", r.Status)
	}
	select {
	case <-in.Done():
	case <-ctx.Done():
		t.Fatal("the phone got no BYE")
	}
	end := p.Hook.WaitState(t, call.ID, graph.StateTerminated).Call(t)
	if end.ResultInfo.Code != 200 || end.ResultInfo.Subcode != 5001 {
		t.Fatalf("end %+v", end.ResultInfo)
	}
}

// A page that goes away without a BYE (its peer connection closed: DTLS
// close_notify, then silence) ends the call within the consent timeout,
// as a media failure (410/301005), and the node sends the BYE.
func TestWebRTCPageVanishes(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ph := newRTCPhone(t, p, "eve", calltest.EvePassword)
	if code, err := ph.Register(ctx, 300); err != nil || code != 200 {
		t.Fatalf("REGISTER: %d %v", code, err)
	}
	dialled := webRTCCall(ctx, ph, calltest.BotNumber, nil)
	in := waitIncoming(t, p)
	ans := map[string]any{"acceptedModalities": []string{"audio"},
		"mediaConfig": map[string]any{"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}}
	if r := p.Bot("POST", calls+"/"+in.ID+"/answer", ans); r.StatusCode != 202 {
		t.Fatalf("answer: %s %s", r.Status, r.Body)
	}
	res := <-dialled
	if res.err != nil || res.code != 200 {
		t.Fatalf("the phone's call: %d %v", res.code, res.err)
	}
	p.Hook.WaitState(t, in.ID, graph.StateEstablished)
	if err := res.call.Media.Connected(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res.call.Media.Close() // the tab is closed: no BYE
	end := p.Hook.WaitState(t, in.ID, graph.StateTerminated).Call(t)
	if end.ResultInfo.Code != 410 || end.ResultInfo.Subcode != 301005 {
		t.Fatalf("a vanished page ended the call with %+v, want 410/301005", end.ResultInfo)
	}
	t.Logf("call ended %v after the page's media went away", time.Since(start).Round(time.Millisecond))
	select {
	case <-res.call.Done():
	case <-ctx.Done():
		t.Fatal("the node sent no BYE to the phone")
	}
}

// A WebRTC phone and a real SIP phone (baresip) talk through a bot's group
// call, both ways: each hears the other's tone and not its own, the
// conference mixing the browser leg's media like any phone's.
func TestWebRTCPhoneAndBaresipTalk(t *testing.T) {
	calltest.NeedPeer(t, "baresip", "baresip")
	p := calltest.Start(t, calltest.Options{Edit: withGroupPhones})
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	ph := newRTCPhone(t, p, "eve", calltest.EvePassword)
	if code, err := ph.Register(ctx, 300); err != nil || code != 200 {
		t.Fatalf("REGISTER: %d %v", code, err)
	}
	fay := groupPhones[0] // baresip, saying 600 Hz
	const eveFreq = 1050.0
	bs := startPhones(t, p, 12*time.Second, fay)[0]

	call := groupCall(t, p, calltest.EveID, fay.id)
	in, err := ph.Ringing(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := in.Answer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	if err := m.Connected(ctx); err != nil {
		t.Fatal(err)
	}
	m.Say(tone(eveFreq, 8*time.Second))
	waitRoster(t, p, call.ID, "Test bot", "Eve", "Fay")
	bs.WaitOutput(t, "terminated", 40*time.Second) // her microphone's file ended: she hung up

	eveHeard := m.Heard()
	own, theirs := toneLevel(eveHeard, eveFreq), toneLevel(eveHeard, fay.freq)
	t.Logf("the WebRTC phone heard %.1f s: Fay's tone %.3f, its own %.4f", float64(len(eveHeard))/8000, theirs, own)
	if theirs < 0.05 || own > theirs/20 {
		t.Errorf("the WebRTC phone should hear Fay and not itself: %.3f / %.4f", theirs, own)
	}
	fayHeard := bs.Heard(t)
	own, theirs = toneLevel(fayHeard, fay.freq), toneLevel(fayHeard, eveFreq)
	t.Logf("baresip heard %.1f s: the WebRTC phone's tone %.3f, its own %.4f", float64(len(fayHeard))/8000, theirs, own)
	if theirs < 0.05 || own > theirs/20 {
		t.Errorf("baresip should hear the WebRTC phone and not itself: %.3f / %.4f", theirs, own)
	}
	if r := p.Bot("DELETE", calls+"/"+call.ID, nil); r.StatusCode != 204 {
		t.Fatalf("hang up: %s", r.Status)
	}
	select {
	case <-in.Done():
	case <-ctx.Done():
		t.Fatal("the WebRTC phone got no BYE")
	}
}
