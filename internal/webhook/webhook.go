// Package webhook is Switchboard's durable notification outbox: it POSTs
// commsNotifications to bots' webhooks, in order per call, retrying, and
// survives restarts (the protocol:
// https://learn.microsoft.com/microsoftteams/platform/bots/calls-and-meetings/call-notifications).
//
// # Durability
//
// Enqueue publishes each notification to the JetStream stream SB_NOTIFY
// and returns once the publish is acknowledged, so an accepted notification
// outlives a crash (SIGKILL) of the process. The subject is
// notify.<node>.<call>: each node delivers only the notifications it
// enqueued, through its own durable pull consumer filtered on
// notify.<node>.>. A message is acknowledged only after its final outcome
// (delivered or dropped), or once a copy of it is stored in
// SB_NOTIFY_PARKED (see Isolation), so whatever was not finished when the
// process died is still in one of the two streams. Open deletes and
// recreates the node's consumer: the new consumer starts at the oldest
// message left, so the unfinished notifications are delivered again at
// once, in stream order, instead of after the old consumer's ack wait,
// possibly out of order. Run first takes up the calls parked before the
// stop, so that their messages still in SB_NOTIFY queue behind them.
// Delivery is therefore at least once: a POST that reached the bot just
// before a crash is repeated after the restart. Every POST of one
// notification carries the same client-request-id, so a bot can recognise
// the repeat.
//
// SB_NOTIFY uses work-queue retention: a notification is a job for exactly
// one consumer, and an acknowledged one is deleted at once, so the stream
// holds only the backlog and never needs trimming. (Limits retention would
// keep delivered notifications until MaxAge and need the consumer's
// position to tell them apart.) Work queues forbid overlapping consumers,
// which the per-node filters guarantee. A node that never comes back has
// its outbox opened by the node that takes it over (Open with the lost
// node's id, platform's takeover.go), which delivers it and then removes
// its consumer (Remove); a stream MaxAge well above the outbox's MaxAge
// is only a backstop for what nobody delivers.
//
// # Ordering
//
// A call's notifications are delivered strictly in enqueue order: the
// outbox keeps one queue per call that has messages unfinished, and only
// the head of a queue is ever attempted. The next notification starts only
// after the previous one finished, delivered or dropped. A retry keeps the
// message at the head of its queue, so nothing behind it can overtake it,
// neither here nor after a restart. Callers must not enqueue concurrently
// for one call; the call's own goroutine enqueues its notifications in
// order.
//
// # Isolation
//
// Different calls are independent, and so are different webhook hosts
// (scheme, host and port of the callback URL): a dead or slow bot delays
// only its own calls. Three things could let it delay others, and each is
// bounded.
//
// The consumer's window. JetStream hands the node at most MaxAckPending
// (Workers×16) unacknowledged messages; were a call waiting out a retry to
// keep its messages unacknowledged, a dead webhook's calls would soon hold
// the whole window and nothing more would come, for anyone, until MaxAge.
// (A delayed nak does not help: the message stays pending.) So a call's
// messages are held, unacknowledged, only while the call is being
// delivered: ready for a worker, in a POST, or waiting for a slot of a
// healthy host. A call that must wait (a retry backoff, a failing host, or
// a host that holds three quarters of the window) is parked first: its
// messages are copied, in order, to the stream SB_NOTIFY_PARKED (subject
// notifyparked.<node>.<call>, limits retention), and acknowledged in
// SB_NOTIFY once the copy is stored. While a call is parked, the messages
// that arrive for it are parked behind the others, and its head is read
// back from the parked stream in turn; a parked call whose last message
// finished is forgotten, and its next message is held again. A new call
// for a host that is failing, or holds its share of the window, is parked
// on arrival. A crash between storing a copy and acknowledging the
// original leaves both; the copy carries the original's sequence, which
// tells them apart after the restart.
//
// The workers. Options.Workers bounds the POSTs in flight, and one host
// gets at most three quarters of them (at least one), so a host that hangs
// until the timeout cannot take them all. A call waiting out a backoff or
// waiting for its host holds no worker.
//
// The host's failures. After a failed attempt (no answer, 408, 429, 5xx)
// a host is failing: it gets one POST at a time, the first not before the
// host's own backoff (or the Retry-After it sent) and never sooner than the
// failed attempt took, so a host that hangs takes at most about half a
// worker. The calls waiting for it are woken in turn, and dropped when
// their MaxAge passes; the first answer that is not a failure makes the
// host healthy again. Each call keeps its own backoff besides.
//
// Memory holds the held messages (at most the window) and, for each
// parked call, its head. switchboard_webhook_pending and
// switchboard_webhook_parked count the held and the parked messages.
//
// # Delivery
//
// Each attempt is a POST with Content-Type application/json, a bearer token
// from the TokenSource and client-request-id/request-id headers, limited to
// Options.Timeout. Bot answers are handled as that page describes (docs/graph-deviations.md#a-204-to-an-incoming-call-notification-counts-as-delivered):
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

// ParkedStreamName is the JetStream stream that holds the notifications of
// calls that are parked: waiting for a retry, or for a webhook host that is
// failing or holds too much of the consumer's window (see the package doc).
const ParkedStreamName = "SB_NOTIFY_PARKED"

const (
	subjectRoot       = "notify"
	parkedSubjectRoot = "notifyparked"
	// ackWait is how long JetStream waits for an ack before redelivering;
	// held messages are touched (InProgress) every heartbeatEvery.
	ackWait        = 30 * time.Second
	heartbeatEvery = ackWait / 3
	// pendingPerWorker sizes the consumer's MaxAckPending: the messages
	// held in memory, being delivered or queued behind their calls' heads.
	pendingPerWorker = 16
	// maxRedirects bounds the 3xx hops of an incoming-call notification.
	maxRedirects = 3
	// streamMaxAgeFloor is the streams' backstop retention.
	streamMaxAgeFloor = 24 * time.Hour
	// maxBodySnippet is how much of a bot's error answer is logged.
	maxBodySnippet = 512
	// maxDrain is how much of a bot's answer is read so the connection can
	// be reused.
	maxDrain = 64 << 10
	// storeTimeout bounds one JetStream request of the parking machinery;
	// a failed one is tried again (storeRetry) until the outbox stops.
	storeTimeout = 5 * time.Second
	storeRetry   = time.Second
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
	// hdrSeq, on a parked copy, is the SB_NOTIFY sequence of the original.
	hdrSeq = "Sb-Seq"
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

// TokenSource issues the bearer tokens notifications carry (docs/decisions.md#notification-tokens). It is
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
	// concurrently (default 64). One webhook host gets at most three
	// quarters of them, and one at a time while it is failing.
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
	// ID is the notification's id (Notification.ID, or the one given it),
	// also its request id toward the bot.
	ID string
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
	parked     jetstream.Stream
	tokens     TokenSource
	opt        Options
	client     *http.Client
	log        *slog.Logger
	met        *metrics
	subject    string // notify.<node>.
	parkPrefix string // notifyparked.<node>.
	maxPending int
	hostLimit  int // POSTs in flight to one healthy host
	hostWindow int // held messages of one host beyond which its waiting calls park
	running    atomic.Bool
	// behind is how many messages wait in SB_NOTIFY beyond those held:
	// the NumPending of the last message delivered, or of the consumer's
	// info once the window is full (see Queued).
	behind     atomic.Uint64
	behindAt   atomic.Int64 // when the consumer's info last refreshed behind (UnixNano)
	refreshing atomic.Bool
	enqueued   atomic.Bool // a notification was enqueued since the last keeper (see keep)

	mu       sync.Mutex
	cond     *sync.Cond
	stopping bool
	calls    map[string]*callQueue // calls with messages held or parked
	// recovered keeps the guard of each call recoverParked found, once
	// its queue is drained and forgotten, for as long as the consumer may
	// still first-deliver originals at or below it: until it delivers one
	// above recoveredMax, since first deliveries come in stream order.
	recovered    map[string]uint64
	recoveredMax uint64
	ready        []*callQueue     // calls whose head may be attempted now
	held         map[uint64]*item // by stream sequence
	hosts        map[string]*host // webhook hosts with held messages, POSTs, waiters or failures
	nParked      int              // messages in the parked stream, for the gauge
}

// Queued is how many notifications this node has yet to deliver, parked
// calls' aside: those held in memory and those still in SB_NOTIFY behind
// them. Admission control refuses new calls while there are more than
// calls.overload.maxNotificationBacklog, so it is cheap: what waits
// behind is the NumPending of the last message the consumer handed over,
// which costs no request, while the window has room (then what comes in
// is handed over at once). Once the window is full nothing is handed
// over and that figure goes stale: then Queued asks for the consumer's
// info, at most once a second and in the background, and returns the
// last figure meanwhile. Safe for concurrent use.
func (o *Outbox) Queued() int {
	o.mu.Lock()
	n := len(o.held)
	o.mu.Unlock()
	if n >= o.maxPending {
		o.refreshBehind()
	}
	return n + int(min(o.behind.Load(), 1<<31))
}

// refreshBehind reads the consumer's NumPending into behind, unless it
// did less than a second ago or is doing so. Its goroutine ends within
// storeTimeout, whatever the outbox does meanwhile.
func (o *Outbox) refreshBehind() {
	if time.Since(time.Unix(0, o.behindAt.Load())) < time.Second || !o.refreshing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer o.refreshing.Store(false)
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		defer cancel()
		if info, err := o.cons.Info(ctx); err == nil {
			o.behind.Store(info.NumPending)
		}
		o.behindAt.Store(time.Now().UnixNano())
	}()
}

// callQueue holds one call's messages, oldest first. A call is either held
// (its messages are held from the consumer, in items) or parked (they are
// in the parked stream under subject, and items holds at most the head,
// loaded from there). The queue has exactly one owner while it exists: the
// ready list, a worker, its retry timer, a host's waiters, or (idle) the
// intake that is about to add a parked message. Only the owner touches
// items[0]'s delivery state; the intake only appends.
type callQueue struct {
	id    string
	items []*item
	timer *time.Timer
	slot  *host // a POST slot of this host, handed over while q waited

	parked  bool
	subject string // notifyparked.<node>.<call>
	next    uint64 // parked sequence to look for the next head from
	intake  int    // parked: messages being moved to the parked stream by onMsg
	landed  int    // parked: messages the intake has moved, ever
	idle    bool   // parked, nothing to load: the intake will make q ready
	guard   uint64 // parked: SB_NOTIFY sequences up to this one are parked already
}

// item is one message and its delivery state.
type item struct {
	seq       uint64        // SB_NOTIFY sequence
	msg       jetstream.Msg // while held; guarded by Outbox.mu: a redelivery replaces it
	pin       *host         // while held: the host whose window share it counts in
	parkSeq   uint64        // once parked: its sequence in SB_NOTIFY_PARKED
	n         Notification
	requestID string
	enqueued  time.Time
	log       *slog.Logger

	url       string // current target, after redirects
	host      string // hostKey(url)
	attempts  int    // POSTs made
	failures  int    // failed tries, for the backoff
	redirects int
	status    int
	lastErr   error
}

// Open creates or updates the SB_NOTIFY and SB_NOTIFY_PARKED streams (file
// storage, st's replica count), recreates this node's consumer so that
// undelivered notifications are handed out again in order, and returns the
// outbox. Deliveries start
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
	if _, err := st.Stream(ctx, jetstream.StreamConfig{
		Name:        StreamName,
		Description: "Switchboard notification outbox (internal/webhook)",
		Subjects:    []string{subjectRoot + ".>"},
		Retention:   jetstream.WorkQueuePolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    st.Replicas(),
		MaxAge:      streamAge,
		Discard:     jetstream.DiscardOld,
		Duplicates:  2 * time.Minute,
		AllowMsgTTL: true, // the keepers expire (see keep)
	}); err != nil {
		return nil, fmt.Errorf("webhook: stream %s: %w", StreamName, err)
	}
	// Parked messages are deleted one by one as they finish; limits
	// retention, as no consumer reads this stream (the outbox reads it by
	// subject).
	parked, err := st.Stream(ctx, jetstream.StreamConfig{
		Name:        ParkedStreamName,
		Description: "Switchboard notifications of parked calls (internal/webhook)",
		Subjects:    []string{parkedSubjectRoot + ".>"},
		Retention:   jetstream.LimitsPolicy,
		Storage:     jetstream.FileStorage,
		Replicas:    st.Replicas(),
		MaxAge:      streamAge,
		Discard:     jetstream.DiscardOld,
		Duplicates:  2 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("webhook: stream %s: %w", ParkedStreamName, err)
	}

	name := consumerName(o.Node)
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
		parked:     parked,
		tokens:     tokens,
		opt:        o,
		client:     &client,
		log:        o.Logger.With("node", o.Node),
		met:        met,
		subject:    subjectRoot + "." + o.Node + ".",
		parkPrefix: parkedSubjectRoot + "." + o.Node + ".",
		maxPending: maxPending,
		hostLimit:  max(1, o.Workers-max(1, o.Workers/4)),
		hostWindow: max(1, maxPending-maxPending/4),
		calls:      map[string]*callQueue{},
		held:       map[uint64]*item{},
		hosts:      map[string]*host{},
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
	// The header's values share one array, where Header.Set would
	// allocate a slice for each. Nats-Msg-Id is what the stream
	// deduplicates by (jetstream.WithMsgID sets the same header).
	v := [...]string{n.CallID, n.AppID, n.TenantID, n.URL, strconv.FormatBool(n.Incoming),
		strconv.FormatInt(time.Now().UnixNano(), 10), reqID}
	m := &nats.Msg{
		Subject: o.subject + subjectToken(n.CallID),
		Header: nats.Header{
			hdrCallID: v[0:1:1], hdrAppID: v[1:2:2], hdrTenantID: v[2:3:3], hdrURL: v[3:4:4],
			hdrIncoming: v[4:5:5], hdrEnqueued: v[5:6:6], hdrRequestID: v[6:7:7],
			jetstream.MsgIDHeader: v[6:7:7],
		},
		Data: n.Body,
	}
	if _, err := o.js.PublishMsg(ctx, m); err != nil {
		return errs.Wrap(errs.Unavailable, err, "enqueue notification for call %s", n.CallID)
	}
	o.enqueued.Store(true)
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

// parseItem reads a message's metadata back from its headers: an
// SB_NOTIFY message (seq is its sequence) or a parked copy (which carries
// the original's sequence in hdrSeq).
func parseItem(h nats.Header, data []byte, seq uint64, log *slog.Logger) (*item, error) {
	it := &item{
		seq: seq,
		n: Notification{
			CallID:   h.Get(hdrCallID),
			AppID:    h.Get(hdrAppID),
			TenantID: h.Get(hdrTenantID),
			URL:      h.Get(hdrURL),
			Body:     data,
			Incoming: h.Get(hdrIncoming) == "true",
		},
		requestID: h.Get(hdrRequestID),
	}
	it.setURL(it.n.URL)
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

// setURL makes u the item's target.
func (it *item) setURL(u string) {
	it.url = u
	it.host = hostKey(u)
}

// parkedMsg is it's copy for the parked stream: the original's metadata,
// and its SB_NOTIFY sequence.
func parkedMsg(subject string, it *item) *nats.Msg {
	m := &nats.Msg{Subject: subject, Header: nats.Header{}, Data: it.n.Body}
	m.Header.Set(hdrCallID, it.n.CallID)
	m.Header.Set(hdrAppID, it.n.AppID)
	m.Header.Set(hdrTenantID, it.n.TenantID)
	m.Header.Set(hdrURL, it.n.URL)
	m.Header.Set(hdrIncoming, strconv.FormatBool(it.n.Incoming))
	m.Header.Set(hdrEnqueued, strconv.FormatInt(it.enqueued.UnixNano(), 10))
	m.Header.Set(hdrRequestID, it.requestID)
	m.Header.Set(hdrSeq, strconv.FormatUint(it.seq, 10))
	return m
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

// Remove deletes the delivery consumer of node, whose outbox is done
// with for good: a lost node whose notifications another node delivered
// (platform's node takeover). A node that starts again with that id
// gets a new one from Open.
func Remove(ctx context.Context, st *store.Store, node string) error {
	err := st.JetStream().DeleteConsumer(ctx, StreamName, consumerName(node))
	if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return fmt.Errorf("webhook: delete consumer of node %s: %w", node, err)
	}
	return nil
}

func consumerName(node string) string { return "notify_" + node }

// Backlog reports how many of this node's notifications are not finished
// yet (queued in the stream, being delivered, or parked). Shutdown uses it
// to give the last notifications a chance to go out before the node stops.
func (o *Outbox) Backlog(ctx context.Context) (int, error) {
	info, err := o.cons.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("webhook: consumer info: %w", err)
	}
	n := int(info.NumPending) + info.NumAckPending
	pi, err := o.parked.Info(ctx, jetstream.WithSubjectFilter(o.parkPrefix+">"))
	if err != nil {
		return 0, fmt.Errorf("webhook: stream %s info: %w", ParkedStreamName, err)
	}
	for _, c := range pi.State.Subjects {
		n += int(c)
	}
	return n, nil
}
