package main

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"time"
)

// soakTimeline makes an hour of samples every 10 s at a steady load, each
// figure from f(figure's base, t in hours, sample index).
func soakTimeline(n int, f func(base, hours float64, i int) float64) []sample {
	t0 := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	out := make([]sample, n)
	for i := range out {
		at := time.Duration(i) * 10 * time.Second
		h := at.Hours()
		v := func(base float64) float64 { return f(base, h, i) }
		out[i] = sample{At: t0.Add(at), Live: 700,
			RSS:      int64(v(180) * (1 << 20)),
			Go:       goStats{Goroutines: v(3000), HeapInuse: v(60) * (1 << 20)},
			FDs:      int(v(1500)),
			RTPPorts: int(v(700)),
			Sessions: v(700),
			Pending:  v(200),
			Store: storeUsage{StateBytes: int64(v(2) * (1 << 20)), StateMsgs: int64(v(5000)), LimitedMsgs: int64(v(1000)) + int64(10*i),
				RecBytes: int64(v(900) * (1 << 20)), DiskBytes: int64(v(960) * (1 << 20)), RecDiskBytes: int64(v(900) * (1 << 20))},
		}
	}
	return out
}

func failedFigures(js []judgement) []string {
	var out []string
	for _, j := range js {
		if j.Judged && !j.OK {
			out = append(out, j.Figure)
		}
	}
	return out
}

func TestSoakJudgement(t *testing.T) {
	const n = 360 // an hour every 10 s
	rng := rand.New(rand.NewPCG(1, 2))
	t0 := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	steadyFrom := t0.Add(6 * time.Minute)
	recFrom := t0.Add(12 * time.Minute)
	for _, tc := range []struct {
		name string
		f    func(base, hours float64, i int) float64
		want []string // the figures that must fail, in soakFigures' order
	}{
		{"flat", func(b, _ float64, _ int) float64 { return b }, nil},
		{"noise within tolerance", func(b, _ float64, _ int) float64 { return b * (1 + 0.03*(2*rng.Float64()-1)) }, nil},
		{"a wave as calls turn over", func(b, h float64, _ int) float64 { return b * (1 + 0.04*math.Sin(2*math.Pi*h*120)) }, nil},
		{"everything doubles in the hour", func(b, h float64, _ int) float64 { return b * (1 + h) },
			[]string{"goroutines", "RSS", "open files", "RTP ports beyond live calls", "media sessions beyond live calls", "JetStream streams without limits",
				"JetStream streams without limits: messages", "data folder on disk but recordings", "recordings (object store)", "outbox pending"}},
		// 18 % over the steady window: above every share, but under the
		// absolute floors of the small figures (2 MB of state, 60 MB on
		// disk, 200 pending).
		{"everything leaks 20 % an hour", func(b, h float64, _ int) float64 { return b * (1 + 0.2*h) },
			[]string{"goroutines", "RSS", "open files", "RTP ports beyond live calls", "media sessions beyond live calls",
				"JetStream streams without limits: messages", "recordings (object store)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			js := judgeSoak(soakTimeline(n, tc.f), steadyFrom, recFrom)
			if got := failedFigures(js); strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("failed figures %q, want %q", got, tc.want)
			}
		})
	}

	// One figure leaking while the rest stay flat: only it fails, and the
	// report says by how much.
	samples := soakTimeline(n, func(b, _ float64, _ int) float64 { return b })
	for i := range samples {
		samples[i].Go.Goroutines += float64(i) // one more goroutine every 10 s
		samples[i].Store.StateMsgs += int64(3 * i)
	}
	js := judgeSoak(samples, steadyFrom, recFrom)
	if got := failedFigures(js); strings.Join(got, ",") != "goroutines,JetStream streams without limits: messages" {
		t.Fatalf("failed figures %q, want goroutines and the unlimited streams' messages", got)
	}
	g := js[0]
	if g.Figure != "goroutines" || math.Abs(g.Growth-323) > 0.5 || math.Abs(g.PerHour-360) > 0.5 {
		t.Errorf("goroutines: %+v, want a growth of 323 (324 samples in the window) and 360/h", g)
	}
	var rep soakReport
	rep.Judgements = js
	rep.Concurrent = 700
	fillSoak(&rep, &sippResult{Created: 1000, Successful: 1000}, &bot{}, nil, samples, steadyFrom, false)
	if len(rep.Failures) != 2 || !strings.Contains(rep.Failures[0], "goroutines grew +") || !strings.Contains(rep.Failures[0], "+max(5 %, 50)") {
		t.Errorf("failures %q", rep.Failures)
	}

	// The load dips early in the window (calls refused on a busy
	// machine), ports and sessions with it: nothing outlives its call.
	dip := soakTimeline(n, func(b, _ float64, _ int) float64 { return b })
	for i := 40; i < 70; i++ {
		dip[i].Live, dip[i].RTPPorts, dip[i].Sessions = 500, 500, 500
	}
	if got := failedFigures(judgeSoak(dip, steadyFrom, recFrom)); len(got) != 0 {
		t.Errorf("a dip in the load failed %q", got)
	}

	// A small growth under the absolute floor passes even where the share
	// alone would fail it: 40 more goroutines on a base of 100.
	small := soakTimeline(n, func(b, _ float64, _ int) float64 { return b })
	for i := range small {
		small[i].Go.Goroutines = 100 + 40*float64(i)/n
	}
	if got := failedFigures(judgeSoak(small, steadyFrom, recFrom)); len(got) != 0 {
		t.Errorf("a growth under the floor failed %q", got)
	}
}

func TestSoakJudgementShortRuns(t *testing.T) {
	// A run shorter than the recording retention: the recordings' bucket,
	// growing as it must until its TTL bounds it, is not judged; the rest is.
	t0 := time.Date(2026, 12, 7, 3, 0, 0, 0, time.UTC)
	samples := soakTimeline(18, func(b, h float64, _ int) float64 { return b })
	for i := range samples {
		samples[i].Store.RecBytes = int64(i) << 24
	}
	js := judgeSoak(samples, t0.Add(40*time.Second), t0.Add(12*time.Minute))
	for _, j := range js {
		if j.Figure == "recordings (object store)" {
			if j.Judged || !strings.Contains(j.Note, "recording retention") {
				t.Errorf("recordings in a short run: %+v", j)
			}
		} else if !j.OK {
			t.Errorf("%s failed on a flat short run: %+v", j.Figure, j)
		}
	}
	// Too few samples in the steady window: nothing judged, and the soak fails.
	js = judgeSoak(samples, t0.Add(150*time.Second), t0.Add(12*time.Minute))
	rep := soakReport{Judgements: js, Concurrent: 700}
	fillSoak(&rep, &sippResult{}, &bot{}, nil, samples, t0.Add(150*time.Second), false)
	if len(rep.Failures) == 0 || !strings.Contains(strings.Join(rep.Failures, ";"), "not judged") {
		t.Errorf("a window of 3 samples: failures %q", rep.Failures)
	}
}

func TestCallsVerdict(t *testing.T) {
	for _, tc := range []struct {
		created, sipp, bot, probes, probesFailed int
		ok                                       bool
	}{
		{84000, 0, 0, 54, 0, true},
		{84000, 40, 40, 54, 0, true}, // 80 of 84,054: under 0.1 %
		{84000, 60, 30, 54, 0, false},
		{1800, 1, 0, 2, 0, true}, // 0.1 % of 1,802 allows one
		{1800, 0, 0, 2, 2, false},
		{0, 0, 0, 0, 0, true},
	} {
		_, _, ok := callsVerdict(tc.created, tc.sipp, tc.bot, tc.probes, tc.probesFailed, 0.1)
		if ok != tc.ok {
			t.Errorf("callsVerdict(%+v) = %v", tc, ok)
		}
	}
}

func TestCountUDPPorts(t *testing.T) {
	// /proc/net/udp: ports 0x4E20 (20000) and 0x4E22 (20002) are the
	// node's (inodes 101, 102), 0x1770 (6000) is the node's but outside
	// the range, 0x4E24 is another process's.
	b := []byte(`   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  1: 0100007F:4E20 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 101 2 0000000000000000 0
  2: 0100007F:4E22 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 102 2 0000000000000000 0
  3: 0100007F:1770 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 103 2 0000000000000000 0
  4: 0100007F:4E24 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 999 2 0000000000000000 0
`)
	if n := countUDPPorts(b, map[uint64]bool{101: true, 102: true, 103: true}, 20000, 29999); n != 2 {
		t.Errorf("countUDPPorts = %d, want 2", n)
	}
}

func TestStreamOutlook(t *testing.T) {
	// The outbox's stream, one message a second kept for its 24 h age
	// limit; a KV bucket with no limit gaining a marker per call.
	a := streamUsage{Bytes: 1000, Msgs: 20, MaxAge: 24 * time.Hour}
	b := streamUsage{Bytes: 1000 + 50*3600, Msgs: 20 + 3600, MaxAge: 24 * time.Hour}
	if got := streamOutlook(a, b, 3600); !strings.Contains(got, "max age 24h0m0s; +3600 messages/h: at most ~86400 messages, 4.1 MB") {
		t.Errorf("outbox: %q", got)
	}
	a, b = streamUsage{Msgs: 300}, streamUsage{Msgs: 300 + 36000, Bytes: 36000 * 100}
	if got := streamOutlook(a, b, 3600); !strings.Contains(got, "no limit; +36000 messages/h") || !strings.Contains(got, "grows without bound") {
		t.Errorf("KV: %q", got)
	}
	if got := streamOutlook(a, a, 3600); got != "no limit" {
		t.Errorf("flat: %q", got)
	}
}
