package media

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/switchboard-voice/switchboard/internal/media/dtmf"
	"github.com/switchboard-voice/switchboard/internal/media/g711"
	"github.com/switchboard-voice/switchboard/internal/media/mixer"
)

// ConferenceOptions configures a Conference.
type ConferenceOptions struct {
	// Mixer configures the mix: how many talkers are mixed at once, voice
	// activity, the dominant speaker. The zero value is the mixer's
	// defaults. Its OnDominant must be nil: set OnDominant here.
	Mixer mixer.Options
	// OnDominant, when not nil, is told the participant id of each new
	// dominant speaker ("" when nobody is any more), on the conference's
	// tick, only when it changes. It must not block.
	OnDominant func(pid string)
}

// Errors of Conference.Add.
var (
	ErrConferenceClosed = errors.New("media: conference closed")
	ErrMember           = errors.New("media: session is already in a conference or a bridge")
)

// Conference is the media of a group call or a meeting: member sessions,
// each of which hears everyone but itself, and the bots' ports: its own
// (its MediaPort methods), whose prompts everyone hears and whose
// recording is of everyone, and any number more (NewPort), one for each
// further bot sharing the conference, whose prompts everyone hears too
// and whose recordings leave out their own prompts. The mix is package
// mixer's, made at 16 kHz from the loudest few talkers.
//
// A conference is a task on one of the engine's shards: every 20 ms that
// shard's worker runs its tick, which ticks the members itself in three
// passes (each member's receive half, which writes the frame its jitter
// buffer played out into the mix; the mix; each member's send half, which
// sends the mix it hears), so a frame is heard in the tick it was played
// out and the conference adds no tick of delay, only the mixer's filters
// (about 4 ms). It has no goroutine of its own.
//
// All methods are safe for concurrent use. Callbacks (done and sink
// functions of every port, OnDominant) run on the engine's goroutines,
// never two at a time for one conference, and must neither block nor
// call back into the conference, a port or a member session
// synchronously. The done callback of an operation that a method cancels
// (Play or Record replacing another, StopPlay, StopRecord, Close) runs
// before that method returns, on the calling goroutine. Each done
// callback is called exactly once, and none after Close returns. The
// caller owns the conference and must Close it; the member sessions stay
// the caller's.
type Conference struct {
	e     *Engine
	mix   *mixer.Conference
	def   *ConferencePort // the conference's own MediaPort methods
	shard *shard

	apps       atomic.Int32  // open app ports: members keep their decoded frame for them
	tones      atomic.Uint32 // RFC 4733 codes of tones members detected since the last tick, as bits
	needDetect atomic.Bool   // a port's recording has stop tones: members look for in-band tones

	// cbMu serialises callbacks and is held by the tick; taken before mu,
	// and before the member sessions' locks.
	cbMu sync.Mutex
	mu   sync.Mutex
	st   confState // guarded by mu

	// Owned by the tick.
	snap  []*confMember
	psnap []*ConferencePort
	rsnap []*Session             // the members whose sockets the tick polls
	quiet [SamplesPerFrame]int16 // what is recorded when the mix has no frame
}

// confState is a conference's state under its mutex.
type confState struct {
	closed  bool
	members []*confMember
	ports   []*ConferencePort // the conference's own first
	detects int               // ports whose DetectTones is on
	detect  bool              // members detect tones: detects > 0
}

// confMember is a session's place in a conference. Its participant's
// Write and Read, and frame and out, belong to the conference's tick.
type confMember struct {
	c     *Conference
	pid   string
	s     *Session
	part  *mixer.Participant
	out   mixer.Format // the output asked of the mixer: the session's codec
	frame mixer.Frame  // the mix read this tick

	// For app ports (AppPort): the member's source number (under c.mu);
	// owned by the tick, whether an app port receives it unmixed this
	// tick (want) and whether the mixer was asked to keep its 16 kHz
	// input (keep).
	source     uint32
	want, keep bool
}

// NewConference returns a conference with no members, ticked from the
// engine's next tick on a shard of its own choosing. The caller must
// Close it.
func (e *Engine) NewConference(o ConferenceOptions) (*Conference, error) {
	mo := o.Mixer
	if mo.OnDominant != nil {
		return nil, errors.New("new media conference: Mixer.OnDominant is set: use ConferenceOptions.OnDominant")
	}
	if f := o.OnDominant; f != nil {
		mo.OnDominant = func(p *mixer.Participant) {
			id := ""
			if p != nil {
				id = p.ID()
			}
			f(id)
		}
	}
	mix, err := mixer.New(mo)
	if err != nil {
		return nil, fmt.Errorf("new media conference: %w", err)
	}
	c := &Conference{e: e, mix: mix}
	// The conference's own port records everything, its prompts too.
	if c.def, err = c.newPort("", false); err != nil {
		return nil, fmt.Errorf("new media conference: %w", err)
	}
	c.st.ports = []*ConferencePort{c.def}
	e.addConference(c)
	return c, nil
}

// Add makes s a member named pid from the next tick: the frames its
// jitter buffer plays out go into the mix, and it sends what it hears,
// everyone but itself, in its codec (PCMU or PCMA, followed through a
// re-INVITE). What the session sends itself still comes first (SendTones,
// and Play, which call control uses on the conference instead); SetMuted
// and SetDirection on it act on the mix as on played audio. Its RFC 4733
// and in-band tone detection and events go on as before; detection is
// on while any port's DetectTones is. It fails when the conference
// is closed, when pid is a member already, and when s is closed, on
// another engine, in a conference or in a bridge.
func (c *Conference) Add(pid string, s *Session) error {
	if s.e != c.e {
		return fmt.Errorf("add %s to conference: the session is on another engine", pid)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.closed {
		return fmt.Errorf("add %s to conference: %w", pid, ErrConferenceClosed)
	}
	if c.memberLocked(pid) != nil {
		return fmt.Errorf("add %s to conference: already a member", pid)
	}
	out := mixer.PCMU
	if cfg := s.cfg.Load(); cfg != nil && cfg.codec.Name == PCMA.Name {
		out = mixer.PCMA
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.st.closed:
		return fmt.Errorf("add %s to conference: the session is closed", pid)
	case s.st.conf != nil || s.st.br != nil:
		return fmt.Errorf("add %s to conference: %w", pid, ErrMember)
	}
	part, err := c.mix.Add(mixer.ParticipantOptions{ID: pid, Role: mixer.Talker, Input: mixer.Linear8k, Output: out})
	if err != nil {
		return fmt.Errorf("add %s to conference: %w", pid, err)
	}
	m := &confMember{c: c, pid: pid, s: s, part: part, out: out}
	s.setConfLocked(m)
	if c.st.detect {
		s.st.detect = true
	}
	c.st.members = append(c.st.members, m)
	return nil
}

// Remove takes member pid off the conference: from the next tick it is
// neither heard nor fed, and the session goes back to sending what it
// plays itself. Its tone detection stays as it is. Removing someone who
// is not a member does nothing.
func (c *Conference) Remove(pid string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.memberLocked(pid)
	if m == nil {
		return
	}
	c.dropLocked(m)
	m.s.mu.Lock()
	if m.s.st.conf == m {
		m.s.setConfLocked(nil)
	}
	m.s.mu.Unlock()
}

// drop takes m off the conference, for its session's Close (which has
// already let go of m).
func (c *Conference) drop(m *confMember) {
	c.mu.Lock()
	c.dropLocked(m)
	c.mu.Unlock()
}

func (c *Conference) dropLocked(m *confMember) {
	if i := slices.Index(c.st.members, m); i >= 0 {
		c.st.members = slices.Delete(c.st.members, i, i+1)
		c.mix.Remove(m.part)
	}
}

func (c *Conference) memberLocked(pid string) *confMember {
	for _, m := range c.st.members {
		if m.pid == pid {
			return m
		}
	}
	return nil
}

// MuteMember stops (or restarts) member pid's contribution to the mix
// from the next tick; it still hears everyone.
func (c *Conference) MuteMember(pid string, muted bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.memberLocked(pid); m != nil {
		m.part.SetContributes(!muted)
	}
}

// Level returns member pid's recent input level as RFC 6464 (0 loudest,
// 127 silence) and whether it is speaking, for a roster; ok is false when
// pid is not a member.
func (c *Conference) Level(pid string) (level uint8, speaking, ok bool) {
	c.mu.Lock()
	m := c.memberLocked(pid)
	c.mu.Unlock()
	if m == nil {
		return 127, false, false
	}
	return m.part.Level(), m.part.Speaking(), true
}

// Dominant returns the dominant speaker's participant id, "" when nobody
// is.
func (c *Conference) Dominant() string {
	if p, _ := c.mix.Dominant(); p != nil {
		return p.ID()
	}
	return ""
}

// Stats returns the mixer's counters.
func (c *Conference) Stats() mixer.Stats { return c.mix.Stats() }

// Play plays a to every member on the conference's own port: see
// ConferencePort.Play.
func (c *Conference) Play(a *Audio, loop bool, done func(completed bool)) {
	c.def.Play(a, loop, done)
}

// StopPlay stops what the conference's own port plays; its done gets
// false.
func (c *Conference) StopPlay() { c.def.StopPlay() }

// Record delivers the mix of everyone, members and every port's prompts,
// its own included, to sink, as ConferencePort.Record does for a port
// (whose recording leaves out its own prompts): the conference's own
// side records the call as a member who says nothing would hear it.
func (c *Conference) Record(o RecordOptions, sink func(pcm []int16), done func(RecordResult)) {
	c.def.Record(o, sink, done)
}

// StopRecord ends the own port's recording in progress with
// RecordStopped.
func (c *Conference) StopRecord() { c.def.StopRecord() }

// DetectTones turns tone detection on or off for the conference's own
// port: see ConferencePort.DetectTones. Members detect tones while it or
// any other port wants them.
func (c *Conference) DetectTones(on bool) { c.def.DetectTones(on) }

// SetMuted stops (or resumes) what the conference's own port plays being
// heard; Play keeps its place in time. Members and other ports are
// unaffected (MuteMember, ConferencePort.SetMuted).
func (c *Conference) SetMuted(m bool) { c.def.SetMuted(m) }

// Members is the number of member sessions.
func (c *Conference) Members() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.st.members)
}

// Ports is the number of ports open with NewPort (the conference's own
// is not counted): a meeting whose last bot has left may end.
func (c *Conference) Ports() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return max(len(c.st.ports)-1, 0) // no ports once closed
}

// Close ends the conference: what each port plays and records stops
// (done gets false, RecordStopped, before Close returns), every port is
// closed, and every member session goes back to being an ordinary
// session, still open: its owner closes it. Close is idempotent. It must
// not be called from a callback of the conference, of a port or of a
// member session.
func (c *Conference) Close() {
	// cbMu first: a tick under way finishes, and those after find the
	// conference closed; the ports' pending slots are then this
	// goroutine's.
	c.cbMu.Lock()
	defer c.cbMu.Unlock()
	c.mu.Lock()
	if c.st.closed {
		c.mu.Unlock()
		return
	}
	c.st.closed = true
	ports := c.st.ports
	for _, pt := range ports {
		pt.closeLocked(&pt.pend)
	}
	c.apps.Store(0)
	c.st.ports = nil
	c.needDetect.Store(false)
	for _, m := range c.st.members {
		c.mix.Remove(m.part)
		m.s.mu.Lock()
		if m.s.st.conf == m {
			m.s.setConfLocked(nil)
		}
		m.s.mu.Unlock()
	}
	c.st.members = nil
	c.mu.Unlock()
	c.e.removeConference(c)
	for _, pt := range ports {
		pt.pend.run(nil)
	}
}

// updateNeedDetectLocked tells members whether any port's recording has
// stop tones, for which they look for in-band tones.
func (c *Conference) updateNeedDetectLocked() {
	need := false
	for _, pt := range c.st.ports {
		need = need || pt.st.rec.needDetect
	}
	c.needDetect.Store(need)
}

// setDetectLocked turns the members' tone detection on while any port
// wants it, off when none does.
func (c *Conference) setDetectLocked() {
	c.st.detect = c.st.detects > 0
	for _, m := range c.st.members {
		m.s.DetectTones(c.st.detect)
	}
}

// noteTone records a tone a member detected, for the recording's stop
// tones; the tick reads and clears them. Any goroutine, lock-free.
func (c *Conference) noteTone(tone byte) {
	if code, ok := dtmf.Code(tone); ok {
		c.tones.Or(1 << code)
	}
}

// tick is the conference's share of one media clock tick, on its shard's
// worker: every member's receive half (its played-out frame into the mix),
// every port's prompt frame, the mix, every member's send half (its mix
// out), and every port's recording. Bounded work, no allocation.
// poll takes what has arrived on the members' sockets, wherever their
// shard, right before the tick that plays it out; b is the calling
// worker's batch. It runs outside the conference's and the sessions'
// locks, as receiving takes the sessions' on rare events.
func (c *Conference) poll(b *rxBatch, tt tickTime) {
	c.mu.Lock()
	for _, m := range c.st.members {
		c.rsnap = append(c.rsnap, m.s)
	}
	c.mu.Unlock()
	for _, s := range c.rsnap {
		s.poll(b, tt)
	}
	clear(c.rsnap)
	c.rsnap = c.rsnap[:0]
}

func (c *Conference) tick(n uint64, now int64) {
	c.cbMu.Lock()
	defer c.cbMu.Unlock()
	c.mu.Lock()
	if c.st.closed {
		c.mu.Unlock()
		return
	}
	c.snap = append(c.snap[:0], c.st.members...)
	c.psnap = append(c.psnap[:0], c.st.ports...)
	for _, m := range c.snap {
		m.want = false
	}
	for _, pt := range c.psnap {
		pt.promptFrameLocked()
		if pt.app != nil && pt.app.snapLocked(c.snap) {
			for i, w := range pt.app.want {
				c.snap[i].want = c.snap[i].want || w != 0
			}
		}
	}
	c.mu.Unlock()

	for _, m := range c.snap {
		if m.want != m.keep {
			m.part.SetKeep16k(m.want) // read by the mixer's Tick below
			m.keep = m.want
		}
		m.s.confReceive(m, n, now)
	}
	for _, pt := range c.psnap {
		pt.writePrompt() // read by the Tick just below
	}
	c.mix.Tick()
	for _, m := range c.snap {
		m.s.confSend(m, n, now)
	}

	for _, pt := range c.psnap {
		pt.readMix()
		if pt.app != nil {
			pt.emitApp(n, now, c.snap)
		}
	}
	clear(c.snap)
	tones := c.tones.Swap(0)
	c.mu.Lock()
	for _, pt := range c.psnap {
		pt.recordLocked(tones)
	}
	c.updateNeedDetectLocked()
	c.mu.Unlock()
	for _, pt := range c.psnap {
		pt.pend.run(nil)
	}
	clear(c.psnap)
}

// take moves the member's mix for this tick into dst in the codec of the
// session's remote, and reports whether there was one to send. The mix is
// made in the same pass of the conference's tick, so the newest frame is
// this tick's; an older one is left only by a tick whose send half ran
// elsewhere (the member had just joined), and is skipped so that it does
// not delay every frame after it.
func (m *confMember) take(dst []byte, cfg *remoteConfig) bool {
	f := &m.frame
	if !m.part.Read(f) {
		return false
	}
	for m.part.Read(f) {
	}
	if cfg == nil {
		return false
	}
	want := mixer.PCMU
	if cfg.codec.Name == PCMA.Name {
		want = mixer.PCMA
	}
	if want != m.out {
		m.part.SetOutput(want) // a known format: no error; from the next tick
		m.out = want
	}
	switch f.Format() {
	case want:
		copy(dst, f.Payload())
	case mixer.PCMU:
		g711.UlawToAlaw(dst, f.Payload())
	case mixer.PCMA:
		g711.AlawToUlaw(dst, f.Payload())
	default:
		return false
	}
	return true
}

// confReceive is the receive half of a member's tick, which its
// conference runs before the mix: the frame the jitter buffer plays out
// goes into the mix (tickReceive). A session that left the conference
// meanwhile is ticked as any other (its worker may have passed it).
func (s *Session) confReceive(m *confMember, n uint64, now int64) {
	s.cbMu.Lock()
	s.mu.Lock()
	st := &s.st
	if st.conf != m {
		s.mu.Unlock()
		s.cbMu.Unlock()
		s.tick(n, now)
		return
	}
	p := &st.pend
	if due(&st.rxNext, n) {
		s.tickReceive(s.cfg.Load(), now, p)
	}
	s.mu.Unlock()
	p.run(s.ev)
	s.cbMu.Unlock()
}

// confSend is the send half of a member's tick, which its conference runs
// after the mix: the member's mix goes out (tickSend).
func (s *Session) confSend(m *confMember, n uint64, now int64) {
	s.cbMu.Lock()
	s.mu.Lock()
	st := &s.st
	if st.conf != m {
		s.mu.Unlock()
		s.cbMu.Unlock()
		s.tick(n, now)
		return
	}
	p := &st.pend
	size := 0
	if due(&st.txNext, n) {
		size = s.tickSend(s.cfg.Load(), n, p)
	}
	dest := st.sendTo
	s.mu.Unlock()
	s.transmit(size, dest)
	p.run(s.ev)
	s.cbMu.Unlock()
}
