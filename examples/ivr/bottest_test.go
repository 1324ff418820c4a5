package main

import (
	"net/http/httptest"
	"os"
	"testing"

	"github.com/switchboard-voice/switchboard/bottest"
	"github.com/switchboard-voice/switchboard/internal/calltest"
)

// The README's "test your bot in CI": the sample IVR, a simulated caller,
// no phone. Alice hears the menu, presses 1, leaves a message, and hears it
// played back; the bot saved what she said.
func TestIVRWithSimulatedCaller(t *testing.T) {
	sb := bottest.Start(t)
	prompts := httptest.NewUnstartedServer(nil) // the bot serves its own prompts
	o := sb.ClientOptions()
	saved := make(chan string, 1)
	bot, err := New(Options{BaseURL: o.BaseURL, TenantID: o.TenantID, AppID: o.ClientID, Secret: o.ClientSecret,
		CallbackURL: sb.CallbackURL, PromptsURL: "http://" + prompts.Listener.Addr().String(),
		MessagesDir: t.TempDir(), OnMessage: func(path string) { saved <- path }})
	if err != nil {
		t.Fatal(err)
	}
	prompts.Config.Handler = bot.Prompts()
	prompts.Start()
	defer prompts.Close()
	sb.Serve(bot.Handler())

	alice := sb.Call(t, "Alice")
	alice.WaitConnected()
	alice.WaitHeard(bot.prompts["menu.wav"])
	alice.Press("1")
	alice.WaitBeep()                        // after "leave your message after the tone"
	message := calltest.Pattern(330, 3, 21) // 3 s of "speech"
	alice.SayPCM(message)
	alice.Press("#") // done
	alice.WaitHeard(bot.prompts["goodbye.wav"])
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
