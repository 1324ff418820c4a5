package calltest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/emiago/sipgo"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// A node at calls.maxConcurrent refuses what would take it over: a SIP
// INVITE from a trunk gets 503 with Retry-After, a bot's create 503
// serviceNotAvailable with Retry-After, each counted by reason; the two
// calls already up stay up and drivable.
func TestOverNodeCapRefusesNewCalls(t *testing.T) {
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		c.Calls.MaxConcurrent = 2
		c.Calls.Overload.RetryAfter = config.Duration(7e9)
		c.SIP.Trunks = []config.Trunk{{Name: "pstn", Address: "127.0.0.2:5060", AllowFrom: []string{"127.0.0.2"}}}
	}})
	ctx, cancel := context.WithTimeout(context.Background(), 2*sipWait)
	defer cancel()
	gw := p.Node.SIP.Addr()

	// Two calls up: one the bot placed, one a caller on the trunk placed.
	out := p.CreateCall(calltest.AliceID)
	p.Hook.WaitState(t, out.ID, graph.StateEstablished)
	caller := newSIPPhone(t, "127.0.0.2", "+15557777")
	inDlg := caller.invite(t, gw, calltest.BotNumber)
	answered := make(chan error, 1)
	go func() { answered <- inDlg.WaitAnswer(ctx, sipgo.AnswerOptions{}) }()
	var in graph.Call
	p.Hook.Wait(t, "", sipWait, "the incoming call", func(ns []calltest.Notification) bool {
		for _, n := range ns {
			if n.ChangeType == graph.ChangeCreated && json.Unmarshal(n.ResourceData, &in) == nil && in.State == graph.StateIncoming {
				return true
			}
		}
		return false
	})
	ans := map[string]any{"callbackUri": p.Hook.URL, "acceptedModalities": []string{"audio"},
		"mediaConfig": map[string]any{"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}}
	if r := p.Bot("POST", calls+"/"+in.ID+"/answer", ans); r.StatusCode != 202 {
		t.Fatalf("answer: %s %s", r.Status, r.Body)
	}
	if err := <-answered; err != nil {
		t.Fatalf("caller: %v", err)
	}
	if err := inDlg.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	p.Hook.WaitState(t, in.ID, graph.StateEstablished)

	// A third caller: 503 with the configured Retry-After, before any
	// 180 or media.
	third := newSIPPhone(t, "127.0.0.2", "+15558888")
	dlg := third.invite(t, gw, calltest.BotNumber)
	err := dlg.WaitAnswer(ctx, sipgo.AnswerOptions{})
	var refused *sipgo.ErrDialogResponse
	if !errors.As(err, &refused) {
		t.Fatalf("third INVITE: %v, want a final error response", err)
	}
	if res := refused.Res; res.StatusCode != 503 || res.GetHeader("Retry-After") == nil || res.GetHeader("Retry-After").Value() != "7" {
		t.Fatalf("third INVITE answered %s (Retry-After %v), want 503 with Retry-After 7", res.StartLine(), res.GetHeader("Retry-After"))
	}

	// A bot's create: Graph's 503 with Retry-After.
	r := p.Bot("POST", calls, calltest.CallTo(p.Hook.URL, calltest.BobID))
	var body struct {
		Error struct{ Code, Message string }
	}
	r.JSON(t, &body)
	if r.StatusCode != 503 || r.Header.Get("Retry-After") != "7" || body.Error.Code != "serviceNotAvailable" ||
		!strings.Contains(body.Error.Message, "calls.maxConcurrent") {
		t.Fatalf("create over the cap: %s Retry-After %q %s, want 503 serviceNotAvailable with Retry-After 7", r.Status, r.Header.Get("Retry-After"), r.Body)
	}

	// Counted by edge and reason.
	m := p.Do(calltest.Req{Method: "GET", Path: "/metrics"})
	for _, want := range []string{
		`switchboard_admission_refused_total{edge="sip",reason="calls"} 1`,
		`switchboard_admission_refused_total{edge="graph",reason="calls"} 1`,
		`switchboard_admission_refused_total{edge="sip",reason="media"} 0`,
	} {
		if !hasLine(m.Body, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// The calls up are untouched: established, no BYE to the caller, and
	// their bot still drives them.
	for _, id := range []string{out.ID, in.ID} {
		var c graph.Call
		if r := p.Bot("GET", calls+"/"+id, nil); r.StatusCode != 200 {
			t.Fatalf("get %s: %s", id, r.Status)
		} else if r.JSON(t, &c); c.State != graph.StateEstablished {
			t.Errorf("call %s is %s after the refusals, want established", id, c.State)
		}
	}
	select {
	case bye := <-caller.byes:
		t.Fatalf("the caller got a BYE: %s", bye.StartLine())
	default:
	}
	for _, id := range []string{out.ID, in.ID} {
		if r := p.Bot("DELETE", calls+"/"+id, nil); r.StatusCode != 204 {
			t.Fatalf("hang up %s: %s %s", id, r.Status, r.Body)
		}
		p.Hook.WaitState(t, id, graph.StateTerminated)
	}
	caller.nextBye(t)
}

// hasLine reports whether the exposition text has line.
func hasLine(text []byte, line string) bool {
	sc := bufio.NewScanner(bytes.NewReader(text))
	for sc.Scan() {
		if sc.Text() == line {
			return true
		}
	}
	return false
}
