package media

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/switchboard-voice/switchboard/internal/media/dtmf"
)

// udpPeer is a far end on a loopback socket: it sends RTP (or anything)
// to a session and collects, in order of arrival, the RTP headers it gets.
type udpPeer struct {
	t    testing.TB
	conn *net.UDPConn
	seq  uint16
	got  chan rtp.Header
}

// syncSSRC marks the packet udpPeer.sync sends itself.
const syncSSRC = 0x53594e43

func newUDPPeer(t testing.TB) *udpPeer {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		t.Fatal(err)
	}
	p := &udpPeer{t: t, conn: c, seq: 2000, got: make(chan rtp.Header, 4096)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, _, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			var h rtp.Header
			if _, err := h.Unmarshal(buf[:n]); err != nil {
				continue
			}
			select {
			case p.got <- h:
			default:
				panic("udpPeer: receive channel full")
			}
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return p
}

func (p *udpPeer) addr() netip.AddrPort { return p.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// raw sends b to to as it is.
func (p *udpPeer) raw(to netip.AddrPort, b []byte) {
	p.t.Helper()
	if _, err := p.conn.WriteToUDPAddrPort(b, to); err != nil {
		p.t.Fatal(err)
	}
}

// send sends an RTP packet of payload type pt to to.
func (p *udpPeer) send(to netip.AddrPort, pt uint8, ts uint32, payload []byte) {
	p.t.Helper()
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: p.seq, Timestamp: ts, SSRC: 0xbeef}, Payload: payload}
	p.seq++
	b, err := pkt.Marshal()
	if err != nil {
		p.t.Fatal(err)
	}
	p.raw(to, b)
}

// tone sends the first packet of an RFC 4733 event (payload type 101).
func (p *udpPeer) tone(to netip.AddrPort, ts uint32, tone byte) {
	p.t.Helper()
	code, _ := dtmf.Code(tone)
	var b [dtmf.EventSize]byte
	dtmf.Event{Code: code, Volume: 10, Duration: 160}.MarshalTo(b[:])
	p.send(to, 101, ts, b[:])
}

// next waits for the next RTP packet to arrive.
func (p *udpPeer) next(t testing.TB) rtp.Header {
	t.Helper()
	select {
	case h := <-p.got:
		return h
	case <-time.After(wait):
		t.Fatalf("%v got no RTP within %v", p.addr(), wait)
		return rtp.Header{}
	}
}

// sync returns every packet that has arrived so far: it sends itself a
// marker and collects what was queued on the socket before it.
func (p *udpPeer) sync(t testing.TB) []rtp.Header {
	t.Helper()
	mark := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 127, SSRC: syncSSRC}}
	b, err := mark.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	p.raw(p.addr(), b)
	var hs []rtp.Header
	for {
		h := p.next(t)
		if h.SSRC == syncSSRC && h.PayloadType == 127 {
			return hs
		}
		hs = append(hs, h)
	}
}

// waitTicks returns after the session's media clock has ticked n times,
// counted through a recording's sink (it replaces any recording).
func waitTicks(t testing.TB, s *Session, n int) {
	t.Helper()
	r := newRecorder(n)
	s.Record(RecordOptions{}, r.sink, r.done)
	select {
	case <-r.full:
	case res := <-r.result:
		r.mu.Lock()
		got := r.frames
		r.mu.Unlock()
		t.Fatalf("recording ended after %d of %d ticks: %+v", got, n, res)
	case <-time.After(wait):
		t.Fatalf("%d ticks took more than %v", n, wait)
	}
	s.StopRecord()
}
