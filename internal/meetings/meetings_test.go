package meetings

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/identity"
	"github.com/switchboard-voice/switchboard/internal/ids"
	"github.com/switchboard-voice/switchboard/internal/store"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	tenant      = "11111111-1111-4111-8111-111111111111"
	otherTenant = "22222222-2222-4222-8222-222222222222"
	alice       = "a0000000-0000-4000-8000-00000000000a"
	bob         = "b0000000-0000-4000-8000-00000000000b"
	carol       = "c0000000-0000-4000-8000-00000000000c"
	dave        = "d0000000-0000-4000-8000-00000000000d" // in the other tenant
	app         = "a9900000-0000-4000-8000-0000000000a1" // every user
	limitedApp  = "a9900000-0000-4000-8000-0000000000a2" // meetingUsers: alice
	otherApp    = "a9900000-0000-4000-8000-0000000000a3" // the other tenant
	toll        = "+15550150"
	public      = "https://switchboard.example.com"
)

var (
	writer   = Caller{TenantID: tenant, AppID: app, Roles: []string{PermissionReadWrite}}
	reader   = Caller{TenantID: tenant, AppID: app, Roles: []string{PermissionRead}}
	nobody   = Caller{TenantID: tenant, AppID: app, Roles: []string{"Calls.Initiate.All"}}
	limited  = Caller{TenantID: tenant, AppID: limitedApp, Roles: []string{PermissionReadWrite}}
	outsider = Caller{TenantID: otherTenant, AppID: otherApp, Roles: []string{PermissionReadWrite}}
)

func testConfig(dir string) *config.Config {
	c := config.Default()
	c.DataDir = dir
	c.HTTP.PublicURL = public
	c.Tenants = []config.Tenant{
		{ID: tenant, DisplayName: "Contoso", Conferencing: config.Conferencing{TollNumber: toll}, Users: []config.User{
			{ID: alice, DisplayName: "Alice"}, {ID: bob, DisplayName: "Bob"}, {ID: carol, DisplayName: "Carol <script>"}}},
		{ID: otherTenant, DisplayName: "Fabrikam", Users: []config.User{{ID: dave, DisplayName: "Dave"}}},
	}
	c.Applications = []config.Application{
		{ID: app, DisplayName: "Bot", Secret: "secret-secret", Tenants: []string{tenant}},
		{ID: limitedApp, DisplayName: "Limited", Secret: "secret-secret", Tenants: []string{tenant}, MeetingUsers: []string{alice}},
		{ID: otherApp, DisplayName: "Other", Secret: "secret-secret", Tenants: []string{otherTenant}},
	}
	return &c
}

// open starts an embedded store in dir and opens the meetings in it.
func open(t *testing.T, dir string, now func() time.Time) (*Store, *store.Store) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Options{DataDir: dir, Name: "meetings-test"})
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(dir)
	if err := cfg.Validate(); err != nil {
		st.Close()
		t.Fatal(err)
	}
	s, err := Open(ctx, Options{Store: st, Config: cfg, Directory: identity.NewDirectory(cfg), Now: now})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	return s, st
}

func newStore(t *testing.T) *Store {
	t.Helper()
	s, st := open(t, t.TempDir(), nil)
	t.Cleanup(st.Close)
	return s
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return c
}

func wantKind(t *testing.T, err error, k errs.Kind, says string) {
	t.Helper()
	if err == nil || errs.KindOf(err) != k || !strings.Contains(errs.Message(err), says) {
		t.Fatalf("err %v (kind %v), want %v saying %q", err, errs.KindOf(err), k, says)
	}
}

func TestIDsHaveGraphsShape(t *testing.T) {
	for i := range 2000 {
		organizer := ids.New()
		if i%2 == 1 {
			organizer = strings.ToUpper(organizer)
		}
		thread, opaque := newThread()
		if !regexp.MustCompile(`^19:meeting_[A-Za-z0-9]{48}@thread\.v2$`).MatchString(thread) {
			t.Fatalf("thread id %q", thread)
		}
		if o, ok := threadOpaque(thread); !ok || o != opaque {
			t.Fatalf("threadOpaque(%q) = %q %v", thread, o, ok)
		}
		raw, _ := base64.StdEncoding.DecodeString(opaque)
		if !config.IsGUID(string(raw)) {
			t.Fatalf("the opaque part %q is not a GUID's base64 (%q)", opaque, raw)
		}
		id := meetingID(organizer, thread)
		// Graph's ids decode to "1*{oid}*0**{threadId}" and are safe in a path.
		if strings.ContainsAny(id, "+/=") {
			t.Fatalf("id %q needs escaping in a URL path", id)
		}
		if o, th, ok := parseMeetingID(id); !ok || o != organizer || th != thread {
			t.Fatalf("parseMeetingID(%q) = %q %q %v", id, o, th, ok)
		}
	}
	for _, bad := range []string{"", "nope", base64.StdEncoding.EncodeToString([]byte("2*x*0**y")), "%%%"} {
		if _, _, ok := parseMeetingID(bad); ok {
			t.Errorf("parseMeetingID(%q) accepted", bad)
		}
	}
	// Graph's own example id (from the reference) reads the same way.
	if o, th, ok := parseMeetingID("MSo0Yjc1MTg5Yi1jMTk1LTQwM2ItYmFjNC1iZjAzZjIyOTVlYmMqMCoqMTk6bWVldGluZ19PREkzWTJNNVkyRXRNakZtTVMwME1qVmhMV0psTVRZdE4yRm1NakU0T1RJeFltRTRAdGhyZWFkLnYy"); !ok ||
		o != "4b75189b-c195-403b-bac4-bf03f2295ebc" || th != "19:meeting_ODI3Y2M5Y2EtMjFmMS00MjVhLWJlMTYtN2FmMjE4OTIxYmE4@thread.v2" {
		t.Errorf("Graph's id: %q %q %v", o, th, ok)
	}
	for range 200 {
		if d := randomDigits(12); len(d) != 12 || d[0] == '0' || !allDigits(d) {
			t.Fatalf("randomDigits(12) = %q", d)
		}
		if p := newPasscode(); len(p) != 6 || strings.ContainsAny(p, "0O1lI") {
			t.Fatalf("passcode %q", p)
		}
	}
}

// The join link is Teams' long form, so the parsers of Microsoft's samples
// (URL-decode the whole link, take the two segments after meetup-join,
// read Tid and Oid from the context JSON) read it unchanged.
func TestJoinWebURLReadsLikeATeamsLink(t *testing.T) {
	thread, _ := newThread()
	link := JoinWebURL(public+"/", tenant, alice, thread)
	if !strings.HasPrefix(link, public+"/l/meetup-join/19%3Ameeting_") || !strings.Contains(link, "%40thread.v2/0?context=%7B%22Tid%22%3A%22"+tenant) {
		t.Fatalf("join link %q", link)
	}
	// As the samples do it.
	decoded, err := url.QueryUnescape(link)
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`.*/meetup-join/(?P<thread>[^/]+)/(?P<message>[^/]+)\?context=(?P<context>\{.*\})`)
	mt := re.FindStringSubmatch(decoded)
	if mt == nil {
		t.Fatalf("decoded link %q does not match the samples' pattern", decoded)
	}
	var c struct{ Tid, Oid string }
	if err := json.Unmarshal([]byte(mt[3]), &c); err != nil || mt[1] != thread || mt[2] != "0" || c.Tid != tenant || c.Oid != alice {
		t.Fatalf("samples' parse: thread %q message %q context %q (%v)", mt[1], mt[2], mt[3], err)
	}

	for _, tc := range []struct{ name, link string }{
		{"ours", link},
		{"ours, encoded once more", url.QueryEscape(link)},
		{"Teams' (from the Graph reference)", "https://teams.microsoft.com/l/meetup-join/19%3ameeting_MGQ4MDQyNTEtNTQ2NS00YjQxLTlkM2EtZWVkODYxODYzMmY2%40thread.v2/0?context=%7b%22Tid%22%3a%22909c6581-5130-43e9-88f3-fcb3582cde37%22%2c%22Oid%22%3a%22dc17674c-81d9-4adb-bfb2-8f6a442e4622%22%7d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			jl, err := ParseJoinWebURL(tc.link)
			if err != nil {
				t.Fatal(err)
			}
			if jl.MessageID != "0" || !strings.HasPrefix(jl.ThreadID, "19:meeting_") || !strings.HasSuffix(jl.ThreadID, "@thread.v2") ||
				!config.IsGUID(jl.TenantID) || !config.IsGUID(jl.OrganizerID) {
				t.Fatalf("%+v", jl)
			}
		})
	}
	for _, bad := range []string{"", "not a url", "https://example.com/l/other/x", "https://example.com/l/meetup-join/"} {
		if _, err := ParseJoinWebURL(bad); err == nil {
			t.Errorf("ParseJoinWebURL(%q) accepted", bad)
		}
	}
}

func TestParseFilter(t *testing.T) {
	for _, tc := range []struct {
		filter, prop, value, err string
	}{
		{"JoinWebUrl eq 'https://x/l/meetup-join/a/0'", filterJoinWebURL, "https://x/l/meetup-join/a/0", ""},
		{"  joinweburl   EQ  'v' ", filterJoinWebURL, "v", ""},
		{"joinMeetingIdSettings/joinMeetingId eq '1234567890'", filterJoinMeetingID, "1234567890", ""},
		{"VideoTeleconferenceId eq '123456789'", filterVTC, "123456789", ""},
		{"JoinWebUrl eq 'it''s'", filterJoinWebURL, "it's", ""},
		{"", "", "", "cannot be listed"},
		{"subject eq 'x'", "", "", "'subject' is not supported"},
		{"startDateTime ge '2020-01-01'", "", "", "'startDateTime' is not supported"},
		{"JoinWebUrl ne 'x'", "", "", "is not supported"},
		{"JoinWebUrl eq x", "", "", "is not supported"},
		{"JoinWebUrl eq 'a' or JoinWebUrl eq 'b'", "", "", "one comparison only"},
	} {
		p, v, err := parseFilter(tc.filter)
		if tc.err != "" {
			if err == nil || errs.KindOf(err) != errs.BadRequest || !strings.Contains(errs.Message(err), tc.err) {
				t.Errorf("parseFilter(%q) = %q %q %v, want 400 saying %q", tc.filter, p, v, err, tc.err)
			}
			continue
		}
		if err != nil || p != tc.prop || v != tc.value {
			t.Errorf("parseFilter(%q) = %q %q %v, want %q %q", tc.filter, p, v, err, tc.prop, tc.value)
		}
	}
}

func TestCreateAndLookUp(t *testing.T) {
	now := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	s, st := open(t, t.TempDir(), func() time.Time { return now })
	defer st.Close()
	c := ctx(t)

	// Meet Now: no dates, start now, one hour long.
	m, err := s.Create(c, writer, alice, &graph.OnlineMeeting{Subject: "Stand-up",
		Participants: &graph.MeetingParticipants{Attendees: []graph.MeetingParticipantInfo{
			{Identity: &graph.IdentitySet{User: &graph.Identity{ID: bob}}, Role: "Presenter"}}},
		LobbyBypassSettings: &graph.LobbyBypassSettings{Scope: "EVERYONE"}})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Start.Equal(now) || !m.End.Equal(now.Add(time.Hour)) || !m.Created.Equal(now) {
		t.Errorf("meet now: %v..%v created %v", m.Start, m.End, m.Created)
	}
	if m.TenantID != tenant || m.OrganizerID != alice || m.OrganizerName != "Alice" || m.Subject != "Stand-up" ||
		len(m.JoinMeetingID) != 12 || len(m.ConferenceID) != 9 || m.PasscodeRequired || m.Passcode != "" ||
		m.LobbyBypass.Scope != "everyone" || m.AllowedPresenters != "everyone" || m.Attendees[0].Role != graph.RolePresenter {
		t.Errorf("meeting %+v", m)
	}
	if ci := m.ChatInfo(); ci.ThreadID != m.ThreadID || ci.MessageID != "0" {
		t.Errorf("chatInfo %+v", ci)
	}
	if mi := m.MeetingInfo(); mi.ODataType != graph.TypeOrganizerMeetingInfo || mi.Organizer.User.ID != alice || mi.Organizer.User.TenantID != tenant {
		t.Errorf("meetingInfo %+v", mi)
	}

	// The organizer and an attendee read it; someone else does not see it.
	for _, u := range []string{alice, bob} {
		if got, err := s.Get(c, reader, u, m.ID); err != nil || got.ID != m.ID {
			t.Errorf("Get as %s: %v", u, err)
		}
	}
	_, err = s.Get(c, reader, carol, m.ID)
	wantKind(t, err, errs.NotFound, "was not found")
	_, err = s.Get(c, reader, alice, meetingID(alice, "19:meeting_"+strings.Repeat("A", 48)+"@thread.v2"))
	wantKind(t, err, errs.NotFound, "was not found")
	_, err = s.Get(c, reader, alice, "garbage")
	wantKind(t, err, errs.NotFound, "was not found")

	// Call control's lookups, and their tenant fences.
	for name, look := range map[string]func() (*Meeting, error){
		"ByThreadID":             func() (*Meeting, error) { return s.ByThreadID(c, strings.ToUpper(tenant), m.ThreadID) },
		"ByJoinMeetingID":        func() (*Meeting, error) { return s.ByJoinMeetingID(c, tenant, m.JoinMeetingID) },
		"ByJoinMeetingID spaced": func() (*Meeting, error) { return s.ByJoinMeetingID(c, tenant, spaced(m.JoinMeetingID)) },
		"ByConferenceID":         func() (*Meeting, error) { return s.ByConferenceID(c, m.ConferenceID) },
		"ByConferenceID typed":   func() (*Meeting, error) { return s.ByConferenceID(c, spaced(m.ConferenceID)+"#") },
	} {
		if got, err := look(); err != nil || got.ID != m.ID {
			t.Errorf("%s: %v %v", name, got, err)
		}
	}
	for name, look := range map[string]func() (*Meeting, error){
		"ByThreadID other tenant":      func() (*Meeting, error) { return s.ByThreadID(c, otherTenant, m.ThreadID) },
		"ByThreadID unknown":           func() (*Meeting, error) { return s.ByThreadID(c, tenant, "19:meeting_nope@thread.v2") },
		"ByJoinMeetingID other tenant": func() (*Meeting, error) { return s.ByJoinMeetingID(c, otherTenant, m.JoinMeetingID) },
		"ByJoinMeetingID unknown":      func() (*Meeting, error) { return s.ByJoinMeetingID(c, tenant, "111") },
		"ByConferenceID unknown":       func() (*Meeting, error) { return s.ByConferenceID(c, "12") },
		"ByConferenceID not digits":    func() (*Meeting, error) { return s.ByConferenceID(c, "x") },
	} {
		_, err := look()
		wantKind(t, err, errs.NotFound, "was not found")
		_ = name
	}

	// Passcodes: none required lets anything in; required, only the passcode.
	if !m.PasscodeMatches("") || !m.PasscodeMatches("whatever") {
		t.Error("a meeting without a passcode refused a join")
	}
	required := true
	p, err := s.Create(c, writer, alice, &graph.OnlineMeeting{JoinMeetingIDSettings: &graph.JoinMeetingIDSettings{IsPasscodeRequired: &required}})
	if err != nil {
		t.Fatal(err)
	}
	if !p.PasscodeRequired || len(p.Passcode) != 6 || !p.PasscodeMatches(p.Passcode) || p.PasscodeMatches("") || p.PasscodeMatches(strings.ToLower(p.Passcode)+"x") {
		t.Errorf("passcode %q required %v", p.Passcode, p.PasscodeRequired)
	}
	if p.JoinMeetingID == m.JoinMeetingID || p.ConferenceID == m.ConferenceID || p.ThreadID == m.ThreadID {
		t.Error("two meetings share an id")
	}
}

func TestCreateDates(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	start := time.Date(2026, 5, 1, 9, 0, 0, 0, time.FixedZone("x", -7*3600))
	m, err := s.Create(c, writer, alice, &graph.OnlineMeeting{StartDateTime: graph.NewDateTime(start)})
	if err != nil {
		t.Fatal(err)
	}
	if !m.Start.Equal(start) || !m.End.Equal(start.Add(time.Hour)) || m.Start.Location() != time.UTC {
		t.Errorf("start only: %v..%v", m.Start, m.End)
	}
	_, err = s.Create(c, writer, alice, &graph.OnlineMeeting{EndDateTime: graph.NewDateTime(start)})
	wantKind(t, err, errs.BadRequest, "without startDateTime")
	_, err = s.Create(c, writer, alice, &graph.OnlineMeeting{StartDateTime: graph.NewDateTime(start), EndDateTime: graph.NewDateTime(start.Add(-time.Minute))})
	wantKind(t, err, errs.BadRequest, "earlier than startDateTime")
	_, err = s.Create(c, writer, alice, &graph.OnlineMeeting{LobbyBypassSettings: &graph.LobbyBypassSettings{Scope: "friends"}})
	wantKind(t, err, errs.BadRequest, "lobbyBypassSettings.scope")
	_, err = s.Create(c, writer, alice, &graph.OnlineMeeting{AllowedPresenters: "unknownFutureValue"})
	wantKind(t, err, errs.BadRequest, "allowedPresenters")
	_, err = s.Create(c, writer, alice, &graph.OnlineMeeting{Participants: &graph.MeetingParticipants{
		Organizer: &graph.MeetingParticipantInfo{Identity: &graph.IdentitySet{User: &graph.Identity{ID: bob}}}}})
	wantKind(t, err, errs.BadRequest, "participants.organizer")
	_, err = s.Create(c, writer, alice, &graph.OnlineMeeting{Participants: &graph.MeetingParticipants{
		Attendees: []graph.MeetingParticipantInfo{{Role: "attendee"}, {Role: "boss"}}}})
	wantKind(t, err, errs.BadRequest, "participants.attendees[1].role")
}

func TestPermissionsAndAccessPolicy(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	m, err := s.Create(c, writer, alice, &graph.OnlineMeeting{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Create(c, nobody, alice, &graph.OnlineMeeting{})
	wantKind(t, err, errs.Forbidden, PermissionReadWrite)
	_, err = s.Create(c, reader, alice, &graph.OnlineMeeting{})
	wantKind(t, err, errs.Forbidden, PermissionReadWrite)
	_, err = s.Get(c, nobody, alice, m.ID)
	wantKind(t, err, errs.Forbidden, PermissionRead)
	_, err = s.Find(c, nobody, "", "JoinWebUrl eq 'x'")
	wantKind(t, err, errs.Forbidden, PermissionRead)

	// meetingUsers: the limited app acts for Alice only.
	if _, err := s.Get(c, limited, alice, m.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.Create(c, limited, bob, &graph.OnlineMeeting{})
	wantKind(t, err, errs.Forbidden, "No application access policy found for this app.")
	b, err := s.Create(c, writer, bob, &graph.OnlineMeeting{})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Find(c, limited, "", "JoinWebUrl eq '"+s.JoinWebURL(b)+"'")
	wantKind(t, err, errs.Forbidden, "No application access policy")

	// Users of another tenant are not found; neither are its meetings.
	_, err = s.Create(c, writer, dave, &graph.OnlineMeeting{})
	wantKind(t, err, errs.NotFound, "does not exist in tenant")
	_, err = s.Get(c, outsider, dave, m.ID)
	wantKind(t, err, errs.NotFound, "was not found")
	if found, err := s.Find(c, outsider, "", "JoinWebUrl eq '"+s.JoinWebURL(m)+"'"); err != nil || len(found) != 0 {
		t.Fatalf("another tenant's lookup: %v %v", found, err)
	}
}

func TestCreateOrGetIsIdempotentAcrossConcurrentCalls(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	_, _, err := s.CreateOrGet(c, writer, alice, &graph.OnlineMeeting{})
	wantKind(t, err, errs.BadRequest, "externalId")

	const n = 12
	var wg sync.WaitGroup
	got := make([]*Meeting, n)
	created := make([]bool, n)
	errc := make([]error, n)
	for i := range n {
		wg.Go(func() {
			got[i], created[i], errc[i] = s.CreateOrGet(c, writer, alice, &graph.OnlineMeeting{ExternalID: "ext-1", Subject: fmt.Sprint("try ", i)})
		})
	}
	wg.Wait()
	creators := 0
	for i := range n {
		if errc[i] != nil {
			t.Fatalf("createOrGet %d: %v", i, errc[i])
		}
		if got[i].ID != got[0].ID {
			t.Fatalf("createOrGet %d made another meeting: %s vs %s", i, got[i].ID, got[0].ID)
		}
		if created[i] {
			creators++
		}
	}
	if creators != 1 {
		t.Fatalf("%d calls say they created the meeting, want 1", creators)
	}
	// The losers left nothing behind: one meeting, two ids and the externalId.
	keys, err := s.kv.Keys(c)
	if err != nil || len(keys) != 4 {
		t.Fatalf("keys after the race: %v %v", keys, err)
	}

	// The same externalId is another meeting for another user.
	other, created2, err := s.CreateOrGet(c, writer, bob, &graph.OnlineMeeting{ExternalID: "ext-1"})
	if err != nil || !created2 || other.ID == got[0].ID {
		t.Fatalf("bob's ext-1: %v created %v", err, created2)
	}
	// Once deleted, the externalId makes a new meeting.
	if err := s.Delete(c, writer, alice, got[0].ID); err != nil {
		t.Fatal(err)
	}
	again, created3, err := s.CreateOrGet(c, writer, alice, &graph.OnlineMeeting{ExternalID: "ext-1"})
	if err != nil || !created3 || again.ID == got[0].ID {
		t.Fatalf("ext-1 after delete: %v created %v", err, created3)
	}
}

func TestPatch(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	m, err := s.Create(c, writer, alice, &graph.OnlineMeeting{Subject: "Before",
		Participants: &graph.MeetingParticipants{Attendees: []graph.MeetingParticipantInfo{{Identity: &graph.IdentitySet{User: &graph.Identity{ID: bob}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	patch := func(body string) (*Meeting, error) {
		var b map[string]json.RawMessage
		if err := json.Unmarshal([]byte(body), &b); err != nil {
			t.Fatal(err)
		}
		return s.Update(c, writer, alice, m.ID, b)
	}
	got, err := patch(`{"@odata.type":"#microsoft.graph.onlineMeeting","Subject":"After","startDateTime":"2026-06-01T10:00:00-07:00",
		"endDateTime":"2026-06-01T18:30:00Z","lobbyBypassSettings":{"isDialInBypassEnabled":true},"allowedPresenters":"organizer",
		"isEntryExitAnnounced":true,"allowMeetingChat":"Disabled","someBetaProperty":{"x":1}}`)
	if err != nil {
		t.Fatal(err)
	}
	if got.Subject != "After" || !got.Start.Equal(time.Date(2026, 6, 1, 17, 0, 0, 0, time.UTC)) || !got.End.Equal(time.Date(2026, 6, 1, 18, 30, 0, 0, time.UTC)) ||
		got.LobbyBypass != (LobbyBypass{Scope: "organization", IsDialInBypassEnabled: true}) || got.AllowedPresenters != "organizer" ||
		got.Settings.IsEntryExitAnnounced == nil || !*got.Settings.IsEntryExitAnnounced || got.Settings.AllowMeetingChat != "disabled" ||
		got.JoinMeetingID != m.JoinMeetingID || got.ThreadID != m.ThreadID {
		t.Errorf("after PATCH: %+v", got)
	}
	if _, err := patch(`{"subject":null,"participants":{"organizer":{"identity":{"user":{"id":"` + alice + `"}}},"attendees":[]}}`); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Get(c, reader, alice, m.ID); got.Subject != "" || len(got.Attendees) != 0 {
		t.Errorf("subject null and attendees []: %+v", got)
	}
	if _, err := s.Get(c, reader, bob, m.ID); errs.KindOf(err) != errs.NotFound {
		t.Errorf("Bob, no longer invited, still reads the meeting: %v", err)
	}

	for _, tc := range []struct{ body, says string }{
		{`{"joinWebUrl":"https://elsewhere"}`, "'joinWebUrl' is read-only"},
		{`{"ChatInfo":{}}`, "'chatInfo' is read-only"},
		{`{"joinMeetingIdSettings":{"isPasscodeRequired":true}}`, "'joinMeetingIdSettings' is read-only"},
		{`{"externalId":"x"}`, "'externalId' is read-only"},
		{`{"id":"x"}`, "'id' is read-only"},
		{`{"audioConferencing":null}`, "'audioConferencing' is read-only"},
		{`{"startDateTime":"2026-06-01T10:00:00Z"}`, "send both"},
		{`{"startDateTime":"2026-06-01T10:00:00Z","endDateTime":"2026-06-01T09:00:00Z"}`, "earlier than"},
		{`{"startDateTime":"soon","endDateTime":"2026-06-01T09:00:00Z"}`, "startDateTime"},
		{`{"subject":5}`, "'subject'"},
		{`{"lobbyBypassSettings":{"scope":"friends"}}`, "lobbyBypassSettings.scope"},
		{`{"isEntryExitAnnounced":"yes"}`, "isEntryExitAnnounced"},
		{`{"participants":{"organizer":{"identity":{"user":{"id":"` + bob + `"}}}}}`, "participants.organizer"},
	} {
		_, err := patch(tc.body)
		if err == nil || errs.KindOf(err) != errs.BadRequest || !strings.Contains(errs.Message(err), tc.says) {
			t.Errorf("PATCH %s: %v, want 400 saying %q", tc.body, err, tc.says)
		}
	}

	// Only the organizer changes or deletes a meeting.
	if _, err := patch(`{"participants":{"attendees":[{"identity":{"user":{"id":"` + bob + `"}}}]}}`); err != nil {
		t.Fatal(err)
	}
	_, err = s.Update(c, writer, bob, m.ID, map[string]json.RawMessage{"subject": json.RawMessage(`"mine"`)})
	wantKind(t, err, errs.Forbidden, "organizer")
	wantKind(t, s.Delete(c, writer, bob, m.ID), errs.Forbidden, "organizer")
}

// PATCHes racing on one meeting, each changing another property, all land:
// each is a compare-and-set on the meeting's revision, retried on conflict.
func TestConcurrentPatchesAllLand(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	m, err := s.Create(c, writer, alice, &graph.OnlineMeeting{})
	if err != nil {
		t.Fatal(err)
	}
	props := []string{"allowAttendeeToEnableCamera", "allowAttendeeToEnableMic", "allowParticipantsToChangeName",
		"allowTeamworkReactions", "allowRecording", "allowTranscription", "isEntryExitAnnounced", "recordAutomatically"}
	var wg sync.WaitGroup
	for _, p := range props {
		wg.Go(func() {
			if _, err := s.Update(c, writer, alice, m.ID, map[string]json.RawMessage{p: json.RawMessage("true")}); err != nil {
				t.Errorf("PATCH %s: %v", p, err)
			}
		})
	}
	wg.Wait()
	got, err := s.Get(c, reader, alice, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	st := got.Settings
	for i, b := range []*bool{st.AllowAttendeeToEnableCamera, st.AllowAttendeeToEnableMic, st.AllowParticipantsToChangeName,
		st.AllowTeamworkReactions, st.AllowRecording, st.AllowTranscription, st.IsEntryExitAnnounced, st.RecordAutomatically} {
		if b == nil || !*b {
			t.Errorf("%s was lost", props[i])
		}
	}
}

func TestDeleteFreesEveryID(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	m, _, err := s.CreateOrGet(c, writer, alice, &graph.OnlineMeeting{ExternalID: "gone"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(c, writer, alice, m.ID); err != nil {
		t.Fatal(err)
	}
	wantKind(t, s.Delete(c, writer, alice, m.ID), errs.NotFound, "was not found")
	_, err = s.Get(c, reader, alice, m.ID)
	wantKind(t, err, errs.NotFound, "was not found")
	_, err = s.ByThreadID(c, tenant, m.ThreadID)
	wantKind(t, err, errs.NotFound, "was not found")
	_, err = s.ByJoinMeetingID(c, tenant, m.JoinMeetingID)
	wantKind(t, err, errs.NotFound, "was not found")
	_, err = s.ByConferenceID(c, m.ConferenceID)
	wantKind(t, err, errs.NotFound, "was not found")
	if keys, err := s.kv.Keys(c); err != nil || len(keys) != 0 {
		t.Fatalf("keys left: %v %v", keys, err)
	}
}

// A meeting outlives the process: a store reopened on the same directory
// serves it by every lookup.
func TestMeetingsSurviveARestart(t *testing.T) {
	dir := t.TempDir()
	s, st := open(t, dir, nil)
	c := ctx(t)
	m, _, err := s.CreateOrGet(c, writer, alice, &graph.OnlineMeeting{ExternalID: "durable", Subject: "Kept"})
	if err != nil {
		st.Close()
		t.Fatal(err)
	}
	st.Close()

	s, st = open(t, dir, nil)
	defer st.Close()
	got, err := s.ByThreadID(c, tenant, m.ThreadID)
	if err != nil || got.ID != m.ID || got.Subject != "Kept" || got.JoinMeetingID != m.JoinMeetingID {
		t.Fatalf("after reopen: %+v %v", got, err)
	}
	again, created, err := s.CreateOrGet(c, writer, alice, &graph.OnlineMeeting{ExternalID: "durable"})
	if err != nil || created || again.ID != m.ID {
		t.Fatalf("createOrGet after reopen: created %v %v", created, err)
	}
	if _, err := s.ByConferenceID(c, m.ConferenceID); err != nil {
		t.Fatal(err)
	}
}

func TestResource(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	required := true
	m, err := s.Create(c, writer, alice, &graph.OnlineMeeting{Subject: "Review",
		LobbyBypassSettings:   &graph.LobbyBypassSettings{Scope: "invited"},
		JoinMeetingIDSettings: &graph.JoinMeetingIDSettings{IsPasscodeRequired: &required},
		Participants: &graph.MeetingParticipants{Attendees: []graph.MeetingParticipantInfo{
			{Identity: &graph.IdentitySet{User: &graph.Identity{ID: bob}}, Role: "coorganizer"}}}})
	if err != nil {
		t.Fatal(err)
	}
	r := s.Resource(m, View{})
	if r.ODataType != graph.TypeOnlineMeeting || r.ID != m.ID || r.JoinWebURL != JoinWebURL(public, tenant, alice, m.ThreadID) ||
		r.ChatInfo.ThreadID != m.ThreadID || r.ChatInfo.MessageID != "0" || r.Subject != "Review" ||
		r.Participants.Organizer.Identity.User.ID != alice || r.Participants.Organizer.Identity.User.TenantID != tenant ||
		r.JoinMeetingIDSettings.JoinMeetingID != m.JoinMeetingID || *r.JoinMeetingIDSettings.Passcode != m.Passcode ||
		r.AudioConferencing.ConferenceID != m.ConferenceID || r.AudioConferencing.TollNumber != toll ||
		len(r.AudioConferencing.TollNumbers) != 1 || r.AudioConferencing.DialinURL != r.JoinWebURL+"#dial-in" {
		t.Errorf("resource %+v", r)
	}
	// Evolvable members only when the request asks for them.
	if r.LobbyBypassSettings.Scope != "unknownFutureValue" || r.Participants.Attendees[0].Role != "unknownFutureValue" {
		t.Errorf("evolvable members without Prefer: %s %s", r.LobbyBypassSettings.Scope, r.Participants.Attendees[0].Role)
	}
	r = s.Resource(m, View{IncludeUnknownEnumMembers: true})
	if r.LobbyBypassSettings.Scope != "invited" || r.Participants.Attendees[0].Role != "coorganizer" {
		t.Errorf("evolvable members with Prefer: %s %s", r.LobbyBypassSettings.Scope, r.Participants.Attendees[0].Role)
	}
	info, err := url.QueryUnescape(strings.TrimPrefix(r.JoinInformation.Content, "data:text/html,"))
	if err != nil || !strings.Contains(info, spaced(m.JoinMeetingID)) || !strings.Contains(info, toll) {
		t.Errorf("joinInformation %q", info)
	}

	// Wire form: a meeting without a passcode says null; no dial-in
	// number, no toll fields.
	b, err := json.Marshal(s.Resource(&Meeting{ID: "x", TenantID: otherTenant, OrganizerID: dave, ThreadID: m.ThreadID, ConferenceID: "123"}, View{}))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"passcode":null`, `"isPasscodeRequired":false`, `"audioConferencing":{"conferenceId":"123"}`,
		`"creationDateTime":"0001-01-01T00:00:00.0000000Z"`, `"attendees":[]`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %s", b, want)
		}
	}
}

func TestJoinPage(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	s.sip = "sip.example.com" // as when SIP listens
	m, err := s.Create(c, writer, carol, &graph.OnlineMeeting{Subject: "Plans <b>&</b> budgets"})
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	s.Routes(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	get := func(link string) (int, string, http.Header) {
		t.Helper()
		u, err := url.Parse(link)
		if err != nil {
			t.Fatal(err)
		}
		resp, err := http.Get(srv.URL + u.RequestURI())
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), resp.Header
	}
	status, page, h := get(s.JoinWebURL(m))
	if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/html") || h.Get("Content-Security-Policy") == "" {
		t.Fatalf("join page: %d %v\n%s", status, h, page)
	}
	for _, want := range []string{"<title>Join: Plans &lt;b&gt;&amp;&lt;/b&gt; budgets</title>", "Carol &lt;script&gt;"} {
		if !strings.Contains(page, want) { // escaped, never markup
			t.Errorf("join page lacks %q:\n%s", want, page)
		}
	}
	for _, want := range []string{
		`href="tel:` + toll + `,,` + m.ConferenceID + `%23"`, spaced(m.ConferenceID) + "#",
		`href="sip:` + toll + `@sip.example.com"`,
		spaced(m.JoinMeetingID), m.ThreadID, `id="dial-in"`, `lang="en"`,
	} {
		if !strings.Contains(html.UnescapeString(page), html.UnescapeString(want)) {
			t.Errorf("join page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, "Passcode") {
		t.Error("a meeting without a passcode shows one")
	}
	// Unknown, deleted, or another tenant's context: 404, as a page.
	other := JoinWebURL(public, otherTenant, carol, m.ThreadID)
	if status, page, _ := get(other); status != 404 || !strings.Contains(page, "Meeting not found") {
		t.Errorf("wrong tenant: %d %s", status, page)
	}
	if err := s.Delete(c, writer, carol, m.ID); err != nil {
		t.Fatal(err)
	}
	if status, _, _ := get(s.JoinWebURL(m)); status != 404 {
		t.Errorf("deleted meeting: %d", status)
	}
	if status, _, _ := get(public + "/l/meetup-join/19%3Ameeting_x%40thread.v2/0"); status != 404 {
		t.Errorf("unknown thread: %d", status)
	}
}

func TestFind(t *testing.T) {
	s := newStore(t)
	c := ctx(t)
	m, err := s.Create(c, writer, alice, &graph.OnlineMeeting{Participants: &graph.MeetingParticipants{
		Attendees: []graph.MeetingParticipantInfo{{Identity: &graph.IdentitySet{User: &graph.Identity{ID: bob}}}}}})
	if err != nil {
		t.Fatal(err)
	}
	link := s.JoinWebURL(m)
	for _, tc := range []struct {
		name, user, filter string
		found              bool
	}{
		{"by link", alice, "JoinWebUrl eq '" + link + "'", true},
		{"by link encoded again", alice, "JoinWebUrl eq '" + url.QueryEscape(link) + "'", true},
		{"by link as an attendee", bob, "JoinWebUrl eq '" + link + "'", true},
		{"by link, not invited", carol, "JoinWebUrl eq '" + link + "'", false},
		{"by link, app-wide", "", "joinWebUrl eq '" + link + "'", true},
		{"by meeting id", alice, "joinMeetingIdSettings/joinMeetingId eq '" + m.JoinMeetingID + "'", true},
		{"by unknown meeting id", alice, "joinMeetingIdSettings/joinMeetingId eq '42'", false},
		{"by VTC id", "", "VideoTeleconferenceId eq '123456789'", false},
	} {
		got, err := s.Find(c, reader, tc.user, tc.filter)
		if err != nil || (len(got) == 1) != tc.found || (tc.found && got[0].ID != m.ID) {
			t.Errorf("%s: %v %v, want found %v", tc.name, got, err, tc.found)
		}
	}
	_, err = s.Find(c, reader, alice, "JoinWebUrl eq 'nothing like a link'")
	wantKind(t, err, errs.BadRequest, "cannot be read")
	_, err = s.Find(c, reader, alice, "")
	wantKind(t, err, errs.BadRequest, "cannot be listed")
}
