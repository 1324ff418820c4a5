package sipgw

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

var alice = callctl.Target{TenantID: tenantID, UserID: "aaaaaaaa-0000-0000-0000-00000000000a", DisplayName: "Alice"}

func (e *env) dial(t callctl.Target) (*Leg, *events) {
	e.t.Helper()
	ev := newEvents()
	l, err := e.gw.Dial("call-out", t, ev.add)
	if err != nil {
		e.t.Fatalf("dial: %v", err)
	}
	return l.(*Leg), ev
}

func TestDialRegisteredUserAnswers(t *testing.T) {
	e := newEnv(t, envOptions{})
	p := newPeer(t, "127.0.0.1", "alice")
	p.register(e.gw.Addr(), "alice", alicePw, 600)

	l, ev := e.dial(alice)
	pi := p.nextInvite()
	if src := pi.req.Source(); src != e.gw.Addr().String() {
		t.Errorf("INVITE from %s, want the gateway's listener %s", src, e.gw.Addr())
	}
	if pi.req.Recipient.User != "alice" || pi.req.Recipient.Port != int(p.addr.Port()) {
		t.Errorf("Request-URI %s, want the registered contact", pi.req.Recipient.String())
	}
	if c := pi.req.Contact(); c == nil || c.Address.Port != int(e.gw.Addr().Port()) || c.Address.Host != "127.0.0.1" {
		t.Errorf("Contact %v, want the gateway's bound address %s", c, e.gw.Addr())
	}
	offer, err := parseSDP(pi.req.Body())
	if err != nil || offer.codec.Name != "PCMU" || offer.dtmfPT != 101 || offer.addr != l.Media().LocalAddr() {
		t.Errorf("offer %+v (%v), want PCMU first, telephone-event 101, at the media session %s", offer, err, l.Media().LocalAddr())
	}
	// Responses to one INVITE are handled concurrently: ringing is seen
	// before the answer goes.
	p.ring(pi)
	ev.expect(t, callctl.LegRinging)
	p.answer(pi)
	ev.expect(t, callctl.LegAnswered)

	// The media session sends to the address the answer gave.
	l.Media().Play(media.Tone(440, 0.5, time.Second), false, nil)
	if pt, from := p.rtpPacket(); pt != 0 || from != l.Media().LocalAddr() {
		t.Errorf("RTP payload type %d from %s, want PCMU from %s", pt, from, l.Media().LocalAddr())
	}
	if err := l.SendTones([]graph.Tone{graph.Tone("tone1")}, 100*time.Millisecond, func() {}); err != nil {
		t.Fatal(err)
	}
	for {
		if pt, _ := p.rtpPacket(); pt == 101 {
			break // the tone, as an RFC 4733 event
		}
	}

	// Our hang-up is a BYE; nothing more is reported.
	l.HangUp(errs.EndedByBot)
	if bye := p.nextBye(); bye.Source() != e.gw.Addr().String() {
		t.Errorf("BYE from %s, want the gateway's listener", bye.Source())
	}
	ev.none(t)
}

func TestDialForksFirstAnswerWins(t *testing.T) {
	e := newEnv(t, envOptions{})
	p1 := newPeer(t, "127.0.0.1", "alice")
	p2 := newPeer(t, "127.0.0.1", "alice")
	p1.register(e.gw.Addr(), "alice", alicePw, 600)
	p2.register(e.gw.Addr(), "alice", alicePw, 600)

	l, ev := e.dial(alice)
	i1, i2 := p1.nextInvite(), p2.nextInvite()
	if err := i2.dlg.Respond(180, "Ringing", nil); err != nil {
		t.Fatal(err)
	}
	ev.expect(t, callctl.LegRinging)
	p1.answer(i1)
	ev.expect(t, callctl.LegAnswered)
	ev.none(t)

	// The other contact's INVITE is cancelled (it answered 487).
	<-i2.dlg.Context().Done()
	if cause := context.Cause(i2.dlg.Context()); cause == nil || cause.Error() != "transaction canceled" {
		t.Fatalf("second contact's dialog ended with %v, want a CANCEL", cause)
	}
	i2.finish()
	ev.none(t)
	l.HangUp(errs.EndedByBot)
	p1.nextBye()
}

func TestDialBusy(t *testing.T) {
	e := newEnv(t, envOptions{})
	p := newPeer(t, "127.0.0.1", "alice")
	p.register(e.gw.Addr(), "alice", alicePw, 600)
	_, ev := e.dial(alice)
	pi := p.nextInvite()
	if err := pi.dlg.Respond(486, "Busy Here", nil); err != nil {
		t.Fatal(err)
	}
	pi.finish()
	ev.ended(t, errs.RemoteBusy)
}

func TestDialOutcomes(t *testing.T) {
	for _, c := range []struct {
		status int
		want   errs.EndReason
	}{
		{603, errs.RemoteDeclined},
		{404, errs.RemoteNotFound},
		{480, errs.Unreachable},
		{488, errs.RemoteNotAcceptable},
		{503, errs.RemoteFailed(503, "Service Unavailable")},
	} {
		t.Run(phrase(c.status), func(t *testing.T) {
			e := newEnv(t, envOptions{})
			p := newPeer(t, "127.0.0.1", "alice")
			p.register(e.gw.Addr(), "alice", alicePw, 600)
			_, ev := e.dial(alice)
			pi := p.nextInvite()
			if err := pi.dlg.Respond(c.status, phrase(c.status), nil); err != nil {
				t.Fatal(err)
			}
			pi.finish()
			ev.ended(t, c.want)
		})
	}
}

func TestDialNoRoute(t *testing.T) {
	e := newEnv(t, envOptions{})
	var re *callctl.RouteError
	_, err := e.gw.Dial("c", alice, func(callctl.LegEvent) {})
	if !errors.As(err, &re) || re.Reason != errs.NoEndpoints {
		t.Fatalf("unregistered user: %v, want RouteError NoEndpoints", err)
	}
	_, err = e.gw.Dial("c", callctl.Target{TenantID: tenantID, Phone: "+15559999"}, func(callctl.LegEvent) {})
	if !errors.As(err, &re) || re.Reason != errs.CannotRoute {
		t.Fatalf("phone without trunk: %v, want RouteError CannotRoute", err)
	}
	// A phone a user owns rings that user, here not registered.
	_, err = e.gw.Dial("c", callctl.Target{TenantID: tenantID, Phone: "+15550101"}, func(callctl.LegEvent) {})
	if !errors.As(err, &re) || re.Reason != errs.NoEndpoints {
		t.Fatalf("alice's phone: %v, want RouteError NoEndpoints", err)
	}
}

func TestDialHangUpBeforeAnswerCancels(t *testing.T) {
	e := newEnv(t, envOptions{})
	p := newPeer(t, "127.0.0.1", "alice")
	p.register(e.gw.Addr(), "alice", alicePw, 600)
	l, ev := e.dial(alice)
	pi := p.nextInvite()
	if err := pi.dlg.Respond(180, "Ringing", nil); err != nil {
		t.Fatal(err)
	}
	ev.expect(t, callctl.LegRinging)
	l.HangUp(errs.EndedByBot)
	<-pi.dlg.Context().Done()
	if cause := context.Cause(pi.dlg.Context()); cause == nil || cause.Error() != "transaction canceled" {
		t.Fatalf("dialog ended with %v, want a CANCEL", cause)
	}
	pi.finish()
	ev.none(t)
}

func TestDialTrunk(t *testing.T) {
	trunk := newPeer(t, "127.0.0.2", "gw")
	e := newEnv(t, envOptions{trunk: trunk.addr})
	l, ev := e.dial(callctl.Target{TenantID: tenantID, Phone: "+15559999"})
	pi := trunk.nextInvite()
	if u := pi.req.Recipient; u.User != "+15559999" || u.Host != "127.0.0.2" || u.Port != int(trunk.addr.Port()) {
		t.Errorf("Request-URI %s, want sip:+15559999@%s", u.String(), trunk.addr)
	}
	trunk.ring(pi)
	ev.expect(t, callctl.LegRinging)
	trunk.answer(pi)
	ev.expect(t, callctl.LegAnswered)
	l.Media().Play(media.Tone(440, 0.5, time.Second), false, nil)
	if _, from := trunk.rtpPacket(); from != l.Media().LocalAddr() {
		t.Errorf("RTP from %s", from)
	}

	// The PSTN side hangs up.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := trunk.byeAsCallee(ctx, pi); err != nil {
		t.Fatalf("trunk BYE: %v", err)
	}
	ev.ended(t, errs.EndedByPSTN)
}

func TestResumeFails(t *testing.T) {
	e := newEnv(t, envOptions{})
	if _, err := e.gw.Resume("c", callctl.LegRef{Kind: "sip"}, graph.StateEstablished, func(callctl.LegEvent) {}); err == nil {
		t.Fatal("a SIP leg was resumed")
	}
}
