package main

import (
	"net/http/httptest"
	"os"
	"testing"

	"github.com/switchboard-voice/switchboard/bottest"
	"github.com/switchboard-voice/switchboard/examples/internal/prompts"
	"github.com/switchboard-voice/switchboard/internal/calltest"
)

// The README's "test your bot in CI": the sample IVR, a simulated caller,
// no phone. Alice hears the menu, presses 1, leaves a message, and hears it
// played back; the bot saved what she said.
func TestIVRWithSimulatedCaller(t *testing.T) {
	sb := bottest.Start(t)
	promptSrv := httptest.NewUnstartedServer(nil) // the bot serves its own prompts
	served := prompts.NewServer("http://" + promptSrv.Listener.Addr().String())
	o := sb.ClientOptions()
	saved := make(chan string, 1)
	bot, err := New(Options{BaseURL: o.BaseURL, TenantID: o.TenantID, AppID: o.ClientID, Secret: o.ClientSecret,
		CallbackURL: sb.CallbackURL, Prompts: served,
		MessagesDir: t.TempDir(), OnMessage: func(path string) { saved <- path }})
	if err != nil {
		t.Fatal(err)
	}
	promptSrv.Config.Handler = served
	promptSrv.Start()
	defer promptSrv.Close()
	sb.Serve(bot.Handler())

	alice := sb.Call(t, "Alice")
	alice.WaitConnected()
	menu, _ := served.File("menu.wav")
	alice.WaitHeard(menu)
	alice.Press("1")
	alice.WaitBeep()                        // after "leave your message after the tone"
	message := calltest.Pattern(330, 3, 21) // 3 s of "speech"
	alice.SayPCM(message)
	alice.Press("#") // done
	goodbye, _ := served.File("goodbye.wav")
	alice.WaitHeard(goodbye)
	alice.WaitEnded()

	wav, err := os.ReadFile(<-saved)
	if err != nil {
		t.Fatal(err)
	}
	rec, err := bottest.DecodeWAV(wav)
	if err != nil {
		t.Fatal(err)
	}
	if s := bottest.Similarity(rec, message); s < 0.8 {
		t.Errorf("the saved message resembles what Alice said by %.2f", s)
	}
	if s := bottest.Similarity(alice.Heard(), message); s < 0.8 {
		t.Errorf("Alice did not hear her message played back (%.2f)", s)
	}
}
