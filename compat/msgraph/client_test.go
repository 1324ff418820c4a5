package msgraph

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	absauth "github.com/microsoft/kiota-abstractions-go/authentication"
	khttp "github.com/microsoft/kiota-http-go"
	msgraphsdk "github.com/microsoftgraph/msgraph-sdk-go"
	msgraphcore "github.com/microsoftgraph/msgraph-sdk-go-core"
)

// clientCredentials is a kiota AccessTokenProvider that gets app-only tokens
// from Switchboard's token endpoint with a plain OAuth2 client-credentials
// POST, the request azidentity's ClientSecretCredential sends to Entra ID.
// (azidentity itself cannot be used: it insists on an https authority.)
type clientCredentials struct {
	tokenURL, clientID, secret string
	hosts                      *absauth.AllowedHostsValidator

	mu      sync.Mutex
	token   string
	expires time.Time
}

var _ absauth.AccessTokenProvider = (*clientCredentials)(nil)

func newClientCredentials(public, tenant, clientID, secret string) *clientCredentials {
	return &clientCredentials{tokenURL: public + "/" + tenant + "/oauth2/v2.0/token", clientID: clientID, secret: secret, hosts: nodeHost(public)}
}

// nodeHost allows tokens to be sent to the node's host only.
func nodeHost(public string) *absauth.AllowedHostsValidator {
	u, err := url.Parse(public)
	if err != nil {
		panic(err)
	}
	v, err := absauth.NewAllowedHostsValidatorErrorCheck([]string{u.Hostname()})
	if err != nil {
		panic(err)
	}
	return v
}

func (c *clientCredentials) GetAllowedHostsValidator() *absauth.AllowedHostsValidator { return c.hosts }

// GetAuthorizationToken returns a cached token, or fetches one. As kiota's
// own providers do, it hands out no token for hosts it does not know.
func (c *clientCredentials) GetAuthorizationToken(ctx context.Context, u *url.URL, _ map[string]any) (string, error) {
	if !c.hosts.IsUrlHostValid(u) {
		return "", nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && time.Until(c.expires) > time.Minute {
		return c.token, nil
	}
	form := url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {c.clientID},
		"client_secret": {c.secret},
		"scope":         {"https://graph.microsoft.com/.default"},
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("token request: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		Error       string `json:"error"`
		Description string `json:"error_description"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return "", fmt.Errorf("token response (%s): %w", resp.Status, err)
	}
	if resp.StatusCode != http.StatusOK || body.AccessToken == "" {
		return "", fmt.Errorf("token request: %s: %s: %s", resp.Status, body.Error, body.Description)
	}
	c.token, c.expires = body.AccessToken, time.Now().Add(time.Duration(body.ExpiresIn)*time.Second)
	return c.token, nil
}

// staticToken hands out a fixed token, for the bad-token case.
type staticToken struct {
	token string
	hosts *absauth.AllowedHostsValidator
}

func (s staticToken) GetAllowedHostsValidator() *absauth.AllowedHostsValidator { return s.hosts }
func (s staticToken) GetAuthorizationToken(context.Context, *url.URL, map[string]any) (string, error) {
	return s.token, nil
}

// wire records what actually goes on the wire, beneath the client's
// middleware pipeline (after its compression handler has run).
type wire struct {
	next http.RoundTripper

	mu        sync.Mutex
	encodings map[string]int // Content-Encoding of requests with a body → count
}

func (w *wire) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil && r.Body != http.NoBody {
		w.mu.Lock()
		w.encodings[r.Header.Get("Content-Encoding")]++
		w.mu.Unlock()
		if os.Getenv("SWITCHBOARD_TEST_LOG") != "" {
			if err := dumpBody(r); err != nil {
				return nil, err
			}
		}
	}
	return w.next.RoundTrip(r)
}

// dumpBody prints a request's body as the client sent it (decompressed),
// for SWITCHBOARD_TEST_LOG=1, and puts the body back.
func dumpBody(r *http.Request) error {
	raw, err := io.ReadAll(r.Body)
	r.Body.Close()
	if err != nil {
		return err
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	plain := raw
	if r.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err == nil {
			plain, err = io.ReadAll(zr)
		}
		if err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "msgraph client: %s %s (Content-Encoding %q)\n%s\n", r.Method, r.URL.Path, r.Header.Get("Content-Encoding"), plain)
	return nil
}

func (w *wire) count(enc string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.encodings[enc]
}

// newClient returns msgraph-sdk-go's GraphServiceClient pointed at the test
// node. Everything but configuration is the library's: its request adapter,
// its default middleware pipeline (retry, redirect, compression, telemetry,
// …) and its default transport; wire only observes beneath them.
func newClient(t *testing.T, tokens absauth.AccessTokenProvider) (*msgraphsdk.GraphServiceClient, *wire) {
	t.Helper()
	w := &wire{next: khttp.GetDefaultTransport(), encodings: map[string]int{}}
	opts := msgraphsdk.GetDefaultClientOptions()
	hc := msgraphcore.GetDefaultClient(&opts)
	hc.Transport = khttp.NewCustomTransportWithParentTransport(w, msgraphcore.GetDefaultMiddlewaresWithOptions(&opts)...)
	adapter, err := msgraphsdk.NewGraphRequestAdapterWithParseNodeFactoryAndSerializationWriterFactoryAndHttpClient(
		absauth.NewBaseBearerTokenAuthenticationProvider(tokens), nil, nil, hc)
	if err != nil {
		t.Fatal(err)
	}
	adapter.SetBaseUrl(env.public + "/v1.0")
	return msgraphsdk.NewGraphServiceClient(adapter), w
}

// botClient is the client of the configured bot application.
func botClient(t *testing.T) (*msgraphsdk.GraphServiceClient, *wire) {
	return newClient(t, newClientCredentials(env.public, tenantID, appID, appSecret))
}
