package calltest_test

import (
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// promptServer serves WAV prompts on loopback and counts requests.
func promptServer(t *testing.T) (*httptest.Server, *int) {
	count := new(int)
	short := calltest.ToneWAV(440, 200*time.Millisecond)
	long := calltest.ToneWAV(660, 10*time.Second)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		*count++
		switch r.URL.Path {
		case "/short.wav":
			w.Write(short)
		case "/long.wav":
			w.Write(long)
		case "/notwav.wav":
			w.Write([]byte("ID3\x03\x00\x00\x00\x00\x00\x00 this is an mp3"))
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	return srv, count
}

func prompts(uris ...string) map[string]any {
	var ps []any
	for i, u := range uris {
		ps = append(ps, map[string]any{"@odata.type": "#microsoft.graph.mediaPrompt",
			"mediaInfo": map[string]any{"@odata.type": "#microsoft.graph.mediaInfo", "uri": u, "resourceId": "r" + u + string(rune('a'+i))}})
	}
	return map[string]any{"prompts": ps, "clientContext": "ctx"}
}

func waitOperation(t *testing.T, p *calltest.Platform, callID, opID string) graph.Operation {
	t.Helper()
	ns := p.Hook.Wait(t, callID, 20*time.Second, "operation "+opID, func(ns []calltest.Notification) bool {
		for _, n := range ns {
			if strings.HasSuffix(n.ResourceURL, "/operations/"+opID) {
				return true
			}
		}
		return false
	})
	for _, n := range ns {
		if strings.HasSuffix(n.ResourceURL, "/operations/"+opID) {
			if n.ChangeType != graph.ChangeDeleted {
				t.Fatalf("operation notification changeType %s", n.ChangeType)
			}
			return n.Operation(t)
		}
	}
	panic("unreachable")
}

// Service-hosted media against a simulated user: prompts play for their
// real length, failures are operation results, not call failures.
func TestMediaOperationsWithSimulatedUser(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	srv, _ := promptServer(t)
	call := p.CreateCall(calltest.AliceID)
	p.Hook.WaitState(t, call.ID, graph.StateEstablished)
	base := calls + "/" + call.ID

	r := p.Bot("POST", base+"/playPrompt", prompts(srv.URL+"/short.wav", srv.URL+"/short.wav"))
	var op graph.Operation
	r.JSON(t, &op)
	if r.StatusCode != 200 || op.Status != graph.OperationRunning || op.ODataType != graph.TypePlayPromptOperation || op.ClientContext != "ctx" {
		t.Fatalf("playPrompt: %s %s", r.Status, r.Body)
	}
	done := waitOperation(t, p, call.ID, op.ID)
	if done.Status != graph.OperationCompleted || done.ResultInfo.Code != 200 || done.ResultInfo.Subcode != 0 || done.CompletionReason != "completedSuccessfully" {
		t.Fatalf("playPrompt completion %+v %+v", done, done.ResultInfo)
	}
	legs := p.Do(calltest.Req{Method: "GET", Path: "/simulator/v1/calls?callId=" + call.ID})
	if !strings.Contains(string(legs.Body), `"promptsHeard":2`) {
		t.Fatalf("simulated user heard: %s", legs.Body)
	}

	// An unreachable prompt (a closed port) fails the operation, not the call.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	closed := "http://" + ln.Addr().String() + "/gone.wav"
	ln.Close()
	for _, tc := range []struct {
		uri     string
		subcode int
	}{{closed, 8520}, {srv.URL + "/missing.wav", 8521}, {srv.URL + "/notwav.wav", 8522}} {
		r = p.Bot("POST", base+"/playPrompt", prompts(tc.uri))
		r.JSON(t, &op)
		done = waitOperation(t, p, call.ID, op.ID)
		if done.Status != graph.OperationFailed || done.ResultInfo.Subcode != tc.subcode || done.ResultInfo.Message == "" {
			t.Fatalf("prompt %s: %+v %+v", tc.uri, done, done.ResultInfo)
		}
	}
	if r := p.Bot("GET", base, nil); r.StatusCode != 200 {
		t.Fatalf("call after failed prompts: %s", r.Status)
	}

	// cancelMediaProcessing fails the running and the queued operations.
	r = p.Bot("POST", base+"/playPrompt", prompts(srv.URL+"/long.wav"))
	var running, queued graph.Operation
	r.JSON(t, &running)
	p.Bot("POST", base+"/playPrompt", prompts(srv.URL+"/short.wav")).JSON(t, &queued)
	r = p.Bot("POST", base+"/cancelMediaProcessing", map[string]string{"clientContext": "stop"})
	r.JSON(t, &op)
	if r.StatusCode != 200 || op.Status != graph.OperationCompleted || op.ODataType != graph.TypeCancelMediaProcessingOp {
		t.Fatalf("cancelMediaProcessing: %s %s", r.Status, r.Body)
	}
	for _, id := range []string{running.ID, queued.ID} {
		c := waitOperation(t, p, call.ID, id)
		if c.Status != graph.OperationFailed || c.ResultInfo.Code != 400 || c.ResultInfo.Subcode != 8508 {
			t.Fatalf("cancelled operation %+v %+v", c, c.ResultInfo)
		}
	}

	// The simulated user says nothing: recordResponse ends on initial silence.
	r = p.Bot("POST", base+"/recordResponse", map[string]any{"initialSilenceTimeoutInSeconds": 1, "maxRecordDurationInSeconds": 5, "playBeep": true})
	r.JSON(t, &op)
	if r.StatusCode != 200 || op.ODataType != graph.TypeRecordOperation || op.Status != graph.OperationRunning {
		t.Fatalf("recordResponse: %s %s", r.Status, r.Body)
	}
	rec := waitOperation(t, p, call.ID, op.ID)
	if rec.CompletionReason != "initialSilenceTimeout" || rec.ResultInfo.Subcode != 8510 {
		t.Fatalf("record completion %+v %+v", rec, rec.ResultInfo)
	}
	// Bad input: more than one prompt, an out-of-range timeout.
	graphError(t, p.Bot("POST", base+"/recordResponse", prompts(srv.URL+"/a.wav", srv.URL+"/b.wav")), 400, "BadRequest")
	graphError(t, p.Bot("POST", base+"/recordResponse", map[string]any{"maxRecordDurationInSeconds": 500}), 400, "BadRequest")
	graphError(t, p.Bot("POST", base+"/playPrompt", map[string]any{"prompts": []any{}}), 400, "BadRequest")

	// An operation running when the call ends fails before the call's deleted notification.
	r = p.Bot("POST", base+"/playPrompt", prompts(srv.URL+"/long.wav"))
	r.JSON(t, &op)
	p.Bot("DELETE", base, nil)
	p.Hook.WaitState(t, call.ID, graph.StateTerminated)
	var sawOp bool
	for _, n := range p.Hook.For(call.ID) {
		if strings.HasSuffix(n.ResourceURL, "/operations/"+op.ID) {
			sawOp = true
			if o := n.Operation(t); o.Status != graph.OperationFailed {
				t.Fatalf("operation at call end: %+v", o)
			}
		}
		if c := n.Call(t); c.State == graph.StateTerminated && !sawOp {
			t.Fatal("terminated notified before the running operation failed")
		}
	}
}
