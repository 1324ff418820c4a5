package main

import (
	"context"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"
)

// echoDelayMetric is the node's histogram of the delay an echoing bot
// adds: from a frame leaving the conference mix toward the bot to its
// echo being mixed in again.
const echoDelayMetric = "switchboard_media_socket_echo_delay_seconds"

// echoReport is the app-hosted media run's result, also written as JSON:
// the IVR run's figures of the node process and SIPp, and the media
// socket's.
type echoReport struct {
	ivrReport
	Client     string  `json:"client"` // the echoing bots': sdk or raw
	SlowBots   int     `json:"slowBots"`
	SlowReadMS float64 `json:"slowReadMs"`

	// The node's timing of the echoes (the histogram, between the load's
	// two scrapes).
	EchoTimed        float64 `json:"echoTimed"`
	EchoP50MS        float64 `json:"echoP50ms"` // interpolated within the bucket
	EchoP99MS        float64 `json:"echoP99ms"`
	EchoP50Bucket    string  `json:"echoP50Bucket"` // the bucket that holds it, ms
	EchoP99Bucket    string  `json:"echoP99Bucket"`
	EchoAtMost20     float64 `json:"echoAtMost20msPercent"`
	EchoAtMost40     float64 `json:"echoAtMost40msPercent"`
	EchoMaxBucketsMS string  `json:"echoMaxBucket"`

	// The fast (echoing) bots.
	FastCalls        int     `json:"fastCalls"`
	FramesHeard      int64   `json:"framesHeard"`    // source-0 frames read
	FramesExpected   float64 `json:"framesExpected"` // 50 a second from established to terminated
	FramesHeardMin   int64   `json:"framesHeardMinPerCall"`
	Echoed           int64   `json:"echoed"`
	HeaderKept       int64   `json:"headerKept"`
	Misaligned       int64   `json:"misaligned"`
	FastMissed       int64   `json:"fastMissed"` // sequence gaps
	FastCallsMissing int     `json:"fastCallsMissing"`
	FastStatsDropped int64   `json:"fastStatsToBotDropped"` // the last stats message's toBot.dropped, summed
	FastFromBotDrop  int64   `json:"fastStatsFromBotDropped"`
	FastNoStats      int     `json:"fastNoStats"`
	FastLagP99MS     float64 `json:"fastLagP99ms"` // of the calls' most lag
	FastLagMaxMS     float64 `json:"fastLagMaxms"`
	MediaReconnects  int64   `json:"mediaReconnects"`
	// SocketEnds counts how the calls' sockets ended: "bye, then 1000" as
	// the contract says, or what else; EndCodes the calls' resultInfo.
	SocketEnds        map[string]int `json:"socketEnds"`
	EndCodes          map[string]int `json:"endCodes"`
	SocketsOpenAtEnd  int64          `json:"socketsOpenAtEnd"` // 30 s after the last call ended
	SocketsWithoutBye int            `json:"socketsWithoutBye"`

	// The slow bots, per call: mean and most.
	SlowCalls        int     `json:"slowCalls"`
	SlowHeardMean    float64 `json:"slowFramesHeardMean"`
	SlowExpectedMean float64 `json:"slowFramesExpectedMean"`
	SlowSentMean     float64 `json:"slowStatsToBotSentMean"`
	SlowDroppedMean  float64 `json:"slowStatsToBotDroppedMean"`
	SlowDroppedMax   int64   `json:"slowStatsToBotDroppedMax"`
	SlowMissedMean   float64 `json:"slowMissedMean"`
	SlowMissedMax    int64   `json:"slowMissedMax"`
	SlowLagEndMeanMS float64 `json:"slowLagAtCallEndMeanMs"` // how far behind the media clock it read when its call ended
	SlowLagMaxMS     float64 `json:"slowLagMaxMs"`
	SlowNoStats      int     `json:"slowNoStats"`
	SlowDropping     int     `json:"slowCallsDropped"`         // slow calls whose stats showed a drop
	SlowFirstDropS   float64 `json:"slowFirstDropMeanSeconds"` // media time of the first stats with drops, over those calls
}

func runEcho(args []string) error {
	fs := flag.NewFlagSet("echo", flag.ExitOnError)
	var c common
	c.register(fs)
	calls := fs.Int("calls", 100, "concurrent calls to hold (SIPp -l)")
	rate := fs.Float64("rate", 20, "new calls per second (SIPp -r)")
	hold := fs.Duration("hold", 30*time.Second, "how long each call lasts from its answer to the caller's BYE")
	total := fs.Int("total", 0, "calls to place in all (SIPp -m; default 2 × -calls, as the IVR runs)")
	slowBots := fs.Int("slow-bots", 0, "of the measured calls, how many (the first) get a slow bot, which reads its socket slowly and echoes nothing")
	slowRead := fs.Duration("slow-read", 30*time.Millisecond, "how long a slow bot sleeps after each frame it reads (frames come every 20 ms)")
	warmup := fs.Int("warmup", 10, "echo calls placed and ended before measuring")
	client := fs.String("client", "sdk", "the echoing bots' media socket client: sdk, the Go SDK's MediaSocket (its writers make their own header, so an echo keeps the frame's header only until the bot misses a frame); raw, the wire protocol by hand, every frame back byte for byte")
	_ = fs.Parse(args)
	if *total == 0 {
		*total = 2 * *calls
	}
	if *client != "sdk" && *client != "raw" {
		return fmt.Errorf("-client %q is not sdk or raw", *client)
	}
	if *hold < 5*time.Second {
		return fmt.Errorf("-hold must be at least 5s")
	}
	// The callers: ivr_load.xml, 7 s of speech then silence, and hang up
	// after -hold.
	const scenario = "ivr_load.xml"

	ramp := time.Duration(float64(min(*calls, *total)) / *rate * float64(time.Second))
	refill := 0.0
	if *total > *calls {
		refill = float64(*total-*calls) / min(*rate, float64(*calls)/hold.Seconds())
	}
	loadFor := ramp + time.Duration(refill*float64(time.Second)) + *hold + 10*time.Second
	sippTimeout := 2*loadFor + 30*time.Second
	if c.timeout == 0 {
		c.timeout = sippTimeout + 4*time.Minute
	}
	ctx, cancel := runContext(c.timeout)
	defer cancel()

	e, err := setupEnv(ctx, &c, botEcho, 0, *hold+time.Minute)
	if err != nil {
		return err
	}
	defer e.close()
	e.bot.echo.slowRead, e.bot.echo.raw = *slowRead, *client == "raw"
	rep := &echoReport{ivrReport: ivrReport{InProcess: c.inprocess, Machine: describeMachine(c.sipp), Command: "sbbench " + strings.Join(os.Args[1:], " "),
		Concurrent: *calls, Rate: *rate, HoldS: hold.Seconds(), Total: *total, Scenario: scenario, Out: e.out},
		SlowBots: *slowBots, SlowReadMS: float64(*slowRead) / 1e6, Client: *client}

	if *warmup > 0 {
		logf("warm-up: %d echo calls", *warmup)
		w := e.sippRun("warmup", scenario, 10, *warmup, *warmup, 5*time.Second, 90*time.Second)
		wr, err := w.run(ctx)
		if err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		if err := e.settle(ctx, 30*time.Second); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		if err := e.bot.waitSockets(ctx, 30*time.Second); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
		failed, reasons := failureSummary(e.bot.Calls(), botEcho)
		if wr.Failed > 0 || failed > 0 {
			logf("warm-up: SIPp failed %d, the bot saw %d failed: %s", wr.Failed, failed, strings.Join(sortedReasons(reasons), "; "))
			if wr.Successful == 0 {
				return fmt.Errorf("warm-up: no call succeeded; see %s and %s", e.node.logPath, filepath.Join(e.out, "warmup_errors.log"))
			}
		}
	}
	e.bot.reset()
	e.bot.mu.Lock()
	e.bot.echo.slowLeft = *slowBots
	e.bot.mu.Unlock()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(2 * time.Second):
	}
	rep.BackgroundPercent = e.waitQuiet(ctx)
	idle, err := e.idleRSS(ctx)
	if err != nil {
		return err
	}
	idleMetrics, err := e.node.metrics()
	if err != nil {
		return err
	}
	pid := e.node.pid()
	win, err := e.open()
	if err != nil {
		return err
	}

	run := e.sippRun("echo", scenario, *rate, *calls, *total, *hold, sippTimeout)
	rep.SIPpCommand = run.Command()
	logf("load: %s", rep.SIPpCommand)
	sippDone := run.start(ctx)

	// At the plateau: the profiles, if asked for.
	var (
		wg      sync.WaitGroup
		perfRec *perfRecording
		perfErr error
		profs   *profiles
		profErr error
	)
	plateauCtx, plateauCancel := context.WithCancel(ctx)
	defer plateauCancel()
	sippFinished := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		want := int(0.95 * float64(*calls))
		deadline := time.Now().Add(2*ramp + 20*time.Second)
		for e.bot.Live() < want {
			if time.Now().After(deadline) {
				logf("the load never reached %d live calls (the bot sees %d)", want, e.bot.Live())
				break
			}
			select {
			case <-plateauCtx.Done():
				return
			case <-sippFinished:
				logf("SIPp ended before the plateau: no profile")
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
		logf("plateau: %d live calls, %d media sockets open", e.bot.Live(), e.bot.echo.open.Load())
		if c.inprocess {
			if profs, profErr = startProfiles(e.out, c.traceFor); profErr == nil {
				logf("Go CPU profile for %v, heap profile written, execution trace for %v", c.perfFor, c.traceFor)
				time.AfterFunc(c.perfFor, func() { pprof.StopCPUProfile() })
			}
		}
		if c.perf {
			if perfRec, perfErr = startPerf(pid, c.perfFor, e.out); perfErr == nil {
				logf("perf record for %v", c.perfFor)
			}
		}
	}()

	so := <-sippDone
	close(sippFinished)
	if so.err != nil {
		plateauCancel()
		wg.Wait()
		win.smp.Stop()
		if perfRec != nil {
			stopped, cancel := context.WithCancel(context.Background())
			cancel()
			_ = perfRec.wait(stopped)
		}
		if profs != nil {
			_ = profs.stop()
		}
		return so.err
	}
	wg.Wait()
	logf("SIPp done: %d calls created, %d successful, %d failed; waiting for the last calls and media sockets to end", so.res.Created, so.res.Successful, so.res.Failed)
	if err := e.settle(ctx, 60*time.Second); err != nil {
		logf("%v", err)
	}
	// A slow bot may still be reading its backlog: its figures are taken
	// as they stand.
	if err := e.bot.waitSockets(ctx, 30*time.Second); err != nil {
		logf("%v", err)
	}
	rep.SocketsOpenAtEnd = e.bot.echo.open.Load()
	if err := win.close(e); err != nil {
		return err
	}
	rep.Perf = finishPerf(ctx, perfRec, perfErr, e.out)
	rep.Profiles = finishProfiles(profs, profErr)
	if err := writeTimeline(filepath.Join(e.out, "timeline.csv"), win.samples); err != nil {
		return err
	}
	fillIVR(&rep.ivrReport, so.res, e.bot, win.cpu0, win.cpu1, win.m0, win.m1, win.samples, idle, nil, false)
	fillGo(&rep.ivrReport, goStatsOf(idleMetrics), win.m0, win.m1, win.samples)
	fillEcho(rep, e.bot.Calls(), win.m0, win.m1)
	if err := writeJSON(e.out, "report.json", rep); err != nil {
		return err
	}
	printEcho(os.Stdout, rep)
	return nil
}

// fillEcho reads the node's echo-delay histogram and sums up what the
// bots saw on their sockets, fast and slow apart.
func fillEcho(rep *echoReport, calls []botCall, m0, m1 map[string]float64) {
	q50, n := histQuantile(m0, m1, echoDelayMetric, 0.5)
	q99, _ := histQuantile(m0, m1, echoDelayMetric, 0.99)
	rep.EchoTimed, rep.EchoP50MS, rep.EchoP99MS = n, q50*1e3, q99*1e3
	rep.EchoP50Bucket = bucketString(histBucketOf(m0, m1, echoDelayMetric, 0.5))
	rep.EchoP99Bucket = bucketString(histBucketOf(m0, m1, echoDelayMetric, 0.99))
	rep.EchoMaxBucketsMS = bucketString(histBucketOf(m0, m1, echoDelayMetric, 1))
	rep.EchoAtMost20 = 100 * histShareAtMost(m0, m1, echoDelayMetric, 0.02)
	rep.EchoAtMost40 = 100 * histShareAtMost(m0, m1, echoDelayMetric, 0.04)

	expected := func(c *botCall) float64 {
		if c.established.IsZero() || c.ended.IsZero() {
			return 0
		}
		return c.ended.Sub(c.established).Seconds() * 50
	}
	var lags []time.Duration
	var slowLagEnd, slowHeard, slowExpected, slowSent, slowDropped, slowMissed float64
	rep.FramesHeardMin = math.MaxInt64
	rep.SocketEnds, rep.EndCodes = map[string]int{}, map[string]int{}
	for i := range calls {
		c := &calls[i]
		st := c.media
		rep.SocketEnds[socketEnd(c)]++
		if !c.ended.IsZero() {
			rep.EndCodes[fmt.Sprintf("%d/%d", c.end.Code, c.end.Subcode)]++
		}
		rep.MediaReconnects += st.Reconnects
		if st.Done && !st.Bye {
			rep.SocketsWithoutBye++
		}
		if c.slow {
			rep.SlowCalls++
			slowHeard += float64(st.FramesRead)
			slowExpected += expected(c)
			slowSent += float64(st.Stats.ToBot.Sent)
			slowDropped += float64(st.Stats.ToBot.Dropped)
			rep.SlowDroppedMax = max(rep.SlowDroppedMax, st.Stats.ToBot.Dropped)
			slowMissed += float64(st.Missed)
			rep.SlowMissedMax = max(rep.SlowMissedMax, st.Missed)
			slowLagEnd += float64(st.LagAtEnd)
			rep.SlowLagMaxMS = max(rep.SlowLagMaxMS, float64(st.LagMax)/1e6)
			if !st.StatsSeen {
				rep.SlowNoStats++
			}
			if st.FirstDrop > 0 {
				rep.SlowDropping++
				rep.SlowFirstDropS += st.FirstDrop.Seconds()
			}
			continue
		}
		rep.FastCalls++
		rep.FramesHeard += st.FramesRead
		rep.FramesHeardMin = min(rep.FramesHeardMin, st.FramesRead)
		rep.FramesExpected += expected(c)
		rep.Echoed += st.Echoed
		rep.HeaderKept += st.HeaderKept
		rep.Misaligned += st.Misaligned
		rep.FastMissed += st.Missed
		if st.Missed > 0 {
			rep.FastCallsMissing++
		}
		rep.FastStatsDropped += st.Stats.ToBot.Dropped
		rep.FastFromBotDrop += st.Stats.FromBot.Dropped
		if !st.StatsSeen {
			rep.FastNoStats++
		}
		lags = append(lags, st.LagMax)
	}
	if rep.FastCalls == 0 {
		rep.FramesHeardMin = 0
	}
	rep.FastLagP99MS = float64(percentile(lags, 0.99)) / 1e6
	rep.FastLagMaxMS = float64(percentile(lags, 1)) / 1e6
	if n := float64(rep.SlowCalls); n > 0 {
		rep.SlowHeardMean, rep.SlowExpectedMean = slowHeard/n, slowExpected/n
		rep.SlowSentMean, rep.SlowDroppedMean, rep.SlowMissedMean = slowSent/n, slowDropped/n, slowMissed/n
		rep.SlowLagEndMeanMS = slowLagEnd / n / 1e6
	}
	if rep.SlowDropping > 0 {
		rep.SlowFirstDropS /= float64(rep.SlowDropping)
	}
}

// socketEnd says how a call's media socket ended.
func socketEnd(c *botCall) string {
	st := c.media
	var what string
	switch {
	case !st.Done && c.slow:
		return "a slow bot still reading its backlog"
	case !st.Done:
		return "still open"
	case st.Bye && c.mediaErr == "":
		return "bye, then 1000"
	case st.Bye:
		what = "bye, then "
	default:
		what = "no bye: "
	}
	e := c.mediaErr
	// One line per kind, not per call or port.
	switch {
	case strings.Contains(e, "closed by the server"):
		e = e[strings.Index(e, "closed by the server"):]
	case strings.Contains(e, "broken pipe"), strings.Contains(e, "connection reset"):
		e = "the bot's echo written after the server closed (EPIPE/ECONNRESET)"
	case e == "":
		e = "ended"
	}
	return what + e
}

// bucketString writes a histogram bucket (lo, hi] in milliseconds.
func bucketString(lo, hi float64) string {
	if hi == 0 {
		return "–"
	}
	if math.IsInf(hi, 1) {
		return fmt.Sprintf("> %g ms", lo*1e3)
	}
	return fmt.Sprintf("(%g, %g] ms", lo*1e3, hi*1e3)
}

func printEcho(w *os.File, r *echoReport) {
	fmt.Fprintf(w, "\nSwitchboard app-hosted media (echo): %d concurrent, %.0f calls/s, %.0f s hold, %d calls (%s), %s client, %d slow bots (%.0f ms per frame read)\n",
		r.Concurrent, r.Rate, r.HoldS, r.Total, r.Scenario, r.Client, r.SlowBots, r.SlowReadMS)
	fmt.Fprintf(w, "machine: %s\n", r.Machine)
	if r.InProcess {
		fmt.Fprintf(w, "PROFILING MODE (-inprocess): the node ran inside sbbench; CPU and RSS below include the bot's\n")
	}
	fmt.Fprintf(w, "load:    %s\n\n", r.SIPpCommand)
	var t table
	t.add("calls (SIPp): created / ok / failed", "%d / %d / %d (retransmissions %d)", r.Created, r.Successful, r.SIPpFailed, r.Retransmissions)
	for _, s := range sortedReasons(r.SIPpFailedBy) {
		t.add("  SIPp failed by", "%s", s)
	}
	t.add("calls (bot): seen / failed", "%d / %d (established, heard frames, ended 200)", r.BotCalls, r.BotFailed)
	for _, s := range sortedReasons(r.BotFailures) {
		t.add("  bot failure", "%s", s)
	}
	t.add("peak concurrent (SIPp)", "%d", r.PeakConcurrent)
	t.add("call-seconds (SIPp CurrentCall)", "%.0f", r.CallSeconds)
	t.add("", "")
	t.add("node CPU user+sys", "%.2f s + %.2f s", r.CPUUserS, r.CPUSysS)
	t.add("CPU-ms per call-second", "%.3f (at the plateau %.3f)", r.CPUmsPerCallSecond, r.SteadyCPUmsPerCallS)
	t.add("CPU-ms per call", "%.2f", r.CPUmsPerCall)
	t.add("node CPU at plateau / peak", "%.0f%% / %.0f%% of one core", r.SteadyCPUPercent, r.PeakCPUPercent)
	t.add("RSS idle / plateau / peak", "%.1f / %.1f / %.1f MB", r.IdleRSSMB, r.SteadyRSSMB, r.PeakRSSMB)
	t.add("RSS per held call", "%.3f MB (peak: %.3f MB)", r.RSSPerCallMB, r.PeakRSSPerCallMB)
	t.add("threads (max); context switches at the plateau", "%d; %.0f/s", r.Threads, r.CtxSwitchesPerSecond)
	t.add("per held call: goroutines, heap, stacks", "%.1f, %.1f KB, %.1f KB", r.GoroutinesPerCall, r.HeapPerCallKB, r.StackPerCallKB)
	t.add("allocations per call", "%.0f; %.0f GCs", r.MallocsPerCall, r.GCs)
	t.add("at the plateau: machine busy", "%.0f%% of %d cores (SIPp %.0f%%, sbbench %.0f%%, other processes %.0f%% of one core)", r.MachineBusyPercent, r.Machine.CPUs, r.SIPpCPUPercent, r.BotCPUPercent, r.OtherCPUPercent)
	t.add("background before the run", "%.0f%% of one core", r.BackgroundPercent)
	t.add("", "")
	t.add("setup INVITE→200 (SIPp) p50/p99/max", "%.1f / %.1f / %.1f ms", r.SetupP50MS, r.SetupP99MS, r.SetupMaxMS)
	t.add("bot: created → answer returned p50/p99", "%.1f / %.1f ms (media socket opened first)", r.AnswerP50MS, r.AnswerP99MS)
	t.add("node: webhook delivery p50/p99", "%.1f / %.1f ms (%d notifications, %d bad tokens)", r.WebhookP50MS, r.WebhookP99MS, r.Notifications, r.BadTokens)
	t.add("media ticks: late (>5 ms or skipped)", "%.0f of %.0f = %.3f%%; %.0f at the plateau", r.LateTicks, r.Ticks, r.LateTickPercent, r.LateTicksPlateau)
	t.add("tick lateness max / work max", "%.1f / %.1f ms", r.TickLatenessMaxMS, r.TickWorkMaxMS)
	t.add("", "")
	t.add("echo delay (node) p50 / p99", "%.1f / %.1f ms interpolated; buckets %s / %s (target p99 ≤ 40)", r.EchoP50MS, r.EchoP99MS, r.EchoP50Bucket, r.EchoP99Bucket)
	t.add("echo delay ≤ 20 / ≤ 40 ms; slowest", "%.2f%% / %.3f%% of %.0f timed; slowest in %s", r.EchoAtMost20, r.EchoAtMost40, r.EchoTimed, r.EchoMaxBucketsMS)
	t.add("echoing bots: calls; frames heard / expected", "%d; %d / %.0f (least in a call %d)", r.FastCalls, r.FramesHeard, r.FramesExpected, r.FramesHeardMin)
	t.add("  echoed; header kept / misaligned", "%d; %d / %d", r.Echoed, r.HeaderKept, r.Misaligned)
	t.add("  frames missed (gaps); calls with any", "%d; %d", r.FastMissed, r.FastCallsMissing)
	t.add("  stats: toBot.dropped / fromBot.dropped", "%d / %d (summed, last stats of each call; %d calls without stats)", r.FastStatsDropped, r.FastFromBotDrop, r.FastNoStats)
	t.add("  reading lag behind the media clock p99/max", "%.1f / %.1f ms", r.FastLagP99MS, r.FastLagMaxMS)
	if r.SlowCalls > 0 {
		t.add("slow bots: calls; frames heard / expected", "%d; %.0f / %.0f per call", r.SlowCalls, r.SlowHeardMean, r.SlowExpectedMean)
		t.add("  stats toBot: sent; dropped (mean, max)", "%.0f; %.0f, %d per call (%d calls without stats)", r.SlowSentMean, r.SlowDroppedMean, r.SlowDroppedMax, r.SlowNoStats)
		t.add("  frames missed (gaps) mean, max", "%.0f, %d per call (the echoing bots' gaps are skipped media ticks)", r.SlowMissedMean, r.SlowMissedMax)
		t.add("  calls with drops; first drop reported at", "%d; %.0f s into the call (mean; stats come every 5 s)", r.SlowDropping, r.SlowFirstDropS)
		t.add("  reading lag when the call ended (mean); most", "%.0f ms; %.0f ms (then it reads the rest at once)", r.SlowLagEndMeanMS, r.SlowLagMaxMS)
	}
	t.add("sockets: reconnects; ended without bye; open 30 s after the last call", "%d; %d; %d", r.MediaReconnects, r.SocketsWithoutBye, r.SocketsOpenAtEnd)
	for _, s := range sortedReasons(r.SocketEnds) {
		t.add("  socket ended", "%s", s)
	}
	for _, s := range sortedReasons(r.EndCodes) {
		t.add("  call ended (resultInfo)", "%s", s)
	}
	var st []string
	for k, v := range r.InvitesByStatus {
		st = append(st, fmt.Sprintf("%s: %.0f", k, v))
	}
	slices.Sort(st)
	t.add("INVITEs by final status", "%s", strings.Join(st, ", "))
	t.write(w)
	if r.Perf != nil {
		printPerf(w, r.Perf)
	}
	for _, f := range r.Profiles {
		fmt.Fprintf(w, "profile: %s\n", f)
	}
	fmt.Fprintf(w, "\noutput: %s\n", r.Out)
}
