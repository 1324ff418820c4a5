package sipgw

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// waitAnswer runs WaitAnswer for a call and reports its result; provisional
// statuses go to the returned channel.
func waitAnswer(t *testing.T, ctx context.Context, s *sipgo.DialogClientSession, opts sipgo.AnswerOptions) (<-chan int, <-chan error) {
	t.Helper()
	prov := make(chan int, 8)
	done := make(chan error, 1)
	opts.OnResponse = func(res *sip.Response) error {
		if res.IsProvisional() {
			prov <- res.StatusCode
		}
		return nil
	}
	go func() { done <- s.WaitAnswer(ctx, opts) }()
	return prov, done
}

// expectStatus waits for a provisional status; others before it are
// skipped (sipgo hands responses up concurrently, so 100 and 180 may come
// in either order).
func expectStatus(t *testing.T, ch <-chan int, want int) {
	t.Helper()
	timeout := time.After(wait)
	for {
		select {
		case got := <-ch:
			if got == want {
				return
			}
		case <-timeout:
			t.Fatalf("no %d", want)
		}
	}
}

func result(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(wait):
		t.Fatal("INVITE got no final response")
		return nil
	}
}

func finalStatus(t *testing.T, err error) int {
	t.Helper()
	var de *sipgo.ErrDialogResponse
	if !errors.As(err, &de) {
		t.Fatalf("want a final failure response, got %v", err)
	}
	return de.Res.StatusCode
}

func TestIncomingFromTrunk(t *testing.T) {
	caller := newPeer(t, "127.0.0.2", "+15557777")
	e := newEnv(t, envOptions{trunk: netip.AddrPortFrom(caller.addr.Addr(), 5)})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	s := caller.invite(e.gw.Addr(), botNum, caller.g711())
	prov, done := waitAnswer(t, ctx, s, sipgo.AnswerOptions{})
	c := e.nextCall()
	if c.in.AppID != appID || c.in.TenantID != tenantID {
		t.Errorf("call for app %s tenant %s", c.in.AppID, c.in.TenantID)
	}
	if ph := c.in.Caller.Phone; ph == nil || ph.ID != "+15557777" || ph.DisplayName != "Caller" {
		t.Errorf("caller %+v, want phone +15557777", c.in.Caller)
	}
	if ai := c.in.Called.ApplicationInstance; ai == nil || ai.TenantID != tenantID || ai.ID == "" {
		t.Errorf("called %+v, want the bot's application instance", c.in.Called)
	}
	expectStatus(t, prov, 180)

	if err := c.leg.Answer(); err != nil {
		t.Fatal(err)
	}
	if err := result(t, done); err != nil {
		t.Fatalf("answer: %v", err)
	}
	ans, err := parseSDP(s.InviteResponse.Body())
	if err != nil || ans.addr != c.leg.Media().LocalAddr() || ans.codec.Name != "PCMU" || ans.dtmfPT != 101 {
		t.Fatalf("SDP answer %+v (%v)", ans, err)
	}
	if err := s.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	c.events.expect(t, callctl.LegAnswered)

	// A key pressed on the phone (RFC 4733, first packet of duration 0)
	// reaches the call once tones are detected.
	c.leg.Media().DetectTones(true)
	sendEvent(t, caller.rtp, ans.addr, 5)
	if ev := c.events.expect(t, callctl.LegTone); ev.Tone != graph.Tone("tone5") {
		t.Fatalf("tone %q", ev.Tone)
	}

	// The PSTN caller hangs up.
	if err := caller.byeAsCaller(ctx, s); err != nil {
		t.Fatal(err)
	}
	c.events.ended(t, errs.EndedByPSTN)
}

// sendEvent sends an RFC 4733 event for digit from conn to addr: the
// first packet (duration 0) and the end packets.
func sendEvent(t *testing.T, conn *net.UDPConn, to netip.AddrPort, digit byte) {
	t.Helper()
	for i, end := range []bool{false, true, true, true} {
		pkt := make([]byte, 16)
		pkt[0] = 0x80
		pkt[1] = 101
		if i == 0 {
			pkt[1] |= 0x80 // marker: the start of the event
		}
		binary.BigEndian.PutUint16(pkt[2:], uint16(100+i))
		binary.BigEndian.PutUint32(pkt[4:], 8000)
		binary.BigEndian.PutUint32(pkt[8:], 0x1234)
		pkt[12] = digit
		pkt[13] = 10
		if end {
			pkt[13] |= 0x80
			binary.BigEndian.PutUint16(pkt[14:], 800)
		}
		if _, err := conn.WriteToUDPAddrPort(pkt, to); err != nil {
			t.Fatal(err)
		}
	}
}

func TestIncomingFromRegisteredUser(t *testing.T) {
	e := newEnv(t, envOptions{})
	p := newPeer(t, "127.0.0.1", "alice")
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	// Without credentials: 401; with a wrong password: 403.
	s := p.invite(e.gw.Addr(), botNum, p.g711())
	_, done := waitAnswer(t, ctx, s, sipgo.AnswerOptions{})
	if st := finalStatus(t, result(t, done)); st != 401 {
		t.Fatalf("INVITE without credentials: %d", st)
	}
	s = p.invite(e.gw.Addr(), botNum, p.g711())
	_, done = waitAnswer(t, ctx, s, sipgo.AnswerOptions{Username: "alice", Password: "nope"})
	if st := finalStatus(t, result(t, done)); st != 403 {
		t.Fatalf("INVITE with a wrong password: %d", st)
	}

	s = p.invite(e.gw.Addr(), botNum, p.g711())
	_, done = waitAnswer(t, ctx, s, sipgo.AnswerOptions{Username: "alice", Password: alicePw})
	c := e.nextCall()
	if u := c.in.Caller.User; u == nil || u.ID != "aaaaaaaa-0000-0000-0000-00000000000a" || u.DisplayName != "Alice" || u.TenantID != tenantID {
		t.Fatalf("caller %+v, want user alice", c.in.Caller)
	}
	if err := c.leg.Answer(); err != nil {
		t.Fatal(err)
	}
	if err := result(t, done); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	c.events.expect(t, callctl.LegAnswered)

	// The bot hangs up: a BYE to the caller, nothing more reported.
	c.leg.HangUp(errs.EndedByBot)
	if bye := p.nextBye(); bye.CallID().Value() != s.InviteRequest.CallID().Value() {
		t.Fatalf("BYE for another call")
	}
	c.events.none(t)
}

func TestIncomingRefused(t *testing.T) {
	caller := newPeer(t, "127.0.0.2", "+15557777")
	e := newEnv(t, envOptions{trunk: netip.AddrPortFrom(caller.addr.Addr(), 5)})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	call := func(num string, body []byte) int {
		t.Helper()
		s := caller.invite(e.gw.Addr(), num, body)
		_, done := waitAnswer(t, ctx, s, sipgo.AnswerOptions{})
		return finalStatus(t, result(t, done))
	}
	// Only G.729 and opus: 488 before any call exists.
	if st := call(botNum, caller.sdp("18 111", "18 G729/8000", "111 opus/48000/2")); st != 488 {
		t.Fatalf("G.729/opus offer: %d", st)
	}
	// A number no bot owns.
	if st := call("+15550000", caller.g711()); st != 404 {
		t.Fatalf("unknown number: %d", st)
	}
	select {
	case c := <-e.calls.calls:
		t.Fatalf("a refused INVITE created call %s", c.id)
	default:
	}

	// The bot rejects as busy.
	s := caller.invite(e.gw.Addr(), botNum, caller.g711())
	_, done := waitAnswer(t, ctx, s, sipgo.AnswerOptions{})
	c := e.nextCall()
	c.leg.Reject(errs.RejectedBusy)
	if st := finalStatus(t, result(t, done)); st != 486 {
		t.Fatalf("reject busy: %d", st)
	}
	c.events.none(t)
}

func TestIncomingCallerCancels(t *testing.T) {
	caller := newPeer(t, "127.0.0.2", "+15557777")
	e := newEnv(t, envOptions{trunk: netip.AddrPortFrom(caller.addr.Addr(), 5)})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	s := caller.invite(e.gw.Addr(), botNum, caller.g711())
	prov, done := waitAnswer(t, ctx, s, sipgo.AnswerOptions{})
	c := e.nextCall()
	expectStatus(t, prov, 180)
	cancel() // WaitAnswer sends CANCEL
	if err := result(t, done); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled INVITE: %v", err)
	}
	if s.InviteResponse.StatusCode != 487 {
		t.Fatalf("INVITE ended with %d, want 487", s.InviteResponse.StatusCode)
	}
	c.events.ended(t, errs.CallerCancelled)
	if err := c.leg.Answer(); err == nil {
		t.Fatal("answering a cancelled call succeeded")
	}
}

func TestIncomingFlood(t *testing.T) {
	caller := newPeer(t, "127.0.0.2", "+15557777")
	e := newEnv(t, envOptions{trunk: netip.AddrPortFrom(caller.addr.Addr(), 5), ips: 1})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	s1 := caller.invite(e.gw.Addr(), botNum, caller.g711())
	_, done1 := waitAnswer(t, ctx, s1, sipgo.AnswerOptions{})
	c := e.nextCall()

	s2 := caller.invite(e.gw.Addr(), botNum, caller.g711())
	_, done2 := waitAnswer(t, ctx, s2, sipgo.AnswerOptions{})
	if st := finalStatus(t, result(t, done2)); st != 503 {
		t.Fatalf("second INVITE within the second: %d, want 503", st)
	}
	if s2.InviteResponse.GetHeader("Retry-After") == nil {
		t.Fatal("503 without Retry-After")
	}
	c.leg.Reject(errs.Rejected)
	if st := finalStatus(t, result(t, done1)); st != 603 {
		t.Fatalf("rejected call: %d", st)
	}
}

func TestIncomingOurHangUpBeforeACKWaits(t *testing.T) {
	caller := newPeer(t, "127.0.0.2", "+15557777")
	e := newEnv(t, envOptions{trunk: netip.AddrPortFrom(caller.addr.Addr(), 5)})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	s := caller.invite(e.gw.Addr(), botNum, caller.g711())
	_, done := waitAnswer(t, ctx, s, sipgo.AnswerOptions{})
	c := e.nextCall()
	if err := c.leg.Answer(); err != nil {
		t.Fatal(err)
	}
	if err := result(t, done); err != nil {
		t.Fatal(err)
	}
	// The bot hangs up before the caller's ACK: the BYE follows the ACK.
	c.leg.HangUp(errs.EndedByBot)
	if err := s.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	caller.nextBye()
	c.events.none(t)
}

// A draining gateway tells a proxy's probes (OPTIONS outside a dialog) and
// new INVITEs 503, so Kamailio's dispatcher marks the node inactive and
// sends new calls elsewhere, while the call it carries goes on: OPTIONS
// in its dialog still get 200 and the caller's BYE ends it.
func TestDrainRefusesProbesAndNewCalls(t *testing.T) {
	caller := newPeer(t, "127.0.0.2", "+15557777")
	e := newEnv(t, envOptions{trunk: netip.AddrPortFrom(caller.addr.Addr(), 5)})
	probe := func() *sip.Response {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), wait)
		defer cancel()
		res, err := caller.cli.Do(ctx, sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: int(e.gw.Addr().Port())}))
		if err != nil {
			t.Fatalf("OPTIONS: %v", err)
		}
		return res
	}
	if res := probe(); res.StatusCode != 200 {
		t.Fatalf("OPTIONS before the drain: %d", res.StatusCode)
	}
	s, c := e.established(t, caller, botNum)

	e.gw.Drain()
	if res := probe(); res.StatusCode != 503 || res.GetHeader("Retry-After") == nil {
		t.Fatalf("OPTIONS while draining: %d (Retry-After %v), want 503 with Retry-After", res.StatusCode, res.GetHeader("Retry-After"))
	}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s2 := caller.invite(e.gw.Addr(), botNum, caller.g711())
	_, done := waitAnswer(t, ctx, s2, sipgo.AnswerOptions{})
	if st := finalStatus(t, result(t, done)); st != 503 {
		t.Fatalf("new INVITE while draining: %d, want 503", st)
	}
	if s2.InviteResponse.GetHeader("Retry-After") == nil {
		t.Fatal("503 without Retry-After")
	}

	if res := caller.inDialog(t, s, sip.OPTIONS, "", nil); res.StatusCode != 200 {
		t.Fatalf("OPTIONS in the drained call's dialog: %d, want 200", res.StatusCode)
	}
	if err := caller.byeAsCaller(ctx, s); err != nil {
		t.Fatal(err)
	}
	c.events.ended(t, errs.EndedByPSTN)
	if n := e.calls.n.Load(); n != 1 {
		t.Fatalf("%d calls reached the call manager, want the one before the drain", n)
	}
}
