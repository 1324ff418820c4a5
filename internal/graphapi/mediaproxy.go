package graphapi

import (
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/errs"
)

// A media socket lives on the node that carries its call: the socket
// relays the call's audio to and from that node's media engine. Behind an
// HTTP balancer a bot's upgrade lands on any node, so a node that does not
// carry the call checks the request as its owner would (token, permission,
// the call's application and media), then hands the upgrade to the
// owner's HTTP listener, whose address the owner publishes in its claim in
// sb_nodes, and relays the socket's bytes both ways
// (httputil.ReverseProxy, which follows the 101 Switching Protocols with a
// copy in each direction). The owner checks the request again: the proxy
// grants nothing. The proxied request is marked with proxiedHeader, and a
// node that finds it does not proxy again: if ownership moved meanwhile
// (the owner was lost and its calls are ending), the bot gets 503 and
// reconnects, rather than the request going round the nodes.
const proxiedHeader = "Switchboard-Proxied-By"

// Bounds on reaching the owner: its address answers within dialTimeout
// (a node on the same network), and its handshake within headerTimeout.
const (
	proxyDialTimeout   = 3 * time.Second
	proxyHeaderTimeout = 10 * time.Second
)

// nodeTransport is the transport of proxied media sockets. A node with
// http.tlsCert serves TLS to the other nodes too, under the certificate
// of the public name the balancer presents, so that is the name verified.
func nodeTransport(publicURL string) *http.Transport {
	t := &http.Transport{
		Proxy:                 nil, // node to node, never through an HTTP proxy
		DialContext:           (&net.Dialer{Timeout: proxyDialTimeout, KeepAlive: 30 * time.Second}).DialContext,
		TLSHandshakeTimeout:   proxyDialTimeout,
		ResponseHeaderTimeout: proxyHeaderTimeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       time.Minute,
	}
	if u, err := url.Parse(publicURL); err == nil && u.Scheme == "https" {
		t.TLSClientConfig = &tls.Config{ServerName: u.Hostname(), MinVersion: tls.VersionTLS12}
	}
	return t
}

// proxyMedia hands the media socket request r, which passed every check
// but that its call is carried by another node, to that node. When the
// owner cannot be reached it answers 503 with a Graph error body: the bot
// retries (the SDK's MediaSocket reconnects).
func (s *Server) proxyMedia(w http.ResponseWriter, r *http.Request, away *callctl.Elsewhere) {
	unreachable := func(err error) {
		s.log.Warn("media socket: the call's node cannot be reached", "call", away.CallID, "owner", away.Node, "err", err)
		s.writeError(w, r, errs.Wrap(errs.Unavailable, err,
			"Call %s is carried by another Switchboard node (%s), which cannot be reached to open its media socket; try again.", away.CallID, away.Node))
	}
	base, err := s.o.NodeURL(r.Context(), away.Node)
	if err != nil {
		unreachable(err)
		return
	}
	target, err := url.Parse(base)
	if err != nil || target.Host == "" {
		unreachable(errs.E(errs.Internal, "node %s advertises %q", away.Node, base))
		return
	}
	// The owner stamps its own request ids on the handshake's answer.
	rid, crid := w.Header().Get("request-id"), w.Header().Get("client-request-id")
	w.Header().Del("request-id")
	w.Header().Del("client-request-id")
	p := &httputil.ReverseProxy{
		Rewrite: func(pr *httputil.ProxyRequest) {
			pr.SetURL(target)
			pr.Out.Header["X-Forwarded-For"] = pr.In.Header["X-Forwarded-For"]
			pr.SetXForwarded()
			pr.Out.Header.Set(proxiedHeader, s.o.Node)
		},
		Transport: s.nodes,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			w.Header().Set("request-id", rid)
			w.Header().Set("client-request-id", crid)
			unreachable(err)
		},
		ErrorLog: s.errorLog,
	}
	p.ServeHTTP(w, r)
}
