package graph

import (
	"encoding/json"
	"strings"
)

// canonical returns the known spelling that matches s case-insensitively,
// or s unchanged when it is not one of the known values.
func canonical(s string, known []string) string {
	for _, k := range known {
		if strings.EqualFold(s, k) {
			return k
		}
	}
	return s
}

func unmarshalEnum(b []byte, known []string) (string, error) {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return "", err
	}
	return canonical(s, known), nil
}

// CallState is a call's state (callState in Graph).
type CallState string

// The call states Graph defines.
const (
	StateIncoming         CallState = "incoming"
	StateEstablishing     CallState = "establishing"
	StateRinging          CallState = "ringing"
	StateEstablished      CallState = "established"
	StateHold             CallState = "hold"
	StateTransferring     CallState = "transferring"
	StateTransferAccepted CallState = "transferAccepted"
	StateRedirecting      CallState = "redirecting"
	StateTerminating      CallState = "terminating"
	StateTerminated       CallState = "terminated"
)

var callStates = []string{"incoming", "establishing", "ringing", "established", "hold", "transferring",
	"transferAccepted", "redirecting", "terminating", "terminated", "unknownFutureValue"}

// UnmarshalJSON accepts any casing of a known state.
func (s *CallState) UnmarshalJSON(b []byte) error {
	v, err := unmarshalEnum(b, callStates)
	*s = CallState(v)
	return err
}

// Final reports whether s is terminated: nothing follows it.
func (s CallState) Final() bool { return s == StateTerminated }

// CallDirection is incoming or outgoing.
type CallDirection string

// Call directions.
const (
	DirectionIncoming CallDirection = "incoming"
	DirectionOutgoing CallDirection = "outgoing"
)

// UnmarshalJSON accepts any casing.
func (d *CallDirection) UnmarshalJSON(b []byte) error {
	v, err := unmarshalEnum(b, []string{"incoming", "outgoing"})
	*d = CallDirection(v)
	return err
}

// Modality is a media modality (audio, video, ...).
type Modality string

// Modalities.
const (
	ModalityUnknown                 Modality = "unknown"
	ModalityAudio                   Modality = "audio"
	ModalityVideo                   Modality = "video"
	ModalityVideoBasedScreenSharing Modality = "videoBasedScreenSharing"
	ModalityData                    Modality = "data"
)

// UnmarshalJSON accepts any casing.
func (m *Modality) UnmarshalJSON(b []byte) error {
	v, err := unmarshalEnum(b, []string{"unknown", "audio", "video", "videoBasedScreenSharing", "data", "unknownFutureValue"})
	*m = Modality(v)
	return err
}

// OperationStatus is the lifecycle of a commsOperation.
//
// Graph's schema (v1.0 $metadata, enum operationStatus) spells the members
// NotStarted, Running, Completed and Failed, and that is how they are
// written: the Graph clients generated from the schema (msgraph-sdk-go and
// the other Kiota SDKs) match them case-sensitively and read "completed" as
// no status at all. The reference pages' examples lower-case them; any
// casing is accepted on input (docs/msgraph-compat.md).
type OperationStatus string

// Operation statuses.
const (
	OperationNotStarted OperationStatus = "NotStarted"
	OperationRunning    OperationStatus = "Running"
	OperationCompleted  OperationStatus = "Completed"
	OperationFailed     OperationStatus = "Failed"
)

// UnmarshalJSON accepts any casing: Graph's payloads and docs use both.
func (s *OperationStatus) UnmarshalJSON(b []byte) error {
	v, err := unmarshalEnum(b, []string{"NotStarted", "Running", "Completed", "Failed", "unknownFutureValue"})
	*s = OperationStatus(v)
	return err
}

// Terminal reports whether no further notification follows an operation in
// this status.
func (s OperationStatus) Terminal() bool { return s == OperationCompleted || s == OperationFailed }

// ChangeType is the changeType of a commsNotification.
type ChangeType string

// Change types.
const (
	ChangeCreated ChangeType = "created"
	ChangeUpdated ChangeType = "updated"
	ChangeDeleted ChangeType = "deleted"
)

// UnmarshalJSON accepts any casing.
func (c *ChangeType) UnmarshalJSON(b []byte) error {
	v, err := unmarshalEnum(b, []string{"created", "updated", "deleted"})
	*c = ChangeType(v)
	return err
}

// Tone is a DTMF tone as Graph spells it: tone0..tone9, star, pound, a-d, flash.
type Tone string

// Tones.
const (
	Tone0     Tone = "tone0"
	Tone1     Tone = "tone1"
	Tone2     Tone = "tone2"
	Tone3     Tone = "tone3"
	Tone4     Tone = "tone4"
	Tone5     Tone = "tone5"
	Tone6     Tone = "tone6"
	Tone7     Tone = "tone7"
	Tone8     Tone = "tone8"
	Tone9     Tone = "tone9"
	ToneStar  Tone = "star"
	TonePound Tone = "pound"
	ToneA     Tone = "a"
	ToneB     Tone = "b"
	ToneC     Tone = "c"
	ToneD     Tone = "d"
	ToneFlash Tone = "flash"
)

var toneNames = []string{"tone0", "tone1", "tone2", "tone3", "tone4", "tone5", "tone6", "tone7", "tone8", "tone9",
	"star", "pound", "a", "b", "c", "d", "flash"}

// UnmarshalJSON accepts any casing and the short forms "1", "*", "#".
func (t *Tone) UnmarshalJSON(b []byte) error {
	v, err := unmarshalEnum(b, toneNames)
	if err != nil {
		return err
	}
	if p, ok := ParseTone(v); ok {
		*t = p
		return nil
	}
	*t = Tone(v)
	return nil
}

// ParseTone maps "tone1", "1", "*", "star", "#", "pound", "A"... to a Tone.
func ParseTone(s string) (Tone, bool) {
	switch {
	case len(s) == 1 && s[0] >= '0' && s[0] <= '9':
		return Tone("tone" + s), true
	case s == "*":
		return ToneStar, true
	case s == "#":
		return TonePound, true
	}
	c := canonical(s, toneNames)
	for _, k := range toneNames {
		if c == k {
			return Tone(c), true
		}
	}
	return "", false
}

// Char returns the tone as a dial-pad character: '0'-'9', '*', '#', 'A'-'D', '!' for flash.
func (t Tone) Char() byte {
	switch t {
	case ToneStar:
		return '*'
	case TonePound:
		return '#'
	case ToneA, ToneB, ToneC, ToneD:
		return t[0] - 'a' + 'A'
	case ToneFlash:
		return '!'
	}
	if len(t) == 5 && t[4] >= '0' && t[4] <= '9' {
		return t[4]
	}
	return 0
}

// RejectReason is the reason given to reject an incoming call.
type RejectReason string

// Reject reasons.
const (
	RejectNone      RejectReason = "none"
	RejectBusy      RejectReason = "busy"
	RejectForbidden RejectReason = "forbidden"
)

// UnmarshalJSON accepts "None", "Busy", "Forbidden" as the reference table spells them.
func (r *RejectReason) UnmarshalJSON(b []byte) error {
	v, err := unmarshalEnum(b, []string{"none", "busy", "forbidden", "unknownFutureValue"})
	*r = RejectReason(v)
	return err
}

// MediaDirection is a mediaStream direction.
type MediaDirection string

// Media directions.
const (
	MediaInactive    MediaDirection = "inactive"
	MediaSendOnly    MediaDirection = "sendOnly"
	MediaReceiveOnly MediaDirection = "receiveOnly"
	MediaSendReceive MediaDirection = "sendReceive"
)

// UnmarshalJSON accepts any casing.
func (d *MediaDirection) UnmarshalJSON(b []byte) error {
	v, err := unmarshalEnum(b, []string{"inactive", "sendOnly", "receiveOnly", "sendReceive"})
	*d = MediaDirection(v)
	return err
}

// MediaStateValue is active or inactive (callMediaState.audio).
type MediaStateValue string

// Media states.
const (
	MediaStateActive   MediaStateValue = "active"
	MediaStateInactive MediaStateValue = "inactive"
)

// UnmarshalJSON accepts any casing.
func (m *MediaStateValue) UnmarshalJSON(b []byte) error {
	v, err := unmarshalEnum(b, []string{"active", "inactive", "unknownFutureValue"})
	*m = MediaStateValue(v)
	return err
}
