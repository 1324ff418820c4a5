package sipgw

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// A phone transfers its call with an in-dialog REFER (RFC 3515): blind, or
// attended when its Refer-To carries a Replaces header (RFC 3891, RFC 5589
// §7). The gateway checks the request itself and answers what is wrong
// with it at once:
//
//   - no Refer-To, or one that does not parse: 400;
//   - a Refer-To that is not a sip, sips or tel URI: 416;
//   - a Refer-To naming nobody this node can call (its user part is
//     neither a SIP user of the registrar, nor a user's number, nor an
//     E.164 number for the trunk; its host is not looked at, so no phone
//     makes Switchboard call arbitrary hosts): 404;
//   - a Replaces that names a dialog Switchboard itself holds (the phone's
//     consultation call went through Switchboard): 501, as moving one of
//     Switchboard's own calls into another is the bot's to do (transfer
//     with replacesCallId);
//   - a call not established yet: 491.
//
// Anything else goes to the call (callctl.LegRefer), which refuses at once
// what its state does not allow (491 while the bot transfers the call or
// another REFER of this phone is under way, 501 for a leg that is not a
// bot's far end) or accepts: 202, a NOTIFY "100 Trying", and when the
// target answered or failed, a final NOTIFY with its status ("200 OK",
// "486 Busy Here", "408 Request Timeout"…) that ends the implicit
// subscription. After a success the call hangs the transferor up: its BYE
// waits for the final NOTIFY's answer (bounded), so the phone learns the
// outcome before the call ends. A phone that asked for no subscription
// (Refer-Sub: false, RFC 4488) gets no NOTIFY.

// referWait bounds how long a REFER waits for its call to take it up:
// past it the phone gets 500 and the call drops the transfer.
const referWait = 8 * time.Second

// referState is where a REFER's answer stands; guarded by referReport.mu.
type referState int

const (
	referPending referState = iota
	referAccepted
	referRefused
	referAbandoned // answered 500 after referWait
)

// referReport answers a REFER on behalf of the call (callctl.ReferReport).
type referReport struct {
	l     *Leg
	id    uint32 // the REFER's CSeq: the Event id of its NOTIFYs (RFC 3515 §2.4.6)
	noSub bool   // Refer-Sub: false

	mu      sync.Mutex
	state   referState
	refusal error
	final   bool
	decided chan struct{}     // closed once Accept or Refuse ran
	notes   chan *sip.Request // the NOTIFYs, in CSeq order; closed after the final one
	done    chan struct{}     // closed once the NOTIFYs are sent (or given up)
}

var _ callctl.ReferReport = (*referReport)(nil)

func (r *referReport) Refuse(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != referPending {
		return
	}
	r.state, r.refusal = referRefused, err
	close(r.decided)
}

func (r *referReport) Accept() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != referPending {
		return false
	}
	r.state = referAccepted
	if !r.noSub {
		if n := r.l.referNotify(r, "100 Trying", false); n != nil {
			r.notes <- n
		}
	}
	close(r.decided)
	return true
}

func (r *referReport) Result(ok bool, reason errs.EndReason) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != referAccepted || r.final {
		return
	}
	r.final = true
	if !r.noSub {
		code := 200
		if !ok {
			code = referStatus(reason)
		}
		if n := r.l.referNotify(r, strconv.Itoa(code)+" "+referPhrase(code), true); n != nil {
			r.notes <- n
		}
	}
	close(r.notes)
}

// run sends the NOTIFYs in order, each waiting for its answer (bounded).
func (r *referReport) run() {
	g := r.l.g
	defer close(r.done)
	for {
		select {
		case n, ok := <-r.notes:
			if !ok {
				return
			}
			ctx, cancel := context.WithTimeout(g.runCtx, 64*g.t1)
			res, err := g.do(ctx, n)
			cancel()
			switch {
			case err != nil:
				r.l.lg().Debug("NOTIFY of a transfer", "err", err)
			case res.StatusCode >= 300:
				r.l.lg().Debug("NOTIFY of a transfer refused", "status", res.StatusCode)
			}
		case <-g.runCtx.Done():
			return
		}
	}
}

// referNotify builds a NOTIFY of r's implicit subscription carrying the
// status line frag (RFC 3515 §2.4.5), and makes the leg's BYE wait for
// the NOTIFYs; nil when the dialog is over. The caller holds r.mu.
func (l *Leg) referNotify(r *referReport, frag string, final bool) *sip.Request {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.dlg == nil || l.byeSent || l.state != stateEstablished {
		return nil
	}
	l.referDone = r.done
	req := l.g.newRequest(l.dlg, sip.NOTIFY)
	req.AppendHeader(l.g.contact(l.dlg.transport))
	req.AppendHeader(sip.NewHeader("Event", "refer;id="+strconv.FormatUint(uint64(r.id), 10)))
	sub := "active;expires=60"
	if final {
		sub = "terminated;reason=noresource"
	}
	req.AppendHeader(sip.NewHeader("Subscription-State", sub))
	req.AppendHeader(sip.NewHeader("Content-Type", "message/sipfrag;version=2.0"))
	req.SetBody([]byte("SIP/2.0 " + frag + "\r\n"))
	return req
}

// referStatus is the SIP status a failed transfer's final NOTIFY reports:
// the target's own refusal where the reason carries one.
func referStatus(r errs.EndReason) int {
	switch {
	case r.SIP >= 300 && r.SIP < 700:
		return r.SIP
	case r.Code >= 300 && r.Code < 700:
		return r.Code
	}
	return 500
}

func referPhrase(code int) string {
	switch code {
	case 100:
		return "Trying"
	case 200:
		return "OK"
	case 400:
		return "Bad Request"
	case 410:
		return "Gone"
	case 416:
		return "Unsupported URI Scheme"
	case 491:
		return "Request Pending"
	case 501:
		return "Not Implemented"
	case 604:
		return "Does Not Exist Anywhere"
	}
	return phrase(code)
}

// refuseStatus is the final response to a REFER the call refused.
func refuseStatus(err error) int {
	switch errs.KindOf(err) {
	case errs.Conflict:
		return 491
	case errs.NotFound, errs.BadRequest:
		return 404
	case errs.NotSupported:
		return 501
	case errs.Forbidden:
		return 403
	case errs.Unavailable:
		return 503
	}
	return 500
}

// refer handles a REFER in the leg's dialog.
func (l *Leg) refer(req *sip.Request, tx sip.ServerTransaction) {
	g := l.g
	refuse := func(code int, why string, hdrs ...sip.Header) {
		if why != "" {
			hdrs = append(hdrs, warning(why))
		}
		g.respond(tx, req, code, referPhrase(code), hdrs...)
	}
	hs := req.GetHeaders("Refer-To")
	if len(hs) == 0 {
		refs := req.GetHeaders("r") // the compact form (RFC 3515 §2.1)
		hs = refs
	}
	if len(hs) != 1 {
		refuse(400, "a REFER needs exactly one Refer-To")
		return
	}
	uri, err := referURI(hs[0].Value())
	if sc := strings.ToLower(uri.Scheme); err == nil && (sc == "sip" || sc == "sips") && uri.Host == "" {
		err = errors.New("no host") // sipgo hands a Refer-To it failed to parse on as <sip:>
	}
	if err != nil {
		refuse(400, "the Refer-To does not parse")
		return
	}
	scheme := strings.ToLower(uri.Scheme)
	if scheme != "sip" && scheme != "sips" && scheme != "tel" {
		refuse(416, "Switchboard transfers to sip, sips and tel URIs")
		return
	}
	var replaces string
	for _, h := range uri.Headers {
		if strings.EqualFold(h.K, "Replaces") {
			v, err := url.PathUnescape(h.V)
			if err != nil {
				refuse(400, "the Refer-To's Replaces does not parse")
				return
			}
			replaces = v
		}
	}
	if replaces != "" {
		cid, to, from, ok := parseReplaces(replaces)
		if !ok {
			refuse(400, "the Refer-To's Replaces needs a Call-ID, a to-tag and a from-tag (RFC 3891)")
			return
		}
		if g.holds(cid, to, from) {
			refuse(501, "the call to replace is one of Switchboard's own: an attended transfer between two calls through Switchboard is the bot's to make")
			return
		}
	}
	target := g.referTarget(uri)
	if target == nil {
		refuse(404, "the Refer-To names no user or number this node can call")
		return
	}
	l.mu.Lock()
	established := l.state == stateEstablished && !l.byeSent
	l.mu.Unlock()
	if !established {
		refuse(491, "the call is not established")
		return
	}

	r := &referReport{l: l, id: req.CSeq().SeqNo, decided: make(chan struct{}),
		notes: make(chan *sip.Request, 2), done: make(chan struct{})}
	for _, h := range req.GetHeaders("Refer-Sub") {
		r.noSub = strings.EqualFold(strings.TrimSpace(h.Value()), "false")
	}
	if !l.emitRefer(callctl.LegEvent{Kind: callctl.LegRefer, Refer: &callctl.Refer{Target: target, Replaces: replaces, Report: r}}) {
		g.respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	timer := time.NewTimer(referWait)
	defer timer.Stop()
	select {
	case <-r.decided:
	case <-timer.C:
	case <-g.runCtx.Done():
	}
	r.mu.Lock()
	if r.state == referPending {
		r.state = referAbandoned
	}
	state, refusal := r.state, r.refusal
	r.mu.Unlock()
	switch state {
	case referAbandoned:
		l.lg().Warn("a REFER was not taken up by its call in time")
		refuse(500, "the call did not take the transfer up")
	case referRefused:
		l.lg().Info("REFER refused", "err", refusal)
		refuse(refuseStatus(refusal), printable(errs.Message(refusal), 200))
	case referAccepted:
		res := sip.NewResponseFromRequest(req, 202, "Accepted", nil)
		res.AppendHeader(g.contact(req.Transport()))
		if r.noSub {
			res.AppendHeader(sip.NewHeader("Refer-Sub", "false"))
		}
		if err := tx.Respond(res); err != nil {
			l.lg().Debug("respond 202 to REFER", "err", err)
		}
		if !r.noSub {
			g.goTracked(r.run)
		}
	}
}

// emitRefer reports a REFER to the call; false when the call has let the
// leg go.
func (l *Leg) emitRefer(ev callctl.LegEvent) bool {
	l.mu.Lock()
	if l.quiet || l.ended {
		l.mu.Unlock()
		return false
	}
	l.queue = append(l.queue, ev)
	l.flushLocked()
	return true
}

// referURI is the URI of a Refer-To value: name-addr or addr-spec.
func referURI(v string) (sip.Uri, error) {
	v = strings.TrimSpace(v)
	if i := strings.IndexByte(v, '<'); i >= 0 {
		j := strings.IndexByte(v[i:], '>')
		if j < 0 {
			return sip.Uri{}, errors.New("a name-addr without its '>'")
		}
		v = v[i+1 : i+j]
	} else if i := strings.IndexByte(v, ';'); i >= 0 && !strings.HasPrefix(strings.ToLower(v), "tel:") {
		// addr-spec: its parameters are the header's (RFC 3261 §20.10).
		v = v[:i]
	}
	var u sip.Uri
	err := sip.ParseUri(v, &u)
	return u, err
}

// parseReplaces splits an RFC 3891 Replaces value.
func parseReplaces(v string) (callID, toTag, fromTag string, ok bool) {
	parts := strings.Split(v, ";")
	callID = strings.TrimSpace(parts[0])
	for _, p := range parts[1:] {
		k, val, _ := strings.Cut(strings.TrimSpace(p), "=")
		switch strings.ToLower(strings.TrimSpace(k)) {
		case "to-tag":
			toTag = strings.TrimSpace(val)
		case "from-tag":
			fromTag = strings.TrimSpace(val)
		}
	}
	return callID, toTag, fromTag, callID != "" && toTag != "" && fromTag != ""
}

// holds reports whether Switchboard holds the dialog a Replaces names,
// from either side's view of its tags.
func (g *Gateway) holds(callID, toTag, fromTag string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.dialogs[dialogKey(callID, toTag, fromTag)] != nil || g.dialogs[dialogKey(callID, fromTag, toTag)] != nil
}

// referTarget maps a Refer-To to whom the call dials: a SIP user of the
// registrar by its user part, a user by its number, else an E.164 number
// (the trunk's); nil when it names none of those.
func (g *Gateway) referTarget(u sip.Uri) *graph.IdentitySet {
	user := u.User
	if strings.EqualFold(u.Scheme, "tel") {
		user, _, _ = strings.Cut(u.Raw(), ";")
	}
	if user == "" {
		return nil
	}
	if !strings.EqualFold(u.Scheme, "tel") {
		if uu, tid, ok := g.lookupUser(user); ok {
			return &graph.IdentitySet{User: &graph.Identity{ID: uu.ID, DisplayName: uu.DisplayName, TenantID: tid}}
		}
	}
	num := strings.Map(func(r rune) rune {
		switch r {
		case '-', '.', '(', ')', ' ':
			return -1 // visual separators (RFC 3966 §5.1.1)
		}
		return r
	}, user)
	if num != "" && num[0] >= '1' && num[0] <= '9' {
		num = "+" + num // trunks and phones often write E.164 without its "+"
	}
	if !e164(num) {
		return nil
	}
	if tid, uu, ok := g.dir.UserByPhone(num); ok {
		return &graph.IdentitySet{User: &graph.Identity{ID: uu.ID, DisplayName: uu.DisplayName, TenantID: tid}}
	}
	return &graph.IdentitySet{Phone: &graph.Identity{ID: num}}
}

// e164 reports whether s is +, a non-zero digit and up to 14 more digits.
func e164(s string) bool {
	if len(s) < 3 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for _, c := range s[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}
