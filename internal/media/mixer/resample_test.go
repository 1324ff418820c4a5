package mixer

import (
	"math"
	"testing"
)

// sine returns n samples of a sine at rate.
func sine(freq, amp float64, rate, n int) []int16 {
	g := toneGen{freq: freq, amp: amp, rate: rate}
	return g.next(make([]int16, n))
}

// upsampleAll takes x (8 kHz) to 16 kHz a frame at a time.
func upsampleAll(x []int16) []int16 {
	var u Upsampler
	out := make([]int16, 2*len(x))
	for i := 0; i < len(x); i += Samples8k {
		u.Process(out[2*i:2*(i+Samples8k)], x[i:i+Samples8k])
	}
	return out
}

// downsampleAll takes x (16 kHz) to 8 kHz a frame at a time.
func downsampleAll(x []int16) []int16 {
	var d Downsampler
	out := make([]int16, len(x)/2)
	for i := 0; i < len(x); i += Samples16k {
		d.Process(out[i/2:(i+Samples16k)/2], x[i:i+Samples16k])
	}
	return out
}

// TestUpsampleResponse feeds tones at 8 kHz and measures them at 16 kHz:
// the telephone band passes at unit gain, and the image that
// zero-stuffing makes at 8000−f (a 1 kHz tone's at 7 kHz) is gone.
func TestUpsampleResponse(t *testing.T) {
	const amp = 0.5
	for _, f := range []float64{300, 1000, 2000, 3000, 3400} {
		y := upsampleAll(sine(f, amp, 8000, 50*Samples8k))[Samples16k:] // skip the filter's start
		pass := db(goertzel(y, f, 16000), amp*32767)
		image := db(goertzel(y, 8000-f, 16000), amp*32767)
		t.Logf("%4.0f Hz: %+.3f dB, image at %4.0f Hz %.1f dB", f, pass, 8000-f, image)
		if math.Abs(pass) > 0.05 {
			t.Errorf("%v Hz passes at %+.3f dB, want within ±0.05 dB", f, pass)
		}
		if image > -65 {
			t.Errorf("%v Hz leaves an image at %v Hz of %.1f dB, want below -65 dB", f, 8000-f, image)
		}
	}
}

// TestDownsampleResponse feeds tones at 16 kHz and measures them at
// 8 kHz: the telephone band passes; content above 4 kHz, which would fold
// back to 8000−f, is attenuated: at least 60 dB from 4.6 kHz, the end of
// the transition band.
func TestDownsampleResponse(t *testing.T) {
	const amp = 0.5
	for _, f := range []float64{300, 1000, 2000, 3000, 3400} {
		y := downsampleAll(sine(f, amp, 16000, 50*Samples16k))[Samples8k:]
		pass := db(goertzel(y, f, 8000), amp*32767)
		t.Logf("%4.0f Hz: %+.3f dB", f, pass)
		if math.Abs(pass) > 0.05 {
			t.Errorf("%v Hz passes at %+.3f dB, want within ±0.05 dB", f, pass)
		}
	}
	for _, c := range []struct{ f, want float64 }{
		{4200, -12}, // inside the transition band: attenuated, not yet removed
		{4600, -60},
		{5000, -60},
		{6000, -60},
		{7000, -60},
		{7950, -60},
	} {
		y := downsampleAll(sine(c.f, amp, 16000, 50*Samples16k))[Samples8k:]
		alias := db(goertzel(y, 8000-c.f, 8000), amp*32767)
		t.Logf("%4.0f Hz: alias at %4.0f Hz %.1f dB", c.f, 8000-c.f, alias)
		if alias > c.want {
			t.Errorf("%v Hz comes out at %v Hz at %.1f dB, want at most %v dB", c.f, 8000-c.f, alias, c.want)
		}
	}
}

// TestResampleRoundTrip takes telephone-band audio up to 16 kHz and back:
// it comes out 2M−1 samples late and otherwise as it went in, within the
// rounding of the Q15 taps.
func TestResampleRoundTrip(t *testing.T) {
	x := make([]int16, 100*Samples8k)
	for _, f := range []float64{350, 1150, 2250, 3150} {
		s := sine(f, 0.2, 8000, len(x))
		for i := range x {
			x[i] += s[i]
		}
	}
	y := downsampleAll(upsampleAll(x))
	const delay = 2*halfbandM - 1
	var sig, noise float64
	for i := 10 * Samples8k; i < len(x); i++ {
		d := float64(y[i]) - float64(x[i-delay])
		sig += float64(x[i-delay]) * float64(x[i-delay])
		noise += d * d
	}
	snr := 10 * math.Log10(sig/noise)
	t.Logf("round trip SNR %.1f dB", snr)
	if snr < 60 {
		t.Errorf("round trip SNR %.1f dB, want at least 60 dB", snr)
	}
}

// TestResampleChunking checks that the resamplers carry their history
// across calls: converting in odd-sized pieces gives what converting at
// once gives, and Skip continues the stream like Process.
func TestResampleChunking(t *testing.T) {
	x := sine(1234, 0.4, 8000, 1000)
	var whole, parts Upsampler
	want := make([]int16, 2*len(x))
	whole.Process(want, x)
	got := make([]int16, 0, 2*len(x))
	for i := 0; i < len(x); {
		n := min(len(x)-i, 1+i%37)
		out := make([]int16, 2*n)
		parts.Process(out, x[i:i+n])
		got = append(got, out...)
		i += n
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("upsampled in pieces: sample %d is %d, want %d", i, got[i], want[i])
		}
	}

	var skipped Upsampler
	skipped.Skip(x[:7])
	skipped.Skip(x[7:Samples8k])
	out := make([]int16, 2*Samples8k)
	skipped.Process(out, x[Samples8k:2*Samples8k])
	for i := range out {
		if out[i] != want[2*Samples8k+i] {
			t.Fatalf("after Skip: sample %d is %d, want %d", i, out[i], want[2*Samples8k+i])
		}
	}

	y := sine(2345, 0.4, 16000, 2000)
	var dw, dp, ds Downsampler
	dwant := make([]int16, len(y)/2)
	dw.Process(dwant, y)
	for i := 0; i < len(y); {
		n := min(len(y)-i, 2*(1+i%53))
		out := make([]int16, n/2)
		dp.Process(out, y[i:i+n])
		for j := range out {
			if out[j] != dwant[i/2+j] {
				t.Fatalf("downsampled in pieces: sample %d is %d, want %d", i/2+j, out[j], dwant[i/2+j])
			}
		}
		i += n
	}
	ds.Skip(y[:10])
	ds.Skip(y[10:Samples16k])
	dout := make([]int16, Samples8k)
	ds.Process(dout, y[Samples16k:2*Samples16k])
	for i := range dout {
		if dout[i] != dwant[Samples8k+i] {
			t.Fatalf("after Skip: sample %d is %d, want %d", i, dout[i], dwant[Samples8k+i])
		}
	}
}

// TestResampleSaturates drives both resamplers with full-scale square
// waves, whose filtered overshoot (the Gibbs ripple next to each edge)
// exceeds 16 bits: they saturate instead of wrapping, so every sample
// away from an edge has the sign of the wave.
func TestResampleSaturates(t *testing.T) {
	square := func(n, half int) []int16 {
		x := make([]int16, n)
		for i := range x {
			x[i] = 32767
			if i/half%2 == 1 {
				x[i] = -32768
			}
		}
		return x
	}
	// Upsampled sample i stands for input (i−2M)/2 at 8 kHz.
	x8 := square(8*Samples8k, 16)
	u := upsampleAll(x8)
	for i := 4 * halfbandM; i < len(u); i++ {
		at := (i - 2*halfbandM) / 2
		want := x8[at]
		if x8[max(0, at-2)] == want && x8[min(len(x8)-1, at+2)] == want && (u[i] > 0) != (want > 0) {
			t.Fatalf("upsampled: sample %d is %d, want the sign of %d: wrapped", i, u[i], want)
		}
	}
	x16 := square(8*Samples16k, 32)
	// Downsampled sample n stands for input 2n−(2M−2) at 16 kHz.
	y := downsampleAll(x16)
	for n := 2 * halfbandM; n < len(y); n++ {
		at := 2*n - (2*halfbandM - 2)
		want := x16[at]
		if x16[max(0, at-4)] == want && x16[min(len(x16)-1, at+4)] == want && (y[n] > 0) != (want > 0) {
			t.Fatalf("downsampled: sample %d is %d, want the sign of %d: wrapped", n, y[n], want)
		}
	}
}

func TestResampleDoesNotAllocate(t *testing.T) {
	var u Upsampler
	var d Downsampler
	in := sine(1000, 0.5, 8000, Samples8k)
	mid := make([]int16, Samples16k)
	out := make([]int16, Samples8k)
	if n := testing.AllocsPerRun(100, func() {
		u.Process(mid, in)
		d.Process(out, mid)
		u.Skip(in)
		d.Skip(mid)
	}); n != 0 {
		t.Errorf("%v allocations per frame, want 0", n)
	}
}

// BenchmarkUpsample is one 20 ms frame from 8 to 16 kHz: the cost per
// mixed 8 kHz input.
func BenchmarkUpsample(b *testing.B) {
	var u Upsampler
	in := sine(1000, 0.5, 8000, Samples8k)
	out := make([]int16, Samples16k)
	b.ReportAllocs()
	for b.Loop() {
		u.Process(out, in)
	}
}

// BenchmarkDownsample is one 20 ms frame from 16 to 8 kHz: the cost per
// distinct mix heard at 8 kHz.
func BenchmarkDownsample(b *testing.B) {
	var d Downsampler
	in := sine(1000, 0.5, 16000, Samples16k)
	out := make([]int16, Samples8k)
	b.ReportAllocs()
	for b.Loop() {
		d.Process(out, in)
	}
}
