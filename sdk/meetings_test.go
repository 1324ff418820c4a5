package sdk_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/switchboard-voice/switchboard/sdk"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

func TestParseJoinURL(t *testing.T) {
	const (
		thread = "19:meeting_MTZmMTRhYzktMTgyNC00ZDE2LTgwYmQtOGI2ZWJhMTY0NmU0@thread.v2"
		tid    = "8f6e4b1a-0c2d-4e5f-9a1b-2c3d4e5f6a70"
		oid    = "a11ce000-0000-4000-8000-000000000001"
	)
	// Switchboard's joinWebUrl, as the README shows it (on http.publicUrl).
	switchboard := "http://127.0.0.1:8080/l/meetup-join/19%3Ameeting_MTZmMTRhYzktMTgyNC00ZDE2LTgwYmQtOGI2ZWJhMTY0NmU0%40thread.v2/0" +
		"?context=%7B%22Tid%22%3A%228f6e4b1a-0c2d-4e5f-9a1b-2c3d4e5f6a70%22%2C%22Oid%22%3A%22a11ce000-0000-4000-8000-000000000001%22%7D"
	// Teams writes its escapes in lower case, and a channel meeting's
	// context has a MessageId.
	teams := "https://teams.microsoft.com/l/meetup-join/19%3ameeting_MTZmMTRhYzktMTgyNC00ZDE2LTgwYmQtOGI2ZWJhMTY0NmU0%40thread.v2/1509579179399" +
		"?context=%7b%22Tid%22%3a%228f6e4b1a-0c2d-4e5f-9a1b-2c3d4e5f6a70%22%2c%22Oid%22%3a%22a11ce000-0000-4000-8000-000000000001%22%2c%22MessageId%22%3a%221536978844957%22%7d&btype=a&role=a"
	long := sdk.JoinInfo{ThreadID: thread, MessageID: "0", TenantID: tid, OrganizerID: oid}
	channel := sdk.JoinInfo{ThreadID: thread, MessageID: "1509579179399", ReplyChainMessageID: "1536978844957", TenantID: tid, OrganizerID: oid}
	for _, tc := range []struct {
		name, link string
		want       sdk.JoinInfo
		err        string
	}{
		{"switchboard", switchboard, long, ""},
		{"teams", teams, channel, ""},
		{"decoded", `https://teams.microsoft.com/l/meetup-join/` + thread + `/0?context={"Tid":"` + tid + `","Oid":"` + oid + `"}`, long, ""},
		{"encoded as a whole", url.QueryEscape(switchboard), long, ""},
		{"wrapped in a mail link", "https://nam12.safelinks.protection.outlook.com/?url=" + url.QueryEscape(teams) + "&data=05%7C01&reserved=0", channel, ""},
		{"spaces around", "  " + switchboard + "\n", long, ""},
		{"gov cloud", strings.Replace(switchboard, "http://127.0.0.1:8080", "https://gov.teams.microsoft.us", 1), long, ""},
		{"short", "https://teams.microsoft.com/meet/2414128301281?p=NzhDLMLT8b07DrkwkE", sdk.JoinInfo{JoinMeetingID: "2414128301281", Passcode: "NzhDLMLT8b07DrkwkE"}, ""},
		{"short without passcode", "https://teams.microsoft.com/meet/2414128301281", sdk.JoinInfo{JoinMeetingID: "2414128301281"}, ""},
		{"no context", "https://teams.microsoft.com/l/meetup-join/19%3ameeting_x%40thread.v2/0", sdk.JoinInfo{}, "no context"},
		{"no organizer", "https://teams.microsoft.com/l/meetup-join/19%3ameeting_x%40thread.v2/0?context=%7b%7d", sdk.JoinInfo{}, "no organizer"},
		{"bad context", "https://teams.microsoft.com/l/meetup-join/19%3ameeting_x%40thread.v2/0?context=tid", sdk.JoinInfo{}, "not JSON"},
		{"no message id", "https://teams.microsoft.com/l/meetup-join/19%3ameeting_x%40thread.v2?context=%7b%7d", sdk.JoinInfo{}, "no thread id"},
		{"not a join link", "https://teams.microsoft.com/l/chat/19%3ameeting_x%40thread.v2/0", sdk.JoinInfo{}, "neither"},
		{"short, not digits", "https://teams.microsoft.com/meet/abc?p=1", sdk.JoinInfo{}, "no meeting id"},
		{"not a URL", "19:meeting_x@thread.v2", sdk.JoinInfo{}, "not an absolute URL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := sdk.ParseJoinURL(tc.link)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one saying %q (got %+v)", err, tc.err, got)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("got %+v %v, want %+v", got, err, tc.want)
			}
		})
	}
}

// JoinInfo.NewCall is the create-call body of Graph's "join a scheduled
// meeting" examples: chatInfo and organizerMeetingInfo, or
// joinMeetingIdMeetingInfo.
func TestJoinInfoNewCall(t *testing.T) {
	long := sdk.JoinInfo{ThreadID: "19:meeting_x@thread.v2", MessageID: "0", TenantID: "t1", OrganizerID: "o1"}
	body, _ := json.Marshal(long.NewCall())
	want := `{"@odata.type":"#microsoft.graph.call","chatInfo":{"@odata.type":"#microsoft.graph.chatInfo","threadId":"19:meeting_x@thread.v2","messageId":"0"},` +
		`"mediaConfig":{"@odata.type":"#microsoft.graph.serviceHostedMediaConfig"},` +
		`"meetingInfo":{"@odata.type":"#microsoft.graph.organizerMeetingInfo","organizer":{"@odata.type":"#microsoft.graph.identitySet","user":{"@odata.type":"#microsoft.graph.identity","id":"o1","tenantId":"t1"}}},` +
		`"requestedModalities":["audio"],"tenantId":"t1"}`
	if string(body) != want {
		t.Errorf("by link:\n%s\nwant\n%s", body, want)
	}
	short := sdk.JoinInfo{JoinMeetingID: "123", Passcode: "abc"}
	body, _ = json.Marshal(short.NewCall())
	want = `{"@odata.type":"#microsoft.graph.call","mediaConfig":{"@odata.type":"#microsoft.graph.serviceHostedMediaConfig"},` +
		`"meetingInfo":{"@odata.type":"#microsoft.graph.joinMeetingIdMeetingInfo","joinMeetingId":"123","passcode":"abc"},"requestedModalities":["audio"]}`
	if string(body) != want {
		t.Errorf("by id:\n%s\nwant\n%s", body, want)
	}
}

// meetingAPI records the requests of a test and answers them as
// Switchboard's onlineMeetings API does.
type meetingAPI struct {
	mu   sync.Mutex
	reqs []string // "METHOD /path?query body"
}

func (a *meetingAPI) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	a.mu.Lock()
	a.reqs = append(a.reqs, strings.TrimSpace(r.Method+" "+r.URL.RequestURI()+" "+string(body)))
	a.mu.Unlock()
	m := graph.OnlineMeeting{ODataType: graph.TypeOnlineMeeting, ID: "m1", Subject: "Stand-up"}
	switch {
	case r.Method == "DELETE":
		w.WriteHeader(204)
	case strings.HasSuffix(r.URL.Path, "/admit"):
		w.WriteHeader(204)
	case strings.HasSuffix(r.URL.Path, "/communications/calls"):
		writeJSON(w, 201, graph.Call{ID: "c1", State: graph.StateEstablishing})
	case r.URL.Query().Get("$filter") != "":
		var v []graph.OnlineMeeting
		if strings.Contains(r.URL.Query().Get("$filter"), "'804382727675'") {
			v = append(v, m)
		}
		writeJSON(w, 200, graph.OnlineMeetingCollection{Value: v})
	case strings.HasSuffix(r.URL.Path, "/createOrGet"):
		status := 201
		if strings.Contains(string(body), "ticket-1") {
			status = 200
		}
		writeJSON(w, status, m)
	case r.Method == "POST":
		writeJSON(w, 201, m)
	case strings.HasSuffix(r.URL.Path, "/gone"):
		writeJSON(w, 404, graph.ErrorResponse{Error: graph.ODataError{Code: "itemNotFound", Message: "No meeting gone."}})
	default:
		writeJSON(w, 200, m)
	}
}

func (a *meetingAPI) last() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.reqs[len(a.reqs)-1]
}

// Each onlineMeetings method sends Graph's request and reads its answer.
func TestMeetingRequestShapes(t *testing.T) {
	p := newPlatform(t, false)
	api := &meetingAPI{}
	p.setGraph(api.serve)
	c := p.client(sdk.ClientOptions{})
	ctx := context.Background()
	const user = "/v1.0/users/a11ce000/onlineMeetings"
	link := "https://teams.microsoft.com/l/meetup-join/19%3ameeting_x%40thread.v2/0?context=%7b%22Tid%22%3a%22t%22%7d"
	ok := func(m *graph.OnlineMeeting, err error) error {
		if err == nil && (m == nil || m.ID != "m1") {
			return errors.New("the meeting was not decoded")
		}
		return err
	}
	for _, tc := range []struct {
		name string
		do   func() error
		want string
	}{
		{"meet now", func() error { return ok(c.CreateMeeting(ctx, "a11ce000", nil)) }, "POST " + user + " {}"},
		{"create", func() error {
			return ok(c.CreateMeeting(ctx, "a11ce000", &graph.OnlineMeeting{Subject: "Stand-up"}))
		}, "POST " + user + ` {"subject":"Stand-up"}`},
		{"createOrGet, created", func() error {
			m, created, err := c.CreateOrGetMeeting(ctx, "a11ce000", "ticket-2", &graph.OnlineMeeting{Subject: "T2"})
			if err == nil && !created {
				return errors.New("201 not reported as created")
			}
			return ok(m, err)
		}, "POST " + user + `/createOrGet {"subject":"T2","externalId":"ticket-2"}`},
		{"createOrGet, got", func() error {
			m, created, err := c.CreateOrGetMeeting(ctx, "a11ce000", "ticket-1", nil)
			if err == nil && created {
				return errors.New("200 reported as created")
			}
			return ok(m, err)
		}, "POST " + user + `/createOrGet {"externalId":"ticket-1"}`},
		{"get", func() error { return ok(c.GetMeeting(ctx, "a11ce000", "MSph/x=")) }, "GET " + user + "/MSph%2Fx="},
		{"update", func() error {
			return ok(c.UpdateMeeting(ctx, "a11ce000", "m1", &graph.OnlineMeeting{Subject: "Moved"}))
		}, "PATCH " + user + `/m1 {"subject":"Moved"}`},
		{"delete", func() error { return c.DeleteMeeting(ctx, "a11ce000", "m1") }, "DELETE " + user + "/m1"},
		{"find by meeting id", func() error { return ok(c.FindMeetingByJoinMeetingID(ctx, "a11ce000", "804 382 727 675")) },
			"GET " + user + "?$filter=joinMeetingIdSettings%2FjoinMeetingId%20eq%20%27804382727675%27"},
		{"find by link", func() error {
			_, err := c.FindMeetingByJoinURL(ctx, "", link)
			if !errors.Is(err, sdk.ErrMeetingNotFound) {
				return errors.New("an empty collection is not ErrMeetingNotFound")
			}
			return nil
		}, "GET /v1.0/communications/onlineMeetings?$filter=" + strings.ReplaceAll(url.QueryEscape("JoinWebUrl eq '"+link+"'"), "+", "%20")},
		{"admit", func() error { return c.AdmitParticipant(ctx, "c1", "p1") }, "POST /v1.0/communications/calls/c1/participants/p1/admit {}"},
	} {
		if err := tc.do(); err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got := api.last(); got != tc.want {
			t.Errorf("%s:\n sent %s\n want %s", tc.name, got, tc.want)
		}
	}

	// A quote in a filter value is doubled, as OData writes it.
	_, _ = c.FindMeetingByJoinMeetingID(ctx, "u", "it's")
	if got := api.last(); !strings.Contains(got, "%27it%27%27s%27") {
		t.Errorf("quote not doubled: %s", got)
	}
	// An unknown meeting is Graph's 404.
	_, err := c.GetMeeting(ctx, "a11ce000", "gone")
	var ge *sdk.GraphError
	if !errors.As(err, &ge) || ge.StatusCode != 404 || ge.Code != "itemNotFound" {
		t.Errorf("get an unknown meeting: %v", err)
	}
	if _, _, err := c.CreateOrGetMeeting(ctx, "a11ce000", "", nil); err == nil {
		t.Error("createOrGet without an external id was sent")
	}
}

// The Handler joins meetings as it creates calls: the callbackUri filled
// in, the call tracked; Call.Admit admits on it.
func TestHandlerJoinsMeetings(t *testing.T) {
	p := newPlatform(t, false)
	api := &meetingAPI{}
	p.setGraph(api.serve)
	h := p.handler(sdk.HandlerOptions{CallbackURL: "https://bot.example/callback"})
	ctx := context.Background()
	link := "https://teams.microsoft.com/l/meetup-join/19%3ameeting_x%40thread.v2/0?context=%7b%22Tid%22%3a%22t1%22%2c%22Oid%22%3a%22o1%22%7d"

	call, err := h.JoinMeetingByURL(ctx, link, nil)
	if err != nil {
		t.Fatal(err)
	}
	var req graph.Call
	_ = json.Unmarshal([]byte(strings.SplitN(api.last(), " ", 3)[2]), &req)
	if req.CallbackURI != "https://bot.example/callback" || req.ChatInfo == nil || req.ChatInfo.ThreadID != "19:meeting_x@thread.v2" ||
		req.MeetingInfo == nil || req.MeetingInfo.Organizer.User.ID != "o1" || req.TenantID != "t1" ||
		req.MediaConfig == nil || req.MediaConfig.ODataType != graph.TypeServiceHostedMediaConfig {
		t.Errorf("join by link sent %s", api.last())
	}
	if c, ok := h.State().Call("c1"); !ok || c != call {
		t.Error("the joined call is not tracked")
	}
	if err := call.Admit(ctx, "p7"); err != nil || api.last() != "POST /v1.0/communications/calls/c1/participants/p7/admit {}" {
		t.Errorf("admit: %v, sent %s", err, api.last())
	}

	if _, err := h.JoinMeetingByID(ctx, "804 382 727 675", "", nil); err != nil {
		t.Fatal(err)
	}
	if got := api.last(); !strings.Contains(got, `"meetingInfo":{"@odata.type":"#microsoft.graph.joinMeetingIdMeetingInfo","joinMeetingId":"804382727675"}`) {
		t.Errorf("join by id sent %s", got)
	}
	if _, err := h.JoinMeetingByURL(ctx, "https://teams.microsoft.com/l/chat/0", nil); err == nil {
		t.Error("joined by a link that is not a meeting's")
	}
}

// Switchboard marks the participant heard most with an instance annotation
// and leaves it out for the others: a roster that no longer carries it on
// someone means they are no longer the dominant speaker, while properties
// a partial update leaves out keep their values.
func TestRosterAnnotationsDescribeTheirPayload(t *testing.T) {
	p := newPlatform(t, true)
	h := p.handler(sdk.HandlerOptions{})
	p.notify(h, incomingCall("c1"))
	p.notify(h, rosterNote("updated", "c1", []any{
		map[string]any{"id": "pa", "isMuted": true, "@switchboard.dominantSpeaker": true, "@odata.type": graph.TypeParticipant},
		map[string]any{"id": "pb"}}))
	p.notify(h, rosterNote("updated", "c1", []any{
		map[string]any{"id": "pa"},
		map[string]any{"id": "pb", "@switchboard.dominantSpeaker": true}}))
	c, _ := h.State().Call("c1")
	got := map[string]graph.Participant{}
	for _, x := range c.Participants() {
		got[x.ID] = x
	}
	if got["pa"].DominantSpeaker || !got["pb"].DominantSpeaker {
		t.Errorf("dominant speaker: pa %v, pb %v; want only pb", got["pa"].DominantSpeaker, got["pb"].DominantSpeaker)
	}
	if !got["pa"].IsMuted || got["pa"].ODataType != graph.TypeParticipant {
		t.Errorf("a property left out of an update was forgotten: %+v", got["pa"])
	}
}
