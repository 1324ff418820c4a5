package calltest_test

import (
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

const meetingsToll = "+15550150"

// withMeetings gives the test bot OnlineMeetings.ReadWrite.All, the second
// bot OnlineMeetings.Read.All for Alice only (meetingUsers), the other
// tenant's bot OnlineMeetings.ReadWrite.All, and the test tenant a dial-in
// number.
func withMeetings(c *config.Config) {
	for i := range c.Applications {
		switch c.Applications[i].ID {
		case calltest.BotID:
			c.Applications[i].Permissions = append(c.Applications[i].Permissions, "OnlineMeetings.ReadWrite.All")
		case calltest.Bot2ID:
			c.Applications[i].Permissions = append(c.Applications[i].Permissions, "OnlineMeetings.Read.All")
			c.Applications[i].MeetingUsers = []string{calltest.AliceID}
		case calltest.OtherBotID:
			c.Applications[i].Permissions = append(c.Applications[i].Permissions, "OnlineMeetings.ReadWrite.All")
		}
	}
	c.Tenants[0].Conferencing.TollNumber = meetingsToll
}

func userMeetings(user string) string { return "/v1.0/users/" + user + "/onlineMeetings" }

func filterPath(base, filter string) string {
	return base + "?" + url.Values{"$filter": {filter}}.Encode()
}

// meeting decodes an onlineMeeting answer with the status wanted.
func meeting(t *testing.T, r *calltest.Response, status int) graph.OnlineMeeting {
	t.Helper()
	if r.StatusCode != status {
		t.Fatalf("status %s, want %d: %s", r.Status, status, r.Body)
	}
	var m graph.OnlineMeeting
	r.JSON(t, &m)
	return m
}

func meetingList(t *testing.T, r *calltest.Response) []graph.OnlineMeeting {
	t.Helper()
	if r.StatusCode != 200 {
		t.Fatalf("status %s: %s", r.Status, r.Body)
	}
	var c graph.OnlineMeetingCollection
	r.JSON(t, &c)
	if c.ODataContext == "" || !strings.Contains(string(r.Body), `"value":[`) {
		t.Fatalf("collection without @odata.context or value: %s", r.Body)
	}
	return c.Value
}

func TestOnlineMeetingsAPI(t *testing.T) {
	p := calltest.Start(t, calltest.Options{Edit: withMeetings})
	bot := p.Token(calltest.BotID, calltest.TenantID)
	alice := userMeetings(calltest.AliceID)

	// Meet Now: a create without dates.
	r := p.Do(calltest.Req{Method: "POST", Path: alice, Token: bot, Body: map[string]any{"subject": "Stand-up"}})
	m := meeting(t, r, 201)
	if r.Header.Get("Location") != p.URL+alice+"/"+m.ID || m.ODataContext != p.URL+"/v1.0/$metadata#users('"+calltest.AliceID+"')/onlineMeetings/$entity" {
		t.Errorf("Location %q, @odata.context %q", r.Header.Get("Location"), m.ODataContext)
	}
	threadRE := regexp.MustCompile(`^19:meeting_[A-Za-z0-9]+@thread\.v2$`)
	if !threadRE.MatchString(m.ChatInfo.ThreadID) || m.ChatInfo.MessageID != "0" ||
		m.JoinWebURL != p.URL+"/l/meetup-join/"+url.QueryEscape(m.ChatInfo.ThreadID)+"/0?context="+
			url.QueryEscape(`{"Tid":"`+calltest.TenantID+`","Oid":"`+calltest.AliceID+`"}`) ||
		!regexp.MustCompile(`^[1-9][0-9]{11}$`).MatchString(m.JoinMeetingIDSettings.JoinMeetingID) ||
		m.JoinMeetingIDSettings.Passcode != nil || *m.JoinMeetingIDSettings.IsPasscodeRequired ||
		m.AudioConferencing.ConferenceID == "" || m.AudioConferencing.TollNumber != meetingsToll ||
		len(m.AudioConferencing.TollNumbers) != 1 || m.AudioConferencing.DialinURL == "" ||
		m.Participants.Organizer.Identity.User.ID != calltest.AliceID || m.Participants.Organizer.Identity.User.TenantID != calltest.TenantID ||
		m.LobbyBypassSettings.Scope != "organization" || m.AllowedPresenters != "everyone" || m.Subject != "Stand-up" ||
		m.EndDateTime.Sub(m.StartDateTime.Time) != time.Hour || time.Since(m.StartDateTime.Time) > time.Minute {
		t.Fatalf("meet now: %s", r.Body)
	}
	if !strings.Contains(string(r.Body), `"passcode":null`) {
		t.Errorf("passcode not null: %s", r.Body)
	}

	// createOrGet: 201 the first time, 200 with the same meeting after.
	body := map[string]any{"externalId": "ticket-4711", "subject": "Ticket 4711",
		"startDateTime": "2026-07-01T09:00:00Z", "endDateTime": "2026-07-01T09:30:00Z"}
	first := meeting(t, p.Do(calltest.Req{Method: "POST", Path: alice + "/createOrGet", Token: bot, Body: body}), 201)
	body["subject"] = "changed"
	again := meeting(t, p.Do(calltest.Req{Method: "POST", Path: alice + "/createOrGet", Token: bot, Body: body}), 200)
	if first.ID != again.ID || again.Subject != "Ticket 4711" || again.ExternalID != "ticket-4711" ||
		!again.StartDateTime.Equal(time.Date(2026, 7, 1, 9, 0, 0, 0, time.UTC)) {
		t.Fatalf("createOrGet twice: %+v then %+v", first, again)
	}
	if ns := meeting(t, p.Do(calltest.Req{Method: "POST", Path: "/beta/users/" + calltest.AliceID + "/onlineMeetings/microsoft.graph.createOrGet",
		Token: bot, Body: body}), 200); ns.ID != first.ID {
		t.Fatal("the namespaced createOrGet on beta found another meeting")
	}

	// GET by id, on v1.0 and beta; the attendee-free meeting is Alice's only.
	for _, path := range []string{alice + "/" + m.ID, "/beta/users/" + calltest.AliceID + "/onlineMeetings/" + m.ID} {
		if got := meeting(t, p.Do(calltest.Req{Method: "GET", Path: path, Token: bot}), 200); got.ID != m.ID || got.JoinWebURL != m.JoinWebURL {
			t.Fatalf("GET %s: %+v", path, got)
		}
	}

	// The $filter lookups, under the user and application-wide.
	for _, path := range []string{
		filterPath(alice, "JoinWebUrl eq '"+m.JoinWebURL+"'"),
		alice + "?$filter=JoinWebUrl%20eq%20'" + url.QueryEscape(m.JoinWebURL) + "'", // the reference's spelling
		filterPath(alice, "joinMeetingIdSettings/joinMeetingId eq '"+m.JoinMeetingIDSettings.JoinMeetingID+"'"),
		filterPath("/v1.0/communications/onlineMeetings/", "JoinWebUrl eq '"+m.JoinWebURL+"'"),
		filterPath("/beta/communications/onlineMeetings", "joinMeetingIdSettings/joinMeetingId eq '"+m.JoinMeetingIDSettings.JoinMeetingID+"'"),
	} {
		if got := meetingList(t, p.Do(calltest.Req{Method: "GET", Path: path, Token: bot})); len(got) != 1 || got[0].ID != m.ID {
			t.Fatalf("GET %s: %+v", path, got)
		}
	}
	if got := meetingList(t, p.Do(calltest.Req{Method: "GET", Path: filterPath(userMeetings(calltest.BobID), "JoinWebUrl eq '"+m.JoinWebURL+"'"), Token: bot})); len(got) != 0 {
		t.Fatalf("Bob, not invited, finds Alice's meeting: %+v", got)
	}

	// PATCH what may change.
	patched := meeting(t, p.Do(calltest.Req{Method: "PATCH", Path: alice + "/" + m.ID, Token: bot,
		Body: map[string]any{"subject": "Stand-up (moved)", "lobbyBypassSettings": map[string]any{"scope": "everyone", "isDialInBypassEnabled": true}}}), 200)
	if patched.Subject != "Stand-up (moved)" || patched.LobbyBypassSettings.Scope != "everyone" || !*patched.LobbyBypassSettings.IsDialInBypassEnabled ||
		patched.ChatInfo.ThreadID != m.ChatInfo.ThreadID {
		t.Fatalf("PATCH: %+v", patched)
	}
	// The store, as call control reads it, has the change.
	mt, err := p.Node.Meetings.ByThreadID(t.Context(), calltest.TenantID, m.ChatInfo.ThreadID)
	if err != nil || mt.Subject != "Stand-up (moved)" || !mt.LobbyBypass.IsDialInBypassEnabled || mt.ConferenceID != m.AudioConferencing.ConferenceID {
		t.Fatalf("ByThreadID after PATCH: %+v %v", mt, err)
	}

	// What fails, and how.
	weak := p.Token(calltest.WeakBotID, calltest.TenantID)
	reader := p.Token(calltest.Bot2ID, calltest.TenantID)
	other := p.Token(calltest.OtherBotID, calltest.OtherTenantID)
	for _, tc := range []struct {
		name   string
		req    calltest.Req
		status int
		code   string
		says   string
	}{
		{"no permission", calltest.Req{Method: "POST", Path: alice, Token: weak, Body: "{}"}, 403, "Forbidden", "OnlineMeetings.ReadWrite.All"},
		{"read-only permission creates", calltest.Req{Method: "POST", Path: alice, Token: reader, Body: "{}"}, 403, "Forbidden", "OnlineMeetings.ReadWrite.All"},
		{"no permission reads", calltest.Req{Method: "GET", Path: alice + "/" + m.ID, Token: weak}, 403, "Forbidden", "OnlineMeetings.Read.All"},
		{"outside meetingUsers", calltest.Req{Method: "GET", Path: filterPath(userMeetings(calltest.BobID), "JoinWebUrl eq '"+m.JoinWebURL+"'"), Token: reader},
			403, "Forbidden", "No application access policy found for this app."},
		{"another tenant's user", calltest.Req{Method: "POST", Path: alice, Token: other, Body: "{}"}, 404, "itemNotFound", "does not exist in tenant"},
		{"another tenant's lookup", calltest.Req{Method: "GET", Path: alice + "/" + m.ID, Token: other}, 404, "itemNotFound", "does not exist in tenant"},
		{"unknown user", calltest.Req{Method: "POST", Path: userMeetings("99999999-0000-4000-8000-000000000099"), Token: bot, Body: "{}"}, 404, "itemNotFound", "does not exist"},
		{"unknown meeting", calltest.Req{Method: "GET", Path: alice + "/bm9wZQ", Token: bot}, 404, "itemNotFound", "was not found"},
		{"read-only property", calltest.Req{Method: "PATCH", Path: alice + "/" + m.ID, Token: bot, Body: `{"joinWebUrl":"https://x"}`}, 400, "BadRequest", "'joinWebUrl' is read-only"},
		{"dates apart", calltest.Req{Method: "PATCH", Path: alice + "/" + m.ID, Token: bot, Body: `{"endDateTime":"2026-07-01T09:00:00Z"}`}, 400, "BadRequest", "send both"},
		{"unsupported filter", calltest.Req{Method: "GET", Path: filterPath(alice, "subject eq 'x'"), Token: bot}, 400, "BadRequest", "'subject' is not supported"},
		{"no filter", calltest.Req{Method: "GET", Path: alice, Token: bot}, 400, "BadRequest", "cannot be listed"},
		{"createOrGet without externalId", calltest.Req{Method: "POST", Path: alice + "/createOrGet", Token: bot, Body: "{}"}, 400, "BadRequest", "externalId"},
		{"wrong body type", calltest.Req{Method: "POST", Path: alice, Token: bot, Body: `{"subject":5}`}, 400, "BadRequest", "subject"},
		{"end before start", calltest.Req{Method: "POST", Path: alice, Token: bot, Body: `{"startDateTime":"2026-07-01T09:00:00Z","endDateTime":"2026-07-01T08:00:00Z"}`}, 400, "BadRequest", "earlier"},
		{"/me with an app token", calltest.Req{Method: "GET", Path: "/v1.0/me/onlineMeetings/" + m.ID, Token: bot}, 400, "BadRequest", "delegated"},
		{"wrong method", calltest.Req{Method: "PUT", Path: alice + "/" + m.ID, Token: bot}, 405, "methodNotAllowed", "PUT"},
		{"no token", calltest.Req{Method: "GET", Path: alice + "/" + m.ID}, 401, "InvalidAuthenticationToken", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := graphError(t, p.Do(tc.req), tc.status, tc.code)
			if !strings.Contains(e.Message, tc.says) {
				t.Errorf("message %q does not say %q", e.Message, tc.says)
			}
		})
	}
	// The limited reader reads Alice's meetings, as meetingUsers allows.
	if got := meeting(t, p.Do(calltest.Req{Method: "GET", Path: alice + "/" + m.ID, Token: reader}), 200); got.ID != m.ID {
		t.Fatal("Bot2 cannot read Alice's meeting")
	}

	// The join page, without a token.
	status, page := joinPage(t, m.JoinWebURL)
	if status != 200 || !strings.Contains(page, "Stand-up (moved)") || !strings.Contains(page, meetingsToll) ||
		!strings.Contains(page, spacedDigits(m.AudioConferencing.ConferenceID)) || !strings.Contains(page, spacedDigits(m.JoinMeetingIDSettings.JoinMeetingID)) {
		t.Fatalf("join page %d:\n%s", status, page)
	}

	// DELETE: 204, then the meeting, its lookups and its page are gone.
	if r := p.Do(calltest.Req{Method: "DELETE", Path: alice + "/" + m.ID, Token: bot}); r.StatusCode != 204 {
		t.Fatalf("DELETE: %s %s", r.Status, r.Body)
	}
	graphError(t, p.Do(calltest.Req{Method: "GET", Path: alice + "/" + m.ID, Token: bot}), 404, "itemNotFound")
	graphError(t, p.Do(calltest.Req{Method: "DELETE", Path: alice + "/" + m.ID, Token: bot}), 404, "itemNotFound")
	if got := meetingList(t, p.Do(calltest.Req{Method: "GET", Path: filterPath(alice, "JoinWebUrl eq '"+m.JoinWebURL+"'"), Token: bot})); len(got) != 0 {
		t.Fatalf("deleted meeting still found: %+v", got)
	}
	if status, _ := joinPage(t, m.JoinWebURL); status != 404 {
		t.Fatalf("join page of a deleted meeting: %d", status)
	}
}

// Prefer: include-unknown-enum-members shows the evolvable enum members.
func TestOnlineMeetingsEvolvableEnums(t *testing.T) {
	p := calltest.Start(t, calltest.Options{Edit: withMeetings})
	bot := p.Token(calltest.BotID, calltest.TenantID)
	body := `{"lobbyBypassSettings":{"scope":"invited"},"participants":{"attendees":[{"upn":"bob@example.com","role":"coorganizer"}]}}`
	m := meeting(t, p.Do(calltest.Req{Method: "POST", Path: userMeetings(calltest.AliceID), Token: bot, Body: body}), 201)
	if m.LobbyBypassSettings.Scope != "unknownFutureValue" || m.Participants.Attendees[0].Role != "unknownFutureValue" {
		t.Errorf("without Prefer: %s %s", m.LobbyBypassSettings.Scope, m.Participants.Attendees[0].Role)
	}
	m = meeting(t, p.Do(calltest.Req{Method: "GET", Path: userMeetings(calltest.AliceID) + "/" + m.ID, Token: bot,
		Header: map[string]string{"Prefer": "include-unknown-enum-members"}}), 200)
	if m.LobbyBypassSettings.Scope != "invited" || m.Participants.Attendees[0].Role != "coorganizer" || m.Participants.Attendees[0].UPN != "bob@example.com" {
		t.Errorf("with Prefer: %s %s", m.LobbyBypassSettings.Scope, m.Participants.Attendees[0].Role)
	}
}

// A node stopped hard and started again on its data directory serves the
// meetings it had: by id, by createOrGet, by link and on the join page.
func TestOnlineMeetingsSurviveRestart(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	p := calltest.Start(t, calltest.Options{DataDir: dir, Listener: ln, Edit: withMeetings})
	alice := userMeetings(calltest.AliceID)
	m := meeting(t, p.Do(calltest.Req{Method: "POST", Path: alice + "/createOrGet", Token: p.Token(calltest.BotID, calltest.TenantID),
		Body: map[string]any{"externalId": "survivor", "subject": "Survives"}}), 201)
	p.Node.Kill()

	ln, err = net.Listen("tcp", addr) // the same publicUrl, so the same links
	if err != nil {
		t.Fatal(err)
	}
	p = calltest.Start(t, calltest.Options{DataDir: dir, Listener: ln, Hook: p.Hook, WeakHook: p.WeakHook, Edit: withMeetings})
	bot := p.Token(calltest.BotID, calltest.TenantID)
	if got := meeting(t, p.Do(calltest.Req{Method: "GET", Path: alice + "/" + m.ID, Token: bot}), 200); got.JoinWebURL != m.JoinWebURL ||
		got.JoinMeetingIDSettings.JoinMeetingID != m.JoinMeetingIDSettings.JoinMeetingID || got.Subject != "Survives" {
		t.Fatalf("after restart: %+v", got)
	}
	if got := meeting(t, p.Do(calltest.Req{Method: "POST", Path: alice + "/createOrGet", Token: bot,
		Body: map[string]any{"externalId": "survivor"}}), 200); got.ID != m.ID {
		t.Fatalf("createOrGet after restart made %s", got.ID)
	}
	if got := meetingList(t, p.Do(calltest.Req{Method: "GET", Path: filterPath(alice, "JoinWebUrl eq '"+m.JoinWebURL+"'"), Token: bot})); len(got) != 1 {
		t.Fatalf("lookup by link after restart: %+v", got)
	}
	if status, page := joinPage(t, m.JoinWebURL); status != 200 || !strings.Contains(page, "Survives") {
		t.Fatalf("join page after restart: %d", status)
	}
	if _, err := p.Node.Meetings.ByConferenceID(t.Context(), m.AudioConferencing.ConferenceID); err != nil {
		t.Fatal(err)
	}
}

func joinPage(t *testing.T, link string) (int, string) {
	t.Helper()
	resp, err := http.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode == 200 && !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("join page served as %q", resp.Header.Get("Content-Type"))
	}
	return resp.StatusCode, strings.ReplaceAll(string(b), "&#43;", "+")
}

// spacedDigits groups digits in threes from the right, as the page shows ids.
func spacedDigits(d string) string {
	var out []string
	for len(d) > 3 {
		out = append([]string{d[len(d)-3:]}, out...)
		d = d[:len(d)-3]
	}
	return strings.Join(append([]string{d}, out...), " ")
}
