package cluster

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// The balancer sends requests only to nodes whose /healthz answers 200:
// not to a draining node (503), nor to one that is gone; a node whose
// health comes back gets requests again after a probe, and when none is
// healthy a node that accepts connections still answers.
func TestBalancerSkipsUnhealthyNodes(t *testing.T) {
	type node struct {
		srv    *httptest.Server
		health atomic.Int32
	}
	nodes := make([]*node, 3)
	var hosts []string
	for i := range nodes {
		n := &node{}
		n.health.Store(http.StatusOK)
		n.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/healthz" {
				w.WriteHeader(int(n.health.Load()))
				return
			}
			_, _ = io.WriteString(w, string(rune('a'+i)))
		}))
		t.Cleanup(n.srv.Close)
		nodes[i] = n
		hosts = append(hosts, strings.TrimPrefix(n.srv.URL, "http://"))
	}
	// Node a drains; node c is gone (nothing listens on its address).
	nodes[0].health.Store(http.StatusServiceUnavailable)
	nodes[2].srv.Close()

	b := newBalancer(hosts)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	b.probe(ctx)
	done := make(chan struct{})
	go func() { defer close(done); b.run(ctx, 20*time.Millisecond) }()
	defer func() { cancel(); <-done }()
	front := httptest.NewServer(b)
	defer front.Close()

	get := func() string {
		t.Helper()
		resp, err := http.Get(front.URL + "/v1.0/x")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.Status + " " + string(body)
	}
	for range 6 {
		if got := get(); got != "200 OK b" {
			t.Fatalf("with a draining and a stopped node: %q, want node b's answer", got)
		}
	}

	// Node a is healthy again: within a few probes it gets its share.
	nodes[0].health.Store(http.StatusOK)
	waitFor(t, "node a back in the rotation", func() bool { return b.healthy[0].Load() })
	seen := map[string]int{}
	for range 6 {
		seen[get()]++
	}
	if seen["200 OK a"] != 3 || seen["200 OK b"] != 3 {
		t.Errorf("answers with a and b healthy: %v, want 3 each", seen)
	}

	// Nobody healthy: a node that accepts connections still answers.
	nodes[0].health.Store(http.StatusServiceUnavailable)
	nodes[1].health.Store(http.StatusServiceUnavailable)
	waitFor(t, "every node unhealthy", func() bool { return !b.healthy[0].Load() && !b.healthy[1].Load() })
	if got := get(); got != "200 OK a" && got != "200 OK b" {
		t.Errorf("with no healthy node: %q, want a node's answer", got)
	}
	// A healthy node that stops accepting connections is skipped, whether
	// or not a probe has seen it yet.
	nodes[1].health.Store(http.StatusOK)
	waitFor(t, "node b healthy", func() bool { return b.healthy[1].Load() })
	nodes[1].srv.Close()
	if _, err := net.DialTimeout("tcp", hosts[1], time.Second); err == nil {
		t.Fatal("node b's address still accepts connections")
	}
	if got := get(); got != "200 OK a" {
		t.Errorf("with node b gone since its probe: %q, want node a's answer", got)
	}
}

// waitFor polls cond (the balancer's probes run on their own timer).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); !cond(); {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 5s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
