package console

import "strconv"

// explanations say in plain words what common resultInfo code/subcode
// pairs mean (internal/errs names the ones Switchboard gives).
var explanations = map[[2]int]string{
	{200, 5001}:   "The bot hung up the call.",
	{200, 4521}:   "The far end hung up: a normal end.",
	{200, 540000}: "The PSTN caller hung up: a normal end.",
	{200, 9001}:   "The bot rejected the incoming call.",
	{486, 9002}:   "The bot rejected the incoming call as busy.",
	{403, 9003}:   "The bot rejected the incoming call as forbidden.",
	{200, 9004}:   "The bot redirected the call elsewhere; this call leg is done.",
	{486, 9005}:   "The person called was busy.",
	{603, 9006}:   "The person called declined.",
	{408, 10057}:  "Nobody answered before the ringing timed out.",
	{480, 10076}:  "The person called could not be reached (not registered, or the phone is offline).",
	{480, 10037}:  "The person called has no phone or client that could take the call.",
	{480, 10134}:  "Switchboard found no route to the target: check the number, the user or the trunks.",
	{408, 8537}:   "The bot stopped sending keepAlive, so the call was cleaned up: is the bot still running?",
	{408, 1106}:   "The bot did not answer, reject or redirect the incoming call in time: is its webhook reachable and quick?",
	{410, 301005}: "Media failure: no audio arrived from the far end (network, NAT or firewall trouble, or the phone vanished).",
	{503, 9007}:   "The Switchboard node was shut down while the call was up.",
	{487, 9008}:   "The caller gave up before the call was answered.",
	{410, 9016}:   "The node carrying the call restarted and the call's media could not continue.",
	{410, 9020}:   "The node carrying the call was lost (it stopped renewing its lease); another node ended the call, as its media died with the node.",
	{500, 9015}:   "Switchboard could not set up the caller's media to answer.",
	{500, 1005}:   "The bot's media socket (app-hosted media) was not open, so the call could not go on.",
	{503, 9017}:   "The state store was unavailable, so the call could not be kept.",
	{404, 9019}:   "The call to replace was not found or could not be moved.",
	{404, 9101}:   "The number or user called does not exist at that SIP endpoint.",
	{488, 9102}:   "The far end could not take the call's audio: no codec in common.",
	{503, 9103}:   "Switchboard ran out of RTP ports for media.",
	{408, 9104}:   "The caller's phone never acknowledged the answer (no SIP ACK).",
	{500, 9013}:   "A recording could not be stored (the recordings store is full or unavailable).",
	{500, 9010}:   "An operation was still running when the call ended.",
}

// byCode explains a code whose subcode is not in the table.
var byCode = map[int]string{
	200: "The call ended normally.",
	400: "The request that set up the call was refused as invalid.",
	403: "The call was refused: not allowed.",
	404: "The target was not found.",
	408: "Something timed out.",
	410: "The call's media or node went away.",
	480: "The target was unavailable.",
	486: "Busy.",
	487: "Cancelled before it was answered.",
	488: "No media in common with the far end.",
	500: "An error inside Switchboard or its media.",
	503: "Switchboard or one of its parts was unavailable or overloaded.",
	603: "Declined.",
}

// subcodeRemoteFailed is errs.RemoteFailed's: the code is the far end's
// SIP status.
const subcodeRemoteFailed = 9105

// Explain says in plain words what a resultInfo code and subcode mean.
func Explain(code, subcode int) string {
	if s, ok := explanations[[2]int{code, subcode}]; ok {
		return s
	}
	if subcode == subcodeRemoteFailed {
		return "The far end refused the call with SIP status " + strconv.Itoa(code) + " (see the SIP entries of the timeline)."
	}
	if s, ok := byCode[code]; ok {
		return s + " (subcode " + strconv.Itoa(subcode) + " has no explanation here yet)"
	}
	if code == 0 {
		return "The call ended without a result code."
	}
	return "No explanation for this code yet."
}
