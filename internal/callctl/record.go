package callctl

import (
	"strings"
	"time"

	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Record is everything about a live call, kept in the store under the call
// id so that any node can read it and the owner can resume it after a
// restart. Only the owning node's actor writes it, with compare-and-set.
type Record struct {
	Call         graph.Call          `json:"call"`
	AppID        string              `json:"appId"`
	TenantID     string              `json:"tenantId"`
	Node         string              `json:"node"`
	Participants []graph.Participant `json:"participants,omitempty"`
	Operations   []graph.Operation   `json:"operations,omitempty"`
	Leg          *LegRef             `json:"leg,omitempty"`
	// Redirect is set while an incoming call is being redirected.
	Redirect *RedirectState `json:"redirect,omitempty"`
	// Hold is set while a participant hears hold music.
	Hold *HoldState `json:"hold,omitempty"`
	// Meeting is the id of the meeting a meeting call joined (room.go).
	Meeting string `json:"meeting,omitempty"`
	// Group is set for a group call; Members are its far ends (group.go).
	Group   bool           `json:"group,omitempty"`
	Members []MemberRecord `json:"members,omitempty"`
	// NextSource is the last mediaStreams sourceId given out: each
	// participant's is distinct, and stable for its life in the call.
	NextSource int `json:"nextSource,omitempty"`
	// Outbox holds the notifications of the last stored step that may not
	// be in the webhook outbox yet (persist.go).
	Outbox []queued `json:"outbox,omitempty"`
	// TakenOver is set by the node that took over the call's node, taken
	// for lost, as it ends the call: the node that carried the call, if
	// it was only cut off, must not write the record again (save).
	TakenOver bool `json:"takenOver,omitempty"`

	Created        time.Time `json:"created"`
	LastKeepAlive  time.Time `json:"lastKeepAlive"`
	AnswerBy       time.Time `json:"answerBy,omitzero"`
	RingBy         time.Time `json:"ringBy,omitzero"`
	ToneSubscribed bool      `json:"toneSubscribed,omitempty"`
	ToneSeq        int64     `json:"toneSeq,omitempty"`
	Muted          bool      `json:"muted,omitempty"`
}

// RedirectState tracks the new leg of a redirected incoming call.
type RedirectState struct {
	Targets []graph.InvitationParticipantInfo `json:"targets"`
	By      time.Time                         `json:"by"`
	Leg     *LegRef                           `json:"leg,omitempty"`
}

// HoldState is who is on hold and what they hear
// (https://learn.microsoft.com/graph/api/participant-startholdmusic).
type HoldState struct {
	Participant string `json:"participant"`
	// Prompt is the bot's customPrompt; nil plays media.holdMusic or the
	// built-in chime.
	Prompt *graph.MediaInfo `json:"prompt,omitempty"`
}

// operation returns the call's operation with id, or nil.
func (r *Record) operation(id string) *graph.Operation {
	for i := range r.Operations {
		if strings.EqualFold(r.Operations[i].ID, id) {
			return &r.Operations[i]
		}
	}
	return nil
}

// maxOperations bounds what a long call keeps: the oldest finished
// operations are forgotten first.
const maxOperations = 256

func (r *Record) addOperation(op graph.Operation) {
	if len(r.Operations) >= maxOperations {
		for i, o := range r.Operations {
			if o.Status.Terminal() {
				r.Operations = append(r.Operations[:i], r.Operations[i+1:]...)
				break
			}
		}
	}
	r.Operations = append(r.Operations, op)
}

// normID is the form ids are stored and compared in.
func normID(id string) string { return strings.ToLower(id) }

// sameID compares ids as they are stored.
func sameID(a, b string) bool { return strings.EqualFold(a, b) }
