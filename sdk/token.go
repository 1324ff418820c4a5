package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// tokenSource gets client-credentials tokens
// (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow)
// and caches them. A token is refreshed refreshMargin before it expires;
// while a refresh runs every caller waits for that one request (single
// flight), each within its own context. If a refresh fails while the cached
// token is still valid, the cached token is used.
type tokenSource struct {
	c *Client

	mu        sync.Mutex
	token     string
	expires   time.Time // when the token stops being valid
	refreshAt time.Time // when to fetch the next one
	flight    *tokenFlight
}

type tokenFlight struct {
	done    chan struct{}
	token   string
	expires time.Time
	err     error
}

// expirySkew is subtracted from a token's lifetime so a token is never
// sent in its last seconds (clock skew, time in flight).
const expirySkew = 30 * time.Second

// refreshMargin is how long before expiry a token is replaced: five
// minutes, or half the lifetime of short-lived tokens.
func refreshMargin(lifetime time.Duration) time.Duration {
	return min(5*time.Minute, lifetime/2)
}

// get returns a valid token, fetching one when none is cached or the
// cached one is due for refresh.
func (s *tokenSource) get(ctx context.Context) (string, error) {
	s.mu.Lock()
	now := time.Now()
	if s.token != "" && now.Before(s.refreshAt) {
		tok := s.token
		s.mu.Unlock()
		return tok, nil
	}
	f := s.flight
	if f == nil {
		f = &tokenFlight{done: make(chan struct{})}
		s.flight = f
		// The fetch outlives the context of the caller that started it:
		// other callers are waiting for it too.
		go s.fetch(context.WithoutCancel(ctx), f)
	}
	s.mu.Unlock()

	select {
	case <-f.done:
	case <-ctx.Done():
		return "", ctx.Err()
	}
	if f.err == nil {
		return f.token, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.token != "" && time.Now().Before(s.expires) {
		s.c.log.Warn("token refresh failed; using the cached token until it expires", "err", f.err, "expires", s.expires)
		return s.token, nil
	}
	return "", f.err
}

func (s *tokenSource) fetch(ctx context.Context, f *tokenFlight) {
	ctx, cancel := context.WithTimeout(ctx, s.c.o.TokenTimeout)
	defer cancel()
	start := time.Now()
	f.token, f.expires, f.err = s.request(ctx)
	s.mu.Lock()
	if f.err == nil {
		lifetime := f.expires.Sub(start)
		s.token, s.expires = f.token, f.expires
		s.refreshAt = f.expires.Add(-refreshMargin(lifetime))
	}
	s.flight = nil
	s.mu.Unlock()
	close(f.done)
}

// invalidate drops tok from the cache if it is still the cached token, so
// the next get fetches a new one (the API refused it with 401).
func (s *tokenSource) invalidate(tok string) {
	s.mu.Lock()
	if s.token == tok {
		s.token, s.expires, s.refreshAt = "", time.Time{}, time.Time{}
	}
	s.mu.Unlock()
}

func (s *tokenSource) request(ctx context.Context) (string, time.Time, error) {
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {s.c.o.ClientID},
		"client_secret": {s.c.o.ClientSecret},
		"scope":         {s.c.o.Scope},
	}
	resp, body, err := s.c.send(ctx, request{
		method:      http.MethodPost,
		url:         s.c.o.TokenURL,
		body:        []byte(form.Encode()),
		contentType: "application/x-www-form-urlencoded",
	})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("get token: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		ae := &AuthError{StatusCode: resp.StatusCode, Code: http.StatusText(resp.StatusCode)}
		var te graph.TokenError
		if json.Unmarshal(body, &te) == nil && te.Error != "" {
			ae.Code, ae.Description, ae.TraceID, ae.CorrelationID = te.Error, te.ErrorDescription, te.TraceID, te.CorrelationID
		} else {
			ae.Description = strings.TrimSpace(truncate(string(body), 512))
		}
		return "", time.Time{}, fmt.Errorf("get token: %w", ae)
	}
	var tr graph.TokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		return "", time.Time{}, fmt.Errorf("get token: malformed response: %w", err)
	}
	if tr.AccessToken == "" {
		return "", time.Time{}, fmt.Errorf("get token: response has no access_token")
	}
	if tt := tr.TokenType; tt != "" && !strings.EqualFold(tt, "Bearer") {
		return "", time.Time{}, fmt.Errorf("get token: token_type %q is not Bearer", tt)
	}
	lifetime := time.Duration(tr.ExpiresIn) * time.Second
	if lifetime <= 0 {
		lifetime = 5 * time.Minute // no expires_in: assume a short life rather than a long one
	}
	if lifetime > 2*expirySkew {
		lifetime -= expirySkew
	}
	return tr.AccessToken, time.Now().Add(lifetime), nil
}
