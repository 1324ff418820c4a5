package sipgw

import (
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Cascade legs (callctl/cascade.go): a node that has a person whose
// meeting's room another node mixes INVITEs that node for
// sip:meeting-{conferenceId}, and says who the person is in the
// X-Switchboard-Cascade header: the claims below, base64url JSON, then
// "." and their MAC under the key the nodes derive from their shared
// secret (the guest passes' key, with a purpose of its own). The MAC
// covers the INVITE's Call-ID and an expiry, so a header seen once cannot
// be replayed on another call or later. Only a header whose MAC checks
// stands for a digest; one without is refused, never ignored, so that
// nobody outside the nodes can claim to be a cascade.

// cascadeHeader carries a cascade leg's claims.
const cascadeHeader = "X-Switchboard-Cascade"

// cascadeTTL is how long a cascade INVITE's claims are good for.
const cascadeTTL = 30 * time.Second

// cascadeClaims are what the node the person reached vouches for.
type cascadeClaims struct {
	ConferenceID string             `json:"c"`
	CallID       string             `json:"k"`
	Expires      int64              `json:"e"`
	Caller       *graph.IdentitySet `json:"i,omitempty"`
	Guest        bool               `json:"g,omitempty"`
}

// cascadeToken is the header's value for a cascade INVITE with Call-ID
// callID.
func (g *Gateway) cascadeToken(c *callctl.Cascade, callID string) string {
	data, _ := json.Marshal(cascadeClaims{ConferenceID: c.ConferenceID, CallID: callID,
		Expires: g.now().Add(cascadeTTL).Unix(), Caller: c.Caller, Guest: c.Guest})
	body := base64.RawURLEncoding.EncodeToString(data)
	return body + "." + g.guests.Password("cascade|"+body)
}

var (
	// errCascade: the header's MAC does not check (or it is garbled):
	// nobody but a node wrote it, and it counts as a wrong credential.
	errCascade = errors.New("cascade header not valid")
	// errCascadeStale: a node wrote it, for another call or meeting, or
	// too long ago (a node's clock far off): refused, nobody banned.
	errCascadeStale = errors.New("cascade header for another call, or expired")
)

// checkCascade checks a cascade INVITE's header value: its MAC, its
// expiry, its Call-ID, and that it names the meeting the Request-URI does.
func (g *Gateway) checkCascade(req *sip.Request, value string) (*cascadeClaims, error) {
	body, mac, ok := strings.Cut(strings.TrimSpace(value), ".")
	if !ok || subtle.ConstantTimeCompare([]byte(mac), []byte(g.guests.Password("cascade|"+body))) != 1 {
		return nil, errCascade
	}
	data, err := base64.RawURLEncoding.DecodeString(body)
	if err != nil {
		return nil, errCascade
	}
	var c cascadeClaims
	if err := json.Unmarshal(data, &c); err != nil {
		return nil, errCascade
	}
	if g.now().Unix() > c.Expires || c.CallID != callIDOf(req) || req.Recipient.User != meetingUser(c.ConferenceID) {
		return nil, errCascadeStale
	}
	return &c, nil
}
