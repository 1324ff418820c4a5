package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// env is one run's world: the output folder, the node, the bot, and the
// ports SIPp uses.
type env struct {
	c         *common
	out       string
	dataDir   string
	node      *node
	bot       *bot
	sippPort  int
	ctrlPort  int
	mediaPort int
	sippPID   atomic.Int64
	// uasScenario is the SIPp scenario that answers the node's calls as
	// the trunk (sbbench conf).
	uasScenario string
}

// setupEnv builds (or takes) the node's binary, starts the bot, writes the
// node's configuration and starts it, and gets the bot its token. Each
// of tune, if any, changes the node's configuration before it is written.
func setupEnv(ctx context.Context, c *common, mode string, recordSecs int, inactivity time.Duration, tune ...func(*nodeConfig) error) (_ *env, err error) {
	raiseNoFile()
	if err := preflight(c); err != nil {
		return nil, err
	}
	rtpMin, rtpMax, err := c.portRange()
	if err != nil {
		return nil, err
	}
	e := &env{c: c, out: c.out}
	if e.out == "" {
		if e.out, err = os.MkdirTemp("", "sbbench-"+time.Now().Format("20060102-150405")+"-"); err != nil {
			return nil, err
		}
	} else if err := os.MkdirAll(e.out, 0o755); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	logf("output in %s", e.out)
	bin := c.server
	if bin == "" && !c.inprocess {
		repo := c.repo
		if repo == "" {
			if repo, err = findRepo(); err != nil {
				return nil, err
			}
		}
		logf("building the switchboard binary from %s", repo)
		if bin, err = buildServer(ctx, repo, e.out); err != nil {
			return nil, err
		}
	}
	if e.bot, err = newBot(mode, c.botWorkers, promptWAV(promptSecs), recordSecs); err != nil {
		return nil, err
	}
	httpPort, err1 := freeTCP("127.0.0.1")
	sipPort, err2 := freeUDP("127.0.0.1", true)
	sippPort, err3 := freeUDP(sippIP, false)
	ctrlPort, err4 := freeUDP("127.0.0.1", false)
	if err := errors.Join(err1, err2, err3, err4); err != nil {
		return nil, err
	}
	e.sippPort, e.ctrlPort = sippPort, ctrlPort
	// SIPp's [auto_media_port] hands out ports upward from -mp; keep them
	// clear of the node's RTP range.
	e.mediaPort = 6000
	if rtpMin <= 16000 && rtpMax >= 6000 {
		e.mediaPort = 40000
	}
	if e.dataDir, err = os.MkdirTemp("", "sbbench-data-"); err != nil {
		return nil, err
	}
	nc := nodeConfig{httpPort: httpPort, sipPort: sipPort, sippPort: sippPort, callback: e.bot.callback,
		dataDir: e.dataDir, logLevel: c.logLevel, rtpMin: rtpMin, rtpMax: rtpMax, inactivity: inactivity}
	if mode == botEcho {
		nc.mediaMode = "app"
	}
	for _, t := range tune {
		if err := t(&nc); err != nil {
			return nil, err
		}
	}
	if c.inprocess {
		e.node, err = startNodeInProcess(ctx, e.out, nc)
	} else {
		e.node, err = startNode(ctx, bin, e.out, nc)
	}
	if err != nil {
		return nil, err
	}
	logf("switchboard pid %d: http %s, sip %s; bot webhook %s", e.node.pid(), e.node.httpURL, e.node.sipAddr, e.bot.callback)
	if err := e.bot.connect(ctx, e.node.httpURL, c.verify); err != nil {
		return nil, err
	}
	return e, nil
}

// preflight checks what every load needs: the callers' loopback
// addresses, sipp and its pcaps.
func preflight(c *common) error {
	for _, ip := range []string{sippIP, probeIP} {
		if _, err := freeUDP(ip, false); err != nil {
			return fmt.Errorf("loopback address %s is not usable: %w", ip, err)
		}
	}
	if _, err := exec.LookPath(c.sipp); err != nil {
		return fmt.Errorf("sipp not found (Debian package sip-tester): %w", err)
	}
	if _, err := os.Stat(filepath.Join(c.pcapDir, "g711a.pcap")); err != nil {
		return fmt.Errorf("SIPp's pcaps: %w", err)
	}
	return nil
}

// close stops the node and the bot and removes the node's data.
func (e *env) close() {
	if e.node != nil {
		e.node.stop()
	}
	if e.bot != nil {
		e.bot.close()
	}
	if e.dataDir != "" && !e.c.keepData {
		_ = os.RemoveAll(e.dataDir)
	}
}

// sippRun prepares a SIPp run in the output folder.
func (e *env) sippRun(name, scenario string, rate float64, limit, calls int, pause, timeout time.Duration) *sippRun {
	return &sippRun{bin: e.c.sipp, dir: e.out, pcapDir: e.c.pcapDir, scenario: scenario, target: e.node.sipAddr,
		localIP: sippIP, port: e.sippPort, ctrlPort: e.ctrlPort, mediaPort: e.mediaPort,
		rate: rate, limit: limit, calls: calls, pause: pause, timeout: timeout, name: name,
		started: func(pid int) { e.sippPID.Store(int64(pid)) }}
}

// sample starts sampling the node, SIPp and the machine every second.
func (e *env) sample() *sampler {
	return startSampler(e.node.pid(), e.bot.Live, func() int { return int(e.sippPID.Load()) }, e.node.metrics)
}

// settle waits until the bot has seen every call end and the node has no
// media session left, or until max has passed.
func (e *env) settle(ctx context.Context, max time.Duration) error {
	deadline := time.Now().Add(max)
	for {
		live := e.bot.Live()
		sessions := -1.0
		if m, err := e.node.metrics(); err == nil {
			sessions = m["switchboard_media_sessions"]
		}
		if live == 0 && sessions == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("after %v the bot still sees %d live calls and the node has %v media sessions", max, live, sessions)
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(250 * time.Millisecond):
		}
		if !e.node.alive() {
			return fmt.Errorf("switchboard exited (%v); see %s:\n%s", e.node.waitErr, e.node.logPath, tail(e.node.logPath, 20))
		}
	}
}

// idleRSS is the median of three readings a second apart.
func (e *env) idleRSS(ctx context.Context) (int64, error) {
	return idleRSS(ctx, e.node.pid())
}

// idleRSS is the median of three readings of pid's RSS a second apart.
func idleRSS(ctx context.Context, pid int) (int64, error) {
	var v []int64
	for i := range 3 {
		if i > 0 {
			select {
			case <-ctx.Done():
				return 0, context.Cause(ctx)
			case <-time.After(time.Second):
			}
		}
		rss, _, err := readRSS(pid)
		if err != nil {
			return 0, err
		}
		v = append(v, rss)
	}
	slices.Sort(v)
	return v[1], nil
}

// failureSummary groups the bot's failed calls by reason.
func failureSummary(calls []botCall, mode string) (failed int, reasons map[string]int) {
	reasons = map[string]int{}
	for i := range calls {
		if f := calls[i].failure(mode); f != "" {
			failed++
			if len(f) > 140 {
				f = f[:140] + "…"
			}
			reasons[f]++
		}
	}
	return failed, reasons
}

// sippVersion is the first line sipp -v prints.
func sippVersion(bin string) string {
	out, _ := exec.Command(bin, "-v").CombinedOutput()
	for l := range strings.SplitSeq(string(out), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			return l
		}
	}
	return "unknown"
}

// waitQuiet waits, up to -quiet-wait, until the machine's CPU use other
// than the node's is below a fifth of a core over two seconds: the figures
// are for the node alone, but it shares the cores with whatever else runs.
// It returns the last background load seen, in percent of one core.
func (e *env) waitQuiet(ctx context.Context) float64 {
	return waitQuiet(ctx, e.node.pid(), e.c.quietWait)
}

// waitQuiet waits, up to wait, until the machine's CPU use other than
// pid's is below a fifth of a core over two seconds, and returns the last
// such use seen, in percent of one core.
func waitQuiet(ctx context.Context, pid int, wait time.Duration) float64 {
	deadline := time.Now().Add(wait)
	warned := false
	for {
		b0, _, err1 := readMachineCPU()
		n0, err2 := readCPU(pid)
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(2 * time.Second):
		}
		b1, _, err3 := readMachineCPU()
		n1, err4 := readCPU(pid)
		if err := errors.Join(err1, err2, err3, err4); err != nil {
			return 0
		}
		other := 100 * ((b1 - b0) - (n1.Total() - n0.Total())).Seconds() / n1.At.Sub(n0.At).Seconds()
		if other < 20 || time.Now().After(deadline) {
			if other >= 20 {
				logf("WARNING: other processes use %.0f%% of a core; the figures share the machine with them", other)
			}
			return other
		}
		if !warned {
			logf("other processes use %.0f%% of a core: waiting up to %v for the machine to go quiet", other, wait)
			warned = true
		}
	}
}

// window is one stretch of load measured on the node: its CPU and metrics
// at both ends, and the per-second samples between.
type window struct {
	cpu0, cpu1 procCPU
	m0, m1     map[string]float64
	samples    []sample

	pid int
	smp *sampler
}

// open reads the node's CPU and metrics and starts sampling.
func (e *env) open() (*window, error) {
	w := &window{pid: e.node.pid()}
	var err error
	if w.m0, err = e.node.metrics(); err != nil {
		return nil, err
	}
	if w.cpu0, err = readCPU(w.pid); err != nil {
		return nil, err
	}
	w.smp = e.sample()
	return w, nil
}

// close stops sampling and reads the node's CPU and metrics again.
func (w *window) close(e *env) error {
	var err error
	if w.cpu1, err = readCPU(w.pid); err != nil {
		w.smp.Stop()
		return err
	}
	if w.m1, err = e.node.metrics(); err != nil {
		w.smp.Stop()
		return err
	}
	w.samples = w.smp.Stop()
	return nil
}
