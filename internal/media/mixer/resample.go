package mixer

import (
	"math"
	"time"
)

// Frame sizes: the mixer works in 20 ms frames, on the media clock.
const (
	Period     = 20 * time.Millisecond
	Samples8k  = 160 // one frame at 8 kHz
	Samples16k = 320 // one frame at 16 kHz, the rate the mix is made at
)

// The resamplers share one halfband low-pass filter, designed for 16 kHz
// (Crochiere & Rabiner, "Multirate Digital Signal Processing", §5.4): a
// Kaiser-windowed sinc of 4M−1 taps whose centre tap is 1/2 and whose
// taps at even offsets from the centre are zero, so each output costs M
// multiplications (the taps are symmetric, and half are zero). With M =
// 16 and β = 7 it is flat to within 0.01 dB up to 3.4 kHz (the telephone
// band), −6 dB at 4 kHz (a halfband filter's midpoint), and at least 70 dB
// down from 4.6 kHz up: the transition band is 3.4–4.6 kHz. The taps are
// Q15 integers, which puts the rounding noise near −90 dBFS.
const (
	halfbandM    = 16  // non-zero taps on each side of the centre
	halfbandBeta = 7.0 // Kaiser window shape
	upHist       = 2 * halfbandM
	downHist     = 4*halfbandM - 2
)

// halfband[k] is the tap at offsets ±(2k+1) from the centre, in Q15. The
// side taps of a halfband filter sum to 1/2 (the centre holds the other
// half); the largest is adjusted after rounding so that they sum to
// exactly 1/4 per side, and a constant signal passes unchanged.
var halfband = designHalfband()

func designHalfband() (h [halfbandM]int32) {
	const c = 2*halfbandM - 1 // the centre's distance from either end
	besselI0 := func(x float64) float64 {
		sum, term := 1.0, 1.0
		q := x * x / 4
		for k := 1; k < 200 && term > sum*1e-16; k++ {
			term *= q / float64(k*k)
			sum += term
		}
		return sum
	}
	var f [halfbandM]float64
	var total float64
	for k := range f {
		d := float64(2*k + 1)
		r := d / c
		w := besselI0(halfbandBeta*math.Sqrt(1-r*r)) / besselI0(halfbandBeta)
		f[k] = math.Sin(math.Pi*d/2) / (math.Pi * d) * w
		total += f[k]
	}
	var sum int32
	for k := range f {
		h[k] = int32(math.Round(f[k] / total * 0.25 * (1 << 15)))
		sum += h[k]
	}
	h[0] += 1<<13 - sum
	return h
}

// Upsampler converts 8 kHz PCM to 16 kHz with the halfband filter: every
// other output sample is an input sample, the ones between are
// interpolated. It keeps the last 2M input samples of the stream, so
// consecutive calls make one continuous stream, and it delays the audio
// by M = 16 samples at 8 kHz (2 ms). The zero value is ready to use (a
// stream that starts after silence). An Upsampler is owned by one
// goroutine; it allocates nothing.
type Upsampler struct {
	w [upHist + Samples8k]int16 // history, then the chunk being converted
}

// Process converts src (8 kHz) into dst (16 kHz), which must hold
// 2·len(src) samples. Any length works; 160 samples (20 ms) is what the
// mixer feeds.
func (u *Upsampler) Process(dst, src []int16) {
	dst = dst[:2*len(src)]
	for len(src) > 0 {
		n := min(len(src), Samples8k)
		copy(u.w[upHist:], src[:n])
		upsample(dst[:2*n], u.w[:upHist+n])
		copy(u.w[:upHist], u.w[n:n+upHist])
		src, dst = src[n:], dst[2*n:]
	}
}

// Skip feeds src without converting it: the stream goes on, so the next
// Process continues it without a seam, but nobody needed this part (the
// mixer skips the participants it does not mix).
func (u *Upsampler) Skip(src []int16) {
	if len(src) >= upHist {
		copy(u.w[:upHist], src[len(src)-upHist:])
		return
	}
	copy(u.w[:], u.w[len(src):upHist])
	copy(u.w[upHist-len(src):], src)
}

// Reset forgets the stream: the next Process starts after silence.
func (u *Upsampler) Reset() { clear(u.w[:upHist]) }

// upsample writes 2·(len(w)−2M) samples: output pair n is centred on
// w[n+M], the odd sample halfway between w[n+M] and w[n+M+1].
func upsample(dst, w []int16) {
	n := len(w) - upHist
	dst = dst[:2*n]
	for i := range n {
		win := (*[upHist]int16)(w[i+1 : i+1+upHist])
		// win[M-1-k] and win[M+k] are the two samples at distance
		// 2k+1 from the interpolated one, in 16 kHz samples.
		acc := int32(1 << 13)
		for k := range halfbandM {
			acc += halfband[k] * (int32(win[halfbandM-1-k]) + int32(win[halfbandM+k]))
		}
		dst[2*i] = win[halfbandM-1]
		// Zero-stuffing halves the amplitude; Q14 instead of Q15 gives
		// it back.
		dst[2*i+1] = sat16(acc >> 14)
	}
}

// Downsampler converts 16 kHz PCM to 8 kHz: the halfband filter removes
// what lies above 4 kHz (which would otherwise fold back into the
// telephone band: a 5 kHz whistle would come out at 3 kHz), then every
// other sample is kept. It keeps the last 4M−2 input samples and delays
// the audio by M−1 = 15 samples at 8 kHz, so an 8 kHz stream taken up and
// back down comes out 2M−1 = 31 samples (3.9 ms) late. The zero value is
// ready to use. A Downsampler is owned by one goroutine; it allocates
// nothing.
type Downsampler struct {
	z [downHist + Samples16k]int16 // history, then the chunk being converted
}

// Process converts src (16 kHz, an even number of samples) into dst
// (8 kHz), which must hold len(src)/2 samples.
func (d *Downsampler) Process(dst, src []int16) {
	src = src[:len(src)&^1]
	dst = dst[:len(src)/2]
	for len(src) > 0 {
		n := min(len(src), Samples16k)
		copy(d.z[downHist:], src[:n])
		downsample(dst[:n/2], d.z[:downHist+n])
		copy(d.z[:downHist], d.z[n:n+downHist])
		src, dst = src[n:], dst[n/2:]
	}
}

// Skip feeds src (an even number of samples) without converting it; see
// Upsampler.Skip.
func (d *Downsampler) Skip(src []int16) {
	src = src[:len(src)&^1]
	if len(src) >= downHist {
		copy(d.z[:downHist], src[len(src)-downHist:])
		return
	}
	copy(d.z[:], d.z[len(src):downHist])
	copy(d.z[downHist-len(src):], src)
}

// Reset forgets the stream: the next Process starts after silence.
func (d *Downsampler) Reset() { clear(d.z[:downHist]) }

// downsample writes (len(z)−(4M−2))/2 samples: output n is centred on
// z[2n+2M].
func downsample(dst, z []int16) {
	n := (len(z) - downHist) / 2
	dst = dst[:n]
	for i := range n {
		// win[2M-1] is the centre; win[2M-2-2k] and win[2M+2k] are the
		// samples at distance 2k+1 from it.
		win := (*[4*halfbandM - 1]int16)(z[2*i+1 : 2*i+4*halfbandM])
		acc := int32(win[2*halfbandM-1])<<14 + 1<<14
		for k := range halfbandM {
			acc += halfband[k] * (int32(win[2*halfbandM-2-2*k]) + int32(win[2*halfbandM+2*k]))
		}
		dst[i] = sat16(acc >> 15)
	}
}

// sat16 saturates v to the int16 range.
func sat16(v int32) int16 {
	switch {
	case v > math.MaxInt16:
		return math.MaxInt16
	case v < math.MinInt16:
		return math.MinInt16
	}
	return int16(v)
}
