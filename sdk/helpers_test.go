package sdk_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/goleak"

	"github.com/switchboard-voice/switchboard/sdk"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const (
	tenant = "11111111-1111-4111-8111-111111111111"
	appID  = "b0700000-0000-4000-8000-0000000000b1"
	secret = "s3cret"
)

// testKey is shared: generating RSA keys is slow under -race.
var testKey, otherKey = mustKey(), mustKey()

func mustKey() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
}

// platform stands in for Switchboard (or Graph and Entra ID) at the unit
// level: a token endpoint, the OpenID configuration and keys notification
// tokens are checked against, and a Graph API whose behaviour each test
// sets with graph. It is served either in memory (Client returns a client
// whose transport calls the mux directly: no sockets, so it runs inside a
// synctest bubble) or on a loopback httptest server.
type platform struct {
	t      testing.TB
	base   string // scheme://host
	issuer string
	mux    *http.ServeMux
	http   *http.Client

	tokenTTL   int           // expires_in of issued tokens
	tokenGate  chan struct{} // when set, the token endpoint waits for it
	tokenCount atomic.Int32
	tokenFail  atomic.Bool // the token endpoint answers 500

	mu    sync.Mutex
	graph http.HandlerFunc
	reqs  []recorded
}

// recorded is a request the Graph API received.
type recorded struct {
	Method, Path string
	Header       http.Header
	Body         []byte
}

func newPlatform(t testing.TB, inMemory bool) *platform {
	p := &platform{t: t, mux: http.NewServeMux(), tokenTTL: 3600}
	p.mux.HandleFunc("POST /{tenant}/oauth2/v2.0/token", p.token)
	p.mux.HandleFunc("GET /v1/.well-known/openidconfiguration", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]string{"issuer": p.issuer, "jwks_uri": p.base + "/keys"})
	})
	p.mux.HandleFunc("GET /keys", func(w http.ResponseWriter, r *http.Request) {
		pub := testKey.PublicKey
		writeJSON(w, 200, map[string]any{"keys": []map[string]string{{
			"kty": "RSA", "kid": "k1", "use": "sig", "alg": "RS256",
			"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
			"e": base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
		}}})
	})
	// The Graph API and recordings: everything else.
	p.mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		p.mu.Lock()
		if strings.HasPrefix(r.URL.Path, "/v1.0/") {
			p.reqs = append(p.reqs, recorded{r.Method, r.URL.Path, r.Header.Clone(), body})
		}
		g := p.graph
		p.mu.Unlock()
		r.Body = io.NopCloser(bytes.NewReader(body))
		if g == nil {
			w.WriteHeader(http.StatusNotImplemented)
			return
		}
		g(w, r)
	})
	if inMemory {
		p.base = "http://switchboard.test"
		p.http = &http.Client{Transport: muxTransport{p.mux}}
	} else {
		srv := httptest.NewServer(p.mux)
		t.Cleanup(srv.Close)
		p.base = srv.URL
		p.http = srv.Client()
	}
	p.issuer = p.base
	return p
}

func (p *platform) token(w http.ResponseWriter, r *http.Request) {
	if p.tokenGate != nil {
		<-p.tokenGate
	}
	if p.tokenFail.Load() {
		writeJSON(w, 500, map[string]any{"error": "temporarily_unavailable", "error_description": "AADSTS50000: try later"})
		return
	}
	_ = r.ParseForm()
	if r.PathValue("tenant") != tenant || r.PostForm.Get("grant_type") != "client_credentials" ||
		r.PostForm.Get("client_id") != appID || r.PostForm.Get("scope") != sdk.DefaultScope {
		writeJSON(w, 400, map[string]any{"error": "invalid_request", "error_description": "AADSTS900144: bad request"})
		return
	}
	if r.PostForm.Get("client_secret") != secret {
		writeJSON(w, 401, map[string]any{"error": "invalid_client", "error_description": "AADSTS7000215: Invalid client secret provided.", "trace_id": "tr-1"})
		return
	}
	n := p.tokenCount.Add(1)
	writeJSON(w, 200, graph.TokenResponse{TokenType: "Bearer", ExpiresIn: p.tokenTTL, AccessToken: fmt.Sprintf("tok-%d", n)})
}

// setGraph sets the Graph API's behaviour.
func (p *platform) setGraph(h http.HandlerFunc) {
	p.mu.Lock()
	p.graph = h
	p.mu.Unlock()
}

// requests returns what the Graph API received.
func (p *platform) requests() []recorded {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]recorded(nil), p.reqs...)
}

func (p *platform) client(o sdk.ClientOptions) *sdk.Client {
	p.t.Helper()
	if o.BaseURL == "" {
		o.BaseURL = p.base + "/v1.0"
	}
	if o.TenantID == "" {
		o.TenantID = tenant
	}
	if o.ClientID == "" {
		o.ClientID = appID
	}
	if o.ClientSecret == "" {
		o.ClientSecret = secret
	}
	if o.HTTPClient == nil {
		o.HTTPClient = p.http
	}
	c, err := sdk.NewClient(o)
	if err != nil {
		p.t.Fatal(err)
	}
	return c
}

// handler returns a Handler with a Client on the platform. It is shut
// down at the end of the test.
func (p *platform) handler(o sdk.HandlerOptions) *sdk.Handler {
	p.t.Helper()
	if o.Client == nil {
		o.Client = p.client(sdk.ClientOptions{})
	}
	h, err := sdk.NewHandler(o)
	if err != nil {
		p.t.Fatal(err)
	}
	p.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.Shutdown(ctx); err != nil {
			p.t.Errorf("shutdown: %v", err)
		}
	})
	return h
}

// claims are a notification token's claims.
type claims struct {
	TID string `json:"tid"`
	jwt.RegisteredClaims
}

// notificationToken signs a token as the platform does for a bot.
func (p *platform) notificationToken(edit func(*claims), key *rsa.PrivateKey) string {
	now := time.Now()
	c := &claims{TID: tenant, RegisteredClaims: jwt.RegisteredClaims{
		Issuer: p.issuer, Audience: jwt.ClaimStrings{appID},
		IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(time.Hour)),
	}}
	if edit != nil {
		edit(c)
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
	tok.Header["kid"] = "k1"
	s, err := tok.SignedString(key)
	if err != nil {
		p.t.Fatal(err)
	}
	return s
}

// post sends a body to h with a valid token and returns the status.
func (p *platform) post(h http.Handler, body any) int {
	p.t.Helper()
	return p.postWith(h, p.notificationToken(nil, testKey), body)
}

func (p *platform) postWith(h http.Handler, token string, body any) int {
	p.t.Helper()
	var data []byte
	switch b := body.(type) {
	case string:
		data = []byte(b)
	case []byte:
		data = b
	default:
		var err error
		if data, err = json.Marshal(b); err != nil {
			p.t.Fatal(err)
		}
	}
	r := httptest.NewRequest(http.MethodPost, "http://bot.test/callback", bytes.NewReader(data))
	r.Header.Set("Content-Type", "application/json")
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+token)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w.Code
}

// notify posts notifications and fails the test unless they are accepted.
func (p *platform) notify(h http.Handler, ns ...map[string]any) {
	p.t.Helper()
	if code := p.post(h, envelope(ns...)); code != http.StatusAccepted {
		p.t.Fatalf("notification answered %d, want 202", code)
	}
}

func envelope(ns ...map[string]any) map[string]any {
	v := make([]any, len(ns))
	for i, n := range ns {
		v[i] = n
	}
	return map[string]any{"@odata.type": graph.TypeCommsNotifications, "value": v}
}

// callNote is a notification about a call.
func callNote(change, callID string, data map[string]any) map[string]any {
	return map[string]any{"@odata.type": graph.TypeCommsNotification, "changeType": change,
		"resource": "/app/calls/" + callID, "resourceUrl": "/communications/calls/" + callID, "resourceData": data}
}

// opNote is an operation's completion.
func opNote(callID, opID string, data map[string]any) map[string]any {
	return map[string]any{"@odata.type": graph.TypeCommsNotification, "changeType": "deleted",
		"resourceUrl": "/communications/calls/" + callID + "/operations/" + opID, "resourceData": data}
}

// rosterNote is a roster notification.
func rosterNote(change, callID string, data any) map[string]any {
	return map[string]any{"@odata.type": graph.TypeCommsNotification, "changeType": change,
		"resourceUrl": "/communications/calls/" + callID + "/participants", "resourceData": data}
}

func incomingCall(callID string) map[string]any {
	return callNote("created", callID, map[string]any{
		"@odata.type": graph.TypeCall, "id": callID, "state": "incoming", "direction": "incoming",
		"callChainId": "chain-" + callID, "myParticipantId": "me-" + callID, "tenantId": tenant,
		"source": map[string]any{"identity": map[string]any{"phone": map[string]any{"id": "+15550100"}}},
	})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// muxTransport serves requests with a handler, in memory.
type muxTransport struct{ h http.Handler }

func (t muxTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	sr := r.Clone(r.Context())
	sr.RequestURI = r.URL.RequestURI()
	if sr.Body == nil {
		sr.Body = http.NoBody
	}
	w := httptest.NewRecorder()
	t.h.ServeHTTP(w, sr)
	resp := w.Result()
	resp.Request = r
	return resp, nil
}

// opBody is an operation as an action's response carries it.
func opBody(id string, status graph.OperationStatus) graph.Operation {
	return graph.Operation{ODataType: graph.TypePlayPromptOperation, ID: id, Status: status}
}
