package simulated

import (
	"sync"
	"time"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/clock"
	"github.com/switchboard-voice/switchboard/internal/media"
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
