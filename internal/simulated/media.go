package simulated

import (
	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/clock"
	"github.com/switchboard-voice/switchboard/internal/media"
)

// simMedia is a simulated user's ear and mouth: prompts take their real
// duration to play (on the endpoint's clock) and are counted as heard; the
// user stays silent, so a recording ends on its initial-silence timeout.
type simMedia struct {
	l *Leg

	play   clock.Timer
	onPlay func(bool)
	rec    clock.Timer
	onRec  func(media.RecordResult)
}

var _ callctl.MediaPort = (*simMedia)(nil)

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
	m.StopPlay()
	m.l.mu.Lock()
	m.onPlay = done
	m.l.played++
	m.l.playedFor += a.Duration()
	m.l.mu.Unlock()
	if loop {
		return
	}
	t := m.l.e.clk.AfterFunc(a.Duration(), func() {
		m.l.mu.Lock()
		cb := m.onPlay
		m.onPlay = nil
		m.l.mu.Unlock()
		if cb != nil {
			cb(true)
		}
	})
	m.l.mu.Lock()
	m.play = t
	m.l.mu.Unlock()
}

func (m *simMedia) StopPlay() {
	m.l.mu.Lock()
	cb, t := m.onPlay, m.play
	m.onPlay, m.play = nil, nil
	m.l.mu.Unlock()
	if t != nil {
		t.Stop()
	}
	if cb != nil {
		cb(false)
	}
}

func (m *simMedia) Record(o media.RecordOptions, sink func([]int16), done func(media.RecordResult)) {
	m.StopRecord()
	wait := o.InitialSilence
	reason := media.RecordInitialSilence
	if o.MaxDuration > 0 && o.MaxDuration < wait {
		wait, reason = o.MaxDuration, media.RecordMaxDuration
	}
	m.l.mu.Lock()
	m.onRec = done
	m.l.mu.Unlock()
	silence := make([]int16, media.SamplesPerFrame)
	t := m.l.e.clk.AfterFunc(wait, func() {
		m.l.mu.Lock()
		cb := m.onRec
		m.onRec = nil
		m.l.mu.Unlock()
		if cb == nil {
			return
		}
		for range int(wait / media.FrameDuration) {
			sink(silence)
		}
		cb(media.RecordResult{Reason: reason, Duration: wait})
	})
	m.l.mu.Lock()
	m.rec = t
	m.l.mu.Unlock()
}

func (m *simMedia) StopRecord() {
	m.l.mu.Lock()
	cb, t := m.onRec, m.rec
	m.onRec, m.rec = nil, nil
	m.l.mu.Unlock()
	if t != nil {
		t.Stop()
	}
	if cb != nil {
		cb(media.RecordResult{Reason: media.RecordStopped})
	}
}

func (m *simMedia) DetectTones(bool) {}
func (m *simMedia) SetMuted(bool)    {}
