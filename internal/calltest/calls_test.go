package calltest_test

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

const calls = "/v1.0/communications/calls"

// The "done when": token, call a simulated user, establishing then
// established at a webhook that verifies the JWT, GET established, hang up,
// terminating then terminated, GET 404.
func TestOutboundCallLifecycle(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	call := p.CreateCall(calltest.AliceID)
	if call.State != graph.StateEstablishing || call.Direction != graph.DirectionOutgoing || call.ID == "" ||
		call.MyParticipantID == "" || call.CallChainID == "" || call.Source == nil || call.Source.Identity.Application == nil ||
		call.Source.Identity.Application.ID != calltest.BotID || call.TenantID != calltest.TenantID {
		t.Fatalf("201 body: %+v", call)
	}
	p.Hook.WaitState(t, call.ID, graph.StateEstablished)

	r := p.Bot("GET", calls+"/"+call.ID, nil)
	var got graph.Call
	r.JSON(t, &got)
	if r.StatusCode != 200 || got.State != graph.StateEstablished || got.MediaState == nil || got.MediaState.Audio != graph.MediaStateActive {
		t.Fatalf("GET: %s %s", r.Status, r.Body)
	}
	if !strings.HasSuffix(got.ODataContext, "/v1.0/$metadata#communications/calls/$entity") {
		t.Errorf("@odata.context %q", got.ODataContext)
	}

	if r := p.Bot("DELETE", calls+"/"+call.ID, nil); r.StatusCode != 204 {
		t.Fatalf("DELETE: %s %s", r.Status, r.Body)
	}
	end := p.Hook.WaitState(t, call.ID, graph.StateTerminated)
	if end.ChangeType != graph.ChangeDeleted {
		t.Errorf("terminated changeType %q, want deleted", end.ChangeType)
	}
	c := end.Call(t)
	if c.ResultInfo == nil || c.ResultInfo.Code != 200 || c.ResultInfo.Subcode != 5001 {
		t.Errorf("resultInfo %+v, want 200/5001", c.ResultInfo)
	}
	want := []graph.CallState{graph.StateEstablishing, graph.StateRinging, graph.StateEstablished, graph.StateTerminating, graph.StateTerminated}
	if s := p.Hook.States(t, call.ID); !slices.Equal(s, want) {
		t.Errorf("states %v, want %v", s, want)
	}
	for _, n := range p.Hook.For(call.ID) {
		if n.AppID != calltest.BotID || n.TenantID != calltest.TenantID {
			t.Errorf("notification token for app %s tenant %s", n.AppID, n.TenantID)
		}
		if n.Resource != "/app/calls/"+call.ID {
			t.Errorf("resource %q", n.Resource)
		}
	}
	if r := p.Bot("GET", calls+"/"+call.ID, nil); r.StatusCode != 404 {
		t.Fatalf("GET after hang-up: %s %s", r.Status, r.Body)
	}
	if r := p.Bot("POST", calls+"/"+call.ID+"/keepAlive", nil); r.StatusCode != 404 {
		t.Fatalf("keepAlive after hang-up: %s", r.Status)
	}
	if rej := p.Hook.Rejected(); len(rej) > 0 {
		t.Fatalf("webhook rejected tokens: %v", rej)
	}
}

func TestOutboundFailures(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	for _, tc := range []struct {
		name          string
		user          string
		code, subcode int
	}{
		{"busy", calltest.CarolID, 486, 9005},
		{"no endpoint", calltest.EveID, 480, 10037},
	} {
		t.Run(tc.name, func(t *testing.T) {
			call := p.CreateCall(tc.user)
			c := p.Hook.WaitState(t, call.ID, graph.StateTerminated).Call(t)
			if c.ResultInfo == nil || c.ResultInfo.Code != tc.code || c.ResultInfo.Subcode != tc.subcode || c.ResultInfo.Message == "" {
				t.Fatalf("resultInfo %+v, want %d/%d", c.ResultInfo, tc.code, tc.subcode)
			}
		})
	}
}

func TestIncomingAnswerTonesAndRemoteHangUp(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	var leg struct{ ID, CallID string }
	r := p.Do(calltest.Req{Method: "POST", Path: "/simulator/v1/calls", Body: map[string]string{"from": calltest.AlicePhone, "to": calltest.BotNumber}})
	if r.StatusCode != 201 {
		t.Fatalf("simulator call: %s %s", r.Status, r.Body)
	}
	r.JSON(t, &leg)
	created := p.Hook.Wait(t, leg.CallID, 10*time.Second, "incoming", func(ns []calltest.Notification) bool { return len(ns) > 0 })[0]
	if created.ChangeType != graph.ChangeCreated {
		t.Fatalf("first notification %q", created.ChangeType)
	}
	in := created.Call(t)
	if in.State != graph.StateIncoming || in.Direction != graph.DirectionIncoming || in.Source == nil ||
		in.Source.Identity.Phone == nil || in.Source.Identity.Phone.ID != calltest.AlicePhone ||
		len(in.Targets) != 1 || in.Targets[0].Identity.ApplicationInstance == nil || in.TenantID != calltest.TenantID {
		t.Fatalf("incoming call: %s", created.ResourceData)
	}
	if in.Source.Identity.ODataType != graph.TypeCommsIdentitySet {
		t.Errorf("phone identity set typed %q", in.Source.Identity.ODataType)
	}

	ans := map[string]any{"callbackUri": p.Hook.URL, "acceptedModalities": []string{"audio"},
		"mediaConfig": map[string]any{"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}}
	if r := p.Bot("POST", calls+"/"+in.ID+"/answer", ans); r.StatusCode != 202 || len(r.Body) != 0 {
		t.Fatalf("answer: %s %s", r.Status, r.Body)
	}
	p.Hook.WaitState(t, in.ID, graph.StateEstablished)
	// A second answer is refused: the call is no longer incoming.
	if r := p.Bot("POST", calls+"/"+in.ID+"/answer", ans); r.StatusCode != 409 {
		t.Fatalf("second answer: %s %s", r.Status, r.Body)
	}

	// Keys pressed before subscribeToTone are not reported.
	p.Do(calltest.Req{Method: "POST", Path: "/simulator/v1/calls/" + leg.ID + "/keys", Body: map[string]string{"keys": "9"}})
	r = p.Bot("POST", calls+"/"+in.ID+"/subscribeToTone", map[string]string{"clientContext": "tones"})
	var op graph.Operation
	r.JSON(t, &op)
	if r.StatusCode != 200 || op.ODataType != graph.TypeSubscribeToToneOperation || op.Status != graph.OperationCompleted ||
		op.ClientContext != "tones" || r.Header.Get("Location") != p.URL+calls+"/"+in.ID+"/operations/"+op.ID {
		t.Fatalf("subscribeToTone: %s %s Location %s", r.Status, r.Body, r.Header.Get("Location"))
	}
	if r := p.Do(calltest.Req{Method: "POST", Path: "/simulator/v1/calls/" + leg.ID + "/keys", Body: map[string]string{"keys": "12*#", "interval": "10ms"}}); r.StatusCode != 202 {
		t.Fatalf("keys: %s %s", r.Status, r.Body)
	}
	var tones []graph.ToneInfo
	p.Hook.Wait(t, in.ID, 10*time.Second, "4 tones", func(ns []calltest.Notification) bool {
		tones = tones[:0]
		for _, n := range ns {
			if c := n.Call(t); c.ToneInfo != nil {
				tones = append(tones, *c.ToneInfo)
			}
		}
		return len(tones) >= 4
	})
	want := []graph.Tone{graph.Tone1, graph.Tone2, graph.ToneStar, graph.TonePound}
	for i, ti := range tones {
		if ti.Tone != want[i] || ti.SequenceID != int64(i+1) {
			t.Fatalf("tones %+v, want %v with sequenceId 1..4", tones, want)
		}
	}

	// The operation stays readable for the life of the call.
	if r := p.Bot("GET", calls+"/"+in.ID+"/operations/"+op.ID, nil); r.StatusCode != 200 {
		t.Fatalf("GET operation: %s %s", r.Status, r.Body)
	}

	// The caller hangs up.
	if r := p.Do(calltest.Req{Method: "DELETE", Path: "/simulator/v1/calls/" + leg.ID}); r.StatusCode != 204 {
		t.Fatalf("sim hang-up: %s", r.Status)
	}
	c := p.Hook.WaitState(t, in.ID, graph.StateTerminated).Call(t)
	if c.ResultInfo.Code != 200 || c.ResultInfo.Subcode != 4521 {
		t.Fatalf("remote hang-up resultInfo %+v", c.ResultInfo)
	}
}

func simCall(t *testing.T, p *calltest.Platform, to string) (legID, callID string) {
	t.Helper()
	var leg struct{ ID, CallID string }
	r := p.Do(calltest.Req{Method: "POST", Path: "/simulator/v1/calls", Body: map[string]string{"from": calltest.AlicePhone, "to": to}})
	if r.StatusCode != 201 {
		t.Fatalf("simulator call: %s %s", r.Status, r.Body)
	}
	r.JSON(t, &leg)
	return leg.ID, leg.CallID
}

func simLeg(t *testing.T, p *calltest.Platform, legID, waitFor string) map[string]any {
	t.Helper()
	r := p.Do(calltest.Req{Method: "GET", Path: "/simulator/v1/calls/" + legID + "?waitFor=" + waitFor})
	var m map[string]any
	r.JSON(t, &m)
	return m
}

func TestRejectReasons(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	for _, tc := range []struct {
		reason  string
		sipCode float64
	}{{"Busy", 486}, {"forbidden", 403}, {"none", 603}} {
		t.Run(tc.reason, func(t *testing.T) {
			legID, callID := simCall(t, p, calltest.BotNumber)
			p.Hook.WaitState(t, callID, graph.StateIncoming)
			if r := p.Bot("POST", calls+"/"+callID+"/reject", map[string]string{"reason": tc.reason}); r.StatusCode != 202 {
				t.Fatalf("reject: %s %s", r.Status, r.Body)
			}
			n := p.Hook.WaitState(t, callID, graph.StateTerminated)
			if n.ChangeType != graph.ChangeDeleted {
				t.Fatalf("changeType %s", n.ChangeType)
			}
			leg := simLeg(t, p, legID, "ended")
			if leg["state"] != "ended" || leg["sipStatus"] != tc.sipCode {
				t.Fatalf("caller leg %v, want ended with %v", leg, tc.sipCode)
			}
		})
	}
	t.Run("bad reason", func(t *testing.T) {
		_, callID := simCall(t, p, calltest.BotNumber)
		p.Hook.WaitState(t, callID, graph.StateIncoming)
		r := p.Bot("POST", calls+"/"+callID+"/reject", map[string]string{"reason": "tired"})
		if r.StatusCode != 400 || !strings.Contains(string(r.Body), "tired") {
			t.Fatalf("reject tired: %s %s", r.Status, r.Body)
		}
	})
}

func TestRedirectBridgesCallerToTarget(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	legID, callID := simCall(t, p, calltest.BotNumber)
	p.Hook.WaitState(t, callID, graph.StateIncoming)
	body := map[string]any{"targets": []any{map[string]any{
		"@odata.type": "#microsoft.graph.invitationParticipantInfo",
		"identity":    map[string]any{"user": map[string]any{"id": calltest.AliceID, "displayName": "Alice"}},
	}}, "timeout": 20}
	if r := p.Bot("POST", calls+"/"+callID+"/redirect", body); r.StatusCode != 202 {
		t.Fatalf("redirect: %s %s", r.Status, r.Body)
	}
	n := p.Hook.WaitState(t, callID, graph.StateTerminated)
	c := n.Call(t)
	if c.AnsweredBy == nil || c.AnsweredBy.Identity.User == nil || c.AnsweredBy.Identity.User.ID != calltest.AliceID {
		t.Fatalf("redirect terminated without answeredBy: %s", n.ResourceData)
	}
	if !slices.Contains(p.Hook.States(t, callID), graph.StateRedirecting) {
		t.Errorf("no redirecting state: %v", p.Hook.States(t, callID))
	}
	if leg := simLeg(t, p, legID, "connected"); leg["state"] != "connected" {
		t.Fatalf("caller after redirect: %v", leg)
	}
	// The caller hangs up: the redirected target's leg is released too.
	p.Do(calltest.Req{Method: "DELETE", Path: "/simulator/v1/calls/" + legID})
	for _, l := range redirectLegs(t, p, callID) {
		if got := simLeg(t, p, l, "ended"); got["state"] != "ended" {
			t.Fatalf("leg %v not ended", got)
		}
	}

	// And the other way round: the target hangs up, the caller is released.
	legID, callID = simCall(t, p, calltest.BotNumber)
	p.Hook.WaitState(t, callID, graph.StateIncoming)
	if r := p.Bot("POST", calls+"/"+callID+"/redirect", body); r.StatusCode != 202 {
		t.Fatalf("redirect: %s %s", r.Status, r.Body)
	}
	p.Hook.WaitState(t, callID, graph.StateTerminated)
	legs := redirectLegs(t, p, callID)
	target := legs[1]
	if legs[1] == legID {
		target = legs[0]
	}
	p.Do(calltest.Req{Method: "DELETE", Path: "/simulator/v1/calls/" + target})
	if got := simLeg(t, p, legID, "ended"); got["state"] != "ended" {
		t.Fatalf("caller %v not released when the target hung up", got)
	}
}

func redirectLegs(t *testing.T, p *calltest.Platform, callID string) []string {
	t.Helper()
	r := p.Do(calltest.Req{Method: "GET", Path: "/simulator/v1/calls?callId=" + callID})
	var list struct{ Value []struct{ ID string } }
	r.JSON(t, &list)
	if len(list.Value) != 2 {
		t.Fatalf("legs of the call: %s", r.Body)
	}
	return []string{list.Value[0].ID, list.Value[1].ID}
}

func TestAnswerTimeoutAndKeepAliveExpiry(t *testing.T) {
	p := calltest.Start(t, calltest.Options{FakeClock: true})

	legID, callID := simCall(t, p, calltest.BotNumber)
	p.Hook.WaitState(t, callID, graph.StateIncoming)
	p.Clock.Advance(15 * time.Second)
	c := p.Hook.WaitState(t, callID, graph.StateTerminated).Call(t)
	if c.ResultInfo.Code != 408 || c.ResultInfo.Subcode != 1106 {
		t.Fatalf("unanswered resultInfo %+v", c.ResultInfo)
	}
	if leg := simLeg(t, p, legID, "ended"); leg["sipStatus"] != float64(480) {
		t.Fatalf("caller got %v, want SIP 480", leg["sipStatus"])
	}

	call := p.CreateCall(calltest.AliceID)
	p.Clock.Advance(time.Second) // ring
	p.Hook.WaitState(t, call.ID, graph.StateRinging)
	p.Clock.Advance(time.Second) // answer
	p.Hook.WaitState(t, call.ID, graph.StateEstablished)
	p.Clock.Advance(44 * time.Minute)
	if r := p.Bot("POST", calls+"/"+call.ID+"/keepAlive", nil); r.StatusCode != 200 || len(r.Body) != 0 {
		t.Fatalf("keepAlive: %s %s", r.Status, r.Body)
	}
	p.Clock.Advance(44 * time.Minute) // 88 minutes in, 44 since the keepAlive
	if r := p.Bot("GET", calls+"/"+call.ID, nil); r.StatusCode != 200 {
		t.Fatalf("call ended despite keepAlive: %s %s", r.Status, r.Body)
	}
	p.Clock.Advance(2 * time.Minute)
	c = p.Hook.WaitState(t, call.ID, graph.StateTerminated).Call(t)
	if c.ResultInfo.Code != 408 || c.ResultInfo.Subcode != 8537 {
		t.Fatalf("keepAlive expiry resultInfo %+v", c.ResultInfo)
	}
}

func TestNoAnswerRingTimeout(t *testing.T) {
	p := calltest.Start(t, calltest.Options{FakeClock: true})
	call := p.CreateCall(calltest.DaveID)
	p.Clock.Advance(time.Second)
	p.Hook.WaitState(t, call.ID, graph.StateRinging)
	p.Clock.Advance(60 * time.Second)
	c := p.Hook.WaitState(t, call.ID, graph.StateTerminated).Call(t)
	if c.ResultInfo.Code != 408 {
		t.Fatalf("no answer resultInfo %+v", c.ResultInfo)
	}
}

// Two answers racing for one incoming call: exactly one wins.
func TestConcurrentAnswersOneWins(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	_, callID := simCall(t, p, calltest.BotNumber)
	p.Hook.WaitState(t, callID, graph.StateIncoming)
	ans := map[string]any{"acceptedModalities": []string{"audio"}, "mediaConfig": map[string]any{}}
	var wg sync.WaitGroup
	codes := make([]int, 8)
	for i := range codes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes[i] = p.Bot("POST", calls+"/"+callID+"/answer", ans).StatusCode
		}()
	}
	wg.Wait()
	ok := 0
	for _, c := range codes {
		switch c {
		case 202:
			ok++
		case 409:
		default:
			t.Fatalf("answer status %d", c)
		}
	}
	if ok != 1 {
		t.Fatalf("%d answers succeeded: %v", ok, codes)
	}
}

func TestSendDtmfTonesCompletes(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	call := p.CreateCall(calltest.AliceID)
	p.Hook.WaitState(t, call.ID, graph.StateEstablished)
	r := p.Bot("POST", calls+"/"+call.ID+"/microsoft.graph.sendDtmfTones",
		map[string]any{"tones": []string{"tone1", "pound"}, "delayBetweenTonesMs": 10, "clientContext": "d"})
	var op graph.Operation
	r.JSON(t, &op)
	if r.StatusCode != 200 || op.Status != graph.OperationRunning || op.ODataType != graph.TypeSendDtmfTonesOperation {
		t.Fatalf("sendDtmfTones: %s %s", r.Status, r.Body)
	}
	ns := p.Hook.Wait(t, call.ID, 10*time.Second, "operation completion", func(ns []calltest.Notification) bool {
		for _, n := range ns {
			if strings.HasSuffix(n.ResourceURL, "/operations/"+op.ID) {
				return true
			}
		}
		return false
	})
	done := ns[len(ns)-1].Operation(t)
	if done.Status != graph.OperationCompleted || done.CompletionReason != "completedSuccessfully" || ns[len(ns)-1].ChangeType != graph.ChangeDeleted {
		t.Fatalf("completion %+v", done)
	}
	legs := p.Do(calltest.Req{Method: "GET", Path: "/simulator/v1/calls?callId=" + call.ID})
	if !strings.Contains(string(legs.Body), `"tonesReceived":"1#"`) {
		t.Fatalf("simulated user heard %s", legs.Body)
	}
	// Mute: completed at once, the roster shows it.
	r = p.Bot("POST", calls+"/"+call.ID+"/mute", map[string]string{"clientContext": "m"})
	r.JSON(t, &op)
	if r.StatusCode != 200 || op.Status != graph.OperationCompleted || op.ODataType != graph.TypeMuteParticipantOperation {
		t.Fatalf("mute: %s %s", r.Status, r.Body)
	}
	r = p.Bot("GET", calls+"/"+call.ID+"/participants/"+call.MyParticipantID, nil)
	var me graph.Participant
	r.JSON(t, &me)
	if !me.IsMuted {
		t.Fatalf("bot participant after mute: %s", r.Body)
	}
	r = p.Bot("GET", calls+"/"+call.ID+"/participants", nil)
	var list struct {
		Value []graph.Participant `json:"value"`
	}
	r.JSON(t, &list)
	if len(list.Value) != 2 {
		t.Fatalf("participants: %s", r.Body)
	}
}

func TestManyCallsKeepPerCallOrder(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	const n = 30
	ids := make([]string, n)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ids[i] = p.CreateCall(calltest.BobID).ID
		}()
	}
	wg.Wait()
	for _, id := range ids {
		p.Hook.WaitState(t, id, graph.StateEstablished)
		p.Bot("DELETE", calls+"/"+id, nil)
	}
	want := []graph.CallState{graph.StateEstablishing, graph.StateRinging, graph.StateEstablished, graph.StateTerminating, graph.StateTerminated}
	for _, id := range ids {
		p.Hook.WaitState(t, id, graph.StateTerminated)
		if s := p.Hook.States(t, id); !slices.Equal(s, want) {
			t.Fatalf("call %s states %v, want %v", id, s, want)
		}
	}
}

var _ = json.Marshal
var _ = http.StatusOK

// A stopping node refuses new work, then ends the calls still up and
// delivers their terminated notifications before it exits.
func TestGracefulShutdownEndsCalls(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	call := p.CreateCall(calltest.AliceID)
	p.Hook.WaitState(t, call.ID, graph.StateEstablished)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.Node.Shutdown(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	ns := p.Hook.For(call.ID)
	last := ns[len(ns)-1].Call(t)
	if last.State != graph.StateTerminated || last.ResultInfo.Code != 503 || last.ResultInfo.Subcode != 9007 {
		t.Fatalf("last notification before exit: %+v", last)
	}
}

// While a stopping node drains, bots still drive the calls it lets
// finish (here: hang up); only new calls are refused, with 503 and
// Retry-After.
func TestDrainKeepsLiveCallsDrivable(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	call := p.CreateCall(calltest.AliceID)
	p.Hook.WaitState(t, call.ID, graph.StateEstablished)
	p.Bot("GET", "/v1.0/communications/calls/"+call.ID, nil) // the token is fetched before the drain
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	stopped := make(chan error, 1)
	go func() { stopped <- p.Node.Shutdown(ctx, time.Now().Add(20*time.Second)) }()
	// The drain has begun once new calls are refused.
	for deadline := time.Now().Add(10 * time.Second); ; {
		r := p.Bot("POST", "/v1.0/communications/calls", calltest.CallTo(p.Hook.URL, calltest.BobID))
		if r.StatusCode == http.StatusServiceUnavailable {
			if r.Header.Get("Retry-After") == "" {
				t.Error("503 without Retry-After")
			}
			break
		}
		if r.StatusCode == http.StatusCreated {
			t.Fatalf("a call was created after Shutdown began")
		}
		if time.Now().After(deadline) {
			t.Fatalf("new calls still answered %d during the drain", r.StatusCode)
		}
	}
	if r := p.Bot("POST", "/v1.0/communications/calls/"+call.ID+"/keepAlive", nil); r.StatusCode != http.StatusOK {
		t.Fatalf("keepAlive during the drain: %d %s", r.StatusCode, r.Body)
	}
	if r := p.Bot("DELETE", "/v1.0/communications/calls/"+call.ID, nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("DELETE during the drain: %d %s", r.StatusCode, r.Body)
	}
	last := p.Hook.WaitState(t, call.ID, graph.StateTerminated).Call(t)
	if last.ResultInfo.Subcode != 5001 {
		t.Errorf("the call ended %d/%d, want the bot's hang-up (200/5001)", last.ResultInfo.Code, last.ResultInfo.Subcode)
	}
	if err := <-stopped; err != nil {
		t.Fatal(err)
	}
}
