package console

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/webhook"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

func testConsole(t *testing.T) *Console {
	cfg := config.Default()
	cfg.Console.Users = []config.ConsoleUser{{Name: "op", Password: "password-1"}}
	c := New(&cfg)
	if c == nil {
		t.Fatal("no console with an operator configured")
	}
	return c
}

func ev(kind, id, state string) callctl.CallEvent {
	e := callctl.CallEvent{Kind: kind, At: time.Now(), Call: callctl.CallSnapshot{ID: id, State: state}}
	if kind == callctl.ObservedEnded {
		e.Call.ResultInfo = &graph.ResultInfo{Code: 410, Subcode: 301005, Message: "Media connectivity failure"}
	}
	return e
}

// What the console remembers stays bounded: the last MaxEnded ended calls,
// MaxTimeline entries per call.
func TestConsoleBounds(t *testing.T) {
	c := testConsole(t)
	for i := range MaxEnded + 10 {
		id := fmt.Sprintf("call-%d", i)
		c.ObserveCall(ev(callctl.ObservedCreated, id, "establishing"))
		c.ObserveCall(ev(callctl.ObservedEnded, id, "terminated"))
	}
	c.ObserveCall(ev(callctl.ObservedCreated, "live", "established"))
	for i := range MaxTimeline + 5 {
		c.OnResult(webhook.Result{CallID: "live", URL: "https://bot.example/cb?token=SECRET", Status: 202, Attempts: 1, Delivered: i%2 == 0,
			Err: fmt.Errorf(`Post "https://bot.example/cb?token=SECRET": refused`)})
	}
	snap := c.Snapshot()
	if len(snap) != MaxEnded+1 || snap[0].ID != "live" {
		t.Fatalf("%d calls remembered, first %s; want %d, the live one first", len(snap), snap[0].ID, MaxEnded+1)
	}
	live := snap[0]
	if len(live.Timeline) != MaxTimeline || live.Forgotten != 6 {
		t.Errorf("timeline of %d entries, %d forgotten", len(live.Timeline), live.Forgotten)
	}
	for _, e := range live.Timeline {
		if strings.Contains(e.Text, "SECRET") || strings.Contains(e.Text, "?") {
			t.Errorf("timeline shows the callback's query: %s", e.Text)
		}
	}
	for _, call := range snap[1:] {
		if call.End == nil || call.End.Explanation != Explain(410, 301005) || call.ID == "call-0" {
			t.Errorf("ended call %+v", call)
		}
	}
}

// A reader that does not keep up is disconnected and counted; the call's
// actor is never made to wait.
func TestConsoleDropsASlowReader(t *testing.T) {
	c := testConsole(t)
	s := &sub{ch: make(chan []byte, subBuffer), gone: make(chan struct{})}
	c.mu.Lock()
	c.subs[s] = struct{}{}
	c.mu.Unlock()
	c.ObserveCall(ev(callctl.ObservedCreated, "a", "establishing"))
	for range subBuffer + 1 {
		c.ObserveCall(ev(callctl.ObservedState, "a", "established"))
	}
	select {
	case <-s.gone:
	default:
		t.Fatal("the slow reader was not dropped")
	}
	if c.Dropped() != 1 || len(c.subs) != 0 {
		t.Errorf("dropped %d, %d readers left", c.Dropped(), len(c.subs))
	}
}

func TestExplain(t *testing.T) {
	for _, c := range []struct {
		code, sub int
		want      string
	}{{200, 4521, "far end hung up"}, {410, 301005, "Media failure"}, {500, 9013, "recording could not be stored"},
		{503, 12345, "subcode 12345"}, {999, 1, "No explanation"}} {
		if got := Explain(c.code, c.sub); !strings.Contains(got, c.want) {
			t.Errorf("Explain(%d, %d) = %q, want it to say %q", c.code, c.sub, got, c.want)
		}
	}
}

// Traces stay bounded too: those of calls not yet created wait (at most
// maxEarlyCalls calls, maxEarlyTraces each) and come first on the call's
// timeline once it is; a call lists at most MaxRecordings recordings, each
// once.
func TestConsoleTraceBounds(t *testing.T) {
	c := testConsole(t)
	tr := func(id, text, rec string) callctl.TraceEvent {
		return callctl.TraceEvent{CallID: id, At: time.Now(), Kind: callctl.TraceSIP, Text: text, Recording: rec}
	}
	for i := range 3 * maxEarlyCalls {
		for j := range 2 * maxEarlyTraces {
			c.Trace(tr(fmt.Sprintf("early-%d", i), fmt.Sprintf("trace %d", j), ""))
		}
	}
	c.mu.Lock()
	calls, order := len(c.early), len(c.earlyOrder)
	for id, held := range c.early {
		if len(held) > maxEarlyTraces {
			t.Errorf("%s: %d traces held", id, len(held))
		}
	}
	c.mu.Unlock()
	if calls > maxEarlyCalls || order > maxEarlyCalls+1 {
		t.Fatalf("%d calls' traces held (%d in order)", calls, order)
	}
	last := fmt.Sprintf("early-%d", 3*maxEarlyCalls-1)
	c.ObserveCall(ev(callctl.ObservedCreated, last, "incoming"))
	snap := c.Snapshot()
	if len(snap) != 1 || len(snap[0].Timeline) != maxEarlyTraces+1 || snap[0].Timeline[0].Text != "trace 0" || snap[0].Timeline[maxEarlyTraces].Kind != callctl.ObservedCreated {
		t.Fatalf("the created call's timeline: %+v", snap[0].Timeline)
	}
	for i := range MaxRecordings + 5 {
		c.Trace(tr(last, "recording stored", fmt.Sprintf("%032x", i)))
		c.Trace(tr(last, "recording stored again", fmt.Sprintf("%032x", i)))
	}
	recs := c.Snapshot()[0].Recordings
	if len(recs) != MaxRecordings || recs[0].ID != fmt.Sprintf("%032x", 5) || recs[0].URL != "/console/calls/"+last+"/recordings/"+recs[0].ID {
		t.Fatalf("%d recordings, first %+v", len(recs), recs[0])
	}
}
