package calltest

import (
	"math"
	"slices"
)

// Notes check audio by what it is made of rather than by its timing. A
// Melody is a sequence of tone segments; Notes reads the sequence back
// from audio with the Goertzel algorithm. The order of a dozen notes
// drawn from six identifies a stretch of melody beyond doubt, and
// survives what an energy envelope does not: under load the media engine
// skips ticks and the jitter buffer drops frames to catch up (a slip of up
// to ~200 ms), which moves everything after it and breaks one
// cross-correlation over the whole signal. Segments are longer than any
// slip, so none disappears.

// melodyFreqs are the notes, each centred on a 50 Hz Goertzel bin of a
// 160-sample frame, clear of the 1 kHz recording beep and of DTMF.
var melodyFreqs = []float64{450, 600, 750, 900, 1100, 1300}

// Melody is 8 kHz PCM of tone segments 240-440 ms long, each a note other
// than the one before, in an order that seed decides.
func Melody(seconds float64, seed int) []int16 {
	n := int(seconds * 8000)
	pcm := make([]int16, n)
	state := uint32(seed*2654435761 + 7)
	next := func() uint32 { state = state*1664525 + 1013904223; return state >> 16 }
	note, left := -1, 0
	for i := range pcm {
		if left == 0 {
			left = int(240+next()%201) * 8
			note = (max(note, 0) + 1 + int(next()%uint32(len(melodyFreqs)-1))) % len(melodyFreqs)
		}
		left--
		pcm[i] = int16(8000 * math.Sin(2*math.Pi*melodyFreqs[note]*float64(i)/8000))
	}
	return pcm
}

// Notes returns the notes of Melody heard in 8 kHz pcm, in order: the note
// of each 20 ms frame whose energy is mostly at one of the notes, runs of
// fewer than three such frames ignored, a note repeated (after frames of
// something else) counted once.
func Notes(pcm []int16) []int {
	const n = 160
	var out []int
	run, runLen := -1, 0
	for i := 0; i+n <= len(pcm); i += n {
		note := frameNote(pcm[i : i+n])
		if note != run {
			run, runLen = note, 0
		}
		runLen++
		if runLen == 3 && note >= 0 && (len(out) == 0 || out[len(out)-1] != note) {
			out = append(out, note)
		}
	}
	return out
}

// frameNote is the note a frame is made of, or -1: Goertzel power at each
// note against the frame's energy (a pure tone at a bin centre scores 1).
func frameNote(f []int16) int {
	var energy float64
	for _, v := range f {
		energy += float64(v) * float64(v)
	}
	if energy/float64(len(f)) < 300*300 { // quieter than about -40 dBFS
		return -1
	}
	best, at := 0.0, -1
	for k, freq := range melodyFreqs {
		coeff := 2 * math.Cos(2*math.Pi*freq/8000)
		var s1, s2 float64
		for _, v := range f {
			s1, s2 = float64(v)+coeff*s1-s2, s1
		}
		power := s1*s1 + s2*s2 - coeff*s1*s2
		if r := power / (float64(len(f)) / 2 * energy); r > best {
			best, at = r, k
		}
	}
	if best < 0.5 {
		return -1
	}
	return at
}

// NotesIn reports whether notes occur, in order and one after the other,
// in heard.
func NotesIn(notes, heard []int) bool {
	if len(notes) == 0 {
		return false
	}
	for i := 0; i+len(notes) <= len(heard); i++ {
		if slices.Equal(heard[i:i+len(notes)], notes) {
			return true
		}
	}
	return false
}
