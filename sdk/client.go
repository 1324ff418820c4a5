package sdk

import (
	"bytes"
	"context"
	crand "crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"reflect"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// DefaultScope is the client-credentials scope for Graph.
const DefaultScope = "https://graph.microsoft.com/.default"

// ClientOptions configure a Client. BaseURL, ClientID, ClientSecret and
// either TokenURL or TenantID are required.
type ClientOptions struct {
	// BaseURL is the Graph API root including the version, e.g.
	// http://127.0.0.1:8080/v1.0 (Switchboard) or
	// https://graph.microsoft.com/v1.0.
	BaseURL string
	// TokenURL is the OAuth2 token endpoint, {authority}/{tenant}/oauth2/v2.0/token.
	// When empty it is built from TenantID: on login.microsoftonline.com
	// for graph.microsoft.com, else on BaseURL's host (Switchboard serves
	// both).
	TokenURL string
	// ClientID is the bot's application id.
	ClientID string
	// ClientSecret is the application's secret.
	ClientSecret string
	// TenantID is the tenant the bot acts in. It builds the default
	// TokenURL and is the tenant a Handler accepts notifications from
	// unless HandlerOptions.TenantIDs says otherwise.
	TenantID string
	// Scope is requested with the token; DefaultScope when empty.
	Scope string
	// HTTPClient sends every request; a client with a 60 s timeout when nil.
	HTTPClient *http.Client
	// MaxRetries bounds how many times one request is retried after a 429
	// or 503 response; 3 when zero, none when negative.
	MaxRetries int
	// MaxRetryWait is the longest single wait before a retry. A response
	// asking for longer (Retry-After) is returned as an error at once.
	// 60 s when zero.
	MaxRetryWait time.Duration
	// TokenTimeout bounds one token request; 30 s when zero.
	TokenTimeout time.Duration
	// Logger receives retries and token refresh failures; none when nil.
	Logger *slog.Logger
}

// Client calls the Graph cloud-communications API
// (https://learn.microsoft.com/graph/api/resources/communications-api-overview)
// as an application: it gets client-credentials tokens, caches them and
// refreshes them before they expire, sends JSON bodies with a fresh
// client-request-id per request, retries 429 and 503 responses as
// Retry-After asks (a bounded number of times), and returns failures as
// *GraphError wrapped with the operation's name.
//
// A Client is safe for concurrent use and holds no goroutines of its own
// beyond the one fetching a token, which ends within TokenTimeout.
type Client struct {
	o      ClientOptions
	base   *url.URL
	http   *http.Client
	log    *slog.Logger
	tokens *tokenSource
}

// NewClient checks o and returns a Client.
func NewClient(o ClientOptions) (*Client, error) {
	var errs []error
	base, err := url.Parse(strings.TrimRight(o.BaseURL, "/"))
	switch {
	case o.BaseURL == "":
		errs = append(errs, errors.New("BaseURL is required"))
	case err != nil:
		errs = append(errs, fmt.Errorf("BaseURL: %w", err))
	case base.Scheme != "http" && base.Scheme != "https" || base.Host == "":
		errs = append(errs, fmt.Errorf("BaseURL %q is not an absolute http(s) URL", o.BaseURL))
	}
	if o.ClientID == "" {
		errs = append(errs, errors.New("ClientID is required"))
	}
	if o.ClientSecret == "" {
		errs = append(errs, errors.New("ClientSecret is required"))
	}
	if o.TokenURL == "" {
		if o.TenantID == "" {
			errs = append(errs, errors.New("TokenURL or TenantID is required"))
		} else if base != nil {
			authority := base.Scheme + "://" + base.Host
			if strings.EqualFold(base.Hostname(), "graph.microsoft.com") {
				authority = "https://login.microsoftonline.com"
			}
			o.TokenURL = authority + "/" + url.PathEscape(o.TenantID) + "/oauth2/v2.0/token"
		}
	} else if u, err := url.Parse(o.TokenURL); err != nil || u.Host == "" {
		errs = append(errs, fmt.Errorf("TokenURL %q is not an absolute URL", o.TokenURL))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("sdk: client options: %w", err)
	}
	if o.Scope == "" {
		o.Scope = DefaultScope
	}
	if o.MaxRetries == 0 {
		o.MaxRetries = 3
	}
	if o.MaxRetryWait <= 0 {
		o.MaxRetryWait = time.Minute
	}
	if o.TokenTimeout <= 0 {
		o.TokenTimeout = 30 * time.Second
	}
	c := &Client{o: o, base: base, http: o.HTTPClient, log: o.Logger}
	if c.http == nil {
		c.http = &http.Client{Timeout: time.Minute}
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.tokens = &tokenSource{c: c}
	return c, nil
}

// Token returns a valid access token for the API, from the cache when it
// holds one. Methods of Client call it themselves; it is exported for
// requests the Client does not model.
func (c *Client) Token(ctx context.Context) (string, error) { return c.tokens.get(ctx) }

// TenantID is ClientOptions.TenantID.
func (c *Client) TenantID() string { return c.o.TenantID }

// ClientID is ClientOptions.ClientID: the bot's application id.
func (c *Client) ClientID() string { return c.o.ClientID }

// authMode says which bearer token a request carries.
type authMode int

const (
	authNone   authMode = iota // the token endpoint
	authGraph                  // a Graph token from the cache
	authBearer                 // request.bearer (a recording's access token)
)

type request struct {
	method, url string
	body        []byte
	contentType string
	auth        authMode
	bearer      string
	accept      string
	// stream leaves a successful response's body unread for the caller.
	stream bool
}

const maxResponseBytes = 16 << 20

// send performs r, retrying 429 and 503 responses and, once, a 401 to a
// cached Graph token. It returns the final response with its body read
// (unless r.stream and the status is 2xx), whatever the status.
func (c *Client) send(ctx context.Context, r request) (*http.Response, []byte, error) {
	crid := newUUID()
	refreshed := false
	for attempt := 0; ; attempt++ {
		var token string
		if r.auth == authGraph {
			var err error
			if token, err = c.tokens.get(ctx); err != nil {
				return nil, nil, err
			}
		}
		req, err := http.NewRequestWithContext(ctx, r.method, r.url, bytes.NewReader(r.body))
		if err != nil {
			return nil, nil, err
		}
		if r.body == nil {
			req.Body, req.ContentLength = http.NoBody, 0
		}
		if r.contentType != "" {
			req.Header.Set("Content-Type", r.contentType)
		}
		accept := r.accept
		if accept == "" {
			accept = "application/json"
		}
		req.Header.Set("Accept", accept)
		req.Header.Set("client-request-id", crid)
		req.Header.Set("User-Agent", "switchboard-sdk-go")
		switch r.auth {
		case authGraph:
			req.Header.Set("Authorization", "Bearer "+token)
		case authBearer:
			req.Header.Set("Authorization", "Bearer "+r.bearer)
		}

		resp, err := c.http.Do(req)
		if err != nil {
			return nil, nil, err
		}
		ok := resp.StatusCode >= 200 && resp.StatusCode < 300
		if r.stream && ok {
			return resp, nil, nil
		}
		body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
		resp.Body.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("read response: %w", err)
		}

		if resp.StatusCode == http.StatusUnauthorized && r.auth == authGraph && !refreshed {
			// The cached token was refused (revoked, keys rotated, clock
			// skew): fetch a new one and try once more.
			refreshed = true
			c.tokens.invalidate(token)
			attempt--
			continue
		}
		if (resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable) && attempt < c.o.MaxRetries {
			wait := retryAfter(resp.Header, time.Now())
			if wait <= 0 {
				wait = backoff(attempt)
			}
			if wait > c.o.MaxRetryWait {
				return resp, body, nil
			}
			if dl, ok := ctx.Deadline(); ok && time.Until(dl) < wait {
				return resp, body, nil // waiting cannot help; let the caller see the 429
			}
			c.log.Debug("retrying throttled request", "method", r.method, "url", r.url, "status", resp.StatusCode, "wait", wait, "attempt", attempt+1)
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return nil, nil, ctx.Err()
			}
			continue
		}
		resp.Header.Set("client-request-id", crid) // for error reports, whatever the server echoed
		return resp, body, nil
	}
}

// backoff is the wait before retry attempt+1 when the server gave no
// Retry-After: 1 s, 2 s, 4 s… with ±20 % jitter.
func backoff(attempt int) time.Duration {
	d := time.Second << min(attempt, 6)
	return time.Duration(float64(d) * (0.8 + 0.4*rand.Float64()))
}

// retryAfter parses Retry-After: seconds (Graph sends fractions, "2.128":
// https://learn.microsoft.com/graph/throttling) or an HTTP date. Zero when
// absent or unparseable.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// newUUID returns a random (version 4) UUID for client-request-id.
func newUUID() string {
	var b [16]byte
	_, _ = crand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	x := hex.EncodeToString(b[:])
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:]
}

// graphDo sends a Graph request with a JSON body (in, when not nil) and
// decodes a JSON response into out (when not nil and the body is not
// empty). Any status of 400 or more is a *GraphError.
func (c *Client) graphDo(ctx context.Context, method, u string, in, out any) (*http.Response, error) {
	var body []byte
	var ct string
	if in != nil {
		var err error
		if body, err = json.Marshal(in); err != nil {
			return nil, err
		}
		ct = "application/json"
	}
	resp, data, err := c.send(ctx, request{method: method, url: u, body: body, contentType: ct, auth: authGraph})
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		return resp, parseGraphError(resp, data, resp.Header.Get("client-request-id"))
	}
	if out != nil && len(bytes.TrimSpace(data)) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return resp, fmt.Errorf("malformed response body: %w", err)
		}
	}
	return resp, nil
}

// callURL is the URL of a call, or of something under it.
func (c *Client) callURL(callID string, rest ...string) string {
	u := c.base.String() + "/communications/calls"
	if callID != "" {
		u += "/" + url.PathEscape(callID)
	}
	for _, r := range rest {
		u += "/" + url.PathEscape(r)
	}
	return u
}

// CreateCall places an outgoing call or joins a meeting
// (https://learn.microsoft.com/graph/api/application-post-calls) and returns
// the call as created, in state establishing. req is not modified; an empty
// @odata.type and a media configuration without one are filled in.
func (c *Client) CreateCall(ctx context.Context, req *graph.Call) (*graph.Call, error) {
	if req == nil {
		return nil, errors.New("create call: nil request")
	}
	r := *req
	if r.ODataType == "" {
		r.ODataType = graph.TypeCall
	}
	if r.MediaConfig != nil {
		mc := *r.MediaConfig
		mc.Normalize()
		r.MediaConfig = &mc
	}
	var out graph.Call
	if _, err := c.graphDo(ctx, http.MethodPost, c.callURL(""), &r, &out); err != nil {
		return nil, fmt.Errorf("create call: %w", err)
	}
	if out.ID == "" {
		return nil, errors.New("create call: the response has no call id")
	}
	return &out, nil
}

// GetCall reads a call (GET /communications/calls/{id}). An ended call is
// a *GraphError with status 404.
func (c *Client) GetCall(ctx context.Context, callID string) (*graph.Call, error) {
	var out graph.Call
	if _, err := c.graphDo(ctx, http.MethodGet, c.callURL(callID), nil, &out); err != nil {
		return nil, fmt.Errorf("get call %s: %w", callID, err)
	}
	return &out, nil
}

// HangUp ends the bot's leg of a call (DELETE /communications/calls/{id}).
func (c *Client) HangUp(ctx context.Context, callID string) error {
	if _, err := c.graphDo(ctx, http.MethodDelete, c.callURL(callID), nil, nil); err != nil {
		return fmt.Errorf("hang up call %s: %w", callID, err)
	}
	return nil
}

func (c *Client) action(ctx context.Context, name, callID, action string, in any) error {
	if _, err := c.graphDo(ctx, http.MethodPost, c.callURL(callID, action), orEmpty(in), nil); err != nil {
		return fmt.Errorf("%s call %s: %w", name, callID, err)
	}
	return nil
}

// Answer answers an incoming call
// (https://learn.microsoft.com/graph/api/call-answer); it must come within
// 15 s of the incoming notification. req must carry a media configuration
// and the accepted modalities.
func (c *Client) Answer(ctx context.Context, callID string, req *graph.AnswerRequest) error {
	return c.action(ctx, "answer", callID, "answer", req)
}

// Reject declines an incoming call
// (https://learn.microsoft.com/graph/api/call-reject); nil req rejects with
// reason none.
func (c *Client) Reject(ctx context.Context, callID string, req *graph.RejectRequest) error {
	return c.action(ctx, "reject", callID, "reject", req)
}

// Redirect sends an unanswered incoming call to other targets
// (https://learn.microsoft.com/graph/api/call-redirect).
func (c *Client) Redirect(ctx context.Context, callID string, req *graph.RedirectRequest) error {
	return c.action(ctx, "redirect", callID, "redirect", req)
}

// Transfer transfers an established call
// (https://learn.microsoft.com/graph/api/call-transfer). Switchboard does not
// serve it yet and answers 400 notSupported.
func (c *Client) Transfer(ctx context.Context, callID string, req *graph.TransferRequest) error {
	return c.action(ctx, "transfer", callID, "transfer", req)
}

// KeepAlive tells the platform the bot still holds the call
// (https://learn.microsoft.com/graph/api/call-keepalive); without one every
// 45 minutes the call ends. Handler sends them itself for the calls it
// tracks.
func (c *Client) KeepAlive(ctx context.Context, callID string) error {
	return c.action(ctx, "keep alive", callID, "keepAlive", nil)
}

// orEmpty turns a nil request (untyped or a nil pointer) into the empty
// JSON object: actions are POSTed with a body.
func orEmpty(in any) any {
	if in == nil {
		return struct{}{}
	}
	if v := reflect.ValueOf(in); v.Kind() == reflect.Pointer && v.IsNil() {
		return struct{}{}
	}
	return in
}

func (c *Client) operation(ctx context.Context, name, u, callID string, in any) (*graph.Operation, error) {
	var out graph.Operation
	resp, err := c.graphDo(ctx, http.MethodPost, u, orEmpty(in), &out)
	if err != nil {
		return nil, fmt.Errorf("%s on call %s: %w", name, callID, err)
	}
	if out.ID == "" {
		// No body, so no status: the operation is still to run and its result
		// comes by notification
		// (https://learn.microsoft.com/graph/api/resources/commsoperation);
		// its id is the Location's last segment.
		loc := resp.Header.Get("Location")
		out.ID = loc[strings.LastIndex(loc, "/")+1:]
		if out.Status == "" {
			out.Status = graph.OperationNotStarted
		}
	}
	return &out, nil
}

// Mute mutes the bot's own audio
// (https://learn.microsoft.com/graph/api/call-mute). nil req sends no
// clientContext.
func (c *Client) Mute(ctx context.Context, callID string, req *graph.ClientContextRequest) (*graph.Operation, error) {
	return c.operation(ctx, "mute", c.callURL(callID, "mute"), callID, req)
}

// Unmute unmutes the bot's own audio
// (https://learn.microsoft.com/graph/api/call-unmute).
func (c *Client) Unmute(ctx context.Context, callID string, req *graph.ClientContextRequest) (*graph.Operation, error) {
	return c.operation(ctx, "unmute", c.callURL(callID, "unmute"), callID, req)
}

// PlayPrompt queues prompts to play to the call
// (https://learn.microsoft.com/graph/api/call-playprompt). The operation is
// usually running; Await its completion.
func (c *Client) PlayPrompt(ctx context.Context, callID string, req *graph.PlayPromptRequest) (*graph.Operation, error) {
	return c.operation(ctx, "play prompt", c.callURL(callID, "playPrompt"), callID, req)
}

// RecordResponse records the caller
// (https://learn.microsoft.com/graph/api/call-record). The completed
// operation carries recordingLocation and recordingAccessToken for
// DownloadRecording.
func (c *Client) RecordResponse(ctx context.Context, callID string, req *graph.RecordResponseRequest) (*graph.Operation, error) {
	return c.operation(ctx, "record response", c.callURL(callID, "recordResponse"), callID, req)
}

// CancelMediaProcessing cancels the running and queued prompts and
// recordings
// (https://learn.microsoft.com/graph/api/call-cancelmediaprocessing); each
// fails with 400/8508.
func (c *Client) CancelMediaProcessing(ctx context.Context, callID string, req *graph.ClientContextRequest) (*graph.Operation, error) {
	return c.operation(ctx, "cancel media processing", c.callURL(callID, "cancelMediaProcessing"), callID, req)
}

// SubscribeToTone asks for the caller's DTMF tones
// (https://learn.microsoft.com/graph/api/call-subscribetotone); each arrives
// as a call update with toneInfo.
func (c *Client) SubscribeToTone(ctx context.Context, callID string, req *graph.ClientContextRequest) (*graph.Operation, error) {
	return c.operation(ctx, "subscribe to tone", c.callURL(callID, "subscribeToTone"), callID, req)
}

// SendDtmfTones plays DTMF tones to the far end
// (https://learn.microsoft.com/graph/api/call-senddtmftones).
func (c *Client) SendDtmfTones(ctx context.Context, callID string, req *graph.SendDtmfTonesRequest) (*graph.Operation, error) {
	return c.operation(ctx, "send DTMF tones", c.callURL(callID, "sendDtmfTones"), callID, req)
}

// StartHoldMusic puts a participant on hold with music
// (https://learn.microsoft.com/graph/api/participant-startholdmusic).
func (c *Client) StartHoldMusic(ctx context.Context, callID, participantID string, req *graph.StartHoldMusicRequest) (*graph.Operation, error) {
	return c.operation(ctx, "start hold music", c.callURL(callID, "participants", participantID, "startHoldMusic"), callID, req)
}

// StopHoldMusic takes a participant off hold
// (https://learn.microsoft.com/graph/api/participant-stopholdmusic).
func (c *Client) StopHoldMusic(ctx context.Context, callID, participantID string, req *graph.ClientContextRequest) (*graph.Operation, error) {
	return c.operation(ctx, "stop hold music", c.callURL(callID, "participants", participantID, "stopHoldMusic"), callID, req)
}

// InviteParticipants dials participants into a group call, or into a
// two-party call, which becomes a group call
// (https://learn.microsoft.com/graph/api/participant-invite). The
// operation completes by notification once each invitee has joined (a
// roster update shows them) or failed.
func (c *Client) InviteParticipants(ctx context.Context, callID string, req *graph.InviteParticipantsRequest) (*graph.Operation, error) {
	return c.operation(ctx, "invite participants", c.callURL(callID, "participants", "invite"), callID, req)
}

// MuteParticipant server-mutes another participant of a group call
// (https://learn.microsoft.com/graph/api/participant-mute); there is no
// way to unmute someone else.
func (c *Client) MuteParticipant(ctx context.Context, callID, participantID string, req *graph.ClientContextRequest) (*graph.Operation, error) {
	return c.operation(ctx, "mute participant", c.callURL(callID, "participants", participantID, "mute"), callID, req)
}

// RemoveParticipant drops a participant from a group call, or cancels its
// pending invite (https://learn.microsoft.com/graph/api/participant-delete).
func (c *Client) RemoveParticipant(ctx context.Context, callID, participantID string) error {
	if _, err := c.graphDo(ctx, http.MethodDelete, c.callURL(callID, "participants", participantID), nil, nil); err != nil {
		return fmt.Errorf("remove participant %s of call %s: %w", participantID, callID, err)
	}
	return nil
}

// GetOperation reads an operation of a call
// (https://learn.microsoft.com/graph/api/resources/commsoperation).
func (c *Client) GetOperation(ctx context.Context, callID, operationID string) (*graph.Operation, error) {
	var out graph.Operation
	if _, err := c.graphDo(ctx, http.MethodGet, c.callURL(callID, "operations", operationID), nil, &out); err != nil {
		return nil, fmt.Errorf("get operation %s of call %s: %w", operationID, callID, err)
	}
	return &out, nil
}

// ListParticipants reads a call's roster
// (https://learn.microsoft.com/graph/api/call-list-participants), following
// @odata.nextLink pages on the API's own host.
func (c *Client) ListParticipants(ctx context.Context, callID string) ([]graph.Participant, error) {
	u := c.callURL(callID, "participants")
	var all []graph.Participant
	for range 100 {
		var page struct {
			Value    []graph.Participant `json:"value"`
			NextLink string              `json:"@odata.nextLink"`
		}
		if _, err := c.graphDo(ctx, http.MethodGet, u, nil, &page); err != nil {
			return nil, fmt.Errorf("list participants of call %s: %w", callID, err)
		}
		all = append(all, page.Value...)
		if page.NextLink == "" {
			return all, nil
		}
		next, err := c.base.Parse(page.NextLink)
		if err != nil || next.Host != c.base.Host || next.Scheme != c.base.Scheme {
			// The token is only ever sent to the API's own host.
			return nil, fmt.Errorf("list participants of call %s: nextLink %q is not on %s", callID, page.NextLink, c.base.Host)
		}
		u = next.String()
	}
	return nil, fmt.Errorf("list participants of call %s: more than 100 pages", callID)
}

// GetParticipant reads one participant of a call.
func (c *Client) GetParticipant(ctx context.Context, callID, participantID string) (*graph.Participant, error) {
	var out graph.Participant
	if _, err := c.graphDo(ctx, http.MethodGet, c.callURL(callID, "participants", participantID), nil, &out); err != nil {
		return nil, fmt.Errorf("get participant %s of call %s: %w", participantID, callID, err)
	}
	return &out, nil
}

// DownloadRecording fetches a recording: GET location with the
// operation's recordingAccessToken, not the Graph token
// (https://learn.microsoft.com/graph/api/call-record). A relative location is
// resolved against BaseURL's host. The caller reads and closes the returned
// body.
func (c *Client) DownloadRecording(ctx context.Context, location, accessToken string) (io.ReadCloser, error) {
	u, err := c.base.Parse(location)
	if err != nil || location == "" {
		return nil, fmt.Errorf("download recording: location %q is not a URL", location)
	}
	resp, body, err := c.send(ctx, request{method: http.MethodGet, url: u.String(), auth: authBearer, bearer: accessToken,
		accept: "application/octet-stream, audio/wav, */*", stream: true})
	if err != nil {
		return nil, fmt.Errorf("download recording %s: %w", location, err)
	}
	if resp.StatusCode < 200 || resp.StatusCode >= 300 {
		return nil, fmt.Errorf("download recording %s: %w", location, parseGraphError(resp, body, resp.Header.Get("client-request-id")))
	}
	return resp.Body, nil
}
