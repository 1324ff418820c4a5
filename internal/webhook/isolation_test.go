package webhook

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestDeadWebhookDoesNotStallOthers gives an outbox one worker and 20
// notifications for a webhook that is dead, then one for another app's
// healthy webhook: that one must arrive at once, long before the dead ones
// stop being retried (MaxAge 10 minutes). The consumer's ack-pending window
// (16 messages for one worker) and the worker must not be held by
// notifications that are waiting for a retry.
func TestDeadWebhookDoesNotStallOthers(t *testing.T) {
	const bound = 3 * time.Second
	for _, tc := range []struct {
		name        string
		calls, each int
		dead        func(t *testing.T) string
	}{
		// Connection refused: every attempt fails at once, so the dead
		// calls retry quickly and all the time.
		{name: "refused", calls: 20, each: 1, dead: closedPortURL},
		// A webhook that accepts the connection and never answers: every
		// attempt holds the worker for the whole POST timeout.
		{name: "hanging", calls: 4, each: 5, dead: hangingURL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan body, 1)
			healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got <- readBody(t, r)
				w.WriteHeader(http.StatusAccepted)
			}))
			defer healthy.Close()
			dead := tc.dead(t)

			o := fastOptions()
			o.Workers = 1
			o.MaxAge = 10 * time.Minute
			o.Timeout = 500 * time.Millisecond
			h, _ := newStoreHarness(t, &tokens{}, o)
			for i := range tc.each {
				for c := range tc.calls {
					n := note(dead, fmt.Sprintf("dead-%02d", c), i)
					n.AppID = "deadbot"
					h.enqueue(t, n)
				}
			}
			n := note(healthy.URL, "alive", 0)
			n.AppID = "livebot"
			h.enqueue(t, n)
			start := time.Now()

			timeout := time.NewTimer(bound)
			defer timeout.Stop()
			for {
				select {
				case r := <-h.results:
					if r.CallID != "alive" {
						t.Fatalf("result %+v: a dead webhook's notification finished within seconds of a 10 minute max age", r)
					}
					if !r.Delivered {
						t.Fatalf("result %+v, want delivered", r)
					}
					if b := <-got; b.Call != "alive" || b.Seq != 0 {
						t.Fatalf("healthy webhook got %+v", b)
					}
					t.Logf("healthy notification delivered %v after enqueue, behind %d for a dead webhook", time.Since(start), tc.calls*tc.each)
					return
				case <-timeout.C:
					t.Fatalf("healthy notification not delivered within %v: %d notifications retrying against a dead webhook stall the outbox (1 worker, ack-pending window %d)",
						bound, tc.calls*tc.each, o.Workers*pendingPerWorker)
				}
			}
		})
	}
}

// hangingURL returns the URL of a loopback webhook that accepts every
// POST and never answers it; requests end when the client gives up.
func hangingURL(t *testing.T) string {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) }) // before Close, which waits for handlers
	return srv.URL
}

// orderedServer records the notifications it accepts and fails any that
// arrives out of order for its call or twice.
type orderedServer struct {
	t    *testing.T
	mu   sync.Mutex
	next map[string]int
}

func newOrderedServer(t *testing.T) *orderedServer {
	return &orderedServer{t: t, next: map[string]int{}}
}

// accept records b; it reports false if b is out of order.
func (s *orderedServer) accept(b body) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if b.Seq != s.next[b.Call] {
		s.t.Errorf("call %s: got notification %d, want %d", b.Call, b.Seq, s.next[b.Call])
		return false
	}
	s.next[b.Call] = b.Seq + 1
	return true
}

func (s *orderedServer) check(calls, each int, name func(int) string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range calls {
		if got := s.next[name(c)]; got != each {
			s.t.Errorf("%s: %d delivered, want %d", name(c), got, each)
		}
	}
}

// TestParkedCallKeepsOrder fails a call's first notification a few times,
// so the call is parked, and enqueues the rest while it is: every one is
// delivered once, in order, and nothing stays parked or held.
func TestParkedCallKeepsOrder(t *testing.T) {
	const each = 10
	rec := newOrderedServer(t)
	var (
		posts         atomic.Int32
		firstFailed   = make(chan struct{})
		parkedAtRetry atomic.Int64
		h             *harness
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b := readBody(t, r)
		switch posts.Add(1) {
		case 1:
			w.WriteHeader(http.StatusServiceUnavailable)
			close(firstFailed)
			return
		case 2:
			// A retry comes only once the call is parked.
			parkedAtRetry.Store(int64(testutil.ToFloat64(h.ob.met.parked)))
			w.WriteHeader(http.StatusBadGateway)
			return
		}
		rec.accept(b)
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()

	h, _ = newStoreHarness(t, &tokens{}, fastOptions())
	h.enqueue(t, note(srv.URL, "c", 0))
	<-firstFailed
	for i := 1; i < each; i++ {
		h.enqueue(t, note(srv.URL, "c", i))
	}
	for _, r := range h.wait(t, each) {
		if !r.Delivered {
			t.Errorf("result %+v, want delivered", r)
		}
	}
	rec.check(1, each, func(int) string { return "c" })
	if n := parkedAtRetry.Load(); n < 1 {
		t.Errorf("%d notifications parked at the first retry, want the call parked", n)
	}
	if p, q := testutil.ToFloat64(h.ob.met.parked), testutil.ToFloat64(h.ob.met.pending); p != 0 || q != 0 {
		t.Errorf("after delivery: parked %v, pending %v, want 0 and 0", p, q)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	backlogDrains(t, ctx, h.ob)
}

// TestDeadHostComesBack enqueues for calls whose webhook host is down until
// the outbox has tried it: once it is up, everything arrives, in order.
func TestDeadHostComesBack(t *testing.T) {
	const calls, each = 10, 3
	addr, url := reservePort(t)
	ts := &tokens{called: make(chan struct{}, 1)}
	h, _ := newStoreHarness(t, ts, fastOptions())
	name := func(c int) string { return fmt.Sprintf("call-%d", c) }
	for i := range each {
		for c := range calls {
			h.enqueue(t, note(url, name(c), i))
		}
	}
	<-ts.called // a delivery attempt is under way (and failing)
	rec := newOrderedServer(t)
	srv := serveOn(t, addr, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec.accept(readBody(t, r))
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	for _, r := range h.wait(t, calls*each) {
		if !r.Delivered {
			t.Errorf("result %+v, want delivered", r)
		}
	}
	rec.check(calls, each, name)
}

// TestParkedCopyBeforeCrash leaves the state a crash leaves between parking
// a message and acknowledging its original: both are stored. The restarted
// outbox delivers it once, then the call's later messages, in order.
func TestParkedCopyBeforeCrash(t *testing.T) {
	rec := newOrderedServer(t)
	var posts atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		posts.Add(1)
		rec.accept(readBody(t, r))
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()

	st := openStore(t, t.TempDir())
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	o := fastOptions()
	ob, err := Open(ctx, st, &tokens{}, o)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if err := ob.Enqueue(ctx, note(srv.URL, "c", i)); err != nil {
			t.Fatal(err)
		}
	}
	// Park a copy of the first, as parkCall would have before the crash.
	main, err := st.JetStream().Stream(ctx, StreamName)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := main.GetMsg(ctx, 0, jetstream.WithGetMsgSubject(ob.subject+"c"))
	if err != nil {
		t.Fatal(err)
	}
	it, err := parseItem(raw.Header, raw.Data, raw.Sequence, ob.log)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.JetStream().PublishMsg(ctx, parkedMsg(ob.parkPrefix+"c", it)); err != nil {
		t.Fatal(err)
	}

	h := start(t, st, &tokens{}, o) // reopens: the state a restart finds
	for _, r := range h.wait(t, 3) {
		if !r.Delivered {
			t.Errorf("result %+v, want delivered", r)
		}
	}
	rec.check(1, 3, func(int) string { return "c" })
	backlogDrains(t, ctx, h.ob)
	if n := posts.Load(); n != 3 {
		t.Errorf("%d POSTs, want 3: the parked copy and its original are one notification", n)
	}
}

// TestHostTakesAtMostItsShareOfWorkers hangs a webhook host: it may hold
// three of four workers, and the fourth delivers to another host at once.
func TestHostTakesAtMostItsShareOfWorkers(t *testing.T) {
	var (
		cur, most atomic.Int32
		arrived   = make(chan struct{}, 16)
		release   = make(chan struct{})
	)
	hanging := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		for n, m := cur.Add(1), most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
		}
		arrived <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		cur.Add(-1)
	}))
	defer hanging.Close()
	defer close(release)
	got := make(chan struct{}, 1)
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- struct{}{}
		w.WriteHeader(http.StatusAccepted)
	}))
	defer healthy.Close()

	o := fastOptions()
	o.Workers = 4
	o.Timeout = time.Minute // only the bound frees a worker
	h, _ := newStoreHarness(t, &tokens{}, o)
	for c := range 6 {
		h.enqueue(t, note(hanging.URL, fmt.Sprintf("slow-%d", c), 0))
	}
	for range 3 {
		<-arrived
	}
	h.enqueue(t, note(healthy.URL, "alive", 0))
	select {
	case <-got:
	case <-time.After(3 * time.Second):
		t.Fatal("healthy webhook got nothing while another host holds POSTs")
	}
	if r := h.wait(t, 1)[0]; r.CallID != "alive" || !r.Delivered {
		t.Fatalf("result %+v, want alive delivered", r)
	}
	if m := most.Load(); m != 3 {
		t.Errorf("%d concurrent POSTs to one host, want 3 of 4 workers", m)
	}
}

// TestWaitersExpireBehindRetryAfter has a host ask for an hour's pause:
// the calls waiting for it are dropped at their max age, not an hour later.
func TestWaitersExpireBehindRetryAfter(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3600")
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	o := fastOptions()
	o.Workers = 1
	o.MaxAge = 500 * time.Millisecond
	h, _ := newStoreHarness(t, &tokens{}, o)
	for c := range 3 {
		h.enqueue(t, note(srv.URL, fmt.Sprintf("c%d", c), 0))
	}
	for _, r := range h.wait(t, 3) {
		if r.Delivered || !errors.Is(r.Err, ErrExpired) {
			t.Errorf("result %+v, want dropped as expired", r)
		}
		if age := r.Finished.Sub(r.Enqueued); age > 3*time.Second {
			t.Errorf("result %+v: dropped after %v, want about MaxAge", r, age)
		}
	}
}

// backlogDrains waits, boundedly, for the outbox's backlog to be empty:
// its acknowledgements are asynchronous, so the consumer's info may count
// one as pending for a moment after its result.
func backlogDrains(t *testing.T, ctx context.Context, ob *Outbox) {
	t.Helper()
	var (
		n   int
		err error
	)
	eventually(t, "an empty backlog", func() bool {
		n, err = ob.Backlog(ctx)
		if err != nil || n != 0 {
			t.Logf("Backlog = %d, %v; want 0", n, err)
			return false
		}
		return true
	})
}
