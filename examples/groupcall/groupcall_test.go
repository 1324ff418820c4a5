package main

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
)

const doraID = "d0000000-0000-4000-8000-0000000000d1" // declines

// start runs a node whose directory also has Dora, a bot on it, and a
// registered baresip as eve.
func start(t *testing.T, hold time.Duration) (*Bot, *calltest.Baresip) {
	t.Helper()
	calltest.NeedPeer(t, "baresip", "baresip")
	hook := httptest.NewUnstartedServer(nil)
	t.Cleanup(hook.Close)
	hookURL := "http://" + hook.Listener.Addr().String()
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		c.Applications[0].CallbackURI = hookURL + "/callback"
		c.Tenants[0].Users = append(c.Tenants[0].Users, config.User{ID: doraID, DisplayName: "Dora", Simulated: true,
			Simulation: config.Simulation{Answer: "decline", RingAfter: config.Duration(20 * time.Millisecond),
				AnswerAfter: config.Duration(300 * time.Millisecond)}})
	}})
	b, err := New(Options{BaseURL: p.URL + "/v1.0", TenantID: calltest.TenantID, AppID: calltest.BotID, Secret: calltest.Secret,
		CallbackURL: hookURL + "/callback", Hold: hold, RingSeconds: 2})
	if err != nil {
		t.Fatal(err)
	}
	hook.Config.Handler = b.Handler()
	hook.Start()
	t.Cleanup(func() { _ = b.Handler().Shutdown(t.Context()) })

	src := t.TempDir() + "/voice.wav"
	if err := calltest.WriteWAV(src, calltest.Melody(30, 1), 8000); err != nil {
		t.Fatal(err)
	}
	bs := calltest.StartBaresip(t, calltest.BaresipOptions{User: "eve", Password: calltest.EvePassword,
		Registrar: p.Node.SIP.Addr().String(), Source: src})
	return b, bs
}

type want struct {
	name          string
	outcome       Outcome
	code, subcode int
	leftEarly     bool
}

func check(t *testing.T, rep Report, want []want) {
	t.Helper()
	var out strings.Builder
	_ = rep.Write(&out)
	t.Logf("report:\n%s", out.String())
	if len(rep.Members) != len(want) {
		t.Fatalf("%d members in the report, want %d", len(rep.Members), len(want))
	}
	for i, w := range want {
		m := rep.Members[i]
		if m.Name != w.name || m.Outcome != w.outcome || m.End == nil || m.End.Code != w.code || m.End.Subcode != w.subcode ||
			m.LeftEarly != w.leftEarly || m.Err != nil || m.CallID == "" {
			t.Errorf("member %d: %+v (end %+v), want %+v", i, m, m.End, w)
		}
	}
}

// The README's group call end to end: a real softphone (baresip, as eve)
// and a simulated user answer, simulated users are busy, decline and do
// not answer; the report says so with Graph's codes, and those who joined
// are hung up after the hold.
func TestGroupCallReportsWhoJoined(t *testing.T) {
	b, bs := start(t, time.Second)
	rep, err := b.Run(t.Context(), []string{calltest.EveID, calltest.AliceID, calltest.CarolID, doraID, calltest.DaveID})
	if err != nil {
		t.Fatal(err)
	}
	check(t, rep, []want{
		{"Eve", Joined, 200, 5001, false}, // hung up by the bot after the hold
		{"Alice", Joined, 200, 5001, false},
		{"Carol", Busy, 486, 9005, false},
		{"Dora", Declined, 603, 9006, false},
		{"Dave", NoAnswer, 408, 10057, false}, // rang for RingSeconds
	})
	// The phone was in the call, and the bot's hang-up reached it.
	bs.WaitOutput(t, "Call established", 5*time.Second)
	bs.WaitOutput(t, "terminated", 10*time.Second)
}

// When everyone who joined has hung up, the hold is over: Run returns long
// before it would have, reporting them as having left early.
func TestGroupCallEndsWhenEveryoneHasLeft(t *testing.T) {
	b, bs := start(t, time.Minute)
	type result struct {
		rep Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := b.Run(t.Context(), []string{calltest.EveID, calltest.CarolID})
		done <- result{rep, err}
	}()
	bs.WaitOutput(t, "Call established", 20*time.Second)
	bs.Command(t, "hangup", "")
	var r result
	select {
	case r = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the group call went on after everyone had left")
	}
	if r.err != nil {
		t.Fatal(r.err)
	}
	check(t, r.rep, []want{
		{"Eve", Joined, 200, 4521, true}, // the other party ended the call
		{"Carol", Busy, 486, 9005, false},
	})
}
