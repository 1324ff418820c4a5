package identity

import (
	"log/slog"
	"math"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/switchboard-voice/switchboard/internal/abuse"
	"github.com/switchboard-voice/switchboard/internal/config"
)

// The token endpoint's limits (identity.tokenThrottle), against brute force
// and client-secret guessing:
//
//   - every token request takes a token of its source address's bucket;
//     over the rate it is answered 429 with Retry-After (AADSTS90055);
//   - every wrong client secret (or unknown client id) counts against its
//     source address, and maxFailures of them within failureWindow lock the
//     address out for lockout: 429 (AADSTS50053) before the secret is even
//     looked at, right or wrong;
//   - every wrong secret for an existing application counts against that
//     client id too, from any address: maxClientFailures lock the client id
//     out for every address except those that got a token for it within
//     the last token lifetime (the application's own hosts keep working
//     while a distributed guesser is stopped).
//
// The source is the connection's address: no forwarding header is
// trusted. The tables are bounded (internal/abuse); client ids are
// tracked only for configured applications, so a guesser's made-up ids
// cost nothing.
type throttle struct {
	cfg      config.TokenThrottle
	log      *slog.Logger
	now      func() time.Time
	familiar time.Duration // how long a source that got a token stays exempt from its client id's lockout

	sources *abuse.Guard[netip.Addr]
	clients *abuse.Guard[string]

	mu   sync.Mutex
	good map[string]map[netip.Addr]time.Time // app id → source → when it last got a token
}

// maxFamiliar bounds the sources remembered per application.
const maxFamiliar = 64

func newThrottle(c config.TokenThrottle, familiar time.Duration, now func() time.Time, log *slog.Logger) *throttle {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &throttle{cfg: c, log: log, now: now, familiar: familiar,
		sources: abuse.New[netip.Addr](abuse.Limits{Rate: c.RequestsPerSecond, Burst: c.Burst,
			MaxFailures: c.MaxFailures, Window: c.FailureWindow.D(), BanTime: c.Lockout.D()}, now),
		clients: abuse.New[string](abuse.Limits{MaxFailures: c.MaxClientFailures, Window: c.FailureWindow.D(), BanTime: c.Lockout.D()}, now),
		good:    map[string]map[netip.Addr]time.Time{},
	}
}

// remoteIP is the address a request came from; invalid when unknown.
func remoteIP(r *http.Request) netip.Addr {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	a, _ := netip.ParseAddr(host)
	return a.Unmap()
}

// admit takes a request of src; a refusal is the error to answer with.
func (t *throttle) admit(src netip.Addr) *tokenError {
	if !src.IsValid() {
		return nil
	}
	switch v, wait := t.sources.Allow(src); v {
	case abuse.Banned:
		return lockedOut(wait, "this address sent too many wrong client secrets")
	case abuse.Limited:
		e := tokenErr(http.StatusTooManyRequests, "temporarily_unavailable", 90055,
			"There are too many incoming requests from this address. Retry after the time in Retry-After.")
		e.retryAfter = wait
		return e
	}
	return nil
}

// clientLocked refuses src for appID while the client id is locked out,
// unless src got a token for it recently.
func (t *throttle) clientLocked(appID string, src netip.Addr) *tokenError {
	locked, left := t.clients.Banned(appID)
	if !locked || t.isFamiliar(appID, src) {
		return nil
	}
	return lockedOut(left, "this application received too many wrong client secrets")
}

// failed counts a wrong secret from src, for appID when it names a
// configured application.
func (t *throttle) failed(src netip.Addr, appID string, known bool) {
	if src.IsValid() && t.sources.Fail(src) {
		t.log.Warn("token endpoint: source locked out for wrong client secrets", "source", src.String(),
			"failures", t.cfg.MaxFailures, "within", t.cfg.FailureWindow.D().String(), "for", t.cfg.Lockout.D().String())
	}
	if known && t.clients.Fail(appID) {
		t.log.Warn("token endpoint: client id locked out for wrong client secrets (its recent sources excepted)", "app", appID,
			"failures", t.cfg.MaxClientFailures, "within", t.cfg.FailureWindow.D().String(), "for", t.cfg.Lockout.D().String())
	}
}

// issued remembers that src got a token for appID.
func (t *throttle) issued(appID string, src netip.Addr) {
	if !src.IsValid() || t.cfg.MaxClientFailures <= 0 {
		return
	}
	now := t.now()
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.good[appID]
	if m == nil {
		m = map[netip.Addr]time.Time{}
		t.good[appID] = m
	}
	if _, ok := m[src]; !ok && len(m) >= maxFamiliar {
		oldest, at := netip.Addr{}, now
		for a, when := range m {
			if when.Before(at) {
				oldest, at = a, when
			}
		}
		delete(m, oldest)
	}
	m[src] = now
}

func (t *throttle) isFamiliar(appID string, src netip.Addr) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	when, ok := t.good[appID][src]
	return ok && t.now().Sub(when) <= t.familiar
}

func lockedOut(left time.Duration, why string) *tokenError {
	e := tokenErr(http.StatusTooManyRequests, "temporarily_unavailable", 50053,
		"Too many sign-in attempts with a wrong client secret: %s. Retry after the time in Retry-After.", why)
	e.retryAfter = left
	return e
}

// retryAfterSeconds is a Retry-After value: whole seconds, at least 1.
func retryAfterSeconds(d time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(d.Seconds()))))
}
