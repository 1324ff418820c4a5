package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"
)

// sbbench peers runs the peers' IVR load (shared/bench/ivr_load.xml, as
// shared/bench/README.md ran it) twice in one run on this machine: first
// against diago (the peer IVR program in shared/bench/diago-ivr, built into
// the output folder), then, after a quiet gap, against Switchboard with
// sbbench's bot answering every call over Graph, playing the prompt and
// recording. Both engines run as processes of their own and are measured
// the same way, from /proc (fillProcess): CPU before SIPp and after the
// engine's work for the last call is done, RSS every second; calls held
// from SIPp's CurrentCall for both. Asterisk is not run: its figures are
// quoted from the peers' README.

// peersReport is the side-by-side run's result, also written as JSON.
type peersReport struct {
	Machine      machine    `json:"machine"`
	Command      string     `json:"command"`
	Concurrent   int        `json:"concurrent"`
	Rate         float64    `json:"rate"`
	HoldS        float64    `json:"holdSeconds"`
	Total        int        `json:"total"`
	Scenario     string     `json:"scenario"`
	GapS         float64    `json:"gapSeconds"`
	DiagoVersion string     `json:"diagoVersion"`
	DiagoBinary  string     `json:"diagoBinary"`
	Server       string     `json:"server"`
	Diago        *ivrReport `json:"diago"`
	DiagoLog     diagoLog   `json:"diagoLog"`
	// DiagoSockets are diago's UDP sockets at the plateau, and those of
	// them not bound to a loopback address (there must be none).
	DiagoSockets       int          `json:"diagoSockets"`
	DiagoNotLoopback   []string     `json:"diagoNotLoopback,omitempty"`
	Switchboard        *ivrReport   `json:"switchboard"`
	Quoted             []quotedPeer `json:"quoted,omitempty"`
	QuotedFrom         string       `json:"quotedFrom,omitempty"`
	StartedDiago       string       `json:"startedDiago"`
	StartedSwitchboard string       `json:"startedSwitchboard"`
	Out                string       `json:"out"`
}

func runPeers(args []string) error {
	fs := flag.NewFlagSet("peers", flag.ExitOnError)
	var c common
	c.register(fs)
	calls := fs.Int("calls", 1000, "concurrent calls to hold (SIPp -l), for each engine")
	rate := fs.Float64("rate", 50, "new calls per second (SIPp -r)")
	hold := fs.Duration("hold", 30*time.Second, "how long each call lasts from its answer to the caller's BYE (SIPp -d)")
	total := fs.Int("total", 0, "calls to place in all (SIPp -m; default 2 × -calls, as the peers ran)")
	probes := fs.Int("probes", 8, "probe calls that time each engine's RTP at steady state (0: none)")
	warmup := fs.Int("warmup", 10, "calls placed and ended before measuring each engine")
	gap := fs.Duration("gap", 30*time.Second, "quiet time between the diago run and the Switchboard run")
	benchDir := fs.String("bench", "", "the peers' folder, shared/bench (default: the shared/bench folder beside the repository)")
	diagoBin := fs.String("diago", "", "a diago-ivr binary; empty: go build BENCH/diago-ivr (its own module) into the output folder")
	_ = fs.Parse(args)
	if fs.NArg() > 0 {
		return fmt.Errorf("peers: unexpected arguments %q", fs.Args())
	}
	if c.inprocess {
		return errors.New("-inprocess is not for peers: both engines run as processes of their own")
	}
	if *total == 0 {
		*total = 2 * *calls
	}
	minHold := time.Duration(promptSecs+recordSecs+1) * time.Second
	if *hold < minHold {
		return fmt.Errorf("-hold must be at least %v: the bot plays %d s and records %d s", minHold, promptSecs, recordSecs)
	}
	ramp, loadFor := loadTimes(*calls, *total, *rate, *hold)
	sippTimeout := 2*loadFor + 30*time.Second
	if c.timeout == 0 {
		c.timeout = 2*(sippTimeout+3*time.Minute) + *gap + 5*time.Minute
	}
	ctx, cancel := runContext(c.timeout)
	defer cancel()
	raiseNoFile()
	if err := preflight(&c); err != nil {
		return err
	}

	repo := c.repo
	if repo == "" && (c.server == "" || *benchDir == "") {
		var err error
		if repo, err = findRepo(); err != nil {
			return err
		}
	}
	if *benchDir == "" {
		*benchDir = filepath.Join(repo, "..", "shared", "bench")
	}
	diagoSrc := filepath.Join(*benchDir, "diago-ivr")
	out := c.out
	if out == "" {
		var err error
		if out, err = os.MkdirTemp("", "sbbench-peers-"+time.Now().Format("20060102-150405")+"-"); err != nil {
			return err
		}
	} else if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	logf("output in %s", out)

	// Both binaries first, so that no build runs beside either load.
	server := c.server
	if server == "" {
		logf("building the switchboard binary from %s", repo)
		var err error
		if server, err = buildServer(ctx, repo, out); err != nil {
			return err
		}
	}
	dbin := *diagoBin
	if dbin == "" {
		logf("building diago-ivr from %s", diagoSrc)
		var err error
		if dbin, err = buildDiago(ctx, diagoSrc, out); err != nil {
			return err
		}
	}

	rep := &peersReport{Machine: describeMachine(c.sipp), Command: "sbbench " + strings.Join(os.Args[1:], " "),
		Concurrent: *calls, Rate: *rate, HoldS: hold.Seconds(), Total: *total, Scenario: "ivr_load.xml",
		GapS: gap.Seconds(), DiagoBinary: dbin, Server: server, Out: out}
	if b, err := os.ReadFile(filepath.Join(diagoSrc, "go.mod")); err == nil {
		rep.DiagoVersion = moduleVersion(string(b), "github.com/emiago/diago")
	}
	readme := filepath.Join(*benchDir, "README.md")
	if b, err := os.ReadFile(readme); err == nil {
		rep.Quoted, rep.QuotedFrom = parsePeerTable(string(b)), readme
	} else {
		logf("the peers' figures cannot be quoted: %v", err)
	}
	lo := loadOpts{calls: *calls, rate: *rate, total: *total, hold: *hold, probes: *probes, warmup: *warmup,
		ramp: ramp, sippTimeout: sippTimeout}

	// diago.
	dOut := filepath.Join(out, "diago")
	rep.StartedDiago = time.Now().Format(time.RFC3339)
	d, err := startDiago(ctx, dbin, dOut)
	if err != nil {
		return err
	}
	logf("diago pid %d: sip %s (udp)", d.pid(), d.addr)
	dres, err := measureEngine(ctx, &c, engineRun{
		name: "diago", pid: d.pid(), out: dOut, target: d.addr,
		settle: func(ctx context.Context) error { return settleCPU(ctx, d.pid(), 20*time.Second) },
		alive:  d.alive,
		reset: func() { // the warm-up's lines are not the load's
			if fi, err := os.Stat(d.logPath); err == nil {
				d.logOffset = fi.Size()
			}
		},
		atPlateau: func() {
			rep.DiagoSockets, rep.DiagoNotLoopback = processUDP(d.pid())
		},
	}, lo)
	logOffset := d.logOffset
	d.stop()
	if !c.keepData {
		_ = os.RemoveAll(d.recDir)
	}
	if err != nil {
		return fmt.Errorf("diago: %w", err)
	}
	rep.Diago = &ivrReport{Machine: rep.Machine, SIPpCommand: dres.sippCommand, Concurrent: *calls, Rate: *rate,
		HoldS: hold.Seconds(), Total: *total, Scenario: rep.Scenario, Out: dOut, BackgroundPercent: dres.background, Perf: dres.perf}
	fillSIPp(rep.Diago, dres.sr)
	fillProcess(rep.Diago, dres.sr.Created, dres.cpu0, dres.cpu1, dres.samples, dres.idle)
	fillProbes(rep.Diago, dres.probes)
	if f, err := os.Open(d.logPath); err == nil {
		_, _ = f.Seek(logOffset, io.SeekStart)
		rep.DiagoLog, _ = parseDiagoLog(f)
		f.Close()
	}
	if len(rep.DiagoNotLoopback) > 0 {
		logf("WARNING: diago had sockets off loopback: %s", strings.Join(rep.DiagoNotLoopback, ", "))
	}
	if err := writeJSON(out, "peers.json", rep); err != nil {
		return err
	}

	logf("diago done; a quiet gap of %v before Switchboard", *gap)
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(*gap):
	}

	// Switchboard, with the IVR bot.
	sc := c
	sc.server, sc.out = server, filepath.Join(out, "switchboard")
	rep.StartedSwitchboard = time.Now().Format(time.RFC3339)
	e, err := setupEnv(ctx, &sc, botIVR, recordSecs, *hold+time.Minute)
	if err != nil {
		return fmt.Errorf("switchboard: %w", err)
	}
	defer e.close()
	sres, err := measureEngine(ctx, &c, engineRun{
		name: "switchboard", pid: e.node.pid(), out: e.out, target: e.node.sipAddr,
		settle:  func(ctx context.Context) error { return e.settle(ctx, 60*time.Second) },
		alive:   e.node.alive,
		metrics: e.node.metrics,
		reset:   e.bot.reset,
	}, lo)
	if err != nil {
		return fmt.Errorf("switchboard: %w", err)
	}
	sw := &ivrReport{Machine: rep.Machine, SIPpCommand: sres.sippCommand, Concurrent: *calls, Rate: *rate,
		HoldS: hold.Seconds(), Total: *total, Scenario: rep.Scenario, Out: e.out, BackgroundPercent: sres.background, Perf: sres.perf}
	fillIVR(sw, sres.sr, e.bot, sres.cpu0, sres.cpu1, sres.m0, sres.m1, sres.samples, sres.idle, sres.probes, false)
	fillGo(sw, goStatsOf(sres.m0), sres.m0, sres.m1, sres.samples)
	rep.Switchboard = sw
	if err := writeJSON(out, "peers.json", rep); err != nil {
		return err
	}
	printPeers(os.Stdout, rep)
	for _, p := range []struct {
		name string
		r    *ivrReport
	}{{"diago", rep.Diago}, {"Switchboard", rep.Switchboard}} {
		if p.r.Perf != nil {
			fmt.Printf("\n== %s, perf at the plateau (%s)", p.name, p.r.Out)
			printPerf(os.Stdout, p.r.Perf)
		}
	}
	return nil
}

// loadOpts is the load both engines get.
type loadOpts struct {
	calls, total, probes, warmup int
	rate                         float64
	hold, ramp, sippTimeout      time.Duration
}

// engineRun is one engine under the load.
type engineRun struct {
	name   string
	pid    int
	out    string // its folder: SIPp's files, the timeline, perf
	target string // its SIP host:port (UDP)
	// settle waits, after SIPp has ended, until the engine's own work for
	// the calls is done.
	settle func(ctx context.Context) error
	alive  func() bool
	// metrics scrapes the engine's Prometheus metrics; nil when it has
	// none.
	metrics func() (map[string]float64, error)
	// reset, when set, forgets the warm-up's calls.
	reset func()
	// atPlateau, when set, runs once the load is at its plateau.
	atPlateau func()
}

// loadResult is the raw material of one engine's run.
type loadResult struct {
	sr          *sippResult
	cpu0, cpu1  procCPU
	m0, m1      map[string]float64
	samples     []sample
	idle        int64
	probes      []probeResult
	background  float64
	sippCommand string
	perf        *perfSummary
}

// measureEngine warms the engine up, waits for the machine to go quiet,
// then runs the load with SIPp (ivr_load.xml), places the probes at the
// plateau, and reads the engine's process before and after, as runIVR
// does for the node. The samples' live calls are SIPp's CurrentCall, for
// every engine alike.
func measureEngine(ctx context.Context, c *common, er engineRun, lo loadOpts) (*loadResult, error) {
	if err := os.MkdirAll(er.out, 0o755); err != nil {
		return nil, err
	}
	sippPort, err1 := freeUDP(sippIP, false)
	ctrlPort, err2 := freeUDP("127.0.0.1", false)
	if err := errors.Join(err1, err2); err != nil {
		return nil, err
	}
	// SIPp's [auto_media_port]s are on its own address, 127.0.0.2, clear
	// of the engines' RTP on 127.0.0.1.
	mediaPort := 6000
	var sippPID atomic.Int64
	sipp := func(name string, rate float64, limit, calls int, pause, timeout time.Duration) *sippRun {
		return &sippRun{bin: c.sipp, dir: er.out, pcapDir: c.pcapDir, scenario: "ivr_load.xml", target: er.target,
			localIP: sippIP, port: sippPort, ctrlPort: ctrlPort, mediaPort: mediaPort,
			rate: rate, limit: limit, calls: calls, pause: pause, timeout: timeout, name: name,
			started: func(pid int) { sippPID.Store(int64(pid)) }}
	}
	minHold := time.Duration(promptSecs+recordSecs+1) * time.Second
	if lo.warmup > 0 {
		logf("%s warm-up: %d calls", er.name, lo.warmup)
		wr, err := sipp("warmup", 10, lo.warmup, lo.warmup, minHold+2*time.Second, 90*time.Second).run(ctx)
		if err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
		if wr.Successful == 0 {
			return nil, fmt.Errorf("warm-up: no call succeeded; see %s", filepath.Join(er.out, "warmup_errors.log"))
		}
		if wr.Failed > 0 {
			logf("%s warm-up: SIPp failed %d of %d", er.name, wr.Failed, wr.Created)
		}
		if err := er.settle(ctx); err != nil {
			logf("%s warm-up: %v", er.name, err)
		}
	}
	if er.reset != nil {
		er.reset()
	}
	select {
	case <-ctx.Done():
		return nil, context.Cause(ctx)
	case <-time.After(2 * time.Second):
	}
	res := &loadResult{}
	res.background = waitQuiet(ctx, er.pid, c.quietWait)
	var err error
	if res.idle, err = idleRSS(ctx, er.pid); err != nil {
		return nil, err
	}
	metrics := er.metrics
	if metrics == nil {
		metrics = func() (map[string]float64, error) { return nil, errors.New("no metrics") }
	} else if res.m0, err = metrics(); err != nil {
		return nil, err
	}
	if res.cpu0, err = readCPU(er.pid); err != nil {
		return nil, err
	}
	smp := startSampler(er.pid, func() int { return 0 }, func() int { return int(sippPID.Load()) }, metrics)

	run := sipp("ivr", lo.rate, lo.calls, lo.total, lo.hold, lo.sippTimeout)
	res.sippCommand = run.Command()
	logf("%s load: %s", er.name, res.sippCommand)
	sippDone := run.start(ctx)

	// At the plateau (SIPp's CurrentCall, read from its statistics as it
	// writes them each second): probes, and the profile.
	var (
		wg      sync.WaitGroup
		pmu     sync.Mutex
		perfRec *perfRecording
		perfErr error
	)
	plateauCtx, plateauCancel := context.WithCancel(ctx)
	defer plateauCancel()
	sippFinished := make(chan struct{})
	statPath := filepath.Join(er.out, "ivr_stat.csv")
	wg.Add(1)
	go func() {
		defer wg.Done()
		want := int(0.95 * float64(lo.calls))
		deadline := time.Now().Add(2*lo.ramp + 20*time.Second)
		for sippCurrent(statPath) < want {
			if time.Now().After(deadline) {
				logf("%s: the load never reached %d calls (SIPp holds %d): probing anyway", er.name, want, sippCurrent(statPath))
				break
			}
			select {
			case <-plateauCtx.Done():
				return
			case <-sippFinished:
				logf("%s: SIPp ended before the plateau: no probes, no profile", er.name)
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
		logf("%s plateau: SIPp holds %d calls", er.name, sippCurrent(statPath))
		if er.atPlateau != nil {
			er.atPlateau()
		}
		if c.perf {
			if perfRec, perfErr = startPerf(er.pid, c.perfFor, er.out); perfErr == nil {
				logf("perf record for %v", c.perfFor)
			}
		}
		for i := range lo.probes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := runProbe(plateauCtx, er.target, minHold+2*time.Second, i)
				pmu.Lock()
				res.probes = append(res.probes, r)
				pmu.Unlock()
			}()
			select {
			case <-plateauCtx.Done():
				return
			case <-time.After(500 * time.Millisecond):
			}
		}
	}()

	so := <-sippDone
	close(sippFinished)
	if so.err != nil {
		plateauCancel()
		wg.Wait()
		smp.Stop()
		if perfRec != nil {
			stopped, cancel := context.WithCancel(context.Background())
			cancel()
			_ = perfRec.wait(stopped)
		}
		return nil, so.err
	}
	wg.Wait()
	res.sr = so.res
	logf("%s: SIPp done: %d calls created, %d successful, %d failed; waiting for the engine to finish them",
		er.name, so.res.Created, so.res.Successful, so.res.Failed)
	if err := er.settle(ctx); err != nil {
		logf("%s: %v", er.name, err)
	}
	if !er.alive() {
		smp.Stop()
		return nil, fmt.Errorf("%s exited during the load", er.name)
	}
	if res.cpu1, err = readCPU(er.pid); err != nil {
		smp.Stop()
		return nil, err
	}
	if er.metrics != nil {
		if res.m1, err = er.metrics(); err != nil {
			smp.Stop()
			return nil, err
		}
	}
	res.samples = smp.Stop()
	liveFromSIPp(res.samples, so.res.Rows)
	if err := writeTimeline(filepath.Join(er.out, "timeline.csv"), res.samples); err != nil {
		return nil, err
	}
	res.perf = finishPerf(ctx, perfRec, perfErr, er.out)
	return res, nil
}

// sippCurrent returns the CurrentCall of the last row SIPp has written to
// its -trace_stat file so far (0 before the first).
func sippCurrent(path string) int {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	rows, _ := parseSippStat(f)
	if len(rows) == 0 {
		return 0
	}
	return rows[len(rows)-1].Current
}

// liveFromSIPp sets each sample's live calls to SIPp's CurrentCall in the
// last statistics row at or before it: the calls held, counted alike for
// every engine (the bot's count, which runIVR uses, exists only for
// Switchboard).
func liveFromSIPp(samples []sample, rows []sippRow) {
	j := -1
	for i := range samples {
		for j+1 < len(rows) && !rows[j+1].At.After(samples[i].At) {
			j++
		}
		samples[i].Live = 0
		if j >= 0 {
			samples[i].Live = rows[j].Current
		}
	}
}

// settleCPU waits until pid uses at most 2% of a core over a second (its
// work for the calls done), or until max has passed.
func settleCPU(ctx context.Context, pid int, max time.Duration) error {
	deadline := time.Now().Add(max)
	for {
		c0, err := readCPU(pid)
		if err != nil {
			return err
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(time.Second):
		}
		c1, err := readCPU(pid)
		if err != nil {
			return err
		}
		if c1.Total()-c0.Total() <= 20*time.Millisecond {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("still busy after %v (%v of CPU in the last second)", max, c1.Total()-c0.Total())
		}
	}
}

// buildDiago builds the diago peer (its own module) into dir.
func buildDiago(ctx context.Context, src, dir string) (string, error) {
	if _, err := os.Stat(filepath.Join(src, "main.go")); err != nil {
		return "", fmt.Errorf("the diago peer: %w (pass -bench or -diago)", err)
	}
	bin, err := filepath.Abs(filepath.Join(dir, "diago-ivr"))
	if err != nil {
		return "", err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, ".")
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build %s: %w\n%s", src, err, out)
	}
	return bin, nil
}

// diagoProc is the diago peer's process: answering on 127.0.0.1 (SIP and
// RTP), playing the prompt, recording the caller, keeping each call until
// the caller's BYE (-hold 0 -digits 0), as the peers' figures were taken.
type diagoProc struct {
	cmd       *exec.Cmd
	addr      string
	logPath   string
	recDir    string
	logOffset int64 // the log's size when the load started (after the warm-up)
	exited    chan struct{}
	waitErr   error
}

func startDiago(ctx context.Context, bin, dir string) (*diagoProc, error) {
	recDir := filepath.Join(dir, "rec")
	if err := os.MkdirAll(recDir, 0o755); err != nil {
		return nil, err
	}
	prompt := filepath.Join(dir, "prompt-8k.wav")
	if err := os.WriteFile(prompt, promptWAVAt(promptSecs, 8000), 0o644); err != nil {
		return nil, err
	}
	port, err := freeUDP("127.0.0.1", false)
	if err != nil {
		return nil, err
	}
	d := &diagoProc{addr: fmt.Sprintf("127.0.0.1:%d", port), logPath: filepath.Join(dir, "diago.log"),
		recDir: recDir, exited: make(chan struct{})}
	logFile, err := os.Create(d.logPath)
	if err != nil {
		return nil, err
	}
	d.cmd = exec.Command(bin, "-port", strconv.Itoa(port), "-play", prompt, "-recdir", recDir, "-hold", "0", "-digits", "0")
	d.cmd.Dir = dir
	d.cmd.Stdout, d.cmd.Stderr = logFile, logFile
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("start diago-ivr: %w", err)
	}
	go func() {
		d.waitErr = d.cmd.Wait()
		logFile.Close()
		close(d.exited)
	}()
	want := netip.MustParseAddrPort(d.addr)
	deadline := time.Now().Add(20 * time.Second)
	for {
		select {
		case <-d.exited:
			return nil, fmt.Errorf("diago-ivr exited at start (%v); see %s:\n%s", d.waitErr, d.logPath, tail(d.logPath, 20))
		case <-ctx.Done():
			d.stop()
			return nil, context.Cause(ctx)
		case <-time.After(50 * time.Millisecond):
		}
		if socks, err := readUDPSockets(d.pid()); err == nil {
			for _, s := range socks {
				if s == want {
					return d, nil
				}
			}
		}
		if time.Now().After(deadline) {
			d.stop()
			return nil, fmt.Errorf("diago-ivr not listening on %s after 20 s; see %s", d.addr, d.logPath)
		}
	}
}

func (d *diagoProc) pid() int { return d.cmd.Process.Pid }

func (d *diagoProc) alive() bool {
	select {
	case <-d.exited:
		return false
	default:
		return true
	}
}

// stop ends diago with SIGINT (it stops serving), then its process group
// with SIGKILL.
func (d *diagoProc) stop() {
	if !d.alive() {
		return
	}
	_ = syscall.Kill(d.pid(), syscall.SIGINT)
	select {
	case <-d.exited:
	case <-time.After(5 * time.Second):
		_ = syscall.Kill(-d.pid(), syscall.SIGKILL)
		<-d.exited
	}
}

// readUDPSockets returns the local addresses of the UDP sockets pid holds:
// its descriptors' socket inodes looked up in /proc/PID/net/udp and udp6.
func readUDPSockets(pid int) ([]netip.AddrPort, error) {
	fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		return nil, err
	}
	inodes := map[uint64]bool{}
	for _, fd := range fds {
		l, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name()))
		if err != nil {
			continue
		}
		if s, ok := strings.CutPrefix(l, "socket:["); ok {
			if n, err := strconv.ParseUint(strings.TrimSuffix(s, "]"), 10, 64); err == nil {
				inodes[n] = true
			}
		}
	}
	var out []netip.AddrPort
	for _, name := range []string{"udp", "udp6"} {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/%s", pid, name))
		if err != nil {
			continue
		}
		socks, err := parseProcNetUDP(b)
		if err != nil {
			return nil, err
		}
		for _, s := range socks {
			if inodes[s.inode] {
				out = append(out, s.local)
			}
		}
	}
	return out, nil
}

// processUDP counts pid's UDP sockets and lists those not bound to a
// loopback address.
func processUDP(pid int) (n int, notLoopback []string) {
	socks, err := readUDPSockets(pid)
	if err != nil {
		return 0, []string{"cannot read: " + err.Error()}
	}
	for _, s := range socks {
		if !s.Addr().IsLoopback() {
			notLoopback = append(notLoopback, s.String())
		}
	}
	return len(socks), notLoopback
}

// procSocket is one line of /proc/net/udp or udp6.
type procSocket struct {
	local netip.AddrPort
	inode uint64
}

// parseProcNetUDP reads /proc/net/udp or /proc/net/udp6 (proc_net(5)):
// after a header line, "sl: local_address rem_address st tx:rx tr:when
// retrnsmt uid timeout inode …", addresses as hex ADDR:PORT, the address
// as the kernel's 32-bit words in the host's byte order, the port in
// network order.
func parseProcNetUDP(b []byte) ([]procSocket, error) {
	var out []procSocket
	sc := bufio.NewScanner(strings.NewReader(string(b)))
	first := true
	for sc.Scan() {
		if first {
			first = false
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		local, err := parseHexAddrPort(f[1])
		if err != nil {
			return nil, err
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			return nil, fmt.Errorf("/proc/net/udp inode %q: %w", f[9], err)
		}
		out = append(out, procSocket{local: local, inode: inode})
	}
	return out, sc.Err()
}

func parseHexAddrPort(s string) (netip.AddrPort, error) {
	a, p, ok := strings.Cut(s, ":")
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("/proc/net/udp address %q", s)
	}
	raw, err := hex.DecodeString(a)
	if err != nil || (len(raw) != 4 && len(raw) != 16) {
		return netip.AddrPort{}, fmt.Errorf("/proc/net/udp address %q", s)
	}
	port, err := strconv.ParseUint(p, 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("/proc/net/udp port %q", s)
	}
	// Each 32-bit word was printed as a number in the host's order.
	ip := make([]byte, len(raw))
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(ip[i:], binary.NativeEndian.Uint32(raw[i:]))
	}
	addr, _ := netip.AddrFromSlice(ip)
	return netip.AddrPortFrom(addr.Unmap(), uint16(port)), nil
}

// diagoLog is what the diago peer logged about its calls: its program
// logs at WARN each prompt played (bytes, duration, error) and each call's
// end, and at ERROR an answer or audio reader that failed; the library
// logs its own errors (an RTCP writer's, say) at ERROR too.
type diagoLog struct {
	Played     int      `json:"played"`     // prompts played to the end without error
	PlayErrors int      `json:"playErrors"` // prompts that ended with an error
	Errors     int      `json:"errors"`     // the program's ERROR lines: answers or readers that failed
	LibErrors  int      `json:"libErrors"`  // the library's other ERROR lines (no call failed for them)
	Ended      int      `json:"ended"`      // calls ended
	ByCaller   int      `json:"byCaller"`   // of those, by the caller's BYE
	MinBytes   int64    `json:"minBytes"`   // the shortest prompt played, in bytes
	Samples    []string `json:"samples,omitempty"`
}

// Failed is the calls the engine itself saw fail.
func (l diagoLog) Failed() int { return l.PlayErrors + l.Errors }

// parseDiagoLog reads diago-ivr's log, written by the log package's
// default slog handler: "2026/12/07 00:30:00 WARN played call=ID
// bytes=80000 dur=5.001s err=<nil>".
func parseDiagoLog(r io.Reader) (diagoLog, error) {
	var l diagoLog
	l.MinBytes = -1
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.Contains(line, " WARN played "):
			if !strings.Contains(line, " err=<nil>") {
				l.PlayErrors++
				if len(l.Samples) < 5 {
					l.Samples = append(l.Samples, line)
				}
				continue
			}
			l.Played++
			if v, ok := logValue(line, "bytes"); ok {
				if n, err := strconv.ParseInt(v, 10, 64); err == nil && (l.MinBytes < 0 || n < l.MinBytes) {
					l.MinBytes = n
				}
			}
		case strings.Contains(line, " WARN call end "):
			l.Ended++
			if v, _ := logValue(line, "byCaller"); v == "true" {
				l.ByCaller++
			}
		case strings.Contains(line, " ERROR answer ") || strings.Contains(line, " ERROR reader "):
			l.Errors++
			if len(l.Samples) < 5 {
				l.Samples = append(l.Samples, line)
			}
		case strings.Contains(line, " ERROR "):
			l.LibErrors++
			if len(l.Samples) < 5 {
				l.Samples = append(l.Samples, line)
			}
		}
	}
	if l.MinBytes < 0 {
		l.MinBytes = 0
	}
	return l, sc.Err()
}

// logValue returns the unquoted value of key=value in a text log line.
func logValue(line, key string) (string, bool) {
	i := strings.Index(line, " "+key+"=")
	if i < 0 {
		return "", false
	}
	v := line[i+len(key)+2:]
	if strings.HasPrefix(v, `"`) {
		if s, err := strconv.QuotedPrefix(v); err == nil {
			u, _ := strconv.Unquote(s)
			return u, true
		}
	}
	if j := strings.IndexByte(v, ' '); j >= 0 {
		v = v[:j]
	}
	return v, true
}

// moduleVersion returns the version go.mod requires of path.
func moduleVersion(gomod, path string) string {
	for l := range strings.SplitSeq(gomod, "\n") {
		f := strings.Fields(strings.TrimPrefix(strings.TrimSpace(l), "require "))
		if len(f) >= 2 && f[0] == path {
			return f[1]
		}
	}
	return ""
}

// quotedPeer is one engine's row of the peers' table in
// shared/bench/README.md: its cells by column header.
type quotedPeer struct {
	Engine  string      `json:"engine"`
	Figures [][2]string `json:"figures"` // header, cell
}

// parsePeerTable reads the first Markdown table whose first column is
// "engine".
func parsePeerTable(md string) []quotedPeer {
	var header []string
	var out []quotedPeer
	for l := range strings.SplitSeq(md, "\n") {
		l = strings.TrimSpace(l)
		if !strings.HasPrefix(l, "|") {
			if header != nil {
				break
			}
			continue
		}
		cells := strings.Split(strings.Trim(l, "|"), "|")
		for i := range cells {
			cells[i] = strings.TrimSpace(cells[i])
		}
		if header == nil {
			if cells[0] == "engine" {
				header = cells
			}
			continue
		}
		if strings.Trim(strings.Join(cells, ""), "-: ") == "" {
			continue // the separator
		}
		p := quotedPeer{Engine: cells[0]}
		for i := 1; i < len(cells) && i < len(header); i++ {
			p.Figures = append(p.Figures, [2]string{header[i], cells[i]})
		}
		out = append(out, p)
	}
	return out
}

var atCalls = regexp.MustCompile(`at ([0-9][0-9 /]*[0-9]) calls`)

// figureAt picks from a cell listing one figure per load ("0.62 / 0.70 /
// 0.56–0.67" under "… at 200 / 500 / 1000 calls") the one at n calls.
func figureAt(header, cell string, n int) (string, bool) {
	m := atCalls.FindStringSubmatch(header)
	if m == nil {
		return "", false
	}
	loads := strings.Split(m[1], "/")
	vals := strings.Split(cell, "/")
	if len(loads) != len(vals) {
		return "", false
	}
	for i, l := range loads {
		if v, err := strconv.Atoi(strings.TrimSpace(l)); err == nil && v == n {
			return strings.TrimSpace(vals[i]), true
		}
	}
	return "", false
}

// grid prints columns aligned by their width in runes.
type grid struct{ rows [][]string }

func (g *grid) add(cells ...string) { g.rows = append(g.rows, cells) }

func (g *grid) write(w io.Writer) {
	var width []int
	for _, r := range g.rows {
		for i, c := range r {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range g.rows {
		if len(r) == 0 {
			fmt.Fprintln(w)
			continue
		}
		var b strings.Builder
		b.WriteString("  ")
		for i, c := range r {
			b.WriteString(c)
			if i < len(r)-1 {
				b.WriteString(strings.Repeat(" ", width[i]-utf8.RuneCountInString(c)+3))
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}

// ratio formats b/a, or "–" when a is zero.
func ratio(a, b float64) string {
	if a == 0 {
		return "–"
	}
	return fmt.Sprintf("%.2f×", b/a)
}

func printPeers(w io.Writer, r *peersReport) {
	d, s := r.Diago, r.Switchboard
	fmt.Fprintf(w, "\nSide by side: %d concurrent IVR calls, %.0f calls/s, %.0f s hold, %d calls each (%s, the peers' load)\n",
		r.Concurrent, r.Rate, r.HoldS, r.Total, r.Scenario)
	fmt.Fprintf(w, "machine: %s\n", r.Machine)
	fmt.Fprintf(w, "diago %s: %s; then, %.0f s later, Switchboard: %s with sbbench's IVR bot (answer, subscribeToTone, playPrompt 5 s, recordResponse 5 s)\n",
		r.DiagoVersion, r.DiagoBinary, r.GapS, r.Server)
	fmt.Fprintf(w, "load:    %s\n\n", s.SIPpCommand)
	var g grid
	g.add("", "diago "+r.DiagoVersion, "Switchboard", "Switchboard / diago")
	g.add("CPU-ms per call-second, whole run", f3(d.CPUmsPerCallSecond), f3(s.CPUmsPerCallSecond), ratio(d.CPUmsPerCallSecond, s.CPUmsPerCallSecond))
	g.add("CPU-ms per call-second, plateau", f3(d.SteadyCPUmsPerCallS), f3(s.SteadyCPUmsPerCallS), ratio(d.SteadyCPUmsPerCallS, s.SteadyCPUmsPerCallS))
	g.add("CPU-ms per call", fmt.Sprintf("%.1f", d.CPUmsPerCall), fmt.Sprintf("%.1f", s.CPUmsPerCall), ratio(d.CPUmsPerCall, s.CPUmsPerCall))
	g.add("RSS per held call, plateau (peak)", fmt.Sprintf("%.3f (%.3f) MB", d.RSSPerCallMB, d.PeakRSSPerCallMB),
		fmt.Sprintf("%.3f (%.3f) MB", s.RSSPerCallMB, s.PeakRSSPerCallMB), ratio(d.RSSPerCallMB, s.RSSPerCallMB))
	g.add("failed calls: SIPp; the engine's own", fmt.Sprintf("%d of %d; %d", d.SIPpFailed, d.Created, r.DiagoLog.Failed()),
		fmt.Sprintf("%d of %d; %d (bot)", s.SIPpFailed, s.Created, s.BotFailed), "")
	g.add("probe RTP gap p50 / p99 / max", gaps(d), gaps(s), ratio(d.ProbeGapP99MS, s.ProbeGapP99MS)+" (p99)")
	g.add("probe gaps > 30 ms; lost; probes ok", probeMisc(d), probeMisc(s), "")
	g.add("")
	g.add("CPU user + sys", fmt.Sprintf("%.1f + %.1f s", d.CPUUserS, d.CPUSysS), fmt.Sprintf("%.1f + %.1f s", s.CPUUserS, s.CPUSysS),
		ratio(d.CPUUserS+d.CPUSysS, s.CPUUserS+s.CPUSysS))
	g.add("  of it in the kernel", pct(d.CPUSysS, d.CPUUserS+d.CPUSysS), pct(s.CPUSysS, s.CPUUserS+s.CPUSysS), "")
	g.add("CPU at the plateau / busiest second", fmt.Sprintf("%.0f%% / %.0f%% of a core", d.SteadyCPUPercent, d.PeakCPUPercent),
		fmt.Sprintf("%.0f%% / %.0f%% of a core", s.SteadyCPUPercent, s.PeakCPUPercent), ratio(d.SteadyCPUPercent, s.SteadyCPUPercent))
	g.add("RSS idle / plateau / peak", fmt.Sprintf("%.1f / %.1f / %.1f MB", d.IdleRSSMB, d.SteadyRSSMB, d.PeakRSSMB),
		fmt.Sprintf("%.1f / %.1f / %.1f MB", s.IdleRSSMB, s.SteadyRSSMB, s.PeakRSSMB), "")
	g.add("threads; context switches at the plateau", fmt.Sprintf("%d; %.0f/s", d.Threads, d.CtxSwitchesPerSecond),
		fmt.Sprintf("%d; %.0f/s", s.Threads, s.CtxSwitchesPerSecond), ratio(d.CtxSwitchesPerSecond, s.CtxSwitchesPerSecond))
	g.add("calls held at the plateau (SIPp)", fmt.Sprintf("%.0f", d.SteadyCalls), fmt.Sprintf("%.0f", s.SteadyCalls), "")
	g.add("call-seconds (SIPp)", fmt.Sprintf("%.0f", d.CallSeconds), fmt.Sprintf("%.0f", s.CallSeconds), "")
	g.add("setup INVITE→200 p50 / p99 / max", fmt.Sprintf("%.0f / %.0f / %.0f ms", d.SetupP50MS, d.SetupP99MS, d.SetupMaxMS),
		fmt.Sprintf("%.0f / %.0f / %.0f ms", s.SetupP50MS, s.SetupP99MS, s.SetupMaxMS), "")
	g.add("machine busy at the plateau (SIPp, sbbench, other)", busy(d), busy(s), "")
	g.add("other processes before the load", fmt.Sprintf("%.0f%% of a core", d.BackgroundPercent), fmt.Sprintf("%.0f%% of a core", s.BackgroundPercent), "")
	g.add("the engine's own view", fmt.Sprintf("%d prompts played, %d failed; %d calls failed; %d other errors", r.DiagoLog.Played, r.DiagoLog.PlayErrors, r.DiagoLog.Errors, r.DiagoLog.LibErrors),
		fmt.Sprintf("%d late media ticks of %.0f; %.0f RTP sent", int(s.LateTicks), s.Ticks, s.RTPSent), "")
	g.write(w)
	for _, e := range append(append([]string(nil), d.ProbeErrors...), s.ProbeErrors...) {
		fmt.Fprintf(w, "  probe error: %s\n", e)
	}
	for _, e := range sortedReasons(s.BotFailures) {
		fmt.Fprintf(w, "  Switchboard bot failure: %s\n", e)
	}
	for _, e := range r.DiagoLog.Samples {
		fmt.Fprintf(w, "  diago: %s\n", e)
	}
	if len(r.DiagoNotLoopback) > 0 {
		fmt.Fprintf(w, "  WARNING: diago's sockets off loopback: %s\n", strings.Join(r.DiagoNotLoopback, ", "))
	}
	if len(r.Quoted) > 0 {
		fmt.Fprintf(w, "\nQuoted from %s (same load, measured the same way; not run here):\n", r.QuotedFrom)
		for _, p := range r.Quoted {
			var parts []string
			for _, f := range p.Figures {
				if v, ok := figureAt(f[0], f[1], r.Concurrent); ok {
					parts = append(parts, fmt.Sprintf("%s: %s", atCalls.ReplaceAllString(f[0], fmt.Sprintf("at %d calls", r.Concurrent)), v))
				} else {
					parts = append(parts, fmt.Sprintf("%s: %s", f[0], f[1]))
				}
			}
			fmt.Fprintf(w, "  %s — %s\n", p.Engine, strings.Join(parts, "; "))
		}
	}
	fmt.Fprintf(w, "\noutput: %s (peers.json; diago/ and switchboard/: SIPp files, timeline.csv)\n", r.Out)
}

func f3(v float64) string { return fmt.Sprintf("%.3f", v) }

func pct(part, whole float64) string {
	if whole == 0 {
		return "–"
	}
	return fmt.Sprintf("%.0f%%", 100*part/whole)
}

func gaps(r *ivrReport) string {
	if r.ProbeGaps == 0 {
		return "no probe"
	}
	return fmt.Sprintf("%.1f / %.1f / %.1f ms", r.ProbeGapP50MS, r.ProbeGapP99MS, r.ProbeGapMaxMS)
}

func probeMisc(r *ivrReport) string {
	return fmt.Sprintf("%d of %d; %d; %d of %d", r.ProbeGapsOver30, r.ProbeGaps, r.ProbeLost, r.ProbesOK, r.Probes)
}

func busy(r *ivrReport) string {
	return fmt.Sprintf("%.0f%% (%.0f, %.0f, %.0f)", r.MachineBusyPercent, r.SIPpCPUPercent, r.BotCPUPercent, r.OtherCPUPercent)
}
