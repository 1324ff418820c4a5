package sipgw

import (
	"net/netip"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/internal/abuse"
	"github.com/switchboard-voice/switchboard/internal/config"
)

// What one source address may do (sip.abuse): scanners (svmap, svwar),
// password guessers (svcrack) and floods of INVITEs or REGISTERs are met
// per source address, before anything else is spent on their requests.
//
//   - Requests outside a dialog (no To tag, or one naming no dialog of
//     ours) take a token of their source's bucket; over the rate they are
//     dropped unanswered.
//   - Every wrong digest answer (the 403 of a wrong password or an
//     unknown user) counts against its source; sip.abuse.maxAuthFailures
//     of them within authFailureWindow ban it for banTime, with a warning
//     in the log and switchboard_sip_banned_total. A banned source's
//     requests are dropped unanswered, right password or not, so a guesser
//     learns nothing more.
//
// ACK and CANCEL, requests in a dialog the gateway holds, requests from a
// trunk's allowFrom addresses and another node's cascade INVITEs (their
// MAC checked) are never limited: a trunk, a proxy in front of the node or
// another node carries many callers from one address. The
// table of sources is bounded (internal/abuse): a flood from many
// addresses costs a fixed amount of memory.
//
// Dropping rather than answering is what keeps the edge quiet: a scanner
// reads nothing from silence, a flood gets no amplification, and a UA
// retransmitting over UDP costs one lookup per packet.

// sourceGuard returns the gateway's per-source guard for cfg.
func sourceGuard(a config.SIPAbuse, now func() time.Time) *abuse.Guard[netip.Addr] {
	return abuse.New[netip.Addr](abuse.Limits{
		Rate: a.RequestsPerSecond, Burst: a.Burst,
		MaxFailures: a.MaxAuthFailures, Window: a.AuthFailureWindow.D(), BanTime: a.BanTime.D(),
	}, now)
}

// abuseMetrics count what the guard dropped and banned.
type abuseMetrics struct {
	dropped *prometheus.CounterVec // by reason: rate, banned
	banned  prometheus.Counter
}

func newAbuseMetrics(reg prometheus.Registerer) *abuseMetrics {
	m := &abuseMetrics{
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "switchboard", Subsystem: "sip", Name: "dropped_total",
			Help: "SIP requests dropped unanswered by source: over the source's rate (rate) or from a banned source (banned).",
		}, []string{"reason"}),
		banned: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "switchboard", Subsystem: "sip", Name: "banned_total",
			Help: "Source addresses banned for sending too many wrong digest answers (sip.abuse.maxAuthFailures).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.dropped, m.banned)
	}
	return m
}

// sourceOf is the address req came from.
func sourceOf(req *sip.Request) (netip.Addr, bool) {
	ap, err := netip.ParseAddrPort(req.Source())
	if err != nil {
		return netip.Addr{}, false
	}
	return ap.Addr().Unmap(), true
}

// screen reports whether req may be handled; a request it refuses is to be
// dropped unanswered.
func (g *Gateway) screen(req *sip.Request) bool {
	if req.IsAck() || req.IsCancel() {
		return true
	}
	src, proxied, ok := g.origin(req)
	if !ok || g.trunkFrom(src) != nil || proxied && g.isProxy(src) {
		return true // a trunk, or a proxy's own request (its OPTIONS probes)
	}
	if h := req.GetHeader(cascadeHeader); h != nil && req.IsInvite() {
		if _, err := g.checkCascade(req, h.Value()); err == nil {
			return true // another node carrying a person to a meeting mixed here (cascade.go): many from one address
		}
	}
	if toTag(req) != "" && (g.dialog(req) != nil || g.relays.has(callIDOf(req))) {
		return true // in a call of this node, or one it relays for a browser (flow.go)
	}
	switch v, _ := g.sources.Allow(src); v {
	case abuse.Banned:
		g.am.dropped.WithLabelValues("banned").Inc()
		return false
	case abuse.Limited:
		g.am.dropped.WithLabelValues("rate").Inc()
		return false
	}
	return true
}

// authFailed counts a wrong digest answer against req's source, banning it
// once it has sent too many.
func (g *Gateway) authFailed(req *sip.Request) {
	src, proxied, ok := g.origin(req)
	if !ok || g.trunkFrom(src) != nil || proxied && g.isProxy(src) {
		return
	}
	if g.sources.Fail(src) {
		g.am.banned.Inc()
		a := g.cfg.SIP.Abuse
		g.log.Warn("sip: source banned for wrong digest answers", "source", src.String(),
			"failures", a.MaxAuthFailures, "within", a.AuthFailureWindow.D().String(), "for", a.BanTime.D().String(),
			"method", string(req.Method))
	}
}

// Sources is how many source addresses the gateway's abuse guard tracks
// (bounded; for tests and diagnostics).
func (g *Gateway) Sources() int { return g.sources.Len() }
