package mixer

import (
	"bytes"
	"fmt"
	"math"
	"slices"
	"strings"
	"testing"
)

// The three talkers' tones: multiples of 50 Hz (whole cycles in a
// frame) chosen so that no low-order intermodulation product of two of
// them, which G.711's companding creates, lands on the third (500, 900
// and 1400 Hz would not do: 1400 − 900 = 500).
const (
	fA, fB, fC = 600.0, 1050.0, 1750.0
	talkAmp    = 0.2 // about −17 dBFS, a loud talker
	// fX is a fourth tone, clear of every third-order product of the
	// three (2·1750 − 1050 = 2450 Hz, for one, is not).
	fX = 2650.0
)

// Thresholds, in dB relative to the tone as sent: a tone heard comes
// through at unit gain; a tone not heard must be gone, down to G.711's
// quantisation noise.
const (
	heardDB  = 0.5
	absentDB = -50.0
)

func expectHeard(t *testing.T, m *member, freq, amp float64) {
	t.Helper()
	if l := m.level(freq, amp); math.Abs(l) > heardDB {
		t.Errorf("%s (%v) hears %v Hz at %+.2f dB, want it at 0 dB", m.p.ID(), m.p.Output(), freq, l)
	}
}

func expectAbsent(t *testing.T, m *member, freq, amp float64) {
	t.Helper()
	if l := m.level(freq, amp); l > absentDB {
		t.Errorf("%s (%v) hears %v Hz at %+.1f dB, want nothing (below %v dB)", m.p.ID(), m.p.Output(), freq, l, absentDB)
	}
}

// threeTalkers is a conference of three talkers, each on its own tone and
// output format, and a listener at 16 kHz.
func threeTalkers(t *testing.T) (r *rig, a, b, c, l *member) {
	r = newRig(t, Options{})
	a = r.add(ParticipantOptions{ID: "a", Output: PCMU}, fA, talkAmp)
	b = r.add(ParticipantOptions{ID: "b", Output: PCMA}, fB, talkAmp)
	c = r.add(ParticipantOptions{ID: "c", Output: Linear8k}, fC, talkAmp)
	l = r.add(ParticipantOptions{ID: "recorder", Role: Listener, Output: Linear16k}, 0, 0)
	r.run(10) // the levels settle, the filters fill
	r.reset()
	return r, a, b, c, l
}

// TestEachHearsEveryoneButItself is the N−1 mix: each talker hears the
// other two tones and not its own, in its own format; the listener hears
// all three; and the tick made one mix per selected speaker and one
// common mix, and encoded each G.711 mix once.
func TestEachHearsEveryoneButItself(t *testing.T) {
	r, a, b, c, l := threeTalkers(t)
	r.run(50)
	for _, m := range []*member{a, b, c, l} {
		if m.gaps != 0 {
			t.Errorf("%s missed %d frames", m.p.ID(), m.gaps)
		}
	}
	expectAbsent(t, a, fA, talkAmp)
	expectHeard(t, a, fB, talkAmp)
	expectHeard(t, a, fC, talkAmp)
	expectHeard(t, b, fA, talkAmp)
	expectAbsent(t, b, fB, talkAmp)
	expectHeard(t, b, fC, talkAmp)
	expectHeard(t, c, fA, talkAmp)
	expectHeard(t, c, fB, talkAmp)
	expectAbsent(t, c, fC, talkAmp)
	expectHeard(t, l, fA, talkAmp)
	expectHeard(t, l, fB, talkAmp)
	expectHeard(t, l, fC, talkAmp)

	st := r.last
	if st.Sources != 3 || st.Mixes != 4 || st.Encodes != 2 || st.Missing != 0 {
		t.Errorf("tick stats %+v, want 3 sources, 4 mixes (common + one per speaker), 2 encodings (a's PCMU, b's PCMA)", st)
	}
	for _, m := range []*member{a, b, c} {
		if !m.p.Mixed() || !m.p.Speaking() {
			t.Errorf("%s: mixed %v, speaking %v; want both", m.p.ID(), m.p.Mixed(), m.p.Speaking())
		}
		if lv := m.p.Level(); lv < 15 || lv > 19 {
			t.Errorf("%s: level %d, want about 17 (a sine at 0.2 of full scale)", m.p.ID(), lv)
		}
	}
	if l.p.Mixed() || l.p.Speaking() || l.p.Level() != 127 {
		t.Errorf("listener: mixed %v, speaking %v, level %d; want a silent non-speaker", l.p.Mixed(), l.p.Speaking(), l.p.Level())
	}
	if l.f.Mix() != 0 || a.f.Mix() == 0 || a.f.Mix() == b.f.Mix() {
		t.Errorf("mix ids: listener %d, a %d, b %d; want the common mix 0 and one each", l.f.Mix(), a.f.Mix(), b.f.Mix())
	}
}

// TestMute: a muted talker's tone leaves everyone else's mix at once, and
// it still hears the others; unmuted, it is heard again.
func TestMute(t *testing.T) {
	r, a, b, c, l := threeTalkers(t)
	b.p.SetContributes(false)
	r.run(1) // the frame in flight: b leaves the mix, the filters' tails go
	r.reset()
	r.run(50)
	expectAbsent(t, a, fB, talkAmp)
	expectAbsent(t, c, fB, talkAmp)
	expectAbsent(t, l, fB, talkAmp)
	expectHeard(t, a, fC, talkAmp)
	expectHeard(t, b, fA, talkAmp)
	expectHeard(t, b, fC, talkAmp)
	if b.p.Mixed() || !b.p.Speaking() {
		t.Errorf("muted b: mixed %v, speaking %v; want not mixed, still measured as speaking", b.p.Mixed(), b.p.Speaking())
	}

	b.p.SetContributes(true)
	r.run(2)
	r.reset()
	r.run(50)
	expectHeard(t, a, fB, talkAmp)
	expectHeard(t, l, fB, talkAmp)
	expectAbsent(t, b, fB, talkAmp)
}

// TestListenerHearsEveryone: a listen-only sink (a recorder) hears all
// the talkers, contributes nothing even if it writes, and is never a
// speaker.
func TestListenerHearsEveryone(t *testing.T) {
	r := newRig(t, Options{})
	a := r.add(ParticipantOptions{ID: "a"}, fA, talkAmp)
	b := r.add(ParticipantOptions{ID: "b"}, fB, talkAmp)
	c := r.add(ParticipantOptions{ID: "c"}, fC, talkAmp)
	rec := r.add(ParticipantOptions{ID: "rec", Role: Listener, Output: PCMU}, fX, talkAmp) // writes, unheard
	r.run(10)
	r.reset()
	r.run(50)
	for _, f := range []float64{fA, fB, fC} {
		expectHeard(t, rec, f, talkAmp)
	}
	for _, m := range []*member{a, b, c} {
		expectAbsent(t, m, fX, talkAmp)
	}
	if rec.p.Mixed() || rec.p.Contributes() {
		t.Error("the listener is mixed or contributes")
	}
}

// TestPromptHeardByEveryone: a prompt source is heard by every hearer,
// talkers and listeners, on top of the speakers; it hears nothing and
// takes no speaker's place.
func TestPromptHeardByEveryone(t *testing.T) {
	r, a, b, c, l := threeTalkers(t)
	const fP, ampP = fX, 0.1
	pr := r.add(ParticipantOptions{ID: "prompt", Role: Prompt, Input: Linear16k}, fP, ampP)
	r.run(3)
	r.reset()
	r.run(50)
	for _, m := range []*member{a, b, c, l} {
		expectHeard(t, m, fP, ampP)
	}
	expectHeard(t, a, fB, talkAmp)
	if len(pr.heard) != 0 || pr.gaps != 50 {
		t.Errorf("the prompt got %d samples, want none", len(pr.heard))
	}
	if pr.p.Mixed() || r.last.Sources != 4 || r.last.Mixes != 4 {
		t.Errorf("prompt mixed %v, tick %+v; want it outside the speakers, 4 sources, 4 mixes", pr.p.Mixed(), r.last)
	}
	pr.p.SetHears(true) // does not apply to a prompt
	if pr.p.Hears() {
		t.Error("a prompt hears")
	}
	pr.p.SetContributes(false) // the prompt is stopped
	r.run(2)
	r.reset()
	r.run(20)
	expectAbsent(t, l, fP, ampP)
}

// TestLobby: a participant in the lobby neither hears nor is heard (its
// session plays it a feed of its own); admitted, it does both.
func TestLobby(t *testing.T) {
	r, a, _, _, l := threeTalkers(t)
	d := r.add(ParticipantOptions{ID: "d", Output: PCMU}, fX, talkAmp)
	d.p.SetContributes(false)
	d.p.SetHears(false)
	r.run(50)
	if len(d.heard) != 0 {
		t.Errorf("in the lobby, d heard %d samples", len(d.heard))
	}
	expectAbsent(t, a, fX, talkAmp)
	expectAbsent(t, l, fX, talkAmp)

	d.p.SetHears(true)
	d.p.SetContributes(true)
	r.run(2)
	r.reset()
	r.run(50)
	expectHeard(t, d, fA, talkAmp)
	expectHeard(t, a, fX, talkAmp)
	expectHeard(t, l, fX, talkAmp)
}

// TestWideband mixes 16 kHz participants with an 8 kHz leg: wideband
// listeners hear content above 4 kHz, the 8 kHz leg does not (nor its
// alias), and in-band audio crosses both ways.
func TestWideband(t *testing.T) {
	r := newRig(t, Options{})
	w1 := r.add(ParticipantOptions{ID: "w1", Input: Linear16k, Output: Linear16k}, 6000, talkAmp)
	w2 := r.add(ParticipantOptions{ID: "w2", Input: Linear16k, Output: Linear16k}, 1000, talkAmp)
	n := r.add(ParticipantOptions{ID: "n", Output: Linear8k}, fA, talkAmp)
	r.run(10)
	r.reset()
	r.run(50)
	expectHeard(t, w2, 6000, talkAmp)
	expectHeard(t, w2, fA, talkAmp)
	expectHeard(t, w1, 1000, talkAmp)
	expectHeard(t, n, 1000, talkAmp)
	expectAbsent(t, n, 6000-4000, talkAmp) // 6 kHz would fold to 2 kHz
	expectAbsent(t, w1, 6000, talkAmp)
}

// TestSingleTalkerUnchanged: the mix of one talker is that talker. At
// 16 kHz in and out there is no filter in the way, and the listener gets
// the talker's frames bit for bit; at 8 kHz, through both resamplers,
// the tone keeps its level and gains no harmonics.
func TestSingleTalkerUnchanged(t *testing.T) {
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	w, _ := c.Add(ParticipantOptions{ID: "w", Input: Linear16k})
	l, _ := c.Add(ParticipantOptions{ID: "l", Role: Listener, Output: Linear16k})
	g := toneGen{freq: 440, amp: 0.99, rate: 16000} // near full scale
	var in [Samples16k]int16
	var f Frame
	for i := range 50 {
		g.next(in[:])
		w.Write(in[:])
		c.Tick()
		if !l.Read(&f) {
			t.Fatalf("tick %d: no frame", i)
		}
		// w takes a free place among the speakers at its first frame,
		// so even that frame passes.
		if !slices.Equal(f.PCM(), in[:]) {
			t.Fatalf("tick %d: the listener's frame differs from the talker's", i)
		}
	}

	r := newRig(t, Options{})
	r.add(ParticipantOptions{ID: "talker"}, 1000, 0.9)
	m := r.add(ParticipantOptions{ID: "l", Role: Listener}, 0, 0)
	r.run(10)
	r.reset()
	r.run(50)
	expectHeard(t, m, 1000, 0.9)
	for _, h := range []float64{2000, 3000} {
		if l := m.level(h, 0.9); l > -70 {
			t.Errorf("harmonic at %v Hz: %.1f dB, want below -70 dB", h, l)
		}
	}
}

// TestFiveLoudTalkersDoNotWrap: five talkers near full scale, in phase,
// sum to 4.5 times what 16 bits hold. Everyone's mix stays a clean sine
// (the limiter scales it) instead of wrapping or clipping into harmonics.
func TestFiveLoudTalkersDoNotWrap(t *testing.T) {
	r := newRig(t, Options{Speakers: 5})
	var talkers []*member
	for i := range 5 {
		talkers = append(talkers, r.add(ParticipantOptions{ID: fmt.Sprint("t", i), Output: Linear8k}, 400, 0.9))
	}
	l8 := r.add(ParticipantOptions{ID: "l8", Role: Listener, Output: Linear8k}, 0, 0)
	l16 := r.add(ParticipantOptions{ID: "l16", Role: Listener, Output: Linear16k}, 0, 0)
	r.run(10)
	r.reset()
	r.run(50)
	for _, m := range append(talkers[:1], l8, l16) {
		fund := goertzel(m.heard, 400, m.rate())
		h3 := goertzel(m.heard, 1200, m.rate())
		t.Logf("%s: fundamental %.1f dBFS, third harmonic %.1f dB below", m.p.ID(), db(fund, 32767), -db(h3, fund))
		if db(fund, 32767) < -1.5 || db(h3, fund) > -40 {
			t.Errorf("%s: fundamental %.1f dBFS, third harmonic %.1f dB: distorted", m.p.ID(), db(fund, 32767), db(h3, fund))
		}
	}
	// The 16 kHz mix is the sum of the upsampled inputs, 2M samples
	// late: where that sum is clearly positive or negative, so is every
	// sample (a wrap flips the sign).
	for i, v := range l16.heard {
		ph := 2 * math.Pi * 400 * float64(10*Samples16k+i-2*halfbandM) / 16000
		if s := math.Sin(ph); s > 0.2 && v <= 0 || s < -0.2 && v >= 0 {
			t.Fatalf("16 kHz sample %d is %d where the sum is %.2f of its peak: wrapped", i, v, s)
		}
	}
}

// TestTopSpeakers: ten talkers at levels 2 dB apart; only the Speakers
// loudest are mixed: the listener hears exactly those four, a talker
// outside them hears them too, and a tick makes five mixes, not eleven.
func TestTopSpeakers(t *testing.T) {
	r := newRig(t, Options{})
	var ts []*member
	freq := func(i int) float64 { return 400 + 150*float64(i) }
	amp := func(i int) float64 { return 0.15 * math.Pow(10, -2*float64(i)/20) }
	for i := range 10 {
		ts = append(ts, r.add(ParticipantOptions{ID: fmt.Sprint("t", i), Output: Linear8k}, freq(i), amp(i)))
	}
	l := r.add(ParticipantOptions{ID: "l", Role: Listener, Output: Linear8k}, 0, 0)
	r.run(20)
	r.reset()
	r.run(50)
	for i, m := range ts {
		if i < 4 {
			expectHeard(t, l, freq(i), amp(i))
			expectHeard(t, ts[9], freq(i), amp(i))
		} else {
			expectAbsent(t, l, freq(i), amp(i))
		}
		if m.p.Mixed() != (i < 4) {
			t.Errorf("%s mixed %v", m.p.ID(), m.p.Mixed())
		}
	}
	expectAbsent(t, ts[0], freq(0), amp(0))
	expectHeard(t, ts[0], freq(3), amp(3))
	if st := r.last; st.Sources != 4 || st.Mixes != 5 || st.SpeakerChanges != 0 {
		t.Errorf("tick %+v: want 4 sources, 5 mixes, no changes", st)
	}
	if s := r.c.Stats(); s.SpeakerChanges != 4 {
		t.Errorf("%d speaker changes since the start, want 4 (the first four joining)", s.SpeakerChanges)
	}
}

// TestSpeakerHysteresis: with every place taken, a talker a little
// louder than the quietest speaker (within SpeakerMargin) never takes its
// place, however long; one clearly louder does, once.
func TestSpeakerHysteresis(t *testing.T) {
	r := newRig(t, Options{Speakers: 2})
	a := r.add(ParticipantOptions{ID: "a"}, fA, 0.3)
	b := r.add(ParticipantOptions{ID: "b"}, fB, 0.2)
	r.run(20)
	c := r.add(ParticipantOptions{ID: "c"}, fC, 0.22) // +0.8 dB over b
	changes := r.c.Stats().SpeakerChanges
	for i := range 100 {
		// c wavers around b's level, now above, now below.
		c.src.amp = []float64{0.22, 0.19}[i/5%2]
		r.run(1)
	}
	if !a.p.Mixed() || !b.p.Mixed() || c.p.Mixed() || r.c.Stats().SpeakerChanges != changes {
		t.Fatalf("c hovering near b: a %v b %v c %v, %d changes; want a and b kept",
			a.p.Mixed(), b.p.Mixed(), c.p.Mixed(), r.c.Stats().SpeakerChanges-changes)
	}
	c.src.amp = 0.45 // +7 dB over b
	r.run(10)
	if !a.p.Mixed() || b.p.Mixed() || !c.p.Mixed() || r.c.Stats().SpeakerChanges != changes+1 {
		t.Fatalf("c louder: a %v b %v c %v, %d changes; want c in b's place, once",
			a.p.Mixed(), b.p.Mixed(), c.p.Mixed(), r.c.Stats().SpeakerChanges-changes)
	}
	r.run(50)
	if r.c.Stats().SpeakerChanges != changes+1 {
		t.Error("the speakers changed again")
	}
}

// TestDominantSpeaker: the dominant speaker is taken only by a speaking
// talker DominantMargin (6 dB) louder for DominantHold (400 ms, 20
// ticks); a smaller margin or a shorter burst does not do it; silence
// never becomes dominant; a dominant speaker who leaves is reported gone.
// The callback runs once per change and the generation counts changes.
func TestDominantSpeaker(t *testing.T) {
	var calls []string
	r := newRig(t, Options{OnDominant: func(p *Participant) {
		if p == nil {
			calls = append(calls, "nobody")
		} else {
			calls = append(calls, p.ID())
		}
	}})
	a := r.add(ParticipantOptions{ID: "a"}, fA, 0.05)
	b := r.add(ParticipantOptions{ID: "b"}, fB, 0.05)
	a.quiet, b.quiet = true, true
	r.add(ParticipantOptions{ID: "silent"}, 0, 0)
	expect := func(when string, want *member, gen uint64) {
		t.Helper()
		d, g := r.c.Dominant()
		if d != want.pOrNil() || g != gen {
			t.Fatalf("%s: dominant %v (generation %d), want %v (%d)", when, idOf(d), g, idOf(want.pOrNil()), gen)
		}
	}
	r.run(50)
	expect("all silent", nil, 0)

	a.quiet = false
	r.run(15)
	expect("a speaking for 300 ms", nil, 0)
	r.run(10)
	expect("a speaking for 500 ms", a, 1)

	b.quiet = false
	b.src.amp = 0.05 * math.Pow(10, 4.0/20) // +4 dB: within the margin
	r.run(100)
	expect("b 4 dB louder for 2 s", a, 1)

	// The comparison is on smoothed energy, whose fall (~150 ms) draws
	// a burst out: 200 ms louder counts as about 350.
	b.src.amp = 0.05 * math.Pow(10, 10.0/20) // +10 dB
	r.run(10)
	b.src.amp = 0.05
	r.run(30)
	expect("b 10 dB louder for 200 ms", a, 1)

	b.src.amp = 0.05 * math.Pow(10, 10.0/20)
	r.run(15)
	expect("b 10 dB louder for 300 ms, again", a, 1)
	r.run(10)
	expect("b 10 dB louder for 500 ms", b, 2)

	a.quiet, b.quiet = true, true
	r.run(100)
	expect("everyone silent again", b, 2)

	r.c.Remove(b.p)
	r.run(1)
	expect("b left", nil, 3)
	if got := strings.Join(calls, ","); got != "a,b,nobody" {
		t.Errorf("OnDominant calls %s, want a,b,nobody", got)
	}
	if s := r.c.Stats(); s.DominantChanges != 3 {
		t.Errorf("%d dominant changes, want 3", s.DominantChanges)
	}
}

func (m *member) pOrNil() *Participant {
	if m == nil {
		return nil
	}
	return m.p
}

func idOf(p *Participant) string {
	if p == nil {
		return "nobody"
	}
	return p.ID()
}

// TestMissingInput: a talker whose producer stops (a stalled session)
// does not hold up the tick or disturb anyone else's audio, frame by
// frame; it still hears; its tone is back when it resumes. A producer
// that runs late by a tick loses nothing, and a burst is trimmed.
func TestMissingInput(t *testing.T) {
	r, a, b, c, _ := threeTalkers(t)
	a.quiet = true
	r.run(1)
	r.reset()
	for range 30 {
		r.run(1)
		if r.last.Missing != 1 {
			t.Fatalf("tick %+v: want a missing", r.last)
		}
		f := b.heard[len(b.heard)-Samples8k:]
		if l := db(goertzel(f, fC, 8000), talkAmp*32767); math.Abs(l) > heardDB+0.5 {
			t.Fatalf("b hears c at %+.2f dB in a frame while a is missing", l)
		}
	}
	if b.gaps+c.gaps+a.gaps != 0 {
		t.Errorf("frames missed while a was missing: %d, %d, %d", a.gaps, b.gaps, c.gaps)
	}
	expectAbsent(t, b, fA, talkAmp)
	expectAbsent(t, c, fA, talkAmp)
	expectHeard(t, a, fB, talkAmp)
	expectHeard(t, a, fC, talkAmp)
	if s := a.p.Stats(); s.InputMissing < 30 {
		t.Errorf("a's stats %+v: want its missing frames counted", s)
	}
	if !a.p.Mixed() {
		t.Error("a lost its place among the speakers after 600 ms of missing frames")
	}

	a.quiet = false
	r.run(2)
	r.reset()
	r.run(30)
	expectHeard(t, b, fA, talkAmp)

	// Late: no frame at one tick, two at the next. Nothing is lost:
	// from then on a frame waits in the ring, and a's tone is
	// continuous.
	var buf [Samples8k]int16
	a.quiet = true
	r.run(1)
	a.p.Write(a.src.next(buf[:]))
	a.quiet = false
	r.run(1)
	r.reset()
	r.run(20)
	expectHeard(t, b, fA, talkAmp)

	// A burst: four queued (one waiting, two now, one by the rig); the
	// two oldest are skipped.
	before := r.c.Stats().Trimmed
	for range 2 {
		a.p.Write(a.src.next(buf[:]))
	}
	r.run(1)
	if got := r.c.Stats().Trimmed - before; got != 2 {
		t.Errorf("%d frames trimmed after a burst, want 2", got)
	}
}

// TestSlowReader: a hearer whose consumer stops reading costs the
// conference nothing but dropped frames; when it reads again it gets the
// newest two, not a backlog.
func TestSlowReader(t *testing.T) {
	r, a, _, _, _ := threeTalkers(t)
	c := r.c
	var f Frame
	for range 10 {
		c.Tick()
	}
	if s := a.p.Stats(); s.OutputDropped != 6 {
		t.Errorf("%d frames dropped for a reader that stopped, want 6 (10 ticks, 4 slots)", s.OutputDropped)
	}
	var got []uint64
	for a.p.Read(&f) {
		got = append(got, f.Tick())
	}
	if len(got) != 2 {
		t.Errorf("read %v after a stall, want two frames", got)
	}
}

// TestSilence: with nobody talking, frames are digital silence, and say
// so.
func TestSilence(t *testing.T) {
	r := newRig(t, Options{})
	a := r.add(ParticipantOptions{ID: "a", Output: PCMU}, 0, 0)
	r.add(ParticipantOptions{ID: "b"}, 0, 0)
	r.run(3)
	if !a.f.Silent() || !bytes.Equal(a.f.Payload(), bytes.Repeat([]byte{0xff}, Samples8k)) {
		t.Errorf("silent conference: Silent %v, payload %x", a.f.Silent(), a.f.Payload()[:8])
	}
	r.add(ParticipantOptions{ID: "c"}, fA, talkAmp)
	r.run(1)
	if a.f.Silent() {
		t.Error("a talker's frame is marked silent")
	}
}

// TestEncodeOncePerMix: twenty listeners in two codecs cost two
// encodings a tick, and the listeners of a codec get the same bytes.
func TestEncodeOncePerMix(t *testing.T) {
	r := newRig(t, Options{})
	r.add(ParticipantOptions{ID: "talker", Output: Linear16k}, fA, talkAmp)
	var ls []*member
	for i := range 20 {
		out := []Format{PCMU, PCMA}[i%2]
		ls = append(ls, r.add(ParticipantOptions{ID: fmt.Sprint("l", i), Role: Listener, Output: out}, 0, 0))
	}
	r.run(5)
	if st := r.last; st.Mixes != 2 || st.Encodes != 2 {
		t.Errorf("tick %+v: want 2 mixes (the common one and the talker's), 2 encodings", st)
	}
	for i, m := range ls[2:] {
		ref := ls[i%2]
		if !bytes.Equal(m.f.Payload(), ref.f.Payload()) || m.f.Mix() != ref.f.Mix() || m.f.Tick() != ref.f.Tick() {
			t.Fatalf("%s and %s, both %v, got different frames", m.p.ID(), ref.p.ID(), m.p.Output())
		}
	}
}

// TestRemove: a participant removed is heard and fed no more, and its
// place among the speakers is free.
func TestRemove(t *testing.T) {
	r, a, b, _, l := threeTalkers(t)
	other, _ := New(Options{})
	if other.Remove(a.p) {
		t.Fatal("another conference removed a")
	}
	if !r.c.Remove(b.p) || r.c.Remove(b.p) {
		t.Fatal("Remove: want true, then false")
	}
	b.quiet = true // its session stops feeding it
	if r.c.Participants() != 3 {
		t.Errorf("%d participants, want 3", r.c.Participants())
	}
	r.run(2)
	r.reset()
	r.run(30)
	expectAbsent(t, a, fB, talkAmp)
	expectAbsent(t, l, fB, talkAmp)
	if len(b.heard) != 0 || b.p.Mixed() || r.last.Sources != 2 || r.last.Mixes != 3 {
		t.Errorf("after removal: b heard %d samples, mixed %v; tick %+v", len(b.heard), b.p.Mixed(), r.last)
	}
	b.p.Write(make([]int16, Samples8k)) // goes nowhere, harmlessly
}

// TestOptions: bad options and participants are refused, each problem
// named; the zero value gives the defaults.
func TestOptions(t *testing.T) {
	_, err := New(Options{Speakers: MaxSpeakers + 1, SpeakerMargin: -1, VADHangover: -1, VADThreshold: 3})
	if err == nil {
		t.Fatal("bad options accepted")
	}
	for _, s := range []string{"speakers", "margin", "duration", "VAD threshold"} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not name the %s", err, s)
		}
	}
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(c.slots) != DefaultSpeakers || c.o.DominantHold != DefaultDominantHold || c.domTicks != 20 {
		t.Errorf("defaults not applied: %+v", c.o)
	}
	other, _ := New(Options{})
	pr, _ := c.Add(ParticipantOptions{Role: Prompt})
	otherPrompt, _ := other.Add(ParticipantOptions{Role: Prompt})
	talker, _ := c.Add(ParticipantOptions{})
	for _, o := range []ParticipantOptions{{Input: PCMU}, {Output: numFormats}, {Role: Prompt + 1},
		{Without: pr}, {Role: Prompt, Without: pr}, {Role: Listener, Without: talker}, {Role: Listener, Without: otherPrompt}} {
		if _, err := c.Add(o); err == nil {
			t.Errorf("Add(%+v) accepted", o)
		}
	}
	p, _ := c.Add(ParticipantOptions{})
	if p.Write(make([]int16, Samples16k)) {
		t.Error("an 8 kHz participant took a 16 kHz frame")
	}
	if err := p.SetOutput(numFormats); err == nil {
		t.Error("SetOutput took an unknown format")
	}
}

// TestListenerWithoutItsPrompt is a conference several bots share: each
// bot has a prompt and a recorder that hears everyone, the other bots'
// prompts included, but not its own (N−1 for the bot), in a mix of its
// own only while its prompt plays; a listener without a prompt of its
// own hears everything.
func TestListenerWithoutItsPrompt(t *testing.T) {
	const fY, ampP = 2250.0, 0.1
	r, a, _, _, _ := threeTalkers(t)
	p1 := r.add(ParticipantOptions{ID: "p1", Role: Prompt}, fX, ampP)
	p2 := r.add(ParticipantOptions{ID: "p2", Role: Prompt, Input: Linear16k}, fY, ampP)
	l1 := r.add(ParticipantOptions{ID: "l1", Role: Listener, Without: p1.p}, 0, 0)
	// Linear outputs: G.711's intermodulation puts 2·600 + 1050 Hz on fY.
	l2 := r.add(ParticipantOptions{ID: "l2", Role: Listener, Output: Linear16k, Without: p2.p}, 0, 0)
	all := r.add(ParticipantOptions{ID: "all", Role: Listener}, 0, 0)
	r.run(3)
	r.reset()
	r.run(50)
	for _, m := range []*member{l1, l2, all} {
		for _, f := range []float64{fA, fB, fC} {
			expectHeard(t, m, f, talkAmp)
		}
		if m.gaps != 0 {
			t.Errorf("%s missed %d frames", m.p.ID(), m.gaps)
		}
	}
	expectAbsent(t, l1, fX, ampP)
	expectHeard(t, l1, fY, ampP)
	expectHeard(t, l2, fX, ampP)
	expectAbsent(t, l2, fY, ampP)
	expectHeard(t, all, fX, ampP)
	expectHeard(t, all, fY, ampP)
	expectHeard(t, a, fX, ampP)
	expectHeard(t, a, fY, ampP)
	if st := r.last; st.Sources != 5 || st.Mixes != 6 || st.Encodes != 2 {
		t.Errorf("tick %+v: want 5 sources, 6 mixes (common, three speakers', two listeners'), 2 encodings (a's PCMU, b's PCMA)", st)
	}
	m1, m2 := l1.f.Mix(), l2.f.Mix()
	if m1 <= DefaultSpeakers || m2 <= DefaultSpeakers || m1 == m2 || all.f.Mix() != 0 {
		t.Errorf("mix ids: l1 %d, l2 %d, all %d; want one each above the speakers', and the common mix", m1, m2, all.f.Mix())
	}

	// Its prompt stopped, l1 hears the common mix again; removed, too.
	p1.p.SetContributes(false)
	r.run(2)
	if l1.f.Mix() != 0 || r.last.Mixes != 5 {
		t.Errorf("prompt stopped: l1 hears mix %d, tick %+v; want the common mix, 5 mixes", l1.f.Mix(), r.last)
	}
	p1.p.SetContributes(true)
	r.run(1)
	if l1.f.Mix() != m1 {
		t.Errorf("prompt playing again: l1 hears mix %d, want %d", l1.f.Mix(), m1)
	}
	r.c.Remove(p2.p)
	p2.quiet = true
	r.run(2)
	if l2.f.Mix() != 0 || r.last.Mixes != 5 {
		t.Errorf("prompt removed: l2 hears mix %d, tick %+v; want the common mix, 5 mixes", l2.f.Mix(), r.last)
	}
	r.c.Remove(l1.p)
	r.run(2)
	if r.last.Mixes != 4 {
		t.Errorf("listener removed: tick %+v, want 4 mixes", r.last)
	}
}

// TestListenerWithoutSeamless: a listener goes from the common mix to
// its own and back without a seam. Its prompt plays digital silence,
// switched on and off, so its own mix holds exactly what the common mix
// does, and it must hear, sample for sample, what a plain listener does:
// its mix takes over the common mix's limiter and filter state.
func TestListenerWithoutSeamless(t *testing.T) {
	r := newRig(t, Options{})
	// Loud enough together that the limiter works, and not whole cycles
	// in a frame, so that no two frames are alike.
	r.add(ParticipantOptions{ID: "a"}, 613, 0.5)
	r.add(ParticipantOptions{ID: "b"}, 1041, 0.5)
	r.add(ParticipantOptions{ID: "c"}, 1777, 0.5)
	p := r.add(ParticipantOptions{ID: "silence", Role: Prompt}, 0, 0)
	l := r.add(ParticipantOptions{ID: "l", Role: Listener, Without: p.p}, 0, 0)
	all := r.add(ParticipantOptions{ID: "all", Role: Listener}, 0, 0)
	var silence [Samples8k]int16
	own := 0
	for i := range 60 {
		on := i%7 >= 3
		p.p.SetContributes(on)
		if on {
			p.p.Write(silence[:])
		}
		r.run(1)
		if l.f.Mix() != 0 {
			own++
		}
	}
	if own == 0 {
		t.Fatal("the listener never heard a mix of its own")
	}
	if !slices.Equal(l.heard, all.heard) {
		i := 0
		for i < len(l.heard) && l.heard[i] == all.heard[i] {
			i++
		}
		t.Errorf("the listener's audio differs from the common mix from sample %d (tick %d)", i, i/Samples8k)
	}
}
