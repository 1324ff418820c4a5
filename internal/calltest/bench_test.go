package calltest_test

import (
	"slices"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	slices.Sort(d)
	return d[min(len(d)-1, int(float64(len(d))*p))]
}

// BenchmarkCreateCall measures, on loopback against an in-process node with
// its embedded JetStream store, the latency of POST /communications/calls
// (token cached, call to a simulated user) and of notification delivery
// (enqueue to the bot's 202) for the notifications those calls produce.
//
//	go test -run '^$' -bench CreateCall -benchtime 2000x ./internal/calltest/
func BenchmarkCreateCall(b *testing.B) {
	p := calltest.Start(b, calltest.Options{Edit: func(c *config.Config) {
		c.Calls.MaxConcurrentPerApp = 1 << 20
		c.Log.Level = "error"
		c.Tenants[0].Users[0].Simulation.AnswerAfter = config.Duration(time.Millisecond)
		c.Tenants[0].Users[0].Simulation.RingAfter = config.Duration(time.Millisecond)
	}})
	p.Token(calltest.BotID, calltest.TenantID)
	body := calltest.CallTo(p.Hook.URL, calltest.AliceID)
	lat := make([]time.Duration, 0, b.N)
	ids := make([]string, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		r := p.Bot("POST", calls, body)
		lat = append(lat, time.Since(start))
		if r.StatusCode != 201 {
			b.Fatalf("create: %s %s", r.Status, r.Body)
		}
		var c graph.Call
		r.JSON(b, &c)
		ids = append(ids, c.ID)
	}
	b.StopTimer()
	for _, id := range ids {
		p.Hook.WaitState(b, id, graph.StateEstablished)
		p.Bot("DELETE", calls+"/"+id, nil)
	}
	for _, id := range ids {
		p.Hook.WaitState(b, id, graph.StateTerminated)
	}
	var notif []time.Duration
	for _, r := range p.Results() {
		if r.Delivered {
			notif = append(notif, r.Finished.Sub(r.Enqueued))
		}
	}
	b.ReportMetric(float64(percentile(lat, .5).Microseconds()), "create-p50-µs")
	b.ReportMetric(float64(percentile(lat, .99).Microseconds()), "create-p99-µs")
	b.ReportMetric(float64(percentile(notif, .5).Microseconds()), "notify-p50-µs")
	b.ReportMetric(float64(percentile(notif, .99).Microseconds()), "notify-p99-µs")
	b.ReportMetric(float64(len(notif)), "notifications")
}
