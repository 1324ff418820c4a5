package calltest

import (
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

	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Chromium is a headless Chromium (Debian's chromium) driven with chromedp:
// one page, in which the tests evaluate JavaScript to fill in forms, click
// buttons and read what the page shows. Its fake microphone plays a WAV.
//
// Chromium runs in a process group of its own (Freeze stops all of it),
// with a temporary profile chromedp makes and removes; the test's cleanup
// kills the group and waits for chromedp to reap the browser and any child
// left behind. Its methods may be called from several goroutines; each
// DevTools command is bounded (a minute), and the browser's whole life too.
type Chromium struct {
	t    testing.TB
	ctx  context.Context // the page's chromedp context
	proc *os.Process
	log  *syncLog
}

// chromiumLife bounds a browser's whole life, whatever a test does.
const chromiumLife = 5 * time.Minute

// StartChromium starts Chromium with a fake microphone saying mic (8 kHz)
// and opens url in its page (waiting for it to load).
func StartChromium(t testing.TB, url string, mic []int16) *Chromium {
	t.Helper()
	bin := NeedPeer(t, "chromium", "chromium")
	wav := filepath.Join(t.TempDir(), "mic.wav")
	if err := WriteWAV(wav, mic, 8000); err != nil {
		t.Fatal(err)
	}
	log := &syncLog{}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.DisableGPU,
		chromedp.WindowSize(560, 940),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("use-fake-device-for-media-stream", true),
		chromedp.Flag("use-fake-ui-for-media-stream", true),
		chromedp.Flag("use-file-for-fake-audio-capture", wav),
		chromedp.Flag("autoplay-policy", "no-user-gesture-required"),
		chromedp.Flag("allow-loopback-in-peer-connection", true),
		chromedp.CombinedOutput(log),
		// (chromedp adds --no-sandbox when run as root, and a temporary
		// profile it removes.) Its own process group, so that Freeze and
		// the cleanup reach every child; killed if the test binary dies.
		chromedp.ModifyCmdFunc(func(cmd *exec.Cmd) {
			cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
		}),
	)
	life, cancelLife := context.WithTimeout(context.Background(), chromiumLife)
	alloc, cancelAlloc := chromedp.NewExecAllocator(life, opts...)
	ctx, cancelPage := chromedp.NewContext(alloc,
		chromedp.WithErrorf(func(f string, a ...any) { log.Printf("chromedp: "+f, a...) }))
	d := &Chromium{t: t, ctx: ctx, log: log}
	t.Cleanup(func() {
		if d.proc != nil {
			_ = syscall.Kill(-d.proc.Pid, syscall.SIGKILL)
		}
		cancelPage()
		cancelAlloc() // waits for the process to be reaped and its profile removed
		cancelLife()
		if t.Failed() {
			t.Logf("chromium:\n%s", logTail(log.String(), 3000))
		}
	})
	// The first action starts the browser, on the page's own context (a
	// deadline on it would end the browser too): bounded here instead.
	started := make(chan error, 1)
	go func() { started <- chromedp.Do(ctx) }()
	select {
	case err := <-started:
		if err != nil {
			t.Fatalf("start chromium: %v\n%s", err, logTail(log.String(), 3000))
		}
	case <-time.After(time.Minute):
		t.Fatalf("chromium did not start in a minute\n%s", logTail(log.String(), 3000))
	}
	d.proc = chromedp.FromContext(ctx).Browser.Process()
	d.Navigate(url)
	return d
}

// syncLog collects Chromium's output for a failed test's log.
type syncLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *syncLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *syncLog) Printf(f string, a ...any) {
	fmt.Fprintf(l, f+"\n", a...)
}

func (l *syncLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// do runs actions on the page within a bounded time.
func (d *Chromium) do(within time.Duration, actions ...chromedp.Action[chromedp.Void]) error {
	_, err := run(d, within, chromedp.Steps(actions...))
	return err
}

// run runs an action with a value on the page within a bounded time.
func run[T any](d *Chromium, within time.Duration, a chromedp.Action[T]) (T, error) {
	ctx, cancel := context.WithTimeout(d.ctx, within)
	defer cancel()
	return chromedp.Run(ctx, a)
}

// Navigate opens url in the page and waits for it to load.
func (d *Chromium) Navigate(url string) {
	d.t.Helper()
	if err := d.do(time.Minute, chromedp.Navigate(url)); err != nil {
		d.t.Fatalf("open %s: %v", url, err)
	}
}

// Call sends one DevTools command (method, with params marshalled as JSON)
// to the page and decodes its result into out (when not nil), for what
// chromedp has no action for.
func (d *Chromium) Call(method string, params any, out any) {
	d.t.Helper()
	if params == nil {
		params = map[string]any{}
	}
	err := d.do(time.Minute, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		return t.Call(ctx, method, params, out)
	}))
	if err != nil {
		d.t.Fatalf("%s: %v", method, err)
	}
}

// userGesture makes an evaluation count as the user's (to play audio).
func userGesture(p *runtime.EvaluateParams) {
	yes := true
	p.UserGesture = &yes
}

// Eval runs JavaScript in the page (awaiting a promise) and returns its
// value as JSON ("" for undefined).
func (d *Chromium) Eval(js string) string {
	d.t.Helper()
	v, err := run(d, time.Minute, chromedp.Evaluate[[]byte](js, chromedp.EvalAwaitPromise, userGesture))
	if err != nil {
		d.t.Fatalf("javascript %q: %v", js, err)
	}
	return string(v)
}

// Until waits for cond, a JavaScript expression, to be true in the page
// (checked every 50 ms there), for at most within; it fails the test with
// what the page's status says otherwise. A page loading meanwhile is
// waited on: cond is checked again in the new page.
func (d *Chromium) Until(within time.Duration, what, cond string) {
	d.t.Helper()
	js := fmt.Sprintf(`(() => { try { return !!(%s); } catch (e) { return false; } })()`, cond)
	deadline := time.Now().Add(within)
	for {
		left := max(time.Until(deadline), 10*time.Millisecond)
		err := d.do(left+10*time.Second, chromedp.Poll[chromedp.Void](js,
			chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(left)))
		if err == nil {
			return
		}
		if errors.Is(err, chromedp.ErrPollingTimeout) || time.Now().After(deadline) {
			status := d.Eval(`(() => { const s = document.getElementById('status'); return s ? s.textContent : ''; })()`)
			d.t.Fatalf("the page never showed %s (status: %s; %v)", what, status, err)
		}
		// A page loading replaces the context the poll ran in: poll again
		// in the new one.
		if !strings.Contains(err.Error(), "context was destroyed") && !strings.Contains(err.Error(), "Cannot find context") {
			d.t.Fatalf("waiting for %s: %v", what, err)
		}
	}
}

// Process is the browser's main process (the leader of its process group).
func (d *Chromium) Process() *os.Process {
	return d.proc
}

// Freeze stops the browser and all its processes dead (SIGSTOP to its
// process group): no more packets, no BYE, no DTLS close. The cleanup
// still kills it.
func (d *Chromium) Freeze() {
	d.t.Helper()
	if err := syscall.Kill(-d.proc.Pid, syscall.SIGSTOP); err != nil {
		d.t.Fatal(err)
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
	png, err := run(d, time.Minute, chromedp.CaptureScreenshot())
	if err != nil {
		d.t.Fatalf("screenshot: %v", err)
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
