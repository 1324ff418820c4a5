package webhook

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/goleak"

	"github.com/switchboard-voice/switchboard/internal/egress"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/store"
)

func TestMain(m *testing.M) {
	if os.Getenv(crashChildEnv) != "" {
		crashChild()
		return
	}
	goleak.VerifyTestMain(m)
}

// tokens is a TokenSource that hands out "tok-<app>-<tenant>" and signals
// each call on called, if set.
type tokens struct {
	called chan struct{}
	err    error
}

func (s *tokens) NotificationToken(app, tenant string) (string, error) {
	if s.called != nil {
		select {
		case s.called <- struct{}{}:
		default:
		}
	}
	if s.err != nil {
		return "", s.err
	}
	return "tok-" + app + "-" + tenant, nil
}

var _ TokenSource = (*tokens)(nil)

// body is the test envelope: which call, which notification.
type body struct {
	Call string `json:"call"`
	Seq  int    `json:"seq"`
}

func note(url, call string, seq int) Notification {
	b, _ := json.Marshal(body{Call: call, Seq: seq})
	return Notification{CallID: call, AppID: "app1", TenantID: "ten1", URL: url, Body: b}
}

func readBody(t *testing.T, r *http.Request) body {
	t.Helper()
	var b body
	data, _ := io.ReadAll(r.Body)
	if err := json.Unmarshal(data, &b); err != nil {
		t.Errorf("webhook body %q: %v", data, err)
	}
	return b
}

func openStore(t *testing.T, dir string) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Options{DataDir: dir, Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// harness runs an outbox on a fresh store; results receives every Result.
type harness struct {
	ob      *Outbox
	results chan Result
	cancel  context.CancelFunc
	done    chan error
}

func fastOptions() Options {
	return Options{
		Node:       "n1",
		Timeout:    2 * time.Second,
		MaxAge:     time.Minute,
		BackoffMin: 5 * time.Millisecond,
		BackoffMax: 20 * time.Millisecond,
		Workers:    8,
	}
}

func start(t *testing.T, st *store.Store, ts TokenSource, o Options) *harness {
	t.Helper()
	h := &harness{results: make(chan Result, 4096), done: make(chan error, 1)}
	o.OnResult = func(r Result) { h.results <- r }
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ob, err := Open(ctx, st, ts, o)
	if err != nil {
		t.Fatal(err)
	}
	h.ob = ob
	runCtx, runCancel := context.WithCancel(context.Background())
	h.cancel = runCancel
	go func() { h.done <- ob.Run(runCtx) }()
	t.Cleanup(h.stop)
	return h
}

// stop cancels Run and waits for it to return.
func (h *harness) stop() {
	h.cancel()
	if err := <-h.done; err != nil {
		panic(err)
	}
	h.done <- nil // stop is idempotent
}

func (h *harness) enqueue(t *testing.T, n Notification) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.ob.Enqueue(ctx, n); err != nil {
		t.Fatalf("enqueue: %v", err)
	}
}

// wait returns the next n results, failing after a deadline.
func (h *harness) wait(t *testing.T, n int) []Result {
	t.Helper()
	var out []Result
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for len(out) < n {
		select {
		case r := <-h.results:
			out = append(out, r)
		case <-timeout.C:
			t.Fatalf("got %d results, want %d", len(out), n)
		}
	}
	return out
}

func newStoreHarness(t *testing.T, ts TokenSource, o Options) (*harness, *store.Store) {
	t.Helper()
	st := openStore(t, t.TempDir())
	t.Cleanup(st.Close) // runs after the harness's stop (cleanups are LIFO)
	return start(t, st, ts, o), st
}

// TestOrderPerCallManyCalls sends 50 calls × 20 notifications through 8
// workers: every call's notifications must arrive one at a time, in order.
func TestOrderPerCallManyCalls(t *testing.T) {
	const calls, perCall = 50, 20
	var (
		mu       sync.Mutex
		next     = map[string]int{}
		inFlight = map[string]bool{}
		maxPar   atomic.Int32
		cur      atomic.Int32
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := readBody(t, r)
		mu.Lock()
		if inFlight[b.Call] {
			t.Errorf("call %s: notification %d started while another was in flight", b.Call, b.Seq)
		}
		if b.Seq != next[b.Call] {
			t.Errorf("call %s: got notification %d, want %d", b.Call, b.Seq, next[b.Call])
		}
		next[b.Call] = b.Seq + 1
		inFlight[b.Call] = true
		mu.Unlock()
		for n, m := cur.Add(1), maxPar.Load(); n > m && !maxPar.CompareAndSwap(m, n); m = maxPar.Load() {
		}
		time.Sleep(time.Millisecond) // work, not synchronisation: lets POSTs overlap
		cur.Add(-1)
		mu.Lock()
		inFlight[b.Call] = false
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()

	h, _ := newStoreHarness(t, &tokens{}, fastOptions())
	var wg sync.WaitGroup
	for c := range calls {
		wg.Go(func() {
			call := fmt.Sprintf("call-%02d", c)
			for i := range perCall {
				h.enqueue(t, note(srv.URL, call, i))
			}
		})
	}
	wg.Wait()
	for _, r := range h.wait(t, calls*perCall) {
		if !r.Delivered || r.Status != http.StatusAccepted || r.Attempts != 1 || r.Err != nil {
			t.Errorf("result %+v, want delivered with 202 in 1 attempt", r)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for c := range calls {
		if got := next[fmt.Sprintf("call-%02d", c)]; got != perCall {
			t.Errorf("call-%02d: %d delivered, want %d", c, got, perCall)
		}
	}
	t.Logf("max concurrent POSTs: %d", maxPar.Load())
	if maxPar.Load() > 8 {
		t.Errorf("%d concurrent POSTs, want at most Workers=8", maxPar.Load())
	}
}

// TestSlowWebhookDelaysOnlyItsCall blocks call A's webhook; call B's
// notifications must still be delivered, and A's follow once released.
func TestSlowWebhookDelaysOnlyItsCall(t *testing.T) {
	release := make(chan struct{})
	blocked := make(chan struct{}, 1)
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		blocked <- struct{}{}
		<-release
		w.WriteHeader(http.StatusAccepted)
	}))
	defer slow.Close()
	fast := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	}))
	defer fast.Close()

	o := fastOptions()
	o.Workers = 2
	h, _ := newStoreHarness(t, &tokens{}, o)
	h.enqueue(t, note(slow.URL, "A", 0))
	h.enqueue(t, note(slow.URL, "A", 1))
	<-blocked // A's first POST is in flight
	for i := range 5 {
		h.enqueue(t, note(fast.URL, "B", i))
	}
	for i, r := range h.wait(t, 5) {
		if r.CallID != "B" || !r.Delivered {
			t.Fatalf("result %d: %+v, want B delivered while A blocks", i, r)
		}
	}
	close(release)
	rs := h.wait(t, 2)
	for _, r := range rs {
		if r.CallID != "A" || !r.Delivered {
			t.Fatalf("result %+v, want A delivered", r)
		}
	}
	<-blocked // the second POST of A also arrived
}

func TestRetryOn500ThenSuccess(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) <= 2 {
			http.Error(w, "boom", http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	h, _ := newStoreHarness(t, &tokens{}, fastOptions())
	h.enqueue(t, note(srv.URL, "c", 0))
	r := h.wait(t, 1)[0]
	if !r.Delivered || r.Attempts != 3 || r.Status != http.StatusAccepted {
		t.Fatalf("result %+v, want delivered on the 3rd attempt", r)
	}
}

func TestRetryAfterOn429(t *testing.T) {
	var (
		n     atomic.Int32
		first atomic.Int64
		gap   atomic.Int64
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			first.Store(time.Now().UnixNano())
			w.Header().Set("Retry-After", "0.3")
			http.Error(w, `{"error":{"code":"TooManyRequests"}}`, http.StatusTooManyRequests)
			return
		}
		gap.Store(time.Now().UnixNano() - first.Load())
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	h, _ := newStoreHarness(t, &tokens{}, fastOptions()) // backoff ≤ 20ms
	h.enqueue(t, note(srv.URL, "c", 0))
	r := h.wait(t, 1)[0]
	if !r.Delivered || r.Attempts != 2 {
		t.Fatalf("result %+v, want delivered on the 2nd attempt", r)
	}
	if d := time.Duration(gap.Load()); d < 300*time.Millisecond {
		t.Fatalf("retried after %v, want ≥ Retry-After 300ms", d)
	}
}

func TestDropOn4xx(t *testing.T) {
	for _, status := range []int{http.StatusBadRequest, http.StatusUnauthorized, http.StatusNotFound} {
		t.Run(fmt.Sprint(status), func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				n.Add(1)
				http.Error(w, "no thanks", status)
			}))
			defer srv.Close()
			reg := prometheus.NewRegistry()
			o := fastOptions()
			o.Registerer = reg
			h, _ := newStoreHarness(t, &tokens{}, o)
			h.enqueue(t, note(srv.URL, "c", 0))
			h.enqueue(t, note(srv.URL, "c", 1))
			for i, r := range h.wait(t, 2) {
				if r.Delivered || r.Status != status || r.Attempts != 1 || !errors.Is(r.Err, ErrRejected) {
					t.Fatalf("result %d: %+v, want dropped after 1 attempt with %d", i, r, status)
				}
			}
			if n.Load() != 2 {
				t.Fatalf("%d POSTs, want 2 (no retries)", n.Load())
			}
			reason := reasonRejected
			if status == http.StatusUnauthorized {
				reason = reasonUnauthorized
			}
			if got := testutil.ToFloat64(h.ob.met.dropped.WithLabelValues(reason)); got != 2 {
				t.Fatalf("dropped{reason=%s} = %v, want 2", reason, got)
			}
		})
	}
}

func TestDropAfterMaxAge(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	o := fastOptions()
	o.MaxAge = 300 * time.Millisecond
	h, _ := newStoreHarness(t, &tokens{}, o)
	h.enqueue(t, note(srv.URL, "c", 0))
	h.enqueue(t, note(srv.URL, "c", 1))
	for i, r := range h.wait(t, 2) {
		// The second waits behind the first; on a loaded machine it may
		// expire before its own first attempt (Attempts 0, no status).
		if r.Delivered || !errors.Is(r.Err, ErrExpired) || (r.Attempts > 0 || i == 0) && r.Status != http.StatusServiceUnavailable {
			t.Fatalf("result %+v, want dropped as expired after 503s", r)
		}
		if age := r.Finished.Sub(r.Enqueued); age > 2*time.Second {
			t.Fatalf("dropped after %v, want about MaxAge", age)
		}
	}
}

func TestConnectionRefusedRetriesUntilMaxAge(t *testing.T) {
	url := closedPortURL(t)
	o := fastOptions()
	o.MaxAge = 200 * time.Millisecond
	h, _ := newStoreHarness(t, &tokens{}, o)
	h.enqueue(t, note(url, "c", 0))
	r := h.wait(t, 1)[0]
	if r.Delivered || !errors.Is(r.Err, ErrExpired) || r.Attempts < 2 || r.Status != 0 {
		t.Fatalf("result %+v, want dropped as expired after several refused attempts", r)
	}
}

func TestBearerTokenAndHeaders(t *testing.T) {
	type seen struct{ auth, ctype, reqID, clientReqID, method string }
	got := make(chan seen, 2)
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.Header.Get("Authorization"), r.Header.Get("Content-Type"),
			r.Header.Get("request-id"), r.Header.Get("client-request-id"), r.Method}
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	h, _ := newStoreHarness(t, &tokens{}, fastOptions())
	nt := note(srv.URL, "c", 0)
	nt.AppID, nt.TenantID = "appX", "tenY"
	h.enqueue(t, nt)
	h.wait(t, 1)
	a, b := <-got, <-got
	if a.auth != "Bearer tok-appX-tenY" || a.ctype != "application/json" || a.method != http.MethodPost {
		t.Fatalf("first POST %+v", a)
	}
	if a.reqID == "" || a.reqID != a.clientReqID || a != b {
		t.Fatalf("POSTs %+v and %+v: want the same non-empty request id on every attempt", a, b)
	}
}

func TestTokenSourceErrors(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Error("no POST expected without a token")
	}))
	defer srv.Close()
	ts := &tokens{err: errs.E(errs.NotFound, "no application app1")}
	h, _ := newStoreHarness(t, ts, fastOptions())
	h.enqueue(t, note(srv.URL, "c", 0))
	r := h.wait(t, 1)[0]
	if r.Delivered || !errors.Is(r.Err, ErrToken) || r.Attempts != 0 {
		t.Fatalf("result %+v, want dropped for want of a token", r)
	}
}

func TestIncomingRedirect(t *testing.T) {
	got := make(chan body, 1)
	target := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			t.Error("redirected POST without a token")
		}
		got <- readBody(t, r)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer target.Close()
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", target.URL+"/region2/callback")
		w.WriteHeader(http.StatusTemporaryRedirect)
	}))
	defer first.Close()

	h, _ := newStoreHarness(t, &tokens{}, fastOptions())
	in := note(first.URL, "c", 0)
	in.Incoming = true
	h.enqueue(t, in)
	r := h.wait(t, 1)[0]
	if !r.Delivered || r.URL != target.URL+"/region2/callback" || r.Attempts != 2 {
		t.Fatalf("result %+v, want delivered to the Location", r)
	}
	if b := <-got; b.Call != "c" || b.Seq != 0 {
		t.Fatalf("redirected body %+v", b)
	}

	// The same answer to a notification that is not the incoming one is
	// not followed.
	h.enqueue(t, note(first.URL, "c", 1))
	r = h.wait(t, 1)[0]
	if r.Delivered || !errors.Is(r.Err, ErrRedirect) || r.Status != http.StatusTemporaryRedirect {
		t.Fatalf("result %+v, want dropped: redirect of a non-incoming notification", r)
	}
}

func TestIncomingRedirectLoopIsBounded(t *testing.T) {
	var srv *httptest.Server
	srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Location", srv.URL+"/again")
		w.WriteHeader(http.StatusFound)
	}))
	defer srv.Close()
	h, _ := newStoreHarness(t, &tokens{}, fastOptions())
	in := note(srv.URL, "c", 0)
	in.Incoming = true
	h.enqueue(t, in)
	r := h.wait(t, 1)[0]
	if r.Delivered || !errors.Is(r.Err, ErrRedirect) || r.Attempts != maxRedirects+1 {
		t.Fatalf("result %+v, want dropped after %d hops", r, maxRedirects)
	}
}

func TestIncoming204IsDelivered(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	h, _ := newStoreHarness(t, &tokens{}, fastOptions())
	in := note(srv.URL, "c", 0)
	in.Incoming = true
	h.enqueue(t, in)
	if r := h.wait(t, 1)[0]; !r.Delivered || r.Status != http.StatusNoContent || r.Attempts != 1 {
		t.Fatalf("result %+v, want delivered", r)
	}
}

func TestEgressPolicyForbidsAddress(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n.Add(1)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	p, err := egress.NewPolicy([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	o := fastOptions()
	o.Client = p.Client(o.Timeout)
	o.Registerer = reg
	h, _ := newStoreHarness(t, &tokens{}, o)

	h.enqueue(t, note("http://127.0.0.2:"+port+"/cb", "c", 0))
	h.enqueue(t, note(srv.URL, "c", 1))
	rs := h.wait(t, 2)
	if r := rs[0]; r.Delivered || !errors.Is(r.Err, egress.ErrDenied) || r.Attempts != 1 {
		t.Fatalf("result %+v, want dropped by the egress policy", r)
	}
	if r := rs[1]; !r.Delivered {
		t.Fatalf("result %+v, want delivered to the allowed address", r)
	}
	if n.Load() != 1 {
		t.Fatalf("%d POSTs reached the server, want 1", n.Load())
	}
	if got := testutil.ToFloat64(h.ob.met.dropped.WithLabelValues(reasonForbidden)); got != 1 {
		t.Fatalf("dropped{reason=forbidden} = %v", got)
	}
	if got := testutil.ToFloat64(h.ob.met.delivered); got != 1 {
		t.Fatalf("delivered = %v", got)
	}
	if c := testutil.CollectAndCount(reg, "switchboard_webhook_delivery_seconds"); c != 1 {
		t.Fatalf("latency histogram series: %d", c)
	}
}

func TestEnqueueValidates(t *testing.T) {
	h, _ := newStoreHarness(t, &tokens{}, fastOptions())
	ctx := context.Background()
	for _, n := range []Notification{
		{URL: "http://127.0.0.1/"},
		{CallID: "c", URL: "ftp://127.0.0.1/"},
		{CallID: "c", URL: "/relative"},
		{CallID: "c\r\nX-Evil: 1", URL: "http://127.0.0.1/"},
	} {
		if err := h.ob.Enqueue(ctx, n); errs.KindOf(err) != errs.BadRequest {
			t.Errorf("Enqueue(%+v) = %v, want BadRequest", n, err)
		}
	}
	// Call ids that are not subject-safe still work.
	if err := h.ob.Enqueue(ctx, Notification{CallID: "a.b*c >d", URL: "http://127.0.0.1:1/"}); err != nil {
		t.Fatal(err)
	}
}

func TestOpenValidatesNodeAndRunOnce(t *testing.T) {
	st := openStore(t, t.TempDir())
	defer st.Close()
	ctx := context.Background()
	for _, node := range []string{"", "a.b", "a>", "a b"} {
		if _, err := Open(ctx, st, &tokens{}, Options{Node: node}); err == nil {
			t.Errorf("Open with node %q: no error", node)
		}
	}
	ob, err := Open(ctx, st, &tokens{}, Options{Node: "n1", Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ob.Run(rctx) }()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := ob.Run(ctx); err == nil {
		t.Fatal("second Run: no error")
	}
}

// TestSurvivesRestart enqueues while the webhook is down, stops the outbox
// mid-retry and closes the store without any ack, then reopens both on the
// same directory with the webhook up: everything arrives, in order.
func TestSurvivesRestart(t *testing.T) {
	const calls, perCall = 3, 10
	dir := t.TempDir()
	addr, url := reservePort(t)

	st := openStore(t, dir)
	ts := &tokens{called: make(chan struct{}, 1)}
	h := start(t, st, ts, fastOptions())
	for i := range perCall {
		for c := range calls {
			h.enqueue(t, note(url, fmt.Sprintf("call-%d", c), i))
		}
	}
	<-ts.called // a delivery attempt is under way (and failing)
	h.stop()
	st.Close()
	select {
	case r := <-h.results:
		t.Fatalf("unexpected result before restart: %+v", r)
	default:
	}

	var (
		mu   sync.Mutex
		next = map[string]int{}
	)
	srv := serveOn(t, addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := readBody(t, r)
		mu.Lock()
		if b.Seq != next[b.Call] {
			t.Errorf("call %s: got %d after restart, want %d", b.Call, b.Seq, next[b.Call])
		}
		next[b.Call] = b.Seq + 1
		mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()

	st = openStore(t, dir)
	defer st.Close()
	h = start(t, st, &tokens{}, fastOptions())
	for _, r := range h.wait(t, calls*perCall) {
		if !r.Delivered {
			t.Errorf("result %+v, want delivered", r)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for c := range calls {
		if got := next[fmt.Sprintf("call-%d", c)]; got != perCall {
			t.Errorf("call-%d: %d delivered, want %d", c, got, perCall)
		}
	}
}

func TestBackoff(t *testing.T) {
	lo, hi := 250*time.Millisecond, 30*time.Second
	for n, want := range map[int]time.Duration{1: lo, 2: 2 * lo, 3: 4 * lo, 8: hi, 100: hi} {
		for range 50 {
			d := backoff(lo, hi, n)
			if d < want/2 || d > want {
				t.Fatalf("backoff(%d) = %v, want in [%v, %v]", n, d, want/2, want)
			}
		}
	}
}

func TestRetryAfter(t *testing.T) {
	now := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for v, want := range map[string]time.Duration{
		"":                              0,
		"2":                             2 * time.Second,
		"2.128":                         2128 * time.Millisecond,
		"-1":                            0,
		"NaN":                           0,
		"junk":                          0,
		"1e12":                          24 * time.Hour,
		"Wed, 01 Jan 2025 00:00:05 GMT": 5 * time.Second,
		"Tue, 31 Dec 2024 00:00:05 GMT": 0,
	} {
		if got := retryAfter(v, now); got != want {
			t.Errorf("retryAfter(%q) = %v, want %v", v, got, want)
		}
	}
}

func TestSubjectToken(t *testing.T) {
	if got := subjectToken("491f0b00-ffff-4a2b-9c0d-1234567890ab"); got != "491f0b00-ffff-4a2b-9c0d-1234567890ab" {
		t.Errorf("GUID call id became %q", got)
	}
	for _, id := range []string{"a.b", "a*b", "a>b", "a b", "ü"} {
		if got := subjectToken(id); !validToken(got[:3]) || got == id {
			t.Errorf("subjectToken(%q) = %q", id, got)
		}
	}
}

// closedPortURL returns a loopback URL nothing listens on.
func closedPortURL(t *testing.T) string {
	_, url := reservePort(t)
	return url
}

// reservePort finds a free loopback port and releases it, for a webhook
// that is down now and started later with serveOn.
func reservePort(t *testing.T) (addr, url string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr = l.Addr().String()
	l.Close()
	return addr, "http://" + addr + "/callback"
}

// serveOn starts an httptest server on addr.
func serveOn(t *testing.T, addr string, h http.Handler) *httptest.Server {
	t.Helper()
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listen again on %s: %v", addr, err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	return srv
}
