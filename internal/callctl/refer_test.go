package callctl

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// fakeReport records how the call answered a REFER.
type fakeReport struct {
	mu  sync.Mutex
	got []string
}

func (r *fakeReport) Refuse(err error) { r.log(fmt.Sprintf("refuse %s", errs.KindOf(err))) }
func (r *fakeReport) Accept() bool     { r.log("accept"); return true }
func (r *fakeReport) Result(ok bool, reason errs.EndReason) {
	if ok {
		r.log("ok")
		return
	}
	r.log(fmt.Sprintf("failed %d", reason.Code))
}
func (r *fakeReport) log(s string) {
	r.mu.Lock()
	r.got = append(r.got, s)
	r.mu.Unlock()
}
func (r *fakeReport) said() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// refer has leg ask to be transferred to user id.
func (l *fakeLeg) refer(id string) *fakeReport {
	r := &fakeReport{}
	l.ev(LegEvent{Kind: LegRefer, Refer: &Refer{Target: &graph.IdentitySet{User: &graph.Identity{ID: id, TenantID: tTenant}}, Report: r}})
	return r
}

// A phone in a bot's two-party call transfers it: once the target
// answers, it is the call's far end (a roster notification tells the bot),
// the transferor hears it worked and is hung up, and the call goes on.
func TestReferTwoParty(t *testing.T) {
	h := newHarness(t)
	id, bob := h.established()
	h.nt.take(id)
	r := bob.refer(tCarol)
	h.sync(id)
	carol := h.dl.dialed()[1]
	if got := r.said(); !slices.Equal(got, []string{"accept"}) {
		t.Fatalf("the transferor was told %q", got)
	}
	carol.emit(LegRinging)
	carol.emit(LegAnswered)
	h.sync(id)
	if got := r.said(); !slices.Equal(got, []string{"accept", "ok"}) {
		t.Errorf("the transferor was told %q", got)
	}
	if got := bob.asked(); !slices.Equal(got, []string{"hangUp 4521"}) {
		t.Errorf("the transferor was asked %q", got)
	}
	h.expect(id, "updated roster Bot Carol")
	if s := h.state(id); s != "established" {
		t.Fatalf("call %s after the far end transferred it", s)
	}
	if ps := h.roster(id); len(ps) != 2 || ps[1].Info.Identity.User.ID != tCarol {
		t.Errorf("roster %+v, want the bot and Carol", ps)
	}
	// Bob's late events are not the call's; Carol's are.
	bob.end(errs.EndedByRemote)
	h.sync(id)
	if s := h.state(id); s != "established" {
		t.Fatalf("call %s after the transferor hung up", s)
	}
	carol.end(errs.EndedByRemote)
	h.sync(id)
	h.expect(id, "deleted call terminated 4521")
	h.leak(id)
}

// A target that does not answer, or is busy, leaves the call as it was and
// the bot hears nothing; a second REFER while one rings is refused.
func TestReferFails(t *testing.T) {
	h := newHarness(t)
	id, bob := h.established()
	h.nt.take(id)
	r := bob.refer(tCarol)
	h.sync(id)
	second := bob.refer(tAlice)
	h.sync(id)
	if said := second.said(); !slices.Equal(said, []string{"refuse conflict"}) {
		t.Errorf("a second REFER was answered %q", said)
	}
	h.clk.Advance(2 * time.Minute)
	h.sync(id)
	if got := r.said(); !slices.Equal(got, []string{"accept", "failed 408"}) {
		t.Errorf("the transferor was told %q", got)
	}
	if got := h.dl.dialed()[1].asked(); !slices.Equal(got, []string{"hangUp 10057"}) {
		t.Errorf("the unanswered target was asked %q", got)
	}
	r = bob.refer(tCarol)
	h.sync(id)
	h.dl.dialed()[2].end(errs.RemoteBusy)
	h.sync(id)
	if got := r.said(); !slices.Equal(got, []string{"accept", "failed 486"}) {
		t.Errorf("the transferor was told %q", got)
	}
	// Nobody to call: refused.
	r = bob.refer("0f0f0f0f-0000-4000-8000-000000000000")
	h.sync(id)
	if got := r.said(); !slices.Equal(got, []string{"refuse not_found"}) {
		t.Errorf("a REFER to nobody was answered %q", got)
	}
	h.expect(id)
	if got := bob.asked(); len(got) != 0 {
		t.Errorf("the transferor was asked %q", got)
	}
	if s := h.state(id); s != "established" {
		t.Fatalf("call %s", s)
	}
	// While the bot transfers the call: refused.
	h.must(h.do(h.bot, id, "transfer", "", transferTo(tCarol)))
	h.sync(id)
	r = bob.refer(tAlice)
	h.sync(id)
	if got := r.said(); !slices.Equal(got, []string{"refuse conflict"}) {
		t.Errorf("a REFER while the bot transfers was answered %q", got)
	}
	// The transferor hangs up while its target rings: the target is
	// hung up too.
	id2, bob2 := h.established()
	r = bob2.refer(tCarol)
	h.sync(id2)
	target := h.dl.dialed()[len(h.dl.dialed())-1]
	bob2.end(errs.EndedByRemote)
	h.sync(id2)
	if got := target.asked(); !slices.Equal(got, []string{"hangUp 0"}) {
		t.Errorf("the target of a transferor that hung up was asked %q", got)
	}
	if got := r.said(); !slices.Equal(got, []string{"accept", "failed 487"}) {
		t.Errorf("the transferor was told %q", got)
	}
}

// A member of a group call transfers itself: the target takes its place
// in the roster and on the conference, in one roster notification.
func TestReferGroupMember(t *testing.T) {
	h := newHarness(t)
	id, legs := h.group()
	h.nt.take(id)
	r := legs[0].refer(tCarol) // Alice
	h.sync(id)
	carol := h.dl.dialed()[2]
	carol.emit(LegAnswered)
	h.sync(id)
	h.expect(id, "updated roster Bot Bob Carol")
	if got := r.said(); !slices.Equal(got, []string{"accept", "ok"}) {
		t.Errorf("the transferor was told %q", got)
	}
	if got := legs[0].asked(); !slices.Equal(got, []string{"hangUp 4521"}) {
		t.Errorf("the transferor was asked %q", got)
	}
	// (A fake leg has no RTP session to put on the conference.)
	if got := h.conf(id).asked(); len(got) == 0 || got[len(got)-1] != "remove" {
		t.Errorf("the conference was asked %q", got)
	}
	// Carol is a member like any: her hang-up leaves the roster.
	carol.end(errs.EndedByRemote)
	h.sync(id)
	h.expect(id, "updated roster Bot Bob")
	// A member's REFER whose target is busy: nothing changes.
	r = legs[1].refer(tCarol)
	h.sync(id)
	h.dl.dialed()[3].end(errs.RemoteBusy)
	h.sync(id)
	if got := r.said(); !slices.Equal(got, []string{"accept", "failed 486"}) {
		t.Errorf("the transferor was told %q", got)
	}
	h.expect(id)
	if n := len(h.roster(id)); n != 2 {
		t.Errorf("roster of %d after a failed transfer, want 2", n)
	}
}
