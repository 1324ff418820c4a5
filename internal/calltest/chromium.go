package calltest

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/binary"
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
)

// Chromium is a headless Chromium driven over the DevTools protocol on a
// pipe (--remote-debugging-pipe: Chromium reads commands on fd 3 and
// writes replies on fd 4, each a JSON message ended by a NUL): enough to
// evaluate JavaScript in a page, which is all the tests need to fill in
// forms, click buttons and read what the page shows.
type Chromium struct {
	t       testing.TB
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

// StartChromium starts Chromium on url with a fake microphone saying mic
// and attaches to its page.
func StartChromium(t testing.TB, url string, mic []int16) *Chromium {
	t.Helper()
	chromium := NeedPeer(t, "chromium", "chromium")
	dir := t.TempDir()
	wav := filepath.Join(dir, "mic.wav")
	if err := WriteWAV(wav, mic, 8000); err != nil {
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
	d := &Chromium{t: t, w: cmdW, waiting: map[int]chan devtoolsReply{}}
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		cancel()
		_ = cmd.Wait()
		cmdW.Close()
		outR.Close()
		if t.Failed() {
			logMu.Lock()
			t.Logf("chromium:\n%s", logTail(log.String(), 3000))
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
	d.Call("Target.getTargets", nil, &targets)
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
	d.Call("Target.attachToTarget", map[string]any{"targetId": target, "flatten": true}, &att)
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

// Call sends one DevTools command (to the page once attached) and decodes
// its result into out.
func (d *Chromium) Call(method string, params any, out any) {
	d.t.Helper()
	if err := d.try(method, params, out, 60*time.Second); err != nil {
		d.t.Fatalf("%s: %v", method, err)
	}
}

func (d *Chromium) try(method string, params any, out any, timeout time.Duration) error {
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

// Eval runs JavaScript in the page (awaiting a promise) and returns its
// value as JSON.
func (d *Chromium) Eval(js string) string {
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
	d.Call("Runtime.evaluate", map[string]any{"expression": js, "awaitPromise": true, "returnByValue": true, "userGesture": true}, &r)
	if e := r.ExceptionDetails; e != nil {
		d.t.Fatalf("javascript %q: %s %s", js, e.Text, e.Exception.Description)
	}
	return string(r.Result.Value)
}

// Until waits for cond, a JavaScript expression, to be true in the page
// (checked every 50 ms there), for at most d; it fails the test with what
// the page's status says otherwise.
func (d *Chromium) Until(within time.Duration, what, cond string) {
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

// Capture starts recording, at 8 kHz, what the page's media element (its
// id) plays, from the moment it has a stream; Captured returns it.
func (d *Chromium) Capture(elementID string) {
	d.t.Helper()
	d.Eval(fmt.Sprintf(`(() => {
  window.captured = [];
  const el = document.getElementById(%q);
  const attach = () => {
    if (!el.srcObject || !el.srcObject.getAudioTracks().length) return setTimeout(attach, 20);
    const ac = new AudioContext({sampleRate: 8000});
    const src = ac.createMediaStreamSource(el.srcObject), proc = ac.createScriptProcessor(1024, 1, 1), mute = ac.createGain();
    mute.gain.value = 0;
    proc.onaudioprocess = ev => {
      const x = ev.inputBuffer.getChannelData(0);
      for (let i = 0; i < x.length; i++) window.captured.push(Math.max(-32768, Math.min(32767, Math.round(x[i] * 32768))));
    };
    src.connect(proc); proc.connect(mute); mute.connect(ac.destination);
    window.captureContext = ac;
  };
  attach();
})()`, elementID))
}

// Captured is what Capture recorded so far (8 kHz PCM).
func (d *Chromium) Captured() []int16 {
	d.t.Helper()
	var b64 string
	if err := json.Unmarshal([]byte(d.Eval(`(() => {
  const s = window.captured || [], b = new Uint8Array(s.length * 2);
  for (let i = 0; i < s.length; i++) { b[2 * i] = s[i] & 255; b[2 * i + 1] = (s[i] >> 8) & 255; }
  let bin = '';
  for (let i = 0; i < b.length; i += 8192) bin += String.fromCharCode.apply(null, b.subarray(i, i + 8192));
  return btoa(bin);
})()`)), &b64); err != nil {
		d.t.Fatal(err)
	}
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		d.t.Fatal(err)
	}
	pcm := make([]int16, len(raw)/2)
	for i := range pcm {
		pcm[i] = int16(binary.LittleEndian.Uint16(raw[2*i:]))
	}
	return pcm
}

// Screenshot saves the page as a PNG.
func (d *Chromium) Screenshot(file string) {
	d.t.Helper()
	var shot struct {
		Data string `json:"data"`
	}
	d.Call("Page.captureScreenshot", map[string]any{"format": "png"}, &shot)
	png, err := base64.StdEncoding.DecodeString(shot.Data)
	if err != nil {
		d.t.Fatal(err)
	}
	if err := os.WriteFile(file, png, 0o644); err != nil {
		d.t.Fatal(err)
	}
}

func logTail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
