package sipgw

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/media"
)

// A phone on hold is not hung up. The phone puts the call on hold with a
// re-INVITE and then sends no RTP for several inactivity timeouts: the
// call goes on, and Switchboard, whose answer does not send (recvonly,
// inactive) or has nowhere to send (c=0.0.0.0, RFC 3264 §8.4), sends the
// phone nothing although the bot is playing a prompt. The phone resumes
// with sendrecv: the prompt reaches it again, and the inactivity timeout
// is armed again, so a phone that stays silent is now hung up.
func TestHoldOutlivesInactivity(t *testing.T) {
	const inactivity = 300 * time.Millisecond
	for _, c := range []struct {
		name   string
		hold   func(sdp, ip string) string
		answer string // the direction Switchboard answers the hold with
	}{
		{"sendonly", func(sdp, _ string) string { return strings.Replace(sdp, "a=sendrecv", "a=sendonly", 1) }, "a=recvonly"},
		{"inactive", func(sdp, _ string) string { return strings.Replace(sdp, "a=sendrecv", "a=inactive", 1) }, "a=inactive"},
		{"c=0.0.0.0", func(sdp, ip string) string { return strings.Replace(sdp, "c=IN IP4 "+ip, "c=IN IP4 0.0.0.0", 1) }, "a=sendrecv"},
	} {
		t.Run(c.name, func(t *testing.T) {
			caller := newPeer(t, "127.0.0.2", "+15557777")
			e := newEnv(t, envOptions{trunk: netip.AddrPortFrom(caller.addr.Addr(), 5), inactivity: inactivity})
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()

			s := caller.invite(e.gw.Addr(), botNum, caller.g711())
			_, done := waitAnswer(t, ctx, s, sipgo.AnswerOptions{})
			call := e.nextCall()
			if err := call.leg.Answer(); err != nil {
				t.Fatal(err)
			}
			if err := result(t, done); err != nil {
				t.Fatal(err)
			}
			ans, err := parseSDP(s.InviteResponse.Body())
			if err != nil {
				t.Fatal(err)
			}
			// The phone talks until its hold is in force.
			stopTalking := caller.talk(ans.addr)
			defer stopTalking()
			if err := s.Ack(ctx); err != nil {
				t.Fatal(err)
			}
			call.events.expect(t, callctl.LegAnswered)
			sess := call.leg.Media()
			sess.Play(media.NewAudio(make([]int16, 8000)), true, nil)
			if _, from := caller.rtpPacket(); from != sess.LocalAddr() {
				t.Fatalf("RTP from %v, want %v", from, sess.LocalAddr())
			}

			hold := c.hold(string(caller.g711()), caller.ip)
			res := caller.inDialog(t, s, sip.INVITE, "application/sdp", []byte(hold))
			if res.StatusCode != 200 || !strings.Contains(string(res.Body()), c.answer) {
				t.Fatalf("hold: %d\n%s", res.StatusCode, res.Body())
			}
			stopTalking()
			ticks(t, call, 2) // a tick under way may still send
			caller.syncRTP(t)

			// On hold for three inactivity timeouts, counted on the media clock.
			ticks(t, call, 3*int(inactivity/media.FrameDuration))
			call.events.none(t)
			select {
			case <-caller.byes:
				t.Fatal("the held phone got a BYE")
			default:
			}
			if n := caller.syncRTP(t); n != 0 {
				t.Fatalf("the held phone got %d RTP packets", n)
			}

			// Off hold: the prompt is heard again, and silence is noticed again.
			if res := caller.inDialog(t, s, sip.INVITE, "application/sdp", caller.g711()); res.StatusCode != 200 ||
				!strings.Contains(string(res.Body()), "a=sendrecv") {
				t.Fatalf("resume: %d\n%s", res.StatusCode, res.Body())
			}
			if _, from := caller.rtpPacket(); from != sess.LocalAddr() {
				t.Fatalf("RTP from %v after the resume, want %v", from, sess.LocalAddr())
			}
			call.events.ended(t, errs.MediaFailure)
			caller.nextBye()
		})
	}
}

// talk sends PCMU silence to to every 20 ms from the peer's RTP socket
// until the returned function is called (more calls do nothing).
func (p *peer) talk(to netip.AddrPort) (stop func()) {
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(media.FrameDuration)
		defer tick.Stop()
		pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: 0x7a1c}, Payload: make([]byte, media.SamplesPerFrame)}
		for {
			select {
			case <-quit:
				return
			case <-tick.C:
			}
			b, _ := pkt.Marshal()
			_, _ = p.rtp.WriteToUDPAddrPort(b, to)
			pkt.SequenceNumber++
			pkt.Timestamp += media.SamplesPerFrame
		}
	}()
	stopped := false
	return func() {
		if !stopped {
			stopped = true
			close(quit)
			<-done
		}
	}
}

// syncRTP returns how many RTP packets are waiting on the peer's RTP
// socket, reading them: it sends itself a marker and reads up to it.
func (p *peer) syncRTP(t *testing.T) int {
	t.Helper()
	const ssrc = 0x53594e43
	mark, _ := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 127, SSRC: ssrc}}).Marshal()
	if _, err := p.rtp.WriteToUDPAddrPort(mark, p.rtp.LocalAddr().(*net.UDPAddr).AddrPort()); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = p.rtp.SetReadDeadline(time.Now().Add(wait))
	for n := 0; ; n++ {
		size, err := p.rtp.Read(buf)
		if err != nil {
			t.Fatalf("peer: reading RTP: %v", err)
		}
		var h rtp.Header
		if _, err := h.Unmarshal(buf[:size]); err == nil && h.SSRC == ssrc && h.PayloadType == 127 {
			return n
		}
	}
}

// ticks returns after the call's media clock has ticked n times, counted
// through a recording's sink. A session that stops first (the call was
// hung up) fails the test with what the leg reported.
func ticks(t *testing.T, c *fakeCall, n int) {
	t.Helper()
	sessionTicks(t, c.leg.Media(), n, c.events)
}

// sessionTicks is ticks for a media session whose leg reports to ev.
func sessionTicks(t *testing.T, sess *media.Session, n int, ev *events) {
	t.Helper()
	full, stopped := make(chan struct{}), make(chan media.RecordResult, 1)
	got := 0
	sess.Record(media.RecordOptions{}, func([]int16) {
		if got++; got == n {
			close(full)
		}
	}, func(r media.RecordResult) { stopped <- r })
	select {
	case <-full:
		sess.StopRecord()
	case r := <-stopped:
		ev.none(t)
		t.Fatalf("the media session stopped after %d of %d ticks: %+v", got, n, r)
	case <-time.After(wait):
		t.Fatalf("%d media ticks took more than %v", n, wait)
	}
}

// The one definition of held, and the direction Switchboard's side of the
// stream takes from the far end's SDP, offer or answer.
func TestRemoteDirection(t *testing.T) {
	at := netip.MustParseAddrPort("192.0.2.7:4000")
	none := netip.MustParseAddrPort("0.0.0.0:4000")
	for _, c := range []struct {
		dir  string
		addr netip.AddrPort
		held bool
		want media.Direction
	}{
		{dirSendRecv, at, false, media.SendRecv},
		{dirSendOnly, at, true, media.RecvOnly},
		{dirRecvOnly, at, false, media.SendOnly},
		{dirInactive, at, true, media.Inactive},
		{dirSendRecv, none, true, media.RecvOnly},
		{dirRecvOnly, none, true, media.Inactive},
		{dirSendOnly, none, true, media.RecvOnly},
	} {
		rm := remoteMedia{dir: c.dir, addr: c.addr}
		if rm.hold() != c.held || rm.localDir() != c.want {
			t.Errorf("%s at %v: held %v, our side %v; want %v, %v", c.dir, c.addr, rm.hold(), rm.localDir(), c.held, c.want)
		}
	}
}
