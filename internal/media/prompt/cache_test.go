package prompt

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/egress"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// promptServer serves WAV prompts on loopback and counts requests per path.
type promptServer struct {
	*httptest.Server
	mu    sync.Mutex
	files map[string][]byte
	hits  map[string]int
	total atomic.Int64
	gate  chan struct{} // when non-nil, requests wait for it to close
}

func newPromptServer(t *testing.T) *promptServer {
	t.Helper()
	ps := &promptServer{files: map[string][]byte{}, hits: map[string]int{}}
	ps.Server = httptest.NewServer(http.HandlerFunc(ps.serve))
	t.Cleanup(ps.Close)
	return ps
}

func (ps *promptServer) serve(w http.ResponseWriter, r *http.Request) {
	ps.total.Add(1)
	ps.mu.Lock()
	ps.hits[r.URL.Path]++
	b, ok := ps.files[r.URL.Path]
	gate := ps.gate
	ps.mu.Unlock()
	if gate != nil {
		select {
		case <-gate:
		case <-r.Context().Done():
			return
		}
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "audio/wav")
	_, _ = w.Write(b)
}

func (ps *promptServer) put(path string, b []byte) string {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.files[path] = b
	return ps.URL + path
}

func (ps *promptServer) setGate(gate chan struct{}) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	ps.gate = gate
}

func (ps *promptServer) hitsOf(path string) int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.hits[path]
}

// openPolicy is an egress client for loopback, as the server would build
// from outbound.allow.
func loopbackClient(t *testing.T, timeout time.Duration) *http.Client {
	t.Helper()
	p, err := egress.NewPolicy([]string{"127.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	c := p.Client(timeout)
	t.Cleanup(c.CloseIdleConnections)
	return c
}

func newCache(t *testing.T, client *http.Client, maxBytes int64, log *slog.Logger) *Cache {
	t.Helper()
	c := NewCache(client, maxBytes, log)
	t.Cleanup(c.Close)
	return c
}

// toneWAV is a second of freq Hz at 16 kHz, the format Graph asks for.
func toneWAV(freq float64) []byte { return pcm16WAV(toInt16(tone(freq, 0.5, 16000, 1)), 16000) }

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestGetDecodesAndCachesByResourceID(t *testing.T) {
	ps := newPromptServer(t)
	u1 := ps.put("/a.wav", toneWAV(1000))
	u2 := ps.put("/b.wav", toneWAV(2000))
	c := newCache(t, loopbackClient(t, 0), 64<<20, nil)
	ctx := ctxT(t)

	a, err := c.Get(ctx, graph.MediaInfo{URI: u1, ResourceID: "welcome"})
	if err != nil {
		t.Fatal(err)
	}
	checkTone(t, a.PCM(), 1000, 0.5)
	if a.Duration() != time.Second {
		t.Errorf("duration %v, want 1s", a.Duration())
	}
	// The same resourceId is the same prompt, whatever the URI says, and
	// a mediaInfo with only the resourceId finds it.
	for _, m := range []graph.MediaInfo{{URI: u2, ResourceID: "welcome"}, {ResourceID: "welcome"}, {URI: u1, ResourceID: "welcome"}} {
		b, err := c.Get(ctx, m)
		if err != nil || b != a {
			t.Fatalf("Get(%+v) = %p, %v; want the cached %p", m, b, err, a)
		}
	}
	if n := ps.total.Load(); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
	// Without a resourceId the URI is the key.
	b1, err := c.Get(ctx, graph.MediaInfo{URI: u2})
	if err != nil {
		t.Fatal(err)
	}
	checkTone(t, b1.PCM(), 2000, 0.5)
	b2, err := c.Get(ctx, graph.MediaInfo{URI: u2})
	if err != nil || b2 != b1 {
		t.Fatalf("second Get by uri: %p %v", b2, err)
	}
	if n := ps.hitsOf("/b.wav"); n != 1 {
		t.Fatalf("/b.wav fetched %d times, want 1", n)
	}
	if _, err := c.Get(ctx, graph.MediaInfo{ResourceID: "unknown"}); !errors.Is(err, ErrInvalidURI) {
		t.Fatalf("resourceId only, not cached: %v, want ErrInvalidURI", err)
	}
}

func TestConcurrentGetsFetchOnce(t *testing.T) {
	ps := newPromptServer(t)
	u := ps.put("/a.wav", toneWAV(1000))
	gate := make(chan struct{})
	ps.setGate(gate)
	// Nothing is kept (maxBytes 0), so only sharing the one download can
	// keep the count at one.
	c := newCache(t, loopbackClient(t, 0), 0, nil)
	const n = 10
	var waiting sync.WaitGroup
	waiting.Add(n)
	c.testHookWait = waiting.Done

	ctx := ctxT(t)
	results := make([]any, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			a, err := c.Get(ctx, graph.MediaInfo{URI: u, ResourceID: "r"})
			if err != nil {
				results[i] = err
				return
			}
			results[i] = a
		})
	}
	waiting.Wait() // all ten hold the entry
	close(gate)
	wg.Wait()
	for i, r := range results {
		if r != results[0] {
			t.Fatalf("Get %d returned %v, Get 0 %v", i, r, results[0])
		}
	}
	if got := ps.total.Load(); got != 1 {
		t.Fatalf("%d requests, want 1", got)
	}
	if n, _ := c.Len(); n != 0 {
		t.Fatalf("%d prompts cached with maxBytes 0", n)
	}
}

func TestLRUEviction(t *testing.T) {
	ps := newPromptServer(t)
	urls := map[string]string{}
	for _, name := range []string{"a", "b", "c"} {
		urls[name] = ps.put("/"+name+".wav", toneWAV(1000))
	}
	// Each prompt is a second: 8000 samples of PCM plus two G.711
	// encodings, 32000 bytes. The budget holds two.
	c := newCache(t, loopbackClient(t, 0), 70000, nil)
	ctx := ctxT(t)
	get := func(name string) {
		t.Helper()
		if _, err := c.Get(ctx, graph.MediaInfo{URI: urls[name]}); err != nil {
			t.Fatal(err)
		}
	}
	get("a")
	get("b")
	get("a") // a is now more recent than b
	get("c") // evicts b
	if n, size := c.Len(); n != 2 || size != 64000 {
		t.Fatalf("cache holds %d prompts, %d bytes; want 2, 64000", n, size)
	}
	get("a")
	get("c")
	if ps.hitsOf("/a.wav") != 1 || ps.hitsOf("/c.wav") != 1 {
		t.Fatalf("a fetched %d times, c %d; want once each", ps.hitsOf("/a.wav"), ps.hitsOf("/c.wav"))
	}
	get("b")
	if n := ps.hitsOf("/b.wav"); n != 2 {
		t.Fatalf("b fetched %d times, want 2 (it was evicted)", n)
	}
}

// closedPort returns a loopback address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// checkErr asserts err's reason, kind, resultInfo and that its message
// mentions each of want.
func checkErr(t *testing.T, err error, reason error, kind errs.Kind, code, subcode int, want ...string) {
	t.Helper()
	if !errors.Is(err, reason) || errs.KindOf(err) != kind {
		t.Fatalf("err %v (kind %v), want %v of kind %v", err, errs.KindOf(err), reason, kind)
	}
	msg := errs.Message(err)
	for _, w := range want {
		if !strings.Contains(msg, w) {
			t.Errorf("message %q does not mention %q", msg, w)
		}
	}
	res := ResultFor(err)
	gotCode, gotSub, resMsg := res.Code, res.Subcode, res.Message
	if gotCode != code || gotSub != subcode || !strings.Contains(resMsg, msg) {
		t.Errorf("ResultFor = %d/%d %q, want %d/%d with the message", gotCode, gotSub, resMsg, code, subcode)
	}
	t.Logf("%d/%d %s", gotCode, gotSub, resMsg)
}

func TestGetErrors(t *testing.T) {
	ps := newPromptServer(t)
	ps.put("/song.mp3", []byte("ID3\x03\x00\x00\x00\x00\x0f\x76\xff\xfb\x90\x64"))
	ps.put("/page.wav", []byte("<!doctype html><title>Login</title>"))
	c := newCache(t, loopbackClient(t, 0), 64<<20, nil)
	ctx := ctxT(t)

	t.Run("unreachable", func(t *testing.T) {
		u := "http://" + closedPort(t) + "/a.wav"
		_, err := c.Get(ctx, graph.MediaInfo{URI: u})
		checkErr(t, err, ErrUnreachable, errs.Unavailable, 400, 8520, u, "connection refused")
	})
	t.Run("status", func(t *testing.T) {
		u := ps.URL + "/missing.wav"
		_, err := c.Get(ctx, graph.MediaInfo{URI: u})
		checkErr(t, err, ErrStatus, errs.BadRequest, 400, 8521, u, "404 Not Found")
	})
	t.Run("mp3", func(t *testing.T) {
		_, err := c.Get(ctx, graph.MediaInfo{URI: ps.URL + "/song.mp3"})
		checkErr(t, err, ErrFormat, errs.UnsupportedMedia, 400, 8522, ps.URL+"/song.mp3", "MP3 data")
	})
	t.Run("html", func(t *testing.T) {
		_, err := c.Get(ctx, graph.MediaInfo{URI: ps.URL + "/page.wav"})
		checkErr(t, err, ErrFormat, errs.UnsupportedMedia, 400, 8522, "an HTML page")
	})
	for _, u := range []string{"file:///etc/passwd", "ftp://127.0.0.1/a.wav", "/relative.wav", "http:///nohost.wav", "http://[::1"} {
		t.Run("uri "+u, func(t *testing.T) {
			_, err := c.Get(ctx, graph.MediaInfo{URI: u})
			checkErr(t, err, ErrInvalidURI, errs.BadRequest, 400, 8525, u)
		})
	}
	if n := ps.total.Load(); n != 3 {
		t.Errorf("%d requests, want 3", n)
	}
	// Failures are not cached.
	ps.put("/missing.wav", toneWAV(1000))
	if _, err := c.Get(ctx, graph.MediaInfo{URI: ps.URL + "/missing.wav"}); err != nil {
		t.Fatalf("after the file appeared: %v", err)
	}
}

func TestGetForbiddenByEgress(t *testing.T) {
	ps := newPromptServer(t)
	u := ps.put("/a.wav", toneWAV(1000))
	p, err := egress.NewPolicy([]string{"10.0.0.0/8"})
	if err != nil {
		t.Fatal(err)
	}
	client := p.Client(0)
	t.Cleanup(client.CloseIdleConnections)
	c := newCache(t, client, 64<<20, nil)
	_, err = c.Get(ctxT(t), graph.MediaInfo{URI: u})
	checkErr(t, err, ErrForbidden, errs.Forbidden, 403, 8524, u, "127.0.0.1", "outbound.allow")
	if !errors.Is(err, egress.ErrDenied) {
		t.Errorf("err %v does not wrap egress.ErrDenied", err)
	}
	if n := ps.total.Load(); n != 0 {
		t.Fatalf("the server saw %d requests", n)
	}
}

func TestGetTimeout(t *testing.T) {
	ps := newPromptServer(t)
	u := ps.put("/slow.wav", toneWAV(1000))
	gate := make(chan struct{})
	ps.setGate(gate)
	t.Cleanup(func() { close(gate) }) // runs before the server's Close
	c := newCache(t, loopbackClient(t, 100*time.Millisecond), 64<<20, nil)
	_, err := c.Get(ctxT(t), graph.MediaInfo{URI: u})
	checkErr(t, err, ErrUnreachable, errs.Unavailable, 400, 8520, u, "within 100ms")
}

func TestGetTooLarge(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/declared.wav":
			// Announce 21 MB; the client must not read it.
			w.Header().Set("Content-Length", strconv.Itoa(21<<20))
			w.WriteHeader(http.StatusOK)
		case "/streamed.wav":
			// A streamed 48 kHz stereo WAV of unknown length: two minutes
			// of it exceed 20 MB long before ten minutes of audio.
			hdr := wavFile(fmtChunk(tagPCM, 2, 48000, 16), chunk{"data", nil})
			hdr[40], hdr[41], hdr[42], hdr[43] = 0xFF, 0xFF, 0xFF, 0xFF
			_, _ = w.Write(hdr)
			buf := make([]byte, 64<<10)
			for range (MaxBytes / len(buf)) + 2 {
				if _, err := w.Write(buf); err != nil {
					return
				}
			}
		}
	}))
	t.Cleanup(srv.Close)
	c := newCache(t, loopbackClient(t, 0), 64<<20, nil)
	ctx := ctxT(t)
	_, err := c.Get(ctx, graph.MediaInfo{URI: srv.URL + "/declared.wav"})
	checkErr(t, err, ErrTooLarge, errs.TooLarge, 400, 8523, "21.0 MB", "20 MB")
	_, err = c.Get(ctx, graph.MediaInfo{URI: srv.URL + "/streamed.wav"})
	checkErr(t, err, ErrTooLarge, errs.TooLarge, 400, 8523, "larger than 20 MB")
}

func TestGetContextCancelled(t *testing.T) {
	ps := newPromptServer(t)
	u := ps.put("/a.wav", toneWAV(1000))
	gate := make(chan struct{})
	ps.setGate(gate)
	c := newCache(t, loopbackClient(t, 0), 64<<20, nil)
	waiting := make(chan struct{}, 1)
	c.testHookWait = func() { waiting <- struct{}{} }

	ctx, cancel := context.WithCancel(ctxT(t))
	errc := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, graph.MediaInfo{URI: u})
		errc <- err
	}()
	<-waiting
	cancel()
	err := <-errc
	if r := ResultFor(err); !errors.Is(err, context.Canceled) || r.Code != 400 || r.Subcode != 8508 {
		t.Fatalf("cancelled Get: %v → %d/%d, want context.Canceled → 400/8508", err, r.Code, r.Subcode)
	}
	// The download went on for the cache.
	close(gate)
	a, err := c.Get(ctxT(t), graph.MediaInfo{URI: u})
	<-waiting
	if err != nil {
		t.Fatal(err)
	}
	checkTone(t, a.PCM(), 1000, 0.5)
	if n := ps.total.Load(); n != 1 {
		t.Fatalf("%d requests, want 1", n)
	}
}

func TestPrefetch(t *testing.T) {
	ps := newPromptServer(t)
	u := ps.put("/a.wav", toneWAV(1000))
	var logs syncBuffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	c := NewCache(loopbackClient(t, 0), 64<<20, log)
	missing := ps.URL + "/missing.wav"
	c.Prefetch(ctxT(t), []graph.MediaInfo{{URI: u, ResourceID: "a"}, {URI: missing}, {URI: "file:///x.wav"}})
	a, err := c.Get(ctxT(t), graph.MediaInfo{ResourceID: "a"})
	if err != nil {
		t.Fatal(err)
	}
	checkTone(t, a.PCM(), 1000, 0.5)
	// Joining (or repeating) the failed download returns after its log line.
	_, _ = c.Get(ctxT(t), graph.MediaInfo{URI: missing})
	c.Close()
	c.Close() // idempotent
	if n := ps.hitsOf("/a.wav"); n != 1 {
		t.Fatalf("a fetched %d times, want 1", n)
	}
	out := logs.String()
	for _, want := range []string{missing, "404 Not Found", "file:///x.wav"} {
		if !strings.Contains(out, want) {
			t.Errorf("log does not mention %q:\n%s", want, out)
		}
	}
	if _, err := c.Get(ctxT(t), graph.MediaInfo{URI: u}); errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("Get after Close: %v, want Unavailable", err)
	}
}

func TestResultForOthers(t *testing.T) {
	if r := ResultFor(nil); r.Code != 200 || r.Subcode != 0 || r.Message != "Action completed successfully." {
		t.Errorf("ResultFor(nil) = %+v", r)
	}
	if r := ResultFor(fmt.Errorf("boom")); r.Code != 500 || r.Subcode != 8526 {
		t.Errorf("ResultFor(unclassified) = %d/%d, want 500/8526", r.Code, r.Subcode)
	}
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Cached answers only for a prompt already fetched and decoded, by the key
// Get uses, and never fetches.
func TestCached(t *testing.T) {
	ps := newPromptServer(t)
	u := ps.put("/a.wav", toneWAV(1000))
	c := newCache(t, loopbackClient(t, 0), 64<<20, nil)
	m := graph.MediaInfo{URI: u, ResourceID: "welcome"}
	if _, ok := c.Cached(m); ok {
		t.Fatal("Cached before any Get")
	}
	if _, ok := c.Cached(graph.MediaInfo{URI: ps.URL + "/missing.wav"}); ok {
		t.Fatal("Cached of a missing prompt")
	}
	if n := ps.total.Load(); n != 0 {
		t.Fatalf("Cached fetched: %d requests", n)
	}
	a, err := c.Get(ctxT(t), m)
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []graph.MediaInfo{m, {ResourceID: "welcome"}} {
		if b, ok := c.Cached(k); !ok || b != a {
			t.Fatalf("Cached(%+v) = %p, %v; want the cached %p", k, b, ok, a)
		}
	}
	if _, err := c.Get(ctxT(t), graph.MediaInfo{URI: ps.URL + "/missing.wav"}); err == nil {
		t.Fatal("missing prompt fetched")
	}
	if _, ok := c.Cached(graph.MediaInfo{URI: ps.URL + "/missing.wav"}); ok {
		t.Fatal("a failed fetch is Cached")
	}
}
