package sipgw

import (
	"net/netip"

	"github.com/emiago/sipgo/sip"
)

// Nodes behind a SIP proxy (sip.proxies: Kamailio in front of several
// nodes, docs/deploy.md). Every request then arrives from the proxy's
// address, so what Switchboard decides by a request's source (is it a
// trunk, is it over its rate, is it banned for guessing passwords) is
// decided by the address the proxy received it from instead: the sent-by
// of the Via below the proxy's, corrected by its received and rport
// parameters (RFC 3261 §18.2.1, RFC 3581 §4), which the proxy adds. Only
// configured proxies are believed: anyone else's Vias are their own to
// write.

// isProxy reports whether ip is one of sip.proxies. The list is short and
// already validated; it is read per request outside the media path.
func (g *Gateway) isProxy(ip netip.Addr) bool {
	for _, a := range g.cfg.SIP.Proxies {
		p, err := netip.ParsePrefix(a)
		if err != nil {
			ip, err := netip.ParseAddr(a)
			if err != nil {
				continue
			}
			p = netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen())
		}
		if p.Masked().Contains(ip) {
			return true
		}
	}
	return false
}

// origin is the address req came from: for a request a proxy relayed, the
// address the proxy received it from; proxied reports whether it came
// through (or from) a proxy. A proxy's own request (an OPTIONS probe, a
// single Via) is its own origin.
func (g *Gateway) origin(req *sip.Request) (addr netip.Addr, proxied bool, ok bool) {
	src, ok := sourceOf(req)
	if !ok || len(g.cfg.SIP.Proxies) == 0 || !g.isProxy(src) {
		return src, false, ok
	}
	vias := req.GetHeaders("Via")
	if len(vias) < 2 {
		return src, true, true
	}
	v, isVia := vias[1].(*sip.ViaHeader)
	if !isVia {
		return src, true, true
	}
	host := v.Host
	if r, ok := v.Params.Get("received"); ok && r != "" {
		host = r
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		// A sent-by that is a name and no received: the proxy saw it
		// come from that very address, which we cannot know.
		return src, true, true
	}
	return ip.Unmap(), true, true
}

// callerTrunk is the trunk an INVITE comes from: the one whose allowFrom
// holds its origin. A proxy is never a trunk by its own address.
func (g *Gateway) callerTrunk(req *sip.Request) *trunk {
	ip, proxied, ok := g.origin(req)
	if !ok {
		return nil
	}
	if proxied && g.isProxy(ip) {
		return nil
	}
	return g.trunkFrom(ip)
}
