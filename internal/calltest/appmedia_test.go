package calltest_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// appCall is a create-call body with app-hosted media.
func appCall(callback string, userIDs ...string) map[string]any {
	body := calltest.CallTo(callback, userIDs[0])
	var targets []any
	for _, id := range userIDs {
		targets = append(targets, map[string]any{"identity": map[string]any{"user": map[string]any{"id": id}}})
	}
	body["targets"] = targets
	body["mediaConfig"] = map[string]any{"@odata.type": "#microsoft.graph.appHostedMediaConfig", "blob": "opaque"}
	return body
}

func mediaURL(p *calltest.Platform, callID string) string {
	return "ws" + strings.TrimPrefix(p.URL, "http") + calls + "/" + callID + "/media"
}

// sock is the test's media socket client: every message it reads, kept.
type sock struct {
	t    *testing.T
	conn net.Conn
	rd   io.Reader
	wmu  sync.Mutex

	mu     sync.Mutex
	texts  []map[string]any
	frames map[uint32][]int16 // PCM by source, in order
	seqs   map[uint32][]uint32
	closed *wsutil.ClosedError
	change chan struct{}
	echo   bool
	first  bool // nothing read yet
	done   chan struct{}
}

func dialMedia(t *testing.T, p *calltest.Platform, callID, token string) (*sock, error) {
	t.Helper()
	d := ws.Dialer{Protocols: []string{"switchboard.media.v1"}, Header: ws.HandshakeHeaderHTTP(http.Header{"Authorization": {"Bearer " + token}})}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, br, hs, err := d.Dial(ctx, mediaURL(p, callID))
	if err != nil {
		return nil, err
	}
	if hs.Protocol != "switchboard.media.v1" {
		t.Errorf("subprotocol %q", hs.Protocol)
	}
	var rd io.Reader = conn
	if br != nil {
		rd = io.MultiReader(br, conn) // what the handshake read past itself
	}
	s := &sock{t: t, conn: conn, rd: rd, frames: map[uint32][]int16{}, seqs: map[uint32][]uint32{}, change: make(chan struct{}, 1), done: make(chan struct{}), first: true}
	t.Cleanup(func() { conn.Close(); <-s.done })
	go s.read()
	return s, nil
}

func (s *sock) read() {
	defer close(s.done)
	for {
		b, op, err := wsutil.ReadServerData(struct {
			io.Reader
			io.Writer
		}{s.rd, s.conn})
		s.mu.Lock()
		if err != nil {
			var ce wsutil.ClosedError
			if errors.As(err, &ce) {
				s.closed = &ce
			} else {
				s.closed = &wsutil.ClosedError{Code: 1006, Reason: err.Error()}
			}
			s.mu.Unlock()
			s.signal()
			return
		}
		if s.first {
			// The contract: hello comes before anything else.
			s.first = false
			if op != ws.OpText || !strings.Contains(string(b), `"type":"hello"`) {
				s.t.Errorf("the first message is not hello: %v %.80q", op, b)
			}
		}
		switch op {
		case ws.OpText:
			var m map[string]any
			if json.Unmarshal(b, &m) != nil {
				s.t.Errorf("a text message that is not JSON: %q", b)
			}
			s.texts = append(s.texts, m)
		case ws.OpBinary:
			if len(b) != 656 {
				s.t.Errorf("a frame of %d bytes", len(b))
				break
			}
			src := binary.LittleEndian.Uint32(b)
			s.seqs[src] = append(s.seqs[src], binary.LittleEndian.Uint32(b[4:]))
			for i := 0; i < 320; i++ {
				s.frames[src] = append(s.frames[src], int16(binary.LittleEndian.Uint16(b[16+2*i:])))
			}
			if s.echo && src == 0 {
				go s.send(ws.OpBinary, append([]byte(nil), b...))
			}
		}
		s.mu.Unlock()
		s.signal()
	}
}

func (s *sock) signal() {
	select {
	case s.change <- struct{}{}:
	default:
	}
}

func (s *sock) send(op ws.OpCode, b []byte) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	_ = wsutil.WriteClientMessage(s.conn, op, b)
}

// wait waits until cond holds of what was read.
func (s *sock) wait(what string, d time.Duration, cond func(s *sock) bool) {
	s.t.Helper()
	deadline := time.After(d)
	for {
		s.mu.Lock()
		ok := cond(s)
		s.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-s.change:
		case <-deadline:
			s.mu.Lock()
			defer s.mu.Unlock()
			s.t.Fatalf("media socket: no %s within %v (texts %v, closed %v)", what, d, s.texts, s.closed)
		}
	}
}

// text returns the first message of type typ, nil if none.
func (s *sock) text(typ string) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.textLocked(typ)
}

func (s *sock) textLocked(typ string) map[string]any {
	for _, m := range s.texts {
		if m["type"] == typ {
			return m
		}
	}
	return nil
}

func (s *sock) waitClosed(code ws.StatusCode) *wsutil.ClosedError {
	s.t.Helper()
	s.wait("close", 10*time.Second, func(s *sock) bool { return s.closed != nil })
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed.Code != code {
		s.t.Errorf("closed with %d %q, want %d", s.closed.Code, s.closed.Reason, code)
	}
	return s.closed
}

// tone16 is 20 ms frames of a sine at 16 kHz, as the socket carries them.
func tone16(freq float64, frames int, amp float64) [][]byte {
	out := make([][]byte, frames)
	for f := range out {
		b := make([]byte, 656)
		for i := 0; i < 320; i++ {
			v := amp * math.Sin(2*math.Pi*freq*float64(f*320+i)/16000)
			binary.LittleEndian.PutUint16(b[16+2*i:], uint16(int16(v)))
		}
		out[f] = b
	}
	return out
}

// level16 is toneLevel at 16 kHz.
func level16(pcm []int16, freq float64) float64 {
	if len(pcm) == 0 {
		return 0
	}
	k := 2 * math.Cos(2*math.Pi*freq/16000)
	var s1, s2, total float64
	for _, v := range pcm {
		x := float64(v)
		s1, s2 = x+k*s1-s2, s1
		total += x * x
	}
	if total == 0 {
		return 0
	}
	return 2 * (s1*s1 + s2*s2 - k*s1*s2) / (float64(len(pcm)) * total)
}

// Who may open a media socket, and what a bad message does: refused
// before the upgrade with Graph errors; a second socket replaces the
// first; a wrong frame or an unknown message closes the socket, not the
// call; the call's end is a bye with its resultInfo.
func TestMediaSocketContract(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	// A service-mode application may not host media.
	if r := p.Do(calltest.Req{Method: "POST", Path: calls, Token: p.Token(calltest.Bot2ID, calltest.TenantID), Body: appCall(p.Hook.URL, calltest.AliceID)}); r.StatusCode != 400 ||
		!strings.Contains(string(r.Body), "mediaMode") {
		t.Errorf("a service app creating an app-hosted call: %s %s", r.Status, r.Body)
	}
	c := createCall(t, p, appCall(p.Hook.URL, calltest.AliceID))
	if c.MediaConfig == nil || !c.MediaConfig.AppHosted() || c.MediaConfig.Blob != "opaque" {
		t.Errorf("mediaConfig echoed %+v", c.MediaConfig)
	}
	svc := p.CreateCall(calltest.BobID)

	get := func(path, token string, upgrade bool) (int, string) {
		req, _ := http.NewRequest("GET", p.URL+path, nil)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if upgrade {
			req.Header.Set("Connection", "Upgrade")
			req.Header.Set("Upgrade", "websocket")
			req.Header.Set("Sec-WebSocket-Version", "13")
			req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
		}
		resp, err := p.Client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var e struct {
			Error struct{ Code string } `json:"error"`
		}
		_ = json.NewDecoder(resp.Body).Decode(&e)
		return resp.StatusCode, e.Error.Code
	}
	bot := p.Token(calltest.BotID, calltest.TenantID)
	for _, tc := range []struct {
		name, path, token string
		upgrade           bool
		status            int
		code              string
	}{
		{"no token", calls + "/" + c.ID + "/media", "", true, 401, "InvalidAuthenticationToken"},
		{"bad token", calls + "/" + c.ID + "/media", "nope", true, 401, "InvalidAuthenticationToken"},
		{"another app", calls + "/" + c.ID + "/media", p.Token(calltest.Bot2ID, calltest.TenantID), true, 404, "itemNotFound"},
		{"another tenant", calls + "/" + c.ID + "/media", p.Token(calltest.OtherBotID, calltest.OtherTenantID), true, 404, "itemNotFound"},
		{"no permission", calls + "/" + c.ID + "/media", p.Token(calltest.WeakBotID, calltest.TenantID), true, 404, "itemNotFound"},
		{"service-hosted call", calls + "/" + svc.ID + "/media", bot, true, 400, "BadRequest"},
		{"not a websocket", calls + "/" + c.ID + "/media", bot, false, 400, "BadRequest"},
		{"no such call", calls + "/4d2a9e51-0000-4000-8000-000000000000/media", bot, true, 404, "itemNotFound"},
	} {
		if st, code := get(tc.path, tc.token, tc.upgrade); st != tc.status || code != tc.code {
			t.Errorf("%s: %d %s, want %d %s", tc.name, st, code, tc.status, tc.code)
		}
	}

	s1, err := dialMedia(t, p, c.ID, bot)
	if err != nil {
		t.Fatal(err)
	}
	s1.wait("hello", 5*time.Second, func(s *sock) bool { return s.textLocked("hello") != nil })
	hello := s1.text("hello")
	if hello["callId"] != c.ID {
		t.Errorf("hello %v", hello)
	}
	f := hello["format"].(map[string]any)
	if f["encoding"] != "s16le" || f["sampleRate"] != 16000.0 || f["channels"] != 1.0 || f["frameMs"] != 20.0 {
		t.Errorf("hello format %v", f)
	}
	p.Hook.WaitState(t, c.ID, graph.StateEstablished)
	// Alice is simulated without audio: the mix is silence, every 20 ms.
	s1.wait("frames", 5*time.Second, func(s *sock) bool { return len(s.seqs[0]) >= 10 })

	// A second socket replaces the first.
	s2, err := dialMedia(t, p, c.ID, bot)
	if err != nil {
		t.Fatal(err)
	}
	if ce := s1.waitClosed(4001); ce.Reason != "replaced" {
		t.Errorf("the replaced socket's reason %q", ce.Reason)
	}
	s2.wait("frames on the second socket", 5*time.Second, func(s *sock) bool { return len(s.seqs[0]) >= 5 })

	// Bad messages close the socket, not the call.
	s2.send(ws.OpBinary, make([]byte, 100))
	s2.waitClosed(1007)
	s3, _ := dialMedia(t, p, c.ID, bot)
	s3.send(ws.OpText, []byte(`{"type":"dance"}`))
	s3.waitClosed(1003)
	s4, _ := dialMedia(t, p, c.ID, bot)
	s4.send(ws.OpText, []byte(`{"type":"subscribe","sourceIds":"some"}`))
	s4.waitClosed(1007)
	if r := p.Bot("GET", calls+"/"+c.ID, nil); r.StatusCode != 200 || !strings.Contains(string(r.Body), `"established"`) {
		t.Fatalf("the call after bad messages: %s %s", r.Status, r.Body)
	}
	// Service-hosted actions are refused on it.
	if r := p.Bot("POST", calls+"/"+c.ID+"/playPrompt", prompts("http://127.0.0.1:1/x.wav")); r.StatusCode != 400 {
		t.Errorf("playPrompt on an app-hosted call: %s", r.Status)
	}
	var roster []graph.Participant
	p.Bot("GET", calls+"/"+c.ID+"/participants", nil).JSON(t, &struct {
		Value *[]graph.Participant `json:"value"`
	}{&roster})
	if len(roster) < 2 {
		t.Errorf("roster %+v", roster)
	}
	for _, pt := range roster {
		if pt.ID != c.MyParticipantID {
			if r := p.Bot("POST", calls+"/"+c.ID+"/participants/"+pt.ID+"/startHoldMusic", map[string]any{}); r.StatusCode != 400 {
				t.Errorf("startHoldMusic on an app-hosted call: %s %s", r.Status, r.Body)
			}
		}
	}

	// The call's end: bye, then 1000.
	s5, _ := dialMedia(t, p, c.ID, bot)
	s5.wait("hello", 5*time.Second, func(s *sock) bool { return s.textLocked("hello") != nil })
	if r := p.Bot("DELETE", calls+"/"+c.ID, nil); r.StatusCode != 204 {
		t.Fatalf("hang up: %s", r.Status)
	}
	s5.waitClosed(1000)
	bye := s5.text("bye")
	if bye == nil {
		t.Fatal("no bye before the close")
	}
	if ri := bye["resultInfo"].(map[string]any); ri["code"] != 200.0 || ri["subcode"] != 5001.0 {
		t.Errorf("bye %v", bye)
	}
}

// A call whose bot never opens the media socket, or leaves it closed,
// ends after media.socket.reconnectWindow with 500/1005.
func TestMediaSocketNeverOpened(t *testing.T) {
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		c.Media.Socket.ReconnectWindow = config.Duration(time.Second)
	}})
	c := createCall(t, p, appCall(p.Hook.URL, calltest.AliceID))
	n := p.Hook.WaitState(t, c.ID, graph.StateTerminated)
	var end graph.Call
	if err := json.Unmarshal(n.ResourceData, &end); err != nil {
		t.Fatal(err)
	}
	if end.ResultInfo == nil || end.ResultInfo.Code != 500 || end.ResultInfo.Subcode != 1005 {
		t.Fatalf("ended with %+v", end.ResultInfo)
	}
	t.Logf("resultInfo: %s", end.ResultInfo.Message)
}

// A SIP phone in an app-hosted call: the bot hears the phone's tone in
// the mix and, subscribed, as the phone's own source named in the roster;
// what the bot sends, the phone hears.
func TestMediaSocketPhone(t *testing.T) {
	calltest.NeedPeer(t, "baresip", "baresip")
	p := calltest.Start(t, calltest.Options{Edit: withGroupPhones})
	fay := groupPhones[0]
	phones := startPhones(t, p, 30*time.Second, fay)
	c := createCall(t, p, appCall(p.Hook.URL, fay.id))
	s := openMedia(t, p, c.ID)
	s.send(ws.OpText, []byte(`{"type":"subscribe","sourceIds":"all"}`))
	p.Hook.WaitState(t, c.ID, graph.StateEstablished)
	s.wait("a roster naming Fay", 10*time.Second, func(s *sock) bool {
		for _, m := range s.texts {
			if m["type"] == "roster" || m["type"] == "hello" {
				for _, e := range m["roster"].([]any) {
					if e.(map[string]any)["displayName"] == "Fay" {
						return true
					}
				}
			}
		}
		return false
	})
	var faySrc uint32
	s.mu.Lock()
	for _, m := range s.texts {
		if m["type"] == "roster" || m["type"] == "hello" {
			for _, e := range m["roster"].([]any) {
				if e := e.(map[string]any); e["displayName"] == "Fay" {
					n, _ := strconv.ParseUint(e["sourceId"].(string), 10, 32)
					faySrc = uint32(n)
				}
			}
		}
	}
	s.mu.Unlock()
	if faySrc == 0 {
		t.Fatal("no sourceId for Fay")
	}
	s.speak(1400, 150) // 3 s
	s.wait("3 s of Fay's own stream", 15*time.Second, func(s *sock) bool { return len(s.frames[faySrc]) >= 150*320 })

	s.mu.Lock()
	mix, own := s.frames[0], s.frames[faySrc]
	seqs := s.seqs[faySrc]
	s.mu.Unlock()
	// The stream runs on, one sequence number a frame. A test reader
	// starved of CPU (-race, a loaded machine) may lose a few frames, as
	// any slow bot does, by design; more than one in twenty is a fault.
	missing := 0
	for i := 1; i < len(seqs); i++ {
		if d := seqs[i] - seqs[i-1]; d != 1 {
			if d == 0 || d > 50 {
				t.Fatalf("Fay's stream: sequence %d after %d", seqs[i], seqs[i-1])
			}
			t.Logf("Fay's stream: sequence %d after %d (a slow reader's loss)", seqs[i], seqs[i-1])
			missing += int(d) - 1
		}
	}
	if missing > len(seqs)/20 {
		t.Errorf("Fay's stream: %d frames missing of %d", missing, len(seqs)+missing)
	}
	if l := level16(mix[len(mix)-100*320:], fay.freq); l < 0.3 {
		t.Errorf("the mix carries Fay's %v Hz at %.3f", fay.freq, l)
	}
	if l := level16(own[len(own)-100*320:], fay.freq); l < 0.3 {
		t.Errorf("Fay's own stream carries her %v Hz at %.3f", fay.freq, l)
	}
	if l := level16(mix, 1400); l > 0.01 {
		t.Errorf("the bot hears itself in the mix (%.3f)", l)
	}
	if r := p.Bot("DELETE", calls+"/"+c.ID, nil); r.StatusCode != 204 {
		t.Fatalf("hang up: %s", r.Status)
	}
	phones[0].WaitOutput(t, "terminated", 10*time.Second)
	if l := toneLevel(phones[0].Heard(t), 1400); l < 0.05 {
		t.Errorf("Fay did not hear the bot's 1400 Hz (%.3f)", l)
	}
}

// sourcesByName reads the newest roster the socket got: sourceId by
// display name.
func (s *sock) sourcesByName() map[string]uint32 {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]uint32{}
	for _, m := range s.texts {
		if m["type"] != "roster" && m["type"] != "hello" {
			continue
		}
		clear(out)
		for _, e := range m["roster"].([]any) {
			e := e.(map[string]any)
			n, _ := strconv.ParseUint(e["sourceId"].(string), 10, 32)
			out[e["displayName"].(string)] = uint32(n)
		}
	}
	return out
}

// An app-hosted group call of three phones, each sending its own tone:
// subscribed to all, the bot gets three unmixed streams, each carrying
// only its own phone's tone and labelled in the roster with the right
// participant, besides the mix of all three; what the bot says, every
// phone hears. A reconnect carries the media clock on.
func TestMediaSocketGroupCall(t *testing.T) {
	calltest.NeedPeer(t, "baresip", "baresip")
	p := calltest.Start(t, calltest.Options{Edit: withGroupPhones})
	phones := startPhones(t, p, 40*time.Second, groupPhones...)
	var ids []string
	for _, ph := range groupPhones {
		ids = append(ids, ph.id)
	}
	c := createCall(t, p, appCall(p.Hook.URL, ids...))
	tok := p.Token(calltest.BotID, calltest.TenantID)
	s, err := dialMedia(t, p, c.ID, tok)
	if err != nil {
		t.Fatal(err)
	}
	waitRoster(t, p, c.ID, "Test bot", "Fay", "Gus", "Hal")
	src := s.phonesInRoster()
	s.send(ws.OpText, []byte(`{"type":"subscribe","sourceIds":"all"}`))
	s.speak(2300, 200)
	s.waitStreams(src)
	s.checkStreams(src)
	s.mu.Lock()
	lastSeq := s.seqs[0][len(s.seqs[0])-1]
	s.mu.Unlock()

	// Reconnect: the new socket's frames carry on the old one's clock.
	s.conn.Close()
	s2, err := dialMedia(t, p, c.ID, tok)
	if err != nil {
		t.Fatal(err)
	}
	s2.wait("frames after reconnecting", 5*time.Second, func(s *sock) bool { return len(s.seqs[0]) > 0 })
	s2.mu.Lock()
	first := s2.seqs[0][0]
	s2.mu.Unlock()
	if first <= lastSeq {
		t.Errorf("after reconnecting the sequence restarted at %d (was at %d)", first, lastSeq)
	}

	if r := p.Bot("DELETE", calls+"/"+c.ID, nil); r.StatusCode != 204 {
		t.Fatalf("hang up: %s", r.Status)
	}
	for i, ph := range groupPhones {
		phones[i].WaitOutput(t, "terminated", 10*time.Second)
		if l := toneLevel(phones[i].Heard(t), 2300); l < 0.02 {
			t.Errorf("%s did not hear the bot's 2300 Hz (%.3f)", ph.name, l)
		}
	}
}

// The keys a participant presses reach the socket as dtmf messages, with
// the participant's source and id.
func TestMediaSocketDTMF(t *testing.T) {
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		for i, u := range c.Tenants[0].Users {
			if u.ID == calltest.BobID {
				c.Tenants[0].Users[i].Simulation.AnswerAfter = config.Duration(time.Second)
			}
		}
	}})
	c := createCall(t, p, appCall(p.Hook.URL, calltest.BobID))
	s := openMedia(t, p, c.ID)
	var keys []string
	s.wait("Bob's three keys", 10*time.Second, func(s *sock) bool {
		keys = keys[:0]
		for _, m := range s.texts {
			if m["type"] == "dtmf" {
				keys = append(keys, m["tone"].(string))
				if m["participantId"] == "" || m["sourceId"] == "" {
					t.Errorf("dtmf without its participant: %v", m)
				}
			}
		}
		return len(keys) >= 3
	})
	if strings.Join(keys, "") != "12#" {
		t.Errorf("keys %v, want 1 2 #", keys)
	}
}

// A bot joins a meeting with app-hosted media and invites three phones:
// it receives each phone's own stream under its roster sourceId, and
// what it says every phone hears.
func TestMediaSocketMeeting(t *testing.T) {
	calltest.NeedPeer(t, "baresip", "baresip")
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) { withMeetings(c); withGroupPhones(c) }})
	phones := startPhones(t, p, 40*time.Second, groupPhones...)
	m := meeting(t, p.Bot("POST", userMeetings(calltest.AliceID), map[string]any{"subject": "App media"}), 201)
	u, _ := url.Parse(m.JoinWebURL)
	path, _ := url.PathUnescape(u.EscapedPath())
	segs := strings.Split(strings.TrimPrefix(path, "/l/meetup-join/"), "/")
	c := createCall(t, p, map[string]any{
		"@odata.type": "#microsoft.graph.call", "callbackUri": p.Hook.URL, "requestedModalities": []string{"audio"},
		"mediaConfig": map[string]any{"@odata.type": "#microsoft.graph.appHostedMediaConfig"},
		"chatInfo":    map[string]any{"threadId": segs[0], "messageId": segs[1]},
		"meetingInfo": map[string]any{"@odata.type": "#microsoft.graph.organizerMeetingInfo",
			"organizer": map[string]any{"user": map[string]any{"id": calltest.AliceID}}},
	})
	s := openMedia(t, p, c.ID)
	s.send(ws.OpText, []byte(`{"type":"subscribe","sourceIds":"all"}`))
	var invitees []any
	for _, ph := range groupPhones {
		invitees = append(invitees, map[string]any{"identity": map[string]any{"user": map[string]any{"id": ph.id}}})
	}
	if r := p.Bot("POST", calls+"/"+c.ID+"/participants/invite", map[string]any{"participants": invitees}); r.StatusCode != 200 {
		t.Fatalf("invite: %s %s", r.Status, r.Body)
	}
	waitRoster(t, p, c.ID, "Test bot", "Fay", "Gus", "Hal")
	src := s.phonesInRoster()
	s.speak(2300, 200)
	s.waitStreams(src)
	s.checkStreams(src)
	if r := p.Bot("DELETE", calls+"/"+c.ID, nil); r.StatusCode != 204 {
		t.Fatalf("hang up: %s", r.Status)
	}
	s.waitClosed(1000)
	for i, ph := range groupPhones {
		// The phones stay in the meeting without the bot: they hang up.
		phones[i].Command(t, "hangup", "")
		phones[i].WaitOutput(t, "terminated", 10*time.Second)
		if l := toneLevel(phones[i].Heard(t), 2300); l < 0.02 {
			t.Errorf("%s did not hear the bot's 2300 Hz (%.3f)", ph.name, l)
		}
	}
}

// A bot that stops reading loses frames, counted, rather than the
// platform queueing its audio: once it reads again, the stats say so and
// the sequence jumps.
func TestMediaSocketSlowBotDrops(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	c := createCall(t, p, appCall(p.Hook.URL, calltest.AliceID))
	d := ws.Dialer{Protocols: []string{"switchboard.media.v1"},
		Header: ws.HandshakeHeaderHTTP(http.Header{"Authorization": {"Bearer " + p.Token(calltest.BotID, calltest.TenantID)}})}
	conn, br, _, err := d.Dial(t.Context(), mediaURL(p, c.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.(*net.TCPConn).SetReadBuffer(4 << 10)
	var rd io.Reader = conn
	if br != nil {
		rd = io.MultiReader(br, conn)
	}
	p.Hook.WaitState(t, c.ID, graph.StateEstablished)
	// The bot reads nothing for 3 s: the kernel's buffers fill (about a
	// second of audio), then the platform's ring, then frames are dropped.
	// Then it reads everything: the stats message (every 5 s) reports the
	// drops, and the sequence jumps.
	time.Sleep(3 * time.Second) // the slow bot's behaviour, not a wait for anything
	_ = conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	var lastSeq uint32
	gap, dropped := false, false
	for !gap || !dropped {
		b, op, err := wsutil.ReadServerData(struct {
			io.Reader
			io.Writer
		}{rd, conn})
		if err != nil {
			t.Fatalf("stats with drops %v, a gap in the sequence %v: %v", dropped, gap, err)
		}
		if op == ws.OpBinary {
			seq := binary.LittleEndian.Uint32(b[4:])
			if lastSeq != 0 && seq != lastSeq+1 {
				gap = true
			}
			lastSeq = seq
			continue
		}
		var st struct {
			Type  string
			ToBot struct{ Sent, Dropped uint64 }
		}
		if json.Unmarshal(b, &st) == nil && st.Type == "stats" && st.ToBot.Dropped > 0 {
			t.Logf("stats: %+v", st.ToBot)
			dropped = true
		}
	}
}

// A two-party app-hosted call that invites someone becomes a group call
// on the same conference: the socket stays, its roster grows.
func TestMediaSocketTwoPartyBecomesGroup(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	c := createCall(t, p, appCall(p.Hook.URL, calltest.AliceID))
	s := openMedia(t, p, c.ID)
	p.Hook.WaitState(t, c.ID, graph.StateEstablished)
	if r := p.Bot("POST", calls+"/"+c.ID+"/participants/invite", map[string]any{"participants": []any{
		map[string]any{"identity": map[string]any{"user": map[string]any{"id": calltest.BobID}}},
	}}); r.StatusCode != 200 {
		t.Fatalf("invite: %s %s", r.Status, r.Body)
	}
	waitRoster(t, p, c.ID, "Test bot", "Alice", "Bob")
	s.wait("Alice and Bob in the socket's roster", 10*time.Second, func(s *sock) bool {
		for _, m := range s.texts {
			if m["type"] == "roster" && len(m["roster"].([]any)) == 2 {
				return true
			}
		}
		return false
	})
	s.mu.Lock()
	n := len(s.seqs[0])
	s.mu.Unlock()
	s.wait("frames going on", 5*time.Second, func(s *sock) bool { return len(s.seqs[0]) > n+10 })
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed != nil {
		t.Errorf("the socket closed: %+v", s.closed)
	}
}

// phonesInRoster waits until the socket's roster names the three group
// phones and returns their sources by name.
func (s *sock) phonesInRoster() map[string]uint32 {
	s.t.Helper()
	s.wait("the three phones in the socket's roster", 10*time.Second, func(s *sock) bool {
		for _, m := range s.texts {
			if (m["type"] == "roster" || m["type"] == "hello") && len(m["roster"].([]any)) == len(groupPhones) {
				return true
			}
		}
		return false
	})
	return s.sourcesByName()
}

// speak sends frames of a tone, paced at 20 ms, from a goroutine.
func (s *sock) speak(freq float64, frames int) {
	go func() {
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for _, f := range tone16(freq, frames, 8000) {
			s.send(ws.OpBinary, f)
			<-tick.C
		}
	}()
}

// waitStreams waits for 2 s of every group phone's own stream.
func (s *sock) waitStreams(src map[string]uint32) {
	s.t.Helper()
	s.wait("2 s of every phone's stream", 15*time.Second, func(s *sock) bool {
		for _, ph := range groupPhones {
			if len(s.frames[src[ph.name]]) < 100*320 {
				return false
			}
		}
		return true
	})
}

// checkStreams checks the last 1.5 s of each phone's own stream carries
// its tone and no other phone's, and the mix every phone's.
func (s *sock) checkStreams(src map[string]uint32) {
	s.t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	mix := s.frames[0]
	for _, ph := range groupPhones {
		pcm := s.frames[src[ph.name]]
		pcm = pcm[len(pcm)-75*320:]
		for _, other := range groupPhones {
			l := level16(pcm, other.freq)
			switch {
			case other == ph && l < 0.3:
				s.t.Errorf("%s's stream (source %d) carries %v Hz at %.3f, want it", ph.name, src[ph.name], other.freq, l)
			case other != ph && l > 0.01:
				s.t.Errorf("%s's stream (source %d) carries %s's %v Hz at %.3f", ph.name, src[ph.name], other.name, other.freq, l)
			}
		}
		if l := level16(mix[len(mix)-75*320:], ph.freq); l < 0.05 {
			s.t.Errorf("the mix carries %s's %v Hz at %.3f", ph.name, ph.freq, l)
		}
	}
}

// createCall creates a call for the bot and returns it (201 or the test
// fails).
func createCall(t *testing.T, p *calltest.Platform, body any) graph.Call {
	t.Helper()
	r := p.Bot("POST", calls, body)
	if r.StatusCode != 201 {
		t.Fatalf("create: %s %s", r.Status, r.Body)
	}
	var c graph.Call
	r.JSON(t, &c)
	return c
}

// openMedia opens the call's media socket with the bot's token.
func openMedia(t *testing.T, p *calltest.Platform, callID string) *sock {
	t.Helper()
	s, err := dialMedia(t, p, callID, p.Token(calltest.BotID, calltest.TenantID))
	if err != nil {
		t.Fatal(err)
	}
	return s
}
