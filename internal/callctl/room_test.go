package callctl

import (
	"context"
	"slices"
	"testing"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

func ptrTo[T any](v T) *T { return &v }

// joinByThread joins the harness meeting by chatInfo and organizer.
func (h *harness) joinByThread(c Caller) (*graph.Call, error) {
	return h.m.Create(context.Background(), c, &graph.Call{
		CallbackURI: tHook,
		MediaConfig: &graph.MediaConfig{ODataType: graph.TypeServiceHostedMediaConfig},
		ChatInfo:    &graph.ChatInfo{ThreadID: h.meet.m.ThreadID, MessageID: "0"},
		MeetingInfo: &graph.MeetingInfo{ODataType: graph.TypeOrganizerMeetingInfo,
			Organizer: &graph.IdentitySet{User: &graph.Identity{ID: tAlice, TenantID: tTenant}}},
	})
}

// joinByID joins the harness meeting by its id and passcode.
func (h *harness) joinByID(c Caller, passcode *string) (*graph.Call, error) {
	return h.m.Create(context.Background(), c, &graph.Call{
		CallbackURI: tHook,
		MediaConfig: &graph.MediaConfig{ODataType: graph.TypeServiceHostedMediaConfig},
		MeetingInfo: &graph.MeetingInfo{ODataType: graph.TypeJoinMeetingIDMeetingInfo, JoinMeetingID: h.meet.m.JoinMeetingID, Passcode: passcode},
	})
}

// Two bots join one meeting, one by its link's chatInfo and one by its id
// and passcode: each sees the whole roster, the other bot included; a
// person one invites is seen by both; either may mute them; the people
// stay when a bot leaves; the room closes with the last one out.
func TestTwoBotsShareAMeeting(t *testing.T) {
	h := newHarness(t)
	a, err := h.joinByThread(h.bot)
	if err != nil {
		t.Fatal(err)
	}
	if a.ChatInfo == nil || a.ChatInfo.ThreadID != h.meet.m.ThreadID || a.MeetingInfo == nil || len(a.Targets) != 0 {
		t.Errorf("the 201 of a meeting join: chatInfo %+v meetingInfo %+v targets %v", a.ChatInfo, a.MeetingInfo, a.Targets)
	}
	h.sync(a.ID)
	b, err := h.joinByID(h.other, ptrTo("2468"))
	if err != nil {
		t.Fatal(err)
	}
	h.sync(b.ID)
	h.sync(a.ID)
	h.expect(a.ID, "updated call establishing", "updated call established", "updated roster Bot", "updated roster Bot Other")
	h.expect(b.ID, "updated call establishing", "updated call established", "updated roster Bot Other")

	// Bot A invites Carol: both bots see her.
	op, err := h.do(h.bot, a.ID, "participants/invite", "", &graph.InviteParticipantsRequest{
		Participants: []graph.InvitationParticipantInfo{user(tCarol)}})
	if err != nil || op.Status != graph.OperationRunning {
		t.Fatalf("invite into the meeting: %+v %v", op, err)
	}
	carol := h.dl.dialed()[0]
	carol.emit(LegAnswered)
	h.settle(a.ID, b.ID)
	h.expect(a.ID, "updated roster Bot Other Carol", "deleted operation Completed")
	h.expect(b.ID, "updated roster Bot Other Carol")

	// Bot B mutes Carol.
	var carolID string
	ps, err := h.m.Participants(context.Background(), h.other, b.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if _, id := p.Info.Identity.Primary(); id.ID == tCarol {
			carolID = p.ID
		}
	}
	if _, err := h.do(h.other, b.ID, "mute", carolID, nil); err != nil {
		t.Fatalf("mute Carol: %v", err)
	}
	h.sync(a.ID)
	h.sync(b.ID)
	h.expect(a.ID, "updated roster Bot Other Carol(muted)")
	h.expect(b.ID, "updated roster Bot Other Carol(muted)")
	// A bot is not removed by another.
	if _, err := h.do(h.other, b.ID, "remove", a.MyParticipantID, nil); errs.KindOf(err) != errs.BadRequest {
		t.Errorf("removing the other bot: %v, want 400", err)
	}

	// Bot A leaves: Carol stays, B sees the change.
	h.must(h.do(h.bot, a.ID, "hangUp", "", nil))
	h.sync(a.ID)
	h.sync(b.ID)
	h.expect(b.ID, "updated roster Other Carol(muted)")
	if got := carol.asked(); len(got) != 0 {
		t.Errorf("Carol's leg was asked %q when the bot that invited her left", got)
	}
	// Carol hangs up, then B: the room closes.
	carol.emit(LegEnded)
	h.settle(b.ID)
	h.expect(b.ID, "updated roster Other")
	h.must(h.do(h.other, b.ID, "hangUp", "", nil))
	h.sync(b.ID)
	h.cmu.Lock()
	room := h.rooms["mtg1"]
	h.cmu.Unlock()
	if got := room.asked(); !slices.Contains(got, "close") {
		t.Errorf("the room was asked %q, want it closed", got)
	}
	h.m.mu.Lock()
	left := len(h.m.rooms)
	h.m.mu.Unlock()
	if left != 0 {
		t.Errorf("%d rooms left open", left)
	}
}

func TestMeetingJoinRefusals(t *testing.T) {
	h := newHarness(t)
	for _, tc := range []struct {
		name string
		join func() error
		want errs.Kind
	}{
		{"no passcode", func() error { _, err := h.joinByID(h.bot, nil); return err }, errs.Forbidden},
		{"wrong passcode", func() error { _, err := h.joinByID(h.bot, ptrTo("nope")); return err }, errs.Forbidden},
		{"unknown thread", func() error {
			_, err := h.m.Create(context.Background(), h.bot, &graph.Call{CallbackURI: tHook,
				MediaConfig: &graph.MediaConfig{ODataType: graph.TypeServiceHostedMediaConfig},
				ChatInfo:    &graph.ChatInfo{ThreadID: "19:meeting_nope@thread.v2"}})
			return err
		}, errs.NotFound},
		{"other organizer", func() error {
			_, err := h.m.Create(context.Background(), h.bot, &graph.Call{CallbackURI: tHook,
				MediaConfig: &graph.MediaConfig{ODataType: graph.TypeServiceHostedMediaConfig},
				ChatInfo:    &graph.ChatInfo{ThreadID: h.meet.m.ThreadID},
				MeetingInfo: &graph.MeetingInfo{Organizer: &graph.IdentitySet{User: &graph.Identity{ID: tBob}}}})
			return err
		}, errs.NotFound},
		{"no permission", func() error {
			weak := h.bot
			weak.Roles = []string{"Calls.Initiate.All"}
			_, err := h.joinByThread(weak)
			return err
		}, errs.Forbidden},
	} {
		if err := tc.join(); errs.KindOf(err) != tc.want {
			t.Errorf("%s: %v, want %s", tc.name, err, tc.want)
		}
	}
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	if len(h.m.rooms) != 0 || len(h.m.perApp) != 0 {
		t.Errorf("refused joins left %d rooms and %d app slots", len(h.m.rooms), len(h.m.perApp))
	}
}

// A bot holding only Calls.JoinGroupCallAsGuest.All is in the meeting as a
// guest.
func TestMeetingJoinAsGuest(t *testing.T) {
	h := newHarness(t)
	guest := h.bot
	guest.Roles = []string{PermJoinAsGuest}
	a, err := h.joinByThread(guest)
	if err != nil {
		t.Fatal(err)
	}
	h.sync(a.ID)
	ps := h.roster(a.ID)
	if len(ps) != 1 || ps[0].Info.Identity.Guest == nil || ps[0].Info.Identity.Guest.ID != tBot {
		t.Fatalf("a guest bot's roster entry: %+v", ps[0].Info.Identity)
	}
}
