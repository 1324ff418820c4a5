package sdk

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"

	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// JoinInfo is what a Teams meeting join link says about the meeting: what
// a bot joins it by. A long link (…/l/meetup-join/{threadId}/{messageId}?context={"Tid","Oid"})
// gives the chat thread and the organizer; a short one
// (…/meet/{joinMeetingId}?p={passcode}) the meeting id and passcode.
type JoinInfo struct {
	// ThreadID and MessageID are the meeting chat's thread
	// (19:meeting_…@thread.v2) and message ("0" for a meeting): the call's
	// chatInfo.
	ThreadID, MessageID string
	// ReplyChainMessageID is the context's MessageId, which links to a
	// channel meeting carry; empty otherwise.
	ReplyChainMessageID string
	// TenantID and OrganizerID are the context's Tid and Oid: the
	// organizer's tenant and user id (organizerMeetingInfo).
	TenantID, OrganizerID string
	// JoinMeetingID and Passcode are a short link's meeting id and
	// passcode (joinMeetingIdMeetingInfo); the fields above are then empty.
	JoinMeetingID, Passcode string
}

// ParseJoinURL takes a Teams join link apart as Microsoft's samples do
// (JoinInfo.ParseJoinURL in
// https://github.com/microsoftgraph/microsoft-graph-comms-samples/blob/master/Samples/Common/Sample.Common/Meetings/JoinInfo.cs):
// it decodes the link, takes the two path segments after meetup-join as
// the thread and message ids and the context's Tid, Oid and MessageId; or,
// from a short link, the meeting id after /meet/ and the passcode p. Any
// host is accepted: teams.microsoft.com and the national clouds' as well
// as Switchboard's links, which are on its http.publicUrl. A link encoded
// once more as a whole (as a $filter value or a mail's link wrapper
// carries it) is decoded first.
func ParseJoinURL(link string) (JoinInfo, error) {
	s := strings.TrimSpace(link)
	// Decode until the link's own structure shows: a link pasted encoded
	// as a whole shows its "://" only then; one layer more is decoded below,
	// piece by piece.
	for range 3 {
		if strings.Contains(s, "://") {
			break
		}
		d, err := url.PathUnescape(s)
		if err != nil || d == s {
			break
		}
		s = d
	}
	if !strings.Contains(s, "://") {
		return JoinInfo{}, fmt.Errorf("join link %q is not an absolute URL", link)
	}
	if d, err := url.PathUnescape(s); err == nil {
		s = d // as Microsoft's samples: the whole link decoded once
	}
	lower := asciiLower(s)
	if i := strings.Index(lower, "/meetup-join/"); i >= 0 {
		return parseLongLink(link, s[i+len("/meetup-join/"):])
	}
	if i := strings.Index(lower, "/meet/"); i >= 0 {
		return parseShortLink(link, s[i+len("/meet/"):])
	}
	return JoinInfo{}, fmt.Errorf("join link %q has neither /meetup-join/{threadId}/{messageId} nor /meet/{meetingId} in its path", link)
}

// parseLongLink reads what follows meetup-join/: {threadId}/{messageId}?context={…}.
func parseLongLink(link, rest string) (JoinInfo, error) {
	path, query, _ := strings.Cut(rest, "?")
	segs := strings.Split(path, "/")
	var j JoinInfo
	j.ThreadID = decoded(segs[0])
	if len(segs) > 1 {
		j.MessageID = decoded(segs[1])
	}
	if j.ThreadID == "" || j.MessageID == "" {
		return JoinInfo{}, fmt.Errorf("join link %q: no thread id and message id after meetup-join", link)
	}
	raw, ok := param(query, "context")
	if !ok {
		return JoinInfo{}, fmt.Errorf("join link %q has no context (Tid, Oid)", link)
	}
	var ctx struct{ Tid, Oid, MessageID string }
	if err := json.Unmarshal([]byte(jsonObject(decoded(raw))), &ctx); err != nil {
		return JoinInfo{}, fmt.Errorf("join link %q: its context is not JSON: %w", link, err)
	}
	if ctx.Oid == "" || ctx.Tid == "" {
		return JoinInfo{}, fmt.Errorf("join link %q: its context names no organizer (Tid and Oid)", link)
	}
	j.TenantID, j.OrganizerID, j.ReplyChainMessageID = ctx.Tid, ctx.Oid, ctx.MessageID
	return j, nil
}

// parseShortLink reads what follows meet/: {joinMeetingId}?p={passcode}.
func parseShortLink(link, rest string) (JoinInfo, error) {
	path, query, _ := strings.Cut(rest, "?")
	id, _, _ := strings.Cut(path, "/")
	id = decoded(id)
	if id == "" || strings.Trim(id, "0123456789") != "" {
		return JoinInfo{}, fmt.Errorf("join link %q: no meeting id (digits) after /meet/", link)
	}
	p, _ := param(query, "p")
	return JoinInfo{JoinMeetingID: id, Passcode: decoded(p)}, nil
}

// asciiLower lower-cases the ASCII letters of s and nothing else, so that
// an index in the result is the same index in s: strings.ToLower changes
// the length of invalid UTF-8 and of some letters (İ), which made a link
// with one before its /meet/ cut at the wrong place.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// decoded URL-decodes s as many times as it is encoded (a link wrapped in
// another link is encoded twice), up to three.
func decoded(s string) string {
	for range 3 {
		if !strings.Contains(s, "%") {
			break
		}
		d, err := url.PathUnescape(s)
		if err != nil || d == s {
			break
		}
		s = d
	}
	return s
}

// param finds a query parameter by name in a query that may already be
// decoded: the context's JSON may hold the characters that separate
// parameters, so a value starting with '{' runs to its closing brace.
func param(query, name string) (string, bool) {
	for query != "" {
		var kv string
		if k, rest, ok := strings.Cut(query, "="); ok && strings.EqualFold(k, name) && strings.HasPrefix(rest, "{") {
			return jsonObject(rest), true
		}
		kv, query, _ = strings.Cut(query, "&")
		if k, v, _ := strings.Cut(kv, "="); strings.EqualFold(k, name) {
			return v, true
		}
	}
	return "", false
}

// jsonObject is s up to the brace closing its first object, or s.
func jsonObject(s string) string {
	depth, quoted, escaped := 0, false, false
	for i, c := range s {
		switch {
		case escaped:
			escaped = false
		case quoted && c == '\\':
			escaped = true
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '{':
			depth++
		case c == '}':
			depth--
			if depth == 0 {
				return s[:i+1]
			}
		}
	}
	return s
}

// ChatInfo is the chatInfo a bot's call joins by; nil for a short link.
func (j JoinInfo) ChatInfo() *graph.ChatInfo {
	if j.ThreadID == "" {
		return nil
	}
	ci := &graph.ChatInfo{ODataType: graph.TypeChatInfo, ThreadID: j.ThreadID, MessageID: j.MessageID}
	if j.ReplyChainMessageID != "" {
		ci.ReplyChainMessageID = &j.ReplyChainMessageID
	}
	return ci
}

// MeetingInfo is the meetingInfo a bot's call joins by: the organizer
// (organizerMeetingInfo) with chatInfo, or the meeting id and passcode
// (joinMeetingIdMeetingInfo).
func (j JoinInfo) MeetingInfo() *graph.MeetingInfo {
	if j.JoinMeetingID != "" {
		mi := &graph.MeetingInfo{ODataType: graph.TypeJoinMeetingIDMeetingInfo, JoinMeetingID: j.JoinMeetingID}
		if j.Passcode != "" {
			mi.Passcode = &j.Passcode
		}
		return mi
	}
	return &graph.MeetingInfo{ODataType: graph.TypeOrganizerMeetingInfo, Organizer: &graph.IdentitySet{
		ODataType: graph.TypeIdentitySet,
		User:      &graph.Identity{ODataType: graph.TypeIdentity, ID: j.OrganizerID, TenantID: j.TenantID}}}
}

// NewCall returns a create-call body joining the meeting, with audio and
// service-hosted media, as the "join a scheduled meeting" examples of
// https://learn.microsoft.com/graph/api/application-post-calls show it:
// chatInfo and organizerMeetingInfo with the organizer's tenant as the
// call's, or joinMeetingIdMeetingInfo. callbackUri is left empty for
// Handler.CreateCall to fill in; set it to send the body with
// Client.CreateCall.
func (j JoinInfo) NewCall() *graph.Call {
	return &graph.Call{
		ODataType:           graph.TypeCall,
		ChatInfo:            j.ChatInfo(),
		MeetingInfo:         j.MeetingInfo(),
		TenantID:            j.TenantID,
		RequestedModalities: []graph.Modality{graph.ModalityAudio},
		MediaConfig:         &graph.MediaConfig{ODataType: graph.TypeServiceHostedMediaConfig},
	}
}
