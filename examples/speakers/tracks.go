package main

import (
	"bufio"
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/switchboard-voice/switchboard/sdk"
)

// Speech is told from silence by each 20 ms frame's level: louder than
// speakingRMS (about -40 dBFS) is speech; a segment ends after hangover of
// quiet, so the gaps between words do not split it, and segments shorter
// than minSegment (a click, a cough) are not reported.
const (
	speakingRMS = 300
	hangover    = 400 * time.Millisecond
	minSegment  = 200 * time.Millisecond
)

// Segment is a stretch of one participant's speech, in time since the
// bot's first frame (the call's media clock).
type Segment struct{ From, To time.Duration }

func (s Segment) String() string {
	return fmt.Sprintf("%.2fs-%.2fs", s.From.Seconds(), s.To.Seconds())
}

// track is one participant's stream: its WAV file, 16 kHz mono, laid on
// the call's media clock from the bot's first frame (silence before the
// participant's first frame and over any frames missed), and its speech.
// A track is owned by the goroutine reading the socket.
type track struct {
	source   uint32
	name     string // displayName, else the participant id
	pid      string
	path     string
	f        *os.File
	w        *bufio.Writer
	frames   int64 // written, silence included
	speech   []Segment
	speaking bool
	start    time.Duration // of the segment in progress
	lastLoud time.Duration // end of its last loud frame
	err      error
}

var silence [sdk.FrameAudioBytes]byte

// newTrack creates the WAV file of a source in dir, named after the
// participant; taken is the names already used.
func newTrack(dir string, src sdk.MediaSource, id uint32, taken map[string]bool) (*track, error) {
	name := src.DisplayName
	if name == "" {
		name = src.ParticipantID
	}
	if name == "" {
		name = fmt.Sprintf("source-%d", id)
	}
	file := fileName(name)
	if taken[file] {
		file = fmt.Sprintf("%s-%d", file, id)
	}
	taken[file] = true
	path := filepath.Join(dir, file+".wav")
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	t := &track{source: id, name: name, pid: src.ParticipantID, path: path, f: f, w: bufio.NewWriterSize(f, 64<<10)}
	t.header(0) // the sizes are filled in by close
	return t, nil
}

// fileName keeps letters, digits, '-' and '_' of name, spaces as '_'.
func fileName(name string) string {
	var b strings.Builder
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '-', r == '_':
			b.WriteRune(r)
		case r == ' ':
			b.WriteByte('_')
		}
	}
	if b.Len() == 0 {
		return "participant"
	}
	return b.String()
}

// header writes a 44-byte WAV header for dataBytes of 16 kHz mono s16le.
func (t *track) header(dataBytes uint32) {
	var h [44]byte
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], 36+dataBytes)
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], 1) // PCM
	binary.LittleEndian.PutUint16(h[22:], 1) // mono
	binary.LittleEndian.PutUint32(h[24:], 16000)
	binary.LittleEndian.PutUint32(h[28:], 32000)
	binary.LittleEndian.PutUint16(h[32:], 2)
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], dataBytes)
	_, _ = t.w.Write(h[:])
}

// add writes frame number n (counted from the bot's first frame) and
// follows the speech in it. It returns a segment that ended, if one did.
func (t *track) add(f *sdk.MediaFrame, n int64) (Segment, bool) {
	if n < t.frames || t.err != nil {
		return Segment{}, false // a frame from before one already written
	}
	for ; t.frames < n; t.frames++ { // frames missed, or before this one came
		_, t.err = t.w.Write(silence[:])
	}
	if _, err := t.w.Write(f.Raw[:]); err != nil && t.err == nil {
		t.err = err
	}
	t.frames++

	var energy float64
	for _, v := range f.PCM {
		energy += float64(v) * float64(v)
	}
	at := time.Duration(n) * 20 * time.Millisecond
	if math.Sqrt(energy/sdk.FrameSamples) >= speakingRMS {
		if !t.speaking {
			t.speaking, t.start = true, at
		}
		t.lastLoud = at + 20*time.Millisecond
		return Segment{}, false
	}
	if t.speaking && at-t.lastLoud >= hangover {
		return t.endSegment()
	}
	return Segment{}, false
}

// endSegment closes the segment in progress; false if it was too short
// to be speech.
func (t *track) endSegment() (Segment, bool) {
	t.speaking = false
	s := Segment{t.start, t.lastLoud}
	if s.To-s.From < minSegment {
		return Segment{}, false
	}
	t.speech = append(t.speech, s)
	return s, true
}

// close ends the segment in progress and the file, with its sizes.
func (t *track) close() (Segment, bool, error) {
	s, ended := Segment{}, false
	if t.speaking {
		s, ended = t.endSegment()
	}
	if err := t.w.Flush(); err != nil && t.err == nil {
		t.err = err
	}
	if t.err == nil {
		var h [8]byte
		data := uint32(t.frames * sdk.FrameAudioBytes)
		binary.LittleEndian.PutUint32(h[0:], 36+data)
		binary.LittleEndian.PutUint32(h[4:], data)
		if _, err := t.f.WriteAt(h[0:4], 4); err != nil {
			t.err = err
		} else if _, err := t.f.WriteAt(h[4:8], 40); err != nil {
			t.err = err
		}
	}
	if err := t.f.Close(); err != nil && t.err == nil {
		t.err = err
	}
	return s, ended, t.err
}

// spoken is the time the participant spoke in all.
func (t *track) spoken() time.Duration {
	var d time.Duration
	for _, s := range t.speech {
		d += s.To - s.From
	}
	return d
}
