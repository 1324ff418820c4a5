package calltest_test

import (
	"context"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

// switchboardBinary builds cmd/switchboard once per test run.
func switchboardBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "switchboard-bin")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "switchboard")
		out, err := exec.Command("go", "build", "-o", binPath, "../../cmd/switchboard").CombinedOutput()
		if err != nil {
			buildErr = err
			t.Logf("go build: %s", out)
		}
	})
	if buildErr != nil {
		t.Fatalf("build switchboard: %v", buildErr)
	}
	return binPath
}

// freeAddr returns a loopback address nobody listens on right now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// process is a switchboard serve child process.
type process struct {
	cmd *exec.Cmd
	url string
}

func startProcess(t *testing.T, bin, cfgPath, url string) *process {
	t.Helper()
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	cmd.Stdout = testLog{t, "switchboard: "}
	cmd.Stderr = testLog{t, "switchboard: "}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &process{cmd: cmd, url: url}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	// Readiness of another process can only be observed by asking it.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for delay := 10 * time.Millisecond; ; delay = min(delay*2, 500*time.Millisecond) {
		resp, err := http.Get(url + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("switchboard did not become healthy: %v", err)
		case <-time.After(delay):
		}
	}
}

type testLog struct {
	t      *testing.T
	prefix string
}

func (l testLog) Write(b []byte) (int, error) {
	if os.Getenv("SWITCHBOARD_TEST_LOG") != "" {
		l.t.Log(l.prefix + string(b))
	}
	return len(b), nil
}

// Kill the server process with SIGKILL mid-call: after a restart on the
// same data directory the calls are still there, and notifications the
// bot's webhook had not accepted are delivered, in order.
func TestRestartAfterSIGKILLKeepsCallsAndNotifications(t *testing.T) {
	bin := switchboardBinary(t)
	addr := freeAddr(t)
	public := "http://" + addr
	hook := calltest.NewWebhook(t, public, calltest.BotID, calltest.Bot2ID)
	weak := calltest.NewWebhook(t, public, calltest.WeakBotID)
	dir := t.TempDir()
	cfg := calltest.Config(filepath.Join(dir, "data"), public, hook.URL, weak.URL)
	cfg.HTTP.Listen = addr
	cfg.SIP.Listen = ""
	cfg.Log.Level = "info"
	cfg.Simulator.Enabled = true
	cfg.Notifications.MaxAge = config.Duration(5 * time.Minute)
	cfgPath := writeConfig(t, dir, cfg)

	proc := startProcess(t, bin, cfgPath, public)
	p := calltest.Attach(t, public, hook)

	first := p.CreateCall(calltest.AliceID)
	hook.WaitState(t, first.ID, graph.StateEstablished)

	// The bot's webhook goes down; a second call's notifications queue up.
	hook.SetDown(true)
	second := p.CreateCall(calltest.AliceID)
	// Wait until the second call is established in the store (GET), so its
	// whole backlog is queued before the kill.
	waitStored(t, p, second.ID, graph.StateEstablished, 20*time.Second)
	if err := proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = proc.cmd.Wait()
	if n := len(hook.For(second.ID)); n != 0 {
		t.Fatalf("webhook was down but accepted %d notifications", n)
	}

	hook.SetDown(false)
	startProcess(t, bin, cfgPath, public)
	want := []graph.CallState{graph.StateEstablishing, graph.StateRinging, graph.StateEstablished}
	hook.WaitState(t, second.ID, graph.StateEstablished)
	if s := hook.States(t, second.ID); len(s) < 3 || s[0] != want[0] || s[1] != want[1] || s[2] != want[2] {
		t.Fatalf("second call's notifications after restart: %v, want %v", s, want)
	}
	for _, id := range []string{first.ID, second.ID} {
		var c graph.Call
		r := p.Bot("GET", calls+"/"+id, nil)
		r.JSON(t, &c)
		if r.StatusCode != 200 || c.State != graph.StateEstablished {
			t.Fatalf("call %s after restart: %s %s", id, r.Status, r.Body)
		}
		if r := p.Bot("DELETE", calls+"/"+id, nil); r.StatusCode != 204 {
			t.Fatalf("hang up %s after restart: %s %s", id, r.Status, r.Body)
		}
		if c := hook.WaitState(t, id, graph.StateTerminated).Call(t); c.ResultInfo.Subcode != 5001 {
			t.Fatalf("terminated %+v", c.ResultInfo)
		}
	}
}

// Two nodes on one NATS: node B serves reads of node A's calls from the
// shared store and forwards commands to A, which owns the call.
func TestTwoNodesShareStateAndForwardCommands(t *testing.T) {
	natsAddr := freeAddr(t)
	a := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) { c.NATS.Listen = natsAddr }})
	b := calltest.Start(t, calltest.Options{Hook: a.Hook, WeakHook: a.WeakHook, Edit: func(c *config.Config) {
		c.NATS.URL = "nats://" + natsAddr
	}})
	if a.Node.ID == b.Node.ID {
		t.Fatal("nodes share an id")
	}
	call := a.CreateCall(calltest.AliceID)
	a.Hook.WaitState(t, call.ID, graph.StateEstablished)

	// A token from node B's endpoint is valid on A too: the keys are shared.
	r := b.Bot("GET", calls+"/"+call.ID, nil)
	var got graph.Call
	r.JSON(t, &got)
	if r.StatusCode != 200 || got.State != graph.StateEstablished {
		t.Fatalf("GET on node B: %s %s", r.Status, r.Body)
	}
	if r := b.Bot("POST", calls+"/"+call.ID+"/keepAlive", nil); r.StatusCode != 200 {
		t.Fatalf("keepAlive forwarded: %s %s", r.Status, r.Body)
	}
	if r := b.Bot("DELETE", calls+"/"+call.ID, nil); r.StatusCode != 204 {
		t.Fatalf("DELETE on node B: %s %s", r.Status, r.Body)
	}
	c := a.Hook.WaitState(t, call.ID, graph.StateTerminated).Call(t)
	if c.ResultInfo.Subcode != 5001 {
		t.Fatalf("resultInfo %+v", c.ResultInfo)
	}
	if a.Node.Calls.Live() != 0 {
		t.Fatalf("node A still runs %d calls", a.Node.Calls.Live())
	}
}

// While node A drains (a rolling restart), its calls are still driven
// through node B: behind an HTTP balancer a bot's requests reach any
// node, which forwards those for A's calls to A until A's calls are gone.
func TestDrainServesForwardedCommands(t *testing.T) {
	natsAddr := freeAddr(t)
	a := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) { c.NATS.Listen = natsAddr }})
	b := calltest.Start(t, calltest.Options{Hook: a.Hook, WeakHook: a.WeakHook, Edit: func(c *config.Config) {
		c.NATS.URL = "nats://" + natsAddr
	}})
	call := a.CreateCall(calltest.AliceID)
	a.Hook.WaitState(t, call.ID, graph.StateEstablished)
	a.Bot("GET", calls+"/"+call.ID, nil) // the token is fetched before the drain
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- a.Node.Shutdown(ctx, time.Now().Add(20*time.Second)) }()
	// The drain has begun once A refuses new calls.
	for deadline := time.Now().Add(10 * time.Second); ; {
		r := a.Bot("POST", calls, calltest.CallTo(a.Hook.URL, calltest.BobID))
		if r.StatusCode == http.StatusServiceUnavailable {
			break
		}
		if r.StatusCode == http.StatusCreated {
			t.Fatal("a call was created on node A after Shutdown began")
		}
		if time.Now().After(deadline) {
			t.Fatalf("node A still answered %d to new calls during the drain", r.StatusCode)
		}
	}
	if r := b.Bot("POST", calls+"/"+call.ID+"/keepAlive", nil); r.StatusCode != http.StatusOK {
		t.Fatalf("keepAlive through node B during A's drain: %d %s", r.StatusCode, r.Body)
	}
	if r := b.Bot("DELETE", calls+"/"+call.ID, nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE through node B during A's drain: %d %s", r.StatusCode, r.Body)
	}
	if c := a.Hook.WaitState(t, call.ID, graph.StateTerminated).Call(t); c.ResultInfo.Subcode != 5001 {
		t.Errorf("the call ended %d/%d, want the bot's hang-up (200/5001)", c.ResultInfo.Code, c.ResultInfo.Subcode)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}

// waitStored polls GET /calls/{id} on p until the call's stored state is
// want: another process's store, which no webhook reports while the bot's
// is down.
func waitStored(t *testing.T, p *calltest.Platform, callID string, want graph.CallState, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var c graph.Call
		p.Bot("GET", calls+"/"+callID, nil).JSON(t, &c)
		if c.State == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("call %s never %s: %s", callID, want, c.State)
		}
		time.Sleep(20 * time.Millisecond) // polling another process's state
	}
}

// writeConfig writes cfg as dir/switchboard.yaml, for a real
// switchboard serve process, and returns its path.
func writeConfig(t *testing.T, dir string, cfg *config.Config) string {
	t.Helper()
	data, err := yaml.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "switchboard.yaml")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
