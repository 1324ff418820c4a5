package calltest_test

import (
	"fmt"
	"math"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/bottest"
	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/simulated"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// TestMeasureCascade measures what carrying a caller into a meeting
// mixed on another node costs (docs/benchmarks.md, "A meeting's room
// across nodes"): the one-way delay from a caller speaking to a caller
// hearing them, local (both on the room's node) against cascaded (the
// listener on the other node), and the process's CPU with callers all on
// the room's node against all cascaded. A measurement, not a check: it
// runs with SWITCHBOARD_MEASURE=1.
func TestMeasureCascade(t *testing.T) {
	if os.Getenv("SWITCHBOARD_MEASURE") == "" {
		t.Skip("a measurement: set SWITCHBOARD_MEASURE=1")
	}
	a, b, m := meetingNodes(t, 0)
	first := joinThrough(t, a, calltest.BotID, m)
	a.Hook.WaitState(t, first.ID, graph.StateEstablished)

	// Delay: Alice speaks on A; Carol hears her on A, Bob through B.
	alice := dialInThrough(t, a, calltest.AliceID, m)
	carol := dialInThrough(t, a, calltest.CarolID, m)
	bob := dialInThrough(t, b, calltest.BobID, m)
	waitRoster(t, a, first.ID, "Alice", "Bob", "Carol", "Test bot")
	for _, l := range []*simulated.Leg{alice, carol} {
		waitLeg(t, l, "in the meeting", func(s simulated.LegState) bool { return s.PromptsHeard >= 2 && !s.PromptPlaying })
	}
	pcm := calltest.Pattern(500, 1.5, 81)
	sayUntilHeard(t, alice, bob, pcm) // past Bob's "you have joined", played on A
	var local, cascaded []float64
	for i := range 6 {
		lc, lb := len(carol.Heard()), len(bob.Heard())
		p := calltest.Pattern(500+float64(40*i), 1.5, 90+i)
		if err := alice.Say(p); err != nil {
			t.Fatal(err)
		}
		for _, l := range []*simulated.Leg{carol, bob} {
			waitLeg(t, l, "the pattern", func(simulated.LegState) bool { return bottest.Similarity(l.Heard(), p) >= 0.8 })
		}
		// The pattern's end is heard before the next one starts.
		waitLeg(t, bob, "the pattern's end", func(simulated.LegState) bool { return len(bob.Heard()) >= lb+len(p)+4000 })
		local = append(local, onset(carol.Heard()[lc:], p))
		cascaded = append(cascaded, onset(bob.Heard()[lb:], p))
	}
	t.Logf("speaking → heard, local (both on the room's node): %s", stats(local))
	t.Logf("speaking → heard, cascaded (listener on the other node): %s", stats(cascaded))
	for _, l := range []*simulated.Leg{alice, bob, carol} {
		l.HangUpNow()
	}
	waitRoster(t, a, first.ID, "Test bot")

	// CPU: n callers talking for a while, all on A, then all through B.
	const n, hold = 8, 10 * time.Second
	for _, via := range []*calltest.Platform{a, b} {
		legs := make([]*simulated.Leg, n)
		for i := range legs {
			legs[i] = dialInThrough(t, via, []string{calltest.AliceID, calltest.BobID, calltest.CarolID, calltest.DaveID}[i%4], m)
		}
		waitRoster(t, a, first.ID, "Alice", "Alice", "Bob", "Bob", "Carol", "Carol", "Dave", "Dave", "Test bot")
		for _, l := range legs {
			// Everyone talks all the time: every stream carries speech.
			_ = l.Say(calltest.Pattern(300, hold.Seconds()+5, 7))
		}
		before, at := cpu(), time.Now()
		time.Sleep(hold) // the measurement window: nothing waits on it
		used, wall := cpu()-before, time.Since(at)
		where := "on the room's node"
		if via == b {
			where = "cascaded from the other node"
		}
		t.Logf("%d callers %s: process CPU %.1f%% of a core (%.2f ms per caller per second)", n, where,
			100*used.Seconds()/wall.Seconds(), 1000*used.Seconds()/wall.Seconds()/n)
		for _, l := range legs {
			l.HangUpNow()
		}
		waitRoster(t, a, first.ID, "Test bot")
	}
}

// onset finds where pattern p starts in heard (seconds from its start),
// by the envelopes' correlation in 5 ms windows.
func onset(heard, p []int16) float64 {
	const w = 40
	env := func(x []int16) []float64 {
		out := make([]float64, len(x)/w)
		for i := range out {
			s := 0.0
			for _, v := range x[i*w : (i+1)*w] {
				s += math.Abs(float64(v))
			}
			out[i] = s / w
		}
		return out
	}
	h, q := env(heard), env(p)
	best, at := math.Inf(-1), 0
	for lag := 0; lag+len(q) <= len(h); lag++ {
		var sxy, sxx, syy float64
		for i, v := range q {
			sxy += v * h[lag+i]
			sxx += v * v
			syy += h[lag+i] * h[lag+i]
		}
		if c := sxy / math.Sqrt(sxx*syy+1e-9); c > best {
			best, at = c, lag
		}
	}
	return float64(at*w) / 8000
}

func stats(xs []float64) string {
	lo, hi, sum := math.Inf(1), math.Inf(-1), 0.0
	for _, x := range xs {
		lo, hi, sum = min(lo, x), max(hi, x), sum+x
	}
	return fmt.Sprintf("mean %.0f ms (min %.0f, max %.0f, n=%d)", 1000*sum/float64(len(xs)), 1000*lo, 1000*hi, len(xs))
}

// cpu is the process's CPU time so far (user and system).
func cpu() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
