package calltest_test

import (
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

func graphError(t *testing.T, r *calltest.Response, status int, code string) graph.ODataError {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("status %s, want %d: %s", r.Status, status, r.Body)
	}
	var e graph.ErrorResponse
	r.JSON(t, &e)
	if e.Error.Code != code || e.Error.Message == "" || e.Error.InnerError == nil ||
		e.Error.InnerError.RequestID == "" || e.Error.InnerError.RequestID != r.Header.Get("request-id") || e.Error.InnerError.Date == "" {
		t.Fatalf("error body %s, want code %s with innerError request-id and date", r.Body, code)
	}
	return e.Error
}

func TestAuthentication(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	body := calltest.CallTo(p.Hook.URL, calltest.AliceID)

	r := p.Do(calltest.Req{Method: "POST", Path: calls, Body: body})
	graphError(t, r, 401, "InvalidAuthenticationToken")
	if !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("401 without WWW-Authenticate: %v", r.Header)
	}
	graphError(t, p.Do(calltest.Req{Method: "POST", Path: calls, Body: body, Token: "not.a.jwt"}), 401, "InvalidAuthenticationToken")
	tok := p.Token(calltest.BotID, calltest.TenantID)
	tampered := tok[:len(tok)-4] + "AAAA"
	graphError(t, p.Do(calltest.Req{Method: "POST", Path: calls, Body: body, Token: tampered}), 401, "InvalidAuthenticationToken")

	// Missing permission: 403 naming it.
	e := graphError(t, p.Do(calltest.Req{Method: "POST", Path: calls, Body: body, Token: p.Token(calltest.WeakBotID, calltest.TenantID)}), 403, "Forbidden")
	if !strings.Contains(e.Message, "Calls.Initiate.All") {
		t.Errorf("403 message does not name the permission: %q", e.Message)
	}

	// Another application's or another tenant's call: 404.
	call := p.CreateCall(calltest.AliceID)
	graphError(t, p.Do(calltest.Req{Method: "GET", Path: calls + "/" + call.ID, Token: p.Token(calltest.Bot2ID, calltest.TenantID)}), 404, "itemNotFound")
	graphError(t, p.Do(calltest.Req{Method: "DELETE", Path: calls + "/" + call.ID, Token: p.Token(calltest.OtherBotID, calltest.OtherTenantID)}), 404, "itemNotFound")
	// A tenantId in the body that is not the token's.
	other := calltest.CallTo(p.Hook.URL, calltest.AliceID)
	other["tenantId"] = calltest.OtherTenantID
	graphError(t, p.Bot("POST", calls, other), 403, "Forbidden")

	// Token endpoint errors are the identity platform's shape.
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {calltest.BotID}, "client_secret": {"wrong"},
		"scope": {"https://graph.microsoft.com/.default"}}
	resp, err := p.Client.PostForm(p.URL+"/"+calltest.TenantID+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 {
		t.Errorf("wrong secret: %s", resp.Status)
	}
}

func TestRequestHygiene(t *testing.T) {
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) { c.HTTP.MaxBodyBytes = 4096 }})
	tok := p.Token(calltest.BotID, calltest.TenantID)

	// request-id on every response; client-request-id echoed.
	r := p.Do(calltest.Req{Method: "GET", Path: calls + "/nope", Token: tok, Header: map[string]string{"client-request-id": "abc-123"}})
	e := graphError(t, r, 404, "itemNotFound")
	if r.Header.Get("client-request-id") != "abc-123" || e.InnerError.ClientRequestID != "abc-123" {
		t.Errorf("client-request-id not echoed: %v %+v", r.Header, e.InnerError)
	}

	graphError(t, p.Do(calltest.Req{Method: "POST", Path: calls, Token: tok, Body: `{"callbackUri": `}), 400, "BadRequest")
	e = graphError(t, p.Do(calltest.Req{Method: "POST", Path: calls, Token: tok, Body: `{"callbackUri": 5}`}), 400, "BadRequest")
	if !strings.Contains(e.Message, "callbackUri") {
		t.Errorf("type error does not name the field: %q", e.Message)
	}
	e = graphError(t, p.Do(calltest.Req{Method: "POST", Path: calls, Token: tok,
		Body: `{"callbackUri":"` + p.Hook.URL + `","mediaConfig":{"preFetchMedia":"x"},"targets":[]}`}), 400, "BadRequest")
	if !strings.Contains(e.Message, "mediaConfig.preFetchMedia") {
		t.Errorf("nested type error does not name the field: %q", e.Message)
	}
	graphError(t, p.Do(calltest.Req{Method: "POST", Path: calls, Token: tok, Body: strings.Repeat(" ", 5000) + "{}"}), 413, "requestTooLarge")
	graphError(t, p.Do(calltest.Req{Method: "POST", Path: calls, Token: tok, Body: "{}", Header: map[string]string{"Content-Type": "text/plain"}}), 415, "unsupportedMediaType")
	graphError(t, p.Do(calltest.Req{Method: "PATCH", Path: calls + "/x", Token: tok}), 405, "methodNotAllowed")
	graphError(t, p.Do(calltest.Req{Method: "GET", Path: "/v1.0/nothing/here", Token: tok}), 404, "itemNotFound")
	e = graphError(t, p.Do(calltest.Req{Method: "POST", Path: calls, Token: tok, Body: map[string]any{"mediaConfig": map[string]any{}}}), 400, "BadRequest")
	if !strings.Contains(e.Message, "callbackUri") {
		t.Errorf("missing callbackUri: %q", e.Message)
	}
	insecure := calltest.CallTo("http://bot.example.com/cb", calltest.AliceID)
	graphError(t, p.Bot("POST", calls, insecure), 400, "BadRequest")

	// Unknown properties are tolerated, odata types optional, bodies may be gzipped.
	body := calltest.CallTo(p.Hook.URL, calltest.AliceID)
	body["someBetaProperty"] = map[string]any{"x": 1}
	delete(body, "@odata.type")
	r = p.Do(calltest.Req{Method: "POST", Path: calls, Token: tok, Body: body, Gzip: true})
	if r.StatusCode != 201 {
		t.Fatalf("gzip create: %s %s", r.Status, r.Body)
	}
	var call graph.Call
	r.JSON(t, &call)
	if r.Header.Get("Location") != p.URL+calls+"/"+call.ID {
		t.Errorf("Location %q", r.Header.Get("Location"))
	}
	// The legacy /app/calls alias and the namespaced action name both work.
	if r := p.Do(calltest.Req{Method: "POST", Path: "/v1.0/app/calls/" + call.ID + "/microsoft.graph.keepAlive", Token: tok}); r.StatusCode != 200 {
		t.Fatalf("namespaced keepAlive on /app/calls: %s %s", r.Status, r.Body)
	}
	graphError(t, p.Do(calltest.Req{Method: "POST", Path: calls + "/" + call.ID + "/nonsense", Token: tok}), 400, "BadRequest")

	if r := p.Do(calltest.Req{Method: "GET", Path: "/healthz"}); r.StatusCode != 200 {
		t.Errorf("healthz %s", r.Status)
	}
	if r := p.Do(calltest.Req{Method: "GET", Path: "/metrics"}); r.StatusCode != 200 || !strings.Contains(string(r.Body), "switchboard_calls_active") {
		t.Errorf("metrics %s", r.Status)
	}
}

func TestThrottling(t *testing.T) {
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		c.HTTP.RequestsPerSecond = 1
		c.HTTP.Burst = 3
	}})
	tok := p.Token(calltest.BotID, calltest.TenantID)
	var last *calltest.Response
	for range 5 {
		last = p.Do(calltest.Req{Method: "GET", Path: calls + "/x", Token: tok})
	}
	graphError(t, last, 429, "TooManyRequests")
	if s, err := strconv.Atoi(last.Header.Get("Retry-After")); err != nil || s < 1 {
		t.Fatalf("Retry-After %q", last.Header.Get("Retry-After"))
	}
	// Another application is not throttled by the first one's load.
	if r := p.Do(calltest.Req{Method: "GET", Path: calls + "/x", Token: p.Token(calltest.Bot2ID, calltest.TenantID)}); r.StatusCode != 404 {
		t.Fatalf("other app: %s", r.Status)
	}
}

func TestCallLimitPerApp(t *testing.T) {
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) { c.Calls.MaxConcurrentPerApp = 1 }})
	p.CreateCall(calltest.AliceID)
	graphError(t, p.Bot("POST", calls, calltest.CallTo(p.Hook.URL, calltest.AliceID)), 429, "TooManyRequests")
}

func TestIncomingCallerEncryptedWithoutPermissions(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	_, callID := simCall(t, p, calltest.WeakBotNumber)
	n := p.WeakHook.WaitState(t, callID, graph.StateIncoming)
	c := n.Call(t)
	if c.Source.Identity.Encrypted == nil || c.Source.Identity.Phone != nil {
		t.Fatalf("caller identity visible to an app without calls permissions: %s", n.ResourceData)
	}
}
