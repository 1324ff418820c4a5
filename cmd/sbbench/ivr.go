package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// The IVR the bot runs: a prompt of promptSecs, then a recording of
// recordSecs (media operations run one after the other).
const (
	promptSecs = 5
	recordSecs = 5
	// framesPerPrompt is the RTP packets a whole prompt takes (20 ms each).
	framesPerPrompt = promptSecs * 50
)

// ivrReport is the steady-state run's result, also written as JSON.
type ivrReport struct {
	InProcess   bool     `json:"inProcess"` // profiling mode: CPU and RSS include the bot
	Profiles    []string `json:"profiles,omitempty"`
	Machine     machine  `json:"machine"`
	Command     string   `json:"command"`
	SIPpCommand string   `json:"sippCommand"`
	Concurrent  int      `json:"concurrent"`
	Rate        float64  `json:"rate"`
	HoldS       float64  `json:"holdSeconds"`
	Total       int      `json:"total"`
	Scenario    string   `json:"scenario"`

	// SIPp's view.
	Created         int            `json:"created"`
	Successful      int            `json:"successful"`
	SIPpFailed      int            `json:"sippFailed"`
	SIPpFailedBy    map[string]int `json:"sippFailedBy,omitempty"`
	Retransmissions int            `json:"retransmissions"`
	CallSeconds     float64        `json:"callSeconds"`
	PeakConcurrent  int            `json:"peakConcurrent"`
	CallsPerSecond  float64        `json:"callsPerSecond"`
	SetupP50MS      float64        `json:"setupP50ms"`
	SetupP99MS      float64        `json:"setupP99ms"`
	SetupMaxMS      float64        `json:"setupMaxms"`

	// The bot's view.
	BotCalls       int            `json:"botCalls"`
	BotFailed      int            `json:"botFailed"`
	BotFailures    map[string]int `json:"botFailures,omitempty"`
	DTMFMissed     int            `json:"dtmfMissed"`
	DTMFLate       int            `json:"dtmfPressedBeforeSubscribe"`
	APIP50MS       float64        `json:"apiActionP50ms"` // node: Graph action requests (histogram)
	APIP99MS       float64        `json:"apiActionP99ms"`
	AnswerP50MS    float64        `json:"answerP50ms"` // created notification → answer POST returned
	AnswerP99MS    float64        `json:"answerP99ms"`
	EstablishP50MS float64        `json:"establishP50ms"` // created → established notification
	EstablishP99MS float64        `json:"establishP99ms"`
	WebhookP50MS   float64        `json:"webhookP50ms"` // node: enqueue → bot's 202 (histogram)
	WebhookP99MS   float64        `json:"webhookP99ms"`
	Notifications  int64          `json:"notifications"`
	BadTokens      int64          `json:"badTokens"`

	// The node process.
	CPUUserS             float64 `json:"cpuUserSeconds"`
	CPUSysS              float64 `json:"cpuSysSeconds"`
	CPUmsPerCallSecond   float64 `json:"cpuMsPerCallSecond"`
	CPUmsPerCall         float64 `json:"cpuMsPerCall"`
	SteadyCPUmsPerCallS  float64 `json:"steadyCpuMsPerCallSecond"` // over the samples at the plateau
	SteadyCPUPercent     float64 `json:"steadyCpuPercent"`         // of one core
	PeakCPUPercent       float64 `json:"peakCpuPercent"`
	IdleRSSMB            float64 `json:"idleRssMB"`
	SteadyRSSMB          float64 `json:"steadyRssMB"`
	PeakRSSMB            float64 `json:"peakRssMB"`
	SteadyCalls          float64 `json:"steadyCalls"`
	RSSPerCallMB         float64 `json:"rssPerCallMB"`     // (steady − idle) / steady calls
	PeakRSSPerCallMB     float64 `json:"peakRssPerCallMB"` // (peak − idle) / peak calls
	Threads              int     `json:"threads"`
	MachineBusyPercent   float64 `json:"machineBusyPercent"` // at the plateau, of all cores
	SIPpCPUPercent       float64 `json:"sippCpuPercent"`     // at the plateau, of one core
	BotCPUPercent        float64 `json:"botCpuPercent"`      // sbbench itself, at the plateau
	LateTicksPlateau     float64 `json:"lateTicksPlateau"`
	CtxSwitchesPerSecond float64 `json:"ctxSwitchesPerSecond"` // the node's threads, at the plateau
	OtherCPUPercent      float64 `json:"otherCpuPercent"`      // machine busy minus node, SIPp and sbbench, at the plateau, of one core
	BackgroundPercent    float64 `json:"backgroundCpuPercent"` // other processes before the run, of one core
	// The node's Go runtime: what each held call adds (plateau median minus
	// idle, divided by the calls), allocations per call and per RTP packet.
	GoroutinesPerCall  float64            `json:"goroutinesPerCall"`
	HeapPerCallKB      float64            `json:"heapPerCallKB"`
	StackPerCallKB     float64            `json:"stackPerCallKB"`
	MallocsPerCall     float64            `json:"mallocsPerCall"`
	MallocsPerPacket   float64            `json:"mallocsPerPacketAtPlateau"` // allocations at the plateau / RTP packets sent+received then
	GCs                float64            `json:"gcs"`
	Ticks              float64            `json:"ticks"`
	LateTicks          float64            `json:"lateTicks"`
	LateTickPercent    float64            `json:"lateTickPercent"`
	TickLatenessMaxMS  float64            `json:"tickLatenessMaxms"`
	TickWorkMaxMS      float64            `json:"tickWorkMaxms"`
	RTPSent            float64            `json:"rtpSent"`
	RTPExpected        float64            `json:"rtpExpected"` // completed prompts × 250
	RTPReceived        float64            `json:"rtpReceived"`
	RTPReceivedPerCall float64            `json:"rtpReceivedPerCall"`
	InvitesByStatus    map[string]float64 `json:"invitesByStatus,omitempty"`
	Probes             int                `json:"probes"`
	ProbesOK           int                `json:"probesOk"`
	ProbeErrors        []string           `json:"probeErrors,omitempty"`
	ProbePackets       int                `json:"probePackets"`
	ProbeLost          int                `json:"probeLost"`
	ProbeGapP50MS      float64            `json:"probeGapP50ms"`
	ProbeGapP99MS      float64            `json:"probeGapP99ms"`
	ProbeGapMaxMS      float64            `json:"probeGapMaxms"`
	ProbeGapsOver30    int                `json:"probeGapsOver30ms"`
	ProbeGaps          int                `json:"probeGaps"`
	Perf               *perfSummary       `json:"perf,omitempty"`
	Out                string             `json:"out"`
}

func runIVR(args []string) error {
	fs := flag.NewFlagSet("ivr", flag.ExitOnError)
	var c common
	c.register(fs)
	calls := fs.Int("calls", 200, "concurrent calls to hold (SIPp -l)")
	rate := fs.Float64("rate", 50, "new calls per second (SIPp -r)")
	hold := fs.Duration("hold", 30*time.Second, "how long each call lasts from its answer to the caller's BYE")
	total := fs.Int("total", 0, "calls to place in all (SIPp -m; default 2 × -calls, as the peers ran)")
	scen := fs.String("scenario", "dtmf", "dtmf: ivr_load.xml plus one RFC 4733 press at 7.5 s; plain: ivr_load.xml as the peers ran it")
	probes := fs.Int("probes", 8, "probe calls that time the node's RTP at steady state (0: none)")
	warmup := fs.Int("warmup", 10, "IVR calls placed and ended before measuring (prompt fetched, pools warm)")
	_ = fs.Parse(args)
	if *total == 0 {
		*total = 2 * *calls
	}
	scenario, pause, minHold, err := ivrScenario(*scen, *hold)
	if err != nil {
		return err
	}

	ramp, loadFor := loadTimes(*calls, *total, *rate, *hold)
	sippTimeout := 2*loadFor + 30*time.Second
	if c.timeout == 0 {
		c.timeout = sippTimeout + 3*time.Minute
	}
	ctx, cancel := runContext(c.timeout)
	defer cancel()

	inactivity := *hold + time.Minute // SIPp's audio stops at 7 s; the call must outlive it
	e, err := setupEnv(ctx, &c, botIVR, recordSecs, inactivity)
	if err != nil {
		return err
	}
	defer e.close()
	rep := &ivrReport{InProcess: c.inprocess, Machine: describeMachine(c.sipp), Command: "sbbench " + strings.Join(os.Args[1:], " "),
		Concurrent: *calls, Rate: *rate, HoldS: hold.Seconds(), Total: *total, Scenario: scenario, Out: e.out}

	if err := e.warmUp(ctx, *scen, *warmup, minHold); err != nil {
		return err
	}
	e.bot.reset()
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

	run := e.sippRun("ivr", scenario, *rate, *calls, *total, pause, sippTimeout)
	rep.SIPpCommand = run.Command()
	logf("load: %s", rep.SIPpCommand)
	sippDone := run.start(ctx)

	// At the plateau: probes, and the profile.
	var (
		wg      sync.WaitGroup
		pmu     sync.Mutex
		presult []probeResult
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
				logf("the load never reached %d live calls (the bot sees %d): probing anyway", want, e.bot.Live())
				break
			}
			select {
			case <-plateauCtx.Done():
				return
			case <-sippFinished:
				logf("SIPp ended before the plateau: no probes, no profile")
				return
			case <-time.After(200 * time.Millisecond):
			}
		}
		logf("plateau: %d live calls", e.bot.Live())
		if c.inprocess {
			if profs, profErr = startProfiles(e.out, c.traceFor); profErr == nil {
				logf("Go CPU profile for %v, heap profile written, execution trace for %v", c.perfFor, c.traceFor)
				time.AfterFunc(c.perfFor, func() { pprof.StopCPUProfile() })
			}
		}
		if c.perf {
			perfRec, perfErr = startPerf(pid, c.perfFor, e.out)
			if perfErr == nil {
				logf("perf record for %v", c.perfFor)
			}
		}
		for i := range *probes {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r := runProbe(plateauCtx, e.node.sipAddr, minHold+2*time.Second, i)
				pmu.Lock()
				presult = append(presult, r)
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
		win.smp.Stop()
		if perfRec != nil {
			stopped, cancel := context.WithCancel(context.Background())
			cancel()
			_ = perfRec.wait(stopped) // SIGINT: perf writes what it has and exits
		}
		if profs != nil {
			_ = profs.stop()
		}
		return so.err
	}
	wg.Wait()
	logf("SIPp done: %d calls created, %d successful, %d failed; waiting for the last calls to end", so.res.Created, so.res.Successful, so.res.Failed)
	if err := e.settle(ctx, 60*time.Second); err != nil {
		logf("%v", err)
	}
	if err := win.close(e); err != nil {
		return err
	}
	rep.Perf = finishPerf(ctx, perfRec, perfErr, e.out)

	rep.Profiles = finishProfiles(profs, profErr)
	if err := writeTimeline(filepath.Join(e.out, "timeline.csv"), win.samples); err != nil {
		return err
	}
	fillIVR(rep, so.res, e.bot, win.cpu0, win.cpu1, win.m0, win.m1, win.samples, idle, presult, *scen == "dtmf")
	fillGo(rep, goStatsOf(idleMetrics), win.m0, win.m1, win.samples)
	if err := writeJSON(e.out, "report.json", rep); err != nil {
		return err
	}
	printIVR(os.Stdout, rep)
	return nil
}

// ivrScenario picks the SIPp scenario of -scenario (dtmf or plain) and
// SIPp's pause (-d) for calls of hold, which must outlast the bot's IVR:
// minHold is the shortest hold that does.
func ivrScenario(scen string, hold time.Duration) (scenario string, pause, minHold time.Duration, err error) {
	scenario, pause = "ivr_load_dtmf.xml", hold-dtmfAt
	switch scen {
	case "dtmf":
		if hold < dtmfAt+time.Second {
			return "", 0, 0, fmt.Errorf("-hold must be at least %v with the dtmf scenario", dtmfAt+time.Second)
		}
	case "plain":
		scenario, pause = "ivr_load.xml", hold
	default:
		return "", 0, 0, fmt.Errorf("-scenario %q is not dtmf or plain", scen)
	}
	minHold = time.Duration(promptSecs+recordSecs+1) * time.Second
	if hold < minHold {
		return "", 0, 0, fmt.Errorf("-hold must be at least %v: the bot plays %d s and records %d s", minHold, promptSecs, recordSecs)
	}
	return scenario, pause, minHold, nil
}

// warmUp places n IVR calls of -scenario scen and waits for them to end,
// so that the prompt is fetched and pools are warm before measuring; it
// fails only if none succeeded.
func (e *env) warmUp(ctx context.Context, scen string, n int, minHold time.Duration) error {
	if n <= 0 {
		return nil
	}
	wHold := minHold + 2*time.Second
	scenario, wPause, _, err := ivrScenario(scen, wHold)
	if err != nil {
		return err
	}
	logf("warm-up: %d IVR calls", n)
	w := e.sippRun("warmup", scenario, 10, n, n, wPause, 90*time.Second)
	wr, err := w.run(ctx)
	if err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	if err := e.settle(ctx, 30*time.Second); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	failed, reasons := failureSummary(e.bot.Calls(), botIVR)
	if wr.Failed > 0 || failed > 0 {
		logf("warm-up: SIPp failed %d, the bot saw %d failed: %s", wr.Failed, failed, strings.Join(sortedReasons(reasons), "; "))
		if wr.Successful == 0 {
			return fmt.Errorf("warm-up: no call succeeded; see %s and %s", e.node.logPath, filepath.Join(e.out, "warmup_errors.log"))
		}
	}
	return nil
}

func fillIVR(rep *ivrReport, sr *sippResult, b *bot, cpu0, cpu1 procCPU, m0, m1 map[string]float64,
	samples []sample, idle int64, probes []probeResult, dtmf bool) {
	fillSIPp(rep, sr)

	calls := b.Calls()
	rep.BotCalls = len(calls)
	rep.BotFailed, rep.BotFailures = failureSummary(calls, b.mode)
	var answer, establish []time.Duration
	completedPrompts := 0
	for _, c := range calls {
		if !c.answered.IsZero() {
			answer = append(answer, c.answered.Sub(c.incoming))
		}
		if !c.established.IsZero() {
			establish = append(establish, c.established.Sub(c.incoming))
		}
		if c.prompt.status == graph.OperationCompleted {
			completedPrompts++
		}
		if dtmf && c.caller == "sipp" && c.failure(botIVR) == "" && !slices.Contains(c.tones, "tone1") && !slices.Contains(c.tones, "1") {
			// SIPp presses 7.5 s after its ACK; tones before subscribeToTone
			// are not reported (by design). A subscription that returned
			// more than 7 s after the established notification came too late.
			if !c.subscribed.IsZero() && c.subscribed.Sub(c.established) > dtmfAt-500*time.Millisecond {
				rep.DTMFLate++
			} else {
				rep.DTMFMissed++
			}
		}
	}
	rep.AnswerP50MS = float64(percentile(answer, 0.5)) / 1e6
	rep.AnswerP99MS = float64(percentile(answer, 0.99)) / 1e6
	rep.EstablishP50MS = float64(percentile(establish, 0.5)) / 1e6
	rep.EstablishP99MS = float64(percentile(establish, 0.99)) / 1e6
	q50, _ := histQuantile(m0, m1, "switchboard_webhook_delivery_seconds", 0.5)
	q99, _ := histQuantile(m0, m1, "switchboard_webhook_delivery_seconds", 0.99)
	rep.WebhookP50MS, rep.WebhookP99MS = q50*1e3, q99*1e3
	a50, _ := histQuantile(m0, m1, "switchboard_http_request_duration_seconds", 0.5, `route="action"`)
	a99, _ := histQuantile(m0, m1, "switchboard_http_request_duration_seconds", 0.99, `route="action"`)
	rep.APIP50MS, rep.APIP99MS = a50*1e3, a99*1e3
	rep.Notifications, rep.BadTokens = b.notifications.Load(), b.badTokens.Load()

	fillProcess(rep, sr.Created, cpu0, cpu1, samples, idle)

	d := func(k string) float64 { return m1[k] - m0[k] }
	if plateau := plateauOf(samples); len(plateau) >= 2 {
		rep.LateTicksPlateau = plateau[len(plateau)-1].LateTicks - plateau[0].LateTicks
	}
	rep.Ticks = d("switchboard_media_ticks_total")
	rep.LateTicks = d("switchboard_media_late_ticks_total")
	if rep.Ticks > 0 {
		rep.LateTickPercent = 100 * rep.LateTicks / rep.Ticks
	}
	rep.TickLatenessMaxMS = m1["switchboard_media_tick_lateness_max_seconds"] * 1e3
	rep.TickWorkMaxMS = m1["switchboard_media_tick_work_max_seconds"] * 1e3
	rep.RTPSent = d("switchboard_media_rtp_packets_sent_total")
	rep.RTPReceived = d("switchboard_media_rtp_packets_received_total")
	rep.RTPExpected = float64(completedPrompts * framesPerPrompt)
	if len(calls) > 0 {
		rep.RTPReceivedPerCall = rep.RTPReceived / float64(len(calls))
	}
	rep.InvitesByStatus = invitesByStatus(m0, m1)

	fillProbes(rep, probes)
}

// invitesByStatus counts the INVITEs the node received between two
// scrapes of its metrics, by final status.
func invitesByStatus(m0, m1 map[string]float64) map[string]float64 {
	out := map[string]float64{}
	for k, v := range m1 {
		if strings.HasPrefix(k, "switchboard_sip_invites_total{") && strings.Contains(k, `direction="in"`) {
			i := strings.Index(k, `status="`)
			st := k[i+8:]
			st = st[:strings.IndexByte(st, '"')]
			if dv := v - m0[k]; dv > 0 {
				out[st] = dv
			}
		}
	}
	return out
}

// loadTimes says how long a SIPp load lasts: it creates calls at rate up
// to the concurrent limit (the ramp), then one call per call that ends, up
// to total, and the last one holds; loadFor adds a margin of 10 s.
func loadTimes(calls, total int, rate float64, hold time.Duration) (ramp, loadFor time.Duration) {
	ramp = time.Duration(float64(min(calls, total)) / rate * float64(time.Second))
	refill := 0.0
	if total > calls {
		refill = float64(total-calls) / min(rate, float64(calls)/hold.Seconds())
	}
	return ramp, ramp + time.Duration(refill*float64(time.Second)) + hold + 10*time.Second
}

// fillSIPp reads what SIPp reported: calls, failures, call-seconds (the
// divisor of the peers' figures) and setup times.
func fillSIPp(rep *ivrReport, sr *sippResult) {
	rep.Created, rep.Successful, rep.SIPpFailed, rep.SIPpFailedBy = sr.Created, sr.Successful, sr.Failed, sr.FailedBy
	rep.Retransmissions = sr.Retrans
	rep.CallSeconds = callSeconds(sr.Rows)
	for _, r := range sr.Rows {
		rep.PeakConcurrent = max(rep.PeakConcurrent, r.Current)
	}
	if w := creationWindow(sr.Rows); w > 0 {
		rep.CallsPerSecond = float64(sr.Created) / w.Seconds()
	}
	rep.SetupP50MS = float64(percentile(sr.RTT, 0.5)) / 1e6
	rep.SetupP99MS = float64(percentile(sr.RTT, 0.99)) / 1e6
	rep.SetupMaxMS = float64(percentile(sr.RTT, 1)) / 1e6
}

// plateauOf returns the samples with at least 95% of the peak of live
// calls: the steady state.
func plateauOf(samples []sample) []sample {
	peakLive := 0
	for _, s := range samples {
		peakLive = max(peakLive, s.Live)
	}
	var plateau []sample
	for _, s := range samples {
		if float64(s.Live) >= 0.95*float64(peakLive) && peakLive > 0 {
			plateau = append(plateau, s)
		}
	}
	return plateau
}

// fillProcess computes the process's figures from its CPU at both ends of
// the load and the per-second samples between: CPU per call-second (over
// rep.CallSeconds, which fillSIPp sets) and per call, and at the plateau
// CPU, RSS per held call and what else kept the machine busy. It reads
// nothing but /proc, so it measures any engine the same way.
func fillProcess(rep *ivrReport, created int, cpu0, cpu1 procCPU, samples []sample, idle int64) {
	rep.CPUUserS = (cpu1.User - cpu0.User).Seconds()
	rep.CPUSysS = (cpu1.Sys - cpu0.Sys).Seconds()
	cpuMS := (rep.CPUUserS + rep.CPUSysS) * 1e3
	if rep.CallSeconds > 0 {
		rep.CPUmsPerCallSecond = cpuMS / rep.CallSeconds
	}
	if created > 0 {
		rep.CPUmsPerCall = cpuMS / float64(created)
	}

	peakLive := 0
	var peakRSS int64
	for _, s := range samples {
		peakLive = max(peakLive, s.Live)
		peakRSS = max(peakRSS, s.RSS)
		rep.Threads = max(rep.Threads, s.Threads)
	}
	plateau := plateauOf(samples)
	for i := 1; i < len(samples); i++ {
		dt := samples[i].At.Sub(samples[i-1].At).Seconds()
		if dt > 0 {
			rep.PeakCPUPercent = max(rep.PeakCPUPercent, 100*(samples[i].CPU.Total()-samples[i-1].CPU.Total()).Seconds()/dt)
		}
	}
	if n := len(plateau); n >= 2 {
		first, last := plateau[0], plateau[n-1]
		cpu := (last.CPU.Total() - first.CPU.Total()).Seconds()
		wall := last.At.Sub(first.At).Seconds()
		var liveSum float64
		rss := make([]int64, 0, n)
		for _, s := range plateau {
			liveSum += float64(s.Live)
			rss = append(rss, s.RSS)
		}
		mean := liveSum / float64(n)
		rep.SteadyCalls = mean
		if wall > 0 && mean > 0 {
			rep.SteadyCPUPercent = 100 * cpu / wall
			rep.SteadyCPUmsPerCallS = cpu * 1e3 / (wall * mean)
			rep.SIPpCPUPercent = 100 * (last.SIPp - first.SIPp).Seconds() / wall
			rep.BotCPUPercent = 100 * (last.Self - first.Self).Seconds() / wall
		}
		if all := last.All - first.All; all > 0 {
			rep.MachineBusyPercent = 100 * float64(last.Busy-first.Busy) / float64(all)
			if wall > 0 {
				rep.OtherCPUPercent = 100*(last.Busy-first.Busy).Seconds()/wall - rep.SteadyCPUPercent - rep.SIPpCPUPercent - rep.BotCPUPercent
			}
		}
		if wall > 0 && last.CtxSw >= first.CtxSw {
			rep.CtxSwitchesPerSecond = float64(last.CtxSw-first.CtxSw) / wall
		}
		slices.Sort(rss)
		rep.SteadyRSSMB = float64(rss[n/2]) / (1 << 20)
		if mean > 0 {
			rep.RSSPerCallMB = (float64(rss[n/2]) - float64(idle)) / (1 << 20) / mean
		}
	}
	rep.IdleRSSMB = float64(idle) / (1 << 20)
	rep.PeakRSSMB = float64(peakRSS) / (1 << 20)
	if peakLive > 0 {
		rep.PeakRSSPerCallMB = (float64(peakRSS) - float64(idle)) / (1 << 20) / float64(peakLive)
	}
}

// fillProbes sums what the probe calls saw of the engine's RTP.
func fillProbes(rep *ivrReport, probes []probeResult) {
	rep.Probes = len(probes)
	var gaps []time.Duration
	for _, p := range probes {
		if p.Err == "" {
			rep.ProbesOK++
		} else {
			rep.ProbeErrors = append(rep.ProbeErrors, p.Err)
		}
		rep.ProbePackets += p.Packets
		rep.ProbeLost += p.Lost
		gaps = append(gaps, p.Gaps...)
	}
	rep.ProbeGaps = len(gaps)
	for _, g := range gaps {
		if g > 30*time.Millisecond {
			rep.ProbeGapsOver30++
		}
	}
	rep.ProbeGapP50MS = float64(percentile(gaps, 0.5)) / 1e6
	rep.ProbeGapP99MS = float64(percentile(gaps, 0.99)) / 1e6
	rep.ProbeGapMaxMS = float64(percentile(gaps, 1)) / 1e6
}

// fillGo reads the node's Go runtime figures: per held call at the plateau
// against idle, and allocations.
func fillGo(rep *ivrReport, idle goStats, m0, m1 map[string]float64, samples []sample) {
	g0, g1 := goStatsOf(m0), goStatsOf(m1)
	rep.GCs = g1.GCs - g0.GCs
	if rep.BotCalls > 0 {
		rep.MallocsPerCall = (g1.Mallocs - g0.Mallocs) / float64(rep.BotCalls)
	}
	peak := 0
	for _, s := range samples {
		peak = max(peak, s.Live)
	}
	var plateau []sample
	for _, s := range samples {
		if peak > 0 && float64(s.Live) >= 0.95*float64(peak) {
			plateau = append(plateau, s)
		}
	}
	n := len(plateau)
	if n < 2 {
		return
	}
	med := func(f func(goStats) float64) float64 {
		v := make([]float64, n)
		for i, s := range plateau {
			v[i] = f(s.Go)
		}
		slices.Sort(v)
		return v[n/2]
	}
	var live float64
	for _, s := range plateau {
		live += float64(s.Live)
	}
	live /= float64(n)
	rep.GoroutinesPerCall = (med(func(g goStats) float64 { return g.Goroutines }) - idle.Goroutines) / live
	rep.HeapPerCallKB = (med(func(g goStats) float64 { return g.HeapInuse }) - idle.HeapInuse) / live / 1024
	rep.StackPerCallKB = (med(func(g goStats) float64 { return g.StackInuse }) - idle.StackInuse) / live / 1024
	// Packets at the plateau are not sampled per second; estimate them from
	// the run's totals and the plateau's share of the call-seconds.
	first, last := plateau[0], plateau[n-1]
	if rep.CallSeconds > 0 {
		share := live * last.At.Sub(first.At).Seconds() / rep.CallSeconds
		if pk := share * (rep.RTPSent + rep.RTPReceived); pk > 0 {
			rep.MallocsPerPacket = (last.Go.Mallocs - first.Go.Mallocs) / pk
		}
	}
}

func printIVR(w *os.File, r *ivrReport) {
	fmt.Fprintf(w, "\nSwitchboard IVR steady state: %d concurrent, %.0f calls/s, %.0f s hold, %d calls (%s)\n", r.Concurrent, r.Rate, r.HoldS, r.Total, r.Scenario)
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
	t.add("calls (bot): seen / failed", "%d / %d", r.BotCalls, r.BotFailed)
	t.add("DTMF press not reported", "%d (and %d pressed before the bot's subscribeToTone returned)", r.DTMFMissed, r.DTMFLate)
	for _, s := range sortedReasons(r.BotFailures) {
		t.add("  bot failure", "%s", s)
	}
	t.add("peak concurrent (SIPp)", "%d", r.PeakConcurrent)
	t.add("call-seconds (SIPp CurrentCall)", "%.0f", r.CallSeconds)
	t.add("calls/s achieved (SIPp, bounded by -l)", "%.1f", r.CallsPerSecond)
	t.add("", "")
	t.add("node CPU user+sys", "%.2f s + %.2f s", r.CPUUserS, r.CPUSysS)
	t.add("CPU-ms per call-second", "%.3f (at the plateau %.3f; target ≤ 0.2 at 1000 calls)", r.CPUmsPerCallSecond, r.SteadyCPUmsPerCallS)
	t.add("CPU-ms per call", "%.2f (target ≤ 6)", r.CPUmsPerCall)
	t.add("node CPU at plateau / peak", "%.0f%% / %.0f%% of one core", r.SteadyCPUPercent, r.PeakCPUPercent)
	t.add("RSS idle / plateau / peak", "%.1f / %.1f / %.1f MB", r.IdleRSSMB, r.SteadyRSSMB, r.PeakRSSMB)
	t.add("RSS per held call", "%.3f MB (peak: %.3f MB; target ≤ 0.06)", r.RSSPerCallMB, r.PeakRSSPerCallMB)
	t.add("threads (max); context switches at the plateau", "%d; %.0f/s", r.Threads, r.CtxSwitchesPerSecond)
	t.add("per held call: goroutines, heap, stacks", "%.1f, %.1f KB, %.1f KB", r.GoroutinesPerCall, r.HeapPerCallKB, r.StackPerCallKB)
	t.add("allocations per call; at the plateau per RTP packet", "%.0f; %.2f (all of the node's work over packets); %.0f GCs", r.MallocsPerCall, r.MallocsPerPacket, r.GCs)
	t.add("at the plateau: machine busy", "%.0f%% of %d cores (SIPp %.0f%%, sbbench %.0f%%, other processes %.0f%% of one core)", r.MachineBusyPercent, r.Machine.CPUs, r.SIPpCPUPercent, r.BotCPUPercent, r.OtherCPUPercent)
	t.add("background before the run", "%.0f%% of one core", r.BackgroundPercent)
	t.add("", "")
	t.add("setup INVITE→200 (SIPp) p50/p99/max", "%.1f / %.1f / %.1f ms", r.SetupP50MS, r.SetupP99MS, r.SetupMaxMS)
	t.add("bot: created → answer returned p50/p99", "%.1f / %.1f ms", r.AnswerP50MS, r.AnswerP99MS)
	t.add("bot: created → established p50/p99", "%.1f / %.1f ms", r.EstablishP50MS, r.EstablishP99MS)
	t.add("node: webhook delivery p50/p99", "%.1f / %.1f ms (%d notifications, %d bad tokens)", r.WebhookP50MS, r.WebhookP99MS, r.Notifications, r.BadTokens)
	t.add("node: Graph actions (answer, …) p50/p99", "%.1f / %.1f ms", r.APIP50MS, r.APIP99MS)
	t.add("", "")
	t.add("media ticks: late (>5 ms or skipped)", "%.0f of %.0f = %.3f%% (target < 0.1%%); %.0f at the plateau", r.LateTicks, r.Ticks, r.LateTickPercent, r.LateTicksPlateau)
	t.add("tick lateness max / work max", "%.1f / %.1f ms", r.TickLatenessMaxMS, r.TickWorkMaxMS)
	t.add("RTP sent / expected (prompts)", "%.0f / %.0f", r.RTPSent, r.RTPExpected)
	t.add("RTP received per call", "%.0f", r.RTPReceivedPerCall)
	t.add("probes ok", "%d of %d", r.ProbesOK, r.Probes)
	for _, e := range r.ProbeErrors {
		t.add("  probe error", "%s", e)
	}
	t.add("probe RTP gap p50/p99/max", "%.1f / %.1f / %.1f ms (target p99 ≤ 30)", r.ProbeGapP50MS, r.ProbeGapP99MS, r.ProbeGapMaxMS)
	t.add("probe gaps > 30 ms, lost", "%d of %d, %d lost of %d", r.ProbeGapsOver30, r.ProbeGaps, r.ProbeLost, r.ProbePackets)
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

func printPerf(w *os.File, p *perfSummary) {
	fmt.Fprintf(w, "\nperf (the measured process only): by DSO:")
	for i, l := range p.DSO {
		if i == 4 {
			break
		}
		fmt.Fprintf(w, "  %.1f%% %s", l.Percent, l.What)
	}
	fmt.Fprintf(w, "\ntop self costs:\n")
	for i, l := range p.Self {
		if i == 20 {
			break
		}
		fmt.Fprintf(w, "  %6.2f%%  %s\n", l.Percent, l.What)
	}
	fmt.Fprintf(w, "top inclusive costs:\n")
	for i, l := range p.Children {
		if i == 30 {
			break
		}
		fmt.Fprintf(w, "  %6.2f%%  %s\n", l.Percent, l.What)
	}
}
