package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// botConf is the bot's behaviour in a conference run: it places group
// calls to phone numbers behind the trunk and hangs them up.
const botConf = "conf"

// confReport is a conference run's result, also written as JSON.
type confReport struct {
	InProcess   bool     `json:"inProcess"`
	Profiles    []string `json:"profiles,omitempty"`
	Machine     machine  `json:"machine"`
	Command     string   `json:"command"`
	SIPpCommand string   `json:"sippCommand"`
	Parties     int      `json:"partiesPerConference"`
	Conferences int      `json:"conferences"`
	HoldS       float64  `json:"holdSeconds"`
	Rate        float64  `json:"legsPerSecond"`

	// SIPp's view: each leg is one of its calls.
	Legs            int            `json:"legs"`
	Successful      int            `json:"successful"`
	SIPpFailed      int            `json:"sippFailed"`
	SIPpFailedBy    map[string]int `json:"sippFailedBy,omitempty"`
	Retransmissions int            `json:"retransmissions"`
	LegSeconds      float64        `json:"legSeconds"` // SIPp's CurrentCall over time: participant-seconds
	PeakLegs        int            `json:"peakLegs"`

	// The bot's view.
	Created         int                `json:"created"`
	Full            int                `json:"full"` // conferences whose roster reached every party
	Failures        map[string]int     `json:"failures,omitempty"`
	EndedBy         map[string]int     `json:"endedBy,omitempty"`
	ShrankBefore    int                `json:"rostersShrankBeforeHangup"`
	JoinedAtHold    int                `json:"joinedAtHold"`
	JoinedAtHangup  int                `json:"joinedAtHangup"`
	RampS           float64            `json:"rampSeconds"` // first create → every roster full
	FullP50S        float64            `json:"fullP50s"`    // create → full roster, per conference
	FullMaxS        float64            `json:"fullMaxs"`
	HangupP50MS     float64            `json:"hangupP50ms"` // DELETE → terminated notification
	HangupMaxMS     float64            `json:"hangupMaxms"`
	Notifications   int64              `json:"notifications"`
	NotifyPosts     int64              `json:"notificationPosts"`
	NotifyMB        float64            `json:"notificationMB"`
	Rosters         int64              `json:"rosterNotifications"`
	RosterMB        float64            `json:"rosterMB"`
	RosterMaxKB     float64            `json:"rosterMaxKB"`
	BadTokens       int64              `json:"badTokens"`
	WebhookP50MS    float64            `json:"webhookP50ms"`
	WebhookP99MS    float64            `json:"webhookP99ms"`
	APICreateP50MS  float64            `json:"apiCreateP50ms"`
	APICreateP99MS  float64            `json:"apiCreateP99ms"`
	APIInviteP50MS  float64            `json:"apiInviteP50ms"`
	APIInviteP99MS  float64            `json:"apiInviteP99ms"`
	InvitesByStatus map[string]float64 `json:"invitesOutByStatus,omitempty"`

	// The node at the hold, every party in: the steady state.
	HoldWallS           float64 `json:"holdWallSeconds"`
	HoldParties         float64 `json:"holdParties"` // mean of the per-second samples
	HoldCPUmsPerPartyS  float64 `json:"holdCpuMsPerPartySecond"`
	HoldCPUPercent      float64 `json:"holdCpuPercent"` // of one core
	HoldCPUPercentParty float64 `json:"holdCpuPercentPerParty"`
	// The same above the idle node's CPU (IdleCPUPercent), which its media
	// clock spends with no session at all.
	HoldCPUmsPerPartySAboveIdle float64 `json:"holdCpuMsPerPartySecondAboveIdle"`
	IdleCPUPercent              float64 `json:"idleCpuPercent"`
	HoldUserPercent             float64 `json:"holdUserPercent"`
	HoldSysPercent              float64 `json:"holdSysPercent"`
	HoldTicks                   float64 `json:"holdTicks"`
	HoldLateTicks               float64 `json:"holdLateTicks"`
	HoldRTPSentPerPartyS        float64 `json:"holdRtpSentPerPartySecond"`
	HoldRTPRecvPerPartyS        float64 `json:"holdRtpReceivedPerPartySecond"`
	HoldRSSMB                   float64 `json:"holdRssMB"`
	RSSPerPartyMB               float64 `json:"rssPerPartyMB"` // (hold median − idle) / parties
	HoldCtxSwitchesPerS         float64 `json:"holdCtxSwitchesPerSecond"`
	HoldGoroutines              float64 `json:"holdGoroutines"`
	HoldHeapMB                  float64 `json:"holdHeapMB"`
	MachineBusyPercent          float64 `json:"machineBusyPercent"` // at the hold, of all cores
	SIPpCPUPercent              float64 `json:"sippCpuPercent"`     // at the hold, of one core
	BotCPUPercent               float64 `json:"botCpuPercent"`
	SoftIRQPercent              float64 `json:"softirqPercent"`   // at the hold, of one core: the machine's softirq time, within the processes' (see readMachineSoftIRQ)
	KsoftirqdPercent            float64 `json:"ksoftirqdPercent"` // at the hold, of one core: softirqs deferred to the ksoftirqd threads
	OtherCPUPercent             float64 `json:"otherCpuPercent"`
	BackgroundPercent           float64 `json:"backgroundCpuPercent"`

	// The node over the whole run: ramp, hold, hang-up.
	CPUUserS          float64      `json:"cpuUserSeconds"`
	CPUSysS           float64      `json:"cpuSysSeconds"`
	CPUmsPerPartyS    float64      `json:"cpuMsPerPartySecond"` // over SIPp's leg-seconds
	CPUmsPerLeg       float64      `json:"cpuMsPerLeg"`
	PeakCPUPercent    float64      `json:"peakCpuPercent"`
	IdleRSSMB         float64      `json:"idleRssMB"`
	PeakRSSMB         float64      `json:"peakRssMB"`
	Threads           int          `json:"threads"`
	Ticks             float64      `json:"ticks"`
	LateTicks         float64      `json:"lateTicks"`
	LateTickPercent   float64      `json:"lateTickPercent"`
	TickLatenessMaxMS float64      `json:"tickLatenessMaxms"` // since the node started
	TickWorkMaxMS     float64      `json:"tickWorkMaxms"`
	RTPSent           float64      `json:"rtpSent"`
	RTPReceived       float64      `json:"rtpReceived"`
	MallocsPerPartyS  float64      `json:"mallocsPerPartySecondAtHold"`
	GCs               float64      `json:"gcs"`
	Perf              *perfSummary `json:"perf,omitempty"`
	Out               string       `json:"out"`
}

func runConf(args []string) error {
	fs := flag.NewFlagSet("conf", flag.ExitOnError)
	var c common
	c.register(fs)
	parties := fs.Int("parties", 10, "parties per conference: phone numbers behind the trunk, answered by SIPp")
	confs := fs.Int("conferences", 1, "group calls held at once")
	hold := fs.Duration("hold", 30*time.Second, "how long every party stays in once all have joined: the measured steady state")
	legRate := fs.Float64("rate", 50, "legs dialed per second, over all conferences (the bot paces its creates and invites)")
	warmup := fs.Int("warmup", 5, "parties of a conference placed and ended before measuring (0: none)")
	audio := fs.String("audio", "stream", "how SIPp speaks: stream (rtp_stream from its one -mp UDP socket) or pcap (play_pcap_audio: a raw socket per leg, which the kernel offers every UDP packet on the machine)")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), `Usage: sbbench conf [flags]

A conference run: the bot creates -conferences group calls of -parties phone
numbers each (the first 25 in the create request, the rest invited five at a
time), sourced from its number's applicationInstance. The node dials every
party through the trunk, where a SIPp UAS (testdata/conf_uas_stream.xml)
answers and speaks until hung up (7 s of A-law speech looped in 20 ms packets);
the node mixes each conference. Once every roster is full the load is held for
-hold, then the bot hangs the calls up.
Figures: the node's CPU per participant-second, at the hold and over the run;
RSS per participant; late media ticks; what the roster notifications cost.

  sbbench conf -parties 100 -conferences 1 -hold 30s
  sbbench conf -parties 5 -conferences 100 -hold 30s

Flags:
`)
		fs.PrintDefaults()
	}
	_ = fs.Parse(args)
	switch {
	case *parties < 2:
		return errors.New("-parties must be at least 2: a group call has several targets")
	case *confs < 1:
		return errors.New("-conferences must be at least 1")
	case *legRate <= 0:
		return errors.New("-rate must be positive")
	case *hold < 5*time.Second:
		return errors.New("-hold must be at least 5s")
	}
	scenario := "conf_uas_stream.xml"
	switch *audio {
	case "stream":
	case "pcap":
		scenario = "conf_uas.xml"
	default:
		return fmt.Errorf("-audio %q is not stream or pcap", *audio)
	}
	legs := *parties * *confs
	rtpMin, rtpMax, err := c.portRange()
	if err != nil {
		return err
	}
	if need := 2 * (legs + *warmup + 10); rtpMax-rtpMin < need {
		return fmt.Errorf("-rtp-ports %s is too small for %d legs", c.rtpPorts, legs)
	}
	ramp := time.Duration(float64(legs) / *legRate * float64(time.Second))
	joinWait := 2*ramp + 60*time.Second
	sippTimeout := joinWait + *hold + 3*time.Minute
	if c.timeout == 0 {
		c.timeout = sippTimeout + 3*time.Minute
	}
	ctx, cancel := runContext(c.timeout)
	defer cancel()

	// SIPp's speech never stops, but the node's inactivity timer must not
	// end a leg that waits for the others.
	inactivity := joinWait + *hold + time.Minute
	e, err := setupEnv(ctx, &c, botConf, 0, inactivity)
	if err != nil {
		return err
	}
	defer e.close()
	d := newConfDriver(e.bot, *legRate)
	e.bot.conf = d
	e.uasScenario = scenario
	rep := &confReport{InProcess: c.inprocess, Machine: describeMachine(c.sipp), Command: "sbbench " + strings.Join(os.Args[1:], " "),
		Parties: *parties, Conferences: *confs, HoldS: hold.Seconds(), Rate: *legRate, Out: e.out}

	if *warmup > 0 {
		logf("warm-up: one conference of %d parties", *warmup)
		if err := e.warmConference(ctx, d, *warmup); err != nil {
			return fmt.Errorf("warm-up: %w", err)
		}
	}
	e.bot.reset()
	d.reset()
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(2 * time.Second):
	}
	rep.BackgroundPercent = e.waitQuiet(ctx)
	pid := e.node.pid()
	// The idle node's own CPU (its media clock runs with no session): the
	// figure a small conference's per-participant cost is taken above.
	idleCPU0, err := readCPU(pid)
	if err != nil {
		return err
	}
	idle, err := e.idleRSS(ctx)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(time.Until(idleCPU0.At.Add(5 * time.Second))):
	}
	idleCPU1, err := readCPU(pid)
	if err != nil {
		return err
	}
	if wall := idleCPU1.At.Sub(idleCPU0.At).Seconds(); wall > 0 {
		rep.IdleCPUPercent = 100 * (idleCPU1.Total() - idleCPU0.Total()).Seconds() / wall
	}
	win, err := e.open()
	if err != nil {
		return err
	}

	stop := make(chan struct{})
	var stopOnce sync.Once
	stopSIPp := func() { stopOnce.Do(func() { close(stop) }) }
	defer stopSIPp()
	run := e.sippUAS("conf", legs, sippTimeout, stop)
	rep.SIPpCommand = run.Command()
	logf("trunk: %s", rep.SIPpCommand)
	sippDone := run.start(ctx)
	if err := e.waitUAS(ctx); err != nil {
		return err
	}

	logf("load: %d conferences of %d parties, %d legs at %.0f legs/s", *confs, *parties, legs, *legRate)
	start := time.Now()
	var runs sync.WaitGroup
	for i := range *confs {
		runs.Add(1)
		go func() {
			defer runs.Done()
			d.run(ctx, i+1, planConference(i+1, *parties))
		}()
		// Start them in order: the limiter serves its waiters first come.
		select {
		case <-ctx.Done():
		case <-time.After(time.Millisecond):
		}
	}
	runsDone := make(chan struct{})
	go func() { runs.Wait(); close(runsDone) }()

	// Wait for every roster to be full, or for the joins to stop.
	deadline := time.Now().Add(joinWait)
	last, lastChange := -1, time.Now()
	for {
		j := d.Joined()
		if j >= legs {
			break
		}
		if j != last {
			last, lastChange = j, time.Now()
		}
		finished := false
		select {
		case <-runsDone:
			finished = true
		default:
		}
		if time.Now().After(deadline) || (finished && time.Since(lastChange) > 20*time.Second) {
			logf("WARNING: only %d of %d parties joined; holding what there is", j, legs)
			break
		}
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case so := <-sippDone:
			if so.err != nil {
				return so.err
			}
			return fmt.Errorf("SIPp ended before the hold: %d calls, %d failed; see %s", so.res.Created, so.res.Failed, filepath.Join(e.out, "conf_screen.txt"))
		case <-time.After(200 * time.Millisecond):
		}
	}
	rep.RampS = time.Since(start).Seconds()
	rep.JoinedAtHold = d.Joined()
	logf("hold: %d parties in for %v (ramp %.1f s)", rep.JoinedAtHold, *hold, rep.RampS)

	// The hold: every party in, nothing but media.
	holdStart := time.Now()
	cpuA, err := readCPU(pid)
	if err != nil {
		return err
	}
	mA, err := e.node.metrics()
	if err != nil {
		return err
	}
	var (
		perfRec *perfRecording
		perfErr error
		profs   *profiles
		profErr error
	)
	if c.inprocess {
		if profs, profErr = startProfiles(e.out, c.traceFor); profErr == nil {
			logf("Go CPU profile for %v, heap profile written, execution trace for %v", c.perfFor, c.traceFor)
			time.AfterFunc(min(c.perfFor, *hold), func() { pprof.StopCPUProfile() })
		}
	}
	if c.perf {
		if perfRec, perfErr = startPerf(pid, min(c.perfFor, *hold), e.out); perfErr == nil {
			logf("perf record for %v", min(c.perfFor, *hold))
		}
	}
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(*hold):
	}
	cpuB, err := readCPU(pid)
	if err != nil {
		return err
	}
	mB, err := e.node.metrics()
	if err != nil {
		return err
	}
	holdEnd := time.Now()
	rep.JoinedAtHangup = d.Joined()

	logf("hang-up: %d calls", d.Live())
	d.hangUp(ctx)
	runs.Wait()
	if err := e.settle(ctx, 60*time.Second); err != nil {
		logf("%v", err)
	}
	var so sippOut
	select {
	case so = <-sippDone:
	case <-time.After(15 * time.Second):
		logf("SIPp has not seen all its %d calls end: stopping it", legs)
		stopSIPp()
		so = <-sippDone
	}
	if so.err != nil {
		win.smp.Stop()
		return so.err
	}
	if err := win.close(e); err != nil {
		return err
	}
	rep.Perf = finishPerf(ctx, perfRec, perfErr, e.out)
	rep.Profiles = finishProfiles(profs, profErr)
	if err := writeTimeline(filepath.Join(e.out, "timeline.csv"), win.samples); err != nil {
		return err
	}
	fillConf(rep, so.res, e.bot, d, win, idle)
	fillHold(rep, cpuA, cpuB, mA, mB, holdStart, holdEnd, win.samples, idle)
	if err := writeJSON(e.out, "report.json", rep); err != nil {
		return err
	}
	printConf(os.Stdout, rep)
	return nil
}

// sippUAS prepares a SIPp run that answers the node's calls as the trunk.
func (e *env) sippUAS(name string, calls int, timeout time.Duration, stop <-chan struct{}) *sippRun {
	r := e.sippRun(name, e.uasScenario, 0, 0, calls, 0, timeout)
	r.uas, r.stop = true, stop
	return r
}

// waitUAS waits until SIPp listens on the trunk's address: until that port
// can no longer be bound.
func (e *env) waitUAS(ctx context.Context) error {
	addr := net.JoinHostPort(sippIP, strconv.Itoa(e.sippPort))
	for range 200 {
		c, err := net.ListenPacket("udp", addr)
		if err != nil {
			return nil
		}
		c.Close()
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("SIPp does not listen on %s after 10 s; see %s", addr, e.out)
}

// warmConference places one small conference, holds it a few seconds and
// hangs it up: the node's pools and the bot's connections warm up.
func (e *env) warmConference(ctx context.Context, d *confDriver, parties int) error {
	stop := make(chan struct{})
	defer func() {
		select {
		case <-stop:
		default:
			close(stop)
		}
	}()
	run := e.sippUAS("warmup", parties, 2*time.Minute, stop)
	done := make(chan error, 1)
	go func() {
		_, err := run.run(ctx)
		done <- err
	}()
	if err := e.waitUAS(ctx); err != nil {
		return err
	}
	d.run(ctx, 0, planConference(0, parties))
	deadline := time.Now().Add(30 * time.Second)
	for d.Joined() < parties && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(100 * time.Millisecond):
		}
	}
	if j := d.Joined(); j < parties {
		return fmt.Errorf("%d of %d parties joined; see %s", j, parties, e.node.logPath)
	}
	select {
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(3 * time.Second):
	}
	d.hangUp(ctx)
	if err := e.settle(ctx, 30*time.Second); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-time.After(10 * time.Second):
		close(stop)
		return <-done
	}
}

// fillConf reads the run as a whole: SIPp's legs, the bot's calls, the
// node's counters between the window's ends.
func fillConf(rep *confReport, sr *sippResult, b *bot, d *confDriver, w *window, idle int64) {
	rep.Legs, rep.Successful, rep.SIPpFailed, rep.SIPpFailedBy = sr.Created, sr.Successful, sr.Failed, sr.FailedBy
	rep.Retransmissions = sr.Retrans
	rep.LegSeconds = callSeconds(sr.Rows)
	for _, r := range sr.Rows {
		rep.PeakLegs = max(rep.PeakLegs, r.Current)
	}

	calls := d.Calls()
	rep.Failures, rep.EndedBy = map[string]int{}, map[string]int{}
	var full, hangup []time.Duration
	for _, c := range calls {
		if c.createErr != "" {
			rep.Failures[trim("create: "+c.createErr)]++
			continue
		}
		rep.Created++
		if !c.full.IsZero() {
			rep.Full++
			full = append(full, c.full.Sub(c.posted))
		} else {
			rep.Failures[fmt.Sprintf("roster never full (%d of %d at most)", c.maxRoster, c.want)]++
		}
		for _, e := range c.inviteErrs {
			rep.Failures[trim("invite refused: "+e)]++
		}
		for _, e := range c.opsFailed {
			rep.Failures[trim("invite failed: "+e)]++
		}
		if c.hangupErr != "" {
			rep.Failures[trim("hang-up: "+c.hangupErr)]++
		}
		rep.ShrankBefore += c.shrank
		if c.ended.IsZero() {
			rep.Failures["never terminated"]++
		} else {
			rep.EndedBy[c.end.String()]++
			if !c.hangup.IsZero() {
				hangup = append(hangup, c.ended.Sub(c.hangup))
			}
		}
	}
	rep.FullP50S = percentile(full, 0.5).Seconds()
	rep.FullMaxS = percentile(full, 1).Seconds()
	rep.HangupP50MS = float64(percentile(hangup, 0.5)) / 1e6
	rep.HangupMaxMS = float64(percentile(hangup, 1)) / 1e6
	rep.Notifications, rep.NotifyPosts, rep.BadTokens = b.notifications.Load(), b.posts.Load(), b.badTokens.Load()
	rep.NotifyMB = float64(b.postBytes.Load()) / (1 << 20)
	rep.Rosters = d.rosters.Load()
	rep.RosterMB = float64(d.rosterBytes.Load()) / (1 << 20)
	rep.RosterMaxKB = float64(d.rosterMax.Load()) / 1024

	m0, m1 := w.m0, w.m1
	q := func(name string, p float64, match ...string) float64 {
		v, _ := histQuantile(m0, m1, name, p, match...)
		return v * 1e3
	}
	rep.WebhookP50MS, rep.WebhookP99MS = q("switchboard_webhook_delivery_seconds", 0.5), q("switchboard_webhook_delivery_seconds", 0.99)
	// POST .../calls is route "calls"; POST .../participants/invite is
	// served as the "participant" route, with invite as its {pid}.
	rep.APICreateP50MS = q("switchboard_http_request_duration_seconds", 0.5, `route="calls"`)
	rep.APICreateP99MS = q("switchboard_http_request_duration_seconds", 0.99, `route="calls"`)
	rep.APIInviteP50MS = q("switchboard_http_request_duration_seconds", 0.5, `route="participant"`)
	rep.APIInviteP99MS = q("switchboard_http_request_duration_seconds", 0.99, `route="participant"`)
	rep.InvitesByStatus = map[string]float64{}
	for k, v := range m1 {
		if strings.HasPrefix(k, "switchboard_sip_invites_total{") && strings.Contains(k, `direction="out"`) {
			i := strings.Index(k, `status="`)
			if i < 0 {
				continue
			}
			st := k[i+8:]
			st = st[:strings.IndexByte(st, '"')]
			if dv := v - m0[k]; dv > 0 {
				rep.InvitesByStatus[st] = dv
			}
		}
	}

	rep.CPUUserS = (w.cpu1.User - w.cpu0.User).Seconds()
	rep.CPUSysS = (w.cpu1.Sys - w.cpu0.Sys).Seconds()
	cpuMS := (rep.CPUUserS + rep.CPUSysS) * 1e3
	if rep.LegSeconds > 0 {
		rep.CPUmsPerPartyS = cpuMS / rep.LegSeconds
	}
	if rep.Legs > 0 {
		rep.CPUmsPerLeg = cpuMS / float64(rep.Legs)
	}
	var peakRSS int64
	for i, s := range w.samples {
		peakRSS = max(peakRSS, s.RSS)
		rep.Threads = max(rep.Threads, s.Threads)
		if i > 0 {
			if dt := s.At.Sub(w.samples[i-1].At).Seconds(); dt > 0 {
				rep.PeakCPUPercent = max(rep.PeakCPUPercent, 100*(s.CPU.Total()-w.samples[i-1].CPU.Total()).Seconds()/dt)
			}
		}
	}
	rep.IdleRSSMB = float64(idle) / (1 << 20)
	rep.PeakRSSMB = float64(peakRSS) / (1 << 20)
	dm := func(k string) float64 { return m1[k] - m0[k] }
	rep.Ticks = dm("switchboard_media_ticks_total")
	rep.LateTicks = dm("switchboard_media_late_ticks_total")
	if rep.Ticks > 0 {
		rep.LateTickPercent = 100 * rep.LateTicks / rep.Ticks
	}
	rep.TickLatenessMaxMS = m1["switchboard_media_tick_lateness_max_seconds"] * 1e3
	rep.TickWorkMaxMS = m1["switchboard_media_tick_work_max_seconds"] * 1e3
	rep.RTPSent = dm("switchboard_media_rtp_packets_sent_total")
	rep.RTPReceived = dm("switchboard_media_rtp_packets_received_total")
	rep.GCs = goStatsOf(m1).GCs - goStatsOf(m0).GCs
}

// fillHold reads the hold: the node's CPU and counters between its ends,
// and the per-second samples within it.
func fillHold(rep *confReport, cpuA, cpuB procCPU, mA, mB map[string]float64, from, to time.Time, samples []sample, idle int64) {
	wall := cpuB.At.Sub(cpuA.At).Seconds()
	rep.HoldWallS = wall
	var in []sample
	for _, s := range samples {
		if !s.At.Before(from) && !s.At.After(to) {
			in = append(in, s)
		}
	}
	var parties float64
	if len(in) > 0 {
		for _, s := range in {
			parties += float64(s.Live)
		}
		parties /= float64(len(in))
	} else {
		parties = float64(rep.JoinedAtHold)
	}
	rep.HoldParties = parties
	if wall <= 0 || parties <= 0 {
		return
	}
	cpu := (cpuB.Total() - cpuA.Total()).Seconds()
	rep.HoldCPUPercent = 100 * cpu / wall
	rep.HoldUserPercent = 100 * (cpuB.User - cpuA.User).Seconds() / wall
	rep.HoldSysPercent = 100 * (cpuB.Sys - cpuA.Sys).Seconds() / wall
	rep.HoldCPUmsPerPartyS = cpu * 1e3 / (wall * parties)
	rep.HoldCPUPercentParty = rep.HoldCPUPercent / parties
	rep.HoldCPUmsPerPartySAboveIdle = (rep.HoldCPUPercent - rep.IdleCPUPercent) * 10 / parties
	dm := func(k string) float64 { return mB[k] - mA[k] }
	rep.HoldTicks = dm("switchboard_media_ticks_total")
	rep.HoldLateTicks = dm("switchboard_media_late_ticks_total")
	rep.HoldRTPSentPerPartyS = dm("switchboard_media_rtp_packets_sent_total") / (wall * parties)
	rep.HoldRTPRecvPerPartyS = dm("switchboard_media_rtp_packets_received_total") / (wall * parties)
	rep.MallocsPerPartyS = (goStatsOf(mB).Mallocs - goStatsOf(mA).Mallocs) / (wall * parties)
	n := len(in)
	if n < 2 {
		return
	}
	first, last := in[0], in[n-1]
	sw := last.At.Sub(first.At).Seconds()
	rss := make([]int64, n)
	gor := make([]float64, n)
	heap := make([]float64, n)
	for i, s := range in {
		rss[i], gor[i], heap[i] = s.RSS, s.Go.Goroutines, s.Go.HeapInuse
	}
	slices.Sort(rss)
	slices.Sort(gor)
	slices.Sort(heap)
	rep.HoldRSSMB = float64(rss[n/2]) / (1 << 20)
	rep.RSSPerPartyMB = (float64(rss[n/2]) - float64(idle)) / (1 << 20) / parties
	rep.HoldGoroutines = gor[n/2]
	rep.HoldHeapMB = heap[n/2] / (1 << 20)
	if sw > 0 {
		rep.SIPpCPUPercent = 100 * (last.SIPp - first.SIPp).Seconds() / sw
		rep.BotCPUPercent = 100 * (last.Self - first.Self).Seconds() / sw
		if last.CtxSw >= first.CtxSw {
			rep.HoldCtxSwitchesPerS = float64(last.CtxSw-first.CtxSw) / sw
		}
		node := 100 * (last.CPU.Total() - first.CPU.Total()).Seconds() / sw
		if all := last.All - first.All; all > 0 {
			rep.MachineBusyPercent = 100 * float64(last.Busy-first.Busy) / float64(all)
			rep.SoftIRQPercent = 100 * (last.SoftIRQ - first.SoftIRQ).Seconds() / sw
			rep.KsoftirqdPercent = 100 * (last.Ksoftirqd - first.Ksoftirqd).Seconds() / sw
			rep.OtherCPUPercent = 100*(last.Busy-first.Busy).Seconds()/sw - node - rep.SIPpCPUPercent - rep.BotCPUPercent - rep.KsoftirqdPercent
		}
	}
}

func trim(s string) string {
	if len(s) > 140 {
		return s[:140] + "…"
	}
	return s
}

func printConf(w *os.File, r *confReport) {
	fmt.Fprintf(w, "\nSwitchboard conferences: %d × %d parties, %.0f s hold, %.0f legs/s\n", r.Conferences, r.Parties, r.HoldS, r.Rate)
	fmt.Fprintf(w, "machine: %s\n", r.Machine)
	if r.InProcess {
		fmt.Fprintf(w, "PROFILING MODE (-inprocess): the node ran inside sbbench; CPU and RSS below include the bot's\n")
	}
	fmt.Fprintf(w, "trunk:   %s\n\n", r.SIPpCommand)
	var t table
	t.add("legs (SIPp): answered / ok / failed", "%d / %d / %d (retransmissions %d, peak %d at once)", r.Legs, r.Successful, r.SIPpFailed, r.Retransmissions, r.PeakLegs)
	for _, s := range sortedReasons(r.SIPpFailedBy) {
		t.add("  SIPp failed by", "%s", s)
	}
	t.add("conferences (bot): created / full", "%d / %d of %d", r.Created, r.Full, r.Conferences)
	for _, s := range sortedReasons(r.Failures) {
		t.add("  failure", "%s", s)
	}
	t.add("calls ended with", "%s", strings.Join(sortedReasons(r.EndedBy), "; "))
	t.add("parties in at hold / at hang-up", "%d / %d (rosters that shrank before the hang-up: %d)", r.JoinedAtHold, r.JoinedAtHangup, r.ShrankBefore)
	t.add("ramp: all in after; create → full p50/max", "%.1f s; %.1f / %.1f s", r.RampS, r.FullP50S, r.FullMaxS)
	t.add("hang-up: DELETE → terminated p50/max", "%.0f / %.0f ms", r.HangupP50MS, r.HangupMaxMS)
	t.add("", "")
	t.add("HOLD: node CPU", "%.1f%% of one core (user %.1f%%, sys %.1f%%) over %.1f s", r.HoldCPUPercent, r.HoldUserPercent, r.HoldSysPercent, r.HoldWallS)
	t.add("HOLD: CPU-ms per participant-second", "%.3f (%.0f parties; %.3f%% of a core per party; target ≤ 0.3)", r.HoldCPUmsPerPartyS, r.HoldParties, r.HoldCPUPercentParty)
	t.add("HOLD: the same above the idle node", "%.3f (the node idle: %.1f%% of one core)", r.HoldCPUmsPerPartySAboveIdle, r.IdleCPUPercent)
	t.add("HOLD: late media ticks", "%.0f of %.0f (target 0 at 500 parties)", r.HoldLateTicks, r.HoldTicks)
	t.add("HOLD: RTP per party-second sent / received", "%.1f / %.1f", r.HoldRTPSentPerPartyS, r.HoldRTPRecvPerPartyS)
	t.add("HOLD: RSS; per party over idle", "%.1f MB; %.3f MB", r.HoldRSSMB, r.RSSPerPartyMB)
	t.add("HOLD: goroutines, heap in use", "%.0f, %.1f MB", r.HoldGoroutines, r.HoldHeapMB)
	t.add("HOLD: context switches; allocations", "%.0f/s; %.1f per party-second", r.HoldCtxSwitchesPerS, r.MallocsPerPartyS)
	t.add("HOLD: machine busy", "%.0f%% of %d cores (SIPp %.0f%%, sbbench %.0f%%, ksoftirqd %.0f%%, other processes %.0f%% of one core)", r.MachineBusyPercent, r.Machine.CPUs, r.SIPpCPUPercent, r.BotCPUPercent, r.KsoftirqdPercent, r.OtherCPUPercent)
	t.add("HOLD: softirq (packet delivery)", "%.0f%% of one core, within the CPU above where the kernel accounts by ticks", r.SoftIRQPercent)
	t.add("background before the run", "%.0f%% of one core", r.BackgroundPercent)
	t.add("", "")
	t.add("RUN: node CPU user+sys", "%.2f s + %.2f s; peak %.0f%% of one core", r.CPUUserS, r.CPUSysS, r.PeakCPUPercent)
	t.add("RUN: CPU-ms per participant-second", "%.3f (over SIPp's %.0f leg-seconds); %.1f ms per leg", r.CPUmsPerPartyS, r.LegSeconds, r.CPUmsPerLeg)
	t.add("RUN: RSS idle / peak", "%.1f / %.1f MB; %d threads", r.IdleRSSMB, r.PeakRSSMB, r.Threads)
	t.add("RUN: late media ticks", "%.0f of %.0f = %.3f%%; worst lateness %.1f ms, longest tick %.1f ms (since start)", r.LateTicks, r.Ticks, r.LateTickPercent, r.TickLatenessMaxMS, r.TickWorkMaxMS)
	t.add("RUN: RTP sent / received", "%.0f / %.0f; %.0f GCs", r.RTPSent, r.RTPReceived, r.GCs)
	t.add("", "")
	t.add("notifications: POSTs, MB", "%d notifications in %d POSTs, %.1f MB (%d bad tokens)", r.Notifications, r.NotifyPosts, r.NotifyMB, r.BadTokens)
	t.add("  of which rosters", "%d, %.1f MB of resourceData, largest %.0f KB", r.Rosters, r.RosterMB, r.RosterMaxKB)
	t.add("node: webhook delivery p50/p99", "%.1f / %.1f ms", r.WebhookP50MS, r.WebhookP99MS)
	t.add("node: create call p50/p99; invite p50/p99", "%.1f / %.1f ms; %.1f / %.1f ms", r.APICreateP50MS, r.APICreateP99MS, r.APIInviteP50MS, r.APIInviteP99MS)
	var st []string
	for k, v := range r.InvitesByStatus {
		st = append(st, fmt.Sprintf("%s: %.0f", k, v))
	}
	slices.Sort(st)
	t.add("INVITEs out by final status", "%s", strings.Join(st, ", "))
	t.write(w)
	if r.Perf != nil {
		printPerf(w, r.Perf)
	}
	for _, f := range r.Profiles {
		fmt.Fprintf(w, "profile: %s\n", f)
	}
	fmt.Fprintf(w, "\noutput: %s\n", r.Out)
}
