// Package prompt fetches, decodes and caches the audio that playPrompt and
// recordResponse play
// (https://learn.microsoft.com/graph/api/resources/mediainfo). A prompt is a
// WAV file at an http(s) URI named by a mediaInfo; Switchboard downloads it
// through the outbound allow-list, decodes and resamples it to 8 kHz once,
// pre-encodes it for every G.711 codec (media.Audio) and shares the result
// among all calls that play it, keyed by the mediaInfo's resourceId (or its
// URI when it has none), as docs/decisions.md#media-sharing asks.
//
// Failures are classified with errs and wrap one of the Err* reasons of
// this package; ResultFor turns them into the resultInfo of the failed
// operation.
package prompt

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/switchboard-voice/switchboard/internal/egress"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Limits of one prompt download.
const (
	// MaxBytes is the largest prompt file fetched: ten minutes of 16 kHz
	// 16-bit mono, the format Graph asks for, is 19.2 MB.
	MaxBytes = 20 << 20
	// FetchTimeout bounds a download from the first byte sent to the last
	// byte received. The client given to NewCache may set a shorter one.
	FetchTimeout = 10 * time.Second
)

// Cache fetches prompts and keeps the decoded audio, least recently used
// evicted first once the audio it holds exceeds its byte budget. Concurrent
// Gets of one key share a single download. Failures are not cached: the
// next Get tries again.
//
// A Cache is safe for concurrent use. It owns the goroutines of its
// downloads; its owner calls Close.
type Cache struct {
	client   *http.Client
	maxBytes int64
	timeout  time.Duration // the effective download timeout, for messages
	log      *slog.Logger

	ctx    context.Context // parent of every download; cancelled by Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // running downloads

	// testHookWait, when set, is called by Get once it holds an entry and
	// is about to wait for it.
	testHookWait func()

	mu      sync.Mutex
	entries map[string]*entry // cached and in-flight prompts by key
	lru     list.List         // of *entry holding audio, most recently used first
	size    int64             // sum of Audio.Size() over lru
	closed  bool
}

// entry is one prompt, downloading until done is closed; audio and err are
// set before that and never change after.
type entry struct {
	key      string
	uri      string
	done     chan struct{}
	audio    *media.Audio
	err      error
	elem     *list.Element // in Cache.lru; nil while downloading or when not kept
	prefetch bool          // log a failure: a Prefetch may be its only caller
}

// NewCache returns a cache that downloads with client and keeps up to
// maxBytes of decoded audio (maxBytes <= 0 keeps nothing, so every Get
// downloads, though concurrent Gets still share one download). client
// should come from egress.Policy.Client so that prompt fetches obey the
// outbound allow-list; nil means an unrestricted client with FetchTimeout.
func NewCache(client *http.Client, maxBytes int64, log *slog.Logger) *Cache {
	if client == nil {
		client = &http.Client{Timeout: FetchTimeout}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := FetchTimeout
	if client.Timeout > 0 && client.Timeout < timeout {
		timeout = client.Timeout
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Cache{
		client:   client,
		maxBytes: maxBytes,
		timeout:  timeout,
		log:      log,
		ctx:      ctx,
		cancel:   cancel,
		entries:  map[string]*entry{},
	}
}

// Get returns the audio of m, downloading and decoding it unless it is
// cached under m's key: its resourceId, or its URI when it has none. A
// mediaInfo with only a resourceId is served from the cache. The download
// runs on its own, bounded by FetchTimeout: a Get whose ctx ends returns
// ctx's error, while the download goes on for the other callers and the
// cache.
func (c *Cache) Get(ctx context.Context, m graph.MediaInfo) (*media.Audio, error) {
	e, err := c.acquire(m, false)
	if err != nil {
		return nil, err
	}
	if c.testHookWait != nil {
		c.testHookWait()
	}
	select {
	case <-e.done:
		return e.audio, e.err
	case <-ctx.Done():
		return nil, fmt.Errorf("fetch prompt %s: %w", e.uri, ctx.Err())
	}
}

// Cached returns the audio of m if it is in the cache (under m's key, as
// Get finds it) and decoded, without starting a download or waiting: call control plays cached prompts without
// a goroutine of its own.
func (c *Cache) Cached(m graph.MediaInfo) (*media.Audio, bool) {
	key := m.ResourceID
	if key == "" {
		key = m.URI
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[key]
	if c.closed || e == nil {
		return nil, false
	}
	select {
	case <-e.done:
	default:
		return nil, false
	}
	if e.err != nil {
		return nil, false
	}
	if e.elem != nil {
		c.lru.MoveToFront(e.elem)
	}
	return e.audio, true
}

// Prefetch starts downloading every prompt of ms that is neither cached nor
// downloading (preFetchMedia of
// https://learn.microsoft.com/graph/api/resources/servicehostedmediaconfig)
// and returns without waiting. Failures are logged; a later Get of the same
// prompt tries again and returns the error to its caller.
func (c *Cache) Prefetch(ctx context.Context, ms []graph.MediaInfo) {
	for _, m := range ms {
		if ctx.Err() != nil {
			return
		}
		if _, err := c.acquire(m, true); err != nil {
			c.log.Warn("prefetch prompt", "uri", m.URI, "resourceId", m.ResourceID, "err", err)
		}
	}
}

// Close cancels the downloads under way, waits for their goroutines and
// makes every later Get fail. It is idempotent.
func (c *Cache) Close() {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
}

// acquire returns the entry for m, starting its download if there is none.
func (c *Cache) acquire(m graph.MediaInfo, prefetch bool) (*entry, error) {
	key := m.ResourceID
	if key == "" {
		key = m.URI
	}
	if key == "" {
		return nil, errs.Wrap(errs.BadRequest, ErrInvalidURI, "prompt mediaInfo has no uri")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, errs.E(errs.Unavailable, "prompt %s not fetched: Switchboard is shutting down", m.URI)
	}
	if e := c.entries[key]; e != nil {
		if e.elem != nil {
			c.lru.MoveToFront(e.elem)
		}
		e.prefetch = e.prefetch || prefetch
		return e, nil
	}
	if m.URI == "" {
		return nil, errs.Wrap(errs.BadRequest, ErrInvalidURI,
			"prompt mediaInfo with resourceId %q has no uri, and no prompt with that resourceId is cached", m.ResourceID)
	}
	if err := checkURI(m.URI); err != nil {
		return nil, err
	}
	e := &entry{key: key, uri: m.URI, done: make(chan struct{}), prefetch: prefetch}
	c.entries[key] = e
	c.wg.Add(1)
	go c.fetch(e)
	return e, nil
}

// checkURI accepts absolute http and https URIs only: a bot must not make
// Switchboard read its own files (file:) or speak other protocols.
func checkURI(uri string) error {
	u, err := url.Parse(uri)
	if err != nil {
		return errs.Wrap(errs.BadRequest, fmt.Errorf("%w: %w", ErrInvalidURI, err), "prompt uri %q is not a valid URI", uri)
	}
	if s := strings.ToLower(u.Scheme); s != "http" && s != "https" {
		if s == "" {
			return errs.Wrap(errs.BadRequest, ErrInvalidURI, "prompt uri %q is not absolute; use an http or https URI", uri)
		}
		return errs.Wrap(errs.BadRequest, ErrInvalidURI, "prompt uri %q uses the %s: scheme; only http and https URIs can be played", uri, s)
	}
	if u.Host == "" {
		return errs.Wrap(errs.BadRequest, ErrInvalidURI, "prompt uri %q has no host", uri)
	}
	return nil
}

// fetch downloads e and publishes the result. It runs in its own goroutine,
// counted in c.wg.
func (c *Cache) fetch(e *entry) {
	defer c.wg.Done()
	start := time.Now()
	ctx, cancel := context.WithTimeout(c.ctx, FetchTimeout)
	audio, err := c.download(ctx, e.uri)
	cancel()

	c.mu.Lock()
	e.audio, e.err = audio, err
	kept := false
	if err != nil {
		delete(c.entries, e.key)
	} else {
		kept = c.keep(e)
	}
	prefetch := e.prefetch
	c.mu.Unlock()
	// Log before waking the waiters: one that returns finds the log written.
	defer close(e.done)

	switch {
	case err != nil && prefetch:
		c.log.Warn("prefetch prompt failed", "uri", e.uri, "key", e.key, "err", err)
	case err != nil:
		c.log.Debug("prompt fetch failed", "uri", e.uri, "key", e.key, "err", err)
	case !kept:
		c.log.Warn("prompt too large to cache", "uri", e.uri, "key", e.key,
			"bytes", audio.Size(), "cacheBytes", c.maxBytes)
	default:
		c.log.Debug("prompt fetched", "uri", e.uri, "key", e.key, "duration", audio.Duration(),
			"bytes", audio.Size(), "took", time.Since(start))
	}
}

// keep adds a downloaded entry to the LRU list, evicting the least recently
// used until the budget holds; an entry larger than the whole budget is not
// kept. It reports whether e was kept. c.mu must be held.
func (c *Cache) keep(e *entry) bool {
	size := e.audio.Size()
	if size > c.maxBytes {
		delete(c.entries, e.key)
		return false
	}
	e.elem = c.lru.PushFront(e)
	c.size += size
	for c.size > c.maxBytes {
		old := c.lru.Back().Value.(*entry)
		c.lru.Remove(old.elem)
		old.elem = nil
		delete(c.entries, old.key)
		c.size -= old.audio.Size()
	}
	return true
}

// Len returns the number of prompts cached and their size in bytes.
func (c *Cache) Len() (n int, bytes int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.lru.Len(), c.size
}

// download fetches uri and decodes it.
func (c *Cache) download(ctx context.Context, uri string) (*media.Audio, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, uri, nil)
	if err != nil {
		return nil, errs.Wrap(errs.BadRequest, fmt.Errorf("%w: %w", ErrInvalidURI, err), "prompt uri %q is not a valid URI", uri)
	}
	req.Header.Set("Accept", "audio/wav, audio/x-wav, audio/wave, application/octet-stream;q=0.9, */*;q=0.1")
	resp, err := c.client.Do(req)
	if err != nil {
		return nil, c.transportErr(uri, req.URL.Host, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		// Drain a little so that the connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4<<10))
		k := errs.BadRequest
		if resp.StatusCode >= 500 {
			k = errs.Unavailable
		}
		return nil, errs.Wrap(k, ErrStatus, "prompt %s: the server answered %q; it must answer 200 OK with the WAV file",
			uri, resp.Status)
	}
	if resp.ContentLength > MaxBytes {
		return nil, errs.Wrap(errs.TooLarge, ErrTooLarge, "prompt %s is %.1f MB; prompts are limited to %d MB",
			uri, float64(resp.ContentLength)/(1<<20), MaxBytes>>20)
	}
	pcm, err := DecodeWAV(&limitReader{r: resp.Body, n: MaxBytes})
	if err != nil {
		var e *errs.Error
		switch {
		case errors.Is(err, errBodyTooLarge):
			return nil, errs.Wrap(errs.TooLarge, fmt.Errorf("%w: %w", ErrTooLarge, err),
				"prompt %s is larger than %d MB, the limit for a prompt", uri, MaxBytes>>20)
		case errors.As(err, &e):
			return nil, errs.Wrap(e.Kind, err, "prompt %s: %s", uri, e.Msg)
		}
		return nil, c.transportErr(uri, req.URL.Host, err)
	}
	return media.NewAudio(pcm), nil
}

// transportErr classifies a failure to connect to or read from host.
func (c *Cache) transportErr(uri, host string, err error) error {
	unreachable := func(format string, args ...any) error {
		return errs.Wrap(errs.Unavailable, fmt.Errorf("%w: %w", ErrUnreachable, err), format, args...)
	}
	var dnsErr *net.DNSError
	var netErr net.Error
	switch {
	case errors.Is(err, egress.ErrDenied):
		return errs.Wrap(errs.Forbidden, fmt.Errorf("%w: %w", ErrForbidden, err),
			"prompt %s: %s; the Switchboard operator must allow the prompt's host to play it", uri, errs.Message(err))
	case c.ctx.Err() != nil:
		return errs.Wrap(errs.Unavailable, err, "prompt %s not fetched: Switchboard is shutting down", uri)
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &netErr) && netErr.Timeout():
		return unreachable("prompt %s: the server did not send the file within %s", uri, c.timeout)
	case errors.As(err, &dnsErr):
		return unreachable("prompt %s: the host name %q could not be resolved", uri, dnsErr.Name)
	case errors.Is(err, syscall.ECONNREFUSED):
		return unreachable("prompt %s: connection refused by %s", uri, host)
	case errors.Is(err, syscall.ECONNRESET) || errors.Is(err, io.ErrUnexpectedEOF):
		return unreachable("prompt %s: the connection to %s was lost during the download", uri, host)
	}
	cause := err
	var ue *url.Error
	if errors.As(err, &ue) {
		cause = ue.Err
	}
	return unreachable("prompt %s could not be downloaded: %v", uri, cause)
}

// errBodyTooLarge is what limitReader returns past its limit.
var errBodyTooLarge = errors.New("body exceeds the limit")

// limitReader is io.LimitReader that fails, rather than ending quietly,
// when there is more than n bytes: a truncated prompt must not play.
type limitReader struct {
	r io.Reader
	n int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.n <= 0 {
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			return 0, errBodyTooLarge
		}
		return 0, err
	}
	if int64(len(p)) > l.n {
		p = p[:l.n]
	}
	n, err := l.r.Read(p)
	l.n -= int64(n)
	return n, err
}
