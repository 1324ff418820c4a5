package cluster_test

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/bottest"
	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/cluster"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/simulated"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// TestMeetingOneRoomOnThreeReplicas runs a meeting over two nodes of a
// three-server JetStream cluster (every bucket on three replicas, as in
// production): the room's claim is created and read through the
// replicated sb_rooms, a second bot joining through the other node gets
// its call made by the room's node, and a caller dialling in on the other
// node is carried to the room and heard there.
func TestMeetingOneRoomOnThreeReplicas(t *testing.T) {
	l := cluster.Loopback(2, 3)
	startNATS(t, &l)
	var lns []net.Listener
	for _, n := range l.Nodes {
		ln, err := net.Listen("tcp", netip.AddrPortFrom(n.HTTP.Addr(), 0).String())
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
	}
	public := "http://" + lns[0].Addr().String()
	hook := calltest.NewWebhook(t, public, calltest.BotID, calltest.Bot2ID)
	trunkPort := calltest.FreeUDPPort(t, trunkIP.String())
	nodes := make([]*calltest.Platform, len(l.Nodes))
	for i := range l.Nodes {
		l.Nodes[i].SIP = netip.AddrPortFrom(l.Nodes[i].SIP.Addr(), 0)
		edit := editNode(&l, i, public, trunkPort)
		nodes[i] = calltest.Start(t, calltest.Options{Listener: lns[i], Hook: hook, Edit: func(c *config.Config) {
			edit(c)
			for j := range c.Applications {
				if c.Applications[j].ID == calltest.BotID {
					c.Applications[j].Permissions = append(c.Applications[j].Permissions, "OnlineMeetings.ReadWrite.All")
				}
			}
			c.Tenants[0].Conferencing.TollNumber = toll
			c.Simulator.Audio = true
		}})
		l.Nodes[i].SIP = nodes[i].Node.SIP.Addr()
	}
	a, b := nodes[0], nodes[1]

	yes := true
	r := a.Bot("POST", "/v1.0/users/"+calltest.AliceID+"/onlineMeetings", map[string]any{"subject": "Replicated",
		"lobbyBypassSettings": map[string]any{"scope": "everyone", "isDialInBypassEnabled": yes}})
	if r.StatusCode != 201 {
		t.Fatalf("create meeting: %s %s", r.Status, r.Body)
	}
	var m graph.OnlineMeeting
	r.JSON(t, &m)

	first := join(t, a, calltest.BotID, m)
	hook.WaitState(t, first, graph.StateEstablished)
	second := join(t, b, calltest.Bot2ID, m)
	hook.WaitState(t, second, graph.StateEstablished)
	if na, nb := a.Node.Calls.Live(), b.Node.Calls.Live(); na != 2 || nb != 0 {
		t.Fatalf("live calls: %d on the room's node, %d on the other; want both bots' on the room's", na, nb)
	}
	roster(t, hook, second, "Second bot", "Test bot")

	bob := dialIn(t, b, calltest.BobID, m)
	roster(t, hook, first, "Bob", "Second bot", "Test bot")
	alice := dialIn(t, a, calltest.AliceID, m)
	roster(t, hook, second, "Alice", "Bob", "Second bot", "Test bot")

	// Alice speaks on the room's node; Bob hears her through the cascade
	// (again if he was still hearing the platform's "you have joined").
	pcm := calltest.Pattern(480, 1.5, 5)
	for try := 0; bottest.Similarity(bob.Heard(), pcm) < 0.8; try++ {
		if try == 4 {
			t.Fatalf("Bob never heard Alice (similarity %.2f)", bottest.Similarity(bob.Heard(), pcm))
		}
		if err := alice.Say(pcm); err != nil {
			t.Fatal(err)
		}
		// Listened to for as long as the pattern lasts, and a margin.
		for until := time.Now().Add(4500 * time.Millisecond); time.Now().Before(until) && bottest.Similarity(bob.Heard(), pcm) < 0.8; {
			select {
			case <-bob.Changed():
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	bob.HangUpNow()
	roster(t, hook, second, "Alice", "Second bot", "Test bot")
	alice.HangUpNow()
}

const toll = "+15550150"

// join has app join meeting m through node p.
func join(t *testing.T, p *calltest.Platform, app string, m graph.OnlineMeeting) string {
	t.Helper()
	u, _ := url.Parse(m.JoinWebURL)
	path, _ := url.PathUnescape(u.EscapedPath())
	segs := strings.Split(strings.TrimPrefix(path, "/l/meetup-join/"), "/")
	r := p.Do(calltest.Req{Method: "POST", Path: "/v1.0/communications/calls", Token: p.Token(app, calltest.TenantID), Body: map[string]any{
		"@odata.type": "#microsoft.graph.call", "callbackUri": p.Hook.URL, "requestedModalities": []string{"audio"},
		"mediaConfig": map[string]any{"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"},
		"chatInfo":    map[string]any{"threadId": segs[0], "messageId": segs[1]},
		"meetingInfo": map[string]any{"@odata.type": "#microsoft.graph.organizerMeetingInfo",
			"organizer": map[string]any{"user": map[string]any{"id": calltest.AliceID}}},
	}})
	if r.StatusCode != 201 {
		t.Fatalf("join through %s: %s %s", p.URL, r.Status, r.Body)
	}
	var c graph.Call
	r.JSON(t, &c)
	return c.ID
}

// dialIn has a simulated user dial the meeting's number on node p and key
// in its conference id.
func dialIn(t *testing.T, p *calltest.Platform, user string, m graph.OnlineMeeting) *simulated.Leg {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	l, err := p.Node.Sim.DialIn(ctx, simulated.CallOptions{From: user, To: toll, Simulation: &config.Simulation{}})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for l.State().PromptsHeard == 0 {
		if time.Now().After(deadline) || l.State().State == "ended" {
			t.Fatalf("no dial-in prompt: %+v", l.State())
		}
		select {
		case <-l.Changed():
		case <-time.After(50 * time.Millisecond):
		}
	}
	if err := l.PressKeys(m.AudioConferencing.ConferenceID+"#", simulated.DefaultDTMFInterval); err != nil {
		t.Fatal(err)
	}
	return l
}

// roster waits for a roster notification of call naming want.
func roster(t *testing.T, hook *calltest.Webhook, call string, want ...string) {
	t.Helper()
	hook.Wait(t, call, 30*time.Second, "roster "+strings.Join(want, ", "), func(ns []calltest.Notification) bool {
		for _, n := range ns {
			if n.ResourceURL != "/communications/calls/"+call+"/participants" {
				continue
			}
			var ps []graph.Participant
			_ = json.Unmarshal(n.ResourceData, &ps)
			var names []string
			for _, p := range ps {
				_, id := p.Info.Identity.Primary()
				names = append(names, id.DisplayName)
			}
			slices.Sort(names)
			if slices.Equal(names, want) {
				return true
			}
		}
		return false
	})
}
