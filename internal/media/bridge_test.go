package media

import (
	"math"
	"net"
	"net/netip"
	"testing"
	"time"
)

// bridgedCall is a redirect as the platform runs it: A (the caller's
// phone) talks to B, D (the new target's phone) to C; B and C are the
// platform's sessions, on one engine, bridged.
type bridgedCall struct {
	a, b, c, d         *Session
	aev, bev, cev, dev events
	stop               func()
}

func newBridgedCall(t *testing.T, ab, cd Codec, abPT, cdPT uint8) *bridgedCall {
	t.Helper()
	ea, platform, ed := startEngine(t, EngineOptions{}), startEngine(t, EngineOptions{}), startEngine(t, EngineOptions{})
	var k bridgedCall
	k.a, k.aev = newSession(t, ea)
	k.b, k.bev = newSession(t, platform)
	k.c, k.cev = newSession(t, platform)
	k.d, k.dev = newSession(t, ed)
	k.a.SetRemote(k.b.LocalAddr(), ab, abPT)
	k.b.SetRemote(k.a.LocalAddr(), ab, abPT)
	k.c.SetRemote(k.d.LocalAddr(), cd, cdPT)
	k.d.SetRemote(k.c.LocalAddr(), cd, cdPT)
	k.stop = Bridge(k.b, k.c)
	t.Cleanup(k.stop)
	return &k
}

// tonePattern is a recognisable rhythm: bursts of a tone of varying
// length and level with pauses between, then speech-like audio.
func tonePattern() []int16 {
	var pcm []int16
	for i, on := range []time.Duration{100, 300, 60, 200, 140} {
		pcm = append(pcm, sine(500+float64(i)*150, 4000+float64(i)*1500, on*time.Millisecond)...)
		pcm = append(pcm, make([]int16, int((80+40*time.Duration(i))*time.Millisecond/time.Second*SampleRate))...)
	}
	return append(pcm, speechLike(600*time.Millisecond, 11)...)
}

// envelope is the RMS of each 20 ms frame.
func envelope(pcm []int16) []float64 {
	env := make([]float64, len(pcm)/SamplesPerFrame)
	for i := range env {
		env[i] = rms(pcm[i*SamplesPerFrame : (i+1)*SamplesPerFrame])
	}
	return env
}

// envelopeCorrelation finds the frame lag of want inside got with the
// best normalised correlation of the (mean-removed) envelopes.
func envelopeCorrelation(got, want []float64, maxLag int) (lag int, corr float64) {
	corr = -2
	for l := 0; l <= maxLag && l+len(want) <= len(got); l++ {
		var mx, my float64
		for i := range want {
			mx += got[l+i]
			my += want[i]
		}
		mx /= float64(len(want))
		my /= float64(len(want))
		var xy, xx, yy float64
		for i := range want {
			x, y := got[l+i]-mx, want[i]-my
			xy += x * y
			xx += x * x
			yy += y * y
		}
		if xx == 0 || yy == 0 {
			continue
		}
		if c := xy / math.Sqrt(xx*yy); c > corr {
			lag, corr = l, c
		}
	}
	return lag, corr
}

// hear plays src on from and records it on to, and checks what arrived as
// audio: its energy envelope follows src's. It returns the recording.
func hear(t *testing.T, from, to *Session, src []int16) []int16 {
	t.Helper()
	audio := NewAudio(src)
	margin := 30 // frames: two jitter buffers and the bridge
	rec := newRecorder(audio.Frames() + margin)
	to.Record(RecordOptions{}, rec.sink, rec.done)
	done, waitDone := playDone(t)
	from.Play(audio, false, done)
	if !waitDone() {
		t.Fatal("play done(false)")
	}
	rec.waitFull(t)
	to.StopRecord()
	rec.waitResult(t)
	got := rec.samples()
	lag, corr := envelopeCorrelation(envelope(got), envelope(audio.PCM()), margin)
	_, sampleCorr := align(got, audio.PCM(), (lag+2)*SamplesPerFrame)
	t.Logf("envelope correlation %.4f at %v; sample correlation %.4f", corr, time.Duration(lag)*FrameDuration, sampleCorr)
	if corr < 0.9 {
		t.Fatalf("envelope correlation %.3f < 0.9", corr)
	}
	return got
}

// A's audio reaches D and D's reaches A through the bridge, transcoded
// when the two sides use different codecs; RFC 4733 tones from A are
// sent on to D as RFC 4733, or in-band when D negotiated none.
func TestBridge(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		ab, cd     Codec
		abPT, cdPT uint8
	}{
		{"PCMU-PCMA", PCMU, PCMA, 101, 101},
		{"PCMA-PCMU", PCMA, PCMU, 96, 101},
		{"PCMU-PCMU", PCMU, PCMU, 101, 101},
		{"PCMA-PCMU/inband", PCMA, PCMU, 101, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			k := newBridgedCall(t, tc.ab, tc.cd, tc.abPT, tc.cdPT)
			hear(t, k.a, k.d, tonePattern())
			hear(t, k.d, k.a, speechLike(time.Second, 5))

			k.d.DetectTones(true)
			k.b.DetectTones(true) // the platform still hears the caller's keys
			k.a.SendTones("19#*", 150*time.Millisecond, nil)
			k.a.SendTones("D", 0, nil)
			if got := k.dev.tones(t, 'D'); got != "19#*D" {
				t.Fatalf("D heard %q, want %q", got, "19#*D")
			}
			if got := k.bev.tones(t, 'D'); got != "19#*D" {
				t.Fatalf("B reported %q, want %q", got, "19#*D")
			}
		})
	}
}

// stop ends the bridge: D hears nothing of A any more, and both
// sessions are themselves again (they play and are heard directly).
func TestBridgeStop(t *testing.T) {
	t.Parallel()
	k := newBridgedCall(t, PCMU, PCMA, 101, 101)
	hear(t, k.a, k.d, tonePattern())
	k.stop()
	k.stop() // idempotent

	loud := NewAudio(sine(800, 9000, time.Second))
	rec := newRecorder(60)
	k.d.Record(RecordOptions{}, rec.sink, rec.done)
	k.a.Play(loud, true, nil)
	rec.waitFull(t)
	k.d.StopRecord()
	rec.waitResult(t)
	k.a.StopPlay()
	if r := rms(rec.samples()); r > 50 {
		t.Fatalf("D heard A after stop: rms %.0f", r)
	}
	// C plays to D and B to A, as if never bridged.
	hear(t, k.c, k.d, tonePattern())
	hear(t, k.b, k.a, tonePattern())
	for _, s := range []*Session{k.b, k.c} {
		s.mu.Lock()
		br := s.st.br
		s.mu.Unlock()
		if br != nil {
			t.Fatal("session still bridged after stop")
		}
	}
}

// Closing one side stops the bridge; bridging again replaces a bridge.
func TestBridgeCloseAndReplace(t *testing.T) {
	t.Parallel()
	k := newBridgedCall(t, PCMU, PCMU, 101, 101)
	hear(t, k.a, k.d, tonePattern())

	// Rebridge B with itself: an echo to A; C is let go.
	echo := Bridge(k.b, k.b)
	defer echo()
	k.c.mu.Lock()
	cb := k.c.st.br
	k.c.mu.Unlock()
	if cb != nil {
		t.Fatal("C still bridged after B was bridged again")
	}
	pattern := NewAudio(tonePattern())
	rec := newRecorder(pattern.Frames() + 40)
	k.a.Record(RecordOptions{}, rec.sink, rec.done)
	k.a.Play(pattern, false, nil)
	rec.waitFull(t)
	k.a.StopRecord()
	rec.waitResult(t)
	if _, corr := envelopeCorrelation(envelope(rec.samples()), envelope(pattern.PCM()), 40); corr < 0.9 {
		t.Fatalf("echo envelope correlation %.3f", corr)
	}

	// Close B: the bridge is gone; the stale stop does nothing.
	stop := Bridge(k.b, k.c)
	if err := k.b.Close(); err != nil {
		t.Fatal(err)
	}
	k.c.mu.Lock()
	cb = k.c.st.br
	k.c.mu.Unlock()
	if cb != nil {
		t.Fatal("C still bridged after B closed")
	}
	stop()
	// Bridging a closed session does nothing either.
	Bridge(k.b, k.c)()
	hear(t, k.c, k.d, tonePattern())
}

// BenchmarkBridgeTick is one tick of a bridged pair: B receives a PCMU
// frame from its phone, plays it out and hands it over; C, on PCMA,
// transcodes and sends it (and the same the other way). "build" stops
// short of the sendto syscalls.
func BenchmarkBridgeTick(b *testing.B) {
	setup := func(b *testing.B) (x, y *Session, px, py []byte, fx, fy netip.AddrPort) {
		x, sx := benchSession(b, 101)
		y, sy := benchSession(b, 101)
		y.SetRemote(sy.LocalAddr().(*net.UDPAddr).AddrPort(), PCMA, 101)
		b.Cleanup(Bridge(x, y))
		px = rtpBytes(b, 0, 0, 0, NewAudio(speechLike(20*time.Millisecond, 2)).Payload(PCMU))
		py = rtpBytes(b, 8, 0, 0, NewAudio(speechLike(20*time.Millisecond, 3)).Payload(PCMA))
		return x, y, px, py, sx.LocalAddr().(*net.UDPAddr).AddrPort(), sy.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	step := func(s *Session, pkt []byte, from netip.AddrPort, n uint64) {
		pkt[2], pkt[3] = byte(n>>8), byte(n)
		ts := uint32(n) * SamplesPerFrame
		pkt[4], pkt[5], pkt[6], pkt[7] = byte(ts>>24), byte(ts>>16), byte(ts>>8), byte(ts)
		s.receive(pkt, from, s.e.nanotime())
	}
	b.Run("build", func(b *testing.B) {
		x, y, px, py, fx, fy := setup(b)
		b.ReportAllocs()
		n := uint64(0)
		var sent int
		for b.Loop() {
			step(x, px, fx, n)
			step(y, py, fy, n)
			for _, s := range []*Session{x, y} {
				s.mu.Lock()
				cfg := s.cfg.Load()
				s.tickReceive(cfg, s.e.nanotime(), &s.st.pend)
				if s.tickSend(cfg, n, &s.st.pend) > 0 {
					sent++
				}
				s.mu.Unlock()
				s.st.pend.run(s.ev)
			}
			n++
		}
		if n > 10 && sent < int(n) {
			b.Fatalf("sent %d packets in %d ticks of two sessions", sent, n)
		}
	})
	b.Run("send", func(b *testing.B) {
		x, y, px, py, fx, fy := setup(b)
		b.ReportAllocs()
		n := uint64(0)
		for b.Loop() {
			step(x, px, fx, n)
			step(y, py, fy, n)
			x.tick(n, x.e.nanotime())
			y.tick(n, y.e.nanotime())
			n++
		}
	})
}
