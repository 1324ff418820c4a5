package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// setupStep is one rate of a setup-rate run.
type setupStep struct {
	Rate            float64        `json:"rate"`
	SIPpCommand     string         `json:"sippCommand"`
	Created         int            `json:"created"`
	Successful      int            `json:"successful"`
	SIPpFailed      int            `json:"sippFailed"`
	SIPpFailedBy    map[string]int `json:"sippFailedBy,omitempty"`
	Retransmissions int            `json:"retransmissions"`
	BotCalls        int            `json:"botCalls"`
	BotFailed       int            `json:"botFailed"`
	BotFailures     map[string]int `json:"botFailures,omitempty"`
	CallsPerSecond  float64        `json:"callsPerSecond"` // created / creation window
	SetupP50MS      float64        `json:"setupP50ms"`
	SetupP99MS      float64        `json:"setupP99ms"`
	SetupMaxMS      float64        `json:"setupMaxms"`
	SlowPercent     float64        `json:"slowPercent"` // INVITE → 200 ≥ 500 ms
	AnswerP50MS     float64        `json:"answerP50ms"`
	AnswerP99MS     float64        `json:"answerP99ms"`
	WebhookP50MS    float64        `json:"webhookP50ms"`
	WebhookP99MS    float64        `json:"webhookP99ms"`
	APIP50MS        float64        `json:"apiActionP50ms"`
	APIP99MS        float64        `json:"apiActionP99ms"`
	CPUS            float64        `json:"cpuSeconds"`
	WallS           float64        `json:"wallSeconds"`
	CPUPercent      float64        `json:"cpuPercent"`     // of one core, over the step
	PeakCPUPercent  float64        `json:"peakCpuPercent"` // of one core, the busiest second
	CPUmsPerCall    float64        `json:"cpuMsPerCall"`
	PeakRSSMB       float64        `json:"peakRssMB"`
	Invites503      float64        `json:"invites503"`
	BackgroundPct   float64        `json:"backgroundCpuPercent"` // other processes before the step, of one core
	SIPpCPUPercent  float64        `json:"sippCpuPercent"`
	BotCPUPercent   float64        `json:"botCpuPercent"`
	OtherCPUPercent float64        `json:"otherCpuPercent"` // machine busy minus node, SIPp, sbbench
}

type setupReport struct {
	Machine machine      `json:"machine"`
	Command string       `json:"command"`
	HoldS   float64      `json:"holdSeconds"`
	StepS   float64      `json:"stepSeconds"`
	Bot     string       `json:"bot"`
	Steps   []setupStep  `json:"steps"`
	Perf    *perfSummary `json:"perf,omitempty"`
	Out     string       `json:"out"`
}

func runSetup(args []string) error {
	fs := flag.NewFlagSet("setup", flag.ExitOnError)
	var c common
	c.register(fs)
	rates := fs.String("rates", "100,200,500", "call rates to run, one after the other (calls/s)")
	step := fs.Duration("step", 10*time.Second, "how long SIPp places calls at each rate")
	hold := fs.Duration("hold", 2*time.Second, "how long each call lasts from its answer to the caller's BYE")
	botMode := fs.String("bot", botAnswer, "what the bot does with a call: answer, or ivr (answer, tones, prompt, record: needs -hold ≥ 11s)")
	_ = fs.Parse(args)
	var rs []float64
	for s := range strings.SplitSeq(*rates, ",") {
		r, err := strconv.ParseFloat(strings.TrimSpace(s), 64)
		if err != nil || r <= 0 {
			return fmt.Errorf("-rates: %q is not a rate", s)
		}
		rs = append(rs, r)
	}
	if *botMode != botAnswer && *botMode != botIVR {
		return fmt.Errorf("-bot %q is not answer or ivr", *botMode)
	}
	perStep := *step + *hold + 90*time.Second
	if c.timeout == 0 {
		c.timeout = time.Duration(len(rs))*perStep + 3*time.Minute
	}
	ctx, cancel := runContext(c.timeout)
	defer cancel()
	e, err := setupEnv(ctx, &c, *botMode, recordSecs, *hold+time.Minute)
	if err != nil {
		return err
	}
	defer e.close()
	rep := &setupReport{Machine: describeMachine(c.sipp), Command: "sbbench " + strings.Join(os.Args[1:], " "),
		HoldS: hold.Seconds(), StepS: step.Seconds(), Bot: *botMode, Out: e.out}

	// A short warm-up at the first rate's pace.
	logf("warm-up: 20 calls")
	if _, err := e.sippRun("warmup", "setup.xml", 20, 100, 20, *hold, 60*time.Second).run(ctx); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	if err := e.settle(ctx, 30*time.Second); err != nil {
		return fmt.Errorf("warm-up: %w", err)
	}
	pid := e.node.pid()
	for i, r := range rs {
		e.bot.reset()
		calls := int(r * step.Seconds())
		limit := int(r*(hold.Seconds()+10)) + 100
		run := e.sippRun(fmt.Sprintf("setup%d", int(r)), "setup.xml", r, limit, calls, *hold, perStep)
		st := setupStep{Rate: r, SIPpCommand: run.Command()}
		logf("rate %.0f/s: %s", r, st.SIPpCommand)
		bg := e.waitQuiet(ctx)
		win, err := e.open()
		if err != nil {
			return err
		}
		var perfRec *perfRecording
		if c.perf && i == len(rs)-1 {
			if perfRec, err = startPerf(pid, min(c.perfFor, *step), e.out); err != nil {
				logf("perf: %v", err)
			}
		}
		res, err := run.run(ctx)
		if err != nil {
			win.smp.Stop()
			if perfRec != nil {
				stopped, cancel := context.WithCancel(context.Background())
				cancel()
				_ = perfRec.wait(stopped)
			}
			return err
		}
		if err := e.settle(ctx, 60*time.Second); err != nil {
			logf("%v", err)
		}
		if err := win.close(e); err != nil {
			return err
		}
		if perfRec != nil {
			if err := perfRec.wait(ctx); err != nil {
				logf("perf record: %v", err)
			}
			if rep.Perf, err = perfRec.report(e.out); err != nil {
				logf("perf report: %v", err)
			}
		}
		if err := writeTimeline(filepath.Join(e.out, fmt.Sprintf("timeline-%d.csv", int(r))), win.samples); err != nil {
			return err
		}
		fillStep(&st, res, e.bot, win.cpu0, win.cpu1, win.m0, win.m1, win.samples, *botMode)
		st.BackgroundPct = bg
		rep.Steps = append(rep.Steps, st)
		logf("rate %.0f/s: %d created, %d ok, %d failed (bot: %d failed), %.1f calls/s, setup p50 %.1f ms p99 %.1f ms, node CPU %.0f%%",
			r, st.Created, st.Successful, st.SIPpFailed, st.BotFailed, st.CallsPerSecond, st.SetupP50MS, st.SetupP99MS, st.CPUPercent)
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-time.After(2 * time.Second):
		}
	}
	if err := writeJSON(e.out, "report.json", rep); err != nil {
		return err
	}
	printSetup(os.Stdout, rep)
	return nil
}

func fillStep(st *setupStep, sr *sippResult, b *bot, cpu0, cpu1 procCPU, m0, m1 map[string]float64, samples []sample, mode string) {
	st.Created, st.Successful, st.SIPpFailed, st.SIPpFailedBy, st.Retransmissions = sr.Created, sr.Successful, sr.Failed, sr.FailedBy, sr.Retrans
	if w := creationWindow(sr.Rows); w > 0 {
		st.CallsPerSecond = float64(sr.Created) / w.Seconds()
	}
	st.SetupP50MS = float64(percentile(sr.RTT, 0.5)) / 1e6
	st.SetupP99MS = float64(percentile(sr.RTT, 0.99)) / 1e6
	st.SetupMaxMS = float64(percentile(sr.RTT, 1)) / 1e6
	slow := 0
	for _, d := range sr.RTT {
		if d >= 500*time.Millisecond {
			slow++
		}
	}
	if len(sr.RTT) > 0 {
		st.SlowPercent = 100 * float64(slow) / float64(len(sr.RTT))
	}
	calls := b.Calls()
	st.BotCalls = len(calls)
	st.BotFailed, st.BotFailures = failureSummary(calls, mode)
	var answer []time.Duration
	for _, c := range calls {
		if !c.answered.IsZero() {
			answer = append(answer, c.answered.Sub(c.incoming))
		}
	}
	st.AnswerP50MS = float64(percentile(answer, 0.5)) / 1e6
	st.AnswerP99MS = float64(percentile(answer, 0.99)) / 1e6
	q50, _ := histQuantile(m0, m1, "switchboard_webhook_delivery_seconds", 0.5)
	q99, _ := histQuantile(m0, m1, "switchboard_webhook_delivery_seconds", 0.99)
	st.WebhookP50MS, st.WebhookP99MS = q50*1e3, q99*1e3
	a50, _ := histQuantile(m0, m1, "switchboard_http_request_duration_seconds", 0.5, `route="action"`)
	a99, _ := histQuantile(m0, m1, "switchboard_http_request_duration_seconds", 0.99, `route="action"`)
	st.APIP50MS, st.APIP99MS = a50*1e3, a99*1e3
	st.CPUS = (cpu1.Total() - cpu0.Total()).Seconds()
	st.WallS = cpu1.At.Sub(cpu0.At).Seconds()
	if st.WallS > 0 {
		st.CPUPercent = 100 * st.CPUS / st.WallS
	}
	if sr.Created > 0 {
		st.CPUmsPerCall = st.CPUS * 1e3 / float64(sr.Created)
	}
	var peak int64
	for i, s := range samples {
		peak = max(peak, s.RSS)
		if i > 0 {
			if dt := s.At.Sub(samples[i-1].At).Seconds(); dt > 0 {
				st.PeakCPUPercent = max(st.PeakCPUPercent, 100*(s.CPU.Total()-samples[i-1].CPU.Total()).Seconds()/dt)
			}
		}
	}
	if n := len(samples); n >= 2 {
		first, last := samples[0], samples[n-1]
		if wall := last.At.Sub(first.At).Seconds(); wall > 0 {
			// SIPp starts after the first sample and may have exited by the
			// last: its CPU is the most it had used while it was sampled.
			var sipp time.Duration
			for _, s := range samples {
				sipp = max(sipp, s.SIPp)
			}
			st.SIPpCPUPercent = 100 * sipp.Seconds() / wall
			st.BotCPUPercent = 100 * (last.Self - first.Self).Seconds() / wall
			node := 100 * (last.CPU.Total() - first.CPU.Total()).Seconds() / wall
			st.OtherCPUPercent = 100*(last.Busy-first.Busy).Seconds()/wall - node - st.SIPpCPUPercent - st.BotCPUPercent
		}
	}
	st.PeakRSSMB = float64(peak) / (1 << 20)
	st.Invites503 = m1[`switchboard_sip_invites_total{direction="in",status="503"}`] - m0[`switchboard_sip_invites_total{direction="in",status="503"}`]
}

func printSetup(w *os.File, r *setupReport) {
	fmt.Fprintf(w, "\nSwitchboard setup rate: %.0f s per rate, %.0f s calls, bot: %s\n", r.StepS, r.HoldS, r.Bot)
	fmt.Fprintf(w, "machine: %s\n\n", r.Machine)
	fmt.Fprintf(w, "  %6s %8s %8s %7s %7s %9s %9s %9s %9s %7s %9s %9s %7s %7s\n",
		"rate", "created", "ok", "failed", "botfail", "calls/s", "setupP50", "setupP99", "setupMax", "≥500ms", "webhkP99", "CPU peak", "ms/call", "503s")
	for _, s := range r.Steps {
		fmt.Fprintf(w, "  %6.0f %8d %8d %7d %7d %9.1f %9.1f %9.1f %9.1f %6.1f%% %9.1f %8.0f%% %7.2f %7.0f\n",
			s.Rate, s.Created, s.Successful, s.SIPpFailed, s.BotFailed, s.CallsPerSecond, s.SetupP50MS, s.SetupP99MS, s.SetupMaxMS,
			s.SlowPercent, s.WebhookP99MS, s.PeakCPUPercent, s.CPUmsPerCall, s.Invites503)
		for _, f := range sortedReasons(s.SIPpFailedBy) {
			fmt.Fprintf(w, "         SIPp failed by %s\n", f)
		}
		for _, f := range sortedReasons(s.BotFailures) {
			fmt.Fprintf(w, "         bot: %s\n", f)
		}
	}
	fmt.Fprintf(w, "\n  bot: created notification → answer returned p50/p99; node: webhook delivery p50/p99, answer request p50/p99 (ms)\n")
	for _, s := range r.Steps {
		fmt.Fprintf(w, "  %6.0f/s: answer %.1f / %.1f; webhook %.1f / %.1f; answer request %.1f / %.1f\n", s.Rate,
			s.AnswerP50MS, s.AnswerP99MS, s.WebhookP50MS, s.WebhookP99MS, s.APIP50MS, s.APIP99MS)
	}
	fmt.Fprintf(w, "\n  CPU beside the node (%% of one core): SIPp, sbbench (the bot), other processes during the step; other processes before it\n")
	for _, s := range r.Steps {
		fmt.Fprintf(w, "  %6.0f/s: SIPp %.0f%%, sbbench %.0f%%, other %.0f%%; before %.0f%%\n", s.Rate, s.SIPpCPUPercent, s.BotCPUPercent, s.OtherCPUPercent, s.BackgroundPct)
	}
	fmt.Fprintf(w, "\n")
	for _, s := range r.Steps {
		fmt.Fprintf(w, "  %s\n", s.SIPpCommand)
	}
	if r.Perf != nil {
		printPerf(w, r.Perf)
	}
	fmt.Fprintf(w, "\noutput: %s\n", r.Out)
}
