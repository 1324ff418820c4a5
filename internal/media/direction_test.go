package media

import (
	"testing"
	"time"
)

// While Switchboard's side of the stream is recvonly or inactive (the far
// end holds the call) no RTP leaves the socket: prompts and tones go on in
// time, silently. When the stream flows both ways again, the next packet
// follows the last one sent in sequence, starts a talkspurt, and carries a
// timestamp as far on as the media clock went.
func TestDirectionStopsSending(t *testing.T) {
	t.Parallel()
	e := startEngine(t, EngineOptions{})
	s, _ := newSession(t, e)
	far := newUDPPeer(t)
	s.SetRemote(far.addr(), PCMU, 101)
	s.Play(NewAudio(sine(400, 5000, time.Second)), true, nil)
	last := far.next(t) // sendrecv: RTP flows

	const window = 15 // ticks
	for _, d := range []Direction{RecvOnly, Inactive} {
		s.SetDirection(d)
		waitTicks(t, s, 2) // a tick under way when the direction changed may still send
		if hs := far.sync(t); len(hs) > 0 {
			last = hs[len(hs)-1]
		}
		sent := s.Stats().PacketsSent
		s.SendTones("1", 0, nil)
		waitTicks(t, s, window)
		if got := s.Stats().PacketsSent; got != sent {
			t.Fatalf("%v: %d RTP packets sent", d, got-sent)
		}
		if hs := far.sync(t); len(hs) != 0 {
			t.Fatalf("%v: the far end got %d RTP packets", d, len(hs))
		}

		s.SetDirection(SendRecv)
		h := far.next(t)
		if h.SequenceNumber != last.SequenceNumber+1 {
			t.Fatalf("after %v: sequence number %d follows %d: packets were sent while %v", d, h.SequenceNumber, last.SequenceNumber, d)
		}
		if !h.Marker || h.PayloadType != PCMU.PayloadType {
			t.Fatalf("after %v: first packet %+v, want the prompt's audio starting a talkspurt", d, h)
		}
		if ticks := (h.Timestamp - last.Timestamp) / SamplesPerFrame; ticks < window {
			t.Fatalf("after %v: timestamp %d ticks on over a pause of more than %d: the media clock stood still", d, ticks, window)
		}
		last = h
	}
}

// Inactivity is watched only while RTP should flow both ways: a far end
// that holds the call (our side recvonly or inactive) or only listens (our
// side sendonly) may send nothing for as long as it likes. Once the stream
// flows both ways again, the timeout counts from then.
func TestDirectionSuspendsInactivity(t *testing.T) {
	t.Parallel()
	const timeout = 100 * time.Millisecond
	e := startEngine(t, EngineOptions{InactivityTimeout: timeout})
	s, ev := newSession(t, e)
	far := newUDPPeer(t)
	s.SetDirection(SendOnly)
	s.SetRemote(far.addr(), PCMU, 0)
	for _, d := range []Direction{SendOnly, RecvOnly, Inactive} {
		s.SetDirection(d)
		waitTicks(t, s, 3*int(timeout/FrameDuration))
		for len(ev) > 0 {
			if e := <-ev; e.Kind == EventInactive {
				t.Fatalf("EventInactive while %v", d)
			}
		}
	}
	start := time.Now()
	s.SetDirection(SendRecv)
	ev.next(t, EventInactive)
	if d := time.Since(start); d < timeout {
		t.Fatalf("EventInactive %v after the stream flowed both ways again, want at least %v", d, timeout)
	}
}
