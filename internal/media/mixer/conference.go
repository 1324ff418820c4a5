package mixer

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-voice/switchboard/internal/media/g711"
)

// MaxSpeakers bounds Options.Speakers.
const MaxSpeakers = 16

// Defaults of Options.
const (
	DefaultSpeakers       = 4
	DefaultSpeakerMargin  = 3.0 // dB
	DefaultSpeakerHold    = 200 * time.Millisecond
	DefaultVADThreshold   = -45.0 // dBov
	DefaultVADHangover    = 300 * time.Millisecond
	DefaultDominantMargin = 6.0 // dB
	DefaultDominantHold   = 400 * time.Millisecond
)

// Energy smoothing, per tick: a level rises within a frame or two (the
// start of a word) and falls with a time constant of about 150 ms, so the
// pauses between words do not reorder the speakers.
const (
	energyAttack  = 0.6
	energyRelease = 0.12
	energyFloor   = 1e-3 // below −130 dBov is zero: no denormals, and silence ranks last
)

// Options configures a Conference. The zero value of each field means its
// default.
type Options struct {
	// Speakers is how many talkers are mixed at once (K): the loudest,
	// with hysteresis. Everyone hears the K selected speakers and the
	// prompts, except themselves. Default 4, at most MaxSpeakers.
	Speakers int
	// SpeakerMargin is how much louder, in dB of smoothed energy, a
	// talker must be than the quietest selected speaker to take its
	// place when all are taken. Default 3 dB.
	SpeakerMargin float64
	// SpeakerHold is how long a selected speaker keeps its place before a
	// louder talker may take it. Default 200 ms.
	SpeakerHold time.Duration
	// VADThreshold is the frame level, in dBov (negative), from which a
	// participant counts as speaking. Default −45 dBov: well below speech
	// (around −26 dBov, ITU-T P.56), above a quiet line's noise.
	VADThreshold float64
	// VADHangover is how long a participant still counts as speaking
	// after its last frame above VADThreshold. Default 300 ms.
	VADHangover time.Duration
	// DominantMargin is how much louder, in dB of smoothed energy, a
	// speaker must be than the dominant speaker, for DominantHold without
	// a break, to take over. Default 6 dB.
	DominantMargin float64
	// DominantHold: see DominantMargin. Default 400 ms.
	DominantHold time.Duration
	// OnDominant, when not nil, is called when the dominant speaker
	// changes (nil: nobody is), on the conference's tick goroutine, during
	// Tick, and only on a change. It must not block or call Tick.
	OnDominant func(*Participant)
}

// validate checks o and fills in the defaults.
func (o *Options) validate() error {
	var errs []error
	if o.Speakers < 0 || o.Speakers > MaxSpeakers {
		errs = append(errs, fmt.Errorf("speakers %d is not within 0-%d", o.Speakers, MaxSpeakers))
	}
	if o.SpeakerMargin < 0 || o.DominantMargin < 0 {
		errs = append(errs, errors.New("a margin is negative"))
	}
	if o.SpeakerHold < 0 || o.VADHangover < 0 || o.DominantHold < 0 {
		errs = append(errs, errors.New("a duration is negative"))
	}
	if o.VADThreshold > 0 || o.VADThreshold < -127 {
		errs = append(errs, fmt.Errorf("VAD threshold %g dBov is not within -127-0", o.VADThreshold))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	def := func(v *float64, d float64) {
		if *v == 0 {
			*v = d
		}
	}
	defDur := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	if o.Speakers == 0 {
		o.Speakers = DefaultSpeakers
	}
	def(&o.SpeakerMargin, DefaultSpeakerMargin)
	def(&o.VADThreshold, DefaultVADThreshold)
	def(&o.DominantMargin, DefaultDominantMargin)
	defDur(&o.SpeakerHold, DefaultSpeakerHold)
	defDur(&o.VADHangover, DefaultVADHangover)
	defDur(&o.DominantHold, DefaultDominantHold)
	return nil
}

// ticks is d in media clock ticks, at least one.
func ticks(d time.Duration) int { return max(1, int((d+Period-1)/Period)) }

// dbFactor is a level difference in dB as a ratio of energies.
func dbFactor(db float64) float32 { return float32(math.Pow(10, db/10)) }

// TickStats describe one tick.
type TickStats struct {
	Tick           uint64 // the tick's number, from 1
	Participants   int    // in the conference
	Sources        int    // inputs mixed: selected speakers and prompts that had a frame
	Mixes          int    // distinct mixes made: the common one, one per selected speaker that hears (at most Speakers+1), and one per listener whose Without prompt was mixed
	Encodes        int    // G.711 encodings: at most one per mix and codec, however many hear it
	Missing        int    // contributing participants that had no frame
	Trimmed        int    // input frames skipped to bound the delay
	Dropped        int    // output frames not queued: their reader had not taken the last four
	SpeakerChanges int    // talkers that joined the selected speakers
}

// Stats are a conference's counters since New.
type Stats struct {
	Ticks           uint64
	Missing         uint64 // input frames missing (see TickStats)
	Trimmed         uint64
	Dropped         uint64
	SpeakerChanges  uint64
	DominantChanges uint64
}

// Conference is one conference's mix: it takes a frame from every
// participant each tick of the media clock, mixes the loudest few at
// 16 kHz, and gives each participant everything but itself.
//
// Concurrency: Tick is called by one goroutine at a time, the
// conference's ticker (a media engine worker, every 20 ms); the per-tick
// state is that goroutine's alone. Add and Remove (membership) take a
// lock that the tick never takes: they publish a new participant table,
// copy-on-write, which the tick loads with one atomic operation. Dominant,
// Participants and Stats are safe for concurrent use from any goroutine.
// A Conference holds no goroutine and nothing to close: once its ticker
// stops calling Tick and the participants are dropped, it is garbage.
type Conference struct {
	o                        Options
	speakerFactor, domFactor float32 // margins as energy ratios
	vadMS                    float32 // VAD threshold as a mean square
	holdTicks, hangTicks     uint64
	domTicks                 int

	mu      sync.Mutex // serialises Add and Remove; never taken by Tick
	table   atomic.Pointer[table]
	nextMix int // Frame.Mix of the next listener with Without; guarded by mu

	// Published by the tick.
	dominant atomic.Pointer[Participant]
	domGen   atomic.Uint64
	stats    struct {
		ticks, missing, trimmed, dropped, speakerChanges atomic.Uint64
	}

	// Owned by the tick.
	n          uint64
	st         TickStats
	full       bus
	slots      []slot // the selected speakers, len Speakers
	cands      [MaxSpeakers]*Participant
	ncand      int
	loud       [2]*Participant // the two loudest speaking talkers this tick
	dom        *Participant
	challenger *Participant
	challenge  int
	sum, diff  [Samples16k]int32
}

// table is an immutable snapshot of the membership.
type table struct {
	all     []*Participant
	prompts []*Participant
	without []*Participant // listeners with Without
}

// slot is one place among the selected speakers, and the mix of
// everything but its speaker.
type slot struct {
	p     *Participant
	since uint64 // tick it joined
	bus   bus
}

// bus is one distinct mix and what was made of it this tick: 16 kHz
// limited PCM, and on demand its 8 kHz version and G.711 encodings, each
// computed at most once a tick.
type bus struct {
	id                   int // Frame.Mix
	lim                  limiter
	down                 Downsampler
	sources, prevSources int
	ready                uint8
	pcm16                [Samples16k]int16
	pcm8                 [Samples8k]int16
	ulaw, alaw           [Samples8k]byte
}

const (
	ready8 = 1 << iota
	readyUlaw
	readyAlaw
)

// New returns a conference with no participants.
func New(o Options) (*Conference, error) {
	if err := o.validate(); err != nil {
		return nil, fmt.Errorf("new conference: %w", err)
	}
	c := &Conference{
		o:             o,
		speakerFactor: dbFactor(o.SpeakerMargin),
		domFactor:     dbFactor(o.DominantMargin),
		vadMS:         meanSquareAt(o.VADThreshold),
		holdTicks:     uint64(ticks(o.SpeakerHold)),
		hangTicks:     uint64(ticks(o.VADHangover)),
		domTicks:      ticks(o.DominantHold),
		slots:         make([]slot, o.Speakers),
		nextMix:       o.Speakers + 1,
	}
	for i := range c.slots {
		c.slots[i].bus.id = i + 1
	}
	c.table.Store(&table{})
	return c, nil
}

// Add makes a participant and puts it in the conference from the next
// tick. It allocates (the participant, about 7 KB of buffers, and a new
// table); it is safe for concurrent use, and never waits for a tick.
func (c *Conference) Add(o ParticipantOptions) (*Participant, error) {
	switch {
	case o.Role > Prompt:
		return nil, fmt.Errorf("add %s to conference: unknown role %v", o.ID, o.Role)
	case o.Input != Linear8k && o.Input != Linear16k:
		return nil, fmt.Errorf("add %s to conference: input %v is not linear PCM", o.ID, o.Input)
	case o.Output >= numFormats:
		return nil, fmt.Errorf("add %s to conference: unknown output %v", o.ID, o.Output)
	case o.Without != nil && (o.Role != Listener || o.Without.conf != c || o.Without.role != Prompt):
		return nil, fmt.Errorf("add %s to conference: only a listener can be without a prompt, of its own conference", o.ID)
	}
	p := &Participant{conf: c, id: o.ID, role: o.Role, input: o.Input, without: o.Without}
	if o.Without != nil {
		p.own = &bus{}
	}
	p.t.slot = -1
	switch o.Role {
	case Talker:
		p.flags.Store(flagContributes | flagHears)
	case Listener:
		p.flags.Store(flagHears)
	case Prompt:
		p.flags.Store(flagContributes)
	}
	p.output.Store(uint32(o.Output))

	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.table.Load()
	nt := &table{all: append(slices.Clone(old.all), p), prompts: old.prompts, without: old.without}
	if o.Role == Prompt {
		nt.prompts = append(slices.Clone(old.prompts), p)
	}
	if p.own != nil {
		p.own.id = c.nextMix
		c.nextMix++
		nt.without = append(slices.Clone(old.without), p)
	}
	c.table.Store(nt)
	return p, nil
}

// Remove takes p out of the conference and reports whether it was in it.
// A tick under way may still take one frame from p and queue one for it;
// from the next, p is neither heard nor fed, and loses its place among the
// speakers (and as dominant speaker, which is reported). Safe for
// concurrent use.
func (c *Conference) Remove(p *Participant) bool {
	if p.conf != c {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := c.table.Load()
	i := slices.Index(old.all, p)
	if i < 0 {
		return false
	}
	nt := &table{all: slices.Delete(slices.Clone(old.all), i, i+1), prompts: old.prompts, without: old.without}
	if j := slices.Index(old.prompts, p); j >= 0 {
		nt.prompts = slices.Delete(slices.Clone(old.prompts), j, j+1)
	}
	if j := slices.Index(old.without, p); j >= 0 {
		nt.without = slices.Delete(slices.Clone(old.without), j, j+1)
	}
	p.removed.Store(true)
	c.table.Store(nt)
	return true
}

// Participants is the number of participants.
func (c *Conference) Participants() int { return len(c.table.Load().all) }

// Dominant returns the dominant speaker (nil when nobody has spoken yet,
// or the last one left) and a generation number that grows by one at each
// change: an owner that polls compares generations instead of
// registering a callback. Safe for concurrent use; two atomic loads.
func (c *Conference) Dominant() (*Participant, uint64) {
	return c.dominant.Load(), c.domGen.Load()
}

// Stats returns the conference's counters. Safe for concurrent use.
func (c *Conference) Stats() Stats {
	return Stats{
		Ticks:           c.stats.ticks.Load(),
		Missing:         c.stats.missing.Load(),
		Trimmed:         c.stats.trimmed.Load(),
		Dropped:         c.stats.dropped.Load(),
		SpeakerChanges:  c.stats.speakerChanges.Load(),
		DominantChanges: c.domGen.Load(),
	}
}

// Tick makes one 20 ms frame of the conference, on the media clock:
//
//  1. take one input frame from every participant (whatever arrived: a
//     participant without a frame contributes silence this tick), and
//     update its smoothed level and voice activity;
//  2. update the selected speakers (the loudest Speakers talkers, with
//     hysteresis) and the dominant speaker;
//  3. sum the selected speakers and the prompts at 16 kHz, in int32 (8 kHz
//     inputs are upsampled; only the mixed ones, the rest only keep their
//     resampler's history);
//  4. make the distinct mixes, each limited to 16 bits: the common sum,
//     for each selected speaker the sum without it, and for each listener
//     whose own prompt (Without) was mixed the sum without that prompt;
//  5. queue for every hearer the mix it hears in the form it wants,
//     downsampling and encoding each mix at most once per form.
//
// One goroutine at a time calls Tick. It never blocks and, once the
// participants' buffers exist, allocates nothing; its cost grows with the
// participants only by a few atomic operations and a copy of the output
// each (see BenchmarkTick).
func (c *Conference) Tick() TickStats {
	c.n++
	tb := c.table.Load()
	c.st = TickStats{Tick: c.n, Participants: len(tb.all)}

	// 1. Take the inputs.
	c.ncand = 0
	c.loud = [2]*Participant{}
	for _, p := range tb.all {
		t := &p.t
		t.fl = p.flags.Load()
		t.frame, t.src = nil, nil
		var ms float32
		r := &p.in
		tail, head := r.tail.Load(), r.head.Load()
		if n := head - tail; n > 0 {
			if n > ringKeep {
				tail = head - ringKeep
				p.inTrimmed.Add(uint64(n - ringKeep))
				c.st.Trimmed += int(n - ringKeep)
			}
			t.frame, t.took = &r.slot[tail%ringSlots], tail
			ms = t.frame.ms
		} else if t.fl&flagContributes != 0 {
			p.missing.Add(1)
			c.st.Missing++
		}
		c.measure(p, ms)
		if t.fl&flagContributes == 0 || p.role == Prompt {
			continue
		}
		if t.speaking {
			c.rankLoud(p)
		}
		if t.slot < 0 && t.e > 0 {
			c.offer(p)
		}
	}

	// 2. Speakers.
	c.selectSpeakers()
	c.updateDominant()

	// 3. Sum.
	clear(c.sum[:])
	sources := 0
	for i := range c.slots {
		if p := c.slots[i].p; p != nil {
			sources += c.contribute(p)
		}
	}
	for _, p := range tb.prompts {
		if p.t.fl&flagContributes != 0 {
			sources += c.contribute(p)
		}
	}
	c.st.Sources = sources

	// A listener whose own prompt is mixed this tick hears a mix of its
	// own, which starts, like a speaker's, from the common mix's state
	// before this tick: what the listener heard until now.
	for _, p := range tb.without {
		t := &p.t
		on := t.fl&flagHears != 0 && p.without.t.srcTick == c.n
		if on && !t.onOwn {
			p.own.inherit(&c.full)
		}
		t.onOwn = on
	}

	// 4. Mixes.
	c.full.mix(&c.sum, sources)
	c.st.Mixes = 1
	for i := range c.slots {
		s := &c.slots[i]
		p := s.p
		if p == nil || p.t.fl&flagHears == 0 {
			continue
		}
		if src := p.t.src; src != nil {
			src = src[:Samples16k]
			for j := range c.diff {
				c.diff[j] = c.sum[j] - int32(src[j])
			}
			s.bus.mix(&c.diff, sources-1)
		} else {
			s.bus.mix(&c.sum, sources)
		}
		c.st.Mixes++
	}
	for _, p := range tb.without {
		if !p.t.onOwn {
			continue
		}
		src := p.without.t.src[:Samples16k]
		for j := range c.diff {
			c.diff[j] = c.sum[j] - int32(src[j])
		}
		p.own.mix(&c.diff, sources-1)
		c.st.Mixes++
	}

	// 5. Outputs; and hand the input slots back.
	for _, p := range tb.all {
		t := &p.t
		if t.fl&flagHears != 0 {
			b := &c.full
			switch {
			case t.slot >= 0:
				b = &c.slots[t.slot].bus
			case t.onOwn:
				b = p.own
			}
			c.publish(p, b)
		}
		if p.input == Linear8k {
			switch {
			case t.frame == nil:
				if !t.idle {
					t.up.Reset() // silence this tick: the stream restarts after it
					t.idle = true
				}
			case t.src == nil && t.fl&flagKeep16k != 0:
				t.up.Process(t.in16[:], t.frame.pcm[:Samples8k])
				t.kept = c.n
				t.idle = false
			case t.src == nil:
				t.up.Skip(t.frame.pcm[:Samples8k])
				t.idle = false
			default:
				t.kept = c.n // contribute made it
				t.idle = false
			}
		}
		if t.frame != nil {
			t.frame = nil
			p.in.tail.Store(t.took + 1)
		}
	}
	c.full.finish()
	for i := range c.slots {
		if p := c.slots[i].p; p != nil && p.t.fl&flagHears != 0 {
			c.slots[i].bus.finish()
		}
	}
	for _, p := range tb.without {
		if p.t.onOwn {
			p.own.finish()
		}
	}

	c.stats.ticks.Add(1)
	if c.st.Missing|c.st.Trimmed|c.st.Dropped|c.st.SpeakerChanges != 0 {
		c.stats.missing.Add(uint64(c.st.Missing))
		c.stats.trimmed.Add(uint64(c.st.Trimmed))
		c.stats.dropped.Add(uint64(c.st.Dropped))
		c.stats.speakerChanges.Add(uint64(c.st.SpeakerChanges))
	}
	return c.st
}

// measure updates p's smoothed energy and voice activity with this
// tick's frame (mean square ms; 0 when it had none).
func (c *Conference) measure(p *Participant, ms float32) {
	t := &p.t
	a := float32(energyRelease)
	if ms > t.e {
		a = energyAttack
	}
	t.e += (ms - t.e) * a
	if t.e < energyFloor {
		t.e = 0
	}
	if ms >= c.vadMS {
		t.hang = int(c.hangTicks)
	} else if t.hang > 0 {
		t.hang--
	}
	if sp := t.hang > 0; sp != t.speaking {
		t.speaking = sp
		p.speaking.Store(sp)
	}
	p.energy.Store(math.Float32bits(t.e))
}

// rankLoud keeps the two loudest speaking talkers of the tick, for the
// dominant speaker.
func (c *Conference) rankLoud(p *Participant) {
	switch e := p.t.e; {
	case c.loud[0] == nil || e > c.loud[0].t.e:
		c.loud[1], c.loud[0] = c.loud[0], p
	case c.loud[1] == nil || e > c.loud[1].t.e:
		c.loud[1] = p
	}
}

// offer keeps the loudest Speakers talkers not selected, loudest first:
// the only ones that can join this tick.
func (c *Conference) offer(p *Participant) {
	n, e := c.ncand, p.t.e
	if n == len(c.slots) {
		if e <= c.cands[n-1].t.e {
			return
		}
		n--
	}
	i := n
	for ; i > 0 && c.cands[i-1].t.e < e; i-- {
		c.cands[i] = c.cands[i-1]
	}
	c.cands[i] = p
	c.ncand = n + 1
}

// selectSpeakers updates the selected speakers: those that left, stopped
// contributing or went fully silent leave; free places go to the loudest
// talkers with any signal (so a small conference mixes everyone, quiet
// talkers included, and its noise is never gated); a talker takes an
// occupied place only from the quietest speaker that has held it for
// SpeakerHold, and only if it is SpeakerMargin louder. The margin and the
// hold are the hysteresis: two talkers of about the same level do not
// take turns every tick.
func (c *Conference) selectSpeakers() {
	for i := range c.slots {
		if p := c.slots[i].p; p != nil && (p.removed.Load() || p.t.fl&flagContributes == 0 || p.t.e == 0) {
			c.leave(i)
		}
	}
	ci := 0
	for i := range c.slots {
		if ci == c.ncand {
			break
		}
		if c.slots[i].p == nil {
			c.join(i, c.cands[ci])
			ci++
		}
	}
	// The places are all taken if candidates remain.
	for ; ci < c.ncand; ci++ {
		p := c.cands[ci]
		w := -1
		for i := range c.slots {
			s := &c.slots[i]
			if c.n-s.since >= c.holdTicks && (w < 0 || s.p.t.e < c.slots[w].p.t.e) {
				w = i
			}
		}
		if w < 0 || p.t.e <= c.slots[w].p.t.e*c.speakerFactor {
			break // the candidates are loudest first: none after can either
		}
		c.leave(w)
		c.join(w, p)
	}
}

// join gives place i to p. Its mix starts from the common mix's limiter
// and resampler state, which is what p heard until now, so its audio goes
// on without a seam.
func (c *Conference) join(i int, p *Participant) {
	s := &c.slots[i]
	s.p, s.since = p, c.n
	s.bus.inherit(&c.full)
	p.t.slot = i
	p.mixed.Store(true)
	c.st.SpeakerChanges++
}

// leave frees place i. Its speaker hears the common mix again from this
// tick; the common mix's resampler history still holds up to 2 ms of
// that speaker's own voice from the last tick, which it may hear,
// attenuated by the filter's tail, once.
func (c *Conference) leave(i int) {
	s := &c.slots[i]
	s.p.t.slot = -1
	s.p.mixed.Store(false)
	s.p = nil
}

// updateDominant applies the dominant-speaker rule: the loudest speaking
// talker other than the dominant one takes over once it has been
// DominantMargin louder than it (or there is none, or it no longer
// contributes) for DominantHold without a break. Only a speaking
// talker can take over, so silence never becomes dominant, and a
// dominant speaker who falls silent stays so until someone speaks.
func (c *Conference) updateDominant() {
	d := c.dom
	if d != nil && d.removed.Load() {
		c.setDominant(nil)
		d = nil
	}
	var de float32
	if d != nil && d.t.fl&flagContributes != 0 {
		de = d.t.e
	}
	best := c.loud[0]
	if best == d {
		best = c.loud[1]
	}
	if best == nil || (d != nil && best.t.e <= de*c.domFactor) {
		c.challenger, c.challenge = nil, 0
		return
	}
	if best != c.challenger {
		c.challenger, c.challenge = best, 0
	}
	c.challenge++
	if c.challenge >= c.domTicks {
		c.challenger, c.challenge = nil, 0
		c.setDominant(best)
	}
}

func (c *Conference) setDominant(p *Participant) {
	c.dom = p
	c.dominant.Store(p)
	c.domGen.Add(1)
	if c.o.OnDominant != nil {
		c.o.OnDominant(p)
	}
}

// contribute adds p's frame, at 16 kHz, to the sum and reports whether it
// had one.
func (c *Conference) contribute(p *Participant) int {
	t := &p.t
	if t.frame == nil {
		return 0
	}
	src := t.frame.pcm[:]
	if p.input == Linear8k {
		t.up.Process(t.in16[:], t.frame.pcm[:Samples8k])
		src = t.in16[:]
	}
	t.src, t.srcTick = src, c.n
	for i, v := range src {
		c.sum[i] += int32(v)
	}
	return 1
}

// publish queues b's audio for p in p's output format.
func (c *Conference) publish(p *Participant, b *bus) {
	r := &p.out
	h := r.head.Load()
	if h-r.tail.Load() >= ringSlots {
		p.outDropped.Add(1)
		c.st.Dropped++
		return
	}
	f := &r.slot[h%ringSlots]
	format := Format(p.output.Load())
	f.format, f.tick, f.mix, f.silent = format, c.n, b.id, b.silent()
	switch format {
	case Linear16k:
		copy(f.pcm[:], b.pcm16[:])
	case Linear8k:
		copy(f.pcm[:Samples8k], b.pcm8k())
	case PCMU, PCMA:
		copy(f.payload[:], c.encoded(b, format))
	}
	r.head.Store(h + 1)
}

// mix limits sum, which holds sources inputs, into the bus's 16 kHz PCM.
func (b *bus) mix(sum *[Samples16k]int32, sources int) {
	b.prevSources, b.sources = b.sources, sources
	b.lim.process(b.pcm16[:], sum[:])
	b.ready = 0
}

// silent reports whether this tick's output is digital silence: nothing
// was mixed this tick or the last, whose tail the downsampler carries.
func (b *bus) silent() bool { return b.sources == 0 && b.prevSources == 0 }

// pcm8k is the mix at 8 kHz, downsampled on first use in the tick.
func (b *bus) pcm8k() []int16 {
	if b.ready&ready8 == 0 {
		b.down.Process(b.pcm8[:], b.pcm16[:])
		b.ready |= ready8
	}
	return b.pcm8[:]
}

// encoded is the mix in G.711 format f, encoded on first use in the tick.
func (c *Conference) encoded(b *bus, f Format) []byte {
	dst, bit, enc := &b.ulaw, uint8(readyUlaw), g711.EncodeUlaw
	if f == PCMA {
		dst, bit, enc = &b.alaw, readyAlaw, g711.EncodeAlaw
	}
	if b.ready&bit == 0 {
		enc(dst[:], b.pcm8k())
		b.ready |= bit
		c.st.Encodes++
	}
	return dst[:]
}

// finish keeps the downsampler's history continuous when nobody needed
// the 8 kHz mix this tick.
func (b *bus) finish() {
	if b.ready&ready8 == 0 {
		b.down.Skip(b.pcm16[:])
	}
}

// inherit takes over from's limiter and resampler state and recent
// history (a speaker's mix starting from the common mix it heard).
func (b *bus) inherit(from *bus) {
	b.lim, b.down = from.lim, from.down
	b.sources, b.prevSources = from.sources, from.prevSources
}
