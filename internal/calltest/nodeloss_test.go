package calltest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// twoNodes starts node A, whose embedded NATS node B uses too, both with
// a short lease on their ids so that a lost node is taken over quickly.
// Both have A's public URL, as nodes behind one load balancer would.
func twoNodes(t *testing.T, lease time.Duration, edit func(*config.Config)) (a, b *calltest.Platform) {
	t.Helper()
	natsAddr := freeAddr(t)
	a = calltest.Start(t, calltest.Options{NodeLease: lease, Edit: func(c *config.Config) {
		c.NATS.Listen = natsAddr
		edit(c)
	}})
	b = calltest.Start(t, calltest.Options{Hook: a.Hook, WeakHook: a.WeakHook, NodeLease: lease, Edit: func(c *config.Config) {
		c.NATS.URL = "nats://" + natsAddr
		// One deployment, one public address: the bot checks the
		// notifications of every node against it.
		c.HTTP.PublicURL = a.URL
		edit(c)
	}})
	return a, b
}

// calls.maxConcurrentPerApp counts the application's calls on every node:
// with the limit's calls spread over two nodes, one more is refused 429
// on either; once a node is lost, the node that takes over its calls
// releases their share and a new call goes through.
func TestCallLimitIsClusterWide(t *testing.T) {
	const limit = 3
	a, b := twoNodes(t, time.Second, func(c *config.Config) { c.Calls.MaxConcurrentPerApp = limit })
	onA := []graph.Call{a.CreateCall(calltest.AliceID), a.CreateCall(calltest.AliceID)}
	onB := b.CreateCall(calltest.AliceID)
	for _, c := range append(onA, onB) {
		a.Hook.WaitState(t, c.ID, graph.StateEstablished)
	}
	for name, p := range map[string]*calltest.Platform{"A": a, "B": b} {
		r := p.Bot("POST", calls, calltest.CallTo(p.Hook.URL, calltest.AliceID))
		if r.StatusCode != 429 {
			t.Fatalf("call %d on node %s: %s %s, want 429", limit+1, name, r.Status, r.Body)
		}
	}

	b.Node.Crash()
	ended := a.Hook.WaitState(t, onB.ID, graph.StateTerminated).Call(t)
	if ri := ended.ResultInfo; ri == nil || ri.Code != 410 || ri.Subcode != 9020 {
		t.Fatalf("node B's call ended with %+v, want 410/9020", ended.ResultInfo)
	}
	// Its share was released before its calls ended.
	more := a.CreateCall(calltest.AliceID)
	a.Hook.WaitState(t, more.ID, graph.StateEstablished)
	if r := a.Bot("POST", calls, calltest.CallTo(a.Hook.URL, calltest.AliceID)); r.StatusCode != 429 {
		t.Fatalf("call %d after the takeover: %s %s, want 429", limit+1, r.Status, r.Body)
	}
	for _, c := range onA {
		var got graph.Call
		a.Bot("GET", calls+"/"+c.ID, nil).JSON(t, &got)
		if got.State != graph.StateEstablished {
			t.Fatalf("node A's call %s after the takeover: %s", c.ID, got.State)
		}
	}
	if n := a.Node.Calls.Live(); n != limit {
		t.Fatalf("node A runs %d calls, want %d", n, limit)
	}
}

// nodeLossWait bounds the wait for a lost node's calls to end: its lease
// (15 s, the default) and a fifth of the survivor's, with room to spare.
const nodeLossWait = 45 * time.Second

// waitEnded waits for callID's terminated notification and returns the call.
func waitEnded(t *testing.T, hook *calltest.Webhook, callID string, timeout time.Duration) graph.Call {
	t.Helper()
	var ended graph.Call
	hook.Wait(t, callID, timeout, "terminated", func(ns []calltest.Notification) bool {
		for _, n := range ns {
			if n.ResourceURL == "/communications/calls/"+callID && json.Unmarshal(n.ResourceData, &ended) == nil &&
				ended.State == graph.StateTerminated {
				return true
			}
		}
		return false
	})
	return ended
}

// A node is killed with SIGKILL mid-call and does not come back in time:
// node A, sharing its NATS, notices once the lost node's lease has run
// out, ends its calls (410/9020), delivers every notification the lost
// node had accepted but not delivered, in order per call, then the
// calls' terminated ones, sends the SIP phone in one of its calls a BYE
// and cancels the INVITE of another that still rang. A's own call goes on. Restarted afterwards, the lost node resumes
// nothing. The lost node is a real switchboard serve process, on the
// default lease: the test measures the failover time users get.
func TestNodeLossSIGKILLEndsItsCallsOnAnotherNode(t *testing.T) {
	bin := switchboardBinary(t)
	natsAddr := freeAddr(t)
	a := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) { c.NATS.Listen = natsAddr }})
	hook := a.Hook

	addr := freeAddr(t)
	dir := t.TempDir()
	cfg := calltest.Config(filepath.Join(dir, "data"), a.URL, hook.URL, a.WeakHook.URL)
	cfg.HTTP.Listen = addr
	cfg.NATS.URL = "nats://" + natsAddr
	sipAddr := freeSIPAddr(t)
	cfg.SIP.Listen = sipAddr.String()
	cfg.Simulator.Enabled = true
	cfg.Log.Level = "info"
	cfg.Notifications.MaxAge = config.Duration(5 * time.Minute)
	cfg.Media.InactivityTimeout = config.Duration(10 * time.Minute) // the phone sends no RTP
	cfgPath := writeConfig(t, dir, cfg)
	proc := startProcess(t, bin, cfgPath, "http://"+addr)
	b := calltest.Attach(t, "http://"+addr, hook)

	// On node A, a call that must not notice anything.
	onA := a.CreateCall(calltest.AliceID)
	hook.WaitState(t, onA.ID, graph.StateEstablished)

	// On node B: a call to a simulated user, and one to Eve's SIP phone.
	delivered := b.CreateCall(calltest.AliceID)
	hook.WaitState(t, delivered.ID, graph.StateEstablished)
	eve := newSIPPhone(t, "127.0.0.1", "eve")
	eve.register(t, sipAddr, calltest.EvePassword, cfg.SIP.Domain)
	toEve := b.CreateCall(calltest.EveID)
	eveDlg := eve.nextInvite(t)
	if err := eveDlg.RespondSDP(eve.sdp()); err != nil {
		t.Fatal(err)
	}
	hook.WaitState(t, toEve.ID, graph.StateEstablished)
	// And a second call to Eve, which still rings when B dies.
	ringing := b.CreateCall(calltest.EveID)
	ringDlg := eve.nextInvite(t)
	if err := ringDlg.Respond(180, "Ringing", nil); err != nil {
		t.Fatal(err)
	}
	hook.WaitState(t, ringing.ID, graph.StateRinging)

	// The bot's webhook goes down: a third call's notifications are
	// accepted by node B (stored in its outbox) and not delivered.
	hook.SetDown(true)
	queued := b.CreateCall(calltest.AliceID)
	waitStored(t, b, queued.ID, graph.StateEstablished, 20*time.Second)

	if err := proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	_ = proc.cmd.Wait()
	if n := len(hook.For(queued.ID)); n != 0 {
		t.Fatalf("webhook was down but accepted %d notifications", n)
	}
	hook.SetDown(false)

	for _, c := range []graph.Call{delivered, toEve, ringing, queued} {
		ended := waitEnded(t, hook, c.ID, nodeLossWait)
		if ri := ended.ResultInfo; ri == nil || ri.Code != 410 || ri.Subcode != 9020 {
			t.Fatalf("call %s ended with %+v, want 410/9020", c.ID, ended.ResultInfo)
		}
	}
	t.Logf("node death to the last terminated notification: %s", time.Since(killed).Round(time.Millisecond))
	want := []graph.CallState{graph.StateEstablishing, graph.StateRinging, graph.StateEstablished, graph.StateTerminated}
	if got := hook.States(t, queued.ID); !slices.Equal(got, want) {
		t.Fatalf("the undelivered call's notifications: %v, want %v", got, want)
	}
	bye := eve.nextBye(t)
	if callIDOf(bye) != callIDOf(eveDlg.InviteRequest) {
		t.Fatalf("BYE for Call-ID %s, want the call's %s", callIDOf(bye), callIDOf(eveDlg.InviteRequest))
	}
	select {
	case <-eveDlg.Context().Done(): // the BYE matched Eve's dialog
	case <-time.After(sipWait):
		t.Fatal("Eve's dialog did not end")
	}
	// The call that rang: node A cancelled B's INVITE (RFC 3261 §9.1, its
	// Via branch kept in the call's record), and Eve's phone stopped.
	select {
	case <-ringDlg.Context().Done():
		if cause := context.Cause(ringDlg.Context()); !errors.Is(cause, sip.ErrTransactionCanceled) {
			t.Errorf("the ringing INVITE ended by %v, want a CANCEL", cause)
		}
	case <-time.After(sipWait):
		t.Fatal("Eve's phone still rings: the lost node's INVITE was not cancelled")
	}

	var got graph.Call
	a.Bot("GET", calls+"/"+onA.ID, nil).JSON(t, &got)
	if got.State != graph.StateEstablished || a.Node.Calls.Live() != 1 {
		t.Fatalf("node A's call after the takeover: %s, %d calls live", got.State, a.Node.Calls.Live())
	}

	// Restarted, node B waits for the takeover to finish, then resumes
	// nothing: its calls are gone, and no notification is repeated.
	seen := len(hook.All())
	startProcess(t, bin, cfgPath, "http://"+addr)
	for _, c := range []graph.Call{delivered, toEve, queued} {
		if r := b.Bot("GET", calls+"/"+c.ID, nil); r.StatusCode != 404 {
			t.Fatalf("call %s after the lost node restarted: %s %s", c.ID, r.Status, r.Body)
		}
	}
	// A call made on B now is delivered after anything B's outbox could
	// still hold from before (its consumer starts at the oldest message).
	after := b.CreateCall(calltest.AliceID)
	hook.WaitState(t, after.ID, graph.StateEstablished)
	if r := b.Bot("DELETE", calls+"/"+after.ID, nil); r.StatusCode != 204 {
		t.Fatalf("hang up: %s %s", r.Status, r.Body)
	}
	waitEnded(t, hook, after.ID, 10*time.Second)
	for _, n := range hook.All()[seen:] {
		if !strings.HasPrefix(n.ResourceURL, "/communications/calls/"+after.ID) {
			t.Fatalf("after the restart, a notification of an ended call: %s %s", n.ResourceURL, n.ResourceData)
		}
	}
}

// http.requestsPerSecond and http.burst are the application's across the
// nodes: each node serving the deployment allows its share.
func TestRequestRateIsSharedByTheNodes(t *testing.T) {
	a, b := twoNodes(t, time.Second, func(c *config.Config) {
		c.HTTP.RequestsPerSecond = 0.5 // a token every 4 s on each of two nodes: none comes back during the test
		c.HTTP.Burst = 4
	})
	// Each node counts the other once it has looked at sb_nodes (every
	// fifth of its lease).
	deadline := time.Now().Add(10 * time.Second)
	for a.Node.Nodes() != 2 || b.Node.Nodes() != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("nodes counted: %d on A, %d on B", a.Node.Nodes(), b.Node.Nodes())
		}
		time.Sleep(10 * time.Millisecond) // polling the nodes' view of sb_nodes
	}
	for name, p := range map[string]*calltest.Platform{"A": a, "B": b} {
		tok := p.Token(calltest.BotID, calltest.TenantID)
		var codes []int
		for range 3 {
			codes = append(codes, p.Do(calltest.Req{Method: "GET", Path: calls + "/x", Token: tok}).StatusCode)
		}
		if !slices.Equal(codes, []int{404, 404, 429}) {
			t.Fatalf("node %s answered %v, want two requests (half the burst of 4) then 429", name, codes)
		}
	}
}

// Three nodes: when one is lost, the two others race to take it over and
// exactly one does (compare-and-set on its claim); its calls end once.
func TestThreeNodesOneTakesOverTheLostOne(t *testing.T) {
	a, b := twoNodes(t, time.Second, func(*config.Config) {})
	c := calltest.Start(t, calltest.Options{Hook: a.Hook, WeakHook: a.WeakHook, NodeLease: time.Second, Edit: func(cfg *config.Config) {
		cfg.NATS.URL = b.Config.NATS.URL
		cfg.HTTP.PublicURL = a.URL
	}})
	onC := []graph.Call{c.CreateCall(calltest.AliceID), c.CreateCall(calltest.BobID)}
	for _, call := range onC {
		a.Hook.WaitState(t, call.ID, graph.StateEstablished)
	}
	c.Node.Crash()
	for _, call := range onC {
		ended := waitEnded(t, a.Hook, call.ID, 10*time.Second)
		if ri := ended.ResultInfo; ri == nil || ri.Subcode != 9020 {
			t.Fatalf("call %s ended with %+v, want 410/9020", call.ID, ended.ResultInfo)
		}
	}
	if got := metric(t, a, "switchboard_node_takeovers_total") + metric(t, b, "switchboard_node_takeovers_total"); got != 1 {
		t.Fatalf("%v takeovers of the lost node, want 1", got)
	}
	if got := metric(t, a, "switchboard_node_takeover_calls_ended_total") + metric(t, b, "switchboard_node_takeover_calls_ended_total"); got != float64(len(onC)) {
		t.Fatalf("%v calls ended by takeovers, want %d", got, len(onC))
	}
	for _, call := range onC {
		n := 0
		for _, s := range a.Hook.States(t, call.ID) {
			if s == graph.StateTerminated {
				n++
			}
		}
		if n != 1 {
			t.Fatalf("call %s: %d terminated notifications, want 1", call.ID, n)
		}
	}
}

// waitHealthy polls another process's /healthz until it answers 200.
func waitHealthy(t *testing.T, url string, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for delay := 10 * time.Millisecond; ; delay = min(delay*2, 250*time.Millisecond) {
		if resp, err := http.Get(url + "/healthz"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not become healthy in %s", url, timeout)
		}
		time.Sleep(delay) // another process's readiness can only be asked for
	}
}

// The lost node is restarted while the node that took it over is still at
// work (the bot's webhook is down, so the lost node's notifications wait):
// it waits for its id, starts once every notification is delivered, and
// resumes and repeats nothing.
func TestLostNodeRestartedDuringTheTakeoverWaits(t *testing.T) {
	bin := switchboardBinary(t)
	natsAddr := freeAddr(t)
	a := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) { c.NATS.Listen = natsAddr }})
	hook := a.Hook
	addr := freeAddr(t)
	dir := t.TempDir()
	cfg := calltest.Config(filepath.Join(dir, "data"), a.URL, hook.URL, a.WeakHook.URL)
	cfg.HTTP.Listen = addr
	cfg.NATS.URL = "nats://" + natsAddr
	cfg.SIP.Listen = ""
	cfg.Simulator.Enabled = true
	cfg.Log.Level = "info"
	cfg.Notifications.MaxAge = config.Duration(5 * time.Minute)
	cfgPath := writeConfig(t, dir, cfg)
	url := "http://" + addr
	proc := startProcess(t, bin, cfgPath, url)
	b := calltest.Attach(t, url, hook)
	idData, err := os.ReadFile(filepath.Join(cfg.DataDir, "node-id"))
	if err != nil {
		t.Fatal(err)
	}
	bID := strings.TrimSpace(string(idData))
	nodes, err := a.Node.Store.Bucket(context.Background(), "sb_nodes", 0)
	if err != nil {
		t.Fatal(err)
	}

	call := b.CreateCall(calltest.AliceID)
	hook.WaitState(t, call.ID, graph.StateEstablished)
	// Node B counts a delivery once it has acknowledged it: killed before
	// that, it would rightly be delivered again (at least once).
	for deadline := time.Now().Add(10 * time.Second); metric(t, b, "switchboard_webhook_delivered_total") < 3; {
		if time.Now().After(deadline) {
			t.Fatal("node B did not finish its deliveries")
		}
		time.Sleep(10 * time.Millisecond) // polling another process's metrics
	}
	hook.SetDown(true)
	if err := proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = proc.cmd.Wait()

	// Node A takes B over once B's lease has run out, and ends its call;
	// the terminated notification cannot be delivered yet.
	deadline := time.Now().Add(nodeLossWait)
	for {
		if r := a.Bot("GET", calls+"/"+call.ID, nil); r.StatusCode == 404 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("node B's call was not ended")
		}
		time.Sleep(50 * time.Millisecond) // polling the takeover's progress, seen through the API
	}
	claimOf := func() nodeClaimView {
		data, _, err := nodes.Get(context.Background(), bID)
		if err != nil {
			return nodeClaimView{}
		}
		var c nodeClaimView
		_ = json.Unmarshal(data, &c)
		return c
	}
	if c := claimOf(); c.TakenOverBy != a.Node.ID {
		t.Fatalf("node B's claim during the takeover: %+v, want it held by node A (%s)", c, a.Node.ID)
	}

	restarted := exec.Command(bin, "serve", "--config", cfgPath)
	waiting := &logWatch{w: testLog{t, "switchboard: "}, want: "waiting for it to finish", seen: make(chan struct{})}
	restarted.Stdout, restarted.Stderr = waiting, waiting
	if err := restarted.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = restarted.Process.Kill(); _ = restarted.Wait() })
	select {
	case <-waiting.seen: // it found its id held by the takeover
	case <-time.After(time.Minute):
		t.Fatal("the restarted node did not wait for the takeover")
	}
	hook.SetDown(false)
	waitHealthy(t, url, time.Minute)
	if c := claimOf(); c.TakenOverBy != "" {
		t.Fatalf("node B started while its id was held by the takeover: %+v", c)
	}
	want := []graph.CallState{graph.StateEstablishing, graph.StateRinging, graph.StateEstablished, graph.StateTerminated}
	if got := hook.States(t, call.ID); !slices.Equal(got, want) {
		t.Fatalf("the call's notifications: %v, want %v", got, want)
	}
	seen := len(hook.All())
	after := b.CreateCall(calltest.AliceID)
	hook.WaitState(t, after.ID, graph.StateEstablished)
	if r := b.Bot("DELETE", calls+"/"+after.ID, nil); r.StatusCode != 204 {
		t.Fatalf("hang up: %s %s", r.Status, r.Body)
	}
	waitEnded(t, hook, after.ID, 10*time.Second)
	for _, n := range hook.All()[seen:] {
		if !strings.HasPrefix(n.ResourceURL, "/communications/calls/"+after.ID) {
			t.Fatalf("after the restart, a notification of the ended call: %s %s", n.ResourceURL, n.ResourceData)
		}
	}
}

// nodeClaimView is what the test reads of a claim in sb_nodes.
type nodeClaimView struct {
	Instance    string `json:"instance"`
	TakenOverBy string `json:"takenOverBy"`
}

// logWatch passes a process's log on and closes seen once a line holds want.
type logWatch struct {
	w    io.Writer
	want string
	mu   sync.Mutex
	buf  []byte
	seen chan struct{}
	once sync.Once
}

func (l *logWatch) Write(b []byte) (int, error) {
	l.mu.Lock()
	l.buf = append(l.buf, b...)
	if i := bytes.LastIndexByte(l.buf, '\n'); i >= 0 {
		if bytes.Contains(l.buf[:i], []byte(l.want)) {
			l.once.Do(func() { close(l.seen) })
		}
		l.buf = append(l.buf[:0], l.buf[i+1:]...)
	}
	l.mu.Unlock()
	return l.w.Write(b)
}
