package sipgw

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/identity"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/internal/store"
)

// The fuzz gateway's fixed digest state: seeds carry credentials that stay
// valid from run to run (testdata/fuzz/FuzzRequest, made with these).
const (
	fuzzSecret   = "switchboard-fuzz-nonce-secret-32"
	fuzzInstance = "fuzzinst"
	fuzzTrunkIP  = "192.0.2.10"
	fuzzUserIP   = "198.51.100.7"
	fuzzTollNum  = "+15550199"
)

var fuzzNow = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// fuzzTx is a server transaction that keeps what the handler answers.
// Like the caller's UA it acknowledges a 2xx to an INVITE at once, through
// the gateway's ACK handler.
type fuzzTx struct {
	gw   *Gateway
	req  *sip.Request
	mu   sync.Mutex
	res  []*sip.Response
	done chan struct{}
	acks chan *sip.Request
}

func newFuzzTx(gw *Gateway, req *sip.Request) *fuzzTx {
	return &fuzzTx{gw: gw, req: req, done: make(chan struct{}), acks: make(chan *sip.Request)}
}

func (tx *fuzzTx) Terminate()                         {}
func (tx *fuzzTx) OnTerminate(sip.FnTxTerminate) bool { return true }
func (tx *fuzzTx) Done() <-chan struct{}              { return tx.done }
func (tx *fuzzTx) Err() error                         { return nil }
func (tx *fuzzTx) Acks() <-chan *sip.Request          { return tx.acks }
func (tx *fuzzTx) OnCancel(sip.FnTxCancel) bool       { return true }
func (tx *fuzzTx) Respond(res *sip.Response) error {
	tx.mu.Lock()
	tx.res = append(tx.res, res)
	tx.mu.Unlock()
	if tx.req.IsInvite() && res.StatusCode >= 200 && res.StatusCode < 300 {
		tx.gw.onAck(ackFor(tx.req, res), nil)
	}
	return nil
}

// ackFor is the caller's ACK of res, a 2xx answer to the INVITE req.
func ackFor(req *sip.Request, res *sip.Response) *sip.Request {
	ack := sip.NewRequest(sip.ACK, *req.Recipient.Clone())
	ack.AppendHeader(sip.NewHeader("Via", req.Via().Value()))
	ack.AppendHeader(sip.HeaderClone(req.From()))
	ack.AppendHeader(sip.HeaderClone(res.To()))
	ack.AppendHeader(sip.NewHeader("Call-ID", callIDOf(req)))
	ack.AppendHeader(&sip.CSeqHeader{SeqNo: req.CSeq().SeqNo, MethodName: sip.ACK})
	ack.SetSource(req.Source())
	ack.SetTransport(req.Transport())
	return ack
}

func (tx *fuzzTx) final() *sip.Response {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	for _, r := range tx.res {
		if r.StatusCode >= 200 {
			return r
		}
	}
	return nil
}

// fuzzCalls takes every incoming call and has its bot reject it at once
// (486): the INVITE runs its whole path, SDP and media port included, and
// ends without waiting for an ACK or sending anything to the addresses
// the fuzzed message names.
//
// While answer is set it answers instead, for the dialog in-dialog
// requests are fuzzed in, and hands the leg over on legs; that call
// refuses every transfer, so nothing is ever sent to an address a fuzzed
// message names.
type fuzzCalls struct {
	answer atomic.Bool
	legs   chan *Leg
}

func (f *fuzzCalls) Incoming(_ context.Context, in callctl.IncomingCall) (string, error) {
	if f.answer.Load() {
		leg := in.NewLeg("fuzz-dialog", func(ev callctl.LegEvent) {
			if ev.Kind == callctl.LegRefer {
				ev.Refer.Report.Refuse(errs.E(errs.Forbidden, "this call takes no transfers"))
			}
		}).(*Leg)
		if err := leg.Answer(); err != nil {
			return "", err
		}
		f.legs <- leg
		return "fuzz-dialog", nil
	}
	leg := in.NewLeg("fuzz-call", func(callctl.LegEvent) {})
	leg.(*Leg).Reject(errs.EndReason{SIP: 486})
	return "fuzz-call", nil
}

func (*fuzzCalls) DialIn(context.Context, callctl.DialIn) error {
	return errs.E(errs.NotFound, "no such meeting")
}

// fuzzGateway is a started gateway on loopback whose handlers the fuzz
// target calls directly: a trunk at fuzzTrunkIP, users alice and bob, a
// bot number and a dial-in number, nonces from a fixed secret and clock.
func fuzzGateway(f *testing.F) (*Gateway, *fuzzCalls) {
	f.Helper()
	cfg := config.Default()
	cfg.SIP.Listen = "127.0.0.1:0"
	cfg.SIP.Domain = "sb.test"
	cfg.SIP.InvitesPerSecond = 1e9
	cfg.SIP.Trunks = []config.Trunk{{Name: "pstn", Address: "127.0.0.1:9", AllowFrom: []string{fuzzTrunkIP}}}
	cfg.Tenants = []config.Tenant{{ID: tenantID, DisplayName: "Contoso",
		Conferencing: config.Conferencing{TollNumber: fuzzTollNum},
		Users: []config.User{
			{ID: "aaaaaaaa-0000-0000-0000-00000000000a", DisplayName: "Alice", SIP: config.SIPCredentials{Username: "alice", Password: alicePw}, Phone: "+15550101"},
			{ID: "bbbbbbbb-0000-0000-0000-00000000000b", DisplayName: "Bob", SIP: config.SIPCredentials{Username: "bob", Password: "bob-secret"}},
		}}}
	cfg.Applications = []config.Application{{ID: appID, DisplayName: "IVR bot", Secret: "s", Tenants: []string{tenantID},
		CallbackURI: "http://127.0.0.1:1/cb", Numbers: []config.Number{{Number: botNum}}}}

	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{DataDir: f.TempDir(), Name: "sipgw-fuzz"})
	if err != nil {
		f.Fatalf("open store: %v", err)
	}
	f.Cleanup(st.Close)
	eng, err := media.NewEngine(media.EngineOptions{BindIP: netip.MustParseAddr("127.0.0.1"), InactivityTimeout: time.Minute})
	if err != nil {
		f.Fatal(err)
	}
	engCtx, stopEng := context.WithCancel(ctx)
	engDone := make(chan struct{})
	go func() { defer close(engDone); _ = eng.Run(engCtx) }()
	f.Cleanup(func() { stopEng(); <-engDone })
	calls := &fuzzCalls{legs: make(chan *Leg, 1)}
	gw, err := New(ctx, Options{Config: &cfg, Directory: identity.NewDirectory(&cfg), Store: st, Media: eng,
		Calls: calls, Now: func() time.Time { return fuzzNow }})
	if err != nil {
		f.Fatalf("new gateway: %v", err)
	}
	// A 2xx unacknowledged is given up after 64*T1: 320 ms, not 32 s.
	gw.t1, gw.t2 = 5*time.Millisecond, 40*time.Millisecond
	gw.auth.secret = []byte(fuzzSecret)
	gw.auth.initOnce.Do(func() {})
	copy(gw.auth.instance[:], fuzzInstance)
	if err := gw.Start(ctx); err != nil {
		f.Fatalf("start gateway: %v", err)
	}
	f.Cleanup(func() { gw.Close() })
	return gw, calls
}

// The dialog in-dialog requests are fuzzed in: an INVITE from the trunk
// the bot answered. An input holding {totag} has it stand for the dialog's
// local tag, so that seeds reach it (Call-ID fuzzDialogCallID, the far
// end's tag fuzzDialogFromTag).
const (
	fuzzDialogCallID  = "fuzz-dialog@192.0.2.10"
	fuzzDialogFromTag = "fuzzfrom"
	fuzzToTag         = "{totag}"
)

const fuzzDialogInvite = "INVITE sip:+15550100@sb.test SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-fuzz-dialog\r\n" +
	"Max-Forwards: 70\r\nFrom: <sip:+15550123@192.0.2.10>;tag=" + fuzzDialogFromTag + "\r\n" +
	"To: <sip:+15550100@sb.test>\r\nContact: <sip:+15550123@127.0.0.1:9>\r\n" +
	"Call-ID: " + fuzzDialogCallID + "\r\nCSeq: 1 INVITE\r\nContent-Type: application/sdp\r\n" +
	"Content-Length: 123\r\n\r\n" +
	"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
	"m=audio 9 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"

// establish runs fuzzDialogInvite through the gateway, answered and
// acknowledged, and returns its leg and the dialog's local tag.
func establish(t *testing.T, gw *Gateway, calls *fuzzCalls) (*Leg, string) {
	msg, err := sip.NewParser().ParseSIP([]byte(fuzzDialogInvite))
	if err != nil {
		t.Fatalf("the dialog's INVITE: %v", err)
	}
	req := msg.(*sip.Request)
	req.SetSource(fuzzTrunkIP + ":5060")
	req.SetTransport("UDP")
	calls.answer.Store(true)
	defer calls.answer.Store(false)
	tx := newFuzzTx(gw, req)
	gw.fuzzHandle(req, tx) // returns once the ACK came
	var leg *Leg
	select {
	case leg = <-calls.legs:
	default:
		t.Fatalf("the dialog's INVITE was not answered: %v", tx.final())
	}
	if res := tx.final(); res == nil || res.StatusCode != 200 {
		t.Fatalf("the dialog's INVITE answered %v", res)
	}
	leg.mu.Lock()
	state, tag := leg.state, leg.dlg.localTag
	leg.mu.Unlock()
	if state != stateEstablished {
		t.Fatalf("the dialog is in state %v after the ACK", state)
	}
	return leg, tag
}

// fuzzHandle routes a request the way Start registers the handlers on
// sipgo's server, after the same checks guard makes; unlike guard it lets
// a panic through, so that the fuzzer sees it with its stack.
func (g *Gateway) fuzzHandle(req *sip.Request, tx sip.ServerTransaction) {
	if code, phrase, hdrs := validate(req); code != 0 {
		if !req.IsAck() {
			g.respond(tx, req, code, phrase, hdrs...)
		}
		return
	}
	h := map[sip.RequestMethod]sipgo.RequestHandler{
		sip.INVITE:   g.onInvite,
		sip.ACK:      g.onAck,
		sip.BYE:      g.onInDialog,
		sip.CANCEL:   g.onCancel,
		sip.REGISTER: g.onRegister,
		sip.OPTIONS:  g.onOptions,
		sip.UPDATE:   g.onInDialog,
		sip.INFO:     g.onInDialog,
		sip.REFER:    g.onRefer,
	}[req.Method]
	if h == nil {
		h = g.onOther
	}
	h(req, tx)
}

// FuzzRequest feeds a datagram to the SIP edge: sipgo's parser, as its
// transports use it, then, for a request, the gateway's checks and the
// handler of its method, from a trunk's address or a user's, over UDP or
// TCP (src bit 0: trunk, bit 1: TCP). Seeds are real messages: INVITEs
// from a trunk and from users with valid credentials, REGISTERs,
// in-dialog requests, OPTIONS, CANCEL, and the RFC 4475 torture set.
// Nothing may panic, and every request but an ACK gets a final answer
// before its handler returns: a malformed message is answered with a SIP
// error or, when it does not parse, dropped.
func FuzzRequest(f *testing.F) {
	gw, calls := fuzzGateway(f)
	f.Add([]byte("OPTIONS sip:sb.test SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.10:5060;branch=z9hG4bK-1\r\n"+
		"From: <sip:probe@192.0.2.10>;tag=1\r\nTo: <sip:sb.test>\r\nCall-ID: fuzz-1\r\nCSeq: 1 OPTIONS\r\n"+
		"Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n"), uint8(1))
	f.Fuzz(func(t *testing.T, data []byte, src uint8) {
		if bytes.Contains(data, []byte(fuzzToTag)) {
			leg, tag := establish(t, gw, calls)
			// Let the dialog go without a BYE, whatever the input did to
			// its target.
			defer leg.finish(errs.EndReason{})
			data = bytes.ReplaceAll(data, []byte(fuzzToTag), []byte(tag))
		}
		msg, err := sip.NewParser().ParseSIP(data)
		if err != nil {
			return // dropped, as sipgo's transports drop it
		}
		req, ok := msg.(*sip.Request)
		if !ok {
			return // a response nobody asked for: the transaction layer drops it
		}
		from, transport := fuzzUserIP+":5062", "UDP"
		if src&1 != 0 {
			from = fuzzTrunkIP + ":5060"
		}
		if src&2 != 0 {
			transport = "TCP"
		}
		req.SetSource(from)
		req.SetDestination(gw.Addr().String())
		req.SetTransport(transport)
		// Every input starts with no nonce used.
		gw.auth.mu.Lock()
		gw.auth.uses = nonceUses{}
		gw.auth.mu.Unlock()

		// Every input starts with no registrations, as on a fresh node.
		if req.Method == sip.REGISTER {
			defer func() {
				for _, user := range []string{"alice", "bob"} {
					_ = gw.regs.Delete(context.Background(), aorKey(user))
				}
			}()
		}

		tx := newFuzzTx(gw, req)
		handled := make(chan struct{})
		var panicked string
		go func() {
			defer close(handled)
			defer func() {
				if r := recover(); r != nil {
					panicked = fmt.Sprintf("%v\n%s", r, debug.Stack())
				}
			}()
			gw.fuzzHandle(req, tx)
		}()
		select {
		case <-handled:
			if panicked != "" {
				t.Fatalf("the %s handler panicked: %s", req.Method, panicked)
			}
		case <-time.After(wait):
			buf := make([]byte, 1<<20)
			t.Fatalf("the %s handler did not return within %v:\n%s", req.Method, wait, buf[:runtime.Stack(buf, true)])
		}
		if req.IsAck() {
			return
		}
		res := tx.final()
		if res == nil {
			t.Fatalf("%s answered no final response", req.Method)
		}
		// 5xx only where RFC 3261 asks for it: 500 for a CSeq out of order
		// (§10.3 step 7, §12.2.2), 503 overloaded, 505 another version.
		outOfOrder := res.StatusCode == 500 && strings.Contains(res.Reason, "order")
		if res.StatusCode >= 500 && res.StatusCode != 503 && res.StatusCode != 505 && !outOfOrder {
			t.Fatalf("%s answered %d %s", req.Method, res.StatusCode, res.Reason)
		}
		if strings.TrimSpace(callIDOf(res)) != strings.TrimSpace(callIDOf(req)) {
			t.Fatalf("the answer's Call-ID %q is not the request's %q", callIDOf(res), callIDOf(req))
		}
	})
}
