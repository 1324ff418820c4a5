package callctl_test

import (
	"context"
	"encoding/json"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

const toll = "+15550150"

// parseJoinURL reads a Teams join link the way Microsoft's samples do:
// URL-decode it, take the two path segments after meetup-join (thread id,
// message id) and the context's Tid and Oid.
func parseJoinURL(t *testing.T, link string) (thread, message, tid, oid string) {
	t.Helper()
	u, err := url.Parse(link)
	if err != nil {
		t.Fatal(err)
	}
	path, _ := url.PathUnescape(u.EscapedPath())
	segs := strings.Split(path, "/")
	for i, s := range segs {
		if s == "meetup-join" && i+2 < len(segs) {
			thread, message = segs[i+1], segs[i+2]
		}
	}
	var ctx struct{ Tid, Oid string }
	if err := json.Unmarshal([]byte(u.Query().Get("context")), &ctx); err != nil {
		t.Fatalf("join link context: %v", err)
	}
	return thread, message, ctx.Tid, ctx.Oid
}

// rosterOf decodes a roster notification: names, sorted, "(lobby)" marked.
func rosterOf(t *testing.T, n calltest.Notification) []string {
	var ps []graph.Participant
	if err := json.Unmarshal(n.ResourceData, &ps); err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range ps {
		_, id := p.Info.Identity.Primary()
		name := id.DisplayName
		if p.IsInLobby {
			name += "(lobby)"
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

func waitRosterOf(t *testing.T, p *calltest.Platform, callID string, want ...string) []graph.Participant {
	t.Helper()
	slices.Sort(want)
	var got []graph.Participant
	p.Hook.Wait(t, callID, wait, "roster "+strings.Join(want, ","), func(ns []calltest.Notification) bool {
		for _, n := range ns {
			if n.ResourceURL == "/communications/calls/"+callID+"/participants" && slices.Equal(rosterOf(t, n), want) {
				_ = json.Unmarshal(n.ResourceData, &got)
				return true
			}
		}
		return false
	})
	return got
}

// listen records what a phone hears for d and returns the share of each
// frequency's energy in it.
func listen(t *testing.T, ph *phone, d time.Duration, freqs ...float64) []float64 {
	t.Helper()
	var mu sync.Mutex
	var got []int16
	full := make(chan struct{})
	n := int(d / media.FrameDuration * media.SamplesPerFrame)
	ph.sess.Record(media.RecordOptions{}, func(pcm []int16) {
		mu.Lock()
		defer mu.Unlock()
		if len(got) < n {
			got = append(got, pcm...)
			if len(got) >= n {
				close(full)
			}
		}
	}, nil)
	select {
	case <-full:
	case <-time.After(wait):
		t.Fatalf("%s heard too little", ph.user)
	}
	ph.sess.StopRecord()
	mu.Lock()
	defer mu.Unlock()
	var energy float64
	for _, v := range got {
		energy += float64(v) * float64(v)
	}
	out := make([]float64, len(freqs))
	for i, f := range freqs {
		if energy > 0 {
			out[i] = 2 * goertzel(got, f) / (float64(len(got)) * energy)
		}
	}
	return out
}

// A Meet Now meeting: bot A joins by its link (parsed as Microsoft's
// samples parse it), bot B by its meeting id; A invites Eve's phone; a
// PSTN caller dials in with the conference id, waits in the lobby, and is
// admitted by B; Eve and the caller hear each other and not themselves.
func TestMeetingJoinedByLinkIDAndPhone(t *testing.T) {
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		c.SIP.Trunks = []config.Trunk{{Name: "pstn", Address: "127.0.0.2:5999", AllowFrom: []string{"127.0.0.2"}}}
		c.Tenants[0].Conferencing.TollNumber = toll
		for i := range c.Applications {
			c.Applications[i].Permissions = append(c.Applications[i].Permissions, "OnlineMeetings.ReadWrite.All")
		}
	}})
	eve := newPhone(t, "127.0.0.3", "eve")
	eve.register(p.Node.SIP.Addr(), calltest.EvePassword)
	caller := newPhone(t, "127.0.0.2", "+15557770010")

	// Meet Now, organized by Alice.
	r := p.Bot("POST", "/v1.0/users/"+calltest.AliceID+"/onlineMeetings", map[string]any{"subject": "Incident review"})
	if r.StatusCode != 201 {
		t.Fatalf("create meeting: %s %s", r.Status, r.Body)
	}
	var m graph.OnlineMeeting
	r.JSON(t, &m)

	// Bot A joins by the link.
	thread, message, tid, oid := parseJoinURL(t, m.JoinWebURL)
	r = p.Bot("POST", "/v1.0/communications/calls", map[string]any{
		"@odata.type": "#microsoft.graph.call", "callbackUri": p.Hook.URL, "requestedModalities": []string{"audio"},
		"mediaConfig": map[string]any{"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"},
		"chatInfo":    map[string]any{"@odata.type": "#microsoft.graph.chatInfo", "threadId": thread, "messageId": message},
		"meetingInfo": map[string]any{"@odata.type": "#microsoft.graph.organizerMeetingInfo",
			"organizer": map[string]any{"user": map[string]any{"id": oid, "tenantId": tid}}},
		"tenantId": tid,
	})
	if r.StatusCode != 201 {
		t.Fatalf("bot A joins by link: %s %s", r.Status, r.Body)
	}
	var a graph.Call
	r.JSON(t, &a)
	if a.ChatInfo == nil || a.ChatInfo.ThreadID != thread {
		t.Errorf("the 201 does not carry the meeting's chatInfo: %+v", a.ChatInfo)
	}

	// Bot B joins by the meeting id.
	b2 := p.Token(calltest.Bot2ID, calltest.TenantID)
	mi := map[string]any{"@odata.type": "#microsoft.graph.joinMeetingIdMeetingInfo", "joinMeetingId": m.JoinMeetingIDSettings.JoinMeetingID}
	if pc := m.JoinMeetingIDSettings.Passcode; pc != nil {
		mi["passcode"] = *pc
	}
	r = p.Do(calltest.Req{Method: "POST", Path: "/v1.0/communications/calls", Token: b2, Body: map[string]any{
		"@odata.type": "#microsoft.graph.call", "callbackUri": p.Hook.URL, "requestedModalities": []string{"audio"},
		"mediaConfig": map[string]any{"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"},
		"meetingInfo": mi,
	}})
	if r.StatusCode != 201 {
		t.Fatalf("bot B joins by id: %s %s", r.Status, r.Body)
	}
	var b graph.Call
	r.JSON(t, &b)
	waitRosterOf(t, p, a.ID, "Test bot", "Second bot")

	// Bot A invites Eve.
	r = p.Bot("POST", "/v1.0/communications/calls/"+a.ID+"/participants/invite", map[string]any{
		"participants": []any{map[string]any{"identity": map[string]any{"user": map[string]any{"id": calltest.EveID}}}}})
	if r.StatusCode != 200 {
		t.Fatalf("invite Eve: %s %s", r.Status, r.Body)
	}
	var inv *sipgo.DialogServerSession
	select {
	case inv = <-eve.invites:
	case <-time.After(wait):
		t.Fatal("Eve's phone did not ring")
	}
	eve.connect(inv.InviteRequest.Body(), media.PCMU)
	if err := inv.RespondSDP(eve.sdp(media.PCMU)); err != nil {
		t.Fatal(err)
	}
	waitRosterOf(t, p, b.ID, "Test bot", "Second bot", "Eve")

	// The caller dials in and keys the conference id.
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
	defer cancel()
	gw := p.Node.SIP.Addr()
	to := sip.Uri{Scheme: "sip", User: toll, Host: gw.Addr().String(), Port: int(gw.Port())}
	from := &sip.FromHeader{DisplayName: "Dial-in caller", Address: sip.Uri{Scheme: "sip", User: caller.user, Host: caller.ip}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	dlg, err := caller.clients.Invite(ctx, to, caller.sdp(media.PCMU), from, sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		t.Fatal(err)
	}
	answered := make(chan error, 1)
	go func() { answered <- dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}) }()
	caller.established(ctx, dlg, answered)
	caller.sess.SendTones(m.AudioConferencing.ConferenceID+"#", 100*time.Millisecond, nil)
	roster := waitRosterOf(t, p, b.ID, "Test bot", "Second bot", "Eve", "Dial-in caller(lobby)")

	// In the lobby the caller is not heard: Eve hears nothing of 1050 Hz.
	eve.sess.Play(media.Tone(600, 0.3, time.Minute), true, nil)
	caller.sess.Play(media.Tone(1050, 0.3, time.Minute), true, nil)
	if lv := listen(t, eve, time.Second, 1050); lv[0] > 0.05 {
		t.Errorf("Eve heard the caller in the lobby (%.3f)", lv[0])
	}

	// Bot B admits the caller.
	var pid string
	for _, x := range roster {
		if x.IsInLobby {
			pid = x.ID
		}
	}
	r = p.Do(calltest.Req{Method: "POST", Path: "/v1.0/communications/calls/" + b.ID + "/participants/" + pid + "/admit", Token: b2})
	if r.StatusCode != 204 {
		t.Fatalf("admit: %s %s", r.Status, r.Body)
	}
	waitRosterOf(t, p, a.ID, "Test bot", "Second bot", "Eve", "Dial-in caller")

	// N−1: each phone hears the other, not itself.
	eveHears := listen(t, eve, 2*time.Second, 600, 1050)
	callerHears := listen(t, caller, 2*time.Second, 600, 1050)
	t.Logf("Eve hears 600 Hz %.3f, 1050 Hz %.3f; the caller hears 600 Hz %.3f, 1050 Hz %.3f",
		eveHears[0], eveHears[1], callerHears[0], callerHears[1])
	if eveHears[1] < 0.3 || eveHears[0] > 0.05 {
		t.Errorf("Eve should hear the caller's tone and not her own: %v", eveHears)
	}
	if callerHears[0] < 0.3 || callerHears[1] > 0.05 {
		t.Errorf("the caller should hear Eve's tone and not their own: %v", callerHears)
	}

	// Bot A leaves: the others stay in the meeting.
	if r := p.Bot("DELETE", "/v1.0/communications/calls/"+a.ID, nil); r.StatusCode != 204 {
		t.Fatalf("bot A hangs up: %s", r.Status)
	}
	waitRosterOf(t, p, b.ID, "Second bot", "Eve", "Dial-in caller")
}
