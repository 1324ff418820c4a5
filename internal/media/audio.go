package media

import (
	"math"
	"sync"
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

// HoldChime is the built-in hold music (https://learn.microsoft.com/graph/api/participant-startholdmusic), played looped
// to a held participant when neither the bot's customPrompt nor the
// media.holdMusic setting names any: a soft two-note chime, C5 then A4 like
// a doorbell, then quiet, four seconds to a loop. Every partial lies below
// 1100 Hz, so no pair of them can pass for a DTMF key (whose column tones
// start at 1209 Hz) at the far end. It is made once, on first use, and
// shared.
func HoldChime() *Audio { return holdChime() }

var holdChime = sync.OnceValue(func() *Audio {
	const (
		loop   = 4 * SampleRate     // samples
		second = SampleRate / 2     // the second note starts 0.5 s in
		ring   = 1.8 * SampleRate   // each note rings this long
		peak   = 0.16 * 32767       // about -16 dBFS: soft
		attack = 0.008 * SampleRate // no click at the strike
	)
	pcm := make([]float64, loop)
	note := func(start int, f float64) {
		// A bell-like tone: the fundamental, a softer octave that
		// fades faster, and a trace of the fifth above it.
		for i := 0; i < ring && start+i < loop; i++ {
			t := float64(i) / SampleRate
			env := math.Exp(-t / 0.5)
			if float64(i) < attack {
				env *= float64(i) / attack
			}
			ph := 2 * math.Pi * f * t
			pcm[start+i] += peak * env * (math.Sin(ph) + 0.3*math.Exp(-t/0.25)*math.Sin(2*ph) + 0.08*math.Exp(-t/0.15)*math.Sin(1.5*ph))
		}
	}
	note(0, 523.25)      // C5
	note(second, 440.00) // A4
	out := make([]int16, loop)
	for i, v := range pcm {
		out[i] = int16(max(-32767, min(32767, v)))
	}
	return NewAudio(out)
})
