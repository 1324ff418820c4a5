package media

import (
	"errors"
	"fmt"
	"slices"

	"github.com/switchboard-voice/switchboard/internal/media/mixer"
)

// ConferencePort is one bot's side of a conference that several bots
// share (a meeting, each bot's call joined to it): its prompts, which
// every member and every other port's recording hears, its recording of
// the conference, its muting and its wish for tones, each independent of
// the other ports'. It is call control's MediaPort for that bot's call.
//
// A port is a Prompt and a Listener in the conference's mix (package
// mixer). Its recording is of everyone but itself: the members and the
// other ports' prompts, not its own prompts, as each member hears
// everyone but itself (N−1). The conference's own MediaPort methods are a
// port too, made by NewConference, which records everything, its own
// prompts included.
//
// All methods are safe for concurrent use, with the conference's
// callback rules: done and sink callbacks run on the engine's goroutines,
// one at a time for the whole conference, must not block and must not
// call back into the conference, a port or a member session
// synchronously. The done callback of an operation a method cancels
// (Play or Record replacing another, StopPlay, StopRecord, Close) runs
// before that method returns, on the calling goroutine. The caller owns
// the port and closes it, or Conference.Close does.
type ConferencePort struct {
	c        *Conference
	name     string
	app      *AppPort           // application-hosted media (NewAppPort), or nil
	prompt   *mixer.Participant // Play
	listener *mixer.Participant // Record
	st       portState          // guarded by c.mu

	// Owned by the conference's tick.
	frame    []int16 // this tick's prompt frame, nil when it has none or is muted
	promptOn bool
	recFrame mixer.Frame
	recPCM   []int16
	recOK    bool // recPCM is this tick's mix, not silence in its place
	// pend is owned by whoever holds c.cbMu: the tick, Close.
	pend pending
}

// portState is a port's state under its conference's mutex.
type portState struct {
	closed bool
	detect bool
	muted  bool
	play   playState
	rec    recState
}

// NewPort opens a port named name (a bot's call: call control's call id
// serves) on the conference, from the next tick. What it plays, every
// member and every other port hears; what it records is the mix of the
// members and of the other ports' prompts, without its own (N−1 for the
// port). It fails when the conference is closed, when name is empty or
// another open port's. The caller must Close the port, or the conference.
func (c *Conference) NewPort(name string) (*ConferencePort, error) {
	if name == "" {
		return nil, errors.New("new conference port: no name")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.closed {
		return nil, fmt.Errorf("new conference port %s: %w", name, ErrConferenceClosed)
	}
	for _, pt := range c.st.ports {
		if pt.name == name {
			return nil, fmt.Errorf("new conference port %s: already open", name)
		}
	}
	pt, err := c.newPort(name, true)
	if err != nil {
		return nil, fmt.Errorf("new conference port %s: %w", name, err)
	}
	c.st.ports = append(c.st.ports, pt)
	return pt, nil
}

// newPort adds a port's prompt and listener to the mix; the listener is
// without the prompt when withoutOwn.
func (c *Conference) newPort(name string, withoutOwn bool) (*ConferencePort, error) {
	pt := &ConferencePort{c: c, name: name}
	var err error
	// Neither can fail: known roles and formats.
	if pt.prompt, err = c.mix.Add(mixer.ParticipantOptions{ID: name, Role: mixer.Prompt}); err != nil {
		return nil, err
	}
	pt.prompt.SetContributes(false) // until Play
	lo := mixer.ParticipantOptions{ID: name, Role: mixer.Listener, Output: mixer.Linear8k}
	if withoutOwn {
		lo.Without = pt.prompt
	}
	if pt.listener, err = c.mix.Add(lo); err != nil {
		c.mix.Remove(pt.prompt)
		return nil, err
	}
	// The listener's mix is made only while the port records: a bot that
	// only plays costs no mix of its own, nor its downsampling.
	pt.listener.SetHears(false)
	return pt, nil
}

// Name is the port's name, as given to NewPort.
func (pt *ConferencePort) Name() string { return pt.name }

// Play plays a to every member, and to every other port's recording,
// frame by frame on the media clock, replacing whatever the port is
// playing (whose done gets false); the other ports' prompts play on,
// mixed with it. done(true) follows the last frame of a non-looping a; a
// looping a plays until replaced or stopped. done may be nil. Play
// continues, silently, while muted or with no members. On a closed port,
// done(false) runs at once.
func (pt *ConferencePort) Play(a *Audio, loop bool, done func(completed bool)) {
	c := pt.c
	c.cbMu.Lock()
	defer c.cbMu.Unlock()
	var p pending
	c.mu.Lock()
	if pt.st.closed {
		c.mu.Unlock()
		if done != nil {
			done(false)
		}
		return
	}
	pt.stopPlayLocked(&p)
	pt.st.play = playState{audio: a, loop: loop, done: done, playing: true}
	c.mu.Unlock()
	p.run(nil)
}

// StopPlay stops what the port is playing; its done gets false.
func (pt *ConferencePort) StopPlay() {
	c := pt.c
	c.cbMu.Lock()
	defer c.cbMu.Unlock()
	var p pending
	c.mu.Lock()
	pt.stopPlayLocked(&p)
	c.mu.Unlock()
	p.run(nil)
}

func (pt *ConferencePort) stopPlayLocked(p *pending) {
	if pt.st.play.playing {
		p.playDone, p.playOK = pt.st.play.done, false
	}
	pt.st.play = playState{}
}

// Record delivers the mix of the members and of the other ports' prompts
// (not this port's own) as 20 ms frames of 8 kHz PCM (160 samples) to
// sink, until o ends the recording or StopRecord is called; then done
// gets the result, as for Session.Record. Stop tones are those any
// member's session detects (RFC 4733, or in-band while a recording has
// stop tones: members look for them), whatever DetectTones says. The
// sink must not retain the slice. A Record replaces the port's recording
// in progress (whose done gets RecordStopped), not another port's. sink
// and done may be nil. On a closed port, done(RecordStopped) runs at
// once.
func (pt *ConferencePort) Record(o RecordOptions, sink func(pcm []int16), done func(RecordResult)) {
	c := pt.c
	c.cbMu.Lock()
	defer c.cbMu.Unlock()
	var p pending
	c.mu.Lock()
	if pt.st.closed {
		c.mu.Unlock()
		if done != nil {
			done(RecordResult{Reason: RecordStopped})
		}
		return
	}
	pt.stopRecordLocked(&p, RecordStopped, 0)
	pt.st.rec = newRecState(o, sink, done)
	pt.listener.SetHears(true)
	c.updateNeedDetectLocked()
	c.mu.Unlock()
	p.run(nil)
}

// StopRecord ends the port's recording in progress with RecordStopped.
func (pt *ConferencePort) StopRecord() {
	c := pt.c
	c.cbMu.Lock()
	defer c.cbMu.Unlock()
	var p pending
	c.mu.Lock()
	pt.stopRecordLocked(&p, RecordStopped, 0)
	c.updateNeedDetectLocked()
	c.mu.Unlock()
	p.run(nil)
}

func (pt *ConferencePort) stopRecordLocked(p *pending, reason RecordReason, tone byte) {
	if pt.st.rec.on {
		p.recDone, p.recRes = pt.st.rec.done, pt.st.rec.result(reason, tone)
	}
	pt.st.rec = recState{}
	if pt.app == nil {
		pt.listener.SetHears(false)
	}
}

// DetectTones says whether the port wants the members' tones. The tones
// a member's phone presses are its session's events (see
// Session.DetectTones), whoever wants them; the conference turns
// detection on for every member, present and later, while at least one
// port wants it, and off once none does: the ports' wishes are counted,
// not overwritten, so one bot's DetectTones(false) does not deafen
// another's. A recording's stop tones work either way.
func (pt *ConferencePort) DetectTones(on bool) {
	c := pt.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if pt.st.closed {
		return
	}
	if on != pt.st.detect {
		pt.st.detect = on
		if on {
			c.st.detects++
		} else {
			c.st.detects--
		}
	}
	c.setDetectLocked()
}

// SetMuted stops (or resumes) what the port plays being heard, by the
// members and by the other ports; Play keeps its place in time. The
// other ports' prompts are unaffected.
func (pt *ConferencePort) SetMuted(m bool) {
	c := pt.c
	c.mu.Lock()
	pt.st.muted = m
	c.mu.Unlock()
}

// Close closes the port: what it plays and records stops (done gets
// false, RecordStopped, before Close returns), its prompt leaves the mix
// from the next tick, and it no longer counts as wanting tones. The
// conference and its other ports go on. Close is idempotent; a port of a
// closed conference is closed. It must not be called from a callback of
// the conference, of a port or of a member session. The conference's own
// port (its MediaPort methods) closes only with the conference.
func (pt *ConferencePort) Close() {
	c := pt.c
	if pt == c.def {
		return
	}
	c.cbMu.Lock()
	defer c.cbMu.Unlock()
	var p pending
	c.mu.Lock()
	if pt.st.closed {
		c.mu.Unlock()
		return
	}
	detect := pt.st.detect
	pt.closeLocked(&p)
	if i := slices.Index(c.st.ports, pt); i >= 0 {
		c.st.ports = slices.Delete(c.st.ports, i, i+1)
	}
	c.mix.Remove(pt.prompt)
	c.mix.Remove(pt.listener)
	if pt.app != nil {
		c.apps.Add(-1)
	}
	if detect {
		c.st.detects--
		c.setDetectLocked()
	}
	c.updateNeedDetectLocked()
	c.mu.Unlock()
	p.run(nil)
}

// closeLocked ends what the port plays and records, into p, and marks it
// closed.
func (pt *ConferencePort) closeLocked(p *pending) {
	pt.st.closed = true
	pt.stopPlayLocked(p)
	pt.stopRecordLocked(p, RecordStopped, 0)
	pt.st.detect = false
}

// promptFrameLocked advances the port's Play by one frame, into frame:
// its 8 kHz PCM, or nil when it has none or is muted.
func (pt *ConferencePort) promptFrameLocked() {
	pt.frame = nil
	if pt.app != nil {
		// The bot's voice: taken every tick, heard unless muted.
		if pcm := pt.app.voiceFrame(); !pt.st.muted && !pt.st.closed {
			pt.frame = pcm
		}
		return
	}
	if !pt.st.play.playing {
		return
	}
	pcm := pt.playFrameLocked(&pt.pend)
	if !pt.st.muted {
		pt.frame = pcm
	}
}

// playFrameLocked advances the port's Play by one frame and returns its
// 8 kHz PCM, or nil when it has none.
func (pt *ConferencePort) playFrameLocked(p *pending) []int16 {
	pl := &pt.st.play
	frames := 0
	if pl.audio != nil {
		frames = pl.audio.Frames()
	}
	if frames == 0 {
		pt.finishPlayLocked(p)
		return nil
	}
	pos := pl.pos
	pcm := pl.audio.PCM()[pos*SamplesPerFrame : (pos+1)*SamplesPerFrame]
	pl.pos++
	if pl.pos >= frames {
		if pl.loop {
			pl.pos = 0
		} else {
			pt.finishPlayLocked(p)
		}
	}
	return pcm
}

func (pt *ConferencePort) finishPlayLocked(p *pending) {
	p.playDone, p.playOK = pt.st.play.done, true
	pt.st.play = playState{}
}

// writePrompt gives the mix this tick's prompt frame, on the tick, just
// before the mixer's Tick: the prompt contributes only while it has one.
func (pt *ConferencePort) writePrompt() {
	on := pt.frame != nil
	if on != pt.promptOn {
		pt.prompt.SetContributes(on)
		pt.promptOn = on
	}
	if on {
		pt.prompt.Write(pt.frame)
	}
	pt.frame = nil
}

// readMix takes this tick's mix for the port's recording, on the tick,
// just after the mixer's Tick.
func (pt *ConferencePort) readMix() {
	if pt.listener.Read(&pt.recFrame) {
		pt.recPCM, pt.recOK = pt.recFrame.PCM(), true
		return
	}
	// The listener was not fed this tick: it does not record (a
	// recording that started after this tick's mix), or has just joined.
	q := pt.c.quiet[:]
	clear(q)
	pt.recPCM, pt.recOK = q, false
}

// emitApp queues this tick's frames for an app port's reader: the mix
// readMix took (silence if it is not 16 kHz: never in steady state) and
// the members it subscribed to.
func (pt *ConferencePort) emitApp(n uint64, now int64, members []*confMember) {
	mix := pt.recPCM
	if len(mix) != AppSamples {
		mix = nil
	}
	pt.app.emit(n, now, mix, members)
}

// recordLocked gives this tick's mix to the port's recording and ends it
// on one of its stop tones among tones, or when one of its limits is
// reached.
func (pt *ConferencePort) recordLocked(tones uint32) {
	rec := &pt.st.rec
	if !rec.on || pt.st.closed {
		return
	}
	p := &pt.pend
	if t := rec.stopTone(tones); t != 0 {
		pt.stopRecordLocked(p, RecordStopTone, t)
		return
	}
	if !pt.recOK {
		return // begun after this tick's mix: it starts with the next
	}
	pcm := pt.recPCM
	p.sink, p.sinkPCM = rec.sink, pcm
	if reason := rec.account(pcm); reason != 0 {
		pt.stopRecordLocked(p, reason, 0)
	}
}
