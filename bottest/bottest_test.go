package bottest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/bottest"
	"github.com/switchboard-voice/switchboard/sdk"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// pattern is 8 kHz PCM of a tone switched on and off irregularly, so its
// envelope is unmistakable (a stand-in for speech).
func pattern(freq float64, seconds float64, seed int) []int16 {
	pcm := make([]int16, int(seconds*8000))
	on, left := true, 0
	for i := range pcm {
		if left == 0 {
			seed = (seed*1103515245 + 12345) & 0x7fffffff
			left = 800 + seed%2400 // 100–400 ms
			on = !on
		}
		left--
		if on {
			pcm[i] = int16(8000 * math.Sin(2*math.Pi*freq*float64(i)/8000))
		}
	}
	return pcm
}

// menuBot answers, plays a menu and, on 1, records a message (kept in
// messages) and thanks the caller. Its prompts are served by prompts.
type menuBot struct {
	h       *sdk.Handler
	prompts string

	mu       sync.Mutex
	messages [][]int16
	tones    []graph.Tone
}

func newMenuBot(t *testing.T, sb *bottest.Switchboard, prompts string) *menuBot {
	client, err := sdk.NewClient(sb.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	h, err := sdk.NewHandler(sdk.HandlerOptions{Client: client, CallbackURL: sb.CallbackURL})
	if err != nil {
		t.Fatal(err)
	}
	b := &menuBot{h: h, prompts: prompts}
	h.OnIncomingCall(b.incoming)
	return b
}

func (b *menuBot) incoming(ctx context.Context, call *sdk.Call) {
	defer call.HangUp(context.Background())
	if call.Answer(ctx, nil) != nil || call.WaitState(ctx, graph.StateEstablished) != nil {
		return
	}
	if _, err := call.SubscribeToTone(ctx); err != nil {
		return
	}
	if op, err := call.PlayPrompt(ctx, b.prompts+"/menu.wav"); err != nil || b.await(ctx, call, op) != nil {
		return
	}
	var tone graph.ToneInfo
	select {
	case tone = <-call.Tones():
	case <-call.Done():
		return
	case <-time.After(10 * time.Second):
		return
	}
	b.mu.Lock()
	b.tones = append(b.tones, tone.Tone)
	b.mu.Unlock()
	if tone.Tone != graph.Tone1 {
		return
	}
	silence, most := 1, 10
	op, err := call.RecordResponse(ctx, &graph.RecordResponseRequest{MaxSilenceTimeoutInSeconds: &silence, MaxRecordDurationInSeconds: &most})
	if err != nil {
		return
	}
	done, err := call.Await(ctx, op)
	if err != nil || done.RecordingLocation == nil || done.RecordingAccessToken == nil {
		return
	}
	body, err := call.Client().DownloadRecording(ctx, *done.RecordingLocation, *done.RecordingAccessToken)
	if err != nil {
		return
	}
	wav, _ := io.ReadAll(body)
	body.Close()
	if pcm, err := bottest.DecodeWAV(wav); err == nil {
		b.mu.Lock()
		b.messages = append(b.messages, pcm)
		b.mu.Unlock()
	}
	if op, err := call.PlayPrompt(ctx, b.prompts+"/thanks.wav"); err == nil {
		_ = b.await(ctx, call, op)
	}
}

func (b *menuBot) await(ctx context.Context, call *sdk.Call, op *graph.Operation) error {
	_, err := call.Await(ctx, op)
	return err
}

func servePrompts(t *testing.T, files map[string][]int16) string {
	mux := http.NewServeMux()
	for name, pcm := range files {
		wav := bottest.EncodeWAV(pcm)
		mux.HandleFunc("GET /"+name, func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "audio/wav")
			_, _ = w.Write(wav)
		})
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv.URL
}

// The README's "test your bot in CI", in full: a simulated caller hears
// the menu as audio, presses 1, leaves a message the bot records, and hears
// the thanks.
func TestCallerHearsMenuPressesKeyAndIsRecorded(t *testing.T) {
	menu, thanks, speech := pattern(440, 2, 1), pattern(660, 1.5, 2), pattern(300, 2.5, 3)
	sb := bottest.Start(t)
	bot := newMenuBot(t, sb, servePrompts(t, map[string][]int16{"menu.wav": menu, "thanks.wav": thanks}))
	sb.Serve(bot.h)

	alice := sb.Call(t, "Alice")
	alice.WaitConnected()
	alice.WaitHeardPCM(menu)
	alice.Press("1")
	alice.WaitBeep()
	alice.SayPCM(speech)
	alice.WaitHeardPCM(thanks)
	end := alice.WaitEnded()
	if end.State != "ended" {
		t.Fatalf("leg: %+v", end)
	}

	bot.mu.Lock()
	defer bot.mu.Unlock()
	if len(bot.tones) != 1 || bot.tones[0] != graph.Tone1 {
		t.Errorf("the bot saw tones %v, want [1]", bot.tones)
	}
	if len(bot.messages) != 1 {
		t.Fatalf("the bot recorded %d messages, want 1", len(bot.messages))
	}
	if s := bottest.Similarity(bot.messages[0], speech); s < 0.8 {
		t.Errorf("the recording resembles what Alice said by %.2f, want ≥ 0.8", s)
	}
	if s := bottest.Similarity(alice.Heard(), speech); s >= 0.8 {
		t.Errorf("Alice heard her own speech (similarity %.2f): media is looped back", s)
	}
}

// A bot's outgoing calls reach simulated users: Bob answers, hears the
// prompt and the tones the bot sends; Carol is busy.
func TestBotCallsUsers(t *testing.T) {
	hello := pattern(520, 1.5, 4)
	sb := bottest.Start(t, bottest.Options{Users: []bottest.User{{DisplayName: "Dave", Answer: "decline"}}})
	prompts := servePrompts(t, map[string][]int16{"hello.wav": hello})
	client, err := sdk.NewClient(sb.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	h, err := sdk.NewHandler(sdk.HandlerOptions{Client: client, CallbackURL: sb.CallbackURL})
	if err != nil {
		t.Fatal(err)
	}
	sb.Serve(h)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	call, err := h.CreateCall(ctx, sdk.NewCall(sdk.UserTarget(bottest.BobID, "Bob")))
	if err != nil {
		t.Fatal(err)
	}
	bob := sb.WaitCalled(t, "Bob")
	bob.WaitConnected()
	if err := call.WaitState(ctx, graph.StateEstablished); err != nil {
		t.Fatal(err)
	}
	op, err := call.PlayPrompt(ctx, prompts+"/hello.wav")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := call.Await(ctx, op); err != nil {
		t.Fatal(err)
	}
	bob.WaitHeardPCM(hello)
	if _, err := call.SendDtmfTones(ctx, graph.Tone4, graph.Tone2); err != nil {
		t.Fatal(err)
	}
	bob.WaitTones("42")
	bob.HangUp()
	select {
	case <-call.Done():
	case <-ctx.Done():
		t.Fatal("the bot never heard Bob hang up")
	}

	for _, who := range []struct {
		name, id string
		code     int
	}{{"Carol", bottest.CarolID, 486}, {"Dave", "", 603}} {
		id := who.id
		if id == "" {
			id = "5e000000-0000-4000-8000-000000000001"
		}
		c, err := h.CreateCall(ctx, sdk.NewCall(sdk.UserTarget(id, who.name)))
		if err != nil {
			t.Fatal(err)
		}
		select {
		case <-c.Done():
		case <-ctx.Done():
			t.Fatalf("the call to %s never ended", who.name)
		}
		ri := c.Snapshot().ResultInfo
		if ri == nil || ri.Code != who.code {
			t.Errorf("%s: resultInfo %+v, want code %d", who.name, ri, who.code)
		}
	}
}

func TestSimilarity(t *testing.T) {
	speech := pattern(300, 2, 7)
	pad := make([]int16, 8000)
	heard := append(append(append([]int16(nil), pad...), speech...), pad...)
	if s := bottest.Similarity(heard, speech); s < 0.95 {
		t.Errorf("speech inside silence: %.2f", s)
	}
	if s := bottest.Similarity(heard[8000+2400:], speech); s < 0.8 {
		t.Errorf("speech whose leading silence was cut: %.2f", s)
	}
	if s := bottest.Similarity(heard, pattern(300, 2, 8)); s > 0.6 {
		t.Errorf("another pattern: %.2f", s)
	}
	tone := make([]int16, 8000)
	for i := range tone {
		tone[i] = int16(8000 * math.Sin(2*math.Pi*1000*float64(i)/8000))
	}
	withTone := append(append(append([]int16(nil), pad...), tone...), pad...)
	if s := bottest.Similarity(withTone, tone); s < 0.9 {
		t.Errorf("a steady tone: %.2f", s)
	}
	if s := bottest.Similarity(pad, tone); s > 0 {
		t.Errorf("a steady tone in silence: %.2f", s)
	}
	beep := tone[:2400] // 300 ms of 1 kHz, like the recording beep
	if n := bottest.Beeps(append(append(append([]int16(nil), speech...), beep...), pad[:800]...)); n != 1 {
		t.Errorf("speech then a beep: %d beeps", n)
	}
	if n := bottest.Beeps(append(append(append([]int16(nil), beep...), pad[:800]...), beep...)); n != 2 {
		t.Errorf("two beeps: %d", n)
	}
	if n := bottest.Beeps(append(speech, pattern(1300, 1, 9)...)); n != 0 {
		t.Errorf("no beep: %d", n)
	}
}

// The same simulated callers from outside Go: the /simulator/v1 control
// API places the call, downloads what the caller heard as WAV, presses
// keys and says a WAV.
func TestControlAPIHearsAndSpeaks(t *testing.T) {
	menu, thanks, speech := pattern(440, 2, 11), pattern(660, 1.5, 12), pattern(300, 2.5, 13)
	sb := bottest.Start(t)
	bot := newMenuBot(t, sb, servePrompts(t, map[string][]int16{"menu.wav": menu, "thanks.wav": thanks}))
	sb.Serve(bot.h)
	api := sb.URL + "/simulator/v1/calls"
	do := func(method, url, ctype string, body []byte, want int) []byte {
		t.Helper()
		req, _ := http.NewRequest(method, url, bytes.NewReader(body))
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d %s, want %d", method, url, resp.StatusCode, b, want)
		}
		return b
	}
	var leg struct {
		ID    string `json:"id"`
		Audio bool   `json:"audio"`
	}
	if err := json.Unmarshal(do("POST", api, "application/json", []byte(`{"from":"+15550100","to":"`+bottest.BotNumber+`"}`), 201), &leg); err != nil || !leg.Audio {
		t.Fatalf("leg %+v: %v", leg, err)
	}
	do("GET", api+"/"+leg.ID+"?waitFor=connected&timeout=10s", "", nil, 200)
	heard := func(ok func(pcm []int16) bool) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for {
			pcm, _ := bottest.DecodeWAV(do("GET", api+"/"+leg.ID+"/audio", "", nil, 200)) // empty at first
			if ok(pcm) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("the prompt was never heard")
			}
			<-tick.C
		}
	}
	sounds := func(want []int16) func([]int16) bool {
		return func(pcm []int16) bool { return bottest.Similarity(pcm, want) >= 0.8 }
	}
	heard(sounds(menu))
	do("POST", api+"/"+leg.ID+"/keys", "application/json", []byte(`{"keys":"1"}`), 202)
	heard(func(pcm []int16) bool { return bottest.Beeps(pcm) == 1 })
	do("POST", api+"/"+leg.ID+"/say", "audio/wav", bottest.EncodeWAV(speech), 202)
	do("POST", api+"/"+leg.ID+"/say", "audio/wav", []byte("not a wav"), 400)
	heard(sounds(thanks))
	bot.mu.Lock()
	defer bot.mu.Unlock()
	if len(bot.messages) != 1 || bottest.Similarity(bot.messages[0], speech) < 0.8 {
		t.Fatalf("the bot recorded %d messages, not what the caller said", len(bot.messages))
	}
}

// Similarity tolerates what a loaded media path does: a few frames lost
// here, a few frames of silence inserted there.
func TestSimilarityToleratesSlips(t *testing.T) {
	speech := pattern(400, 6, 17)
	slipped := append([]int16(nil), speech[:12000]...)      // 1.5 s…
	slipped = append(slipped, speech[12000+3*160:30000]...) // …3 frames lost…
	slipped = append(slipped, make([]int16, 4*160)...)      // …4 frames of silence inserted…
	slipped = append(slipped, speech[30000:]...)            // …then the rest
	if s := bottest.Similarity(slipped, speech); s < 0.8 {
		t.Errorf("slipped speech: %.2f", s)
	}
	if s := bottest.Similarity(slipped, pattern(400, 6, 18)); s > 0.6 {
		t.Errorf("another pattern: %.2f", s)
	}
	cut := append(append([]int16(nil), speech[:len(speech)*6/10]...), make([]int16, 16000)...)
	if s := bottest.Similarity(cut, speech); s >= 0.8 {
		t.Errorf("speech cut short at 60%%: %.2f, want < 0.8", s)
	}
}

// groupBot is a bot's side of a group call in these tests: a handler whose
// roster changes wake waitRoster.
type groupBot struct {
	h *sdk.Handler

	mu      sync.Mutex
	changed chan struct{} // closed and replaced at each roster change
}

func newGroupBot(t *testing.T, sb *bottest.Switchboard) *groupBot {
	t.Helper()
	client, err := sdk.NewClient(sb.ClientOptions())
	if err != nil {
		t.Fatal(err)
	}
	h, err := sdk.NewHandler(sdk.HandlerOptions{Client: client, CallbackURL: sb.CallbackURL, Logger: bottest.Logger(t, false)})
	if err != nil {
		t.Fatal(err)
	}
	b := &groupBot{h: h, changed: make(chan struct{})}
	h.OnParticipants(func(context.Context, *sdk.Call, sdk.ParticipantsChange) {
		b.mu.Lock()
		close(b.changed)
		b.changed = make(chan struct{})
		b.mu.Unlock()
	})
	sb.Serve(h)
	t.Cleanup(func() { _ = h.Shutdown(context.Background()) })
	return b
}

// rosterEntry is how a roster is compared: a member's user id and whether
// it is muted.
type rosterEntry struct {
	user  string
	muted bool
}

// waitRoster waits until the bot's roster of call, the bot itself left
// out, is want in any order, and returns the participant id of each user.
func (b *groupBot) waitRoster(t *testing.T, call *sdk.Call, want ...rosterEntry) map[string]string {
	t.Helper()
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		changed := b.changed
		b.mu.Unlock()
		var got []rosterEntry
		ids := map[string]string{}
		for _, p := range call.Participants() {
			if p.ID == call.Snapshot().MyParticipantID {
				continue
			}
			_, id := p.Info.Identity.Primary()
			got = append(got, rosterEntry{id.ID, p.IsMuted})
			ids[id.ID] = p.ID
		}
		if len(got) == len(want) && containsAll(got, want) {
			return ids
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("the roster is %+v, want %+v", got, want)
		}
	}
}

func containsAll(got, want []rosterEntry) bool {
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || g == w
		}
		if !found {
			return false
		}
	}
	return true
}

// A group call the bot creates with three simulated users (and Carol, who
// is busy): each is a Caller; all hear the bot's prompt; what one says the
// others hear through the conference, and the speaker does not.
func TestGroupCallCallersHearEachOtherAndTheBot(t *testing.T) {
	const daveID = "5e000000-0000-4000-8000-000000000001"
	hello, aliceSays := pattern(520, 1.5, 31), pattern(350, 1.5, 32)
	sb := bottest.Start(t, bottest.Options{Users: []bottest.User{{DisplayName: "Dave"}}})
	prompts := servePrompts(t, map[string][]int16{"hello.wav": hello})
	bot := newGroupBot(t, sb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	call, err := bot.h.CreateCall(ctx, sdk.NewCall(sdk.UserTarget(bottest.AliceID, ""), sdk.UserTarget(bottest.BobID, ""),
		sdk.UserTarget(daveID, ""), sdk.UserTarget(bottest.CarolID, "")))
	if err != nil {
		t.Fatal(err)
	}
	alice, bob, dave := sb.WaitCalled(t, "Alice"), sb.WaitCalled(t, "Bob"), sb.WaitCalled(t, "Dave")
	for _, c := range []*bottest.Caller{alice, bob, dave} {
		c.WaitConnected()
		if c.CallID() != call.ID() {
			t.Errorf("%s's CallID is %s, want the group call's %s", c.State().User, c.CallID(), call.ID())
		}
	}
	if end := sb.WaitCalled(t, "Carol").WaitEnded(); end.EndCode != 486 {
		t.Errorf("Carol's leg ended %+v, want busy (486)", end)
	}
	bot.waitRoster(t, call, rosterEntry{bottest.AliceID, false}, rosterEntry{bottest.BobID, false}, rosterEntry{daveID, false})

	if _, err := call.PlayPrompt(ctx, prompts+"/hello.wav"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*bottest.Caller{alice, bob, dave} {
		c.WaitHeardPCM(hello) // the prompt is played to the whole conference
	}
	alice.SayPCM(aliceSays)
	bob.WaitHeardPCM(aliceSays)
	dave.WaitHeardPCM(aliceSays)
	if alice.HasHeardPCM(aliceSays) {
		t.Error("Alice heard herself: the conference sent her own voice back")
	}

	if err := call.HangUp(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*bottest.Caller{alice, bob, dave} {
		c.WaitEnded()
	}
}

// Invite, mute and remove as the callers live them: an invitee is a new
// Caller who hears the others; one who declines fails the invite with
// Graph's code; a muted caller is no longer heard; a removed caller's
// call ends while the others' goes on.
func TestGroupCallInviteMuteRemove(t *testing.T) {
	const (
		erinID = "5e000000-0000-4000-8000-000000000001"
		fayID  = "5e000000-0000-4000-8000-000000000002"
	)
	bobSays, muted, erinSays := pattern(400, 1.5, 41), pattern(300, 1.5, 42), pattern(600, 2.5, 43)
	sb := bottest.Start(t, bottest.Options{Users: []bottest.User{{DisplayName: "Erin"}, {DisplayName: "Fay", Answer: "decline"}}})
	bot := newGroupBot(t, sb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	call, err := bot.h.CreateCall(ctx, sdk.NewCall(sdk.UserTarget(bottest.AliceID, ""), sdk.UserTarget(bottest.BobID, "")))
	if err != nil {
		t.Fatal(err)
	}
	alice, bob := sb.WaitCalled(t, "Alice"), sb.WaitCalled(t, "Bob")
	alice.WaitConnected()
	bob.WaitConnected()

	// Erin is invited, joins, and hears Bob.
	op, err := call.Invite(ctx, sdk.UserTarget(erinID, ""))
	if err != nil {
		t.Fatal(err)
	}
	erin := sb.WaitCalled(t, "Erin")
	erin.WaitConnected()
	if done, err := call.Await(ctx, op); err != nil || done.Status != graph.OperationCompleted {
		t.Fatalf("invite Erin: %+v, %v", done, err)
	}
	pid := bot.waitRoster(t, call, rosterEntry{bottest.AliceID, false}, rosterEntry{bottest.BobID, false}, rosterEntry{erinID, false})
	bob.SayPCM(bobSays)
	erin.WaitHeardPCM(bobSays)

	// Fay declines: her invite fails with 603 and the roster stays.
	op, err = call.Invite(ctx, sdk.UserTarget(fayID, ""))
	if err != nil {
		t.Fatal(err)
	}
	if end := sb.WaitCalled(t, "Fay").WaitEnded(); end.EndCode != 603 {
		t.Errorf("Fay's leg ended %+v, want declined (603)", end)
	}
	var opErr *sdk.OperationError
	if _, err := call.Await(ctx, op); !errors.As(err, &opErr) || opErr.Operation.ResultInfo == nil || opErr.Operation.ResultInfo.Code != 603 {
		t.Errorf("invite Fay: %v, want a failed operation with code 603", err)
	}

	// Bob is muted: what he says from now on nobody hears. Erin speaks
	// after him for longer, so once Alice has heard Erin, Bob's words would
	// have reached her too.
	if _, err := call.MuteParticipant(ctx, pid[bottest.BobID]); err != nil {
		t.Fatal(err)
	}
	bot.waitRoster(t, call, rosterEntry{bottest.AliceID, false}, rosterEntry{bottest.BobID, true}, rosterEntry{erinID, false})
	bob.SayPCM(muted)
	erin.SayPCM(erinSays)
	alice.WaitHeardPCM(erinSays)
	if alice.HasHeardPCM(muted) {
		t.Error("Alice heard Bob after he was muted")
	}

	// Alice is removed: her call ends, the others' goes on.
	if err := call.RemoveParticipant(ctx, pid[bottest.AliceID]); err != nil {
		t.Fatal(err)
	}
	if end := alice.WaitEnded(); end.EndCode != 200 || end.EndSubcode != 5001 {
		t.Errorf("Alice's leg ended %+v, want 200/5001 (hung up by the platform)", end)
	}
	bot.waitRoster(t, call, rosterEntry{bottest.BobID, true}, rosterEntry{erinID, false})
	if st := call.State(); st != graph.StateEstablished {
		t.Errorf("the group call is %s after a removal, want established", st)
	}
	if st := bob.State().State; st != "connected" {
		t.Errorf("Bob is %s after Alice's removal", st)
	}

	// Bob hangs up himself: he leaves the roster.
	bob.HangUp()
	bot.waitRoster(t, call, rosterEntry{erinID, false})
	if err := call.HangUp(ctx); err != nil {
		t.Fatal(err)
	}
	erin.WaitEnded()
}

// waitMeeting waits until the bot's roster of a meeting call, the bot
// itself left out, is want in any order: display names, "(lobby)" after
// those waiting in the lobby. It returns the participant id of each name.
func (b *groupBot) waitMeeting(t *testing.T, call *sdk.Call, want ...string) map[string]string {
	t.Helper()
	deadline := time.NewTimer(15 * time.Second)
	defer deadline.Stop()
	for {
		b.mu.Lock()
		changed := b.changed
		b.mu.Unlock()
		var got []string
		ids := map[string]string{}
		for _, p := range call.Participants() {
			if p.ID == call.Snapshot().MyParticipantID {
				continue
			}
			_, id := p.Info.Identity.Primary()
			name := id.DisplayName
			ids[name] = p.ID
			if p.IsInLobby {
				name += " (lobby)"
			}
			got = append(got, name)
		}
		slices.Sort(got)
		if slices.Equal(got, slices.Sorted(slices.Values(want))) {
			return ids
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("the meeting's roster is %q, want %q", got, want)
		}
	}
}

// A person dials in to a meeting the bot created (Meet Now, with a
// passcode) and joined by its meeting id: they key the conference id and
// the passcode, wait in the lobby, where the bot's prompts do not reach
// them, and once the bot admits them they hear it.
func TestMeetingCallerDialsInWaitsInTheLobbyAndIsAdmitted(t *testing.T) {
	before, welcome := pattern(520, 1.5, 51), pattern(700, 1.5, 52)
	sb := bottest.Start(t)
	prompts := servePrompts(t, map[string][]int16{"before.wav": before, "welcome.wav": welcome})
	bot := newGroupBot(t, sb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	yes := true
	m, err := bot.h.Client().CreateMeeting(ctx, bottest.AliceID, &graph.OnlineMeeting{Subject: "Stand-up",
		JoinMeetingIDSettings: &graph.JoinMeetingIDSettings{IsPasscodeRequired: &yes}})
	if err != nil {
		t.Fatal(err)
	}
	if a := m.AudioConferencing; a == nil || a.TollNumber != bottest.TollNumber || a.ConferenceID == "" {
		t.Fatalf("the meeting's audioConferencing is %+v, want the dial-in number %s", a, bottest.TollNumber)
	}
	call, err := bot.h.JoinMeetingByID(ctx, m.JoinMeetingIDSettings.JoinMeetingID, *m.JoinMeetingIDSettings.Passcode, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := call.WaitState(ctx, graph.StateEstablished); err != nil {
		t.Fatal(err)
	}

	bob := sb.JoinMeeting(t, "Bob", m) // the conference id, the passcode
	pid := bot.waitMeeting(t, call, "Bob (lobby)")["Bob"]
	if op, err := call.PlayPrompt(ctx, prompts+"/before.wav"); err != nil {
		t.Fatal(err)
	} else if _, err := call.Await(ctx, op); err != nil {
		t.Fatal(err)
	}
	if err := call.Admit(ctx, pid); err != nil {
		t.Fatal(err)
	}
	bot.waitMeeting(t, call, "Bob")
	bob.WaitInMeeting() // the hold music stopped
	if _, err := call.PlayPrompt(ctx, prompts+"/welcome.wav"); err != nil {
		t.Fatal(err)
	}
	bob.WaitHeardPCM(welcome)
	if bob.HasHeardPCM(before) {
		t.Error("Bob heard the bot's prompt while he waited in the lobby")
	}
	var ge *sdk.GraphError
	if err := call.Admit(ctx, pid); !errors.As(err, &ge) || ge.StatusCode != http.StatusConflict {
		t.Errorf("admitting Bob twice: %v, want 409", err)
	}

	bob.HangUp()
	bot.waitMeeting(t, call)
	if err := call.HangUp(ctx); err != nil {
		t.Fatal(err)
	}
}

// A meeting that lets dial-in callers bypass the lobby, joined by its
// link: Alice and Bob dial in and are straight in; they hear the bot and
// each other, and the speaker does not hear herself.
func TestMeetingDialInCallersHearEachOther(t *testing.T) {
	hello, aliceSays := pattern(520, 1.5, 61), pattern(350, 1.5, 62)
	sb := bottest.Start(t)
	prompts := servePrompts(t, map[string][]int16{"hello.wav": hello})
	bot := newGroupBot(t, sb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	yes := true
	m, err := bot.h.Client().CreateMeeting(ctx, bottest.AliceID, &graph.OnlineMeeting{Subject: "Open line",
		LobbyBypassSettings: &graph.LobbyBypassSettings{Scope: graph.LobbyEveryone, IsDialInBypassEnabled: &yes}})
	if err != nil {
		t.Fatal(err)
	}
	call, err := bot.h.JoinMeetingByURL(ctx, m.JoinWebURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := call.WaitState(ctx, graph.StateEstablished); err != nil {
		t.Fatal(err)
	}
	alice, bob := sb.JoinMeeting(t, "Alice", m), sb.JoinMeeting(t, "Bob", m)
	bot.waitMeeting(t, call, "Alice", "Bob")
	alice.WaitInMeeting() // past the platform's "you have joined"
	bob.WaitInMeeting()

	if _, err := call.PlayPrompt(ctx, prompts+"/hello.wav"); err != nil {
		t.Fatal(err)
	}
	alice.WaitHeardPCM(hello)
	bob.WaitHeardPCM(hello)
	alice.SayPCM(aliceSays)
	bob.WaitHeardPCM(aliceSays)
	if alice.HasHeardPCM(aliceSays) {
		t.Error("Alice heard herself in the meeting")
	}
	if err := call.HangUp(ctx); err != nil {
		t.Fatal(err)
	}
	// The people stay in the meeting when the bot leaves.
	if st := alice.State().State; st != "connected" {
		t.Errorf("Alice's call is %s after the bot left the meeting", st)
	}
	alice.HangUp()
	bob.HangUp()
}

// From outside Go, a simulated caller dials in with the control API: the
// call goes to the tenant's dial-in number, the keys are the conference
// id, and the bot's roster shows the caller in the lobby.
func TestControlAPIDialsIn(t *testing.T) {
	sb := bottest.Start(t)
	bot := newGroupBot(t, sb)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	m, err := bot.h.Client().CreateMeeting(ctx, bottest.AliceID, nil)
	if err != nil {
		t.Fatal(err)
	}
	call, err := bot.h.JoinMeetingByURL(ctx, m.JoinWebURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	api := sb.URL + "/simulator/v1/calls"
	post := func(url, body string) []byte {
		t.Helper()
		resp, err := http.Post(url, "application/json", bytes.NewReader([]byte(body)))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode/100 != 2 {
			t.Fatalf("POST %s: %d %s", url, resp.StatusCode, b)
		}
		return b
	}
	var leg struct{ ID string }
	_ = json.Unmarshal(post(api, `{"from":"+15550102","to":"`+bottest.TollNumber+`"}`), &leg)
	// Keys count once the platform asks for them.
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get(api + "/" + leg.ID)
		if err != nil {
			t.Fatal(err)
		}
		var st bottest.Leg
		_ = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if st.PromptsHeard > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the dial-in prompt never played: %+v", st)
		}
		time.Sleep(50 * time.Millisecond) // polling an HTTP API, as a test in another language would
	}
	post(api+"/"+leg.ID+"/keys", `{"keys":"`+m.AudioConferencing.ConferenceID+`#","interval":"100ms"}`)
	bot.waitMeeting(t, call, "Carol (lobby)")
}
