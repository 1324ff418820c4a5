package main

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/bottest"
	"github.com/switchboard-voice/switchboard/examples/internal/lines"
	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
)

// voiceTone is the caller's voice: a tone switched on and off in an
// irregular rhythm (calltest.Pattern), whose envelope matches itself at one
// lag only: the echo's delay.
const voiceTone = 700

// echoCall starts a node whose test bot hosts its media (mediaMode app),
// the echo bot on it with o, and a baresip (Eve) that calls the bot's
// number saying voice for the length of voice, then hangs up. It returns
// what Eve heard and what the bot printed.
func echoCall(t *testing.T, o Options, voice []int16) (heard []int16, out *lines.Log) {
	t.Helper()
	calltest.NeedPeer(t, "baresip", "baresip")
	hook := httptest.NewUnstartedServer(nil)
	t.Cleanup(hook.Close)
	hookURL := "http://" + hook.Listener.Addr().String()
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		c.Applications[0].CallbackURI = hookURL + "/callback"
		c.Applications[0].MediaMode = "app"
	}})
	out = lines.New()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the bot printed:\n%s", out)
		}
	})
	o.BaseURL, o.TenantID, o.AppID, o.Secret = p.URL+"/v1.0", calltest.TenantID, calltest.BotID, calltest.Secret
	o.CallbackURL, o.Out, o.Logger = hookURL+"/callback", out, bottest.Logger(t, false)
	bot, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	hook.Config.Handler = bot.Handler()
	hook.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = bot.Handler().Shutdown(ctx)
		if err := bot.Wait(ctx); err != nil {
			t.Errorf("the bot's calls did not end: %v", err)
		}
	})

	src := filepath.Join(t.TempDir(), "voice.wav")
	if err := calltest.WriteWAV(src, voice, 8000); err != nil {
		t.Fatal(err)
	}
	eve := calltest.StartBaresip(t, calltest.BaresipOptions{User: "eve", Password: calltest.EvePassword,
		Registrar: p.Node.SIP.Addr().String(), Source: src})
	eve.Command(t, "dial", "sip:"+calltest.BotNumber+"@"+p.Node.SIP.Addr().String())
	out.WaitEvent(t, "incoming")
	out.WaitEvent(t, "answered")
	eve.WaitOutput(t, "Call established", 20*time.Second)
	// Eve's voice file ends and she hangs up; the bot hears of it.
	eve.WaitOutput(t, "terminated", time.Duration(len(voice)/8)*time.Millisecond+20*time.Second)
	out.WaitEvent(t, "ended")
	return eve.Heard(t), out
}

// checkEcho checks that heard is voice come back, and returns how late.
// It follows the voice's rhythm (its envelope) in windows of two seconds,
// each at its own lag: under load the media path may slip a frame or a few
// (a tick skipped, a jitter buffer catching up), which moves everything
// after it and would break one correlation over the whole call.
func checkEcho(t *testing.T, voice, heard []int16) time.Duration {
	t.Helper()
	if d := toneFor(heard, voiceTone); d < 2*time.Second {
		t.Fatalf("Eve heard her %d Hz voice for %s only, want 2s or more", voiceTone, d)
	}
	sent, got := calltest.Envelope(voice), calltest.Envelope(heard)
	const window, maxLag = 100, 50 // frames: 2 s, and at most a second late
	var lags []int
	var report []string
	for from := 0; from+window <= len(sent) && from+window+maxLag <= len(got); from += window {
		best, at := -1.0, 0
		for lag := 0; lag <= maxLag; lag++ {
			a, b := sent[from:from+window], got[from+lag:from+lag+window]
			if c, _ := calltest.BestCorrelation(a, b, 0, window); c > best {
				best, at = c, lag
			}
		}
		report = append(report, fmt.Sprintf("%.2f@%d", best, at))
		if best >= 0.8 {
			lags = append(lags, at)
		}
	}
	t.Logf("the voice's windows in what Eve heard (correlation@lag in frames): %v", report)
	if len(lags) < max(len(report)-1, 1) {
		t.Fatalf("what Eve heard does not follow her voice: %v", report)
	}
	// The round trip: the first window's lag, to the sample by the
	// waveforms within a frame of it (a later window may be late by a slip).
	lag := lags[0]
	return time.Duration(sampleLag(voice, heard, lag*160-160, lag*160+160)) * time.Second / 8000
}

// The echo: a SIP phone calls the echo bot and hears itself, late
// by the round trip through the platform, the media socket and the bot.
func TestEchoWithBaresip(t *testing.T) {
	voice := calltest.Pattern(voiceTone, 8, 3)
	heard, out := echoCall(t, Options{}, voice)
	delay := checkEcho(t, voice, heard)
	t.Logf("Eve heard herself %s late (mouth to ear: her phone's sending, the node, the media socket, the bot, back; the recordings' starts aligned to within a frame)", delay)
	if got := out.Details("echoing"); len(got) != 1 {
		t.Errorf("the bot's socket said hello %d times, want once: %v", len(got), got)
	}
	t.Logf("the bot printed:\n%s", out)
}

// The twenty lines of Python in docs/media-socket.md, taken from the
// document itself so that it cannot drift, host the echo bot's media with
// the system's python3 and its websockets package: the caller hears
// itself.
func TestPythonEchoFromTheDocs(t *testing.T) {
	py := systemPython(t)
	doc, err := os.ReadFile("../../docs/media-socket.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)```python\n(.*?)```").FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/media-socket.md has no python block")
	}
	script := filepath.Join(t.TempDir(), "echo.py")
	if err := os.WriteFile(script, m[1], 0o644); err != nil {
		t.Fatal(err)
	}
	var pyOut bytes.Buffer
	t.Cleanup(func() {
		if t.Failed() || testing.Verbose() {
			t.Logf("python printed:\n%s", pyOut.String())
		}
	})
	voice := calltest.Pattern(voiceTone, 8, 4)
	heard, out := echoCall(t, Options{MediaCommand: []string{py, script}, CommandOutput: &lockedBuffer{b: &pyOut}}, voice)
	delay := checkEcho(t, voice, heard)
	t.Logf("through Python, Eve heard herself %s late", delay)
	// The script ends on bye.
	if got := out.WaitEvent(t, "command-exited"); got != "<nil>" {
		t.Errorf("the Python echo exited with %s", got)
	}
}

// systemPython is Debian's python3 with its websockets package
// (python3-websockets, which make test installs), skipping the test
// without them outside CI.
func systemPython(t *testing.T) string {
	t.Helper()
	py := "/usr/bin/python3" // the system's, not a virtualenv's or pyenv's first on PATH
	if _, err := os.Stat(py); err != nil {
		py = calltest.NeedPeer(t, "python3", "python3")
	}
	if err := exec.Command(py, "-c", "import websockets").Run(); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%s cannot import websockets (Debian package python3-websockets): make test installs it", py)
		}
		t.Skipf("%s cannot import websockets (Debian package python3-websockets); run make deps", py)
	}
	return py
}

// lockedBuffer is a bytes.Buffer for a command's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  *bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// toneFor is how long pcm (8 kHz) is a tone at freq: its 20 ms frames that
// are not quiet and have most of their energy there (Goertzel, normalised
// by the frame's energy).
func toneFor(pcm []int16, freq float64) time.Duration {
	const n = 160
	k := 2 * math.Cos(2*math.Pi*freq/8000)
	frames := 0
	for i := 0; i+n <= len(pcm); i += n {
		var s1, s2, energy float64
		for _, v := range pcm[i : i+n] {
			x := float64(v)
			s1, s2 = x+k*s1-s2, s1
			energy += x * x
		}
		if energy/n < 500*500 {
			continue
		}
		if 2*(s1*s1+s2*s2-k*s1*s2)/(n*energy) > 0.5 {
			frames++
		}
	}
	return time.Duration(frames) * 20 * time.Millisecond
}

// sampleLag is the lag in [lo, hi] samples at which b best follows a, by
// normalised cross-correlation of the waveforms.
func sampleLag(a, b []int16, lo, hi int) int {
	best, at := math.Inf(-1), lo
	for lag := max(lo, 0); lag <= hi; lag++ {
		n := min(len(a), len(b)-lag)
		if n <= 0 {
			break
		}
		var xy, yy float64
		for i := 0; i < n; i++ {
			x, y := float64(a[i]), float64(b[i+lag])
			xy += x * y
			yy += y * y
		}
		if yy == 0 {
			continue
		}
		if c := xy / math.Sqrt(yy); c > best {
			best, at = c, lag
		}
	}
	return at
}
