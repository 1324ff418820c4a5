package graph

// AnswerRequest is the body of POST /communications/calls/{id}/answer.
type AnswerRequest struct {
	CallbackURI         string       `json:"callbackUri,omitempty"`
	AcceptedModalities  []Modality   `json:"acceptedModalities,omitempty"`
	MediaConfig         *MediaConfig `json:"mediaConfig,omitempty"`
	CallOptions         *CallOptions `json:"callOptions,omitempty"`
	ParticipantCapacity *int         `json:"participantCapacity,omitempty"`
}

// RejectRequest is the body of POST /communications/calls/{id}/reject.
type RejectRequest struct {
	Reason      RejectReason `json:"reason,omitempty"`
	CallbackURI string       `json:"callbackUri,omitempty"`
}

// RedirectRequest is the body of POST /communications/calls/{id}/redirect.
type RedirectRequest struct {
	Targets     []InvitationParticipantInfo `json:"targets,omitempty"`
	Timeout     *int                        `json:"timeout,omitempty"`
	CallbackURI string                      `json:"callbackUri,omitempty"`
	MaskCallee  *bool                       `json:"maskCallee,omitempty"`
	MaskCaller  *bool                       `json:"maskCaller,omitempty"`
}

// TransferRequest is the body of POST /communications/calls/{id}/transfer.
type TransferRequest struct {
	TransferTarget *InvitationParticipantInfo `json:"transferTarget,omitempty"`
	Transferee     *ParticipantInfo           `json:"transferee,omitempty"`
	ClientContext  string                     `json:"clientContext,omitempty"`
}

// ClientContextRequest is the body of mute, unmute, subscribeToTone,
// cancelMediaProcessing and the hold-music stop action.
type ClientContextRequest struct {
	ClientContext string `json:"clientContext,omitempty"`
}

// PlayPromptRequest is the body of POST .../playPrompt.
type PlayPromptRequest struct {
	Prompts       []MediaPrompt `json:"prompts,omitempty"`
	ClientContext string        `json:"clientContext,omitempty"`
	Loop          *bool         `json:"loop,omitempty"`
}

// RecordResponseRequest is the body of POST .../recordResponse.
type RecordResponseRequest struct {
	Prompts                        []MediaPrompt `json:"prompts,omitempty"`
	BargeInAllowed                 *bool         `json:"bargeInAllowed,omitempty"`
	InitialSilenceTimeoutInSeconds *int          `json:"initialSilenceTimeoutInSeconds,omitempty"`
	MaxSilenceTimeoutInSeconds     *int          `json:"maxSilenceTimeoutInSeconds,omitempty"`
	MaxRecordDurationInSeconds     *int          `json:"maxRecordDurationInSeconds,omitempty"`
	PlayBeep                       *bool         `json:"playBeep,omitempty"`
	StopTones                      []string      `json:"stopTones,omitempty"`
	ClientContext                  string        `json:"clientContext,omitempty"`
}

// SendDtmfTonesRequest is the body of POST .../sendDtmfTones.
type SendDtmfTonesRequest struct {
	Tones               []Tone `json:"tones,omitempty"`
	DelayBetweenTonesMs *int   `json:"delayBetweenTonesMs,omitempty"`
	ClientContext       string `json:"clientContext,omitempty"`
}

// InviteParticipantsRequest is the body of POST .../participants/invite.
type InviteParticipantsRequest struct {
	Participants  []InvitationParticipantInfo `json:"participants,omitempty"`
	ClientContext string                      `json:"clientContext,omitempty"`
}

// StartHoldMusicRequest is the body of POST .../participants/{id}/startHoldMusic.
type StartHoldMusicRequest struct {
	CustomPrompt  *MediaPrompt `json:"customPrompt,omitempty"`
	ClientContext string       `json:"clientContext,omitempty"`
}

// TokenResponse is the OAuth2 client-credentials token response.
type TokenResponse struct {
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
	ExtExpiresIn int    `json:"ext_expires_in,omitempty"`
	AccessToken  string `json:"access_token"`
}

// TokenError is the Microsoft identity platform's error body.
type TokenError struct {
	Error            string `json:"error"`
	ErrorDescription string `json:"error_description"`
	ErrorCodes       []int  `json:"error_codes,omitempty"`
	Timestamp        string `json:"timestamp,omitempty"`
	TraceID          string `json:"trace_id,omitempty"`
	CorrelationID    string `json:"correlation_id,omitempty"`
}
