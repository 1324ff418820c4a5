package meetings

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// meetNowLength is the length of a meeting created without an end
// (https://learn.microsoft.com/graph/api/onlinemeeting-createorget).
const meetNowLength = time.Hour

// newMeeting builds a meeting from a create or createOrGet body; the ids
// the store must make unique (joinMeetingId, conferenceId) are left to
// insert. Read-only properties of the body are ignored.
func (s *Store) newMeeting(c Caller, u *config.User, req *graph.OnlineMeeting) (*Meeting, error) {
	now := s.now().UTC()
	threadID, _ := newThread()
	m := &Meeting{
		ID: meetingID(u.ID, threadID), TenantID: s.canonicalTenant(c.TenantID), OrganizerID: u.ID, OrganizerName: u.DisplayName,
		ThreadID: threadID, Subject: req.Subject, ExternalID: req.ExternalID, Created: now,
		LobbyBypass:       LobbyBypass{Scope: string(graph.LobbyOrganization)},
		AllowedPresenters: string(graph.PresentersEveryone),
		CreatedBy:         c.AppID,
	}
	var start, end *time.Time
	if req.StartDateTime != nil {
		start = &req.StartDateTime.Time
	}
	if req.EndDateTime != nil {
		end = &req.EndDateTime.Time
	}
	switch {
	case start == nil && end != nil:
		return nil, errs.E(errs.BadRequest, "endDateTime was given without startDateTime.")
	case start == nil:
		m.Start, m.End = now, now.Add(meetNowLength) // Meet Now
	case end == nil:
		m.Start, m.End = start.UTC(), start.UTC().Add(meetNowLength)
	default:
		m.Start, m.End = start.UTC(), end.UTC()
	}
	if m.End.Before(m.Start) {
		return nil, errs.E(errs.BadRequest, "endDateTime (%s) is earlier than startDateTime (%s).",
			m.End.Format(time.RFC3339), m.Start.Format(time.RFC3339))
	}
	if l := req.LobbyBypassSettings; l != nil {
		if l.Scope != "" {
			v, err := enum("lobbyBypassSettings.scope", string(l.Scope), graph.LobbyBypassScopes)
			if err != nil {
				return nil, err
			}
			m.LobbyBypass.Scope = v
		}
		if l.IsDialInBypassEnabled != nil {
			m.LobbyBypass.IsDialInBypassEnabled = *l.IsDialInBypassEnabled
		}
	}
	if req.AllowedPresenters != "" {
		v, err := enum("allowedPresenters", string(req.AllowedPresenters), graph.OnlineMeetingPresentersValues)
		if err != nil {
			return nil, err
		}
		m.AllowedPresenters = v
	}
	if p := req.Participants; p != nil {
		if err := checkOrganizer(p.Organizer, u.ID); err != nil {
			return nil, err
		}
		a, err := attendees(p.Attendees)
		if err != nil {
			return nil, err
		}
		m.Attendees = a
	}
	if j := req.JoinMeetingIDSettings; j != nil && j.IsPasscodeRequired != nil && *j.IsPasscodeRequired {
		m.PasscodeRequired, m.Passcode = true, newPasscode()
	}
	if req.AllowMeetingChat != "" {
		v, err := enum("allowMeetingChat", string(req.AllowMeetingChat), graph.MeetingChatModes)
		if err != nil {
			return nil, err
		}
		m.Settings.AllowMeetingChat = v
	}
	if req.ShareMeetingChatHistoryDefault != "" {
		v, err := enum("shareMeetingChatHistoryDefault", req.ShareMeetingChatHistoryDefault, shareChatHistory)
		if err != nil {
			return nil, err
		}
		m.Settings.ShareMeetingChatHistoryDefault = v
	}
	st := &m.Settings
	st.AllowAttendeeToEnableCamera = req.AllowAttendeeToEnableCamera
	st.AllowAttendeeToEnableMic = req.AllowAttendeeToEnableMic
	st.AllowParticipantsToChangeName = req.AllowParticipantsToChangeName
	st.AllowTeamworkReactions = req.AllowTeamworkReactions
	st.AllowRecording = req.AllowRecording
	st.AllowTranscription = req.AllowTranscription
	st.IsEntryExitAnnounced = req.IsEntryExitAnnounced
	st.RecordAutomatically = req.RecordAutomatically
	return m, nil
}

func (s *Store) canonicalTenant(id string) string {
	if t, ok := s.dir.Tenant(id); ok {
		return t.ID
	}
	return id
}

var shareChatHistory = []string{"all", "none", "unknownFutureValue"}

// enum returns v spelled as Graph spells it, or a 400 naming the property.
// unknownFutureValue is a placeholder Graph writes, not a value to set.
func enum(property, v string, known []string) (string, error) {
	for _, k := range known {
		if strings.EqualFold(k, v) && k != "unknownFutureValue" {
			return k, nil
		}
	}
	var allowed []string
	for _, k := range known {
		if k != "unknownFutureValue" {
			allowed = append(allowed, k)
		}
	}
	return "", errs.E(errs.BadRequest, "Invalid value for property '%s': %q is not one of %s.", property, v, strings.Join(allowed, ", "))
}

// checkOrganizer accepts a participants.organizer that names no one or the
// organizer: the organizer is the user of the request's path and cannot change.
func checkOrganizer(p *graph.MeetingParticipantInfo, userID string) error {
	if p == nil || p.Identity == nil || p.Identity.User == nil || p.Identity.User.ID == "" ||
		strings.EqualFold(p.Identity.User.ID, userID) {
		return nil
	}
	return errs.E(errs.BadRequest, "participants.organizer names %s, but the organizer is the user of the request (%s) and cannot be changed.",
		p.Identity.User.ID, userID)
}

// attendees validates participants.attendees.
func attendees(in []graph.MeetingParticipantInfo) ([]graph.MeetingParticipantInfo, error) {
	if len(in) > 1000 {
		return nil, errs.E(errs.BadRequest, "participants.attendees has %d entries; at most 1000 are accepted.", len(in))
	}
	out := make([]graph.MeetingParticipantInfo, 0, len(in))
	for i, a := range in {
		if a.Role != "" {
			v, err := enum("participants.attendees["+strconv.Itoa(i)+"].role", string(a.Role), graph.OnlineMeetingRoles)
			if err != nil {
				return nil, err
			}
			a.Role = graph.OnlineMeetingRole(v)
		}
		out = append(out, a)
	}
	return out, nil
}

// readOnly are the onlineMeeting properties a PATCH may not send
// (https://learn.microsoft.com/graph/api/onlinemeeting-update lists the
// others), by lower-case name.
var readOnly = map[string]string{
	"id": "id", "creationdatetime": "creationDateTime", "joinweburl": "joinWebUrl", "joininformation": "joinInformation",
	"videoteleconferenceid": "videoTeleconferenceId", "chatinfo": "chatInfo", "audioconferencing": "audioConferencing",
	"joinmeetingidsettings": "joinMeetingIdSettings", "externalid": "externalId", "isbroadcast": "isBroadcast",
	"sharemeetingchathistorydefault": "shareMeetingChatHistoryDefault", "broadcastsettings": "broadcastSettings",
	"attendeereport": "attendeeReport",
}

// applyPatch changes m by a PATCH body. Properties are matched
// case-insensitively; @odata annotations and properties Switchboard does
// not know are ignored, as on every other request; read-only ones are a 400.
func applyPatch(m *Meeting, body map[string]json.RawMessage) error {
	prop := map[string]json.RawMessage{}
	for k, v := range body {
		if strings.HasPrefix(k, "@") {
			continue
		}
		lk := strings.ToLower(k)
		if name, ok := readOnly[lk]; ok {
			return errs.E(errs.BadRequest, "Property '%s' is read-only and cannot be changed by PATCH.", name)
		}
		prop[lk] = v
	}
	null := func(v json.RawMessage) bool { return bytes.Equal(bytes.TrimSpace(v), []byte("null")) }
	decode := func(name string, v json.RawMessage, into any) error {
		if err := json.Unmarshal(v, into); err != nil {
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) {
				field := name
				if te.Field != "" {
					field += "." + te.Field
				}
				return errs.E(errs.BadRequest, "Invalid value for property '%s': JSON %s is not the type it takes.", field, te.Value)
			}
			return errs.E(errs.BadRequest, "Invalid value for property '%s': %v.", name, err)
		}
		return nil
	}

	// startDateTime and endDateTime move together (the PATCH reference).
	sv, hasStart := prop["startdatetime"]
	ev, hasEnd := prop["enddatetime"]
	if hasStart != hasEnd {
		return errs.E(errs.BadRequest, "startDateTime and endDateTime are changed together: send both.")
	}
	if hasStart {
		var start, end graph.DateTime
		if null(sv) || null(ev) {
			return errs.E(errs.BadRequest, "startDateTime and endDateTime cannot be null.")
		}
		if err := decode("startDateTime", sv, &start); err != nil {
			return err
		}
		if err := decode("endDateTime", ev, &end); err != nil {
			return err
		}
		if end.Before(start.Time) {
			return errs.E(errs.BadRequest, "endDateTime (%s) is earlier than startDateTime (%s).",
				end.UTC().Format(time.RFC3339), start.UTC().Format(time.RFC3339))
		}
		m.Start, m.End = start.UTC(), end.UTC()
	}
	if v, ok := prop["subject"]; ok {
		m.Subject = ""
		if !null(v) {
			if err := decode("subject", v, &m.Subject); err != nil {
				return err
			}
		}
	}
	if v, ok := prop["lobbybypasssettings"]; ok && !null(v) {
		var l graph.LobbyBypassSettings
		if err := decode("lobbyBypassSettings", v, &l); err != nil {
			return err
		}
		if l.Scope != "" {
			s, err := enum("lobbyBypassSettings.scope", string(l.Scope), graph.LobbyBypassScopes)
			if err != nil {
				return err
			}
			m.LobbyBypass.Scope = s
		}
		if l.IsDialInBypassEnabled != nil {
			m.LobbyBypass.IsDialInBypassEnabled = *l.IsDialInBypassEnabled
		}
	}
	if v, ok := prop["allowedpresenters"]; ok && !null(v) {
		var p string
		if err := decode("allowedPresenters", v, &p); err != nil {
			return err
		}
		s, err := enum("allowedPresenters", p, graph.OnlineMeetingPresentersValues)
		if err != nil {
			return err
		}
		m.AllowedPresenters = s
	}
	if v, ok := prop["participants"]; ok && !null(v) {
		var raw map[string]json.RawMessage
		if err := decode("participants", v, &raw); err != nil {
			return err
		}
		var p graph.MeetingParticipants
		if err := decode("participants", v, &p); err != nil {
			return err
		}
		if err := checkOrganizer(p.Organizer, m.OrganizerID); err != nil {
			return err
		}
		if _, ok := raw["attendees"]; ok { // the whole list replaces the old one
			a, err := attendees(p.Attendees)
			if err != nil {
				return err
			}
			m.Attendees = a
		}
	}
	if v, ok := prop["allowmeetingchat"]; ok {
		m.Settings.AllowMeetingChat = ""
		if !null(v) {
			var s string
			if err := decode("allowMeetingChat", v, &s); err != nil {
				return err
			}
			mode, err := enum("allowMeetingChat", s, graph.MeetingChatModes)
			if err != nil {
				return err
			}
			m.Settings.AllowMeetingChat = mode
		}
	}
	st := &m.Settings
	for name, field := range map[string]**bool{
		"allowAttendeeToEnableCamera": &st.AllowAttendeeToEnableCamera, "allowAttendeeToEnableMic": &st.AllowAttendeeToEnableMic,
		"allowParticipantsToChangeName": &st.AllowParticipantsToChangeName, "allowTeamworkReactions": &st.AllowTeamworkReactions,
		"allowRecording": &st.AllowRecording, "allowTranscription": &st.AllowTranscription,
		"isEntryExitAnnounced": &st.IsEntryExitAnnounced, "recordAutomatically": &st.RecordAutomatically,
	} {
		v, ok := prop[strings.ToLower(name)]
		if !ok {
			continue
		}
		*field = nil
		if !null(v) {
			var b bool
			if err := decode(name, v, &b); err != nil {
				return err
			}
			*field = &b
		}
	}
	return nil
}
