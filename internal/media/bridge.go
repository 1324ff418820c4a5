package media

import (
	"sync"
	"sync/atomic"

	"github.com/switchboard-voice/switchboard/internal/media/g711"
)

// bridgeSlots is the room of one direction of a bridge, in frames. The
// consumer keeps at most one frame queued after each tick (see take), so
// more than a few only absorb a stalled producer or consumer.
const bridgeSlots = 4

// bridgeFrame is one 20 ms frame on its way across a bridge, in the codec
// of the session that received it.
type bridgeFrame struct {
	alaw    bool
	payload [SamplesPerFrame]byte
}

// bridgeLink carries one direction of a bridge: the tick of the session
// that receives the audio (producer) hands its played-out frames to the
// tick of the session that sends them on (consumer). It is a
// single-producer, single-consumer ring like rxRing: two atomic operations
// per frame, no lock shared by the two sessions, no allocation.
type bridgeLink struct {
	head atomic.Uint32 // next slot the producer writes; written by the producer
	_    [60]byte      // keep head and tail on separate cache lines
	tail atomic.Uint32 // next slot the consumer reads; written by the consumer

	frames [bridgeSlots]bridgeFrame
	// Counters, each owned by one side's tick (under its session's mu).
	full    uint64 // frames the producer dropped: the consumer stalled
	trimmed uint64 // frames the consumer skipped to bound the latency
}

// put queues a received frame; codec is the producer's.
func (l *bridgeLink) put(payload []byte, alaw bool) {
	h := l.head.Load()
	if h-l.tail.Load() >= bridgeSlots {
		l.full++
		return
	}
	f := &l.frames[h%bridgeSlots]
	f.alaw = alaw
	copy(f.payload[:], payload)
	l.head.Store(h + 1)
}

// putSilence queues a frame of silence (a frame the producer lost), so the
// far end hears the gap in time rather than the stream closing up.
func (l *bridgeLink) putSilence(alaw bool) {
	h := l.head.Load()
	if h-l.tail.Load() >= bridgeSlots {
		l.full++
		return
	}
	f := &l.frames[h%bridgeSlots]
	f.alaw = alaw
	code := byte(g711.UlawSilence)
	if alaw {
		code = g711.AlawSilence
	}
	for i := range f.payload {
		f.payload[i] = code
	}
	l.head.Store(h + 1)
}

// take moves the next frame into dst in the consumer's codec (alaw) and
// reports whether there was one. The sessions tick at different phases of
// the shared clock, so a frame normally waits less than a tick; a tick
// skipped or run late on either side can leave two queued, and then the
// older goes now and one stays, which keeps the delay under two ticks
// without dropping audio. More than two (a stall) are trimmed to the
// newest two.
func (l *bridgeLink) take(dst []byte, alaw bool) bool {
	t, h := l.tail.Load(), l.head.Load()
	n := h - t
	if n == 0 {
		return false
	}
	if n > 2 {
		l.trimmed += uint64(n - 2)
		t = h - 2
	}
	f := &l.frames[t%bridgeSlots]
	switch {
	case f.alaw == alaw:
		copy(dst, f.payload[:])
	case alaw:
		g711.UlawToAlaw(dst, f.payload[:])
	default:
		g711.AlawToUlaw(dst, f.payload[:])
	}
	l.tail.Store(t + 1) // the slot is the producer's again only now
	return true
}

// bridge connects two sessions; see Bridge.
type bridge struct {
	a, b   *Session
	ab, ba bridgeLink // ab carries what a receives to b
	once   sync.Once
}

// peer returns the other session of the bridge.
func (br *bridge) peer(s *Session) *Session {
	if s == br.a {
		return br.b
	}
	return br.a
}

// Bridge connects two sessions, as a back-to-back user agent's media
// does: from the next tick, the audio each session receives (its jitter
// buffer's played-out frames) is sent by the other, transcoded between
// PCMU and PCMA when the two negotiated different codecs and copied as is
// when they agree; and each RFC 4733 tone one session receives is sent
// by the other with SendTones (as RFC 4733, or in-band when its far end
// negotiated no telephone-event). In-band DTMF simply passes as audio.
//
// A frame crosses within the next tick of the sending session, so the
// bridge adds less than a tick of delay (two at worst when a tick runs
// late), and nothing is allocated, locked across sessions or logged per
// frame. What a session sends itself comes first: tones from SendTones,
// then audio from Play, then the bridged audio; SetMuted silences the
// bridged audio as it does played audio. Recording and tone detection go on
// as before on each session.
//
// stop undoes the bridge and returns both sessions to what they were; it
// is idempotent and safe for concurrent use. Closing either session stops
// the bridge, and bridging a session that is already bridged stops its
// earlier bridge first. A session bridged with itself echoes. A session
// that is a member of a Conference is not bridged: Bridge then connects
// nothing.
func Bridge(a, b *Session) (stop func()) {
	br := &bridge{a: a, b: b}
	ok := true
	if a == b {
		ok = a.join(br, &br.ab, &br.ab)
	} else {
		ok = a.join(br, &br.ab, &br.ba) && b.join(br, &br.ba, &br.ab)
	}
	if !ok {
		br.stop() // one of them is closed
	}
	return br.stop
}

// join puts s into br: what it receives goes to out, what it sends comes
// from in. It stops a bridge s was in, and fails when s is closed or a
// conference member.
func (s *Session) join(br *bridge, out, in *bridgeLink) bool {
	s.mu.Lock()
	if s.st.closed || s.st.conf != nil {
		s.mu.Unlock()
		return false
	}
	old := s.st.br
	s.st.br, s.st.brOut, s.st.brIn = br, out, in
	s.mu.Unlock()
	if old != nil && old != br {
		old.stop() // leaves s alone: s is in br now
	}
	return true
}

// leave takes s out of br, if it is still in it.
func (s *Session) leave(br *bridge) {
	s.mu.Lock()
	if s.st.br == br {
		s.st.br, s.st.brOut, s.st.brIn = nil, nil, nil
	}
	s.mu.Unlock()
}

func (br *bridge) stop() {
	br.once.Do(func() {
		br.a.leave(br)
		br.b.leave(br)
	})
}

// bridgePeerLocked is the session s's received tones go to, or nil.
func (s *Session) bridgePeerLocked() *Session {
	if s.st.br == nil {
		return nil
	}
	return s.st.br.peer(s)
}
