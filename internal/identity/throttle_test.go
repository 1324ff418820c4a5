package identity

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// throttled is a token service with limits tt, its handler called
// directly so each request can come from its own address.
type throttled struct {
	t   *testing.T
	clk *clock
	mux *http.ServeMux
}

func newThrottled(t *testing.T, tt config.TokenThrottle) *throttled {
	t.Helper()
	e := newEnv(t)
	e.cfg.Identity.TokenThrottle = tt
	svc := New(e.cfg, e.dir, e.keys, e.clk.Now)
	mux := http.NewServeMux()
	svc.Routes(mux)
	return &throttled{t: t, clk: e.clk, mux: mux}
}

// token asks for a token for app with secret from the address src.
func (th *throttled) token(src, app, secret string) (*httptest.ResponseRecorder, graph.TokenError) {
	th.t.Helper()
	r := creds(tenantA, app, secret)
	req := httptest.NewRequest(http.MethodPost, r.path, strings.NewReader(r.form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.RemoteAddr = src + ":40000"
	w := httptest.NewRecorder()
	th.mux.ServeHTTP(w, req)
	var te graph.TokenError
	if w.Code != http.StatusOK {
		if err := json.Unmarshal(w.Body.Bytes(), &te); err != nil {
			th.t.Fatalf("%d with a body that is no token error: %s", w.Code, w.Body)
		}
	}
	return w, te
}

func (th *throttled) want(src, app, secret string, status, aadsts int, retryAfter string) {
	th.t.Helper()
	w, te := th.token(src, app, secret)
	if w.Code != status {
		th.t.Fatalf("from %s: %d %s, want %d", src, w.Code, w.Body, status)
	}
	if status == http.StatusTooManyRequests {
		if te.Error != "temporarily_unavailable" || len(te.ErrorCodes) != 1 || te.ErrorCodes[0] != aadsts ||
			!strings.HasPrefix(te.ErrorDescription, "AADSTS") {
			th.t.Fatalf("429 body: %+v, want temporarily_unavailable AADSTS%d", te, aadsts)
		}
		if got := w.Header().Get("Retry-After"); got != retryAfter {
			th.t.Fatalf("Retry-After %q, want %q", got, retryAfter)
		}
		if strings.Contains(w.Body.String(), secret1) {
			th.t.Fatal("the 429 echoes the secret")
		}
	}
}

func TestTokenRateLimitPerSource(t *testing.T) {
	th := newThrottled(t, config.TokenThrottle{RequestsPerSecond: 1, Burst: 3})
	for range 3 {
		th.want("192.0.2.1", appOne, secret1, 200, 0, "")
	}
	th.want("192.0.2.1", appOne, secret1, 429, 90055, "1")
	th.want("192.0.2.2", appOne, secret1, 200, 0, "") // another address has its own bucket
	th.clk.Advance(time.Second)
	th.want("192.0.2.1", appOne, secret1, 200, 0, "")
}

func TestSecretGuessingLocksTheSourceOut(t *testing.T) {
	th := newThrottled(t, config.TokenThrottle{MaxFailures: 3, FailureWindow: config.Duration(time.Minute), Lockout: config.Duration(5 * time.Minute)})
	th.want("192.0.2.1", appOne, "guess-1", 401, 0, "")
	th.want("192.0.2.1", "00000000-0000-4000-8000-00000000dead", "guess-2", 401, 0, "") // an unknown app counts too
	th.want("192.0.2.1", appOne, "guess-3", 401, 0, "")
	// Locked out: even the right secret is refused, before it is checked.
	th.want("192.0.2.1", appOne, secret1, 429, 50053, "300")
	th.want("192.0.2.2", appOne, secret1, 200, 0, "")
	th.clk.Advance(5*time.Minute - time.Second)
	th.want("192.0.2.1", appOne, secret1, 429, 50053, "1")
	th.clk.Advance(time.Second)
	th.want("192.0.2.1", appOne, secret1, 200, 0, "")
}

func TestSecretGuessingLocksTheClientOutButNotItsHosts(t *testing.T) {
	th := newThrottled(t, config.TokenThrottle{MaxClientFailures: 3, FailureWindow: config.Duration(time.Minute), Lockout: config.Duration(5 * time.Minute)})
	th.want("192.0.2.1", appOne, secret1, 200, 0, "") // the bot's own host
	// A distributed guesser: one wrong secret from each of many addresses.
	for _, src := range []string{"198.51.100.1", "198.51.100.2", "198.51.100.3"} {
		th.want(src, appOne, "guess", 401, 0, "")
	}
	th.want("198.51.100.4", appOne, secret1, 429, 50053, "300")
	th.want("192.0.2.1", appOne, secret1, 200, 0, "")
	th.want("198.51.100.4", appTwo, secret2, 200, 0, "") // another application is not locked
	// Made-up client ids lock nothing and are not tracked.
	for range 10 {
		th.want("198.51.100.5", "00000000-0000-4000-8000-00000000dead", "guess", 401, 0, "")
	}
	th.want("198.51.100.5", appTwo, secret2, 200, 0, "")
}
