package sipgw

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/webrtcgw"
)

// Outgoing calls (callctl.Dialer): a user is called at every contact it
// registered, in parallel (the first 2xx wins, the other branches get
// CANCEL); a phone number goes to the user who owns it, else out through
// the first trunk.

// outbound is the forked INVITEs of an outgoing leg; guarded by Leg.mu.
type outbound struct {
	trunk      *trunk
	branches   []*branch
	winner     *branch
	best       int // the best final status of failed branches so far (RFC 3261 §16.7 step 6)
	bestPhrase string
	failures   int
	ringing    bool
	progress   bool
	early      bool // early media from a 183 is applied
}

// branch is one INVITE of an outgoing leg.
type branch struct {
	l        *Leg
	req      *sip.Request
	dlg      *dialog // our side of the dialog it may create
	addr     string  // where the INVITE goes
	stop     chan struct{}
	stopOnce sync.Once
	final    bool           // guarded by Leg.mu
	rtc      *webrtcgw.Peer // the WebRTC media offered to a browser's contact (webrtc.go); nil for RTP/AVP
	invite   *inviteRef     // what a CANCEL from another process copies (cancelref.go); nil over WS
}

func (b *branch) cancel() { b.stopOnce.Do(func() { close(b.stop) }) }

// destination is one place to send an INVITE.
type destination struct {
	uri       sip.Uri // Request-URI
	transport string
	addr      string
	route     []string // Route header values: a binding's Path (RFC 3327 §5.3)
	// webrtc: the contact is a browser's (registered over WebSocket),
	// which takes WebRTC media only, whatever the transport of the next
	// hop (another node relaying to the browser's connection: flow.go).
	webrtc bool
}

// Dial starts calling t and returns at once; the INVITEs go out from the
// gateway's goroutines. A target with no way to reach it fails with a
// *callctl.RouteError: a user with no registered contact with NoEndpoints,
// a phone number no user owns when no trunk is configured with
// CannotRoute.
func (g *Gateway) Dial(callID string, t callctl.Target, ev func(callctl.LegEvent)) (callctl.Leg, error) {
	g.mu.Lock()
	up := g.started && g.stop != nil && !g.closing
	g.mu.Unlock()
	if !up {
		return nil, &callctl.RouteError{Reason: errs.ServerShutdown}
	}
	var (
		username string
		tr       *trunk
	)
	switch {
	case t.Cascade != nil:
		// A person's leg into their meeting's room on another node
		// (cascade.go): straight to that node's SIP address.
	case t.UserID != "":
		u, ok := g.dir.User(t.TenantID, t.UserID)
		if !ok {
			return nil, &callctl.RouteError{Reason: errs.NoEndpoints}
		}
		username = u.SIP.Username
	case t.Phone != "":
		if _, u, ok := g.dir.UserByPhone(t.Phone); ok {
			username = u.SIP.Username
		} else if len(g.trunks) > 0 {
			tr = g.trunks[0]
		} else {
			return nil, &callctl.RouteError{Reason: errs.CannotRoute}
		}
	default:
		return nil, &callctl.RouteError{Reason: errs.CannotRoute}
	}

	var (
		dests []destination
		to    sip.Uri
	)
	if t.Cascade != nil {
		host, port, err := net.SplitHostPort(t.Cascade.Addr)
		if err != nil {
			return nil, &callctl.RouteError{Reason: errs.CannotRoute}
		}
		p, _ := strconv.Atoi(port)
		to = sip.Uri{Scheme: "sip", User: meetingUser(t.Cascade.ConferenceID), Host: host, Port: p}
		dests = append(dests, destination{uri: to, transport: "UDP", addr: t.Cascade.Addr})
	} else if tr != nil {
		host, port, err := net.SplitHostPort(tr.address)
		if err != nil {
			return nil, fmt.Errorf("sipgw: trunk %s: address %q: %w", tr.name, tr.address, err)
		}
		p, _ := strconv.Atoi(port)
		uri := sip.Uri{Scheme: "sip", User: t.Phone, Host: host, Port: p}
		to = uri
		if tr.transport != "UDP" {
			uri.UriParams = sip.NewParams()
			uri.UriParams.Add("transport", strings.ToLower(tr.transport))
		}
		dests = append(dests, destination{uri: uri, transport: tr.transport, addr: tr.address})
	} else {
		if username == "" {
			// A user without SIP credentials never registers.
			return nil, &callctl.RouteError{Reason: errs.NoEndpoints}
		}
		ctx, cancel := context.WithTimeout(g.runCtx, 5*time.Second)
		bs, err := g.bindings(ctx, username)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("sipgw: registrations of %s: %w", username, err)
		}
		for _, b := range bs {
			var uri sip.Uri
			if err := sip.ParseUri(b.Contact, &uri); err != nil {
				continue
			}
			transport := transportOf(uri, b.Transport)
			if transport == "WSS" && b.Transport == "WS" {
				// A browser on an https:// page: its secure WebSocket is
				// the node's HTTPS listener, which sipgo serves as WS.
				transport = "WS"
			}
			browser := strings.EqualFold(b.Transport, "WS") || strings.EqualFold(b.Transport, "WSS")
			if len(b.Path) > 0 && !g.ownFlow(b.Path[0]) {
				// Registered through a proxy that asked to stay on the
				// way (Kamailio in front of several nodes), or a browser
				// whose WebSocket is on another node: the INVITE goes to
				// the Path's first hop, which routes it on.
				if d, ok := viaPath(uri, b.Path); ok {
					d.webrtc = browser
					dests = append(dests, d)
					continue
				}
			}
			dests = append(dests, destination{uri: uri, transport: transport, addr: g.reachable(transport, b.Source, uri),
				webrtc: strings.EqualFold(transport, "WS")})
		}
		if len(dests) == 0 {
			return nil, &callctl.RouteError{Reason: errs.NoEndpoints}
		}
		to = sip.Uri{Scheme: "sip", User: username, Host: g.auth.realm}
	}

	l := g.newLeg("out")
	l.pstn = tr != nil
	l.from, l.fromName = t.From, t.FromName
	l.replaces = t.Replaces
	l.cascade = t.Cascade
	l.callID = callID
	l.ev = ev
	l.logp.Store(l.lg().With("call", callID))
	l.out = &outbound{trunk: tr}
	sess, err := g.media.NewSession(l.onMedia)
	if err != nil {
		l.lg().Error("outgoing call: media session", "err", err)
		return nil, &callctl.RouteError{Reason: errs.NoMediaPorts}
	}
	l.sess = sess
	l.sdp.addr = sess.LocalAddr()
	if l.sdp.addr.Addr().IsUnspecified() {
		l.sdp.addr = netip.AddrPortFrom(g.addr.Addr(), l.sdp.addr.Port())
	}
	offer := l.sdp.offer()
	for _, d := range dests {
		body, peer := offer, (*webrtcgw.Peer)(nil)
		if d.webrtc {
			// A browser's contact: it takes WebRTC media only.
			if peer, err = g.offerWebRTC(sess.LocalAddr()); err != nil {
				l.lg().Info("no WebRTC offer for a browser's contact", "contact", d.uri.String(), "err", err)
				continue
			}
			body = peer.SDP()
		}
		b := g.newBranch(l, d, to, t.DisplayName, body)
		b.rtc = peer
		b.invite = inviteRefOf(b)
		l.out.branches = append(l.out.branches, b)
	}
	if len(l.out.branches) == 0 {
		_ = sess.Close()
		return nil, &callctl.RouteError{Reason: errs.NoEndpoints}
	}
	if !g.addLeg(l) {
		_ = sess.Close()
		l.closeBranchPeers()
		return nil, &callctl.RouteError{Reason: errs.ServerShutdown}
	}
	for _, b := range l.out.branches {
		g.goTracked(b.run)
	}
	return l, nil
}

// fromUser is the user part of our From on outgoing INVITEs when the call
// presents no number.
const fromUser = "switchboard"

func (g *Gateway) newBranch(l *Leg, d destination, to sip.Uri, toName string, offer []byte) *branch {
	seq := uint32(rand.IntN(1<<16) + 1)
	user, name := fromUser, "Switchboard"
	if l.from != "" {
		user = l.from // the bot's number (applicationInstance) or app id
	}
	if l.fromName != "" {
		name = l.fromName
	}
	dlg := &dialog{
		callID: sip.GenerateTagN(24) + "@" + g.addr.Addr().String(), localTag: sip.GenerateTagN(16),
		local: sip.Uri{Scheme: "sip", User: user, Host: g.auth.realm}, localName: name,
		remote: to, remoteName: toName, target: d.uri, transport: d.transport, dest: d.addr, localSeq: seq,
	}
	if l.pstn {
		dlg.local.Host = g.addr.Addr().String()
	}
	req := sip.NewRequest(sip.INVITE, *d.uri.Clone())
	req.AppendHeader(g.via(d.transport))
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	from := &sip.FromHeader{DisplayName: dlg.localName, Address: dlg.local, Params: sip.NewParams()}
	from.Params.Add("tag", dlg.localTag)
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{DisplayName: toName, Address: to, Params: sip.NewParams()})
	cid := sip.CallIDHeader(dlg.callID)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: sip.INVITE})
	for _, r := range d.route {
		req.AppendHeader(sip.NewHeader("Route", r))
	}
	req.AppendHeader(g.contact(d.transport))
	req.AppendHeader(sip.NewHeader("Allow", allowed))
	req.AppendHeader(sip.NewHeader("User-Agent", "Switchboard"))
	if l.replaces != "" {
		// An attended transfer (refer.go): the target replaces its
		// consultation call by this one, or refuses (RFC 3891 §3).
		req.AppendHeader(sip.NewHeader("Replaces", l.replaces))
		req.AppendHeader(sip.NewHeader("Require", "replaces"))
	}
	if l.cascade != nil {
		req.AppendHeader(sip.NewHeader(cascadeHeader, g.cascadeToken(l.cascade, dlg.callID)))
	}
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(offer)
	req.SetTransport(d.transport)
	req.SetDestination(d.addr)
	return &branch{l: l, req: req, dlg: dlg, addr: d.addr, stop: make(chan struct{})}
}

// run sends the branch's INVITE and follows it to its end: a 2xx (the
// leg's answer, or an extra one to hang up), a failure, or a CANCEL.
func (b *branch) run() {
	l, g := b.l, b.l.g
	select {
	case <-b.stop:
		l.branchFailed(b, 487, "")
		return
	default:
	}
	tx, err := g.send(g.runCtx, b.req)
	if err != nil {
		l.lg().Info("INVITE not sent", "to", b.addr, "err", err)
		l.branchFailed(b, 0, "")
		return
	}
	l.traceSIP("INVITE sent to %s (%s)", printable(b.req.Recipient.String(), 80), b.addr)
	var (
		provisional bool
		cancelled   bool
		giveUp      <-chan time.Time
	)
	stop := b.stop
	cancel := func() {
		cancelled = true
		g.goTracked(func() { b.sendCancel() })
		// RFC 3261 §9.1: without a final response 64*T1 after the
		// CANCEL, the INVITE transaction is over.
		t := time.NewTimer(64 * g.t1)
		giveUp = t.C
	}
	for {
		select {
		case res := <-tx.Responses():
			l.traceResponse(res, b.addr)
			switch {
			case res.IsProvisional():
				provisional = true
				if stop == nil && !cancelled {
					cancel() // a CANCEL waits for a provisional response (§9.1)
				}
				if !cancelled {
					l.branchProvisional(b, res)
				}
			case res.IsSuccess():
				l.branchAnswered(b, tx, res)
				return
			default:
				if res.StatusCode == 430 {
					b.forgetFlow() // first, so the next call finds the binding gone
				}
				l.branchFailed(b, res.StatusCode, printable(res.Reason, 64))
				return
			}
		case <-stop:
			stop = nil
			if provisional {
				cancel()
			}
		case <-giveUp:
			tx.Terminate()
			l.branchFailed(b, 487, "")
			return
		case <-tx.Done():
			status := 0 // no answer at all: unreachable
			if provisional {
				status = 408 // it rang and then went silent
			}
			l.branchFailed(b, status, "")
			return
		}
	}
}

// cancelOf is the CANCEL of an INVITE we sent (RFC 3261 §9.1): its
// Request-URI, top Via, From, To, Call-ID and Route set, the CSeq number
// with the method CANCEL; over the INVITE's transport.
func cancelOf(inv *sip.Request) *sip.Request {
	c := sip.NewRequest(sip.CANCEL, *inv.Recipient.Clone())
	c.AppendHeader(sip.HeaderClone(inv.Via()))
	mf := sip.MaxForwardsHeader(70)
	c.AppendHeader(&mf)
	c.AppendHeader(sip.HeaderClone(inv.From()))
	c.AppendHeader(sip.HeaderClone(inv.To()))
	c.AppendHeader(sip.HeaderClone(inv.CallID()))
	c.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	for _, r := range inv.GetHeaders("Route") {
		c.AppendHeader(sip.HeaderClone(r))
	}
	c.SetBody(nil)
	c.SetTransport(inv.Transport())
	return c
}

// sendCancel cancels the branch's INVITE (RFC 3261 §9.1).
func (b *branch) sendCancel() {
	g, inv := b.l.g, b.req
	c := cancelOf(inv)
	c.SetDestination(b.addr)
	ctx, cancel := context.WithTimeout(g.runCtx, 64*g.t1)
	defer cancel()
	b.l.traceSIP("CANCEL sent to %s", b.addr)
	if _, err := g.do(ctx, c); err != nil {
		b.l.lg().Debug("CANCEL", "err", err)
	}
}

// branchProvisional reports ringing (180-182) and progress (183, with
// early media when it carries SDP) once per leg.
func (l *Leg) branchProvisional(b *branch, res *sip.Response) {
	code := res.StatusCode
	var evs []callctl.LegEvent
	var early *remoteMedia
	l.mu.Lock()
	if l.state != stateNew || l.out.winner != nil {
		l.mu.Unlock()
		return
	}
	switch {
	case code >= 180 && code <= 182:
		if !l.out.ringing {
			l.out.ringing = true
			evs = append(evs, callctl.LegEvent{Kind: callctl.LegRinging})
		}
	case code == 183:
		if len(res.Body()) > 0 && !l.out.early {
			if rm, err := parseSDP(res.Body()); err == nil {
				l.out.early = true
				early = &rm
			}
		}
		if !l.out.progress {
			l.out.progress = true
			evs = append(evs, callctl.LegEvent{Kind: callctl.LegProgress})
		}
	}
	l.mu.Unlock()
	if early != nil {
		// Early media (ringback, announcements) plays where and the way
		// the 183 says, unless another branch has answered meanwhile.
		l.applyRemoteIf(*early, func() bool { return l.state == stateNew && l.out.winner == nil })
	}
	for _, ev := range evs {
		l.emit(ev)
	}
}

// branchAnswered takes a 2xx: the first one answers the leg; any later
// one (a second contact answering at once, or an answer racing our
// CANCEL) is acknowledged and hung up at once (RFC 3261 §13.2.2.4).
func (l *Leg) branchAnswered(b *branch, tx sip.ClientTransaction, res *sip.Response) {
	g := l.g
	g.m.invite("out", res.StatusCode)
	d := b.dlg
	l.mu.Lock()
	b.final = true
	d.remoteTag = toTag(res)
	d.remote = *res.To().Address.Clone()
	if c := res.Contact(); c != nil && !c.Address.Wildcard && c.Address.Host != "" {
		d.target = *c.Address.Clone()
		d.dest = g.reachable(d.transport, b.addr, d.target)
	}
	rr := res.GetHeaders("Record-Route")
	for i := len(rr) - 1; i >= 0; i-- {
		d.routes = append(d.routes, rr[i].Value())
	}
	extra := l.state != stateNew || l.out.winner != nil
	var (
		rm     remoteMedia
		sdpErr error
		others []*branch
	)
	if !extra {
		if b.rtc != nil {
			rm, sdpErr = answeredWebRTC(b.rtc, res.Body())
		} else {
			rm, sdpErr = parseSDP(res.Body())
		}
		if sdpErr == nil {
			l.out.winner = b
			l.state = stateEstablished
			l.dlg = d
			l.remote = rm
			l.rtc = b.rtc
			for _, o := range l.out.branches {
				if o != b {
					others = append(others, o)
				}
			}
		}
	}
	ack := g.newRequest(d, sip.ACK)
	var bye *sip.Request
	if extra || sdpErr != nil {
		bye = g.newRequest(d, sip.BYE)
	}
	l.mu.Unlock()

	if bye == nil {
		g.addDialog(d.key(), l)
	}
	if err := g.write(ack); err != nil {
		l.lg().Debug("ACK", "err", err)
	}
	// The 2xx is retransmitted until our ACK arrives: each copy gets one.
	tx.OnRetransmission(func(r *sip.Response) {
		if r.IsSuccess() {
			_ = g.write(ack.Clone())
		}
	})
	if bye != nil {
		g.goTracked(func() { l.sendBye(bye) })
		if sdpErr != nil {
			l.lg().Info("unusable SDP answer", "err", sdpErr)
			l.branchFailed(b, 488, "")
		}
		return
	}
	l.applyRemote(rm)
	for _, o := range others {
		o.cancel()
	}
	l.emit(callctl.LegEvent{Kind: callctl.LegAnswered})
	l.watchWebRTC()
}

// branchFailed takes a branch's end without an answer; when it was the
// last, the leg ends with the best of the branches' failures.
func (l *Leg) branchFailed(b *branch, status int, phrase string) {
	if !b.final { // an unusable 2xx was counted as such
		l.g.m.invite("out", status)
	}
	l.mu.Lock()
	b.final = true
	o := l.out
	if o.failures == 0 || failureRank(status) < failureRank(o.best) {
		o.best, o.bestPhrase = status, phrase
	}
	o.failures++
	done := true
	for _, x := range o.branches {
		done = done && x.final
	}
	over := l.state != stateNew || o.winner != nil
	best, bestPhrase := o.best, o.bestPhrase
	l.mu.Unlock()
	if over || !done {
		return
	}
	l.lg().Info("outgoing call failed", "status", best)
	l.finish(outcome(best, bestPhrase))
}

// failureRank orders final statuses of forked branches: lower is the one
// to report (RFC 3261 §16.7 step 6: a 6xx ends the search; busy says more
// than unavailable; silence says least).
func failureRank(s int) int {
	switch {
	case s >= 600:
		return 0
	case s == 486:
		return 1
	case s >= 400 && s < 500 && s != 408 && s != 480 && s != 487:
		return 2
	case s >= 300 && s < 400:
		return 3
	case s >= 500:
		return 4
	case s == 480:
		return 5
	case s == 408:
		return 6
	case s == 487:
		return 7
	}
	return 8 // no response at all
}

// outcome maps the final status of an outgoing INVITE to how the call
// ends, once (the errs table holds the reasons).
func outcome(status int, phrase string) errs.EndReason {
	switch status {
	case 486, 600:
		return errs.RemoteBusy
	case 603:
		return errs.RemoteDeclined
	case 404, 604:
		return errs.RemoteNotFound
	case 480, 430, 0:
		// 430: the node holding a browser's WebSocket found it closed
		// (RFC 5626 §5.3, flow.go).
		return errs.Unreachable
	case 408:
		return errs.NoAnswer
	case 488, 606:
		return errs.RemoteNotAcceptable
	}
	return errs.RemoteFailed(status, phrase)
}

func (o *outbound) hangUp(l *Leg, reason errs.EndReason) {
	l.mu.Lock()
	l.silenceLocked()
	switch {
	case l.finished:
		l.mu.Unlock()
	case l.state == stateEstablished:
		l.mu.Unlock()
		l.hangUpEstablished(reason, false)
	default:
		bs := o.branches
		l.mu.Unlock()
		l.finish(errs.EndReason{})
		for _, b := range bs {
			b.cancel()
		}
	}
}

func (o *outbound) shutdown(l *Leg) {
	l.mu.Lock()
	switch {
	case l.finished:
		l.mu.Unlock()
	case l.state == stateEstablished:
		l.mu.Unlock()
		l.hangUpEstablished(errs.ServerShutdown, true)
	default:
		bs := o.branches
		l.mu.Unlock()
		l.finish(errs.ServerShutdown)
		for _, b := range bs {
			b.cancel()
		}
	}
}

// printable keeps what a far end wrote (a reason phrase) safe to show a
// bot author: printable characters, at most n bytes.
func printable(s string, n int) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			return -1
		}
		return r
	}, s)
	if len(s) > n {
		s = strings.ToValidUTF8(s[:n], "")
	}
	return strings.TrimSpace(s)
}

// viaPath is the destination of a contact registered with a Path: the
// contact is the Request-URI, the Path the Route set (RFC 3327 §5.3), and
// the request goes to the first Path hop over its transport (UDP unless
// its URI says otherwise). The proxy's record-routing then puts it in the
// dialog's route set too.
func viaPath(contact sip.Uri, path []string) (destination, bool) {
	first, ok := routeURI(path[0])
	if !ok {
		return destination{}, false
	}
	transport := transportOf(first, "UDP")
	return destination{uri: contact, transport: transport, addr: hostPort(first, transport), route: path}, true
}
