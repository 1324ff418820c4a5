package errs

// Result is how an operation (playPrompt, recordResponse, sendDtmfTones,
// hold music...) finished: the resultInfo code, subcode and message a bot
// sees in the operation's completion notification.
//
// Graph documents only a few of these (200/0 success, 200/8515 record
// maximum duration, 400/8508 cancelled, and the record completions of
// https://learn.microsoft.com/graph/api/resources/resultinfo); the others
// are Switchboard's, in the 85xx range Graph uses for media operations or
// in its own 90xx range, each listed in docs/graph-deviations.md.
type Result struct {
	Code    int
	Subcode int
	Message string
}

// Operation results.
var (
	OpCompleted      = Result{200, 0, "Action completed successfully."}
	OpCancelled      = Result{400, SubcodeCancelled, "Action failed, the operation was cancelled."}
	OpMaxDuration    = Result{200, 8515, "Action completed, max record duration reached."}
	OpStopTone       = Result{200, 8514, "Action completed, stop tone detected."}
	OpMaxSilence     = Result{200, 8513, "Action completed, silence timeout reached after speech."}
	OpInitialSilence = Result{400, 8510, "Action failed, initial silence timeout reached: the caller said nothing."}

	// OpCallEnded fails an operation still running when its call ends; the
	// message is followed by the call's end reason.
	OpCallEnded = Result{500, 9010, "The call ended before the operation completed: "}
	// OpTonesFailed fails a sendDtmfTones the leg could not send; the
	// message is followed by why.
	OpTonesFailed = Result{500, 9011, "Sending the tones failed: "}
	// OpNoMedia fails a media operation on a leg whose media the platform
	// does not host.
	OpNoMedia = Result{500, 9012, "Action failed, the call has no media the platform hosts."}
	// OpRecordingNotStored fails a recordResponse whose audio could not be
	// written to the recording store.
	OpRecordingNotStored = Result{500, 9013, "Action failed, the recording could not be stored."}
	// OpHungUpDuringRecording completes a recording the caller ended by
	// hanging up: the message is kept (a voicemail usually ends so).
	OpHungUpDuringRecording = Result{200, 9014, "Action completed, the call ended during the recording."}
)

// Subcodes of a prompt that cannot be played (playPrompt, the prompt of a
// recordResponse, a customPrompt of hold music). Graph has none for these;
// they are Switchboard's, in the 85xx range Graph uses for media
// operations and above the ones it documents:
//
//	400 8520  the media URI is unreachable (refused, timed out, DNS failure)
//	400 8521  the media server answered with a status other than 200
//	400 8522  the media is not a WAV file, or uses an unsupported encoding
//	400 8523  the media is too large (bytes or duration)
//	403 8524  the media URI is not allowed by the outbound allow-list
//	400 8525  the media URI is invalid (missing, not http/https)
//	500 8526  an internal error while preparing the prompt
const (
	SubcodeUnreachable = 8520
	SubcodeStatus      = 8521
	SubcodeFormat      = 8522
	SubcodeTooLarge    = 8523
	SubcodeForbidden   = 8524
	SubcodeInvalidURI  = 8525
	SubcodeInternal    = 8526
	SubcodeCancelled   = 8508 // Graph's own
)

// PromptFailure reports whether r is a prompt's failure (the 852x
// subcodes above) rather than another end of a media operation.
func (r Result) PromptFailure() bool { return r.Subcode >= 8520 && r.Subcode < 8530 }

// With returns r with detail appended to its message (OpCallEnded,
// OpTonesFailed).
func (r Result) With(detail string) Result {
	r.Message += detail
	return r
}
