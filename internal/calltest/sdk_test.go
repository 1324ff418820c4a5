package calltest_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/sdk"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// sdkBot is a bot built with the public SDK against an in-process node:
// its Handler is the application's registered webhook (incoming calls)
// and the callbackUri of the calls it makes and answers.
type sdkBot struct {
	p      *calltest.Platform
	client *sdk.Client
	bot    *sdk.Handler
	url    string // the bot's callback URL

	mu     sync.Mutex
	events map[string][]string // per call id, what its callbacks saw, in order
}

func (b *sdkBot) record(c *sdk.Call, what string) {
	b.mu.Lock()
	b.events[c.ID()] = append(b.events[c.ID()], what)
	b.mu.Unlock()
}

func (b *sdkBot) eventsOf(id string) []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.events[id])
}

func startSDKBot(t *testing.T) *sdkBot {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	node := "http://" + ln.Addr().String()
	client, err := sdk.NewClient(sdk.ClientOptions{BaseURL: node + "/v1.0", TenantID: calltest.TenantID,
		ClientID: calltest.BotID, ClientSecret: calltest.Secret})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(nil)
	b := &sdkBot{client: client, url: "http://" + srv.Listener.Addr().String() + "/callback", events: map[string][]string{}}
	b.bot, err = sdk.NewHandler(sdk.HandlerOptions{Client: client, CallbackURL: b.url})
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = b.bot
	srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := b.bot.Shutdown(ctx); err != nil {
			t.Errorf("bot shutdown: %v", err)
		}
		srv.Close()
	})
	b.p = calltest.Start(t, calltest.Options{Listener: ln, Edit: func(c *config.Config) {
		for i := range c.Applications {
			if c.Applications[i].ID == calltest.BotID {
				c.Applications[i].CallbackURI = b.url
			}
		}
	}})
	return b
}

// The SDK against a real node: a bot calls Alice, waits until established,
// subscribes to tones, sends DTMF and plays a prompt (awaiting both), takes
// an incoming call from the simulator and answers it, sees the caller's keys
// in order, records, downloads the recording, hangs up and sees both calls
// terminate — every event in order per call.
func TestSDKBotEndToEnd(t *testing.T) {
	b := startSDKBot(t)
	p, bot, client := b.p, b.bot, b.client
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	incoming := make(chan *sdk.Call, 1)
	terminated := make(chan *sdk.Call, 2)
	bot.OnIncomingCall(func(ctx context.Context, c *sdk.Call) {
		b.record(c, "incoming")
		if err := c.Answer(ctx, nil); err != nil {
			t.Errorf("answer: %v", err)
		}
		incoming <- c
	})
	bot.OnCallUpdated(func(ctx context.Context, c *sdk.Call, ch graph.Call) {
		if ch.State != "" && ch.ToneInfo == nil {
			b.record(c, "state "+string(ch.State))
		}
		if ch.ToneInfo != nil {
			b.record(c, fmt.Sprintf("tone %d %s", ch.ToneInfo.SequenceID, ch.ToneInfo.Tone))
		}
	})
	bot.OnOperation(func(ctx context.Context, c *sdk.Call, op graph.Operation) {
		b.record(c, "operation "+strings.TrimPrefix(op.ODataType, "#microsoft.graph.")+" "+string(op.Status))
	})
	bot.OnTerminated(func(ctx context.Context, c *sdk.Call) {
		b.record(c, "terminated")
		terminated <- c
	})

	// Outbound: the bot calls Alice.
	out, err := bot.CreateCall(ctx, sdk.NewCall(sdk.UserTarget(calltest.AliceID, "Alice")))
	if err != nil {
		t.Fatal(err)
	}
	if err := out.WaitState(ctx, graph.StateEstablished); err != nil {
		t.Fatal(err)
	}
	s := out.Snapshot()
	if s.Direction != graph.DirectionOutgoing || s.MyParticipantID == "" || s.CallChainID == "" || s.TenantID != calltest.TenantID ||
		s.MediaState == nil || s.MediaState.Audio != graph.MediaStateActive || s.Source == nil || s.Source.Identity.Application.ID != calltest.BotID {
		t.Fatalf("merged outbound call: %+v", s)
	}
	if out.TenantID() != calltest.TenantID {
		t.Fatalf("call tenant %q", out.TenantID())
	}
	ps, err := client.ListParticipants(ctx, out.ID())
	if err != nil || len(ps) != 2 {
		t.Fatalf("participants: %+v %v", ps, err)
	}
	if pt, err := client.GetParticipant(ctx, out.ID(), ps[1].ID); err != nil || pt.ID != ps[1].ID {
		t.Fatalf("participant: %+v %v", pt, err)
	}

	// subscribeToTone completes in its response: Await returns at once.
	sub, err := out.SubscribeToTone(ctx)
	if err != nil || sub.Status != graph.OperationCompleted {
		t.Fatalf("subscribeToTone: %+v %v", sub, err)
	}
	if done, err := out.Await(ctx, sub); err != nil || done.ID != sub.ID {
		t.Fatalf("await subscribeToTone: %v", err)
	}

	// sendDtmfTones runs: Await waits for its deleted notification.
	dtmf, err := out.SendDtmfTones(ctx, graph.Tone1, graph.Tone2, graph.TonePound)
	if err != nil || dtmf.Status != graph.OperationRunning || dtmf.ODataType != graph.TypeSendDtmfTonesOperation {
		t.Fatalf("sendDtmfTones: %+v %v", dtmf, err)
	}
	done, err := bot.Await(ctx, dtmf)
	if err != nil || done.Status != graph.OperationCompleted || done.CompletionReason != "completedSuccessfully" || done.ResultInfo == nil || done.ResultInfo.Code != 200 {
		t.Fatalf("await sendDtmfTones: %+v %v", done, err)
	}
	if got, err := client.GetOperation(ctx, out.ID(), dtmf.ID); err != nil || got.Status != graph.OperationCompleted {
		t.Fatalf("GET operation: %+v %v", got, err)
	}
	legs := p.Do(calltest.Req{Method: "GET", Path: "/simulator/v1/calls?callId=" + out.ID()})
	if !strings.Contains(string(legs.Body), `"tonesReceived":"12#"`) {
		t.Fatalf("Alice heard: %s", legs.Body)
	}

	// A prompt, awaited.
	wav := calltest.ToneWAV(440, 200*time.Millisecond)
	prompts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write(wav) }))
	defer prompts.Close()
	play, err := out.PlayPrompt(ctx, prompts.URL+"/menu.wav")
	if err != nil {
		t.Fatal(err)
	}
	if done, err := out.Await(ctx, play); err != nil || done.Status != graph.OperationCompleted {
		t.Fatalf("await playPrompt: %+v %v", done, err)
	}

	// Inbound: the simulator's Alice calls the bot's number; the bot answers.
	var leg struct{ ID, CallID string }
	r := p.Do(calltest.Req{Method: "POST", Path: "/simulator/v1/calls", Body: map[string]string{"from": calltest.AlicePhone, "to": calltest.BotNumber}})
	if r.StatusCode != 201 {
		t.Fatalf("simulator call: %s %s", r.Status, r.Body)
	}
	r.JSON(t, &leg)
	var in *sdk.Call
	select {
	case in = <-incoming:
	case <-ctx.Done():
		t.Fatal("no incoming call")
	}
	if in.ID() != leg.CallID {
		t.Fatalf("incoming call %s, simulator says %s", in.ID(), leg.CallID)
	}
	if err := in.WaitState(ctx, graph.StateEstablished); err != nil {
		t.Fatal(err)
	}
	if s := in.Snapshot(); s.Direction != graph.DirectionIncoming || s.Source == nil || s.Source.Identity.Phone == nil ||
		s.Source.Identity.Phone.ID != calltest.AlicePhone {
		t.Fatalf("merged incoming call: %+v", s)
	}
	if _, err := in.SubscribeToTone(ctx); err != nil {
		t.Fatal(err)
	}
	if r := p.Do(calltest.Req{Method: "POST", Path: "/simulator/v1/calls/" + leg.ID + "/keys", Body: map[string]string{"keys": "12*#", "interval": "10ms"}}); r.StatusCode != 202 {
		t.Fatalf("keys: %s %s", r.Status, r.Body)
	}
	var tones []graph.ToneInfo
	for len(tones) < 4 {
		select {
		case ti := <-in.Tones():
			tones = append(tones, ti)
		case <-ctx.Done():
			t.Fatalf("tones: %+v", tones)
		}
	}
	want := []graph.Tone{graph.Tone1, graph.Tone2, graph.ToneStar, graph.TonePound}
	for i, ti := range tones {
		if ti.Tone != want[i] || ti.SequenceID != int64(i+1) {
			t.Fatalf("tones %+v, want %v with sequenceId 1..4", tones, want)
		}
	}

	// The silent caller: recordResponse fails on initial silence (an
	// *OperationError), and what was recorded downloads with its token.
	rec, err := in.RecordResponse(ctx, &graph.RecordResponseRequest{InitialSilenceTimeoutInSeconds: ptr(1), MaxRecordDurationInSeconds: ptr(5)})
	if err != nil {
		t.Fatal(err)
	}
	done, err = in.Await(ctx, rec)
	var oe *sdk.OperationError
	if !errors.As(err, &oe) || done.CompletionReason != "initialSilenceTimeout" || done.RecordingLocation == nil || *done.RecordingLocation == "" {
		t.Fatalf("await recordResponse: %+v %v", done, err)
	}
	body, err := client.DownloadRecording(ctx, *done.RecordingLocation, *done.RecordingAccessToken)
	if err != nil {
		t.Fatal(err)
	}
	audio, err := io.ReadAll(body)
	body.Close()
	if err != nil || !bytes.HasPrefix(audio, []byte("RIFF")) {
		t.Fatalf("recording: %d bytes %q %v", len(audio), audio[:min(len(audio), 12)], err)
	}

	// The bot hangs up the outbound call; the caller hangs up the inbound one.
	if err := out.HangUp(ctx); err != nil {
		t.Fatal(err)
	}
	if r := p.Do(calltest.Req{Method: "DELETE", Path: "/simulator/v1/calls/" + leg.ID}); r.StatusCode != 204 {
		t.Fatalf("simulator hang-up: %s", r.Status)
	}
	ended := map[string]bool{}
	for len(ended) < 2 {
		select {
		case c := <-terminated:
			ended[c.ID()] = true
		case <-ctx.Done():
			t.Fatalf("terminated: %v", ended)
		}
	}
	if ri := out.Snapshot().ResultInfo; ri == nil || ri.Code != 200 || ri.Subcode != 5001 {
		t.Fatalf("outbound end %+v", ri)
	}
	if ri := in.Snapshot().ResultInfo; ri == nil || ri.Code != 200 || ri.Subcode != 4521 {
		t.Fatalf("inbound end %+v", ri)
	}
	if _, ok := <-in.Tones(); ok {
		t.Fatal("Tones still open after the end")
	}
	_, err = client.GetCall(ctx, out.ID())
	var ge *sdk.GraphError
	if !errors.As(err, &ge) || ge.StatusCode != 404 || ge.RequestID == "" {
		t.Fatalf("GET after the end: %v", err)
	}

	// Every event, in order per call.
	wantOut := []string{"state establishing", "state ringing", "state established",
		"operation sendDtmfTonesOperation Completed", "operation playPromptOperation Completed",
		"state terminating", "state terminated", "terminated"}
	if got := b.eventsOf(out.ID()); !slices.Equal(got, wantOut) {
		t.Errorf("outbound call events\n got %q\nwant %q", got, wantOut)
	}
	wantIn := []string{"incoming", "state establishing", "state established",
		"tone 1 tone1", "tone 2 tone2", "tone 3 star", "tone 4 pound",
		"operation recordOperation Failed", "state terminated", "terminated"}
	if got := b.eventsOf(in.ID()); !slices.Equal(got, wantIn) {
		t.Errorf("inbound call events\n got %q\nwant %q", got, wantIn)
	}
	if bot.Dropped() != 0 {
		t.Errorf("%d events dropped", bot.Dropped())
	}
	if rej := p.Hook.Rejected(); len(rej) > 0 {
		t.Errorf("the calltest webhook rejected: %v", rej)
	}
}

func ptr[T any](v T) *T { return &v }
