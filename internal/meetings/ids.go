package meetings

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/url"
	"strings"

	"github.com/switchboard-voice/switchboard/internal/ids"
)

// The identifiers of a meeting have Teams' shapes, so that code written
// against Graph that looks at them (or takes them apart) keeps working:
//
//   - threadId (chatInfo.threadId) is 19:meeting_{opaque}@thread.v2, where
//     {opaque} is the base64 of a random GUID's text, as Teams makes them.
//     {opaque} is made of [A-Za-z0-9] only and keys the meeting in the store.
//   - id is the base64 of "1*{organizer oid}*0**{threadId}", the form of
//     Graph's onlineMeeting ids (which decode to exactly that). It needs no
//     index: the thread id is inside it. Neither text ever makes a base64
//     '+', '/' or '=' (111 bytes, and no byte of it sets the bits those
//     need), so an id is safe in a URL path as it is.
//   - joinMeetingId is 12 digits and conferenceId 9 digits, random and
//     unique (each holds an index key in the store).
const (
	threadPrefix = "19:meeting_"
	threadSuffix = "@thread.v2"
	messageID    = "0"
)

// newThread returns a new thread id and its opaque part.
func newThread() (threadID, opaque string) {
	opaque = base64.StdEncoding.EncodeToString([]byte(ids.New()))
	return threadPrefix + opaque + threadSuffix, opaque
}

// threadOpaque returns the opaque part of a thread id Switchboard made, or
// false for any other text.
func threadOpaque(threadID string) (string, bool) {
	rest, ok := strings.CutPrefix(threadID, threadPrefix)
	if !ok {
		return "", false
	}
	opaque, ok := strings.CutSuffix(rest, threadSuffix)
	if !ok || len(opaque) != 48 {
		return "", false
	}
	for _, c := range opaque {
		if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9') {
			return "", false
		}
	}
	return opaque, true
}

// meetingID is the onlineMeeting id of the organizer's meeting on threadID.
func meetingID(organizerID, threadID string) string {
	return base64.StdEncoding.EncodeToString([]byte("1*" + organizerID + "*0**" + threadID))
}

// parseMeetingID returns the organizer and thread an onlineMeeting id names.
func parseMeetingID(id string) (organizerID, threadID string, ok bool) {
	var raw []byte
	var err error
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if raw, err = enc.DecodeString(id); err == nil {
			break
		}
	}
	if err != nil {
		return "", "", false
	}
	parts := strings.SplitN(string(raw), "*", 5)
	if len(parts) != 5 || parts[0] != "1" || parts[2] != "0" || parts[3] != "" {
		return "", "", false
	}
	return parts[1], parts[4], true
}

// randomDigits returns n random decimal digits, the first not 0.
func randomDigits(n int) string {
	b := make([]byte, 0, n)
	var buf [32]byte
	for len(b) < n {
		_, _ = rand.Read(buf[:]) // crypto/rand.Read never fails (Go 1.24+)
		for _, x := range buf {
			if x >= 250 || (len(b) == 0 && x%10 == 0) {
				continue // rejection keeps the digits uniform
			}
			if b = append(b, '0'+x%10); len(b) == n {
				break
			}
		}
	}
	return string(b)
}

// passcodeAlphabet leaves out characters easily misread (0/O, 1/l/I).
const passcodeAlphabet = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789"

// newPasscode returns a six-character passcode, as Teams' are.
func newPasscode() string {
	b := make([]byte, 0, 6)
	var buf [16]byte
	for len(b) < 6 {
		_, _ = rand.Read(buf[:])
		for _, x := range buf {
			if int(x) >= 256/len(passcodeAlphabet)*len(passcodeAlphabet) {
				continue
			}
			if b = append(b, passcodeAlphabet[int(x)%len(passcodeAlphabet)]); len(b) == 6 {
				break
			}
		}
	}
	return string(b)
}

// JoinWebURL is a meeting's joinWebUrl in the long Teams form, on
// Switchboard's public URL:
//
//	{publicURL}/l/meetup-join/{URL-encoded threadId}/0?context={URL-encoded {"Tid":"…","Oid":"…"}}
//
// Code that decodes a Teams link and takes the two path segments after
// meetup-join as chatInfo, and Tid and Oid from the context as the
// organizer (https://learn.microsoft.com/graph/api/resources/onlinemeeting),
// reads it unchanged. The same URL opens the meeting's join page.
func JoinWebURL(publicURL, tenantID, organizerID, threadID string) string {
	ctx, _ := json.Marshal(struct {
		Tid string `json:"Tid"`
		Oid string `json:"Oid"`
	}{tenantID, organizerID})
	return strings.TrimRight(publicURL, "/") + "/l/meetup-join/" + url.QueryEscape(threadID) + "/" + messageID +
		"?context=" + url.QueryEscape(string(ctx))
}

// JoinLink is what a Teams-style join link says.
type JoinLink struct {
	ThreadID    string // chatInfo.threadId
	MessageID   string // chatInfo.messageId
	TenantID    string // the context's Tid
	OrganizerID string // the context's Oid
}

// ParseJoinWebURL reads a long-form join link, Switchboard's or Teams'
// (https://teams.microsoft.com/l/meetup-join/…): the thread and message
// ids after meetup-join, and Tid and Oid from the context when it has one.
// A link that was URL-encoded once more (as $filter values often are) is
// decoded first.
func ParseJoinWebURL(link string) (JoinLink, error) {
	link = strings.TrimSpace(link)
	if l := strings.ToLower(link); strings.HasPrefix(l, "http%3a") || strings.HasPrefix(l, "https%3a") {
		if u, err := url.QueryUnescape(link); err == nil {
			link = u
		}
	}
	u, err := url.Parse(link)
	if err != nil || u.Host == "" {
		return JoinLink{}, errors.New("not an absolute URL")
	}
	segs := strings.Split(u.EscapedPath(), "/")
	i := 0
	for i < len(segs) && !strings.EqualFold(segs[i], "meetup-join") {
		i++
	}
	if i+1 >= len(segs) || segs[i+1] == "" {
		return JoinLink{}, errors.New("no /l/meetup-join/{threadId} in its path")
	}
	var jl JoinLink
	if jl.ThreadID, err = url.PathUnescape(segs[i+1]); err != nil {
		return JoinLink{}, errors.New("its thread id is not URL-encoded properly")
	}
	if i+2 < len(segs) {
		jl.MessageID, _ = url.PathUnescape(segs[i+2])
	}
	if c := u.Query().Get("context"); c != "" {
		var ctx struct{ Tid, Oid string }
		if json.Unmarshal([]byte(c), &ctx) == nil {
			jl.TenantID, jl.OrganizerID = ctx.Tid, ctx.Oid
		}
	}
	return jl, nil
}
