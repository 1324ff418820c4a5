package bottest

import (
	"bytes"
	"fmt"
	"math"

	"github.com/switchboard-voice/switchboard/internal/media/prompt"
)

// Audio is compared as audio, by its energy envelope (the RMS of each
// 20 ms frame at 8 kHz) and normalised cross-correlation: robust to G.711,
// jitter and gain, and blind to what exactly was said, so a prompt is
// recognised by its rhythm of sound and silence.

// Envelope returns the RMS of each 20 ms frame of 8 kHz PCM.
func Envelope(pcm []int16) []float64 {
	const n = 160
	env := make([]float64, 0, len(pcm)/n)
	for i := 0; i+n <= len(pcm); i += n {
		var s float64
		for _, v := range pcm[i : i+n] {
			s += float64(v) * float64(v)
		}
		env = append(env, math.Sqrt(s/n))
	}
	return env
}

// BestCorrelation slides b over a by up to maxLag frames either way and
// returns the highest normalised correlation of the overlap (at least
// minOverlap frames), and the lag where it is.
func BestCorrelation(a, b []float64, maxLag, minOverlap int) (float64, int) {
	best, at := -1.0, 0
	for lag := -maxLag; lag <= maxLag; lag++ {
		lo, hi := max(0, -lag), min(len(a), len(b)-lag)
		if hi-lo < minOverlap || hi <= lo {
			continue
		}
		if c := correlation(a[lo:hi], b[lo+lag:hi+lag]); c > best {
			best, at = c, lag
		}
	}
	return best, at
}

func correlation(x, y []float64) float64 {
	var mx, my float64
	for i := range x {
		mx += x[i]
		my += y[i]
	}
	mx /= float64(len(x))
	my /= float64(len(y))
	var sxy, sxx, syy float64
	for i := range x {
		dx, dy := x[i]-mx, y[i]-my
		sxy += dx * dy
		sxx += dx * dx
		syy += dy * dy
	}
	if sxx == 0 || syy == 0 {
		return 0
	}
	return sxy / math.Sqrt(sxx*syy)
}

// Similarity says how well want (8 kHz PCM) is found whole inside heard,
// from -1 to 1; above 0.8 it was heard. Silence at want's start and end is
// not looked for (a recording that began late or a padded prompt still
// match). It tolerates slips: a loaded media path drops or delays a frame
// now and then (jitter buffers do, to catch up), which shifts all that
// follows; so where want as a whole matches poorly, its halves are matched
// each near where the other ends, down to half-second pieces, and the
// worst piece counts.
func Similarity(heard, want []int16) float64 {
	h, w := Envelope(heard), trimSilence(Envelope(want))
	if len(w) == 0 || len(h) < len(w)*9/10 {
		return 0
	}
	c, _, _ := match(h, w, 0, len(h))
	return c
}

// Pieces of want are at least minPiece frames long (half a second) and
// found within slip frames of where they should be.
const (
	minPiece = 25
	slip     = 15
)

// match finds w in h starting within [lo, hi) and returns its correlation
// there, where it starts and where it ends.
func match(h, w []float64, lo, hi int) (c float64, start, end int) {
	c, start = bestAt(h, w, lo, min(len(h), hi+len(w)))
	end = start + len(w)
	n := len(w) / 2
	if c >= 0.9 || n < minPiece || flat(w[:n]) || flat(w[n:]) {
		return c, start, end
	}
	cl, sl, el := match(h, w[:n], max(0, start-slip), start+slip)
	cr, _, er := match(h, w[n:], max(0, el-slip), el+slip)
	if split := min(cl, cr); split > c {
		return split, sl, er
	}
	return c, start, end
}

// bestAt is the best correlation of w with a stretch of h starting in
// [lo, hi-len(w)], and where it starts.
func bestAt(h, w []float64, lo, hi int) (float64, int) {
	best, at := -1.0, lo
	for i := lo; i+len(w) <= hi; i++ {
		if c := correlation(w, h[i:i+len(w)]); c > best {
			best, at = c, i
		}
	}
	return max(best, 0), at
}

// flat says whether env barely varies (a steady tone, or silence):
// correlation cannot place it.
func flat(env []float64) bool {
	lo, hi := env[0], env[0]
	for _, v := range env {
		lo, hi = min(lo, v), max(hi, v)
	}
	return hi-lo <= hi/10
}

// DecodeWAV reads any PCM (or G.711) WAV file as 8 kHz mono PCM, as
// Switchboard does with prompts.
func DecodeWAV(wav []byte) ([]int16, error) {
	pcm, err := prompt.DecodeWAV(bytes.NewReader(wav))
	if err != nil {
		return nil, fmt.Errorf("bottest: %w", err)
	}
	return pcm, nil
}

// EncodeWAV writes 8 kHz mono PCM as a WAV file.
func EncodeWAV(pcm []int16) []byte { return prompt.EncodeWAV(pcm, 8000) }

// trimSilence drops the frames at both ends of env quieter than a tenth of
// its loudest and puts one silent frame at each end instead: the sound is
// then told by its shape, and a steady tone by its onset and end.
func trimSilence(env []float64) []float64 {
	var peak float64
	for _, v := range env {
		peak = max(peak, v)
	}
	lo, hi := 0, len(env)
	for lo < hi && env[lo] <= peak/10 {
		lo++
	}
	for hi > lo && env[hi-1] <= peak/10 {
		hi--
	}
	if lo == hi {
		return nil
	}
	out := make([]float64, 0, hi-lo+2)
	out = append(out, 0)
	out = append(out, env[lo:hi]...)
	return append(out, 0)
}

// Beeps counts the recording beeps (recordResponse's playBeep: 1 kHz for
// 300 ms) in 8 kHz PCM: runs of at least 200 ms of frames whose energy is
// almost all at 1 kHz.
func Beeps(pcm []int16) int {
	const n = 160
	count, run := 0, 0
	for i := 0; i+n <= len(pcm); i += n {
		if toneFrame(pcm[i:i+n], 1000) {
			run++
			if run == 10 {
				count++
			}
			continue
		}
		run = 0
	}
	return count
}

// toneFrame says whether a frame is loud and nearly all of it at freq Hz
// (Goertzel, normalised by the frame's energy: 1 for a pure tone).
func toneFrame(frame []int16, freq float64) bool {
	coeff := 2 * math.Cos(2*math.Pi*freq/8000)
	var s1, s2, energy float64
	for _, v := range frame {
		x := float64(v)
		s1, s2 = x+coeff*s1-s2, s1
		energy += x * x
	}
	if energy/float64(len(frame)) < 300*300 {
		return false
	}
	power := s1*s1 + s2*s2 - coeff*s1*s2
	return 2*power/(float64(len(frame))*energy) > 0.7
}
