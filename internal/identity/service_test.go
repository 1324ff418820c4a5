package identity

import (
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

const graphScope = "https://graph.microsoft.com/.default"

type tokenReq struct {
	path        string
	form        url.Values
	basic       [2]string
	contentType string
}

func (e *env) post(t *testing.T, r tokenReq) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, e.url+r.path, strings.NewReader(r.form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	ct := r.contentType
	if ct == "" {
		ct = "application/x-www-form-urlencoded"
	}
	req.Header.Set("Content-Type", ct)
	if r.basic[0] != "" {
		req.SetBasicAuth(url.QueryEscape(r.basic[0]), url.QueryEscape(r.basic[1]))
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func (e *env) get(t *testing.T, path string) (*http.Response, []byte) {
	t.Helper()
	resp, err := e.srv.Client().Get(e.url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

func creds(tenant, app, secret string) tokenReq {
	return tokenReq{path: "/" + tenant + "/oauth2/v2.0/token", form: url.Values{
		"grant_type": {"client_credentials"}, "client_id": {app}, "client_secret": {secret}, "scope": {graphScope},
	}}
}

// token obtains an access token over HTTP.
func (e *env) token(t *testing.T, tenant, app, secret string) string {
	t.Helper()
	resp, body := e.post(t, creds(tenant, app, secret))
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token: %d %s", resp.StatusCode, body)
	}
	var tr graph.TokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		t.Fatal(err)
	}
	return tr.AccessToken
}

func bearer(tok string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/v1.0/communications/calls", nil)
	r.Header.Set("Authorization", "Bearer "+tok)
	return r
}

func TestTokenIssuance(t *testing.T) {
	e := newEnv(t)
	with := func(r tokenReq, f func(*tokenReq)) tokenReq {
		r.form = url.Values(maps(r.form))
		f(&r)
		return r
	}
	base := creds(tenantA, appOne, secret1)
	cases := map[string]tokenReq{
		"v2 post":        base,
		"upper-case ids": creds(strings.ToUpper(tenantA), strings.ToUpper(appOne), secret1),
		"graph app id":   with(base, func(r *tokenReq) { r.form.Set("scope", graphAppID+"/.default") }),
		"basic auth": with(base, func(r *tokenReq) {
			r.form.Del("client_id")
			r.form.Del("client_secret")
			r.basic = [2]string{appOne, secret1}
		}),
		"basic + same id": with(base, func(r *tokenReq) { r.form.Del("client_secret"); r.basic = [2]string{appOne, secret1} }),
		"oidc scopes too": with(base, func(r *tokenReq) { r.form.Set("scope", "openid "+graphScope+" offline_access") }),
		"content-type cs": with(base, func(r *tokenReq) { r.contentType = "application/x-www-form-urlencoded; charset=utf-8" }),
		"v1 resource": with(base, func(r *tokenReq) {
			r.path = "/" + tenantA + "/oauth2/token"
			r.form.Del("scope")
			r.form.Set("resource", graphResource)
		}),
		"v1 resource + /": with(base, func(r *tokenReq) {
			r.path = "/" + tenantA + "/oauth2/token"
			r.form.Del("scope")
			r.form.Set("resource", graphResource+"/")
		}),
		"v1 graph app id": with(base, func(r *tokenReq) {
			r.path = "/" + tenantA + "/oauth2/token"
			r.form.Del("scope")
			r.form.Set("resource", graphAppID)
		}),
		"app in 2 tenants": creds(tenantB, appTwo, secret2),
	}
	for name, req := range cases {
		t.Run(name, func(t *testing.T) {
			resp, body := e.post(t, req)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, body)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q", cc)
			}
			var tr graph.TokenResponse
			if err := json.Unmarshal(body, &tr); err != nil {
				t.Fatal(err)
			}
			if tr.TokenType != "Bearer" || tr.ExpiresIn != 3600 || tr.ExtExpiresIn != 3600 || tr.AccessToken == "" {
				t.Fatalf("response %s", body)
			}
			p, err := e.svc.Authenticate(bearer(tr.AccessToken))
			if err != nil {
				t.Fatalf("Authenticate: %v", err)
			}
			wantApp, wantTenant := appOne, tenantA
			if name == "app in 2 tenants" {
				wantApp, wantTenant = appTwo, tenantB
			}
			if p.AppID != wantApp || p.TenantID != wantTenant || p.App == nil || p.App.ID != wantApp {
				t.Errorf("principal %+v", p)
			}
		})
	}

	// The claims, as a client decoding the token would see them.
	tok := e.token(t, tenantA, appOne, secret1)
	var claims map[string]any
	parsed, err := jwt.NewParser(jwt.WithTimeFunc(e.clk.Now)).ParseWithClaims(tok, jwt.MapClaims{}, e.keys.Keyfunc)
	if err != nil {
		t.Fatal(err)
	}
	claims = parsed.Claims.(jwt.MapClaims)
	now := e.clk.Now().Unix()
	want := map[string]any{
		"aud": graphResource, "iss": e.url + "/" + tenantA + "/v2.0", "appid": appOne, "azp": appOne,
		"app_displayname": "One", "appidacr": "1", "idtyp": "app", "tid": tenantA, "ver": "2.0",
		"iat": float64(now), "nbf": float64(now), "exp": float64(now + 3600),
		"oid": principalID(appOne, tenantA), "sub": principalID(appOne, tenantA),
	}
	for k, v := range want {
		if claims[k] != v {
			t.Errorf("claim %s = %v, want %v", k, claims[k], v)
		}
	}
	if fmt.Sprint(claims["roles"]) != "[Calls.Initiate.All Calls.AccessMedia.All]" {
		t.Errorf("roles = %v", claims["roles"])
	}
	if uti, _ := claims["uti"].(string); len(uti) < 16 {
		t.Errorf("uti = %q", uti)
	}
	if parsed.Header["kid"] == nil || parsed.Header["alg"] != "RS256" {
		t.Errorf("header %v", parsed.Header)
	}
	if tok == e.token(t, tenantA, appOne, secret1) {
		t.Error("two token requests returned the same token (uti is random)")
	}
}

func maps(v url.Values) map[string][]string {
	out := make(map[string][]string, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}

func TestTokenErrors(t *testing.T) {
	e := newEnv(t)
	base := creds(tenantA, appOne, secret1)
	with := func(f func(*tokenReq)) tokenReq {
		r := base
		r.form = url.Values(maps(base.form))
		f(&r)
		return r
	}
	v1 := func(r *tokenReq) { r.path = "/" + tenantA + "/oauth2/token"; r.form.Del("scope") }
	cases := []struct {
		name   string
		req    tokenReq
		status int
		code   string
		aadsts string
	}{
		{"unknown tenant", with(func(r *tokenReq) { r.path = "/" + tenantA[:35] + "9/oauth2/v2.0/token" }), 400, "invalid_request", "AADSTS90002"},
		{"common tenant", with(func(r *tokenReq) { r.path = "/common/oauth2/v2.0/token" }), 400, "invalid_request", "AADSTS90002"},
		{"json body", with(func(r *tokenReq) { r.contentType = "application/json" }), 400, "invalid_request", "AADSTS900144"},
		{"no grant_type", with(func(r *tokenReq) { r.form.Del("grant_type") }), 400, "invalid_request", "AADSTS900144"},
		{"password grant", with(func(r *tokenReq) { r.form.Set("grant_type", "password") }), 400, "unsupported_grant_type", "AADSTS70003"},
		{"no scope", with(func(r *tokenReq) { r.form.Del("scope") }), 400, "invalid_request", "AADSTS900144"},
		{"scope without .default", with(func(r *tokenReq) { r.form.Set("scope", "https://graph.microsoft.com/Calls.Initiate.All") }), 400, "invalid_scope", "AADSTS1002012"},
		{"two resources", with(func(r *tokenReq) { r.form.Set("scope", graphScope+" https://vault.azure.net/.default") }), 400, "invalid_scope", "AADSTS1002012"},
		{"other resource scope", with(func(r *tokenReq) { r.form.Set("scope", "https://vault.azure.net/.default") }), 400, "invalid_resource", "AADSTS500011"},
		{"v1 no resource", with(v1), 400, "invalid_request", "AADSTS900144"},
		{"v1 other resource", with(func(r *tokenReq) { v1(r); r.form.Set("resource", "https://vault.azure.net") }), 400, "invalid_resource", "AADSTS500011"},
		{"no client_id", with(func(r *tokenReq) { r.form.Del("client_id") }), 400, "invalid_request", "AADSTS900144"},
		{"no secret", with(func(r *tokenReq) { r.form.Del("client_secret") }), 401, "invalid_client", "AADSTS7000218"},
		{"bad secret", with(func(r *tokenReq) { r.form.Set("client_secret", secret2) }), 401, "invalid_client", "AADSTS7000215"},
		{"unknown app", with(func(r *tokenReq) { r.form.Set("client_id", "0c0c0c0c-3333-4333-8333-0c0c0c0c0c0c") }), 401, "invalid_client", "AADSTS7000215"},
		{"basic bad secret", with(func(r *tokenReq) {
			r.form.Del("client_id")
			r.form.Del("client_secret")
			r.basic = [2]string{appOne, "nope-nope"}
		}), 401, "invalid_client", "AADSTS7000215"},
		{"basic and form secret", with(func(r *tokenReq) { r.basic = [2]string{appOne, secret1} }), 400, "invalid_request", "AADSTS9002313"},
		{"basic other client_id", with(func(r *tokenReq) { r.form.Del("client_secret"); r.basic = [2]string{appTwo, secret2} }), 400, "invalid_request", "AADSTS9002313"},
		{"client assertion", with(func(r *tokenReq) {
			r.form.Del("client_secret")
			r.form.Set("client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
			r.form.Set("client_assertion", "x.y.z")
		}), 400, "invalid_request", "AADSTS9002313"},
		{"not provisioned in tenant", with(func(r *tokenReq) { r.path = "/" + tenantB + "/oauth2/v2.0/token" }), 400, "unauthorized_client", "AADSTS700016"},
	}
	descs := map[string]string{}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			resp, body := e.post(t, c.req)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, body)
			}
			if cc := resp.Header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control = %q", cc)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type = %q", ct)
			}
			var te graph.TokenError
			if err := json.Unmarshal(body, &te); err != nil {
				t.Fatal(err)
			}
			if te.Error != c.code || !strings.HasPrefix(te.ErrorDescription, c.aadsts+": ") ||
				len(te.ErrorCodes) != 1 || fmt.Sprintf("AADSTS%d", te.ErrorCodes[0]) != c.aadsts ||
				!config.IsGUID(te.TraceID) || !config.IsGUID(te.CorrelationID) || te.Timestamp == "" {
				t.Errorf("body %s", body)
			}
			if !strings.Contains(te.ErrorDescription, "Trace ID: "+te.TraceID) {
				t.Errorf("description lacks the trace id: %s", te.ErrorDescription)
			}
			if strings.Contains(string(body), secret1) || strings.Contains(string(body), secret2) {
				t.Errorf("error echoes a secret: %s", body)
			}
			if www := resp.Header.Get("WWW-Authenticate"); (c.name == "basic bad secret") != strings.HasPrefix(www, "Basic") {
				t.Errorf("WWW-Authenticate = %q", www)
			}
			descs[c.name] = te.ErrorDescription[:strings.Index(te.ErrorDescription, " Trace ID")]
		})
	}
	// An unknown app and a wrong secret read the same, but for the id echoed.
	unknown := strings.ReplaceAll(descs["unknown app"], "0c0c0c0c-3333-4333-8333-0c0c0c0c0c0c", appOne)
	if unknown != descs["bad secret"] {
		t.Errorf("unknown app and bad secret differ:\n%s\n%s", descs["unknown app"], descs["bad secret"])
	}

	// client-request-id is echoed as the correlation id.
	req, _ := http.NewRequest(http.MethodPost, e.url+"/"+tenantA+"/oauth2/v2.0/token", strings.NewReader("grant_type=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("client-request-id", aliceID)
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var te graph.TokenError
	_ = json.NewDecoder(resp.Body).Decode(&te)
	resp.Body.Close()
	if te.CorrelationID != aliceID {
		t.Errorf("correlation_id = %q, want the client-request-id", te.CorrelationID)
	}
}

func TestAuthenticateRejects(t *testing.T) {
	e := newEnv(t)
	good := e.token(t, tenantA, appOne, secret1)
	now := e.clk.Now()
	claims := func(f func(c *accessClaims)) string {
		c := &accessClaims{
			Aud: audience{graphResource}, Iss: e.url + "/" + tenantA + "/v2.0",
			Iat: jwt.NewNumericDate(now), Nbf: jwt.NewNumericDate(now), Exp: jwt.NewNumericDate(now.Add(time.Hour)),
			AppID: appOne, TID: tenantA, Roles: []string{"Calls.Initiate.All"}, Ver: "2.0",
		}
		f(c)
		tok, err := e.keys.Sign(c)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	parts := strings.Split(good, ".")
	sig := []byte(parts[2])
	// Swap one signature character for another valid base64url one (a bit
	// flip could make it '.' or '/', which is malformed, not forged).
	if sig[10] == 'A' {
		sig[10] = 'B'
	} else {
		sig[10] = 'A'
	}
	if sig[10] == parts[2][10] {
		t.Fatal("tamper did nothing")
	}
	tampered := parts[0] + "." + parts[1] + "." + string(sig)
	// The payload swapped for another app's, with the original signature.
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(
		`{"aud":"https://graph.microsoft.com","iss":"`+e.url+`/`+tenantA+`/v2.0","appid":"`+appTwo+`","tid":"`+tenantA+`","exp":`+fmt.Sprint(now.Add(time.Hour).Unix())+`}`)) + "." + parts[2]
	none := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + parts[1] + "."
	hs, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"aud": graphResource}).SignedString([]byte("secret"))
	notif, err := e.svc.NotificationToken(appOne, tenantA)
	if err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, header, msg string
	}{
		{"no header", "", "Access token is empty."},
		{"empty bearer", "Bearer ", "Access token is empty."},
		{"basic scheme", "Basic " + base64.StdEncoding.EncodeToString([]byte(appOne+":"+secret1)), "Bearer"},
		{"malformed", "Bearer not-a-jwt", "CompactToken parsing failed"},
		{"tampered signature", "Bearer " + tampered, "Invalid signature"},
		{"forged payload", "Bearer " + forged, "Invalid signature"},
		{"alg none", "Bearer " + none, "Invalid signature"},
		{"HS256", "Bearer " + hs, "Invalid signature"},
		{"notification token (aud = app id)", "Bearer " + notif, "Invalid audience"},
		{"wrong audience", "Bearer " + claims(func(c *accessClaims) { c.Aud = audience{"https://vault.azure.net"} }), "Invalid audience"},
		{"wrong issuer", "Bearer " + claims(func(c *accessClaims) { c.Iss = "https://sts.windows.net/" + tenantA + "/" }), "Invalid issuer"},
		{"issuer of another tenant", "Bearer " + claims(func(c *accessClaims) { c.Iss = e.url + "/" + tenantB + "/v2.0" }), "Invalid issuer"},
		{"no tid", "Bearer " + claims(func(c *accessClaims) { c.TID = "" }), "Invalid issuer"},
		{"no exp", "Bearer " + claims(func(c *accessClaims) { c.Exp = nil }), "required claim"},
		{"not yet valid", "Bearer " + claims(func(c *accessClaims) { c.Nbf = jwt.NewNumericDate(now.Add(time.Minute)) }), "not yet valid"},
		{"unknown app", "Bearer " + claims(func(c *accessClaims) { c.AppID = "0c0c0c0c-3333-4333-8333-0c0c0c0c0c0c" }), "is not registered"},
		{"unknown tenant", "Bearer " + claims(func(c *accessClaims) {
			c.TID = "44444444-dddd-4ddd-8ddd-444444444444"
			c.Iss = e.url + "/" + c.TID + "/v2.0"
		}), "is not configured"},
		{"app not provisioned in tid", "Bearer " + claims(func(c *accessClaims) {
			c.TID = tenantB
			c.Iss = e.url + "/" + tenantB + "/v2.0"
		}), "not provisioned in tenant " + tenantB},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/v1.0/communications/calls", nil)
			if c.header != "" {
				r.Header.Set("Authorization", c.header)
			}
			p, err := e.svc.Authenticate(r)
			if err == nil {
				t.Fatalf("accepted: %+v", p)
			}
			if k := errs.KindOf(err); k != errs.Unauthenticated {
				t.Errorf("kind %v, want unauthenticated: %v", k, err)
			}
			if msg := errs.Message(err); !strings.Contains(msg, c.msg) {
				t.Errorf("message %q, want it to contain %q", msg, c.msg)
			}
		})
	}

	// Leeway: 29s past exp still passes, 31s does not.
	if _, err := e.svc.Authenticate(bearer(good)); err != nil {
		t.Fatalf("good token: %v", err)
	}
	// Once the good token is verified (and remembered), its tampered and
	// forged variants are still checked, and refused.
	for _, tok := range []string{tampered, forged} {
		if _, err := e.svc.Authenticate(bearer(tok)); errs.KindOf(err) != errs.Unauthenticated || !strings.Contains(errs.Message(err), "Invalid signature") {
			t.Fatalf("a variant of a verified token: %v, want invalid signature", err)
		}
	}
	e.clk.Advance(time.Hour + 29*time.Second)
	if _, err := e.svc.Authenticate(bearer(good)); err != nil {
		t.Fatalf("token within leeway: %v", err)
	}
	e.clk.Advance(2 * time.Second)
	_, err = e.svc.Authenticate(bearer(good))
	if errs.KindOf(err) != errs.Unauthenticated || errs.Message(err) != "Lifetime validation failed, the token is expired." {
		t.Fatalf("expired token: %v", err)
	}
}

// TestAuthenticateAfterConfigChange: a token stays bound to the directory as
// it is now: an app no longer provisioned in the token's tenant is refused,
// and roles withdrawn since issuance are dropped.
func TestAuthenticateAfterConfigChange(t *testing.T) {
	e := newEnv(t)
	tokA := e.token(t, tenantA, appTwo, secret2)
	tokOne := e.token(t, tenantA, appOne, secret1)

	c := testConfig(t)
	c.HTTP.PublicURL = e.url
	c.Applications[1].Tenants = []string{tenantB}
	c.Applications[1].Numbers = nil
	c.Applications[0].Permissions = []string{"Calls.AccessMedia.All", "Calls.JoinGroupCall.All"}
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	svc := New(c, NewDirectory(c), e.keys, e.clk.Now)

	_, err := svc.Authenticate(bearer(tokA))
	if errs.KindOf(err) != errs.Unauthenticated || !strings.Contains(errs.Message(err), "not provisioned in tenant") {
		t.Fatalf("token of tenant A for an app no longer there: %v", err)
	}
	p, err := svc.Authenticate(bearer(tokOne))
	if err != nil {
		t.Fatal(err)
	}
	// The token carries Initiate and AccessMedia; the app now holds AccessMedia and JoinGroupCall.
	if fmt.Sprint(p.Roles) != "[Calls.AccessMedia.All]" {
		t.Errorf("roles = %v, want [Calls.AccessMedia.All]", p.Roles)
	}
	if err := p.Require("Calls.JoinGroupCall.All"); err == nil {
		t.Error("Require granted a role the token does not carry")
	}
}

func TestRequire(t *testing.T) {
	e := newEnv(t)
	p, err := e.svc.Authenticate(bearer(e.token(t, tenantA, appOne, secret1)))
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Require("Calls.Initiate.All"); err != nil {
		t.Errorf("Require(held) = %v", err)
	}
	if err := p.Require("Calls.JoinGroupCall.All", "calls.accessmedia.all"); err != nil {
		t.Errorf("Require(any, one held) = %v", err)
	}
	if err := p.Require(); err != nil {
		t.Errorf("Require() = %v", err)
	}
	err = p.Require("Calls.JoinGroupCall.All")
	if errs.KindOf(err) != errs.Forbidden || !strings.Contains(errs.Message(err), "Calls.JoinGroupCall.All") {
		t.Errorf("Require(missing) = %v", err)
	}
	err = p.Require("Calls.JoinGroupCall.All", "Calls.JoinGroupCallAsGuest.All")
	if msg := errs.Message(err); errs.KindOf(err) != errs.Forbidden ||
		!strings.Contains(msg, "Calls.JoinGroupCall.All") || !strings.Contains(msg, "Calls.JoinGroupCallAsGuest.All") {
		t.Errorf("Require(missing two) = %v", err)
	}
}

func TestDiscoveryDocuments(t *testing.T) {
	e := newEnv(t)
	var doc map[string]any
	resp, body := e.get(t, "/"+strings.ToUpper(tenantA)+"/v2.0/.well-known/openid-configuration")
	if resp.StatusCode != 200 {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatal(err)
	}
	base := e.url + "/" + tenantA
	for k, v := range map[string]string{
		"issuer": base + "/v2.0", "token_endpoint": base + "/oauth2/v2.0/token",
		"authorization_endpoint": base + "/oauth2/v2.0/authorize", "jwks_uri": base + "/discovery/v2.0/keys",
	} {
		if doc[k] != v {
			t.Errorf("%s = %v, want %s", k, doc[k], v)
		}
	}
	for _, k := range []string{"id_token_signing_alg_values_supported", "token_endpoint_auth_methods_supported", "response_types_supported", "subject_types_supported"} {
		if _, ok := doc[k].([]any); !ok {
			t.Errorf("%s missing: %s", k, body)
		}
	}
	// The issuer in the document is the iss of the tenant's tokens.
	tok := e.token(t, tenantA, appOne, secret1)
	if _, err := jwt.NewParser(jwt.WithTimeFunc(e.clk.Now), jwt.WithIssuer(doc["issuer"].(string))).Parse(tok, e.keys.Keyfunc); err != nil {
		t.Errorf("token iss differs from the document's issuer: %v", err)
	}

	for _, path := range []string{"/common/v2.0/.well-known/openid-configuration", "/common/discovery/v2.0/keys", "/" + tenantB + "/discovery/v2.0/keys"} {
		if resp, body := e.get(t, path); resp.StatusCode != 200 {
			t.Errorf("GET %s: %d %s", path, resp.StatusCode, body)
		}
	}
	for _, path := range []string{"/44444444-dddd-4ddd-8ddd-444444444444/v2.0/.well-known/openid-configuration", "/nope/discovery/v2.0/keys"} {
		resp, body := e.get(t, path)
		var te graph.TokenError
		if resp.StatusCode != 404 || json.Unmarshal(body, &te) != nil || te.Error == "" {
			t.Errorf("GET %s: %d %s, want 404 with an identity-platform error", path, resp.StatusCode, body)
		}
	}
	resp, _ = e.get(t, "/"+tenantA+"/discovery/v2.0/keys")
	if cc := resp.Header.Get("Cache-Control"); !strings.Contains(cc, "max-age=") {
		t.Errorf("JWKS Cache-Control = %q", cc)
	}
}

// TestNotificationTokenVerifiesWithPublishedJWKS plays a bot: it knows only
// the Bot-Framework-style document's URL, fetches the JWKS it points to over
// HTTP, builds the keys from n and e, and validates as the Graph samples do.
func TestNotificationTokenVerifiesWithPublishedJWKS(t *testing.T) {
	e := newEnv(t)
	tok, err := e.svc.NotificationToken(strings.ToUpper(appTwo), tenantB)
	if err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/v1/.well-known/openidconfiguration", "/v1/.well-known/OpenIdConfiguration"} {
		resp, body := e.get(t, path)
		var doc struct {
			Issuer  string   `json:"issuer"`
			JWKSURI string   `json:"jwks_uri"`
			Algs    []string `json:"id_token_signing_alg_values_supported"`
		}
		if resp.StatusCode != 200 || json.Unmarshal(body, &doc) != nil {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, body)
		}
		if doc.Issuer != e.url || doc.JWKSURI != e.url+"/common/discovery/v2.0/keys" || len(doc.Algs) != 1 || doc.Algs[0] != "RS256" {
			t.Fatalf("document %s", body)
		}
		keys := fetchJWKS(t, e.srv.Client(), doc.JWKSURI)
		parsed, err := jwt.Parse(tok, func(tk *jwt.Token) (any, error) {
			kid, _ := tk.Header["kid"].(string)
			if k, ok := keys[kid]; ok {
				return k, nil
			}
			return nil, fmt.Errorf("kid %q not in the JWKS", kid)
		}, jwt.WithValidMethods([]string{"RS256"}), jwt.WithAudience(appTwo), jwt.WithIssuer(doc.Issuer),
			jwt.WithTimeFunc(e.clk.Now), jwt.WithExpirationRequired(), jwt.WithIssuedAt())
		if err != nil {
			t.Fatalf("bot validation: %v", err)
		}
		c := parsed.Claims.(jwt.MapClaims)
		if c["tid"] != tenantB {
			t.Errorf("tid = %v", c["tid"])
		}
		if exp, _ := c.GetExpirationTime(); !exp.Equal(e.clk.Now().Add(time.Hour)) {
			t.Errorf("exp = %v", exp)
		}
	}
	// The tenant's OpenID configuration lists the same JWKS.
	if got, want := fetchJWKS(t, e.srv.Client(), e.url+"/"+tenantB+"/discovery/v2.0/keys"), fetchJWKS(t, e.srv.Client(), e.url+"/common/discovery/v2.0/keys"); len(got) != len(want) {
		t.Errorf("tenant JWKS has %d keys, common %d", len(got), len(want))
	}
}

func TestNotificationIssuerConfigurable(t *testing.T) {
	e := newEnv(t)
	c := *e.cfg
	c.Identity.NotificationIssuer = "https://api.botframework.com"
	svc := New(&c, e.dir, e.keys, e.clk.Now)
	tok, err := svc.NotificationToken(appOne, tenantA)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jwt.Parse(tok, e.keys.Keyfunc, jwt.WithIssuer("https://api.botframework.com"), jwt.WithAudience(appOne), jwt.WithTimeFunc(e.clk.Now)); err != nil {
		t.Error(err)
	}
}

// fetchJWKS GETs a JWKS and decodes its RSA keys from n and e by hand.
func fetchJWKS(t *testing.T, client *http.Client, uri string) map[string]*rsa.PublicKey {
	t.Helper()
	resp, err := client.Get(uri)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var set struct {
		Keys []struct {
			Kty, Kid, N, E, Alg, Use string
		} `json:"keys"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	keys := map[string]*rsa.PublicKey{}
	for _, k := range set.Keys {
		if k.Kty != "RSA" || k.Alg != "RS256" || k.Use != "sig" {
			t.Fatalf("unexpected key %+v", k)
		}
		n, err1 := base64.RawURLEncoding.DecodeString(k.N)
		e, err2 := base64.RawURLEncoding.DecodeString(k.E)
		if err1 != nil || err2 != nil {
			t.Fatalf("key %s: n %v, e %v", k.Kid, err1, err2)
		}
		keys[k.Kid] = &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	}
	if len(keys) == 0 {
		t.Fatal("empty JWKS")
	}
	return keys
}

func TestNotificationTokenCached(t *testing.T) {
	e := newEnv(t)
	first, err := e.svc.NotificationToken(appOne, tenantA)
	if err != nil {
		t.Fatal(err)
	}
	// Concurrent callers share the cached token.
	var wg sync.WaitGroup
	got := make([]string, 16)
	for i := range got {
		wg.Go(func() { got[i], _ = e.svc.NotificationToken(strings.ToUpper(appOne), strings.ToUpper(tenantA)) })
	}
	wg.Wait()
	for _, g := range got {
		if g != first {
			t.Fatal("second call signed a new token")
		}
	}
	other, _ := e.svc.NotificationToken(appTwo, tenantA)
	if other == first {
		t.Fatal("two apps share a token")
	}

	e.clk.Advance(45*time.Minute - time.Second) // more than a quarter of the hour left
	if again, _ := e.svc.NotificationToken(appOne, tenantA); again != first {
		t.Fatal("renewed while more than a quarter of its life remained")
	}
	e.clk.Advance(time.Second)
	renewed, err := e.svc.NotificationToken(appOne, tenantA)
	if err != nil || renewed == first {
		t.Fatalf("not renewed with a quarter of its life left: %v", err)
	}
	c := jwt.MapClaims{}
	if _, err := jwt.NewParser(jwt.WithTimeFunc(e.clk.Now)).ParseWithClaims(renewed, c, e.keys.Keyfunc); err != nil {
		t.Fatal(err)
	}
	if exp, _ := c.GetExpirationTime(); !exp.Equal(e.clk.Now().Add(time.Hour)) {
		t.Errorf("renewed exp = %v, want now+1h", exp)
	}

	if _, err := e.svc.NotificationToken("0c0c0c0c-3333-4333-8333-0c0c0c0c0c0c", tenantA); errs.KindOf(err) != errs.NotFound {
		t.Errorf("unknown app: %v", err)
	}
	if _, err := e.svc.NotificationToken(appOne, tenantB); errs.KindOf(err) != errs.NotFound {
		t.Errorf("app not in tenant: %v", err)
	}
}

func BenchmarkAuthenticate(b *testing.B) {
	e := newEnv(b)
	resp, body := e.postB(b, creds(tenantA, appOne, secret1))
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("token: %s", body)
	}
	var tr graph.TokenResponse
	if err := json.Unmarshal(body, &tr); err != nil {
		b.Fatal(err)
	}
	r := bearer(tr.AccessToken)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := e.svc.Authenticate(r); err != nil {
			b.Fatal(err)
		}
	}
}

func (e *env) postB(b *testing.B, r tokenReq) (*http.Response, []byte) {
	resp, err := e.srv.Client().PostForm(e.url+r.path, r.form)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}
