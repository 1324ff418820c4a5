package sipgw

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// dialog is one side of a SIP dialog (RFC 3261 §12): what in-dialog
// requests are built from and matched against. Its fields are guarded by
// the owning leg's mutex.
type dialog struct {
	callID     string
	localTag   string
	remoteTag  string
	local      sip.Uri // our URI: From of our requests
	localName  string
	remote     sip.Uri // the far end's URI: To of our requests
	remoteName string
	target     sip.Uri  // the far end's Contact: Request-URI of our requests
	routes     []string // route set (Record-Route), as Route header values
	transport  string   // UDP, TCP or TLS
	dest       string   // host:port our requests go to when there is no route set
	localSeq   uint32
	remoteSeq  uint32
}

// dialogRef is a confirmed dialog as a leg's callctl.LegRef keeps it:
// what a restarted node needs to end the dialog with a BYE (RFC 3261
// §12.2.1.1), the far end's view of it unchanged.
type dialogRef struct {
	CallID     string   `json:"callId"`
	LocalTag   string   `json:"localTag"`
	RemoteTag  string   `json:"remoteTag"`
	Local      string   `json:"local"`
	LocalName  string   `json:"localName,omitempty"`
	Remote     string   `json:"remote"`
	RemoteName string   `json:"remoteName,omitempty"`
	Target     string   `json:"target"`
	Routes     []string `json:"routes,omitempty"`
	Transport  string   `json:"transport"`
	Dest       string   `json:"dest"`
	LocalSeq   uint32   `json:"localSeq"`
}

// ref is d as a reference keeps it. The caller holds the leg's mutex.
func (d *dialog) ref() *dialogRef {
	return &dialogRef{
		CallID: d.callID, LocalTag: d.localTag, RemoteTag: d.remoteTag,
		Local: d.local.String(), LocalName: d.localName, Remote: d.remote.String(), RemoteName: d.remoteName,
		Target: d.target.String(), Routes: append([]string(nil), d.routes...),
		Transport: d.transport, Dest: d.dest, LocalSeq: d.localSeq,
	}
}

// dialog is the dialog r keeps.
func (r *dialogRef) dialog() (*dialog, error) {
	if r.CallID == "" || r.LocalTag == "" || r.RemoteTag == "" || r.Transport == "" {
		return nil, errors.New("the dialog lacks its Call-ID, a tag or its transport")
	}
	d := &dialog{callID: r.CallID, localTag: r.LocalTag, remoteTag: r.RemoteTag, localName: r.LocalName,
		remoteName: r.RemoteName, routes: r.Routes, transport: r.Transport, dest: r.Dest, localSeq: r.LocalSeq}
	for _, u := range []struct {
		s   string
		uri *sip.Uri
	}{{r.Local, &d.local}, {r.Remote, &d.remote}, {r.Target, &d.target}} {
		if err := sip.ParseUri(u.s, u.uri); err != nil {
			return nil, fmt.Errorf("the dialog's URI %q: %w", u.s, err)
		}
	}
	return d, nil
}

func dialogKey(callID, localTag, remoteTag string) string {
	return callID + "\x00" + localTag + "\x00" + remoteTag
}

func (d *dialog) key() string { return dialogKey(d.callID, d.localTag, d.remoteTag) }

// requestKey is the key of the dialog a request from the far end belongs
// to: its To tag is ours, its From tag theirs.
func requestKey(req *sip.Request) string {
	return dialogKey(callIDOf(req), toTag(req), fromTag(req))
}

func callIDOf(m interface{ CallID() *sip.CallIDHeader }) string {
	if h := m.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

func toTag(m interface{ To() *sip.ToHeader }) string {
	if h := m.To(); h != nil {
		t, _ := h.Params.Get("tag")
		return t
	}
	return ""
}

func fromTag(m interface{ From() *sip.FromHeader }) string {
	if h := m.From(); h != nil {
		t, _ := h.Params.Get("tag")
		return t
	}
	return ""
}

// dialog returns the leg whose dialog req belongs to.
func (g *Gateway) dialog(req *sip.Request) *Leg {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.dialogs[requestKey(req)]
}

func (g *Gateway) addDialog(key string, l *Leg) {
	g.mu.Lock()
	g.dialogs[key] = l
	g.mu.Unlock()
}

func (g *Gateway) removeDialog(key string, l *Leg) {
	g.mu.Lock()
	if g.dialogs[key] == l {
		delete(g.dialogs, key)
	}
	g.mu.Unlock()
}

// port is the port our Via and Contact name for a transport.
func (g *Gateway) port(transport string) int {
	if strings.EqualFold(transport, "TLS") && g.tlsPort != 0 {
		return g.tlsPort
	}
	if strings.EqualFold(transport, "WS") {
		if a := g.wsAddr.Load(); a != nil {
			return int(a.Port())
		}
	}
	return int(g.addr.Port())
}

// host is the address our Via and Contact name for a transport: the HTTP
// listener's for WebSocket (ws.go), else SIP's.
func (g *Gateway) host(transport string) string {
	if strings.EqualFold(transport, "WS") {
		if a := g.wsAddr.Load(); a != nil {
			return a.Addr().String()
		}
	}
	return g.addr.Addr().String()
}

// contact is our Contact for a transport: the address we actually listen
// on, so peers reach us without a Record-Route.
func (g *Gateway) contact(transport string) *sip.ContactHeader {
	u := sip.Uri{Scheme: "sip", User: "switchboard", Host: g.host(transport), Port: g.port(transport)}
	if t := strings.ToLower(transport); t != "udp" && t != "" {
		u.UriParams = sip.NewParams()
		u.UriParams.Add("transport", t)
	}
	return &sip.ContactHeader{Address: u}
}

func (g *Gateway) via(transport string) *sip.ViaHeader {
	v := &sip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: strings.ToUpper(transport),
		Host: g.host(transport), Port: g.port(transport), Params: sip.NewParams()}
	v.Params.Add("branch", sip.GenerateBranchN(16))
	v.Params.Add("rport", "")
	return v
}

// newRequest builds an in-dialog request (RFC 3261 §12.2.1.1). The caller
// holds the leg's mutex.
func (g *Gateway) newRequest(d *dialog, method sip.RequestMethod) *sip.Request {
	req := sip.NewRequest(method, *d.target.Clone())
	req.AppendHeader(g.via(d.transport))
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	from := &sip.FromHeader{DisplayName: d.localName, Address: *d.local.Clone(), Params: sip.NewParams()}
	from.Params.Add("tag", d.localTag)
	req.AppendHeader(from)
	to := &sip.ToHeader{DisplayName: d.remoteName, Address: *d.remote.Clone(), Params: sip.NewParams()}
	if d.remoteTag != "" {
		to.Params.Add("tag", d.remoteTag)
	}
	req.AppendHeader(to)
	cid := sip.CallIDHeader(d.callID)
	req.AppendHeader(&cid)
	if method != sip.ACK && method != sip.CANCEL {
		d.localSeq++
	}
	req.AppendHeader(&sip.CSeqHeader{SeqNo: d.localSeq, MethodName: method})
	for _, r := range d.routes {
		req.AppendHeader(sip.NewHeader("Route", r))
	}
	if method == sip.INVITE || method == sip.UPDATE {
		req.AppendHeader(g.contact(d.transport))
	}
	req.AppendHeader(sip.NewHeader("User-Agent", "Switchboard"))
	req.SetTransport(d.transport)
	req.SetDestination(d.dest)
	if len(d.routes) > 0 {
		var rh sip.Uri
		if err := sip.ParseUri(strings.Trim(strings.SplitN(d.routes[0], ";", 2)[0], "<> "), &rh); err == nil {
			req.SetDestination(hostPort(rh, d.transport))
		}
	}
	req.SetBody(nil)
	return req
}

// hostPort is where a URI points, with the transport's default port.
func hostPort(u sip.Uri, transport string) string {
	p := u.Port
	if p == 0 {
		p = sip.DefaultPort(transport)
	}
	host := u.Host
	if strings.Contains(host, ":") && !strings.HasPrefix(host, "[") {
		host = "[" + host + "]"
	}
	return host + ":" + strconv.Itoa(p)
}

// transportOf is the transport a URI asks for (RFC 3263 without DNS):
// its transport parameter, TLS for sips, else the fallback.
func transportOf(u sip.Uri, fallback string) string {
	if t, ok := u.UriParams.Get("transport"); ok && t != "" {
		return strings.ToUpper(t)
	}
	if u.Scheme == "sips" {
		return "TLS"
	}
	if fallback == "" {
		return "UDP"
	}
	return strings.ToUpper(fallback)
}

// prepare makes a request leave from our listener over UDP, so the far end
// sees (and answers to) the port we advertise.
func (g *Gateway) prepare(_ *sipgo.Client, req *sip.Request) error {
	if sip.NetworkToLower(req.Transport()) == "udp" {
		g.laddr.Copy(&req.Laddr)
	}
	return nil
}

// ownRequest marks the contexts of requests the gateway sends itself: only
// those may open connections or resolve names.
//
// sipgo answers a request whose TCP connection has gone by resolving the
// Via host and connecting to it (RFC 3261 §18.2.2 asks for the source
// address instead): an open relay for connection attempts, and DNS queries
// driven by whoever sends us a request. Its dialer and resolver hooks see
// only the context of the dial, so the context carries the permission; this
// is the one place Switchboard steers by a context value.
type ownRequest struct{}

var errNoDial = errors.New("sipgw: no new connection for a response: the request's connection is gone")

func markOwn(ctx context.Context) context.Context { return context.WithValue(ctx, ownRequest{}, true) }

func isOwn(ctx context.Context) bool { return ctx.Value(ownRequest{}) != nil }

// dialer is sipgo's TCP and TLS dialer with that rule.
func dialer(laddr net.Addr) net.Dialer {
	return net.Dialer{Timeout: 10 * time.Second, LocalAddr: laddr,
		ControlContext: func(ctx context.Context, _, _ string, _ syscall.RawConn) error {
			if !isOwn(ctx) {
				return errNoDial
			}
			return nil
		}}
}

// resolver is sipgo's DNS resolver with that rule.
func resolver() *net.Resolver {
	return &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, network, address string) (net.Conn, error) {
		if !isOwn(ctx) {
			return nil, errNoDial
		}
		var d net.Dialer
		return d.DialContext(ctx, network, address)
	}}
}

// send starts a client transaction for a fully built request.
func (g *Gateway) send(ctx context.Context, req *sip.Request) (sip.ClientTransaction, error) {
	return g.cli.TransactionRequest(markOwn(ctx), req, g.prepare)
}

// write sends a request outside any transaction (an ACK for a 2xx). sipgo
// writes those without a context, so a connection is opened first.
func (g *Gateway) write(req *sip.Request) error {
	if sip.IsReliable(sip.NetworkToLower(req.Transport())) {
		ctx, cancel := context.WithTimeout(markOwn(g.runCtx), 10*time.Second)
		c, err := g.ua.TransportLayer().ClientRequestConnection(ctx, req)
		cancel()
		if err != nil {
			return err
		}
		_, _ = c.TryClose()
	}
	return g.cli.WriteRequest(req, g.prepare)
}

// do sends a request and waits for its final response.
func (g *Gateway) do(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	tx, err := g.send(ctx, req)
	if err != nil {
		return nil, err
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			return res, nil
		case <-tx.Done():
			if err := tx.Err(); err != nil {
				return nil, err
			}
			return nil, fmt.Errorf("%s: transaction ended without a response", req.Method)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// reachable returns the address to send a request to the far end at: its
// connection's source when the transport is connection-oriented and that
// connection is still open (the far end may not listen where it says, RFC
// 5626 §5.3), else where its Contact points.
func (g *Gateway) reachable(transport, source string, contact sip.Uri) string {
	if t := sip.NetworkToLower(transport); t != "udp" && source != "" {
		if c, err := g.ua.TransportLayer().GetConnection(t, source); err == nil && c != nil {
			_, _ = c.TryClose() // GetConnection took a reference
			return source
		}
	}
	return hostPort(contact, transport)
}
