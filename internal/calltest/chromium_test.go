package calltest_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/bottest"
	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// browserPage calls a number over SIP over WebSocket from a real browser,
// with nothing but the browser's own WebRTC and the node's own SIP user
// agent, /phone/sip.js (the /phone page's): an INVITE carrying Chromium's
// offer, the ACK, DTMF through RTCDTMFSender (RFC 4733), and a 200 to the
// node's BYE. It reports what it does, and the loudest frequency it hears,
// to /report on the page's server. (The node takes it as a trunk's caller:
// the digest of REGISTER and INVITE is the Go phone's and the /phone
// page's tests' business.)
const browserPage = `<!doctype html><meta charset="utf-8"><title>switchboard webrtc smoke</title>
<audio id="far" autoplay></audio>
<script>
const q = new URLSearchParams(location.search);
const report = (k, v) => fetch('/report?' + new URLSearchParams({k, v}));
const host = q.get('node');
const lib = document.createElement('script');
lib.src = 'http://' + host + '/phone/sip.js';
lib.onerror = () => report('error', 'cannot load sip.js');
lib.onload = async () => {
  try {
    const mic = await navigator.mediaDevices.getUserMedia({audio: {echoCancellation: false, noiseSuppression: false, autoGainControl: false}});
    const ua = new SipUA({server: 'ws://' + host + '/sip/ws', domain: host, user: 'browser', password: ''});
    await ua.connect();
    report('ws', 'open');
    ua.addEventListener('disconnected', () => report('ws', 'closed'));
    const call = ua.call(q.get('number'), mic);
    call.pc.addEventListener('connectionstatechange', () => report('pc', call.pc.connectionState));
    call.addEventListener('track', ev => {
      const el = document.getElementById('far');
      el.srcObject = ev.detail;
      el.play().catch(() => {});
      const ac = new AudioContext();
      const an = ac.createAnalyser();
      an.fftSize = 2048;
      ac.createMediaStreamSource(el.srcObject).connect(an);
      const bins = new Float32Array(an.frequencyBinCount);
      setInterval(() => {
        an.getFloatFrequencyData(bins);
        let best = 0;
        for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
        if (bins[best] > -50) report('peak', Math.round(best * ac.sampleRate / an.fftSize));
      }, 250);
    });
    call.addEventListener('state', ev => {
      report('state', ev.detail.state);
      if (ev.detail.state !== 'established') return;
      // Keys when the test says (after the bot subscribed to tones).
      const poll = setInterval(async () => {
        const keys = await (await fetch('/keys')).text();
        if (!keys) return;
        clearInterval(poll);
        try { call.dtmf(keys); report('dtmf', keys); } catch (e) { report('error', 'dtmf: ' + e); }
      }, 200);
    });
    call.addEventListener('ended', ev => report(ev.detail === 'the other side hung up' ? 'bye' : 'ended', ev.detail === 'the other side hung up' ? 'received' : ev.detail));
  } catch (e) {
    report('error', String(e));
  }
};
document.head.appendChild(lib);
</script>`

// browserCall is a headless Chromium running browserPage against a node,
// its call to the bot answered and its WebRTC connected.
type browserCall struct {
	in    graph.Call
	voice []int16 // what its fake microphone says
	page  *calltest.Chromium

	mu      sync.Mutex
	reports []string
	keys    string
	changed chan struct{}
}

// startBrowserCall starts Chromium on browserPage, which calls the bot's
// number over SIP over WebSocket; the bot answers; it returns once the
// call is established and the page's peer connection is connected.
func startBrowserCall(t *testing.T, p *calltest.Platform) *browserCall {
	t.Helper()
	b := &browserCall{changed: make(chan struct{}, 64), voice: calltest.Pattern(700, 30, 4)}
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/report":
			b.mu.Lock()
			b.reports = append(b.reports, r.URL.Query().Get("k")+"="+r.URL.Query().Get("v"))
			b.mu.Unlock()
			select {
			case b.changed <- struct{}{}:
			default:
			}
		case "/keys":
			b.mu.Lock()
			fmt.Fprint(w, b.keys)
			b.mu.Unlock()
		case "/":
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, browserPage)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(page.Close)

	url := page.URL + "/?" + "node=" + strings.TrimPrefix(p.URL, "http://") + "&number=" + strings.TrimPrefix(calltest.BotNumber, "+")
	b.page = calltest.StartChromium(t, url, b.voice)
	t.Cleanup(func() {
		if t.Failed() {
			b.mu.Lock()
			t.Logf("page reports: %v", b.reports)
			b.mu.Unlock()
		}
	})

	b.in = waitIncoming(t, p)
	ans := map[string]any{"acceptedModalities": []string{"audio"},
		"mediaConfig": map[string]any{"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}}
	if r := p.Bot("POST", calls+"/"+b.in.ID+"/answer", ans); r.StatusCode != 202 {
		t.Fatalf("answer: %s %s", r.Status, r.Body)
	}
	p.Hook.WaitState(t, b.in.ID, graph.StateEstablished)
	b.wait(t, 20*time.Second, "pc=connected", func(r string) bool { return r == "pc=connected" })
	return b
}

// wait waits for a report of the page that ok accepts.
func (b *browserCall) wait(t *testing.T, d time.Duration, what string, ok func(string) bool) {
	t.Helper()
	deadline := time.After(d)
	for {
		b.mu.Lock()
		found := false
		for _, r := range b.reports {
			found = found || ok(r)
		}
		b.mu.Unlock()
		if found {
			return
		}
		select {
		case <-b.changed:
		case <-deadline:
			b.mu.Lock()
			defer b.mu.Unlock()
			t.Fatalf("the page never reported %s; it reported %v", what, b.reports)
		}
	}
}

func (b *browserCall) press(keys string) {
	b.mu.Lock()
	b.keys = keys
	b.mu.Unlock()
}

// browserTrunk makes the page's INVITEs, which come from 127.0.0.1, a
// trunk's caller's: no digest.
func browserTrunk(c *config.Config) {
	c.SIP.Trunks = []config.Trunk{{Name: "browsers", Address: "127.0.0.1:9", AllowFrom: []string{"127.0.0.1"}}}
}

// A real Chromium (headless, fake microphone from a WAV) calls the bot with
// its own WebRTC stack over SIP over WebSocket: the bot answers, receives
// the keys Chromium sends with RTCDTMFSender, plays a tone the page hears
// (its analyser's loudest frequency), records what Chromium's microphone
// says (700 Hz bursts), and hangs up; the page gets the BYE. (Debian's chromium,
// installed by make deps; TESTING-PEERS' flags.)
func TestChromiumCallsBot(t *testing.T) {
	p := calltest.Start(t, calltest.Options{Edit: browserTrunk})
	b := startBrowserCall(t, p)
	in := b.in
	c := calls + "/" + in.ID
	if r := p.Bot("POST", c+"/subscribeToTone", map[string]string{}); r.StatusCode != 200 {
		t.Fatalf("subscribeToTone: %s", r.Status)
	}
	b.press("42")
	var seq []string
	p.Hook.Wait(t, in.ID, 20*time.Second, "Chromium's keys 4 and 2", func(ns []calltest.Notification) bool {
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
	if strings.Join(seq, " ") != "tone4 tone2" {
		t.Fatalf("tones %v, want tone4 tone2", seq)
	}

	// The bot plays a 1200 Hz tone: the page's analyser hears it.
	base := wavServer(t, map[string][]byte{"/tone.wav": calltest.WAV(tone(1200, 3*time.Second), 8000)})
	op := opDone(t, p, in.ID, p.Bot("POST", c+"/playPrompt", prompts(base+"/tone.wav")))
	if op.Status != graph.OperationCompleted {
		t.Fatalf("playPrompt: %+v %+v", op, op.ResultInfo)
	}
	b.wait(t, 5*time.Second, "the bot's 1200 Hz tone", func(r string) bool {
		v, ok := strings.CutPrefix(r, "peak=")
		f, _ := strconv.Atoi(v)
		return ok && f > 1150 && f < 1250
	})

	// The bot records what Chromium's microphone (the WAV) says.
	op = opDone(t, p, in.ID, p.Bot("POST", c+"/recordResponse", map[string]any{
		"maxRecordDurationInSeconds": 4, "initialSilenceTimeoutInSeconds": 5, "maxSilenceTimeoutInSeconds": 5, "playBeep": false}))
	if op.Status != graph.OperationCompleted {
		t.Fatalf("recordResponse: %+v %+v", op, op.ResultInfo)
	}
	// Its 700 Hz bursts are most of the recording's energy. (The bursts'
	// envelope matches too, 0.86-0.98 on an idle machine, but Chromium's
	// fake capture glitches on a loaded one: the level is what is checked.)
	rec := download(t, p, op)
	level, sim := framesToneLevel(rec, 700), bottest.Similarity(b.voice, rec)
	t.Logf("Chromium's microphone in the bot's recording: 700 Hz level %.2f, envelope similarity %.2f", level, sim)
	if level < 0.6 {
		t.Fatalf("the recording is not Chromium's microphone: 700 Hz is %.2f of its sound's energy", level)
	}

	if r := p.Bot("DELETE", c, nil); r.StatusCode != 204 {
		t.Fatalf("hang up: %s", r.Status)
	}
	b.wait(t, 10*time.Second, "the BYE", func(r string) bool { return r == "bye=received" })
}

// A browser that stops dead in a call (its processes frozen: no BYE, no
// DTLS close, no more ICE consent answers) has its call ended by ICE's
// timeout, as a media failure (410/301005), in about 15 s.
func TestChromiumFrozenEndsCall(t *testing.T) {
	p := calltest.Start(t, calltest.Options{Edit: browserTrunk})
	b := startBrowserCall(t, p)
	b.page.Freeze()
	start := time.Now()
	var end graph.Call
	p.Hook.Wait(t, b.in.ID, 40*time.Second, "the call's end", func(ns []calltest.Notification) bool {
		for _, n := range ns {
			if n.ResourceURL == "/communications/calls/"+b.in.ID {
				if c := n.Call(t); c.State == graph.StateTerminated {
					end = c
					return true
				}
			}
		}
		return false
	})
	took := time.Since(start)
	t.Logf("a frozen browser's call ended after %v: %d/%d", took.Round(100*time.Millisecond), end.ResultInfo.Code, end.ResultInfo.Subcode)
	if end.ResultInfo.Code != 410 || end.ResultInfo.Subcode != 301005 {
		t.Fatalf("a frozen browser's call ended with %+v, want 410/301005", end.ResultInfo)
	}
	if inactivity := p.Config.Media.InactivityTimeout.D(); took >= inactivity {
		t.Fatalf("ended after %v: by the media inactivity timeout (%v), not ICE's", took, inactivity)
	}
	// The operators' console says why, as a media event of the call.
	for _, c := range p.Node.Console.Snapshot() {
		if c.ID != b.in.ID {
			continue
		}
		for _, e := range c.Timeline {
			if e.Kind == "media" && strings.Contains(e.Text, "media failure: the browser's WebRTC connection failed") {
				return
			}
		}
		t.Fatalf("no media failure on the console's timeline: %+v", c.Timeline)
	}
	t.Fatalf("the console does not know call %s", b.in.ID)
}

// framesToneLevel is the mean share of freq in the energy of pcm's
// 20 ms frames that are not silent (0..1): unlike one Goertzel over the
// whole signal, it does not mind the phase jumps of a capture that
// glitches.
func framesToneLevel(pcm []int16, freq float64) float64 {
	var sum float64
	n := 0
	for i := 0; i+160 <= len(pcm); i += 160 {
		f := pcm[i : i+160]
		var e float64
		for _, v := range f {
			e += float64(v) * float64(v)
		}
		if e/160 < 300*300 { // below -40 dBFS: silence between bursts
			continue
		}
		sum += toneLevel(f, freq)
		n++
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}
