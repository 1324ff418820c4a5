package media

import (
	"net"
	"net/netip"
	"testing"

	"github.com/pion/rtp"

	"github.com/switchboard-voice/switchboard/internal/media/dtmf"
)

// fuzzSources are the addresses a fuzzed packet comes from, by the low two
// bits of its control byte: the signalled remote (twice, so it is the
// likeliest), and two others, as from a NAT and a third party.
var fuzzSources = [4]netip.AddrPort{
	{}, // the session's signalled remote, set per run
	netip.MustParseAddrPort("127.0.0.1:9"),
	netip.MustParseAddrPort("127.0.0.2:40000"),
	{},
}

// FuzzReceive feeds datagrams to a media session as its socket delivers
// them, through receive, with the tick playing out what was received
// between them. The input is a sequence of records: a control byte (bits
// 0-1 the source, bit 2 tick after the packet, bits 3-7 milliseconds
// passing), a length byte and the datagram. The session takes PCMU and
// telephone-event on payload type dtmfPT (0: none); pcma switches to
// PCMA. Seeds are real RTP (G.711 at ptime 20 and 30, RFC 4733 events
// with their end packets, comfort noise, header extensions, CSRCs,
// padding, a new SSRC) and what else reaches an RTP port: RTCP
// multiplexed on it, STUN, garbage. Nothing may panic; only valid RTP of
// a negotiated payload type may latch where the session sends (the
// invariant of SetRemote); every tone reported is a DTMF character.
func FuzzReceive(f *testing.F) {
	e, err := NewEngine(EngineOptions{BindIP: loopback})
	if err != nil {
		f.Fatal(err)
	}
	// The remote is a socket that drains what the ticks send it.
	sink, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		f.Fatal(err)
	}
	drained := make(chan struct{})
	go func() {
		defer close(drained)
		buf := make([]byte, 1500)
		for {
			if _, _, err := sink.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
		}
	}()
	f.Cleanup(func() { sink.Close(); <-drained })
	remote := sink.LocalAddr().(*net.UDPAddr).AddrPort()

	f.Add(fuzzRecord(0, true, 20, fuzzRTP(0, 1, 160, false, make([]byte, SamplesPerFrame))), uint8(101), false)
	f.Fuzz(func(t *testing.T, in []byte, dtmfPT uint8, pcma bool) {
		var tones []byte
		s, err := e.NewSession(func(ev Event) {
			if ev.Kind == EventTone {
				tones = append(tones, ev.Tone)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		codec := PCMU
		if pcma {
			codec = PCMA
		}
		dtmfPT &= 0x7f
		if dtmfPT == codec.PayloadType {
			dtmfPT = 0
		}
		s.SetRemote(remote, codec, dtmfPT)
		s.DetectTones(true)
		src := fuzzSources
		src[0], src[3] = remote, remote

		// What may latch: a source that sent valid RTP of a negotiated
		// payload type.
		eligible := map[netip.AddrPort]bool{remote: true}
		now := e.nanotime()
		var n uint64
		for len(in) >= 2 {
			ctl, size := in[0], int(in[1])
			in = in[2:]
			size = min(size, len(in))
			pkt := in[:size]
			in = in[size:]
			from := src[ctl&3]
			var h rtp.Header
			if _, err := h.Unmarshal(pkt); err == nil && h.Version == 2 &&
				(h.PayloadType == codec.PayloadType || dtmfPT != 0 && h.PayloadType == dtmfPT) {
				eligible[from] = true
			}
			now += int64(ctl>>3) * 1e6
			s.receive(pkt, from, now)
			s.mu.Lock()
			to := s.st.sendTo
			s.mu.Unlock()
			if !eligible[to] {
				t.Fatalf("the session sends to %v, which sent no valid RTP of a negotiated type", to)
			}
			if ctl&4 != 0 {
				s.tick(n, now)
				n++
			}
		}
		for range rxRingSize + 1 { // play out what is left
			now += 20e6
			s.tick(n, now)
			n++
		}
		for _, c := range tones {
			if !dtmf.Valid(c) {
				t.Fatalf("tone %q reported", c)
			}
		}
	})
}

// fuzzRecord is one FuzzReceive record: pkt from source src, a tick after
// it when tick, ms milliseconds before it.
func fuzzRecord(src byte, tick bool, ms byte, pkt []byte) []byte {
	ctl := src&3 | ms<<3
	if tick {
		ctl |= 4
	}
	return append([]byte{ctl, byte(len(pkt))}, pkt...)
}

// fuzzRTP is an RTP packet of SSRC 0x5ca1ab1e.
func fuzzRTP(pt uint8, seq uint16, ts uint32, marker bool, payload []byte) []byte {
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: ts, SSRC: 0x5ca1ab1e, Marker: marker}, Payload: payload}
	b, _ := p.Marshal()
	return b
}
