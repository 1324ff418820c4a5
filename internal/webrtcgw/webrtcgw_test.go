package webrtcgw_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/internal/media/g711"
	"github.com/switchboard-voice/switchboard/internal/webrtcgw"
	"github.com/switchboard-voice/switchboard/internal/webrtcgw/rtcphone"
)

func newGateway(t *testing.T) *webrtcgw.Gateway {
	t.Helper()
	g, err := webrtcgw.New(webrtcgw.Options{BindIP: "127.0.0.1", Loopback: true})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

// TestRelayBothWays: a pion phone offers, the gateway answers, and RTP
// flows through the loopback relay both ways between the phone and a UDP
// socket standing for the media session: the phone's PCMU and RFC 4733
// keys arrive as plain RTP, the session's RTP is heard by the phone. The
// relay's own latency is measured and logged.
func TestRelayBothWays(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	g := newGateway(t)
	phone, err := rtcphone.NewMedia()
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	offer, err := phone.Offer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !webrtcgw.IsWebRTC(offer) {
		t.Fatalf("a pion offer is not seen as WebRTC:\n%s", offer)
	}
	peer, err := g.Answer(ctx, offer)
	if err != nil {
		t.Fatal(err)
	}
	defer peer.Close()
	if c := peer.Codec(); c.Name != media.PCMU.Name || c.PayloadType != 0 || peer.DTMFPayloadType() != 101 {
		t.Fatalf("negotiated %+v, telephone-event %d", c, peer.DTMFPayloadType())
	}
	ans := string(peer.SDP())
	for _, want := range []string{"a=fingerprint:", "a=ice-ufrag:", "a=rtcp-mux", "UDP/TLS/RTP/SAVPF", "PCMU/8000", "telephone-event/8000", "a=candidate:"} {
		if !strings.Contains(ans, want) {
			t.Errorf("answer lacks %q:\n%s", want, ans)
		}
	}
	sess, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sess.Close()
	peer.Connect(sess.LocalAddr().(*net.UDPAddr).AddrPort())
	if err := phone.SetAnswer(peer.SDP()); err != nil {
		t.Fatal(err)
	}
	if err := phone.Connected(ctx); err != nil {
		t.Fatal(err)
	}

	// Phone → session: audio, then a key.
	tone := make([]int16, 8000)
	for i := range tone {
		tone[i] = int16(8000 * sinApprox(i))
	}
	phone.Say(tone)
	phone.Press("5")
	_ = sess.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 1500)
	var audio, key int
	var from netip.AddrPort
	for key == 0 {
		n, src, err := sess.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("session heard %d audio packets and no key: %v", audio, err)
		}
		from = src
		var p rtp.Packet
		if p.Unmarshal(buf[:n]) != nil {
			t.Fatalf("not RTP on the relay: %x", buf[:n])
		}
		switch p.PayloadType {
		case 0:
			audio++
		case 101:
			if p.Payload[0] != 5 {
				t.Fatalf("key event %d, want 5", p.Payload[0])
			}
			key++
		}
	}
	if from != peer.RelayAddr() {
		t.Fatalf("relayed from %v, want the relay address %v", from, peer.RelayAddr())
	}

	// Session → phone: 50 packets of a loud frame, and a stray sender the
	// relay must drop.
	stray, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer stray.Close()
	frame := make([]byte, 160)
	pcm := make([]int16, 160)
	for i := range pcm {
		pcm[i] = 12000
	}
	g711.EncodeUlaw(frame, pcm)
	for i := range 50 {
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(i), Timestamp: uint32(i * 160), SSRC: 7}, Payload: frame}
		b, _ := p.Marshal()
		if _, err := sess.WriteToUDPAddrPort(b, peer.RelayAddr()); err != nil {
			t.Fatal(err)
		}
		silent := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: uint16(i + 1000), Timestamp: uint32(i * 160), SSRC: 9}, Payload: make([]byte, 160)}
		b, _ = silent.Marshal()
		_, _ = stray.WriteToUDPAddrPort(b, peer.RelayAddr())
		time.Sleep(2 * time.Millisecond) // pacing, not synchronisation
	}
	loud := 0
	if heard, err := phone.WaitHeard(ctx, func(heard []int16) bool {
		loud = 0
		for _, s := range heard {
			if s > 10000 {
				loud++
			}
		}
		return loud >= 40*160
	}); err != nil {
		t.Fatalf("phone heard %d samples, %d loud", len(heard), loud)
	}
	in, out, nin, nout := peer.RelayLatency()
	t.Logf("relay latency: far end → session %v over %d packets, session → far end %v over %d packets", in, nin, out, nout)
	if nout > 50 {
		t.Fatalf("%d packets relayed to the far end: the stray sender's got through", nout)
	}
	if err := peer.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case <-peer.Done():
	default:
		t.Fatal("Done is open after Close")
	}
}

// TestRelayLatencyLoopback measures a loopback hop of the relay alone: a
// datagram written by one socket and read by another, the cost the relay
// adds in each direction on top of pion's own work.
func TestRelayLatencyLoopback(t *testing.T) {
	a, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	b, _ := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	defer a.Close()
	defer b.Close()
	pkt := make([]byte, 172)
	buf := make([]byte, 1500)
	var d []time.Duration
	for range 500 {
		start := time.Now()
		if _, err := a.WriteToUDPAddrPort(pkt, b.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
			t.Fatal(err)
		}
		_ = b.SetReadDeadline(time.Now().Add(time.Second))
		if _, _, err := b.ReadFromUDPAddrPort(buf); err != nil {
			t.Fatal(err)
		}
		d = append(d, time.Since(start))
	}
	sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
	t.Logf("loopback relay hop: p50 %v, p99 %v, max %v", d[len(d)/2], d[len(d)*99/100], d[len(d)-1])
}

func sinApprox(i int) float64 {
	// A 400 Hz square-ish wave is enough to be "audio".
	if (i/10)%2 == 0 {
		return 1
	}
	return -1
}

// TestRefusedOffers: what a WebRTC offer lacks is named, never a panic.
func TestRefusedOffers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	g := newGateway(t)
	phone, err := rtcphone.NewMedia()
	if err != nil {
		t.Fatal(err)
	}
	defer phone.Close()
	good, err := phone.Offer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	strip := func(prefix string) []byte {
		var out []string
		for _, l := range strings.SplitAfter(string(good), "\n") {
			if !strings.HasPrefix(l, prefix) {
				out = append(out, l)
			}
		}
		return []byte(strings.Join(out, ""))
	}
	opus := strings.NewReplacer("PCMU/8000", "opus/48000/2", "telephone-event/8000", "telephone-event/48000").Replace(string(good))
	opus = strings.Replace(opus, "SAVPF 0 101", "SAVPF 111 101", 1)
	opus = strings.ReplaceAll(opus, "rtpmap:0 ", "rtpmap:111 ")
	for _, c := range []struct {
		name string
		sdp  []byte
		want error
	}{
		{"no fingerprint", strip("a=fingerprint:"), webrtcgw.ErrNoFingerprint},
		{"no ice", strip("a=ice-ufrag:"), webrtcgw.ErrNoICE},
		{"no codec", []byte(opus), webrtcgw.ErrNoCodec},
		{"garbage", []byte("v=0\r\nthis is not SDP\r\n"), webrtcgw.ErrMalformed},
		{"bad fingerprint", []byte(strings.Replace(string(good), "a=fingerprint:sha-256 ", "a=fingerprint:sha-256 zz:", 1)), webrtcgw.ErrMalformed},
	} {
		p, err := g.Answer(ctx, c.sdp)
		if p != nil {
			p.Close()
		}
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
}
