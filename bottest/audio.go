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

// Similarity says how well want (8 kHz PCM) is found whole inside heard:
// the best correlation of want's envelope with any stretch of heard's, from
// -1 to 1. Above 0.8 it was heard; 0 when heard is shorter than want.
// Silence at want's start and end is not looked for (a recording that
// began late or a prompt padded with silence still match).
func Similarity(heard, want []int16) float64 {
	h, w := Envelope(heard), trimSilence(Envelope(want))
	if len(w) == 0 || len(h) < len(w) {
		return 0
	}
	// b = heard, a = want: lags 0..len(h)-len(w) put want wholly inside.
	best := -1.0
	for lag := 0; lag+len(w) <= len(h); lag++ {
		if c := correlation(w, h[lag:lag+len(w)]); c > best {
			best = c
		}
	}
	return best
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
