package media

import (
	"math"
	"time"

	"github.com/switchboard-voice/switchboard/internal/media/g711"
)

// Media format constants: the wire runs at 8 kHz G.711 in 20 ms frames.
const (
	SampleRate      = 8000
	FrameDuration   = 20 * time.Millisecond
	SamplesPerFrame = SampleRate / 50 // 160
)

// Codec is an RTP audio codec Switchboard speaks.
type Codec struct {
	Name        string // SDP encoding name: PCMU, PCMA
	PayloadType uint8
	ClockRate   uint32
}

// The codecs, in Switchboard's order of preference.
var (
	PCMU = Codec{Name: "PCMU", PayloadType: 0, ClockRate: 8000}
	PCMA = Codec{Name: "PCMA", PayloadType: 8, ClockRate: 8000}
)

// Audio is a sound ready to send: PCM at 8 kHz and its G.711 encodings,
// computed once and shared by every call that plays it (a prompt is
// transcoded once per codec, not once per call). It is immutable and safe
// for concurrent use.
type Audio struct {
	pcm  []int16
	ulaw []byte
	alaw []byte
}

// NewAudio encodes 8 kHz mono PCM; the tail is padded with silence to a
// whole number of 20 ms frames.
func NewAudio(pcm8k []int16) *Audio {
	n := (len(pcm8k) + SamplesPerFrame - 1) / SamplesPerFrame * SamplesPerFrame
	pcm := make([]int16, n)
	copy(pcm, pcm8k)
	a := &Audio{pcm: pcm, ulaw: make([]byte, n), alaw: make([]byte, n)}
	g711.EncodeUlaw(a.ulaw, pcm)
	g711.EncodeAlaw(a.alaw, pcm)
	return a
}

// PCM returns the 8 kHz samples. Callers must not modify them.
func (a *Audio) PCM() []int16 { return a.pcm }

// Payload returns the audio encoded for c (nil for an unknown codec).
// Callers must not modify it.
func (a *Audio) Payload(c Codec) []byte {
	switch c.Name {
	case PCMU.Name:
		return a.ulaw
	case PCMA.Name:
		return a.alaw
	}
	return nil
}

// Frames is the number of 20 ms frames.
func (a *Audio) Frames() int { return len(a.pcm) / SamplesPerFrame }

// Duration is how long the audio plays.
func (a *Audio) Duration() time.Duration { return time.Duration(a.Frames()) * FrameDuration }

// Size is the memory the audio holds, for cache accounting.
func (a *Audio) Size() int64 { return int64(len(a.pcm)*2 + len(a.ulaw) + len(a.alaw)) }

// Tone returns a sine of freq Hz at amplitude (0..1) lasting d.
func Tone(freq float64, amplitude float64, d time.Duration) *Audio {
	n := int(d.Seconds() * SampleRate)
	pcm := make([]int16, n)
	for i := range pcm {
		pcm[i] = int16(amplitude * 32767 * math.Sin(2*math.Pi*freq*float64(i)/SampleRate))
	}
	return NewAudio(pcm)
}

// Beep is the tone played before a recording (recordResponse playBeep).
var Beep = Tone(1000, 0.3, 300*time.Millisecond)
