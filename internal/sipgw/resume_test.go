package sipgw

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// crash stops g the way a killed process stops: its legs and sockets go,
// and nothing is sent to anyone.
func crash(g *Gateway) {
	g.mu.Lock()
	legs := make([]*Leg, 0, len(g.legs))
	for l := range g.legs {
		legs = append(legs, l)
	}
	g.mu.Unlock()
	for _, l := range legs {
		l.mu.Lock()
		l.byeSent = true
		l.silenceLocked()
		l.mu.Unlock()
		l.finish(errs.EndReason{})
	}
	g.Close()
}

func refOf(t *testing.T, l *Leg) (callctl.LegRef, legRef) {
	t.Helper()
	ref := l.Ref()
	var r legRef
	if err := json.Unmarshal(ref.Data, &r); err != nil || ref.Kind != "sip" || r.ID != l.id || r.Dir != l.dir {
		t.Fatalf("reference %s %s (%v), want the leg %s %s", ref.Kind, ref.Data, err, l.id, l.dir)
	}
	return ref, r
}

// resume is a restarted node's gateway resuming the call: it must fail,
// and report nothing.
func resume(t *testing.T, g *Gateway, callID string, ref callctl.LegRef, state graph.CallState) {
	t.Helper()
	leg, err := g.Resume(callID, ref, state, func(ev callctl.LegEvent) { t.Errorf("a failed resume reported %+v", ev) })
	if err == nil || leg != nil {
		t.Fatalf("a SIP leg was resumed (%v)", err)
	}
}

// After a crash, the far end of an established SIP call is not left in
// dead air: the leg's reference holds its confirmed dialog, and the
// restarted node's gateway sends a BYE on it when callctl resumes the
// call, from its own listener. A node resumes calls before it starts SIP:
// the BYE then waits for Start.
func TestResumeReleasesTheDialog(t *testing.T) {
	t.Run("incoming, resumed before Start", func(t *testing.T) {
		caller := newPeer(t, "127.0.0.2", "+15557777")
		a := newEnv(t, envOptions{trunk: caller.addr})
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		s := caller.invite(a.gw.Addr(), botNum, caller.g711())
		prov, done := waitAnswer(t, ctx, s, sipgo.AnswerOptions{})
		call := a.nextCall()
		expectStatus(t, prov, 180)
		if _, r := refOf(t, call.leg); r.Dialog != nil {
			t.Fatalf("a ringing leg's reference holds a dialog: %+v", r.Dialog)
		}
		if err := call.leg.Answer(); err != nil {
			t.Fatal(err)
		}
		if err := result(t, done); err != nil {
			t.Fatal(err)
		}
		if err := s.Ack(ctx); err != nil {
			t.Fatal(err)
		}
		call.events.expect(t, callctl.LegAnswered)
		ref, r := refOf(t, call.leg)
		if r.Dialog == nil || r.Dialog.CallID != callIDOf(s.InviteRequest) {
			t.Fatalf("an established leg's reference holds dialog %+v", r.Dialog)
		}
		crash(a.gw)

		b := newEnv(t, envOptions{trunk: caller.addr, unstarted: true})
		resume(t, b.gw, call.id, ref, graph.StateEstablished)
		select {
		case <-caller.byes:
			t.Fatal("a BYE before the gateway started")
		default:
		}
		if err := b.gw.Start(ctx); err != nil {
			t.Fatal(err)
		}
		bye := caller.nextBye()
		if bye.Source() != b.gw.Addr().String() {
			t.Errorf("BYE from %s, want the restarted gateway's listener %s", bye.Source(), b.gw.Addr())
		}
		// In the caller's dialog: ours is the To tag of the answer.
		if callIDOf(bye) != callIDOf(s.InviteRequest) || fromTag(bye) != toTag(s.InviteResponse) || toTag(bye) != fromTag(s.InviteRequest) {
			t.Errorf("BYE Call-ID %s From tag %s To tag %s, not in the caller's dialog", callIDOf(bye), fromTag(bye), toTag(bye))
		}
		select {
		case <-s.Context().Done():
		case <-time.After(wait):
			t.Fatal("the caller's dialog did not end")
		}
	})

	t.Run("outgoing, resumed after Start", func(t *testing.T) {
		a := newEnv(t, envOptions{})
		p := newPeer(t, "127.0.0.1", "alice")
		p.register(a.gw.Addr(), "alice", alicePw, 600)
		l, ev := a.dial(alice)
		pi := p.nextInvite()
		p.ring(pi)
		ev.expect(t, callctl.LegRinging)
		if _, r := refOf(t, l); r.Dialog != nil || len(r.Invites) != 1 {
			t.Fatalf("a ringing outgoing leg's reference holds dialog %+v and %d INVITEs, want none and one", r.Dialog, len(r.Invites))
		}
		p.answer(pi)
		ev.expect(t, callctl.LegAnswered)
		ref, r := refOf(t, l)
		if r.Dialog == nil || r.Dialog.CallID != callIDOf(pi.req) {
			t.Fatalf("an established leg's reference holds dialog %+v", r.Dialog)
		}
		crash(a.gw)

		if len(r.Invites) != 0 {
			t.Errorf("an established leg's reference holds INVITEs to cancel: %+v", r.Invites)
		}
		b := newEnv(t, envOptions{})
		resume(t, b.gw, "call-out", ref, graph.StateEstablished)
		bye := p.nextBye()
		if bye.Source() != b.gw.Addr().String() {
			t.Errorf("BYE from %s, want the restarted gateway's listener %s", bye.Source(), b.gw.Addr())
		}
		if callIDOf(bye) != callIDOf(pi.req) || fromTag(bye) != fromTag(pi.req) {
			t.Errorf("BYE Call-ID %s From tag %s, not in the dialog of our INVITE", callIDOf(bye), fromTag(bye))
		}
		// RFC 3261 §12.2.1.1: the CSeq goes up from the INVITE's.
		if bye.CSeq().SeqNo <= pi.req.CSeq().SeqNo || bye.Recipient.Port != int(p.addr.Port()) {
			t.Errorf("BYE %s CSeq %d, want the phone's Contact and a CSeq above the INVITE's %d",
				bye.Recipient.String(), bye.CSeq().SeqNo, pi.req.CSeq().SeqNo)
		}
		select {
		case <-pi.dlg.Context().Done():
		case <-time.After(wait):
			t.Fatal("the phone's dialog did not end")
		}
		select {
		case extra := <-p.byes:
			t.Fatalf("a second BYE: %s", extra.String())
		default:
		}
	})
}

// A node that resumes an outgoing call whose INVITE was still unanswered
// when the process that sent it died (a restart, or the takeover of a lost
// node) cancels that INVITE: the phone stops ringing. The CANCEL copies
// the INVITE as RFC 3261 §9.1 asks, its top Via's branch included, so the
// phone's INVITE transaction matches it (§9.2), although it comes from
// another gateway. A node resumes calls before it starts SIP: the CANCEL
// then waits for Start.
func TestResumeCancelsARingingOutgoingCall(t *testing.T) {
	a := newEnv(t, envOptions{})
	p := newPeer(t, "127.0.0.1", "alice")
	p.register(a.gw.Addr(), "alice", alicePw, 600)
	l, ev := a.dial(alice)
	pi := p.nextInvite()
	cancels := make(chan *sip.Request, 1)
	pi.tx.OnCancel(func(r *sip.Request) { cancels <- r })
	p.ring(pi)
	ev.expect(t, callctl.LegRinging)
	ref, r := refOf(t, l)
	if r.Dialog != nil || len(r.Invites) != 1 {
		t.Fatalf("a ringing outgoing leg's reference: dialog %+v, %d INVITEs, want one INVITE", r.Dialog, len(r.Invites))
	}
	crash(a.gw)

	b := newEnv(t, envOptions{unstarted: true})
	resume(t, b.gw, "call-ringing", ref, graph.StateRinging)
	select {
	case <-cancels:
		t.Fatal("a CANCEL before the gateway started")
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	if err := b.gw.Start(ctx); err != nil {
		t.Fatal(err)
	}
	var c *sip.Request
	select {
	case c = <-cancels:
	case <-time.After(wait):
		t.Fatal("the phone got no CANCEL")
	}
	if c.Source() != b.gw.Addr().String() {
		t.Errorf("CANCEL from %s, want the resuming gateway's listener %s", c.Source(), b.gw.Addr())
	}
	inv := pi.req
	cb, _ := c.Via().Params.Get("branch")
	ib, _ := inv.Via().Params.Get("branch")
	if c.Recipient.String() != inv.Recipient.String() || callIDOf(c) != callIDOf(inv) || fromTag(c) != fromTag(inv) ||
		c.CSeq().SeqNo != inv.CSeq().SeqNo || c.CSeq().MethodName != sip.CANCEL || cb != ib || c.To().Address.String() != inv.To().Address.String() {
		t.Errorf("CANCEL %s\ndoes not match INVITE %s", c.String(), inv.String())
	}
	// sipgo called OnCancel for the INVITE's server transaction: it
	// matched the CANCEL to it, answers the INVITE 487 and stops ringing.
}

// A reference that does not parse, or whose dialog does not, releases
// nothing and fails the resume.
func TestResumeUnreadableReference(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, data := range []string{`{`, `{"id":"x","direction":"in","dialog":{"callId":"c"}}`,
		`{"id":"x","direction":"in","dialog":{"callId":"c","localTag":"a","remoteTag":"b","transport":"UDP","local":"sip:a@h","remote":"sip:b@h","target":"::"}}`} {
		resume(t, e.gw, "c", callctl.LegRef{Kind: "sip", Data: json.RawMessage(data)}, graph.StateEstablished)
	}
}
