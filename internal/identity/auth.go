package identity

import (
	"crypto/sha256"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-voice/switchboard/internal/errs"
)

// Principal is the authenticated caller of a Graph request: an application
// acting in a tenant.
type Principal struct {
	// TenantID is the tid of the token, spelled as the tenant is configured.
	TenantID string
	// AppID is the application id, spelled as configured.
	AppID string
	// Roles are the permissions the token carries that the application still
	// holds, spelled as configured.
	Roles []string
	// App is the application, as the directory has it now.
	App *App
}

// Require returns nil if p holds any of the permissions anyOf (or anyOf is
// empty), else an errs.Forbidden error whose message names them.
func (p *Principal) Require(anyOf ...string) error {
	if len(anyOf) == 0 {
		return nil
	}
	if p != nil {
		for _, want := range anyOf {
			for _, have := range p.Roles {
				if strings.EqualFold(want, have) {
					return nil
				}
			}
		}
	}
	if len(anyOf) == 1 {
		return errs.E(errs.Forbidden,
			"Insufficient privileges to complete the operation. The application needs the %s application permission.", anyOf[0])
	}
	return errs.E(errs.Forbidden,
		"Insufficient privileges to complete the operation. The application needs one of these application permissions: %s.",
		strings.Join(anyOf, ", "))
}

// Authenticate checks the bearer token of a Graph request: RS256 with a
// published key, aud Graph, iss this tenant's issuer, within its lifetime
// (give or take 30s), issued to an application that still exists and is
// still provisioned in the token's tenant. The roles are those of the token
// the application still holds. Every failure is an errs.Unauthenticated
// error whose message is Graph's for the case; the cause is wrapped for logs.
func (s *Service) Authenticate(r *http.Request) (*Principal, error) {
	h := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(h, " ")
	tok = strings.TrimSpace(tok)
	if strings.TrimSpace(h) == "" || (strings.EqualFold(scheme, "Bearer") && tok == "") {
		return nil, errs.E(errs.Unauthenticated, "Access token is empty.")
	}
	if !strings.EqualFold(scheme, "Bearer") {
		return nil, errs.E(errs.Unauthenticated,
			"Access token validation failure. The Authorization header must carry a Bearer token.")
	}
	c, err := s.verify(tok)
	if err != nil {
		return nil, err
	}
	if c.tid == "" || c.iss != s.tenantIssuer(c.tid) {
		return nil, errs.E(errs.Unauthenticated, "Access token validation failure. Invalid issuer.")
	}
	tenant, ok := s.dir.Tenant(c.tid)
	if !ok {
		return nil, errs.E(errs.Unauthenticated, "Access token validation failure. Tenant %s is not configured.", c.tid)
	}
	app, ok := s.dir.App(c.appID)
	if !ok {
		return nil, errs.E(errs.Unauthenticated, "Access token validation failure. Application %s is not registered.", c.appID)
	}
	if !app.InTenant(tenant.ID) {
		return nil, errs.E(errs.Unauthenticated,
			"Access token validation failure. Application %s is not provisioned in tenant %s.", app.ID, tenant.ID)
	}
	roles := make([]string, 0, len(app.Permissions))
	for _, p := range app.Permissions {
		for _, r := range c.roles {
			if strings.EqualFold(p, r) {
				roles = append(roles, p)
				break
			}
		}
	}
	return &Principal{TenantID: tenant.ID, AppID: app.ID, Roles: roles, App: app}, nil
}

// verify checks an access token's signature and claims, or finds it
// checked already (verified.go).
func (s *Service) verify(tok string) (*verifiedToken, error) {
	key := sha256.Sum256([]byte(tok))
	now := s.now()
	if v := s.verified.get(key, now); v != nil {
		return v, nil
	}
	var c accessClaims
	if _, err := s.parser.ParseWithClaims(tok, &c, s.keys.Keyfunc); err != nil {
		return nil, errs.Wrap(errs.Unauthenticated, err, "%s", tokenFailure(err))
	}
	v := &verifiedToken{tid: c.TID, appID: c.AppID, iss: c.Iss, roles: c.Roles, until: now.Add(verifiedFor)}
	if exp := c.Exp.Add(leeway); exp.Before(v.until) {
		v.until = exp // the parser requires exp
	}
	s.verified.put(key, v)
	return v, nil
}

// tokenFailure is Graph's message for a token that failed to parse or
// validate.
func tokenFailure(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "CompactToken parsing failed with error code: 80049217"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid), errors.Is(err, jwt.ErrTokenUnverifiable):
		return "Access token validation failure. Invalid signature."
	case errors.Is(err, jwt.ErrTokenExpired):
		return "Lifetime validation failed, the token is expired."
	case errors.Is(err, jwt.ErrTokenNotValidYet), errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return "Lifetime validation failed, the token is not yet valid."
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return "Access token validation failure. Invalid audience."
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "Access token validation failure. A required claim is missing."
	}
	return "Access token validation failure."
}

// notifSkew backdates the nbf of notification tokens, for bots whose clock
// runs a little behind and whose validators allow no skew.
const notifSkew = time.Minute

type notifKey struct{ app, tenant string }

// notifEntry caches the token for one (app, tenant). Readers load cur
// without locking; mu makes one caller sign when it is due.
type notifEntry struct {
	mu  sync.Mutex
	cur atomic.Pointer[notifToken]
}

type notifToken struct {
	token string
	renew time.Time // sign a new one from here: a quarter of its life is left
}

// NotificationToken returns the bearer token Switchboard sends with
// notifications to application appID about tenantID's calls
// (https://learn.microsoft.com/microsoftteams/platform/bots/calls-and-meetings/call-notifications,
// docs/decisions.md#notification-tokens): RS256 with the current key (kid in
// the header), aud the app id, iss identity.notificationIssuer (default the
// public URL), tid, and iat, nbf and exp for
// identity.notificationTokenLifetime. One token per (app, tenant) is reused
// until less than a quarter of its lifetime remains, so a signature is
// computed once in minutes, not per POST. It is safe for concurrent use. An
// unknown app, or one not provisioned in tenantID, is an errs.NotFound error.
func (s *Service) NotificationToken(appID, tenantID string) (string, error) {
	app, ok := s.dir.App(appID)
	if !ok {
		return "", errs.E(errs.NotFound, "application %s is not registered", appID)
	}
	tenant, ok := s.dir.Tenant(tenantID)
	if !ok || !app.InTenant(tenant.ID) {
		return "", errs.E(errs.NotFound, "application %s is not provisioned in tenant %s", app.ID, tenantID)
	}
	key := notifKey{app.ID, tenant.ID}
	s.mu.Lock()
	e := s.notif[key]
	if e == nil {
		e = &notifEntry{}
		s.notif[key] = e
	}
	s.mu.Unlock()

	if t := e.cur.Load(); t != nil && s.now().Before(t.renew) {
		return t.token, nil
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	now := s.now()
	if t := e.cur.Load(); t != nil && now.Before(t.renew) {
		return t.token, nil // another caller renewed it while we waited
	}
	tok, err := s.keys.Sign(&notificationClaims{
		Aud: audience{app.ID},
		Iss: s.notifIssuer,
		TID: tenant.ID,
		Iat: jwt.NewNumericDate(now),
		Nbf: jwt.NewNumericDate(now.Add(-notifSkew)),
		Exp: jwt.NewNumericDate(now.Add(s.notifLife)),
	})
	if err != nil {
		return "", errs.Wrap(errs.Internal, err, "sign notification token")
	}
	e.cur.Store(&notifToken{token: tok, renew: now.Add(s.notifLife - s.notifLife/4)})
	return tok, nil
}
