package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/switchboard-voice/switchboard/internal/egress"
	"github.com/switchboard-voice/switchboard/internal/errs"
)

// Run delivers notifications until ctx is done. It first takes up the
// calls parked before the last stop, then consumes. When ctx is done it
// stops taking messages, lets POSTs in flight finish (each within Timeout),
// stops retrying, and returns nil once every goroutine it started has
// ended. Notifications not finished by then stay in the streams for the
// next Open. Run may be called only once.
func (o *Outbox) Run(ctx context.Context) error {
	if !o.running.CompareAndSwap(false, true) {
		return errors.New("webhook: Run called more than once")
	}
	if err := o.recoverParked(ctx); err != nil {
		o.clear()
		if ctx.Err() != nil {
			return nil // stopped before it started
		}
		return err
	}
	cc, err := o.cons.Consume(func(msg jetstream.Msg) { o.onMsg(ctx, msg) },
		jetstream.PullMaxMessages(min(o.maxPending, 256)),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			o.log.Debug("notification consumer", "err", err)
		}))
	if err != nil {
		o.clear()
		return fmt.Errorf("webhook: consume: %w", err)
	}
	var wg sync.WaitGroup
	for range o.opt.Workers {
		wg.Go(func() { o.worker(ctx) })
	}
	wg.Go(func() { o.heartbeat(ctx) })
	wg.Go(func() { o.keep(ctx) })

	<-ctx.Done()
	cc.Stop()
	closed := time.NewTimer(5 * time.Second)
	select {
	case <-cc.Closed():
	case <-closed.C:
		o.log.Warn("notification consumer did not stop within 5s")
	}
	closed.Stop()

	o.mu.Lock()
	o.stopping = true
	for _, q := range o.calls {
		if q.timer != nil {
			q.timer.Stop()
			q.timer = nil
		}
	}
	for _, h := range o.hosts {
		if h.timer != nil {
			h.timer.Stop()
			h.timer = nil
		}
	}
	o.cond.Broadcast()
	o.mu.Unlock()
	wg.Wait()
	o.clear()
	o.client.CloseIdleConnections()
	return nil
}

// clear forgets the delivery state once Run's goroutines are gone.
func (o *Outbox) clear() {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.stopping = true
	o.met.pending.Sub(float64(len(o.held)))
	o.met.parked.Sub(float64(o.nParked))
	o.nParked = 0
	clear(o.held)
	clear(o.calls)
	clear(o.hosts)
	o.ready = nil
}

// onMsg files a message from the consumer under its call: held, or parked
// if the call is parked, or if it is new and its host is failing or holds
// its share of the window. The consumer calls it from one goroutine, in
// delivery order, which for first deliveries is stream order.
func (o *Outbox) onMsg(ctx context.Context, msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		o.log.Error("notification message without metadata", "err", err)
		return
	}
	seq := md.Sequence.Stream
	o.behind.Store(md.NumPending)
	o.mu.Lock()
	if it, ok := o.held[seq]; ok {
		// A redelivery of a message still held (the ack wait ran out, say
		// during a long pause): keep its place in the queue and ack
		// through the newest delivery.
		it.msg = msg
		o.mu.Unlock()
		return
	}
	stopping := o.stopping
	o.mu.Unlock()
	if stopping {
		return // left unacknowledged for the next Open
	}

	it, err := parseItem(msg.Headers(), msg.Data(), seq, o.log)
	it.msg = msg
	if err != nil {
		o.finish(ctx, it, step{kind: stepDone, reason: reasonMalformed, err: err})
		return
	}
	o.mu.Lock()
	q := o.calls[it.n.CallID]
	guard := o.recovered[it.n.CallID]
	if q != nil {
		guard = q.guard
	}
	if seq <= guard {
		// Parked already: moved just before a crash, or a redelivery
		// that crossed the move's ack.
		o.mu.Unlock()
		_ = msg.Ack()
		return
	}
	if o.recoveredMax > 0 && seq > o.recoveredMax && md.NumDelivered == 1 {
		// Every original at or below a recovered guard has been seen.
		o.recovered, o.recoveredMax = nil, 0
	}
	if q == nil {
		h := o.hosts[it.host]
		if h != nil && o.mustParkLocked(h) {
			q = &callQueue{id: it.n.CallID, parked: true, subject: o.parkPrefix + subjectToken(it.n.CallID), idle: true}
			o.calls[q.id] = q
		}
	}
	if q != nil && q.parked {
		q.intake++
		subject := q.subject
		o.mu.Unlock()
		o.intake(ctx, q, subject, it)
		return
	}
	defer o.mu.Unlock()
	o.held[seq] = it
	it.pin = o.hostLocked(it.host)
	it.pin.held++
	o.met.pending.Inc()
	if q == nil {
		q = &callQueue{id: it.n.CallID}
		o.calls[q.id] = q
		o.readyLocked(q)
	}
	q.items = append(q.items, it)
}

// unholdLocked forgets it as held, once it is acknowledged or parked.
func (o *Outbox) unholdLocked(it *item) {
	if it.pin == nil {
		return
	}
	delete(o.held, it.seq)
	o.met.pending.Dec()
	it.pin.held--
	o.forgetLocked(it.pin)
	it.pin = nil
}

// worker attempts the heads of ready calls, one attempt at a time, so a
// call waiting out a backoff or for its host holds no worker.
func (o *Outbox) worker(ctx context.Context) {
	for {
		q := o.next()
		if q == nil {
			return
		}
		if !o.serve(ctx, q) {
			return
		}
	}
}

// serve makes one attempt of q's head, if its host admits it now, and
// hands q on. It parks q first if the attempt fails, or if q must wait for
// a host that is failing or holds its share of the window. It reports
// false when the outbox is stopping.
func (o *Outbox) serve(ctx context.Context, q *callQueue) bool {
	it := o.loadHead(ctx, q)
	if it == nil {
		return ctx.Err() == nil
	}
	if !time.Now().Before(it.enqueued.Add(o.opt.MaxAge)) {
		// Expired while it waited: no POST, so no slot needed.
		o.mu.Lock()
		if q.slot != nil {
			o.putSlotLocked(q.slot, hostNone, 0, 0)
			q.slot = nil
		}
		o.mu.Unlock()
		o.finish(ctx, it, o.drop(reasonExpired, o.expired(it)))
		o.pop(q)
		return true
	}
	var h *host
	for {
		o.mu.Lock()
		h = o.hostLocked(it.host)
		if o.takeSlotLocked(q, h, time.Now()) {
			o.mu.Unlock()
			break
		}
		if q.parked || !o.mustParkLocked(h) {
			o.waitLocked(q, h)
			o.mu.Unlock()
			return true
		}
		o.mu.Unlock()
		if err := o.parkCall(ctx, q); err != nil {
			return false
		}
	}

	start := time.Now()
	st := o.attempt(ctx, it)
	o.mu.Lock()
	o.putSlotLocked(h, st.host, st.after, time.Since(start))
	o.mu.Unlock()
	switch st.kind {
	case stepAbort:
		return false
	case stepAgain:
		o.schedule(q, 0)
	case stepRetry:
		if !q.parked {
			if err := o.parkCall(ctx, q); err != nil {
				return false
			}
		}
		o.schedule(q, st.wait)
	case stepDone:
		o.finish(ctx, it, st)
		o.pop(q)
	}
	return true
}

// next waits for a ready call and returns it, or nil when the outbox is
// stopping. The caller owns the call until it hands it on.
func (o *Outbox) next() *callQueue {
	o.mu.Lock()
	defer o.mu.Unlock()
	for len(o.ready) == 0 && !o.stopping {
		o.cond.Wait()
	}
	if o.stopping {
		return nil
	}
	q := o.ready[0]
	o.ready[0] = nil
	o.ready = o.ready[1:]
	return q
}

// readyLocked makes q ready for a worker.
func (o *Outbox) readyLocked(q *callQueue) {
	if o.stopping {
		return
	}
	o.ready = append(o.ready, q)
	o.cond.Signal()
}

// schedule makes q ready again after d.
func (o *Outbox) schedule(q *callQueue, d time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if d <= 0 {
		o.readyLocked(q)
		return
	}
	if o.stopping {
		return
	}
	q.timer = time.AfterFunc(d, func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		q.timer = nil
		o.readyLocked(q)
	})
}

// pop removes q's finished head. A held call is ready again if it has
// more, and forgotten if not; a parked call is ready to load its next.
func (o *Outbox) pop(q *callQueue) {
	o.mu.Lock()
	defer o.mu.Unlock()
	it := q.items[0]
	q.items = slices.Delete(q.items, 0, 1)
	o.unholdLocked(it)
	if len(q.items) == 0 && !q.parked {
		delete(o.calls, q.id)
		return
	}
	o.readyLocked(q)
}

// Header values every POST shares; nothing writes to them.
var (
	jsonContentType        = []string{"application/json"}
	notificationsUserAgent = []string{"Switchboard-Notifications/1.0"}
)

// keepEvery is how often a busy outbox stores a keeper; each expires
// after keepTTL, so a busy outbox holds about sixty of them (make soak saw
// them pile up for the stream's 24 h age before they had a TTL).
const (
	keepEvery = time.Second
	keepTTL   = time.Minute
)

// keep stores a keeper, an empty message on the subject notify.<node>,
// which no consumer reads, once a second while notifications are being
// enqueued. SB_NOTIFY removes each notification once acknowledged, and
// whenever that empties the stream's last block the file store deletes
// the block's file and creates another: on a node whose webhooks keep up,
// a file created per notification (a tenth of a node's CPU at 1,000
// calls). The keepers, a second apart, keep the last block from emptying;
// each expires a minute after it was stored.
func (o *Outbox) keep(ctx context.Context) {
	t := time.NewTicker(keepEvery)
	defer t.Stop()
	subject := strings.TrimSuffix(o.subject, ".")
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if !o.enqueued.Swap(false) {
			continue // idle: nothing to keep
		}
		pctx, cancel := context.WithTimeout(ctx, storeTimeout)
		_, err := o.js.Publish(pctx, subject, nil, jetstream.WithMsgTTL(keepTTL))
		cancel()
		if err != nil && ctx.Err() == nil {
			o.log.Debug("store outbox keeper", "err", err)
		}
	}
}

// heartbeat extends the ack wait of every held message, including those
// queued behind their call's head, so that JetStream never redelivers a
// message this node still owns.
func (o *Outbox) heartbeat(ctx context.Context) {
	t := time.NewTicker(heartbeatEvery)
	defer t.Stop()
	var msgs []jetstream.Msg
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		o.mu.Lock()
		msgs = msgs[:0]
		for _, it := range o.held {
			msgs = append(msgs, it.msg)
		}
		o.mu.Unlock()
		for _, m := range msgs {
			_ = m.InProgress()
		}
		clear(msgs)
	}
}

type stepKind int

const (
	stepDone  stepKind = iota // delivered or dropped: ack and move on
	stepRetry                 // try again after wait
	stepAgain                 // try again now (a redirect)
	stepAbort                 // shutting down: leave the message unacknowledged
)

type step struct {
	kind      stepKind
	wait      time.Duration
	delivered bool
	reason    string        // drop reason
	err       error         // why dropped
	host      hostResult    // what the attempt says about the host
	after     time.Duration // the host's Retry-After
}

func (o *Outbox) drop(reason string, err error) step {
	return step{kind: stepDone, reason: reason, err: err}
}

// attempt makes one delivery attempt of it and decides what comes next.
func (o *Outbox) attempt(ctx context.Context, it *item) step {
	if ctx.Err() != nil {
		return step{kind: stepAbort}
	}
	deadline := it.enqueued.Add(o.opt.MaxAge)
	if !time.Now().Before(deadline) {
		return o.drop(reasonExpired, o.expired(it))
	}
	token, err := o.tokens.NotificationToken(it.n.AppID, it.n.TenantID)
	if err != nil {
		switch errs.KindOf(err) {
		case errs.NotFound, errs.BadRequest, errs.Forbidden, errs.Unauthenticated:
			return o.drop(reasonToken, fmt.Errorf("%w for app %s in tenant %s: %w", ErrToken, it.n.AppID, it.n.TenantID, err))
		}
		it.lastErr = fmt.Errorf("notification token for app %s: %w", it.n.AppID, err)
		return o.retry(it, 0, deadline)
	}

	req, err := http.NewRequest(http.MethodPost, it.url, bytes.NewReader(it.n.Body))
	if err != nil {
		return o.drop(reasonMalformed, fmt.Errorf("%w: callback URL %q: %w", ErrMalformed, it.url, err))
	}
	// Keys in canonical form, constant values shared: a map and three
	// slices per POST instead of ten allocations.
	id := []string{it.requestID}
	req.Header = http.Header{
		"Content-Type":      jsonContentType,
		"Authorization":     {"Bearer " + token},
		"Client-Request-Id": id,
		"Request-Id":        id,
		"User-Agent":        notificationsUserAgent,
	}

	it.attempts++
	// A POST in flight at shutdown may finish, within Timeout, so the bot
	// does not see it twice.
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.opt.Timeout)
	defer cancel()
	status, header, snippet, err := o.post(req.WithContext(actx))
	if err != nil {
		o.met.attempts.WithLabelValues("error").Inc()
		if errors.Is(err, egress.ErrDenied) {
			return o.drop(reasonForbidden, err)
		}
		it.lastErr = err
		st := o.retry(it, 0, deadline)
		st.host = hostFailed
		return st
	}
	it.status = status
	o.met.attempts.WithLabelValues(statusClass(status)).Inc()
	st := o.answered(it, status, header, snippet, deadline)
	if st.host == hostNone {
		st.host = hostOK
	}
	return st
}

// answered decides what follows the bot's answer to an attempt.
func (o *Outbox) answered(it *item, status int, header http.Header, snippet string, deadline time.Time) step {
	switch {
	case status >= 200 && status < 300:
		if status == http.StatusNoContent && it.n.Incoming {
			// A 204 asks for a resend of a legacy-format incoming call
			// notification in Graph format, which this already is
			// (https://learn.microsoft.com/microsoftteams/platform/bots/calls-and-meetings/call-notifications).
			it.log.Info("bot answered 204 to an incoming call notification (a resend request for legacy-format notifications); treated as delivered", "url", it.url)
		}
		return step{kind: stepDone, delivered: true}

	case status >= 300 && status < 400:
		loc := header.Get("Location")
		if it.n.Incoming && loc != "" && it.redirects < maxRedirects {
			if next, ok := resolveRedirect(it.url, loc); ok {
				it.log.Info("bot redirected the incoming call notification", "status", status, "from", it.url, "to", next)
				it.setURL(next)
				it.redirects++
				return step{kind: stepAgain}
			}
		}
		why := "redirects are followed only for the first notification of an incoming call"
		switch {
		case !it.n.Incoming:
		case loc == "":
			why = "no Location header"
		case it.redirects >= maxRedirects:
			why = fmt.Sprintf("more than %d redirects", maxRedirects)
		default:
			why = "Location is not an http(s) URL"
		}
		return o.drop(reasonRedirect, fmt.Errorf("%w: %s answered %d (Location %q): %s", ErrRedirect, it.url, status, loc, why))

	case status == http.StatusRequestTimeout || status == http.StatusTooManyRequests || status >= 500:
		it.lastErr = fmt.Errorf("%s answered %d %s", it.url, status, http.StatusText(status))
		var after time.Duration
		if status == http.StatusTooManyRequests || status == http.StatusServiceUnavailable {
			after = retryAfter(header.Get("Retry-After"), time.Now())
		}
		st := o.retry(it, after, deadline)
		st.host, st.after = hostFailed, after
		return st

	default:
		reason := reasonRejected
		if status == http.StatusUnauthorized {
			reason = reasonUnauthorized
		}
		return o.drop(reason, fmt.Errorf("%w: %s answered %d %s: %q", ErrRejected, it.url, status, http.StatusText(status), snippet))
	}
}

// post sends req and reads enough of the answer to reuse the connection.
func (o *Outbox) post(req *http.Request) (int, http.Header, string, error) {
	resp, err := o.client.Do(req)
	if err != nil {
		return 0, nil, "", err
	}
	defer resp.Body.Close()
	var snippet []byte
	if resp.StatusCode >= 300 {
		snippet, _ = io.ReadAll(io.LimitReader(resp.Body, maxBodySnippet))
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxDrain))
	return resp.StatusCode, resp.Header, string(snippet), nil
}

// retry schedules another attempt after the Retry-After the bot asked for
// or else the backoff, or drops it when that would pass MaxAge.
func (o *Outbox) retry(it *item, after time.Duration, deadline time.Time) step {
	it.failures++
	wait := after
	if wait <= 0 {
		wait = backoff(o.opt.BackoffMin, o.opt.BackoffMax, it.failures)
	}
	if !time.Now().Add(wait).Before(deadline) {
		return o.drop(reasonExpired, o.expired(it))
	}
	level := slog.LevelDebug
	if it.failures == 1 {
		level = slog.LevelInfo
	}
	it.log.Log(context.Background(), level, "notification not delivered; will retry",
		"url", it.url, "attempts", it.attempts, "status", it.status, "err", it.lastErr, "retry_in", wait)
	return step{kind: stepRetry, wait: wait}
}

func (o *Outbox) expired(it *item) error {
	if it.lastErr == nil {
		return fmt.Errorf("%w (%s) after %d attempts", ErrExpired, o.opt.MaxAge, it.attempts)
	}
	return fmt.Errorf("%w (%s) after %d attempts: %w", ErrExpired, o.opt.MaxAge, it.attempts, it.lastErr)
}

// finish acknowledges a notification's final outcome, held or parked, and
// reports it.
func (o *Outbox) finish(ctx context.Context, it *item, st step) {
	now := time.Now()
	if it.parkSeq != 0 {
		// A POST in flight at shutdown may finish; so does its delete.
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), storeTimeout)
		err := o.parked.DeleteMsg(dctx, it.parkSeq)
		cancel()
		if err != nil {
			it.log.Warn("delete parked notification; it may be delivered again after a restart", "err", err)
		}
		o.mu.Lock()
		o.nParked--
		o.met.parked.Dec()
		o.mu.Unlock()
	} else {
		o.mu.Lock()
		msg := it.msg
		o.mu.Unlock()
		if err := msg.Ack(); err != nil {
			it.log.Warn("acknowledge notification; it may be delivered again after a restart", "err", err)
		}
	}
	res := Result{
		CallID:    it.n.CallID,
		ID:        it.requestID,
		URL:       it.url,
		Status:    it.status,
		Attempts:  it.attempts,
		Delivered: st.delivered,
		Err:       st.err,
		Enqueued:  it.enqueued,
		Finished:  now,
	}
	if st.delivered {
		o.met.delivered.Inc()
		o.met.latency.Observe(now.Sub(it.enqueued).Seconds())
		it.log.Debug("notification delivered", "url", it.url, "status", it.status, "attempts", it.attempts, "latency", now.Sub(it.enqueued))
	} else {
		o.met.dropped.WithLabelValues(st.reason).Inc()
		it.log.Warn("notification dropped", "reason", st.reason, "url", it.url, "status", it.status, "attempts", it.attempts, "err", st.err)
	}
	if o.opt.OnResult != nil {
		o.opt.OnResult(res)
	}
}

// backoff is the wait after the n-th failure (n ≥ 1): min doubled n-1
// times, capped at max, of which a random half is taken off ("equal
// jitter") so that calls failing together do not retry together.
func backoff(lo, hi time.Duration, n int) time.Duration {
	d := hi
	if n-1 < 62 {
		if f := lo << (n - 1); f > 0 && f>>(n-1) == lo && f < hi {
			d = f
		}
	}
	half := d / 2
	return d - half + rand.N(half+1)
}

// retryAfter parses a Retry-After value: seconds, possibly fractional
// (Graph sends "2.128", https://learn.microsoft.com/graph/throttling), or an HTTP date. It returns 0 when absent
// or unusable, and caps the wait at a day.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	const maxWait = 24 * time.Hour
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if math.IsNaN(s) || s <= 0 {
			return 0
		}
		if s >= maxWait.Seconds() {
			return maxWait
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxWait)
	}
	return 0
}

// resolveRedirect resolves a Location against the URL that answered it.
func resolveRedirect(base, loc string) (string, bool) {
	b, err := url.Parse(base)
	if err != nil {
		return "", false
	}
	l, err := url.Parse(loc)
	if err != nil {
		return "", false
	}
	u := b.ResolveReference(l)
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", false
	}
	return u.String(), true
}
