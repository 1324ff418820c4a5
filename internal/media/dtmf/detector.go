package dtmf

import "math"

// Detection thresholds. Powers are mean squares in 16-bit sample units, so
// a sine of peak A measures A²/2.
const (
	// minTonePower: each of the two tones at least -40 dBFS RMS
	// (Q.24 asks for reception down to about -25 dBm0 ≈ -28 dBFS).
	minTonePower = 32768 * 32768 * 1e-4
	// toneShare: the two tones hold at least this share of the block's
	// energy; speech and noise spread theirs over the band.
	toneShare = 0.6
	// Twist limits (as most receivers apply Q.24): the row
	// tone may be up to 8 dB stronger than the column tone (normal twist),
	// the column tone up to 4 dB stronger than the row (reverse twist).
	maxNormalTwist  = 6.31 // 8 dB
	maxReverseTwist = 2.51 // 4 dB
	// peakMargin: the strongest tone of a group beats the others of the
	// group by 6 dB.
	peakMargin = 4.0
)

// DefaultMinDuration is how long, in samples at 8 kHz, a tone must be
// detected without a break before it is reported: 40 ms (Q.24 accepts
// tones of 40 ms and longer).
const DefaultMinDuration = 320

// coeffs are the Goertzel coefficients 2·cos(2πf/8000) for the four row
// then the four column frequencies, evaluated at the exact frequencies
// rather than the nearest DFT bins.
var coeffs = func() (c [8]float64) {
	for i, f := range rowFreqs {
		c[i] = 2 * math.Cos(2*math.Pi*f/8000)
	}
	for i, f := range colFreqs {
		c[4+i] = 2 * math.Cos(2*math.Pi*f/8000)
	}
	return c
}()

// Classify runs the Goertzel filters over one block of 8 kHz PCM and
// returns the tone it holds, if the block passes the level, share, twist
// and peak checks. Blocks of 80 to 410 samples work; 160 (20 ms) is what
// the media engine feeds. It allocates nothing.
func Classify(pcm []int16) (byte, bool) {
	n := len(pcm)
	if n == 0 {
		return 0, false
	}
	var total float64
	for _, v := range pcm {
		x := float64(v)
		total += x * x
	}
	// Most blocks are silence or quiet speech: the two tones cannot hold
	// more than the block's energy, so skip the filters.
	if total < 1.8*minTonePower*float64(n) {
		return 0, false
	}
	// The eight filters run side by side in locals so they stay in
	// registers: this loop is the detector's whole cost.
	c0, c1, c2, c3 := coeffs[0], coeffs[1], coeffs[2], coeffs[3]
	c4, c5, c6, c7 := coeffs[4], coeffs[5], coeffs[6], coeffs[7]
	var a0, a1, a2, a3, a4, a5, a6, a7 float64 // s[n-1]
	var b0, b1, b2, b3, b4, b5, b6, b7 float64 // s[n-2]
	for _, v := range pcm {
		x := float64(v)
		a0, b0 = x+c0*a0-b0, a0
		a1, b1 = x+c1*a1-b1, a1
		a2, b2 = x+c2*a2-b2, a2
		a3, b3 = x+c3*a3-b3, a3
		a4, b4 = x+c4*a4-b4, a4
		a5, b5 = x+c5*a5-b5, a5
		a6, b6 = x+c6*a6-b6, a6
		a7, b7 = x+c7*a7-b7, a7
	}
	// |X(f)|² = s1² + s2² - c·s1·s2; 2|X|²/n² is the mean power of the
	// sine at f.
	norm := 2 / (float64(n) * float64(n))
	s1 := [8]float64{a0, a1, a2, a3, a4, a5, a6, a7}
	s2 := [8]float64{b0, b1, b2, b3, b4, b5, b6, b7}
	var p [8]float64
	for k := range 8 {
		p[k] = (s1[k]*s1[k] + s2[k]*s2[k] - coeffs[k]*s1[k]*s2[k]) * norm
	}
	r, c := peak(p[:4]), peak(p[4:])
	pr, pc := p[r], p[4+c]
	switch {
	case pr < minTonePower || pc < minTonePower:
		return 0, false
	case pr+pc < toneShare*total/float64(n):
		return 0, false
	case pr > pc*maxNormalTwist || pc > pr*maxReverseTwist:
		return 0, false
	}
	for k := range 4 {
		if k != r && p[k]*peakMargin > pr {
			return 0, false
		}
		if k != c && p[4+k]*peakMargin > pc {
			return 0, false
		}
	}
	return keypad[r][c], true
}

func peak(p []float64) int {
	best := 0
	for i := 1; i < len(p); i++ {
		if p[i] > p[best] {
			best = i
		}
	}
	return best
}

// Detector finds DTMF presses in a stream of 8 kHz PCM blocks: a tone is
// reported once, after it has been classified for MinDuration samples
// without a break, and the detector re-arms when a block without that tone
// arrives. The zero value is ready to use. A Detector is owned by one
// goroutine.
type Detector struct {
	// MinDuration is the stable time, in samples, before a tone is
	// reported; 0 means DefaultMinDuration.
	MinDuration int

	cand     byte // tone seen in the latest blocks, 0 = none
	held     int  // samples cand has been seen for
	reported bool // cand has been reported
}

// Process classifies one block and returns a tone the first time a press
// has lasted long enough. Feed blocks in order; skip blocks that stand for
// lost packets rather than feeding silence, so a lost packet mid-tone does
// not split one press into two.
func (d *Detector) Process(pcm []int16) (byte, bool) {
	t, ok := Classify(pcm)
	if !ok {
		d.cand, d.held, d.reported = 0, 0, false
		return 0, false
	}
	switch d.cand {
	case t:
	case anyTone:
		d.cand = t // the press SkipCurrent skips
	default:
		d.cand, d.held, d.reported = t, 0, false
	}
	d.held += len(pcm)
	need := d.MinDuration
	if need <= 0 {
		need = DefaultMinDuration
	}
	if !d.reported && d.held >= need {
		d.reported = true
		return t, true
	}
	return 0, false
}

// Reset forgets any tone in progress.
func (d *Detector) Reset() { d.cand, d.held, d.reported = 0, 0, false }

// anyTone is a candidate that matches whatever tone comes next.
const anyTone = 0xff

// SkipCurrent makes the press under way, if any, go unreported: the tone
// found in the next blocks, until a block without it, counts as already
// reported. Use it when detection starts in the middle of the audio (a
// press that began before anyone listened is not a new press).
func (d *Detector) SkipCurrent() { d.cand, d.held, d.reported = anyTone, 0, true }
