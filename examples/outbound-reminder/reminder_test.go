package main

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/examples/internal/prompts"
	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// The README's reminder end to end, through a SIP trunk: the bot calls a
// phone number from its own number; the trunk's far end is a real
// softphone (baresip, not registered: the trunk's address is its own),
// which answers, hears the reminder and presses 1.
func TestReminderThroughTrunk(t *testing.T) {
	calltest.NeedPeer(t, "baresip", "baresip")
	const (
		callee   = "+15557770002"
		instance = "5eed0000-0000-4000-8000-00000000f00d"
	)
	src := t.TempDir() + "/callee.wav"
	if err := calltest.WriteWAV(src, make([]int16, 8000*60), 8000); err != nil { // silence, longer than the call
		t.Fatal(err)
	}
	bs := calltest.StartBaresip(t, calltest.BaresipOptions{User: callee, Password: "unused", Registrar: "127.0.0.1",
		Source: src, NoRegister: true})

	hook := httptest.NewUnstartedServer(nil)
	t.Cleanup(hook.Close)
	hookURL := "http://" + hook.Listener.Addr().String()
	promptSrv := httptest.NewUnstartedServer(nil)
	t.Cleanup(promptSrv.Close)
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		c.Applications[0].CallbackURI = hookURL + "/callback"
		c.Applications[0].Numbers = []config.Number{{Number: calltest.BotNumber, InstanceID: instance}}
		c.SIP.Trunks = []config.Trunk{{Name: "pstn", Address: bs.SIP}}
	}})
	reminder := calltest.Melody(4, 3)
	ps := prompts.NewServer("http://" + promptSrv.Listener.Addr().String())
	b, err := New(Options{BaseURL: p.URL + "/v1.0", TenantID: calltest.TenantID, AppID: calltest.BotID, Secret: calltest.Secret,
		CallbackURL: hookURL + "/callback", Prompts: ps, FromInstance: instance,
		WAV: calltest.WAV(reminder, 8000), Confirm: true, ConfirmWait: 20 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	hook.Config.Handler = b.Handler()
	promptSrv.Config.Handler = ps
	hook.Start()
	promptSrv.Start()
	t.Cleanup(func() { _ = b.Handler().Shutdown(t.Context()) })

	type result struct {
		r   Result
		err error
	}
	done := make(chan result, 1)
	go func() {
		r, err := b.Remind(t.Context(), callee)
		done <- result{r, err}
	}()
	// The bot subscribes to tones before it plays anything, so its audio
	// reaching the phone means a key will be reported.
	bs.WaitOutput(t, "Call established", 20*time.Second)
	bs.WaitOutput(t, "incoming rtp for 'audio' established", 20*time.Second)
	bs.Command(t, "sndcode", "1")

	var got result
	select {
	case got = <-done:
	case <-time.After(40 * time.Second):
		t.Fatalf("the reminder call did not finish; baresip:\n%s", bs.Output())
	}
	r := got.r
	if got.err != nil || !r.Answered || !r.Heard || !r.Confirmed || r.Key != graph.Tone1 {
		t.Fatalf("result %+v, err %v", r, got.err)
	}
	if r.End == nil || r.End.Code != 200 || r.End.Subcode != 5001 {
		t.Fatalf("the call ended with %+v, want 200/5001: the bot hung up", r.End)
	}

	// The callee saw the bot's number, and heard the reminder.
	if !strings.Contains(bs.Output(), "from sip:"+calltest.BotNumber+"@") {
		t.Errorf("baresip does not show the caller as %s:\n%s", calltest.BotNumber, bs.Output())
	}
	bs.WaitOutput(t, "terminated", 10*time.Second)
	heard := bs.Heard(t)
	want, got2 := calltest.Notes(reminder), calltest.Notes(heard)
	if len(want) < 8 || !calltest.NotesIn(want, got2) {
		t.Fatalf("the callee did not hear the reminder: its notes %v, heard %v", want, got2)
	}
}
