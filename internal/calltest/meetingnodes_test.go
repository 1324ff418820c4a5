package calltest_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/bottest"
	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/simulated"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Meetings across nodes (callctl/cascade.go): a meeting has one room,
// mixed on the node that opened it. Two nodes share one NATS; both have
// the meetings and audio handsets for their simulated users.
func meetingNodes(t *testing.T, lease time.Duration) (a, b *calltest.Platform, m graph.OnlineMeeting) {
	t.Helper()
	a, b = twoNodes(t, lease, func(c *config.Config) {
		withMeetings(c)
		c.Simulator.Audio = true
	})
	yes := true
	m = meeting(t, a.Bot("POST", userMeetings(calltest.AliceID), map[string]any{"subject": "Across nodes",
		"lobbyBypassSettings": map[string]any{"scope": "everyone", "isDialInBypassEnabled": yes}}), 201)
	return a, b, m
}

// joinThrough has app join meeting m through node p's Graph API, as a bot
// behind a load balancer does when its request lands there.
func joinThrough(t *testing.T, p *calltest.Platform, app string, m graph.OnlineMeeting) graph.Call {
	t.Helper()
	u, _ := url.Parse(m.JoinWebURL)
	path, _ := url.PathUnescape(u.EscapedPath())
	segs := strings.Split(strings.TrimPrefix(path, "/l/meetup-join/"), "/")
	r := p.Do(calltest.Req{Method: "POST", Path: calls, Token: p.Token(app, calltest.TenantID), Body: map[string]any{
		"@odata.type": "#microsoft.graph.call", "callbackUri": p.Hook.URL, "requestedModalities": []string{"audio"},
		"mediaConfig": map[string]any{"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"},
		"chatInfo":    map[string]any{"threadId": segs[0], "messageId": segs[1]},
		"meetingInfo": map[string]any{"@odata.type": "#microsoft.graph.organizerMeetingInfo",
			"organizer": map[string]any{"user": map[string]any{"id": calltest.AliceID}}},
	}})
	if r.StatusCode != 201 {
		t.Fatalf("join through %s: %s %s", p.URL, r.Status, r.Body)
	}
	var call graph.Call
	r.JSON(t, &call)
	if call.ID == "" || call.ChatInfo == nil || call.State != graph.StateEstablishing {
		t.Fatalf("join through %s: %s", p.URL, r.Body)
	}
	return call
}

// dialInThrough has a simulated user dial the meeting's dial-in number on
// node p and key in its conference id.
func dialInThrough(t *testing.T, p *calltest.Platform, user string, m graph.OnlineMeeting) *simulated.Leg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// No keys of the user's own simulation (Bob's "12#"): only the id.
	l, err := p.Node.Sim.DialIn(ctx, simulated.CallOptions{From: user, To: meetingsToll, Simulation: &config.Simulation{}})
	if err != nil {
		t.Fatal(err)
	}
	// Keys count once the platform asks for them.
	waitLeg(t, l, "the dial-in prompt", func(s simulated.LegState) bool { return s.PromptsHeard > 0 })
	if err := l.PressKeys(m.AudioConferencing.ConferenceID+"#", simulated.DefaultDTMFInterval); err != nil {
		t.Fatal(err)
	}
	return l
}

// waitLeg waits for a simulated leg's state to satisfy cond.
func waitLeg(t *testing.T, l *simulated.Leg, what string, cond func(simulated.LegState) bool) simulated.LegState {
	t.Helper()
	timeout := time.NewTimer(20 * time.Second)
	defer timeout.Stop()
	poll := time.NewTicker(50 * time.Millisecond) // heard audio changes every frame: looked at, at most, this often
	defer poll.Stop()
	for {
		changed := l.Changed()
		st := l.State()
		if cond(st) {
			return st
		}
		if st.State == "ended" {
			t.Fatalf("waiting for %s: the leg ended: %+v", what, st)
		}
		select {
		case <-changed:
		case <-poll.C:
		case <-timeout.C:
			t.Fatalf("waiting for %s: %+v", what, st)
		}
	}
}

// sayUntilHeard has from say pcm until to has heard it: someone entering
// a meeting first hears the platform's "you have joined" on their line
// (on the room's node, for a cascaded caller, where the test cannot see
// it end), which stands in for the meeting meanwhile.
func sayUntilHeard(t *testing.T, from, to *simulated.Leg, pcm []int16) {
	t.Helper()
	for try := 0; ; try++ {
		if err := from.Say(pcm); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(time.Duration(len(pcm))*time.Second/8000 + 3*time.Second)
		for time.Now().Before(deadline) {
			if bottest.Similarity(to.Heard(), pcm) >= 0.8 {
				return
			}
			select {
			case <-to.Changed():
			case <-time.After(50 * time.Millisecond):
			}
		}
		if try == 3 {
			t.Fatalf("%s never heard %s (similarity %.2f)", to.State().User, from.State().User, bottest.Similarity(to.Heard(), pcm))
		}
	}
}

// A bot joining through the node that does not mix the meeting gets its
// call created and owned by the node that does, and a caller dialling in
// there is carried to the room by a SIP leg: one roster, everyone hears
// everyone, and hanging up on either node is seen by the bots.
func TestMeetingHasOneRoomAcrossNodes(t *testing.T) {
	a, b, m := meetingNodes(t, 0)

	first := joinThrough(t, a, calltest.BotID, m)
	a.Hook.WaitState(t, first.ID, graph.StateEstablished)
	second := joinThrough(t, b, calltest.Bot2ID, m)
	a.Hook.WaitState(t, second.ID, graph.StateEstablished)
	if na, nb := a.Node.Calls.Live(), b.Node.Calls.Live(); na != 2 || nb != 0 {
		t.Fatalf("live calls: node A %d, node B %d; want both bots' on A, the room's node", na, nb)
	}
	waitRoster(t, a, first.ID, "Second bot", "Test bot")
	waitRoster(t, a, second.ID, "Second bot", "Test bot")

	// A join page on B follows the room on A: woken by A's changes, it
	// reads A's roster.
	woke := make(chan struct{}, 1)
	stop := b.Node.Calls.WatchMeeting(m.ID, func() {
		select {
		case woke <- struct{}{}:
		default:
		}
	})
	defer stop()

	// Bob dials in on B, Alice on A.
	bob := dialInThrough(t, b, calltest.BobID, m)
	waitRoster(t, a, first.ID, "Bob", "Second bot", "Test bot")
	for names := []string(nil); !slices.Contains(names, "Bob"); {
		select {
		case <-woke:
		case <-time.After(10 * time.Second):
			t.Fatalf("node B's watch of the meeting was not woken with Bob in it; its roster: %v", names)
		}
		names = names[:0]
		for _, p := range b.Node.Calls.MeetingRoster(m.ID) {
			_, id := p.Info.Identity.Primary()
			names = append(names, id.DisplayName)
		}
	}
	alice := dialInThrough(t, a, calltest.AliceID, m)
	waitRoster(t, a, first.ID, "Alice", "Bob", "Second bot", "Test bot")
	waitRoster(t, a, second.ID, "Alice", "Bob", "Second bot", "Test bot")
	if n := b.Node.Calls.Live(); n != 0 {
		t.Errorf("node B runs %d calls", n)
	}
	waitLeg(t, alice, "Alice in the meeting", func(s simulated.LegState) bool { return s.PromptsHeard >= 2 && !s.PromptPlaying })

	sayUntilHeard(t, alice, bob, calltest.Pattern(440, 1.5, 71))
	sayUntilHeard(t, bob, alice, calltest.Pattern(620, 1.5, 72))

	// Bob hangs up on B: his cascade leg on A ends, and the bots see it.
	bob.HangUpNow()
	waitRoster(t, a, first.ID, "Alice", "Second bot", "Test bot")
	waitRoster(t, a, second.ID, "Alice", "Second bot", "Test bot")

	// Carol dials in on B too; the second bot removes her through B (the
	// command goes to A, which owns its call and mixes the room): A hangs
	// up her cascade leg, and B hangs her up.
	carol := dialInThrough(t, b, calltest.CarolID, m)
	waitRoster(t, a, second.ID, "Alice", "Carol", "Second bot", "Test bot")
	// A key she presses reaches the bot on the room's node.
	if r := a.Bot("POST", calls+"/"+first.ID+"/subscribeToTone", map[string]any{}); r.StatusCode/100 != 2 {
		t.Fatalf("subscribeToTone: %s %s", r.Status, r.Body)
	}
	if err := carol.PressKeys("5", simulated.DefaultDTMFInterval); err != nil {
		t.Fatal(err)
	}
	a.Hook.Wait(t, first.ID, 20*time.Second, "Carol's key", func(ns []calltest.Notification) bool {
		for _, n := range ns {
			if n.ResourceURL != "/communications/calls/"+first.ID {
				continue
			}
			if c := n.Call(t); c.ToneInfo != nil && c.ToneInfo.Tone == graph.Tone("tone5") {
				return true
			}
		}
		return false
	})
	r := b.Do(calltest.Req{Method: "GET", Path: calls + "/" + second.ID + "/participants", Token: b.Token(calltest.Bot2ID, calltest.TenantID)})
	var ps struct{ Value []graph.Participant }
	r.JSON(t, &ps)
	pid := ""
	for _, p := range ps.Value {
		if _, id := p.Info.Identity.Primary(); id.DisplayName == "Carol" {
			pid = p.ID
		}
	}
	if pid == "" {
		t.Fatalf("no Carol in the roster: %s", r.Body)
	}
	if r := b.Do(calltest.Req{Method: "DELETE", Path: calls + "/" + second.ID + "/participants/" + pid, Token: b.Token(calltest.Bot2ID, calltest.TenantID)}); r.StatusCode != 204 {
		t.Fatalf("remove Carol: %s %s", r.Status, r.Body)
	}
	waitLeg(t, carol, "Carol hung up", func(s simulated.LegState) bool { return s.State == "ended" })
	waitLastRoster(t, a, first.ID, "Alice", "Second bot", "Test bot")

	alice.HangUpNow()
	waitRoster(t, a, first.ID, "Second bot", "Test bot")

	// B counted what it sent on to A.
	metrics := string(b.Do(calltest.Req{Method: "GET", Path: "/metrics"}).Body)
	for _, want := range []string{"switchboard_meeting_joins_forwarded_total 1", `switchboard_meeting_cascades_total{outcome="bridged"} 2`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("node B's metrics lack %q", want)
		}
	}
}

// The room of a meeting whose node is gone is opened afresh by the next
// join, on the node it reaches.
func TestMeetingRoomMovesWhenItsNodeIsLost(t *testing.T) {
	a, b, m := meetingNodes(t, time.Second)

	first := joinThrough(t, b, calltest.BotID, m)
	a.Hook.WaitState(t, first.ID, graph.StateEstablished)
	if n := b.Node.Calls.Live(); n != 1 {
		t.Fatalf("node B runs %d calls, want the bot's", n)
	}
	b.Node.Kill()

	second := joinThrough(t, a, calltest.Bot2ID, m)
	a.Hook.WaitState(t, second.ID, graph.StateEstablished)
	if n := a.Node.Calls.Live(); n != 1 {
		t.Fatalf("node A runs %d calls, want the second bot's", n)
	}
	waitRoster(t, a, second.ID, "Second bot")
	// A caller reaching A now joins the room there.
	alice := dialInThrough(t, a, calltest.AliceID, m)
	waitRoster(t, a, second.ID, "Alice", "Second bot")
	alice.HangUpNow()
	if metrics := string(a.Do(calltest.Req{Method: "GET", Path: "/metrics"}).Body); !strings.Contains(metrics, "switchboard_meeting_room_takeovers_total 1") {
		t.Error("node A did not count the room it took over")
	}
}

// Only another node can carry a person into a meeting: an INVITE whose
// X-Switchboard-Cascade header is not MACed with the nodes' secret, or
// was made for another call, is refused 403 and never reaches the room.
func TestCascadeHeaderNeedsTheNodesMAC(t *testing.T) {
	p := calltest.Start(t, calltest.Options{Edit: withMeetings})
	m := meeting(t, p.Bot("POST", userMeetings(calltest.AliceID), map[string]any{"subject": "Closed"}), 201)
	cid := m.AudioConferencing.ConferenceID
	claims := func(callID string) string {
		data, _ := json.Marshal(map[string]any{"c": cid, "k": callID, "e": time.Now().Add(time.Minute).Unix(),
			"i": map[string]any{"phone": map[string]any{"id": "+15550199", "displayName": "Mallory"}}})
		return base64.RawURLEncoding.EncodeToString(data)
	}
	mac := func(body string) string { return p.Node.SIP.GuestPasses().Password("cascade|" + body) }
	for name, header := range map[string]func(callID string) string{
		"forged MAC":     func(callID string) string { return claims(callID) + ".AAAAAAAAAAAAAAAAAAAAAAAA" },
		"no MAC":         func(callID string) string { return claims(callID) },
		"another call's": func(string) string { b := claims("another-call@127.0.0.1"); return b + "." + mac(b) },
		"another meeting's": func(callID string) string {
			data, _ := json.Marshal(map[string]any{"c": "999999999", "k": callID, "e": time.Now().Add(time.Minute).Unix()})
			b := base64.RawURLEncoding.EncodeToString(data)
			return b + "." + mac(b)
		},
	} {
		if code := rawInvite(t, p.Node.SIP.Addr().String(), "meeting-"+cid, header); code != 403 {
			t.Errorf("%s: INVITE answered %d, want 403", name, code)
		}
	}
	// The same with the MAC of its own claims is a node's: let in (no
	// digest asked), which is what makes the refusals above mean something.
	valid := func(callID string) string { b := claims(callID); return b + "." + mac(b) }
	if code := rawInvite(t, p.Node.SIP.Addr().String(), "meeting-"+cid, valid); code != 200 {
		t.Errorf("a node's cascade INVITE answered %d, want 200", code)
	}
}

// rawInvite sends one INVITE over UDP with the cascade header header(its
// Call-ID) and returns the final status it gets.
func rawInvite(t *testing.T, addr, user string, header func(callID string) string) int {
	t.Helper()
	conn, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	to, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	me := conn.LocalAddr().String()
	callID := fmt.Sprintf("cascade-%d@127.0.0.1", time.Now().UnixNano())
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
	msg := "INVITE sip:" + user + "@" + addr + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + me + ";branch=z9hG4bK" + strconv.FormatInt(time.Now().UnixNano(), 36) + ";rport\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:mallory@127.0.0.1>;tag=m1\r\n" +
		"To: <sip:" + user + "@" + addr + ">\r\n" +
		"Call-ID: " + callID + "\r\n" +
		"CSeq: 1 INVITE\r\n" +
		"Contact: <sip:mallory@" + me + ">\r\n" +
		"X-Switchboard-Cascade: " + header(callID) + "\r\n" +
		"Content-Type: application/sdp\r\n" +
		"Content-Length: " + strconv.Itoa(len(sdp)) + "\r\n\r\n" + sdp
	if _, err := conn.WriteTo([]byte(msg), to); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	for {
		n, _, err := conn.ReadFrom(buf)
		if err != nil {
			t.Fatalf("no final response: %v", err)
		}
		var code int
		if _, err := fmt.Sscanf(string(buf[:n]), "SIP/2.0 %d", &code); err == nil && code >= 200 {
			return code
		}
	}
}

// waitLastRoster waits until the latest roster notification of callID
// names want (waitRoster takes any, which a roster seen before satisfies).
func waitLastRoster(t *testing.T, p *calltest.Platform, callID string, want ...string) {
	t.Helper()
	slices.Sort(want)
	p.Hook.Wait(t, callID, 30*time.Second, fmt.Sprintf("latest roster %v", want), func(ns []calltest.Notification) bool {
		for i := len(ns) - 1; i >= 0; i-- {
			if ns[i].ResourceURL == "/communications/calls/"+callID+"/participants" {
				return slices.Equal(rosterNames(t, ns[i]), want)
			}
		}
		return false
	})
}

// A caller cascaded from another node waits in the lobby of the room's
// node like anyone, and a bot's admit, sent through either node, lets
// them in there.
func TestMeetingLobbyAcrossNodes(t *testing.T) {
	a, b, _ := meetingNodes(t, 0)
	m := meeting(t, a.Bot("POST", userMeetings(calltest.AliceID), map[string]any{"subject": "Lobby"}), 201)
	call := joinThrough(t, a, calltest.BotID, m)
	a.Hook.WaitState(t, call.ID, graph.StateEstablished)

	bob := dialInThrough(t, b, calltest.BobID, m)
	lobby := func(in bool) string {
		var pid string
		a.Hook.Wait(t, call.ID, 20*time.Second, fmt.Sprintf("Bob in the lobby: %v", in), func(ns []calltest.Notification) bool {
			for i := len(ns) - 1; i >= 0; i-- {
				if ns[i].ResourceURL != "/communications/calls/"+call.ID+"/participants" {
					continue
				}
				var ps []graph.Participant
				_ = json.Unmarshal(ns[i].ResourceData, &ps)
				for _, p := range ps {
					if _, id := p.Info.Identity.Primary(); id.DisplayName == "Bob" && p.IsInLobby == in {
						pid = p.ID
						return true
					}
				}
				return false
			}
			return false
		})
		return pid
	}
	pid := lobby(true)
	if r := b.Bot("POST", calls+"/"+call.ID+"/participants/"+pid+"/admit", nil); r.StatusCode != 204 {
		t.Fatalf("admit through B: %s %s", r.Status, r.Body)
	}
	lobby(false)
	bob.HangUpNow()
	waitLastRoster(t, a, call.ID, "Test bot")
}
