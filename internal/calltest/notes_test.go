package calltest

import (
	"testing"

	"github.com/switchboard-voice/switchboard/internal/media/g711"
)

// What a call does to audio under load: G.711 coding, a slice taken from
// the middle, frames dropped to catch up and frames repeated after a
// stall. The notes survive; a different melody's do not match.
func TestNotesSurviveG711AndSlips(t *testing.T) {
	sent := Melody(30, 1)
	part := sent[8000*5+37 : 8000*12]
	var got []int16
	got = append(got, part[:8000]...)
	got = append(got, part[8000+9*160:8000*3]...)   // 9 frames dropped
	got = append(got, part[8000*3-4*160:8000*4]...) // 4 frames played twice
	got = append(got, make([]int16, 3*160)...)      // a gap
	got = append(got, part[8000*4+3*160:]...)       // and lost meanwhile
	enc := make([]byte, len(got))
	g711.EncodeUlaw(enc, got)
	g711.DecodeUlaw(got, enc)

	all, heard := Notes(sent), Notes(got)
	if len(heard) < 15 {
		t.Fatalf("%d notes in 7 s of melody: %v", len(heard), heard)
	}
	if !NotesIn(heard, all) {
		t.Fatalf("the notes of the slipped copy %v are not in the melody's %v", heard, all)
	}
	if other := Notes(Melody(7, 2)); NotesIn(other, all) {
		t.Fatalf("another melody's notes %v match %v", other, all)
	}
	if n := Notes(make([]int16, 8000)); len(n) != 0 {
		t.Fatalf("silence has notes %v", n)
	}
}
