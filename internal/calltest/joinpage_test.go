package calltest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/webrtcgw/rtcphone"
	"github.com/switchboard-voice/switchboard/sdk"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// meetingBot is an SDK bot on a node with meetings, told of every roster
// change.
type meetingBot struct {
	p       *calltest.Platform
	client  *sdk.Client
	bot     *sdk.Handler
	rosters chan struct{} // a roster changed
}

func startMeetingBot(t *testing.T) *meetingBot {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	hook := "http://" + srv.Listener.Addr().String() + "/callback"
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		withMeetings(c)
		c.Applications[0].CallbackURI = hook
	}})
	client, err := sdk.NewClient(sdk.ClientOptions{BaseURL: p.URL + "/v1.0", TenantID: calltest.TenantID,
		ClientID: calltest.BotID, ClientSecret: calltest.Secret})
	if err != nil {
		t.Fatal(err)
	}
	bot, err := sdk.NewHandler(sdk.HandlerOptions{Client: client, CallbackURL: hook})
	if err != nil {
		t.Fatal(err)
	}
	mb := &meetingBot{p: p, client: client, bot: bot, rosters: make(chan struct{}, 1)}
	bot.OnParticipants(func(context.Context, *sdk.Call, sdk.ParticipantsChange) {
		select {
		case mb.rosters <- struct{}{}:
		default:
		}
	})
	srv.Config.Handler = bot
	srv.Start()
	t.Cleanup(func() {
		_ = bot.Shutdown(context.Background())
		srv.Close()
	})
	return mb
}

// join makes the bot join the meeting with service-hosted media.
func (mb *meetingBot) join(ctx context.Context, t *testing.T, link string) *sdk.Call {
	t.Helper()
	c, err := mb.bot.JoinMeetingByURL(ctx, link, &graph.MediaConfig{ODataType: graph.TypeServiceHostedMediaConfig})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WaitState(ctx, graph.StateEstablished); err != nil {
		t.Fatal(err)
	}
	return c
}

// waitRosterOf waits until the bot's call's roster satisfies ok.
func (mb *meetingBot) waitRosterOf(ctx context.Context, t *testing.T, c *sdk.Call, what string, ok func([]graph.Participant) bool) []graph.Participant {
	t.Helper()
	for {
		ps := c.Participants()
		if ok(ps) {
			return ps
		}
		select {
		case <-mb.rosters:
		case <-ctx.Done():
			t.Fatalf("the bot's roster never showed %s: %s", what, rosterText(ps))
		}
	}
}

// guestIn returns the roster entry of the guest named name, if any.
func guestIn(ps []graph.Participant, name string) *graph.Participant {
	for i, p := range ps {
		if p.Info != nil && p.Info.Identity != nil && p.Info.Identity.Guest != nil && p.Info.Identity.Guest.DisplayName == name {
			return &ps[i]
		}
	}
	return nil
}

func rosterText(ps []graph.Participant) string {
	var b strings.Builder
	for _, p := range ps {
		name := "?"
		if p.Info != nil && p.Info.Identity != nil {
			for _, id := range []*graph.Identity{p.Info.Identity.Guest, p.Info.Identity.User, p.Info.Identity.Application, p.Info.Identity.Phone} {
				if id != nil {
					name = id.DisplayName
					break
				}
			}
		}
		b.WriteString(name)
		if p.IsInLobby {
			b.WriteString(" (lobby)")
		}
		if p.DominantSpeaker {
			b.WriteString(" (speaking)")
		}
		b.WriteString("; ")
	}
	return b.String()
}

// A meeting's join link in a real Chromium (headless, its microphone a
// WAV), driven from the keyboard: a bot made the meeting and is in it;
// the page asks for a name (typed, Enter pressed; an empty one refused),
// gets a guest pass and calls the meeting over SIP over WebSocket with
// WebRTC audio; the guest waits in the lobby (the page says so and plays
// the lobby's prompt, and the bot's roster shows them isInLobby as a
// guest with the name typed) until the bot admits them; then the page
// shows the meeting's roster, the browser's microphone makes the guest
// the dominant speaker (in the bot's roster and on the page), the bot's
// prompt is heard on the page (its loudest frequency), Mute (the focus
// is on it: Enter) shows pressed, and Leave takes the guest off the bot's
// roster.
func TestChromiumJoinPage(t *testing.T) {
	mb := startMeetingBot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	m, err := mb.client.CreateMeeting(ctx, calltest.AliceID, &graph.OnlineMeeting{Subject: "Design review"})
	if err != nil {
		t.Fatal(err)
	}
	call := mb.join(ctx, t, m.JoinWebURL)

	page := calltest.StartChromium(t, m.JoinWebURL, calltest.Pattern(700, 30, 4))
	page.Until(20*time.Second, "the join page", `document.readyState === 'complete' && window.SipUA && document.body.dataset.state === 'idle' && document.activeElement.id === 'name'`)
	if got := page.Eval(`document.querySelector('h1').textContent + ' | ' + document.getElementById('dial-in').textContent`); !strings.Contains(got, "Design review") || !strings.Contains(got, "Join by phone") {
		t.Errorf("the page lost its heading or its dial-in section: %s", got)
	}
	// An empty name is refused on the page.
	page.Eval(`document.getElementById('join-form').requestSubmit()`)
	page.Until(5*time.Second, "the empty name refused", `document.getElementById('status').textContent.startsWith('Type your name') && document.activeElement.id === 'name'`)

	// From the keyboard: the name field has the focus; type, press Enter.
	page.Call("Input.insertText", map[string]any{"text": "Zoe Guest"}, nil)
	pressEnter(page)
	page.Until(30*time.Second, "the lobby", `document.body.dataset.state === 'lobby' && document.getElementById('status').textContent.includes('waiting for someone')`)
	// What the page plays: the loudest frequency, every 100 ms, of the
	// remote audio element's stream when it is loud enough.
	page.Until(10*time.Second, "the call's audio", `!!document.getElementById('remote-audio').srcObject`)
	page.Eval(listenRemoteAudio)
	page.Until(10*time.Second, "the lobby's prompt heard", `window.heard.length >= 5`)
	ps := mb.waitRosterOf(ctx, t, call, "the guest in the lobby", func(ps []graph.Participant) bool {
		g := guestIn(ps, "Zoe Guest")
		return g != nil && g.IsInLobby
	})
	guest := guestIn(ps, "Zoe Guest")
	if err := call.Admit(ctx, guest.ID); err != nil {
		t.Fatal(err)
	}
	page.Until(20*time.Second, "the meeting", `document.body.dataset.state === 'in' && document.getElementById('status').textContent === 'You are in the meeting.'`)
	page.Until(10*time.Second, "the roster", `(() => { const t = document.getElementById('roster').textContent; return t.includes('Zoe Guest (you)') && t.includes('Test bot (bot)'); })()`)

	// Audio up: the browser's microphone makes the guest the meeting's
	// dominant speaker.
	mb.waitRosterOf(ctx, t, call, "the guest speaking", func(ps []graph.Participant) bool {
		g := guestIn(ps, "Zoe Guest")
		return g != nil && !g.IsInLobby && g.DominantSpeaker
	})
	page.Until(10*time.Second, "the guest speaking on the page", `!!document.querySelector('#roster li[data-you].speaking')`)

	// SWITCHBOARD_JOIN_SCREENSHOT=file: the page in the meeting, as a PNG
	// (docs/join.png is one).
	if file := os.Getenv("SWITCHBOARD_JOIN_SCREENSHOT"); file != "" {
		page.Screenshot(file)
	}

	// Audio down: the bot's prompt, heard on the page.
	page.Eval(`window.heard = []`)
	base := wavServer(t, map[string][]byte{"/tone.wav": calltest.WAV(tone(1200, 3*time.Second), 8000)})
	if _, err := call.PlayPrompt(ctx, base+"/tone.wav"); err != nil {
		t.Fatal(err)
	}
	page.Until(10*time.Second, "the bot's 1200 Hz prompt heard", `window.heard.some(f => f > 1150 && f < 1250)`)

	// Mute, a toggle button, from the keyboard: the meeting put the focus
	// on it.
	page.Until(5*time.Second, "the focus on Mute", `document.activeElement.id === 'mute'`)
	pressEnter(page)
	page.Until(5*time.Second, "muted", `document.getElementById('mute').getAttribute('aria-pressed') === 'true' && document.querySelector('#roster li[data-you]').textContent.includes('muted')`)

	// Leave: the guest is off the bot's roster, the page can join again.
	page.Eval(`document.getElementById('leave').click()`)
	mb.waitRosterOf(ctx, t, call, "the guest gone", func(ps []graph.Participant) bool { return guestIn(ps, "Zoe Guest") == nil })
	page.Until(10*time.Second, "the page after leaving", `document.body.dataset.state === 'ended' && document.getElementById('status').textContent === 'You left the meeting.' && !document.getElementById('join').disabled`)

	if err := call.HangUp(ctx); err != nil {
		t.Fatal(err)
	}
}

// pressEnter presses Enter where the page's focus is, as a keyboard does.
func pressEnter(page *calltest.Chromium) {
	for _, typ := range []string{"keyDown", "keyUp"} {
		ev := map[string]any{"type": typ, "key": "Enter", "code": "Enter", "windowsVirtualKeyCode": 13}
		if typ == "keyDown" {
			ev["text"] = "\r"
		}
		page.Call("Input.dispatchKeyEvent", ev, nil)
	}
}

// httpStatus is a request's status and body.
func httpStatus(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	buf := make([]byte, 4096)
	n, _ := resp.Body.Read(buf)
	b.Write(buf[:n])
	return resp.StatusCode, b.String()
}

// mintPass asks a join link for a guest pass: its status, and the pass
// (or the refusal's text).
func mintPass(t *testing.T, link, name string) (int, guestPassReply, string) {
	t.Helper()
	u, _ := url.Parse(link)
	u.RawQuery = ""
	body, _ := json.Marshal(map[string]string{"name": name})
	resp, err := http.Post(u.String()+"/guest", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var p guestPassReply
	if resp.StatusCode == 200 {
		if err := json.Unmarshal(raw, &p); err != nil {
			t.Fatalf("the pass: %v: %s", err, raw)
		}
	}
	return resp.StatusCode, p, string(raw)
}

type guestPassReply struct {
	User, Password, Domain, URI, WS, Name string
	Expires                               time.Time
}

// rosterEvents opens a join link's roster stream with a guest's user and
// password: the status, and for 200 the first event's data (the rest is
// left unread; the body is closed with the test).
func rosterEvents(t *testing.T, link, user, password string) (int, string) {
	t.Helper()
	u, _ := url.Parse(link)
	u.RawQuery = ""
	req, _ := http.NewRequest("GET", u.String()+"/roster", nil)
	req.Header.Set("Authorization", "Bearer "+user+":"+password)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	t.Cleanup(func() { resp.Body.Close() })
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if data, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			return 200, data
		}
	}
	t.Fatalf("the roster stream ended without an event: %v", sc.Err())
	return 0, ""
}

// The guest path without a browser (rtcphone: pion and sipgo over
// WebSocket, as the page's SipUA speaks it), and what it refuses. A pass
// for meeting A joins A by its SIP URI, its From's display name shown in
// the roster as a guest, straight in as A lets everyone bypass the lobby,
// and the guest hears the bot's prompt; the roster stream shows the guest
// in. Refused: a pass for a deleted meeting or a bad name (404, 400); a
// pass used for meeting B, a bot's number, a user or the dial-in number
// (403 each: no toll fraud), a forged password (403), an expired pass
// (403), a REGISTER with a pass (403), the same pass calling again while
// its guest is in (403), passes past a burst from one address (429); the
// roster stream without a pass, with a forged
// one, one for another meeting or an expired one (401).
func TestGuestPassProtocol(t *testing.T) {
	mb := startMeetingBot(t)
	p := mb.p
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	a, err := mb.client.CreateMeeting(ctx, calltest.AliceID, &graph.OnlineMeeting{Subject: "Open house",
		LobbyBypassSettings: &graph.LobbyBypassSettings{Scope: graph.LobbyEveryone}})
	if err != nil {
		t.Fatal(err)
	}
	b, err := mb.client.CreateMeeting(ctx, calltest.AliceID, &graph.OnlineMeeting{Subject: "Board"})
	if err != nil {
		t.Fatal(err)
	}
	gone, err := mb.client.CreateMeeting(ctx, calltest.AliceID, &graph.OnlineMeeting{Subject: "Cancelled"})
	if err != nil {
		t.Fatal(err)
	}
	if err := mb.client.DeleteMeeting(ctx, calltest.AliceID, gone.ID); err != nil {
		t.Fatal(err)
	}
	bc := mb.join(ctx, t, a.JoinWebURL)

	// A meeting that does not exist: the page says so, and gives no pass.
	req, _ := http.NewRequest("GET", gone.JoinWebURL, nil)
	if status, body := httpStatus(t, req); status != 404 || !strings.Contains(body, "Meeting not found") {
		t.Errorf("the join page of a deleted meeting: %d %.100s", status, body)
	}
	if status, _, body := mintPass(t, gone.JoinWebURL, "Zoe"); status != 404 {
		t.Errorf("a pass for a deleted meeting: %d %s", status, body)
	}
	for _, name := range []string{"", "   ", `Zoe "the guest"`, strings.Repeat("z", 65)} {
		if status, _, body := mintPass(t, a.JoinWebURL, name); status != 400 {
			t.Errorf("a pass for the name %q: %d %s, want 400", name, status, body)
		}
	}
	status, pa, body := mintPass(t, a.JoinWebURL, "Yann")
	if status != 200 || pa.URI != "meeting-"+a.AudioConferencing.ConferenceID+"@"+p.Config.SIP.Domain || pa.WS != "/sip/ws" || time.Until(pa.Expires) < 5*time.Minute {
		t.Fatalf("the pass for A: %d %+v %s", status, pa, body)
	}
	_, pb, _ := mintPass(t, b.JoinWebURL, "Yann")

	// What a pass does not open.
	guestPhone := func(user, password string) *rtcphone.Phone {
		ph := newRTCPhone(t, p, user, password)
		ph.DisplayName = "Yann"
		return ph
	}
	call := func(ph *rtcphone.Phone, target string) (*rtcphone.Call, int) {
		t.Helper()
		c, code, err := ph.Call(ctx, target, nil)
		if err != nil {
			t.Fatalf("call %s: %v", target, err)
		}
		return c, code
	}
	ph := guestPhone(pa.User, pa.Password)
	for _, target := range []string{"meeting-" + b.AudioConferencing.ConferenceID, calltest.BotNumber, "eve", meetingsToll} {
		if _, code := call(ph, target); code != 403 {
			t.Errorf("A's pass calling %s: %d, want 403", target, code)
		}
	}
	if code, err := ph.Register(ctx, 60); err != nil || code != 403 {
		t.Errorf("REGISTER with a pass: %d, %v; want 403", code, err)
	}
	if _, code := call(guestPhone(pa.User, pb.Password), "meeting-"+a.AudioConferencing.ConferenceID); code != 403 {
		t.Errorf("A's pass with B's password: %d, want 403", code)
	}
	expired := p.Node.SIP.GuestPasses().Mint(a.AudioConferencing.ConferenceID, -time.Second)
	if _, code := call(guestPhone(expired.User, expired.Password), "meeting-"+a.AudioConferencing.ConferenceID); code != 403 {
		t.Errorf("an expired pass: %d, want 403", code)
	}

	// The roster stream's refusals.
	for _, c := range []struct {
		what, link, user, password, want string
	}{
		{"no pass", a.JoinWebURL, "", "", "needs the guest pass"},
		{"a forged password", a.JoinWebURL, pa.User, pb.Password, "needs the guest pass"},
		{"B's pass at A's link", a.JoinWebURL, pb.User, pb.Password, "another meeting"},
		{"an expired pass", a.JoinWebURL, expired.User, expired.Password, "expired"},
	} {
		if status, body := rosterEvents(t, c.link, c.user, c.password); status != 401 || !strings.Contains(body, c.want) {
			t.Errorf("the roster stream with %s: %d %q, want 401 saying %q", c.what, status, body, c.want)
		}
	}

	// The pass joins its meeting: straight in (everyone bypasses A's lobby).
	ph = guestPhone(pa.User, pa.Password)
	guest, code := call(ph, "meeting-"+a.AudioConferencing.ConferenceID)
	if code != 200 {
		t.Fatalf("A's pass calling A: %d", code)
	}
	mb.waitRosterOf(ctx, t, bc, "the guest in the meeting", func(ps []graph.Participant) bool {
		g := guestIn(ps, "Yann")
		return g != nil && !g.IsInLobby
	})
	// One pass, one person: calling again with it while in is refused.
	if _, code := call(guestPhone(pa.User, pa.Password), "meeting-"+a.AudioConferencing.ConferenceID); code != 403 {
		t.Errorf("a second call with a pass already in the meeting: %d, want 403", code)
	}
	if status, data := rosterEvents(t, a.JoinWebURL, pa.User, pa.Password); status != 200 ||
		!strings.Contains(data, `"state":"in"`) || !strings.Contains(data, `"name":"Yann","kind":"guest","you":true`) {
		t.Errorf("the guest's roster stream: %d %s", status, data)
	}
	// And hears the bot's prompt, a 1100 Hz tone: some half second of
	// what the guest heard since is mostly that tone (the platform's
	// "you have joined" may still be speaking over its start).
	from := len(guest.Media.Heard())
	base := wavServer(t, map[string][]byte{"/p.wav": calltest.WAV(tone(1100, 3*time.Second), 8000)})
	if _, err := bc.PlayPrompt(ctx, base+"/p.wav"); err != nil {
		t.Fatal(err)
	}
	best := 0.0
	wait, stop := context.WithTimeout(ctx, 10*time.Second)
	defer stop()
	if _, err := guest.Media.WaitHeard(wait, func(heard []int16) bool {
		for i := from; i+4000 <= len(heard); i += 800 {
			best = max(best, toneLevel(heard[i:i+4000], 1100))
		}
		return best > 0.6
	}); err != nil {
		t.Fatalf("the guest did not hear the bot's 1100 Hz prompt: at best %.2f of a half second's energy", best)
	}
	if err := guest.HangUp(ctx); err != nil {
		t.Fatal(err)
	}

	// Passes for one address are bounded (a burst of 20, then one every
	// 2 s).
	limited := false
	for i := 0; i < 30 && !limited; i++ {
		status, _, body := mintPass(t, b.JoinWebURL, "Flood")
		limited = status == 429 && strings.Contains(body, "try again")
	}
	if !limited {
		t.Error("30 passes in a row from one address were all minted")
	}
}

// listenRemoteAudio makes a page note, every 100 ms, the loudest frequency
// of its remote-audio element's stream when it is loud enough, in
// window.heard.
const listenRemoteAudio = `(() => {
  window.heard = [];
  const ac = new AudioContext(), an = ac.createAnalyser();
  an.fftSize = 2048;
  ac.createMediaStreamSource(document.getElementById('remote-audio').srcObject).connect(an);
  const bins = new Float32Array(an.frequencyBinCount);
  setInterval(() => {
    an.getFloatFrequencyData(bins);
    let best = 0;
    for (let i = 1; i < bins.length; i++) if (bins[i] > bins[best]) best = i;
    if (bins[best] > -50) window.heard.push(Math.round(best * ac.sampleRate / an.fftSize));
  }, 100);
})()`
