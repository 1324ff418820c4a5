package errs

// EndReason is why a call ended: Graph's resultInfo code and subcode, the
// message a bot author can act on, and the SIP status the far end gets when
// Switchboard ends the call toward it.
type EndReason struct {
	Code    int
	Subcode int
	Message string
	SIP     int // the SIP final response toward the far end; 0 when a BYE fits
}

// Call-end reasons. Codes and subcodes come from Graph's call-end table
// (graph-calls.md §6.2); where Graph has none, Switchboard's own subcodes
// are in the 9000 range and listed in docs/graph-deviations.md.
var (
	EndedByBot             = EndReason{200, 5001, "The conversation has ended.", 0}
	EndedByRemote          = EndReason{200, 4521, "The call was ended by the other party of the call.", 0}
	EndedByPSTN            = EndReason{200, 540000, "The call was ended by the PSTN user.", 0}
	Rejected               = EndReason{200, 9001, "The bot rejected the call.", 603}
	RejectedBusy           = EndReason{486, 9002, "The bot rejected the call as busy.", 486}
	RejectedForbidden      = EndReason{403, 9003, "The bot rejected the call as forbidden.", 403}
	Redirected             = EndReason{200, 9004, "The call was redirected.", 0}
	RemoteBusy             = EndReason{486, 9005, "The callee is busy.", 0}
	RemoteDeclined         = EndReason{603, 9006, "The callee declined the call.", 0}
	NoAnswer               = EndReason{408, 10057, "The callee did not answer in time.", 0}
	Unreachable            = EndReason{480, 10076, "The callee is unreachable.", 0}
	NoEndpoints            = EndReason{480, 10037, "The callee has no endpoint that can take the call.", 0}
	CannotRoute            = EndReason{480, 10134, "Switchboard cannot route the call to the target.", 0}
	KeepAliveExpired       = EndReason{408, 8537, "Keep Alive timeout: the call saw no keepAlive in time and was cleaned up.", 0}
	NotAnswered            = EndReason{408, 1106, "The bot did not answer, reject or redirect the incoming call in time.", 480}
	MediaFailure           = EndReason{410, 301005, "Media connectivity failure: no media was received from the far end.", 0}
	ServerShutdown         = EndReason{503, 9007, "The Switchboard node ending the call was shut down.", 503}
	CallerCancelled        = EndReason{487, 9008, "The caller hung up before the call was answered.", 0}
	TransferCompleted      = EndReason{200, 7015, "GracefulTransferCompleted", 0}
	CallerHungUpOnRedirect = EndReason{487, 9009, "The caller hung up while the call was being redirected.", 0}
)
