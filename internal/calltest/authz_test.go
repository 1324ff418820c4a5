package calltest_test

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// The authorisation table (issue 15): every route the node registers is
// classified here, either public by design (with why) or guarded, and
// every guarded route is refused, method by method, for every bad
// credential. TestAuthorisationEveryRoute fails on a route this table does
// not know, so a new route cannot skip it.

// authzReq is one request on a guarded route. Its path may name the
// fixture's resources: {call} (BotID's call), {op} (one of its operations),
// {pid} (one of its participants), {weakcall} (WeakBotID's own call),
// {user} (a user of the test tenant), {meeting} (a meeting Alice
// organizes), {joinWebUrl}.
type authzReq struct {
	method, path, body string
	// foreign: another tenant's valid token gets 404, the same answer as
	// for a resource that does not exist (existence does not leak).
	foreign bool
	// foreignEmpty: another tenant's lookup answers an empty collection.
	foreignEmpty bool
	// otherApp: another application's valid token (same tenant, with and
	// without permissions) gets 404 as well.
	otherApp bool
	// perm: WeakBotID (no permissions) gets 403 naming this permission,
	// on permPath (path when empty); incoming: while its call rings.
	perm     string
	permPath string
	permBody string
	incoming bool
}

// routeRule classifies one registered pattern.
type routeRule struct {
	// public says why the route takes no Graph token; empty: it needs one.
	public string
	// probe is a request the public route answers without a Graph token,
	// with the status wanted.
	probe       *authzReq
	probeStatus int
	// reqs are the guarded route's requests, one per method it serves.
	reqs []authzReq
}

const (
	absentCall    = "0bad0000-0000-4000-8000-000000000000"
	absentUser    = "0bad0000-0000-4000-8000-0000000000aa"
	absentMeeting = "MSpub2FkMDAwMA"
)

func authzTable(p *calltest.Platform) map[string]routeRule {
	rules := map[string]routeRule{}
	createBody := mustJSON(calltest.CallTo(p.Hook.URL, calltest.AliceID))
	weakCreate := mustJSON(calltest.CallTo(p.WeakHook.URL, calltest.AliceID))
	invite := `{"participants":[{"@odata.type":"#microsoft.graph.invitationParticipantInfo","identity":{"user":{"id":"` + calltest.BobID + `"}}}],"clientContext":"c"}`
	transfer := `{"transferTarget":{"identity":{"user":{"id":"` + calltest.BobID + `"}}}}`
	redirect := `{"targets":[{"identity":{"user":{"id":"` + calltest.BobID + `"}}}]}`
	for _, base := range []string{"/v1.0/communications/calls", "/beta/communications/calls", "/v1.0/app/calls", "/beta/app/calls"} {
		call := base + "/{call}"
		weak := base + "/{weakcall}"
		onCall := func(method, path, body string) authzReq {
			return authzReq{method: method, path: path, body: body, foreign: true, otherApp: true}
		}
		withPerm := func(r authzReq, perm, path, body string) authzReq {
			r.perm, r.permPath, r.permBody = perm, path, body
			return r
		}
		rules[base] = routeRule{reqs: []authzReq{{method: "POST", path: base, body: createBody,
			perm: "Calls.Initiate.All", permBody: weakCreate}}}
		rules[base+"/{id}"] = routeRule{reqs: []authzReq{onCall("GET", call, ""), onCall("DELETE", call, "")}}
		redir := withPerm(onCall("POST", call+"/redirect", redirect), "Calls.Initiate.All", weak+"/redirect", redirect)
		redir.incoming = true
		rules[base+"/{id}/{action}"] = routeRule{reqs: []authzReq{
			onCall("POST", call+"/keepAlive", ""),
			withPerm(onCall("POST", call+"/recordResponse", "{}"), "Calls.AccessMedia.All", weak+"/recordResponse", "{}"),
			withPerm(onCall("POST", call+"/subscribeToTone", "{}"), "Calls.AccessMedia.All", weak+"/subscribeToTone", "{}"),
			withPerm(onCall("POST", call+"/transfer", transfer), "Calls.Initiate.All", weak+"/transfer", transfer),
			redir,
		}}
		rules[base+"/{id}/operations/{op}"] = routeRule{reqs: []authzReq{onCall("GET", call+"/operations/{op}", "")}}
		rules[base+"/{id}/participants"] = routeRule{reqs: []authzReq{onCall("GET", call+"/participants", "")}}
		rules[base+"/{id}/participants/{pid}"] = routeRule{reqs: []authzReq{
			onCall("GET", call+"/participants/{pid}", ""),
			onCall("DELETE", call+"/participants/{pid}", ""),
			withPerm(onCall("POST", call+"/participants/invite", invite), "Calls.InitiateGroupCall.All", weak+"/participants/invite", invite),
		}}
		rules[base+"/{id}/participants/{pid}/{action}"] = routeRule{reqs: []authzReq{onCall("POST", call+"/participants/{pid}/mute", "{}")}}
		rules["GET "+base+"/{id}/media"] = routeRule{reqs: []authzReq{
			withPerm(onCall("GET", call+"/media", ""), "Calls.AccessMedia.All", weak+"/media", "")}}
	}
	for _, v := range []string{"/v1.0", "/beta"} {
		user := v + "/users/{user}/onlineMeetings"
		filter := "?" + url.Values{"$filter": {"JoinWebUrl eq '{joinWebUrl}'"}}.Encode()
		const rw, ro = "OnlineMeetings.ReadWrite.All", "OnlineMeetings.Read.All"
		rules[user] = routeRule{reqs: []authzReq{
			{method: "POST", path: user, body: "{}", foreign: true, perm: rw},
			{method: "GET", path: user + filter, foreign: true, perm: ro},
		}}
		createOrGet := authzReq{method: "POST", body: `{"externalId":"authz"}`, foreign: true, perm: rw}
		a, b := createOrGet, createOrGet
		a.path, b.path = user+"/createOrGet", user+"/microsoft.graph.createOrGet"
		rules[user+"/createOrGet"] = routeRule{reqs: []authzReq{a}}
		rules[user+"/microsoft.graph.createOrGet"] = routeRule{reqs: []authzReq{b}}
		rules[user+"/{id}"] = routeRule{reqs: []authzReq{
			{method: "GET", path: user + "/{meeting}", foreign: true, perm: ro},
			{method: "PATCH", path: user + "/{meeting}", body: `{"subject":"taken"}`, foreign: true, perm: rw},
			{method: "DELETE", path: user + "/{meeting}", foreign: true, perm: rw},
		}}
		comms := v + "/communications/onlineMeetings"
		rules[comms] = routeRule{reqs: []authzReq{{method: "GET", path: comms + filter, foreignEmpty: true, perm: ro}}}
		rules[comms+"/{$}"] = routeRule{reqs: []authzReq{{method: "GET", path: comms + "/" + filter, foreignEmpty: true, perm: ro}}}
		// /me needs a signed-in user: every application token gets 400.
		rules[v+"/me/onlineMeetings"] = routeRule{reqs: []authzReq{{method: "GET", path: v + "/me/onlineMeetings"}}}
		rules[v+"/me/onlineMeetings/{rest...}"] = routeRule{reqs: []authzReq{{method: "GET", path: v + "/me/onlineMeetings/{meeting}"}}}
	}

	form := func(extra string) string {
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {calltest.BotID}, "client_secret": {calltest.Secret}}.Encode() + "&" + extra
	}
	public := func(why string, probe *authzReq, status int) routeRule {
		return routeRule{public: why, probe: probe, probeStatus: status}
	}
	const tokenEndpoint = "the token endpoint: the client authenticates with its secret (rate-limited per client and address)"
	rules["POST /{tenant}/oauth2/v2.0/token"] = public(tokenEndpoint,
		&authzReq{method: "POST", path: "/" + calltest.TenantID + "/oauth2/v2.0/token", body: form("scope=https%3A%2F%2Fgraph.microsoft.com%2F.default")}, 200)
	rules["POST /{tenant}/oauth2/token"] = public(tokenEndpoint+" (v1.0)",
		&authzReq{method: "POST", path: "/" + calltest.TenantID + "/oauth2/token", body: form("resource=https%3A%2F%2Fgraph.microsoft.com")}, 200)
	rules["GET /{tenant}/v2.0/.well-known/openid-configuration"] = public("OpenID discovery: public keys and endpoints only",
		&authzReq{method: "GET", path: "/" + calltest.TenantID + "/v2.0/.well-known/openid-configuration"}, 200)
	rules["GET /{tenant}/discovery/v2.0/keys"] = public("the JWKS: public keys only",
		&authzReq{method: "GET", path: "/common/discovery/v2.0/keys"}, 200)
	rules["GET /v1/.well-known/openidconfiguration"] = public("Bot-Framework-style discovery for notification tokens",
		&authzReq{method: "GET", path: "/v1/.well-known/openidconfiguration"}, 200)
	rules["GET /v1/.well-known/OpenIdConfiguration"] = public("Bot-Framework-style discovery, Graph's spelling",
		&authzReq{method: "GET", path: "/v1/.well-known/OpenIdConfiguration"}, 200)
	rules["GET /healthz"] = public("liveness for load balancers", &authzReq{method: "GET", path: "/healthz"}, 200)
	rules["GET /metrics"] = public("Prometheus scrape: counters by route and status, no ids or tokens", &authzReq{method: "GET", path: "/metrics"}, 200)
	rules["GET /l/meetup-join/{thread}/{message}"] = public("the join page: a join link is meant for whoever was sent it",
		&authzReq{method: "GET", path: "{joinPath}"}, 200)
	const guest = "joining a meeting from the browser: a join link is meant for whoever was sent it; the pass is good for that meeting only"
	rules["POST /l/meetup-join/{thread}/{message}/guest"] = public(guest+" (mints a guest pass)",
		&authzReq{method: "POST", path: "{joinPath}/guest", body: `{"name":"Probe"}`}, 200)
	rules["GET /l/meetup-join/{thread}/{message}/roster"] = public(guest+" (the roster stream takes the guest pass, not a Graph token: 401 without; joinpage_test.go checks it)",
		&authzReq{method: "GET", path: "{joinPath}/roster"}, 401)
	rules["GET /l/meetup-join/{file}"] = public("the join page's script and styles: no secret in them",
		&authzReq{method: "GET", path: "/l/meetup-join/join.js"}, 200)
	rules["GET /sip/ws"] = public("SIP over WebSocket (RFC 7118): the upgrade takes no Graph token; every SIP request on it is authenticated with the SIP user's digest, as over UDP and TCP",
		&authzReq{method: "GET", path: "/sip/ws"}, 426)
	const phone = "the /phone softphone's page and scripts: no secret in them; signing in is the SIP user's digest over /sip/ws"
	rules["GET /phone"] = public(phone, &authzReq{method: "GET", path: "/phone"}, 200)
	rules["GET /phone/{file}"] = public(phone, &authzReq{method: "GET", path: "/phone/sip.js"}, 200)
	const console = "the operators' /console: HTTP Basic with console.users, not a Graph token (401 without; console_test.go checks it)"
	rules["GET /console"] = public(console, &authzReq{method: "GET", path: "/console"}, 401)
	rules["GET /console/events"] = public(console, &authzReq{method: "GET", path: "/console/events"}, 401)
	rules["GET /console/static/{file}"] = public(console, &authzReq{method: "GET", path: "/console/static/console.js"}, 401)
	rules["GET /console/calls/{call}/recordings/{id}"] = public(console+"; a call's own recordings only, never with a bot's token",
		&authzReq{method: "GET", path: "/console/calls/c/recordings/0123456789abcdef0123456789abcdef"}, 401)
	rules["/"] = public("unknown paths: 404 for everyone", &authzReq{method: "GET", path: "/v1.0/nothing/here"}, 404)
	// The recording download takes the recording's own token, not a Graph
	// token: TestAuthorisationEveryRoute checks it by hand.
	rules["GET /recordings/{id}"] = public("takes the recordOperation's recordingAccessToken (checked below)", nil, 0)
	const sim = "the simulator's control API: no authentication by design, mounted only with simulator.enabled (dev and tests)"
	for _, pat := range []string{"GET /simulator/v1/calls/{id}/audio", "POST /simulator/v1/calls/{id}/say", "POST /simulator/v1/calls",
		"GET /simulator/v1/calls", "GET /simulator/v1/calls/{id}", "POST /simulator/v1/calls/{id}/keys", "DELETE /simulator/v1/calls/{id}"} {
		rules[pat] = public(sim, nil, 0)
	}
	return rules
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// authzFixture holds the resources the table's paths name, and the tokens.
type authzFixture struct {
	vars                          *strings.Replacer
	absent                        *strings.Replacer // the same names, for resources that do not exist
	bot, bot2, weak, other        string
	garbage, expired, resigned    string
	unknownKid, unsigned          string
	notification                  string // signed by the node, for the bot: not a Graph token
	callID, weakCallID, meetingID string
}

func newAuthzFixture(t *testing.T, p *calltest.Platform) *authzFixture {
	t.Helper()
	f := &authzFixture{
		bot:   p.Token(calltest.BotID, calltest.TenantID),
		bot2:  p.Token(calltest.Bot2ID, calltest.TenantID),
		weak:  p.Token(calltest.WeakBotID, calltest.TenantID),
		other: p.Token(calltest.OtherBotID, calltest.OtherTenantID),
	}
	f.garbage = "not.a.jwt"
	f.expired, f.resigned, f.unknownKid, f.unsigned = badTokens(t, p, f.bot)
	var err error
	if f.notification, err = p.Node.Identity.NotificationToken(calltest.BotID, calltest.TenantID); err != nil {
		t.Fatal(err)
	}

	call := p.CreateCall(calltest.AliceID)
	p.Hook.WaitState(t, call.ID, graph.StateEstablished)
	f.callID = call.ID
	var op graph.Operation
	r := p.Bot("POST", calls+"/"+call.ID+"/subscribeToTone", map[string]any{})
	r.JSON(t, &op)
	if r.StatusCode != 200 || op.ID == "" {
		t.Fatalf("subscribeToTone: %s %s", r.Status, r.Body)
	}
	var ps struct{ Value []graph.Participant }
	p.Bot("GET", calls+"/"+call.ID+"/participants", nil).JSON(t, &ps)
	if len(ps.Value) == 0 {
		t.Fatal("the call has no participants")
	}
	m := meeting(t, p.Bot("POST", userMeetings(calltest.AliceID), map[string]any{"subject": "authz"}), 201)
	f.meetingID = m.ID
	link, err := url.Parse(m.JoinWebURL)
	if err != nil {
		t.Fatal(err)
	}

	// WeakBotID's own call: Alice dials its number.
	var leg struct{ ID, CallID string }
	r = p.Do(calltest.Req{Method: "POST", Path: "/simulator/v1/calls", Body: map[string]string{"from": calltest.AlicePhone, "to": calltest.WeakBotNumber}})
	if r.StatusCode != 201 {
		t.Fatalf("simulator call: %s %s", r.Status, r.Body)
	}
	r.JSON(t, &leg)
	f.weakCallID = leg.CallID
	p.WeakHook.Wait(t, leg.CallID, 10*time.Second, "incoming", func(ns []calltest.Notification) bool { return len(ns) > 0 })

	f.vars = strings.NewReplacer("{call}", call.ID, "{op}", op.ID, "{pid}", ps.Value[0].ID, "{weakcall}", leg.CallID,
		"{user}", calltest.AliceID, "{meeting}", m.ID, "{joinWebUrl}", m.JoinWebURL, "%7BjoinWebUrl%7D", url.QueryEscape(m.JoinWebURL), "{joinPath}", link.EscapedPath())
	f.absent = strings.NewReplacer("{call}", absentCall, "{op}", op.ID, "{pid}", ps.Value[0].ID, "{weakcall}", absentCall,
		"{user}", absentUser, "{meeting}", absentMeeting, "{joinWebUrl}", m.JoinWebURL, "%7BjoinWebUrl%7D", url.QueryEscape(m.JoinWebURL), "{joinPath}", link.EscapedPath())
	return f
}

// badTokens mints the access tokens the node must refuse though they look
// right: BotID's own claims, expired and signed with the node's key;
// re-signed with a key the node does not know, under the node's kid and
// under an unknown one; and unsigned (alg none).
func badTokens(t *testing.T, p *calltest.Platform, valid string) (expired, resigned, unknownKid, unsigned string) {
	t.Helper()
	parsed, _, err := jwt.NewParser().ParseUnverified(valid, jwt.MapClaims{})
	if err != nil {
		t.Fatal(err)
	}
	claims := parsed.Claims.(jwt.MapClaims)
	kid, _ := parsed.Header["kid"].(string)

	old := jwt.MapClaims{}
	for k, v := range claims {
		old[k] = v
	}
	then := time.Now().Add(-3 * time.Hour)
	old["iat"], old["nbf"], old["exp"] = then.Unix(), then.Unix(), then.Add(time.Hour).Unix()
	if expired, err = p.Node.Keys.Sign(old); err != nil {
		t.Fatal(err)
	}

	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(kid string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, claims)
		tok.Header["kid"] = kid
		s, err := tok.SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	resigned, unknownKid = sign(kid), sign("not-a-node-key")
	none := jwt.NewWithClaims(jwt.SigningMethodNone, claims)
	none.Header["kid"] = kid
	if unsigned, err = none.SignedString(jwt.UnsafeAllowNoneSignatureType); err != nil {
		t.Fatal(err)
	}
	return expired, resigned, unknownKid, unsigned
}

// graphRefusal checks that r is a Graph error body with status and code
// and returns it; it reports (and returns nil) otherwise.
func graphRefusal(t *testing.T, what string, r *calltest.Response, status int, code string) *graph.ODataError {
	t.Helper()
	if r.StatusCode != status {
		t.Errorf("%s: status %s, want %d: %.300s", what, r.Status, status, r.Body)
		return nil
	}
	var e graph.ErrorResponse
	if err := json.Unmarshal(r.Body, &e); err != nil || e.Error.Code != code || e.Error.Message == "" ||
		e.Error.InnerError == nil || e.Error.InnerError.RequestID == "" || e.Error.InnerError.Date == "" {
		t.Errorf("%s: body %.300s, want a Graph error with code %s and innerError", what, r.Body, code)
		return nil
	}
	return &e.Error
}

func TestAuthorisationEveryRoute(t *testing.T) {
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		withMeetings(c)
		// WeakBotID's call rings through every route's checks, however
		// slow the machine.
		c.Calls.AnswerTimeout = config.Duration(2 * time.Minute)
	}})
	rules := authzTable(p)

	// Every registered pattern is classified, and every rule is a route.
	registered := map[string]bool{}
	for _, pat := range p.Node.API.Mux().Patterns() {
		registered[pat] = true
		if _, ok := rules[pat]; !ok {
			t.Errorf("route %q is not in the authorisation table (authz_test.go): classify it as public (and why) or guarded", pat)
		}
	}
	for pat := range rules {
		if !registered[pat] {
			t.Errorf("the authorisation table lists %q, which the node does not register", pat)
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	f := newAuthzFixture(t, p)
	patterns := make([]string, 0, len(rules))
	for pat := range rules {
		patterns = append(patterns, pat)
	}
	sort.Strings(patterns)
	guarded, methods := 0, 0
	do := func(q authzReq, path, body, token string) *calltest.Response {
		req := calltest.Req{Method: q.method, Path: path, Token: token}
		if body != "" {
			req.Body = body
		}
		return p.Do(req)
	}

	for _, pat := range patterns {
		rule := rules[pat]
		if rule.public != "" {
			if rule.probe == nil {
				continue
			}
			q := *rule.probe
			req := calltest.Req{Method: q.method, Path: f.vars.Replace(q.path)}
			if q.body != "" {
				req.Body, req.Header = q.body, map[string]string{"Content-Type": "application/x-www-form-urlencoded"}
			}
			if r := p.Do(req); r.StatusCode != rule.probeStatus {
				t.Errorf("public %q: %s %s without a token: %s, want %d: %.200s", pat, q.method, req.Path, r.Status, rule.probeStatus, r.Body)
			}
			continue
		}
		guarded++
		for _, q := range rule.reqs {
			methods++
			path := f.vars.Replace(q.path)
			name := q.method + " " + q.path
			// Bad credentials: 401 InvalidAuthenticationToken with WWW-Authenticate.
			for _, bad := range []struct{ what, token string }{
				{"no token", ""}, {"garbage token", f.garbage}, {"expired token", f.expired},
				{"token re-signed with an unknown key", f.resigned}, {"token signed under an unknown kid", f.unknownKid},
				{"unsigned token (alg none)", f.unsigned}, {"notification token", f.notification},
			} {
				what := name + " with " + bad.what
				r := do(q, path, q.body, bad.token)
				if graphRefusal(t, what, r, 401, "InvalidAuthenticationToken") != nil && !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
					t.Errorf("%s: 401 without WWW-Authenticate: %v", what, r.Header)
				}
			}
			if strings.HasSuffix(q.path, "/media") {
				// The media socket also takes its token in the query.
				r := do(q, path+"?access_token="+url.QueryEscape(f.resigned), "", "")
				graphRefusal(t, name+" with a re-signed access_token in the query", r, 401, "InvalidAuthenticationToken")
				// A real WebSocket handshake is refused the same way,
				// before the upgrade.
				for _, c := range []struct {
					what, token string
					status      int
					code        string
				}{{"no token", "", 401, "InvalidAuthenticationToken"}, {"another tenant's token", f.other, 404, "itemNotFound"},
					{"another app's token", f.bot2, 404, "itemNotFound"}} {
					r := p.Do(calltest.Req{Method: "GET", Path: path, Token: c.token, Header: map[string]string{
						"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
						"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Sec-WebSocket-Protocol": "switchboard.media.v1"}})
					graphRefusal(t, name+" as a WebSocket handshake with "+c.what, r, c.status, c.code)
				}
			}
			// Another tenant: the same answer as for a resource that does not exist.
			if q.foreign {
				what := name + " with another tenant's token"
				got := graphRefusal(t, what, do(q, path, q.body, f.other), 404, "itemNotFound")
				want := graphRefusal(t, what+" (absent resource)", do(q, f.absent.Replace(q.path), q.body, f.other), 404, "itemNotFound")
				if got != nil && want != nil && anonymise(got.Message, f) != anonymise(want.Message, f) {
					t.Errorf("%s: %q tells an existing resource from an absent one (%q)", what, got.Message, want.Message)
				}
			}
			if q.foreignEmpty {
				if r := do(q, path, q.body, f.bot); r.StatusCode != 200 || !strings.Contains(string(r.Body), f.meetingID) {
					t.Errorf("%s: the owner's lookup does not find the meeting: %s %.300s", name, r.Status, r.Body)
				}
				r := do(q, path, q.body, f.other)
				if r.StatusCode != 200 || !bytes.Contains(r.Body, []byte(`"value":[]`)) {
					t.Errorf("%s with another tenant's token: %s %.300s, want 200 and an empty collection", name, r.Status, r.Body)
				}
			}
			if q.otherApp {
				for _, app := range []struct{ what, token string }{{"another app's token", f.bot2}, {"another app's token without permissions", f.weak}} {
					graphRefusal(t, name+" with "+app.what, do(q, path, q.body, app.token), 404, "itemNotFound")
				}
			}
			// A missing permission (WeakBotID on its own call while it
			// rings, for the checks that need it so).
			if q.perm != "" && q.incoming {
				checkForbidden(t, p, f, q)
			}
		}
	}

	// WeakBotID answers its call, then every other permission check.
	ans := map[string]any{"callbackUri": p.WeakHook.URL, "acceptedModalities": []string{"audio"},
		"mediaConfig": map[string]any{"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}}
	if r := p.Do(calltest.Req{Method: "POST", Path: calls + "/" + f.weakCallID + "/answer", Token: f.weak, Body: ans}); r.StatusCode != 202 {
		t.Fatalf("WeakBotID answers its call: %s %s", r.Status, r.Body)
	}
	p.WeakHook.WaitState(t, f.weakCallID, graph.StateEstablished)
	perms := 0
	for _, pat := range patterns {
		for _, q := range rules[pat].reqs {
			if q.perm != "" {
				perms++
				if !q.incoming {
					checkForbidden(t, p, f, q)
				}
			}
		}
	}

	// Nothing refused took effect: the call, the meeting and WeakBotID's
	// call are as they were.
	var c graph.Call
	if r := p.Bot("GET", calls+"/"+f.callID, nil); r.StatusCode != 200 {
		t.Errorf("BotID's call after the refusals: %s %s", r.Status, r.Body)
	} else if r.JSON(t, &c); c.State != graph.StateEstablished {
		t.Errorf("BotID's call after the refusals: %s", c.State)
	}
	if m := meeting(t, p.Bot("GET", userMeetings(calltest.AliceID)+"/"+f.meetingID, nil), 200); m.Subject != "authz" {
		t.Errorf("the meeting after the refusals: subject %q", m.Subject)
	}
	if r := p.Do(calltest.Req{Method: "GET", Path: calls + "/" + f.weakCallID, Token: f.weak}); r.StatusCode != 200 {
		t.Errorf("WeakBotID's call after the refusals: %s %s", r.Status, r.Body)
	}

	checkRecordingAccess(t, p, f)
	t.Logf("%d routes registered: %d guarded by a Graph token (%d method-paths, %d permission checks), %d public by design or with their own token",
		len(registered), guarded, methods, perms, len(registered)-guarded)
}

// anonymise replaces the fixture's and the absent resources' ids with
// placeholders, so two messages can be compared.
func anonymise(msg string, f *authzFixture) string {
	return strings.NewReplacer(f.callID, "{id}", absentCall, "{id}", calltest.AliceID, "{user}", absentUser, "{user}",
		f.meetingID, "{meeting}", absentMeeting, "{meeting}").Replace(msg)
}

// checkForbidden sends q's permission request with WeakBotID's token.
func checkForbidden(t *testing.T, p *calltest.Platform, f *authzFixture, q authzReq) {
	t.Helper()
	path, body := q.permPath, q.permBody
	if path == "" {
		path = q.path
	}
	if body == "" {
		body = q.body
	}
	req := calltest.Req{Method: q.method, Path: f.vars.Replace(path), Token: f.weak}
	if body != "" {
		req.Body = body
	}
	what := fmt.Sprintf("%s %s without %s", q.method, path, q.perm)
	if e := graphRefusal(t, what, p.Do(req), 403, "Forbidden"); e != nil && !strings.Contains(e.Message, q.perm) {
		t.Errorf("%s: 403 %q does not name the permission", what, e.Message)
	}
}

// checkRecordingAccess records BotID's (silent) call and checks that only
// the recording's own token downloads it.
func checkRecordingAccess(t *testing.T, p *calltest.Platform, f *authzFixture) {
	t.Helper()
	var op graph.Operation
	r := p.Bot("POST", calls+"/"+f.callID+"/recordResponse", map[string]any{"initialSilenceTimeoutInSeconds": 1, "maxRecordDurationInSeconds": 5})
	r.JSON(t, &op)
	if r.StatusCode != 200 {
		t.Fatalf("recordResponse: %s %s", r.Status, r.Body)
	}
	done := waitOperation(t, p, f.callID, op.ID)
	if done.RecordingLocation == nil || done.RecordingAccessToken == nil {
		t.Fatalf("recording without location or token: %+v", done)
	}
	loc, err := url.Parse(*done.RecordingLocation)
	if err != nil {
		t.Fatal(err)
	}
	path, token := loc.Path, *done.RecordingAccessToken
	for _, bad := range []struct{ what, token string }{
		{"no token", ""}, {"garbage token", f.garbage}, {"the owner's Graph token", f.bot},
		{"another tenant's Graph token", f.other}, {"a tampered recording token", token[:len(token)-2] + "xx"},
	} {
		r := p.Do(calltest.Req{Method: "GET", Path: path, Token: bad.token})
		if graphRefusal(t, "recording with "+bad.what, r, 401, "InvalidAuthenticationToken") != nil && !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("recording with %s: 401 without WWW-Authenticate", bad.what)
		}
	}
	if r := p.Do(calltest.Req{Method: "GET", Path: path, Token: token}); r.StatusCode != 200 || !bytes.HasPrefix(r.Body, []byte("RIFF")) {
		t.Errorf("recording with its token: %s %.40q", r.Status, r.Body)
	}
}
