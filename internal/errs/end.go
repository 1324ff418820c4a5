package errs

import "fmt"

// EndReason is why a call ended: Graph's resultInfo code and subcode, the
// message a bot author can act on, and the SIP status the far end gets when
// Switchboard ends the call toward it.
type EndReason struct {
	Code    int
	Subcode int
	Message string
	SIP     int // the SIP final response toward the far end; 0 when a BYE fits
}

// Call-end reasons. Codes and subcodes are the ones Graph reports in a
// terminated call's resultInfo
// (https://learn.microsoft.com/graph/api/resources/resultinfo); where Graph
// has none, Switchboard's own subcodes are in the 9000 range and listed in
// docs/graph-deviations.md (docs/decisions.md#result-codes).
var (
	EndedByBot        = EndReason{200, 5001, "The conversation has ended.", 0}
	EndedByRemote     = EndReason{200, 4521, "The call was ended by the other party of the call.", 0}
	EndedByPSTN       = EndReason{200, 540000, "The call was ended by the PSTN user.", 0}
	Rejected          = EndReason{200, 9001, "The bot rejected the call.", 603}
	RejectedBusy      = EndReason{486, 9002, "The bot rejected the call as busy.", 486}
	RejectedForbidden = EndReason{403, 9003, "The bot rejected the call as forbidden.", 403}
	Redirected        = EndReason{200, 9004, "The call was redirected.", 0}
	RemoteBusy        = EndReason{486, 9005, "The callee is busy.", 0}
	RemoteDeclined    = EndReason{603, 9006, "The callee declined the call.", 0}
	NoAnswer          = EndReason{408, 10057, "The callee did not answer in time.", 0}
	Unreachable       = EndReason{480, 10076, "The callee is unreachable.", 0}
	NoEndpoints       = EndReason{480, 10037, "The callee has no endpoint that can take the call.", 0}
	CannotRoute       = EndReason{480, 10134, "Switchboard cannot route the call to the target.", 0}
	KeepAliveExpired  = EndReason{408, 8537, "Keep Alive timeout: the call saw no keepAlive in time and was cleaned up.", 0}
	NotAnswered       = EndReason{408, 1106, "The bot did not answer, reject or redirect the incoming call in time.", 480}
	MediaFailure      = EndReason{410, 301005, "Media connectivity failure: no media was received from the far end.", 0}
	ServerShutdown    = EndReason{503, 9007, "The Switchboard node ending the call was shut down.", 503}
	CallerCancelled   = EndReason{487, 9008, "The caller hung up before the call was answered.", 0}
	ResumeFailed      = EndReason{410, 9016, "The Switchboard node that carried the call restarted and its media could not continue; the far end was hung up.", 0}
	// NodeLost ends the calls of a node that died and did not come back in
	// time: another node took over its calls (platform's node takeover)
	// and ended them, as their media died with the node.
	NodeLost     = EndReason{410, 9020, "The Switchboard node that carried the call was lost (it stopped renewing its lease) and its media with it; another node ended the call and hung up the far end where it could.", 0}
	AnswerFailed = EndReason{500, 9015, "Switchboard could not answer the caller's leg (its media could not be set up).", 0}
	// BotMediaGone ends an app-hosted call whose media had no socket for
	// media.socket.reconnectWindow: Graph's "platform could not reach the
	// bot's media". The message is replaced by one naming the window.
	BotMediaGone = EndReason{500, 1005, "The platform could not reach the bot's media: its media socket was not open.", 0}
	StoreFailed  = EndReason{503, 9017, "The call could not be stored: the state store is unavailable.", 0}
	// NotReplaceable fails an invite (or a transfer) whose replacesCallId
	// names no established two-party call of the bot on this node; the
	// message is replaced by what was wrong.
	NotReplaceable = EndReason{404, 9019, "The call to replace was not found or cannot be moved.", 0}
)

// Ends of calls through the SIP edge (sipgw) that Graph's table has no
// entry for. Subcodes 9101-9199 belong to the SIP edge.
var (
	RemoteNotFound      = EndReason{404, 9101, "The callee does not exist at the SIP endpoint that was called (SIP 404/604).", 0}
	RemoteNotAcceptable = EndReason{488, 9102, "The callee cannot take the call's audio: no codec in common (SIP 488/606, or an unusable SDP answer).", 0}
	NoMediaPorts        = EndReason{503, 9103, "Switchboard has no free RTP port for the call's media.", 503}
	NoACK               = EndReason{408, 9104, "The caller never acknowledged the answer (no SIP ACK within 32 s).", 0}
)

// RemoteFailed is the end of an outbound call the far end refused with a
// SIP final status that has no entry of its own in this table: the code is
// the SIP status, so the bot sees what the far end said.
func RemoteFailed(status int, phrase string) EndReason {
	msg := fmt.Sprintf("The callee's side refused the call with SIP %d.", status)
	if phrase != "" {
		msg = fmt.Sprintf("The callee's side refused the call with SIP %d %s.", status, phrase)
	}
	return EndReason{status, 9105, msg, 0}
}
