package callctl

import (
	"slices"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

func transferTo(id string) *graph.TransferRequest {
	t := user(id)
	return &graph.TransferRequest{TransferTarget: &t}
}

// Blind transfer: the target is dialed; once it answers the far end and
// the target are bridged and the bot's call ends 0/7015.
func TestBlindTransfer(t *testing.T) {
	h := newHarness(t)
	id, bob := h.established()
	h.nt.take(id)
	if _, err := h.do(h.bot, id, "transfer", "", transferTo(tCarol)); err != nil {
		t.Fatal(err)
	}
	h.sync(id)
	carol := h.dl.dialed()[1]
	carol.emit(LegRinging)
	carol.emit(LegAnswered)
	h.sync(id)
	h.expect(id, "updated call transferring", "updated call transferAccepted", "deleted call terminated 7015")
	if got := bob.asked(); len(got) != 0 {
		t.Errorf("the transferred far end was asked %q", got)
	}
	// Either side hanging up ends the other.
	carol.emit(LegEnded)
	h.sync(id)
	if got := bob.asked(); !slices.Equal(got, []string{"hangUp 4521"}) {
		t.Errorf("after the target hung up the far end was asked %q", got)
	}
	h.leak(id)
}

// A transfer target that is busy or does not answer puts the call back to
// established, with the reason.
func TestBlindTransferFails(t *testing.T) {
	h := newHarness(t)
	id, _ := h.established()
	h.nt.take(id)
	h.must(h.do(h.bot, id, "transfer", "", transferTo(tCarol)))
	h.sync(id)
	h.dl.dialed()[1].end(errs.RemoteBusy)
	h.sync(id)
	h.expect(id, "updated call transferring", "updated call established 7000")
	if s := h.state(id); s != "established" {
		t.Fatalf("call %s after a failed transfer", s)
	}
	// No answer: the ring timeout.
	h.must(h.do(h.bot, id, "transfer", "", transferTo(tCarol)))
	h.sync(id)
	h.clk.Advance(2 * time.Minute)
	h.sync(id)
	h.expect(id, "updated call transferring", "updated call established 7000")
	if got := h.dl.dialed()[2].asked(); !slices.Equal(got, []string{"hangUp 10057"}) {
		t.Errorf("the unanswered target was asked %q", got)
	}
	// Not while ringing; not to an unknown user; not in a group call.
	if _, err := h.do(h.bot, id, "transfer", "", transferTo("0f0f0f0f-0000-4000-8000-000000000000")); errs.KindOf(err) != errs.BadRequest {
		t.Errorf("transfer to an unknown user: %v", err)
	}
	id2, _ := h.outgoing()
	if _, err := h.do(h.bot, id2, "transfer", "", transferTo(tCarol)); errs.KindOf(err) != errs.Conflict {
		t.Errorf("transfer of a call not yet established: %v", err)
	}
	gid, _ := h.group()
	if _, err := h.do(h.bot, gid, "transfer", "", transferTo(tCarol)); errs.KindOf(err) != errs.BadRequest {
		t.Errorf("transfer in a group call without a transferee: %v", err)
	}
}

// Consultative transfer: the bot calls the target itself, then transfers
// its first call with replacesCallId: both of its calls end 0/7015, and the
// two far ends are bridged.
func TestConsultativeTransfer(t *testing.T) {
	h := newHarness(t)
	a, bob := h.established()
	b, carol := h.established()
	h.nt.take(a)
	h.nt.take(b)
	req := transferTo(tCarol)
	req.TransferTarget.ReplacesCallID = b
	if _, err := h.do(h.bot, a, "transfer", "", req); err != nil {
		t.Fatal(err)
	}
	h.sync(b)
	h.sync(a)
	h.expect(a, "updated call transferring", "updated call transferAccepted", "deleted call terminated 7015")
	h.expect(b, "deleted call terminated 7015")
	if got := append(bob.asked(), carol.asked()...); len(got) != 0 {
		t.Errorf("the far ends were asked %q", got)
	}
	// Carol's leg now belongs to the first call: her hanging up ends Bob's.
	carol.emit(LegEnded)
	h.sync(a)
	if got := bob.asked(); !slices.Equal(got, []string{"hangUp 4521"}) {
		t.Errorf("after Carol hung up Bob was asked %q", got)
	}

	// replacesCallId of a call that does not exist: back to established.
	c, _ := h.established()
	h.nt.take(c)
	req.TransferTarget.ReplacesCallID = "0f0f0f0f-0000-4000-8000-000000000000"
	h.must(h.do(h.bot, c, "transfer", "", req))
	h.sync(c)
	h.expect(c, "updated call transferring", "updated call established 7000")
}

// A participant transferred out of a group call leaves the roster once the
// target answers and stays connected to it; the group call goes on.
func TestTransferOutOfGroupCall(t *testing.T) {
	h := newHarness(t)
	id, legs := h.group()
	h.nt.take(id)
	alice := h.roster(id)[1]
	req := transferTo(tCarol)
	req.Transferee = &graph.ParticipantInfo{ParticipantID: alice.ID}
	if _, err := h.do(h.bot, id, "transfer", "", req); err != nil {
		t.Fatal(err)
	}
	h.sync(id)
	carol := h.dl.dialed()[2]
	carol.emit(LegAnswered)
	h.sync(id)
	h.expect(id, "updated roster Bot Bob")
	if s := h.state(id); s != "established" {
		t.Fatalf("group call %s after a transfer out", s)
	}
	// The group call ends; Alice and Carol talk on. Then Carol hangs up.
	h.must(h.do(h.bot, id, "hangUp", "", nil))
	h.sync(id)
	if got := legs[0].asked(); len(got) != 0 {
		t.Errorf("the transferred participant was asked %q when the group call ended", got)
	}
	carol.emit(LegEnded)
	h.sync(id)
	if got := legs[0].asked(); !slices.Equal(got, []string{"hangUp 4521"}) {
		t.Errorf("after the target hung up, the transferred participant was asked %q", got)
	}
	h.leak(id)

	// A target that is busy: the participant stays, the bot hears why.
	id2, _ := h.group()
	h.nt.take(id2)
	bob := h.roster(id2)[2]
	req.Transferee = &graph.ParticipantInfo{ParticipantID: bob.ID}
	h.must(h.do(h.bot, id2, "transfer", "", req))
	h.sync(id2)
	h.dl.dialed()[5].end(errs.RemoteBusy)
	h.sync(id2)
	h.expect(id2, "updated call established 7000")
	if n := len(h.roster(id2)); n != 3 {
		t.Errorf("roster of %d after a failed transfer, want 3", n)
	}
}
