package media

import (
	"testing"
	"time"
)

// RTP hijack: whoever sends first must not take the stream. The phone is
// behind a NAT (nothing ever comes from the address its SDP gave); an
// attacker sends garbage and RTP of payload types nobody negotiated before
// the phone's first packet. Our RTP must go to the phone, never to the
// attacker. Then the signalled address speaks: it takes the stream and
// keeps it; valid-looking RTP from anywhere else (the attacker, the NAT
// address that had it) does not take it back.
func TestLatchOnlyNegotiatedRTP(t *testing.T) {
	t.Parallel()
	e := startEngine(t, EngineOptions{})
	s, ev := newSession(t, e)
	signalled := newUDPPeer(t) // where the phone's SDP says it is
	phone := newUDPPeer(t)     // the phone as its NAT shows it
	attacker := newUDPPeer(t)
	to := s.LocalAddr()
	s.SetRemote(signalled.addr(), PCMU, 101)
	s.DetectTones(true)
	s.Play(NewAudio(sine(400, 5000, time.Second)), true, nil)

	attacker.raw(to, []byte("not RTP at all, but as long as an RTP header"))
	attacker.raw(to, []byte{0x8f, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0})                   // version 2, 15 CSRCs it does not carry
	attacker.raw(to, append([]byte{0x40, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1}, make([]byte, 160)...)) // version 1
	attacker.send(to, 18, 0, make([]byte, 20))                                                    // G.729: not negotiated
	attacker.send(to, 96, 160, make([]byte, 160))                                                 // a dynamic type: not negotiated
	phone.tone(to, 8000, '5')

	select {
	case <-phone.got:
	case h := <-attacker.got:
		t.Fatalf("our RTP went to the attacker, who sent first (%+v)", h)
	case <-time.After(wait):
		t.Fatalf("the phone got no RTP within %v", wait)
	}
	if got := ev.next(t, EventTone).Tone; got != '5' {
		t.Fatalf("tone %q from the phone, want '5'", got)
	}
	if hs := attacker.sync(t); len(hs) != 0 {
		t.Fatalf("the attacker got %d RTP packets", len(hs))
	}

	// The signalled address speaks: it takes the stream from the NAT
	// address (a tick under way may still send there once).
	signalled.tone(to, 16000, '6')
	if got := ev.next(t, EventTone).Tone; got != '6' {
		t.Fatalf("tone %q from the signalled address, want '6'", got)
	}
	waitTicks(t, s, 2)
	phone.sync(t)
	signalled.sync(t)

	// Valid, negotiated RTP from elsewhere does not take it back.
	for i := range 3 {
		attacker.send(to, 0, uint32(20000+160*i), make([]byte, 160))
	}
	attacker.tone(to, 24000, '3')
	phone.tone(to, 32000, '4')
	signalled.tone(to, 40000, '#') // arrives after the others
	if got := ev.tones(t, '#'); got != "#" {
		t.Fatalf("tones %q, want only the signalled address's %q", got, "#")
	}
	waitTicks(t, s, 3)
	if n := len(signalled.sync(t)); n == 0 {
		t.Fatal("the signalled address got no RTP")
	}
	if n := len(attacker.sync(t)); n != 0 {
		t.Fatalf("the attacker got %d RTP packets after the signalled address spoke", n)
	}
	if n := len(phone.sync(t)); n != 0 {
		t.Fatalf("the NAT address got %d RTP packets after the signalled address spoke", n)
	}
}
