package meetings

import (
	"context"
	"fmt"
	"html"
	"net/url"
	"strings"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// View tunes how a meeting is written.
type View struct {
	// IncludeUnknownEnumMembers writes the evolvable enum members (lobby
	// scopes invited and organizationExcludingGuests, roles producer and
	// coorganizer) as themselves, as Graph does for a request with
	// Prefer: include-unknown-enum-members; otherwise they are written
	// unknownFutureValue.
	IncludeUnknownEnumMembers bool
}

var evolvable = map[string]bool{
	string(graph.LobbyInvited): true, string(graph.LobbyOrganizationExcludingGuests): true,
	string(graph.RoleProducer): true, string(graph.RoleCoorganizer): true,
}

func (v View) enum(s string) string {
	if !v.IncludeUnknownEnumMembers && evolvable[s] {
		return "unknownFutureValue"
	}
	return s
}

// Dial-in is what a meeting's tenant offers phones: its number, and the
// SIP URI of that number when SIP listens.
func (s *Store) dialIn(m *Meeting) (toll, sipURI string) {
	t, ok := s.dir.Tenant(m.TenantID)
	if !ok || t.Conferencing.TollNumber == "" {
		return "", ""
	}
	toll = t.Conferencing.TollNumber
	if s.sip != "" {
		sipURI = "sip:" + toll + "@" + s.sip
	}
	return toll, sipURI
}

// JoinWebURL is the meeting's joinWebUrl on this node's public URL.
func (s *Store) JoinWebURL(m *Meeting) string {
	return JoinWebURL(s.public, m.TenantID, m.OrganizerID, m.ThreadID)
}

// Resource writes m as Graph's onlineMeeting. @odata.context is the
// caller's to set: it depends on the path the request used.
func (s *Store) Resource(m *Meeting, v View) *graph.OnlineMeeting {
	join := s.JoinWebURL(m)
	name := m.OrganizerName
	if _, u, ok := s.dir.UserByID(m.OrganizerID); ok {
		name = u.DisplayName
	}
	f, bypass, required := false, m.LobbyBypass.IsDialInBypassEnabled, m.PasscodeRequired
	out := &graph.OnlineMeeting{
		ODataType:        graph.TypeOnlineMeeting,
		ID:               m.ID,
		CreationDateTime: graph.NewDateTime(m.Created),
		StartDateTime:    graph.NewDateTime(m.Start),
		EndDateTime:      graph.NewDateTime(m.End),
		Subject:          m.Subject,
		ExternalID:       m.ExternalID,
		JoinWebURL:       join,
		ChatInfo:         m.ChatInfo(),
		IsBroadcast:      &f,
		Participants: &graph.MeetingParticipants{
			Organizer: &graph.MeetingParticipantInfo{Role: graph.RolePresenter, Identity: &graph.IdentitySet{
				User: &graph.Identity{ID: m.OrganizerID, DisplayName: name, TenantID: m.TenantID, IdentityProvider: "AAD"}}},
			Attendees: make([]graph.MeetingParticipantInfo, 0, len(m.Attendees)),
		},
		LobbyBypassSettings: &graph.LobbyBypassSettings{Scope: graph.LobbyBypassScope(v.enum(m.LobbyBypass.Scope)),
			IsDialInBypassEnabled: &bypass},
		JoinMeetingIDSettings: &graph.JoinMeetingIDSettings{JoinMeetingID: m.JoinMeetingID, IsPasscodeRequired: &required},
		AllowedPresenters:     graph.OnlineMeetingPresenters(m.AllowedPresenters),
		AudioConferencing:     &graph.AudioConferencing{ConferenceID: m.ConferenceID},

		AllowMeetingChat:               graph.MeetingChatMode(m.Settings.AllowMeetingChat),
		ShareMeetingChatHistoryDefault: m.Settings.ShareMeetingChatHistoryDefault,
		AllowAttendeeToEnableCamera:    m.Settings.AllowAttendeeToEnableCamera,
		AllowAttendeeToEnableMic:       m.Settings.AllowAttendeeToEnableMic,
		AllowParticipantsToChangeName:  m.Settings.AllowParticipantsToChangeName,
		AllowTeamworkReactions:         m.Settings.AllowTeamworkReactions,
		AllowRecording:                 m.Settings.AllowRecording,
		AllowTranscription:             m.Settings.AllowTranscription,
		IsEntryExitAnnounced:           m.Settings.IsEntryExitAnnounced,
		RecordAutomatically:            m.Settings.RecordAutomatically,
	}
	if m.Passcode != "" {
		p := m.Passcode
		out.JoinMeetingIDSettings.Passcode = &p
	}
	for _, a := range m.Attendees {
		a.Role = graph.OnlineMeetingRole(v.enum(string(a.Role)))
		out.Participants.Attendees = append(out.Participants.Attendees, a)
	}
	toll, _ := s.dialIn(m)
	if toll != "" {
		ac := out.AudioConferencing
		ac.TollNumber, ac.TollNumbers = toll, []string{toll}
		ac.DialinURL = join + "#dial-in" // the join page's dial-in section
	}
	out.JoinInformation = &graph.ItemBody{ContentType: "html", Content: "data:text/html," + url.QueryEscape(s.joinInformation(m, join, toll))}
	return out
}

// joinInformation is the HTML snippet Graph hands out to paste into an
// invitation.
func (s *Store) joinInformation(m *Meeting, join, toll string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<div><a href="%s">Join the meeting now</a></div>`, html.EscapeString(join))
	fmt.Fprintf(&b, `<div>Meeting ID: %s`, spaced(m.JoinMeetingID))
	if m.Passcode != "" {
		fmt.Fprintf(&b, `<br>Passcode: %s`, html.EscapeString(m.Passcode))
	}
	b.WriteString(`</div>`)
	if toll != "" {
		fmt.Fprintf(&b, `<div>Dial in by phone: <a href="tel:%s,,%s%%23">%s</a>, conference ID: %s#</div>`,
			toll, m.ConferenceID, toll, spaced(m.ConferenceID))
	}
	return b.String()
}

// spaced groups digits in threes, as Teams shows meeting ids ("123 456 789").
func spaced(digits string) string {
	var b strings.Builder
	for i, c := range digits {
		if i > 0 && (len(digits)-i)%3 == 0 {
			b.WriteByte(' ')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// Filters of onlineMeetings collections
// (https://learn.microsoft.com/graph/api/onlinemeeting-get): Graph cannot
// list a user's meetings, only look one up.
const (
	filterJoinWebURL    = "JoinWebUrl"
	filterJoinMeetingID = "joinMeetingIdSettings/joinMeetingId"
	filterVTC           = "VideoTeleconferenceId"
)

var filterHelp = "filter onlineMeetings by " + filterJoinWebURL + " eq '…', " + filterJoinMeetingID + " eq '…' or " + filterVTC + " eq '…'"

// parseFilter reads "<property> eq '<value>'", the only form Graph takes
// on onlineMeetings. Property names compare case-insensitively; a quote
// inside the value is doubled, as OData writes it.
func parseFilter(f string) (property, value string, err error) {
	f = strings.TrimSpace(f)
	if f == "" {
		return "", "", errs.E(errs.BadRequest, "onlineMeetings cannot be listed: %s.", filterHelp)
	}
	prop, rest, _ := strings.Cut(f, " ")
	switch {
	case strings.EqualFold(prop, filterJoinWebURL):
		property = filterJoinWebURL
	case strings.EqualFold(prop, filterJoinMeetingID):
		property = filterJoinMeetingID
	case strings.EqualFold(prop, filterVTC):
		property = filterVTC
	default:
		return "", "", errs.E(errs.BadRequest, "The $filter property '%s' is not supported: %s.", prop, filterHelp)
	}
	op, rest, _ := strings.Cut(strings.TrimSpace(rest), " ")
	rest = strings.TrimSpace(rest)
	if !strings.EqualFold(op, "eq") || len(rest) < 2 || rest[0] != '\'' || rest[len(rest)-1] != '\'' {
		return "", "", errs.E(errs.BadRequest, "The $filter %q is not supported: %s.", f, filterHelp)
	}
	inner := rest[1 : len(rest)-1]
	if strings.Contains(strings.ReplaceAll(inner, "''", ""), "'") {
		return "", "", errs.E(errs.BadRequest, "The $filter %q is not supported: one comparison only, %s.", f, filterHelp)
	}
	return property, strings.ReplaceAll(inner, "''", "'"), nil
}

// Find answers GET /users/{userId}/onlineMeetings?$filter=… (userID set)
// and GET /communications/onlineMeetings?$filter=… (userID empty): the
// meeting the filter names, or none. Under a user, the meeting must be
// one the user organizes or is invited to; under /communications, one
// whose organizer the access policy lets the app act for.
func (s *Store) Find(ctx context.Context, c Caller, userID, filter string) ([]*Meeting, error) {
	if userID != "" {
		u, err := s.authorize(c, userID, false)
		if err != nil {
			return nil, err
		}
		userID = u.ID
	} else if !c.has(PermissionRead) && !c.has(PermissionReadWrite) {
		return nil, errs.E(errs.Forbidden,
			"Insufficient privileges to complete the operation. The application needs one of these application permissions: %s, %s.",
			PermissionRead, PermissionReadWrite)
	}
	property, value, err := parseFilter(filter)
	if err != nil {
		return nil, err
	}
	var m *Meeting
	switch property {
	case filterJoinWebURL:
		link, perr := ParseJoinWebURL(value)
		if perr != nil {
			return nil, errs.E(errs.BadRequest, "The JoinWebUrl %q cannot be read: %v.", value, perr)
		}
		m, err = s.ByThreadID(ctx, c.TenantID, link.ThreadID)
	case filterJoinMeetingID:
		m, err = s.ByJoinMeetingID(ctx, c.TenantID, value)
	case filterVTC:
		return nil, nil // no meeting has a video teleconferencing id here
	}
	if errs.KindOf(err) == errs.NotFound {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if userID != "" && !m.Invited(userID) {
		return nil, nil
	}
	if userID == "" {
		if err := s.allowed(c, m.OrganizerID); err != nil {
			return nil, err
		}
	}
	return []*Meeting{m}, nil
}
