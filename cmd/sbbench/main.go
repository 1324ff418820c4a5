// Command sbbench is Switchboard's end-to-end IVR benchmark. It drives the
// whole call path, not the media engine alone: SIPp callers come in through
// a trunk to the SIP edge, the node POSTs a signed incoming-call
// notification to a bot that sbbench runs, the bot answers over the Graph
// API, subscribes to tones, plays a 5 s prompt and records 5 s, the media
// engine does the work and notifications flow back, and SIPp hangs up.
//
// The node runs as a separate process (the switchboard binary, built from
// this module into the output folder unless -server names one) with a
// configuration generated per run: loopback addresses, ports chosen at run
// time, limits raised for load. Figures are for that process alone: CPU
// from /proc/PID/stat before and after the load, RSS sampled from
// /proc/PID/status, RTP pacing from the node's own media-clock metrics
// (/metrics) and from a few probe calls sbbench places itself, whose RTP it
// timestamps in the kernel (SO_TIMESTAMPNS): a sample of streams, no
// packet capture.
//
// Usage:
//
//	go run ./cmd/sbbench ivr   -calls 1000 -rate 50 -hold 30s      # steady state, N concurrent IVR calls with DTMF
//	go run ./cmd/sbbench setup -rates 100,200,500 -step 10s -hold 2s # setup rate, short calls
//	go run ./cmd/sbbench conf  -parties 100 -conferences 1 -hold 30s # group calls: conferences of SIPp phones
//	go run ./cmd/sbbench echo  -calls 100 -rate 20 -hold 30s        # app-hosted media: an echo bot on every call's media socket
//	go run ./cmd/sbbench peers -calls 1000                           # side by side: the peers' load against diago, then Switchboard
//	go run ./cmd/sbbench soak  -calls 700 -for 1h                    # soak: the IVR load held for an hour; fails if anything grows
//	go run ./cmd/sbbench cluster -nodes 3 -calls 200 -rate 20 -hold 20s # several nodes: the IVR load through Kamailio
//
// cluster runs the IVR load against several nodes, as docs/deploy.md lays
// them out, on loopback addresses of their own (127.0.0.40–.59): -nats
// nats-server processes as one JetStream cluster (the binary go.mod pins,
// built into the output folder unless -nats-server names one), -nodes
// switchboard processes on it with streams and buckets on three replicas,
// Kamailio (deploy/kamailio/kamailio.cfg) in front of their SIP ports and
// internal/cluster's HTTP balancer in front of their HTTP ports. SIPp
// calls Kamailio (ivr_load_dtmf_proxy.xml follows its route set) and the
// bot uses the HTTP front. It reports CPU per call of the nodes, of the
// NATS servers and of Kamailio, and from the servers' monitoring port
// (/varz, /jsz) the NATS messages and bytes and the stream writes per call:
// the figures that predict how several machines scale, where the 2 cores
// of one machine cannot.
//
// conf turns the call path round: the bot creates group calls (POST
// /communications/calls from its number's applicationInstance, the first
// 25 phone numbers as targets, the rest invited five at a time), the node
// dials every party through the trunk, where a SIPp UAS answers and plays
// speech until it is hung up, and the node's conference mixes them. Once
// every roster is full the load is held for -hold, the measured steady
// state (CPU per participant-second, RSS per participant, late media
// ticks), then the bot hangs up.
//
// echo is the IVR run with app-hosted media instead: the bot (application
// mediaMode: app) opens each call's media socket before answering with
// appHostedMediaConfig, and sends every frame of the mix straight back, so
// that the node times the echo (switchboard_media_socket_echo_delay_seconds,
// read from /metrics at both ends of the load) when the frame comes back
// with its header. -client sdk (the default) uses the Go SDK's MediaSocket,
// whose writers make their own header: it matches the frame's only until
// the bot misses a frame (a skipped media tick), and the report counts the
// echoes that kept it. -client raw speaks the wire protocol in sbbench and
// sends every frame back byte for byte. With -slow-bots N, the first N
// calls' bots read their socket slowly instead (-slow-read per frame) and
// echo nothing: the frames the platform drops for them are counted from
// the socket's stats messages and the sequence gaps.
//
// soak holds the IVR load for a long time (-for, default 1h) at 70 % of
// the machine's measured capacity (-capacity 1000, docs/benchmarks.md) or
// at -calls, SIPp replacing each call that ends, and samples the node
// every 10 s: goroutines, RSS, heap, open files, the UDP ports it holds
// in its RTP range, media sessions, its JetStream streams (read over the
// embedded NATS, which the soak's node exposes on loopback) and data
// folder, the outbox's pending and parked gauges; a probe call a minute.
// After a warm-up it fits a line to each figure over the rest and exits
// non-zero if one grew beyond its tolerance, the load was not held, or
// more than 0.1 % of the calls failed. docs/reliability.md has the
// tolerances and runs.
//
// peers runs the peers' load (shared/bench/ivr_load.xml) in one run against
// the diago peer IVR (shared/bench/diago-ivr, its own module, built into the
// output folder and run on 127.0.0.1), then after a quiet gap against
// Switchboard with the IVR bot, measures both processes the same way, and
// prints the figures side by side with the ratios Switchboard/diago and
// the peers' published figures (shared/bench/README.md; Asterisk is quoted,
// not run).
//
// All of them need sipp (Debian package sip-tester, run as root: it sends the
// caller's audio from pcap files through a raw socket) and loopback
// addresses 127.0.0.2 and 127.0.0.3. -perf records a CPU profile of the
// node with linux-perf during the steady state; -inprocess instead runs the
// node inside sbbench to write Go CPU, heap and allocation profiles and an
// execution trace (a profiling mode: its CPU and RSS figures then include
// the bot's). Every run is bounded in time (-timeout); the node, sipp and
// perf are stopped on exit and on SIGINT. The report is printed and
// written, with the raw material (node log and config, SIPp statistics,
// a per-second timeline, perf reports), to the -out folder.
// docs/benchmarks.md has the method and the figures.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const usage = `sbbench: Switchboard's end-to-end IVR benchmark (SIPp -> SIP edge -> bot over Graph -> media).

Usage:
  sbbench ivr   [flags]   steady state: N concurrent IVR calls (answer, tones, prompt, 5 s record, DTMF, hang-up)
  sbbench setup [flags]   setup rate: short calls at increasing rates
  sbbench conf  [flags]   group calls: the bot creates conferences of phone numbers behind the trunk,
                          SIPp answers every leg and speaks, the node mixes; CPU per participant-second
  sbbench echo  [flags]   app-hosted media: N concurrent calls whose bot echoes the mix over the media
                          socket; CPU per call-second, the node's echo delay, drops for slow bots
  sbbench soak  [flags]   soak: the IVR load at 70 % of capacity for -for (default 1h), calls replaced as they end;
                          fails if goroutines, RSS, open files, RTP ports, JetStream storage or the outbox grow,
                          or if calls fail
  sbbench peers [flags]   side by side: the peers' IVR load against diago (shared/bench/diago-ivr beside the repository),
                          then against Switchboard with the IVR bot, in one run; the ratios
  sbbench cluster [flags] several nodes: -nodes on a JetStream cluster of three NATS servers, Kamailio and an
                          HTTP front before them; CPU per call of nodes, NATS and Kamailio, NATS messages per call

Run "sbbench ivr -h", "sbbench setup -h", "sbbench conf -h", "sbbench echo -h", "sbbench soak -h", "sbbench peers -h" or "sbbench cluster -h" for the flags.
`

func main() {
	if len(os.Args) < 2 {
		fmt.Fprint(os.Stderr, usage)
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "ivr":
		err = runIVR(os.Args[2:])
	case "setup":
		err = runSetup(os.Args[2:])
	case "conf":
		err = runConf(os.Args[2:])
	case "echo":
		err = runEcho(os.Args[2:])
	case "peers":
		err = runPeers(os.Args[2:])
	case "soak":
		err = runSoak(os.Args[2:])
	case "cluster":
		err = runCluster(os.Args[2:])
	case "-h", "--help", "help":
		fmt.Print(usage)
		return
	default:
		fmt.Fprintf(os.Stderr, "sbbench: unknown command %q\n\n%s", os.Args[1], usage)
		os.Exit(2)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sbbench:", err)
		os.Exit(1)
	}
}

// common are the flags of both modes.
type common struct {
	server     string
	repo       string
	out        string
	timeout    time.Duration
	logLevel   string
	botWorkers int
	verify     bool
	perf       bool
	perfFor    time.Duration
	sipp       string
	pcapDir    string
	rtpPorts   string
	keepData   bool
	quietWait  time.Duration
	inprocess  bool
	traceFor   time.Duration
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.server, "server", "", "a switchboard binary to run; empty: go build ./cmd/switchboard into the output folder")
	fs.StringVar(&c.repo, "repo", "", "the module's root (default: found from the working directory)")
	fs.StringVar(&c.out, "out", "", "output folder for the report, logs and statistics (default: a new /tmp/sbbench-* folder)")
	fs.DurationVar(&c.timeout, "timeout", 0, "bound on the whole run (default: from the load, with a margin)")
	fs.StringVar(&c.logLevel, "log-level", "warn", "the node's log level (info logs a line per call end)")
	fs.IntVar(&c.botWorkers, "bot-workers", 256, "bound on the bot's concurrent Graph requests")
	fs.BoolVar(&c.verify, "verify", true, "the bot verifies every notification's signed token (as a real bot must)")
	fs.BoolVar(&c.perf, "perf", false, "record a CPU profile of the node with perf (linux-perf) during the load")
	fs.DurationVar(&c.perfFor, "perf-for", 20*time.Second, "how long -perf records")
	fs.StringVar(&c.sipp, "sipp", "sipp", "the sipp binary")
	fs.StringVar(&c.pcapDir, "pcap", "/usr/share/sip-tester", "folder of SIPp's pcap files (g711a.pcap, dtmf_2833_*.pcap)")
	fs.StringVar(&c.rtpPorts, "rtp-ports", "20000-29999", "the node's RTP port range (one even port per call)")
	fs.BoolVar(&c.keepData, "keep-data", false, "keep the node's data folder (JetStream store, recordings)")
	fs.BoolVar(&c.inprocess, "inprocess", false, "profiling mode: run the node inside sbbench and write Go CPU, heap and allocation profiles and an execution trace (its CPU and RSS figures then include the bot's)")
	fs.DurationVar(&c.traceFor, "trace-for", 5*time.Second, "with -inprocess, how long the execution trace at the plateau lasts (0: none)")
	fs.DurationVar(&c.quietWait, "quiet-wait", 5*time.Minute, "wait up to this long for other processes to leave the CPUs before measuring")
}

func (c *common) portRange() (int, int, error) {
	lo, hi, ok := strings.Cut(c.rtpPorts, "-")
	a, err1 := strconv.Atoi(lo)
	b, err2 := strconv.Atoi(hi)
	if !ok || err1 != nil || err2 != nil || a < 1024 || b > 65535 || b-a < 2 {
		return 0, 0, fmt.Errorf("-rtp-ports %q is not LOW-HIGH within 1024-65535", c.rtpPorts)
	}
	return a, b, nil
}

// runContext is the run's context: cancelled on SIGINT/SIGTERM and after
// the timeout.
func runContext(timeout time.Duration) (context.Context, context.CancelFunc) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	ctx, cancel := context.WithTimeoutCause(ctx, timeout, errors.New("sbbench: the run's timeout elapsed"))
	return ctx, func() { cancel(); stop() }
}

// raiseNoFile lifts the open-file limit to its hard limit for sbbench and,
// because it is set explicitly, for the children (sipp) too.
func raiseNoFile() {
	var r syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &r) == nil && r.Cur < r.Max {
		r.Cur = r.Max
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &r)
	}
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  %s\n", time.Now().Format("15:04:05.000"), fmt.Sprintf(format, args...))
}
