package mixer

import (
	"fmt"
	"sync/atomic"
)

// Format is the form of a participant's audio: its input is linear PCM
// at 8 or 16 kHz, and its output may also be G.711, encoded once per
// distinct mix by the conference's tick and shared by every participant
// that hears that mix.
type Format uint8

// The formats. Linear8k is the zero value.
const (
	Linear8k  Format = iota // int16 PCM at 8 kHz: 160 samples a frame
	Linear16k               // int16 PCM at 16 kHz: 320 samples a frame (wideband, app-hosted media)
	PCMU                    // G.711 µ-law at 8 kHz: 160 bytes a frame
	PCMA                    // G.711 A-law at 8 kHz: 160 bytes a frame
	numFormats
)

func (f Format) String() string {
	switch f {
	case Linear8k:
		return "linear8k"
	case Linear16k:
		return "linear16k"
	case PCMU:
		return "PCMU"
	case PCMA:
		return "PCMA"
	}
	return fmt.Sprintf("Format(%d)", uint8(f))
}

// samples is the number of PCM samples in a frame of a linear format.
func (f Format) samples() int {
	if f == Linear16k {
		return Samples16k
	}
	return Samples8k
}

// Frame is one 20 ms frame of a participant's output, as Participant.Read
// returns it. A Frame is a plain value: the caller owns it and may keep
// one per session and reuse it every tick.
type Frame struct {
	format  Format
	silent  bool
	mix     int
	tick    uint64
	pcm     [Samples16k]int16
	payload [Samples8k]byte
}

// Format is the frame's format: the participant's output format when the
// conference mixed it.
func (f *Frame) Format() Format { return f.format }

// Tick is the number of the conference tick that mixed the frame.
func (f *Frame) Tick() uint64 { return f.tick }

// Mix identifies the mix the frame carries within its tick: frames of
// one tick with the same Mix hold the same audio. 0 is the common mix
// (everyone selected, heard by everyone not selected), 0 < i ≤ Speakers
// the mix of the i-th selected speaker (everyone selected but that
// speaker), and i > Speakers that of one listener without its own prompt
// (ParticipantOptions.Without). An integration encoding for itself (a
// codec the mixer does not know) encodes once per (Tick, Mix) and shares
// the result.
func (f *Frame) Mix() int { return f.mix }

// Silent reports that the frame is digital silence: nobody was mixed into
// it, nor into the frame before it (whose tail the resampler carries
// over). A leg may send nothing for it, or comfort noise.
func (f *Frame) Silent() bool { return f.silent }

// PCM is the frame's samples for a linear format (160 or 320), nil for
// G.711. It aliases the frame.
func (f *Frame) PCM() []int16 {
	if f.format == Linear8k || f.format == Linear16k {
		return f.pcm[:f.format.samples()]
	}
	return nil
}

// Payload is the frame's G.711 payload (160 bytes, ready to follow an RTP
// header), nil for a linear format. It aliases the frame.
func (f *Frame) Payload() []byte {
	if f.format == PCMU || f.format == PCMA {
		return f.payload[:]
	}
	return nil
}

// copyFrom copies the used part of src.
func (f *Frame) copyFrom(src *Frame) {
	f.format, f.silent, f.mix, f.tick = src.format, src.silent, src.mix, src.tick
	switch src.format {
	case Linear8k, Linear16k:
		copy(f.pcm[:], src.pcm[:src.format.samples()])
	default:
		copy(f.payload[:], src.payload[:])
	}
}

// Ring depths. A producer and its consumer tick at different phases of
// the same 20 ms clock, so a frame normally waits less than a tick; a tick
// run late or skipped on either side can leave two queued, and then the
// older goes now and one stays (no audio is lost, the delay stays under
// two ticks). More than ringKeep queued (a stall, a burst) are trimmed
// to the newest ringKeep. Four slots leave the producer room while the
// consumer holds one.
const (
	ringSlots = 4
	ringKeep  = 2
)

// inFrame is one frame of a participant's input on its way to the
// conference's tick, with its energy, which the producer computes.
type inFrame struct {
	ms  float32 // mean square
	pcm [Samples16k]int16
}

// inRing carries a participant's input from its producer (Write) to the
// conference's tick: a single-producer, single-consumer ring like the
// media engine's bridge links, two atomic operations a frame, no lock,
// no allocation.
type inRing struct {
	head atomic.Uint32 // next slot the producer writes; written by the producer
	_    [60]byte      // keep head and tail on separate cache lines
	tail atomic.Uint32 // next slot the tick takes; written by the tick
	_    [60]byte
	slot [ringSlots]inFrame
}

// outRing carries a participant's mixed frames from the conference's
// tick to its consumer (Read); the same kind of ring.
type outRing struct {
	head atomic.Uint32 // next slot the tick writes; written by the tick
	_    [60]byte
	tail atomic.Uint32 // next slot the consumer reads; written by the consumer
	_    [60]byte
	slot [ringSlots]Frame
}
