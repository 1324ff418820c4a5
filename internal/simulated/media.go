package simulated

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/clock"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// simMedia is a simulated user's ear and mouth: prompts take their real
// duration to play (on the endpoint's clock) and are counted as heard; the
// user stays silent, so a recording ends on its initial-silence timeout.
type simMedia struct {
	l *Leg

	play, rec *pending // guarded by l.mu
}

var _ callctl.MediaPort = (*simMedia)(nil)

// pending is one simulated play or recording. It finishes exactly once:
// when its timer fires or when it is stopped, whichever comes first, so a
// timer of a replaced play cannot finish its successor.
type pending struct {
	mu    sync.Mutex
	t     clock.Timer
	ended bool
	done  func(stopped bool)
}

// start arms p to finish by itself after d.
func (p *pending) start(clk clock.Clock, d time.Duration) {
	t := clk.AfterFunc(d, func() { p.finish(false) })
	p.mu.Lock()
	p.t = t
	p.mu.Unlock()
}

func (p *pending) finish(stopped bool) {
	if p == nil {
		return
	}
	p.mu.Lock()
	if p.ended {
		p.mu.Unlock()
		return
	}
	p.ended = true
	t := p.t
	p.mu.Unlock()
	if t != nil {
		t.Stop()
	}
	p.done(stopped)
}

// swap replaces *slot with next and returns what was there.
func (m *simMedia) swap(slot **pending, next *pending) *pending {
	m.l.mu.Lock()
	defer m.l.mu.Unlock()
	prev := *slot
	*slot = next
	return prev
}

// MediaPort returns the leg's simulated media.
func (l *Leg) MediaPort() callctl.MediaPort {
	if l.audio != nil {
		return countingPort{Session: l.audio.sess, l: l}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.media == nil {
		l.media = &simMedia{l: l}
	}
	return l.media
}

func (m *simMedia) Play(a *media.Audio, loop bool, done func(bool)) {
	p := &pending{done: func(stopped bool) { done(!stopped) }}
	m.swap(&m.play, p).finish(true)
	m.l.mu.Lock()
	m.l.played++
	m.l.playedFor += a.Duration()
	m.l.mu.Unlock()
	if !loop {
		p.start(m.l.e.clk, a.Duration())
	}
}

func (m *simMedia) StopPlay() { m.swap(&m.play, nil).finish(true) }

func (m *simMedia) Record(o media.RecordOptions, sink func([]int16), done func(media.RecordResult)) {
	wait := o.InitialSilence
	reason := media.RecordInitialSilence
	if o.MaxDuration > 0 && o.MaxDuration < wait {
		wait, reason = o.MaxDuration, media.RecordMaxDuration
	}
	silence := make([]int16, media.SamplesPerFrame)
	p := &pending{done: func(stopped bool) {
		if stopped {
			done(media.RecordResult{Reason: media.RecordStopped})
			return
		}
		for range int(wait / media.FrameDuration) {
			sink(silence)
		}
		done(media.RecordResult{Reason: reason, Duration: wait})
	}}
	m.swap(&m.rec, p).finish(true)
	p.start(m.l.e.clk, wait)
}

func (m *simMedia) StopRecord() { m.swap(&m.rec, nil).finish(true) }

func (m *simMedia) DetectTones(bool) {}
func (m *simMedia) SetMuted(bool)    {}

// legAudio is a leg's real media (simulator.audio): the platform's RTP
// session for the leg and the simulated user's handset facing it.
type legAudio struct {
	sess *media.Session
	hs   *handset
	leg  atomic.Pointer[Leg] // set once the leg exists
	once sync.Once
}

// openAudio opens a media session and a handset when the endpoint has a
// media engine; nil (timed media) otherwise.
func (e *Endpoint) openAudio() (*legAudio, error) {
	e.mu.Lock()
	eng := e.engine
	e.mu.Unlock()
	if eng == nil {
		return nil, nil
	}
	a := &legAudio{}
	sess, err := eng.NewSession(func(ev media.Event) {
		if l := a.leg.Load(); l != nil {
			l.onMedia(ev)
		}
	})
	if err != nil {
		return nil, &callctl.RouteError{Reason: errs.NoMediaPorts}
	}
	hs, err := newHandset(sess.LocalAddr(), func(c byte) {
		if l := a.leg.Load(); l != nil {
			l.heardTone(c)
		}
	})
	if err != nil {
		_ = sess.Close()
		return nil, &callctl.RouteError{Reason: errs.NoMediaPorts}
	}
	a.sess, a.hs = sess, hs
	sess.SetRemote(hs.Addr(), media.PCMU, eventPT)
	return a, nil
}

func (a *legAudio) close() {
	a.once.Do(func() {
		a.hs.Close()
		_ = a.sess.Close()
	})
}

// onMedia receives the session's events: keys the handset pressed, as the
// platform detected them.
func (l *Leg) onMedia(ev media.Event) {
	if ev.Kind != media.EventTone || l.State().State != "connected" {
		return
	}
	if t, ok := graph.ParseTone(string(ev.Tone)); ok {
		l.emit(callctl.LegEvent{Kind: callctl.LegTone, Tone: t})
	}
}

// heardTone records a tone the platform sent to the handset.
func (l *Leg) heardTone(c byte) {
	t, ok := graph.ParseTone(string(c))
	if !ok {
		return
	}
	l.mu.Lock()
	l.received = append(l.received, t)
	close(l.changed)
	l.changed = make(chan struct{})
	l.mu.Unlock()
}

// press is the simulated user pressing a key: on the handset (RFC 4733,
// detected by the platform) or, with timed media, reported directly.
func (l *Leg) press(t graph.Tone) {
	if l.audio != nil {
		if c := t.Char(); c != 0 {
			l.audio.hs.Press(c)
		}
		return
	}
	l.emit(callctl.LegEvent{Kind: callctl.LegTone, Tone: t})
}

// Media returns the leg's RTP session (nil with timed media), so the
// platform can bridge it like a phone's.
func (l *Leg) Media() *media.Session {
	if l.audio == nil {
		return nil
	}
	return l.audio.sess
}

// HasAudio says whether the leg has a handset (simulator.audio).
func (l *Leg) HasAudio() bool { return l.audio != nil }

// Heard returns the audio the simulated user has heard, 8 kHz PCM (nil
// with timed media).
func (l *Leg) Heard() []int16 {
	if l.audio == nil {
		return nil
	}
	return l.audio.hs.Heard()
}

// Say makes the simulated user speak 8 kHz PCM, after anything queued.
func (l *Leg) Say(pcm []int16) error {
	if l.audio == nil {
		return errors.New("the simulated user has no audio (simulator.audio is off)")
	}
	if l.State().State != "connected" {
		return errors.New("the leg is not connected")
	}
	l.audio.hs.Say(pcm)
	return nil
}

// countingPort is a handset leg's service-hosted media: the real session,
// counting what is played as timed media does, and whether a prompt is
// playing now (on the user's own line it takes the place of a
// conference's mix: a dial-in caller hears the meeting once the
// platform's own prompts are over).
type countingPort struct {
	*media.Session
	l *Leg
}

func (p countingPort) Play(a *media.Audio, loop bool, done func(bool)) {
	p.l.mu.Lock()
	p.l.played++
	p.l.playedFor += a.Duration()
	p.l.playing++
	p.l.mu.Unlock()
	p.Session.Play(a, loop, func(completed bool) {
		p.l.mu.Lock()
		p.l.playing--
		close(p.l.changed)
		p.l.changed = make(chan struct{})
		p.l.mu.Unlock()
		if done != nil {
			done(completed)
		}
	})
}
