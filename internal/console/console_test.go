package console_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/bottest"
	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/console"
	"github.com/switchboard-voice/switchboard/internal/webrtcgw/rtcphone"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// get fetches path from the node with Basic credentials (none when user is
// empty) and returns the response with its body read.
func get(t *testing.T, p *calltest.Platform, path, user, pass string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest("GET", p.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := p.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, body
}

type event struct {
	name string
	data []byte
}

// stream opens /console/events and sends its events on the returned
// channel until ctx ends; raw collects every byte read.
func stream(t *testing.T, ctx context.Context, p *calltest.Platform, raw *bytes.Buffer) <-chan event {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, "GET", p.URL+"/console/events", nil)
	req.SetBasicAuth(calltest.Operator, calltest.OperatorPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		t.Fatalf("events: %s %v", resp.Status, resp.Header)
	}
	ch := make(chan event, 1024)
	go func() {
		defer resp.Body.Close()
		defer close(ch)
		sc := bufio.NewScanner(io.TeeReader(resp.Body, raw))
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		var ev event
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "event: "):
				ev.name = line[len("event: "):]
			case strings.HasPrefix(line, "data: "):
				ev.data = []byte(line[len("data: "):])
			case line == "" && ev.name != "":
				select {
				case ch <- ev:
				case <-ctx.Done():
					return
				}
				ev = event{}
			}
		}
	}()
	return ch
}

func TestConsoleRefusesWithoutOperatorCredentials(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	for _, path := range []string{"/console", "/console/events", "/console/static/console.js"} {
		for _, c := range []struct{ what, user, pass string }{
			{"no credentials", "", ""},
			{"a wrong password", calltest.Operator, "wrong-password"},
			{"an unknown operator", "nobody", calltest.OperatorPassword},
			{"the bot's secret", calltest.BotID, calltest.Secret},
		} {
			resp, body := get(t, p, path, c.user, c.pass)
			if resp.StatusCode != 401 || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic ") {
				t.Errorf("%s with %s: %s %v %s, want 401 with WWW-Authenticate: Basic", path, c.what, resp.Status, resp.Header, body)
			}
		}
	}
	// A bot token is not an operator's credential either.
	r := p.Do(calltest.Req{Method: "GET", Path: "/console", Token: p.Token(calltest.BotID, calltest.TenantID)})
	if r.StatusCode != 401 {
		t.Errorf("/console with a bot token: %s", r.Status)
	}
	resp, body := get(t, p, "/console", calltest.Operator, calltest.OperatorPassword)
	if resp.StatusCode != 200 || !bytes.Contains(body, []byte("Switchboard console")) {
		t.Fatalf("/console as the operator: %s %.200s", resp.Status, body)
	}
	// Guessing is rate-limited like client secrets at the token endpoint:
	// past identity.tokenThrottle.maxFailures the address is refused, the
	// right password too, with Retry-After.
	limit := p.Config.Identity.TokenThrottle.MaxFailures
	for i := 0; ; i++ {
		if i > limit+1 {
			t.Fatalf("%d wrong passwords and still not refused", i)
		}
		resp, _ := get(t, p, "/console", calltest.Operator, fmt.Sprintf("guess-%d", i))
		if resp.StatusCode == 429 {
			break
		}
	}
	resp, _ = get(t, p, "/console", calltest.Operator, calltest.OperatorPassword)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("the right password from a banned address: %s %v", resp.Status, resp.Header)
	}
}

func TestConsoleOffWithoutOperators(t *testing.T) {
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) { c.Console.Users = nil }})
	resp, body := get(t, p, "/console", calltest.Operator, calltest.OperatorPassword)
	if resp.StatusCode != 403 || !bytes.Contains(body, []byte("console is off")) {
		t.Errorf("/console with no operator configured: %s %s", resp.Status, body)
	}
	if p.Node.Console != nil {
		t.Error("a console without operators is running")
	}
}

// TestConsoleShowsACallLive: a call made through the Graph API appears on
// the operator's event stream, is established, its notifications'
// deliveries are on its timeline with their HTTP status, and it ends with
// its resultInfo explained; no secret or token is ever in what the console
// sends.
func TestConsoleShowsACallLive(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var raw bytes.Buffer
	events := stream(t, ctx, p, &raw)
	first := <-events
	if first.name != "snapshot" {
		t.Fatalf("first event %q, want snapshot", first.name)
	}

	call := p.CreateCall(calltest.AliceID)
	// until reads the stream until a view of the call satisfies ok.
	until := func(what string, ok func(console.Call) bool) console.Call {
		t.Helper()
		for {
			select {
			case ev, open := <-events:
				if !open {
					t.Fatalf("event stream closed waiting for %s", what)
				}
				if ev.name != "call" {
					continue
				}
				var c console.Call
				if err := json.Unmarshal(ev.data, &c); err != nil {
					t.Fatalf("call event %s: %v", ev.data, err)
				}
				if c.ID == call.ID && ok(c) {
					return c
				}
			case <-ctx.Done():
				t.Fatalf("no %s on the console's stream", what)
			}
		}
	}
	est := until("established call", func(c console.Call) bool { return c.State == "established" })
	if est.Direction != "outgoing" || est.MediaMode != "serviceHosted" || est.AppID != calltest.BotID || est.TenantID != calltest.TenantID ||
		len(est.Participants) == 0 {
		t.Errorf("established call: %+v", est)
	}
	delivered := func(c console.Call) int {
		n := 0
		for _, e := range c.Timeline {
			if e.Kind == "notification" && !e.Failed && strings.Contains(e.Text, "HTTP 202") {
				n++
			}
		}
		return n
	}
	until("a delivered notification", func(c console.Call) bool { return delivered(c) > 0 })

	if r := p.Bot("DELETE", "/v1.0/communications/calls/"+call.ID, nil); r.StatusCode != 204 {
		t.Fatalf("hang up: %s %s", r.Status, r.Body)
	}
	ended := until("ended call", func(c console.Call) bool { return c.End != nil })
	if ended.End.Code != 200 || ended.End.Subcode != 5001 || ended.End.Message == "" || ended.End.Explanation != console.Explain(200, 5001) {
		t.Errorf("end: %+v", ended.End)
	}
	// The terminated notification's delivery comes after the end.
	final := until("the terminated notification's delivery", func(c console.Call) bool {
		last := c.Timeline[len(c.Timeline)-1]
		return strings.Contains(last.Text, "(call deleted: terminated) delivered: HTTP 202")
	})
	var kinds []string
	for _, e := range final.Timeline {
		kinds = append(kinds, e.Kind)
	}
	var texts []string
	for _, e := range final.Timeline {
		texts = append(texts, e.Text)
		if e.Kind == "notification" && !strings.HasPrefix(e.Text, "notification (") {
			t.Errorf("a delivery without what its notification said: %s", e.Text)
		}
	}
	for _, want := range []string{"notification (call updated: established) delivered: HTTP 202", "far end answered"} {
		if !strings.Contains(strings.Join(texts, "\n"), want) {
			t.Errorf("no %q on the timeline:\n%s", want, strings.Join(texts, "\n"))
		}
	}
	if got := strings.Join(kinds, " "); !strings.HasPrefix(got, "created ") || !strings.Contains(got, "state") || !strings.Contains(got, "leg") || !strings.Contains(got, "ended") {
		t.Errorf("timeline kinds: %s", got)
	}

	// A new stream's snapshot has the ended call.
	_, page := get(t, p, "/console", calltest.Operator, calltest.OperatorPassword)
	_, js := get(t, p, "/console/static/console.js", calltest.Operator, calltest.OperatorPassword)
	snap := p.Node.Console.Snapshot()
	if len(snap) != 1 || snap[0].ID != call.ID || snap[0].End == nil {
		t.Errorf("snapshot: %+v", snap)
	}
	cancel()
	for range events {
	}

	all := raw.String() + string(page) + string(js)
	secrets := []string{calltest.Secret, calltest.OperatorPassword, calltest.EvePassword, p.Token(calltest.BotID, calltest.TenantID),
		"Bearer", "eyJ", "callbackUri", "access_token"}
	for _, a := range p.Config.Applications {
		secrets = append(secrets, a.Secret)
	}
	for _, tn := range p.Config.Tenants {
		for _, u := range tn.Users {
			secrets = append(secrets, u.SIP.Password) // digest passwords
		}
	}
	for _, s := range secrets {
		if s != "" && strings.Contains(all, s) {
			t.Errorf("the console sent a secret or token: %q", s)
		}
	}
	if testing.Verbose() {
		fmt.Println(len(all), "bytes from the console checked")
	}
}

// TestConsolePageInChromium: the page, in headless Chromium signed in as
// the operator, lists a live call with its state, shows its timeline and
// the call's recording, which plays in the page, and moves the call to
// the ended ones with its explanation once it ends.
func TestConsolePageInChromium(t *testing.T) {
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) { c.Simulator.Audio = true }})
	page := calltest.StartChromium(t, "about:blank", calltest.Pattern(600, 30, 1))
	page.Call("Network.enable", nil, nil)
	auth := base64.StdEncoding.EncodeToString([]byte(calltest.Operator + ":" + calltest.OperatorPassword))
	page.Call("Network.setExtraHTTPHeaders", map[string]any{"headers": map[string]string{"Authorization": "Basic " + auth}}, nil)
	page.Call("Page.navigate", map[string]any{"url": p.URL + "/console"}, nil)
	page.Until(20*time.Second, "the console connected", `document.getElementById("status")?.textContent === "Live"`)

	call := p.CreateCall(calltest.AliceID)
	row := fmt.Sprintf(`document.querySelector('#live tr[data-call=%q]')`, call.ID)
	page.Until(20*time.Second, "the call established in the live list", row+`?.children[1].textContent === "established"`)
	if got := page.Eval(row + `.textContent`); !strings.Contains(got, "outgoing") || !strings.Contains(got, "serviceHosted") || !strings.Contains(got, calltest.TenantID) {
		t.Errorf("live row: %s", got)
	}
	page.Eval(row + `.querySelector("button").click()`)
	page.Until(20*time.Second, "the call's timeline with a delivered notification",
		`document.getElementById("timeline").textContent.includes(") delivered: HTTP 202")`)

	// The bot records the call for 2 s: the recording is listed on the
	// call, its <audio> element loads it (a WAV of about 2 s, fetched with
	// the operator's credentials) and plays.
	r := p.Bot("POST", "/v1.0/communications/calls/"+call.ID+"/recordResponse", map[string]any{"maxRecordDurationInSeconds": 2,
		"initialSilenceTimeoutInSeconds": 5, "maxSilenceTimeoutInSeconds": 5, "playBeep": false})
	if r.StatusCode != 200 {
		t.Fatalf("recordResponse: %s %s", r.Status, r.Body)
	}
	audio := `document.querySelector("#recordings audio")`
	page.Until(20*time.Second, "the recording's audio loaded", audio+`?.readyState >= 1 && `+audio+`.duration > 1.5`)
	if d := page.Eval(audio + `.duration`); !strings.HasPrefix(d, "2") && !strings.HasPrefix(d, "1.9") {
		t.Errorf("the recording's duration in the page: %s s, want about 2", d)
	}
	page.Eval(audio + `.play()`)
	page.Until(10*time.Second, "the recording playing", audio+`.currentTime > 0.3`)
	page.Until(10*time.Second, "the recording's media entries on the timeline",
		`[...document.querySelectorAll('#timeline li[data-kind="media"]')].some(li => li.textContent.includes("recording stored"))`)
	if r := p.Bot("DELETE", "/v1.0/communications/calls/"+call.ID, nil); r.StatusCode != 204 {
		t.Fatalf("hang up: %s %s", r.Status, r.Body)
	}
	ended := fmt.Sprintf(`document.querySelector('#ended tr[data-call=%q]')`, call.ID)
	page.Until(20*time.Second, "the call among the ended ones, explained", ended+`?.textContent.includes(`+strconv.Quote(console.Explain(200, 5001))+`)`)
	page.Until(20*time.Second, "the live list empty", `document.querySelectorAll("#live tr").length === 0 && !document.getElementById("no-live").hidden`)
	// SWITCHBOARD_CONSOLE_SCREENSHOT=file: the page with the ended call
	// and its timeline, as a PNG (docs/console.png is one).
	if file := os.Getenv("SWITCHBOARD_CONSOLE_SCREENSHOT"); file != "" {
		page.Call("Emulation.setDeviceMetricsOverride", map[string]any{"width": 1200, "height": 1150, "deviceScaleFactor": 1, "mobile": false}, nil)
		page.Screenshot(file)
	}
}

// A call that fails ends on the console with its resultInfo explained.
func TestConsoleExplainsAFailedCall(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	if r := p.Do(calltest.Req{Method: "GET", Path: "/metrics"}); !bytes.Contains(r.Body, []byte("switchboard_console_readers_dropped_total 0")) {
		t.Error("/metrics has no switchboard_console_readers_dropped_total")
	}
	call := p.CreateCall(calltest.CarolID) // always busy
	p.Hook.WaitState(t, call.ID, "terminated")
	for _, c := range p.Node.Console.Snapshot() {
		if c.ID != call.ID {
			continue
		}
		if c.End == nil || c.End.Code != 486 || c.End.Subcode != 9005 || !strings.Contains(c.End.Explanation, "busy") {
			t.Errorf("end %+v", c.End)
		}
		return
	}
	t.Fatalf("the console does not know call %s", call.ID)
}

// A browser-like caller (the Go WebRTC phone: SIP over WebSocket, pion)
// calls the bot, which plays a prompt and records the caller: the call's
// timeline has its SIP requests and responses and its media events, and
// the recording is listed on the call and served to operators (only to
// them, only as a recording of that call) as a WAV the page can play.
func TestConsoleTimelineHasSIPAndMediaAndPlaysRecordings(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ph, err := rtcphone.NewPhone(strings.TrimPrefix(p.URL, "http://"), p.Config.SIP.Domain, "eve", calltest.EvePassword, bottest.Logger(t, false))
	if err != nil {
		t.Fatal(err)
	}
	defer ph.Close()
	if code, err := ph.Register(ctx, 300); err != nil || code != 200 {
		t.Fatalf("REGISTER: %d %v", code, err)
	}
	type result struct {
		c    *rtcphone.Call
		code int
		err  error
	}
	dialled := make(chan result, 1)
	go func() {
		c, code, err := ph.Call(ctx, calltest.BotNumber, nil)
		dialled <- result{c, code, err}
	}()
	var in graph.Call
	p.Hook.Wait(t, "", 20*time.Second, "incoming call", func(ns []calltest.Notification) bool {
		for _, n := range ns {
			if n.ChangeType == graph.ChangeCreated {
				in = n.Call(t)
				return true
			}
		}
		return false
	})
	c := "/v1.0/communications/calls/" + in.ID
	if r := p.Bot("POST", c+"/answer", map[string]any{"acceptedModalities": []string{"audio"},
		"mediaConfig": map[string]any{"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}}); r.StatusCode != 202 {
		t.Fatalf("answer: %s %s", r.Status, r.Body)
	}
	res := <-dialled
	if res.err != nil || res.code != 200 {
		t.Fatalf("call: %d %v", res.code, res.err)
	}
	m := res.c.Media
	defer m.Close()
	p.Hook.WaitState(t, in.ID, graph.StateEstablished)
	if err := m.Connected(ctx); err != nil {
		t.Fatal(err)
	}
	m.Say(calltest.Pattern(700, 30, 3))

	operation := func(path string, body any) graph.Operation {
		t.Helper()
		r := p.Bot("POST", c+path, body)
		var op graph.Operation
		r.JSON(t, &op)
		if r.StatusCode != 200 {
			t.Fatalf("%s: %s %s", path, r.Status, r.Body)
		}
		var done graph.Operation
		p.Hook.Wait(t, in.ID, 20*time.Second, "operation "+op.ID, func(ns []calltest.Notification) bool {
			for _, n := range ns {
				if strings.HasSuffix(n.ResourceURL, "/operations/"+op.ID) {
					done = n.Operation(t)
					return true
				}
			}
			return false
		})
		return done
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(calltest.WAV(calltest.Pattern(1000, 3, 2), 8000))
	}))
	defer srv.Close()
	operation("/playPrompt", map[string]any{"prompts": []any{map[string]any{"@odata.type": "#microsoft.graph.mediaPrompt",
		"mediaInfo": map[string]any{"@odata.type": "#microsoft.graph.mediaInfo", "uri": srv.URL + "/p.wav", "resourceId": "p"}}}})
	rec := operation("/recordResponse", map[string]any{"maxRecordDurationInSeconds": 2, "initialSilenceTimeoutInSeconds": 5,
		"maxSilenceTimeoutInSeconds": 5, "playBeep": false})
	if rec.Status != graph.OperationCompleted || rec.RecordingLocation == nil {
		t.Fatalf("recordResponse: %+v", rec)
	}
	id := (*rec.RecordingLocation)[strings.LastIndex(*rec.RecordingLocation, "/")+1:]

	view := func() console.Call {
		for _, call := range p.Node.Console.Snapshot() {
			if call.ID == in.ID {
				return call
			}
		}
		t.Fatalf("the console does not know call %s", in.ID)
		return console.Call{}
	}
	v := view()
	if len(v.Recordings) != 1 || v.Recordings[0].ID != id || v.Recordings[0].URL != "/console/calls/"+in.ID+"/recordings/"+id {
		t.Fatalf("recordings on the console: %+v, want %s", v.Recordings, id)
	}
	resp, body := get(t, p, v.Recordings[0].URL, calltest.Operator, calltest.OperatorPassword)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "audio/wav" || !bytes.HasPrefix(body, []byte("RIFF")) || len(body) < 44+2*8000 {
		t.Fatalf("the recording through the console: %s %s, %d bytes", resp.Status, resp.Header.Get("Content-Type"), len(body))
	}
	for _, bad := range []struct {
		path, user, pass string
		want             int
	}{
		{v.Recordings[0].URL, "", "", 401},
		{v.Recordings[0].URL, calltest.Operator, "wrong", 401},
		{v.Recordings[0].URL, calltest.BotID, calltest.Secret, 401},
		{"/console/calls/" + in.ID + "/recordings/0123456789abcdef0123456789abcdef", calltest.Operator, calltest.OperatorPassword, 404},
		{"/console/calls/another-call/recordings/" + id, calltest.Operator, calltest.OperatorPassword, 404},
	} {
		if resp, _ := get(t, p, bad.path, bad.user, bad.pass); resp.StatusCode != bad.want {
			t.Errorf("GET %s as %q: %s, want %d", bad.path, bad.user, resp.Status, bad.want)
		}
	}
	// The bot's own download still needs its token.
	if r := p.Do(calltest.Req{Method: "GET", Path: "/recordings/" + id}); r.StatusCode != 401 {
		t.Errorf("GET /recordings/%s without its token: %s", id, r.Status)
	}

	// The phone holds the call (a re-INVITE, sendonly), then hangs up.
	offer := string(m.LocalSDP())
	if code, _, err := res.c.ReInviteAnswer(ctx, []byte(strings.Replace(offer, "a=sendrecv", "a=sendonly", 1))); err != nil || code != 200 {
		t.Fatalf("hold: %d %v", code, err)
	}
	if err := res.c.HangUp(ctx); err != nil {
		t.Fatal(err)
	}
	p.Hook.WaitState(t, in.ID, graph.StateTerminated)
	timeline := func(c console.Call) string {
		var lines []string
		for _, e := range c.Timeline {
			lines = append(lines, e.Kind+": "+e.Text)
		}
		return strings.Join(lines, "\n")
	}
	all := timeline(view())
	for _, want := range []string{
		"sip: INVITE received from", "(WebRTC offer)", "sip: 180 Ringing sent for the INVITE", "sip: 200 OK sent for the INVITE", "sip: ACK received",
		"media: prompt 1 of 1 started (playPrompt", "media: playPrompt completed", "media: recording started", "media: recording stopped: maxRecordDurationReached",
		"media: recording stored", "sip: re-INVITE (hold) received", "sip: 200 OK sent for the INVITE",
		"sip: BYE received", "sip: 200 OK sent for the BYE",
	} {
		if !strings.Contains(all, want) {
			t.Errorf("no %q on the timeline:\n%s", want, all)
		}
	}
	if strings.Contains(all, calltest.EvePassword) || strings.Contains(all, "Digest") || strings.Contains(all, *rec.RecordingAccessToken) {
		t.Errorf("the timeline shows a secret:\n%s", all)
	}
	if testing.Verbose() {
		t.Logf("timeline:\n%s", all)
	}

	// The bot calls the phone: our INVITE and the responses it gets, our
	// BYE and its answer.
	out := p.CreateCall(calltest.EveID)
	ringing, err := ph.Ringing(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m2, err := ringing.Answer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	p.Hook.WaitState(t, out.ID, graph.StateEstablished)
	if r := p.Bot("DELETE", "/v1.0/communications/calls/"+out.ID, nil); r.StatusCode != 204 {
		t.Fatalf("hang up: %s", r.Status)
	}
	p.Hook.WaitState(t, out.ID, graph.StateTerminated)
	wants := []string{"sip: INVITE sent to sip:eve@", "sip: 200 OK received for the INVITE", "sip: BYE sent", "sip: 200 OK received for the BYE"}
	for deadline := time.Now().Add(10 * time.Second); ; {
		got := ""
		for _, c := range p.Node.Console.Snapshot() {
			if c.ID == out.ID {
				got = timeline(c)
			}
		}
		missing := ""
		for _, want := range wants {
			if !strings.Contains(got, want) {
				missing = want
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) { // the BYE's answer may come just after the call's end
			t.Fatalf("no %q on the outgoing call's timeline:\n%s", missing, got)
		}
		select {
		case <-ctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
}
