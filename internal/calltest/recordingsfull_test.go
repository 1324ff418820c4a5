package calltest_test

import (
	"testing"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// The recordings' store fills up (media.recordingsMaxBytes, here four
// seconds of audio) while a call is recording: that recording fails at
// once as an operation (500/9013), not when it would have ended, and not
// the call; what it had stored is purged, so the next recording fits.
//
// A disk that really fills is not tested here: JetStream's file store
// keeps refusing writes after the first "no space left" until it is
// restarted, which is why the recordings are bounded below the disk
// (docs/reliability.md).
func TestRecordingsStoreFullFailsTheRecordingNotTheCall(t *testing.T) {
	const second = 16000 // bytes of 8 kHz 16-bit audio
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		c.Simulator.Audio = true // real audio: a recording fills the store as it goes
		c.Media.RecordingsMaxBytes = 4 * second
	}})
	call := p.CreateCall(calltest.AliceID)
	p.Hook.WaitState(t, call.ID, graph.StateEstablished)
	base := calls + "/" + call.ID

	record := func(secs int) graph.Operation {
		t.Helper()
		r := p.Bot("POST", base+"/recordResponse", map[string]any{"initialSilenceTimeoutInSeconds": 120, "maxRecordDurationInSeconds": secs, "playBeep": false})
		var op graph.Operation
		r.JSON(t, &op)
		if r.StatusCode != 200 {
			t.Fatalf("recordResponse: %s %s", r.Status, r.Body)
		}
		return waitOperation(t, p, call.ID, op.ID)
	}
	long := record(60)
	t.Logf("a 60 s recording into a store that takes 4 s: %s %+v", long.Status, long.ResultInfo)
	if long.Status != graph.OperationFailed || long.ResultInfo == nil || long.ResultInfo.Code != 500 || long.ResultInfo.Subcode != 9013 {
		t.Fatalf("recording beyond the store's bound: %s %+v, want failed 500/9013", long.Status, long.ResultInfo)
	}
	if n := metric(t, p, "switchboard_recordings_failed_total"); n != 1 {
		t.Errorf("switchboard_recordings_failed_total %v, want 1", n)
	}
	if r := p.Bot("GET", base, nil); r.StatusCode != 200 {
		t.Fatalf("the call after its recording failed: %s %s", r.Status, r.Body)
	}
	short := record(2)
	if short.Status != graph.OperationCompleted || short.RecordingLocation == nil || *short.RecordingLocation == "" {
		t.Fatalf("a 2 s recording after the failed one was purged: %s %+v", short.Status, short.ResultInfo)
	}
	if r := p.Bot("DELETE", base, nil); r.StatusCode != 204 {
		t.Fatalf("hang up: %s %s", r.Status, r.Body)
	}
	p.Hook.WaitState(t, call.ID, graph.StateTerminated)
}
