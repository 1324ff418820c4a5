package identity

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"mime"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/ids"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// leeway is the clock skew Authenticate tolerates on exp, nbf and iat.
const leeway = 30 * time.Second

// maxTokenRequest bounds the body of a token request.
const maxTokenRequest = 64 << 10

// Service is the identity platform's HTTP face (token endpoint, OpenID
// configuration, JWKS), the authenticator of Graph requests, and the signer
// of notification tokens. It is safe for concurrent use.
type Service struct {
	dir         *Directory
	keys        *Keyring
	now         func() time.Time
	publicURL   string
	notifIssuer string
	tokenLife   time.Duration
	notifLife   time.Duration
	parser      *jwt.Parser

	mu    sync.Mutex // guards notif (the map, not the entries)
	notif map[notifKey]*notifEntry

	throttle *throttle // the token endpoint's limits (throttle.go)
	verified verifiedCache
}

// New returns the identity service of c, answering from d and signing with
// k. now is the clock (nil: time.Now). It reads c once; c is expected to
// have passed config.Validate.
func New(c *config.Config, d *Directory, k *Keyring, now func() time.Time) *Service {
	if now == nil {
		now = time.Now
	}
	s := &Service{
		dir:         d,
		keys:        k,
		now:         now,
		publicURL:   strings.TrimRight(c.HTTP.PublicURL, "/"),
		notifIssuer: c.Identity.NotificationIssuer,
		tokenLife:   c.Identity.TokenLifetime.D(),
		notifLife:   c.Identity.NotificationTokenLifetime.D(),
		notif:       map[notifKey]*notifEntry{},
	}
	if s.notifIssuer == "" {
		s.notifIssuer = s.publicURL
	}
	s.throttle = newThrottle(c.Identity.TokenThrottle, s.tokenLife, now, nil)
	s.parser = jwt.NewParser(
		jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}),
		jwt.WithLeeway(leeway),
		jwt.WithTimeFunc(now),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithAudience(graphResource, graphAppID),
	)
	return s
}

// SetLogger sets where the token endpoint's lockouts are logged; call it
// before serving. Nothing is logged without it.
func (s *Service) SetLogger(log *slog.Logger) {
	if log != nil {
		s.throttle.log = log
	}
}

// Routes registers the identity endpoints on mux:
//
//	POST /{tenant}/oauth2/v2.0/token                     client credentials (v2.0)
//	POST /{tenant}/oauth2/token                          client credentials (v1.0, resource=)
//	GET  /{tenant}/v2.0/.well-known/openid-configuration the tenant's OpenID configuration
//	GET  /{tenant}/discovery/v2.0/keys                   the JWKS
//	GET  /v1/.well-known/openidconfiguration             Bot-Framework-style document for notification tokens
//
// {tenant} is a configured tenant id, or "common" for the GET documents.
// The patterns have a wildcard first segment: they conflict with a pattern
// that matches every path under some prefix (such as "GET /v1.0/"), so Graph
// routes must be registered under "/v1.0/communications/" and the like.
func (s *Service) Routes(mux interface {
	HandleFunc(pattern string, handler func(http.ResponseWriter, *http.Request))
}) {
	mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", s.tokenHandler(false))
	mux.HandleFunc("POST /{tenant}/oauth2/token", s.tokenHandler(true))
	mux.HandleFunc("GET /{tenant}/v2.0/.well-known/openid-configuration", s.handleOpenIDConfiguration)
	mux.HandleFunc("GET /{tenant}/discovery/v2.0/keys", s.handleKeys)
	// Mux patterns are case-sensitive; Graph's real document is spelled
	// OpenIdConfiguration, Bot Framework's openidconfiguration.
	mux.HandleFunc("GET /v1/.well-known/openidconfiguration", s.handleBotOpenIDConfiguration)
	mux.HandleFunc("GET /v1/.well-known/OpenIdConfiguration", s.handleBotOpenIDConfiguration)
}

// tokenError is a failed token request: the HTTP status and the identity
// platform's error, AADSTS code and description.
type tokenError struct {
	status     int
	code       string
	aadsts     int
	desc       string
	retryAfter time.Duration // for a 429: when to come back
}

func tokenErr(status int, code string, aadsts int, format string, args ...any) *tokenError {
	return &tokenError{status: status, code: code, aadsts: aadsts, desc: fmt.Sprintf(format, args...)}
}

func missingParam(name string) *tokenError {
	return tokenErr(http.StatusBadRequest, "invalid_request", 900144,
		"The request body must contain the following parameter: '%s'.", name)
}

// tokenHandler serves the client-credentials grant (RFC 6749 §4.4) the way
// Entra ID does
// (https://learn.microsoft.com/entra/identity-platform/v2-oauth2-client-creds-grant-flow);
// v1 selects the legacy endpoint, which names the resource instead of a
// scope.
func (s *Service) tokenHandler(v1 bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		src := remoteIP(r)
		var resp *graph.TokenResponse
		var basic bool
		terr := s.throttle.admit(src)
		if terr == nil {
			resp, basic, terr = s.issue(w, r, v1, src)
		}
		h := w.Header()
		h.Set("Cache-Control", "no-store")
		h.Set("Pragma", "no-cache")
		if terr != nil {
			if terr.status == http.StatusTooManyRequests {
				h.Set("Retry-After", retryAfterSeconds(terr.retryAfter))
			}
			if terr.status == http.StatusUnauthorized && basic {
				// RFC 6749 §5.2: answer Basic client authentication in kind.
				h.Set("WWW-Authenticate", `Basic realm="`+s.publicURL+`"`)
			}
			writeTokenError(w, r, s.now(), terr)
			return
		}
		writeJSON(w, http.StatusOK, resp)
	}
}

// issue checks a token request and mints the token. basic reports whether
// the client authenticated with HTTP Basic.
func (s *Service) issue(w http.ResponseWriter, r *http.Request, v1 bool, src netip.Addr) (resp *graph.TokenResponse, basic bool, terr *tokenError) {
	tenantParam := r.PathValue("tenant")
	tenant, ok := s.dir.Tenant(tenantParam)
	if !ok {
		return nil, false, unknownTenant(tenantParam)
	}
	ct, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if ct != "application/x-www-form-urlencoded" {
		return nil, false, missingParam("grant_type")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequest)
	if err := r.ParseForm(); err != nil {
		return nil, false, tokenErr(http.StatusBadRequest, "invalid_request", 9002313,
			"Invalid request. Request is malformed or invalid.")
	}
	form := r.PostForm

	switch gt := form.Get("grant_type"); gt {
	case "":
		return nil, false, missingParam("grant_type")
	case "client_credentials":
	default:
		return nil, false, tokenErr(http.StatusBadRequest, "unsupported_grant_type", 70003,
			"The app requested an unsupported grant type '%s'. Switchboard supports client_credentials only.", gt)
	}

	if v1 {
		res := form.Get("resource")
		if res == "" {
			return nil, false, missingParam("resource")
		}
		if !isGraph(strings.TrimSuffix(res, "/")) {
			return nil, false, resourceNotFound(res, tenant.ID)
		}
	} else {
		scope := form.Get("scope")
		if scope == "" {
			return nil, false, missingParam("scope")
		}
		// Some clients add the OpenID Connect scopes to every request; they
		// mean nothing to client credentials. One resource's /.default remains.
		var resources []string
		for _, sc := range strings.Fields(scope) {
			switch sc {
			case "openid", "profile", "email", "offline_access":
			default:
				resources = append(resources, sc)
			}
		}
		var res string
		ok := len(resources) == 1
		if ok {
			res, ok = strings.CutSuffix(resources[0], "/.default")
		}
		if !ok {
			return nil, false, tokenErr(http.StatusBadRequest, "invalid_scope", 1002012,
				"The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", scope)
		}
		if !isGraph(strings.TrimSuffix(res, "/")) {
			return nil, false, resourceNotFound(res, tenant.ID)
		}
	}

	if form.Has("client_assertion") || form.Has("client_assertion_type") {
		return nil, false, tokenErr(http.StatusBadRequest, "invalid_request", 9002313,
			"Invalid request. Switchboard does not accept client assertions (certificate credentials); send client_secret.")
	}
	clientID, secret := form.Get("client_id"), form.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		basic = true
		// RFC 6749 §2.3.1: both are form-encoded before Basic encoding.
		bu, err1 := url.QueryUnescape(u)
		bp, err2 := url.QueryUnescape(p)
		if err1 != nil || err2 != nil || form.Has("client_secret") || (clientID != "" && clientID != bu) {
			return nil, basic, tokenErr(http.StatusBadRequest, "invalid_request", 9002313,
				"Invalid request. Use one client authentication method: HTTP Basic or client_id and client_secret in the body, not both.")
		}
		clientID, secret = bu, bp
	}
	if clientID == "" {
		return nil, basic, missingParam("client_id")
	}
	if secret == "" {
		return nil, basic, tokenErr(http.StatusUnauthorized, "invalid_client", 7000218,
			"The request body must contain the following parameter: 'client_assertion' or 'client_secret'.")
	}
	app, found := s.dir.App(clientID)
	if found {
		if e := s.throttle.clientLocked(app.ID, src); e != nil {
			return nil, basic, e
		}
	}
	want := unknownAppSecret
	if found {
		want = app.secret
	}
	got := sha256.Sum256([]byte(secret))
	// Compare digests in constant time whether the app exists or not, and
	// answer both the same, so neither timing nor text tells app ids apart.
	if subtle.ConstantTimeCompare(got[:], want[:]) != 1 || !found {
		s.throttle.failed(src, clientID, found)
		return nil, basic, tokenErr(http.StatusUnauthorized, "invalid_client", 7000215,
			"Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", clientID)
	}
	if !app.InTenant(tenant.ID) {
		return nil, basic, tokenErr(http.StatusBadRequest, "unauthorized_client", 700016,
			"Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", clientID, tenant.ID)
	}

	now := s.now()
	tok, err := s.keys.Sign(&accessClaims{
		Aud:            audience{graphResource},
		Iss:            s.tenantIssuer(tenant.ID),
		Iat:            jwt.NewNumericDate(now),
		Nbf:            jwt.NewNumericDate(now),
		Exp:            jwt.NewNumericDate(now.Add(s.tokenLife)),
		AppID:          app.ID,
		Azp:            app.ID,
		AppDisplayName: app.DisplayName,
		AppIDACR:       "1",
		IDType:         "app",
		OID:            principalID(app.ID, tenant.ID),
		Sub:            principalID(app.ID, tenant.ID),
		TID:            tenant.ID,
		Roles:          app.Permissions,
		Ver:            "2.0",
		UTI:            randomID(16),
	})
	if err != nil {
		return nil, basic, tokenErr(http.StatusInternalServerError, "temporarily_unavailable", 50000,
			"There was an error issuing a token.")
	}
	s.throttle.issued(app.ID, src)
	secs := int(s.tokenLife / time.Second)
	return &graph.TokenResponse{TokenType: "Bearer", ExpiresIn: secs, ExtExpiresIn: secs, AccessToken: tok}, basic, nil
}

// unknownAppSecret is compared against when client_id names no app; no
// secret hashes to it in practice.
var unknownAppSecret = sha256.Sum256([]byte("switchboard: no such application"))

func isGraph(resource string) bool {
	return strings.EqualFold(resource, graphResource) || strings.EqualFold(resource, graphAppID)
}

func resourceNotFound(res, tenantID string) *tokenError {
	return tokenErr(http.StatusBadRequest, "invalid_resource", 500011,
		"The resource principal named %s was not found in the tenant named %s. Switchboard issues tokens for %s only.", res, tenantID, graphResource)
}

func unknownTenant(t string) *tokenError {
	if len(t) > 100 {
		t = t[:100]
	}
	return tokenErr(http.StatusBadRequest, "invalid_request", 90002,
		"Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", t)
}

// writeTokenError writes e in the identity platform's shape, with the trace
// and correlation ids and timestamp it appends to every description.
func writeTokenError(w http.ResponseWriter, r *http.Request, now time.Time, e *tokenError) {
	trace := ids.New()
	corr := r.Header.Get("client-request-id")
	if !config.IsGUID(corr) {
		corr = ids.New()
	}
	ts := now.UTC().Format("2006-01-02 15:04:05Z")
	writeJSON(w, e.status, graph.TokenError{
		Error:            e.code,
		ErrorDescription: fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s", e.aadsts, e.desc, trace, corr, ts),
		ErrorCodes:       []int{e.aadsts},
		Timestamp:        ts,
		TraceID:          trace,
		CorrelationID:    corr,
	})
}

// tenantIssuer is the iss of access tokens for tenantID, and the issuer of
// its OpenID configuration.
func (s *Service) tenantIssuer(tenantID string) string {
	return s.publicURL + "/" + tenantID + "/v2.0"
}

// documentTenant resolves the {tenant} of a GET document: a configured
// tenant (spelled as configured) or "common".
func (s *Service) documentTenant(w http.ResponseWriter, r *http.Request) (string, bool) {
	t := r.PathValue("tenant")
	if strings.EqualFold(t, "common") {
		return "common", true
	}
	if tenant, ok := s.dir.Tenant(t); ok {
		return tenant.ID, true
	}
	e := unknownTenant(t)
	e.status = http.StatusNotFound
	writeTokenError(w, r, s.now(), e)
	return "", false
}

// handleOpenIDConfiguration serves the tenant's OpenID Provider Metadata
// (OpenID Connect Discovery 1.0 §3) as Entra ID shapes it.
func (s *Service) handleOpenIDConfiguration(w http.ResponseWriter, r *http.Request) {
	t, ok := s.documentTenant(w, r)
	if !ok {
		return
	}
	base := s.publicURL + "/" + t
	issuer := s.tenantIssuer(t)
	if t == "common" {
		// Entra ID's multi-tenant document names a placeholder issuer.
		issuer = s.publicURL + "/{tenantid}/v2.0"
	}
	w.Header().Set("Cache-Control", "public, max-age=3600")
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                issuer,
		"token_endpoint":                        base + "/oauth2/v2.0/token",
		"authorization_endpoint":                base + "/oauth2/v2.0/authorize",
		"jwks_uri":                              base + "/discovery/v2.0/keys",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "client_secret_basic"},
		"grant_types_supported":                 []string{"client_credentials"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"scopes_supported":                      []string{graphResource + "/.default"},
		"claims_supported": []string{"aud", "iss", "iat", "nbf", "exp", "appid", "azp", "app_displayname",
			"appidacr", "idtyp", "oid", "sub", "tid", "roles", "ver", "uti"},
		"tenant_region_scope": "NA",
	})
}

// handleKeys serves the JWKS (RFC 7517 §5). The max-age is short because a
// key another node rotates in must reach relying parties quickly.
func (s *Service) handleKeys(w http.ResponseWriter, r *http.Request) {
	if _, ok := s.documentTenant(w, r); !ok {
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=300")
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	_, _ = w.Write(s.keys.JWKS())
}

// handleBotOpenIDConfiguration serves the document bots written against
// Graph fetch to validate notification tokens
// (https://learn.microsoft.com/microsoftteams/platform/bots/calls-and-meetings/call-notifications).
func (s *Service) handleBotOpenIDConfiguration(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "public, max-age=3600")
	writeJSON(w, http.StatusOK, map[string]any{
		"issuer":                                s.notifIssuer,
		"authorization_endpoint":                s.publicURL + "/common/oauth2/v2.0/authorize",
		"jwks_uri":                              s.publicURL + "/common/discovery/v2.0/keys",
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"token_endpoint_auth_methods_supported": []string{"private_key_jwt"},
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode response", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(body)
}

func randomID(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b)
}
