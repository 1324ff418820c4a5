package sipgw

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"go.uber.org/goleak"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/identity"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/internal/store"
	"github.com/switchboard-voice/switchboard/internal/webrtcgw"
)

func TestMain(m *testing.M) {
	// sipgo answers a datagram it read just before its UA closed from a
	// socket it opens afterwards and never closes (the gateway sweeps
	// those on Close, best effort; test peers are plain sipgo). That
	// shutdown race is ignored here; that the gateway sends every request
	// from its listener is checked by the tests (source ports).
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/emiago/sipgo/sip.(*TransportUDP).readUDPConnection"))
}

// wait bounds how long a test waits for something that should happen at
// once; reaching it is a failure, never the way a test moves on.
const wait = 10 * time.Second

const (
	tenantID = "11111111-1111-1111-1111-111111111111"
	appID    = "22222222-2222-2222-2222-222222222222"
	botNum   = "+15550100"
	alicePw  = "alice-secret"
)

// clock is a settable clock for nonces and registrations.
type clock struct{ ns atomic.Int64 }

func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()) }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

// env is a running gateway with a real media engine, a JetStream store and
// a fake call manager.
type env struct {
	t       *testing.T
	mu      sync.Mutex
	closers []func()
	cfg     *config.Config
	gw      *Gateway
	eng     *media.Engine
	calls   *fakeCalls
	clk     *clock
}

type envOptions struct {
	trunk      netip.AddrPort // a trunk at this address (allowFrom its IP)
	inactivity time.Duration
	ips        float64
	logger     *slog.Logger
	tlsCert    string // PEM files: SIP over TLS on a port-0 listener
	tlsKey     string
	unstarted  bool                 // the test calls Start
	abuse      *config.SIPAbuse     // sip.abuse; the defaults when nil
	webrtc     bool                 // answer WebRTC offers (ws_test.go)
	ws         *config.SIPWebSocket // sip.ws; the defaults when nil
}

func newEnv(t *testing.T, o envOptions) *env {
	t.Helper()
	cfg := config.Default()
	cfg.SIP.Listen = "127.0.0.1:0"
	cfg.SIP.Domain = "sb.test"
	if o.ips > 0 {
		cfg.SIP.InvitesPerSecond = o.ips
	}
	if o.tlsCert != "" {
		cfg.SIP.TLSListen, cfg.SIP.TLSCert, cfg.SIP.TLSKey = "127.0.0.1:0", o.tlsCert, o.tlsKey
	}
	if o.abuse != nil {
		cfg.SIP.Abuse = *o.abuse
	}
	if o.ws != nil {
		cfg.SIP.WS = *o.ws
	}
	if o.trunk.IsValid() {
		cfg.SIP.Trunks = []config.Trunk{{Name: "pstn", Address: o.trunk.String(), AllowFrom: []string{o.trunk.Addr().String()}}}
	}
	cfg.Tenants = []config.Tenant{{ID: tenantID, DisplayName: "Contoso", Users: []config.User{
		{ID: "aaaaaaaa-0000-0000-0000-00000000000a", DisplayName: "Alice", SIP: config.SIPCredentials{Username: "alice", Password: alicePw}, Phone: "+15550101"},
		{ID: "bbbbbbbb-0000-0000-0000-00000000000b", DisplayName: "Bob", SIP: config.SIPCredentials{Username: "bob", Password: "bob-secret"}},
	}}}
	cfg.Applications = []config.Application{{ID: appID, DisplayName: "IVR bot", Secret: "s", Tenants: []string{tenantID},
		CallbackURI: "http://127.0.0.1:1/cb", Numbers: []config.Number{{Number: botNum}}}}

	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{DataDir: t.TempDir(), Name: "sipgw-test"})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(st.Close)
	inactivity := o.inactivity
	if inactivity == 0 {
		inactivity = time.Minute
	}
	eng, err := media.NewEngine(media.EngineOptions{BindIP: netip.MustParseAddr("127.0.0.1"), InactivityTimeout: inactivity})
	if err != nil {
		t.Fatal(err)
	}
	engCtx, stopEng := context.WithCancel(ctx)
	engDone := make(chan struct{})
	go func() { defer close(engDone); _ = eng.Run(engCtx) }()
	t.Cleanup(func() { stopEng(); <-engDone })

	clk := &clock{}
	clk.ns.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	calls := &fakeCalls{calls: make(chan *fakeCall, 16)}
	// SIPGW_DEBUG=1 shows the gateway's (and sipgo's) debug logs.
	if o.logger == nil && os.Getenv("SIPGW_DEBUG") != "" {
		o.logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	var rtc *webrtcgw.Gateway
	if o.webrtc {
		if rtc, err = webrtcgw.New(webrtcgw.Options{BindIP: "127.0.0.1", Loopback: true}); err != nil {
			t.Fatal(err)
		}
	}
	gw, err := New(ctx, Options{Config: &cfg, Directory: identity.NewDirectory(&cfg), Store: st, Media: eng,
		Calls: calls, Now: clk.Now, Logger: o.logger, WebRTC: rtc})
	if err != nil {
		t.Fatalf("new gateway: %v", err)
	}
	if !o.unstarted {
		if err := gw.Start(ctx); err != nil {
			t.Fatalf("start gateway: %v", err)
		}
	}
	e := &env{t: t, cfg: &cfg, gw: gw, eng: eng, calls: calls, clk: clk}
	envs.Store(t, e)
	t.Cleanup(func() {
		// The gateway closes before the peers made after it: a peer gone
		// first would leave the gateway's last requests unanswered, and
		// sipgo opens a socket it never closes for a message it handles
		// after its listener closed.
		gw.Close()
		envs.Delete(t)
		e.mu.Lock()
		closers := e.closers
		e.mu.Unlock()
		for i := len(closers) - 1; i >= 0; i-- {
			closers[i]()
		}
	})
	return e
}

// envs maps a test to its env, so peers made after it close after it.
var envs sync.Map

// fakeCalls stands in for callctl.Manager: it records incoming calls and
// attaches their legs at once.
type fakeCalls struct {
	calls chan *fakeCall
	n     atomic.Int32
	err   error
}

type fakeCall struct {
	in     callctl.IncomingCall
	id     string
	leg    *Leg
	events *events
}

func (f *fakeCalls) Incoming(ctx context.Context, in callctl.IncomingCall) (string, error) {
	if f.err != nil {
		return "", f.err
	}
	c := &fakeCall{in: in, id: fmt.Sprintf("call-%d", f.n.Add(1)), events: newEvents()}
	c.leg = in.NewLeg(c.id, c.events.add).(*Leg)
	f.calls <- c
	return c.id, nil
}

// DialIn refuses: the SIP edge's own tests have no meetings (the dial-in
// path is tested end to end in internal/calltest).
func (f *fakeCalls) DialIn(context.Context, callctl.DialIn) error {
	return errs.E(errs.NotFound, "no meetings here")
}

func (e *env) nextCall() *fakeCall {
	e.t.Helper()
	select {
	case c := <-e.calls.calls:
		return c
	case <-time.After(wait):
		e.t.Fatal("no incoming call")
		return nil
	}
}

// events records what a leg reports.
type events struct{ ch chan callctl.LegEvent }

func newEvents() *events { return &events{ch: make(chan callctl.LegEvent, 64)} }

func (e *events) add(ev callctl.LegEvent) { e.ch <- ev }

func (e *events) next(t *testing.T) callctl.LegEvent {
	t.Helper()
	select {
	case ev := <-e.ch:
		return ev
	case <-time.After(wait):
		t.Fatal("no leg event")
		return callctl.LegEvent{}
	}
}

func (e *events) expect(t *testing.T, kinds ...callctl.LegEventKind) callctl.LegEvent {
	t.Helper()
	var ev callctl.LegEvent
	for _, k := range kinds {
		ev = e.next(t)
		if ev.Kind != k {
			t.Fatalf("leg event %v (%+v), want %v", ev.Kind, ev, k)
		}
	}
	return ev
}

func (e *events) ended(t *testing.T, want errs.EndReason) {
	t.Helper()
	ev := e.next(t)
	if ev.Kind != callctl.LegEnded || ev.Reason != want {
		t.Fatalf("leg event %+v, want LegEnded %+v", ev, want)
	}
}

// none checks nothing was reported so far.
func (e *events) none(t *testing.T) {
	t.Helper()
	select {
	case ev := <-e.ch:
		t.Fatalf("unexpected leg event %+v", ev)
	default:
	}
}

// peer is a SIP user agent built on sipgo, with its own port-0 listener
// and an RTP socket: a phone, a trunk, a caller.
type peer struct {
	t       *testing.T
	ip      string
	ua      *sipgo.UserAgent
	srv     *sipgo.Server
	cli     *sipgo.Client
	addr    netip.AddrPort
	rtp     *net.UDPConn
	user    string
	servers *sipgo.DialogServerCache
	clients *sipgo.DialogClientCache
	// Over TCP: a listener of its own, and a client whose connections
	// come from ephemeral ports.
	tcpAddr    netip.AddrPort
	tcpCli     *sipgo.Client
	tcpClients *sipgo.DialogClientCache
	invites    chan *peerInvite
	byes       chan *sip.Request
	notifies   chan *sip.Request // NOTIFYs received, answered 200
}

// peerInvite is an INVITE the peer received; the test answers it.
type peerInvite struct {
	req  *sip.Request
	tx   sip.ServerTransaction
	dlg  *sipgo.DialogServerSession
	done chan struct{}
	once sync.Once
}

func (pi *peerInvite) finish() { pi.once.Do(func() { close(pi.done) }) }

func newPeer(t *testing.T, ip, user string) *peer {
	t.Helper()
	p := &peer{t: t, ip: ip, user: user, invites: make(chan *peerInvite, 8), byes: make(chan *sip.Request, 8),
		notifies: make(chan *sip.Request, 16)}
	var err error
	p.ua, err = sipgo.NewUA(sipgo.WithUserAgentHostname(ip))
	if err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 0)))
	if err != nil {
		t.Fatal(err)
	}
	p.addr = udp.LocalAddr().(*net.UDPAddr).AddrPort()
	p.rtp, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 0)))
	if err != nil {
		t.Fatal(err)
	}
	p.srv, _ = sipgo.NewServer(p.ua)
	p.cli, _ = sipgo.NewClient(p.ua, sipgo.WithClientHostname(ip), sipgo.WithClientPort(int(p.addr.Port())),
		sipgo.WithClientConnectionAddr(p.addr.String()))
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: ip, Port: int(p.addr.Port())}}
	p.servers = sipgo.NewDialogServerCache(p.cli, contact)
	p.clients = sipgo.NewDialogClientCache(p.cli, contact)
	p.srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		dlg, err := p.servers.ReadInvite(req, tx)
		if err != nil {
			t.Errorf("peer: read invite: %v", err)
			return
		}
		pi := &peerInvite{req: req, tx: tx, dlg: dlg, done: make(chan struct{})}
		p.invites <- pi
		select {
		case <-pi.done:
		case <-tx.Done():
		}
	})
	p.srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) { _ = p.servers.ReadAck(req, tx) })
	p.srv.OnNotify(func(req *sip.Request, tx sip.ServerTransaction) {
		// Recorded before it is answered: what the gateway sends on
		// getting the answer comes after it.
		select {
		case p.notifies <- req:
		default:
			t.Errorf("peer: NOTIFY not read")
		}
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	})
	p.srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if err := p.servers.ReadBye(req, tx); errors.Is(err, sipgo.ErrDialogDoesNotExists) || errors.Is(err, sipgo.ErrDialogOutsideDialog) {
			if err := p.clients.ReadBye(req, tx); err != nil {
				if err := p.tcpClients.ReadBye(req, tx); err != nil {
					_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "No dialog", nil))
				}
			}
		}
		p.byes <- req
	})
	tcp, err := net.Listen("tcp", net.JoinHostPort(ip, "0"))
	if err != nil {
		t.Fatal(err)
	}
	p.tcpAddr = tcp.Addr().(*net.TCPAddr).AddrPort()
	p.tcpCli, _ = sipgo.NewClient(p.ua, sipgo.WithClientHostname(ip))
	tcpContact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: ip, Port: int(p.tcpAddr.Port()),
		UriParams: sip.HeaderParams{{K: "transport", V: "tcp"}}}}
	p.tcpClients = sipgo.NewDialogClientCache(p.tcpCli, tcpContact)
	ready := &readyConn{PacketConn: udp, ready: make(chan struct{})}
	done := make(chan struct{}, 2)
	go func() { defer func() { done <- struct{}{} }(); _ = p.srv.ServeUDP(ready) }()
	go func() { defer func() { done <- struct{}{} }(); _ = p.srv.ServeTCP(tcp) }()
	<-ready.ready
	closePeer := func() {
		p.ua.Close()
		udp.Close()
		tcp.Close()
		p.rtp.Close()
		<-done
		<-done
	}
	if v, ok := envs.Load(t); ok {
		e := v.(*env)
		e.mu.Lock()
		e.closers = append(e.closers, closePeer)
		e.mu.Unlock()
	} else {
		t.Cleanup(closePeer)
	}
	return p
}

// sdp is the peer's offer or answer: the given payload types at its RTP
// socket.
func (p *peer) sdp(formats string, rtpmaps ...string) []byte {
	s := "v=0\r\no=peer 1 1 IN IP4 " + p.ip + "\r\ns=peer\r\nc=IN IP4 " + p.ip + "\r\nt=0 0\r\n" +
		"m=audio " + strconv.Itoa(p.rtp.LocalAddr().(*net.UDPAddr).Port) + " RTP/AVP " + formats + "\r\n"
	for _, m := range rtpmaps {
		s += "a=rtpmap:" + m + "\r\n"
	}
	return []byte(s + "a=sendrecv\r\n")
}

func (p *peer) g711() []byte {
	return p.sdp("0 8 101", "0 PCMU/8000", "8 PCMA/8000", "101 telephone-event/8000")
}

// register registers the peer's contact as user with password.
func (p *peer) register(gw netip.AddrPort, user, password string, expires int) *sip.Response {
	p.t.Helper()
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: gw.Addr().String(), Port: int(gw.Port())})
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "sb.test"}})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "sb.test"}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: p.ip, Port: int(p.addr.Port())}})
	req.AppendHeader(sip.NewHeader("Expires", strconv.Itoa(expires)))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	res, err := p.cli.Do(ctx, req)
	if err != nil {
		p.t.Fatalf("register: %v", err)
	}
	if res.StatusCode == 401 {
		res, err = p.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: user, Password: password})
		if err != nil {
			p.t.Fatalf("register with digest: %v", err)
		}
	}
	return res
}

func (p *peer) nextInvite() *peerInvite {
	p.t.Helper()
	select {
	case pi := <-p.invites:
		return pi
	case <-time.After(wait):
		p.t.Fatal("peer: no INVITE")
		return nil
	}
}

func (p *peer) nextBye() *sip.Request {
	p.t.Helper()
	select {
	case r := <-p.byes:
		return r
	case <-time.After(wait):
		p.t.Fatal("peer: no BYE")
		return nil
	}
}

// ring sends 180 Ringing.
func (p *peer) ring(pi *peerInvite) {
	p.t.Helper()
	if err := pi.dlg.Respond(180, "Ringing", nil); err != nil {
		p.t.Fatalf("peer: 180: %v", err)
	}
}

// answer answers an INVITE with 200 and SDP, and waits for the ACK.
func (p *peer) answer(pi *peerInvite) {
	p.t.Helper()
	defer pi.finish()
	if err := pi.dlg.RespondSDP(p.g711()); err != nil {
		p.t.Fatalf("peer: 200: %v", err)
	}
}

// rtpPacket reads one RTP packet from the peer's RTP socket.
func (p *peer) rtpPacket() (pt uint8, from netip.AddrPort) {
	p.t.Helper()
	buf := make([]byte, 1500)
	_ = p.rtp.SetReadDeadline(time.Now().Add(wait))
	n, from, err := p.rtp.ReadFromUDPAddrPort(buf)
	if err != nil || n < 12 {
		p.t.Fatalf("peer: no RTP: %v", err)
	}
	return buf[1] & 0x7f, from
}

// call sends an INVITE to the gateway's number num and returns the
// client dialog; WaitAnswer is the caller's.
func (p *peer) invite(gw netip.AddrPort, num string, body []byte) *sipgo.DialogClientSession {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	to := sip.Uri{Scheme: "sip", User: num, Host: gw.Addr().String(), Port: int(gw.Port())}
	from := &sip.FromHeader{DisplayName: "Caller", Address: sip.Uri{Scheme: "sip", User: p.user, Host: p.ip}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	s, err := p.clients.Invite(ctx, to, body, from, sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		p.t.Fatalf("peer: invite: %v", err)
	}
	return s
}

// laddr is the peer's listener, for requests sipgo's dialogs build
// without it (they would leave from a new socket).
func (p *peer) laddr() sip.Addr {
	return sip.Addr{IP: net.IP(p.addr.Addr().AsSlice()), Port: int(p.addr.Port())}
}

// byeAsCaller hangs up a call the peer placed.
func (p *peer) byeAsCaller(ctx context.Context, s *sipgo.DialogClientSession) error {
	bye := sip.NewRequest(sip.BYE, *s.InviteResponse.Contact().Address.Clone())
	bye.Laddr = p.laddr()
	return s.WriteBye(ctx, bye)
}

// byeAsCallee hangs up a call the peer answered.
func (p *peer) byeAsCallee(ctx context.Context, pi *peerInvite) error {
	bye := sip.NewRequest(sip.BYE, *pi.req.Contact().Address.Clone())
	bye.Laddr = p.laddr()
	return pi.dlg.WriteBye(ctx, bye)
}
