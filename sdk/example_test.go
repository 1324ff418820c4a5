package sdk_test

import (
	"context"
	"log"
	"net/http"
	"time"

	"github.com/switchboard-voice/switchboard/sdk"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// An IVR bot in twenty lines, for the dev node of `switchboard serve --dev`
// (its demo tenant, bot and secret): answer, play a menu, read a digit,
// play what was asked for, hang up. The prompts are 16 kHz mono WAV files
// served at http://127.0.0.1:9001/.
func Example_ivr() {
	client, err := sdk.NewClient(sdk.ClientOptions{BaseURL: "http://127.0.0.1:8080/v1.0",
		TenantID: "8f6e4b1a-0c2d-4e5f-9a1b-2c3d4e5f6a70", ClientID: "b07ab07a-0000-4000-8000-00000000b07a", ClientSecret: "dev-secret-change-me"})
	if err != nil {
		log.Fatal(err)
	}
	bot, err := sdk.NewHandler(sdk.HandlerOptions{Client: client, CallbackURL: "http://127.0.0.1:9000/callback"})
	if err != nil {
		log.Fatal(err)
	}
	bot.OnIncomingCall(func(ctx context.Context, call *sdk.Call) {
		defer call.HangUp(ctx)
		if call.Answer(ctx, nil) != nil || call.WaitState(ctx, graph.StateEstablished) != nil {
			return
		}
		call.SubscribeToTone(ctx)
		menu, _ := call.PlayPrompt(ctx, "http://127.0.0.1:9001/menu.wav") // "1 for opening hours, 2 for our address"
		call.Await(ctx, menu)
		answer := map[graph.Tone]string{graph.Tone1: "hours.wav", graph.Tone2: "address.wav"}
		select {
		case t, ok := <-call.Tones():
			if file, known := answer[t.Tone]; ok && known {
				op, _ := call.PlayPrompt(ctx, "http://127.0.0.1:9001/"+file)
				call.Await(ctx, op)
			}
		case <-time.After(10 * time.Second):
		}
	})
	log.Fatal(http.ListenAndServe("127.0.0.1:9000", bot))
}
