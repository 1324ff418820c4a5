package calltest_test

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// devtools drives a headless Chromium over the DevTools protocol on a
// pipe (--remote-debugging-pipe: Chromium reads commands on fd 3 and
// writes replies on fd 4, each a JSON message ended by a NUL): enough to
// evaluate JavaScript in a page, which is all the tests need to fill in
// forms, click buttons and read what the page shows.
type devtools struct {
	t       *testing.T
	w       *os.File
	mu      sync.Mutex
	next    int
	waiting map[int]chan devtoolsReply
	session string
}

type devtoolsReply struct {
	Result json.RawMessage `json:"result"`
	Error  *struct {
		Message string `json:"message"`
	} `json:"error"`
}

// startChromium starts Chromium on url with a fake microphone saying mic
// and attaches to its page.
func startChromium(t *testing.T, url string, mic []int16) *devtools {
	t.Helper()
	chromium := calltest.NeedPeer(t, "chromium", "chromium")
	dir := t.TempDir()
	wav := filepath.Join(dir, "mic.wav")
	if err := calltest.WriteWAV(wav, mic, 8000); err != nil {
		t.Fatal(err)
	}
	cmdR, cmdW, err := os.Pipe() // our commands: Chromium's fd 3
	if err != nil {
		t.Fatal(err)
	}
	outR, outW, err := os.Pipe() // its replies: Chromium's fd 4
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	cmd := exec.CommandContext(ctx, chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--user-data-dir="+filepath.Join(dir, "profile"),
		"--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream", "--use-file-for-fake-audio-capture="+wav,
		"--autoplay-policy=no-user-gesture-required", "--allow-loopback-in-peer-connection",
		"--window-size=560,940", "--remote-debugging-pipe", url)
	cmd.ExtraFiles = []*os.File{cmdR, outW}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	log := &strings.Builder{}
	var logMu sync.Mutex
	cmd.Stdout, cmd.Stderr = lockedWriter{&logMu, log}, lockedWriter{&logMu, log}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatal(err)
	}
	cmdR.Close()
	outW.Close()
	d := &devtools{t: t, w: cmdW, waiting: map[int]chan devtoolsReply{}}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cancel()
		_ = cmd.Wait()
		cmdW.Close()
		outR.Close()
		if t.Failed() {
			logMu.Lock()
			t.Logf("chromium:\n%s", tail(log.String(), 3000))
			logMu.Unlock()
		}
	})
	go func() {
		r := bufio.NewReader(outR)
		for {
			msg, err := r.ReadBytes(0)
			if err != nil {
				return
			}
			var m struct {
				ID int `json:"id"`
				devtoolsReply
			}
			if json.Unmarshal(msg[:len(msg)-1], &m) != nil || m.ID == 0 {
				continue // an event
			}
			d.mu.Lock()
			ch := d.waiting[m.ID]
			delete(d.waiting, m.ID)
			d.mu.Unlock()
			if ch != nil {
				ch <- m.devtoolsReply
			}
		}
	}()

	// The page Chromium opened with url: attach to it.
	var targets struct {
		TargetInfos []struct {
			TargetID string `json:"targetId"`
			Type     string `json:"type"`
		} `json:"targetInfos"`
	}
	d.call("Target.getTargets", nil, &targets)
	target := ""
	for _, ti := range targets.TargetInfos {
		if ti.Type == "page" {
			target = ti.TargetID
		}
	}
	if target == "" {
		t.Fatalf("Chromium has no page: %+v", targets)
	}
	var att struct {
		SessionID string `json:"sessionId"`
	}
	d.call("Target.attachToTarget", map[string]any{"targetId": target, "flatten": true}, &att)
	d.session = att.SessionID
	return d
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// call sends one DevTools command (to the page once attached) and decodes
// its result into out.
func (d *devtools) call(method string, params any, out any) {
	d.t.Helper()
	if err := d.try(method, params, out, 60*time.Second); err != nil {
		d.t.Fatalf("%s: %v", method, err)
	}
}

func (d *devtools) try(method string, params any, out any, timeout time.Duration) error {
	d.mu.Lock()
	d.next++
	id := d.next
	ch := make(chan devtoolsReply, 1)
	d.waiting[id] = ch
	msg := map[string]any{"id": id, "method": method, "params": params}
	if params == nil {
		msg["params"] = map[string]any{}
	}
	if d.session != "" {
		msg["sessionId"] = d.session
	}
	b, _ := json.Marshal(msg)
	_, err := d.w.Write(append(b, 0))
	d.mu.Unlock()
	if err != nil {
		return err
	}
	select {
	case r := <-ch:
		if r.Error != nil {
			return errors.New(r.Error.Message)
		}
		if out != nil {
			return json.Unmarshal(r.Result, out)
		}
		return nil
	case <-time.After(timeout):
		return fmt.Errorf("no reply in %v", timeout)
	}
}

// eval runs JavaScript in the page (awaiting a promise) and returns its
// value as JSON.
func (d *devtools) eval(js string) string {
	d.t.Helper()
	var r struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text      string `json:"text"`
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	d.call("Runtime.evaluate", map[string]any{"expression": js, "awaitPromise": true, "returnByValue": true, "userGesture": true}, &r)
	if e := r.ExceptionDetails; e != nil {
		d.t.Fatalf("javascript %q: %s %s", js, e.Text, e.Exception.Description)
	}
	return string(r.Result.Value)
}

// until waits for cond, a JavaScript expression, to be true in the page
// (checked every 50 ms there), for at most d; it fails the test with what
// the page's status says otherwise.
func (d *devtools) until(within time.Duration, what, cond string) {
	d.t.Helper()
	js := fmt.Sprintf(`new Promise((resolve, reject) => {
  const t0 = Date.now();
  const check = () => {
    let ok = false;
    try { ok = !!(%s); } catch (e) {}
    if (ok) return resolve(true);
    if (Date.now() - t0 > %d) { const s = document.getElementById('status'); return reject(new Error('status: ' + (s && s.textContent))); }
    setTimeout(check, 50);
  };
  check();
})`, cond, within.Milliseconds())
	var r struct {
		ExceptionDetails *struct {
			Exception struct {
				Description string `json:"description"`
			} `json:"exception"`
		} `json:"exceptionDetails"`
	}
	deadline := time.Now().Add(within + 10*time.Second)
	for {
		err := d.try("Runtime.evaluate", map[string]any{"expression": js, "awaitPromise": true, "returnByValue": true}, &r, time.Until(deadline))
		if err == nil {
			break
		}
		// A page loading replaces the context the expression ran in:
		// run it again in the new one.
		if !strings.Contains(err.Error(), "context was destroyed") || time.Now().After(deadline) {
			d.t.Fatalf("waiting for %s: %v", what, err)
		}
	}
	if r.ExceptionDetails != nil {
		d.t.Fatalf("the page never showed %s (%s)", what, r.ExceptionDetails.Exception.Description)
	}
}

// The /phone page in a real Chromium (headless, its microphone a WAV):
// a wrong password is refused; eve signs in (REGISTER with digest over
// /sip/ws, computed by the page's own MD5), calls the bot's number from
// the dial field, and the bot gets the call from her; the page hears the
// bot's prompt (its analyser's loudest frequency, and the far-end meter
// moves), its keypad's keys reach the bot as tones, hold and resume are
// re-INVITEs the node accepts, mute shows pressed, and its Hang up ends
// the call (200/4521). Then the bot calls eve: the page rings, is answered
// with its Answer button, and the bot's hang-up ends it there.
func TestChromiumPhonePage(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	page := startChromium(t, p.URL+"/phone", calltest.Pattern(700, 30, 4))
	page.until(20*time.Second, "the page", `document.readyState === 'complete' && window.SipUA && document.activeElement.id === 'user'`)

	signIn := func(user, password string) {
		page.eval(fmt.Sprintf(`document.getElementById('user').value = %q; document.getElementById('password').value = %q;
document.getElementById('signin-button').click()`, user, password))
	}
	signIn("eve", "not-her-password")
	page.until(10*time.Second, "the refusal", `document.getElementById('status').textContent.includes('wrong username or password')`)
	signIn("eve", calltest.EvePassword)
	page.until(10*time.Second, "eve signed in", `!document.getElementById('phone').hidden && document.getElementById('status').textContent.startsWith('Signed in as eve@')`)

	// Call the bot: type its number, press Call.
	page.eval(fmt.Sprintf(`document.getElementById('target').value = %q; document.getElementById('call').click()`, calltest.BotNumber))
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
	page.until(20*time.Second, "the call established", `document.getElementById('status').textContent.startsWith('In a call with') && !document.getElementById('hangup').disabled`)

	// Listen to what the page plays: the loudest frequency of the remote
	// audio element's stream, and the far-end meter's highest value.
	page.eval(`(() => {
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
	page.until(5*time.Second, "the bot's 1200 Hz prompt heard", `window.heard.some(f => f > 1150 && f < 1250)`)
	page.until(5*time.Second, "the meters moving", `window.farMax > 0.05 && window.micMax > 0.05`)

	// The keypad: 4, 2 and # pressed on the page reach the bot in order.
	if r := p.Bot("POST", c+"/subscribeToTone", map[string]string{}); r.StatusCode != 200 {
		t.Fatalf("subscribeToTone: %s", r.Status)
	}
	page.eval(`for (const k of ['4', '2', '#']) document.querySelector('#keypad [data-key="' + k + '"]').click()`)
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

	// SWITCHBOARD_PHONE_SCREENSHOT=file: the page in the call, as a PNG
	// (docs/phone.png is one).
	if file := os.Getenv("SWITCHBOARD_PHONE_SCREENSHOT"); file != "" {
		var shot struct {
			Data string `json:"data"`
		}
		page.call("Page.captureScreenshot", map[string]any{"format": "png"}, &shot)
		png, err := base64.StdEncoding.DecodeString(shot.Data)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(file, png, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	// Hold and resume (re-INVITEs), mute.
	page.eval(`document.getElementById('hold').click()`)
	page.until(10*time.Second, "on hold", `document.getElementById('hold').getAttribute('aria-pressed') === 'true' && document.getElementById('status').textContent.startsWith('On hold')`)
	page.eval(`document.getElementById('hold').click()`)
	page.until(10*time.Second, "resumed", `document.getElementById('hold').getAttribute('aria-pressed') === 'false' && document.getElementById('status').textContent.startsWith('In a call')`)
	page.eval(`document.getElementById('mute').click()`)
	page.until(5*time.Second, "muted", `document.getElementById('mute').getAttribute('aria-pressed') === 'true'`)
	page.eval(`document.getElementById('mute').click()`)

	// Hang up from the page.
	page.eval(`document.getElementById('hangup').click()`)
	end := p.Hook.WaitState(t, in.ID, graph.StateTerminated).Call(t)
	if end.ResultInfo.Code != 200 || end.ResultInfo.Subcode != 4521 {
		t.Fatalf("the page's hang-up ended the call with %+v", end.ResultInfo)
	}
	page.until(5*time.Second, "the call ended", `document.getElementById('status').textContent.startsWith('Call ended') && !document.getElementById('call').disabled`)

	// The bot calls eve: the page rings; Answer; the bot hangs up.
	out := p.CreateCall(calltest.EveID)
	page.until(20*time.Second, "the incoming call", `!document.getElementById('incoming').hidden && document.activeElement.id === 'answer'`)
	page.eval(`document.getElementById('answer').click()`)
	p.Hook.WaitState(t, out.ID, graph.StateEstablished)
	page.until(20*time.Second, "the answered call", `document.getElementById('status').textContent.startsWith('In a call with')`)
	if r := p.Bot("DELETE", calls+"/"+out.ID, nil); r.StatusCode != 204 {
		t.Fatalf("hang up: %s", r.Status)
	}
	page.until(10*time.Second, "the bot's hang-up", `document.getElementById('status').textContent.startsWith('Call ended: the other side hung up')`)
}
