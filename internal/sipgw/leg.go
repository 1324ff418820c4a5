package sipgw

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/internal/webrtcgw"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

type legState int

const (
	stateNew         legState = iota // inbound: INVITE being checked; outbound: INVITEs out
	stateRinging                     // inbound: 180 sent, the bot decides
	stateAnswering                   // inbound: 200 sent, waiting for the ACK
	stateEstablished                 // the dialog is confirmed
	stateEnded
)

// Leg is the far end of a call over SIP: one dialog (or, while an outbound
// call rings, the forked INVITEs that may become one) and its media
// session. It implements callctl.Leg. Its methods are safe for concurrent
// use and never block on the network: SIP requests go out from the
// gateway's goroutines. Events reach the call in order, one at a time.
type Leg struct {
	g    *Gateway
	id   string
	dir  string // "in" or "out"
	pstn bool   // the far end is a trunk
	// from and fromName are what an outgoing leg presents (callctl.Target.From).
	from, fromName string
	replaces       string           // an outgoing leg's Replaces header (callctl.Target.Replaces)
	cascade        *callctl.Cascade // an outgoing cascade leg's person and meeting (cascade.go)
	sdp            localSDP
	sess           *media.Session
	rtc            *webrtcgw.Peer // a browser's WebRTC media, relayed to sess (webrtc.go)
	in             *inbound       // set for incoming legs
	out            *outbound      // set for outgoing legs
	closed         sync.Once

	// remoteMu serialises applyRemote; remoteSet (guarded by it) says
	// the media session has been given a remote.
	remoteMu  sync.Mutex
	remoteSet bool

	logp atomic.Pointer[slog.Logger] // gains the call id once known

	mu       sync.Mutex
	callID   string
	ev       func(callctl.LegEvent)
	queue    []callctl.LegEvent
	draining bool
	state    legState
	quiet    bool // the call hung up or rejected the leg: report nothing more
	ended    bool // LegEnded is queued: nothing follows it
	finished bool
	done     chan struct{} // closed once finished
	dlg      *dialog
	remote   remoteMedia
	ackWait  chan *sip.Request // ACKs for the INVITE being answered (2xx)
	byeSent  bool
	// early are traces made before the leg had its call (trace.go).
	early []callctl.TraceEvent
	// referDone is closed once the NOTIFYs of the far end's last
	// accepted REFER are sent: our BYE waits for it (refer.go).
	referDone chan struct{}
}

var _ callctl.Leg = (*Leg)(nil)

func newLegID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

func (g *Gateway) newLeg(dir string) *Leg {
	l := &Leg{g: g, id: newLegID(), dir: dir, ackWait: make(chan *sip.Request, 4), done: make(chan struct{})}
	l.logp.Store(g.log.With("leg", l.id, "direction", dir))
	var b [8]byte
	_, _ = rand.Read(b[:])
	l.sdp.sessID = binary.BigEndian.Uint64(b[:]) >> 1 // o= session ids fit in 63 bits (RFC 4566 §5.2)
	return l
}

func (l *Leg) lg() *slog.Logger { return l.logp.Load() }

// addLeg tracks a live leg; it fails once the gateway is closing.
func (g *Gateway) addLeg(l *Leg) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closing {
		return false
	}
	g.legs[l] = struct{}{}
	g.m.legs.WithLabelValues(l.dir).Inc()
	return true
}

// Media is the leg's RTP session (prompts, recording, tones). It is nil
// only for a leg that failed before media was set up.
func (l *Leg) Media() *media.Session { return l.sess }

// legRef is the data of a SIP leg's callctl.LegRef.
type legRef struct {
	ID     string     `json:"id"`
	Dir    string     `json:"direction"`
	Dialog *dialogRef `json:"dialog,omitempty"`
	// Invites are an outgoing leg's INVITEs while none is answered, one
	// per fork still pending: what their CANCELs copy (cancelref.go).
	Invites []*inviteRef `json:"invites,omitempty"`
}

// Ref identifies the leg. A SIP leg cannot be resumed after a restart (its
// RTP dies with the process), but once its dialog is confirmed the
// reference holds it, so that a restarted node can release the far end
// with a BYE (Gateway.Resume); callctl stores the reference again when the
// leg reports LegAnswered. Before that an outgoing leg's reference holds
// its INVITEs, so that they can be cancelled (callctl stores it when the
// leg is dialled); an incoming leg's, and one whose dialog a BYE has
// ended, only names the leg.
func (l *Leg) Ref() callctl.LegRef {
	r := legRef{ID: l.id, Dir: l.dir}
	l.mu.Lock()
	if l.state == stateEstablished && l.dlg != nil && !l.byeSent {
		r.Dialog = l.dlg.ref()
	} else if l.out != nil && l.state < stateEstablished && !l.finished {
		for _, b := range l.out.branches {
			if b.invite != nil && !b.final {
				r.Invites = append(r.Invites, b.invite)
			}
		}
	}
	l.mu.Unlock()
	data, _ := json.Marshal(r) // strings and numbers only: it cannot fail
	return callctl.LegRef{Kind: "sip", Data: data}
}

// attach is IncomingCall.NewLeg: the call exists and events can flow.
func (l *Leg) attach(callID string, ev func(callctl.LegEvent)) callctl.Leg {
	l.mu.Lock()
	l.callID = callID
	l.ev = ev
	l.logp.Store(l.lg().With("call", callID))
	l.flushLocked()
	if l.in != nil {
		l.traceAttached()
	}
	return l
}

// emit reports ev to the call, after the events before it.
func (l *Leg) emit(ev callctl.LegEvent) {
	l.mu.Lock()
	if l.quiet || l.ended {
		l.mu.Unlock()
		return
	}
	l.ended = ev.Kind == callctl.LegEnded
	l.queue = append(l.queue, ev)
	l.flushLocked()
}

// flushLocked delivers queued events, on one goroutine at a time, without
// holding the mutex while the call's callback runs. It unlocks l.mu.
func (l *Leg) flushLocked() {
	if l.draining || l.ev == nil {
		l.mu.Unlock()
		return
	}
	l.draining = true
	for len(l.queue) > 0 && !l.quiet {
		ev := l.queue[0]
		l.queue = l.queue[1:]
		cb := l.ev
		l.mu.Unlock()
		cb(ev)
		l.mu.Lock()
	}
	l.queue = nil
	l.draining = false
	l.mu.Unlock()
}

// silence stops all reporting: the call side has let the leg go.
func (l *Leg) silenceLocked() {
	l.quiet = true
	l.queue = nil
}

// finish ends the leg once: it reports reason unless the call let the leg
// go, forgets the dialog and releases the media.
func (l *Leg) finish(reason errs.EndReason) {
	l.mu.Lock()
	if l.finished {
		l.mu.Unlock()
		return
	}
	l.finished = true
	close(l.done)
	l.state = stateEnded
	var key string
	if l.dlg != nil {
		key = l.dlg.key()
	}
	l.mu.Unlock()
	if reason != (errs.EndReason{}) {
		l.emit(callctl.LegEvent{Kind: callctl.LegEnded, Reason: reason})
	}
	l.mu.Lock()
	l.ended = true
	l.mu.Unlock()
	l.release(key)
}

// release forgets the leg and closes its media, once.
func (l *Leg) release(key string) {
	l.closed.Do(func() {
		g := l.g
		if key != "" {
			g.removeDialog(key, l)
		}
		g.mu.Lock()
		if _, ok := g.legs[l]; ok {
			delete(g.legs, l)
			g.m.legs.WithLabelValues(l.dir).Dec()
		}
		g.mu.Unlock()
		if l.sess != nil {
			if err := l.sess.Close(); err != nil {
				l.lg().Debug("close media", "err", err)
			}
		}
		if l.rtc != nil {
			_ = l.rtc.Close()
		}
		l.closeBranchPeers()
	})
}

// endReason is how a BYE from the far end ends the call.
func (l *Leg) remoteEnd() errs.EndReason {
	if l.pstn {
		return errs.EndedByPSTN
	}
	return errs.EndedByRemote
}

// SendTones plays DTMF to the far end, as RFC 4733 events when the far
// end negotiated them, else in-band.
func (l *Leg) SendTones(tones []graph.Tone, gap time.Duration, done func()) error {
	l.mu.Lock()
	st := l.state
	l.mu.Unlock()
	if st != stateEstablished {
		return errors.New("sipgw: the leg is not connected")
	}
	var b strings.Builder
	for _, t := range tones {
		if c := t.Char(); c != 0 && c != '!' {
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return errors.New("sipgw: no tone can be sent as DTMF")
	}
	l.sess.SendTones(b.String(), gap, done)
	return nil
}

// onMedia receives the media session's events (on its goroutines; it must
// not block nor close the session).
func (l *Leg) onMedia(ev media.Event) {
	l.mu.Lock()
	established := l.state == stateEstablished
	held := l.remote.hold()
	l.mu.Unlock()
	switch ev.Kind {
	case media.EventTone:
		if !established {
			return
		}
		if t, ok := graph.ParseTone(string(ev.Tone)); ok {
			l.emit(callctl.LegEvent{Kind: callctl.LegTone, Tone: t})
		}
	case media.EventInactive:
		// A vanished phone: no RTP for media.inactivityTimeout. A far end
		// that holds the call sending nothing is not one: the session does
		// not watch while it holds (applyRemote), and an event that raced
		// the hold's re-INVITE is dropped here.
		if !established || held {
			return
		}
		l.lg().Info("no RTP from the far end: ending the call")
		l.trace(callctl.TraceMedia, "media failure: no RTP from the far end for %v", l.g.cfg.Media.InactivityTimeout.D())
		// Not on this goroutine: ending closes the session, which its own
		// callbacks must not do.
		l.g.goTracked(func() { l.hangUpEstablished(errs.MediaFailure, true) })
	case media.EventMediaStarted:
		l.lg().Debug("media started")
	}
}

// goTracked runs f on a goroutine Close waits for.
func (g *Gateway) goTracked(f func()) {
	g.mu.Lock()
	g.active++
	g.mu.Unlock()
	go func() {
		defer g.untrack()
		f()
	}()
}

func (g *Gateway) untrack() {
	g.mu.Lock()
	g.active--
	if g.active == 0 && g.idle != nil {
		close(g.idle)
		g.idle = nil
	}
	g.mu.Unlock()
}

// waitIdle waits until no tracked goroutine runs, or until d has passed
// (d < 0: without limit).
func (g *Gateway) waitIdle(d time.Duration) {
	g.mu.Lock()
	if g.active == 0 {
		g.mu.Unlock()
		return
	}
	if g.idle == nil {
		g.idle = make(chan struct{})
	}
	idle := g.idle
	g.mu.Unlock()
	if d < 0 {
		<-idle
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-idle:
	case <-t.C:
	}
}

// hangUpEstablished sends a BYE on the confirmed dialog and ends the leg;
// with report the call hears reason.
func (l *Leg) hangUpEstablished(reason errs.EndReason, report bool) {
	l.mu.Lock()
	if l.state != stateEstablished || l.byeSent {
		l.mu.Unlock()
		return
	}
	l.byeSent = true
	if !report {
		l.silenceLocked()
	}
	req := l.g.newRequest(l.dlg, sip.BYE)
	notified := l.referDone
	l.mu.Unlock()
	if report {
		l.finish(reason)
	} else {
		l.finish(errs.EndReason{})
	}
	l.traceSIP("BYE sent (%s)", reason.Message)
	l.g.goTracked(func() {
		if notified != nil {
			// The transferor hears how its transfer went before the BYE.
			t := time.NewTimer(4 * l.g.t1)
			select {
			case <-notified:
			case <-t.C:
			}
			t.Stop()
		}
		l.sendBye(req)
	})
}

// sendBye sends a BYE and waits (bounded) for its answer.
func (l *Leg) sendBye(req *sip.Request) {
	ctx, cancel := context.WithTimeout(l.g.runCtx, 64*l.g.t1)
	defer cancel()
	res, err := l.g.do(ctx, req)
	switch {
	case err != nil:
		l.lg().Debug("BYE", "err", err)
		l.traceSIP("no answer to the BYE")
	case res.StatusCode >= 300:
		l.lg().Debug("BYE refused", "status", res.StatusCode)
	}
	if err == nil {
		l.traceSIP("%d %s received for the BYE", res.StatusCode, printable(res.Reason, 40))
	}
}

// HangUp ends the leg from the call's side: a BYE once answered, a CANCEL
// (or a final response to an incoming INVITE) before. Nothing more is
// reported.
func (l *Leg) HangUp(reason errs.EndReason) {
	if l.in != nil {
		l.in.hangUp(l, reason)
		return
	}
	l.out.hangUp(l, reason)
}

// shutdown ends the leg because the gateway closes, reporting it.
func (l *Leg) shutdown() {
	if l.in != nil {
		l.in.shutdown(l)
		return
	}
	l.out.shutdown(l)
}

// onRequest handles a request inside the leg's dialog.
func (l *Leg) onRequest(req *sip.Request, tx sip.ServerTransaction) {
	g := l.g
	l.mu.Lock()
	d := l.dlg
	if d == nil {
		l.mu.Unlock()
		g.respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	if seq := req.CSeq().SeqNo; seq < d.remoteSeq {
		// RFC 3261 §12.2.2: an older CSeq is out of order.
		l.mu.Unlock()
		g.respond(tx, req, 500, "Server Internal Error (CSeq out of order)")
		return
	} else {
		d.remoteSeq = seq
	}
	state := l.state
	l.mu.Unlock()
	tx = l.traceRequest(req, tx)

	switch req.Method {
	case sip.BYE:
		g.respond(tx, req, 200, "OK")
		if l.in != nil && state < stateEstablished {
			l.in.callerGone(l)
			return
		}
		l.mu.Lock()
		l.byeSent = true // the dialog is over: no BYE from us
		l.mu.Unlock()
		l.finish(l.remoteEnd())
	case sip.INVITE, sip.UPDATE:
		if state != stateEstablished {
			// A re-INVITE or UPDATE before the dialog is confirmed: RFC 3311
			// lets us refuse, and the caller retries.
			g.respond(tx, req, 491, "Request Pending", sip.NewHeader("Retry-After", "1"))
			return
		}
		l.modify(req, tx)
	case sip.INFO:
		l.info(req, tx)
	case sip.REFER:
		l.refer(req, tx)
	case sip.OPTIONS:
		g.onOptions(req, tx)
	default:
		g.respond(tx, req, 405, "Method Not Allowed", sip.NewHeader("Allow", allowed))
	}
}

// modify answers a re-INVITE or UPDATE: a session refresh, a hold or
// resume, a new address or codec (RFC 3264 §8, RFC 3311).
func (l *Leg) modify(req *sip.Request, tx sip.ServerTransaction) {
	g := l.g
	var body []byte
	if l.rtc != nil && (len(req.Body()) > 0 || req.Method == sip.INVITE) {
		// A WebRTC leg's re-offer (hold, resume, ICE restart) is pion's
		// to answer (webrtc.go).
		l.modifyWebRTC(req, tx)
		return
	}
	if len(req.Body()) > 0 {
		if ct := req.ContentType(); ct != nil && !strings.HasPrefix(strings.ToLower(ct.Value()), "application/sdp") {
			g.respond(tx, req, 415, "Unsupported Media Type", sip.NewHeader("Accept", "application/sdp"))
			return
		}
		rm, err := parseSDP(req.Body())
		switch {
		case errors.Is(err, errNoCodec):
			g.respond(tx, req, 488, "Not Acceptable Here")
			return
		case err != nil:
			g.respond(tx, req, 400, "Bad Request (SDP)")
			return
		}
		l.mu.Lock()
		l.remote = rm
		body = l.sdp.answer(rm)
		l.refreshTarget(req)
		l.mu.Unlock()
		l.applyRemote(rm)
	} else {
		l.mu.Lock()
		l.refreshTarget(req)
		if req.Method == sip.INVITE {
			// An offerless re-INVITE: our offer goes in the 200, the
			// answer comes in the ACK (RFC 3261 §14.2).
			body = l.sdp.offer()
		}
		l.mu.Unlock()
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", body)
	res.AppendHeader(g.contact(req.Transport()))
	if body != nil {
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	}
	if req.Method == sip.UPDATE {
		if err := tx.Respond(res); err != nil {
			l.lg().Debug("respond UPDATE", "err", err)
		}
		return
	}
	if ack := l.answerInvite(tx, req, res); ack != nil && len(ack.Body()) > 0 {
		if rm, err := parseSDP(ack.Body()); err == nil {
			l.mu.Lock()
			l.remote = rm
			l.mu.Unlock()
			l.applyRemote(rm)
		}
	}
}

// applyRemote points the media session at the stream the far end's SDP
// describes, initial or not: where RTP goes and in which codec (unless it
// gives no address to send to), and which way it flows. A direction that
// stops our sending is set before the address, one that starts it after,
// so that no packet goes where or when this SDP does not want one.
func (l *Leg) applyRemote(rm remoteMedia) { l.applyRemoteIf(rm, nil) }

// applyRemoteIf is applyRemote when still, asked under l.mu, says rm
// still applies (early media that lost the race with another branch's
// answer does not). Calls are serialised, so the SDP applied last is the
// one taken last.
func (l *Leg) applyRemoteIf(rm remoteMedia, still func() bool) {
	l.remoteMu.Lock()
	defer l.remoteMu.Unlock()
	if still != nil {
		l.mu.Lock()
		ok := still()
		l.mu.Unlock()
		if !ok {
			return
		}
	}
	dir := rm.localDir()
	if !dir.Sends() {
		l.sess.SetDirection(dir)
	}
	if rm.sendable() || !l.remoteSet {
		// A first SDP with no address to send to (c=0.0.0.0) still gives
		// the codec of what the far end sends us; the direction, set
		// above, keeps anything from going to that address. A later one
		// keeps the address and codec in use.
		l.sess.SetRemote(rm.addr, rm.codec, rm.dtmfPT)
		l.remoteSet = true
	}
	if dir.Sends() {
		l.sess.SetDirection(dir)
	}
}

// refreshTarget takes a target refresh request's Contact as the new remote
// target (RFC 3261 §12.2.2). The caller holds l.mu.
func (l *Leg) refreshTarget(req *sip.Request) {
	if c := req.Contact(); c != nil && !c.Address.Wildcard && c.Address.Host != "" {
		l.dlg.target = *c.Address.Clone()
		l.dlg.dest = l.g.reachable(l.dlg.transport, req.Source(), l.dlg.target)
	}
}

// answerInvite sends a 2xx to a re-INVITE and waits for its ACK.
func (l *Leg) answerInvite(tx sip.ServerTransaction, req *sip.Request, res *sip.Response) *sip.Request {
	if err := tx.Respond(res); err != nil {
		l.lg().Debug("respond 2xx", "err", err)
		return nil
	}
	ack, _ := l.awaitAck(tx, req, res, nil)
	return ack
}

// awaitAck retransmits a 2xx over UDP until its ACK comes (RFC 3261
// §13.3.1.4), at most 64*T1. It returns the ACK, or nil when none came or
// stop closed first (then stopped is true).
func (l *Leg) awaitAck(tx sip.ServerTransaction, req *sip.Request, res *sip.Response, stop <-chan struct{}) (ack *sip.Request, stopped bool) {
	cseq := req.CSeq().SeqNo
	g := l.g
	reliable := sip.IsReliable(sip.NetworkToLower(req.Transport()))
	interval := g.t1
	retransmit := time.NewTimer(interval)
	defer retransmit.Stop()
	giveUp := time.NewTimer(64 * g.t1)
	defer giveUp.Stop()
	for {
		select {
		case ack := <-l.ackWait:
			if ack.CSeq().SeqNo == cseq {
				return ack, false
			}
		case <-stop:
			return nil, true
		case <-retransmit.C:
			if !reliable {
				if err := tx.Respond(res); err != nil {
					l.lg().Debug("retransmit 2xx", "err", err)
				}
			}
			interval = min(2*interval, g.t2)
			retransmit.Reset(interval)
		case <-giveUp.C:
			return nil, false
		case <-g.runCtx.Done():
			return nil, false
		}
	}
}

// onAck takes an ACK for a 2xx in the leg's dialog.
func (l *Leg) onAck(req *sip.Request) {
	select {
	case l.ackWait <- req:
		l.traceSIP("ACK received")
	default: // a retransmitted ACK nobody waits for
	}
}

// info takes DTMF sent as SIP INFO (application/dtmf-relay, the form
// many phones and gateways use beside RFC 4733).
func (l *Leg) info(req *sip.Request, tx sip.ServerTransaction) {
	g := l.g
	body := strings.TrimSpace(string(req.Body()))
	if body == "" {
		g.respond(tx, req, 200, "OK")
		return
	}
	ct := ""
	if h := req.ContentType(); h != nil {
		ct = strings.ToLower(h.Value())
	}
	var key string
	switch {
	case strings.HasPrefix(ct, "application/dtmf-relay"):
		for _, line := range strings.Split(body, "\n") {
			if k, v, ok := strings.Cut(line, "="); ok && strings.EqualFold(strings.TrimSpace(k), "signal") {
				key = strings.TrimSpace(v)
			}
		}
	case strings.HasPrefix(ct, "application/dtmf"):
		key = body
	default:
		g.respond(tx, req, 415, "Unsupported Media Type", sip.NewHeader("Accept", "application/dtmf-relay, application/dtmf"))
		return
	}
	g.respond(tx, req, 200, "OK")
	l.mu.Lock()
	established := l.state == stateEstablished
	l.mu.Unlock()
	if t, ok := graph.ParseTone(key); ok && established {
		l.emit(callctl.LegEvent{Kind: callctl.LegTone, Tone: t})
	}
}

// onInDialog routes BYE, UPDATE and INFO (and re-INVITEs) to their dialog.
func (g *Gateway) onInDialog(req *sip.Request, tx sip.ServerTransaction) {
	l := g.dialog(req)
	if l == nil {
		g.respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	l.onRequest(req, tx)
}

// onAck routes an ACK for a 2xx to its dialog; others are the transaction
// layer's and stray ones are dropped (RFC 3261 §17.2.3).
func (g *Gateway) onAck(req *sip.Request, tx sip.ServerTransaction) {
	if l := g.dialog(req); l != nil {
		l.onAck(req)
	}
}
