package sipgw

import (
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/guestpass"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Guests: a meeting's join page mints a guest pass (internal/guestpass) for
// a person in a browser, who INVITEs sip:meeting-{conferenceId}@… over SIP
// over WebSocket with it as digest credentials. The pass is checked like a
// user's password (the same digester: nonces, counts, sip.abuse), but it
// is good for that one Request-URI only; REGISTER never knows it.

// GuestPasses returns the keys guest passes are made and checked with:
// the join page mints with them what this gateway accepts. Every node
// derives the same from the secret they share.
func (g *Gateway) GuestPasses() *guestpass.Keys { return g.guests }

// lookupCaller finds the credentials of an INVITE's digest username: a
// guest pass's password, derived from the username, or a configured
// user's. A guest's config.User is made up: its ID is the pass's guest id
// and its SIP username the pass's.
func (g *Gateway) lookupCaller(username string) (*config.User, string, bool) {
	if c, err := guestpass.Parse(username); err == nil {
		return &config.User{ID: c.GuestID, SIP: config.SIPCredentials{Username: username, Password: g.guests.Password(username)}}, "", true
	}
	return g.lookupUser(username)
}

// guestCall checks an INVITE authenticated with a guest pass (claims c):
// it must not have expired and must be for the pass's meeting. It returns
// the caller's identity (the display name of From, which the page sets
// to the name its guest typed), or the status and phrase to refuse with.
func (g *Gateway) guestCall(req *sip.Request, c guestpass.Claims) (*graph.IdentitySet, int, string) {
	if g.guests.Expired(c) {
		return nil, 403, "Forbidden (guest pass expired: open the join link again)"
	}
	if req.Recipient.User != meetingUser(c.ConferenceID) {
		// Toll fraud's door stays shut: a pass is no way to reach a
		// number, a user, a bot or another meeting.
		return nil, 403, "Forbidden (a guest pass joins its own meeting only)"
	}
	name := printable(req.From().DisplayName, 64)
	if name == "" {
		name = "Guest"
	}
	return &graph.IdentitySet{Guest: &graph.Identity{ID: c.GuestID, DisplayName: name}}, 0, ""
}

// meetingUser is the user part of a meeting's SIP URI.
func meetingUser(conferenceID string) string { return "meeting-" + conferenceID }
