package calltest_test

import (
	"bytes"
	"encoding/base64"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// logBuffer is a log destination tests read back; safe for concurrent use.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestNoSecretsInLogs runs a node logging at debug level and drives what
// handles secrets (issue 15): token issuance (right and wrong secrets, in
// the body and as HTTP Basic), a call created and notified, refused
// requests, a media socket refused with a token in its query, a recording
// made and downloaded. The log must hold no client secret, no access
// token, no notification token and no recording token, whole or as their
// signatures.
func TestNoSecretsInLogs(t *testing.T) {
	logs := &logBuffer{}
	log := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	p := calltest.Start(t, calltest.Options{Logger: log})

	const wrongSecret = "wrong-secret-9f8e7d6c5b4a"
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {calltest.BotID}, "client_secret": {wrongSecret},
		"scope": {"https://graph.microsoft.com/.default"}}
	if r := p.Do(calltest.Req{Method: "POST", Path: "/" + calltest.TenantID + "/oauth2/v2.0/token", Body: form.Encode(),
		Header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}}); r.StatusCode != 401 {
		t.Fatalf("wrong secret: %s %s", r.Status, r.Body)
	}
	basic := url.Values{"grant_type": {"client_credentials"}, "scope": {"https://graph.microsoft.com/.default"}}
	req := calltest.Req{Method: "POST", Path: "/" + calltest.TenantID + "/oauth2/v2.0/token", Body: basic.Encode(),
		Header: map[string]string{"Content-Type": "application/x-www-form-urlencoded",
			"Authorization": "Basic " + basicAuth(calltest.Bot2ID, calltest.Secret)}}
	r := p.Do(req)
	if r.StatusCode != 200 {
		t.Fatalf("token with HTTP Basic: %s %s", r.Status, r.Body)
	}
	var basicTok graph.TokenResponse
	r.JSON(t, &basicTok)
	bot := p.Token(calltest.BotID, calltest.TenantID)
	other := p.Token(calltest.OtherBotID, calltest.OtherTenantID)

	// A bot webhook that refuses every notification (401): each is
	// dropped with a warning. It keeps the token it was sent.
	sent := make(chan string, 64)
	refusing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sent <- strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(refusing.Close)
	refused := p.Bot("POST", calls, calltest.CallTo(refusing.URL+"/callback", calltest.AliceID))
	if refused.StatusCode != 201 {
		t.Fatalf("create call: %s %s", refused.Status, refused.Body)
	}
	var sentToken string
	select {
	case sentToken = <-sent:
	case <-time.After(10 * time.Second):
		t.Fatal("no notification reached the refusing webhook")
	}

	call := p.CreateCall(calltest.AliceID)
	p.Hook.WaitState(t, call.ID, graph.StateEstablished)
	// Refusals: another tenant's token, a tampered token, a media socket
	// with the token in its query.
	p.Do(calltest.Req{Method: "GET", Path: calls + "/" + call.ID, Token: other})
	p.Do(calltest.Req{Method: "GET", Path: calls + "/" + call.ID, Token: bot[:len(bot)-4] + "AAAA"})
	p.Do(calltest.Req{Method: "GET", Path: calls + "/" + call.ID + "/media?access_token=" + url.QueryEscape(bot)})

	var op graph.Operation
	r = p.Bot("POST", calls+"/"+call.ID+"/recordResponse", map[string]any{"initialSilenceTimeoutInSeconds": 1, "maxRecordDurationInSeconds": 5})
	r.JSON(t, &op)
	if r.StatusCode != 200 {
		t.Fatalf("recordResponse: %s %s", r.Status, r.Body)
	}
	done := waitOperation(t, p, call.ID, op.ID)
	if done.RecordingLocation == nil || done.RecordingAccessToken == nil {
		t.Fatalf("recording without location or token: %+v", done)
	}
	loc, err := url.Parse(*done.RecordingLocation)
	if err != nil {
		t.Fatal(err)
	}
	recToken := *done.RecordingAccessToken
	if r := p.Do(calltest.Req{Method: "GET", Path: loc.Path, Token: recToken}); r.StatusCode != 200 {
		t.Fatalf("recording download: %s", r.Status)
	}
	p.Do(calltest.Req{Method: "GET", Path: loc.Path, Token: recToken + "x"})
	p.Bot("DELETE", calls+"/"+call.ID, nil)
	p.Hook.WaitState(t, call.ID, graph.StateTerminated)

	notif, err := p.Node.Identity.NotificationToken(calltest.BotID, calltest.TenantID)
	if err != nil {
		t.Fatal(err)
	}
	out := logs.String()
	for _, want := range []string{"level=DEBUG", "notification delivered", "notification dropped"} {
		if !strings.Contains(out, want) {
			t.Fatalf("no %q in the log; the test proves less than it says:\n%s", want, out)
		}
	}
	for _, s := range []struct{ what, value string }{
		{"the client secret", calltest.Secret},
		{"a wrong client secret", wrongSecret},
		{"the HTTP Basic credentials", basicAuth(calltest.Bot2ID, calltest.Secret)},
		{"BotID's access token", bot},
		{"BotID's access token's signature", signature(bot)},
		{"Bot2ID's access token (HTTP Basic)", signature(basicTok.AccessToken)},
		{"the other tenant's access token", signature(other)},
		{"the notification token", notif},
		{"the notification token's signature", signature(notif)},
		{"the notification token the refusing webhook got", signature(sentToken)},
		{"the recording access token", recToken},
	} {
		if s.value != "" && strings.Contains(out, s.value) {
			t.Errorf("the log holds %s", s.what)
		}
	}
	t.Logf("%d log lines checked", strings.Count(out, "\n"))
}

// signature is the last segment of a JWT.
func signature(jwt string) string { return jwt[strings.LastIndexByte(jwt, '.')+1:] }

// basicAuth is the value of an HTTP Basic Authorization header for a
// client id and secret, form-encoded first (RFC 6749 §2.3.1).
func basicAuth(id, secret string) string {
	return base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id) + ":" + url.QueryEscape(secret)))
}
