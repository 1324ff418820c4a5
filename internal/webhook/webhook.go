// Package webhook is Switchboard's durable notification outbox: it POSTs
// commsNotifications to bots' webhooks (graph-calls.md §5.1), in order per
// call, retrying, and survives restarts.
//
// # Durability
//
// Enqueue publishes each notification to the JetStream stream SB_NOTIFY
// and returns once the publish is acknowledged, so an accepted notification
// outlives a crash (SIGKILL) of the process. The subject is
// notify.<node>.<call>: each node delivers only the notifications it
// enqueued, through its own durable pull consumer filtered on
// notify.<node>.>. A message is acknowledged only after its final outcome
// (delivered or dropped), so whatever was not finished when the process
// died is still in the stream. Open deletes and recreates the node's
// consumer: the new consumer starts at the oldest message left, so the
// unfinished notifications are delivered again at once, in stream order,
// instead of after the old consumer's ack wait, possibly out of order.
// Delivery is therefore at least once: a POST that reached the bot just
// before a crash is repeated after the restart. Every POST of one
// notification carries the same client-request-id, so a bot can recognise
// the repeat.
//
// The stream uses work-queue retention: a notification is a job for
// exactly one consumer, and an acknowledged one is deleted at once, so the
// stream holds only the backlog and never needs trimming. (Limits retention
// would keep delivered notifications until MaxAge and need the consumer's
// position to tell them apart.) Work queues forbid overlapping consumers,
// which the per-node filters guarantee. A stream MaxAge well above the
// outbox's MaxAge is only a backstop against a node that never comes back.
//
// # Ordering
//
// A call's notifications are delivered strictly in enqueue order: the
// outbox keeps one in-memory queue per call that has messages in flight,
// and only the head of a queue is ever attempted. The next notification
// starts only after the previous one finished, delivered or dropped.
// Retries happen in place: the message stays unacknowledged (its ack wait
// extended with InProgress), so nothing behind it can overtake it, neither
// here nor after a restart. Callers must not enqueue concurrently for one
// call; the call's own goroutine enqueues its notifications in order.
//
// Different calls are independent. Options.Workers bounds the POSTs in
// flight; a call waiting out a retry backoff holds no worker, so a dead
// webhook delays only its own calls. Per-call queues exist only while they
// hold messages. Memory is bounded by the consumer's MaxAckPending
// (Workers×16 messages): JetStream hands out no more until some are
// acknowledged.
//
// # Delivery
//
// Each attempt is a POST with Content-Type application/json, a bearer token
// from the TokenSource and client-request-id/request-id headers, limited to
// Options.Timeout. Bot answers are handled as §5.1 describes:
//
//   - 2xx: delivered. A 204 to an incoming-call notification asks (in the
//     legacy protocol) for a resend in Graph format; Switchboard only speaks
//     Graph format, so it is logged and treated as delivered.
//   - 3xx with Location, for the first notification of an incoming call:
//     delivered again to Location (at most 3 hops). Other 3xx: dropped.
//   - 408, 429, 5xx, timeouts and connection errors: retried with
//     exponential backoff and jitter (Retry-After honoured) until MaxAge
//     after enqueue, then dropped.
//   - Other 4xx, including 401 (the bot rejected the token): dropped at once.
//   - A URL the egress policy forbids: dropped at once.
//
// Every drop is logged with the call id and reason and counted in
// switchboard_webhook_dropped_total{reason}.
package webhook

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/internal/egress"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/ids"
	"github.com/switchboard-voice/switchboard/internal/store"
)

// StreamName is the JetStream stream that holds undelivered notifications.
const StreamName = "SB_NOTIFY"

const (
	subjectRoot = "notify"
	// ackWait is how long JetStream waits for an ack before redelivering;
	// held messages are touched (InProgress) every heartbeatEvery.
	ackWait        = 30 * time.Second
	heartbeatEvery = ackWait / 3
	// pendingPerWorker sizes the consumer's MaxAckPending: the messages
	// held in memory, queued behind their calls' heads.
	pendingPerWorker = 16
	// maxRedirects bounds the 3xx hops of an incoming-call notification.
	maxRedirects = 3
	// streamMaxAgeFloor is the stream's backstop retention.
	streamMaxAgeFloor = 24 * time.Hour
	// maxBodySnippet is how much of a bot's error answer is logged.
	maxBodySnippet = 512
	// maxDrain is how much of a bot's answer is read so the connection can
	// be reused.
	maxDrain = 64 << 10
)

// Message headers that carry a notification's metadata; the body is the
// envelope itself.
const (
	hdrCallID    = "Sb-Call-Id"
	hdrAppID     = "Sb-App-Id"
	hdrTenantID  = "Sb-Tenant-Id"
	hdrURL       = "Sb-Url"
	hdrIncoming  = "Sb-Incoming"
	hdrEnqueued  = "Sb-Enqueued" // Unix nanoseconds
	hdrRequestID = "Sb-Request-Id"
)

// Errors a dropped notification's Result.Err wraps; test with errors.Is. A
// notification the egress policy forbids wraps egress.ErrDenied.
var (
	ErrExpired   = errors.New("webhook: not delivered within max age")
	ErrRejected  = errors.New("webhook: bot rejected the notification")
	ErrRedirect  = errors.New("webhook: redirect not followed")
	ErrToken     = errors.New("webhook: no notification token")
	ErrMalformed = errors.New("webhook: malformed outbox message")
)

// Notification is one POST to a bot.
type Notification struct {
	// ID, when set, names the notification for deduplication: queuing the
	// same ID again within the stream's duplicate window (a retry after a
	// crash) is a no-op. Empty gets a fresh one.
	ID string
	// CallID is the ordering key: notifications of one call are delivered
	// in the order they were enqueued.
	CallID string
	// AppID and TenantID name who the bearer token is for.
	AppID, TenantID string
	// URL is the callback URL, http or https.
	URL string
	// Body is the commsNotifications envelope JSON, sent as is.
	Body []byte
	// Incoming marks the first notification of an incoming call: a 3xx with
	// Location re-delivers it there, and a 204 is logged as a resend request
	// but treated as delivered.
	Incoming bool
}

// TokenSource issues the bearer tokens notifications carry (§5.2). It is
// called before every attempt and should cache tokens; it must be safe for
// concurrent use. An error of kind errs.NotFound, errs.BadRequest,
// errs.Forbidden or errs.Unauthenticated drops the notification; any other
// error is retried.
type TokenSource interface {
	NotificationToken(appID, tenantID string) (string, error)
}

// Options configure an Outbox. Zero values take the defaults noted.
type Options struct {
	// Node is this node's id (letters, digits, '-' and '_'). The node's
	// notifications are published on notify.<node>.<call> and delivered by
	// the node's own consumer. Required.
	Node string
	// Timeout bounds one POST (default 5s).
	Timeout time.Duration
	// MaxAge is how long after enqueue a notification is retried before it
	// is dropped (default 10m).
	MaxAge time.Duration
	// BackoffMin and BackoffMax bound the exponential retry backoff
	// (defaults 250ms and 30s). A Retry-After from the bot overrides it.
	BackoffMin, BackoffMax time.Duration
	// Workers bounds the POSTs in flight, hence the calls delivered to
	// concurrently (default 64).
	Workers int
	// Client sends the POSTs, typically an egress.Policy client (default:
	// an egress client that allows everything). Redirects are never
	// followed by the client; the outbox handles them.
	Client *http.Client
	// Logger receives the outbox's logs (default: discarded).
	Logger *slog.Logger
	// Registerer, if not nil, registers the outbox's metrics.
	Registerer prometheus.Registerer
	// OnResult, if not nil, is called once for each notification when it
	// is finished, delivered or dropped, from a delivery goroutine. It must
	// not block for long.
	OnResult func(Result)
}

// Result is the final outcome of one notification.
type Result struct {
	// CallID is the notification's call.
	CallID string
	// URL is the last URL attempted (after any redirects).
	URL string
	// Status is the last HTTP status the bot answered, 0 if none.
	Status int
	// Attempts counts the POSTs made.
	Attempts int
	// Delivered is true when the bot accepted the notification.
	Delivered bool
	// Err says why a notification was dropped; nil when delivered.
	Err error
	// Enqueued and Finished time the notification.
	Enqueued, Finished time.Time
}

// Outbox is the notification outbox of one node. Enqueue is safe for
// concurrent use (but see the package doc on ordering); Run delivers.
// There must be one Outbox per node id at a time.
type Outbox struct {
	js         jetstream.JetStream
	cons       jetstream.Consumer
	tokens     TokenSource
	opt        Options
	client     *http.Client
	log        *slog.Logger
	met        *metrics
	subject    string // notify.<node>.
	maxPending int
	running    atomic.Bool

	mu       sync.Mutex
	cond     *sync.Cond
	stopping bool
	calls    map[string]*callQueue // calls with messages held
	ready    []*callQueue          // calls whose head may be attempted now
	held     map[uint64]*item      // by stream sequence
}

// callQueue holds one call's messages, oldest first. It is scheduled while
// it is in ready, being attempted by a worker, or waiting on its timer;
// only then does it have an owner, and only the owner touches items[0]'s
// delivery state.
type callQueue struct {
	id        string
	items     []*item
	scheduled bool
	timer     *time.Timer
}

// item is one held message and its delivery state.
type item struct {
	seq       uint64
	msg       jetstream.Msg // guarded by Outbox.mu: a redelivery replaces it
	n         Notification
	requestID string
	enqueued  time.Time
	log       *slog.Logger

	url       string // current target, after redirects
	attempts  int    // POSTs made
	failures  int    // failed tries, for the backoff
	redirects int
	status    int
	lastErr   error
}

// Open creates or updates the SB_NOTIFY stream (file storage, st's replica
// count), recreates this node's consumer so that undelivered notifications
// are handed out again in order, and returns the outbox. Deliveries start
// with Run. The store must outlive the outbox.
func Open(ctx context.Context, st *store.Store, tokens TokenSource, o Options) (*Outbox, error) {
	if !validToken(o.Node) {
		return nil, fmt.Errorf("webhook: node id %q must be letters, digits, '-' or '_'", o.Node)
	}
	if tokens == nil {
		return nil, errors.New("webhook: nil TokenSource")
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Second
	}
	if o.MaxAge <= 0 {
		o.MaxAge = 10 * time.Minute
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = 250 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 30 * time.Second
	}
	if o.BackoffMax < o.BackoffMin {
		o.BackoffMax = o.BackoffMin
	}
	if o.Workers <= 0 {
		o.Workers = 64
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Client == nil {
		p, _ := egress.NewPolicy(nil)
		o.Client = p.Client(o.Timeout)
	}
	client := *o.Client
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }

	met, err := newMetrics(o.Registerer)
	if err != nil {
		return nil, err
	}

	js := st.JetStream()
	streamAge := max(streamMaxAgeFloor, 2*o.MaxAge)
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Switchboard notification outbox (internal/webhook)",
		Subjects:    []string{subjectRoot + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    st.Replicas(),
		MaxAge:      streamAge,
		Discard:     jetstream.DiscardOld,
		Duplicates:  2 * time.Minute,
	}); err != nil {
		return nil, fmt.Errorf("webhook: stream %s: %w", StreamName, err)
	}

	name := "notify_" + o.Node
	if err := js.DeleteConsumer(ctx, StreamName, name); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return nil, fmt.Errorf("webhook: delete consumer %s: %w", name, err)
	}
	maxPending := o.Workers * pendingPerWorker
	cons, err := js.CreateConsumer(ctx, StreamName, jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "notification deliveries of node " + o.Node,
		FilterSubject: subjectRoot + "." + o.Node + ".>",
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       ackWait,
		MaxDeliver:    -1, // the outbox gives up by age, not by count
		MaxAckPending: maxPending,
	})
	if err != nil {
		return nil, fmt.Errorf("webhook: consumer %s: %w", name, err)
	}

	ob := &Outbox{
		js:         js,
		cons:       cons,
		tokens:     tokens,
		opt:        o,
		client:     &client,
		log:        o.Logger.With("node", o.Node),
		met:        met,
		subject:    subjectRoot + "." + o.Node + ".",
		maxPending: maxPending,
		calls:      map[string]*callQueue{},
		held:       map[uint64]*item{},
	}
	ob.cond = sync.NewCond(&ob.mu)
	return ob, nil
}

// Enqueue stores n durably for delivery; once it returns nil the
// notification survives a crash. Notifications of one call must be
// enqueued one after another, not concurrently, to keep their order.
func (o *Outbox) Enqueue(ctx context.Context, n Notification) error {
	if err := validate(n); err != nil {
		return err
	}
	reqID := n.ID
	if reqID == "" {
		reqID = ids.New()
	}
	m := &nats.Msg{
		Subject: o.subject + subjectToken(n.CallID),
		Header:  nats.Header{},
		Data:    n.Body,
	}
	m.Header.Set(hdrCallID, n.CallID)
	m.Header.Set(hdrAppID, n.AppID)
	m.Header.Set(hdrTenantID, n.TenantID)
	m.Header.Set(hdrURL, n.URL)
	m.Header.Set(hdrIncoming, strconv.FormatBool(n.Incoming))
	m.Header.Set(hdrEnqueued, strconv.FormatInt(time.Now().UnixNano(), 10))
	m.Header.Set(hdrRequestID, reqID)
	if _, err := o.js.PublishMsg(ctx, m, jetstream.WithMsgID(reqID)); err != nil {
		return errs.Wrap(errs.Unavailable, err, "enqueue notification for call %s", n.CallID)
	}
	return nil
}

func validate(n Notification) error {
	if n.CallID == "" {
		return errs.E(errs.BadRequest, "enqueue notification: no call id")
	}
	for _, v := range []string{n.CallID, n.AppID, n.TenantID, n.URL} {
		if strings.ContainsAny(v, "\r\n\x00") {
			return errs.E(errs.BadRequest, "enqueue notification for call %q: control character in metadata", n.CallID)
		}
	}
	u, err := url.Parse(n.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return errs.E(errs.BadRequest, "enqueue notification for call %s: callback URL %q is not an absolute http(s) URL", n.CallID, n.URL)
	}
	return nil
}

// parseItem reads a message's metadata back from its headers.
func parseItem(msg jetstream.Msg, seq uint64, log *slog.Logger) (*item, error) {
	h := msg.Headers()
	it := &item{
		seq: seq,
		msg: msg,
		n: Notification{
			CallID:   h.Get(hdrCallID),
			AppID:    h.Get(hdrAppID),
			TenantID: h.Get(hdrTenantID),
			URL:      h.Get(hdrURL),
			Body:     msg.Data(),
			Incoming: h.Get(hdrIncoming) == "true",
		},
		requestID: h.Get(hdrRequestID),
	}
	it.url = it.n.URL
	it.log = log.With("call", it.n.CallID, "request_id", it.requestID, "seq", seq)
	ns, err := strconv.ParseInt(h.Get(hdrEnqueued), 10, 64)
	if err != nil {
		return it, fmt.Errorf("%w: stream sequence %d: enqueue time %q", ErrMalformed, seq, h.Get(hdrEnqueued))
	}
	it.enqueued = time.Unix(0, ns)
	if err := validate(it.n); err != nil {
		return it, fmt.Errorf("%w: stream sequence %d: %w", ErrMalformed, seq, err)
	}
	if it.requestID == "" {
		it.requestID = ids.New()
	}
	return it, nil
}

// validToken reports whether s can be a NATS subject token and consumer
// name: letters, digits, '-' and '_'.
func validToken(s string) bool {
	if s == "" || len(s) > 64 {
		return false
	}
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

// subjectToken turns a call id into a subject token: the id itself when it
// is safe (Graph call ids are GUID-like), else its base64url form. The
// token is for filtering and inspection only; the call id travels in a
// header.
func subjectToken(callID string) string {
	if len(callID) <= 128 && validToken(callID) {
		return callID
	}
	return "b64_" + base64.RawURLEncoding.EncodeToString([]byte(callID))
}

// Backlog reports how many of this node's notifications are not finished
// yet (queued in the stream or being delivered). Shutdown uses it to give
// the last notifications a chance to go out before the node stops.
func (o *Outbox) Backlog(ctx context.Context) (int, error) {
	info, err := o.cons.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("webhook: consumer info: %w", err)
	}
	return int(info.NumPending) + info.NumAckPending, nil
}
