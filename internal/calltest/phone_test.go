package calltest_test

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// The /phone page in a real Chromium (headless, its microphone a WAV):
// a wrong password is refused; eve signs in (REGISTER with digest over
// /sip/ws, computed by the page's own MD5), calls the bot's number from
// the dial field, and the bot gets the call from her; the page hears the
// bot's prompt (its analyser's loudest frequency, and the meters move),
// its keypad's keys reach the bot as tones (RFC 4733, then SIP INFO),
// hold and resume are re-INVITEs the node accepts, mute shows pressed,
// and its Hang up ends the call (200/4521). Then the bot calls eve: the
// page rings, is answered with its Answer button, and the bot's hang-up
// ends it there. A last call the page hangs up before the bot answers is
// cancelled (487).
func TestChromiumPhonePage(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	page := calltest.StartChromium(t, p.URL+"/phone", calltest.Pattern(700, 30, 4))
	page.Until(20*time.Second, "the page", `document.readyState === 'complete' && window.SipUA && document.activeElement.id === 'user'`)

	signIn := func(user, password string) {
		page.Eval(fmt.Sprintf(`document.getElementById('user').value = %q; document.getElementById('password').value = %q;
document.getElementById('signin-button').click()`, user, password))
	}
	signIn("eve", "not-her-password")
	page.Until(10*time.Second, "the refusal", `document.getElementById('status').textContent.includes('wrong username or password')`)
	signIn("eve", calltest.EvePassword)
	page.Until(10*time.Second, "eve signed in", `!document.getElementById('phone').hidden && document.getElementById('status').textContent.startsWith('Signed in as eve@')`)

	// Call the bot: type its number, press Call.
	page.Eval(fmt.Sprintf(`document.getElementById('target').value = %q; document.getElementById('call').click()`, calltest.BotNumber))
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
	p.Hook.WaitState(t, in.ID, graph.StateEstablished)
	page.Until(20*time.Second, "the call established", `document.getElementById('status').textContent.startsWith('In a call with') && !document.getElementById('hangup').disabled`)

	// Listen to what the page plays: the loudest frequency of the remote
	// audio element's stream, and the far-end meter's highest value.
	page.Eval(`(() => {
  window.heard = []; window.farMax = 0; window.micMax = 0;
  const ac = new AudioContext(), an = ac.createAnalyser();
  an.fftSize = 2048;
  ac.createMediaStreamSource(document.getElementById('remote-audio').srcObject).connect(an);
  const bins = new Float32Array(an.frequencyBinCount);
  setInterval(() => {
    an.getFloatFrequencyData(bins);
    let best = 0;
    for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
    if (bins[best] > -50) window.heard.push(Math.round(best * ac.sampleRate / an.fftSize));
    window.farMax = Math.max(window.farMax, document.getElementById('far-level').value);
    window.micMax = Math.max(window.micMax, document.getElementById('mic-level').value);
  }, 100);
})()`)
	base := wavServer(t, map[string][]byte{"/tone.wav": calltest.WAV(tone(1200, 3*time.Second), 8000)})
	op := opDone(t, p, in.ID, p.Bot("POST", c+"/playPrompt", prompts(base+"/tone.wav")))
	if op.Status != graph.OperationCompleted {
		t.Fatalf("playPrompt: %+v %+v", op, op.ResultInfo)
	}
	page.Until(5*time.Second, "the bot's 1200 Hz prompt heard", `window.heard.some(f => f > 1150 && f < 1250)`)
	page.Until(5*time.Second, "the meters moving", `window.farMax > 0.05 && window.micMax > 0.05`)

	// The keypad: 4, 2 and # pressed on the page reach the bot in order.
	if r := p.Bot("POST", c+"/subscribeToTone", map[string]string{}); r.StatusCode != 200 {
		t.Fatalf("subscribeToTone: %s", r.Status)
	}
	page.Eval(`for (const k of ['4', '2', '#']) document.querySelector('#keypad [data-key="' + k + '"]').click()`)
	var seq []string
	p.Hook.Wait(t, in.ID, 20*time.Second, "the page's keys 4, 2 and #", func(ns []calltest.Notification) bool {
		seq = seq[:0]
		for _, n := range ns {
			if n.ResourceURL == "/communications/calls/"+in.ID {
				if ci := n.Call(t); ci.ToneInfo != nil {
					seq = append(seq, string(ci.ToneInfo.Tone))
				}
			}
		}
		return len(seq) >= 3
	})
	if strings.Join(seq, " ") != "tone4 tone2 pound" {
		t.Fatalf("tones %v, want tone4 tone2 pound", seq)
	}
	// And as SIP INFO.
	page.Eval(`document.getElementById('dtmf-mode').value = 'info'; document.querySelector('#keypad [data-key="9"]').click()`)
	p.Hook.Wait(t, in.ID, 10*time.Second, "the page's key 9 as SIP INFO", func(ns []calltest.Notification) bool {
		for _, n := range ns {
			if n.ResourceURL == "/communications/calls/"+in.ID {
				if ci := n.Call(t); ci.ToneInfo != nil && ci.ToneInfo.Tone == "tone9" {
					return true
				}
			}
		}
		return false
	})

	// SWITCHBOARD_PHONE_SCREENSHOT=file: the page in the call, as a PNG
	// (docs/phone.png is one).
	if file := os.Getenv("SWITCHBOARD_PHONE_SCREENSHOT"); file != "" {
		page.Screenshot(file)
	}

	// Hold and resume (re-INVITEs), mute.
	page.Eval(`document.getElementById('hold').click()`)
	page.Until(10*time.Second, "on hold", `document.getElementById('hold').getAttribute('aria-pressed') === 'true' && document.getElementById('status').textContent.startsWith('On hold')`)
	page.Eval(`document.getElementById('hold').click()`)
	page.Until(10*time.Second, "resumed", `document.getElementById('hold').getAttribute('aria-pressed') === 'false' && document.getElementById('status').textContent.startsWith('In a call')`)
	page.Eval(`document.getElementById('mute').click()`)
	page.Until(5*time.Second, "muted", `document.getElementById('mute').getAttribute('aria-pressed') === 'true'`)
	page.Eval(`document.getElementById('mute').click()`)

	// Hang up from the page.
	page.Eval(`document.getElementById('hangup').click()`)
	end := p.Hook.WaitState(t, in.ID, graph.StateTerminated).Call(t)
	if end.ResultInfo.Code != 200 || end.ResultInfo.Subcode != 4521 {
		t.Fatalf("the page's hang-up ended the call with %+v", end.ResultInfo)
	}
	page.Until(5*time.Second, "the call ended", `document.getElementById('status').textContent.startsWith('Call ended') && !document.getElementById('call').disabled`)

	// The bot calls eve: the page rings; Answer; the bot hangs up.
	out := p.CreateCall(calltest.EveID)
	page.Until(20*time.Second, "the incoming call", `!document.getElementById('incoming').hidden && document.activeElement.id === 'answer'`)
	page.Eval(`document.getElementById('answer').click()`)
	p.Hook.WaitState(t, out.ID, graph.StateEstablished)
	page.Until(20*time.Second, "the answered call", `document.getElementById('status').textContent.startsWith('In a call with')`)
	if r := p.Bot("DELETE", calls+"/"+out.ID, nil); r.StatusCode != 204 {
		t.Fatalf("hang up: %s", r.Status)
	}
	page.Until(10*time.Second, "the bot's hang-up", `document.getElementById('status').textContent.startsWith('Call ended: the other side hung up')`)

	// A call the page gives up before the bot answers: CANCEL.
	page.Eval(`document.getElementById('call').click()`)
	var ringing string
	p.Hook.Wait(t, "", 20*time.Second, "a third call", func(ns []calltest.Notification) bool {
		for _, n := range ns {
			if n.ChangeType == graph.ChangeCreated {
				if c := n.Call(t); c.ID != in.ID && c.ID != out.ID {
					ringing = c.ID
					return true
				}
			}
		}
		return false
	})
	page.Until(10*time.Second, "the call ringing", `document.getElementById('status').textContent.startsWith('Ringing') || document.getElementById('status').textContent.startsWith('Calling')`)
	page.Eval(`document.getElementById('hangup').click()`)
	p.Hook.WaitState(t, ringing, graph.StateTerminated)
	page.Until(10*time.Second, "the call given up", `document.getElementById('status').textContent.startsWith('Call ended: 487')`)
}
