package cluster_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/cluster"
	"github.com/switchboard-voice/switchboard/sdk"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// The rolling restart's load and drain: SIPp places rollingRate calls a
// second, each held rollingHold before the caller presses 1 and the bot
// hangs up; a node stopping lets its calls finish for drainTimeout
// (calls.drainTimeout), longer than any call lasts, so none is cut.
const (
	rollingRate  = 4
	rollingHold  = 4 * time.Second
	drainTimeout = 15 * time.Second
)

// TestRollingRestartBehindKamailio restarts the three nodes of a cluster
// one after the other under a steady IVR load through Kamailio, as
// docs/deploy.md says to: a node drains (what SIGTERM does: Node.Shutdown
// with calls.drainTimeout), answering new INVITEs and Kamailio's OPTIONS
// probes 503, so the dispatcher marks it inactive and sends new calls to
// the others, while its own calls finish, the bot driving them through
// the other nodes; it stops, starts again on its data directory, and once
// Kamailio probes it active it takes calls again; then the next node. No
// call fails: SIPp's calls all succeed, each reached the bot once and
// ended with the bot's hang-up, none cut by a drain (503/9007), the bot's
// every request succeeded, and every restarted node took new calls.
func TestRollingRestartBehindKamailio(t *testing.T) {
	kamailio := calltest.NeedPeer(t, "kamailio", "kamailio")
	kamcmd := calltest.NeedPeer(t, "kamcmd", "kamailio")
	sipp := calltest.NeedPeer(t, "sipp", "sip-tester")
	start := time.Now()

	l := cluster.Loopback(3, 3)
	startNATS(t, &l)

	// The nodes' HTTP on their own addresses (a restarted node listens on
	// its old one), the balancer in front: its URL is every node's public
	// URL (the tokens' issuer, where the webhook finds the signing keys),
	// so it outlives any one node.
	lns := make([]net.Listener, len(l.Nodes))
	for i, n := range l.Nodes {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(n.HTTP.Addr(), 0).String())
		if err != nil {
			t.Fatal(err)
		}
		lns[i] = ln
		l.Nodes[i].HTTP = ln.Addr().(*net.TCPAddr).AddrPort()
		l.Nodes[i].SIP = netip.AddrPortFrom(n.SIP.Addr(), 0)
	}
	l.FrontHTTP = freeTCP(t, frontIP)
	front, err := cluster.ServeBalancer(l)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = front.Close() })
	public := l.PublicURL()
	hook := calltest.NewWebhook(t, public, calltest.BotID, calltest.Bot2ID)
	trunkPort := calltest.FreeUDPPort(t, trunkIP.String())
	f := &fleet{t: t, runs: make([][]*calltest.Platform, len(l.Nodes)), down: make([]bool, len(l.Nodes)), owned: map[string]run{}}
	for i := range l.Nodes {
		p := calltest.Start(t, calltest.Options{Listener: lns[i], Hook: hook, Edit: editNode(&l, i, public, trunkPort)})
		l.Nodes[i].SIP = p.Node.SIP.Addr() // where it listens again after a restart
		f.add(i, p)
	}
	kamDir := startKamailio(t, kamailio, &l)
	dispatcher := func() map[netip.AddrPort]string { return dispatcherFlags(t, kamcmd, kamDir) }
	t.Logf("NATS, nodes and Kamailio up in %s", time.Since(start).Round(time.Millisecond))

	// The bot: a client per node (the URL stays a node's across its
	// restarts), each request for a call through a node other than its
	// owner, skipping a node that is stopping, as a balancer checking
	// /healthz would, and one that refuses the connection.
	clients := make([]*sdk.Client, len(l.Nodes))
	for i, n := range l.Nodes {
		c, err := sdk.NewClient(sdk.ClientOptions{BaseURL: "http://" + n.HTTP.String() + "/v1.0",
			TokenURL: "http://" + n.HTTP.String() + "/" + calltest.TenantID + "/oauth2/v2.0/token",
			ClientID: calltest.BotID, ClientSecret: calltest.Secret, TenantID: calltest.TenantID, MaxRetries: 8})
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	via := func(o, k int, req func(*sdk.Client) error) error {
		err := errors.New("every node is stopping")
		for j := range len(clients) {
			n := (o + k + j) % len(clients)
			if f.isDown(n) {
				continue
			}
			if err = req(clients[n]); err == nil || !errors.As(err, new(*url.Error)) {
				return err
			}
		}
		return err
	}
	bot := startIVRBot(t, hook, f.owner, via)

	// The load: SIPp through Kamailio as a trunk, until told to stop.
	dir := t.TempDir()
	if err := os.Symlink("/usr/share/sip-tester", filepath.Join(dir, "pcap")); err != nil {
		t.Fatal(err)
	}
	stats := filepath.Join(dir, "stats.csv")
	ivr := startSipp(t, sipp, dir, "ivr", "-sf", abs(t, "testdata/ivr_via_proxy.xml"), l.Front.String(), "-s", calltest.BotNumber,
		"-i", trunkIP.String(), "-p", strconv.Itoa(trunkPort), "-mp", strconv.Itoa(calltest.FreeUDPPort(t, trunkIP.String())),
		"-m", "10000", "-r", strconv.Itoa(rollingRate), "-l", "100", "-d", strconv.Itoa(int(rollingHold/time.Millisecond)),
		"-timeout", "75s", "-trace_stat", "-stf", stats, "-fd", "1")

	// Node by node: once it carries calls, drain and stop it, start it
	// again, wait until Kamailio probes it active and it takes a call,
	// then the next.
	cut := map[string]bool{} // calls up on a node when its drain began
	for i := range l.Nodes {
		old := f.current(i)
		addr := l.Nodes[i].SIP
		f.waitFor(fmt.Sprintf("calls up on node %d", i+1), 20*time.Second, func() bool { return len(f.live(i, hook)) >= 2 })
		drained := f.live(i, hook)
		for _, id := range drained {
			cut[id] = true
		}
		f.setDown(i, true)
		began := time.Now()
		stopped := make(chan error, 1)
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), drainTimeout+10*time.Second)
			defer cancel()
			stopped <- old.Node.Shutdown(ctx, time.Now().Add(drainTimeout))
		}()
		// Kamailio sees the drain in its probes (503) and marks the node
		// inactive while it still finishes its calls.
		var inactive time.Duration
		var stopErr error
		for done := false; !done; {
			select {
			case stopErr = <-stopped:
				done = true
			case <-time.After(100 * time.Millisecond):
				if inactive == 0 && strings.HasPrefix(dispatcher()[addr], "I") {
					inactive = time.Since(began)
				}
			}
		}
		drain := time.Since(began)
		if stopErr != nil {
			t.Fatalf("node %d: shutdown: %v", i+1, stopErr)
		}
		if drain >= drainTimeout {
			t.Errorf("node %d: the drain took %s, its whole timeout: calls were cut", i+1, drain)
		}
		if inactive == 0 && drain > 2500*time.Millisecond {
			t.Errorf("node %d: Kamailio still probed it active after %s of draining", i+1, drain.Round(time.Millisecond))
		}

		ln, err := net.Listen("tcp", l.Nodes[i].HTTP.String())
		if err != nil {
			t.Fatalf("node %d: its HTTP address again: %v", i+1, err)
		}
		restarted := time.Now()
		p := calltest.Start(t, calltest.Options{Listener: ln, Hook: hook, DataDir: old.Config.DataDir, Edit: editNode(&l, i, public, trunkPort)})
		if p.Node.SIP.Addr() != addr || p.Node.ID != old.Node.ID {
			t.Fatalf("node %d restarted as %s on %s, was %s on %s", i+1, p.Node.ID, p.Node.SIP.Addr(), old.Node.ID, addr)
		}
		f.add(i, p)
		f.setDown(i, false)
		up := time.Since(restarted)
		f.waitFor(fmt.Sprintf("Kamailio to probe node %d active", i+1), 10*time.Second, func() bool {
			return strings.HasPrefix(dispatcher()[addr], "A")
		})
		active := time.Since(restarted)
		f.waitFor(fmt.Sprintf("a call on node %d after its restart", i+1), 15*time.Second, func() bool {
			return len(f.callsOn(i, 1)) > 0
		})
		t.Logf("node %d: drained %d calls in %s (inactive in Kamailio after %s), restarted in %s, active after %s, a call after %s",
			i+1, len(drained), drain.Round(time.Millisecond), inactive.Round(time.Millisecond), up.Round(time.Millisecond),
			active.Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
	}

	// The load stops (SIGUSR1: no new calls, those up finish).
	if err := ivr.cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	ivr.wait(t, 30*time.Second)
	for _, err := range bot.stop() {
		t.Error(err)
	}
	created, succeeded, failed := sippTotals(t, stats)
	if failed != 0 || succeeded != created {
		t.Errorf("SIPp: %d calls, %d successful, %d failed", created, succeeded, failed)
	}

	// Every call reached the bot once, was answered and ended by the
	// bot's hang-up (200/5001), its notifications in order: none was cut
	// by a drain (503/9007) or lost with a node.
	perNode := make([][2]int, len(l.Nodes))
	for id, r := range f.calls() {
		perNode[r.node][min(r.run, 1)]++
		last := hook.WaitState(t, id, graph.StateTerminated).Call(t)
		states := hook.States(t, id)
		if len(states) < 3 || states[0] != graph.StateIncoming || states[len(states)-1] != graph.StateTerminated ||
			!slices.Contains(states, graph.StateEstablished) {
			t.Errorf("call %s (node %d, run %d): states %v", id, r.node+1, r.run+1, states)
		}
		if last.ResultInfo == nil || last.ResultInfo.Code != 200 || last.ResultInfo.Subcode != 5001 {
			t.Errorf("call %s (node %d, run %d, up at a drain: %v) ended with %+v, want the bot's hang-up (200/5001)",
				id, r.node+1, r.run+1, cut[id], last.ResultInfo)
		}
	}
	if n := len(f.calls()); n != created {
		t.Errorf("%d calls reached the bot, SIPp made %d", n, created)
	}
	if r := hook.Rejected(); len(r) > 0 {
		t.Errorf("the webhook rejected notifications: %v", r)
	}
	t.Logf("%d calls (%d up at a drain), %d successful, %d failed; per node [before, after its restart] %v; whole test %s",
		created, len(cut), succeeded, failed, perNode, time.Since(start).Round(time.Millisecond))
}

// run is where a call was: a node and which of its runs (0 before its
// restart, 1 after).
type run struct{ node, run int }

// fleet is the test's nodes across their restarts, and where each call
// the bot saw was.
type fleet struct {
	t     *testing.T
	mu    sync.Mutex
	runs  [][]*calltest.Platform // each node's runs; the last is current
	down  []bool                 // stopping or stopped: the bot avoids it
	owned map[string]run
}

func (f *fleet) add(i int, p *calltest.Platform) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.runs[i] = append(f.runs[i], p)
}

func (f *fleet) current(i int) *calltest.Platform {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.runs[i][len(f.runs[i])-1]
}

func (f *fleet) setDown(i int, down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.down[i] = down
}

func (f *fleet) isDown(i int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.down[i]
}

// owner finds the node run that delivered a call's notifications (the
// call's owner), waiting a while for the first delivery; -1 when none did.
func (f *fleet) owner(callID string) int {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		f.mu.Lock()
		runs := make([][]*calltest.Platform, len(f.runs))
		for i := range f.runs {
			runs[i] = append([]*calltest.Platform(nil), f.runs[i]...)
		}
		f.mu.Unlock()
		for i, rs := range runs {
			for k, p := range rs {
				for _, r := range p.Results() {
					if r.CallID == callID {
						f.mu.Lock()
						f.owned[callID] = run{node: i, run: k}
						f.mu.Unlock()
						return i
					}
				}
			}
		}
	}
	return -1
}

// calls is where every call the bot has seen was.
func (f *fleet) calls() map[string]run {
	f.mu.Lock()
	defer f.mu.Unlock()
	m := make(map[string]run, len(f.owned))
	for id, r := range f.owned {
		m[id] = r
	}
	return m
}

// callsOn lists the calls the bot has seen on run k of node i.
func (f *fleet) callsOn(i, k int) []string {
	var ids []string
	for id, r := range f.calls() {
		if r.node == i && r.run == k {
			ids = append(ids, id)
		}
	}
	return ids
}

// live lists the calls of node i's current run not yet terminated.
func (f *fleet) live(i int, hook *calltest.Webhook) []string {
	f.mu.Lock()
	k := len(f.runs[i]) - 1
	f.mu.Unlock()
	var ids []string
	for _, id := range f.callsOn(i, k) {
		ended := false
		for _, n := range hook.For(id) {
			var c graph.Call
			if json.Unmarshal(n.ResourceData, &c) == nil && c.State == graph.StateTerminated {
				ended = true
			}
		}
		if !ended {
			ids = append(ids, id)
		}
	}
	return ids
}

// waitFor polls cond until it holds, failing the test after within.
func (f *fleet) waitFor(what string, within time.Duration, cond func() bool) {
	f.t.Helper()
	for deadline := time.Now().Add(within); !cond(); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			f.t.Fatalf("waited %s for %s", within, what)
		}
	}
}

// dispatcherFlags is each node's state in Kamailio's dispatcher (kamcmd
// dispatcher.list): "AP" active and probed, "IP" inactive (a probe went
// unanswered or was answered 503), by the node's SIP address.
func dispatcherFlags(t *testing.T, kamcmd, kamDir string) map[netip.AddrPort]string {
	t.Helper()
	out, err := exec.Command(kamcmd, "-s", "unix:"+filepath.Join(kamDir, "kamailio_ctl"), "dispatcher.list").CombinedOutput()
	if err != nil {
		t.Fatalf("kamcmd dispatcher.list: %v\n%s", err, out)
	}
	flags := map[netip.AddrPort]string{}
	var uri netip.AddrPort
	for _, line := range strings.Split(string(out), "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok {
			continue
		}
		switch v = strings.TrimSpace(v); k {
		case "URI":
			uri, _ = netip.ParseAddrPort(strings.TrimPrefix(v, "sip:"))
		case "FLAGS":
			flags[uri] = v
		}
	}
	return flags
}

// sippTotals reads SIPp's last statistics line (-trace_stat): calls
// created, successful and failed.
func sippTotals(t *testing.T, file string) (created, succeeded, failed int) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) < 2 {
		t.Fatalf("SIPp's statistics have no figures:\n%s", data)
	}
	head, last := strings.Split(lines[0], ";"), strings.Split(lines[len(lines)-1], ";")
	get := func(name string) int {
		for i, h := range head {
			if h == name && i < len(last) {
				n, err := strconv.Atoi(last[i])
				if err != nil {
					t.Fatalf("SIPp's %s: %q", name, last[i])
				}
				return n
			}
		}
		t.Fatalf("SIPp's statistics have no %s: %s", name, lines[0])
		return 0
	}
	return get("TotalCallCreated"), get("SuccessfulCall(C)"), get("FailedCall(C)")
}
