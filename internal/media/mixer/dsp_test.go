package mixer

import (
	"math"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// goertzel returns the amplitude (in int16 units) of the freq Hz
// component of x sampled at rate. For the tests' tones, multiples of
// 50 Hz, over whole frames, freq is exactly on a DFT bin and the others
// leak nothing into it.
func goertzel(x []int16, freq float64, rate int) float64 {
	w := 2 * math.Pi * freq / float64(rate)
	coeff := 2 * math.Cos(w)
	var s1, s2 float64
	for _, v := range x {
		s1, s2 = float64(v)+coeff*s1-s2, s1
	}
	re := s1 - s2*math.Cos(w)
	im := s2 * math.Sin(w)
	return 2 * math.Hypot(re, im) / float64(len(x))
}

// db is the ratio a/ref in dB.
func db(a, ref float64) float64 { return 20 * math.Log10(math.Max(a, 1e-9)/ref) }

// toneGen makes a continuous sine, frame by frame.
type toneGen struct {
	freq, amp float64 // Hz, share of full scale
	rate      int
	k         int // samples made
}

func (g *toneGen) next(dst []int16) []int16 {
	for i := range dst {
		dst[i] = int16(math.Round(g.amp * 32767 * math.Sin(2*math.Pi*g.freq*float64(g.k)/float64(g.rate))))
		g.k++
	}
	return dst
}
