package cluster

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"time"
)

// ServeBalancer serves l's HTTP front (l.FrontHTTP) as Run does: round
// robin over the nodes' HTTP ports, skipping a node whose /healthz did
// not answer 200 at its last probe (every second) or that does not
// accept connections. The caller closes the server, which stops the
// probes. sbbench cluster uses it.
func ServeBalancer(l Layout) (*http.Server, error) { return serveBalancer(l) }

// probeInterval is how often the balancer asks each node's /healthz.
const probeInterval = time.Second

// serveBalancer serves the HTTP front, a stand-in for nginx
// (docs/deploy.md); WebSocket upgrades pass through.
func serveBalancer(l Layout) (*http.Server, error) {
	var hosts []string
	for _, n := range l.Nodes {
		hosts = append(hosts, n.HTTP.String())
	}
	ln, err := net.Listen("tcp", l.FrontHTTP.String())
	if err != nil {
		return nil, fmt.Errorf("http front: %w", err)
	}
	b := newBalancer(hosts)
	ctx, cancel := context.WithCancel(context.Background())
	b.probe(ctx) // a first look before the first request
	go b.run(ctx, probeInterval)
	srv := &http.Server{Handler: b, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		_ = srv.Serve(ln)
		cancel() // closed: the probes stop
	}()
	return srv, nil
}

// balancer sends each request to the next node round robin that is
// healthy: its /healthz answered 200 at the last probe (a starting or
// draining node answers 503, a stopped one nothing) and it accepts a
// connection now (a node killed since the probe does not). When no node
// is healthy, any node that accepts a connection gets the request, whose
// answer (a draining node's 503) is better than none. It is safe for
// concurrent use.
type balancer struct {
	targets []*url.URL
	proxies []*httputil.ReverseProxy
	healthy []atomic.Bool
	next    atomic.Uint64
	client  *http.Client
}

func newBalancer(hosts []string) *balancer {
	b := &balancer{healthy: make([]atomic.Bool, len(hosts)),
		client: &http.Client{Timeout: probeInterval / 2, Transport: &http.Transport{DisableKeepAlives: true}}}
	for _, h := range hosts {
		t := &url.URL{Scheme: "http", Host: h}
		b.targets = append(b.targets, t)
		b.proxies = append(b.proxies, httputil.NewSingleHostReverseProxy(t))
	}
	return b
}

// run probes every node each interval until ctx is done.
func (b *balancer) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b.probe(ctx)
	}
}

// probe asks every node's /healthz at once and notes which answered 200.
func (b *balancer) probe(ctx context.Context) {
	var wg sync.WaitGroup
	for i, t := range b.targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ok := false
			req, err := http.NewRequestWithContext(ctx, "GET", t.String()+"/healthz", nil)
			if err == nil {
				if resp, err := b.client.Do(req); err == nil {
					ok = resp.StatusCode == http.StatusOK
					resp.Body.Close()
				}
			}
			b.healthy[i].Store(ok)
		}()
	}
	wg.Wait()
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	turn := int(b.next.Add(1))
	var healthy, all []int
	for k := range b.targets {
		all = append(all, k)
		if b.healthy[k].Load() {
			healthy = append(healthy, k)
		}
	}
	// Round robin over the healthy nodes, so each gets an even share.
	for _, cands := range [][]int{healthy, all} {
		for i := range cands {
			k := cands[(turn+i)%len(cands)]
			c, err := net.DialTimeout("tcp", b.targets[k].Host, 300*time.Millisecond)
			if err != nil {
				continue
			}
			c.Close()
			b.proxies[k].ServeHTTP(w, r)
			return
		}
	}
	b.proxies[turn%len(all)].ServeHTTP(w, r) // nobody accepts: the proxy's 502
}
