package meetings

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/identity"
	"github.com/switchboard-voice/switchboard/sdk"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// FuzzJoinLink feeds a join link, or anything a bot may send where one is
// expected, to every reader of it: ParseJoinWebURL (the $filter on
// joinWebUrl), the bot SDK's sdk.ParseJoinURL, the OData quoting of
// parseFilter, and parseMeetingID (an onlineMeeting id). Nothing may
// panic; a link read gives a thread (long) or a meeting id of digits
// (short) and a create-call body that encodes; a value quoted into a
// $filter comes back out unchanged; a meeting id read is the one
// meetingID writes; and a link Switchboard writes (JoinWebURL) for what a
// link said reads back the same in both readers.
func FuzzJoinLink(f *testing.F) {
	f.Add("https://teams.microsoft.com/l/meetup-join/19%3ameeting_NTg0NmQ3NmMtMmM4Yy00ZDY4LWEwNTMtYmNjYmU5MTkwNWNl%40thread.v2/0" +
		"?context=%7b%22Tid%22%3a%2272f988bf-86f1-41af-91ab-2d7cd011db47%22%2c%22Oid%22%3a%22550fae72-d251-43ec-868c-373732c2704f%22%7d")
	f.Fuzz(func(t *testing.T, link string) {
		jl, err := ParseJoinWebURL(link)
		if err == nil && jl.ThreadID == "" {
			t.Fatalf("ParseJoinWebURL(%q) read no thread", link)
		}
		if info, err := sdk.ParseJoinURL(link); err == nil {
			long := info.ThreadID != "" && info.MessageID != "" && info.TenantID != "" && info.OrganizerID != ""
			short := info.JoinMeetingID != "" && strings.Trim(info.JoinMeetingID, "0123456789") == "" && info.ThreadID == ""
			if long == short {
				t.Fatalf("sdk.ParseJoinURL(%q) = %+v", link, info)
			}
			b, err := json.Marshal(info.NewCall())
			var call graph.Call
			if err != nil || json.Unmarshal(b, &call) != nil {
				t.Fatalf("the call joining %+v does not encode: %v", info, err)
			}
		}
		quoted := "JoinWebUrl eq '" + strings.ReplaceAll(link, "'", "''") + "'"
		if p, v, err := parseFilter(quoted); err != nil || p != filterJoinWebURL || v != link {
			t.Fatalf("parseFilter(%q) = %q, %q, %v", quoted, p, v, err)
		}
		if org, thread, ok := parseMeetingID(link); ok {
			if o, th, ok := parseMeetingID(meetingID(org, thread)); !ok || o != org || th != thread {
				t.Fatalf("meeting id %q names %q and %q, which write an id naming %q and %q", link, org, thread, o, th)
			}
		}
		if err != nil || !plain(jl.ThreadID) || !plain(jl.TenantID) || !plain(jl.OrganizerID) || jl.TenantID == "" || jl.OrganizerID == "" {
			return
		}
		ours := JoinWebURL("https://sb.test:8443/", jl.TenantID, jl.OrganizerID, jl.ThreadID)
		back, err := ParseJoinWebURL(ours)
		if err != nil || back != (JoinLink{jl.ThreadID, messageID, jl.TenantID, jl.OrganizerID}) {
			t.Fatalf("our link %s for %+v reads back as %+v (%v)", ours, jl, back, err)
		}
		info, err := sdk.ParseJoinURL(ours)
		if err != nil || info.ThreadID != jl.ThreadID || info.MessageID != messageID ||
			info.TenantID != jl.TenantID || info.OrganizerID != jl.OrganizerID {
			t.Fatalf("our link %s for %+v reads in the SDK as %+v (%v)", ours, jl, info, err)
		}
	})
}

// plain reports whether s is made of what thread ids and GUIDs are made
// of, the values join links carry.
func plain(s string) bool {
	for _, c := range s {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune(":@._-", c)) {
			return false
		}
	}
	return true
}

// FuzzMeetingBody feeds an onlineMeeting body, as graphapi decodes it, to
// what reads it: a create's (newMeeting, patch false) or a PATCH's
// (applyPatch on a meeting made from an empty create, patch true). Nothing
// may panic; a refusal is a 400; a meeting made or changed ends no
// earlier than it starts, and its Graph resource encodes with a join link
// that reads back to its thread.
func FuzzMeetingBody(f *testing.F) {
	cfg := config.Default()
	cfg.Tenants = []config.Tenant{{ID: "11111111-1111-4111-8111-111111111111", DisplayName: "Contoso",
		Conferencing: config.Conferencing{TollNumber: "+15550199"},
		Users: []config.User{{ID: "a0000000-0000-4000-8000-00000000000a", DisplayName: "Alice"},
			{ID: "b0000000-0000-4000-8000-00000000000b", DisplayName: "Bob"}}}}
	dir := identity.NewDirectory(&cfg)
	now := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	s := &Store{dir: dir, public: "https://sb.test", sip: "sb.test", policy: map[string]map[string]bool{},
		now: func() time.Time { return now }, log: slog.New(slog.DiscardHandler)}
	tenant, alice := cfg.Tenants[0].ID, &cfg.Tenants[0].Users[0]
	c := Caller{TenantID: tenant, AppID: "b0700000-0000-4000-8000-0000000000b1", Roles: []string{PermissionReadWrite}}

	f.Add([]byte(`{"subject":"Standup","startDateTime":"2026-12-08T09:00:00Z","endDateTime":"2026-12-08T09:15:00Z"}`), false)
	f.Add([]byte(`{"subject":null,"lobbyBypassSettings":{"scope":"everyone"}}`), true)
	f.Fuzz(func(t *testing.T, body []byte, patch bool) {
		var m *Meeting
		var err error
		if patch {
			var p map[string]json.RawMessage
			if json.Unmarshal(body, &p) != nil {
				return // graphapi's 400
			}
			if m, err = s.newMeeting(c, alice, &graph.OnlineMeeting{}); err != nil {
				t.Fatal(err)
			}
			err = applyPatch(m, p)
		} else {
			var req graph.OnlineMeeting
			if json.Unmarshal(body, &req) != nil {
				return
			}
			m, err = s.newMeeting(c, alice, &req)
		}
		if err != nil {
			if errs.KindOf(err) != errs.BadRequest {
				t.Fatalf("refused with %v: %v", errs.KindOf(err), err)
			}
			return
		}
		if m.End.Before(m.Start) {
			t.Fatalf("the meeting ends (%v) before it starts (%v)", m.End, m.Start)
		}
		res := s.Resource(m, View{})
		if _, err := json.Marshal(res); err != nil {
			t.Fatalf("the meeting's resource does not encode: %v", err)
		}
		if jl, err := ParseJoinWebURL(res.JoinWebURL); err != nil || jl.ThreadID != m.ThreadID {
			t.Fatalf("joinWebUrl %s reads as %+v (%v), not thread %s", res.JoinWebURL, jl, err, m.ThreadID)
		}
	})
}
