package main

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/examples/internal/prompts"
	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/media/prompt"
)

// The README's recorder end to end: a registered baresip calls the bot,
// speaks after the beep; the bot saves what it said and plays it back.
// Audio is checked as audio, by its notes (calltest.Melody): the saved file
// against what baresip sent, and what baresip heard against the saved file.
func TestRecorderWithBaresip(t *testing.T) {
	calltest.NeedPeer(t, "baresip", "baresip")
	// Servers whose addresses are known before their handlers exist.
	hook := httptest.NewUnstartedServer(nil)
	t.Cleanup(hook.Close)
	hookURL := "http://" + hook.Listener.Addr().String()
	promptSrv := httptest.NewUnstartedServer(nil)
	t.Cleanup(promptSrv.Close)
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		c.Applications[0].CallbackURI = hookURL + "/callback"
	}})
	results := make(chan Result, 1)
	ps := prompts.NewServer("http://" + promptSrv.Listener.Addr().String())
	b, err := New(Options{BaseURL: p.URL + "/v1.0", TenantID: calltest.TenantID, AppID: calltest.BotID, Secret: calltest.Secret,
		CallbackURL: hookURL + "/callback", Prompts: ps, Dir: t.TempDir(), MaxRecordSeconds: 4,
		OnDone: func(r Result) { results <- r }})
	if err != nil {
		t.Fatal(err)
	}
	hook.Config.Handler = b.Handler()
	promptSrv.Config.Handler = ps
	hook.Start()
	promptSrv.Start()
	t.Cleanup(func() { _ = b.Handler().Shutdown(t.Context()) })

	voice := calltest.Melody(60, 7) // the caller's microphone; longer than the call
	src := filepath.Join(t.TempDir(), "voice.wav")
	if err := calltest.WriteWAV(src, voice, 8000); err != nil {
		t.Fatal(err)
	}
	bs := calltest.StartBaresip(t, calltest.BaresipOptions{User: "eve", Password: calltest.EvePassword,
		Registrar: p.Node.SIP.Addr().String(), Source: src})
	bs.Command(t, "dial", "sip:"+calltest.BotNumber+"@"+p.Node.SIP.Addr().String())

	var r Result
	select {
	case r = <-results:
	case <-time.After(45 * time.Second):
		t.Fatalf("the bot did not finish the call; baresip:\n%s", bs.Output())
	}
	if r.Err != nil || r.Path == "" || !r.PlayedBack || r.CompletionReason != "maxRecordDurationReached" {
		t.Fatalf("result %+v", r)
	}
	if !strings.Contains(r.Caller, calltest.EveID) {
		t.Errorf("caller %q, want eve's user id", r.Caller)
	}
	data, err := os.ReadFile(r.Path)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := prompt.DecodeWAV(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("the saved recording is not a WAV: %v", err)
	}
	if len(rec) < 3*8000 {
		t.Fatalf("the saved recording has %d samples, want about 4 s", len(rec))
	}
	said := calltest.Notes(rec)
	if len(said) < 6 || !calltest.NotesIn(said, calltest.Notes(voice)) {
		t.Fatalf("the saved recording does not sound like the caller: notes %v, not in what baresip sent", said)
	}

	// The bot hung up; baresip wrote what it heard when the call closed.
	bs.WaitOutput(t, "terminated", 15*time.Second)
	heard := bs.Heard(t)
	if heardNotes := calltest.Notes(heard); !calltest.NotesIn(said, heardNotes) {
		t.Fatalf("the caller did not hear the playback: notes %v, heard %v", said, heardNotes)
	}
}
