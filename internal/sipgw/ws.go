package sipgw

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
)

// SIP over WebSocket (RFC 7118), the signalling of browser softphones
// (JsSIP, SIP.js), served on the node's HTTP listener at WSPath rather than
// on a port of its own: a browser page reaches the node at one origin, and
// HTTPS (http.tlsCert) gives wss:// for free. sipgo's WebSocket transport
// only serves a net.Listener and upgrades each connection itself, so the
// HTTP handler checks the upgrade, hijacks the connection and hands it to
// sipgo through an in-memory listener with the request bytes put back in
// front, for sipgo's upgrader to read as if it came off the wire. From
// there a WebSocket connection is one more SIP transport: the same digest
// users, registrar (bindings stored with transport WS and the connection's
// address) and routing; requests to a browser go back over its connection.

// WSPath is where the node serves SIP over WebSocket.
const WSPath = "/sip/ws"

// ServeWebSocket upgrades a request for WSPath to SIP over WebSocket. A
// request that is not a WebSocket upgrade offering the "sip" subprotocol
// gets 400 (426 without an upgrade); a gateway not serving, 503; a source
// address over its limits (sip.ws, wslimit.go), 429.
func (g *Gateway) ServeWebSocket(w http.ResponseWriter, r *http.Request) {
	if !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") || !headerHas(r.Header, "Connection", "upgrade") {
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Sec-WebSocket-Protocol", "sip")
		http.Error(w, "SIP over WebSocket (RFC 7118): open a WebSocket with the subprotocol \"sip\"", http.StatusUpgradeRequired)
		return
	}
	if !headerHas(r.Header, "Sec-WebSocket-Protocol", "sip") {
		http.Error(w, "the WebSocket subprotocol must be \"sip\" (RFC 7118)", http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	ln := g.wsl
	ok := g.serving && !g.closing && ln != nil
	g.mu.Unlock()
	if !ok {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "SIP is not serving", http.StatusServiceUnavailable)
		return
	}
	hj, isHJ := w.(http.Hijacker)
	if !isHJ {
		http.Error(w, "this connection cannot be upgraded (HTTP/2?)", http.StatusHTTPVersionNotSupported)
		return
	}
	release, why, wait := g.wsLimit.admit(httpSource(r.RemoteAddr))
	if release == nil {
		w.Header().Set("Retry-After", retryAfter(wait))
		msg := "Too many SIP-over-WebSocket connections open from this address (sip.ws.maxConnsPerSource)."
		if why == wsRefusedRate {
			msg = "SIP-over-WebSocket connections opened too fast from this address (sip.ws.connsPerSecond); retry later."
		}
		http.Error(w, msg, http.StatusTooManyRequests)
		return
	}
	var head bytes.Buffer
	fmt.Fprintf(&head, "GET %s HTTP/1.1\r\nHost: %s\r\n", r.URL.RequestURI(), r.Host)
	_ = r.Header.Write(&head)
	head.WriteString("\r\n")
	conn, rw, err := hj.Hijack()
	if err != nil {
		release()
		g.log.Debug("sip over websocket: hijack", "err", err)
		return
	}
	// rw.Reader holds whatever the client sent after the request. The
	// source's slot is given back when sipgo (or we) close the connection.
	c := &replayConn{Conn: &limitedConn{Conn: conn, release: release}, r: io.MultiReader(&head, rw.Reader)}
	if !ln.push(c) {
		_ = c.Close()
	}
}

// SetWebSocketAddr names the HTTP listener serving WSPath: the Contact and
// Via of requests and responses over WebSocket point there (a browser
// sends everything over its one socket anyway; other clients may dial the
// Contact).
func (g *Gateway) SetWebSocketAddr(a netip.AddrPort) {
	if a.Addr().IsUnspecified() {
		a = netip.AddrPortFrom(g.addr.Addr(), a.Port())
	}
	g.wsAddr.Store(&a)
}

// headerHas reports whether a comma-separated header holds token.
func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// replayConn reads the upgrade request back before the connection's bytes.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(b []byte) (int, error) { return c.r.Read(b) }

// wsListener is the in-memory listener sipgo serves WebSocket connections
// from: hijacked HTTP connections are pushed into it.
type wsListener struct {
	addr   net.Addr
	conns  chan net.Conn
	done   chan struct{}
	closed sync.Once
}

func newWSListener(addr net.Addr) *wsListener {
	return &wsListener{addr: addr, conns: make(chan net.Conn), done: make(chan struct{})}
}

func (l *wsListener) push(c net.Conn) bool {
	select {
	case l.conns <- c:
		return true
	case <-l.done:
		return false
	}
}

func (l *wsListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.conns:
		return c, nil
	case <-l.done:
		return nil, net.ErrClosed
	}
}

func (l *wsListener) Close() error {
	l.closed.Do(func() { close(l.done) })
	return nil
}

func (l *wsListener) Addr() net.Addr { return l.addr }
