package main

import (
	"math"
	"os"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/sdk"
)

// A track lays its frames on the media clock (silence before the first
// and over a gap), names its file after the participant, and tells speech
// from silence with a hangover that bridges short pauses.
func TestTrackWAVAndSpeech(t *testing.T) {
	dir := t.TempDir()
	taken := map[string]bool{}
	tr, err := newTrack(dir, sdk.MediaSource{ParticipantID: "p1", DisplayName: "Ann Lee"}, 7, taken)
	if err != nil {
		t.Fatal(err)
	}
	other, err := newTrack(dir, sdk.MediaSource{ParticipantID: "p2", DisplayName: "Ann Lee"}, 9, taken)
	if err != nil {
		t.Fatal(err)
	}
	if tr.path != dir+"/Ann_Lee.wav" || other.path != dir+"/Ann_Lee-9.wav" {
		t.Fatalf("files %s and %s", tr.path, other.path)
	}
	var f sdk.MediaFrame
	loud := func(on bool) {
		for i := range f.PCM {
			f.PCM[i] = 0
			if on {
				f.PCM[i] = int16(3000 * math.Sin(2*math.Pi*440*float64(i)/16000))
			}
			f.Raw[2*i], f.Raw[2*i+1] = byte(f.PCM[i]), byte(uint16(f.PCM[i])>>8)
		}
	}
	var ended []Segment
	add := func(n int64, on bool) {
		loud(on)
		if s, ok := tr.add(&f, n); ok {
			ended = append(ended, s)
		}
	}
	// Frames 10-59 loud (a 200 ms pause at 30-39 bridged), a gap at 60-69,
	// then quiet until 100; a click at 120; loud from 150 to the end.
	for n := int64(10); n < 60; n++ {
		add(n, n < 30 || n >= 40)
	}
	for n := int64(70); n < 100; n++ {
		add(n, false)
	}
	add(120, true)
	for n := int64(121); n < 150; n++ {
		add(n, false)
	}
	for n := int64(150); n < 160; n++ {
		add(n, true)
	}
	add(155, true) // late: ignored
	last, ok, err := tr.close()
	if err != nil || !ok {
		t.Fatalf("close: %v %v", err, ok)
	}
	want := []Segment{{200 * time.Millisecond, 1200 * time.Millisecond}}
	if len(ended) != 1 || ended[0] != want[0] || last != (Segment{3 * time.Second, 3200 * time.Millisecond}) {
		t.Fatalf("segments %v then %v", ended, last)
	}
	if len(tr.speech) != 2 || tr.spoken() != 1200*time.Millisecond {
		t.Fatalf("speech %v (%s)", tr.speech, tr.spoken())
	}
	data, err := os.ReadFile(tr.path)
	if err != nil {
		t.Fatal(err)
	}
	pcm, err := readWAV16k(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(pcm) != 160*sdk.FrameSamples {
		t.Fatalf("%d samples, want 160 frames", len(pcm))
	}
	if pcm[9*320+5] != 0 || pcm[10*320+5] == 0 || pcm[65*320+5] != 0 {
		t.Fatal("the frames are not where the media clock puts them")
	}
	if _, _, err := other.close(); err != nil {
		t.Fatal(err)
	}
}
