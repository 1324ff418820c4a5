package main

import (
	"fmt"
	"io"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/bottest"
	"github.com/switchboard-voice/switchboard/examples/internal/prompts"
	"github.com/switchboard-voice/switchboard/internal/calltest"
)

// The sample tested as a bot author would in CI, with no phone: Alice and
// Bob (simulated) join, Dave is invited (-invite) and joins, each is
// announced, the others hear what Alice says through the conference, and
// commands typed on the sample's input mute Bob, remove Alice and hang up
// (go test ./examples/groupcall -run Simulated).
func TestGroupCallWithSimulatedUsers(t *testing.T) {
	const daveID = "5e000000-0000-4000-8000-000000000001" // bottest's id for the first extra user
	sb := bottest.Start(t, bottest.Options{Users: []bottest.User{{DisplayName: "Dave"}}})
	promptSrv := httptest.NewUnstartedServer(nil)
	served := prompts.NewServer("http://" + promptSrv.Listener.Addr().String())
	out, voices := newOutput(), &voices{}
	o := sb.ClientOptions()
	bot, err := New(Options{BaseURL: o.BaseURL, TenantID: o.TenantID, AppID: o.ClientID, Secret: o.ClientSecret,
		CallbackURL: sb.CallbackURL, Prompts: served, Voice: voices.speak, Out: out, Logger: bottest.Logger(t, false),
		Invite: []string{daveID}}) // at once: InviteAfter is zero
	if err != nil {
		t.Fatal(err)
	}
	promptSrv.Config.Handler = served
	promptSrv.Start()
	defer promptSrv.Close()
	sb.Serve(bot.Handler())

	commands, typed := io.Pipe() // the sample's standard input
	t.Cleanup(func() { _ = typed.Close() })
	type result struct {
		rep Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := bot.Run(t.Context(), []string{bottest.AliceID, bottest.BobID, bottest.CarolID}, commands)
		done <- result{rep, err}
	}()
	typeLine := func(line string) {
		t.Helper()
		if _, err := fmt.Fprintln(typed, line); err != nil {
			t.Fatal(err)
		}
	}

	alice, bob, dave := sb.WaitCalled(t, "Alice"), sb.WaitCalled(t, "Bob"), sb.WaitCalled(t, "Dave")
	for _, c := range []*bottest.Caller{alice, bob, dave} {
		c.WaitConnected()
	}
	out.waitRoster(t, "Alice", "Bob", "Dave")
	for _, c := range []*bottest.Caller{alice, bob, dave} {
		name := c.State().User
		out.WaitLine(t, "announced", name)
		c.WaitHeardPCM(voices.of(name).pcm) // each heard their own arrival at least
	}

	hello := calltest.Pattern(700, 1.5, 81)
	alice.SayPCM(hello)
	bob.WaitHeardPCM(hello)
	dave.WaitHeardPCM(hello)

	typeLine("dance")
	out.Wait(t, "an error line", func(ev, detail string) bool { return ev == "error" && strings.Contains(detail, "unknown command") })
	typeLine("mute Bob")
	out.waitRoster(t, "Alice", "Bob (muted)", "Dave")
	typeLine("remove alice")
	alice.WaitEnded()
	out.WaitLine(t, "removed", "Alice")
	typeLine("hangup")
	var res result
	select {
	case res = <-done:
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after hangup")
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	bob.WaitEnded()
	dave.WaitEnded()
	check(t, res.rep, []want{
		{"Alice", Removed, false, false, ""},
		{"Bob", Joined, true, false, ""},
		{"Carol", Busy, false, false, "486/9005 The callee is busy."},
		{"Dave", Joined, false, true, ""},
	})
}
