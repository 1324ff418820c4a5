package media

import (
	"context"
	"math"
	"math/rand/v2"
	"net/netip"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// wait bounds every wait in these tests; none of them sleeps to
// synchronise.
const wait = 10 * time.Second

var loopback = netip.MustParseAddr("127.0.0.1")

// startEngine runs an engine until the test ends.
func startEngine(t testing.TB, o EngineOptions) *Engine {
	t.Helper()
	if !o.BindIP.IsValid() {
		o.BindIP = loopback
	}
	e, err := NewEngine(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return e
}

// events collects a session's events on a channel.
type events chan Event

func (c events) fn(e Event) {
	select {
	case c <- e:
	default:
		panic("event channel full")
	}
}

// next returns the next event of kind k, skipping others.
func (c events) next(t testing.TB, k EventKind) Event {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case e := <-c:
			if e.Kind == k {
				return e
			}
		case <-timeout:
			t.Fatalf("no event of kind %d within %v", k, wait)
		}
	}
}

// tones returns the tones reported until (and including) the sentinel.
func (c events) tones(t testing.TB, sentinel byte) string {
	t.Helper()
	var got []byte
	for {
		e := c.next(t, EventTone)
		got = append(got, e.Tone)
		if e.Tone == sentinel {
			return string(got)
		}
	}
}

// newSession opens a session whose events go to the returned channel; it
// is closed when the test ends.
func newSession(t testing.TB, e *Engine) (*Session, events) {
	t.Helper()
	ev := make(events, 256)
	s, err := e.NewSession(ev.fn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, ev
}

// pair connects two sessions, each on its own engine, with codec c.
func pair(t testing.TB, c Codec, dtmfPT uint8) (a, b *Session, aev, bev events) {
	t.Helper()
	ea, eb := startEngine(t, EngineOptions{}), startEngine(t, EngineOptions{})
	a, aev = newSession(t, ea)
	b, bev = newSession(t, eb)
	a.SetRemote(b.LocalAddr(), c, dtmfPT)
	b.SetRemote(a.LocalAddr(), c, dtmfPT)
	return a, b, aev, bev
}

// recorder gathers what a recording's sink receives.
type recorder struct {
	mu     sync.Mutex
	pcm    []int16
	frames int
	want   int           // frames wanted
	full   chan struct{} // closed once want frames arrived
	result chan RecordResult
}

func newRecorder(wantFrames int) *recorder {
	return &recorder{want: wantFrames, full: make(chan struct{}), result: make(chan RecordResult, 1)}
}

func (r *recorder) sink(pcm []int16) {
	if len(pcm) != SamplesPerFrame {
		panic("sink frame size")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.pcm = append(r.pcm, pcm...)
	r.frames++
	if r.frames == r.want {
		close(r.full)
	}
}

func (r *recorder) done(res RecordResult) { r.result <- res }

func (r *recorder) waitFull(t testing.TB) {
	t.Helper()
	select {
	case <-r.full:
	case <-time.After(wait):
		t.Fatalf("recording got %d of %d frames within %v", r.frames, r.want, wait)
	}
}

func (r *recorder) waitResult(t testing.TB) RecordResult {
	t.Helper()
	select {
	case res := <-r.result:
		return res
	case <-time.After(wait):
		t.Fatalf("recording did not end within %v", wait)
	}
	return RecordResult{}
}

func (r *recorder) samples() []int16 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]int16(nil), r.pcm...)
}

// speechLike is noise shaped like speech: a voiced buzz at a wandering
// pitch, band-limited, with a 4 Hz syllable envelope.
func speechLike(d time.Duration, seed uint64) []int16 {
	rng := rand.New(rand.NewPCG(seed, 7))
	n := int(d.Seconds() * SampleRate)
	pcm := make([]int16, n)
	var lp, phase float64
	for i := range pcm {
		t := float64(i) / SampleRate
		f0 := 120 + 30*math.Sin(2*math.Pi*0.7*t)
		phase += f0 / SampleRate
		buzz := 0.0
		for h := 1.0; h <= 12; h++ {
			buzz += math.Sin(2*math.Pi*h*phase) / h
		}
		lp += 0.3 * (rng.NormFloat64() - lp)
		env := 0.55 + 0.45*math.Sin(2*math.Pi*4*t)
		pcm[i] = int16(env * (3000*buzz + 2500*lp))
	}
	return pcm
}

func sine(freq float64, amp float64, d time.Duration) []int16 {
	pcm := make([]int16, int(d.Seconds()*SampleRate))
	for i := range pcm {
		pcm[i] = int16(amp * math.Sin(2*math.Pi*freq*float64(i)/SampleRate))
	}
	return pcm
}

// align finds the lag of want inside got that maximises their normalised
// correlation, and returns that correlation.
func align(got, want []int16, maxLag int) (lag int, corr float64) {
	best, bestLag := -2.0, 0
	for l := 0; l <= maxLag && l+len(want) <= len(got); l++ {
		var xy, xx, yy float64
		for i, w := range want {
			x, y := float64(got[l+i]), float64(w)
			xy += x * y
			xx += x * x
			yy += y * y
		}
		if xx == 0 || yy == 0 {
			continue
		}
		if c := xy / math.Sqrt(xx*yy); c > best {
			best, bestLag = c, l
		}
	}
	return bestLag, best
}

// rms of pcm.
func rms(pcm []int16) float64 {
	if len(pcm) == 0 {
		return 0
	}
	var s float64
	for _, v := range pcm {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(len(pcm)))
}

// playDone returns a done callback and a function that waits for it.
func playDone(t testing.TB) (func(bool), func() bool) {
	ch := make(chan bool, 1)
	return func(ok bool) { ch <- ok }, func() bool {
		t.Helper()
		select {
		case ok := <-ch:
			return ok
		case <-time.After(wait):
			t.Fatalf("play not done within %v", wait)
		}
		return false
	}
}
