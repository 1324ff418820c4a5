package main

import (
	"context"
	"fmt"
	"github.com/switchboard-voice/switchboard/examples/internal/lines"
	"math"
	"net/http/httptest"
	"path/filepath"
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
)

// Users the tests add to calltest's directory.
const (
	doraID = "d0000000-0000-4000-8000-0000000000d1" // declines
	finnID = "f0000000-0000-4000-8000-0000000000f1" // answers
)

// Who is heard at which frequency. Every source has a tone of its own,
// at least 120 Hz from the others, so that a listener's audio tells who it
// heard frame by frame (Goertzel), however the mix and a loaded machine's
// media path lay the frames out.
const (
	eveTone   = 1750 // baresip (Eve) says it all call long: a quiet steady tone
	aliceTone = 1400 // what Alice says: a tone pattern
	bobTone   = 2300
	// The announcements are tone patterns from voiceTone up, voiceStep apart.
	voiceTone = 400
	voiceStep = 130
)

// output is what the bot printed (lines.Log), with this sample's own
// readings of it.
type output struct{ *lines.Log }

func newOutput() *output { return &output{lines.New()} }

// waitRoster waits for a roster line naming exactly names, in any order.
func (o *output) waitRoster(t *testing.T, names ...string) {
	t.Helper()
	slices.Sort(names)
	o.Wait(t, fmt.Sprintf("the roster %v", names), func(ev, detail string) bool {
		got := strings.Split(detail, ", ")
		slices.Sort(got)
		return ev == "roster" && slices.Equal(got, names)
	})
}

// joinOrder is who joined, in the order the bot printed it.
func (o *output) joinOrder() []string { return o.Details("joined") }

// voices stands in for espeak-ng: each announcement is a tone pattern at
// a frequency of its own, so the test can tell which one a phone heard.
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

// of is the announcement of name's arrival.
func (v *voices) of(name string) voice {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.voice[spoken(name)+" joined."]
}

// rig is a node with the sample bot on it, its prompts served, and a
// registered baresip as Eve, who hangs up after talking for eveTalks.
type rig struct {
	p      *calltest.Platform
	bot    *Bot
	out    *output
	voices *voices
	eve    *calltest.Baresip
}

func start(t *testing.T, hold, eveTalks time.Duration) *rig {
	t.Helper()
	calltest.NeedPeer(t, "baresip", "baresip")
	hook := httptest.NewUnstartedServer(nil)
	t.Cleanup(hook.Close)
	hookURL := "http://" + hook.Listener.Addr().String()
	promptSrv := httptest.NewUnstartedServer(nil)
	t.Cleanup(promptSrv.Close)
	served := prompts.NewServer("http://" + promptSrv.Listener.Addr().String())
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		c.Applications[0].CallbackURI = hookURL + "/callback"
		c.Simulator.Audio = true // the simulated users have handsets: they speak and hear
		fast := config.Simulation{RingAfter: config.Duration(20 * time.Millisecond), AnswerAfter: config.Duration(100 * time.Millisecond)}
		decline := fast
		decline.Answer = "decline"
		c.Tenants[0].Users = append(c.Tenants[0].Users,
			config.User{ID: doraID, DisplayName: "Dora", Simulated: true, Simulation: decline},
			config.User{ID: finnID, DisplayName: "Finn", Simulated: true, Simulation: fast})
	}})
	r := &rig{p: p, out: newOutput(), voices: &voices{}}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the bot printed:\n%s", r.out)
		}
	})
	var err error
	r.bot, err = New(Options{BaseURL: p.URL + "/v1.0", TenantID: calltest.TenantID, AppID: calltest.BotID, Secret: calltest.Secret,
		CallbackURL: hookURL + "/callback", Prompts: served, Voice: r.voices.speak, Hold: hold, Out: r.out,
		Logger: bottest.Logger(t, false)})
	if err != nil {
		t.Fatal(err)
	}
	hook.Config.Handler = r.bot.Handler()
	promptSrv.Config.Handler = served
	hook.Start()
	promptSrv.Start()
	t.Cleanup(func() { _ = r.bot.Handler().Shutdown(context.Background()) })

	src := filepath.Join(t.TempDir(), "eve.wav")
	if err := calltest.WriteWAV(src, tone(eveTone, 2500, eveTalks), 8000); err != nil {
		t.Fatal(err)
	}
	r.eve = calltest.StartBaresip(t, calltest.BaresipOptions{User: "eve", Password: calltest.EvePassword,
		Registrar: p.Node.SIP.Addr().String(), Source: src})
	return r
}

// handset is a simulated user's leg in the group call.
func (r *rig) handset(t *testing.T, callID, userID string) *simulated.Leg {
	t.Helper()
	for _, l := range r.p.Node.Sim.Legs("") {
		st := l.State()
		if st.UserID == userID && strings.HasPrefix(st.CallID, callID) && st.State == "connected" {
			return l
		}
	}
	t.Fatalf("no connected leg of %s in call %s", userID, callID)
	return nil
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
		case <-l.Changed():
		case <-poll.C:
		case <-deadline.C:
			t.Fatalf("%s heard %.0f Hz for only %s, want %s", l.State().User, freq, heardFor(l.Heard(), freq), d)
		}
	}
}

// The README's group call end to end: one group call with a real
// softphone (baresip as Eve), two simulated users and Carol, who is busy.
// The bot announces each arrival and prints the roster; Eve hears the
// announcements and what Alice and Bob say, and they hear her. Dora is
// invited and declines, Finn is invited and joins; Bob is muted, Alice
// removed. The report says who joined and why the others did not.
func TestGroupCallAnnouncesAndTracksTheRoster(t *testing.T) {
	r := start(t, 0, time.Minute)
	ctx := t.Context()
	g, err := r.bot.Start(ctx, []string{calltest.EveID, calltest.AliceID, calltest.BobID, calltest.CarolID})
	if err != nil {
		t.Fatal(err)
	}
	r.out.waitRoster(t, "Eve", "Alice", "Bob")
	for _, who := range []string{"Eve", "Alice", "Bob"} {
		r.out.WaitLine(t, "announced", who)
	}

	// Alice and Bob speak in turn; each hears the other.
	alice, bob := r.handset(t, g.CallID(), calltest.AliceID), r.handset(t, g.CallID(), calltest.BobID)
	// A 2 s pattern is sound about half the time.
	if err := alice.Say(calltest.Pattern(aliceTone, 2, 71)); err != nil {
		t.Fatal(err)
	}
	waitHeard(t, bob, aliceTone, 500*time.Millisecond)
	if err := bob.Say(calltest.Pattern(bobTone, 2, 72)); err != nil {
		t.Fatal(err)
	}
	waitHeard(t, alice, bobTone, 500*time.Millisecond)
	if d := heardFor(alice.Heard(), aliceTone); d > 0 {
		t.Errorf("Alice heard herself for %s: the conference sent her own voice back", d)
	}

	// Invitations: Dora declines (the reason is hers), Finn joins.
	if err := g.Do(ctx, "invite "+doraID); err != nil {
		t.Fatal(err)
	}
	r.out.WaitLine(t, "notJoined", "Dora: declined (603/9006 The callee declined the call.)")
	if err := g.Do(ctx, "invite "+finnID); err != nil {
		t.Fatal(err)
	}
	r.out.waitRoster(t, "Eve", "Alice", "Bob", "Finn")
	r.out.WaitLine(t, "announced", "Finn")

	// Mute Bob, remove Alice.
	if err := g.Do(ctx, "mute bob"); err != nil {
		t.Fatal(err)
	}
	r.out.WaitLine(t, "muted", "Bob")
	r.out.waitRoster(t, "Eve", "Alice", "Bob (muted)", "Finn")
	if err := g.Do(ctx, "remove Alice"); err != nil {
		t.Fatal(err)
	}
	r.out.WaitLine(t, "removed", "Alice")
	r.out.waitRoster(t, "Eve", "Bob (muted)", "Finn")
	if !waitEnded(t, alice) {
		t.Errorf("Alice's phone was not hung up when she was removed: %+v", alice.State())
	}
	if err := g.Do(ctx, "mute nobody"); err == nil {
		t.Error("muting someone not in the call succeeded")
	}

	rep, err := g.HangUp(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var table strings.Builder
	_ = rep.Write(&table)
	t.Logf("printed:\n%s\nreport:\n%s", r.out.String(), table.String())
	check(t, rep, []want{
		{"Eve", Joined, false, false, ""},
		{"Alice", Removed, false, false, ""},
		{"Bob", Joined, true, false, ""},
		{"Carol", Busy, false, false, "486/9005 The callee is busy."},
		{"Dora", Declined, false, true, "603/9006 The callee declined the call."},
		{"Finn", Joined, false, true, ""},
	})

	// What Eve's phone heard: her own announcement and those of everyone
	// who joined after her (a 1.6 s pattern is sound about half the time),
	// and what Alice and Bob said.
	r.eve.WaitOutput(t, "terminated", 10*time.Second)
	heard := r.eve.Heard(t)
	order := r.out.joinOrder()
	for _, who := range order[slices.Index(order, "Eve"):] {
		if d := heardFor(heard, r.voices.of(who).freq); d < 400*time.Millisecond {
			t.Errorf("Eve heard %q joined for %s, want 400ms or more", who, d)
		}
	}
	for who, freq := range map[string]float64{"Alice": aliceTone, "Bob": bobTone} {
		if d := heardFor(heard, freq); d < 500*time.Millisecond {
			t.Errorf("Eve heard %s for %s, want 500ms or more", who, d)
		}
	}
	// And the simulated users heard Eve.
	for _, l := range []*simulated.Leg{alice, bob} {
		if d := heardFor(l.Heard(), eveTone); d < time.Second {
			t.Errorf("%s heard Eve's tone for %s, want a second or more", l.State().User, d)
		}
	}
}

// waitEnded waits for a simulated leg to end.
func waitEnded(t *testing.T, l *simulated.Leg) bool {
	t.Helper()
	deadline := time.NewTimer(10 * time.Second)
	defer deadline.Stop()
	for l.State().State != "ended" {
		select {
		case <-l.Changed():
		case <-deadline.C:
			return false
		}
	}
	return true
}

// When everyone who joined has left, the call is over: Run returns long
// before the hold would have ended.
func TestGroupCallEndsWhenEveryoneHasLeft(t *testing.T) {
	r := start(t, time.Minute, 2*time.Second) // baresip hangs up when its source ends
	type result struct {
		rep Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := r.bot.Run(t.Context(), []string{calltest.EveID, calltest.CarolID}, nil)
		done <- result{rep, err}
	}()
	r.out.WaitLine(t, "joined", "Eve")
	var res result
	select {
	case res = <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("the group call went on after everyone had left")
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	r.out.WaitLine(t, "left", "Eve")
	check(t, res.rep, []want{
		{"Eve", Left, false, false, ""},
		{"Carol", Busy, false, false, "486/9005 The callee is busy."},
	})
}

type want struct {
	name    string
	outcome Outcome
	muted   bool
	invited bool
	reason  string
}

func check(t *testing.T, rep Report, want []want) {
	t.Helper()
	if len(rep.Members) != len(want) {
		t.Fatalf("%d members in the report, want %d: %+v", len(rep.Members), len(want), rep.Members)
	}
	for i, w := range want {
		m := rep.Members[i]
		if m.Name != w.name || m.Outcome != w.outcome || m.Muted != w.muted || m.Invited != w.invited || m.Reason() != w.reason {
			t.Errorf("member %d: %s %s muted=%v invited=%v %q, want %+v", i, m.Name, m.Outcome, m.Muted, m.Invited, m.Reason(), w)
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
// normalised by the frame's energy), so that two people talking at once
// are both heard, and a quiet steady tone under someone's voice is not.
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
