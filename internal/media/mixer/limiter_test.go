package mixer

import (
	"math"
	"math/rand/v2"
	"testing"
)

// limit runs a limiter over x, a frame at a time.
func limit(l *limiter, x []int32) []int16 {
	out := make([]int16, len(x))
	for i := 0; i < len(x); i += Samples16k {
		l.process(out[i:i+Samples16k], x[i:i+Samples16k])
	}
	return out
}

// TestLimiterPassesWhatFits: a sum that fits in 16 bits, a single talker
// by definition, comes out bit for bit; and so it does again once the
// gain has recovered from a loud passage.
func TestLimiterPassesWhatFits(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	x := make([]int32, 50*Samples16k)
	for i := range x {
		x[i] = rng.Int32N(65536) - 32768
	}
	var l limiter
	y := limit(&l, x)
	for i := range x {
		if int32(y[i]) != x[i] {
			t.Fatalf("sample %d: %d became %d", i, x[i], y[i])
		}
	}

	loud := make([]int32, 10*Samples16k)
	for i := range loud {
		loud[i] = 5 * (rng.Int32N(65536) - 32768)
	}
	limit(&l, loud)
	y = limit(&l, x)
	// 6% of the reduction is recovered per 5 ms block: from a gain of
	// 0.2 to within limSnap of 1 takes 145 blocks, 0.73 s.
	for i := 37 * Samples16k; i < len(x); i++ {
		if int32(y[i]) != x[i] {
			t.Fatalf("after a loud passage, sample %d: %d became %d", i, x[i], y[i])
		}
	}
}

// TestLimiterFiveLoudTalkers sums five talkers at 90% of full scale, in
// phase (the worst case: 4.5 times full scale): the output never wraps
// (each sample has the sign of the sum), stays within 16 bits, and stays
// a sine: its third harmonic, which hard clipping would raise to about
// −10 dB, stays far down.
func TestLimiterFiveLoudTalkers(t *testing.T) {
	const n = 50 * Samples16k
	x := make([]int32, n)
	tone := sine(400, 0.9, 16000, n)
	for i := range x {
		x[i] = 5 * int32(tone[i])
	}
	var l limiter
	y := limit(&l, x)
	for i := range x {
		if x[i] > 1000 && y[i] <= 0 || x[i] < -1000 && y[i] >= 0 {
			t.Fatalf("sample %d: sum %d came out as %d: wrapped", i, x[i], y[i])
		}
	}
	steady := y[10*Samples16k:]
	fund := goertzel(steady, 400, 16000)
	h3 := goertzel(steady, 1200, 16000)
	t.Logf("fundamental %.1f dBFS, third harmonic %.1f dB below it", db(fund, 32767), -db(h3, fund))
	if db(fund, 32767) < -1.5 {
		t.Errorf("fundamental at %.1f dBFS: limited too hard", db(fund, 32767))
	}
	if db(h3, fund) > -50 {
		t.Errorf("third harmonic at %.1f dB: distorted", db(h3, fund))
	}

	// Hard clipping, for comparison, is what the limiter avoids.
	clipped := make([]int16, len(steady))
	for i := range clipped {
		clipped[i] = sat16(x[10*Samples16k+i])
	}
	t.Logf("hard clipping would put the third harmonic %.1f dB below", -db(goertzel(clipped, 1200, 16000), goertzel(clipped, 400, 16000)))
}

// TestLimiterOnset: a loud sum out of silence, which the limiter cannot
// see coming before its frame, still does not wrap; the first block's
// overshoot is saturated.
func TestLimiterOnset(t *testing.T) {
	x := make([]int32, 4*Samples16k)
	tone := sine(1000, 1, 16000, 3*Samples16k)
	for i := range tone {
		x[Samples16k+i] = 5 * int32(tone[i])
	}
	var l limiter
	y := limit(&l, x)
	for i := range x {
		if x[i] > 1000 && y[i] <= 0 || x[i] < -1000 && y[i] >= 0 {
			t.Fatalf("sample %d: sum %d came out as %d: wrapped", i, x[i], y[i])
		}
	}
	if math.Abs(float64(y[len(y)/2])) > 32767 {
		t.Fatal("out of range")
	}
}

func TestLimiterDoesNotAllocate(t *testing.T) {
	var l limiter
	x := make([]int32, Samples16k)
	y := make([]int16, Samples16k)
	for i := range x {
		x[i] = int32(i) * 400
	}
	if n := testing.AllocsPerRun(100, func() { l.process(y, x) }); n != 0 {
		t.Errorf("%v allocations per frame, want 0", n)
	}
}

// BenchmarkLimiter is one frame of one mix: passing (the usual case, a
// sum that fits) and limiting.
func BenchmarkLimiter(b *testing.B) {
	for _, c := range []struct {
		name string
		gain int32
	}{{"pass", 1}, {"limit", 5}} {
		b.Run(c.name, func(b *testing.B) {
			var l limiter
			tone := sine(400, 0.9, 16000, Samples16k)
			x := make([]int32, Samples16k)
			for i := range x {
				x[i] = c.gain * int32(tone[i])
			}
			y := make([]int16, Samples16k)
			b.ReportAllocs()
			for b.Loop() {
				l.process(y, x)
			}
		})
	}
}
