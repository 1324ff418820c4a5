package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// HandlerOptions configure a Handler. With a Client, every field may be
// left zero.
type HandlerOptions struct {
	// Client sends the calls' actions and keepAlives. Without one the
	// Handler only validates notifications and keeps State.
	Client *Client
	// AppID is the audience notification tokens must carry: the bot's
	// application id. Client.ClientID() when empty.
	AppID string
	// OpenIDConfigURL is where the notification tokens' issuer and keys are
	// published. When empty: Bot Framework's document
	// (https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration) for a
	// Client on graph.microsoft.com, else {Client's host}/v1/.well-known/openidconfiguration
	// (Switchboard's).
	OpenIDConfigURL string
	// ExtraIssuers are accepted besides the OpenID configuration's issuer.
	// For graph.microsoft.com, https://graph.microsoft.com is added, as
	// Microsoft's samples accept it
	// (https://github.com/microsoftgraph/microsoft-graph-comms-samples/blob/master/Samples/Common/Sample.Common/Authentication/AuthenticationProvider.cs).
	ExtraIssuers []string
	// TenantIDs are the tenants (the token's tid) whose notifications are
	// accepted. When empty: Client.TenantID(), or any tenant if that is
	// empty too. "*" accepts any tenant.
	TenantIDs []string
	// CallbackURL is this handler's public URL, sent as callbackUri by
	// CreateCall and Call.Answer when the request has none. When empty the
	// platform uses the application's registered webhook.
	CallbackURL string
	// KeepAliveInterval is how often a call that is up gets a keepAlive
	// (Graph ends calls after 45 minutes without one:
	// https://learn.microsoft.com/graph/api/call-keepalive).
	// 15 minutes when zero; none when negative.
	KeepAliveInterval time.Duration
	// EventQueue bounds the events waiting for one call's callbacks; 256
	// when zero. Past it events are dropped and counted (Dropped), never
	// the terminated one; the HTTP reply is never held up.
	EventQueue int
	// ToneBuffer is the capacity of each Call's Tones channel; 64 when zero.
	ToneBuffer int
	// Retention is how long a terminated call stays in State; 2 minutes
	// when zero.
	Retention time.Duration
	// MaxBodyBytes bounds a notification body; 4 MiB when zero.
	MaxBodyBytes int64
	// HTTPClient fetches the OpenID configuration and keys; the Client's
	// HTTP client, else http.DefaultClient, when nil.
	HTTPClient *http.Client
	// Logger receives rejected notifications, dropped events and keepAlive
	// failures; none when nil.
	Logger *slog.Logger
}

// Handler is the http.Handler for a bot's callback URL
// (https://learn.microsoft.com/microsoftteams/platform/bots/calls-and-meetings/call-notifications).
// It validates each POST's bearer token (signature against the keys of the
// OpenID configuration, issuer, audience = the app id, expiry, tenant),
// answers 202, 401 for a bad token, 400 for a malformed body, and merges the
// commsNotifications into its State. It then runs the registered callbacks:
// for each call in order, on a goroutine of that call, never on the HTTP
// request's.
//
// Callbacks may block (an IVR flow can run inside OnIncomingCall, waiting
// with WaitState, Await and Tones): waits read State, which is updated as
// notifications arrive, not as callbacks run. While a callback blocks, the
// call's later events queue up (bounded by HandlerOptions.EventQueue);
// other calls are not held up.
//
// The Handler sends a keepAlive every KeepAliveInterval for each call that
// is up, until it terminates. Shutdown stops it all. A Handler is safe for
// concurrent use; register callbacks before it serves.
type Handler struct {
	o         HandlerOptions
	client    *Client
	validator *Validator
	anyTenant bool
	tenants   map[string]bool
	log       *slog.Logger
	state     *State

	ctx    context.Context // callbacks' and keepAlives' context; cancelled by Shutdown
	cancel context.CancelFunc

	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup // ServeHTTP calls, event goroutines, keepAlive loops

	cbMu           sync.RWMutex
	onIncoming     func(context.Context, *Call)
	onUpdated      func(context.Context, *Call, graph.Call)
	onParticipants func(context.Context, *Call, ParticipantsChange)
	onOperation    func(context.Context, *Call, graph.Operation)
	onTerminated   func(context.Context, *Call)

	dropped atomic.Int64
}

var _ http.Handler = (*Handler)(nil)

// NewHandler checks o and returns a Handler.
func NewHandler(o HandlerOptions) (*Handler, error) {
	if o.AppID == "" && o.Client != nil {
		o.AppID = o.Client.ClientID()
	}
	if o.OpenIDConfigURL == "" && o.Client != nil {
		if strings.EqualFold(o.Client.base.Hostname(), "graph.microsoft.com") {
			o.OpenIDConfigURL = "https://api.aps.skype.com/v1/.well-known/OpenIdConfiguration"
			o.ExtraIssuers = append(o.ExtraIssuers, "https://graph.microsoft.com")
		} else {
			o.OpenIDConfigURL = o.Client.base.Scheme + "://" + o.Client.base.Host + "/v1/.well-known/openidconfiguration"
		}
	}
	var errs []error
	if o.AppID == "" {
		errs = append(errs, errors.New("AppID is required without a Client"))
	}
	if o.OpenIDConfigURL == "" {
		errs = append(errs, errors.New("OpenIDConfigURL is required without a Client"))
	} else if u, err := url.Parse(o.OpenIDConfigURL); err != nil || u.Host == "" {
		errs = append(errs, fmt.Errorf("OpenIDConfigURL %q is not an absolute URL", o.OpenIDConfigURL))
	}
	if o.CallbackURL != "" {
		if u, err := url.Parse(o.CallbackURL); err != nil || u.Host == "" {
			errs = append(errs, fmt.Errorf("CallbackURL %q is not an absolute URL", o.CallbackURL))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("sdk: handler options: %w", err)
	}
	if o.KeepAliveInterval == 0 {
		o.KeepAliveInterval = 15 * time.Minute
	}
	if o.EventQueue <= 0 {
		o.EventQueue = 256
	}
	if o.ToneBuffer <= 0 {
		o.ToneBuffer = 64
	}
	if o.Retention <= 0 {
		o.Retention = 2 * time.Minute
	}
	if o.MaxBodyBytes <= 0 {
		o.MaxBodyBytes = 4 << 20
	}
	if o.HTTPClient == nil && o.Client != nil {
		o.HTTPClient = o.Client.http
	}
	h := &Handler{o: o, client: o.Client, log: o.Logger, tenants: map[string]bool{}}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	tenants := o.TenantIDs
	if len(tenants) == 0 && o.Client != nil && o.Client.TenantID() != "" {
		tenants = []string{o.Client.TenantID()}
	}
	h.anyTenant = len(tenants) == 0
	for _, t := range tenants {
		if t == "*" {
			h.anyTenant = true
		}
		h.tenants[strings.ToLower(t)] = true
	}
	h.validator = &Validator{OpenIDConfigURL: o.OpenIDConfigURL, AppID: o.AppID, ExtraIssuers: o.ExtraIssuers, Client: o.HTTPClient}
	h.state = newState(h)
	h.ctx, h.cancel = context.WithCancel(context.Background())
	return h, nil
}

// State is the handler's view of its calls.
func (h *Handler) State() *State { return h.state }

// Client is HandlerOptions.Client.
func (h *Handler) Client() *Client { return h.client }

// Dropped counts the events dropped because a call's queue was full.
func (h *Handler) Dropped() int64 { return h.dropped.Load() }

// OnIncomingCall sets the callback for a new incoming call (the created
// notification,
// https://learn.microsoft.com/microsoftteams/platform/bots/calls-and-meetings/call-notifications).
// Answer, reject or redirect it within 15 seconds. Without a callback
// incoming calls are left to time out.
func (h *Handler) OnIncomingCall(fn func(ctx context.Context, c *Call)) {
	h.cbMu.Lock()
	h.onIncoming = fn
	h.cbMu.Unlock()
}

// OnCallUpdated sets the callback for each updated notification about a
// call (state, mediaState, toneInfo, resultInfo…) and for its terminated
// one. change holds what the notification carried, partial as Graph sends
// it; c.Snapshot() the whole call.
func (h *Handler) OnCallUpdated(fn func(ctx context.Context, c *Call, change graph.Call)) {
	h.cbMu.Lock()
	h.onUpdated = fn
	h.cbMu.Unlock()
}

// OnParticipants sets the callback for roster changes.
func (h *Handler) OnParticipants(fn func(ctx context.Context, c *Call, change ParticipantsChange)) {
	h.cbMu.Lock()
	h.onParticipants = fn
	h.cbMu.Unlock()
}

// OnOperation sets the callback for operation notifications: an
// operation's completion (or failure) reported with changeType deleted.
func (h *Handler) OnOperation(fn func(ctx context.Context, c *Call, op graph.Operation)) {
	h.cbMu.Lock()
	h.onOperation = fn
	h.cbMu.Unlock()
}

// OnTerminated sets the callback for a call's end. It is the call's last
// event, after the OnCallUpdated of the terminated notification; it is
// delivered even when the call's queue is full.
func (h *Handler) OnTerminated(fn func(ctx context.Context, c *Call)) {
	h.cbMu.Lock()
	h.onTerminated = fn
	h.cbMu.Unlock()
}

// CreateCall places a call through the Client (see Client.CreateCall) and
// tracks it: an empty callbackUri becomes HandlerOptions.CallbackURL, no
// media configuration becomes service-hosted, no modalities audio. The
// returned Call follows the call's notifications from the start, even
// those that arrive before the create request returns.
func (h *Handler) CreateCall(ctx context.Context, req *graph.Call) (*Call, error) {
	if h.client == nil {
		return nil, ErrNoClient
	}
	if req == nil {
		return nil, errors.New("create call: nil request")
	}
	if h.ctx.Err() != nil {
		return nil, ErrClosed
	}
	r := *req
	if r.CallbackURI == "" {
		r.CallbackURI = h.o.CallbackURL
	}
	if r.MediaConfig == nil {
		r.MediaConfig = &graph.MediaConfig{ODataType: graph.TypeServiceHostedMediaConfig}
	}
	if len(r.RequestedModalities) == 0 {
		r.RequestedModalities = []graph.Modality{graph.ModalityAudio}
	}
	got, err := h.client.CreateCall(ctx, &r)
	if err != nil {
		return nil, err
	}
	tenant := got.TenantID
	if tenant == "" {
		tenant = h.client.TenantID()
	}
	c := h.state.getOrCreate(got.ID, tenant)
	c.mu.Lock()
	c.fillCall(got)
	c.maybeKeepAliveLocked()
	c.mu.Unlock()
	return c, nil
}

// Await returns op once it has completed; see Call.Await. The operation's
// call is found by the operation's id, so op may come from the Client
// directly; until a response or notification names its call, Await
// cannot tell that the call ended and waits for ctx.
func (h *Handler) Await(ctx context.Context, op *graph.Operation) (*graph.Operation, error) {
	if op == nil {
		return nil, errors.New("await: nil operation")
	}
	if op.Status.Terminal() {
		return finished("", *op)
	}
	if op.ID == "" {
		return nil, errors.New("await: operation without an id")
	}
	key := idKey(op.ID)
	for {
		h.state.mu.Lock()
		c, ch := h.state.ops[key], h.state.changed
		h.state.mu.Unlock()
		if c != nil {
			return c.await(ctx, op.ID)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("await operation %s: %w", op.ID, ctx.Err())
		}
	}
}

// Shutdown stops the Handler: new notifications are answered 503 (the
// platform retries them), callbacks' and keepAlives' context is cancelled,
// and Shutdown waits for requests in flight, callbacks and keepAlive loops
// to return, or for ctx. It may be called more than once.
func (h *Handler) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	h.mu.Unlock()
	h.cancel()
	for _, c := range h.state.Calls() {
		c.mu.Lock()
		if c.forget != nil {
			c.forget.Stop()
		}
		c.mu.Unlock()
	}
	done := make(chan struct{})
	go func() {
		h.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// enter counts a request in; false once the Handler is shut down.
func (h *Handler) enter() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.wg.Add(1)
	return true
}

// goTracked runs fn on a goroutine Shutdown waits for; false (and fn not
// run) once the Handler is shut down.
func (h *Handler) goTracked(fn func()) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return false
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		fn()
	}()
	return true
}

// ServeHTTP receives one POST of notifications.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "notifications are POSTed", http.StatusMethodNotAllowed)
		return
	}
	if !h.enter() {
		w.Header().Set("Retry-After", "5")
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	defer h.wg.Done()

	claims, err := h.validator.Validate(r.Context(), r)
	if err != nil {
		if errors.Is(err, ErrInvalidToken) {
			h.log.Warn("notification refused", "err", err, "remote", r.RemoteAddr)
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
			http.Error(w, "invalid token", http.StatusUnauthorized)
			return
		}
		// The keys could not be fetched: not the sender's fault; it retries.
		h.log.Error("cannot validate notification tokens", "err", err)
		http.Error(w, "cannot validate tokens now", http.StatusServiceUnavailable)
		return
	}
	if !h.anyTenant && !h.tenants[strings.ToLower(claims.TenantID)] {
		h.log.Warn("notification refused: tenant not accepted", "tid", claims.TenantID)
		w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		http.Error(w, "tenant not accepted", http.StatusUnauthorized)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.o.MaxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
			return
		}
		http.Error(w, "cannot read body", http.StatusBadRequest)
		return
	}
	ns, err := parseNotifications(body)
	if err != nil {
		h.log.Warn("malformed notification body", "err", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, n := range ns {
		h.apply(n, claims.TenantID)
	}
	w.WriteHeader(http.StatusAccepted)
}

// parseNotifications reads a commsNotifications envelope, or, leniently,
// a single commsNotification.
func parseNotifications(body []byte) ([]graph.CommsNotification, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 || body[0] != '{' {
		return nil, errors.New("the body is not a JSON object")
	}
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(body, &env); err != nil {
		return nil, fmt.Errorf("the body is not valid JSON: %w", err)
	}
	if env.Value == nil {
		var n graph.CommsNotification
		if err := json.Unmarshal(body, &n); err != nil || (n.ResourceURL == "" && n.Resource == "") {
			return nil, errors.New("the body is neither commsNotifications nor a commsNotification")
		}
		return []graph.CommsNotification{n}, nil
	}
	var raws []json.RawMessage
	if err := json.Unmarshal(env.Value, &raws); err != nil {
		return nil, errors.New("value is not an array")
	}
	out := make([]graph.CommsNotification, 0, len(raws))
	for i, raw := range raws {
		var n graph.CommsNotification
		if err := json.Unmarshal(raw, &n); err != nil {
			return nil, fmt.Errorf("value[%d]: %w", i, err)
		}
		out = append(out, n)
	}
	return out, nil
}

// apply merges one notification into State and queues its events.
func (h *Handler) apply(n graph.CommsNotification, tenant string) {
	where := n.ResourceURL
	if where == "" {
		where = n.Resource
	}
	p, ok := parseResourcePath(where)
	if !ok {
		h.log.Debug("notification about an unknown resource ignored", "resourceUrl", where)
		return
	}
	switch p.kind {
	case "call", "participants", "participant", "operation":
	default:
		h.log.Debug("notification ignored", "resourceUrl", where, "kind", p.kind)
		return
	}
	c := h.state.getOrCreate(p.callID, tenant)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.tenant == "" {
		c.tenant = tenant
	}
	var evs []event
	switch p.kind {
	case "call":
		list, _ := parseArray(n.ResourceData) // tolerated: a call in an array
		if upd := parseResource(n.ResourceData); upd != nil {
			list = []resource{upd}
		}
		if len(list) == 0 && n.ChangeType == graph.ChangeDeleted {
			list = []resource{{}} // the end, said with no resource data
		}
		for _, upd := range list {
			evs = append(evs, c.applyCall(n.ChangeType, upd)...)
		}
	case "participants", "participant":
		evs = c.applyParticipants(n.ChangeType, n.ResourceData, p.kind == "participant")
	case "operation":
		upd := parseResource(n.ResourceData)
		if upd == nil {
			upd = resource{}
		}
		evs = c.applyOperation(n.ChangeType, p.operationID, upd)
	}
	c.maybeKeepAliveLocked()
	h.enqueueLocked(c, evs)
}

// enqueueLocked queues events for c's callbacks and makes sure a
// goroutine delivers them. The caller holds c.mu.
func (h *Handler) enqueueLocked(c *Call, evs []event) {
	for _, ev := range evs {
		if len(c.queue) >= h.o.EventQueue && ev.kind != evTerminated {
			n := h.dropped.Add(1)
			h.log.Warn("call event queue full; event dropped (a callback is blocking)", "call", c.id, "dropped", n)
			continue
		}
		c.queue = append(c.queue, ev)
	}
	if len(c.queue) == 0 || c.draining {
		return
	}
	if h.goTracked(func() { h.drain(c) }) {
		c.draining = true
	}
}

// drain delivers c's events in order until its queue is empty.
func (h *Handler) drain(c *Call) {
	for {
		c.mu.Lock()
		if len(c.queue) == 0 {
			c.draining = false
			c.mu.Unlock()
			return
		}
		ev := c.queue[0]
		c.queue[0] = event{}
		c.queue = c.queue[1:]
		c.mu.Unlock()
		h.dispatch(c, ev)
	}
}

func (h *Handler) dispatch(c *Call, ev event) {
	defer func() {
		if p := recover(); p != nil {
			h.log.Error("panic in a call callback", "call", c.id, "panic", p, "stack", string(debug.Stack()))
		}
	}()
	if h.ctx.Err() != nil {
		return // shut down: no more callbacks
	}
	h.cbMu.RLock()
	onIncoming, onUpdated, onParticipants, onOperation, onTerminated := h.onIncoming, h.onUpdated, h.onParticipants, h.onOperation, h.onTerminated
	h.cbMu.RUnlock()
	switch ev.kind {
	case evIncoming:
		if onIncoming != nil {
			onIncoming(h.ctx, c)
		}
	case evUpdated:
		if onUpdated != nil {
			onUpdated(h.ctx, c, ev.change)
		}
	case evParticipants:
		if onParticipants != nil {
			onParticipants(h.ctx, c, ev.parts)
		}
	case evOperation:
		if onOperation != nil {
			onOperation(h.ctx, c, ev.op)
		}
	case evTerminated:
		if onTerminated != nil {
			onTerminated(h.ctx, c)
		}
	}
}

// maybeKeepAliveLocked starts c's keepAlive loop once the call is up
// (past incoming, not terminated). The caller holds c.mu.
func (c *Call) maybeKeepAliveLocked() {
	h := c.h
	if c.keepAlive || c.ended || h.client == nil || h.o.KeepAliveInterval < 0 ||
		c.state == "" || c.state == graph.StateIncoming {
		return
	}
	c.keepAlive = h.goTracked(func() { h.keepAliveLoop(c) })
}

// keepAliveLoop sends a keepAlive every interval until the call ends or
// the Handler shuts down. A failed keepAlive is retried after a minute;
// a 404 means the call is gone and ends the loop.
func (h *Handler) keepAliveLoop(c *Call) {
	t := time.NewTimer(h.o.KeepAliveInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-c.done:
			return
		case <-h.ctx.Done():
			return
		}
		ctx, cancel := context.WithTimeout(h.ctx, time.Minute)
		err := h.client.KeepAlive(ctx, c.id)
		cancel()
		next := h.o.KeepAliveInterval
		if err != nil {
			var ge *GraphError
			switch {
			case h.ctx.Err() != nil:
				return
			case errors.As(err, &ge) && ge.StatusCode == http.StatusNotFound:
				h.log.Info("keepAlive: the call is gone", "call", c.id)
				return
			}
			h.log.Warn("keepAlive failed; retrying", "call", c.id, "err", err)
			next = min(next, time.Minute)
		}
		t.Reset(next)
	}
}
