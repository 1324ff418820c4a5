package msgraph

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	jsonserialization "github.com/microsoft/kiota-serialization-json-go"
	"github.com/microsoftgraph/msgraph-sdk-go/communications"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
)

func userTarget(id, name string) models.InvitationParticipantInfoable {
	user := models.NewIdentity()
	user.SetId(ptr(id))
	user.SetDisplayName(ptr(name))
	set := models.NewIdentitySet()
	set.SetUser(user)
	target := models.NewInvitationParticipantInfo()
	target.SetIdentity(set)
	return target
}

// parseRoster reads a roster notification's resourceData, an array of
// participants, with the client's own parse node.
func parseRoster(t *testing.T, raw json.RawMessage) []models.Participantable {
	t.Helper()
	node, err := jsonserialization.NewJsonParseNode(raw)
	if err != nil {
		t.Fatalf("parse roster: %v", err)
	}
	vs, err := node.GetCollectionOfObjectValues(models.CreateParticipantFromDiscriminatorValue)
	if err != nil {
		t.Fatalf("parse roster as participants: %v\n%s", err, raw)
	}
	out := make([]models.Participantable, len(vs))
	for i, v := range vs {
		out[i] = v.(models.Participantable)
	}
	return out
}

func names(ps []models.Participantable) []string {
	var out []string
	for _, p := range ps {
		name := ""
		if id := p.GetInfo().GetIdentity(); id != nil {
			switch {
			case id.GetUser() != nil:
				name = val(id.GetUser().GetDisplayName())
			case id.GetApplication() != nil:
				name = "bot"
			}
		}
		if val(p.GetIsMuted()) {
			name += "(muted)"
		}
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// waitRoster waits for a roster notification of exactly want.
func waitRoster(t *testing.T, callID string, want ...string) []models.Participantable {
	t.Helper()
	slices.Sort(want)
	var got []models.Participantable
	env.bot.wait(t, "roster "+strings.Join(want, ","), func(n notification) bool {
		if !strings.EqualFold(n.ResourceURL, callURL(callID)+"/participants") || n.ChangeType != "updated" {
			return false
		}
		ps := parseRoster(t, n.ResourceData)
		if slices.Equal(names(ps), want) {
			got = ps
			return true
		}
		return false
	})
	return got
}

func byName(t *testing.T, ps []models.Participantable, name string) string {
	t.Helper()
	for _, p := range ps {
		if u := p.GetInfo().GetIdentity().GetUser(); u != nil && val(u.GetDisplayName()) == name {
			return val(p.GetId())
		}
	}
	t.Fatalf("%s is not in the roster", name)
	return ""
}

// A group call through msgraph-sdk-go: created with two targets, a third
// invited, one muted, one removed; the roster notifications and the
// participants collection follow each step.
func TestGroupCall(t *testing.T) {
	client, _ := botClient(t)
	ctx := testCtx(t)
	req := models.NewCall()
	req.SetCallbackUri(ptr(env.hook.URL + "/callback"))
	req.SetTargets([]models.InvitationParticipantInfoable{userTarget(aliceID, "Alice"), userTarget(bobID, "Bob")})
	req.SetRequestedModalities([]models.Modality{models.AUDIO_MODALITY})
	req.SetMediaConfig(models.NewServiceHostedMediaConfig())
	req.SetSubject(ptr("group"))
	req.SetTenantId(ptr(tenantID))
	call, err := client.Communications().Calls().Post(ctx, req, nil)
	if err != nil {
		t.Fatal(describe(err))
	}
	id := val(call.GetId())
	item := client.Communications().Calls().ByCallId(id)
	t.Cleanup(func() { _ = item.Delete(ctx, nil) })
	if len(call.GetTargets()) != 2 {
		t.Errorf("created call has %d targets, want 2", len(call.GetTargets()))
	}
	waitState(t, id, models.ESTABLISHED_CALLSTATE)
	roster := waitRoster(t, id, "bot", "Alice", "Bob")
	sources := map[string]bool{}
	for _, p := range roster {
		ms := p.GetMediaStreams()
		if len(ms) != 1 || val(ms[0].GetSourceId()) == "" || sources[val(ms[0].GetSourceId())] {
			t.Errorf("participant %s: media streams without a distinct sourceId", val(p.GetId()))
			continue
		}
		sources[val(ms[0].GetSourceId())] = true
	}

	// Invite Carol.
	ib := communications.NewCallsItemParticipantsInvitePostRequestBody()
	ib.SetParticipants([]models.InvitationParticipantInfoable{userTarget(carolID, "Carol")})
	ib.SetClientContext(ptr("invite-carol"))
	op, err := item.Participants().Invite().Post(ctx, ib, nil)
	if err != nil {
		t.Fatal(describe(err))
	}
	if val(op.GetOdataType()) != "#microsoft.graph.inviteParticipantsOperation" || val(op.GetClientContext()) != "invite-carol" || len(op.GetParticipants()) != 1 {
		t.Errorf("invite: %q clientContext %q participants %d", val(op.GetOdataType()), val(op.GetClientContext()), len(op.GetParticipants()))
	}
	done := waitOperation(t, id, val(op.GetId()))
	if _, ok := done.(models.InviteParticipantsOperationable); !ok || val(done.GetStatus()) != models.COMPLETED_OPERATIONSTATUS {
		t.Errorf("invite ended as %T with status %v", done, val(done.GetStatus()))
	}
	roster = waitRoster(t, id, "bot", "Alice", "Bob", "Carol")

	// Mute Bob.
	bob := byName(t, roster, "Bob")
	mb := communications.NewCallsItemParticipantsItemMutePostRequestBody()
	mb.SetClientContext(ptr("mute-bob"))
	mop, err := item.Participants().ByParticipantId(bob).Mute().Post(ctx, mb, nil)
	if err != nil {
		t.Fatal(describe(err))
	}
	if val(mop.GetStatus()) != models.COMPLETED_OPERATIONSTATUS || val(mop.GetClientContext()) != "mute-bob" {
		t.Errorf("mute Bob: status %v clientContext %q", val(mop.GetStatus()), val(mop.GetClientContext()))
	}
	waitRoster(t, id, "bot", "Alice", "Bob(muted)", "Carol")

	// Remove Alice.
	if err := item.Participants().ByParticipantId(byName(t, roster, "Alice")).Delete(ctx, nil); err != nil {
		t.Fatal(describe(err))
	}
	waitRoster(t, id, "bot", "Bob(muted)", "Carol")
	res, err := item.Participants().Get(ctx, nil)
	if err != nil {
		t.Fatal(describe(err))
	}
	if got := names(res.GetValue()); !slices.Equal(got, []string{"Bob(muted)", "Carol", "bot"}) {
		t.Errorf("participants %v", got)
	}

	// A participant who is not in the call: a 404 the client parses.
	err = item.Participants().ByParticipantId(byName(t, roster, "Alice")).Delete(ctx, nil)
	if oe := graphError(t, err); oe.ResponseStatusCode != 404 {
		t.Errorf("removing a participant who left: %d", oe.ResponseStatusCode)
	}
}

// A blind transfer through msgraph-sdk-go: Alice's call goes to Bob; the
// client parses transferring, transferAccepted and the 0/7015 end.
func TestBlindTransfer(t *testing.T) {
	client, _ := botClient(t)
	ctx := testCtx(t)
	call := callAlice(t, client)
	id := val(call.GetId())
	body := communications.NewCallsItemTransferPostRequestBody()
	body.SetTransferTarget(userTarget(bobID, "Bob"))
	if err := client.Communications().Calls().ByCallId(id).Transfer().Post(ctx, body, nil); err != nil {
		t.Fatal(describe(err))
	}
	waitState(t, id, models.TRANSFERRING_CALLSTATE)
	waitState(t, id, models.TRANSFERACCEPTED_CALLSTATE)
	end := waitState(t, id, models.TERMINATED_CALLSTATE)
	checkResult(t, "transfer", end.GetResultInfo(), 0, 7015)
}

// msgraph-sdk-go creates a Meet Now meeting and joins it, once by its
// chatInfo and organizer and once by its meeting id: both calls are
// established with the meeting's chatInfo, and each roster lists both bots.
func TestJoinMeeting(t *testing.T) {
	client, _ := botClient(t)
	ctx := testCtx(t)
	mtg := models.NewOnlineMeeting()
	mtg.SetSubject(ptr("Compat meeting"))
	m, err := client.Users().ByUserId(aliceID).OnlineMeetings().Post(ctx, mtg, nil)
	if err != nil {
		t.Fatal(describe(err))
	}
	join := func(set func(c models.Callable)) string {
		t.Helper()
		req := models.NewCall()
		req.SetCallbackUri(ptr(env.hook.URL + "/callback"))
		req.SetRequestedModalities([]models.Modality{models.AUDIO_MODALITY})
		req.SetMediaConfig(models.NewServiceHostedMediaConfig())
		req.SetTenantId(ptr(tenantID))
		set(req)
		call, err := client.Communications().Calls().Post(ctx, req, nil)
		if err != nil {
			t.Fatal(describe(err))
		}
		id := val(call.GetId())
		t.Cleanup(func() { _ = client.Communications().Calls().ByCallId(id).Delete(ctx, nil) })
		if ci := call.GetChatInfo(); ci == nil || val(ci.GetThreadId()) != val(m.GetChatInfo().GetThreadId()) {
			t.Errorf("the joined call's chatInfo %+v, want the meeting's", ci)
		}
		waitState(t, id, models.ESTABLISHED_CALLSTATE)
		return id
	}
	byLink := join(func(c models.Callable) {
		// A fresh chatInfo: the client sends only what was set on a model,
		// and the meeting's came from a response.
		ci := models.NewChatInfo()
		ci.SetThreadId(m.GetChatInfo().GetThreadId())
		ci.SetMessageId(ptr("0"))
		c.SetChatInfo(ci)
		org := models.NewIdentity()
		org.SetId(ptr(aliceID))
		set := models.NewIdentitySet()
		set.SetUser(org)
		info := models.NewOrganizerMeetingInfo()
		info.SetOrganizer(set)
		c.SetMeetingInfo(info)
	})
	byID := join(func(c models.Callable) {
		info := models.NewJoinMeetingIdMeetingInfo()
		info.SetJoinMeetingId(ptr(val(m.GetJoinMeetingIdSettings().GetJoinMeetingId())))
		c.SetMeetingInfo(info)
	})
	waitRoster(t, byLink, "bot", "bot")
	waitRoster(t, byID, "bot", "bot")
}
