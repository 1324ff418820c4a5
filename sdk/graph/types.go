package graph

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// OData type names Switchboard reads and writes.
const (
	TypeCall                        = "#microsoft.graph.call"
	TypeParticipant                 = "#microsoft.graph.participant"
	TypeParticipantInfo             = "#microsoft.graph.participantInfo"
	TypeInvitationParticipantInfo   = "#microsoft.graph.invitationParticipantInfo"
	TypeIdentitySet                 = "#microsoft.graph.identitySet"
	TypeCommsIdentitySet            = "#microsoft.graph.communicationsIdentitySet"
	TypeIdentity                    = "#microsoft.graph.identity"
	TypeServiceHostedMediaConfig    = "#microsoft.graph.serviceHostedMediaConfig"
	TypeAppHostedMediaConfig        = "#microsoft.graph.appHostedMediaConfig"
	TypeOrganizerMeetingInfo        = "#microsoft.graph.organizerMeetingInfo"
	TypeTokenMeetingInfo            = "#microsoft.graph.tokenMeetingInfo"
	TypeJoinMeetingIDMeetingInfo    = "#microsoft.graph.joinMeetingIdMeetingInfo"
	TypeChatInfo                    = "#microsoft.graph.chatInfo"
	TypeResultInfo                  = "#microsoft.graph.resultInfo"
	TypeToneInfo                    = "#microsoft.graph.toneInfo"
	TypeMediaPrompt                 = "#microsoft.graph.mediaPrompt"
	TypeMediaStream                 = "#microsoft.graph.mediaStream"
	TypeOutgoingCallOptions         = "#microsoft.graph.outgoingCallOptions"
	TypeIncomingCallOptions         = "#microsoft.graph.incomingCallOptions"
	TypeCommsNotifications          = "#microsoft.graph.commsNotifications"
	TypeCommsNotification           = "#microsoft.graph.commsNotification"
	TypeCommsOperation              = "#microsoft.graph.commsOperation"
	TypePlayPromptOperation         = "#microsoft.graph.playPromptOperation"
	TypeRecordOperation             = "#microsoft.graph.recordOperation"
	TypeCancelMediaProcessingOp     = "#microsoft.graph.cancelMediaProcessingOperation"
	TypeSubscribeToToneOperation    = "#microsoft.graph.subscribeToToneOperation"
	TypeSendDtmfTonesOperation      = "#microsoft.graph.sendDtmfTonesOperation"
	TypeMuteParticipantOperation    = "#microsoft.graph.muteParticipantOperation"
	TypeUnmuteParticipantOperation  = "#microsoft.graph.unmuteParticipantOperation"
	TypeInviteParticipantsOperation = "#microsoft.graph.inviteParticipantsOperation"
	TypeUpdateRecordingStatusOp     = "#microsoft.graph.updateRecordingStatusOperation"
	TypeStartHoldMusicOperation     = "#microsoft.graph.startHoldMusicOperation"
	TypeStopHoldMusicOperation      = "#microsoft.graph.stopHoldMusicOperation"
)

// Call is the Graph call resource (#microsoft.graph.call). Pointers and
// omitempty let the same type carry a full resource and the partial
// resources Graph sends in notifications.
type Call struct {
	ODataType    string `json:"@odata.type,omitempty"`
	ODataContext string `json:"@odata.context,omitempty"`
	ODataID      string `json:"@odata.id,omitempty"`

	ID                  string                      `json:"id,omitempty"`
	State               CallState                   `json:"state,omitempty"`
	Direction           CallDirection               `json:"direction,omitempty"`
	CallbackURI         string                      `json:"callbackUri,omitempty"`
	CallChainID         string                      `json:"callChainId,omitempty"`
	CallOptions         *CallOptions                `json:"callOptions,omitempty"`
	CallRoutes          []CallRoute                 `json:"callRoutes,omitempty"`
	ChatInfo            *ChatInfo                   `json:"chatInfo,omitempty"`
	IncomingContext     *IncomingContext            `json:"incomingContext,omitempty"`
	MediaConfig         *MediaConfig                `json:"mediaConfig,omitempty"`
	MediaState          *CallMediaState             `json:"mediaState,omitempty"`
	MeetingInfo         *MeetingInfo                `json:"meetingInfo,omitempty"`
	MyParticipantID     string                      `json:"myParticipantId,omitempty"`
	RequestedModalities []Modality                  `json:"requestedModalities,omitempty"`
	ResultInfo          *ResultInfo                 `json:"resultInfo,omitempty"`
	Source              *ParticipantInfo            `json:"source,omitempty"`
	Subject             string                      `json:"subject,omitempty"`
	Targets             []InvitationParticipantInfo `json:"targets,omitempty"`
	ToneInfo            *ToneInfo                   `json:"toneInfo,omitempty"`
	TenantID            string                      `json:"tenantId,omitempty"`
	AnsweredBy          *ParticipantInfo            `json:"answeredBy,omitempty"`
	TerminationReason   string                      `json:"terminationReason,omitempty"`
	// RingingTimeoutInSeconds is a beta property clients send on P2P calls (max 115).
	RingingTimeoutInSeconds *int `json:"ringingTimeoutInSeconds,omitempty"`
}

// CallOptions is outgoingCallOptions or incomingCallOptions.
type CallOptions struct {
	ODataType                           string `json:"@odata.type,omitempty"`
	HideBotAfterEscalation              *bool  `json:"hideBotAfterEscalation,omitempty"`
	IsContentSharingNotificationEnabled *bool  `json:"isContentSharingNotificationEnabled,omitempty"`
	IsDeltaRosterEnabled                *bool  `json:"isDeltaRosterEnabled,omitempty"`
	IsInteractiveRosterEnabled          *bool  `json:"isInteractiveRosterEnabled,omitempty"`
}

// CallRoute records how a call was retargeted.
type CallRoute struct {
	RoutingType string       `json:"routingType,omitempty"`
	Original    *IdentitySet `json:"original,omitempty"`
	Final       *IdentitySet `json:"final,omitempty"`
}

// ChatInfo locates a meeting's chat thread.
type ChatInfo struct {
	ODataType           string  `json:"@odata.type,omitempty"`
	ThreadID            string  `json:"threadId,omitempty"`
	MessageID           string  `json:"messageId,omitempty"`
	ReplyChainMessageID *string `json:"replyChainMessageId,omitempty"`
}

// IncomingContext describes on whose behalf an incoming call arrived.
type IncomingContext struct {
	SourceParticipantID   string       `json:"sourceParticipantId,omitempty"`
	ObservedParticipantID string       `json:"observedParticipantId,omitempty"`
	OnBehalfOf            *IdentitySet `json:"onBehalfOf,omitempty"`
	Transferor            *IdentitySet `json:"transferor,omitempty"`
}

// MediaConfig is serviceHostedMediaConfig or appHostedMediaConfig; ODataType
// tells which. Without an odata type, a config with a blob is app-hosted.
type MediaConfig struct {
	ODataType                   string      `json:"@odata.type,omitempty"`
	Blob                        string      `json:"blob,omitempty"`
	PreFetchMedia               []MediaInfo `json:"preFetchMedia,omitempty"`
	RemoveFromDefaultAudioGroup *bool       `json:"removeFromDefaultAudioGroup,omitempty"`
}

// AppHosted reports whether the bot hosts the media itself.
func (m *MediaConfig) AppHosted() bool {
	if m == nil {
		return false
	}
	if m.ODataType != "" {
		return strings.EqualFold(m.ODataType, TypeAppHostedMediaConfig)
	}
	return m.Blob != ""
}

// Normalize fills in the odata type an input left out.
func (m *MediaConfig) Normalize() {
	if m == nil {
		return
	}
	if m.AppHosted() {
		m.ODataType = TypeAppHostedMediaConfig
	} else {
		m.ODataType = TypeServiceHostedMediaConfig
	}
}

// CallMediaState is the call's media state.
type CallMediaState struct {
	Audio MediaStateValue `json:"audio,omitempty"`
}

// MediaInfo locates a media file: WAV, mono, 16-bit; resourceId is the cache key.
type MediaInfo struct {
	ODataType  string `json:"@odata.type,omitempty"`
	URI        string `json:"uri,omitempty"`
	ResourceID string `json:"resourceId,omitempty"`
}

// MediaPrompt is a prompt to play.
type MediaPrompt struct {
	ODataType string     `json:"@odata.type,omitempty"`
	MediaInfo *MediaInfo `json:"mediaInfo,omitempty"`
}

// MeetingInfo is organizerMeetingInfo, tokenMeetingInfo or joinMeetingIdMeetingInfo.
type MeetingInfo struct {
	ODataType                    string       `json:"@odata.type,omitempty"`
	Organizer                    *IdentitySet `json:"organizer,omitempty"`
	AllowConversationWithoutHost *bool        `json:"allowConversationWithoutHost,omitempty"`
	Token                        string       `json:"token,omitempty"`
	JoinMeetingID                string       `json:"joinMeetingId,omitempty"`
	Passcode                     *string      `json:"passcode,omitempty"`
}

// IdentitySet is Graph's communicationsIdentitySet: usually one key is set.
type IdentitySet struct {
	ODataType                      string    `json:"@odata.type,omitempty"`
	User                           *Identity `json:"user,omitempty"`
	Application                    *Identity `json:"application,omitempty"`
	ApplicationInstance            *Identity `json:"applicationInstance,omitempty"`
	Phone                          *Identity `json:"phone,omitempty"`
	Guest                          *Identity `json:"guest,omitempty"`
	Encrypted                      *Identity `json:"encrypted,omitempty"`
	OnPremises                     *Identity `json:"onPremises,omitempty"`
	AssertedIdentity               *Identity `json:"assertedIdentity,omitempty"`
	AzureCommunicationServicesUser *Identity `json:"azureCommunicationServicesUser,omitempty"`
	Device                         *Identity `json:"device,omitempty"`
	EndpointType                   string    `json:"endpointType,omitempty"`
}

// Identity is one identity (user, application, phone, ...).
type Identity struct {
	ODataType        string `json:"@odata.type,omitempty"`
	ID               string `json:"id,omitempty"`
	DisplayName      string `json:"displayName,omitempty"`
	TenantID         string `json:"tenantId,omitempty"`
	IdentityProvider string `json:"identityProvider,omitempty"`
	ApplicationType  string `json:"applicationType,omitempty"`
	Email            string `json:"email,omitempty"`
	Hidden           *bool  `json:"hidden,omitempty"`
}

// Primary returns the key and identity that an identity set names, in the
// order Graph resolves them.
func (s *IdentitySet) Primary() (string, *Identity) {
	if s == nil {
		return "", nil
	}
	for _, kv := range []struct {
		k string
		v *Identity
	}{{"user", s.User}, {"phone", s.Phone}, {"applicationInstance", s.ApplicationInstance},
		{"application", s.Application}, {"guest", s.Guest}, {"encrypted", s.Encrypted},
		{"onPremises", s.OnPremises}, {"azureCommunicationServicesUser", s.AzureCommunicationServicesUser}} {
		if kv.v != nil {
			return kv.k, kv.v
		}
	}
	return "", nil
}

// String names the primary identity as a log line would: its display name
// and id ("Alice (+15550100)"), the id alone without a name, "" when there
// is none.
func (s *IdentitySet) String() string {
	_, id := s.Primary()
	switch {
	case id == nil:
		return ""
	case id.DisplayName == "":
		return id.ID
	}
	return id.DisplayName + " (" + id.ID + ")"
}

// ParticipantInfo describes a participant (call source, roster entry).
type ParticipantInfo struct {
	ODataType     string       `json:"@odata.type,omitempty"`
	ID            string       `json:"id,omitempty"`
	Identity      *IdentitySet `json:"identity,omitempty"`
	EndpointType  string       `json:"endpointType,omitempty"`
	Region        string       `json:"region,omitempty"`
	CountryCode   string       `json:"countryCode,omitempty"`
	LanguageID    string       `json:"languageId,omitempty"`
	PlatformID    string       `json:"platformId,omitempty"`
	ParticipantID string       `json:"participantId,omitempty"`
}

// String names the participant's identity (see IdentitySet.String); "" for nil.
func (p *ParticipantInfo) String() string {
	if p == nil {
		return ""
	}
	return p.Identity.String()
}

// InvitationParticipantInfo is a call target or invitee.
type InvitationParticipantInfo struct {
	ODataType                          string       `json:"@odata.type,omitempty"`
	Identity                           *IdentitySet `json:"identity,omitempty"`
	EndpointType                       string       `json:"endpointType,omitempty"`
	ReplacesCallID                     string       `json:"replacesCallId,omitempty"`
	ParticipantID                      string       `json:"participantId,omitempty"`
	Hidden                             *bool        `json:"hidden,omitempty"`
	RemoveFromDefaultAudioRoutingGroup *bool        `json:"removeFromDefaultAudioRoutingGroup,omitempty"`
	Region                             string       `json:"region,omitempty"`
	LanguageID                         string       `json:"languageId,omitempty"`
}

// ToneInfo is a DTMF tone received on a call.
type ToneInfo struct {
	ODataType  string `json:"@odata.type,omitempty"`
	SequenceID int64  `json:"sequenceId"`
	Tone       Tone   `json:"tone"`
}

// ResultInfo is Graph's result code, subcode and message.
type ResultInfo struct {
	ODataType string `json:"@odata.type,omitempty"`
	Code      int    `json:"code"`
	Subcode   int    `json:"subcode"`
	Message   string `json:"message,omitempty"`
}

// String is the result as code/subcode and message, e.g.
// "486/9005 The callee is busy.", and "" for a nil ResultInfo.
func (r *ResultInfo) String() string {
	if r == nil {
		return ""
	}
	if r.Message == "" {
		return fmt.Sprintf("%d/%d", r.Code, r.Subcode)
	}
	return fmt.Sprintf("%d/%d %s", r.Code, r.Subcode, r.Message)
}

// UnmarshalJSON accepts codes as numbers or strings and the key subCode
// as well as subcode: both appear in Graph's own examples.
func (r *ResultInfo) UnmarshalJSON(b []byte) error {
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(b, &raw); err != nil {
		return err
	}
	*r = ResultInfo{}
	for k, v := range raw {
		var err error
		switch strings.ToLower(k) {
		case "@odata.type":
			err = json.Unmarshal(v, &r.ODataType)
		case "code":
			r.Code, err = lenientInt(v)
		case "subcode":
			r.Subcode, err = lenientInt(v)
		case "message":
			err = json.Unmarshal(v, &r.Message)
		}
		if err != nil {
			return fmt.Errorf("resultInfo.%s: %w", k, err)
		}
	}
	return nil
}

func lenientInt(v json.RawMessage) (int, error) {
	v = bytes.TrimSpace(v)
	if bytes.Equal(v, []byte("null")) {
		return 0, nil
	}
	if len(v) > 0 && v[0] == '"' {
		var s string
		if err := json.Unmarshal(v, &s); err != nil {
			return 0, err
		}
		return strconv.Atoi(s)
	}
	var n int
	err := json.Unmarshal(v, &n)
	return n, err
}

// Participant is a roster entry (#microsoft.graph.participant).
type Participant struct {
	ODataType            string           `json:"@odata.type,omitempty"`
	ODataContext         string           `json:"@odata.context,omitempty"`
	ID                   string           `json:"id,omitempty"`
	Info                 *ParticipantInfo `json:"info,omitempty"`
	IsInLobby            bool             `json:"isInLobby"`
	IsMuted              bool             `json:"isMuted"`
	MediaStreams         []MediaStream    `json:"mediaStreams,omitempty"`
	Metadata             string           `json:"metadata,omitempty"`
	RecordingInfo        *RecordingInfo   `json:"recordingInfo,omitempty"`
	RemovedState         *RemovedState    `json:"removedState,omitempty"`
	RosterSequenceNumber int64            `json:"rosterSequenceNumber,omitempty"`

	// DominantSpeaker marks the participant heard most in a group call or
	// meeting right now: Switchboard's instance annotation (Graph has no
	// such property; OData clients keep unknown annotations aside).
	DominantSpeaker bool `json:"@switchboard.dominantSpeaker,omitempty"`
}

// MediaStream is one of a participant's streams.
type MediaStream struct {
	ODataType   string         `json:"@odata.type,omitempty"`
	MediaType   Modality       `json:"mediaType,omitempty"`
	Label       string         `json:"label,omitempty"`
	SourceID    string         `json:"sourceId,omitempty"`
	Direction   MediaDirection `json:"direction,omitempty"`
	ServerMuted bool           `json:"serverMuted"`
}

// RecordingInfo is a participant's recording status.
type RecordingInfo struct {
	Initiator       *IdentitySet `json:"initiator,omitempty"`
	RecordingStatus string       `json:"recordingStatus,omitempty"`
}

// RemovedState says why a participant left the roster.
type RemovedState struct {
	Reason string `json:"reason,omitempty"`
}

// Operation is a commsOperation or any of its subtypes; ODataType tells
// which, and only the fields of that subtype are set.
type Operation struct {
	ODataType     string          `json:"@odata.type,omitempty"`
	ODataContext  string          `json:"@odata.context,omitempty"`
	ID            string          `json:"id,omitempty"`
	ClientContext string          `json:"clientContext,omitempty"`
	Status        OperationStatus `json:"status,omitempty"`
	ResultInfo    *ResultInfo     `json:"resultInfo"`

	// recordOperation
	RecordingLocation    *string `json:"recordingLocation,omitempty"`
	RecordingAccessToken *string `json:"recordingAccessToken,omitempty"`
	// playPromptOperation, recordOperation, sendDtmfTonesOperation
	CompletionReason string `json:"completionReason,omitempty"`
	// cancelMediaProcessingOperation
	All *bool `json:"all,omitempty"`
	// inviteParticipantsOperation
	Participants []InvitationParticipantInfo `json:"participants,omitempty"`
}

// CommsNotifications is the envelope POSTed to a bot's callback.
type CommsNotifications struct {
	ODataType string              `json:"@odata.type,omitempty"`
	Value     []CommsNotification `json:"value"`
}

// CommsNotification is one notification. ResourceData is a single entity
// for calls and operations and an array for participants.
type CommsNotification struct {
	ODataType    string          `json:"@odata.type,omitempty"`
	ChangeType   ChangeType      `json:"changeType"`
	Resource     string          `json:"resource,omitempty"`
	ResourceURL  string          `json:"resourceUrl"`
	CallbackURI  string          `json:"callbackUri,omitempty"`
	ResourceData json.RawMessage `json:"resourceData,omitempty"`
}

// ErrorResponse is the body of every Graph error response.
type ErrorResponse struct {
	Error ODataError `json:"error"`
}

// ODataError is Graph's error object.
type ODataError struct {
	Code       string      `json:"code"`
	Message    string      `json:"message"`
	InnerError *InnerError `json:"innerError,omitempty"`
}

// InnerError carries the request's ids and time.
type InnerError struct {
	Code            string `json:"code,omitempty"`
	Status          string `json:"status,omitempty"`
	Message         string `json:"message,omitempty"`
	RequestID       string `json:"request-id,omitempty"`
	ClientRequestID string `json:"client-request-id,omitempty"`
	Date            string `json:"date,omitempty"`
}

// String describes the error for logs.
func (e *ErrorResponse) String() string {
	return fmt.Sprintf("graph: %s: %s", e.Error.Code, e.Error.Message)
}
