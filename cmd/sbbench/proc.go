package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// clockTick is USER_HZ, the unit of utime and stime in /proc/PID/stat:
// 100 on every Linux architecture Go supports (sysconf(_SC_CLK_TCK) needs
// cgo to ask).
const clockTick = 10 * time.Millisecond

// procCPU is a process's user and system CPU time so far.
type procCPU struct {
	User, Sys time.Duration
	Threads   int
	At        time.Time
}

func (c procCPU) Total() time.Duration { return c.User + c.Sys }

// readCPU reads /proc/PID/stat (proc(5)): utime and stime are fields 14
// and 15, num_threads field 20, counted from 1 with the command name,
// which may hold spaces and parentheses, as field 2.
func readCPU(pid int) (procCPU, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procCPU{}, err
	}
	return parseStat(b, time.Now())
}

func parseStat(b []byte, at time.Time) (procCPU, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procCPU{}, errors.New("/proc/PID/stat: no command name")
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 18 {
		return procCPU{}, errors.New("/proc/PID/stat: too few fields")
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	th, err3 := strconv.Atoi(f[17])
	if err := errors.Join(err1, err2, err3); err != nil {
		return procCPU{}, fmt.Errorf("/proc/PID/stat: %w", err)
	}
	return procCPU{User: time.Duration(ut) * clockTick, Sys: time.Duration(st) * clockTick, Threads: th, At: at}, nil
}

// readRSS returns VmRSS and VmHWM from /proc/PID/status, in bytes.
func readRSS(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseStatus(b)
}

func parseStatus(b []byte) (rss, hwm int64, err error) {
	for line := range strings.SplitSeq(string(b), "\n") {
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		var dst *int64
		switch k {
		case "VmRSS":
			dst = &rss
		case "VmHWM":
			dst = &hwm
		default:
			continue
		}
		kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
		if err != nil {
			return 0, 0, fmt.Errorf("/proc/PID/status %s: %w", k, err)
		}
		*dst = kb << 10
	}
	if rss == 0 {
		return 0, 0, errors.New("/proc/PID/status: no VmRSS")
	}
	return rss, hwm, nil
}

// sample is one second of the node's life under load, with what shared
// the machine with it.
type sample struct {
	At        time.Time
	CPU       procCPU // the node
	RSS       int64
	Live      int // calls the bot sees between incoming and terminated
	Threads   int
	SIPp      time.Duration // SIPp's CPU so far (0 when not running)
	Self      time.Duration // sbbench's (the bot's) CPU so far
	Busy, All time.Duration // the machine's busy and total CPU time so far (/proc/stat)
	SoftIRQ   time.Duration // the machine's softirq time so far, part of Busy (see readMachineSoftIRQ)
	Ksoftirqd time.Duration // the ksoftirqd threads' CPU so far: softirqs deferred from the load's syscalls
	LateTicks float64       // the node's switchboard_media_late_ticks_total
	Sessions  float64       // the node's switchboard_media_sessions
	Go        goStats       // the node's Go runtime, from /metrics
	CtxSw     uint64        // the node's context switches so far, voluntary and not, over its live threads
	// The node's notification outbox: switchboard_webhook_pending and
	// switchboard_webhook_parked.
	Pending, Parked float64
	// Read only by a sampler with an extra hook (sbbench soak).
	FDs      int        // the node's open files (/proc/PID/fd)
	RTPPorts int        // UDP ports the node holds in its RTP range
	Store    storeUsage // the node's JetStream storage
}

// readCtxSwitches sums voluntary_ctxt_switches and nonvoluntary_ctxt_switches
// of every thread of pid (/proc/PID/task/TID/status).
func readCtxSwitches(pid int) uint64 {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if err != nil {
		return 0
	}
	var n uint64
	for _, t := range tasks {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%s/status", pid, t.Name()))
		if err != nil {
			continue
		}
		for line := range strings.SplitSeq(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "voluntary_ctxt_switches:"); ok {
				c, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
				n += c
			} else if v, ok := strings.CutPrefix(line, "nonvoluntary_ctxt_switches:"); ok {
				c, _ := strconv.ParseUint(strings.TrimSpace(v), 10, 64)
				n += c
			}
		}
	}
	return n
}

// goStats are the node's Go runtime figures its /metrics exports.
type goStats struct {
	Goroutines, HeapInuse, StackInuse, Mallocs, GCs float64
}

func goStatsOf(m map[string]float64) goStats {
	return goStats{Goroutines: m["go_goroutines"], HeapInuse: m["go_memstats_heap_inuse_bytes"],
		StackInuse: m["go_memstats_stack_inuse_bytes"], Mallocs: m["go_memstats_mallocs_total"], GCs: m["go_gc_duration_seconds_count"]}
}

// sampler reads the node's CPU and RSS every second (or every), with the bot's count
// of live calls, SIPp's and sbbench's CPU, the machine's, and the node's
// media-clock counters: the timeline pidstat would give, without pidstat.
type sampler struct {
	pid     int
	live    func() int
	sipp    func() int // SIPp's pid, 0 when none runs
	metrics func() (map[string]float64, error)
	every   time.Duration
	extra   func(*sample) // reads more into each sample; nil: nothing
	stop    chan struct{}
	done    chan struct{}

	ksoftirqd []int // pids of the ksoftirqd/N kernel threads

	mu      sync.Mutex
	samples []sample
}

func startSampler(pid int, live func() int, sipp func() int, metrics func() (map[string]float64, error)) *sampler {
	return startSamplerEvery(time.Second, nil, pid, live, sipp, metrics)
}

// startSamplerEvery samples every period, calling extra on each sample
// once the common figures are read.
func startSamplerEvery(every time.Duration, extra func(*sample), pid int, live func() int, sipp func() int, metrics func() (map[string]float64, error)) *sampler {
	s := &sampler{pid: pid, live: live, sipp: sipp, metrics: metrics, every: every, extra: extra,
		stop: make(chan struct{}), done: make(chan struct{}), ksoftirqd: findKsoftirqd()}
	go s.run()
	return s
}

func (s *sampler) run() {
	defer close(s.done)
	t := time.NewTicker(s.every)
	defer t.Stop()
	for {
		cpu, err1 := readCPU(s.pid)
		rss, _, err2 := readRSS(s.pid)
		if err1 == nil && err2 == nil {
			sm := sample{At: cpu.At, CPU: cpu, RSS: rss, Live: s.live(), Threads: cpu.Threads, CtxSw: readCtxSwitches(s.pid)}
			if p := s.sipp(); p > 0 {
				if c, err := readCPU(p); err == nil {
					sm.SIPp = c.Total()
				}
			}
			if c, err := readCPU(os.Getpid()); err == nil && s.pid != os.Getpid() {
				sm.Self = c.Total() // in-process (-inprocess), the node's CPU is sbbench's
			}
			sm.Busy, sm.All, _ = readMachineCPU()
			sm.SoftIRQ, _ = readMachineSoftIRQ()
			for _, p := range s.ksoftirqd {
				if c, err := readCPU(p); err == nil {
					sm.Ksoftirqd += c.Total()
				}
			}
			if m, err := s.metrics(); err == nil {
				sm.LateTicks, sm.Sessions = m["switchboard_media_late_ticks_total"], m["switchboard_media_sessions"]
				sm.Go = goStatsOf(m)
				sm.Pending, sm.Parked = m["switchboard_webhook_pending"], m["switchboard_webhook_parked"]
			}
			if s.extra != nil {
				s.extra(&sm)
			}
			s.mu.Lock()
			s.samples = append(s.samples, sm)
			s.mu.Unlock()
		}
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// Stop ends sampling and returns the samples.
func (s *sampler) Stop() []sample {
	close(s.stop)
	<-s.done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.samples
}

// readMachineCPU sums the first line of /proc/stat: busy is everything
// but idle and iowait.
func readMachineCPU() (busy, all time.Duration, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, 0, err
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, 0, errors.New("/proc/stat: no cpu line")
	}
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, 0, err
		}
		d := time.Duration(n) * clockTick
		all += d
		if i != 3 && i != 4 { // idle, iowait
			busy += d
		}
	}
	return busy, all, nil
}

// readMachineSoftIRQ reads the softirq column of /proc/stat's first line:
// mostly loopback delivery of the packets the node and SIPp send. Where
// it is charged depends on the kernel: with tick-based accounting (the
// benchmark machine's) a softirq run on a syscall's way out is also in
// that process's stime, and one deferred to ksoftirqd is that thread's;
// with CONFIG_IRQ_TIME_ACCOUNTING it is in no process's time.
func readMachineSoftIRQ() (time.Duration, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseSoftIRQ(b)
}

func parseSoftIRQ(b []byte) (time.Duration, error) {
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return 0, errors.New("/proc/stat: no cpu line")
	}
	n, err := strconv.ParseUint(f[7], 10, 64) // user nice system idle iowait irq softirq
	if err != nil {
		return 0, err
	}
	return time.Duration(n) * clockTick, nil
}

// findKsoftirqd returns the pids of the ksoftirqd/N kernel threads.
func findKsoftirqd() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if b, err := os.ReadFile("/proc/" + e.Name() + "/comm"); err == nil && strings.HasPrefix(string(b), "ksoftirqd/") {
			pids = append(pids, pid)
		}
	}
	return pids
}

// writeTimeline writes the samples as CSV, one line per second.
func writeTimeline(path string, samples []sample) error {
	var b strings.Builder
	b.WriteString("t_s,live_calls,node_cpu_pct,node_rss_mb,node_threads,sipp_cpu_pct,sbbench_cpu_pct,machine_busy_pct,softirq_pct,ksoftirqd_pct,late_ticks,media_sessions,goroutines,heap_inuse_mb,stack_inuse_mb,mallocs_per_s,gcs,ctx_switches_per_s\n")
	for i := 1; i < len(samples); i++ {
		p, s := samples[i-1], samples[i]
		dt := s.At.Sub(p.At).Seconds()
		if dt <= 0 {
			continue
		}
		pct := func(a, b time.Duration) float64 { return 100 * (b - a).Seconds() / dt }
		busy := 0.0
		if all := s.All - p.All; all > 0 {
			busy = 100 * float64(s.Busy-p.Busy) / float64(all)
		}
		sipp := 0.0
		if p.SIPp > 0 && s.SIPp >= p.SIPp {
			sipp = pct(p.SIPp, s.SIPp)
		}
		cs := 0.0
		if s.CtxSw >= p.CtxSw {
			cs = float64(s.CtxSw-p.CtxSw) / dt
		}
		fmt.Fprintf(&b, "%.1f,%d,%.1f,%.1f,%d,%.1f,%.1f,%.1f,%.1f,%.1f,%.0f,%.0f,%.0f,%.1f,%.1f,%.0f,%.0f,%.0f\n", s.At.Sub(samples[0].At).Seconds(), s.Live,
			pct(p.CPU.Total(), s.CPU.Total()), float64(s.RSS)/(1<<20), s.Threads, sipp, pct(p.Self, s.Self), busy, pct(p.SoftIRQ, s.SoftIRQ), pct(p.Ksoftirqd, s.Ksoftirqd),
			s.LateTicks-p.LateTicks, s.Sessions, s.Go.Goroutines, s.Go.HeapInuse/(1<<20), s.Go.StackInuse/(1<<20),
			(s.Go.Mallocs-p.Go.Mallocs)/dt, s.Go.GCs-p.Go.GCs, cs)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

// readFDs counts pid's open files, and the inodes of its sockets.
func readFDs(pid int) (n int, sockets map[uint64]bool, err error) {
	dir := fmt.Sprintf("/proc/%d/fd", pid)
	ents, err := os.ReadDir(dir)
	if err != nil {
		return 0, nil, err
	}
	sockets = map[uint64]bool{}
	for _, e := range ents {
		l, err := os.Readlink(dir + "/" + e.Name())
		if err != nil {
			continue // closed since the listing
		}
		if v, ok := strings.CutPrefix(l, "socket:["); ok {
			if ino, err := strconv.ParseUint(strings.TrimSuffix(v, "]"), 10, 64); err == nil {
				sockets[ino] = true
			}
		}
	}
	return len(ents), sockets, nil
}

// readRTPPorts counts the UDP sockets of pid (by inode, from readFDs)
// bound to a local port within lo..hi: the RTP ports the node holds.
func readRTPPorts(pid int, sockets map[uint64]bool, lo, hi int) (int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/net/udp", pid))
	if err != nil {
		return 0, err
	}
	return countUDPPorts(b, sockets, lo, hi), nil
}

// countUDPPorts reads /proc/net/udp (proc(5)): "sl local_address
// rem_address st tx_queue:rx_queue tr:tm->when retrnsmt uid timeout inode",
// addresses as hex IP:port.
func countUDPPorts(b []byte, sockets map[uint64]bool, lo, hi int) int {
	n := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || f[0] == "sl" {
			continue
		}
		_, hexPort, ok := strings.Cut(f[1], ":")
		if !ok {
			continue
		}
		port, err1 := strconv.ParseUint(hexPort, 16, 16)
		ino, err2 := strconv.ParseUint(f[9], 10, 64)
		if err1 != nil || err2 != nil || !sockets[ino] {
			continue
		}
		if int(port) >= lo && int(port) <= hi {
			n++
		}
	}
	return n
}
