package callctl

import (
	"context"
	"slices"
	"testing"

	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// dialIn calls the harness meeting's dial-in number and returns the
// caller's leg, answered.
func (h *harness) dialIn() *fakeLeg {
	h.t.Helper()
	var leg *fakeLeg
	err := h.m.DialIn(context.Background(), DialIn{TenantID: tTenant,
		Caller: &graph.IdentitySet{Phone: &graph.Identity{ID: "+15550177", DisplayName: "Caller"}},
		NewLeg: func(id string, ev func(LegEvent)) Leg {
			leg = &fakeLeg{id: id, ev: ev, port: &fakePort{plays: make(chan struct{}, 8)}, told: make(chan struct{}, 8)}
			return leg
		}})
	if err != nil {
		h.t.Fatal(err)
	}
	<-leg.told
	if got := leg.asked(); !slices.Equal(got, []string{"answer"}) {
		h.t.Fatalf("the dial-in leg was asked %q", got)
	}
	leg.emit(LegAnswered)
	leg.port.waitPlay(h.t) // welcome
	return leg
}

// A person dials in: a wrong conference id is asked again; the right one
// and the passcode put them in the lobby (the bot sees isInLobby) with hold
// music; the bot admits them.
func TestDialInLobbyAdmit(t *testing.T) {
	h := newHarness(t)
	bot, err := h.joinByID(h.bot, ptrTo("2468"))
	if err != nil {
		t.Fatal(err)
	}
	h.sync(bot.ID)
	h.nt.take(bot.ID)

	caller := h.dialIn()
	caller.press("99#")
	caller.port.waitPlay(t) // retry
	caller.press("445566#")
	caller.port.waitPlay(t) // passcode
	caller.press("2468#")
	caller.port.waitPlay(t) // the lobby prompt
	h.settle(bot.ID)
	h.expect(bot.ID, "updated roster Bot Caller(lobby)")
	caller.port.finishPlay()
	caller.port.waitPlay(t) // hold music

	var pid string
	for _, p := range h.roster(bot.ID) {
		if p.IsInLobby {
			pid = p.ID
		}
	}
	if _, err := h.do(h.bot, bot.ID, "admit", pid, nil); err != nil {
		t.Fatalf("admit: %v", err)
	}
	h.sync(bot.ID)
	h.expect(bot.ID, "updated roster Bot Caller")
	// The caller hangs up: the roster shrinks.
	caller.emit(LegEnded)
	h.settle(bot.ID)
	h.expect(bot.ID, "updated roster Bot")
}

// Three wrong conference ids: goodbye, and the platform hangs up.
func TestDialInThreeStrikes(t *testing.T) {
	h := newHarness(t)
	caller := h.dialIn()
	for i := range 3 {
		caller.press("1#")
		caller.port.waitPlay(t) // retry, retry, goodbye
		if i == 2 {
			caller.port.finishPlay()
		}
	}
	caller.waitAsked(t)
	if got := caller.asked(); !slices.Equal(got, []string{"hangUp 5001"}) {
		t.Errorf("after three wrong ids the leg was asked %q", got)
	}
}
