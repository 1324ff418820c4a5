package cluster_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/cluster"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/sdk"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// The addresses of the test: Kamailio on the front IP, SIPp as a trunk
// and a phone on their own.
var (
	frontIP = netip.MustParseAddr("127.0.0.10")
	trunkIP = netip.MustParseAddr("127.0.0.30")
	phoneIP = netip.MustParseAddr("127.0.0.31")
)

// ivrCalls is how many trunk calls the IVR load makes: enough that the
// Call-ID hash gives each of three nodes some (all to two nodes or fewer:
// 3·(2/3)^24, about 1 in 5,000).
const ivrCalls = 24

// TestClusterBehindKamailio runs what `make cluster` runs, on free ports:
// three NATS servers as one JetStream cluster (three replicas), three
// nodes on it, Kamailio with deploy/kamailio/kamailio.cfg in front. SIPp
// calls the IVR through Kamailio as a trunk: the calls spread over the
// nodes, and the bot drives each through nodes that do not own it. A phone
// registers through Kamailio, calls the bot through it (digest), and a bot
// on another node calls it: the INVITE goes through Kamailio (Path). One NATS server is killed while calls are
// up: nothing accepted is lost, every call ends with its notifications in
// order.
func TestClusterBehindKamailio(t *testing.T) {
	kamailio := calltest.NeedPeer(t, "kamailio", "kamailio")
	sipp := calltest.NeedPeer(t, "sipp", "sip-tester")
	start := time.Now()

	// Three NATS servers, in-process (killing one is Shutdown).
	l := cluster.Loopback(3, 3)
	nats := startNATS(t, &l)

	// Three nodes on the cluster, in-process, one webhook for the bot.
	// They share one public URL (node 1's), as nodes behind an HTTP
	// balancer do: the issuer of every token.
	var lns []net.Listener
	for _, n := range l.Nodes {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(n.HTTP.Addr(), 0).String())
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
	}
	public := "http://" + lns[0].Addr().String()
	hook := calltest.NewWebhook(t, public, calltest.BotID, calltest.Bot2ID)
	trunkPort := calltest.FreeUDPPort(t, trunkIP.String())
	nodes := make([]*calltest.Platform, len(l.Nodes))
	for i := range l.Nodes {
		l.Nodes[i].SIP = netip.AddrPortFrom(l.Nodes[i].SIP.Addr(), 0)
		nodes[i] = calltest.Start(t, calltest.Options{Listener: lns[i], Hook: hook, Edit: editNode(&l, i, public, trunkPort)})
		l.Nodes[i].SIP = nodes[i].Node.SIP.Addr()
	}
	t.Logf("NATS and nodes up in %s", time.Since(start).Round(time.Millisecond))

	// Every stream, key-value and object bucket the nodes made has three
	// replicas.
	js := nodes[0].Node.Store.JetStream()
	lister := js.ListStreams(context.Background())
	var streams []string
	for info := range lister.Info() {
		streams = append(streams, info.Config.Name)
		if info.Config.Replicas != 3 {
			t.Errorf("stream %s has %d replicas, want 3", info.Config.Name, info.Config.Replicas)
		}
	}
	if err := lister.Err(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"KV_sb_calls", "KV_sb_keys", "KV_sb_registrations", "KV_sb_nodes", "SB_NOTIFY"} {
		if !slices.Contains(streams, want) {
			t.Errorf("no stream %s among %v", want, streams)
		}
	}
	if !slices.ContainsFunc(streams, func(s string) bool { return strings.HasPrefix(s, "OBJ_") }) {
		t.Errorf("no object store (recordings) among %v", streams)
	}

	// Kamailio in front, probing the nodes every second.
	kamDir := startKamailio(t, kamailio, &l)

	// Bots: one client per node; each takes tokens from another node's
	// token endpoint (any node's token is good on all).
	clients := make([]*sdk.Client, len(nodes))
	for i, p := range nodes {
		c, err := sdk.NewClient(sdk.ClientOptions{BaseURL: p.URL + "/v1.0",
			TokenURL: nodes[(i+1)%len(nodes)].URL + "/" + calltest.TenantID + "/oauth2/v2.0/token",
			ClientID: calltest.BotID, ClientSecret: calltest.Secret, TenantID: calltest.TenantID, MaxRetries: 8})
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = c
	}
	owner := func(callID string) int {
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			for i, p := range nodes {
				for _, r := range p.Results() {
					if r.CallID == callID {
						return i
					}
				}
			}
		}
		return -1
	}

	// The IVR bot: answer each incoming call through the node after its
	// owner, subscribe to tones through the one after that, and hang up on
	// "1" through the owner's predecessor.
	bot := startIVRBot(t, hook, owner, func(o, k int, req func(*sdk.Client) error) error { return req(clients[(o+k)%3]) })

	// The phone registers through Kamailio, which adds its Path.
	dir := t.TempDir()
	if err := os.Symlink("/usr/share/sip-tester", filepath.Join(dir, "pcap")); err != nil {
		t.Fatal(err)
	}
	eve := startPhone(t, phoneIP, "eve")
	if res := eve.register(l.Front, frontIP.String(), "eve", calltest.EvePassword); res.StatusCode != 200 {
		t.Fatalf("register through Kamailio: %d %s", res.StatusCode, res.Reason)
	} else if h := res.GetHeader("Path"); h == nil || !strings.Contains(h.Value(), l.Front.String()) {
		t.Errorf("the registrar's 200 shows Path %v, want Kamailio's", h)
	}

	// The phone calls the bot through Kamailio: digest, and its answer
	// reaches the node that challenged it (the Call-ID hash).
	phoneCall := eve.call(l.Front, frontIP.String(), calltest.BotNumber, "eve", calltest.EvePassword)
	if rr := phoneCall.InviteResponse.GetHeader("Record-Route"); rr == nil || !strings.Contains(rr.Value(), l.Front.String()) {
		t.Errorf("the answer to the phone's INVITE has Record-Route %v, want Kamailio's", rr)
	}
	var phoneCallID string
	hook.Wait(t, "", 10*time.Second, "the phone's call", func(ns []calltest.Notification) bool {
		for _, n := range ns {
			var c graph.Call
			if n.ChangeType == graph.ChangeCreated && json.Unmarshal(n.ResourceData, &c) == nil && c.Source != nil &&
				c.Source.Identity != nil && c.Source.Identity.User != nil && c.Source.Identity.User.ID == calltest.EveID {
				phoneCallID = c.ID
				return true
			}
		}
		return false
	})
	// Established (our ACK reached the node) before the BYE: Kamailio may
	// relay an ACK and a BYE sent together in either order.
	hook.WaitState(t, phoneCallID, graph.StateEstablished)
	if err := phoneCall.Bye(context.Background()); err != nil {
		t.Fatalf("phone: BYE: %v", err)
	}

	// The IVR load through Kamailio, as a trunk.
	ivr := startSipp(t, sipp, dir, "ivr", "-sf", abs(t, "testdata/ivr_via_proxy.xml"), l.Front.String(), "-s", calltest.BotNumber,
		"-i", trunkIP.String(), "-p", strconv.Itoa(trunkPort), "-mp", strconv.Itoa(calltest.FreeUDPPort(t, trunkIP.String())),
		"-m", strconv.Itoa(ivrCalls), "-r", "6", "-l", strconv.Itoa(ivrCalls), "-d", "1500", "-timeout", "75s")

	// A bot on node 2 calls the phone, which registered through Kamailio
	// with whichever node its Call-ID hashed to.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := clients[1].CreateCall(ctx, &graph.Call{CallbackURI: hook.URL, TenantID: calltest.TenantID,
		RequestedModalities: []graph.Modality{graph.ModalityAudio}, MediaConfig: &graph.MediaConfig{ODataType: graph.TypeServiceHostedMediaConfig},
		Targets: []graph.InvitationParticipantInfo{{Identity: &graph.IdentitySet{User: &graph.Identity{ID: calltest.EveID}}}}})
	if err != nil {
		t.Fatalf("call the phone from node 2: %v", err)
	}

	// With calls up, one NATS server goes.
	hook.Wait(t, "", 30*time.Second, "a few IVR calls established", func(ns []calltest.Notification) bool {
		n := 0
		for _, m := range ns {
			var c graph.Call
			if json.Unmarshal(m.ResourceData, &c) == nil && c.State == graph.StateEstablished {
				n++
			}
		}
		return n >= 4
	})
	nats[1].Shutdown()
	t.Logf("killed %s at %s", l.NATS[1].Name, time.Since(start).Round(time.Millisecond))

	inv := eve.nextInvite(30 * time.Second)
	if v := inv.Via(); v == nil || v.Host != frontIP.String() || v.Port != int(l.Front.Port()) {
		t.Errorf("the phone got the INVITE from Via %v, want through Kamailio %s", v, l.Front)
	}
	if inv.GetHeader("Record-Route") == nil {
		t.Error("the phone's INVITE has no Record-Route: in-dialog requests would bypass Kamailio")
	}
	hook.WaitState(t, out.ID, graph.StateEstablished)
	if err := clients[2].HangUp(ctx, out.ID); err != nil {
		t.Fatalf("hang up the phone's call through node 3: %v", err)
	}
	if bye := eve.nextBye(30 * time.Second); bye.Via().Host != frontIP.String() {
		t.Errorf("the BYE came from Via %v, want through Kamailio", bye.Via())
	}
	hook.WaitState(t, out.ID, graph.StateTerminated)

	ivr.wait(t, 80*time.Second)
	for _, err := range bot.stop() {
		t.Error(err)
	}
	owners := bot.owners

	// Kamailio has probed every node with OPTIONS (every second) all along
	// and found each up: active and probing, none marked inactive.
	if kamcmd, err := exec.LookPath("kamcmd"); err == nil {
		out, err := exec.Command(kamcmd, "-s", "unix:"+filepath.Join(kamDir, "kamailio_ctl"), "dispatcher.list").CombinedOutput()
		if err != nil {
			t.Errorf("kamcmd dispatcher.list: %v\n%s", err, out)
		} else if n := strings.Count(string(out), "FLAGS: AP"); n != len(nodes) {
			t.Errorf("%d of %d nodes active in Kamailio's dispatcher:\n%s", n, len(nodes), out)
		}
	}

	// Every IVR call: accepted, answered, ended, its notifications in
	// order; each node owned some.
	perNode := make([]int, len(nodes))
	for id, o := range owners {
		perNode[o]++
		hook.WaitState(t, id, graph.StateTerminated)
		states := hook.States(t, id)
		if len(states) < 3 || states[0] != graph.StateIncoming || states[len(states)-1] != graph.StateTerminated ||
			!slices.Contains(states, graph.StateEstablished) {
			t.Errorf("call %s (node %d): states %v", id, o+1, states)
		}
	}
	if len(owners) != ivrCalls+1 {
		t.Errorf("%d calls reached the bot, want %d IVR calls and the phone's", len(owners), ivrCalls)
	}
	for i, n := range perNode {
		if n == 0 {
			t.Errorf("node %d got none of the %d calls: %v", i+1, ivrCalls, perNode)
		}
	}
	if r := hook.Rejected(); len(r) > 0 {
		t.Errorf("the webhook rejected notifications: %v", r)
	}
	t.Logf("calls per node %v; whole test %s", perNode, time.Since(start).Round(time.Millisecond))
}

// startNATS starts l's NATS servers in-process as one JetStream cluster,
// on free ports of their addresses (written back to l), and waits until
// each is ready. They are shut down at cleanup.
func startNATS(t *testing.T, l *cluster.Layout) []*server.Server {
	t.Helper()
	for i := range l.NATS {
		l.NATS[i].Client = freeTCP(t, l.NATS[i].Client.Addr())
		l.NATS[i].Cluster = freeTCP(t, l.NATS[i].Cluster.Addr())
	}
	nats := make([]*server.Server, len(l.NATS))
	for i := range l.NATS {
		s, err := server.NewServer(l.NATSOptions(i, t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		s.Start()
		nats[i] = s
		t.Cleanup(s.Shutdown)
	}
	for _, s := range nats {
		if !s.ReadyForConnections(20 * time.Second) {
			t.Fatal("nats server not ready")
		}
	}
	return nats
}

// editNode configures node i of l for a test: the layout's settings (its
// addresses as l has them when the node starts: SIP port 0 for any), the
// public URL bots' tokens and webhooks use, and SIPp's trunk on trunkIP.
func editNode(l *cluster.Layout, i int, public string, trunkPort int) func(*config.Config) {
	return func(c *config.Config) {
		*c = l.NodeConfig(*c, i, c.DataDir)
		c.HTTP.PublicURL = public
		c.SIP.Trunks = []config.Trunk{{Name: "pstn", Address: netip.AddrPortFrom(trunkIP, uint16(trunkPort)).String(),
			AllowFrom: []string{trunkIP.String()}}}
		c.Log.Level = "info"
	}
}

// startKamailio runs Kamailio with deploy/kamailio/kamailio.cfg on a free
// port of the front IP (written to l.Front), in front of l's nodes,
// probing them every second. It returns the directory of its control
// socket (kamcmd), and stops it at cleanup, showing its log if the test
// failed.
func startKamailio(t *testing.T, bin string, l *cluster.Layout) string {
	t.Helper()
	l.Front = freeUDP(t, frontIP)
	var kamLog lockedBuffer
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	dir := t.TempDir()
	k, err := cluster.StartKamailio(ctx, cluster.KamailioOptions{Binary: bin, Config: "../../deploy/kamailio/kamailio.cfg",
		Dir: dir, Listen: l.Front, Dispatcher: l.DispatcherList(), PingInterval: time.Second, Output: &kamLog})
	if err != nil {
		t.Fatalf("%v\n%s", err, kamLog.String())
	}
	t.Cleanup(func() {
		k.Stop(5 * time.Second)
		if t.Failed() {
			t.Logf("kamailio's log:\n%s", tail(kamLog.String(), 60))
		}
	})
	return dir
}

// ivrBot is the tests' IVR bot: it answers each incoming call its webhook
// gets, subscribes to the call's tones, and hangs up on the caller's "1";
// a call the caller ends first (the phone's: it hangs up once answered)
// is left to end. Every request goes through a node that does not own the
// call (via), so commands are forwarded to the owner.
type ivrBot struct {
	hook *calltest.Webhook
	// owner is the node that delivered the call's notifications, -1 when
	// none did in time.
	owner func(callID string) int
	// via runs req with a client of node owner+k (of the nodes, in a
	// ring), or of another node when that one is stopped.
	via func(owner, k int, req func(*sdk.Client) error) error

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	errs    []error
	owners  map[string]int // call id → owner node
	handled map[string]bool
}

// startIVRBot runs the bot until stop (or cleanup).
func startIVRBot(t *testing.T, hook *calltest.Webhook, owner func(string) int, via func(int, int, func(*sdk.Client) error) error) *ivrBot {
	b := &ivrBot{hook: hook, owner: owner, via: via, owners: map[string]int{}, handled: map[string]bool{}}
	b.ctx, b.cancel = context.WithCancel(context.Background())
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		for b.ctx.Err() == nil {
			for _, n := range hook.All() {
				var c graph.Call
				if n.ChangeType != graph.ChangeCreated || json.Unmarshal(n.ResourceData, &c) != nil || c.State != graph.StateIncoming {
					continue
				}
				b.mu.Lock()
				seen := b.handled[c.ID]
				b.handled[c.ID] = true
				b.mu.Unlock()
				if !seen {
					b.wg.Add(1)
					go b.drive(c)
				}
			}
			time.Sleep(20 * time.Millisecond)
		}
	}()
	t.Cleanup(func() { b.stop() })
	return b
}

// stop ends the bot and returns what went wrong; owners is complete then.
func (b *ivrBot) stop() []error {
	b.cancel()
	b.wg.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.errs
}

func (b *ivrBot) fail(err error) {
	b.mu.Lock()
	b.errs = append(b.errs, err)
	b.mu.Unlock()
}

func (b *ivrBot) drive(c graph.Call) {
	defer b.wg.Done()
	o := b.owner(c.ID)
	if o < 0 {
		b.fail(fmt.Errorf("call %s: no node delivered its notification", c.ID))
		return
	}
	b.mu.Lock()
	b.owners[c.ID] = o
	b.mu.Unlock()
	ctx, cancel := context.WithTimeout(b.ctx, 40*time.Second)
	defer cancel()
	if err := b.via(o, 1, func(cl *sdk.Client) error {
		err := cl.Answer(ctx, c.ID, &graph.AnswerRequest{CallbackURI: b.hook.URL, AcceptedModalities: []graph.Modality{graph.ModalityAudio},
			MediaConfig: &graph.MediaConfig{ODataType: graph.TypeServiceHostedMediaConfig}})
		// An answer the store could not confirm (a NATS server killed
		// under it) is answered 503 and may have taken effect; the SDK
		// retries, and the retry finds the call answered (409). A bot
		// reads the call then, as the README says.
		var gerr *sdk.GraphError
		if errors.As(err, &gerr) && gerr.StatusCode == http.StatusConflict {
			if got, gerr2 := cl.GetCall(ctx, c.ID); gerr2 == nil &&
				(got.State == graph.StateEstablishing || got.State == graph.StateEstablished) {
				return nil
			}
		}
		return err
	}); err != nil {
		b.fail(fmt.Errorf("answer %s (owner node %d): %w", c.ID, o+1, err))
		return
	}
	if c.Source != nil && c.Source.Identity != nil && c.Source.Identity.User != nil {
		return // the phone's call: it hangs up once answered
	}
	if err := b.via(o, 2, func(cl *sdk.Client) error {
		_, err := cl.SubscribeToTone(ctx, c.ID, &graph.ClientContextRequest{})
		return err
	}); err != nil {
		b.fail(fmt.Errorf("subscribeToTone %s (owner node %d): %w", c.ID, o+1, err))
		return
	}
	for ctx.Err() == nil {
		for _, m := range b.hook.For(c.ID) {
			var ci graph.Call
			if m.ResourceURL != "/communications/calls/"+c.ID || json.Unmarshal(m.ResourceData, &ci) != nil {
				continue
			}
			if ci.State == graph.StateTerminated {
				return // the caller hung up first (the phone's call)
			}
			if ci.ToneInfo != nil && ci.ToneInfo.Tone == graph.Tone1 {
				if err := b.via(o, 2, func(cl *sdk.Client) error { return cl.HangUp(ctx, c.ID) }); err != nil {
					b.fail(fmt.Errorf("hang up %s (owner node %d): %w", c.ID, o+1, err))
				}
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.fail(fmt.Errorf("call %s: no tone 1", c.ID))
}

type sippRun struct {
	name string
	cmd  *exec.Cmd
	out  *lockedBuffer
	dir  string
	done chan error
}

func startSipp(t *testing.T, bin, dir, name string, args ...string) *sippRun {
	t.Helper()
	args = append(args, "-nostdin", "-timeout_error", "-trace_err", "-error_file", filepath.Join(dir, name+"-err.log"))
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	out := &lockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	r := &sippRun{name: name, cmd: cmd, out: out, dir: dir, done: make(chan error, 1)}
	go func() { r.done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-r.done
		r.done <- nil
	})
	return r
}

func (r *sippRun) wait(t *testing.T, within time.Duration) {
	t.Helper()
	select {
	case err := <-r.done:
		r.done <- err
		if err != nil {
			errLog, _ := os.ReadFile(filepath.Join(r.dir, r.name+"-err.log"))
			t.Fatalf("sipp %s: %v\n%s\n%s", r.name, err, tail(r.out.String(), 40), tail(string(errLog), 80))
		}
	case <-time.After(within):
		t.Fatalf("sipp %s still running after %s\n%s", r.name, within, tail(r.out.String(), 40))
	}
}

func freeTCP(t *testing.T, ip netip.Addr) netip.AddrPort {
	t.Helper()
	ln, err := net.Listen("tcp", netip.AddrPortFrom(ip, 0).String())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).AddrPort()
}

func freeUDP(t *testing.T, ip netip.Addr) netip.AddrPort {
	t.Helper()
	return netip.AddrPortFrom(ip, uint16(calltest.FreeUDPPort(t, ip.String())))
}

func abs(t *testing.T, p string) string {
	t.Helper()
	a, err := filepath.Abs(p)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func tail(s string, lines int) string {
	ls := strings.Split(s, "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return strings.Join(ls, "\n")
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
