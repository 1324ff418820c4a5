package mixer

import (
	"fmt"
	"math"
	"sync/atomic"
)

// Role is what a participant is to the conference; it sets what the
// participant starts out doing (see Participant.SetContributes and
// SetHears) and whether speaker selection applies to it.
type Role uint8

// The roles.
const (
	// Talker contributes and hears everyone but itself (N−1). It
	// competes for the Speakers places in the mix.
	Talker Role = iota
	// Listener hears the common mix, every selected speaker, and
	// contributes nothing: a recorder of the conference, a bot's
	// app-hosted media socket, a participant waiting to speak.
	Listener
	// Prompt contributes to every hearer's mix outside speaker selection
	// and never hears: an announcement or hold music played to the whole
	// conference. Prompts are not ranked, not counted against Speakers and
	// never dominant; SetHears does not apply to them.
	Prompt
)

func (r Role) String() string {
	switch r {
	case Talker:
		return "talker"
	case Listener:
		return "listener"
	case Prompt:
		return "prompt"
	}
	return fmt.Sprintf("Role(%d)", uint8(r))
}

// Participant flags, in Participant.flags.
const (
	flagContributes = 1 << iota
	flagHears
	flagKeep16k
)

// ParticipantOptions describes a participant to Conference.Add.
type ParticipantOptions struct {
	// ID is the caller's name for the participant (call control's
	// participant id); the mixer only reports it back.
	ID string
	// Role is what the participant is; Talker by default.
	Role Role
	// Input is the rate of the frames given to Write: Linear8k (the
	// default; a G.711 leg, decoded) or Linear16k (wideband).
	Input Format
	// Output is the form Read returns the participant's mix in: Linear8k
	// by default, Linear16k, PCMU or PCMA.
	Output Format
	// Without, for a Listener, is a Prompt of the same conference that it
	// does not hear: a bot's port in a conference several bots share
	// records everyone, the other bots' prompts included, but its own
	// (N−1 for the port, as for a talker). While that prompt is mixed,
	// the listener gets a mix of its own, the common mix less the
	// prompt; otherwise it hears the common mix.
	Without *Participant
}

// ParticipantStats are a participant's counters since it was added.
type ParticipantStats struct {
	InputDropped  uint64 // frames Write refused: the conference's tick had not taken the last four
	InputMissing  uint64 // ticks with no frame from it while it contributed
	InputTrimmed  uint64 // frames the tick skipped to bound the delay (a burst)
	OutputDropped uint64 // mixed frames not queued: Read had not taken the last four
	OutputTrimmed uint64 // mixed frames Read skipped to bound the delay
}

// Participant is one member of a conference: a source (Write), a sink
// (Read), or both. It is made by Conference.Add and stays valid after
// Conference.Remove (Write and Read then go nowhere).
//
// Concurrency: Write is called by one goroutine at a time, the
// participant's producer (its session's tick); Read by one goroutine at a
// time, its consumer (the same session's tick, usually); each talks to the
// conference's tick through its own single-producer, single-consumer ring,
// so neither locks nor contends with anything but that ring's two
// counters. The setters and accessors are safe for concurrent use from any
// goroutine; a setting takes effect at the next conference tick.
type Participant struct {
	conf    *Conference
	id      string
	role    Role
	input   Format
	without *Participant // a Listener's own prompt (ParticipantOptions.Without)
	own     *bus         // the mix without it; nil without one

	flags   atomic.Uint32 // flagContributes, flagHears
	output  atomic.Uint32 // Format
	removed atomic.Bool

	// Published by the conference's tick, for anyone.
	energy   atomic.Uint32 // float32 bits: the smoothed mean square
	speaking atomic.Bool
	mixed    atomic.Bool

	inDropped  atomic.Uint64 // written by the producer
	missing    atomic.Uint64 // written by the tick
	inTrimmed  atomic.Uint64 // written by the tick
	outDropped atomic.Uint64 // written by the tick
	outTrimmed atomic.Uint64 // written by the consumer

	in  inRing
	out outRing

	t tickState // owned by the conference's tick
}

// tickState is the part of a participant only the conference's tick
// touches.
type tickState struct {
	fl       uint32   // flags, loaded once per tick
	frame    *inFrame // this tick's input frame, still in the ring; nil if none
	took     uint32   // its ring position
	src      []int16  // this tick's contribution to the mix at 16 kHz, nil if none
	srcTick  uint64   // the tick src was set in (a removed prompt's is stale)
	onOwn    bool     // a listener with Without hears its own mix this tick
	e        float32  // smoothed mean square
	hang     int      // ticks of voice activity left (hangover)
	speaking bool
	slot     int // place among the selected speakers, -1 if none
	idle     bool
	up       Upsampler // 8 kHz input: continuous across ticks, mixed or not
	in16     [Samples16k]int16
	kept     uint64 // the tick in16 holds this tick's input, whether mixed or not (flagKeep16k)
}

// ID is the participant's name, as given to Add.
func (p *Participant) ID() string { return p.id }

// Role is the participant's role, as given to Add.
func (p *Participant) Role() Role { return p.role }

// Input is the rate Write takes: Linear8k or Linear16k.
func (p *Participant) Input() Format { return p.input }

// Write queues one 20 ms frame of the participant's input: 160 samples
// for a Linear8k input, 320 for Linear16k. It copies pcm and computes the
// frame's energy here, on the producer's goroutine, so that the
// conference's tick does not have to. It returns false and drops the
// frame when pcm is not one frame, or when the conference's tick has not
// taken the last four (it has stalled; counted in InputDropped). The
// conference takes one frame per tick; a producer that falls behind
// simply leaves a tick without its frame, which counts as silence (see
// the package comment). Write allocates nothing; one goroutine at a time.
func (p *Participant) Write(pcm []int16) bool {
	if len(pcm) != p.input.samples() {
		return false
	}
	r := &p.in
	h := r.head.Load()
	if h-r.tail.Load() >= ringSlots {
		p.inDropped.Add(1)
		return false
	}
	f := &r.slot[h%ringSlots]
	copy(f.pcm[:], pcm)
	f.ms = meanSquare(pcm)
	r.head.Store(h + 1)
	return true
}

// Read moves the oldest mixed frame not yet read into f and reports
// whether there was one. One frame is mixed per conference tick; the
// sessions tick at other phases of the same clock, so a frame normally
// waits less than a tick. When more than two are waiting (the consumer
// stalled), the older ones are skipped. Read allocates nothing; one
// goroutine at a time.
func (p *Participant) Read(f *Frame) bool {
	r := &p.out
	t, h := r.tail.Load(), r.head.Load()
	n := h - t
	if n == 0 {
		return false
	}
	if n > ringKeep {
		p.outTrimmed.Add(uint64(n - ringKeep))
		t = h - ringKeep
	}
	f.copyFrom(&r.slot[t%ringSlots])
	r.tail.Store(t + 1) // the slot is the tick's again only now
	return true
}

// SetContributes turns the participant's contribution on or off: muted,
// or in the lobby, it is mixed into nobody's audio, loses its place among
// the speakers at the next tick and cannot become dominant (its level is
// still measured: "you are muted" hints). Talkers and prompts start on,
// listeners off.
func (p *Participant) SetContributes(on bool) { p.setFlag(flagContributes, on) }

// SetHears turns the participant's output on or off: off (in the lobby,
// or playing a feed of its own), no frames are queued for Read. Talkers
// and listeners start on. It does nothing for a prompt, which never hears.
func (p *Participant) SetHears(on bool) {
	if p.role != Prompt {
		p.setFlag(flagHears, on)
	}
}

func (p *Participant) setFlag(f uint32, on bool) {
	if on {
		p.flags.Or(f)
	} else {
		p.flags.And(^uint32(f))
	}
}

// SetKeep16k asks the tick to make the participant's input at 16 kHz
// every tick it has one, mixed or not, for Input16k: an 8 kHz talker
// whose own audio an app-hosted bot receives unmixed. The mixer's one
// upsampler per participant serves both, so the stream stays continuous.
func (p *Participant) SetKeep16k(on bool) { p.setFlag(flagKeep16k, on) }

// Input16k is the participant's input of the last Tick at 16 kHz, nil
// when it had none (or SetKeep16k was off for that tick, or its input is
// not 8 kHz). It is for the goroutine that calls Tick, after it, and
// aliases the participant's buffer until the next Tick.
func (p *Participant) Input16k() []int16 {
	if p.input != Linear8k || p.t.kept == 0 || p.t.kept != p.conf.n {
		return nil
	}
	return p.t.in16[:]
}

// Contributes reports whether the participant is mixed into others' audio
// when loud enough (SetContributes).
func (p *Participant) Contributes() bool { return p.flags.Load()&flagContributes != 0 }

// Hears reports whether frames are queued for the participant (SetHears).
func (p *Participant) Hears() bool { return p.flags.Load()&flagHears != 0 }

// SetOutput changes the form of the participant's mix from the next tick
// on (a leg renegotiated its codec). Frames already queued keep theirs:
// check Frame.Format.
func (p *Participant) SetOutput(f Format) error {
	if f >= numFormats {
		return fmt.Errorf("set output of %s: unknown format %v", p.id, f)
	}
	p.output.Store(uint32(f))
	return nil
}

// Output is the participant's output format (SetOutput).
func (p *Participant) Output() Format { return Format(p.output.Load()) }

// Level is the participant's recent input level, smoothed over about
// 150 ms, as an RFC 6464 level (0 loudest, 127 silence): what a roster
// shows. It is cheap: one atomic load and a logarithm.
func (p *Participant) Level() uint8 { return levelOf(math.Float32frombits(p.energy.Load())) }

// Speaking reports whether the participant's input is voice-active: a
// frame reached Options.VADThreshold within the last VADHangover. It is
// measured whether or not the participant contributes.
func (p *Participant) Speaking() bool { return p.speaking.Load() }

// Mixed reports whether the participant is one of the selected speakers,
// whose audio everyone hears.
func (p *Participant) Mixed() bool { return p.mixed.Load() }

// Stats returns the participant's counters.
func (p *Participant) Stats() ParticipantStats {
	return ParticipantStats{
		InputDropped:  p.inDropped.Load(),
		InputMissing:  p.missing.Load(),
		InputTrimmed:  p.inTrimmed.Load(),
		OutputDropped: p.outDropped.Load(),
		OutputTrimmed: p.outTrimmed.Load(),
	}
}
