package media

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"testing"
	"time"
)

// goertzel16 is goertzel at 16 kHz.
func goertzel16(pcm []int16, freq float64) float64 {
	coeff := 2 * math.Cos(2*math.Pi*freq/16000)
	var s1, s2 float64
	for _, v := range pcm {
		s1, s2 = float64(v)+coeff*s1-s2, s1
	}
	return 2 * math.Sqrt(max(s1*s1+s2*s2-coeff*s1*s2, 0)) / float64(len(pcm))
}

// appFrame is one frame of a batch, taken apart.
type appFrame struct {
	source, seq uint32
	ts          uint64
	pcm         []int16
}

// readApp reads batches from ap until it has n ticks' worth after
// skipping skip, and returns every frame by source.
func readApp(t *testing.T, ap *AppPort, prefix, skip, n int) map[uint32][]appFrame {
	t.Helper()
	out := map[uint32][]appFrame{}
	deadline := time.After(10 * time.Second)
	ticks := 0
	for ticks < skip+n {
		select {
		case <-ap.Ready():
		case <-deadline:
			t.Fatalf("only %d ticks of app frames", ticks)
		}
		for b := ap.Take(); b != nil; b = ap.Take() {
			ticks++
			for len(b) > 0 {
				f := b[prefix : prefix+AppFrameBytes]
				b = b[prefix+AppFrameBytes:]
				if ticks <= skip {
					continue
				}
				fr := appFrame{source: binary.LittleEndian.Uint32(f), seq: binary.LittleEndian.Uint32(f[4:]),
					ts: binary.LittleEndian.Uint64(f[8:]), pcm: make([]int16, AppSamples)}
				for i := range fr.pcm {
					fr.pcm[i] = int16(binary.LittleEndian.Uint16(f[AppHeaderBytes+2*i:]))
				}
				out[fr.source] = append(out[fr.source], fr)
			}
			ap.Done()
		}
	}
	return out
}

func joined(frames []appFrame) []int16 {
	var pcm []int16
	for _, f := range frames {
		pcm = append(pcm, f.pcm...)
	}
	return pcm
}

// An app port hears the mix of every member (source 0) and, subscribed,
// each member alone under its source; every frame of a tick carries the
// same sequence and timestamp, +1 and +20 per tick; what the bot writes,
// every member hears.
func TestAppPortHearsAndSpeaks(t *testing.T) {
	t.Parallel()
	r := newConfRig(t, []Codec{PCMU, PCMA}, nil)
	prefix := []byte{0x82, 0x7e, 0x02, 0x90}
	ap, err := r.conf.NewAppPort("bot", AppOptions{Prefix: prefix})
	if err != nil {
		t.Fatal(err)
	}
	defer ap.Close()
	r.conf.SetSource(r.members[0].pid, 7)
	r.conf.SetSource(r.members[1].pid, 9)
	ap.Subscribe(true)
	ap.Attach(true)

	// The bot speaks: a tone of its own, frames written ahead of time
	// at the pace the tick takes them.
	stop := make(chan struct{})
	go func() {
		frame := make([]byte, AppPCMBytes)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for k := 0; ; k++ {
			for i := 0; i < AppSamples; i++ {
				v := math.Sin(2 * math.Pi * 2850 * float64(k*AppSamples+i) / 16000)
				binary.LittleEndian.PutUint16(frame[2*i:], uint16(int16(toneAmp*v)))
			}
			ap.Write(frame)
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	defer close(stop)

	got := readApp(t, ap, len(prefix), settleFrames, 25)
	freqs := []float64{memberFreqs[0], memberFreqs[1], 2850}
	check := func(who string, pcm []int16, want []bool) {
		t.Helper()
		for i, f := range freqs {
			a := goertzel16(pcm, f)
			switch {
			case want[i] && a < heardAmp:
				t.Errorf("%s: %v Hz at %.0f, want it heard", who, f, a)
			case !want[i] && a > absentAmp:
				t.Errorf("%s: %v Hz at %.0f, want none", who, f, a)
			}
		}
	}
	check("the mix", joined(got[0]), []bool{true, true, false})
	check("source 7", joined(got[7]), []bool{true, false, false})
	check("source 9", joined(got[9]), []bool{false, true, false})
	if len(got) != 3 {
		t.Errorf("sources %v, want 0, 7 and 9", len(got))
	}
	for src, fs := range got {
		for i := 1; i < len(fs); i++ {
			if fs[i].seq != fs[i-1].seq+1 || fs[i].ts != fs[i-1].ts+20 {
				t.Fatalf("source %d: frame %d seq %d ts %d after seq %d ts %d", src, i, fs[i].seq, fs[i].ts, fs[i-1].seq, fs[i-1].ts)
			}
		}
		if fs[0].seq != got[0][0].seq || fs[0].ts != got[0][0].ts {
			t.Errorf("source %d starts at seq %d, the mix at %d", src, fs[0].seq, got[0][0].seq)
		}
	}
	// Every phone hears the bot's voice and the other member.
	r.expectPrompts(func(l, k int) bool { return l != k }, []float64{2850}, []bool{true})

	// Subscribed to one source, only it comes besides the mix.
	ap.Subscribe(false, 9)
	got = readApp(t, ap, len(prefix), DefaultAppBatches+2, 5) // past what the ring held
	if len(got) != 2 || len(got[9]) != 5 || len(got[0]) != 5 {
		t.Errorf("after subscribing to 9: sources %d (9: %d frames, 0: %d)", len(got), len(got[9]), len(got[0]))
	}
	st := ap.Stats()
	if st.Sent == 0 || st.Received == 0 {
		t.Errorf("stats %+v", st)
	}
}

// A reader that does not read loses frames, counted, and never makes the
// tick wait; the bot's frames beyond the send buffer drop the oldest.
func TestAppPortBounded(t *testing.T) {
	t.Parallel()
	r := newConfRig(t, []Codec{PCMU}, nil)
	ap, err := r.conf.NewAppPort("bot", AppOptions{Batches: 4, SendBuffer: 3})
	if err != nil {
		t.Fatal(err)
	}
	defer ap.Close()
	ap.Attach(true)
	for range 5 {
		if !ap.Write(make([]byte, AppPCMBytes)) {
			t.Fatal("a frame of 640 bytes refused")
		}
	}
	if ap.Write(make([]byte, 10)) {
		t.Fatal("a frame of 10 bytes taken")
	}
	if st := ap.Stats(); st.Received != 5 || st.Overrun != 2 {
		t.Errorf("after 5 writes into 3: %+v", st)
	}
	// Wait until the reader is behind by more than the ring.
	deadline := time.Now().Add(5 * time.Second)
	for ap.Stats().Dropped == 0 {
		if time.Now().After(deadline) {
			t.Fatal("nothing dropped for a reader that does not read")
		}
		<-ap.Ready()
	}
	n := 0
	for b := ap.Take(); b != nil; b = ap.Take() {
		n++
		ap.Done()
	}
	if n != 4 {
		t.Errorf("%d batches queued, want the ring's 4", n)
	}
	// Detached, nothing is queued; attached again, it starts afresh.
	ap.Attach(false)
	ap.Attach(true)
	got := readApp(t, ap, 0, 0, 3)
	if len(got[0]) != 3 {
		t.Errorf("after reattaching: %d frames", len(got[0]))
	}
}

// newAppBench is newConfBench with an app port, attached, subscribed to
// every member, whose bot writes a frame and whose reader takes the
// batch every tick.
func newAppBench(tb testing.TB, n int) func() { return newAppBenchSub(tb, n, true) }

// newAppBenchSub is newAppBench, subscribed to every member or to the
// mix alone.
func newAppBenchSub(tb testing.TB, n int, all bool) func() {
	tb.Helper()
	_, c, step := newConfBench(tb, n, 0, false)
	ap, err := c.NewAppPort("app", AppOptions{Prefix: []byte{0x82, 0x7e, 0x02, 0x90}})
	if err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		c.SetSource(fmt.Sprint(i), uint32(i+1))
	}
	ap.Subscribe(all)
	ap.Attach(true)
	voice := make([]byte, AppPCMBytes)
	app := func() {
		ap.Write(voice)
		step()
		for b := ap.Take(); b != nil; b = ap.Take() {
			ap.Done()
		}
	}
	for range 10 {
		app()
	}
	return app
}

// A conference's tick with an app port reading every member unmixed
// allocates nothing.
func TestAppPortTickDoesNotAllocate(t *testing.T) {
	step := newAppBench(t, 10)
	if a := testing.AllocsPerRun(100, step); a != 0 {
		t.Errorf("%v allocations per tick of 10 members and an app port, want 0", a)
	}
}

// BenchmarkAppPortTick is an app-hosted call's media per tick: members=1
// is a two-party call whose bot hears and speaks (the echo sample: the
// mix alone; subscribed, its far end's own stream too), members=10 a
// meeting whose bot reads every speaker unmixed.
func BenchmarkAppPortTick(b *testing.B) {
	b.Run("members=1/mix", func(b *testing.B) {
		step := newAppBenchSub(b, 1, false)
		b.ReportAllocs()
		for b.Loop() {
			step()
		}
	})
	for _, n := range []int{1, 10} {
		b.Run(fmt.Sprintf("members=%d", n), func(b *testing.B) {
			step := newAppBench(b, n)
			b.ReportAllocs()
			for b.Loop() {
				step()
			}
		})
	}
}

// A bot that sends each frame straight back, header included, is timed:
// the delay from leaving the mix to being mixed again is about a tick.
func TestAppPortEchoDelay(t *testing.T) {
	t.Parallel()
	r := newConfRig(t, []Codec{PCMU}, nil)
	delays := make(chan time.Duration, 200)
	ap, err := r.conf.NewAppPort("bot", AppOptions{OnEchoDelay: func(d time.Duration) {
		select {
		case delays <- d:
		default:
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer ap.Close()
	ap.Attach(true)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-ap.Ready():
			}
			for b := ap.Take(); b != nil; b = ap.Take() {
				ap.WriteFrame(b[:AppFrameBytes]) // the mix, as it came
				ap.Done()
			}
		}
	}()
	var got []time.Duration
	timeout := time.After(10 * time.Second)
	for len(got) < 50 {
		select {
		case d := <-delays:
			got = append(got, d)
		case <-timeout:
			t.Fatalf("only %d echoes timed", len(got))
		}
	}
	close(stop)
	<-done
	slices.Sort(got)
	p99 := got[len(got)*99/100]
	t.Logf("echo delay: median %v, p99 %v", got[len(got)/2], p99)
	// At least the next tick (a late tick, caught up, may be closer than
	// 20 ms to the one before), typically one tick; a loaded machine may
	// stall the reader now and then, which the median does not see.
	if med := got[len(got)/2]; got[0] <= 0 || med > 30*time.Millisecond {
		t.Errorf("echo delays from %v to %v, median %v; want about one tick", got[0], got[len(got)-1], med)
	}
}
