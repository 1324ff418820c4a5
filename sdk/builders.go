package sdk

import "github.com/switchboard-voice/switchboard/sdk/graph"

// NewCall returns a create-call body for a two-party (or, with several
// targets, group) call with audio and service-hosted media, as
// the first example of
// https://learn.microsoft.com/graph/api/application-post-calls shows it.
// callbackUri is left empty: Handler.CreateCall fills in
// HandlerOptions.CallbackURL.
func NewCall(targets ...graph.InvitationParticipantInfo) *graph.Call {
	return &graph.Call{
		ODataType:           graph.TypeCall,
		Targets:             targets,
		RequestedModalities: []graph.Modality{graph.ModalityAudio},
		MediaConfig:         &graph.MediaConfig{ODataType: graph.TypeServiceHostedMediaConfig},
	}
}

// UserTarget is a call target naming a directory user by object id.
func UserTarget(userID, displayName string) graph.InvitationParticipantInfo {
	return graph.InvitationParticipantInfo{
		ODataType: graph.TypeInvitationParticipantInfo,
		Identity: &graph.IdentitySet{ODataType: graph.TypeIdentitySet,
			User: &graph.Identity{ODataType: graph.TypeIdentity, ID: userID, DisplayName: displayName}},
	}
}

// PhoneTarget is a call target naming an E.164 phone number. Graph needs
// the call's source to be an application instance with a number to dial
// it (the PSTN example of
// https://learn.microsoft.com/graph/api/application-post-calls).
func PhoneTarget(number string) graph.InvitationParticipantInfo {
	return graph.InvitationParticipantInfo{
		ODataType: graph.TypeInvitationParticipantInfo,
		Identity: &graph.IdentitySet{ODataType: graph.TypeIdentitySet,
			Phone: &graph.Identity{ODataType: graph.TypeIdentity, ID: number}},
	}
}

// Prompt is a media prompt playing the WAV file at uri.
func Prompt(uri string) graph.MediaPrompt {
	return graph.MediaPrompt{ODataType: graph.TypeMediaPrompt,
		MediaInfo: &graph.MediaInfo{ODataType: "#microsoft.graph.mediaInfo", URI: uri}}
}
