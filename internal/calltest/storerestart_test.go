package calltest_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// The test binary, started with these set, is an external NATS server
// with JetStream in a directory (TestMain): a process the test can kill.
const (
	natsChildDir  = "SWITCHBOARD_TEST_NATS_DIR"
	natsChildAddr = "SWITCHBOARD_TEST_NATS_ADDR"
)

func TestMain(m *testing.M) {
	if dir := os.Getenv(natsChildDir); dir != "" {
		runNATSChild(dir, os.Getenv(natsChildAddr))
		return
	}
	os.Exit(m.Run())
}

// runNATSChild serves NATS with JetStream on addr, storing in dir, until
// the process is killed.
func runNATSChild(dir, addr string) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		os.Exit(2)
	}
	p, _ := strconv.Atoi(port)
	s, err := server.NewServer(&server.Options{Host: host, Port: p, JetStream: true, StoreDir: dir, NoSigs: true})
	if err != nil {
		os.Exit(2)
	}
	go s.Start()
	if !s.ReadyForConnections(30 * time.Second) {
		os.Exit(3)
	}
	select {} // until SIGKILL
}

// startNATSChild starts the external store and waits until it accepts
// connections.
func startNATSChild(t *testing.T, dir, addr string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), natsChildDir+"="+dir, natsChildAddr+"="+addr)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// Readiness of another process can only be observed by asking it.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for delay := 10 * time.Millisecond; ; delay = min(delay*2, 200*time.Millisecond) {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return cmd
		}
		select {
		case <-ctx.Done():
			t.Fatal("the external NATS did not start")
		case <-time.After(delay):
		}
	}
}

// The node's external store (a separate nats-server process) is killed
// (SIGKILL) with calls in progress, and each is hung up while it is down:
// the requests are answered 503, as the steps cannot be stored. Once the
// store is back on its directory the node reconnects by itself: every
// hang-up it had taken in memory is stored and its terminated notification
// delivered, and new calls work.
func TestExternalStoreKilledAndRestarted(t *testing.T) {
	const n = 10
	dir, addr := t.TempDir(), freeAddr(t)
	store := startNATSChild(t, dir, addr)
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) { c.NATS.URL = "nats://" + addr }})

	var ids []string
	for range n {
		c := p.CreateCall(calltest.AliceID)
		ids = append(ids, c.ID)
	}
	for _, id := range ids {
		p.Hook.WaitState(t, id, graph.StateEstablished)
	}

	if err := store.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = store.Wait()
	// The bot hangs up every call at once; each answer waits for the
	// store's timeout.
	answers := make(chan *calltest.Response, n)
	for _, id := range ids {
		go func() { answers <- p.Bot("DELETE", calls+"/"+id, nil) }()
	}
	for i := range n {
		r := <-answers
		if i == 0 {
			t.Logf("hang-up while the store is down: %s %s", r.Status, r.Body)
		}
		if r.StatusCode != 503 && r.StatusCode != 204 {
			t.Errorf("hang-up while the store is down: %s %s, want 503 (or 204 if it was stored)", r.Status, r.Body)
		}
	}

	startNATSChild(t, dir, addr)
	for _, id := range ids {
		if c := p.Hook.WaitState(t, id, graph.StateTerminated).Call(t); c.ResultInfo == nil || c.ResultInfo.Subcode != 5001 {
			t.Fatalf("call %s terminated after the store came back: %+v", id, c.ResultInfo)
		}
	}
	// The node takes new calls again once it has reconnected.
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := p.Bot("POST", calls, calltest.CallTo(p.Hook.URL, calltest.AliceID))
		if r.StatusCode == 201 {
			var c graph.Call
			r.JSON(t, &c)
			p.Hook.WaitState(t, c.ID, graph.StateEstablished)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no new call 30 s after the store came back: %s %s", r.Status, r.Body)
		}
		time.Sleep(200 * time.Millisecond) // polling the node's recovery, which nothing signals
	}
}
