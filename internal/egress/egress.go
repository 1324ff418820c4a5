// Package egress is the allow-list for Switchboard's own outbound HTTP:
// webhook POSTs to bots now, prompt fetches later. It is configured from
// config.Outbound.Allow.
//
// The policy is enforced where it cannot be bypassed: in the dialer's
// Control function, which sees every address the resolver returned and the
// dialer actually tries, after DNS. A host name that resolves (or later
// re-resolves, as in DNS rebinding) to a forbidden address is refused at
// connect time, whatever the URL said. Host-name entries in the list are
// the one deliberate exception: a URL whose host is such a name is trusted
// by name, and its connections are not checked by address.
//
// A Policy is immutable and safe for concurrent use.
package egress

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"syscall"
	"time"

	"github.com/switchboard-voice/switchboard/internal/errs"
)

// ErrDenied is the cause of every error the policy returns for a forbidden
// address; test with errors.Is. The error itself is an *errs.Error of kind
// errs.Forbidden that names the address.
var ErrDenied = errors.New("egress: address not in outbound.allow")

// Policy decides which addresses the server may connect to.
type Policy struct {
	all      bool                // the list was empty: everything is allowed
	prefixes []netip.Prefix      // CIDR and IP entries (IPs as /32 or /128)
	hosts    map[string]struct{} // exact host names, lower case, no trailing dot
	suffixes []string            // "*.example.com" entries as ".example.com"
}

// NewPolicy parses allow. Each entry is a CIDR ("127.0.0.0/8",
// "fd00::/8"), an IP address, a host name ("bot.example.com") or a
// wildcard host name ("*.example.com", which matches subdomains but not
// example.com itself). An empty list allows everything.
func NewPolicy(allow []string) (*Policy, error) {
	p := &Policy{all: len(allow) == 0, hosts: map[string]struct{}{}}
	var bad []error
	for _, entry := range allow {
		e := strings.TrimSpace(entry)
		if pfx, err := netip.ParsePrefix(e); err == nil {
			p.prefixes = append(p.prefixes, unmapPrefix(pfx).Masked())
			continue
		}
		if a, err := netip.ParseAddr(e); err == nil {
			a = a.Unmap().WithZone("")
			p.prefixes = append(p.prefixes, netip.PrefixFrom(a, a.BitLen()))
			continue
		}
		h := normalizeHost(e)
		if rest, ok := strings.CutPrefix(h, "*."); ok && validHostName(rest) {
			p.suffixes = append(p.suffixes, "."+rest)
			continue
		}
		if !validHostName(h) {
			bad = append(bad, fmt.Errorf("egress: allow entry %q is neither a CIDR, an IP nor a host name", entry))
			continue
		}
		p.hosts[h] = struct{}{}
	}
	if err := errors.Join(bad...); err != nil {
		return nil, err
	}
	return p, nil
}

// unmapPrefix turns an IPv4-mapped IPv6 prefix (::ffff:10.0.0.0/104) into
// its IPv4 form, so that it matches the unmapped addresses Check compares.
func unmapPrefix(p netip.Prefix) netip.Prefix {
	a := p.Addr()
	if a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}

// Check returns nil when ip may be contacted, else an errs.Forbidden error
// that names ip and wraps ErrDenied. A nil Policy allows everything.
func (p *Policy) Check(ip net.IP) error {
	if p == nil || p.all {
		return nil
	}
	a, ok := netip.AddrFromSlice(ip)
	if !ok {
		return errs.Wrap(errs.Forbidden, ErrDenied, "outbound connection to invalid address %q is not allowed", ip.String())
	}
	return p.checkAddr(a.Unmap())
}

func (p *Policy) checkAddr(a netip.Addr) error {
	for _, pfx := range p.prefixes {
		if pfx.Contains(a) {
			return nil
		}
	}
	return errs.Wrap(errs.Forbidden, ErrDenied, "outbound connection to %s is not allowed by outbound.allow", a)
}

// allowsHost reports whether host is allowed by a host-name entry.
func (p *Policy) allowsHost(host string) bool {
	if p == nil || p.all {
		return true
	}
	h := normalizeHost(host)
	if _, ok := p.hosts[h]; ok {
		return true
	}
	for _, s := range p.suffixes {
		if strings.HasSuffix(h, s) {
			return true
		}
	}
	return false
}

// control is the dialer's Control function: it runs for every address the
// dialer tries, after name resolution, before connect(2).
func (p *Policy) control(_, address string, _ syscall.RawConn) error {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return errs.Wrap(errs.Forbidden, ErrDenied, "outbound connection to %q is not allowed", address)
	}
	a, err := netip.ParseAddr(host)
	if err != nil {
		return errs.Wrap(errs.Forbidden, ErrDenied, "outbound connection to %q is not allowed", address)
	}
	return p.checkAddr(a.Unmap().WithZone(""))
}

// Dialer timeouts and idle-connection limits of Client. Many calls of one
// bot POST to the same host concurrently, so the per-host idle pool is far
// larger than net/http's default of 2.
const (
	dialTimeout         = 10 * time.Second
	keepAlive           = 30 * time.Second
	maxIdleConns        = 1024
	maxIdleConnsPerHost = 64
	idleConnTimeout     = 90 * time.Second
	tlsHandshakeTimeout = 10 * time.Second
	maxResponseHeader   = 64 << 10
)

// Client returns a new HTTP client whose connections obey the policy.
// timeout bounds each request (0: no limit). The client ignores proxy
// settings from the environment (a proxy would make the dialed address
// meaningless) and follows redirects as net/http does; every hop's
// connection is checked. The caller owns the client and may call
// CloseIdleConnections when done.
func (p *Policy) Client(timeout time.Duration) *http.Client {
	checked := &net.Dialer{Timeout: dialTimeout, KeepAlive: keepAlive}
	if p != nil && !p.all {
		checked.Control = p.control
	}
	trusted := &net.Dialer{Timeout: dialTimeout, KeepAlive: keepAlive}
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, err := net.SplitHostPort(addr)
		if err == nil && p != nil && !p.all {
			if _, ipErr := netip.ParseAddr(host); ipErr != nil && p.allowsHost(host) {
				return trusted.DialContext(ctx, network, addr)
			}
		}
		return checked.DialContext(ctx, network, addr)
	}
	tr := &http.Transport{
		Proxy:                  nil,
		DialContext:            dial,
		ForceAttemptHTTP2:      true,
		MaxIdleConns:           maxIdleConns,
		MaxIdleConnsPerHost:    maxIdleConnsPerHost,
		IdleConnTimeout:        idleConnTimeout,
		TLSHandshakeTimeout:    tlsHandshakeTimeout,
		ExpectContinueTimeout:  time.Second,
		MaxResponseHeaderBytes: maxResponseHeader,
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

func normalizeHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(h), ".")
}

// validHostName accepts DNS names made of letters, digits, '-' and '_'
// labels separated by dots.
func validHostName(h string) bool {
	if h == "" || len(h) > 253 {
		return false
	}
	for label := range strings.SplitSeq(h, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, c := range label {
			switch {
			case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
			default:
				return false
			}
		}
	}
	return true
}
