package mixer

import (
	"testing"

	"github.com/switchboard-voice/switchboard/internal/media/g711"
)

// member is one participant of a rig: its source, if it talks, and what
// it heard, decoded to PCM at its output rate.
type member struct {
	p     *Participant
	src   *toneGen // nil: writes nothing
	quiet bool     // skip writing (a stalled producer)
	heard []int16
	gaps  int // ticks it got no frame
	buf   [Samples16k]int16
	f     Frame
}

// rig drives a conference in lockstep: every member writes, the
// conference ticks, every member reads. Nothing runs concurrently, so
// what each member hears is exactly one tick of the mix.
type rig struct {
	t       testing.TB
	c       *Conference
	members []*member
	last    TickStats
}

func newRig(t testing.TB, o Options) *rig {
	t.Helper()
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return &rig{t: t, c: c}
}

// add adds a participant; freq 0 means it sends nothing.
func (r *rig) add(o ParticipantOptions, freq, amp float64) *member {
	r.t.Helper()
	p, err := r.c.Add(o)
	if err != nil {
		r.t.Fatal(err)
	}
	m := &member{p: p}
	if freq > 0 {
		rate := 8000
		if o.Input == Linear16k {
			rate = 16000
		}
		m.src = &toneGen{freq: freq, amp: amp, rate: rate}
	}
	r.members = append(r.members, m)
	return m
}

// run runs n ticks.
func (r *rig) run(n int) {
	r.t.Helper()
	for range n {
		for _, m := range r.members {
			if m.src != nil && !m.quiet {
				if !m.p.Write(m.src.next(m.buf[:m.p.Input().samples()])) {
					r.t.Fatalf("%s: write refused", m.p.ID())
				}
			}
		}
		r.last = r.c.Tick()
		for _, m := range r.members {
			if !m.p.Read(&m.f) {
				m.gaps++
				continue
			}
			m.heard = append(m.heard, decode(&m.f)...)
		}
	}
}

// reset forgets what the members heard.
func (r *rig) reset() {
	for _, m := range r.members {
		m.heard, m.gaps = m.heard[:0], 0
	}
}

// decode returns a frame's audio as PCM at its rate.
func decode(f *Frame) []int16 {
	if pcm := f.PCM(); pcm != nil {
		return append([]int16(nil), pcm...)
	}
	pcm := make([]int16, Samples8k)
	if f.Format() == PCMA {
		g711.DecodeAlaw(pcm, f.Payload())
	} else {
		g711.DecodeUlaw(pcm, f.Payload())
	}
	return pcm
}

// rate is the sample rate of what m hears.
func (m *member) rate() int {
	if m.p.Output() == Linear16k {
		return 16000
	}
	return 8000
}

// level is the amplitude of freq in what m heard, in dB relative to a
// tone of amplitude amp (share of full scale).
func (m *member) level(freq, amp float64) float64 {
	return db(goertzel(m.heard, freq, m.rate()), amp*32767)
}
