package msgraph

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/users"
)

// msgraph-sdk-go manages a user's online meetings with an application
// token: Meet Now (a create without dates), get, createOrGet by externalId
// (the same meeting the second time), the JoinWebUrl and joinMeetingId
// $filter lookups, PATCH and DELETE, every answer parsed into the client's
// own models.
func TestOnlineMeetings(t *testing.T) {
	ctx := testCtx(t)
	client, _ := botClient(t)
	alice := client.Users().ByUserId(aliceID).OnlineMeetings()

	created, err := alice.Post(ctx, func() models.OnlineMeetingable {
		m := models.NewOnlineMeeting()
		m.SetSubject(ptr("Meet now"))
		return m
	}(), nil)
	if err != nil {
		t.Fatalf("create: %v", describe(err))
	}
	id := val(created.GetId())
	join := val(created.GetJoinWebUrl())
	chat := created.GetChatInfo()
	jm := created.GetJoinMeetingIdSettings()
	ac := created.GetAudioConferencing()
	org := created.GetParticipants().GetOrganizer().GetIdentity().GetUser()
	if id == "" || !strings.HasPrefix(join, env.public+"/l/meetup-join/19%3Ameeting_") || chat == nil ||
		!strings.HasPrefix(val(chat.GetThreadId()), "19:meeting_") || val(chat.GetMessageId()) != "0" ||
		jm == nil || len(val(jm.GetJoinMeetingId())) != 12 || jm.GetPasscode() != nil || val(jm.GetIsPasscodeRequired()) ||
		ac == nil || val(ac.GetConferenceId()) == "" || val(ac.GetTollNumber()) != "+15550150" || len(ac.GetTollNumbers()) != 1 ||
		val(org.GetId()) != aliceID || val(created.GetSubject()) != "Meet now" {
		t.Fatalf("created meeting: id %q joinWebUrl %q chatInfo %v joinMeetingIdSettings %v audioConferencing %v", id, join, chat, jm, ac)
	}
	if start, end := created.GetStartDateTime(), created.GetEndDateTime(); start == nil || end == nil ||
		end.Sub(*start) != time.Hour || time.Since(*start) > time.Minute {
		t.Errorf("Meet Now dates: %v .. %v", start, end)
	}
	if s := created.GetLobbyBypassSettings(); s == nil || s.GetScope() == nil || *s.GetScope() != models.ORGANIZATION_LOBBYBYPASSSCOPE {
		t.Errorf("lobbyBypassSettings %v", s)
	}
	// The link reads as a Teams link: decoded, the path segments after
	// meetup-join are the thread and message, the context names the organizer.
	decoded, err := url.QueryUnescape(join)
	if err != nil || !strings.Contains(decoded, "/meetup-join/"+val(chat.GetThreadId())+"/0?context=") ||
		!strings.Contains(decoded, `"Tid":"`+tenantID+`"`) || !strings.Contains(decoded, `"Oid":"`+aliceID+`"`) {
		t.Errorf("decoded joinWebUrl %q", decoded)
	}

	got, err := alice.ByOnlineMeetingId(id).Get(ctx, nil)
	if err != nil {
		t.Fatalf("get: %v", describe(err))
	}
	if val(got.GetId()) != id || val(got.GetJoinWebUrl()) != join {
		t.Fatalf("get: %q %q", val(got.GetId()), val(got.GetJoinWebUrl()))
	}

	// createOrGet: the same externalId gives the same meeting.
	body := users.NewItemOnlineMeetingsCreateOrGetPostRequestBody()
	body.SetExternalId(ptr("compat-ticket-1"))
	body.SetSubject(ptr("Ticket 1"))
	start := time.Date(2026, 8, 1, 9, 0, 0, 0, time.UTC)
	body.SetStartDateTime(&start)
	first, err := alice.CreateOrGet().Post(ctx, body, nil)
	if err != nil {
		t.Fatalf("createOrGet: %v", describe(err))
	}
	second, err := alice.CreateOrGet().Post(ctx, body, nil)
	if err != nil {
		t.Fatalf("createOrGet again: %v", describe(err))
	}
	if val(first.GetId()) == "" || val(first.GetId()) != val(second.GetId()) || val(second.GetExternalId()) != "compat-ticket-1" ||
		!val(first.GetStartDateTime()).Equal(start) || !val(first.GetEndDateTime()).Equal(start.Add(time.Hour)) {
		t.Fatalf("createOrGet twice: %q then %q", val(first.GetId()), val(second.GetId()))
	}

	// The $filter lookups, by the join link and by the meeting id.
	for _, filter := range []string{
		"JoinWebUrl eq '" + join + "'",
		"joinMeetingIdSettings/joinMeetingId eq '" + val(jm.GetJoinMeetingId()) + "'",
	} {
		list, err := alice.Get(ctx, &users.ItemOnlineMeetingsRequestBuilderGetRequestConfiguration{
			QueryParameters: &users.ItemOnlineMeetingsRequestBuilderGetQueryParameters{Filter: ptr(filter)}})
		if err != nil {
			t.Fatalf("GET $filter=%s: %v", filter, describe(err))
		}
		if v := list.GetValue(); len(v) != 1 || val(v[0].GetId()) != id {
			t.Fatalf("$filter=%s found %d meetings", filter, len(v))
		}
	}

	// PATCH the subject; a $filter Graph does not support is an ODataError.
	patch := models.NewOnlineMeeting()
	patch.SetSubject(ptr("Meet now (renamed)"))
	patched, err := alice.ByOnlineMeetingId(id).Patch(ctx, patch, nil)
	if err != nil || val(patched.GetSubject()) != "Meet now (renamed)" {
		t.Fatalf("patch: %v %v", patched, describe(err))
	}
	_, err = alice.Get(ctx, &users.ItemOnlineMeetingsRequestBuilderGetRequestConfiguration{
		QueryParameters: &users.ItemOnlineMeetingsRequestBuilderGetQueryParameters{Filter: ptr("subject eq 'x'")}})
	if oe := graphError(t, err); oe.ResponseStatusCode != http.StatusBadRequest ||
		!strings.Contains(val(oe.GetErrorEscaped().GetMessage()), "subject") {
		t.Fatalf("unsupported $filter: %v", describe(err))
	}

	// DELETE, then the meeting is gone: 404 itemNotFound.
	if err := alice.ByOnlineMeetingId(id).Delete(ctx, nil); err != nil {
		t.Fatalf("delete: %v", describe(err))
	}
	_, err = alice.ByOnlineMeetingId(id).Get(ctx, nil)
	if oe := graphError(t, err); oe.ResponseStatusCode != http.StatusNotFound || val(oe.GetErrorEscaped().GetCode()) != "itemNotFound" {
		t.Fatalf("get after delete: %v", describe(err))
	}
}
