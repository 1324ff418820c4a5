package calltest_test

import (
	"slices"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// A phone transfers the bot's call itself (SIP REFER, baresip's
// /transfer): the bot calls Fay; Fay transfers the call blind to Gus. Gus
// answers and takes Fay's place: the bot's call stays established, its
// roster now names Gus, Fay is hung up, and Gus hears the bot's prompt.
func TestPhoneTransfersBotCallBlind(t *testing.T) {
	calltest.NeedPeer(t, "baresip", "baresip")
	p := calltest.Start(t, calltest.Options{Edit: withGroupPhones})
	fay, gus := groupPhones[0], groupPhones[1]
	phones := startPhones(t, p, 30*time.Second, fay, gus)
	promptPCM := calltest.Pattern(2300, 2, 3)
	base := wavServer(t, map[string][]byte{"/prompt.wav": calltest.WAV(promptPCM, 8000)})

	a := p.CreateCall(fay.id)
	p.Hook.WaitState(t, a.ID, graph.StateEstablished)
	phones[0].Command(t, "transfer", "sip:"+gus.user+"@"+p.Node.SIP.Addr().String())

	waitRoster(t, p, a.ID, "Test bot", "Gus")
	// baresip 1.0 ends its call itself on the final NOTIFY "200 OK" (its
	// BYE crosses ours, which gets 481) and prints nothing about it.
	op := opDone(t, p, a.ID, p.Bot("POST", calls+"/"+a.ID+"/playPrompt", prompts(base+"/prompt.wav")))
	if op.Status != graph.OperationCompleted {
		t.Fatalf("playPrompt after the transfer: %+v %+v", op, op.ResultInfo)
	}
	if s := p.Hook.States(t, a.ID); slices.Contains(s, graph.StateTransferring) || slices.Contains(s, graph.StateTerminated) {
		t.Errorf("the bot's call went %v; a phone's transfer keeps it established", s)
	}
	if r := p.Bot("DELETE", calls+"/"+a.ID, nil); r.StatusCode != 204 {
		t.Fatalf("hang up: %s", r.Status)
	}
	p.Hook.WaitState(t, a.ID, graph.StateTerminated)
	phones[1].WaitOutput(t, "terminated", 10*time.Second)

	heard := phones[1].Heard(t)
	if lvl := toneLevel(heard, 2300); lvl < 0.002 {
		t.Errorf("Gus did not hear the bot's prompt after the transfer (%.4f)", lvl)
	}
	if lvl := toneLevel(heard, fay.freq); lvl > 0.01 {
		t.Errorf("Gus heard Fay (%.4f), who left the call", lvl)
	}
}
