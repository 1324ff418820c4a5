package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/switchboard-voice/switchboard/internal/cluster"
	"github.com/switchboard-voice/switchboard/internal/config"
)

// The cluster's loopback addresses: its own, away from internal/cluster's
// fixed layout (127.0.0.10–.23, which its test and `make cluster` use), with
// ports picked free at start.
const (
	clusterFrontIP = 40 // 127.0.0.40: Kamailio and the HTTP front
	clusterNodeIP  = 41 // 127.0.0.41..: the nodes
	clusterNATSIP  = 51 // 127.0.0.51..: the NATS servers
)

// clusterReport is sbbench cluster's result, also written as JSON. Every
// figure is over the measured load (after the warm-up): deltas between a
// reading just before SIPp starts and one after the last call ended.
type clusterReport struct {
	Machine     machine `json:"machine"`
	Command     string  `json:"command"`
	SIPpCommand string  `json:"sippCommand"`
	Nodes       int     `json:"nodes"`
	NATSServers int     `json:"natsServers"`
	Replicas    int     `json:"replicas"`
	Concurrent  int     `json:"concurrent"`
	Rate        float64 `json:"rate"`
	HoldS       float64 `json:"holdSeconds"`
	Total       int     `json:"total"`

	Created        int            `json:"created"`
	Successful     int            `json:"successful"`
	SIPpFailed     int            `json:"sippFailed"`
	SIPpFailedBy   map[string]int `json:"sippFailedBy,omitempty"`
	PeakConcurrent int            `json:"peakConcurrent"`
	CallsPerSecond float64        `json:"callsPerSecond"`
	SetupP50MS     float64        `json:"setupP50ms"`
	SetupP99MS     float64        `json:"setupP99ms"`
	BotCalls       int            `json:"botCalls"`
	BotFailed      int            `json:"botFailed"`
	BotFailures    map[string]int `json:"botFailures,omitempty"`
	// InvitesPerNode is how Kamailio spread the calls: INVITEs each node
	// answered 200.
	InvitesPerNode []float64 `json:"invitesPerNode"`

	WallS float64 `json:"wallSeconds"`
	// CPU in ms over the load, and per call created.
	NodesCPUms        float64   `json:"nodesCpuMs"`
	NodeCPUms         []float64 `json:"nodeCpuMs"`
	NATSCPUms         float64   `json:"natsCpuMs"`
	KamailioCPUms     float64   `json:"kamailioCpuMs"`
	NodesCPUmsPerCall float64   `json:"nodesCpuMsPerCall"`
	NATSCPUmsPerCall  float64   `json:"natsCpuMsPerCall"`
	KamCPUmsPerCall   float64   `json:"kamailioCpuMsPerCall"`
	MachineBusyPct    float64   `json:"machineBusyPercent"` // over the load, of all cores
	// The idle cluster before the load (heartbeats, leases, probes): CPU
	// in percent of one core, NATS messages per second.
	IdleS              float64 `json:"idleSeconds"`
	IdleNodesCPUPct    float64 `json:"idleNodesCpuPercent"`
	IdleNATSCPUPct     float64 `json:"idleNatsCpuPercent"`
	IdleNATSMsgsPerSec float64 `json:"idleNatsInMsgsPerSecond"` // routes included
	IdleClientMsgsPerS float64 `json:"idleNatsClientMsgsPerSecond"`
	BackgroundPct      float64 `json:"backgroundCpuPercent"`

	// NATS: the three servers' /varz summed.
	NATS        natsStats `json:"nats"`
	NATSPerCall natsRates `json:"natsPerCall"`
	// StreamWrites are the messages each stream stored over the load (its
	// last sequence's advance), per call: JetStream's storage writes, each
	// made on every replica.
	StreamWrites        map[string]float64 `json:"streamWritesPerCall"`
	StreamWritesPerCall float64            `json:"allStreamWritesPerCall"`
	Out                 string             `json:"out"`
}

// natsStats are the counters of nats-server's /varz this benchmark reads.
// The in_/out_ totals include the routes between the servers (JetStream's
// replication and forwarded messages); the client ones are the nodes'
// connections only.
type natsStats struct {
	InMsgs         int64 `json:"in_msgs"`
	OutMsgs        int64 `json:"out_msgs"`
	InBytes        int64 `json:"in_bytes"`
	OutBytes       int64 `json:"out_bytes"`
	InClientMsgs   int64 `json:"in_client_msgs"`
	OutClientMsgs  int64 `json:"out_client_msgs"`
	InClientBytes  int64 `json:"in_client_bytes"`
	OutClientBytes int64 `json:"out_client_bytes"`
	JetStreamAPI   int64 `json:"jetstream_api"` // $JS.API requests served (not KV puts or direct gets)
}

// parseJsz reads each stream's last sequence from a /jsz?streams=true body.
func parseJsz(r io.Reader) (map[string]uint64, error) {
	var v struct {
		Accounts []struct {
			Streams []struct {
				Name  string `json:"name"`
				State struct {
					LastSeq uint64 `json:"last_seq"`
				} `json:"state"`
			} `json:"stream_detail"`
		} `json:"account_details"`
	}
	if err := json.NewDecoder(r).Decode(&v); err != nil {
		return nil, fmt.Errorf("jsz: %w", err)
	}
	seq := map[string]uint64{}
	for _, a := range v.Accounts {
		for _, st := range a.Streams {
			seq[st.Name] = max(seq[st.Name], st.State.LastSeq)
		}
	}
	return seq, nil
}

// streamWrites is what each stream stored between two readings, per call.
func streamWrites(s0, s1 map[string]uint64, calls int) (per map[string]float64, all float64) {
	per = map[string]float64{}
	if calls <= 0 {
		return per, 0
	}
	for name, v := range s1 {
		if d := v - min(v, s0[name]); d > 0 {
			per[name] = float64(d) / float64(calls)
			all += per[name]
		}
	}
	return per, all
}

// natsRates are natsStats divided by the calls.
type natsRates struct {
	InMsgs, OutMsgs, InClientMsgs, OutClientMsgs float64
	InKB, InClientKB                             float64
	JetStreamAPI                                 float64
}

// parseVarz reads the counters from a /varz body.
func parseVarz(r io.Reader) (natsStats, error) {
	var v struct {
		natsStats
		JetStream struct {
			Stats struct {
				API struct {
					Total int64 `json:"total"`
				} `json:"api"`
			} `json:"stats"`
		} `json:"jetstream"`
	}
	if err := json.NewDecoder(r).Decode(&v); err != nil {
		return natsStats{}, fmt.Errorf("varz: %w", err)
	}
	s := v.natsStats
	s.JetStreamAPI = v.JetStream.Stats.API.Total
	return s, nil
}

func (a natsStats) add(b natsStats) natsStats {
	return natsStats{a.InMsgs + b.InMsgs, a.OutMsgs + b.OutMsgs, a.InBytes + b.InBytes, a.OutBytes + b.OutBytes,
		a.InClientMsgs + b.InClientMsgs, a.OutClientMsgs + b.OutClientMsgs, a.InClientBytes + b.InClientBytes,
		a.OutClientBytes + b.OutClientBytes, a.JetStreamAPI + b.JetStreamAPI}
}

func (a natsStats) sub(b natsStats) natsStats {
	return natsStats{a.InMsgs - b.InMsgs, a.OutMsgs - b.OutMsgs, a.InBytes - b.InBytes, a.OutBytes - b.OutBytes,
		a.InClientMsgs - b.InClientMsgs, a.OutClientMsgs - b.OutClientMsgs, a.InClientBytes - b.InClientBytes,
		a.OutClientBytes - b.OutClientBytes, a.JetStreamAPI - b.JetStreamAPI}
}

func (a natsStats) per(calls int) natsRates {
	if calls <= 0 {
		return natsRates{}
	}
	n := float64(calls)
	return natsRates{InMsgs: float64(a.InMsgs) / n, OutMsgs: float64(a.OutMsgs) / n,
		InClientMsgs: float64(a.InClientMsgs) / n, OutClientMsgs: float64(a.OutClientMsgs) / n,
		InKB: float64(a.InBytes) / n / 1024, InClientKB: float64(a.InClientBytes) / n / 1024,
		JetStreamAPI: float64(a.JetStreamAPI) / n}
}

// clusterRun is the processes of one sbbench cluster run.
type clusterRun struct {
	layout   cluster.Layout
	monitors []string // each NATS server's monitoring URL
	nats     []*cluster.Process
	nodes    []*cluster.Process
	kam      *cluster.Process
	front    *http.Server
}

// stop ends everything in reverse order of start.
func (r *clusterRun) stop() {
	if r.front != nil {
		_ = r.front.Close()
	}
	if r.kam != nil {
		r.kam.Stop(5 * time.Second)
	}
	for i := len(r.nodes) - 1; i >= 0; i-- {
		// The first SIGTERM drains (nothing is left), the second ends.
		r.nodes[i].Stop(15 * time.Second)
	}
	for i := len(r.nats) - 1; i >= 0; i-- {
		r.nats[i].Stop(10 * time.Second)
	}
}

// cpu reads the CPU time so far of the nodes, the NATS servers and
// Kamailio (whose workers are its children).
func (r *clusterRun) cpu() (nodes []time.Duration, nats, kam time.Duration, err error) {
	for _, p := range r.nodes {
		c, err := readCPU(p.PID())
		if err != nil {
			return nil, 0, 0, err
		}
		nodes = append(nodes, c.Total())
	}
	for _, p := range r.nats {
		c, err := readCPU(p.PID())
		if err != nil {
			return nil, 0, 0, err
		}
		nats += c.Total()
	}
	if kam, err = treeCPU(r.kam.PID()); err != nil {
		return nil, 0, 0, err
	}
	return nodes, nats, kam, nil
}

// treeCPU is pid's CPU and its live children's.
func treeCPU(pid int) (time.Duration, error) {
	c, err := readCPU(pid)
	if err != nil {
		return 0, err
	}
	total := c.Total()
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, e := range ents {
		child, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) < 2 || f[1] != strconv.Itoa(pid) {
			continue
		}
		if cc, err := parseStat(b, time.Now()); err == nil && child != pid {
			total += cc.Total()
		}
	}
	return total, nil
}

// varz sums the servers' counters.
func (r *clusterRun) varz() (natsStats, error) {
	var sum natsStats
	for _, m := range r.monitors {
		res, err := http.Get(m + "/varz")
		if err != nil {
			return natsStats{}, err
		}
		s, err := parseVarz(res.Body)
		res.Body.Close()
		if err != nil {
			return natsStats{}, err
		}
		sum = sum.add(s)
	}
	return sum, nil
}

// streams reads every stream's last sequence, the highest any server
// reports (a follower may lag).
func (r *clusterRun) streams() (map[string]uint64, error) {
	seq := map[string]uint64{}
	for _, m := range r.monitors {
		res, err := http.Get(m + "/jsz?streams=true")
		if err != nil {
			return nil, err
		}
		s, err := parseJsz(res.Body)
		res.Body.Close()
		if err != nil {
			return nil, err
		}
		for k, v := range s {
			seq[k] = max(seq[k], v)
		}
	}
	return seq, nil
}

// nodeMetrics scrapes every node's /metrics.
func (r *clusterRun) nodeMetrics() ([]map[string]float64, error) {
	var out []map[string]float64
	for _, n := range r.layout.Nodes {
		m, err := (&node{httpURL: "http://" + n.HTTP.String()}).metrics()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", n.Name, err)
		}
		out = append(out, m)
	}
	return out, nil
}

func runCluster(args []string) error {
	fs := flag.NewFlagSet("cluster", flag.ExitOnError)
	var c common
	c.register(fs)
	nodes := fs.Int("nodes", 3, "Switchboard nodes, behind Kamailio, on a JetStream cluster of -nats servers")
	servers := fs.Int("nats", 3, "NATS servers (one JetStream cluster; streams and buckets on min(3, servers) replicas)")
	natsBin := fs.String("nats-server", "", "the nats-server binary; empty: go build the version go.mod pins into the output folder")
	kamBin := fs.String("kamailio", "kamailio", "the kamailio binary")
	calls := fs.Int("calls", 200, "concurrent calls to hold (SIPp -l)")
	rate := fs.Float64("rate", 20, "new calls per second (SIPp -r)")
	hold := fs.Duration("hold", 20*time.Second, "how long each call lasts from its answer to the caller's BYE")
	total := fs.Int("total", 0, "calls to place in all (SIPp -m; default -calls)")
	warmup := fs.Int("warmup", 10, "IVR calls placed and ended before measuring")
	idleFor := fs.Duration("idle", 10*time.Second, "measure the idle cluster this long before the load (0: not)")
	_ = fs.Parse(args)
	if *total == 0 {
		*total = *calls
	}
	if *nodes < 1 || *nodes > 9 || *servers < 1 || *servers > 9 {
		return errors.New("-nodes and -nats must be 1 to 9")
	}
	if *hold < dtmfAt+time.Second || *hold < time.Duration(promptSecs+recordSecs+1)*time.Second {
		return fmt.Errorf("-hold must be at least %v", max(dtmfAt+time.Second, time.Duration(promptSecs+recordSecs+1)*time.Second))
	}
	const scenario = "ivr_load_dtmf_proxy.xml"
	pause := *hold - dtmfAt
	_, loadFor := loadTimes(*calls, *total, *rate, *hold)
	sippTimeout := 2*loadFor + 30*time.Second
	if c.timeout == 0 {
		c.timeout = sippTimeout + 5*time.Minute
	}
	ctx, cancel := runContext(c.timeout)
	defer cancel()
	raiseNoFile()
	if err := preflight(&c); err != nil {
		return err
	}
	repo := c.repo
	if repo == "" {
		var err error
		if repo, err = findRepo(); err != nil {
			return err
		}
	}
	kam, err := exec.LookPath(*kamBin)
	if err != nil {
		return fmt.Errorf("kamailio not found (Debian package kamailio): %w", err)
	}
	out := c.out
	if out == "" {
		if out, err = os.MkdirTemp("", "sbbench-cluster-"+time.Now().Format("20060102-150405")+"-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	logf("output in %s", out)
	bin := c.server
	if bin == "" {
		logf("building the switchboard binary from %s", repo)
		if bin, err = buildServer(ctx, repo, out); err != nil {
			return err
		}
	}
	nbin := *natsBin
	if nbin == "" {
		nbin = filepath.Join(out, "nats-server")
		cmd := exec.CommandContext(ctx, "go", "build", "-o", nbin, "github.com/nats-io/nats-server/v2")
		cmd.Dir = repo
		if b, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go build nats-server: %w\n%s", err, b)
		}
	}
	rtpMin, rtpMax, err := c.portRange()
	if err != nil {
		return err
	}

	b, err := newBot(botIVR, c.botWorkers, promptWAV(promptSecs), recordSecs)
	if err != nil {
		return err
	}
	defer b.close()
	l, monitors, err := clusterLayout(*nodes, *servers)
	if err != nil {
		return err
	}
	sippPort, err1 := freeUDP(sippIP, false)
	ctrlPort, err2 := freeUDP("127.0.0.1", false)
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	run := &clusterRun{layout: l, monitors: monitors}
	defer run.stop()
	nc := nodeConfig{sippPort: sippPort, callback: b.callback, logLevel: c.logLevel, rtpMin: rtpMin, rtpMax: rtpMax,
		inactivity: *hold + time.Minute}
	if err := run.start(ctx, out, bin, nbin, kam, filepath.Join(repo, "deploy", "kamailio", "kamailio.cfg"), nc.config()); err != nil {
		return err
	}
	if err := b.connect(ctx, l.PublicURL(), c.verify); err != nil {
		return err
	}
	e := &env{c: &c, out: out, bot: b, node: &node{sipAddr: l.Front.String()}, sippPort: sippPort, ctrlPort: ctrlPort, mediaPort: 6000}
	if rtpMin <= 16000 && rtpMax >= 6000 {
		e.mediaPort = 40000
	}

	rep := &clusterReport{Machine: describeMachine(c.sipp), Command: "sbbench " + strings.Join(os.Args[1:], " "),
		Nodes: *nodes, NATSServers: *servers, Replicas: min(3, *servers), Concurrent: *calls, Rate: *rate,
		HoldS: hold.Seconds(), Total: *total, Out: out}
	if *warmup > 0 {
		logf("warm-up: %d IVR calls", *warmup)
		wHold := time.Duration(promptSecs+recordSecs+3) * time.Second
		wr, err := e.sippRun("warmup", scenario, 10, *warmup, *warmup, wHold-dtmfAt, 90*time.Second).run(ctx)
		if err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		if err := run.settle(ctx, b, 60*time.Second); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		if wr.Successful == 0 {
			return fmt.Errorf("warm-up: no call succeeded; see %s", out)
		}
		b.reset()
	}
	rep.BackgroundPct = waitQuiet(ctx, os.Getpid(), c.quietWait)
	if *idleFor > 0 {
		if err := run.idle(ctx, rep, *idleFor); err != nil {
			return err
		}
	}

	m0, err := run.nodeMetrics()
	if err != nil {
		return err
	}
	n0, nats0, kam0, err := run.cpu()
	if err != nil {
		return err
	}
	v0, err := run.varz()
	if err != nil {
		return err
	}
	s0, err := run.streams()
	if err != nil {
		return err
	}
	busy0, all0, err := readMachineCPU()
	if err != nil {
		return err
	}
	t0 := time.Now()
	load := e.sippRun("cluster", scenario, *rate, *calls, *total, pause, sippTimeout)
	rep.SIPpCommand = load.Command()
	logf("load: %s", rep.SIPpCommand)
	sr, err := load.run(ctx)
	if err != nil {
		return err
	}
	logf("SIPp done: %d calls created, %d successful, %d failed; waiting for the last calls to end", sr.Created, sr.Successful, sr.Failed)
	if err := run.settle(ctx, b, 60*time.Second); err != nil {
		logf("%v", err)
	}
	rep.WallS = time.Since(t0).Seconds()
	n1, nats1, kam1, err := run.cpu()
	if err != nil {
		return err
	}
	v1, err := run.varz()
	if err != nil {
		return err
	}
	s1, err := run.streams()
	if err != nil {
		return err
	}
	busy1, all1, err := readMachineCPU()
	if err != nil {
		return err
	}
	m1, err := run.nodeMetrics()
	if err != nil {
		return err
	}

	rep.Created, rep.Successful, rep.SIPpFailed, rep.SIPpFailedBy = sr.Created, sr.Successful, sr.Failed, sr.FailedBy
	for _, row := range sr.Rows {
		rep.PeakConcurrent = max(rep.PeakConcurrent, row.Current)
	}
	if w := creationWindow(sr.Rows); w > 0 {
		rep.CallsPerSecond = float64(sr.Created) / w.Seconds()
	}
	rep.SetupP50MS = float64(percentile(sr.RTT, 0.5)) / 1e6
	rep.SetupP99MS = float64(percentile(sr.RTT, 0.99)) / 1e6
	rep.BotCalls = len(b.Calls())
	rep.BotFailed, rep.BotFailures = failureSummary(b.Calls(), botIVR)
	for i := range m1 {
		rep.InvitesPerNode = append(rep.InvitesPerNode, invitesByStatus(m0[i], m1[i])["200"])
	}
	for i := range n1 {
		ms := float64((n1[i] - n0[i]).Milliseconds())
		rep.NodeCPUms = append(rep.NodeCPUms, ms)
		rep.NodesCPUms += ms
	}
	rep.NATSCPUms = float64((nats1 - nats0).Milliseconds())
	rep.KamailioCPUms = float64((kam1 - kam0).Milliseconds())
	if all := all1 - all0; all > 0 {
		rep.MachineBusyPct = 100 * float64(busy1-busy0) / float64(all)
	}
	if rep.Created > 0 {
		n := float64(rep.Created)
		rep.NodesCPUmsPerCall, rep.NATSCPUmsPerCall, rep.KamCPUmsPerCall = rep.NodesCPUms/n, rep.NATSCPUms/n, rep.KamailioCPUms/n
	}
	rep.NATS = v1.sub(v0)
	rep.NATSPerCall = rep.NATS.per(rep.Created)
	rep.StreamWrites, rep.StreamWritesPerCall = streamWrites(s0, s1, rep.Created)
	if err := writeJSON(out, "report.json", rep); err != nil {
		return err
	}
	printCluster(os.Stdout, rep)
	return nil
}

// idle measures the cluster at rest for d.
func (r *clusterRun) idle(ctx context.Context, rep *clusterReport, d time.Duration) error {
	n0, nats0, _, err1 := r.cpu()
	v0, err2 := r.varz()
	t0 := time.Now()
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(d):
	}
	n1, nats1, _, err1 := r.cpu()
	v1, err2 := r.varz()
	if err := errors.Join(err1, err2); err != nil {
		return err
	}
	s := time.Since(t0).Seconds()
	var nodes time.Duration
	for i := range n1 {
		nodes += n1[i] - n0[i]
	}
	dv := v1.sub(v0)
	rep.IdleS = s
	rep.IdleNodesCPUPct = 100 * nodes.Seconds() / s
	rep.IdleNATSCPUPct = 100 * (nats1 - nats0).Seconds() / s
	rep.IdleNATSMsgsPerSec = float64(dv.InMsgs) / s
	rep.IdleClientMsgsPerS = float64(dv.InClientMsgs) / s
	return nil
}

// clusterLayout is the run's layout, with free ports, and the NATS
// servers' monitoring URLs.
func clusterLayout(nodes, servers int) (cluster.Layout, []string, error) {
	ip := func(last int) netip.Addr { return netip.AddrFrom4([4]byte{127, 0, 0, byte(last)}) }
	tcp := func(a netip.Addr) (netip.AddrPort, error) {
		p, err := freeTCP(a.String())
		return netip.AddrPortFrom(a, uint16(p)), err
	}
	udp := func(a netip.Addr) (netip.AddrPort, error) {
		p, err := freeUDP(a.String(), true)
		return netip.AddrPortFrom(a, uint16(p)), err
	}
	var l cluster.Layout
	var errs []error
	add := func(ap netip.AddrPort, err error) netip.AddrPort { errs = append(errs, err); return ap }
	l.Front = add(udp(ip(clusterFrontIP)))
	l.FrontHTTP = add(tcp(ip(clusterFrontIP)))
	for i := range nodes {
		l.Nodes = append(l.Nodes, cluster.Node{Name: "node-" + strconv.Itoa(i+1),
			HTTP: add(tcp(ip(clusterNodeIP + i))), SIP: add(udp(ip(clusterNodeIP + i)))})
	}
	var monitors []string
	for i := range servers {
		l.NATS = append(l.NATS, cluster.NATS{Name: "nats-" + strconv.Itoa(i+1),
			Client: add(tcp(ip(clusterNATSIP + i))), Cluster: add(tcp(ip(clusterNATSIP + i)))})
		monitors = append(monitors, "http://"+add(tcp(ip(clusterNATSIP+i))).String())
	}
	return l, monitors, errors.Join(errs...)
}

// start runs the NATS servers (with their monitoring port), the nodes one
// after the other on base, Kamailio and the HTTP front.
func (r *clusterRun) start(ctx context.Context, out, bin, natsBin, kam, kamCfg string, base config.Config) error {
	logFile := func(name string) (io.Writer, error) {
		return os.Create(filepath.Join(out, name+".log"))
	}
	for i, n := range r.layout.NATS {
		dir := filepath.Join(out, n.Name)
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return err
		}
		mon := strings.TrimPrefix(r.monitors[i], "http://")
		conf := filepath.Join(dir, "nats.conf")
		text := r.layout.NATSConfig(i, filepath.Join(dir, "jetstream")) + "http: " + mon + "\n"
		if err := os.WriteFile(conf, []byte(text), 0o640); err != nil {
			return err
		}
		w, err := logFile(n.Name)
		if err != nil {
			return err
		}
		p, err := cluster.Start(n.Name, w, natsBin, "-c", conf)
		if err != nil {
			return err
		}
		r.nats = append(r.nats, p)
	}
	for i := range r.layout.NATS {
		if err := waitOK(ctx, r.monitors[i]+"/healthz?js-enabled-only=true", 30*time.Second); err != nil {
			return fmt.Errorf("%s: %w", r.layout.NATS[i].Name, err)
		}
	}
	logf("%d NATS servers up (monitoring %s)", len(r.nats), strings.Join(r.monitors, ", "))
	for i, n := range r.layout.Nodes {
		dir := filepath.Join(out, n.Name)
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return err
		}
		cfg := r.layout.NodeConfig(base, i, filepath.Join(dir, "data"))
		cfg.Calls.DrainTimeout = config.Duration(time.Second)
		data, err := yaml.Marshal(&cfg)
		if err != nil {
			return err
		}
		if _, err := config.Parse(data); err != nil {
			return fmt.Errorf("%s's configuration: %w", n.Name, err)
		}
		file := filepath.Join(dir, "switchboard.yaml")
		if err := os.WriteFile(file, data, 0o640); err != nil {
			return err
		}
		w, err := logFile(n.Name)
		if err != nil {
			return err
		}
		p, err := cluster.Start(n.Name, w, bin, "serve", "--config", file)
		if err != nil {
			return err
		}
		r.nodes = append(r.nodes, p)
		if err := waitOK(ctx, "http://"+n.HTTP.String()+"/healthz", 90*time.Second); err != nil {
			return fmt.Errorf("%s (see %s): %w", n.Name, filepath.Join(out, n.Name+".log"), err)
		}
		logf("%s pid %d: http %s, sip %s", n.Name, p.PID(), n.HTTP, n.SIP)
	}
	w, err := logFile("kamailio")
	if err != nil {
		return err
	}
	kctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if r.kam, err = cluster.StartKamailio(kctx, cluster.KamailioOptions{Binary: kam, Config: kamCfg,
		Dir: filepath.Join(out, "kamailio"), Listen: r.layout.Front, Dispatcher: r.layout.DispatcherList(),
		PingInterval: 2 * time.Second, Output: w}); err != nil {
		return err
	}
	if r.front, err = cluster.ServeBalancer(r.layout); err != nil {
		return err
	}
	logf("kamailio pid %d on sip:%s; HTTP front %s", r.kam.PID(), r.layout.Front, r.layout.PublicURL())
	return nil
}

// settle waits until the bot has seen every call end and no node has a
// media session left, or until max has passed.
func (r *clusterRun) settle(ctx context.Context, b *bot, max time.Duration) error {
	deadline := time.Now().Add(max)
	for {
		sessions := -1.0
		if ms, err := r.nodeMetrics(); err == nil {
			sessions = 0
			for _, m := range ms {
				sessions += m["switchboard_media_sessions"]
			}
		}
		if b.Live() == 0 && sessions == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v the bot still sees %d live calls and the nodes have %v media sessions", max, b.Live(), sessions)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// waitOK polls url until it answers 200.
func waitOK(ctx context.Context, url string, within time.Duration) error {
	deadline := time.Now().Add(within)
	c := &http.Client{Timeout: 2 * time.Second}
	for {
		res, err := c.Get(url)
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return nil
			}
			err = fmt.Errorf("%s: %s", url, res.Status)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %w", within, err)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func printCluster(w io.Writer, r *clusterReport) {
	fmt.Fprintf(w, "\nSwitchboard cluster: %d nodes behind Kamailio on %d NATS servers (replicas %d); %d concurrent, %.0f calls/s, %.0f s hold, %d calls\n",
		r.Nodes, r.NATSServers, r.Replicas, r.Concurrent, r.Rate, r.HoldS, r.Total)
	fmt.Fprintf(w, "machine: %s\n", r.Machine)
	fmt.Fprintf(w, "load:    %s\n\n", r.SIPpCommand)
	var t table
	t.add("calls (SIPp): created / ok / failed", "%d / %d / %d", r.Created, r.Successful, r.SIPpFailed)
	for _, s := range sortedReasons(r.SIPpFailedBy) {
		t.add("  SIPp failed by", "%s", s)
	}
	t.add("calls (bot): seen / failed", "%d / %d", r.BotCalls, r.BotFailed)
	for _, s := range sortedReasons(r.BotFailures) {
		t.add("  bot failure", "%s", s)
	}
	per := make([]string, len(r.InvitesPerNode))
	for i, v := range r.InvitesPerNode {
		per[i] = strconv.FormatFloat(v, 'f', 0, 64)
	}
	t.add("INVITEs answered 200, per node", "%s", strings.Join(per, " / "))
	t.add("peak concurrent (SIPp); calls/s achieved", "%d; %.1f", r.PeakConcurrent, r.CallsPerSecond)
	t.add("setup INVITE→200 p50/p99", "%.1f / %.1f ms", r.SetupP50MS, r.SetupP99MS)
	t.add("", "")
	t.add("CPU-ms per call: nodes (all)", "%.2f (%.0f ms over %.0f s)", r.NodesCPUmsPerCall, r.NodesCPUms, r.WallS)
	t.add("CPU-ms per call: NATS servers (all)", "%.2f", r.NATSCPUmsPerCall)
	t.add("CPU-ms per call: Kamailio", "%.2f", r.KamCPUmsPerCall)
	t.add("idle before: nodes / NATS CPU", "%.1f%% / %.1f%% of one core; NATS msgs in %.0f/s (from clients %.0f/s)",
		r.IdleNodesCPUPct, r.IdleNATSCPUPct, r.IdleNATSMsgsPerSec, r.IdleClientMsgsPerS)
	t.add("machine busy over the load", "%.0f%% of %d cores (background before: %.0f%% of one core)", r.MachineBusyPct, r.Machine.CPUs, r.BackgroundPct)
	t.add("", "")
	p := r.NATSPerCall
	t.add("NATS msgs per call: from clients / to clients", "%.1f / %.1f", p.InClientMsgs, p.OutClientMsgs)
	t.add("NATS msgs per call: in / out, routes included", "%.1f / %.1f", p.InMsgs, p.OutMsgs)
	t.add("NATS KB per call: from clients / in, all", "%.1f / %.1f", p.InClientKB, p.InKB)
	t.add("JetStream API requests per call", "%.2f", p.JetStreamAPI)
	t.add("stream writes per call (each on every replica)", "%.1f", r.StreamWritesPerCall)
	names := make([]string, 0, len(r.StreamWrites))
	for k := range r.StreamWrites {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		t.add("  "+k, "%.2f", r.StreamWrites[k])
	}
	t.write(w)
	fmt.Fprintf(w, "\noutput: %s\n", r.Out)
}
