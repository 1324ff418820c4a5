// Package calltest starts a whole Switchboard node in-process for tests,
// the way httptest starts an HTTP server: real HTTP on a loopback port, a
// real embedded NATS JetStream store in a temporary directory, a real bot
// webhook that validates the signed notifications it receives. Nothing is
// mocked; time can be a fake clock so keepAlive and answer windows run
// instantly.
package calltest

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/bottest"
	"github.com/switchboard-voice/switchboard/internal/clock"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/platform"
	"github.com/switchboard-voice/switchboard/internal/webhook"
	"github.com/switchboard-voice/switchboard/sdk"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Ids of the test directory.
const (
	TenantID      = "11111111-1111-4111-8111-111111111111"
	OtherTenantID = "22222222-2222-4222-8222-222222222222"
	AliceID       = "a0000000-0000-4000-8000-00000000000a" // answers after a short ring
	BobID         = "b0000000-0000-4000-8000-00000000000b" // answers and presses 1 2 #
	CarolID       = "c0000000-0000-4000-8000-00000000000c" // busy
	DaveID        = "d0000000-0000-4000-8000-00000000000d" // never answers
	EveID         = "e0000000-0000-4000-8000-00000000000e" // not simulated: a SIP user (eve), no endpoint until registered
	BotID         = "b0700000-0000-4000-8000-0000000000b1" // every calls permission
	Bot2ID        = "b0700000-0000-4000-8000-0000000000b2" // another app in the same tenant
	WeakBotID     = "b0700000-0000-4000-8000-0000000000b3" // no permissions at all
	OtherBotID    = "b0700000-0000-4000-8000-0000000000b4" // provisioned in the other tenant
	Secret        = "test-secret-0123456789"
	BotNumber     = "+15550199"
	WeakBotNumber = "+15550198"
	AlicePhone    = "+15550100"
	EvePhone      = "+15550104"
	EvePassword   = "eve-secret-42"
	// Operator and OperatorPassword sign in to /console.
	Operator         = "operator"
	OperatorPassword = "operator-pass-42"
)

// Config returns the test directory with loopback callback URIs filled
// in by the caller.
func Config(dataDir, publicURL, botHook, weakHook string) *config.Config {
	c := config.Default()
	c.DataDir = dataDir
	c.HTTP.PublicURL = publicURL
	c.HTTP.RequestsPerSecond = 10000
	c.HTTP.Burst = 10000
	// A test machine is busy (-race, tests in parallel): a lagging media
	// clock there must not refuse the tests' calls (overload tests set it).
	c.Calls.Overload.MaxLateTickPercent = 0
	c.Log.Level = "debug"
	c.Notifications.Timeout = config.Duration(2 * time.Second)
	c.SIP.Listen = "127.0.0.1:0"
	c.SIP.TLSListen = ""
	c.Simulator.Audio = false // timed simulated media: the fake clock drives it
	fast := config.Simulation{RingAfter: config.Duration(20 * time.Millisecond), AnswerAfter: config.Duration(60 * time.Millisecond)}
	bob := fast
	bob.DTMF, bob.DTMFInterval = "12#", config.Duration(30*time.Millisecond)
	busy := fast
	busy.Answer = "busy"
	never := fast
	never.Answer = "noAnswer"
	c.Tenants = []config.Tenant{
		{ID: TenantID, DisplayName: "Test", Users: []config.User{
			{ID: AliceID, DisplayName: "Alice", Phone: AlicePhone, Simulated: true, Simulation: fast},
			{ID: BobID, DisplayName: "Bob", Phone: "+15550101", Simulated: true, Simulation: bob},
			{ID: CarolID, DisplayName: "Carol", Simulated: true, Simulation: busy},
			{ID: DaveID, DisplayName: "Dave", Simulated: true, Simulation: never},
			{ID: EveID, DisplayName: "Eve", Phone: EvePhone, SIP: config.SIPCredentials{Username: "eve", Password: EvePassword}},
		}},
		{ID: OtherTenantID, DisplayName: "Other"},
	}
	all := []string{"Calls.Initiate.All", "Calls.InitiateGroupCall.All", "Calls.JoinGroupCall.All", "Calls.AccessMedia.All"}
	c.Applications = []config.Application{
		{ID: BotID, DisplayName: "Test bot", Secret: Secret, Tenants: []string{TenantID}, Permissions: all,
			CallbackURI: botHook, MediaMode: "app", Numbers: []config.Number{{Number: BotNumber}}},
		{ID: Bot2ID, DisplayName: "Second bot", Secret: Secret, Tenants: []string{TenantID}, Permissions: all, CallbackURI: botHook},
		{ID: WeakBotID, DisplayName: "Weak bot", Secret: Secret, Tenants: []string{TenantID}, CallbackURI: weakHook,
			Numbers: []config.Number{{Number: WeakBotNumber}}},
		{ID: OtherBotID, DisplayName: "Other tenant's bot", Secret: Secret, Tenants: []string{OtherTenantID}, Permissions: all},
	}
	c.Console.Users = []config.ConsoleUser{{Name: Operator, Password: OperatorPassword}}
	return &c
}

// Platform is a running node with a bot webhook.
type Platform struct {
	t        testing.TB
	Node     *platform.Node
	Config   *config.Config
	URL      string
	Clock    *clock.Fake // nil on the real clock
	Hook     *Webhook    // the bot's (BotID's and Bot2ID's) webhook
	WeakHook *Webhook    // WeakBotID's webhook
	Client   *http.Client

	mu      sync.Mutex
	results []webhook.Result
	tokens  map[string]string
}

// Options tune Start.
type Options struct {
	// FakeClock runs call timers on a fake clock the test advances.
	FakeClock bool
	// DataDir reuses a data directory (restart tests); a temporary one when empty.
	DataDir string
	// Hook and WeakHook reuse webhooks (restart tests).
	Hook, WeakHook *Webhook
	// Edit changes the configuration before the node starts.
	Edit func(*config.Config)
	// Listener to serve on (restart tests reuse the address).
	Listener net.Listener
	// Logger receives the node's log; when nil, warnings and errors go to
	// the test's log (everything with SWITCHBOARD_TEST_LOG set).
	Logger *slog.Logger
	// NodeLease is the lease of the node's claim on its id (cluster.nodeLease when 0):
	// node-loss tests shorten it.
	NodeLease time.Duration
}

// Start runs a node for the test and stops it at cleanup.
func Start(t testing.TB, o Options) *Platform {
	t.Helper()
	ln := o.Listener
	if ln == nil {
		var err error
		ln, err = net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
	}
	public := "http://" + ln.Addr().String()
	p := &Platform{t: t, URL: public, Client: &http.Client{Timeout: 30 * time.Second}, tokens: map[string]string{}}
	p.Hook, p.WeakHook = o.Hook, o.WeakHook
	if p.Hook == nil {
		p.Hook = NewWebhook(t, public, BotID, Bot2ID)
	}
	if p.WeakHook == nil {
		p.WeakHook = NewWebhook(t, public, WeakBotID)
	}
	dir := o.DataDir
	if dir == "" {
		dir = t.TempDir()
	}
	p.Config = Config(dir, public, p.Hook.URL, p.WeakHook.URL)
	if o.Edit != nil {
		o.Edit(p.Config)
	}
	if err := p.Config.Validate(); err != nil {
		t.Fatalf("test config: %v", err)
	}
	var clk clock.Clock
	if o.FakeClock {
		p.Clock = clock.NewFake(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
		clk = p.Clock
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	log := o.Logger
	if log == nil {
		log = bottest.Logger(t, false)
	}
	n, err := platform.Start(ctx, p.Config, platform.Options{Logger: log, Clock: clk, Listener: ln, Simulator: true, NodeLease: o.NodeLease,
		OnNotification: func(r webhook.Result) {
			p.mu.Lock()
			p.results = append(p.results, r)
			p.mu.Unlock()
		}})
	if err != nil {
		t.Fatalf("start node: %v", err)
	}
	p.Node = n
	t.Cleanup(func() { n.Kill() })
	return p
}

// Results returns the notification deliveries finished so far.
func (p *Platform) Results() []webhook.Result {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]webhook.Result(nil), p.results...)
}

// Token gets (and caches) an access token for app in tenant.
func (p *Platform) Token(app, tenant string) string {
	p.t.Helper()
	key := app + "|" + tenant
	p.mu.Lock()
	tok := p.tokens[key]
	p.mu.Unlock()
	if tok != "" {
		return tok
	}
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {app}, "client_secret": {Secret},
		"scope": {"https://graph.microsoft.com/.default"}}
	resp, err := p.Client.PostForm(p.URL+"/"+tenant+"/oauth2/v2.0/token", form)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr graph.TokenResponse
	if resp.StatusCode != 200 {
		b, _ := io.ReadAll(resp.Body)
		p.t.Fatalf("token for %s: %s %s", app, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil {
		p.t.Fatal(err)
	}
	p.mu.Lock()
	p.tokens[key] = tr.AccessToken
	p.mu.Unlock()
	return tr.AccessToken
}

// Response is an HTTP response with its body read.
type Response struct {
	*http.Response
	Body []byte
}

// JSON decodes the body into v.
func (r *Response) JSON(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.Body, v); err != nil {
		t.Fatalf("decode %s: %v", r.Body, err)
	}
}

// Req describes a request.
type Req struct {
	Method, Path string
	Token        string // bearer token; none when empty
	Body         any    // marshalled as JSON unless []byte or string
	Gzip         bool
	Header       map[string]string
}

// Do sends a request to the node.
func (p *Platform) Do(r Req) *Response {
	p.t.Helper()
	var body io.Reader
	var raw []byte
	switch b := r.Body.(type) {
	case nil:
	case []byte:
		raw = b
	case string:
		raw = []byte(b)
	default:
		var err error
		if raw, err = json.Marshal(b); err != nil {
			p.t.Fatal(err)
		}
	}
	if raw != nil {
		if r.Gzip {
			var buf bytes.Buffer
			zw := gzip.NewWriter(&buf)
			_, _ = zw.Write(raw)
			_ = zw.Close()
			raw = buf.Bytes()
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(r.Method, p.URL+r.Path, body)
	if err != nil {
		p.t.Fatal(err)
	}
	if raw != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if r.Gzip {
		req.Header.Set("Content-Encoding", "gzip")
	}
	if r.Token != "" {
		req.Header.Set("Authorization", "Bearer "+r.Token)
	}
	for k, v := range r.Header {
		req.Header.Set(k, v)
	}
	resp, err := p.Client.Do(req)
	if err != nil {
		p.t.Fatalf("%s %s: %v", r.Method, r.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		p.t.Fatal(err)
	}
	return &Response{Response: resp, Body: b}
}

// Bot is shorthand for a request with BotID's token.
func (p *Platform) Bot(method, path string, body any) *Response {
	p.t.Helper()
	return p.Do(Req{Method: method, Path: path, Token: p.Token(BotID, TenantID), Body: body})
}

// CreateCall places a call from BotID to a user and returns it.
func (p *Platform) CreateCall(userID string) graph.Call {
	p.t.Helper()
	r := p.Bot("POST", "/v1.0/communications/calls", CallTo(p.Hook.URL, userID))
	if r.StatusCode != 201 {
		p.t.Fatalf("create call: %s %s", r.Status, r.Body)
	}
	var c graph.Call
	r.JSON(p.t, &c)
	return c
}

// CallTo is a create-call body as Graph's docs show it.
func CallTo(callback, userID string) map[string]any {
	return map[string]any{
		"@odata.type": "#microsoft.graph.call",
		"callbackUri": callback,
		"targets": []any{map[string]any{
			"@odata.type": "#microsoft.graph.invitationParticipantInfo",
			"identity": map[string]any{"@odata.type": "#microsoft.graph.identitySet",
				"user": map[string]any{"@odata.type": "#microsoft.graph.identity", "id": userID, "displayName": "Callee"}},
		}},
		"requestedModalities": []string{"audio"},
		"mediaConfig":         map[string]any{"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"},
	}
}

// Notification is one notification a webhook received, with its token's
// tenant and the app it was for.
type Notification struct {
	graph.CommsNotification
	AppID    string
	TenantID string
	Raw      json.RawMessage // the whole envelope
}

// Call decodes the resourceData of a call notification.
func (n Notification) Call(t testing.TB) graph.Call {
	t.Helper()
	var c graph.Call
	if err := json.Unmarshal(n.ResourceData, &c); err != nil {
		t.Fatalf("resourceData %s: %v", n.ResourceData, err)
	}
	return c
}

// Operation decodes the resourceData of an operation notification.
func (n Notification) Operation(t testing.TB) graph.Operation {
	t.Helper()
	var o graph.Operation
	if err := json.Unmarshal(n.ResourceData, &o); err != nil {
		t.Fatalf("resourceData %s: %v", n.ResourceData, err)
	}
	return o
}

// Webhook is a bot's callback endpoint: it validates each notification's
// token with the SDK's validator against the node's published OpenID
// configuration and keeps what it received.
type Webhook struct {
	URL string
	srv *httptest.Server

	mu       sync.Mutex
	got      []Notification
	rejected []string
	changed  chan struct{}
	status   int // reply status; 202 by default
	down     bool
}

// NewWebhook starts a webhook accepting tokens for apps, validated against
// the node at publicURL.
func NewWebhook(t testing.TB, publicURL string, apps ...string) *Webhook {
	w := &Webhook{changed: make(chan struct{}), status: http.StatusAccepted}
	validators := map[string]*sdk.Validator{}
	for _, a := range apps {
		validators[a] = &sdk.Validator{OpenIDConfigURL: publicURL + "/v1/.well-known/openidconfiguration", AppID: a}
	}
	w.srv = httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		w.mu.Lock()
		down, status := w.down, w.status
		w.mu.Unlock()
		if down {
			rw.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		var claims *sdk.NotificationClaims
		var app string
		var lastErr error
		for a, v := range validators {
			c, err := v.Validate(r.Context(), r)
			if err == nil {
				claims, app = c, a
				break
			}
			lastErr = err
		}
		if claims == nil {
			w.mu.Lock()
			w.rejected = append(w.rejected, fmt.Sprint(lastErr))
			w.mu.Unlock()
			rw.WriteHeader(http.StatusUnauthorized)
			return
		}
		body, _ := io.ReadAll(r.Body)
		var env graph.CommsNotifications
		if err := json.Unmarshal(body, &env); err != nil {
			rw.WriteHeader(http.StatusBadRequest)
			return
		}
		w.mu.Lock()
		for _, n := range env.Value {
			w.got = append(w.got, Notification{CommsNotification: n, AppID: app, TenantID: claims.TenantID, Raw: body})
		}
		close(w.changed)
		w.changed = make(chan struct{})
		w.mu.Unlock()
		rw.WriteHeader(status)
	}))
	t.Cleanup(w.srv.Close)
	w.URL = w.srv.URL + "/callback"
	return w
}

// SetDown makes the webhook answer 503 (true) or accept again (false).
func (w *Webhook) SetDown(down bool) {
	w.mu.Lock()
	w.down = down
	w.mu.Unlock()
}

// Rejected lists tokens the webhook refused, with why.
func (w *Webhook) Rejected() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]string(nil), w.rejected...)
}

// All returns every notification received so far.
func (w *Webhook) All() []Notification {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]Notification(nil), w.got...)
}

// For returns the notifications about a call (and its operations).
func (w *Webhook) For(callID string) []Notification {
	var out []Notification
	for _, n := range w.All() {
		if strings.HasPrefix(n.ResourceURL, "/communications/calls/"+callID) {
			out = append(out, n)
		}
	}
	return out
}

// Wait blocks until pred holds for the notifications about callID
// (all notifications when callID is empty), or fails the test after timeout.
func (w *Webhook) Wait(t testing.TB, callID string, timeout time.Duration, what string, pred func([]Notification) bool) []Notification {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		ch := w.changed
		w.mu.Unlock()
		var ns []Notification
		if callID == "" {
			ns = w.All()
		} else {
			ns = w.For(callID)
		}
		if pred(ns) {
			return ns
		}
		select {
		case <-ch:
		case <-deadline.C:
			var b strings.Builder
			for _, n := range ns {
				fmt.Fprintf(&b, "\n  %s %s %s", n.ChangeType, n.ResourceURL, n.ResourceData)
			}
			t.Fatalf("webhook: waited %s for %s; got:%s", timeout, what, b.String())
		}
	}
}

// WaitState waits for a call notification with state.
func (w *Webhook) WaitState(t testing.TB, callID string, state graph.CallState) Notification {
	t.Helper()
	var found Notification
	w.Wait(t, callID, 10*time.Second, "state "+string(state), func(ns []Notification) bool {
		for _, n := range ns {
			if n.ResourceURL != "/communications/calls/"+callID {
				continue
			}
			var c graph.Call
			if json.Unmarshal(n.ResourceData, &c) == nil && c.State == state {
				found = n
				return true
			}
		}
		return false
	})
	return found
}

// States lists the states a call's notifications carried, in order.
func (w *Webhook) States(t testing.TB, callID string) []graph.CallState {
	var out []graph.CallState
	for _, n := range w.For(callID) {
		if n.ResourceURL != "/communications/calls/"+callID {
			continue
		}
		c := n.Call(t)
		if c.ToneInfo == nil {
			out = append(out, c.State)
		}
	}
	return out
}

// Attach returns a Platform for a node running elsewhere (another process)
// at url, whose bot webhook is hook.
func Attach(t testing.TB, url string, hook *Webhook) *Platform {
	return &Platform{t: t, URL: url, Hook: hook, Client: &http.Client{Timeout: 30 * time.Second}, tokens: map[string]string{}}
}
