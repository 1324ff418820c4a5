package graph

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// OData type names of the onlineMeeting resource
// (https://learn.microsoft.com/graph/api/resources/onlinemeeting).
const (
	TypeOnlineMeeting          = "#microsoft.graph.onlineMeeting"
	TypeMeetingParticipants    = "#microsoft.graph.meetingParticipants"
	TypeMeetingParticipantInfo = "#microsoft.graph.meetingParticipantInfo"
)

// OnlineMeeting is Graph's onlineMeeting resource (#microsoft.graph.onlineMeeting):
// the body of POST /users/{userId}/onlineMeetings, of createOrGet (which
// needs ExternalID) and of PATCH, and what every onlineMeetings method
// answers. Read-only properties are ignored on create; PATCH names the
// properties it may change
// (https://learn.microsoft.com/graph/api/onlinemeeting-update).
type OnlineMeeting struct {
	ODataType    string `json:"@odata.type,omitempty"`
	ODataContext string `json:"@odata.context,omitempty"`

	ID                    string                 `json:"id,omitempty"`
	CreationDateTime      *DateTime              `json:"creationDateTime,omitempty"`
	StartDateTime         *DateTime              `json:"startDateTime,omitempty"`
	EndDateTime           *DateTime              `json:"endDateTime,omitempty"`
	Subject               string                 `json:"subject,omitempty"`
	ExternalID            string                 `json:"externalId,omitempty"`
	JoinWebURL            string                 `json:"joinWebUrl,omitempty"`
	JoinInformation       *ItemBody              `json:"joinInformation,omitempty"`
	VideoTeleconferenceID string                 `json:"videoTeleconferenceId,omitempty"`
	ChatInfo              *ChatInfo              `json:"chatInfo,omitempty"`
	AudioConferencing     *AudioConferencing     `json:"audioConferencing,omitempty"`
	Participants          *MeetingParticipants   `json:"participants,omitempty"`
	LobbyBypassSettings   *LobbyBypassSettings   `json:"lobbyBypassSettings,omitempty"`
	JoinMeetingIDSettings *JoinMeetingIDSettings `json:"joinMeetingIdSettings,omitempty"`
	IsBroadcast           *bool                  `json:"isBroadcast,omitempty"`

	AllowedPresenters              OnlineMeetingPresenters `json:"allowedPresenters,omitempty"`
	AllowMeetingChat               MeetingChatMode         `json:"allowMeetingChat,omitempty"`
	AllowAttendeeToEnableCamera    *bool                   `json:"allowAttendeeToEnableCamera,omitempty"`
	AllowAttendeeToEnableMic       *bool                   `json:"allowAttendeeToEnableMic,omitempty"`
	AllowParticipantsToChangeName  *bool                   `json:"allowParticipantsToChangeName,omitempty"`
	AllowTeamworkReactions         *bool                   `json:"allowTeamworkReactions,omitempty"`
	AllowRecording                 *bool                   `json:"allowRecording,omitempty"`
	AllowTranscription             *bool                   `json:"allowTranscription,omitempty"`
	IsEntryExitAnnounced           *bool                   `json:"isEntryExitAnnounced,omitempty"`
	RecordAutomatically            *bool                   `json:"recordAutomatically,omitempty"`
	ShareMeetingChatHistoryDefault string                  `json:"shareMeetingChatHistoryDefault,omitempty"`
}

// OnlineMeetingCollection is the answer to the $filter lookups
// (GET …/onlineMeetings?$filter=JoinWebUrl eq '…').
type OnlineMeetingCollection struct {
	ODataContext string          `json:"@odata.context,omitempty"`
	Value        []OnlineMeeting `json:"value"`
}

// ItemBody is a body of text or HTML (joinInformation).
type ItemBody struct {
	ContentType string `json:"contentType,omitempty"` // text or html
	Content     string `json:"content,omitempty"`
}

// AudioConferencing is how to dial in to a meeting. TollNumber and
// TollFreeNumber are deprecated in Graph in favour of the collections, and
// still returned.
type AudioConferencing struct {
	ConferenceID    string   `json:"conferenceId,omitempty"`
	TollNumber      string   `json:"tollNumber,omitempty"`
	TollNumbers     []string `json:"tollNumbers,omitempty"`
	TollFreeNumber  string   `json:"tollFreeNumber,omitempty"`
	TollFreeNumbers []string `json:"tollFreeNumbers,omitempty"`
	DialinURL       string   `json:"dialinUrl,omitempty"`
}

// JoinMeetingIDSettings are the meeting id and passcode a Teams client (or
// a bot's joinMeetingIdMeetingInfo) joins with. Only IsPasscodeRequired is
// taken on create; none of it changes afterwards. Passcode is written as
// null when the meeting has none, as Graph does.
type JoinMeetingIDSettings struct {
	JoinMeetingID      string  `json:"joinMeetingId,omitempty"`
	Passcode           *string `json:"passcode"`
	IsPasscodeRequired *bool   `json:"isPasscodeRequired,omitempty"`
}

// LobbyBypassSettings say who goes straight in and who waits in the lobby.
type LobbyBypassSettings struct {
	Scope                 LobbyBypassScope `json:"scope,omitempty"`
	IsDialInBypassEnabled *bool            `json:"isDialInBypassEnabled,omitempty"`
}

// MeetingParticipants are a meeting's organizer and invitees.
type MeetingParticipants struct {
	Organizer *MeetingParticipantInfo  `json:"organizer,omitempty"`
	Attendees []MeetingParticipantInfo `json:"attendees"`
}

// MeetingParticipantInfo is one organizer or invitee.
type MeetingParticipantInfo struct {
	Identity *IdentitySet      `json:"identity,omitempty"`
	UPN      string            `json:"upn,omitempty"`
	Role     OnlineMeetingRole `json:"role,omitempty"`
}

// LobbyBypassScope is lobbyBypassScope. Invited and
// OrganizationExcludingGuests are evolvable members: Graph writes them as
// unknownFutureValue unless the request says
// Prefer: include-unknown-enum-members.
type LobbyBypassScope string

// Lobby bypass scopes.
const (
	LobbyOrganizer                   LobbyBypassScope = "organizer"
	LobbyOrganization                LobbyBypassScope = "organization"
	LobbyOrganizationAndFederated    LobbyBypassScope = "organizationAndFederated"
	LobbyEveryone                    LobbyBypassScope = "everyone"
	LobbyUnknownFutureValue          LobbyBypassScope = "unknownFutureValue"
	LobbyInvited                     LobbyBypassScope = "invited"
	LobbyOrganizationExcludingGuests LobbyBypassScope = "organizationExcludingGuests"
)

// LobbyBypassScopes are the members of lobbyBypassScope, in schema order.
var LobbyBypassScopes = []string{"organizer", "organization", "organizationAndFederated", "everyone",
	"unknownFutureValue", "invited", "organizationExcludingGuests"}

// UnmarshalJSON accepts any casing of a known scope.
func (s *LobbyBypassScope) UnmarshalJSON(b []byte) error {
	v, err := unmarshalEnum(b, LobbyBypassScopes)
	*s = LobbyBypassScope(v)
	return err
}

// OnlineMeetingPresenters is onlineMeetingPresenters (allowedPresenters).
type OnlineMeetingPresenters string

// Who may present.
const (
	PresentersEveryone        OnlineMeetingPresenters = "everyone"
	PresentersOrganization    OnlineMeetingPresenters = "organization"
	PresentersRoleIsPresenter OnlineMeetingPresenters = "roleIsPresenter"
	PresentersOrganizer       OnlineMeetingPresenters = "organizer"
)

// OnlineMeetingPresentersValues are the members of onlineMeetingPresenters.
var OnlineMeetingPresentersValues = []string{"everyone", "organization", "roleIsPresenter", "organizer", "unknownFutureValue"}

// UnmarshalJSON accepts any casing of a known value.
func (p *OnlineMeetingPresenters) UnmarshalJSON(b []byte) error {
	v, err := unmarshalEnum(b, OnlineMeetingPresentersValues)
	*p = OnlineMeetingPresenters(v)
	return err
}

// OnlineMeetingRole is a participant's onlineMeetingRole. Producer and
// coorganizer are evolvable members (see LobbyBypassScope).
type OnlineMeetingRole string

// Meeting roles.
const (
	RoleAttendee    OnlineMeetingRole = "attendee"
	RolePresenter   OnlineMeetingRole = "presenter"
	RoleProducer    OnlineMeetingRole = "producer"
	RoleCoorganizer OnlineMeetingRole = "coorganizer"
)

// OnlineMeetingRoles are the members of onlineMeetingRole.
var OnlineMeetingRoles = []string{"attendee", "presenter", "unknownFutureValue", "producer", "coorganizer"}

// UnmarshalJSON accepts any casing of a known role.
func (r *OnlineMeetingRole) UnmarshalJSON(b []byte) error {
	v, err := unmarshalEnum(b, OnlineMeetingRoles)
	*r = OnlineMeetingRole(v)
	return err
}

// MeetingChatMode is meetingChatMode (allowMeetingChat).
type MeetingChatMode string

// MeetingChatModes are the members of meetingChatMode.
var MeetingChatModes = []string{"enabled", "disabled", "limited", "unknownFutureValue"}

// UnmarshalJSON accepts any casing of a known mode.
func (m *MeetingChatMode) UnmarshalJSON(b []byte) error {
	v, err := unmarshalEnum(b, MeetingChatModes)
	*m = MeetingChatMode(v)
	return err
}

// DateTime is an Edm.DateTimeOffset. It is written in UTC with seven
// fractional digits, as Graph writes it ("2020-09-29T22:35:33.1594516Z");
// it reads any RFC 3339 time, and a time without an offset as UTC (some
// clients send "2019-07-12T14:30:34.2444915").
type DateTime struct{ time.Time }

// NewDateTime returns t as a *DateTime.
func NewDateTime(t time.Time) *DateTime { return &DateTime{t} }

const dateTimeOut = "2006-01-02T15:04:05.0000000Z07:00"

// MarshalJSON writes the time in UTC.
func (d DateTime) MarshalJSON() ([]byte, error) {
	return json.Marshal(d.UTC().Format(dateTimeOut))
}

// UnmarshalJSON reads an RFC 3339 time, with or without an offset.
func (d *DateTime) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05.999999999", "2006-01-02T15:04"} {
		if t, err := time.Parse(layout, s); err == nil {
			d.Time = t
			return nil
		}
	}
	return fmt.Errorf("%q is not an ISO 8601 date and time (2006-01-02T15:04:05Z)", s)
}
