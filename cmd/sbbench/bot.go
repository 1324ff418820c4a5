package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-voice/switchboard/sdk"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Bot behaviours.
const (
	botIVR    = "ivr"    // answer, subscribeToTone, playPrompt, recordResponse
	botAnswer = "answer" // answer only (setup-rate runs)
	botEcho   = "echo"   // open the media socket, answer with appHostedMediaConfig, echo the mix
)

// bot is the IVR bot the benchmark runs in-process: a webhook on loopback
// and a bounded pool of workers making its Graph requests with one token.
// The webhook answers every notification 202 at once and leaves the Graph
// requests to the workers.
type bot struct {
	mode       string
	api        string // the node's base URL
	callback   string // the webhook's URL
	promptURI  string
	recordSecs int
	client     *http.Client
	validator  *sdk.Validator // nil: tokens are not verified
	token      string
	jobs       chan func()
	srv        *http.Server
	workers    sync.WaitGroup

	notifications atomic.Int64
	posts         atomic.Int64 // webhook POSTs
	postBytes     atomic.Int64 // their bodies, in bytes
	badTokens     atomic.Int64
	badBodies     atomic.Int64

	// conf, when set (sbbench conf), places group calls and takes every
	// notification instead of the IVR's handling.
	conf *confDriver

	// echo is the echo bot's (sbbench echo): its SDK client, its options,
	// and its media sockets still open.
	echo echoBot

	mu    sync.Mutex
	calls map[string]*botCall
	live  int
}

// botCall is what the bot saw of one call.
type botCall struct {
	id          string
	caller      string
	incoming    time.Time // the created notification arrived
	answered    time.Time // the answer POST returned
	established time.Time // the established notification arrived
	subscribed  time.Time // the subscribeToTone POST returned
	ivrDone     time.Time // the recordResponse POST returned
	ended       time.Time // the terminated notification arrived
	answerErr   string
	ivrErr      string
	ivrStarted  bool
	tones       []string
	prompt      opResult
	record      opResult
	end         graph.ResultInfo
	// The echo bot's: the media socket (opened, or why not) and what went
	// over it, set when the socket is over.
	slow     bool
	mediaErr string
	media    echoStats
}

type opResult struct {
	status  graph.OperationStatus
	code    int
	subcode int
	message string
}

func (o opResult) String() string {
	if o.status == "" {
		return "no notification"
	}
	return fmt.Sprintf("%s %d/%d %s", o.status, o.code, o.subcode, o.message)
}

// newBot starts the bot's webhook (and the prompt's server) on loopback.
func newBot(mode string, workers int, prompt []byte, recordSecs int) (*bot, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	base := "http://" + ln.Addr().String()
	b := &bot{
		mode: mode, callback: base + "/callback", promptURI: base + "/prompt.wav", recordSecs: recordSecs,
		client: &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
			MaxIdleConns: workers * 2, MaxIdleConnsPerHost: workers * 2, IdleConnTimeout: time.Minute,
		}},
		jobs:  make(chan func(), 1<<16),
		calls: map[string]*botCall{},
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /callback", b.webhook)
	mux.HandleFunc("GET /prompt.wav", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "audio/wav")
		http.ServeContent(w, r, "prompt.wav", time.Time{}, bytes.NewReader(prompt))
	})
	b.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = b.srv.Serve(ln) }()
	for range workers {
		b.workers.Add(1)
		go func() {
			defer b.workers.Done()
			for job := range b.jobs {
				job()
			}
		}()
	}
	return b, nil
}

// connect points the bot at the node and gets its one token.
func (b *bot) connect(ctx context.Context, api string, verify bool) error {
	b.api = api
	if verify {
		b.validator = &sdk.Validator{OpenIDConfigURL: api + "/v1/.well-known/openidconfiguration", AppID: benchApp}
	}
	form := url.Values{"client_id": {benchApp}, "client_secret": {benchSecret},
		"grant_type": {"client_credentials"}, "scope": {"https://graph.microsoft.com/.default"}}
	req, _ := http.NewRequestWithContext(ctx, "POST", api+"/"+benchTenant+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	r, err := b.client.Do(req)
	if err != nil {
		return fmt.Errorf("token: %w", err)
	}
	defer r.Body.Close()
	var tr graph.TokenResponse
	if r.StatusCode != 200 || json.NewDecoder(r.Body).Decode(&tr) != nil || tr.AccessToken == "" {
		return fmt.Errorf("token: %s", r.Status)
	}
	b.token = tr.AccessToken
	if b.mode == botEcho {
		// The media sockets are opened with the SDK's client, as a Go bot
		// would: its own token, for the same application.
		c, err := sdk.NewClient(sdk.ClientOptions{BaseURL: api + "/v1.0", TenantID: benchTenant,
			ClientID: benchApp, ClientSecret: benchSecret, HTTPClient: b.client})
		if err != nil {
			return err
		}
		b.echo.client = c
	}
	return nil
}

func (b *bot) close() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = b.srv.Shutdown(ctx)
	close(b.jobs)
	b.workers.Wait()
}

// Live returns the calls between their incoming and terminated
// notifications; in a conference run, the parties in the rosters of the
// group calls not yet ended.
func (b *bot) Live() int {
	if b.conf != nil {
		return b.conf.Joined()
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.live
}

// reset forgets the calls seen so far (after a warm-up).
func (b *bot) reset() {
	b.mu.Lock()
	b.calls = map[string]*botCall{}
	b.live = 0
	b.mu.Unlock()
	b.notifications.Store(0)
	b.posts.Store(0)
	b.postBytes.Store(0)
	b.badTokens.Store(0)
	b.badBodies.Store(0)
}

// Calls returns a copy of what the bot saw of each call.
func (b *bot) Calls() []botCall {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := make([]botCall, 0, len(b.calls))
	for _, c := range b.calls {
		cc := *c
		cc.tones = append([]string(nil), c.tones...)
		out = append(out, cc)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].incoming.Before(out[j].incoming) })
	return out
}

// notificationData holds the fields of a call or an operation the bot
// reads from resourceData.
type notificationData struct {
	ODataType  string                 `json:"@odata.type"`
	ID         string                 `json:"id"`
	State      graph.CallState        `json:"state"`
	Source     *graph.ParticipantInfo `json:"source"`
	ToneInfo   *graph.ToneInfo        `json:"toneInfo"`
	ResultInfo *graph.ResultInfo      `json:"resultInfo"`
	Status     graph.OperationStatus  `json:"status"`
}

// webhook takes a notification POST: it checks the token, notes what
// happened and queues the Graph requests it calls for, and answers 202.
func (b *bot) webhook(w http.ResponseWriter, r *http.Request) {
	now := time.Now()
	if b.validator != nil {
		if _, err := b.validator.Validate(r.Context(), r); err != nil {
			b.badTokens.Add(1)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var env graph.CommsNotifications
	if err == nil {
		err = json.Unmarshal(body, &env)
	}
	if err != nil {
		b.badBodies.Add(1)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	w.WriteHeader(http.StatusAccepted)
	b.posts.Add(1)
	b.postBytes.Add(int64(len(body)))
	for _, n := range env.Value {
		b.notifications.Add(1)
		if b.conf != nil {
			b.conf.handle(now, n)
			continue
		}
		b.handle(now, n)
	}
}

func (b *bot) handle(now time.Time, n graph.CommsNotification) {
	var d notificationData
	if len(n.ResourceData) == 0 || n.ResourceData[0] != '{' || json.Unmarshal(n.ResourceData, &d) != nil {
		return // participants (an array) and anything else the bot ignores
	}
	callID, opID := splitResource(n.ResourceURL)
	if callID == "" {
		return
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.calls[callID]
	if c == nil {
		if n.ChangeType != graph.ChangeCreated {
			return // a call from before a reset
		}
		c = &botCall{id: callID}
		b.calls[callID] = c
	}
	if opID != "" {
		res := opResult{status: d.Status}
		if d.ResultInfo != nil {
			res.code, res.subcode, res.message = d.ResultInfo.Code, d.ResultInfo.Subcode, d.ResultInfo.Message
		}
		switch d.ODataType {
		case graph.TypePlayPromptOperation:
			c.prompt = res
		case graph.TypeRecordOperation:
			c.record = res
		}
		return
	}
	switch {
	case n.ChangeType == graph.ChangeCreated && d.State == graph.StateIncoming:
		if !c.incoming.IsZero() {
			return // a duplicate delivery
		}
		c.incoming = now
		if d.Source != nil && d.Source.Identity != nil {
			if _, id := d.Source.Identity.Primary(); id != nil {
				c.caller = id.ID
			}
		}
		b.live++
		if b.mode == botEcho {
			c.slow = b.echo.slowLeft > 0
			if c.slow {
				b.echo.slowLeft--
			}
			slow := c.slow
			b.jobs <- func() { b.echoAnswer(callID, slow) }
			return
		}
		b.jobs <- func() { b.answer(callID) }
	case d.ToneInfo != nil:
		c.tones = append(c.tones, string(d.ToneInfo.Tone))
	case d.State == graph.StateEstablished && c.established.IsZero():
		c.established = now
		if b.mode == botIVR && !c.ivrStarted {
			c.ivrStarted = true
			b.jobs <- func() { b.ivr(callID) }
		}
	case d.State == graph.StateTerminated || n.ChangeType == graph.ChangeDeleted:
		if !c.ended.IsZero() {
			return
		}
		c.ended = now
		if ch, ok := b.echo.ended.LoadAndDelete(callID); ok {
			close(ch.(chan struct{}))
		}
		if d.ResultInfo != nil {
			c.end = *d.ResultInfo
		}
		if !c.incoming.IsZero() {
			b.live--
		}
	}
}

// splitResource returns the call id and, for an operation, its id from a
// resourceUrl such as /communications/calls/{id}/operations/{op}.
func splitResource(u string) (call, op string) {
	i := strings.Index(u, "/calls/")
	if i < 0 {
		return "", ""
	}
	rest := u[i+len("/calls/"):]
	call, rest, _ = strings.Cut(rest, "/")
	if o, ok := strings.CutPrefix(rest, "operations/"); ok {
		op = o
	}
	return call, op
}

// post makes one Graph request with the bot's token.
func (b *bot) post(callID, action string, body any) error {
	buf, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, _ := http.NewRequest("POST", b.api+"/v1.0/communications/calls/"+callID+"/"+action, bytes.NewReader(buf))
	req.Header.Set("Authorization", "Bearer "+b.token)
	req.Header.Set("Content-Type", "application/json")
	r, err := b.client.Do(req)
	if err != nil {
		return fmt.Errorf("%s: %w", action, err)
	}
	defer r.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(r.Body, 4096))
	if r.StatusCode/100 != 2 {
		var e graph.ErrorResponse
		if json.Unmarshal(msg, &e) == nil && e.Error.Code != "" {
			return fmt.Errorf("%s: %d %s", action, r.StatusCode, e.Error.Code)
		}
		return fmt.Errorf("%s: %s", action, r.Status)
	}
	return nil
}

func (b *bot) answer(callID string) {
	err := b.post(callID, "answer", graph.AnswerRequest{
		CallbackURI:        b.callback,
		AcceptedModalities: []graph.Modality{graph.ModalityAudio},
		MediaConfig:        &graph.MediaConfig{ODataType: graph.TypeServiceHostedMediaConfig},
	})
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.calls[callID]; c != nil {
		c.answered = now
		if err != nil {
			c.answerErr = err.Error()
		}
	}
}

// ivr is the bot's reaction to an established call, in order: listen for
// tones, play the prompt, then record the caller (queued behind the
// prompt: media operations run one at a time).
func (b *bot) ivr(callID string) {
	no := false
	secs := b.recordSecs
	steps := []struct {
		action string
		body   any
	}{
		{"subscribeToTone", graph.ClientContextRequest{ClientContext: "sbbench"}},
		{"playPrompt", graph.PlayPromptRequest{ClientContext: "sbbench", Prompts: []graph.MediaPrompt{{
			ODataType: graph.TypeMediaPrompt,
			MediaInfo: &graph.MediaInfo{ODataType: "#microsoft.graph.mediaInfo", URI: b.promptURI, ResourceID: "sbbench-prompt"},
		}}}},
		{"recordResponse", graph.RecordResponseRequest{ClientContext: "sbbench", PlayBeep: &no, MaxRecordDurationInSeconds: &secs}},
	}
	var err error
	for i, s := range steps {
		if err = b.post(callID, s.action, s.body); err != nil {
			break
		}
		if i == 0 {
			now := time.Now()
			b.mu.Lock()
			if c := b.calls[callID]; c != nil {
				c.subscribed = now
			}
			b.mu.Unlock()
		}
	}
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	if c := b.calls[callID]; c != nil {
		c.ivrDone = now
		if err != nil {
			c.ivrErr = err.Error()
		}
	}
}

// failure says why a call failed, or "" when it went as an IVR call
// should: answered, established, its operations completed, ended
// normally by the caller.
func (c *botCall) failure(mode string) string {
	switch {
	case c.answerErr != "":
		return "answer failed: " + c.answerErr
	case c.established.IsZero():
		if !c.ended.IsZero() {
			return "ended before established: " + c.end.String()
		}
		return "never established"
	case c.ivrErr != "":
		return "IVR request failed: " + c.ivrErr
	}
	if mode == botEcho && c.media.FramesRead == 0 {
		// How the socket ended is counted apart (echoReport.SocketEnds):
		// the call is what failed or not.
		if c.mediaErr != "" {
			return "heard no frames: media socket: " + c.mediaErr
		}
		return "heard no frames"
	}
	if mode == botIVR {
		if c.prompt.status != graph.OperationCompleted {
			return "playPrompt: " + c.prompt.String()
		}
		if c.record.status != graph.OperationCompleted {
			return "recordResponse: " + c.record.String()
		}
	}
	switch {
	case c.ended.IsZero():
		return "never terminated"
	case c.end.Code != 200:
		return "ended " + c.end.String()
	}
	return ""
}
