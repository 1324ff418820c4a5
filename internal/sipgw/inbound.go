package sipgw

import (
	"context"
	"errors"
	"math/rand/v2"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/internal/admission"
	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/guestpass"
	"github.com/switchboard-voice/switchboard/internal/webrtcgw"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Incoming calls: an INVITE from a trunk or a registered user to a number
// a bot owns becomes a call for that bot (callctl.Manager.Incoming); the
// bot's answer, reject or redirect come back through the Leg.

const (
	wantNone   = iota
	wantAnswer // the bot answered: send 200
	wantReject // send the final status in code
	wantGone   // the caller sent BYE on the early dialog
)

// inbound is the INVITE server transaction of an incoming leg. The
// goroutine sipgo runs onInvite on owns it until the INVITE is answered
// (and acknowledged) or refused; the fields below the mutex comment are
// guarded by the leg's mutex.
type inbound struct {
	req       *sip.Request // the INVITE, with our To tag
	tx        sip.ServerTransaction
	wake      chan struct{} // a decision is waiting
	cancelled chan struct{} // the caller sent CANCEL (sipgo sent 487)
	gone      chan struct{} // the caller sent BYE before the ACK
	cancelOne sync.Once
	goneOne   sync.Once

	// guarded by Leg.mu
	want       int
	code       int            // for wantReject
	report     errs.EndReason // for wantReject: what the call hears (zero: nothing)
	pendingBye bool           // hang up once the ACK comes
	byeReport  errs.EndReason
}

func (in *inbound) poke() {
	select {
	case in.wake <- struct{}{}:
	default:
	}
}

// trunkFrom returns the trunk whose allowFrom holds ip.
func (g *Gateway) trunkFrom(ip netip.Addr) *trunk {
	for _, t := range g.trunks {
		for _, p := range t.allow {
			if p.Contains(ip) {
				return t
			}
		}
	}
	return nil
}

// tollNumber reports whether num is a tenant's dial-in number
// (tenants[].conferencing.tollNumber), and whose.
func (g *Gateway) tollNumber(num string) (tenantID string, ok bool) {
	if num == "" {
		return "", false
	}
	for _, t := range g.cfg.Tenants {
		n := t.Conferencing.TollNumber
		if n != "" && (n == num || n == "+"+num) {
			return t.ID, true
		}
	}
	return "", false
}

// callerTenant is the tenant of an authenticated SIP user; empty for a
// trunk's caller.
func callerTenant(caller *graph.IdentitySet) string {
	if caller != nil && caller.User != nil {
		return caller.User.TenantID
	}
	return ""
}

func (g *Gateway) isClosing() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.closing
}

// onInvite takes a new INVITE (re-INVITEs go to their dialog).
func (g *Gateway) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if toTag(req) != "" {
		g.onInDialog(req, tx)
		return
	}
	refuse := func(code int, phrase string, hdrs ...sip.Header) {
		g.m.invite("in", code)
		g.respond(tx, req, code, phrase, hdrs...)
	}
	if g.isClosing() || g.draining.Load() {
		g.admit.Count(admission.SIP, admission.ReasonStopping)
		refuse(503, "Service Unavailable", sip.NewHeader("Retry-After", "5"))
		return
	}
	if !g.limiter.Allow() {
		g.admit.Count(admission.SIP, admission.ReasonRate)
		g.m.invite("in", 503)
		g.respondStateless(tx, req, 503, "Service Unavailable (too many calls)", sip.NewHeader("Retry-After", "1"))
		return
	}
	// The node's own load (calls.maxConcurrent, calls.overload), before
	// anything is spent on the call: no 100, no media port.
	if r := g.admit.Admit(admission.SIP); r != nil {
		refuse(503, "Service Unavailable (overloaded: "+string(r.Reason)+")", sip.NewHeader("Retry-After", r.RetryAfterSeconds()))
		return
	}
	g.respond(tx, req, 100, "Trying")

	// Who calls: a trunk by its address (behind a proxy, the address the
	// proxy received the INVITE from: proxy.go), anyone else by digest.
	tr := g.callerTrunk(req)
	var caller *graph.IdentitySet
	guest := false // the caller holds a guest pass (guest.go)
	var cascade *cascadeClaims
	if h := req.GetHeader(cascadeHeader); h != nil {
		// Another node carries a person into a meeting mixed here
		// (cascade.go): its MAC stands for the digest.
		c, err := g.checkCascade(req, h.Value())
		if err != nil {
			if errors.Is(err, errCascade) {
				g.authFailed(req)
			}
			refuse(403, "Forbidden ("+err.Error()+")")
			return
		}
		cascade, caller, guest, tr = c, c.Caller, c.Guest, nil
	} else if tr != nil {
		// The caller's number is the From user part, E.164 or as the
		// trunk writes it (national, "anonymous").
		f := req.From()
		num := f.Address.User
		if num == "" {
			num = "anonymous"
		}
		caller = &graph.IdentitySet{Phone: &graph.Identity{ID: num, DisplayName: printable(f.DisplayName, 128)}}
	} else {
		res, u, tid := g.auth.verify(req, g.lookupCaller, "")
		switch res {
		case authNone, authStale:
			g.m.invite("in", 401)
			g.challenge(tx, req, res == authStale)
			return
		case authBadURI:
			refuse(400, "Bad Request (digest uri is not the Request-URI)")
			return
		case authFailed, authBadUser:
			g.authFailed(req)
			g.m.invite("in", 403)
			g.respondStateless(tx, req, 403, "Forbidden")
			return
		}
		caller = &graph.IdentitySet{User: &graph.Identity{ID: u.ID, DisplayName: u.DisplayName, TenantID: tid}}
		if c, err := guestpass.Parse(u.SIP.Username); err == nil {
			var code int
			var why string
			if caller, code, why = g.guestCall(req, c); caller == nil {
				refuse(code, why)
				return
			}
			guest = true
		}
	}

	// Whom: the number (or SIP user) a bot owns.
	num := req.Recipient.User
	if num == "" {
		num = req.To().Address.User
	}
	app, tenantID, instanceID, ok := g.dir.Number(num)
	if !ok && num != "" && num[0] >= '1' && num[0] <= '9' {
		// Trunks often send E.164 without its "+".
		app, tenantID, instanceID, ok = g.dir.Number("+" + num)
	}
	// Or a meeting: a tenant's dial-in number, or a meeting's own URI
	// (sip:meeting-{conferenceId}@…).
	dialIn, conferenceID := "", ""
	if guest || cascade != nil {
		// Only the meeting guestCall (or checkCascade) checked the
		// Request-URI names: never a bot's number.
		ok = false
	}
	if !ok {
		if tid, yes := g.tollNumber(num); yes {
			dialIn, ok = tid, true
		} else if id, yes := strings.CutPrefix(num, "meeting-"); yes && id != "" {
			dialIn, conferenceID, ok = callerTenant(caller), id, true
		}
	}
	if !ok {
		refuse(404, "Not Found")
		return
	}
	contact := req.Contact()
	if contact == nil || contact.Address.Wildcard || contact.Address.Host == "" {
		refuse(400, "Bad Request (Contact)")
		return
	}

	// What media: the caller's offer must hold a codec we speak, checked
	// before any call exists.
	if len(req.Body()) == 0 {
		refuse(488, "Not Acceptable Here", warning("an INVITE without an SDP offer is not supported"))
		return
	}
	if ct := req.ContentType(); ct != nil && !strings.HasPrefix(strings.ToLower(ct.Value()), "application/sdp") {
		refuse(415, "Unsupported Media Type", sip.NewHeader("Accept", "application/sdp"))
		return
	}
	var (
		rm   remoteMedia
		peer *webrtcgw.Peer
		err  error
	)
	if webrtcgw.IsWebRTC(req.Body()) {
		// A browser's offer (DTLS-SRTP, ICE): pion answers it and relays
		// its media to the session (webrtc.go).
		if peer, rm, err = g.answerWebRTC(req.Body()); err != nil {
			refuse(488, "Not Acceptable Here", warning(err.Error()))
			return
		}
	} else {
		rm, err = parseSDP(req.Body())
		switch {
		case errors.Is(err, errNoCodec):
			refuse(488, "Not Acceptable Here", warning("Incompatible media format: Switchboard speaks PCMU and PCMA"))
			return
		case err != nil:
			refuse(400, "Bad Request (SDP)")
			return
		}
	}

	l := g.newLeg("in")
	l.pstn = tr != nil
	l.remote = rm
	l.rtc = peer
	sess, err := g.media.NewSession(l.onMedia)
	if err != nil {
		g.log.Error("incoming call: media session", "err", err)
		if peer != nil {
			_ = peer.Close()
		}
		refuse(503, "Service Unavailable (no media port)", sip.NewHeader("Retry-After", "5"))
		return
	}
	l.sess = sess
	if peer != nil {
		peer.Connect(sess.LocalAddr())
	}
	l.sdp.addr = sess.LocalAddr()
	if l.sdp.addr.Addr().IsUnspecified() {
		l.sdp.addr = netip.AddrPortFrom(g.addr.Addr(), l.sdp.addr.Port())
	}

	inv := req.Clone()
	inv.To().Params.Add("tag", sip.GenerateTagN(16))
	d := &dialog{
		callID: callIDOf(req), localTag: toTag(inv), remoteTag: fromTag(req),
		local: *inv.To().Address.Clone(), localName: inv.To().DisplayName,
		remote: *req.From().Address.Clone(), remoteName: req.From().DisplayName,
		target: *contact.Address.Clone(), transport: strings.ToUpper(req.Transport()),
		remoteSeq: req.CSeq().SeqNo, localSeq: uint32(rand.IntN(1 << 16)),
	}
	for _, h := range req.GetHeaders("Record-Route") {
		d.routes = append(d.routes, h.Value())
	}
	d.dest = g.reachable(d.transport, req.Source(), d.target)
	l.dlg = d
	in := &inbound{req: inv, tx: tx, wake: make(chan struct{}, 1), cancelled: make(chan struct{}), gone: make(chan struct{})}
	l.in = in
	if !g.addLeg(l) {
		_ = sess.Close()
		if peer != nil {
			_ = peer.Close()
		}
		refuse(503, "Service Unavailable", sip.NewHeader("Retry-After", "5"))
		return
	}
	g.addDialog(d.key(), l)
	// Close waits for this handler: it owes the caller a final response.
	g.mu.Lock()
	g.active++
	g.mu.Unlock()
	defer g.untrack()
	l.logp.Store(l.lg().With("sip_call_id", d.callID))
	if !tx.OnCancel(func(*sip.Request) { in.cancelOne.Do(func() { close(in.cancelled) }) }) {
		// Cancelled (or gone) already: sipgo has answered the INVITE.
		l.finish(errs.EndReason{})
		return
	}

	ctx, cancel := context.WithTimeout(g.runCtx, 10*time.Second)
	if dialIn != "" || conferenceID != "" {
		err = g.calls.DialIn(ctx, callctl.DialIn{TenantID: dialIn, Caller: caller, ConferenceID: conferenceID, Guest: guest,
			Cascade: cascade != nil, NewLeg: l.attach})
	} else {
		_, err = g.calls.Incoming(ctx, callctl.IncomingCall{
			TenantID: tenantID, AppID: app.ID, Caller: caller,
			Called: &graph.IdentitySet{ApplicationInstance: &graph.Identity{ID: instanceID, DisplayName: app.DisplayName, TenantID: tenantID}},
			NewLeg: l.attach,
		})
	}
	cancel()
	if err != nil {
		code, ph := sipStatusOf(err)
		l.lg().Info("incoming call refused", "status", code, "err", err)
		g.m.invite("in", code)
		in.respond(l, sip.NewResponseFromRequest(inv, code, ph, nil))
		l.finish(errs.EndReason{})
		return
	}
	l.mu.Lock()
	if l.state == stateNew {
		l.state = stateRinging
	}
	l.mu.Unlock()
	ringing := sip.NewResponseFromRequest(inv, 180, "Ringing", nil)
	ringing.AppendHeader(g.contact(d.transport))
	in.respond(l, ringing)
	in.serve(l)
}

// warning is a Warning header (RFC 3261 §20.43) saying why.
func warning(text string) sip.Header {
	return sip.NewHeader("Warning", `399 switchboard "`+strings.ReplaceAll(text, `"`, "'")+`"`)
}

// respond sends a response on the INVITE transaction. A CANCEL may have
// won the race: sipgo then keeps retransmitting the last response it was
// given, so the 487 it sent is given back.
func (in *inbound) respond(l *Leg, res *sip.Response) error {
	err := in.tx.Respond(res)
	if err == nil {
		l.traceSIP("%d %s sent for the INVITE", res.StatusCode, printable(res.Reason, 40))
	}
	if errors.Is(err, sip.ErrTransactionCanceled) && res.StatusCode != 487 {
		_ = in.tx.Respond(sip.NewResponseFromRequest(in.req, 487, "Request Terminated", nil))
	}
	if err != nil {
		l.lg().Debug("respond to INVITE", "status", res.StatusCode, "err", err)
	}
	return err
}

// serve waits for the bot's decision or the caller's CANCEL, and carries
// it out.
func (in *inbound) serve(l *Leg) {
	g := l.g
	for {
		select {
		case <-in.wake:
		case <-in.cancelled:
			// sipgo has answered the CANCEL with 200 and the INVITE with 487.
			l.traceSIP("CANCEL received: 487 sent for the INVITE")
			g.m.invite("in", 487)
			l.finish(errs.CallerCancelled)
			return
		case <-in.tx.Done():
			g.m.invite("in", 0)
			l.finish(errs.CallerCancelled)
			return
		case <-g.runCtx.Done():
			l.finish(errs.ServerShutdown)
			return
		}
		l.mu.Lock()
		want, code, report := in.want, in.code, in.report
		if want == wantAnswer {
			// From here a hang-up waits for the ACK, then sends BYE.
			l.state = stateAnswering
		}
		l.mu.Unlock()
		switch want {
		case wantGone:
			g.m.invite("in", 487)
			in.respond(l, sip.NewResponseFromRequest(in.req, 487, "Request Terminated", nil))
			l.finish(errs.CallerCancelled)
			return
		case wantReject:
			g.m.invite("in", code)
			in.respond(l, sip.NewResponseFromRequest(in.req, code, phrase(code), nil))
			l.finish(report)
			return
		case wantAnswer:
			in.answer(l)
			return
		}
	}
}

// answer sends the 200 with our SDP answer and waits for the ACK.
func (in *inbound) answer(l *Leg) {
	g := l.g
	l.mu.Lock()
	rm := l.remote
	body := l.sdp.answer(rm)
	if l.rtc != nil {
		body = l.rtc.SDP()
	}
	transport := l.dlg.transport
	l.mu.Unlock()
	// The offer's direction holds from the first packet: a call that
	// starts sendonly, inactive or at c=0.0.0.0 is sent nothing.
	l.applyRemote(rm)

	res := sip.NewResponseFromRequest(in.req, 200, "OK", body)
	res.AppendHeader(g.contact(transport))
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	res.AppendHeader(sip.NewHeader("Allow", allowed))
	if err := in.respond(l, res); err != nil {
		// The caller cancelled first, or the transport failed.
		g.m.invite("in", 487)
		l.finish(errs.CallerCancelled)
		return
	}
	g.m.invite("in", 200)
	ack, gone := l.awaitAck(in.tx, in.req, res, in.gone)
	l.mu.Lock()
	l.state = stateEstablished
	bye, byeReport := in.pendingBye, in.byeReport
	l.mu.Unlock()
	switch {
	case gone:
		// The caller hung up right after the answer (its ACK lost or late).
		l.mu.Lock()
		l.byeSent = true
		l.mu.Unlock()
		l.finish(l.remoteEnd())
	case ack == nil:
		l.lg().Info("no ACK for the answer: ending the call")
		l.hangUpEstablished(errs.NoACK, true)
	case bye:
		l.hangUpEstablished(byeReport, byeReport != errs.EndReason{})
	default:
		l.emit(callctl.LegEvent{Kind: callctl.LegAnswered})
		l.watchWebRTC()
	}
}

// Answer accepts the incoming call: the 200 carries our SDP answer, and
// LegAnswered follows the caller's ACK.
func (l *Leg) Answer() error {
	if l.in == nil {
		return errors.New("sipgw: only an incoming leg can be answered")
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.finished || l.in.want == wantReject || l.in.want == wantGone:
		return errors.New("sipgw: the caller has hung up")
	case l.in.want == wantAnswer:
		return nil
	}
	l.in.want = wantAnswer
	l.in.poke()
	return nil
}

// Reject refuses the incoming call with reason's SIP status (480 when it
// names none). Nothing more is reported.
func (l *Leg) Reject(reason errs.EndReason) {
	if l.in == nil {
		l.HangUp(reason)
		return
	}
	l.in.hangUp(l, reason)
}

func (in *inbound) hangUp(l *Leg, reason errs.EndReason) {
	l.mu.Lock()
	l.silenceLocked()
	switch {
	case l.finished:
		l.mu.Unlock()
	case l.state == stateEstablished:
		l.mu.Unlock()
		l.hangUpEstablished(reason, false)
	case l.state == stateAnswering:
		in.pendingBye = true
		l.mu.Unlock()
	default:
		if in.want != wantGone {
			in.want, in.code, in.report = wantReject, reason.SIP, errs.EndReason{}
			if in.code < 300 || in.code > 699 {
				in.code = 480
			}
		}
		in.poke()
		l.mu.Unlock()
	}
}

// shutdown ends the incoming leg as the gateway closes: 503 before the
// answer, BYE after, reported to the call.
func (in *inbound) shutdown(l *Leg) {
	l.mu.Lock()
	switch {
	case l.finished:
		l.mu.Unlock()
	case l.state == stateEstablished:
		l.mu.Unlock()
		l.hangUpEstablished(errs.ServerShutdown, true)
	case l.state == stateAnswering:
		in.pendingBye, in.byeReport = true, errs.ServerShutdown
		l.mu.Unlock()
	default:
		if in.want != wantGone {
			in.want, in.code, in.report = wantReject, 503, errs.ServerShutdown
		}
		in.poke()
		l.mu.Unlock()
	}
}

// callerGone takes a BYE from the caller before its ACK: a hang-up in the
// early dialog (RFC 3261 §15) or right after the answer.
func (in *inbound) callerGone(l *Leg) {
	l.mu.Lock()
	if l.state == stateAnswering {
		l.mu.Unlock()
		in.goneOne.Do(func() { close(in.gone) })
		return
	}
	in.want = wantGone
	in.poke()
	l.mu.Unlock()
}
