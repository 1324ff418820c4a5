package calltest_test

import (
	"encoding/json"
	"math"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// heard is what the simulated user of a call has heard so far: how many
// prompts, and their length in seconds (a looped prompt counts once).
func heard(t *testing.T, p *calltest.Platform, callID string) (int, float64) {
	t.Helper()
	r := p.Do(calltest.Req{Method: "GET", Path: "/simulator/v1/calls?callId=" + callID})
	var legs struct {
		Value []struct {
			PromptsHeard  int     `json:"promptsHeard"`
			PromptSeconds float64 `json:"promptSeconds"`
		} `json:"value"`
	}
	r.JSON(t, &legs)
	if len(legs.Value) != 1 {
		t.Fatalf("simulated legs of call %s: %s", callID, r.Body)
	}
	return legs.Value[0].PromptsHeard, legs.Value[0].PromptSeconds
}

// farEnd returns the participant id of the call's far end.
func farEnd(t *testing.T, p *calltest.Platform, call graph.Call) string {
	t.Helper()
	var ps struct {
		Value []graph.Participant `json:"value"`
	}
	p.Bot("GET", calls+"/"+call.ID+"/participants", nil).JSON(t, &ps)
	for _, pt := range ps.Value {
		if pt.ID != call.MyParticipantID {
			return pt.ID
		}
	}
	t.Fatalf("no far-end participant in %+v", ps.Value)
	return ""
}

// holdAction posts startHoldMusic or stopHoldMusic and checks the 202:
// a running operation of the right type, with its Location.
func holdAction(t *testing.T, p *calltest.Platform, call graph.Call, path, typ string, body any) graph.Operation {
	t.Helper()
	r := p.Bot("POST", calls+"/"+call.ID+"/participants/"+path, body)
	var op graph.Operation
	r.JSON(t, &op)
	if r.StatusCode != 202 || op.ODataType != typ || op.Status != graph.OperationRunning || op.ID == "" {
		t.Fatalf("%s: %s %s", path, r.Status, r.Body)
	}
	if loc := r.Header.Get("Location"); !strings.HasSuffix(loc, "/communications/calls/"+call.ID+"/operations/"+op.ID) {
		t.Fatalf("%s: Location %q", path, loc)
	}
	return op
}

func completed(t *testing.T, op graph.Operation) {
	t.Helper()
	if op.Status != graph.OperationCompleted || op.ResultInfo == nil || op.ResultInfo.Code != 200 || op.ResultInfo.Subcode != 0 {
		t.Fatalf("operation %s: %+v %+v", op.ODataType, op, op.ResultInfo)
	}
}

// notified returns the position of the operation's completion among the
// call's notifications.
func notified(t *testing.T, p *calltest.Platform, callID, opID string) int {
	t.Helper()
	for i, n := range p.Hook.For(callID) {
		if strings.HasSuffix(n.ResourceURL, "/operations/"+opID) {
			return i
		}
	}
	t.Fatalf("operation %s never notified", opID)
	return -1
}

// Hold music
// (https://learn.microsoft.com/graph/api/participant-startholdmusic) for the
// far end of a two-party call: the built-in chime looped, prompts waiting
// behind it, a custom prompt, and the errors.
func TestHoldMusic(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	srv, _ := promptServer(t)
	call := p.CreateCall(calltest.AliceID)
	p.Hook.WaitState(t, call.ID, graph.StateEstablished)
	base := calls + "/" + call.ID
	far := farEnd(t, p, call)

	// The bot itself cannot be held; an unknown participant is 404; stop
	// without start is 400.
	graphError(t, p.Bot("POST", base+"/participants/"+call.MyParticipantID+"/startHoldMusic", map[string]any{}), 400, "BadRequest")
	graphError(t, p.Bot("POST", base+"/participants/0b0b0b0b-0000-4000-8000-000000000000/startHoldMusic", map[string]any{}), 404, "itemNotFound")
	graphError(t, p.Bot("POST", base+"/participants/"+far+"/stopHoldMusic", map[string]any{}), 400, "BadRequest")
	graphError(t, p.Bot("POST", base+"/participants/"+far+"/startHoldMusic",
		map[string]any{"customPrompt": map[string]any{"mediaInfo": map[string]any{"uri": "file:///etc/passwd"}}}), 400, "BadRequest")
	graphError(t, p.Bot("GET", base+"/participants/"+far+"/startHoldMusic", nil), 405, "methodNotAllowed")

	// The built-in chime (4 s, looped): the operation completes once it plays.
	n0, s0 := heard(t, p, call.ID)
	start := holdAction(t, p, call, far+"/startHoldMusic", graph.TypeStartHoldMusicOperation, map[string]any{"clientContext": "hold-1"})
	if start.ClientContext != "hold-1" {
		t.Fatalf("clientContext %q", start.ClientContext)
	}
	completed(t, waitOperation(t, p, call.ID, start.ID))
	if n, s := heard(t, p, call.ID); n != n0+1 || s-s0 != 4 {
		t.Fatalf("on hold the user heard %d prompts, %.1f s (before: %d, %.1f s); want the 4 s chime", n, s, n0, s0)
	}
	// One participant on hold at a time.
	graphError(t, p.Bot("POST", base+"/participants/"+far+"/startHoldMusic", map[string]any{}), 400, "BadRequest")

	// A prompt waits for the music to stop (the namespaced action form).
	var prompt graph.Operation
	r := p.Bot("POST", base+"/playPrompt", prompts(srv.URL+"/short.wav"))
	r.JSON(t, &prompt)
	if r.StatusCode != 200 || prompt.Status != graph.OperationRunning {
		t.Fatalf("playPrompt while held: %s %s", r.Status, r.Body)
	}
	stop := holdAction(t, p, call, far+"/microsoft.graph.stopHoldMusic", graph.TypeStopHoldMusicOperation, map[string]any{"clientContext": "unhold-1"})
	completed(t, waitOperation(t, p, call.ID, stop.ID))
	completed(t, waitOperation(t, p, call.ID, prompt.ID))
	if notified(t, p, call.ID, prompt.ID) < notified(t, p, call.ID, stop.ID) {
		t.Fatal("the prompt completed before the hold music stopped")
	}
	if n, _ := heard(t, p, call.ID); n != n0+2 {
		t.Fatalf("heard %d prompts, want the chime and the prompt", n)
	}
	graphError(t, p.Bot("POST", base+"/participants/"+far+"/stopHoldMusic", map[string]any{}), 400, "BadRequest")

	// A prompt playing when the hold starts is interrupted and plays
	// again, whole, once the music stops; a custom prompt is the music.
	two := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write(calltest.ToneWAV(520, 2*time.Second))
	}))
	defer two.Close()
	r = p.Bot("POST", base+"/playPrompt", prompts(two.URL+"/two.wav"))
	r.JSON(t, &prompt)
	n1, s1 := heard(t, p, call.ID)
	for deadline := time.Now().Add(10 * time.Second); n1 == n0+2; n1, s1 = heard(t, p, call.ID) {
		// Nothing is notified when a prompt starts: watch the user's ear.
		if time.Now().After(deadline) {
			t.Fatal("the prompt never started")
		}
	}
	start = holdAction(t, p, call, far+"/startHoldMusic", graph.TypeStartHoldMusicOperation, map[string]any{
		"customPrompt": map[string]any{"@odata.type": "#microsoft.graph.mediaPrompt",
			"mediaInfo": map[string]any{"@odata.type": "#microsoft.graph.mediaInfo", "uri": srv.URL + "/short.wav", "resourceId": "hold-short"}}})
	completed(t, waitOperation(t, p, call.ID, start.ID))
	if n, s := heard(t, p, call.ID); n != n1+1 || math.Abs(s-s1-0.2) > 0.01 {
		t.Fatalf("custom hold music: heard %d prompts, %.2f s more; want the 0.2 s prompt", n-n1, s-s1)
	}
	stop = holdAction(t, p, call, far+"/stopHoldMusic", graph.TypeStopHoldMusicOperation, nil)
	completed(t, waitOperation(t, p, call.ID, stop.ID))
	completed(t, waitOperation(t, p, call.ID, prompt.ID))
	if notified(t, p, call.ID, prompt.ID) < notified(t, p, call.ID, stop.ID) {
		t.Fatal("the interrupted prompt completed before the hold music stopped")
	}
	if n, s := heard(t, p, call.ID); n != n1+2 || math.Abs(s-s1-2.2) > 0.01 {
		t.Fatalf("after the hold: heard %d prompts, %.2f s more; want the music and the whole prompt again", n-n1, s-s1)
	}

	// A custom prompt that cannot be fetched fails the operation with the
	// prompt's error; nobody is on hold then.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + ln.Addr().String() + "/gone.wav"
	ln.Close()
	start = holdAction(t, p, call, far+"/startHoldMusic", graph.TypeStartHoldMusicOperation,
		map[string]any{"customPrompt": map[string]any{"mediaInfo": map[string]any{"uri": closed}}})
	failed := waitOperation(t, p, call.ID, start.ID)
	if failed.Status != graph.OperationFailed || failed.ResultInfo.Code != 400 || failed.ResultInfo.Subcode != 8520 {
		t.Fatalf("unreachable hold prompt: %+v %+v", failed, failed.ResultInfo)
	}
	graphError(t, p.Bot("POST", base+"/participants/"+far+"/stopHoldMusic", map[string]any{}), 400, "BadRequest")

	// Hanging up while on hold: the call ends as usual.
	start = holdAction(t, p, call, far+"/startHoldMusic", graph.TypeStartHoldMusicOperation, nil)
	completed(t, waitOperation(t, p, call.ID, start.ID))
	p.Bot("DELETE", base, nil)
	p.Hook.WaitState(t, call.ID, graph.StateTerminated)
	graphError(t, p.Bot("POST", base+"/participants/"+far+"/stopHoldMusic", map[string]any{}), 404, "itemNotFound")
}

// media.holdMusic is what a held participant hears when the bot names no
// prompt; when it cannot be fetched, the built-in chime plays instead.
func TestHoldMusicConfigured(t *testing.T) {
	srv, _ := promptServer(t)
	for _, tc := range []struct {
		name    string
		uri     string
		seconds float64
	}{
		{"configured", srv.URL + "/long.wav", 10},
		{"unavailable", srv.URL + "/missing.wav", 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) { c.Media.HoldMusic = tc.uri }})
			call := p.CreateCall(calltest.AliceID)
			p.Hook.WaitState(t, call.ID, graph.StateEstablished)
			far := farEnd(t, p, call)
			_, s0 := heard(t, p, call.ID)
			start := holdAction(t, p, call, far+"/startHoldMusic", graph.TypeStartHoldMusicOperation, map[string]any{})
			completed(t, waitOperation(t, p, call.ID, start.ID))
			if _, s := heard(t, p, call.ID); s-s0 != tc.seconds {
				t.Fatalf("held participant heard %.1f s of music, want %.0f", s-s0, tc.seconds)
			}
			// GET of the operation shows it completed too.
			var op graph.Operation
			p.Bot("GET", calls+"/"+call.ID+"/operations/"+start.ID, nil).JSON(t, &op)
			completed(t, op)
			raw, _ := json.Marshal(op)
			if !strings.Contains(string(raw), `"@odata.type":"#microsoft.graph.startHoldMusicOperation"`) {
				t.Fatalf("GET operation: %s", raw)
			}
		})
	}
}
