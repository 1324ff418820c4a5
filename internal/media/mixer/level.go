package mixer

import "math"

// fullScale2 is the mean square of a full-scale square wave in 16-bit
// units: 0 dBov, the overload point RFC 6464 §3 measures levels from.
const fullScale2 = 32767.0 * 32767.0

// meanSquare is the mean of the squared samples, in 16-bit units: the
// frame's energy, from which its level, the voice activity and the
// speaker ranking are derived. It allocates nothing.
func meanSquare(pcm []int16) float32 {
	if len(pcm) == 0 {
		return 0
	}
	var s0, s1 int64
	i := 0
	for ; i+2 <= len(pcm); i += 2 {
		a, b := int64(pcm[i]), int64(pcm[i+1])
		s0 += a * a
		s1 += b * b
	}
	if i < len(pcm) {
		a := int64(pcm[i])
		s0 += a * a
	}
	return float32(s0+s1) / float32(len(pcm))
}

// AudioLevel is the level of pcm as RFC 6464 §3 defines it: 0 to 127,
// the level in −dBov (0 is a full-scale square wave, a full-scale sine
// is 3), with 127 for digital silence and anything quieter than
// −127 dBov, computed over the samples as RFC 6465 Appendix A does. It
// allocates nothing.
func AudioLevel(pcm []int16) uint8 { return levelOf(meanSquare(pcm)) }

// levelOf is the RFC 6464 level of a mean square in 16-bit units.
func levelOf(ms float32) uint8 {
	if ms <= 0 {
		return 127
	}
	l := math.Round(-10 * math.Log10(float64(ms)/fullScale2))
	return uint8(max(0, min(127, l)))
}

// meanSquareAt is the mean square of a signal at dbov dBov.
func meanSquareAt(dbov float64) float32 { return float32(fullScale2 * math.Pow(10, dbov/10)) }
