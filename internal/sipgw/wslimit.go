package sipgw

import (
	"net"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/internal/abuse"
	"github.com/switchboard-voice/switchboard/internal/config"
)

// What one source address may hold of SIP over WebSocket (sip.ws). A
// browser softphone keeps one connection; a source opening many is a
// script or a flood, and each connection costs sipgo a goroutine and its
// buffers for as long as it stays open. So before the upgrade, before
// anything is hijacked or handed to sipgo, a source already holding
// sip.ws.maxConnsPerSource connections, or opening them faster than
// sip.ws.connsPerSecond (a token bucket of sip.ws.connBurst, kept by
// internal/abuse, so the table of sources is bounded), is refused with
// 429 and Retry-After, counted in switchboard_sip_ws_refused_total by
// reason. The count of open connections needs no bound of its own: a
// source is in it only while it holds connections.

// Reasons a WebSocket upgrade is refused (the metric's label).
const (
	wsRefusedConns = "connections" // the source holds maxConnsPerSource already
	wsRefusedRate  = "rate"        // the source opens connections too fast
)

// wsLimiter admits SIP-over-WebSocket connections per source address. A
// nil *wsLimiter admits everything. Safe for concurrent use.
type wsLimiter struct {
	max     int
	rate    *abuse.Guard[netip.Addr] // nil: no rate limit
	refused *prometheus.CounterVec

	mu   sync.Mutex
	open map[netip.Addr]int // connections open per source; a source goes with its last
}

func newWSLimiter(c config.SIPWebSocket, now func() time.Time, reg prometheus.Registerer) *wsLimiter {
	l := &wsLimiter{max: c.MaxConnsPerSource, open: map[netip.Addr]int{},
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "switchboard", Subsystem: "sip", Name: "ws_refused_total",
			Help: "SIP-over-WebSocket upgrades refused (429) for their source address: holding sip.ws.maxConnsPerSource connections (connections) or opening them faster than sip.ws.connsPerSecond (rate).",
		}, []string{"reason"})}
	if c.ConnsPerSecond > 0 {
		l.rate = abuse.New[netip.Addr](abuse.Limits{Rate: c.ConnsPerSecond, Burst: c.ConnBurst}, now)
	}
	for _, r := range []string{wsRefusedConns, wsRefusedRate} {
		l.refused.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(l.refused)
	}
	return l
}

// admit takes a connection of src. It returns release, to be called once
// when the connection closes, or, refusing, nil with the reason and how
// long the source should wait.
func (l *wsLimiter) admit(src netip.Addr) (release func(), reason string, wait time.Duration) {
	if l == nil {
		return func() {}, "", 0
	}
	l.mu.Lock()
	if l.max > 0 && l.open[src] >= l.max {
		l.mu.Unlock()
		l.refused.WithLabelValues(wsRefusedConns).Inc()
		return nil, wsRefusedConns, time.Second
	}
	if l.rate != nil {
		if v, w := l.rate.Allow(src); v != abuse.Allowed {
			l.mu.Unlock()
			l.refused.WithLabelValues(wsRefusedRate).Inc()
			return nil, wsRefusedRate, w
		}
	}
	l.open[src]++
	l.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			if l.open[src]--; l.open[src] <= 0 {
				delete(l.open, src)
			}
			l.mu.Unlock()
		})
	}, "", 0
}

// retryAfter is a Retry-After value for wait: whole seconds, at least 1.
func retryAfter(wait time.Duration) string {
	return strconv.Itoa(int(max(wait.Round(time.Second), time.Second) / time.Second))
}

// httpSource is the address an HTTP request came from.
func httpSource(remoteAddr string) netip.Addr {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// limitedConn gives its source's connection slot back when it closes.
type limitedConn struct {
	net.Conn
	release func()
}

func (c *limitedConn) Close() error {
	c.release()
	return c.Conn.Close()
}
