package callctl

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/ids"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

func user(id string) graph.InvitationParticipantInfo {
	return graph.InvitationParticipantInfo{Identity: &graph.IdentitySet{User: &graph.Identity{ID: id}}}
}

// group creates a group call from the bot to Alice and Bob, both
// answered.
func (h *harness) group() (string, []*fakeLeg) {
	h.t.Helper()
	call, err := h.m.Create(context.Background(), h.bot, &graph.Call{
		CallbackURI: tHook,
		MediaConfig: &graph.MediaConfig{ODataType: graph.TypeServiceHostedMediaConfig},
		Targets:     []graph.InvitationParticipantInfo{user(tAlice), user(tBob)},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	h.sync(call.ID)
	legs := h.dl.dialed()
	for _, l := range legs {
		l.emit(LegRinging)
		l.emit(LegAnswered)
	}
	h.sync(call.ID)
	return call.ID, legs
}

func (h *harness) expect(id string, want ...string) {
	h.t.Helper()
	if got := h.nt.take(id); !slices.Equal(got, want) {
		h.t.Errorf("notifications\n got %q\nwant %q", got, want)
	}
}

func (h *harness) roster(id string) []graph.Participant {
	h.t.Helper()
	ps, err := h.m.Participants(context.Background(), h.bot, id)
	if err != nil {
		h.t.Fatal(err)
	}
	return ps
}

func (h *harness) conf(id string) *fakeConference {
	h.cmu.Lock()
	defer h.cmu.Unlock()
	return h.confs[id]
}

func TestGroupCallRoster(t *testing.T) {
	h := newHarness(t)
	id, legs := h.group()
	if len(legs) != 2 {
		t.Fatalf("%d legs dialed, want 2", len(legs))
	}
	// Each target's own invite operation completes as it joins.
	h.expect(id, "updated call establishing", "updated call established", "updated roster Bot",
		"updated roster Bot Alice", "deleted operation Completed", "updated roster Bot Alice Bob", "deleted operation Completed")
	ps := h.roster(id)
	if len(ps) != 3 {
		t.Fatalf("roster of %d, want 3", len(ps))
	}
	seen := map[string]bool{}
	for _, p := range ps {
		if len(p.MediaStreams) != 1 || p.MediaStreams[0].SourceID == "" || seen[p.MediaStreams[0].SourceID] {
			t.Errorf("participant %s: sourceId %v not distinct", p.ID, p.MediaStreams)
		}
		seen[p.MediaStreams[0].SourceID] = true
	}

	// Bob hangs up: the call goes on with Alice.
	legs[1].emit(LegEnded)
	h.sync(id)
	h.expect(id, "updated roster Bot Alice")
	if s := h.state(id); s != "established" {
		t.Fatalf("call %s after a member left", s)
	}

	// The bot hangs up: Alice's leg is released, the conference closed.
	h.must(h.do(h.bot, id, "hangUp", "", nil))
	h.sync(id)
	h.expect(id, "updated call terminating", "deleted call terminated 5001")
	if got := legs[0].asked(); !slices.Equal(got, []string{"hangUp 5001"}) {
		t.Errorf("Alice's leg was asked %q", got)
	}
	if !slices.Contains(h.conf(id).asked(), "close") {
		t.Error("the conference was not closed")
	}
}

func TestGroupCallInviteMuteRemove(t *testing.T) {
	h := newHarness(t)
	id, legs := h.group()
	h.nt.take(id)

	// Invite Carol: the operation runs until she answers.
	op, err := h.do(h.bot, id, "participants/invite", "", &graph.InviteParticipantsRequest{
		Participants: []graph.InvitationParticipantInfo{user(tCarol)}, ClientContext: "c1"})
	if err != nil || op.Status != graph.OperationRunning || op.ODataType != graph.TypeInviteParticipantsOperation || len(op.Participants) != 1 {
		t.Fatalf("invite: %+v, %v", op, err)
	}
	h.sync(id)
	carol := h.dl.dialed()[2]
	carol.emit(LegAnswered)
	h.sync(id)
	h.expect(id, "updated roster Bot Alice Bob Carol", "deleted operation Completed")

	// Mute Bob: a completed operation, the roster says so, the mixer hears it.
	bob := h.roster(id)[2]
	op, err = h.do(h.bot, id, "mute", bob.ID, &graph.ClientContextRequest{})
	if err != nil || op.Status != graph.OperationCompleted || op.ODataType != graph.TypeMuteParticipantOperation {
		t.Fatalf("mute Bob: %+v, %v", op, err)
	}
	h.expect(id, "updated roster Bot Alice Bob(muted) Carol")
	if got := h.conf(id).asked(); !slices.Contains(got, "mute true") {
		t.Errorf("conference asked %q, want Bob muted", got)
	}

	// Remove Alice: 204, her leg gets a BYE, the roster shrinks.
	alice := h.roster(id)[1]
	if _, err := h.do(h.bot, id, "remove", alice.ID, nil); err != nil {
		t.Fatalf("remove Alice: %v", err)
	}
	h.expect(id, "updated roster Bot Bob(muted) Carol")
	if got := legs[0].asked(); !slices.Equal(got, []string{"hangUp 5001"}) {
		t.Errorf("Alice's leg was asked %q", got)
	}

	// Ids not in the call: 404; the bot itself: 400.
	for _, name := range []string{"mute", "remove"} {
		if _, err := h.do(h.bot, id, name, alice.ID, nil); errs.KindOf(err) != errs.NotFound {
			t.Errorf("%s of a participant who left: %v, want 404", name, err)
		}
		if _, err := h.do(h.bot, id, name, h.roster(id)[0].ID, nil); errs.KindOf(err) != errs.BadRequest {
			t.Errorf("%s of the bot: %v, want 400", name, err)
		}
	}
	// Another app cannot see the call.
	if _, err := h.do(h.other, id, "participants/invite", "", &graph.InviteParticipantsRequest{
		Participants: []graph.InvitationParticipantInfo{user(tAlice)}}); errs.KindOf(err) != errs.NotFound {
		t.Errorf("another app's invite: %v, want 404", err)
	}
}

func TestGroupCallInviteFailures(t *testing.T) {
	h := newHarness(t)
	id, _ := h.group()
	h.nt.take(id)

	// An unknown user: 400, nothing dialed.
	if _, err := h.do(h.bot, id, "participants/invite", "", &graph.InviteParticipantsRequest{
		Participants: []graph.InvitationParticipantInfo{user("0f0f0f0f-0000-4000-8000-000000000000")}}); errs.KindOf(err) != errs.BadRequest {
		t.Fatalf("invite of an unknown user: %v, want 400", err)
	}
	if n := len(h.dl.dialed()); n != 2 {
		t.Fatalf("%d legs dialed", n)
	}

	// A busy invitee: the operation fails with the reason, the roster is unchanged.
	h.must(h.do(h.bot, id, "participants/invite", "", &graph.InviteParticipantsRequest{
		Participants: []graph.InvitationParticipantInfo{user(tCarol)}}))
	h.sync(id)
	h.dl.dialed()[2].end(errs.RemoteBusy)
	h.sync(id)
	h.expect(id, "deleted operation Failed 9005")

	// One that never answers: failed when the ring timeout passes.
	h.must(h.do(h.bot, id, "participants/invite", "", &graph.InviteParticipantsRequest{
		Participants: []graph.InvitationParticipantInfo{user(tCarol)}}))
	h.sync(id)
	h.clk.Advance(2 * time.Minute)
	h.sync(id)
	h.expect(id, "deleted operation Failed 10057")
	if got := h.dl.dialed()[3].asked(); !slices.Equal(got, []string{"hangUp 10057"}) {
		t.Errorf("the unanswered leg was asked %q", got)
	}
	if n := len(h.roster(id)); n != 3 {
		t.Errorf("roster of %d after failed invites, want 3", n)
	}

	// Removing an invitee who is still ringing cancels the invite.
	h.must(h.do(h.bot, id, "participants/invite", "", &graph.InviteParticipantsRequest{
		Participants: []graph.InvitationParticipantInfo{user(tCarol)}}))
	h.sync(id)
	rec := h.st.record(t, id)
	pid := rec.Members[len(rec.Members)-1].Participant
	if _, err := h.do(h.bot, id, "remove", pid, nil); err != nil {
		t.Fatalf("remove a ringing invitee: %v", err)
	}
	h.expect(id, "deleted operation Failed 8508")
	if got := h.dl.dialed()[4].asked(); !slices.Equal(got, []string{"hangUp 5001"}) {
		t.Errorf("the ringing leg was asked %q", got)
	}
}

// Inviting into a two-party call makes it a group call: the far end stays,
// and its hanging up no longer ends the call.
func TestTwoPartyCallBecomesGroup(t *testing.T) {
	h := newHarness(t)
	id, bob := h.established()
	h.nt.take(id)
	h.must(h.do(h.bot, id, "participants/invite", "", &graph.InviteParticipantsRequest{
		Participants: []graph.InvitationParticipantInfo{user(tCarol)}}))
	h.sync(id)
	carol := h.dl.dialed()[1]
	carol.emit(LegAnswered)
	h.sync(id)
	h.expect(id, "updated roster Bot Bob Carol", "deleted operation Completed")
	bob.emit(LegEnded)
	h.sync(id)
	h.expect(id, "updated roster Bot Carol")
	if s := h.state(id); s != "established" {
		t.Fatalf("call %s after the first far end left", s)
	}
}

// Hold music on one member of a group call: it plays on that member's own
// leg, which leaves the mix; prompts to the conference go on meanwhile.
func TestGroupCallHoldMusic(t *testing.T) {
	h := newHarness(t)
	id, legs := h.group()
	h.nt.take(id)
	alice := h.roster(id)[1]
	op, err := h.do(h.bot, id, "startHoldMusic", alice.ID, &graph.StartHoldMusicRequest{ClientContext: "hold"})
	if err != nil || op.Status != graph.OperationRunning {
		t.Fatalf("startHoldMusic: %+v %v", op, err)
	}
	legs[0].port.waitPlay(t) // the chime, on Alice's own leg
	h.sync(id)
	h.expect(id, "deleted operation Completed")
	if got := h.conf(id).asked(); !slices.Contains(got, "mute true") {
		t.Errorf("conference asked %q, want Alice out of the mix", got)
	}
	// A prompt to the conference still plays while Alice is on hold.
	h.must(h.do(h.bot, id, "playPrompt", "", &graph.PlayPromptRequest{Prompts: testPrompts()}))
	h.conf(id).waitPlay(t)
	h.sync(id)
	// Stop: Alice's music stops and she is back in the mix.
	h.must(h.do(h.bot, id, "stopHoldMusic", alice.ID, &graph.ClientContextRequest{}))
	h.sync(id)
	h.sync(id)
	if got := h.conf(id).asked(); !slices.Contains(got, "mute false") {
		t.Errorf("conference asked %q, want Alice back in the mix", got)
	}
	// Alice leaving while on hold ends the hold.
	h.must(h.do(h.bot, id, "startHoldMusic", alice.ID, &graph.StartHoldMusicRequest{}))
	legs[0].port.waitPlay(t)
	h.sync(id)
	legs[0].emit(LegEnded)
	h.sync(id)
	if _, err := h.do(h.bot, id, "startHoldMusic", h.roster(id)[1].ID, &graph.StartHoldMusicRequest{}); err != nil {
		t.Errorf("hold for Bob after Alice left while held: %v", err)
	}
}

// A target of a created group call that does not join: its invite
// operation fails with the reason.
func TestGroupCallTargetBusy(t *testing.T) {
	h := newHarness(t)
	call, err := h.m.Create(context.Background(), h.bot, &graph.Call{
		CallbackURI: tHook,
		MediaConfig: &graph.MediaConfig{ODataType: graph.TypeServiceHostedMediaConfig},
		Targets:     []graph.InvitationParticipantInfo{user(tAlice), user(tBob)},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.sync(call.ID)
	legs := h.dl.dialed()
	legs[0].emit(LegAnswered)
	legs[1].end(errs.RemoteBusy)
	h.sync(call.ID)
	h.expect(call.ID, "updated call establishing", "updated call established", "updated roster Bot",
		"updated roster Bot Alice", "deleted operation Completed", "deleted operation Failed 9005")
}

// Without conference media a node refuses group calls, as before.
func TestGroupCallsNeedConferences(t *testing.T) {
	h := newHarness(t)
	h.m.o.Conferences = nil
	_, err := h.m.Create(context.Background(), h.bot, &graph.Call{CallbackURI: tHook,
		MediaConfig: &graph.MediaConfig{ODataType: graph.TypeServiceHostedMediaConfig},
		Targets:     []graph.InvitationParticipantInfo{user(tAlice), user(tBob)}})
	if errs.KindOf(err) != errs.NotSupported {
		t.Fatalf("group call without conferences: %v, want 400 notSupported", err)
	}
}

// An invite a node without conference media refuses leaves the two-party
// call as it was: its prompt plays on.
func TestInviteWithoutConferencesLeavesTheCall(t *testing.T) {
	h := newHarness(t)
	h.m.o.Conferences = nil
	id, leg := h.established()
	h.must(h.do(h.bot, id, "playPrompt", "", &graph.PlayPromptRequest{Prompts: testPrompts()}))
	leg.port.waitPlay(t)
	h.sync(id)
	h.nt.take(id)
	if _, err := h.do(h.bot, id, "participants/invite", "", &graph.InviteParticipantsRequest{
		Participants: []graph.InvitationParticipantInfo{user(tCarol)}}); errs.KindOf(err) != errs.NotSupported {
		t.Fatalf("invite without conferences: %v, want 400 notSupported", err)
	}
	if !leg.port.finishPlay() {
		t.Fatal("the prompt no longer plays on the leg")
	}
	h.sync(id)
	h.expect(id, "deleted operation Completed")
}

// An invite with replacesCallId moves the far end of the bot's other call
// into the group call, which ends that call.
func TestInviteReplacingACall(t *testing.T) {
	h := newHarness(t)
	id, _ := h.group()
	other, dan := h.established()
	h.nt.take(id)
	h.nt.take(other)
	inv := user(tCarol)
	inv.ReplacesCallID = other
	op, err := h.do(h.bot, id, "participants/invite", "", &graph.InviteParticipantsRequest{Participants: []graph.InvitationParticipantInfo{inv}})
	if err != nil || op.Status != graph.OperationRunning {
		t.Fatalf("invite replacing: %+v %v", op, err)
	}
	h.sync(other)
	h.sync(id)
	h.expect(id, "updated roster Bot Alice Bob Carol", "deleted operation Completed")
	h.expect(other, "deleted call terminated 7015")
	if got := dan.asked(); len(got) != 0 {
		t.Errorf("the moved leg was asked %q", got)
	}
	// The moved leg now belongs to the group call.
	dan.emit(LegEnded)
	h.sync(id)
	h.expect(id, "updated roster Bot Alice Bob")

	// Replacing a call that does not exist fails the invite.
	inv.ReplacesCallID = "0f0f0f0f-0000-4000-8000-000000000000"
	h.must(h.do(h.bot, id, "participants/invite", "", &graph.InviteParticipantsRequest{Participants: []graph.InvitationParticipantInfo{inv}}))
	h.sync(id)
	h.expect(id, "deleted operation Failed 9019")
}

// Mute and remove of one participant racing each other: one order or the
// other wins, every request is answered, and the roster is consistent.
func TestConcurrentMuteAndRemove(t *testing.T) {
	h := newHarness(t)
	for range 10 {
		id, _ := h.group()
		bob := h.roster(id)[2].ID
		errc := make(chan error, 2)
		go func() { _, err := h.do(h.bot, id, "mute", bob, nil); errc <- err }()
		go func() { _, err := h.do(h.bot, id, "remove", bob, nil); errc <- err }()
		for range 2 {
			if err := <-errc; err != nil && errs.KindOf(err) != errs.NotFound {
				t.Fatalf("mute or remove: %v", err)
			}
		}
		for _, p := range h.roster(id) {
			if p.ID == bob {
				t.Fatal("Bob is still in the roster after his removal")
			}
		}
		h.must(h.do(h.bot, id, "hangUp", "", nil))
		h.sync(id)
	}
}

// The dominant speaker is marked in the roster (Switchboard's annotation),
// told at most every second.
func TestGroupCallDominantSpeaker(t *testing.T) {
	h := newHarness(t)
	id, _ := h.group()
	h.nt.take(id)
	ps := h.roster(id)
	alice, bob := ps[1].ID, ps[2].ID
	conf := h.conf(id)
	conf.dominant(alice)
	h.sync(id)
	h.expect(id, "updated roster Bot Alice* Bob")
	conf.dominant(bob) // within the second: told when it is over
	h.sync(id)
	h.expect(id)
	h.clk.Advance(time.Second)
	h.sync(id)
	h.expect(id, "updated roster Bot Alice Bob*")
	conf.dominant("")
	h.clk.Advance(2 * time.Second)
	h.sync(id)
	h.expect(id, "updated roster Bot Alice Bob")
}

// A group call is bounded: an invite past maxMembers is refused, and the
// call is not changed.
func TestGroupCallSizeBounded(t *testing.T) {
	h := newHarness(t)
	id, _ := h.group()
	a := h.actor(id)
	filler := make(chan struct{})
	a.post(func(a *actor) {
		for len(a.members) < maxMembers {
			a.members = append(a.members, &member{pid: ids.New(), joined: true})
		}
		close(filler)
	})
	<-filler
	_, err := h.do(h.bot, id, "participants/invite", "", &graph.InviteParticipantsRequest{
		Participants: []graph.InvitationParticipantInfo{user(tCarol)}})
	if errs.KindOf(err) != errs.BadRequest {
		t.Fatalf("an invite past the limit: %v, want 400", err)
	}
	if n := len(h.dl.dialed()); n != 2 {
		t.Errorf("%d legs dialed, want the first 2 only", n)
	}
}
