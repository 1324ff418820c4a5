package callctl

import (
	"slices"
	"strings"
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
	h.expect(c, "updated call transferring", "updated call established 7700")
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

// consultOut asks for a consultative transfer of participant pid out of
// group call gid to the far end of the bot's call other.
func (h *harness) consultOut(gid, pid, other string) (*graph.Operation, error) {
	req := transferTo(tCarol)
	req.TransferTarget.ReplacesCallID = other
	req.Transferee = &graph.ParticipantInfo{ParticipantID: pid}
	return h.do(h.bot, gid, "transfer", "", req)
}

// block holds call id's actor until the returned func is called, so that
// what is posted to it meanwhile waits.
func (h *harness) block(id string) func() {
	h.t.Helper()
	h.m.mu.Lock()
	a := h.m.actors[id]
	h.m.mu.Unlock()
	in, out := make(chan struct{}), make(chan struct{})
	if a == nil || !a.post(func(*actor) { close(in); <-out }) {
		h.t.Fatalf("call %s has no actor to block", id)
	}
	<-in
	return func() { close(out) }
}

// Consultative transfer out of a group call: the bot has called Carol on a
// call of its own, then transfers Alice out of the group call with that
// call's id. Alice leaves the roster and the conference and is bridged
// with Carol's leg; the consultation call ends 0/7015; the group call goes
// on. Carol hanging up afterwards hangs up Alice.
func TestConsultativeTransferOutOfGroupCall(t *testing.T) {
	h := newHarness(t)
	gid, legs := h.group()
	cid, carol := h.established()
	h.nt.take(gid)
	h.nt.take(cid)
	h.conf(gid).asked()
	alice := h.roster(gid)[1]
	op, err := h.consultOut(gid, alice.ID, cid)
	if err != nil || op != nil {
		t.Fatalf("transfer: %+v %v, want 202 without an operation", op, err)
	}
	h.sync(cid)
	h.sync(gid)
	h.expect(gid, "updated roster Bot Bob")
	h.expect(cid, "deleted call terminated 7015")
	if s := h.state(gid); s != "established" {
		t.Fatalf("group call %s after a consultative transfer out", s)
	}
	if s := h.state(cid); s != "gone" {
		t.Errorf("the consultation call is %s, want gone", s)
	}
	if got := h.conf(gid).asked(); !slices.Equal(got, []string{"remove"}) {
		t.Errorf("conference asked %q, want Alice removed", got)
	}
	if got := append(legs[0].asked(), carol.asked()...); len(got) != 0 {
		t.Errorf("Alice and Carol were asked %q", got)
	}
	// Carol's leg is the pair's now: her hanging up hangs Alice up, and
	// the bot hears nothing of it (Alice had left its call).
	carol.emit(LegEnded)
	h.sync(gid)
	if got := legs[0].asked(); !slices.Equal(got, []string{"hangUp 4521"}) {
		t.Errorf("after Carol hung up Alice was asked %q", got)
	}
	h.expect(gid)
	if got := legs[1].asked(); len(got) != 0 {
		t.Errorf("Bob, still in the group call, was asked %q", got)
	}

	// The other way round: Bob transferred to Dan, then Bob hangs up and
	// Dan is hung up; the group call, left with the bot alone, goes on
	// until the bot hangs up, and then nothing is left.
	did, dan := h.established()
	h.nt.take(did)
	h.must(h.consultOut(gid, h.roster(gid)[1].ID, did))
	h.sync(did)
	h.sync(gid)
	h.expect(gid, "updated roster Bot")
	legs[1].emit(LegEnded)
	h.sync(gid)
	if got := dan.asked(); !slices.Equal(got, []string{"hangUp 4521"}) {
		t.Errorf("after Bob hung up Dan was asked %q", got)
	}
	h.must(h.do(h.bot, gid, "hangUp", "", nil))
	h.sync(gid)
	h.leak(gid)
}

// A consultative transfer out of a group call that cannot be made: what
// the request alone shows is refused at once (Graph-shaped 400, 404, 409);
// a call to replace that cannot be taken over is told as for a two-party
// consultative transfer (202, then the established group call with 500/7700
// and the reason); in every case the roster and the other call are as
// they were.
func TestConsultativeTransferOutOfGroupCallFails(t *testing.T) {
	h := newHarness(t)
	gid, legs := h.group()
	h.nt.take(gid)
	alice := h.roster(gid)[1]

	// Refused at once.
	cid, carol := h.established()
	h.nt.take(cid)
	for _, c := range []struct {
		what, pid, other string
		want             errs.Kind
	}{
		{"the group call itself", alice.ID, gid, errs.BadRequest},
		{"a participant not in the call", "0f0f0f0f-0000-4000-8000-000000000000", cid, errs.NotFound},
		{"the bot itself", h.roster(gid)[0].ID, cid, errs.BadRequest},
	} {
		if _, err := h.consultOut(gid, c.pid, c.other); errs.KindOf(err) != c.want {
			t.Errorf("%s: %v, want %v", c.what, err, c.want)
		}
	}
	req := transferTo(tCarol)
	req.TransferTarget.ReplacesCallID = cid
	if _, err := h.do(h.bot, gid, "transfer", "", req); errs.KindOf(err) != errs.BadRequest {
		t.Errorf("without a transferee: %v, want 400", err)
	}
	// Alice being transferred blind (her target rings): 409 until the
	// target is busy.
	blind := transferTo(tCarol)
	blind.Transferee = &graph.ParticipantInfo{ParticipantID: alice.ID}
	h.must(h.do(h.bot, gid, "transfer", "", blind))
	h.sync(gid)
	if _, err := h.consultOut(gid, alice.ID, cid); errs.KindOf(err) != errs.Conflict {
		t.Errorf("while Alice is transferred blind: %v, want 409", err)
	}
	dialed := h.dl.dialed()
	dialed[len(dialed)-1].end(errs.RemoteBusy)
	h.sync(gid)
	h.expect(gid, "updated call established 7000")
	// Alice on hold: 409.
	h.must(h.do(h.bot, gid, "startHoldMusic", alice.ID, &graph.StartHoldMusicRequest{}))
	legs[0].port.waitPlay(t)
	h.sync(gid)
	if _, err := h.consultOut(gid, alice.ID, cid); errs.KindOf(err) != errs.Conflict {
		t.Errorf("while Alice is on hold: %v, want 409", err)
	}
	h.must(h.do(h.bot, gid, "stopHoldMusic", alice.ID, &graph.ClientContextRequest{}))
	h.sync(gid)
	h.sync(gid)
	h.nt.take(gid)

	// Calls that cannot be taken over: one that does not exist, a group
	// call, one still ringing.
	other, _ := h.group()
	ringing, _ := h.outgoing()
	h.nt.take(other)
	h.nt.take(ringing)
	for _, c := range []struct{ what, id string }{
		{"an unknown call", "0f0f0f0f-0000-4000-8000-000000000000"},
		{"a group call", other},
		{"a call still ringing", ringing},
	} {
		if op, err := h.consultOut(gid, alice.ID, c.id); err != nil || op != nil {
			t.Fatalf("%s: %+v %v, want 202", c.what, op, err)
		}
		h.sync(c.id)
		h.sync(gid)
		h.expect(gid, "updated call established 7700")
		if n := len(h.roster(gid)); n != 3 {
			t.Errorf("%s: roster of %d, want 3", c.what, n)
		}
	}
	h.expect(other)
	h.expect(ringing)
	if s := h.state(ringing); s != "establishing" {
		t.Errorf("the ringing call is %s after a failed transfer to it, want establishing", s)
	}
	if got := append(legs[0].asked(), carol.asked()...); slices.ContainsFunc(got, func(s string) bool { return strings.HasPrefix(s, "hangUp") }) {
		t.Errorf("legs were hung up: %q", got)
	}

	// Alice hangs up while her transfer takes Carol's leg from the other
	// call: Carol is hung up (her call with the bot has gone, 7015) and the
	// bot hears why the transfer failed. A second transfer of Alice
	// meanwhile is 409.
	unblock := h.block(cid)
	h.must(h.consultOut(gid, alice.ID, cid))
	if _, err := h.consultOut(gid, alice.ID, cid); errs.KindOf(err) != errs.Conflict {
		t.Errorf("a second transfer of Alice under way: %v, want 409", err)
	}
	legs[0].emit(LegEnded)
	h.sync(gid)
	h.expect(gid, "updated roster Bot Bob")
	unblock()
	h.sync(cid)
	h.sync(gid)
	h.expect(cid, "deleted call terminated 7015")
	h.expect(gid, "updated call established 7700")
	if got := carol.asked(); !slices.Equal(got, []string{"hangUp 4521"}) {
		t.Errorf("Carol, taken for a participant who had left, was asked %q", got)
	}
	if n := len(h.roster(gid)); n != 2 {
		t.Errorf("roster of %d, want 2", n)
	}
}
