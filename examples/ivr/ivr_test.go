package main

import (
	"bytes"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/bottest"
	"github.com/switchboard-voice/switchboard/examples/internal/prompts"
	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/media/prompt"
)

// The README's IVR scenario end to end: a registered baresip calls the
// sample bot, hears the menu, presses 1, leaves a message the bot downloads
// and plays back.
func TestIVRWithBaresip(t *testing.T) {
	calltest.NeedPeer(t, "baresip", "baresip")
	p, _, saved := startIVR(t)

	voice := calltest.Pattern(600, 60, 5)
	src := filepath.Join(t.TempDir(), "voice.wav")
	if err := calltest.WriteWAV(src, voice, 8000); err != nil {
		t.Fatal(err)
	}
	bs := calltest.StartBaresip(t, calltest.BaresipOptions{User: "eve", Password: calltest.EvePassword,
		Registrar: p.Node.SIP.Addr().String(), Source: src})
	bs.Command(t, "dial", "sip:"+calltest.BotNumber+"@"+p.Node.SIP.Addr().String())
	bs.WaitOutput(t, "Call established", 20*time.Second)
	// The menu's audio reaching the phone means the bot has subscribed to
	// tones (it subscribes before it plays anything).
	bs.WaitOutput(t, "incoming rtp for 'audio' established", 20*time.Second)
	bs.Command(t, "sndcode", "1")

	var path string
	select {
	case path = <-saved:
	case <-time.After(90 * time.Second):
		t.Fatalf("no message was saved; baresip:\n%s", bs.Output())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := prompt.DecodeWAV(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("saved message is not a WAV: %v", err)
	}
	if corr := bottest.Similarity(voice, msg); corr < 0.8 {
		t.Fatalf("the saved message does not sound like the caller: similarity %.2f", corr)
	}
	// The bot plays the message back, says goodbye and hangs up.
	bs.WaitOutput(t, "terminated", 60*time.Second)
}

// startIVR starts a node and the sample bot on it, with the bot's webhook
// and prompt server on loopback; saved receives each saved message's path.
func startIVR(t *testing.T) (p *calltest.Platform, served *prompts.Server, saved chan string) {
	t.Helper()
	// Servers whose addresses are known before their handlers exist.
	hook := httptest.NewUnstartedServer(nil)
	t.Cleanup(hook.Close)
	hookURL := "http://" + hook.Listener.Addr().String()
	promptSrv := httptest.NewUnstartedServer(nil)
	t.Cleanup(promptSrv.Close)
	served = prompts.NewServer("http://" + promptSrv.Listener.Addr().String())
	p = calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		c.Applications[0].CallbackURI = hookURL + "/callback"
	}})
	saved = make(chan string, 1)
	b, err := New(Options{BaseURL: p.URL + "/v1.0", TenantID: calltest.TenantID, AppID: calltest.BotID, Secret: calltest.Secret,
		CallbackURL: hookURL + "/callback", Prompts: served, MessagesDir: t.TempDir(), MaxRecordSeconds: 3,
		OnMessage: func(path string) { saved <- path }})
	if err != nil {
		t.Fatal(err)
	}
	hook.Config.Handler = b.Handler()
	promptSrv.Config.Handler = served
	hook.Start()
	promptSrv.Start()
	t.Cleanup(func() { _ = b.Handler().Shutdown(t.Context()) })
	return p, served, saved
}

// menuOf is the menu the bot plays, decoded (8 kHz).
func menuOf(t *testing.T, served *prompts.Server) []int16 {
	t.Helper()
	menuWAV, ok := served.File("menu.wav")
	if !ok {
		t.Fatal("the bot serves no menu.wav")
	}
	menu, err := prompt.DecodeWAV(bytes.NewReader(menuWAV))
	if err != nil {
		t.Fatal(err)
	}
	return menu
}
