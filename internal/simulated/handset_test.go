package simulated

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/switchboard-voice/switchboard/internal/media/dtmf"
	"github.com/switchboard-voice/switchboard/internal/media/g711"
)

// far is the platform's end of a handset in these tests: a plain UDP socket.
func far(t *testing.T, onTone func(byte)) (*handset, *net.UDPConn) {
	t.Helper()
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	h, err := newHandset(conn.LocalAddr().(*net.UDPAddr).AddrPort(), onTone)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h, conn
}

func sendRTP(t *testing.T, conn *net.UDPConn, to netip.AddrPort, pt uint8, seq uint16, ts uint32, payload []byte) {
	t.Helper()
	b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: ts, SSRC: 7}, Payload: payload}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.WriteToUDPAddrPort(b, to); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls cond (the handset reports heard audio without signalling).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

func frameOf(v int16) []byte {
	pcm := make([]int16, 160)
	for i := range pcm {
		pcm[i] = v
	}
	out := make([]byte, 160)
	g711.EncodeUlaw(out, pcm)
	return out
}

// Heard audio is laid out in time: a gap in timestamps is heard as
// silence, a late or repeated packet is not heard twice.
func TestHandsetHearsInTime(t *testing.T) {
	h, conn := far(t, nil)
	to := h.Addr()
	loud := frameOf(8000)
	sendRTP(t, conn, to, 0, 1, 1000, loud)
	sendRTP(t, conn, to, 0, 2, 1160, loud)
	sendRTP(t, conn, to, 0, 4, 1480, loud) // one frame lost before it
	sendRTP(t, conn, to, 0, 2, 1160, loud) // a duplicate
	waitFor(t, "four frames", func() bool { return len(h.Heard()) >= 4*160 })
	heard := h.Heard()
	if len(heard) != 4*160 {
		t.Fatalf("heard %d samples, want %d (3 frames and 1 of silence)", len(heard), 4*160)
	}
	if heard[2*160+80] != 0 || heard[80] == 0 || heard[3*160+80] == 0 {
		t.Errorf("the lost frame is not silence where it belongs: %d %d %d", heard[80], heard[2*160+80], heard[3*160+80])
	}
	if s := h.Sound(); s < 0.059 || s > 0.061 {
		t.Errorf("sound: %.3f s, want 0.06", s)
	}
}

// An RFC 4733 event is reported once, when it ends, however often its
// end is repeated.
func TestHandsetHearsTonesOnce(t *testing.T) {
	got := make(chan byte, 4)
	h, conn := far(t, func(c byte) { got <- c })
	to := h.Addr()
	payload := make([]byte, dtmf.EventSize)
	code, _ := dtmf.Code('5')
	for i, end := range []bool{false, false, true, true, true} {
		dtmf.Event{Code: code, End: end, Duration: uint16(160 * (i + 1))}.MarshalTo(payload)
		sendRTP(t, conn, to, eventPT, uint16(10+i), 5000, payload)
	}
	code, _ = dtmf.Code('#')
	dtmf.Event{Code: code, End: true, Duration: 800}.MarshalTo(payload)
	sendRTP(t, conn, to, eventPT, 20, 9000, payload)
	for _, want := range []byte{'5', '#'} {
		select {
		case c := <-got:
			if c != want {
				t.Fatalf("tone %q, want %q", c, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("tone %q never reported", want)
		}
	}
	select {
	case c := <-got:
		t.Fatalf("tone %q reported again", c)
	default:
	}
}

// Once started, the handset sends a frame every 20 ms: what it was told to
// say, silence otherwise, and a pressed key as one RFC 4733 event whose
// end is sent three times.
func TestHandsetSpeaksAndPresses(t *testing.T) {
	h, conn := far(t, nil)
	speech := make([]int16, 3*160)
	for i := range speech {
		speech[i] = 6000
	}
	h.Say(speech)
	h.Press('7')
	h.Start()
	buf := make([]byte, 1500)
	var audio, loud, ends int
	var p rtp.Packet
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for ends < 3 || audio < 5 {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("after %d audio packets and %d event ends: %v", audio, ends, err)
		}
		if err := p.Unmarshal(buf[:n]); err != nil {
			t.Fatal(err)
		}
		switch p.PayloadType {
		case 0:
			audio++
			pcm := make([]int16, len(p.Payload))
			g711.DecodeUlaw(pcm, p.Payload)
			if pcm[80] > 3000 {
				loud++
			}
		case eventPT:
			var ev dtmf.Event
			if err := ev.Unmarshal(p.Payload); err != nil {
				t.Fatal(err)
			}
			if c, _ := dtmf.Char(ev.Code); c != '7' {
				t.Fatalf("event %q, want 7", c)
			}
			if ev.End {
				ends++
			}
		}
	}
	if loud != 3 {
		t.Errorf("%d loud frames, want the 3 said", loud)
	}
}
