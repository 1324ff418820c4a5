package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/switchboard-voice/switchboard/sdk"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

func okCall(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, 200, graph.Call{ODataType: graph.TypeCall, ID: "c1", State: graph.StateEstablished})
}

// Tokens are fetched once for concurrent callers, reused until five
// minutes before they expire, then replaced; a token the API refuses is
// replaced once.
func TestTokenCachedSharedAndRefreshed(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPlatform(t, true)
		p.setGraph(okCall)
		p.tokenGate = make(chan struct{})
		c := p.client(sdk.ClientOptions{})
		ctx := context.Background()

		var wg sync.WaitGroup
		for range 20 {
			wg.Go(func() {
				if _, err := c.GetCall(ctx, "c1"); err != nil {
					t.Error(err)
				}
			})
		}
		synctest.Wait() // all 20 wait for the one token request
		if n := p.tokenCount.Load(); n != 0 {
			t.Fatalf("token requests before the gate opened: %d", n)
		}
		close(p.tokenGate)
		wg.Wait()
		if n := p.tokenCount.Load(); n != 1 {
			t.Fatalf("20 concurrent requests made %d token requests, want 1", n)
		}
		auth := func() string {
			r := p.requests()
			return r[len(r)-1].Header.Get("Authorization")
		}
		if a := auth(); a != "Bearer tok-1" {
			t.Fatalf("Authorization %q", a)
		}

		// expires_in 3600, less 30 s of skew: refreshed 5 min before, at 54m30s.
		time.Sleep(54 * time.Minute)
		if _, err := c.GetCall(ctx, "c1"); err != nil || auth() != "Bearer tok-1" {
			t.Fatalf("at 54m: %v %s", err, auth())
		}
		time.Sleep(time.Minute)
		if _, err := c.GetCall(ctx, "c1"); err != nil || auth() != "Bearer tok-2" {
			t.Fatalf("at 55m: %v %s, want a refreshed token", err, auth())
		}

		// The API refuses tok-2: the client fetches tok-3 and retries once.
		p.setGraph(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") == "Bearer tok-2" {
				writeJSON(w, 401, graph.ErrorResponse{Error: graph.ODataError{Code: "InvalidAuthenticationToken", Message: "expired"}})
				return
			}
			okCall(w, r)
		})
		if _, err := c.GetCall(ctx, "c1"); err != nil || auth() != "Bearer tok-3" {
			t.Fatalf("after 401: %v %s", err, auth())
		}
		// A token that is refused every time is an error, not a loop.
		p.setGraph(func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 401, graph.ErrorResponse{Error: graph.ODataError{Code: "InvalidAuthenticationToken", Message: "no"}})
		})
		n := len(p.requests())
		_, err := c.GetCall(ctx, "c1")
		var ge *sdk.GraphError
		if !errors.As(err, &ge) || ge.StatusCode != 401 || len(p.requests())-n != 2 {
			t.Fatalf("always 401: %v after %d requests", err, len(p.requests())-n)
		}
	})
}

// A failed refresh keeps using the cached token while it is valid.
func TestTokenRefreshFailureUsesCachedToken(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPlatform(t, true)
		c := p.client(sdk.ClientOptions{})
		ctx := context.Background()
		if tok, err := c.Token(ctx); err != nil || tok != "tok-1" {
			t.Fatalf("token: %q %v", tok, err)
		}
		time.Sleep(56 * time.Minute) // due for refresh, valid until 59m30s
		p.tokenFail.Store(true)
		if tok, err := c.Token(ctx); err != nil || tok != "tok-1" {
			t.Fatalf("refresh failing, token still valid: %q %v", tok, err)
		}
		time.Sleep(4 * time.Minute)
		_, err := c.Token(ctx)
		var ae *sdk.AuthError
		if !errors.As(err, &ae) || ae.StatusCode != 500 || ae.Code != "temporarily_unavailable" {
			t.Fatalf("refresh failing, token expired: %v", err)
		}
		p.tokenFail.Store(false)
		if tok, err := c.Token(ctx); err != nil || tok != "tok-2" {
			t.Fatalf("endpoint back: %q %v", tok, err)
		}
	})
}

func TestTokenEndpointErrors(t *testing.T) {
	p := newPlatform(t, false)
	p.setGraph(okCall)
	c := p.client(sdk.ClientOptions{ClientSecret: "wrong"})
	_, err := c.GetCall(context.Background(), "c1")
	var ae *sdk.AuthError
	if !errors.As(err, &ae) || ae.StatusCode != 401 || ae.Code != "invalid_client" || !strings.Contains(ae.Description, "AADSTS7000215") || ae.TraceID != "tr-1" {
		t.Fatalf("wrong secret: %v (%+v)", err, ae)
	}
	if len(p.requests()) != 0 {
		t.Fatal("a request reached the API without a token")
	}
}

// 429 and 503 are retried as Retry-After asks, a bounded number of times,
// with the same client-request-id; longer waits than allowed are not.
func TestRetryHonoursRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newPlatform(t, true)
		c := p.client(sdk.ClientOptions{})
		ctx := context.Background()
		throttled := func(status int, after string, times int) {
			n := 0
			p.setGraph(func(w http.ResponseWriter, r *http.Request) {
				n++
				if times < 0 || n <= times {
					if after != "" {
						w.Header().Set("Retry-After", after)
					}
					writeJSON(w, status, graph.ErrorResponse{Error: graph.ODataError{Code: "TooManyRequests", Message: "Please retry again later."}})
					return
				}
				okCall(w, r)
			})
		}
		if _, err := c.Token(ctx); err != nil {
			t.Fatal(err)
		}

		throttled(429, "1.5", 2)
		start, before := time.Now(), len(p.requests())
		if _, err := c.GetCall(ctx, "c1"); err != nil {
			t.Fatal(err)
		}
		reqs := p.requests()[before:]
		if took := time.Since(start); took != 3*time.Second || len(reqs) != 3 {
			t.Fatalf("two 429s with Retry-After 1.5: took %v over %d requests, want 3s over 3", took, len(reqs))
		}
		crid := reqs[0].Header.Get("client-request-id")
		if !regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`).MatchString(crid) {
			t.Fatalf("client-request-id %q", crid)
		}
		for _, r := range reqs {
			if r.Header.Get("client-request-id") != crid {
				t.Fatal("a retry changed client-request-id")
			}
		}

		throttled(503, "2", -1)
		start, before = time.Now(), len(p.requests())
		_, err := c.GetCall(ctx, "c1")
		var ge *sdk.GraphError
		if !errors.As(err, &ge) || ge.StatusCode != 503 || ge.RetryAfter != 2*time.Second || ge.ClientRequestID == "" {
			t.Fatalf("always 503: %v", err)
		}
		if n, took := len(p.requests())-before, time.Since(start); n != 4 || took != 6*time.Second {
			t.Fatalf("always 503: %d requests over %v, want 4 (3 retries) over 6s", n, took)
		}

		// A wait past MaxRetryWait, or past the context's deadline, is not waited.
		throttled(429, "3600", -1)
		start, before = time.Now(), len(p.requests())
		if _, err := c.GetCall(ctx, "c1"); !errors.As(err, &ge) || ge.RetryAfter != time.Hour || len(p.requests())-before != 1 || time.Since(start) != 0 {
			t.Fatalf("Retry-After 3600: %v", err)
		}
		throttled(429, "10", -1)
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		before = len(p.requests())
		if _, err := c.GetCall(dctx, "c1"); !errors.As(err, &ge) || ge.StatusCode != 429 || len(p.requests())-before != 1 {
			t.Fatalf("Retry-After beyond the deadline: %v", err)
		}
		cancel()

		// Without Retry-After: exponential backoff, 1 s then 2 s (±20 %).
		throttled(503, "", 2)
		start = time.Now()
		if _, err := c.GetCall(ctx, "c1"); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(start); took < 2400*time.Millisecond || took > 3600*time.Millisecond {
			t.Fatalf("backoff took %v, want about 3s", took)
		}

		// MaxRetries < 0: no retries.
		none := p.client(sdk.ClientOptions{MaxRetries: -1})
		throttled(429, "1", 1)
		before = len(p.requests())
		if _, err := none.GetCall(ctx, "c1"); !errors.As(err, &ge) || len(p.requests())-before != 1 {
			t.Fatalf("MaxRetries -1: %v", err)
		}
	})
}

func TestGraphErrors(t *testing.T) {
	p := newPlatform(t, false)
	c := p.client(sdk.ClientOptions{})
	p.setGraph(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("request-id", "hdr-rid")
		writeJSON(w, 404, map[string]any{"error": map[string]any{"code": "itemNotFound", "message": "Call c9 was not found.",
			"innerError": map[string]any{"request-id": "rid-1", "client-request-id": r.Header.Get("client-request-id"), "date": "2026-01-02T03:04:05"}}})
	})
	_, err := c.GetCall(context.Background(), "c9")
	var ge *sdk.GraphError
	if !errors.As(err, &ge) {
		t.Fatalf("error %T %v is not a *GraphError", err, err)
	}
	if ge.StatusCode != 404 || ge.Code != "itemNotFound" || ge.Message != "Call c9 was not found." || ge.RequestID != "rid-1" ||
		ge.ClientRequestID != p.requests()[0].Header.Get("client-request-id") || ge.Date != "2026-01-02T03:04:05" {
		t.Fatalf("GraphError %+v", ge)
	}
	if s := err.Error(); !strings.HasPrefix(s, "get call c9: graph: 404 itemNotFound: Call c9 was not found.") || !strings.Contains(s, "rid-1") {
		t.Fatalf("message %q", s)
	}

	// Not a Graph body: a proxy's error page.
	p.setGraph(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("request-id", "hdr-rid")
		w.WriteHeader(502)
		io.WriteString(w, "<html>bad gateway</html>")
	})
	err = c.HangUp(context.Background(), "c9")
	if !errors.As(err, &ge) || ge.StatusCode != 502 || ge.Code != "Bad Gateway" || ge.Message != "<html>bad gateway</html>" || ge.RequestID != "hdr-rid" {
		t.Fatalf("502: %+v", ge)
	}
}

// Every method sends what Graph documents: method, path, JSON body.
func TestRequestShapes(t *testing.T) {
	p := newPlatform(t, false)
	c := p.client(sdk.ClientOptions{})
	p.setGraph(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.Method == "POST" && strings.HasSuffix(r.URL.Path, "/communications/calls"):
			writeJSON(w, 201, graph.Call{ID: "c1", State: graph.StateEstablishing})
		case r.Method == "DELETE":
			w.WriteHeader(204)
		case strings.HasSuffix(r.URL.Path, "/participants"):
			if r.URL.Query().Get("page") == "" {
				writeJSON(w, 200, map[string]any{"value": []graph.Participant{{ID: "p1"}}, "@odata.nextLink": p.base + r.URL.Path + "?page=2"})
				return
			}
			writeJSON(w, 200, map[string]any{"value": []graph.Participant{{ID: "p2"}}})
		case r.Method == "GET" && strings.Contains(r.URL.Path, "/participants/"):
			writeJSON(w, 200, graph.Participant{ID: "p1"})
		case r.Method == "GET" && strings.Contains(r.URL.Path, "/operations/"):
			writeJSON(w, 200, opBody("op1", graph.OperationCompleted))
		case r.Method == "GET":
			okCall(w, r)
		case strings.HasSuffix(r.URL.Path, "/keepAlive"):
			w.WriteHeader(200)
		case strings.HasSuffix(r.URL.Path, "/answer"), strings.HasSuffix(r.URL.Path, "/reject"),
			strings.HasSuffix(r.URL.Path, "/redirect"), strings.HasSuffix(r.URL.Path, "/transfer"):
			w.WriteHeader(202)
		case strings.HasSuffix(r.URL.Path, "HoldMusic"):
			w.Header().Set("Location", p.base+"/v1.0/communications/calls/c1/operations/op-hold")
			w.WriteHeader(202) // Graph sends a body; tolerate none
		default:
			writeJSON(w, 200, opBody("op1", graph.OperationRunning))
		}
	})
	ctx := context.Background()
	five := 5
	const base = "/v1.0/communications/calls"
	for _, tc := range []struct {
		name       string
		do         func() error
		method     string
		path, body string // body: "" for none, else the exact JSON
	}{
		{"create", func() error {
			call, err := c.CreateCall(ctx, &graph.Call{CallbackURI: "https://bot/cb", MediaConfig: &graph.MediaConfig{}})
			if err == nil && call.ID != "c1" {
				err = errors.New("id " + call.ID)
			}
			return err
		}, "POST", base, `{"@odata.type":"#microsoft.graph.call","callbackUri":"https://bot/cb","mediaConfig":{"@odata.type":"#microsoft.graph.serviceHostedMediaConfig"}}`},
		{"get", func() error { _, err := c.GetCall(ctx, "c1"); return err }, "GET", base + "/c1", ""},
		{"hang up", func() error { return c.HangUp(ctx, "c1") }, "DELETE", base + "/c1", ""},
		{"answer", func() error {
			return c.Answer(ctx, "c1", &graph.AnswerRequest{AcceptedModalities: []graph.Modality{"audio"}, MediaConfig: &graph.MediaConfig{ODataType: graph.TypeServiceHostedMediaConfig}})
		}, "POST", base + "/c1/answer", `{"acceptedModalities":["audio"],"mediaConfig":{"@odata.type":"#microsoft.graph.serviceHostedMediaConfig"}}`},
		{"reject", func() error { return c.Reject(ctx, "c1", &graph.RejectRequest{Reason: graph.RejectBusy}) }, "POST", base + "/c1/reject", `{"reason":"busy"}`},
		{"reject nil", func() error { return c.Reject(ctx, "c1", nil) }, "POST", base + "/c1/reject", `{}`},
		{"redirect", func() error {
			return c.Redirect(ctx, "c1", &graph.RedirectRequest{Targets: []graph.InvitationParticipantInfo{sdk.PhoneTarget("+1555")}, Timeout: &five})
		}, "POST", base + "/c1/redirect", `{"targets":[{"@odata.type":"#microsoft.graph.invitationParticipantInfo","identity":{"@odata.type":"#microsoft.graph.identitySet","phone":{"@odata.type":"#microsoft.graph.identity","id":"+1555"}}}],"timeout":5}`},
		{"transfer", func() error { return c.Transfer(ctx, "c1", &graph.TransferRequest{ClientContext: "x"}) }, "POST", base + "/c1/transfer", `{"clientContext":"x"}`},
		{"keepAlive", func() error { return c.KeepAlive(ctx, "c1") }, "POST", base + "/c1/keepAlive", `{}`},
		{"mute", func() error { _, err := c.Mute(ctx, "c1", &graph.ClientContextRequest{ClientContext: "m"}); return err }, "POST", base + "/c1/mute", `{"clientContext":"m"}`},
		{"unmute", func() error { _, err := c.Unmute(ctx, "c1", nil); return err }, "POST", base + "/c1/unmute", `{}`},
		{"playPrompt", func() error {
			_, err := c.PlayPrompt(ctx, "c1", &graph.PlayPromptRequest{Prompts: []graph.MediaPrompt{sdk.Prompt("https://x/a.wav")}})
			return err
		}, "POST", base + "/c1/playPrompt", `{"prompts":[{"@odata.type":"#microsoft.graph.mediaPrompt","mediaInfo":{"@odata.type":"#microsoft.graph.mediaInfo","uri":"https://x/a.wav"}}]}`},
		{"recordResponse", func() error {
			_, err := c.RecordResponse(ctx, "c1", &graph.RecordResponseRequest{MaxRecordDurationInSeconds: &five, StopTones: []string{"#"}})
			return err
		}, "POST", base + "/c1/recordResponse", `{"maxRecordDurationInSeconds":5,"stopTones":["#"]}`},
		{"cancelMediaProcessing", func() error { _, err := c.CancelMediaProcessing(ctx, "c1", nil); return err }, "POST", base + "/c1/cancelMediaProcessing", `{}`},
		{"subscribeToTone", func() error { _, err := c.SubscribeToTone(ctx, "c1", nil); return err }, "POST", base + "/c1/subscribeToTone", `{}`},
		{"sendDtmfTones", func() error {
			_, err := c.SendDtmfTones(ctx, "c1", &graph.SendDtmfTonesRequest{Tones: []graph.Tone{graph.Tone1, graph.TonePound}})
			return err
		}, "POST", base + "/c1/sendDtmfTones", `{"tones":["tone1","pound"]}`},
		{"getOperation", func() error { _, err := c.GetOperation(ctx, "c1", "op1"); return err }, "GET", base + "/c1/operations/op1", ""},
		{"getParticipant", func() error { _, err := c.GetParticipant(ctx, "c1", "p1"); return err }, "GET", base + "/c1/participants/p1", ""},
		{"startHoldMusic", func() error {
			op, err := c.StartHoldMusic(ctx, "c1", "p1", &graph.StartHoldMusicRequest{ClientContext: "h"})
			if err == nil && (op.ID != "op-hold" || op.Status != graph.OperationNotStarted) {
				err = errors.New("operation from Location: " + op.ID)
			}
			return err
		}, "POST", base + "/c1/participants/p1/startHoldMusic", `{"clientContext":"h"}`},
		{"stopHoldMusic", func() error { _, err := c.StopHoldMusic(ctx, "c1", "p1", nil); return err }, "POST", base + "/c1/participants/p1/stopHoldMusic", `{}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(p.requests())
			if err := tc.do(); err != nil {
				t.Fatal(err)
			}
			reqs := p.requests()[before:]
			if len(reqs) != 1 {
				t.Fatalf("%d requests", len(reqs))
			}
			r := reqs[0]
			if r.Method != tc.method || r.Path != tc.path || string(r.Body) != tc.body {
				t.Fatalf("sent %s %s %s\nwant %s %s %s", r.Method, r.Path, r.Body, tc.method, tc.path, tc.body)
			}
			if tc.body != "" && r.Header.Get("Content-Type") != "application/json" {
				t.Fatalf("Content-Type %q", r.Header.Get("Content-Type"))
			}
			if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer tok-") || r.Header.Get("client-request-id") == "" {
				t.Fatalf("headers %v", r.Header)
			}
		})
	}

	ps, err := c.ListParticipants(ctx, "c1")
	if err != nil || len(ps) != 2 || ps[0].ID != "p1" || ps[1].ID != "p2" {
		t.Fatalf("list participants over two pages: %+v %v", ps, err)
	}
	// The token never follows a nextLink to another host.
	p.setGraph(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, map[string]any{"value": []graph.Participant{{ID: "p1"}}, "@odata.nextLink": "https://evil.example/steal"})
	})
	if _, err := c.ListParticipants(ctx, "c1"); err == nil || !strings.Contains(err.Error(), "evil.example") {
		t.Fatalf("foreign nextLink: %v", err)
	}
}

// Recordings are fetched with the operation's access token, not the Graph token.
func TestDownloadRecording(t *testing.T) {
	p := newPlatform(t, false)
	c := p.client(sdk.ClientOptions{})
	p.setGraph(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer rec-token" {
			writeJSON(w, 401, graph.ErrorResponse{Error: graph.ODataError{Code: "unauthenticated", Message: "wrong token"}})
			return
		}
		if r.URL.Path != "/recordings/r1" {
			writeJSON(w, 404, graph.ErrorResponse{Error: graph.ODataError{Code: "itemNotFound", Message: "gone"}})
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		io.WriteString(w, "RIFF....WAVE")
	})
	ctx := context.Background()
	rc, err := c.DownloadRecording(ctx, p.base+"/recordings/r1", "rec-token")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(rc)
	rc.Close()
	if string(data) != "RIFF....WAVE" {
		t.Fatalf("recording %q", data)
	}
	// A relative location resolves against the API's host.
	if rc, err := c.DownloadRecording(ctx, "/recordings/r1", "rec-token"); err != nil {
		t.Fatal(err)
	} else {
		rc.Close()
	}
	_, err = c.DownloadRecording(ctx, p.base+"/recordings/r2", "rec-token")
	var ge *sdk.GraphError
	if !errors.As(err, &ge) || ge.StatusCode != 404 || ge.Code != "itemNotFound" {
		t.Fatalf("missing recording: %v", err)
	}
	if p.tokenCount.Load() != 0 {
		t.Fatal("a Graph token was fetched to download a recording")
	}
}

func TestNewClientOptions(t *testing.T) {
	_, err := sdk.NewClient(sdk.ClientOptions{BaseURL: "ftp://x"})
	for _, want := range []string{"BaseURL", "ClientID is required", "ClientSecret is required", "TokenURL or TenantID"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not mention %q", err, want)
		}
	}
	// The default token endpoint follows the API: Entra ID for Graph, the same host otherwise.
	for base, want := range map[string]string{
		"https://graph.microsoft.com/v1.0": "https://login.microsoftonline.com/" + tenant + "/oauth2/v2.0/token",
		"http://127.0.0.1:8080/v1.0":       "http://127.0.0.1:8080/" + tenant + "/oauth2/v2.0/token",
	} {
		var got string
		hc := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
			got = r.URL.String()
			return nil, errors.New("stop")
		})}
		c, err := sdk.NewClient(sdk.ClientOptions{BaseURL: base, TenantID: tenant, ClientID: appID, ClientSecret: secret, HTTPClient: hc})
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Token(context.Background())
		if got != want {
			t.Errorf("base %s: token URL %s, want %s", base, got, want)
		}
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

var _ = json.Marshal
