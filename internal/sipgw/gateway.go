// Package sipgw is Switchboard's SIP edge, built on sipgo's transport and
// transaction layers: a registrar with digest authentication for the
// configured users, outbound legs (callctl.Dialer) that fork to every
// registered contact of a user or go out through a trunk to phone numbers,
// and incoming INVITEs from trunks and registered users that become calls
// for the bots owning the dialed numbers. Each answered leg carries a media
// session of the media engine; SDP offer/answer picks G.711 and RFC 4733
// telephone-events.
//
// Dialogs are kept by the gateway itself (RFC 3261 §12): sipgo gives
// transactions, the gateway owns forking, CANCEL, 2xx retransmission,
// in-dialog requests and session teardown.
//
// A Gateway is safe for concurrent use. Its owner calls Close.
package sipgw

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/switchboard-voice/switchboard/internal/abuse"
	"github.com/switchboard-voice/switchboard/internal/admission"
	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/guestpass"
	"github.com/switchboard-voice/switchboard/internal/identity"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/internal/store"
	"github.com/switchboard-voice/switchboard/internal/webrtcgw"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Incoming is how the gateway hands an incoming call to the call manager
// (*callctl.Manager).
type Incoming interface {
	Incoming(ctx context.Context, in callctl.IncomingCall) (string, error)
	// DialIn answers a person calling into meetings.
	DialIn(ctx context.Context, in callctl.DialIn) error
}

// Options configure New.
type Options struct {
	Config     *config.Config
	Directory  *identity.Directory
	Store      *store.Store
	Media      *media.Engine
	Calls      Incoming
	Logger     *slog.Logger
	Registerer prometheus.Registerer
	// Now is the clock for nonces and registrations; time.Now when nil.
	Now func() time.Time
	// Admission, when not nil, is asked before a new INVITE is taken
	// (the node's overload limits) and counts the gateway's own refusals.
	Admission *admission.Controller
	// WebRTC, when not nil, answers INVITEs offering WebRTC media (from
	// browsers over SIP over WebSocket, ws.go); without it they get 488.
	WebRTC *webrtcgw.Gateway
}

// RegistrationsBucket is the JetStream key-value bucket holding every
// user's registered contacts, shared by all nodes.
const RegistrationsBucket = "sb_registrations"

// allowed is the Allow header of our responses and requests.
const allowed = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO, REFER"

// Gateway is the SIP edge of one node.
type Gateway struct {
	cfg     *config.Config
	dir     *identity.Directory
	media   *media.Engine
	calls   Incoming
	log     *slog.Logger
	now     func() time.Time
	regs    *store.KV
	auth    *digester
	guests  *guestpass.Keys // the join page's guest passes (guest.go)
	trunks  []*trunk
	limiter *rate.Limiter
	admit   *admission.Controller
	m       *metrics
	sources *abuse.Guard[netip.Addr] // per source address: request rate, wrong digest answers, bans (abuse.go)
	wsLimit *wsLimiter               // per source address: SIP over WebSocket connections (wslimit.go)
	am      *abuseMetrics
	rtc     *webrtcgw.Gateway // nil: WebRTC offers are refused
	relays  relayTable        // dialogs relayed between this node's browsers and other nodes (flow.go)

	// RFC 3261 timers of the gateway's own dialog layer (2xx retransmission
	// of answers, the wait for their ACK). Fields, not package settings, so
	// tests can shorten them.
	t1, t2 time.Duration

	ua      *sipgo.UserAgent
	srv     *sipgo.Server
	cli     *sipgo.Client
	udp     net.PacketConn
	tcp     net.Listener
	tls     net.Listener
	wsl     *wsListener                    // SIP over WebSocket connections hijacked from the HTTP server (ws.go)
	wsAddr  atomic.Pointer[netip.AddrPort] // the HTTP listener serving WSPath, as advertised
	addr    netip.AddrPort                 // the bound UDP (and TCP) address, as advertised
	tlsPort int
	laddr   sip.Addr // the UDP listener: requests over UDP leave from it

	runCtx context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup // the listeners' serve loops

	draining atomic.Bool // Drain: no new calls, and probes told so

	closeOnce sync.Once
	mu        sync.Mutex
	started   bool
	serving   bool     // Start has opened the listeners
	orphans   []orphan // dialogs to release once serving
	closing   bool
	legs      map[*Leg]struct{}
	dialogs   map[string]*Leg // dialogKey → leg
	active    int             // goroutines of legs (goTracked)
	idle      chan struct{}   // closed when active drops to 0
}

var _ callctl.Dialer = (*Gateway)(nil)

// trunk is a configured SIP peer for phone numbers.
type trunk struct {
	name      string
	address   string
	transport string // UDP or TCP
	allow     []netip.Prefix
}

// New prepares a gateway: it opens the registrations bucket and the nonce
// secret every node shares. Start opens the listeners.
func New(ctx context.Context, o Options) (*Gateway, error) {
	if o.Config == nil || o.Directory == nil || o.Store == nil || o.Media == nil || o.Calls == nil {
		return nil, errors.New("sipgw: Config, Directory, Store, Media and Calls are required")
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	cfg := o.Config
	g := &Gateway{
		cfg: cfg, dir: o.Directory, media: o.Media, calls: o.Calls, log: o.Logger, now: o.Now, admit: o.Admission, rtc: o.WebRTC,
		t1: 500 * time.Millisecond, t2: 4 * time.Second,
		legs: map[*Leg]struct{}{}, dialogs: map[string]*Leg{},
	}
	for _, t := range cfg.SIP.Trunks {
		tr := &trunk{name: t.Name, address: t.Address, transport: "UDP"}
		if strings.EqualFold(t.Transport, "tcp") {
			tr.transport = "TCP"
		}
		for _, a := range t.AllowFrom {
			p, err := netip.ParsePrefix(a)
			if err != nil {
				ip, err := netip.ParseAddr(a)
				if err != nil {
					return nil, fmt.Errorf("sipgw: trunk %s: allowFrom %q is neither an IP nor a CIDR", t.Name, a)
				}
				p = netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen())
			}
			tr.allow = append(tr.allow, p.Masked())
		}
		g.trunks = append(g.trunks, tr)
	}
	ips := cfg.SIP.InvitesPerSecond
	if ips <= 0 {
		ips = 200
	}
	g.limiter = rate.NewLimiter(rate.Limit(ips), max(1, int(ips)))

	var err error
	g.regs, err = o.Store.Bucket(ctx, RegistrationsBucket, 0)
	if err != nil {
		return nil, fmt.Errorf("sipgw: %w", err)
	}
	secret, err := sharedSecret(ctx, g.regs)
	if err != nil {
		return nil, fmt.Errorf("sipgw: nonce secret: %w", err)
	}
	realm := cfg.SIP.Domain
	if realm == "" {
		realm = "switchboard"
	}
	g.auth = &digester{realm: realm, secret: secret, now: o.Now}
	g.guests = guestpass.New(secret, o.Now)
	g.m = newMetrics(o.Registerer)
	g.sources = sourceGuard(cfg.SIP.Abuse, time.Now) // rates are wall-clock things, whatever Now is
	g.am = newAbuseMetrics(o.Registerer)
	g.wsLimit = newWSLimiter(cfg.SIP.WS, time.Now, o.Registerer)
	return g, nil
}

// sharedSecret returns the nonce HMAC key every node uses, creating it on
// first start.
func sharedSecret(ctx context.Context, kv *store.KV) ([]byte, error) {
	const key = "nonce-secret"
	for range 3 {
		v, _, err := kv.Get(ctx, key)
		if err == nil && len(v) >= 32 {
			return v, nil
		}
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		fresh := make([]byte, 32)
		_, _ = rand.Read(fresh)
		if _, err := kv.Create(ctx, key, fresh); err == nil {
			return fresh, nil
		} else if !errors.Is(err, store.ErrExists) {
			return nil, err
		}
	}
	return nil, errors.New("the secret keeps changing")
}

// Start opens the listeners: UDP and TCP on sip.listen (the same port; port
// 0 picks one), TLS on sip.tlsListen when a certificate is configured. It
// returns once they serve.
func (g *Gateway) Start(ctx context.Context) error {
	g.mu.Lock()
	if g.started || g.closing {
		g.mu.Unlock()
		return errors.New("sipgw: already started or closed")
	}
	g.started = true
	g.mu.Unlock()

	udp, tcp, err := listenPair(ctx, g.cfg.SIP.Listen)
	if err != nil {
		return err
	}
	g.udp, g.tcp = udp, tcp
	bound := udp.LocalAddr().(*net.UDPAddr).AddrPort()
	ip := bound.Addr().Unmap()
	if ip.IsUnspecified() {
		// Contact and Via must name an address peers can reach: the media
		// address when it is specific, else loopback.
		ip = netip.MustParseAddr("127.0.0.1")
		if b, err := netip.ParseAddr(g.cfg.Media.BindIP); err == nil && !b.IsUnspecified() {
			ip = b.Unmap()
		}
		g.log.Warn("sip.listen is a wildcard address: advertising " + ip.String() + " in Contact and Via")
	}
	g.addr = netip.AddrPortFrom(ip, bound.Port())
	host, port, _ := sip.ParseAddr(udp.LocalAddr().String())
	g.laddr = sip.Addr{IP: net.ParseIP(host), Port: port, Hostname: host}

	var tlsConf *tls.Config
	if g.cfg.SIP.TLSCert != "" && g.cfg.SIP.TLSKey != "" {
		cert, err := tls.LoadX509KeyPair(g.cfg.SIP.TLSCert, g.cfg.SIP.TLSKey)
		if err != nil {
			udp.Close()
			tcp.Close()
			return fmt.Errorf("sipgw: tls certificate: %w", err)
		}
		tlsConf = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		var lc net.ListenConfig
		ln, err := lc.Listen(ctx, "tcp", g.cfg.SIP.TLSListen)
		if err != nil {
			udp.Close()
			tcp.Close()
			return fmt.Errorf("sipgw: listen tls %s: %w", g.cfg.SIP.TLSListen, err)
		}
		g.tlsPort = ln.Addr().(*net.TCPAddr).Port
		g.tls = tls.NewListener(ln, tlsConf)
	}

	sipLog := g.log.With("component", "sipgo")
	g.ua, err = sipgo.NewUA(
		sipgo.WithUserAgent("Switchboard"),
		sipgo.WithUserAgentHostname(ip.String()),
		sipgo.WithUserAgenTLSConfig(tlsConf),
		sipgo.WithUserAgentDNSResolver(resolver()),
		sipgo.WithUserAgentTransportLayerOptions(
			sip.WithTransportLayerLogger(sipLog),
			sip.WithTransportLayerTransports(sip.TransportsConfig{
				TCP: &sip.TransportTCP{DialerCreate: dialer},
				TLS: &sip.TransportTLS{TransportTCP: &sip.TransportTCP{DialerCreate: dialer}},
			}),
		),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(sipLog),
			sip.WithTransactionLayerUnhandledResponseHandler(func(r *sip.Response) {
				g.log.Debug("stray response", "status", r.StatusCode, "call-id", callIDOf(r))
			}),
		),
	)
	if err == nil {
		g.srv, err = sipgo.NewServer(g.ua, sipgo.WithServerLogger(sipLog))
	}
	if err == nil {
		g.cli, err = sipgo.NewClient(g.ua, sipgo.WithClientLogger(sipLog),
			sipgo.WithClientHostname(ip.String()), sipgo.WithClientPort(int(bound.Port())))
	}
	if err != nil {
		g.closeListeners()
		return fmt.Errorf("sipgw: user agent: %w", err)
	}
	for method, h := range map[sip.RequestMethod]sipgo.RequestHandler{
		sip.INVITE:   g.onInvite,
		sip.ACK:      g.onAck,
		sip.BYE:      g.onInDialog,
		sip.CANCEL:   g.onCancel,
		sip.REGISTER: g.onRegister,
		sip.OPTIONS:  g.onOptions,
		sip.UPDATE:   g.onInDialog,
		sip.INFO:     g.onInDialog,
		sip.REFER:    g.onRefer,
	} {
		g.srv.OnRequest(method, g.guard(h))
	}
	g.srv.OnNoRoute(g.guard(g.onOther))

	g.runCtx, g.stop = context.WithCancel(context.Background())
	ready := &readyConn{PacketConn: udp, ready: make(chan struct{})}
	udpDone := g.serve(func() error { return g.srv.ServeUDP(ready) })
	g.serve(func() error { return g.srv.ServeTCP(tcp) })
	if g.tls != nil {
		g.serve(func() error { return g.srv.ServeTLS(g.tls) })
	}
	wsl := newWSListener(tcp.Addr())
	g.mu.Lock()
	g.wsl = wsl
	g.mu.Unlock()
	g.serve(func() error { return g.srv.ServeWS(wsl) })
	// sipgo registers the UDP listener for outgoing requests just before
	// its first read; requests sent earlier would open another socket.
	select {
	case <-ready.ready:
	case <-udpDone:
		g.Close()
		return errors.New("sipgw: the UDP listener stopped at once")
	case <-ctx.Done():
		g.Close()
		return ctx.Err()
	}
	g.log.Info("sip listening", "udp", g.addr.String(), "tcp", g.addr.String(), "tls", g.tlsPort)
	g.mu.Lock()
	g.serving = true
	orphans := g.orphans
	g.orphans = nil
	g.mu.Unlock()
	for _, o := range orphans {
		if o.d != nil {
			g.goTracked(func() { g.sendRelease(o.callID, o.d) })
		}
		for _, r := range o.invites {
			g.goTracked(func() { g.sendStoredCancel(o.callID, r) })
		}
	}
	return nil
}

// serve runs a listener's loop; the channel closes when it returns.
func (g *Gateway) serve(f func() error) <-chan struct{} {
	done := make(chan struct{})
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		defer close(done)
		if err := f(); err != nil && !errors.Is(err, net.ErrClosed) && g.runCtx.Err() == nil {
			g.log.Error("sip listener stopped", "err", err)
		}
	}()
	return done
}

// readyConn reports when sipgo starts reading the UDP listener.
type readyConn struct {
	net.PacketConn
	once  sync.Once
	ready chan struct{}
}

func (c *readyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.once.Do(func() { close(c.ready) })
	return c.PacketConn.ReadFrom(b)
}

// listenPair binds UDP and TCP on the same address; with port 0 it retries
// until both get the same free port.
func listenPair(ctx context.Context, addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("sipgw: sip.listen %q: %w", addr, err)
	}
	var lc net.ListenConfig
	for attempt := 0; ; attempt++ {
		udp, err := lc.ListenPacket(ctx, "udp", net.JoinHostPort(host, port))
		if err != nil {
			return nil, nil, fmt.Errorf("sipgw: listen udp %s: %w", addr, err)
		}
		p := udp.LocalAddr().(*net.UDPAddr).Port
		tcp, err := lc.Listen(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil {
			return udp, tcp, nil
		}
		udp.Close()
		if port != "0" || attempt >= 20 {
			return nil, nil, fmt.Errorf("sipgw: listen tcp %s: %w", net.JoinHostPort(host, strconv.Itoa(p)), err)
		}
	}
}

// Addr is the address SIP listens on over UDP and TCP, as advertised in
// Contact and Via.
func (g *Gateway) Addr() netip.AddrPort { return g.addr }

// TLSPort is the SIP-over-TLS port, 0 without TLS.
func (g *Gateway) TLSPort() int { return g.tlsPort }

// Drain stops taking new calls while the calls up go on: new INVITEs get
// 503 with Retry-After, and so do OPTIONS outside a dialog, which a proxy
// in front (Kamailio's dispatcher) probes nodes with, so it marks the node
// inactive and sends new calls to the others rather than trying it first.
// In-dialog requests, REGISTERs and calls out are served as before. Close
// follows once the calls have ended. It is safe for concurrent use.
func (g *Gateway) Drain() { g.draining.Store(true) }

// Close stops accepting calls (new INVITEs get 503), ends every leg
// (pending incoming calls get 503, outgoing ones are cancelled, established
// ones get a BYE, each reported to its call as ended by the shutdown),
// waits a bounded time for those to be sent, then closes the listeners. It
// is idempotent.
func (g *Gateway) Close() error {
	g.closeOnce.Do(func() {
		g.mu.Lock()
		g.closing = true
		legs := make([]*Leg, 0, len(g.legs))
		for l := range g.legs {
			legs = append(legs, l)
		}
		started := g.started && g.stop != nil
		g.mu.Unlock()
		if !started {
			g.closeListeners()
			if g.ua != nil {
				g.ua.Close()
			}
			return
		}
		for _, l := range legs {
			l.shutdown()
		}
		// Let the CANCELs, BYEs and final responses go out, within bounds.
		g.waitIdle(3 * time.Second)
		g.stop()
		g.closeListeners()
		if g.ua != nil {
			g.ua.Close()
		}
		g.waitIdle(-1)
		g.wg.Wait()
		// A datagram read just before the listener closed is handled after
		// sipgo cleared its sockets, and sipgo answers it from a socket it
		// opens then: sweep those too (best effort; sipgo has no hook).
		_ = g.ua.TransportLayer().Close()
	})
	return nil
}

func (g *Gateway) closeListeners() {
	g.mu.Lock()
	wsl := g.wsl
	g.mu.Unlock()
	if wsl != nil {
		_ = wsl.Close()
	}
	for _, c := range []interface{ Close() error }{g.udp, g.tcp, g.tls} {
		if c != nil {
			_ = c.Close()
		}
	}
}

// resumeSeqMargin is added to the local CSeq a leg's reference stored
// when its dialog is released after a restart: requests may have gone out
// in the dialog after the reference was stored, and RFC 3261 §12.2.1.1
// only asks that each new request's CSeq be higher.
const resumeSeqMargin = 100

// Resume fails: a SIP leg's RTP session, and what played on it, cannot
// outlive the process that held it, so callctl ends the call
// (errs.ResumeFailed). When ref holds a confirmed dialog (Leg.Ref), the
// far end is sent a BYE on it first, so that nobody is left in dead air;
// when it holds an outgoing leg's unanswered INVITEs, they are cancelled:
// at once when the gateway serves, else as soon as Start has opened the
// listeners (a node resumes its calls before it starts SIP). The BYE is
// sent from a tracked goroutine, bounded by 64*T1. Resume never blocks.
func (g *Gateway) Resume(callID string, ref callctl.LegRef, state graph.CallState, ev func(callctl.LegEvent)) (callctl.Leg, error) {
	var r legRef
	if len(ref.Data) > 0 {
		if err := json.Unmarshal(ref.Data, &r); err != nil {
			return nil, fmt.Errorf("sipgw: call %s: a SIP leg cannot be resumed after a restart, and its reference is unreadable: %w", callID, err)
		}
	}
	if r.Dialog == nil && len(r.Invites) > 0 {
		// An outgoing leg still ringing: its INVITEs are cancelled
		// (cancelref.go).
		g.cancelInvites(callID, r.Invites)
		return nil, fmt.Errorf("sipgw: call %s (%s): a SIP leg cannot be resumed after a restart; its unanswered INVITE (Call-ID %s) is cancelled", callID, state, r.Invites[0].CallID)
	}
	if r.Dialog == nil {
		// No confirmed dialog. An incoming call still ringing (incoming,
		// redirecting) had only its INVITE server transaction, the one
		// place a final response can go, and it died with the process:
		// nothing can be sent, and the caller's INVITE, which has had its
		// 180, ends on its side (a proxy's Timer C, RFC 3261 §16.6, or the
		// caller giving up).
		return nil, fmt.Errorf("sipgw: call %s (%s): a SIP leg cannot be resumed after a restart, and it had no confirmed dialog to release", callID, state)
	}
	d, err := r.Dialog.dialog()
	if err != nil {
		return nil, fmt.Errorf("sipgw: call %s: a SIP leg cannot be resumed after a restart, and its dialog cannot be released: %w", callID, err)
	}
	d.localSeq += resumeSeqMargin
	g.releaseDialog(callID, d)
	return nil, fmt.Errorf("sipgw: call %s: a SIP leg cannot be resumed after a restart; its dialog (Call-ID %s) is released with a BYE", callID, d.callID)
}

// orphan is a dialog of a leg that died with an earlier process, waiting
// for Start to be released, or the unanswered INVITEs of such a leg,
// waiting to be cancelled.
type orphan struct {
	callID  string
	d       *dialog
	invites []*inviteRef
}

// releaseDialog ends a dialog no leg holds with a BYE: now when the
// gateway serves, after Start when it does not yet; not at all once it
// closes.
func (g *Gateway) releaseDialog(callID string, d *dialog) {
	g.mu.Lock()
	switch {
	case g.closing:
		g.mu.Unlock()
		g.log.Warn("gateway closing: the dialog of a resumed call is not released", "call", callID, "sip_call_id", d.callID)
		return
	case !g.serving:
		g.orphans = append(g.orphans, orphan{callID: callID, d: d})
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	g.goTracked(func() { g.sendRelease(callID, d) })
}

// sendRelease sends the BYE of releaseDialog and waits (bounded) for its
// answer. Over TCP or TLS the far end is reached where its Contact points:
// the connection it came on is gone with the process.
func (g *Gateway) sendRelease(callID string, d *dialog) {
	log := g.log.With("call", callID, "sip_call_id", d.callID)
	d.dest = g.reachable(d.transport, d.dest, d.target)
	req := g.newRequest(d, sip.BYE)
	ctx, cancel := context.WithTimeout(g.runCtx, 64*g.t1)
	defer cancel()
	res, err := g.do(ctx, req)
	switch {
	case err != nil:
		log.Warn("BYE for a dialog of the previous process", "err", err)
	case res.StatusCode >= 300:
		// 481: the far end had hung up already.
		log.Info("BYE for a dialog of the previous process refused", "status", res.StatusCode)
	default:
		log.Info("released the dialog of a call the previous process held")
	}
}

// guard validates what sipgo parsed before a handler sees it, and keeps a
// bug in one request's handling from taking the process down.
func (g *Gateway) guard(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		defer func() {
			if r := recover(); r != nil {
				g.log.Error("sip handler panic", "method", req.Method, "panic", r)
				if !req.IsAck() {
					g.respond(tx, req, 500, "Server Internal Error")
				}
			}
		}()
		if !g.screen(req) {
			return // dropped unanswered: over its source's rate, or banned (abuse.go)
		}
		if code, phrase, hdrs := validate(req); code != 0 {
			if !req.IsAck() {
				g.respond(tx, req, code, phrase, hdrs...)
			}
			return
		}
		if g.relay(req, tx) {
			return // for a browser of this node, or from one (flow.go)
		}
		h(req, tx)
	}
}

// validate applies the checks RFC 3261 §8.2 asks of a UAS before it acts
// on a request, and those the RFC 4475 torture cases need that sipgo's
// parser lets through. A non-zero status is the answer.
func validate(req *sip.Request) (int, string, []sip.Header) {
	switch {
	case req.SipVersion != "SIP/2.0":
		return 505, "Version Not Supported", nil
	case req.From() == nil || req.To() == nil || req.CallID() == nil || req.CSeq() == nil || req.Via() == nil:
		return 400, "Bad Request (missing From, To, Call-ID, CSeq or Via)", nil
	case !strings.EqualFold(string(req.CSeq().MethodName), string(req.Method)):
		// sipgo upper-cases the request method; CSeq keeps its spelling.
		return 400, "Bad Request (CSeq method does not match)", nil
	case len(req.GetHeaders("From")) > 1 || len(req.GetHeaders("To")) > 1 || len(req.GetHeaders("Call-ID")) > 1 ||
		len(req.GetHeaders("CSeq")) > 1 || len(req.GetHeaders("Content-Length")) > 1:
		return 400, "Bad Request (duplicate From, To, Call-ID, CSeq or Content-Length)", nil
	case req.CSeq().SeqNo > 1<<31-1:
		return 400, "Bad Request (CSeq out of range)", nil
	}
	scheme := strings.ToLower(req.Recipient.Scheme)
	if scheme != "sip" && scheme != "sips" && scheme != "tel" {
		return 416, "Unsupported URI Scheme", nil
	}
	if len(req.Recipient.Headers) > 0 {
		// §19.1.5: a Request-URI carries no headers.
		return 400, "Bad Request (headers in the Request-URI)", nil
	}
	if cl := req.ContentLength(); cl != nil && int(*cl) != len(req.Body()) {
		return 400, "Bad Request (Content-Length does not match the body)", nil
	}
	if !req.IsAck() && !req.IsCancel() {
		// §8.2.2.3: Switchboard supports no extension a request may require.
		var tags []string
		for _, h := range req.GetHeaders("Require") {
			for _, t := range strings.Split(h.Value(), ",") {
				if t = strings.TrimSpace(t); t != "" {
					tags = append(tags, t)
				}
			}
		}
		if len(tags) > 0 {
			return 420, "Bad Extension", []sip.Header{sip.NewHeader("Unsupported", strings.Join(tags, ", "))}
		}
	}
	return 0, "", nil
}

// respond answers req statelessly on its transaction.
func (g *Gateway) respond(tx sip.ServerTransaction, req *sip.Request, code int, phrase string, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, phrase, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if err := tx.Respond(res); err != nil {
		g.log.Debug("respond", "status", code, "method", req.Method, "err", err)
	}
}

// respondStateless answers req outside its transaction (RFC 3261 §8.2.7,
// a stateless UAS): the response is written once on the request's
// connection and, the transaction having no final response, sipgo ends it
// when the handler returns. For the answers anyone can provoke without
// credentials (a challenge, a wrong password, an INVITE over the rate):
// answered in a transaction, each would be kept, and over UDP
// retransmitted, for 32 s (Timer H or J), so a flood would hold memory in
// proportion to its rate and be amplified towards whatever address it
// claims. A lost answer costs the UA a retransmission of its request,
// which gets a fresh one.
func (g *Gateway) respondStateless(tx sip.ServerTransaction, req *sip.Request, code int, phrase string, hdrs ...sip.Header) {
	c, ok := tx.(interface{ Connection() sip.Connection })
	if !ok || c.Connection() == nil {
		g.respond(tx, req, code, phrase, hdrs...)
		return
	}
	res := sip.NewResponseFromRequest(req, code, phrase, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if err := c.Connection().WriteMsg(res); err != nil {
		g.log.Debug("respond statelessly", "status", code, "method", req.Method, "err", err)
	}
}

// onOptions answers OPTIONS, in or out of a dialog: 200 with what we
// support (RFC 3261 §11). While the node drains, an OPTIONS outside a
// dialog (a proxy's health probe: Kamailio's dispatcher) gets 503, so the
// proxy sends new calls elsewhere; one inside a dialog still gets 200, as
// the call it probes goes on.
func (g *Gateway) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	if g.draining.Load() && toTag(req) == "" {
		g.respond(tx, req, 503, "Service Unavailable (draining)", sip.NewHeader("Retry-After", "5"))
		return
	}
	g.respond(tx, req, 200, "OK", sip.NewHeader("Allow", allowed), sip.NewHeader("Accept", "application/sdp"))
}

// onOther answers methods the gateway does not implement: 481 inside a
// dialog it does not know, else 405 with Allow (RFC 3261 §8.2.1).
func (g *Gateway) onOther(req *sip.Request, tx sip.ServerTransaction) {
	if req.IsAck() {
		return
	}
	if toTag(req) != "" && g.dialog(req) == nil {
		g.respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	g.respond(tx, req, 405, "Method Not Allowed", sip.NewHeader("Allow", allowed))
}

// onRefer routes a REFER to its dialog (refer.go); Switchboard takes no
// REFER outside a dialog, which is answered as an unknown method is.
func (g *Gateway) onRefer(req *sip.Request, tx sip.ServerTransaction) {
	if toTag(req) == "" {
		g.onOther(req, tx)
		return
	}
	g.onInDialog(req, tx)
}

// onCancel answers a CANCEL that matched no pending INVITE (sipgo's
// transaction layer handles those that do, RFC 3261 §9.2).
func (g *Gateway) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	g.respond(tx, req, 481, "Call/Transaction Does Not Exist")
}

// sipStatusOf maps a failure to create an incoming call to the final
// response the caller gets: the errs table's one mapping to SIP.
func sipStatusOf(err error) (int, string) {
	if errors.Is(err, callctl.ErrNoBot) {
		return 480, "Temporarily Unavailable"
	}
	switch errs.KindOf(err) {
	case errs.Throttled:
		return 486, "Busy Here"
	case errs.Unavailable:
		return 503, "Service Unavailable"
	case errs.NotFound:
		return 404, "Not Found"
	case errs.Forbidden, errs.Unauthenticated:
		return 403, "Forbidden"
	case errs.BadRequest:
		return 400, "Bad Request"
	}
	return 500, "Server Internal Error"
}

// phrase is the reason phrase of a status Switchboard sends.
func phrase(code int) string {
	switch code {
	case 403:
		return "Forbidden"
	case 404:
		return "Not Found"
	case 408:
		return "Request Timeout"
	case 480:
		return "Temporarily Unavailable"
	case 486:
		return "Busy Here"
	case 487:
		return "Request Terminated"
	case 488:
		return "Not Acceptable Here"
	case 500:
		return "Server Internal Error"
	case 503:
		return "Service Unavailable"
	case 600:
		return "Busy Everywhere"
	case 603:
		return "Decline"
	}
	return "Error"
}
