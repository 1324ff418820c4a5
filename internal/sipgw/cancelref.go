package sipgw

import (
	"context"
	"fmt"
	"strings"

	"github.com/emiago/sipgo/sip"
)

// A node that resumes calls after a restart, or takes over a lost node's,
// finds outgoing calls whose INVITE was still unanswered: the phone rings
// on, and the INVITE's client transaction died with the process that sent
// it. A CANCEL is built from the INVITE alone (RFC 3261 §9.1): the same
// Request-URI, Call-ID, To, From (with its tag), CSeq number and Route
// set, and one Via equal to the INVITE's top Via, branch included, by
// which the far end, or a stateful proxy on the way (Kamailio), matches it
// to the INVITE's server transaction (§9.2, §17.2.3: the branch and the
// Via's sent-by). An outgoing leg's reference therefore keeps that much of
// each of its INVITEs (inviteRef) until it is answered, and Resume sends
// the CANCELs from whichever node resumes the call. The Via keeps its
// rport (RFC 3581), so the far end answers the CANCEL to the node that
// sent it rather than to the one named in the Via. The INVITE's final
// response (487) still goes where the INVITE came from, a node that is
// gone: the far end retransmits it until its Timer H (32 s) and gives up,
// which changes nothing for the person whose phone stopped ringing.

// inviteRef is what a CANCEL copies from an outgoing INVITE.
type inviteRef struct {
	URI       string   `json:"uri"` // Request-URI
	Transport string   `json:"transport"`
	ViaHost   string   `json:"viaHost"`
	ViaPort   int      `json:"viaPort"`
	Branch    string   `json:"branch"`
	CallID    string   `json:"callId"`
	From      string   `json:"from"`
	FromName  string   `json:"fromName,omitempty"`
	FromTag   string   `json:"fromTag"`
	To        string   `json:"to"`
	ToName    string   `json:"toName,omitempty"`
	Seq       uint32   `json:"cseq"`
	Routes    []string `json:"routes,omitempty"`
	Dest      string   `json:"dest"` // where the INVITE went
}

// inviteRefOf keeps what a CANCEL of b's INVITE needs, before the INVITE
// is sent (b.req is sipgo's from then on). A browser's INVITE (WS) gets
// none: its connection, the one way to it, dies with the node.
func inviteRefOf(b *branch) *inviteRef {
	req, d := b.req, b.dlg
	via := req.Via()
	if via == nil || strings.EqualFold(d.transport, "WS") || strings.EqualFold(d.transport, "WSS") {
		return nil
	}
	branch, _ := via.Params.Get("branch")
	r := &inviteRef{URI: req.Recipient.String(), Transport: d.transport, ViaHost: via.Host, ViaPort: via.Port,
		Branch: branch, CallID: d.callID, From: d.local.String(), FromName: d.localName, FromTag: d.localTag,
		To: d.remote.String(), ToName: d.remoteName, Seq: d.localSeq, Dest: b.addr}
	for _, h := range req.GetHeaders("Route") {
		r.Routes = append(r.Routes, h.Value())
	}
	return r
}

// cancel is the CANCEL of the INVITE r keeps.
func (r *inviteRef) cancel() (*sip.Request, error) {
	if r.Branch == "" || r.CallID == "" || r.FromTag == "" || r.Dest == "" {
		return nil, fmt.Errorf("the INVITE's reference lacks its branch, Call-ID, From tag or destination")
	}
	var uri, from, to sip.Uri
	for _, u := range []struct {
		s   string
		uri *sip.Uri
	}{{r.URI, &uri}, {r.From, &from}, {r.To, &to}} {
		if err := sip.ParseUri(u.s, u.uri); err != nil {
			return nil, fmt.Errorf("the INVITE's URI %q: %w", u.s, err)
		}
	}
	c := sip.NewRequest(sip.CANCEL, uri)
	via := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: strings.ToUpper(r.Transport),
		Host: r.ViaHost, Port: r.ViaPort, Params: sip.NewParams()}
	via.Params.Add("branch", r.Branch)
	via.Params.Add("rport", "")
	c.AppendHeader(via)
	mf := sip.MaxForwardsHeader(70)
	c.AppendHeader(&mf)
	fh := &sip.FromHeader{DisplayName: r.FromName, Address: from, Params: sip.NewParams()}
	fh.Params.Add("tag", r.FromTag)
	c.AppendHeader(fh)
	c.AppendHeader(&sip.ToHeader{DisplayName: r.ToName, Address: to, Params: sip.NewParams()})
	cid := sip.CallIDHeader(r.CallID)
	c.AppendHeader(&cid)
	c.AppendHeader(&sip.CSeqHeader{SeqNo: r.Seq, MethodName: sip.CANCEL})
	for _, rt := range r.Routes {
		c.AppendHeader(sip.NewHeader("Route", rt))
	}
	c.SetBody(nil)
	c.SetTransport(r.Transport)
	c.SetDestination(r.Dest)
	return c, nil
}

// cancelInvites cancels the INVITEs of an outgoing leg that ended with an
// earlier process: now when the gateway serves, after Start when it does
// not yet, not at all once it closes. Each CANCEL is sent from a tracked
// goroutine, bounded by 64*T1.
func (g *Gateway) cancelInvites(callID string, invites []*inviteRef) {
	g.mu.Lock()
	switch {
	case g.closing:
		g.mu.Unlock()
		g.log.Warn("gateway closing: the INVITEs of a resumed call are not cancelled", "call", callID)
		return
	case !g.serving:
		g.orphans = append(g.orphans, orphan{callID: callID, invites: invites})
		g.mu.Unlock()
		return
	}
	g.mu.Unlock()
	for _, r := range invites {
		g.goTracked(func() { g.sendStoredCancel(callID, r) })
	}
}

// sendStoredCancel sends the CANCEL of r's INVITE and waits (bounded) for
// its answer.
func (g *Gateway) sendStoredCancel(callID string, r *inviteRef) {
	log := g.log.With("call", callID, "sip_call_id", r.CallID)
	c, err := r.cancel()
	if err != nil {
		log.Warn("CANCEL for an INVITE of the previous process not sent", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(g.runCtx, 64*g.t1)
	defer cancel()
	res, err := g.do(ctx, c)
	switch {
	case err != nil:
		log.Warn("CANCEL for an INVITE of the previous process", "err", err)
	case res.StatusCode >= 300:
		// 481: the far end had answered or refused it already.
		log.Info("CANCEL for an INVITE of the previous process refused", "status", res.StatusCode)
	default:
		log.Info("cancelled the unanswered INVITE of a call the previous process held")
	}
}
