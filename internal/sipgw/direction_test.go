package sipgw

import (
	"context"
	"strings"
	"testing"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/media"
)

func sendOnly(sdp, _ string) string { return strings.Replace(sdp, "a=sendrecv", "a=sendonly", 1) }
func inactive(sdp, _ string) string { return strings.Replace(sdp, "a=sendrecv", "a=inactive", 1) }
func nowhere(sdp, ip string) string {
	return strings.Replace(sdp, "c=IN IP4 "+ip, "c=IN IP4 0.0.0.0", 1)
}

// A call that starts sendonly, inactive or at c=0.0.0.0 (RFC 3264 §6.1,
// §8.4) is sent no RTP from the first packet, not only after a re-INVITE:
// the answer says so, and a prompt the bot plays goes nowhere (a packet
// for 0.0.0.0 would reach a socket on 127.0.0.1, where that phone
// listens). What the phone sends is still taken, and once it offers
// sendrecv the prompt reaches it.
func TestIncomingCallStartsNotSending(t *testing.T) {
	for _, c := range []struct {
		name       string
		ip         string
		offer      func(sdp, ip string) string
		answer     string // the direction Switchboard answers with
		phoneSends bool
	}{
		{"sendonly", "127.0.0.2", sendOnly, "a=recvonly", true},
		{"inactive", "127.0.0.2", inactive, "a=inactive", false},
		{"c=0.0.0.0", "127.0.0.1", nowhere, "a=sendrecv", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			caller := newPeer(t, c.ip, "+15557777")
			e := newEnv(t, envOptions{trunk: caller.addr})
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()

			s := caller.invite(e.gw.Addr(), botNum, []byte(c.offer(string(caller.g711()), caller.ip)))
			_, done := waitAnswer(t, ctx, s, sipgo.AnswerOptions{})
			call := e.nextCall()
			if err := call.leg.Answer(); err != nil {
				t.Fatal(err)
			}
			if err := result(t, done); err != nil {
				t.Fatal(err)
			}
			if body := string(s.InviteResponse.Body()); !strings.Contains(body, c.answer) {
				t.Fatalf("answer to %s, want %s:\n%s", c.name, c.answer, body)
			}
			ans, err := parseSDP(s.InviteResponse.Body())
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Ack(ctx); err != nil {
				t.Fatal(err)
			}
			call.events.expect(t, callctl.LegAnswered)
			sess := call.leg.Media()
			sess.Play(media.NewAudio(make([]int16, 8000)), true, nil)
			ticks(t, call, 10)
			if n, sent := caller.syncRTP(t), sess.Stats().PacketsSent; n != 0 || sent != 0 {
				t.Fatalf("a phone that offered %s got %d RTP packets (%d sent)", c.name, n, sent)
			}

			if c.phoneSends {
				sess.DetectTones(true)
				sendEvent(t, caller.rtp, ans.addr, 5)
				call.events.expect(t, callctl.LegTone)
			}

			res := caller.inDialog(t, s, sip.INVITE, "application/sdp", caller.g711())
			if res.StatusCode != 200 || !strings.Contains(string(res.Body()), "a=sendrecv") {
				t.Fatalf("sendrecv re-INVITE: %d\n%s", res.StatusCode, res.Body())
			}
			if _, from := caller.rtpPacket(); from != sess.LocalAddr() {
				t.Fatalf("RTP from %v, want %v", from, sess.LocalAddr())
			}
			if err := caller.byeAsCaller(ctx, s); err != nil {
				t.Fatal(err)
			}
			call.events.ended(t, errs.EndedByPSTN)
		})
	}
}

// The same for a call Switchboard places: early media a 183 says only
// comes to us (an announcement) gets nothing back, nor does an answer
// that does not receive; an answer that does gets the prompt.
func TestOutgoingCallStartsNotSending(t *testing.T) {
	for _, c := range []struct {
		name   string
		early  func(sdp, ip string) string // a 183 with this SDP first; nil: none
		answer func(sdp, ip string) string
		sends  bool // whether the answer lets us send
	}{
		{"183 sendonly, 200 sendrecv", sendOnly, func(sdp, _ string) string { return sdp }, true},
		{"200 sendonly", nil, sendOnly, false},
		{"200 c=0.0.0.0", nil, nowhere, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, envOptions{})
			p := newPeer(t, "127.0.0.1", "alice")
			p.register(e.gw.Addr(), "alice", alicePw, 600)
			l, ev := e.dial(alice)
			pi := p.nextInvite()
			sess := l.Media()
			sess.Play(media.NewAudio(make([]int16, 8000)), true, nil)
			noRTP := func(when string) {
				t.Helper()
				sessionTicks(t, sess, 10, ev)
				if n, sent := p.syncRTP(t), sess.Stats().PacketsSent; n != 0 || sent != 0 {
					t.Fatalf("%s: the phone got %d RTP packets (%d sent)", when, n, sent)
				}
			}
			if c.early != nil {
				body := c.early(string(p.g711()), p.ip)
				if err := pi.dlg.Respond(183, "Session Progress", []byte(body), sip.NewHeader("Content-Type", "application/sdp")); err != nil {
					t.Fatal(err)
				}
				ev.expect(t, callctl.LegProgress)
				noRTP("early media")
			}
			func() {
				defer pi.finish()
				if err := pi.dlg.RespondSDP([]byte(c.answer(string(p.g711()), p.ip))); err != nil {
					t.Fatal(err)
				}
			}()
			ev.expect(t, callctl.LegAnswered)
			if c.sends {
				if _, from := p.rtpPacket(); from != sess.LocalAddr() {
					t.Fatalf("RTP from %v, want %v", from, sess.LocalAddr())
				}
			} else {
				noRTP("answered")
			}
			l.HangUp(errs.EndedByBot)
			p.nextBye()
		})
	}
}
