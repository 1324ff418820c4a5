package prompt

import "math"

// Resampler design. The wire runs at 8 kHz, so the interesting case is
// downsampling, where everything above the new Nyquist frequency (4 kHz)
// must be removed before decimation or it folds back into the speech band
// (a 6 kHz component in a 16 kHz prompt would come out at 2 kHz). The
// passband keeps the telephone band (0.85 × Nyquist: 3.4 kHz at 8 kHz out)
// and the stopband starts at the output Nyquist frequency, where a Kaiser
// window sized for stopbandDB gives that much attenuation.
const (
	passFraction = 0.85 // passband edge as a fraction of the lower Nyquist
	stopbandDB   = 80.0 // stopband attenuation of the Kaiser design
)

// resampler converts mono audio between two sample rates by a rational
// factor l/m with a polyphase FIR filter: conceptually it inserts l-1 zeros
// between input samples, low-pass filters at the lower of the two Nyquist
// frequencies and keeps every m-th sample, but it only computes the outputs
// it keeps, with the one filter phase each output needs (see
// Crochiere & Rabiner, "Multirate Digital Signal Processing", ch. 2–3).
//
// A resampler is immutable after newResampler and safe for concurrent use.
type resampler struct {
	l, m  int       // interpolation and decimation factors, coprime
	k     int       // taps per phase
	taps  []float32 // l phases of k taps, each phase reversed for a forward dot product
	delay int       // the prototype's group delay, in upsampled samples
}

// newResampler designs the filter converting from in Hz to out Hz. Both
// must be positive.
func newResampler(in, out int) *resampler {
	g := gcd(in, out)
	l, m := out/g, in/g

	// The prototype filter runs at the upsampled rate in·l.
	fp := float64(in) * float64(l)
	nyq := float64(min(in, out)) / 2
	pass, stop := passFraction*nyq, nyq
	cutoff := (pass + stop) / 2 / fp // cycles per upsampled sample
	dw := 2 * math.Pi * (stop - pass) / fp
	// Kaiser's estimates for the length and shape of a window that meets
	// stopbandDB across a transition band of dw radians per sample.
	n := int(math.Ceil((stopbandDB-8)/(2.285*dw))) + 1
	k := (n + l - 1) / l
	n = k * l
	beta := 0.1102 * (stopbandDB - 8.7)

	h := make([]float64, n)
	center := float64(n-1) / 2
	i0b := besselI0(beta)
	var sum float64
	for i := range h {
		x := float64(i) - center
		r := 2 * x / float64(n-1)
		w := besselI0(beta*math.Sqrt(max(0, 1-r*r))) / i0b
		h[i] = 2 * cutoff * sinc(2*cutoff*x) * w
		sum += h[i]
	}
	// Zero-stuffing divides the signal's amplitude by l; the filter gives it
	// back, with unity gain at DC on average over the phases.
	scale := float64(l) / sum

	rs := &resampler{l: l, m: m, k: k, taps: make([]float32, n), delay: (n - 1) / 2}
	for p := range l {
		phase := rs.taps[p*k : (p+1)*k]
		for j := range k {
			// Tap j of phase p multiplies x[i-j]; store it at k-1-j so that
			// the output is a dot product with the contiguous x[i-k+1 : i+1].
			phase[k-1-j] = float32(h[p+j*l] * scale)
		}
	}
	return rs
}

// outLen is the number of output samples for n input samples.
func (rs *resampler) outLen(n int) int { return (n*rs.l + rs.m - 1) / rs.m }

// process resamples x (in int16 units) and returns the result, rounded and
// clipped to int16. The filter's delay is compensated: output sample j is
// aligned with input time j·m/l, and the signal before and after x is
// taken to be silence.
func (rs *resampler) process(x []float32) []int16 {
	out := make([]int16, rs.outLen(len(x)))
	k := rs.k
	// Pad so that every window x[i-k+1 : i+1] lies inside xp: k-1 zeros
	// before x, and after it enough for the delay compensation to reach.
	pad := k + rs.delay/rs.l + 1
	xp := make([]float32, k-1+len(x)+pad)
	copy(xp[k-1:], x)
	for j := range out {
		t := j*rs.m + rs.delay
		i, p := t/rs.l, t%rs.l
		// x[i] is xp[i+k-1], so the window x[i-k+1 : i+1] is xp[i : i+k].
		v := dot(rs.taps[p*k:(p+1)*k], xp[i:i+k])
		out[j] = clip16(v)
	}
	return out
}

// dot is the inner product of a and b, which have the same length. Four
// accumulators let the CPU overlap the additions.
func dot(a, b []float32) float32 {
	b = b[:len(a)]
	var s0, s1, s2, s3 float32
	i := 0
	for ; i+4 <= len(a); i += 4 {
		s0 += a[i] * b[i]
		s1 += a[i+1] * b[i+1]
		s2 += a[i+2] * b[i+2]
		s3 += a[i+3] * b[i+3]
	}
	for ; i < len(a); i++ {
		s0 += a[i] * b[i]
	}
	return (s0 + s1) + (s2 + s3)
}

// clip16 rounds v to the nearest int16, saturating.
func clip16(v float32) int16 {
	switch {
	case v >= math.MaxInt16:
		return math.MaxInt16
	case v <= math.MinInt16:
		return math.MinInt16
	case v >= 0:
		return int16(v + 0.5)
	default:
		return int16(v - 0.5)
	}
}

func sinc(x float64) float64 {
	if x == 0 {
		return 1
	}
	return math.Sin(math.Pi*x) / (math.Pi * x)
}

// besselI0 is the zeroth-order modified Bessel function of the first kind,
// by its power series (converges quickly for the β of a Kaiser window).
func besselI0(x float64) float64 {
	sum, term := 1.0, 1.0
	q := x * x / 4
	for k := 1; k < 100; k++ {
		term *= q / float64(k*k)
		sum += term
		if term < sum*1e-12 {
			break
		}
	}
	return sum
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// maxUpsampledRate bounds the rate a resampler's prototype filter runs at
// (the least common multiple of its two rates), and with it the filter's
// length: about 33,000 taps for 8 kHz out. Every rate audio tools write
// is within it (11025, 22050, 44100, 88200 and 176400 Hz all upsample to
// 3.528 MHz), but a rate such as 44101 or 191999 Hz shares no factor with
// 8000 and would need millions of taps: a second of CPU and hundreds of
// megabytes to design the filter of one prompt.
const maxUpsampledRate = 4_000_000

// designRate is the input rate to design the resampler from in Hz to out
// Hz for: in, unless the two rates upsample beyond maxUpsampledRate, then
// the nearest rate that does not. For 8 kHz out that is never more than
// 200 Hz or 0.16 % away (a pitch and speed error of under 3 cents), since
// every multiple of 500 Hz up to 192 kHz qualifies.
func designRate(in, out int) int {
	fits := func(r int) bool { return r > 0 && r/gcd(r, out) <= maxUpsampledRate/out }
	if fits(in) {
		return in
	}
	for d := 1; ; d++ {
		switch {
		case fits(in - d):
			return in - d
		case fits(in + d):
			return in + d
		}
	}
}
