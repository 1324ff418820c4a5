package calltest_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
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
// with nothing but the browser's own WebRTC: an INVITE carrying Chromium's
// offer, the ACK, DTMF through RTCDTMFSender (RFC 4733), and a 200 to the
// node's BYE. It reports what it does, and the loudest frequency it hears,
// to /report on the page's server. (The node takes it as a trunk's caller:
// the digest of REGISTER and INVITE is the Go phone's tests' business.)
const browserPage = `<!doctype html><meta charset="utf-8"><title>switchboard webrtc smoke</title>
<audio id="far" autoplay></audio>
<script>
const q = new URLSearchParams(location.search);
const report = (k, v) => fetch('/report?' + new URLSearchParams({k, v}));
const rnd = () => Math.random().toString(36).slice(2, 12);
(async () => {
  try {
    const pc = new RTCPeerConnection();
    const mic = await navigator.mediaDevices.getUserMedia({audio: {echoCancellation: false, noiseSuppression: false, autoGainControl: false}});
    mic.getTracks().forEach(t => pc.addTrack(t, mic));
    pc.ontrack = ev => {
      const el = document.getElementById('far');
      el.srcObject = ev.streams[0] || new MediaStream([ev.track]);
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
    };
    pc.onconnectionstatechange = () => report('pc', pc.connectionState);
    await pc.setLocalDescription(await pc.createOffer());
    await new Promise(r => {
      if (pc.iceGatheringState === 'complete') return r();
      pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r();
      setTimeout(r, 3000);
    });
    const sdp = pc.localDescription.sdp;
    const host = q.get('node'), num = q.get('number');
    const ws = new WebSocket('ws://' + host + '/sip/ws', 'sip');
    const callId = rnd(), tag = rnd(), me = rnd() + '.invalid';
    const ruri = 'sip:' + num + '@' + host + ';transport=ws';
    const head = (method, cseq, to, uri) => [
      method + ' ' + uri + ' SIP/2.0',
      'Via: SIP/2.0/WS ' + me + ';branch=z9hG4bK' + rnd(),
      'Max-Forwards: 70',
      'To: ' + to,
      'From: "Chromium" <sip:browser@' + me + '>;tag=' + tag,
      'Call-ID: ' + callId,
      'CSeq: ' + cseq + ' ' + method,
      'Contact: <sip:browser@' + me + ';transport=ws>',
      'User-Agent: chromium-smoke'];
    ws.onopen = () => {
      report('ws', 'open');
      ws.send(head('INVITE', 1, '<sip:' + num + '@' + host + '>', ruri).concat([
        'Content-Type: application/sdp', 'Content-Length: ' + new TextEncoder().encode(sdp).length, '', sdp]).join('\r\n'));
    };
    ws.onclose = () => report('ws', 'closed');
    ws.onmessage = async ev => {
      const msg = ev.data, [top] = msg.split('\r\n', 1);
      const hdr = name => (msg.split('\r\n\r\n')[0].split('\r\n').find(l => l.toLowerCase().startsWith(name.toLowerCase() + ':')) || '').replace(/^[^:]*:\s*/, '');
      if (top.startsWith('SIP/2.0 ')) {
        const code = +top.split(' ')[1];
        report('status', code);
        if (code === 200 && hdr('CSeq').endsWith('INVITE')) {
          const contact = hdr('Contact').replace(/^.*<|>.*$/g, '');
          ws.send(head('ACK', 1, hdr('To'), contact).concat(['Content-Length: 0', '', '']).join('\r\n'));
          const answer = msg.slice(msg.indexOf('\r\n\r\n') + 4);
          report('answer', answer.split('\r\n').filter(l => l.startsWith('m=') || l.startsWith('a=rtpmap')).join(' | '));
          await pc.setRemoteDescription({type: 'answer', sdp: answer});
          // Keys when the test says (after the bot subscribed to tones).
          const poll = setInterval(async () => {
            const keys = await (await fetch('/keys')).text();
            if (!keys) return;
            clearInterval(poll);
            try { pc.getSenders()[0].dtmf.insertDTMF(keys, 120, 80); report('dtmf', keys); } catch (e) { report('error', 'dtmf: ' + e); }
          }, 200);
        }
        return;
      }
      // A request from the node: answer it (a BYE ends the call).
      const lines = msg.split('\r\n\r\n')[0].split('\r\n');
      const keep = lines.filter(l => /^(via|from|to|call-id|cseq):/i.test(l));
      ws.send(['SIP/2.0 200 OK'].concat(keep, ['Content-Length: 0', '', '']).join('\r\n'));
      if (top.startsWith('BYE')) { report('bye', 'received'); pc.close(); }
    };
  } catch (e) {
    report('error', String(e));
  }
})();
</script>`

// A real Chromium (headless, fake microphone from a WAV) calls the bot with
// its own WebRTC stack over SIP over WebSocket: the bot answers, plays a
// tone the page hears (its analyser's loudest frequency), receives the
// keys Chromium sends with RTCDTMFSender, records what Chromium's
// microphone says, and hangs up; the page gets the BYE. (Debian's
// chromium, installed by make deps; TESTING-PEERS' flags.)
func TestChromiumCallsBot(t *testing.T) {
	chromium := calltest.NeedPeer(t, "chromium", "chromium")
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		// The page's INVITE comes from 127.0.0.1: a trunk's caller, no digest.
		c.SIP.Trunks = []config.Trunk{{Name: "browsers", Address: "127.0.0.1:9", AllowFrom: []string{"127.0.0.1"}}}
	}})
	var (
		mu      sync.Mutex
		reports []string
		keys    string
		changed = make(chan struct{}, 64)
	)
	page := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/report":
			mu.Lock()
			reports = append(reports, r.URL.Query().Get("k")+"="+r.URL.Query().Get("v"))
			mu.Unlock()
			select {
			case changed <- struct{}{}:
			default:
			}
		case "/keys":
			mu.Lock()
			fmt.Fprint(w, keys)
			mu.Unlock()
		case "/":
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, browserPage)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(page.Close)
	seen := func(want string) bool {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range reports {
			if r == want || (strings.HasSuffix(want, "*") && strings.HasPrefix(r, strings.TrimSuffix(want, "*"))) {
				return true
			}
		}
		return false
	}
	wait := func(want string, d time.Duration) {
		t.Helper()
		deadline := time.After(d)
		for !seen(want) {
			select {
			case <-changed:
			case <-deadline:
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("the page never reported %s; it reported %v", want, reports)
			}
		}
	}

	dir := t.TempDir()
	voice := calltest.Pattern(700, 30, 4)
	mic := filepath.Join(dir, "mic.wav")
	if err := calltest.WriteWAV(mic, voice, 8000); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	url := page.URL + "/?" + "node=" + strings.TrimPrefix(p.URL, "http://") + "&number=" + strings.TrimPrefix(calltest.BotNumber, "+")
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir="+filepath.Join(dir, "profile"),
		"--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", "--use-file-for-fake-audio-capture="+mic,
		"--autoplay-policy=no-user-gesture-required", "--allow-loopback-in-peer-connection",
		"--remote-debugging-port=0", url)
	log := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cancel()
		_ = cmd.Wait()
		if t.Failed() {
			mu.Lock()
			t.Logf("page reports: %v", reports)
			mu.Unlock()
			t.Logf("chromium:\n%s", tail(log.String(), 3000))
		}
	})

	in := waitIncoming(t, p)
	c := calls + "/" + in.ID
	ans := map[string]any{"acceptedModalities": []string{"audio"},
		"mediaConfig": map[string]any{"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}}
	if r := p.Bot("POST", c+"/answer", ans); r.StatusCode != 202 {
		t.Fatalf("answer: %s %s", r.Status, r.Body)
	}
	p.Hook.WaitState(t, in.ID, graph.StateEstablished)
	wait("pc=connected", 20*time.Second)
	if r := p.Bot("POST", c+"/subscribeToTone", map[string]string{}); r.StatusCode != 200 {
		t.Fatalf("subscribeToTone: %s", r.Status)
	}
	mu.Lock()
	keys = "42"
	mu.Unlock()
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
	heardTone := func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, r := range reports {
			if v, ok := strings.CutPrefix(r, "peak="); ok {
				if f, _ := strconv.Atoi(v); f > 1150 && f < 1250 {
					return true
				}
			}
		}
		return false
	}
	for deadline := time.Now().Add(5 * time.Second); !heardTone(); {
		if time.Now().After(deadline) {
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("the page did not hear the bot's 1200 Hz tone; reports %v", reports)
		}
		select {
		case <-changed:
		case <-time.After(250 * time.Millisecond):
		}
	}

	// The bot records what Chromium's microphone (the WAV) says.
	op = opDone(t, p, in.ID, p.Bot("POST", c+"/recordResponse", map[string]any{
		"maxRecordDurationInSeconds": 4, "initialSilenceTimeoutInSeconds": 5, "maxSilenceTimeoutInSeconds": 5, "playBeep": false}))
	if op.Status != graph.OperationCompleted {
		t.Fatalf("recordResponse: %+v %+v", op, op.ResultInfo)
	}
	rec := download(t, p, op)
	if sim := bottest.Similarity(voice, rec); sim < 0.7 {
		t.Fatalf("the recording does not sound like Chromium's microphone: similarity %.2f", sim)
	} else {
		t.Logf("Chromium's microphone in the bot's recording: similarity %.2f", sim)
	}

	if r := p.Bot("DELETE", c, nil); r.StatusCode != 204 {
		t.Fatalf("hang up: %s", r.Status)
	}
	wait("bye=received", 10*time.Second)
	if os.Getenv("SWITCHBOARD_TEST_LOG") != "" {
		mu.Lock()
		t.Logf("page reports: %v", reports)
		mu.Unlock()
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
