package main

import (
	"context"
	"github.com/switchboard-voice/switchboard/examples/internal/lines"
	"math"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/bottest"
	"github.com/switchboard-voice/switchboard/examples/internal/prompts"
	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/simulated"
	"github.com/switchboard-voice/switchboard/sdk"
)

// Who is heard at which frequency: every source has a tone of its own,
// at least 120 Hz from the others, so that a listener's audio tells what it
// heard frame by frame (Goertzel), however a loaded machine's media path
// lays the frames out.
const (
	eveTone = 1750 // baresip (Eve) says it all call long: a quiet steady tone
	// The greetings are tone patterns from voiceTone up, voiceStep apart.
	voiceTone = 400
	voiceStep = 130
	tollNum   = "+15550150"
)

// output is what the bot printed (lines.Log), with this sample's own
// readings of it.
type output struct{ *lines.Log }

func newOutput() *output { return &output{lines.New()} }

// greeted is who was greeted, in order.
func (o *output) greeted() []string { return o.Details("greeted") }

var conferenceRE = regexp.MustCompile(`conference id ([0-9 ]+)#`)

// details waits for the meeting's details and returns its conference id as
// one keys it in, checking what else the bot printed of the meeting.
func (o *output) details(t *testing.T, subject string) string {
	t.Helper()
	if got := o.WaitEvent(t, "meeting"); got != subject {
		t.Errorf("meeting %q, want %q", got, subject)
	}
	link := o.WaitEvent(t, "link")
	if info, err := sdk.ParseJoinURL(link); err != nil || info.OrganizerID == "" {
		t.Errorf("the printed link %q is not a join link: %v", link, err)
	}
	dial := o.WaitEvent(t, "dial-in")
	m := conferenceRE.FindStringSubmatch(dial)
	if !strings.HasPrefix(dial, tollNum+", ") || m == nil {
		t.Fatalf("dial-in %q, want the dial-in number and a conference id", dial)
	}
	if id := o.WaitEvent(t, "meeting-id"); len(strings.ReplaceAll(id, " ", "")) != 12 {
		t.Errorf("meeting-id %q, want 12 digits", id)
	}
	return strings.ReplaceAll(m[1], " ", "")
}

// voices stands in for espeak-ng: each greeting is a tone pattern at a
// frequency of its own, so the test can tell which one a phone heard.
type voices struct {
	mu    sync.Mutex
	voice map[string]voice // by text
}

type voice struct {
	pcm  []int16
	freq float64
}

func (v *voices) speak(text string) []byte {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.voice == nil {
		v.voice = map[string]voice{}
	}
	vc, ok := v.voice[text]
	if !ok {
		n := len(v.voice) + 1
		vc.freq = float64(voiceTone + voiceStep*n)
		vc.pcm = calltest.Pattern(vc.freq, 1.6, 50+n)
		v.voice[text] = vc
	}
	return calltest.WAV(vc.pcm, 8000)
}

// of is the greeting of name.
func (v *voices) of(name string) voice {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.voice["Hello "+name+"."]
}

// The README's meeting end to end. The bot creates a Meet Now meeting for
// Alice and prints how to join; it invites Bob, who comes straight in.
// Eve's real phone (baresip) calls the meeting's SIP URI and Alice's
// simulated phone the dial-in number, keying the conference id: both
// wait in the lobby until the bot admits them. Each is greeted by name,
// and everyone in the meeting hears the greetings; Bob hears Eve. When
// the last of them hangs up the bot leaves and reports each one's time in
// the meeting and in the lobby, and that Eve, who talked all along, was
// heard most.
func TestMeetingBotGreetsAdmitsAndReports(t *testing.T) {
	calltest.NeedPeer(t, "baresip", "baresip")
	hook := httptest.NewUnstartedServer(nil)
	t.Cleanup(hook.Close)
	hookURL := "http://" + hook.Listener.Addr().String()
	promptSrv := httptest.NewUnstartedServer(nil)
	t.Cleanup(promptSrv.Close)
	served := prompts.NewServer("http://" + promptSrv.Listener.Addr().String())
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		c.Applications[0].CallbackURI = hookURL + "/callback"
		c.Applications[0].Permissions = append(c.Applications[0].Permissions, "OnlineMeetings.ReadWrite.All")
		c.Tenants[0].Conferencing.TollNumber = tollNum
		c.Simulator.Audio = true // the simulated users have handsets: they hear
	}})
	out, vs := newOutput(), &voices{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the bot printed:\n%s", out)
		}
	})
	bot, err := New(Options{BaseURL: p.URL + "/v1.0", TenantID: calltest.TenantID, AppID: calltest.BotID, Secret: calltest.Secret,
		CallbackURL: hookURL + "/callback", Prompts: served, Voice: vs.speak, User: calltest.AliceID, Subject: "Incident review",
		Admit: true, Invite: []string{calltest.BobID}, Out: out, Logger: bottest.Logger(t, false)})
	if err != nil {
		t.Fatal(err)
	}
	hook.Config.Handler = bot.Handler()
	promptSrv.Config.Handler = served
	hook.Start()
	promptSrv.Start()
	t.Cleanup(func() { _ = bot.Handler().Shutdown(context.Background()) })

	src := filepath.Join(t.TempDir(), "eve.wav")
	if err := calltest.WriteWAV(src, tone(eveTone, 2500, time.Minute), 8000); err != nil {
		t.Fatal(err)
	}
	eve := calltest.StartBaresip(t, calltest.BaresipOptions{User: "eve", Password: calltest.EvePassword,
		Registrar: p.Node.SIP.Addr().String(), Source: src})

	type result struct {
		rep Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := bot.Run(t.Context())
		done <- result{rep, err}
	}()
	conf := out.details(t, "Incident review")

	// Bob, invited, comes straight in.
	out.WaitLine(t, "invited", "Bob")
	out.WaitLine(t, "greeted", "Bob")
	bob := handset(t, p, calltest.BobID)

	// Eve calls the meeting's own SIP URI: the lobby, then admitted.
	eve.Command(t, "dial", "sip:meeting-"+conf+"@"+p.Node.SIP.Addr().String())
	out.WaitLine(t, "lobby", "Eve")
	out.WaitLine(t, "admitted", "Eve")
	out.WaitLine(t, "greeted", "Eve")

	// Alice dials the dial-in number and keys the conference id.
	alice, err := p.Node.Sim.DialIn(t.Context(), simulated.CallOptions{From: calltest.AliceID, To: tollNum})
	if err != nil {
		t.Fatal(err)
	}
	waitLeg(t, alice, "the dial-in prompt", func(s simulated.LegState) bool { return s.PromptsHeard > 0 })
	if err := alice.PressKeys(conf+"#", 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	out.WaitLine(t, "lobby", "Alice")
	out.WaitLine(t, "admitted", "Alice")
	out.WaitLine(t, "greeted", "Alice")

	// Everyone heard their own greeting and those of who came after them;
	// Bob heard Eve. A 1.6 s pattern is sound about half the time.
	order := out.greeted()
	if !slices.Equal(order, []string{"Bob", "Eve", "Alice"}) {
		t.Fatalf("greeted %v, want Bob, Eve, Alice", order)
	}
	for _, l := range map[string]*simulated.Leg{"Bob": bob, "Alice": alice} {
		who := l.State().User
		for _, g := range order[slices.Index(order, who):] {
			waitHeard(t, l, vs.of(g).freq, 400*time.Millisecond)
		}
	}
	waitHeard(t, bob, eveTone, time.Second)

	// They hang up, the last one ends the meeting for the bot.
	alice.HangUpNow()
	out.WaitLine(t, "left", "Alice")
	bob.HangUpNow()
	out.WaitLine(t, "left", "Bob")
	eve.Command(t, "hangup", "")
	out.WaitLine(t, "left", "Eve")
	var res result
	select {
	case res = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the bot stayed after everyone had left")
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	var table strings.Builder
	_ = res.rep.Write(&table)
	t.Logf("printed:\n%s\nreport:\n%s", out, table.String())
	for _, w := range []struct {
		name, kind string
		lobby      bool
	}{{"Bob", "user", false}, {"Eve", "user", true}, {"Alice", "phone", true}} {
		a, ok := res.rep.Find(w.name)
		if !ok || a.Kind != w.kind || a.Joins != 1 || a.InMeeting < time.Second || (a.InLobby > 0) != w.lobby {
			t.Errorf("%s in the report: %+v (found %v), want kind %s, one join, a second or more in the meeting, lobby %v", w.name, a, ok, w.kind, w.lobby)
		}
	}
	if len(res.rep.Attendees) != 3 {
		t.Errorf("%d attendees in the report, want 3: %+v", len(res.rep.Attendees), res.rep.Attendees)
	}
	// Eve talked all along, the others never: she was heard most.
	if a, ok := res.rep.MostHeard(); !ok || a.Name != "Eve" {
		t.Errorf("heard most: %+v (%v), want Eve", a, ok)
	}

	// What Eve's phone heard: her greeting and Alice's.
	eve.WaitOutput(t, "terminated", 10*time.Second)
	heard := eve.Heard(t)
	for _, g := range []string{"Eve", "Alice"} {
		if d := heardFor(heard, vs.of(g).freq); d < 400*time.Millisecond {
			t.Errorf("Eve heard Hello %s for %s, want 400ms or more", g, d)
		}
	}
}

// handset is a simulated user's leg, connected, in the meeting.
func handset(t *testing.T, p *calltest.Platform, userID string) *simulated.Leg {
	t.Helper()
	for _, l := range p.Node.Sim.Legs("") {
		if st := l.State(); st.UserID == userID && st.State == "connected" {
			return l
		}
	}
	t.Fatalf("no connected leg of %s", userID)
	return nil
}

// waitLeg waits until a simulated leg's state satisfies ok.
func waitLeg(t *testing.T, l *simulated.Leg, what string, ok func(simulated.LegState) bool) {
	t.Helper()
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	poll := time.NewTicker(50 * time.Millisecond) // a prompt's start signals no change
	defer poll.Stop()
	for !ok(l.State()) {
		select {
		case <-l.Changed():
		case <-poll.C:
		case <-deadline.C:
			t.Fatalf("%s: waited for %s: %+v", l.State().User, what, l.State())
		}
	}
}

// waitHeard waits until a simulated user has heard freq for at least d.
func waitHeard(t *testing.T, l *simulated.Leg, freq float64, d time.Duration) {
	t.Helper()
	deadline := time.NewTimer(20 * time.Second)
	defer deadline.Stop()
	poll := time.NewTicker(50 * time.Millisecond) // heard audio signals no change
	defer poll.Stop()
	for heardFor(l.Heard(), freq) < d {
		select {
		case <-poll.C:
		case <-deadline.C:
			t.Fatalf("%s heard %.0f Hz for only %s, want %s", l.State().User, freq, heardFor(l.Heard(), freq), d)
		}
	}
}

// tone is a steady sine at freq, 8 kHz.
func tone(freq, amplitude float64, d time.Duration) []int16 {
	pcm := make([]int16, int(d.Seconds()*8000))
	for i := range pcm {
		pcm[i] = int16(amplitude * math.Sin(2*math.Pi*freq*float64(i)/8000))
	}
	return pcm
}

// heardFor is how long pcm (8 kHz) has sound at freq: its 20 ms frames
// that are not quiet and have a good part of their energy there (Goertzel,
// normalised by the frame's energy), so that a greeting is heard under
// someone's voice, and a quiet steady tone under a greeting is not
// mistaken for it.
func heardFor(pcm []int16, freq float64) time.Duration {
	const n = 160
	k := 2 * math.Cos(2*math.Pi*freq/8000)
	frames := 0
	for i := 0; i+n <= len(pcm); i += n {
		var s1, s2, energy float64
		for _, v := range pcm[i : i+n] {
			x := float64(v)
			s1, s2 = x+k*s1-s2, s1
			energy += x * x
		}
		if energy/n < 500*500 {
			continue
		}
		if 2*(s1*s1+s2*s2-k*s1*s2)/(n*energy) > 0.3 {
			frames++
		}
	}
	return time.Duration(frames) * 20 * time.Millisecond
}
