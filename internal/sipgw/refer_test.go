package sipgw

import (
	"context"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/errs"
)

const bobID = "bbbbbbbb-0000-0000-0000-00000000000b"

// refer sends a REFER in the caller's dialog; the final response comes on
// the channel (the call side answers it meanwhile).
func (p *peer) refer(t *testing.T, s *sipgo.DialogClientSession, referTo string, hdrs ...sip.Header) <-chan *sip.Response {
	t.Helper()
	req := sip.NewRequest(sip.REFER, *s.InviteResponse.Contact().Address.Clone())
	req.Laddr = p.laddr()
	if referTo != "" {
		req.AppendHeader(sip.NewHeader("Refer-To", referTo))
	}
	for _, h := range hdrs {
		req.AppendHeader(h)
	}
	out := make(chan *sip.Response, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		res, err := s.Do(ctx, req)
		if err != nil {
			t.Errorf("REFER: %v", err)
			res = sip.NewResponseFromRequest(req, 0, "no response", nil)
		}
		out <- res
	}()
	return out
}

func response(t *testing.T, ch <-chan *sip.Response) *sip.Response {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(wait):
		t.Fatal("no response")
		return nil
	}
}

func (p *peer) nextNotify() *sip.Request {
	p.t.Helper()
	select {
	case r := <-p.notifies:
		return r
	case <-time.After(wait):
		p.t.Fatal("peer: no NOTIFY")
		return nil
	}
}

// checkNotify checks a NOTIFY of a REFER's implicit subscription (RFC 3515
// §2.4.4-5): its event, state and sipfrag status line.
func checkNotify(t *testing.T, n *sip.Request, referSeq uint32, status string, final bool) {
	t.Helper()
	if ev := n.GetHeader("Event"); ev == nil || ev.Value() != "refer;id="+strconv.FormatUint(uint64(referSeq), 10) {
		t.Errorf("NOTIFY Event %v, want refer;id=%d", ev, referSeq)
	}
	want := "active"
	if final {
		want = "terminated"
	}
	if st := n.GetHeader("Subscription-State"); st == nil || !strings.HasPrefix(st.Value(), want) {
		t.Errorf("NOTIFY Subscription-State %v, want %s", st, want)
	}
	if ct := n.ContentType(); ct == nil || !strings.HasPrefix(ct.Value(), "message/sipfrag") {
		t.Errorf("NOTIFY Content-Type %v, want message/sipfrag", ct)
	}
	if n.Contact() == nil {
		t.Errorf("NOTIFY without Contact")
	}
	if got := strings.TrimSpace(string(n.Body())); got != "SIP/2.0 "+status {
		t.Errorf("NOTIFY body %q, want SIP/2.0 %s", got, status)
	}
}

func (e *events) refer(t *testing.T) *callctl.Refer {
	t.Helper()
	ev := e.expect(t, callctl.LegRefer)
	if ev.Refer == nil || ev.Refer.Report == nil {
		t.Fatalf("LegRefer without its Refer: %+v", ev)
	}
	return ev.Refer
}

// A blind transfer that works: 202, NOTIFY "100 Trying", the call learns
// whom to dial; once the target answered, NOTIFY "200 OK" ending the
// subscription, and only then our BYE.
func TestReferBlind(t *testing.T) {
	caller := newPeer(t, "127.0.0.2", "+15557777")
	e := newEnv(t, envOptions{trunk: netip.AddrPortFrom(caller.addr.Addr(), 5)})
	s, c := e.established(t, caller, botNum)

	res := caller.refer(t, s, "<sip:bob@sb.test>")
	r := c.events.refer(t)
	if r.Target == nil || r.Target.User == nil || r.Target.User.ID != bobID || r.Target.User.TenantID != tenantID || r.Replaces != "" {
		t.Fatalf("refer target %+v replaces %q, want Bob, blind", r.Target, r.Replaces)
	}
	if !r.Report.Accept() {
		t.Fatal("Accept refused")
	}
	got := response(t, res)
	if got.StatusCode != 202 {
		t.Fatalf("REFER answered %d, want 202", got.StatusCode)
	}
	seq := got.CSeq().SeqNo
	checkNotify(t, caller.nextNotify(), seq, "100 Trying", false)

	r.Report.Result(true, errs.EndReason{})
	c.leg.HangUp(errs.EndedByRemote)
	caller.nextBye()
	select {
	case n := <-caller.notifies:
		checkNotify(t, n, seq, "200 OK", true)
	default:
		t.Fatal("BYE before the final NOTIFY")
	}
	c.events.none(t)
}

// A transfer whose target is busy: the final NOTIFY says 486, and the
// call goes on as before: the phone can still hold it with a re-INVITE.
func TestReferTargetBusy(t *testing.T) {
	caller := newPeer(t, "127.0.0.2", "+15557777")
	e := newEnv(t, envOptions{trunk: netip.AddrPortFrom(caller.addr.Addr(), 5)})
	s, c := e.established(t, caller, botNum)

	res := caller.refer(t, s, "Carol <tel:+1-555-0199>;foo=bar")
	r := c.events.refer(t)
	if r.Target == nil || r.Target.Phone == nil || r.Target.Phone.ID != "+15550199" {
		t.Fatalf("refer target %+v, want the phone +15550199", r.Target)
	}
	r.Report.Accept()
	if got := response(t, res); got.StatusCode != 202 {
		t.Fatalf("REFER answered %d, want 202", got.StatusCode)
	}
	caller.nextNotify()
	r.Report.Result(false, errs.RemoteBusy)
	checkNotify(t, caller.nextNotify(), s.InviteRequest.CSeq().SeqNo+1, "486 Busy Here", true)

	hold := strings.Replace(string(caller.g711()), "a=sendrecv", "a=sendonly", 1)
	if res := caller.inDialog(t, s, sip.INVITE, "application/sdp", []byte(hold)); res.StatusCode != 200 || !strings.Contains(string(res.Body()), "a=recvonly") {
		t.Fatalf("hold after a failed transfer: %d\n%s", res.StatusCode, res.Body())
	}
	// A second transfer, refused by the call (it is busy with another).
	res = caller.refer(t, s, "<sip:bob@sb.test>")
	c.events.refer(t).Report.Refuse(errs.E(errs.Conflict, "the bot is transferring the call"))
	if got := response(t, res); got.StatusCode != 491 {
		t.Fatalf("REFER refused by the call answered %d, want 491", got.StatusCode)
	}
	c.events.none(t)
	select {
	case r := <-caller.byes:
		t.Fatalf("BYE after a failed transfer: %v", r)
	default:
	}
}

// An attended transfer: the Replaces in the Refer-To reaches the call
// unescaped; the outgoing INVITE to the target carries it (RFC 3891).
func TestReferAttended(t *testing.T) {
	caller := newPeer(t, "127.0.0.2", "+15557777")
	e := newEnv(t, envOptions{trunk: netip.AddrPortFrom(caller.addr.Addr(), 5)})
	s, c := e.established(t, caller, botNum)

	res := caller.refer(t, s, "<sip:bob@127.0.0.9:5099?Replaces=abc%40host%3Bto-tag%3Dt1%3Bfrom-tag%3Df1>")
	r := c.events.refer(t)
	if r.Replaces != "abc@host;to-tag=t1;from-tag=f1" || r.Target.User == nil || r.Target.User.ID != bobID {
		t.Fatalf("refer %+v replaces %q", r.Target, r.Replaces)
	}
	r.Report.Refuse(errs.E(errs.NotFound, "nobody"))
	if got := response(t, res); got.StatusCode != 404 {
		t.Fatalf("REFER refused as NotFound answered %d, want 404", got.StatusCode)
	}

	p := newPeer(t, "127.0.0.3", "alice")
	p.register(e.gw.Addr(), "alice", alicePw, 600)
	target := alice
	target.Replaces = "abc@host;to-tag=t1;from-tag=f1"
	l, _ := e.dial(target)
	pi := p.nextInvite()
	if h := pi.req.GetHeader("Replaces"); h == nil || h.Value() != target.Replaces {
		t.Errorf("INVITE Replaces %v, want %s", h, target.Replaces)
	}
	if h := pi.req.GetHeader("Require"); h == nil || h.Value() != "replaces" {
		t.Errorf("INVITE Require %v, want replaces", h)
	}
	l.HangUp(errs.EndedByBot)
	pi.finish()
}

// What is wrong with a REFER itself is answered at once, before the call
// hears of it.
func TestReferBadInput(t *testing.T) {
	caller := newPeer(t, "127.0.0.2", "+15557777")
	e := newEnv(t, envOptions{trunk: netip.AddrPortFrom(caller.addr.Addr(), 5)})
	s, c := e.established(t, caller, botNum)
	own := s.InviteResponse
	ownTo, _ := own.To().Params.Get("tag")
	ownFrom, _ := own.From().Params.Get("tag")
	for _, tc := range []struct {
		referTo string
		want    int
	}{
		{"", 400},
		{"<sip:bob@sb.test", 400},
		{"<mailto:bob@example.com>", 416},
		{"<sip:nobody@sb.test>", 404},
		{"<sip:+0123@sb.test>", 404},
		{"<sip:bob@sb.test?Replaces=abc%3Bto-tag%3Dx>", 400},
		{"<sip:bob@sb.test?Replaces=" + own.CallID().Value() + "%3Bto-tag%3D" + ownTo + "%3Bfrom-tag%3D" + ownFrom + ">", 501},
	} {
		if got := response(t, caller.refer(t, s, tc.referTo)); got.StatusCode != tc.want {
			t.Errorf("Refer-To %q: %d %s, want %d", tc.referTo, got.StatusCode, got.Reason, tc.want)
		}
	}
	c.events.none(t)

	// Outside a dialog: as any method Switchboard takes in dialogs only.
	req := sip.NewRequest(sip.REFER, sip.Uri{Scheme: "sip", User: "switchboard", Host: e.gw.Addr().Addr().String(), Port: int(e.gw.Addr().Port())})
	req.AppendHeader(sip.NewHeader("Refer-To", "<sip:bob@sb.test>"))
	req.Laddr = caller.laddr()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	res, err := caller.cli.Do(ctx, req)
	if err != nil || res.StatusCode != 405 {
		t.Errorf("REFER outside a dialog: %v %v, want 405", res, err)
	}

	// A phone that asks for no subscription (RFC 4488) gets none.
	resc := caller.refer(t, s, "<sip:bob@sb.test>", sip.NewHeader("Refer-Sub", "false"))
	r := c.events.refer(t)
	r.Report.Accept()
	got := response(t, resc)
	if h := got.GetHeader("Refer-Sub"); got.StatusCode != 202 || h == nil || h.Value() != "false" {
		t.Fatalf("REFER with Refer-Sub: false: %d %v", got.StatusCode, h)
	}
	r.Report.Result(true, errs.EndReason{})
	c.leg.HangUp(errs.EndedByRemote)
	caller.nextBye()
	select {
	case n := <-caller.notifies:
		t.Fatalf("NOTIFY though Refer-Sub: false: %s", n.Body())
	default:
	}
}
