package calltest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/bottest"
	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/media/prompt"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// End-to-end against real SIP peers (TESTING-PEERS.md): baresip, a real
// softphone, and sipp as a PSTN trunk. Audio is checked as audio.

// wavServer serves files on loopback.
func wavServer(t *testing.T, files map[string][]byte) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// download fetches a recording with its access token and decodes it.
func download(t *testing.T, p *calltest.Platform, op graph.Operation) []int16 {
	t.Helper()
	if op.RecordingLocation == nil || *op.RecordingLocation == "" || op.RecordingAccessToken == nil {
		t.Fatalf("record operation without a recording: %+v", op)
	}
	req, _ := http.NewRequest("GET", *op.RecordingLocation, nil)
	req.Header.Set("Authorization", "Bearer "+*op.RecordingAccessToken)
	resp, err := p.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("download recording: %s %s", resp.Status, body)
	}
	pcm, err := prompt.DecodeWAV(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("recording is not a WAV: %v", err)
	}
	return pcm
}

func opDone(t *testing.T, p *calltest.Platform, callID string, r *calltest.Response) graph.Operation {
	t.Helper()
	var op graph.Operation
	r.JSON(t, &op)
	if r.StatusCode != 200 {
		t.Fatalf("operation: %s %s", r.Status, r.Body)
	}
	return waitOperation(t, p, callID, op.ID)
}

// A registered baresip answers a bot's call, hears the bot's prompt, and
// what it sends ends up in the bot's recording.
func TestBaresipAnswersHearsPromptAndIsRecorded(t *testing.T) {
	calltest.NeedPeer(t, "baresip", "baresip")
	p := calltest.Start(t, calltest.Options{})
	dir := t.TempDir()
	voice := calltest.Pattern(700, 40, 1) // what the phone's microphone says
	src := filepath.Join(dir, "src.wav")
	if err := calltest.WriteWAV(src, voice, 8000); err != nil {
		t.Fatal(err)
	}
	promptPCM := calltest.Pattern(1100, 3, 2)
	base := wavServer(t, map[string][]byte{"/prompt.wav": calltest.WAV(promptPCM, 8000)})

	bs := calltest.StartBaresip(t, calltest.BaresipOptions{User: "eve", Password: calltest.EvePassword,
		Registrar: p.Node.SIP.Addr().String(), Source: src})

	call := p.CreateCall(calltest.EveID)
	p.Hook.WaitState(t, call.ID, graph.StateEstablished)
	c := calls + "/" + call.ID

	op := opDone(t, p, call.ID, p.Bot("POST", c+"/playPrompt", prompts(base+"/prompt.wav")))
	if op.Status != graph.OperationCompleted {
		t.Fatalf("playPrompt: %+v %+v", op, op.ResultInfo)
	}
	op = opDone(t, p, call.ID, p.Bot("POST", c+"/recordResponse", map[string]any{
		"maxRecordDurationInSeconds": 3, "initialSilenceTimeoutInSeconds": 5, "maxSilenceTimeoutInSeconds": 5, "playBeep": false}))
	if op.Status != graph.OperationCompleted || op.ResultInfo.Subcode != 8515 {
		t.Fatalf("recordResponse: %+v %+v", op, op.ResultInfo)
	}
	rec := download(t, p, op)
	if len(rec) < 2*8000 {
		t.Fatalf("recording has %d samples", len(rec))
	}
	if corr := bottest.Similarity(voice, rec); corr < 0.8 {
		t.Fatalf("the recording does not sound like what the phone sent: similarity %.2f", corr)
	}

	if r := p.Bot("DELETE", c, nil); r.StatusCode != 204 {
		t.Fatalf("hang up: %s", r.Status)
	}
	end := p.Hook.WaitState(t, call.ID, graph.StateTerminated).Call(t)
	if end.ResultInfo.Code != 200 || end.ResultInfo.Subcode != 5001 {
		t.Fatalf("end %+v", end.ResultInfo)
	}
	// baresip wrote what it heard when its call closed.
	bs.WaitOutput(t, "terminated", 10*time.Second)
	heard := bs.Heard(t)
	// baresip starts writing what it hears some way into the call, so the
	// prompt's start may be missing: two thirds of it must be there.
	heardEnv := calltest.Envelope(heard)
	if corr, _ := calltest.BestCorrelation(calltest.Envelope(promptPCM), heardEnv, len(heardEnv), 100); corr < 0.8 {
		t.Fatalf("the phone did not hear the prompt: correlation %.2f", corr)
	}
}

// sipp calls the bot's number through a trunk: the bot answers, the keys
// the caller presses (RFC 4733, first packet of duration 0) arrive as tone
// notifications in order, the caller's speech ends up in the recording,
// and the caller's BYE ends the call as a PSTN hang-up.
func TestTrunkCallerWithSipp(t *testing.T) {
	sipp := calltest.NeedPeer(t, "sipp", "sip-tester")
	const pcaps = "/usr/share/sip-tester"
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		c.SIP.Trunks = []config.Trunk{{Name: "pstn", Address: "127.0.0.2:5999", AllowFrom: []string{"127.0.0.2"}}}
	}})
	dir := t.TempDir()
	if err := os.Symlink(pcaps, filepath.Join(dir, "pcap")); err != nil {
		t.Fatal(err)
	}
	scen, _ := filepath.Abs("testdata/sipp/trunk_ivr.xml")
	port := calltest.FreeUDPPort(t, "127.0.0.2")
	mport := calltest.FreeUDPPort(t, "127.0.0.2")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sipp, "-sf", scen, p.Node.SIP.Addr().String(), "-s", calltest.BotNumber,
		"-i", "127.0.0.2", "-p", strconv.Itoa(port), "-mp", strconv.Itoa(mport), "-m", "1", "-l", "1",
		"-nostdin", "-timeout", "50s", "-timeout_error", "-trace_err", "-error_file", filepath.Join(dir, "err.log"))
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sippDone := make(chan error, 1)
	go func() { sippDone <- cmd.Wait() }()

	in := p.Hook.Wait(t, "", 20*time.Second, "incoming call", func(ns []calltest.Notification) bool {
		for _, n := range ns {
			if n.ChangeType == graph.ChangeCreated {
				return true
			}
		}
		return false
	})
	var incoming graph.Call
	for _, n := range in {
		if n.ChangeType == graph.ChangeCreated {
			incoming = n.Call(t)
		}
	}
	if incoming.Source == nil || incoming.Source.Identity.Phone == nil || incoming.Source.Identity.Phone.ID != "+15557770001" {
		t.Fatalf("incoming caller: %+v", incoming.Source)
	}
	c := calls + "/" + incoming.ID
	ans := map[string]any{"acceptedModalities": []string{"audio"},
		"mediaConfig": map[string]any{"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}}
	if r := p.Bot("POST", c+"/answer", ans); r.StatusCode != 202 {
		t.Fatalf("answer: %s %s", r.Status, r.Body)
	}
	p.Hook.WaitState(t, incoming.ID, graph.StateEstablished)
	if r := p.Bot("POST", c+"/subscribeToTone", map[string]string{}); r.StatusCode != 200 {
		t.Fatalf("subscribeToTone: %s %s", r.Status, r.Body)
	}
	r := p.Bot("POST", c+"/recordResponse", map[string]any{"maxRecordDurationInSeconds": 20,
		"initialSilenceTimeoutInSeconds": 15, "maxSilenceTimeoutInSeconds": 2, "playBeep": false})
	var recOp graph.Operation
	r.JSON(t, &recOp)

	var tones []graph.ToneInfo
	p.Hook.Wait(t, incoming.ID, 20*time.Second, "3 tones", func(ns []calltest.Notification) bool {
		tones = tones[:0]
		for _, n := range ns {
			if n.ResourceURL == "/communications/calls/"+incoming.ID {
				if ci := n.Call(t); ci.ToneInfo != nil {
					tones = append(tones, *ci.ToneInfo)
				}
			}
		}
		return len(tones) >= 3
	})
	want := []graph.Tone{graph.Tone1, graph.Tone2, graph.TonePound}
	for i, ti := range tones[:3] {
		if ti.Tone != want[i] || ti.SequenceID != int64(i+1) {
			t.Fatalf("tones %+v, want %v", tones, want)
		}
	}

	op := waitOperation(t, p, incoming.ID, recOp.ID)
	if op.Status != graph.OperationCompleted || op.CompletionReason != "maxSilenceTimeout" {
		t.Fatalf("record: %+v %+v", op, op.ResultInfo)
	}
	rec := download(t, p, op)
	if d := os.Getenv("SWITCHBOARD_TEST_DUMP"); d != "" {
		_ = calltest.WriteWAV(filepath.Join(d, "trunk-recording.wav"), rec, 8000)
	}
	speech, err := calltest.PcapAudio(filepath.Join(pcaps, "g711a.pcap"), 8)
	if err != nil {
		t.Fatal(err)
	}
	if corr := bottest.Similarity(speech, rec); corr < 0.8 {
		t.Fatalf("the recording does not sound like the caller's speech: similarity %.2f", corr)
	}

	end := p.Hook.WaitState(t, incoming.ID, graph.StateTerminated).Call(t)
	if end.ResultInfo.Code != 200 || end.ResultInfo.Subcode != 540000 {
		t.Fatalf("PSTN hang-up ended with %+v", end.ResultInfo)
	}
	select {
	case err := <-sippDone:
		if err != nil {
			errLog, _ := os.ReadFile(filepath.Join(dir, "err.log"))
			t.Fatalf("sipp: %v\n%s\n%s", err, out.String(), errLog)
		}
	case <-ctx.Done():
		t.Fatalf("sipp did not finish:\n%s", out.String())
	}
	if len(tones) != 3 {
		t.Fatalf("extra tones reported: %+v", tones)
	}
}

// A registered baresip calls the bot's number (digest-authenticated, so
// the bot sees the user), presses keys the bot sees in order, and leaves a
// message the bot downloads.
func TestBaresipCallsBotPressesKeysLeavesMessage(t *testing.T) {
	calltest.NeedPeer(t, "baresip", "baresip")
	p := calltest.Start(t, calltest.Options{})
	voice := calltest.Pattern(500, 60, 3)
	src := filepath.Join(t.TempDir(), "src.wav")
	if err := calltest.WriteWAV(src, voice, 8000); err != nil {
		t.Fatal(err)
	}
	bs := calltest.StartBaresip(t, calltest.BaresipOptions{User: "eve", Password: calltest.EvePassword,
		Registrar: p.Node.SIP.Addr().String(), Source: src})
	bs.Command(t, "dial", "sip:"+calltest.BotNumber+"@"+p.Node.SIP.Addr().String())

	created := p.Hook.Wait(t, "", 20*time.Second, "incoming call", func(ns []calltest.Notification) bool {
		for _, n := range ns {
			if n.ChangeType == graph.ChangeCreated {
				return true
			}
		}
		return false
	})
	var in graph.Call
	for _, n := range created {
		if n.ChangeType == graph.ChangeCreated {
			in = n.Call(t)
		}
	}
	if in.Source == nil || in.Source.Identity.User == nil || in.Source.Identity.User.ID != calltest.EveID {
		t.Fatalf("caller identity: %+v", in.Source)
	}
	c := calls + "/" + in.ID
	ans := map[string]any{"acceptedModalities": []string{"audio"},
		"mediaConfig": map[string]any{"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}}
	if r := p.Bot("POST", c+"/answer", ans); r.StatusCode != 202 {
		t.Fatalf("answer: %s %s", r.Status, r.Body)
	}
	p.Hook.WaitState(t, in.ID, graph.StateEstablished)
	if r := p.Bot("POST", c+"/subscribeToTone", map[string]string{}); r.StatusCode != 200 {
		t.Fatalf("subscribeToTone: %s", r.Status)
	}
	for _, k := range []string{"4", "2"} {
		bs.Command(t, "sndcode", k)
		p.Hook.Wait(t, in.ID, 10*time.Second, "tone "+k, func(ns []calltest.Notification) bool {
			for _, n := range ns {
				if n.ResourceURL == "/communications/calls/"+in.ID {
					if ci := n.Call(t); ci.ToneInfo != nil && ci.ToneInfo.Tone == graph.Tone("tone"+k) {
						return true
					}
				}
			}
			return false
		})
	}
	var seq []string
	for _, n := range p.Hook.For(in.ID) {
		if n.ResourceURL == "/communications/calls/"+in.ID {
			if ci := n.Call(t); ci.ToneInfo != nil {
				seq = append(seq, fmt.Sprintf("%s#%d", ci.ToneInfo.Tone, ci.ToneInfo.SequenceID))
			}
		}
	}
	if strings.Join(seq, " ") != "tone4#1 tone2#2" {
		t.Fatalf("tones %v, want tone4#1 tone2#2", seq)
	}
	op := opDone(t, p, in.ID, p.Bot("POST", c+"/recordResponse", map[string]any{
		"maxRecordDurationInSeconds": 3, "playBeep": true}))
	if op.Status != graph.OperationCompleted || op.CompletionReason != "maxRecordDurationReached" {
		t.Fatalf("record: %+v %+v", op, op.ResultInfo)
	}
	rec := download(t, p, op)
	if corr := bottest.Similarity(voice, rec); corr < 0.8 {
		t.Fatalf("the message does not sound like what the phone sent: similarity %.2f", corr)
	}
	// The caller hangs up.
	bs.Command(t, "hangup", "")
	end := p.Hook.WaitState(t, in.ID, graph.StateTerminated).Call(t)
	if end.ResultInfo.Code != 200 || end.ResultInfo.Subcode != 4521 {
		t.Fatalf("caller hang-up ended with %+v", end.ResultInfo)
	}
}
