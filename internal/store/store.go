// Package store is Switchboard's state store on NATS JetStream: key-value
// buckets with compare-and-set for call state and signing keys, streams for
// durable queues. By default it runs a NATS server with JetStream embedded in
// the process, its files under the data directory; given a URL it connects to
// an external cluster instead. Both take the same code path from here on.
//
// A Store is safe for concurrent use. Its owner calls Close.
package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Errors a bucket returns.
var (
	ErrNotFound = errors.New("store: key not found")
	ErrConflict = errors.New("store: revision conflict")
	ErrExists   = errors.New("store: key exists")
)

// Options configure Open.
type Options struct {
	// DataDir holds the embedded server's JetStream files.
	DataDir string
	// URL of an external NATS, several servers separated by commas; empty
	// embeds a server.
	URL string
	// Listen exposes the embedded server on host:port; empty keeps it in-process.
	Listen string
	// Replicas for buckets and streams (1 for the embedded server).
	Replicas int
	// Name identifies this node's connection.
	Name string
	// Logger receives the store's logs.
	Logger *slog.Logger
}

// Bounds on reaching an external NATS (Options.URL), so a node started
// against a cluster it cannot use stops with an error instead of waiting.
const (
	// ConnectTimeout bounds each connection attempt to one server.
	ConnectTimeout = 3 * time.Second
	// JetStreamTimeout bounds the wait for a reachable cluster's JetStream.
	JetStreamTimeout = 30 * time.Second
)

// JetStream's errors for replicas it cannot place (nats-server's
// JSClusterNoPeersErrF and JSInsufficientResourcesErr), which nats.go
// does not name.
const (
	errCodeNoPeers               jetstream.ErrorCode = 10005
	errCodeInsufficientResources jetstream.ErrorCode = 10023
)

// Store is an open connection to JetStream.
type Store struct {
	srv      *server.Server
	nc       *nats.Conn
	js       jetstream.JetStream
	replicas int
	log      *slog.Logger
}

// Open starts the embedded server (or dials the external one) and returns
// the store once JetStream is ready.
func Open(ctx context.Context, o Options) (*Store, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Replicas < 1 {
		o.Replicas = 1
	}
	s := &Store{replicas: o.Replicas, log: o.Logger}
	opts := []nats.Option{nats.Name(o.Name), nats.MaxReconnects(-1)}
	url := o.URL
	if url == "" {
		sopts := &server.Options{
			ServerName: "switchboard-" + o.Name,
			JetStream:  true,
			StoreDir:   filepath.Join(o.DataDir, "jetstream"),
			NoSigs:     true,
			NoLog:      true,
		}
		if o.Listen == "" {
			sopts.DontListen = true
		} else {
			host, port, err := net.SplitHostPort(o.Listen)
			if err != nil {
				return nil, fmt.Errorf("store: nats listen %q: %w", o.Listen, err)
			}
			sopts.Host = host
			sopts.Port, _ = strconv.Atoi(port)
		}
		srv, err := server.NewServer(sopts)
		if err != nil {
			return nil, fmt.Errorf("store: embedded nats: %w", err)
		}
		srv.Start()
		if !srv.ReadyForConnections(30 * time.Second) {
			srv.Shutdown()
			return nil, errors.New("store: embedded nats did not become ready in 30s")
		}
		s.srv = srv
		// In process the connection is a net.Pipe, whose write deadlines
		// cost a timer each: the flusher would set one per flush, and a
		// server in this process has no network to time out on.
		opts = append(opts, nats.InProcessServer(srv), nats.FlusherTimeout(0))
		url = ""
	}
	if o.URL != "" {
		// An external server or cluster (several URLs separated by commas):
		// nats.go tries each once, each for at most ConnectTimeout, so a
		// cluster nobody can reach is an error, never a fallback to an
		// embedded server; reconnecting for ever starts once connected.
		opts = append(opts, nats.Timeout(ConnectTimeout))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		s.Close()
		if o.URL != "" {
			return nil, fmt.Errorf("store: cannot reach NATS at %s (nats.url): %w", o.URL, err)
		}
		return nil, fmt.Errorf("store: connect nats: %w", err)
	}
	s.nc = nc
	js, err := jetstream.New(nc)
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("store: jetstream: %w", err)
	}
	s.js = js
	// JetStream may take a moment after a restart to recover its streams,
	// and a cluster to elect its meta leader; a server without JetStream
	// never will.
	var ready <-chan time.Time
	if o.URL != "" {
		t := time.NewTimer(JetStreamTimeout)
		defer t.Stop()
		ready = t.C
	}
	for {
		// Each attempt bounded: a cluster still electing its meta leader
		// drops the request rather than answering it.
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, err := js.AccountInfo(actx)
		cancel()
		if err == nil {
			break
		}
		if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
			s.Close()
			return nil, fmt.Errorf("store: NATS at %s has no JetStream (run nats-server with -js, and the same on every server of a cluster): %w", o.URL, err)
		}
		if ctx.Err() != nil {
			s.Close()
			return nil, fmt.Errorf("store: jetstream not ready: %w", err)
		}
		select {
		case <-ready:
			s.Close()
			return nil, fmt.Errorf("store: NATS at %s answers but its JetStream did not within %s (a cluster without a quorum of its servers?): %w", o.URL, JetStreamTimeout, err)
		default:
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
	return s, nil
}

// Conn returns the NATS connection, for request/reply between nodes.
func (s *Store) Conn() *nats.Conn { return s.nc }

// JetStream returns the JetStream handle, for streams and consumers.
func (s *Store) JetStream() jetstream.JetStream { return s.js }

// Replicas is the replica count for streams and buckets.
func (s *Store) Replicas() int { return s.replicas }

// Close drains the connection and stops the embedded server. It is idempotent.
func (s *Store) Close() {
	if s.nc != nil {
		_ = s.nc.Drain()
		for s.nc.IsDraining() {
			time.Sleep(5 * time.Millisecond)
		}
		s.nc.Close()
		s.nc = nil
	}
	if s.srv != nil {
		s.srv.Shutdown()
		s.srv.WaitForShutdown()
		s.srv = nil
	}
}

// KV is a key-value bucket with compare-and-set updates.
type KV struct {
	kv        jetstream.KeyValue
	markerTTL time.Duration
	js        jetstream.JetStream
	bucket    string
}

// MarkerTTL is how long a deleted key's marker stays in its bucket. A
// bucket keeps one message per key, its last; for a deleted key that is
// the delete marker, which without a TTL stays for ever: the call records
// of a busy node grew by 36,000 markers an hour (make soak). Markers tell
// watchers of deletions, and nobody watches these buckets for longer.
var MarkerTTL = time.Minute

// Bucket opens (creating if needed) the named bucket. ttl > 0 expires keys.
// Its delete markers expire after MarkerTTL.
//
// A cluster that has just elected its meta leader may not know all its
// servers yet, and refuses to place replicas on them ("no suitable peers
// for placement"), or drops the request while a new stream elects its
// leader; both are retried, each attempt bounded, for up to
// JetStreamTimeout.
func (s *Store) Bucket(ctx context.Context, name string, ttl time.Duration) (*KV, error) {
	deadline := time.Now().Add(JetStreamTimeout)
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		kv, err := s.js.CreateOrUpdateKeyValue(actx, jetstream.KeyValueConfig{
			Bucket: name, History: 1, TTL: ttl, Storage: jetstream.FileStorage, Replicas: s.replicas,
			LimitMarkerTTL: MarkerTTL,
		})
		cancel()
		if err == nil {
			b := &KV{kv: kv, markerTTL: MarkerTTL, js: s.js, bucket: name}
			if s.replicas > 1 {
				err = s.serving(ctx, b, deadline)
			}
			if err == nil {
				return b, nil
			}
		}
		if !s.settling(err) || time.Now().After(deadline) {
			return nil, fmt.Errorf("store: bucket %s: %w", name, err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("store: bucket %s: %w", name, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Stream creates or updates a stream, its Replicas set to the store's. On
// a replicated cluster each attempt is bounded and retried while the
// cluster is settling (see Bucket): several nodes creating one stream at
// once on a fresh cluster get no answer at all (nats-server 2.15: the
// stream is created, the requests time out), which a retry finds done.
func (s *Store) Stream(ctx context.Context, cfg jetstream.StreamConfig) (jetstream.Stream, error) {
	cfg.Replicas = s.replicas
	return retrySettling(ctx, s, func(ctx context.Context) (jetstream.Stream, error) {
		return s.js.CreateOrUpdateStream(ctx, cfg)
	})
}

// ObjectStore creates or updates an object store, its Replicas set to the
// store's, retried as Stream is.
func (s *Store) ObjectStore(ctx context.Context, cfg jetstream.ObjectStoreConfig) (jetstream.ObjectStore, error) {
	cfg.Replicas = s.replicas
	return retrySettling(ctx, s, func(ctx context.Context) (jetstream.ObjectStore, error) {
		return s.js.CreateOrUpdateObjectStore(ctx, cfg)
	})
}

func retrySettling[T any](ctx context.Context, s *Store, f func(context.Context) (T, error)) (T, error) {
	if s.replicas < 2 {
		return f(ctx)
	}
	deadline := time.Now().Add(JetStreamTimeout)
	for {
		actx, cancel := context.WithTimeout(ctx, 5*time.Second)
		v, err := f(actx)
		cancel()
		if err == nil || !s.settling(err) || time.Now().After(deadline) {
			return v, err
		}
		select {
		case <-ctx.Done():
			return v, err
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// settling reports whether err is what a replicated cluster answers while
// it is still forming (so worth retrying): replicas it cannot place yet,
// a request nobody answered in time or at all.
func (s *Store) settling(err error) bool {
	if s.replicas < 2 {
		return false
	}
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode == errCodeNoPeers || apiErr.ErrorCode == errCodeInsufficientResources
	}
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoStreamResponse)
}

// serving returns once a new replicated bucket answers reads: until its
// stream has elected a leader they find no responders.
func (s *Store) serving(ctx context.Context, b *KV, deadline time.Time) error {
	for {
		actx, cancel := context.WithTimeout(ctx, 2*time.Second)
		_, _, err := b.Get(actx, "probe")
		cancel()
		if err == nil || errors.Is(err, ErrNotFound) {
			return nil
		}
		if !s.settling(err) || time.Now().After(deadline) {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Get returns the value and revision of key, or ErrNotFound.
func (b *KV) Get(ctx context.Context, key string) ([]byte, uint64, error) {
	e, err := b.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, 0, ErrNotFound
	}
	if err != nil {
		return nil, 0, fmt.Errorf("store: get %s: %w", key, err)
	}
	return e.Value(), e.Revision(), nil
}

// Create stores key only if it does not exist, else ErrExists.
func (b *KV) Create(ctx context.Context, key string, val []byte) (uint64, error) {
	rev, err := b.kv.Create(ctx, key, val)
	if errors.Is(err, jetstream.ErrKeyExists) {
		return 0, ErrExists
	}
	if err != nil {
		return 0, fmt.Errorf("store: create %s: %w", key, err)
	}
	return rev, nil
}

// Update stores key only if its revision is still rev, else ErrConflict.
func (b *KV) Update(ctx context.Context, key string, val []byte, rev uint64) (uint64, error) {
	n, err := b.kv.Update(ctx, key, val, rev)
	if err != nil {
		// A replicated bucket (nats.replicas > 1) reports the conflict with
		// another code (10164) than a single server (10071); nats.go marks
		// both ErrKeyRevisionMismatch.
		if errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
			return 0, ErrConflict
		}
		return 0, fmt.Errorf("store: update %s: %w", key, err)
	}
	return n, nil
}

// Put stores key unconditionally.
func (b *KV) Put(ctx context.Context, key string, val []byte) (uint64, error) {
	n, err := b.kv.Put(ctx, key, val)
	if err != nil {
		return 0, fmt.Errorf("store: put %s: %w", key, err)
	}
	return n, nil
}

// Delete removes key. A missing key is not an error.
func (b *KV) Delete(ctx context.Context, key string) error {
	if err := b.kv.Purge(ctx, key, jetstream.PurgeTTL(b.markerTTL)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("store: delete %s: %w", key, err)
	}
	return nil
}

// Keys lists the bucket's keys.
// Listed returns the keys that have a message in the bucket: its live keys
// and those deleted less than MarkerTTL ago (their delete markers), which
// a Get then finds gone. It is one request to the stream, where Keys
// creates and removes a consumer: what a poller that reads each key anyway
// should use.
func (b *KV) Listed(ctx context.Context) ([]string, error) {
	prefix := "$KV." + b.bucket + "."
	st, err := b.js.Stream(ctx, "KV_"+b.bucket)
	if err != nil {
		return nil, fmt.Errorf("store: keys: %w", err)
	}
	info, err := st.Info(ctx, jetstream.WithSubjectFilter(prefix+">"))
	if err != nil {
		return nil, fmt.Errorf("store: keys: %w", err)
	}
	keys := make([]string, 0, len(info.State.Subjects))
	for subj := range info.State.Subjects {
		keys = append(keys, strings.TrimPrefix(subj, prefix))
	}
	return keys, nil
}

func (b *KV) Keys(ctx context.Context) ([]string, error) {
	keys, err := b.kv.Keys(ctx)
	if errors.Is(err, jetstream.ErrNoKeysFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("store: keys: %w", err)
	}
	return keys, nil
}
