package identity

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// FuzzAuthenticate feeds a Graph request's Authorization header to
// Authenticate. In the input, "{token}" stands for a real access token of
// application One in tenant A, minted once per run, so seeds start from a
// valid token and its mutations (a claim, the header, the signature, the
// scheme). Nothing may panic; a refusal is 401 (errs.Unauthenticated);
// the only caller ever let in is the one that token names.
func FuzzAuthenticate(f *testing.F) {
	e := newEnv(f)
	var once sync.Once
	var tok string
	f.Add("Bearer {token}")
	f.Fuzz(func(t *testing.T, header string) {
		once.Do(func() { tok = e.token(t, tenantA, appOne, secret1) })
		r := bearer("")
		r.Header.Set("Authorization", strings.ReplaceAll(header, "{token}", tok))
		p, err := e.svc.Authenticate(r)
		if err != nil {
			if k := errs.KindOf(err); k != errs.Unauthenticated {
				t.Fatalf("refused as %v: %v", k, err)
			}
			return
		}
		if p.TenantID != tenantA || p.AppID != appOne {
			t.Fatalf("let in %+v", p)
		}
	})
}

// FuzzTokenRequest feeds HTTP requests, as a client sends them, to the
// token endpoints (v2.0 and v1.0, POST /{tenant}/oauth2/…token) of a
// fresh service each (so no lockout carries over from one input to the
// next): form bodies of any grant, scope, resource and client
// credentials, in the form and as HTTP Basic. A request Go's server would
// refuse is skipped. Nothing may panic; the answer is a token that
// authenticates, or the identity platform's error shape with a 4xx.
func FuzzTokenRequest(f *testing.F) {
	e := newEnv(f)
	body := "grant_type=client_credentials&client_id=" + appOne + "&client_secret=" + secret1 +
		"&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default"
	f.Add("POST /" + tenantA + "/oauth2/v2.0/token HTTP/1.1\r\nHost: login\r\nContent-Type: application/x-www-form-urlencoded\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body)
	f.Fuzz(func(t *testing.T, raw string) {
		req, err := http.ReadRequest(bufio.NewReader(strings.NewReader(raw)))
		if err != nil {
			return // Go's server answers 400 before any handler runs
		}
		svc := New(e.cfg, e.dir, e.keys, e.clk.Now)
		mux := http.NewServeMux()
		svc.Routes(mux)
		if _, p := mux.Handler(req); !strings.Contains(p, "token") {
			return // another route, or none
		}
		req.RemoteAddr = "192.0.2.1:40000"
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		switch {
		case w.Code == http.StatusOK:
			var tr graph.TokenResponse
			if err := json.Unmarshal(w.Body.Bytes(), &tr); err != nil || tr.AccessToken == "" {
				t.Fatalf("200 without a token: %s", w.Body)
			}
			if _, err := svc.Authenticate(bearer(tr.AccessToken)); err != nil {
				t.Fatalf("the token issued does not authenticate: %v", err)
			}
		case w.Code == http.StatusTemporaryRedirect || w.Code == http.StatusPermanentRedirect ||
			w.Code == http.StatusMovedPermanently:
			// The mux's, to the cleaned path (…/oauth2//token).
		case w.Code >= 400 && w.Code < 500:
			var te graph.TokenError
			if w.Code == http.StatusMethodNotAllowed {
				return // the mux's
			}
			if err := json.Unmarshal(w.Body.Bytes(), &te); err != nil || te.Error == "" || te.ErrorDescription == "" {
				t.Fatalf("%d not in the identity platform's shape: %s", w.Code, w.Body)
			}
		default:
			t.Fatalf("answered %d: %s", w.Code, w.Body)
		}
	})
}
