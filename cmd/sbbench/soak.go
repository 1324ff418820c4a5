package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// sbbench soak holds the IVR load (ivr_load_dtmf.xml, the IVR bot) at a
// share of the machine's measured capacity for a long time, SIPp replacing
// every call that ends, and samples the node every -every. After a
// warm-up it fits a line to each figure over the steady window and
// fails when something that should stay flat grew: goroutines, RSS, open
// files, RTP ports and media sessions, JetStream storage, the outbox. It
// fails too when calls failed.

// soakCapacity is the concurrent IVR calls this project's benchmark machine
// holds with no failed call (docs/benchmarks.md, "Where we stand"); the soak
// runs at soakShare of it unless -calls says otherwise.
const (
	soakCapacity = 1000
	soakShare    = 0.7
)

// tolerance is how much a figure may grow from the start of the steady
// window to its end: the larger of Rel (a share of the start) and Abs (in
// the figure's unit).
type tolerance struct {
	Rel, Abs float64
}

func (t tolerance) allowed(start float64) float64 { return max(t.Rel*math.Abs(start), t.Abs) }

func (t tolerance) describe(unit string) string {
	return fmt.Sprintf("+max(%g %%, %g%s)", 100*t.Rel, t.Abs, unit)
}

// soakFigure is one figure the soak judges: how to read it from a sample,
// its unit and its tolerance.
type soakFigure struct {
	Name string
	Unit string
	Tol  tolerance
	Of   func(sample) float64
	// Recordings: judged only over the samples after the recording
	// retention, when the bucket's TTL bounds it (see judgeSoak).
	Recordings bool
	// Reported only, never judged (it swings with the garbage collector).
	ReportOnly bool
}

// soakFigures are the figures and their tolerances; docs/reliability.md
// states the same.
var soakFigures = []soakFigure{
	{Name: "goroutines", Tol: tolerance{0.05, 50}, Of: func(s sample) float64 { return s.Go.Goroutines }},
	{Name: "RSS", Unit: " MB", Tol: tolerance{0.15, 8}, Of: func(s sample) float64 { return float64(s.RSS) / (1 << 20) }},
	{Name: "heap in use", Unit: " MB", ReportOnly: true, Of: func(s sample) float64 { return s.Go.HeapInuse / (1 << 20) }},
	{Name: "open files", Tol: tolerance{0.05, 20}, Of: func(s sample) float64 { return float64(s.FDs) }},
	// Ports and sessions follow the calls: what outlives them is their
	// excess over the live calls, which a dip in the load (calls refused
	// by admission control on a busy machine) leaves level.
	{Name: "RTP ports beyond live calls", Tol: tolerance{0.05, 10}, Of: func(s sample) float64 { return float64(s.RTPPorts - s.Live) }},
	{Name: "media sessions beyond live calls", Tol: tolerance{0.05, 10}, Of: func(s sample) float64 { return s.Sessions - float64(s.Live) }},
	{Name: "JetStream streams without limits", Unit: " MB", Tol: tolerance{0.10, 1},
		Of: func(s sample) float64 { return float64(s.Store.StateBytes) / (1 << 20) }},
	{Name: "JetStream streams without limits: messages", Tol: tolerance{0.10, 500}, Of: func(s sample) float64 { return float64(s.Store.StateMsgs) }},
	{Name: "JetStream streams with limits but recordings", Unit: " MB", ReportOnly: true,
		Of: func(s sample) float64 { return float64(s.Store.LimitedBytes) / (1 << 20) }},
	{Name: "JetStream streams with limits: messages", ReportOnly: true, Of: func(s sample) float64 { return float64(s.Store.LimitedMsgs) }},
	// JetStream's file store writes 4 MB blocks and compacts those mostly
	// deleted at its sync, every 2 minutes: on disk a busy stream
	// saw-tooths by several blocks (about 8 MB at 300 calls), hence the
	// floor.
	{Name: "data folder on disk but recordings", Unit: " MB", Tol: tolerance{0.10, 32},
		Of: func(s sample) float64 { return float64(s.Store.DiskBytes-s.Store.RecDiskBytes) / (1 << 20) }},
	{Name: "recordings (object store)", Unit: " MB", Tol: tolerance{0.10, 8}, Recordings: true,
		Of: func(s sample) float64 { return float64(s.Store.RecBytes) / (1 << 20) }},
	{Name: "outbox pending", Tol: tolerance{0.10, 100}, Of: func(s sample) float64 { return s.Pending }},
	{Name: "outbox parked", Tol: tolerance{0, 10}, Of: func(s sample) float64 { return s.Parked }},
}

// judgement is the verdict on one figure.
type judgement struct {
	Figure    string  `json:"figure"`
	Unit      string  `json:"unit,omitempty"`
	Judged    bool    `json:"judged"`
	OK        bool    `json:"ok"`
	Samples   int     `json:"samples"`
	Start     float64 `json:"start"`   // the fitted line at the window's first sample
	End       float64 `json:"end"`     // and at its last
	Growth    float64 `json:"growth"`  // End − Start
	Allowed   float64 `json:"allowed"` // the tolerance at Start
	PerHour   float64 `json:"slopePerHour"`
	Tolerance string  `json:"tolerance,omitempty"`
	Note      string  `json:"note,omitempty"`
}

// minJudgedSamples is the fewest samples a window needs to be judged.
const minJudgedSamples = 4

// judgeGrowth fits a line to v over at (seconds) by least squares and
// takes the figure's growth as the line's rise from the window's first
// sample to its last: a leak shows whole, over the whole window, while
// noise and the wave of calls turning over average out.
func judgeGrowth(f soakFigure, at, v []float64) judgement {
	j := judgement{Figure: f.Name, Unit: strings.TrimSpace(f.Unit), Samples: len(v), OK: true}
	if !f.ReportOnly {
		j.Tolerance = f.Tol.describe(f.Unit)
	}
	if len(v) < minJudgedSamples {
		j.Note = fmt.Sprintf("%d samples, fewer than %d: not judged", len(v), minJudgedSamples)
		return j
	}
	k := slope(at, v)
	c := mean(v) - k*mean(at)
	j.Start, j.End = c+k*at[0], c+k*at[len(at)-1]
	j.Growth = j.End - j.Start
	j.PerHour = k * 3600
	if f.ReportOnly {
		j.Note = "reported, not judged"
		if strings.Contains(f.Name, "with limits") {
			j.Note = "bounded by the streams' limits (below): " + j.Note
		}
		return j
	}
	j.Judged = true
	j.Allowed = f.Tol.allowed(j.Start)
	j.OK = j.Growth <= j.Allowed
	return j
}

func mean(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	var s float64
	for _, x := range v {
		s += x
	}
	return s / float64(len(v))
}

// slope is the least-squares slope of v over x.
func slope(x, v []float64) float64 {
	mx, mv := mean(x), mean(v)
	var num, den float64
	for i := range x {
		num += (x[i] - mx) * (v[i] - mv)
		den += (x[i] - mx) * (x[i] - mx)
	}
	if den == 0 {
		return 0
	}
	return num / den
}

// judgeSoak judges every figure of soakFigures over the samples at or
// after steadyFrom; the recordings' object store, which the bucket's TTL
// bounds rather than keeps flat, only over those at or after recFrom (the
// load's start plus the retention and a margin).
func judgeSoak(samples []sample, steadyFrom, recFrom time.Time) []judgement {
	var out []judgement
	for _, f := range soakFigures {
		from := steadyFrom
		if f.Recordings && recFrom.After(from) {
			from = recFrom
		}
		at, v := steadyAt(samples, from, f.Of)
		j := judgeGrowth(f, at, v)
		if f.Recordings && len(v) < minJudgedSamples {
			// Too early to judge: report its growth over the steady window.
			rf := f
			rf.ReportOnly = true
			at, v = steadyAt(samples, steadyFrom, f.Of)
			j = judgeGrowth(rf, at, v)
			j.Tolerance = f.Tol.describe(f.Unit)
			j.Note = "the run is shorter than the recording retention (+2 min), which bounds this bucket: reported, not judged"
		}
		out = append(out, j)
	}
	return out
}

// steadyAt returns the samples' offsets from from (seconds) and values
// of, for the samples at or after from.
func steadyAt(samples []sample, from time.Time, of func(sample) float64) (at, v []float64) {
	for _, s := range samples {
		if !s.At.Before(from) {
			at = append(at, s.At.Sub(from).Seconds())
			v = append(v, of(s))
		}
	}
	return at, v
}

// callsVerdict says whether the failed calls, SIPp's, the bot's and the
// probes', stay within maxPct percent of the calls placed.
func callsVerdict(created, sippFailed, botFailed, probes, probesFailed int, maxPct float64) (failed, allowed int, ok bool) {
	failed = sippFailed + botFailed + probesFailed
	allowed = int(math.Floor(maxPct / 100 * float64(created+probes)))
	return failed, allowed, failed <= allowed
}

// storeUsage is the node's JetStream storage: what its streams hold, and
// the data folder on disk.
type storeUsage struct {
	// Streams with no age, size or count limit (the KV buckets): what they
	// hold must stay flat under a steady load.
	StateBytes, StateMsgs int64
	// Streams with a limit but the recordings' (the outbox's, with an age
	// limit): bounded by it, whatever they do within a soak.
	LimitedBytes, LimitedMsgs int64
	RecBytes, RecMsgs         int64 // the object stores' streams (OBJ_*): recordings
	DiskBytes                 int64 // the node's data folder
	RecDiskBytes              int64 // the object stores' stream folders within it
	Streams                   map[string]streamUsage
}

type streamUsage struct {
	Bytes int64 `json:"bytes"`
	Msgs  int64 `json:"msgs"`
	Disk  int64 `json:"disk"` // its folder's files
	// Its limits (0: none).
	MaxAge   time.Duration `json:"maxAge,omitempty"`
	MaxBytes int64         `json:"maxBytes,omitempty"`
	MaxMsgs  int64         `json:"maxMsgs,omitempty"`
}

func (u streamUsage) limited() bool { return u.MaxAge > 0 || u.MaxBytes > 0 || u.MaxMsgs > 0 }

// streamOutlook describes a stream's limits and, when it grew over the
// steady window (secs long), where that leads: the level its age limit
// holds it to at that rate, or growth without bound.
func streamOutlook(a, b streamUsage, secs float64) string {
	var lim []string
	if b.MaxAge > 0 {
		lim = append(lim, "max age "+b.MaxAge.String())
	}
	if b.MaxBytes > 0 {
		lim = append(lim, fmt.Sprintf("max %d bytes", b.MaxBytes))
	}
	if b.MaxMsgs > 0 {
		lim = append(lim, fmt.Sprintf("max %d messages", b.MaxMsgs))
	}
	out := "no limit"
	if len(lim) > 0 {
		out = strings.Join(lim, ", ")
	}
	if secs <= 0 || b.Msgs <= a.Msgs {
		return out
	}
	perH := float64(b.Msgs-a.Msgs) / secs * 3600
	bytesPerH := float64(b.Bytes-a.Bytes) / secs * 3600
	if b.MaxAge > 0 {
		h := b.MaxAge.Hours()
		return fmt.Sprintf("%s; +%.0f messages/h: at most ~%.0f messages, %.1f MB, once %v old", out, perH, perH*h, bytesPerH*h/(1<<20), b.MaxAge)
	}
	if !b.limited() {
		return fmt.Sprintf("%s; +%.0f messages/h, %+.2f MB/h: grows without bound", out, perH, bytesPerH/(1<<20))
	}
	return fmt.Sprintf("%s; +%.0f messages/h", out, perH)
}

// isRecordings tells the object stores' streams (recordings) from the
// others.
func isRecordings(stream string) bool { return strings.HasPrefix(stream, "OBJ_") }

// readStore reads the streams' sizes from JetStream (js may be nil) and
// walks the data folder.
func readStore(ctx context.Context, js jetstream.JetStream, dataDir string) storeUsage {
	u := storeUsage{Streams: map[string]streamUsage{}}
	if js != nil {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		l := js.ListStreams(ctx)
		for si := range l.Info() {
			st := streamUsage{Bytes: int64(si.State.Bytes), Msgs: int64(si.State.Msgs),
				MaxAge: si.Config.MaxAge, MaxBytes: si.Config.MaxBytes, MaxMsgs: si.Config.MaxMsgs}
			u.Streams[si.Config.Name] = st
			switch {
			case isRecordings(si.Config.Name):
				u.RecBytes += st.Bytes
				u.RecMsgs += st.Msgs
			case st.limited():
				u.LimitedBytes += st.Bytes
				u.LimitedMsgs += st.Msgs
			default:
				u.StateBytes += st.Bytes
				u.StateMsgs += st.Msgs
			}
		}
		cancel()
	}
	_ = filepath.WalkDir(dataDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil // a file removed while walking
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		u.DiskBytes += info.Size()
		// JetStream's layout: …/ACCOUNT/streams/STREAM/msgs/N.blk and
		// the like.
		if rel, err := filepath.Rel(dataDir, p); err == nil {
			parts := strings.Split(rel, string(filepath.Separator))
			for i := 1; i+2 < len(parts); i++ {
				if parts[i] != "streams" {
					continue
				}
				st := u.Streams[parts[i+1]]
				st.Disk += info.Size()
				u.Streams[parts[i+1]] = st
				if isRecordings(parts[i+1]) {
					u.RecDiskBytes += info.Size()
				}
				break
			}
		}
		return nil
	})
	return u
}

// soakReport is a soak run's result, also written as JSON.
type soakReport struct {
	Machine     machine `json:"machine"`
	Command     string  `json:"command"`
	SIPpCommand string  `json:"sippCommand"`
	Concurrent  int     `json:"concurrent"`
	Capacity    int     `json:"capacity"`
	Rate        float64 `json:"rate"`
	HoldS       float64 `json:"holdSeconds"`
	ForS        float64 `json:"forSeconds"`
	EveryS      float64 `json:"everySeconds"`
	WarmupS     float64 `json:"warmupSeconds"` // of the load, before the steady window
	RetentionS  float64 `json:"recordingRetentionSeconds"`
	Scenario    string  `json:"scenario"`

	Created         int            `json:"created"`
	Successful      int            `json:"successful"`
	SIPpFailed      int            `json:"sippFailed"`
	SIPpFailedBy    map[string]int `json:"sippFailedBy,omitempty"`
	Retransmissions int            `json:"retransmissions"`
	BotCalls        int            `json:"botCalls"`
	BotFailed       int            `json:"botFailed"`
	BotFailures     map[string]int `json:"botFailures,omitempty"`
	DTMFMissed      int            `json:"dtmfMissed"`
	Probes          int            `json:"probes"`
	ProbesOK        int            `json:"probesOk"`
	ProbeErrors     []string       `json:"probeErrors,omitempty"`
	ProbeGapP99MS   float64        `json:"probeGapP99ms"`
	ProbeGapMaxMS   float64        `json:"probeGapMaxms"`
	FailedCalls     int            `json:"failedCalls"` // SIPp's, the bot's and the probes'
	AllowedFailed   int            `json:"allowedFailedCalls"`
	MaxFailedPct    float64        `json:"maxFailedPercent"`
	SteadyLive      float64        `json:"steadyLiveCalls"` // the bot's live calls, mean over the steady window
	SteadyS         float64        `json:"steadySeconds"`   // from the steady window's first sample to its last
	CPUPercent      float64        `json:"cpuPercent"`      // the node, over the steady window, of one core
	// The node's counts over the load: INVITEs by final status, calls
	// refused by admission control (switchboard_admission_refused_total).
	InvitesByStatus  map[string]float64 `json:"invitesByStatus,omitempty"`
	AdmissionRefused float64            `json:"admissionRefused"`

	Idle       map[string]float64     `json:"idle"` // each figure before the load
	Judgements []judgement            `json:"judgements"`
	StreamsAt0 map[string]streamUsage `json:"streamsAtSteadyStart,omitempty"`
	StreamsAt1 map[string]streamUsage `json:"streamsAtEnd,omitempty"`
	Failures   []string               `json:"failures,omitempty"`
	Pass       bool                   `json:"pass"`
	Out        string                 `json:"out"`
}

func runSoak(args []string) error {
	fs := flag.NewFlagSet("soak", flag.ExitOnError)
	var c common
	c.register(fs)
	capacity := fs.Int("capacity", soakCapacity, "concurrent IVR calls the machine holds (docs/benchmarks.md: 1,000 on the benchmark VM); the load is 70 % of it unless -calls is set")
	calls := fs.Int("calls", 0, "concurrent calls to hold (SIPp -l); 0: 70 % of -capacity")
	rate := fs.Float64("rate", 0, "most new calls per second (SIPp -r); 0: 1.1 × calls / hold, so that calls start, and end, spread evenly over a hold rather than in waves")
	hold := fs.Duration("hold", 30*time.Second, "how long each call lasts from its answer to the caller's BYE")
	scen := fs.String("scenario", "dtmf", "dtmf: ivr_load.xml plus one RFC 4733 press at 7.5 s; plain: ivr_load.xml")
	dur := fs.Duration("for", time.Hour, "how long the load runs")
	every := fs.Duration("every", 10*time.Second, "sampling period")
	warmFor := fs.Duration("warmup-for", 0, "the load's first stretch left out of the judgement (0: the larger of 10 % of -for and ramp + hold + 10 s, and, when -for leaves 10 samples after it, of the recording retention + 2 min)")
	warmup := fs.Int("warmup", 10, "IVR calls placed and ended before the load (prompt fetched, pools warm)")
	probeEvery := fs.Duration("probe-every", time.Minute, "a probe call (RTP timed by sbbench) this often in the steady window (0: none)")
	retention := fs.Duration("recording-retention", 10*time.Minute, "the node's media.recordingRetention (10 min at least): the recordings' bucket is judged only once this has passed")
	maxFailed := fs.Float64("max-failed", 0.1, "failed calls allowed, in percent of the calls placed")
	_ = fs.Parse(args)
	if *calls == 0 {
		*calls = int(math.Round(soakShare * float64(*capacity)))
	}
	scenario, pause, minHold, err := ivrScenario(*scen, *hold)
	if err != nil {
		return err
	}
	if *rate == 0 {
		*rate = math.Ceil(1.1 * float64(*calls) / hold.Seconds())
	}
	if *every < time.Second || *dur < 4**every {
		return fmt.Errorf("-every must be at least 1s and -for at least 4 × -every")
	}
	ramp := time.Duration(float64(*calls) / *rate * float64(time.Second))
	if *warmFor == 0 {
		*warmFor = max(*dur/10, ramp+*hold+10*time.Second).Round(time.Second)
		// The node is in its steady state only once the first recordings
		// expire: the store's work deleting them is a step in RSS and heap
		// (+40 MB at 300 calls) that a window starting before it takes for
		// growth. Wait for it when the run is long enough to judge after.
		if settled := *retention + 2*time.Minute; settled+10**every <= *dur {
			*warmFor = max(*warmFor, settled)
		}
	}
	if *warmFor+minJudgedSamples**every > *dur {
		return fmt.Errorf("-for %v leaves fewer than %d samples after the warm-up of %v", *dur, minJudgedSamples, *warmFor)
	}
	grace := *hold + 30*time.Second
	if c.timeout == 0 {
		c.timeout = *dur + grace + 5*time.Minute
	}
	ctx, cancel := runContext(c.timeout)
	defer cancel()

	natsPort, err := freeTCP("127.0.0.1")
	if err != nil {
		return err
	}
	e, err := setupEnv(ctx, &c, botIVR, recordSecs, *hold+time.Minute, func(nc *nodeConfig) error {
		nc.natsListen = fmt.Sprintf("127.0.0.1:%d", natsPort)
		nc.recordingRetention = *retention
		// Twice what the retention holds at this load (8 kHz 16-bit
		// audio), so that the store's bound, not a soak's concern, never
		// refuses a recording: 2.2 GB at 700 calls.
		nc.recordingsMaxBytes = max(1<<30, int64(2*float64(*calls)/hold.Seconds()*recordSecs*16000*retention.Seconds()))
		return nil
	})
	if err != nil {
		return err
	}
	defer e.close()
	rep := &soakReport{Machine: describeMachine(c.sipp), Command: "sbbench " + strings.Join(os.Args[1:], " "),
		Concurrent: *calls, Capacity: *capacity, Rate: *rate, HoldS: hold.Seconds(), ForS: dur.Seconds(), EveryS: every.Seconds(),
		WarmupS: warmFor.Seconds(), RetentionS: retention.Seconds(), Scenario: scenario, MaxFailedPct: *maxFailed, Out: e.out}

	nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", natsPort), nats.Name("sbbench soak"))
	if err != nil {
		return fmt.Errorf("the node's NATS: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}

	if err := e.warmUp(ctx, *scen, *warmup, minHold); err != nil {
		return err
	}
	e.bot.reset()
	rtpMin, rtpMax, _ := c.portRange()
	pid := e.node.pid()
	extra := func(s *sample) {
		n, socks, err := readFDs(pid)
		if err == nil {
			s.FDs = n
			s.RTPPorts, _ = readRTPPorts(pid, socks, rtpMin, rtpMax)
		}
		s.Store = readStore(ctx, js, e.dataDir)
	}
	// The figures before the load, for the report.
	idleSmp := startSamplerEvery(time.Hour, extra, pid, e.bot.Live, func() int { return 0 }, e.node.metrics)
	idle := idleSmp.Stop()
	if len(idle) == 1 {
		rep.Idle = map[string]float64{}
		for _, f := range soakFigures {
			rep.Idle[f.Name] = f.Of(idle[0])
		}
	}

	m0, err := e.node.metrics()
	if err != nil {
		return err
	}
	stop := make(chan struct{})
	// SIPp places calls until it is stopped at -for: -m only bounds it.
	total := *calls + int(2*dur.Seconds()/hold.Seconds()+2)**calls
	run := e.sippRun("soak", scenario, *rate, *calls, total, pause, *dur+grace+2*time.Minute)
	run.stop, run.stopGrace = stop, grace
	rep.SIPpCommand = run.Command()
	logf("soak: %d calls for %v (warm-up %v, a sample every %v): %s", *calls, *dur, *warmFor, *every, rep.SIPpCommand)
	smp := startSamplerEvery(*every, extra, pid, e.bot.Live, func() int { return int(e.sippPID.Load()) }, e.node.metrics)
	start := time.Now()
	sippDone := run.start(ctx)

	// Probes through the steady window, one at a time.
	var (
		wg      sync.WaitGroup
		presult []probeResult
	)
	probeCtx, probeCancel := context.WithCancel(ctx)
	defer probeCancel()
	probeHold := minHold + 2*time.Second
	if *probeEvery > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				at := start.Add(*warmFor + time.Duration(i)**probeEvery)
				if at.Add(probeHold + 5*time.Second).After(start.Add(*dur)) {
					return
				}
				select {
				case <-probeCtx.Done():
					return
				case <-time.After(time.Until(at)):
				}
				presult = append(presult, runProbe(probeCtx, e.node.sipAddr, probeHold, i))
			}
		}()
	}

	var so sippOut
	var early bool
	progress := time.NewTicker(time.Minute)
	defer progress.Stop()
wait:
	for {
		select {
		case so = <-sippDone:
			early = true
			break wait
		case <-ctx.Done():
			break wait
		case <-time.After(time.Until(start.Add(*dur))):
			break wait
		case <-progress.C:
			logf("soak: %v of %v, %d live calls", time.Since(start).Round(time.Second), *dur, e.bot.Live())
		}
	}
	samples := smp.Stop()
	probeCancel()
	wg.Wait()
	if !early {
		close(stop)
		logf("soak: %v elapsed; SIPp places no more calls and ends when its calls have", *dur)
		so = <-sippDone
	}
	if so.err != nil {
		return so.err
	}
	if err := e.settle(ctx, *hold+time.Minute); err != nil {
		logf("%v", err)
	}
	if m1, err := e.node.metrics(); err == nil {
		rep.InvitesByStatus = invitesByStatus(m0, m1)
		rep.AdmissionRefused = sumPrefix(m1, "switchboard_admission_refused_total") - sumPrefix(m0, "switchboard_admission_refused_total")
	}
	if err := writeSoakTimeline(filepath.Join(e.out, "timeline.csv"), samples); err != nil {
		return err
	}

	// The verdict.
	steadyFrom := start.Add(*warmFor)
	rep.Judgements = judgeSoak(samples, steadyFrom, start.Add(*retention+2*time.Minute))
	fillSoak(rep, so.res, e.bot, presult, samples, steadyFrom, *scen == "dtmf")
	if early {
		rep.Failures = append(rep.Failures, fmt.Sprintf("SIPp ended after %v, before -for %v", time.Since(start).Round(time.Second), *dur))
	}
	if ctx.Err() != nil {
		rep.Failures = append(rep.Failures, fmt.Sprintf("the run was cut short: %v", context.Cause(ctx)))
	}
	rep.Pass = len(rep.Failures) == 0
	if err := writeJSON(e.out, "report.json", rep); err != nil {
		return err
	}
	printSoak(os.Stdout, rep)
	if !rep.Pass {
		return fmt.Errorf("soak FAILED: %s", strings.Join(rep.Failures, "; "))
	}
	return nil
}

// fillSoak counts the calls, judges the failures and the load held, and
// collects every failed judgement into rep.Failures.
func fillSoak(rep *soakReport, sr *sippResult, b *bot, probes []probeResult, samples []sample, steadyFrom time.Time, dtmf bool) {
	var ir ivrReport
	fillSIPp(&ir, sr)
	fillProbes(&ir, probes)
	rep.Created, rep.Successful, rep.SIPpFailed, rep.SIPpFailedBy, rep.Retransmissions = ir.Created, ir.Successful, ir.SIPpFailed, ir.SIPpFailedBy, ir.Retransmissions
	rep.Probes, rep.ProbesOK, rep.ProbeErrors, rep.ProbeGapP99MS, rep.ProbeGapMaxMS = ir.Probes, ir.ProbesOK, ir.ProbeErrors, ir.ProbeGapP99MS, ir.ProbeGapMaxMS
	calls := b.Calls()
	rep.BotCalls = len(calls)
	rep.BotFailed, rep.BotFailures = failureSummary(calls, botIVR)
	if dtmf {
		for _, c := range calls {
			if c.caller == "sipp" && c.failure(botIVR) == "" && !slices.Contains(c.tones, "tone1") && !slices.Contains(c.tones, "1") {
				rep.DTMFMissed++
			}
		}
	}
	var ok bool
	rep.FailedCalls, rep.AllowedFailed, ok = callsVerdict(rep.Created, rep.SIPpFailed, rep.BotFailed, rep.Probes, rep.Probes-rep.ProbesOK, rep.MaxFailedPct)
	if !ok {
		rep.Failures = append(rep.Failures, fmt.Sprintf("%d failed calls (SIPp %d, bot %d, probes %d), more than the %d allowed (%g %% of %d)",
			rep.FailedCalls, rep.SIPpFailed, rep.BotFailed, rep.Probes-rep.ProbesOK, rep.AllowedFailed, rep.MaxFailedPct, rep.Created+rep.Probes))
	}

	var steady []sample
	for _, s := range samples {
		if !s.At.Before(steadyFrom) {
			steady = append(steady, s)
		}
	}
	if n := len(steady); n >= 2 {
		var live float64
		for _, s := range steady {
			live += float64(s.Live)
		}
		rep.SteadyLive = live / float64(n)
		first, last := steady[0], steady[n-1]
		rep.SteadyS = last.At.Sub(first.At).Seconds()
		if wall := rep.SteadyS; wall > 0 {
			rep.CPUPercent = 100 * (last.CPU.Total() - first.CPU.Total()).Seconds() / wall
		}
		rep.StreamsAt0, rep.StreamsAt1 = first.Store.Streams, last.Store.Streams
	}
	if rep.SteadyLive < 0.9*float64(rep.Concurrent) {
		rep.Failures = append(rep.Failures, fmt.Sprintf("the load was not held: %.0f live calls on average in the steady window, below 90 %% of %d", rep.SteadyLive, rep.Concurrent))
	}
	for _, j := range rep.Judgements {
		if j.Judged && !j.OK {
			rep.Failures = append(rep.Failures, fmt.Sprintf("%s grew %+.1f%s (%.1f → %.1f%s, %+.1f%s/h), more than the %.1f%s allowed (%s)",
				j.Figure, j.Growth, unitSuffix(j.Unit), j.Start, j.End, unitSuffix(j.Unit), j.PerHour, unitSuffix(j.Unit), j.Allowed, unitSuffix(j.Unit), j.Tolerance))
		}
		if !j.Judged && !strings.Contains(j.Note, "recording retention") && !strings.Contains(j.Note, "reported, not judged") {
			rep.Failures = append(rep.Failures, fmt.Sprintf("%s: %s", j.Figure, j.Note))
		}
	}
}

func unitSuffix(u string) string {
	if u == "" {
		return ""
	}
	return " " + u
}

func printSoak(w io.Writer, r *soakReport) {
	verdict := "PASS"
	if !r.Pass {
		verdict = "FAIL"
	}
	fmt.Fprintf(w, "\nSwitchboard soak: %s. %d concurrent IVR calls (%.0f %% of %d), %.0f s hold, for %v (warm-up %v), a sample every %v\n",
		verdict, r.Concurrent, 100*float64(r.Concurrent)/float64(r.Capacity), r.Capacity, r.HoldS,
		time.Duration(r.ForS*1e9), time.Duration(r.WarmupS*1e9), time.Duration(r.EveryS*1e9))
	fmt.Fprintf(w, "machine: %s\n", r.Machine)
	fmt.Fprintf(w, "load:    %s\n\n", r.SIPpCommand)
	var t table
	t.add("calls (SIPp): created / ok / failed", "%d / %d / %d (retransmissions %d)", r.Created, r.Successful, r.SIPpFailed, r.Retransmissions)
	for _, s := range sortedReasons(r.SIPpFailedBy) {
		t.add("  SIPp failed by", "%s", s)
	}
	t.add("calls (bot): seen / failed", "%d / %d (DTMF press not reported: %d)", r.BotCalls, r.BotFailed, r.DTMFMissed)
	for _, s := range sortedReasons(r.BotFailures) {
		t.add("  bot failure", "%s", s)
	}
	t.add("probes ok", "%d of %d (RTP gap p99 %.1f ms, max %.1f ms)", r.ProbesOK, r.Probes, r.ProbeGapP99MS, r.ProbeGapMaxMS)
	for _, e := range r.ProbeErrors {
		t.add("  probe error", "%s", e)
	}
	var st []string
	for k, v := range r.InvitesByStatus {
		st = append(st, fmt.Sprintf("%s: %.0f", k, v))
	}
	slices.Sort(st)
	t.add("INVITEs by final status (node)", "%s; %.0f refused by admission control", strings.Join(st, ", "), r.AdmissionRefused)
	t.add("failed calls, all told", "%d (allowed: %d, %g %% of the calls placed)", r.FailedCalls, r.AllowedFailed, r.MaxFailedPct)
	t.add("live calls in the steady window", "%.0f on average (at least 90 %% of %d)", r.SteadyLive, r.Concurrent)
	t.add("node CPU in the steady window", "%.0f%% of one core", r.CPUPercent)
	t.write(w)

	fmt.Fprintf(w, "\n  %-50s %10s %10s %10s %10s %10s %12s  %s\n", "figure (steady window, fitted line)", "idle", "start", "end", "growth", "allowed", "slope/h", "verdict")
	for _, j := range r.Judgements {
		v := "ok"
		switch {
		case j.Judged && !j.OK:
			v = "GREW"
		case !j.Judged:
			v = "-"
		}
		allowed := "-"
		if j.Judged {
			allowed = fmt.Sprintf("%.1f", j.Allowed)
		}
		name := j.Figure
		if j.Unit != "" {
			name += " (" + j.Unit + ")"
		}
		fmt.Fprintf(w, "  %-50s %10.1f %10.1f %10.1f %+10.1f %10s %+12.1f  %s %s\n", name, r.Idle[j.Figure], j.Start, j.End, j.Growth, allowed, j.PerHour, v, j.Tolerance)
		if j.Note != "" {
			fmt.Fprintf(w, "  %50s %s\n", "", j.Note)
		}
	}
	if len(r.StreamsAt1) > 0 {
		fmt.Fprintf(w, "\n  JetStream streams (bytes / messages / on disk), steady window's first sample → last; limits\n")
		names := make([]string, 0, len(r.StreamsAt1))
		for n := range r.StreamsAt1 {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			a, b := r.StreamsAt0[n], r.StreamsAt1[n]
			fmt.Fprintf(w, "  %-22s %11d / %-7d / %-11d → %11d / %-7d / %-11d %s\n", n, a.Bytes, a.Msgs, a.Disk, b.Bytes, b.Msgs, b.Disk, streamOutlook(a, b, r.SteadyS))
		}
	}
	for _, f := range r.Failures {
		fmt.Fprintf(w, "\nFAIL: %s", f)
	}
	if len(r.Failures) > 0 {
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "\noutput: %s (timeline.csv: one line per sample)\n", r.Out)
}

// writeSoakTimeline writes the soak's samples as CSV, one line per sample.
func writeSoakTimeline(path string, samples []sample) error {
	var b strings.Builder
	b.WriteString("t_s,live_calls,node_cpu_pct,node_rss_mb,node_threads,goroutines,heap_inuse_mb,open_files,rtp_ports,media_sessions,js_unlimited_bytes,js_unlimited_msgs,js_limited_bytes,js_limited_msgs,js_recordings_mb,data_dir_mb,data_dir_recordings_mb,outbox_pending,outbox_parked\n")
	for i, s := range samples {
		cpu := 0.0
		if i > 0 {
			if dt := s.At.Sub(samples[i-1].At).Seconds(); dt > 0 {
				cpu = 100 * (s.CPU.Total() - samples[i-1].CPU.Total()).Seconds() / dt
			}
		}
		fmt.Fprintf(&b, "%.1f,%d,%.1f,%.1f,%d,%.0f,%.1f,%d,%d,%.0f,%d,%d,%d,%d,%.1f,%.1f,%.1f,%.0f,%.0f\n", s.At.Sub(samples[0].At).Seconds(), s.Live,
			cpu, float64(s.RSS)/(1<<20), s.Threads, s.Go.Goroutines, s.Go.HeapInuse/(1<<20), s.FDs, s.RTPPorts, s.Sessions,
			s.Store.StateBytes, s.Store.StateMsgs, s.Store.LimitedBytes, s.Store.LimitedMsgs, float64(s.Store.RecBytes)/(1<<20), float64(s.Store.DiskBytes)/(1<<20), float64(s.Store.RecDiskBytes)/(1<<20),
			s.Pending, s.Parked)
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
