package dtmf

import "math"

// DefaultAmplitude is the peak of each of the two sines a Generator makes,
// about -12 dBFS each: loud enough for any detector, far from clipping.
const DefaultAmplitude = 8000

// Generator makes dual-tone PCM at 8 kHz, one block at a time, keeping
// phase across blocks. The zero value is silent; a Generator is owned by
// one goroutine.
type Generator struct {
	// Two recursive sine oscillators: y[n] = 2cos(w)·y[n-1] - y[n-2].
	k1, k2         float64
	a1, b1, a2, b2 float64
	on             bool
}

// Start begins tone (a character of Tones) at the given peak amplitude per
// sine (0 = DefaultAmplitude); it reports false for an unknown tone.
func (g *Generator) Start(tone byte, amplitude float64) bool {
	lo, hi, ok := Frequencies(tone)
	if !ok {
		g.on = false
		return false
	}
	if amplitude == 0 {
		amplitude = DefaultAmplitude
	}
	w1, w2 := 2*math.Pi*lo/8000, 2*math.Pi*hi/8000
	// y[-1] = A·sin(-w), y[-2] = A·sin(-2w), so y[0] = A·sin(0).
	g.k1, g.a1, g.b1 = 2*math.Cos(w1), amplitude*math.Sin(-w1), amplitude*math.Sin(-2*w1)
	g.k2, g.a2, g.b2 = 2*math.Cos(w2), amplitude*math.Sin(-w2), amplitude*math.Sin(-2*w2)
	g.on = true
	return true
}

// Stop makes the generator silent.
func (g *Generator) Stop() { g.on = false }

// Read fills pcm with the next samples (zeros when stopped).
func (g *Generator) Read(pcm []int16) {
	if !g.on {
		clear(pcm)
		return
	}
	k1, a1, b1, k2, a2, b2 := g.k1, g.a1, g.b1, g.k2, g.a2, g.b2
	for i := range pcm {
		y1 := k1*a1 - b1
		y2 := k2*a2 - b2
		b1, a1 = a1, y1
		b2, a2 = a2, y2
		pcm[i] = int16(y1 + y2)
	}
	g.a1, g.b1, g.a2, g.b2 = a1, b1, a2, b2
}
