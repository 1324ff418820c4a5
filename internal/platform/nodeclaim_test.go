package platform

import (
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/store"
)

func openTestStore(t *testing.T) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Options{DataDir: t.TempDir(), Name: "t"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// putClaim stores a claim as another process would have.
func putClaim(t *testing.T, st *store.Store, id string, c nodeClaim) *store.KV {
	t.Helper()
	ctx := context.Background()
	kv, err := st.Bucket(ctx, nodeBucket, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(c)
	if _, err := kv.Put(ctx, id, b); err != nil {
		t.Fatal(err)
	}
	return kv
}

func deadPID(t *testing.T) int {
	t.Helper()
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	return cmd.Process.Pid
}

func TestNodeClaim(t *testing.T) {
	const lease = 500 * time.Millisecond
	host, _ := os.Hostname()
	ctx := context.Background()

	t.Run("a live node elsewhere keeps its id", func(t *testing.T) {
		st := openTestStore(t)
		c := nodeClaim{Instance: "other", Host: "elsewhere", PID: 4242, Started: time.Now(), Beat: time.Now()}
		kv := putClaim(t, st, "n1", c)
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() { // its heartbeat
			defer close(done)
			tick := time.NewTicker(lease / 10)
			defer tick.Stop()
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
				}
				c.Beat = time.Now()
				b, _ := json.Marshal(c)
				_, _ = kv.Put(ctx, "n1", b)
			}
		}()
		defer func() { close(stop); <-done }()
		start := time.Now()
		_, err := claimNodeID(ctx, st, "n1", lease, discard())
		if err == nil || !strings.Contains(err.Error(), "in use by a running node") || !strings.Contains(err.Error(), "elsewhere") {
			t.Fatalf("second claim: %v, want refused naming the holder", err)
		}
		t.Logf("refused after %v: %v", time.Since(start).Round(time.Millisecond), err)
	})

	t.Run("a node elsewhere that stopped beating is taken over after its lease", func(t *testing.T) {
		st := openTestStore(t)
		putClaim(t, st, "n1", nodeClaim{Instance: "other", Host: "elsewhere", PID: 4242, Beat: time.Now()})
		start := time.Now()
		c, err := claimNodeID(ctx, st, "n1", lease, discard())
		if err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited < lease/2 {
			t.Errorf("took over a fresh claim after %v, want the lease to run out first", waited)
		}
		if c.mine.PID != os.Getpid() {
			t.Errorf("claim %+v", c.mine)
		}
	})

	t.Run("a crashed process on this host is taken over at once", func(t *testing.T) {
		st := openTestStore(t)
		putClaim(t, st, "n1", nodeClaim{Instance: "old", Host: host, PID: deadPID(t), Beat: time.Now()})
		start := time.Now()
		if _, err := claimNodeID(ctx, st, "n1", time.Minute, discard()); err != nil {
			t.Fatal(err)
		}
		if waited := time.Since(start); waited > 5*time.Second {
			t.Errorf("took %v to take over from a dead process", waited)
		}
	})

	t.Run("a node restarted while another takes it over waits, then starts", func(t *testing.T) {
		st := openTestStore(t)
		// The takeover runs in this very process (as in-process tests
		// do): its pid, alive, must not let the restart through.
		tk := nodeClaim{Instance: "takeover", Host: host, PID: os.Getpid(), Started: time.Now(), Beat: time.Now(),
			LeaseMS: lease.Milliseconds(), TakenOverBy: "n2"}
		kv := putClaim(t, st, "n1", tk)
		claimed := make(chan error, 1)
		go func() {
			_, err := claimNodeID(ctx, st, "n1", lease, discard())
			claimed <- err
		}()
		// The takeover beats for three leases, then releases the id.
		tick := time.NewTicker(lease / 5)
		for range 15 {
			<-tick.C
			select {
			case err := <-claimed:
				t.Fatalf("claimed during the takeover: %v", err)
			default:
			}
			tk.Beat = time.Now()
			b, _ := json.Marshal(tk)
			if _, err := kv.Put(ctx, "n1", b); err != nil {
				t.Fatal(err)
			}
		}
		tick.Stop()
		if err := kv.Delete(ctx, "n1"); err != nil {
			t.Fatal(err)
		}
		if err := <-claimed; err != nil {
			t.Fatalf("claim after the takeover: %v", err)
		}
	})

	t.Run("a node whose claim another node took over is told it is lost", func(t *testing.T) {
		st := openTestStore(t)
		c, err := claimNodeID(ctx, st, "n1", lease, discard())
		if err != nil {
			t.Fatal(err)
		}
		lost := make(chan string, 1)
		c.lost = func(by string) { lost <- by }
		// Another node judged it lost (a network split) and took it over.
		putClaim(t, st, "n1", nodeClaim{Instance: "takeover", Host: "elsewhere", PID: 1, Beat: time.Now(), TakenOverBy: "n2"})
		runCtx, stop := context.WithCancel(ctx)
		defer stop()
		done := make(chan struct{})
		go func() { c.run(runCtx); close(done) }()
		select {
		case by := <-lost:
			if by != "n2" {
				t.Fatalf("lost to %q, want n2", by)
			}
		case <-time.After(10 * lease):
			t.Fatal("not told it was lost")
		}
		<-done // run returns without releasing the other's claim
		kv, _ := st.Bucket(ctx, nodeBucket, 0)
		data, _, err := kv.Get(ctx, "n1")
		var now nodeClaim
		if err != nil || json.Unmarshal(data, &now) != nil || now.TakenOverBy != "n2" {
			t.Fatalf("claim after being told: %s %v", data, err)
		}
	})

	t.Run("a stopped node releases its id", func(t *testing.T) {
		st := openTestStore(t)
		c, err := claimNodeID(ctx, st, "n1", time.Minute, discard())
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { c.run(runCtx); close(done) }()
		stop()
		<-done
		// A node elsewhere (not this process) may start at once.
		kv, _ := st.Bucket(ctx, nodeBucket, 0)
		if _, _, err := kv.Get(ctx, "n1"); err != store.ErrNotFound {
			t.Fatalf("claim after stop: %v, want it released", err)
		}
	})

	t.Run("a node advertises its HTTP listener at once", func(t *testing.T) {
		st := openTestStore(t)
		// A minute's lease: the first heartbeat is 12 s away, so the
		// address is written on advertise's kick, not by a heartbeat.
		c, err := claimNodeID(ctx, st, "n1", time.Minute, discard())
		if err != nil {
			t.Fatal(err)
		}
		n := &Node{nodesKV: c.kv}
		if _, err := n.NodeURL(ctx, "n1"); errs.KindOf(err) != errs.Unavailable {
			t.Fatalf("NodeURL before the listener is up: %v, want unavailable", err)
		}
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { c.run(runCtx); close(done) }()
		defer func() { stop(); <-done }()
		c.advertise("http://10.0.0.11:8080")
		for deadline := time.Now().Add(5 * time.Second); ; {
			u, err := n.NodeURL(ctx, "n1")
			if err == nil && u == "http://10.0.0.11:8080" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("NodeURL: %q %v", u, err)
			}
			time.Sleep(10 * time.Millisecond) // the claim's writer is run's goroutine
		}
		if _, err := n.NodeURL(ctx, "n2"); errs.KindOf(err) != errs.Unavailable {
			t.Errorf("NodeURL of a node without a claim: %v, want unavailable", err)
		}
	})
}

func TestAdvertisedURL(t *testing.T) {
	host, _ := os.Hostname()
	for _, tc := range []struct {
		listen, bindIP, tlsCert, httpURL, want string
	}{
		{"10.0.0.11:8080", "10.0.0.11", "", "", "http://10.0.0.11:8080"},
		{"0.0.0.0:8080", "10.0.0.12", "", "", "http://10.0.0.12:8080"},
		{"[::]:8443", "fd00::3", "cert.pem", "", "https://[fd00::3]:8443"},
		{"0.0.0.0:8080", "0.0.0.0", "", "", "http://" + host + ":8080"},
		{"0.0.0.0:8080", "10.0.0.12", "", "http://node1.internal:8080/", "http://node1.internal:8080"},
	} {
		cfg := config.Default()
		cfg.Media.BindIP, cfg.HTTP.TLSCert, cfg.Cluster.HTTPURL = tc.bindIP, tc.tlsCert, tc.httpURL
		addr, err := net.ResolveTCPAddr("tcp", tc.listen)
		if err != nil {
			t.Fatal(err)
		}
		if got := advertisedURL(&cfg, addr); got != tc.want {
			t.Errorf("listen %s, bindIp %s, httpUrl %q: %s, want %s", tc.listen, tc.bindIP, tc.httpURL, got, tc.want)
		}
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }
