package mixer

// The limiter keeps a sum of talkers inside 16 bits without wrapping and
// without the crackle of hard clipping. It is a gain limiter with a frame
// of look-ahead: the mix of a whole 20 ms frame is known before any of it
// is written, so the gain can come down before a peak instead of after
// it. The frame is cut into blocks of 5 ms; each block whose peak exceeds
// full scale gets a target gain that brings the peak to full scale, and
// the gain moves linearly from block edge to block edge, each edge
// taking the smaller of the targets of the blocks on either side. A ramp
// between two gains that are both at most a block's target keeps every
// sample of the block in range, so the final saturation is only a safety
// net (it catches the gain step at a frame's first edge, which the limiter
// could not see coming, and the rounding). The gain then recovers towards
// 1 with a time constant of about 80 ms.
//
// There is no knee below full scale: a soft knee would colour a single
// loud talker, whose samples fit in 16 bits by definition. Here anything
// that fits passes bit for bit, and only sums that would overflow are
// scaled, smoothly, never folded.
const (
	limBlock   = Samples16k / 4 // 5 ms at 16 kHz
	limPeak    = 32768          // peaks up to this pass (a lone −32768 is no overload)
	limRelease = 0.06           // share of the gain reduction recovered per block: τ ≈ 80 ms
	limSnap    = 0.9999         // a gain this close to 1 becomes 1, and exact pass-through resumes
)

// limiter is one output's limiter state; the zero value is ready (gain 1).
// It belongs to the conference's tick.
type limiter struct {
	cut float32 // 1 − gain at the end of the last frame
}

// process writes src (a sum in int32, a whole number of blocks, at most
// four) into dst, limited to int16. It allocates nothing.
func (l *limiter) process(dst []int16, src []int32) {
	nb := len(src) / limBlock
	dst = dst[:len(src)]
	var target [4]float32
	for b := range nb {
		var peak int32
		for _, v := range src[b*limBlock : (b+1)*limBlock] {
			peak = max(peak, v, -v)
		}
		target[b] = 1
		if peak > limPeak {
			target[b] = (limPeak - 1) / float32(peak)
		}
	}
	g0 := min(1-l.cut, target[0])
	for b := range nb {
		g1 := min(g0+(1-g0)*limRelease, target[b])
		if b+1 < nb {
			g1 = min(g1, target[b+1])
		}
		if g1 >= limSnap {
			g1 = 1
		}
		in, out := src[b*limBlock:(b+1)*limBlock], dst[b*limBlock:(b+1)*limBlock]
		if g0 == 1 && g1 == 1 {
			for i, v := range in {
				out[i] = sat16(v)
			}
		} else {
			g, dg := g0, (g1-g0)/limBlock
			for i, v := range in {
				g += dg
				out[i] = sat16(round32(float32(v) * g))
			}
		}
		g0 = g1
	}
	l.cut = 1 - g0
}

// round32 rounds v to the nearest integer, halves away from zero.
func round32(v float32) int32 {
	if v < 0 {
		return int32(v - 0.5)
	}
	return int32(v + 0.5)
}
