package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/bottest"
	"github.com/switchboard-voice/switchboard/examples/internal/prompts"
	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// simRun runs the sample against bottest's node with options edited
// by edit; Run's result arrives on the returned channel, and cancel is
// the sample's Ctrl-C.
type simRun struct {
	sb     *bottest.Switchboard
	out    *output
	voices *voices
	cancel context.CancelFunc
	done   chan runResult
}

type runResult struct {
	rep Report
	err error
}

func startSimulated(t *testing.T, edit func(*Options)) *simRun {
	t.Helper()
	sb := bottest.Start(t)
	promptSrv := httptest.NewUnstartedServer(nil)
	served := prompts.NewServer("http://" + promptSrv.Listener.Addr().String())
	s := &simRun{sb: sb, out: newOutput(), voices: &voices{}, done: make(chan runResult, 1)}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the bot printed:\n%s", s.out)
		}
	})
	c := sb.ClientOptions()
	o := Options{BaseURL: c.BaseURL, TenantID: c.TenantID, AppID: c.ClientID, Secret: c.ClientSecret,
		CallbackURL: sb.CallbackURL, Prompts: served, Voice: s.voices.speak, User: bottest.AliceID,
		Subject: "Support call", Admit: true, Out: s.out, Logger: bottest.Logger(t, false)}
	if edit != nil {
		edit(&o)
	}
	bot, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	promptSrv.Config.Handler = served
	promptSrv.Start()
	t.Cleanup(promptSrv.Close)
	sb.Serve(bot.Handler())
	t.Cleanup(func() { _ = bot.Handler().Shutdown(context.Background()) })
	ctx, cancel := context.WithCancel(t.Context())
	s.cancel = cancel
	go func() {
		rep, err := bot.Run(ctx)
		s.done <- runResult{rep, err}
	}()
	return s
}

// meeting is the meeting as a person learns it from what the bot printed:
// the conference id to key in at the dial-in number.
func (s *simRun) meeting(t *testing.T) *graph.OnlineMeeting {
	t.Helper()
	conf := s.out.details(t, "Support call")
	return &graph.OnlineMeeting{AudioConferencing: &graph.AudioConferencing{ConferenceID: conf, TollNumber: bottest.TollNumber}}
}

// hears waits until a simulated caller has heard freq for 400 ms or more:
// a 1.5 s pattern is sound about half the time. Audio is told by its
// frequency frame by frame, which frames a loaded machine drops do not
// upset.
func hears(t *testing.T, c *bottest.Caller, freq float64) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	poll := time.NewTicker(50 * time.Millisecond) // heard audio signals no change
	defer poll.Stop()
	for heardFor(c.Heard(), freq) < 400*time.Millisecond {
		select {
		case <-poll.C:
		case <-deadline.C:
			t.Fatalf("%s heard %.0f Hz for only %s", c.State().User, freq, heardFor(c.Heard(), freq))
		}
	}
}

func (s *simRun) result(t *testing.T) Report {
	t.Helper()
	select {
	case res := <-s.done:
		if res.err != nil {
			t.Fatal(res.err)
		}
		return res.rep
	case <-time.After(20 * time.Second):
		t.Fatal("Run did not return")
	}
	return Report{}
}

// The sample tested as a bot author would in CI, with no phone: Bob and
// Carol dial in with the conference id the bot printed, wait in the lobby,
// are admitted and greeted; each hears their greeting, Bob hears Carol's
// and what she says. Ctrl-C ends it: the bot leaves (they stay) and
// reports their time in the meeting and in the lobby
// (go test ./examples/meetingbot -run Simulated).
func TestMeetingBotWithSimulatedUsers(t *testing.T) {
	s := startSimulated(t, nil)
	m := s.meeting(t)

	bob := s.sb.JoinMeeting(t, "Bob", m)
	s.out.WaitLine(t, "lobby", "Bob")
	s.out.WaitLine(t, "admitted", "Bob")
	s.out.WaitLine(t, "greeted", "Bob")
	hears(t, bob, s.voices.of("Bob").freq)

	carol := s.sb.JoinMeeting(t, "Carol", m)
	s.out.WaitLine(t, "greeted", "Carol")
	hears(t, carol, s.voices.of("Carol").freq)
	hears(t, bob, s.voices.of("Carol").freq) // everyone hears a greeting
	const carolTone = 1400                   // what Carol says
	carol.SayPCM(calltest.Pattern(carolTone, 1.5, 91))
	hears(t, bob, carolTone)

	s.cancel() // Ctrl-C
	rep := s.result(t)
	for _, name := range []string{"Bob", "Carol"} {
		a, ok := rep.Find(name)
		if !ok || a.Kind != "phone" || a.Joins != 1 || a.InMeeting <= 0 || a.InLobby <= 0 {
			t.Errorf("%s in the report: %+v (found %v), want a phone that waited in the lobby and came in once", name, a, ok)
		}
	}
	if st := bob.State().State; st != "connected" {
		t.Errorf("Bob's call is %s after the bot left: people stay in the meeting", st)
	}
	bob.HangUp()
	carol.HangUp()
}

// With -admit=false the bot lets nobody in: Bob waits in the lobby. Alice,
// invited, comes straight in and is greeted; when she hangs up the bot is
// alone (Bob, in the lobby, does not count) and leaves by itself.
func TestMeetingBotWithoutAdmitEndsWhenTheLastOneLeaves(t *testing.T) {
	s := startSimulated(t, func(o *Options) {
		o.Admit = false
		o.Invite = []string{bottest.AliceID}
	})
	m := s.meeting(t)
	alice := s.sb.WaitCalled(t, "Alice")
	alice.WaitConnected()
	s.out.WaitLine(t, "greeted", "Alice")
	bob := s.sb.JoinMeeting(t, "Bob", m)
	s.out.WaitLine(t, "lobby", "Bob")

	alice.HangUp()
	rep := s.result(t) // no Ctrl-C: the bot left when Alice did
	if a, ok := rep.Find("Alice"); !ok || a.Kind != "user" || a.Joins != 1 || a.InLobby != 0 {
		t.Errorf("Alice in the report: %+v (%v)", a, ok)
	}
	if a, ok := rep.Find("Bob"); !ok || a.Joins != 0 || a.InMeeting != 0 || a.InLobby <= 0 {
		t.Errorf("Bob in the report: %+v (%v), want only lobby time", a, ok)
	}
	if strings.Contains(s.out.String(), "admitted") {
		t.Errorf("the bot admitted someone with Admit off:\n%s", s.out)
	}
	bob.HangUp()
}
