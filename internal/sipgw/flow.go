package sipgw

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Browser phones on another node. A browser's SIP-over-WebSocket
// connection (ws.go) lives on the one node its HTTP request reached, while
// its binding is in sb_registrations for every node to read. That node is
// the browser's edge proxy, the way RFC 5626 §5 edge proxies keep flows:
//
//   - A REGISTER over WebSocket is stored with a Path (RFC 3327) naming
//     the node's SIP address over TCP (sip.listen, which the other nodes
//     reach; TCP as a WebRTC offer is larger than UDP takes, RFC 3261
//     §18.1.1) and a flow token: the connection's address and its MAC
//     under a key the nodes derive from their shared secret (the guest
//     passes' key with a purpose of its own), so a forged Route cannot
//     make a node relay to a connection of its choosing.
//   - Another node calls the browser as it calls a phone behind Kamailio:
//     the INVITE goes to the Path with the Path as its Route set
//     (outbound.go), with a WebRTC offer, as the binding's transport is WS;
//     the media then flows between the browser and that node directly.
//   - The edge node, finding itself with a flow token as the top Route,
//     takes its Route off, record-routes (twice: its WebSocket address
//     towards the browser, its SIP address towards the node, as a proxy
//     between transports does, RFC 5658 §4), and relays the request over the
//     connection, and the responses back: a transaction of its own each
//     way (an INVITE's CANCEL included), and ACKs for 2xx as they come.
//     What the browser sends in that dialog comes back over the
//     connection with the same Route and is relayed to the node that sent
//     the INVITE (its address, its Contact's port), never to an address
//     the browser chose.
//   - The node itself calls its own browsers over their connections, as
//     before (ownFlow). A calling node told 430 drops the binding
//     (forgetFlow).
//
// The relay runs on sipgo's goroutine for each request and holds a map
// entry per relayed dialog (Gateway.relays), bounded; nothing survives the
// node, as nothing can: the connections die with it. A draining node
// relays on: its browsers have no other way until their WebSockets move.

// flowParam is the URI parameter carrying a flow token in our Path and
// Record-Route values.
const flowParam = "sb-flow"

// maxRelayDialogs bounds the dialogs a node relays for its browsers.
const maxRelayDialogs = 4096

// flowProbe is how often a relay waiting for a browser's answer looks
// at its connection.
const flowProbe = time.Second

// relayInviteTimeout bounds a relayed INVITE waiting for its final
// response (RFC 3261 §16.6 Timer C is 3 minutes at least); the calling node
// cancels one that rings for too long well before.
const relayInviteTimeout = 3 * time.Minute

// relayDialog is a dialog the node relays between a browser's flow and
// the node that called it.
type relayDialog struct {
	flow      string // the browser's connection: its remote address over WS
	upstream  string // the calling node: the INVITE's source address, its Contact's port
	transport string // and its transport
}

// relayTable holds the relayed dialogs, keyed by Call-ID.
type relayTable struct {
	mu sync.Mutex
	m  map[string]relayDialog
}

// flowToken is the token naming the WebSocket connection at addr.
func (g *Gateway) flowToken(addr string) string {
	a := base64.RawURLEncoding.EncodeToString([]byte(addr))
	return a + "." + g.guests.Password("flow|"+g.addr.String()+"|"+a)
}

// checkFlow returns the connection address a token of this node names.
func (g *Gateway) checkFlow(token string) (string, bool) {
	a, mac, ok := strings.Cut(token, ".")
	if !ok || subtle.ConstantTimeCompare([]byte(mac), []byte(g.guests.Password("flow|"+g.addr.String()+"|"+a))) != 1 {
		return "", false
	}
	addr, err := base64.RawURLEncoding.DecodeString(a)
	if err != nil {
		return "", false
	}
	return string(addr), true
}

// flowRoute is our route value carrying token, over transport: the SIP
// listener's address (TCP), or the HTTP listener's (WS).
func (g *Gateway) flowRoute(transport, token string) string {
	u := sip.Uri{Scheme: "sip", Host: g.host(transport), Port: g.port(transport), UriParams: sip.NewParams()}
	u.UriParams.Add("transport", strings.ToLower(transport))
	u.UriParams.Add("lr", "")
	u.UriParams.Add(flowParam, token)
	return "<" + u.String() + ">"
}

// isSelf reports whether u names this node's SIP or WebSocket address.
func (g *Gateway) isSelf(u sip.Uri) bool {
	ip, err := netip.ParseAddr(strings.Trim(u.Host, "[]"))
	if err != nil {
		return false
	}
	ap := netip.AddrPortFrom(ip.Unmap(), uint16(u.Port))
	if ap == g.addr {
		return true
	}
	ws := g.wsAddr.Load()
	return ws != nil && ap == *ws
}

// ownFlow reports whether a Path value is one of this node's flows: its
// browser is called over the connection directly.
func (g *Gateway) ownFlow(path string) bool {
	u, ok := routeURI(path)
	return ok && u.UriParams.Has(flowParam) && g.isSelf(u)
}

// routeURI is the URI of a Route, Record-Route or Path value: a
// name-addr's URI, parameters (transport, lr) included, is inside the <>;
// a bare one ends at the first ';' (RFC 3261 §20.10).
func routeURI(v string) (sip.Uri, bool) {
	v = strings.TrimSpace(v)
	if strings.HasPrefix(v, "<") {
		if end := strings.IndexByte(v, '>'); end > 0 {
			v = v[1:end]
		}
	} else {
		v = strings.SplitN(v, ";", 2)[0]
	}
	var u sip.Uri
	if err := sip.ParseUri(v, &u); err != nil {
		return sip.Uri{}, false
	}
	return u, true
}

// relay takes a request whose top Route is this node with a flow token and
// relays it; it reports whether it did (else the request is the node's
// own to handle).
func (g *Gateway) relay(req *sip.Request, tx sip.ServerTransaction) bool {
	if req.Method == sip.REGISTER {
		return false
	}
	rt := req.Route()
	if rt == nil {
		return false
	}
	token, ok := rt.Address.UriParams.Get(flowParam)
	if !ok || !g.isSelf(rt.Address) {
		return false
	}
	flow, ok := g.checkFlow(token)
	if !ok {
		g.log.Info("sip relay: a Route with a flow token this node did not issue", "method", req.Method, "source", req.Source())
		g.authFailed(req) // a forged token is a guessed credential
		if !req.IsAck() {
			g.respond(tx, req, 403, "Forbidden (flow token)")
		}
		return true
	}
	if g.isClosing() {
		if !req.IsAck() {
			g.respond(tx, req, 503, "Service Unavailable", sip.NewHeader("Retry-After", "5"))
		}
		return true
	}
	// RFC 3261 §16.4: our own Route values go (both of a double
	// record-route).
	for r := req.Route(); r != nil && r.Address.UriParams.Has(flowParam) && g.isSelf(r.Address); r = req.Route() {
		req.RemoveHeader("Route")
	}
	if mf := req.MaxForwards(); mf != nil {
		if *mf <= 1 {
			if !req.IsAck() {
				g.respond(tx, req, 483, "Too Many Hops")
			}
			return true
		}
	}
	fwd := req.Clone()
	if mf := fwd.MaxForwards(); mf != nil {
		*mf--
	} else {
		m := sip.MaxForwardsHeader(70)
		fwd.AppendHeader(&m)
	}
	fwd.Laddr = sip.Addr{}
	callID := callIDOf(req)
	t := strings.ToUpper(req.Transport())
	if t == "WS" || t == "WSS" {
		// From a browser: only within a dialog relayed for that very
		// connection, and only to the node that called it.
		d, ok := g.relays.get(callID)
		if !ok || d.flow != req.Source() {
			if !req.IsAck() {
				g.respond(tx, req, 481, "Call/Transaction Does Not Exist")
			}
			return true
		}
		fwd.PrependHeader(g.via(d.transport))
		fwd.SetTransport(d.transport)
		fwd.SetDestination(d.upstream)
		g.forward(req, fwd, tx, callID, "", nil)
		return true
	}
	// Towards the browser, over its connection if it is still open: never
	// a new one (RFC 5626 §5.3: 430 when the flow is gone).
	c, err := g.ua.TransportLayer().GetConnection("ws", flow)
	if err != nil || c == nil {
		if !req.IsAck() {
			g.respond(tx, req, 430, "Flow Failed")
		}
		return true
	}
	_, _ = c.TryClose() // GetConnection took a reference
	fwd.PrependHeader(g.via("WS"))
	var created *relayDialog
	if req.IsInvite() && toTag(req) == "" {
		ct := req.Contact()
		if ct == nil || ct.Address.Host == "" {
			g.respond(tx, req, 400, "Bad Request (no Contact)")
			return true
		}
		fwd.PrependHeader(sip.NewHeader("Record-Route", g.flowRoute("TCP", token)))
		fwd.PrependHeader(sip.NewHeader("Record-Route", g.flowRoute("WS", token)))
		// The browser's requests go to the calling node's Contact port
		// at the address the INVITE came from: whoever holds a token
		// cannot point them at a third party.
		tr := transportOf(ct.Address, "UDP")
		host := ct.Address.Host
		if src, ok := sourceOf(req); ok {
			host = src.String()
		}
		up := hostPort(sip.Uri{Host: host, Port: ct.Address.Port}, tr)
		created = &relayDialog{flow: flow, upstream: up, transport: tr}
		if !g.relays.add(callID, *created, g.flowOpen) {
			g.respond(tx, req, 503, "Service Unavailable (too many relayed dialogs)", sip.NewHeader("Retry-After", "5"))
			return true
		}
	}
	fwd.SetTransport("WS")
	fwd.SetDestination(flow)
	g.forward(req, fwd, tx, callID, flow, created)
	return true
}

// flowOpen reports whether a browser's connection is still open.
func (g *Gateway) flowOpen(addr string) bool {
	c, err := g.ua.TransportLayer().GetConnection("ws", addr)
	if err != nil || c == nil {
		return false
	}
	_, _ = c.TryClose()
	return true
}

// forward sends fwd, the relayed copy of req, and relays its responses
// back on tx until the final one. An ACK is written as it is. flow is the
// browser's connection when fwd goes to it: while it waits, the
// connection is looked at every flowProbe, and its closing (a write can
// succeed on a connection the browser has just closed) answers 430 at
// once rather than after the transaction's timeout. created is the dialog
// entry an initial INVITE added: it goes unless a 2xx confirms it. A BYE
// answered ends the dialog's entry.
func (g *Gateway) forward(req, fwd *sip.Request, tx sip.ServerTransaction, callID, flow string, created *relayDialog) {
	if req.IsAck() {
		if err := g.write(fwd); err != nil {
			g.log.Debug("sip relay: ACK", "call-id", callID, "err", err)
		}
		return
	}
	wait := 64 * g.t1
	if req.IsInvite() {
		wait = relayInviteTimeout
		g.respond(tx, req, 100, "Trying")
	}
	ctx, cancel := context.WithTimeout(g.runCtx, wait)
	defer cancel()
	ctl, err := g.send(ctx, fwd)
	if err != nil {
		if created != nil {
			g.relays.remove(callID)
		}
		g.log.Info("sip relay: not sent", "method", req.Method, "call-id", callID, "to", fwd.Destination(), "err", err)
		g.respond(tx, req, 430, "Flow Failed")
		return
	}
	defer ctl.Terminate()
	var cancelled chan struct{}
	if req.IsInvite() {
		cancelled = make(chan struct{})
		var once sync.Once
		// sipgo has answered the CANCEL (200) and the INVITE (487)
		// already; the browser's INVITE is cancelled in turn.
		tx.OnCancel(func(*sip.Request) { once.Do(func() { close(cancelled) }) })
	}
	var probe <-chan time.Time
	if flow != "" {
		tk := time.NewTicker(flowProbe)
		defer tk.Stop()
		probe = tk.C
	}
	final := func(code int) {
		if created != nil && (code < 200 || code >= 300) {
			g.relays.remove(callID)
		}
		if req.Method == sip.BYE && code >= 200 {
			g.relays.remove(callID)
		}
	}
	for {
		select {
		case res := <-ctl.Responses():
			if res.StatusCode == 100 && req.IsInvite() {
				continue // ours went already (RFC 3261 §16.7 step 5)
			}
			out := res.Clone()
			out.RemoveHeader("Via") // ours (§16.7 step 3)
			out.SetTransport(req.Transport())
			out.SetDestination(req.Source())
			if err := tx.Respond(out); err != nil {
				g.log.Debug("sip relay: response", "status", res.StatusCode, "call-id", callID, "err", err)
			}
			if res.StatusCode >= 200 {
				final(res.StatusCode)
				return
			}
		case <-cancelled:
			cancelled = nil
			g.goTracked(func() { g.cancelRelayed(fwd, callID) })
		case <-probe:
			if g.flowOpen(flow) {
				continue
			}
			final(0)
			if !req.IsInvite() || cancelled != nil {
				g.respond(tx, req, 430, "Flow Failed")
			}
			return
		case <-ctl.Done():
			final(0)
			switch {
			case req.IsInvite() && cancelled == nil:
				// cancelled: the 487 went
			case flow != "" && errors.Is(ctl.Err(), sip.ErrTransactionTransport):
				g.respond(tx, req, 430, "Flow Failed")
			default:
				g.respond(tx, req, 408, "Request Timeout")
			}
			return
		case <-ctx.Done():
			final(0)
			if cancelled != nil || !req.IsInvite() {
				g.respond(tx, req, 408, "Request Timeout")
			}
			return
		}
	}
}

// cancelRelayed cancels a relayed INVITE (RFC 3261 §16.10): a CANCEL of
// our own, built from the INVITE we sent (§9.1).
func (g *Gateway) cancelRelayed(inv *sip.Request, callID string) {
	c := cancelOf(inv)
	c.SetDestination(inv.Destination())
	ctx, cancel := context.WithTimeout(g.runCtx, 64*g.t1)
	defer cancel()
	if _, err := g.do(ctx, c); err != nil {
		g.log.Debug("sip relay: CANCEL", "call-id", callID, "err", err)
	}
}

func (t *relayTable) has(callID string) bool {
	_, ok := t.get(callID)
	return ok
}

func (t *relayTable) get(callID string) (relayDialog, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	d, ok := t.m[callID]
	return d, ok
}

// add records a dialog; when the table is full, the entries whose flows
// have closed go first (open tells). It reports false when it stays full.
func (t *relayTable) add(callID string, d relayDialog, open func(string) bool) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]relayDialog{}
	}
	if _, ok := t.m[callID]; !ok && len(t.m) >= maxRelayDialogs {
		for k, v := range t.m {
			if !open(v.flow) {
				delete(t.m, k)
			}
		}
		if len(t.m) >= maxRelayDialogs {
			return false
		}
	}
	t.m[callID] = d
	return true
}

func (t *relayTable) remove(callID string) {
	t.mu.Lock()
	delete(t.m, callID)
	t.mu.Unlock()
}

// len is the number of relayed dialogs.
func (t *relayTable) len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// forgetFlow drops the binding a branch reached through another node's
// flow when that node answered 430 (RFC 5626 §5.3): the browser's
// WebSocket is gone, and later calls need not try it until the browser
// registers again. Only the binding with that very Path goes: the browser
// may have registered anew, with the same Contact and a new flow,
// meanwhile.
func (b *branch) forgetFlow() {
	routes := b.req.GetHeaders("Route")
	if len(routes) == 0 {
		return
	}
	first := routes[0].Value()
	if u, ok := routeURI(first); !ok || !u.UriParams.Has(flowParam) {
		return
	}
	g := b.l.g
	user, key := b.req.To().Address.User, contactKey(b.req.Recipient)
	ctx, cancel := context.WithTimeout(g.runCtx, 5*time.Second)
	defer cancel()
	if _, err := g.updateAOR(ctx, user, func(r *aorRecord) {
		r.Bindings = slices.DeleteFunc(r.Bindings, func(x binding) bool {
			return len(x.Path) > 0 && x.Path[0] == first && contactKeyOf(x.Contact) == key
		})
	}); err != nil {
		b.l.lg().Info("the binding of a failed flow stays", "user", user, "err", err)
	}
}
