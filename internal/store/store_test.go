package store

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"
)

func TestKVCompareAndSetSurvivesRestart(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, Options{DataDir: dir, Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.Bucket(ctx, "calls", 0)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := b.Create(ctx, "c1", []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Create(ctx, "c1", []byte("b")); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	rev2, err := b.Update(ctx, "c1", []byte("b"), rev)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Update(ctx, "c1", []byte("c"), rev); !errors.Is(err, ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}
	s.Close()
	s.Close() // idempotent

	s, err = Open(ctx, Options{DataDir: dir, Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, err = s.Bucket(ctx, "calls", 0)
	if err != nil {
		t.Fatal(err)
	}
	v, r, err := b.Get(ctx, "c1")
	if err != nil || string(v) != "b" || r != rev2 {
		t.Fatalf("after restart: %q rev %d err %v; want b rev %d", v, r, err, rev2)
	}
	if err := b.Delete(ctx, "c1"); err != nil {
		t.Fatal(err)
	}
	if _, _, err := b.Get(ctx, "c1"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
	keys, err := b.Keys(ctx)
	if err != nil || len(keys) != 0 {
		t.Fatalf("keys %v err %v", keys, err)
	}
}

// TestDeleteMarkersExpire: a bucket created before delete markers had a
// TTL is upgraded when opened, a create after a delete still works, and a
// deleted key's marker leaves the bucket after MarkerTTL, so a bucket of
// short-lived keys (call records) does not grow with every key it held.
func TestDeleteMarkersExpire(t *testing.T) {
	defer func(d time.Duration) { MarkerTTL = d }(MarkerTTL)
	MarkerTTL = time.Second // the shortest a marker's TTL may be
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, Options{DataDir: t.TempDir(), Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// As older nodes made it: no marker TTL.
	if _, err := s.js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "calls", History: 1, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	b, err := s.Bucket(ctx, "calls", 0)
	if err != nil {
		t.Fatalf("upgrade the bucket: %v", err)
	}
	for i := range 20 {
		k := fmt.Sprintf("c%d", i)
		if _, err := b.Create(ctx, k, []byte("x")); err != nil {
			t.Fatal(err)
		}
		if err := b.Delete(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Create(ctx, "c0", []byte("again")); err != nil {
		t.Fatalf("create after delete: %v", err)
	}
	stream, err := s.js.Stream(ctx, "KV_calls")
	if err != nil {
		t.Fatal(err)
	}
	// The markers' TTL runs on the server: ask it until they are gone.
	deadline := time.Now().Add(10 * time.Second)
	for {
		info, err := stream.Info(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if info.State.Msgs == 1 { // c0, created again
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d messages left in the bucket 10 s after 20 deletes, want only the live key's: the delete markers stay", info.State.Msgs)
		}
		time.Sleep(100 * time.Millisecond) // polling the server's expiry, which nothing signals
	}
}

// A node pointed at a NATS cluster it cannot reach fails at once with an
// error naming it, rather than waiting or falling back to an embedded
// server.
func TestExternalNATSUnreachable(t *testing.T) {
	dead := func() string {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().String()
	}
	url := "nats://" + dead() + ",nats://" + dead()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	s, err := Open(ctx, Options{DataDir: t.TempDir(), URL: url, Replicas: 3, Name: "t"})
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded against a cluster nobody runs")
	}
	if took := time.Since(start); took > 2*ConnectTimeout+time.Second {
		t.Errorf("Open took %s to give up", took)
	}
	if !strings.Contains(err.Error(), url) || !strings.Contains(err.Error(), "cannot reach NATS") {
		t.Errorf("error %q does not say which NATS could not be reached", err)
	}
}

// A reachable NATS without JetStream is refused at once, saying so.
func TestExternalNATSWithoutJetStream(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoSigs: true, NoLog: true})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	defer srv.Shutdown()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats server not ready")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	start := time.Now()
	s, err := Open(ctx, Options{DataDir: t.TempDir(), URL: srv.ClientURL(), Name: "t"})
	if err == nil {
		s.Close()
		t.Fatal("Open succeeded on a server without JetStream")
	}
	if took := time.Since(start); took > 5*time.Second {
		t.Errorf("Open took %s to give up", took)
	}
	if !strings.Contains(err.Error(), "no JetStream") {
		t.Errorf("error %q does not say JetStream is missing", err)
	}
}

// startCluster runs three in-process NATS servers as one JetStream cluster
// and returns its client URLs, comma-separated.
func startCluster(t *testing.T) string {
	t.Helper()
	free := func() int {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		return l.Addr().(*net.TCPAddr).Port
	}
	routes := make([]int, 3)
	for i := range routes {
		routes[i] = free()
	}
	var urls []string
	for i := range 3 {
		var rs []string
		for j, p := range routes {
			if j != i {
				rs = append(rs, fmt.Sprintf("nats-route://127.0.0.1:%d", p))
			}
		}
		srv, err := server.NewServer(&server.Options{ServerName: fmt.Sprintf("s%d", i), Host: "127.0.0.1", Port: -1,
			JetStream: true, StoreDir: t.TempDir(), NoSigs: true, NoLog: true,
			Cluster: server.ClusterOpts{Name: "t", Host: "127.0.0.1", Port: routes[i]},
			Routes:  server.RoutesFromStr(strings.Join(rs, ","))})
		if err != nil {
			t.Fatal(err)
		}
		srv.Start()
		t.Cleanup(srv.Shutdown)
		if !srv.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats server not ready")
		}
		urls = append(urls, srv.ClientURL())
	}
	return strings.Join(urls, ",")
}

// Nodes started together on a fresh three-server cluster each create the
// same replicated buckets and streams; nats-server answers none of the
// concurrent creates of a stream (it creates it all the same), which the
// store retries: every node gets them, with three replicas.
func TestReplicatedStoresCreatedConcurrently(t *testing.T) {
	url := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	errc := make(chan error, 3)
	for n := range 3 {
		go func() {
			s, err := Open(ctx, Options{DataDir: t.TempDir(), URL: url, Replicas: 3, Name: fmt.Sprint("node", n)})
			if err != nil {
				errc <- err
				return
			}
			defer s.Close()
			if _, err := s.Bucket(ctx, "sb_test", 0); err != nil {
				errc <- err
				return
			}
			st, err := s.Stream(ctx, jetstream.StreamConfig{Name: "SB_TEST", Subjects: []string{"sbtest.>"}, Storage: jetstream.FileStorage})
			if err != nil {
				errc <- err
				return
			}
			if r := st.CachedInfo().Config.Replicas; r != 3 {
				errc <- fmt.Errorf("stream with %d replicas", r)
				return
			}
			_, err = s.ObjectStore(ctx, jetstream.ObjectStoreConfig{Bucket: "sb_test_obj", Storage: jetstream.FileStorage})
			errc <- err
		}()
	}
	for range 3 {
		if err := <-errc; err != nil {
			t.Error(err)
		}
	}
}

// TestReplicatedKVCompareAndSet: on a bucket with three replicas a stale
// revision is ErrConflict and an existing key ErrExists, as on one server
// (a replicated stream reports the conflict with another error code).
func TestReplicatedKVCompareAndSet(t *testing.T) {
	url := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s, err := Open(ctx, Options{DataDir: t.TempDir(), URL: url, Replicas: 3, Name: "node"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, err := s.Bucket(ctx, "sb_cas", 0)
	if err != nil {
		t.Fatal(err)
	}
	rev, err := b.Create(ctx, "k", []byte("a"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Create(ctx, "k", []byte("b")); !errors.Is(err, ErrExists) {
		t.Fatalf("second create: %v, want ErrExists", err)
	}
	// Writers racing with one revision, from three connections, as three
	// nodes do on a shared key: one wins, the others see ErrConflict,
	// however the cluster ordered them.
	buckets := []*KV{b}
	for n := range 2 {
		o, err := Open(ctx, Options{DataDir: t.TempDir(), URL: url, Replicas: 3, Name: fmt.Sprint("other", n)})
		if err != nil {
			t.Fatal(err)
		}
		defer o.Close()
		ob, err := o.Bucket(ctx, "sb_cas", 0)
		if err != nil {
			t.Fatal(err)
		}
		buckets = append(buckets, ob)
	}
	for round := range 20 {
		errc := make(chan error, 6)
		for i := range 6 {
			go func() {
				_, err := buckets[i%3].Update(ctx, "k", []byte(fmt.Sprint(round, i)), rev)
				errc <- err
			}()
		}
		won := 0
		for range 6 {
			switch err := <-errc; {
			case err == nil:
				won++
			case !errors.Is(err, ErrConflict):
				t.Fatalf("round %d: a losing update: %v, want ErrConflict", round, err)
			}
		}
		if won != 1 {
			t.Fatalf("round %d: %d updates won, want 1", round, won)
		}
		_, rev, err = b.Get(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
	}
}

// Listed names the live keys and those just deleted, with one request and
// no consumer, where Keys creates one each time.
func TestListedKeys(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := Open(ctx, Options{DataDir: t.TempDir(), Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	b, err := s.Bucket(ctx, "nodes", 0)
	if err != nil {
		t.Fatal(err)
	}
	if keys, err := b.Listed(ctx); err != nil || len(keys) != 0 {
		t.Fatalf("empty bucket: %v, %v", keys, err)
	}
	for _, k := range []string{"a", "b", "c"} {
		if _, err := b.Put(ctx, k, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Put(ctx, "a", []byte("again")); err != nil {
		t.Fatal(err)
	}
	if err := b.Delete(ctx, "c"); err != nil {
		t.Fatal(err)
	}
	keys, err := b.Listed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(keys)
	if !slices.Equal(keys, []string{"a", "b", "c"}) {
		t.Fatalf("listed %v, want a, b and the deleted c", keys)
	}
	if _, _, err := b.Get(ctx, "c"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the deleted key: %v", err)
	}
	stream, err := s.js.Stream(ctx, "KV_nodes")
	if err != nil {
		t.Fatal(err)
	}
	info, err := stream.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Consumers != 0 {
		t.Fatalf("%d consumers on the bucket after Listed", info.State.Consumers)
	}
}
