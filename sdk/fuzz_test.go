package sdk_test

import (
	"encoding/json"
	"net/url"
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/sdk"
)

// FuzzParseJoinURL feeds ParseJoinURL what a bot may be handed as a Teams
// join link. Nothing may panic; a link read is long (thread, message,
// tenant and organizer) or short (a meeting id of digits); and the long
// link Teams writes for what was read (thread and message escaped in the
// path, the context's JSON in the query) reads back the same.
func FuzzParseJoinURL(f *testing.F) {
	f.Add("https://teams.microsoft.com/l/meetup-join/19%3ameeting_NTg0NmQ3NmMtMmM4Yy00ZDY4LWEwNTMtYmNjYmU5MTkwNWNl%40thread.v2/0" +
		"?context=%7b%22Tid%22%3a%2272f988bf-86f1-41af-91ab-2d7cd011db47%22%2c%22Oid%22%3a%22550fae72-d251-43ec-868c-373732c2704f%22%7d")
	f.Add("https://teams.microsoft.com/meet/2983745012345?p=aB3dEf7gHij")
	f.Fuzz(func(t *testing.T, link string) {
		info, err := sdk.ParseJoinURL(link)
		if err != nil {
			return
		}
		long := info.ThreadID != "" && info.MessageID != "" && info.TenantID != "" && info.OrganizerID != ""
		short := info.JoinMeetingID != "" && strings.Trim(info.JoinMeetingID, "0123456789") == "" && info.ThreadID == ""
		if long == short {
			t.Fatalf("ParseJoinURL(%q) = %+v", link, info)
		}
		if !long || !plain(info.ThreadID, info.MessageID, info.TenantID, info.OrganizerID, info.ReplyChainMessageID) {
			return
		}
		ctx, _ := json.Marshal(struct{ Tid, Oid, MessageId string }{info.TenantID, info.OrganizerID, info.ReplyChainMessageID})
		teams := "https://teams.microsoft.com/l/meetup-join/" + url.PathEscape(info.ThreadID) + "/" + url.PathEscape(info.MessageID) +
			"?context=" + url.QueryEscape(string(ctx))
		back, err := sdk.ParseJoinURL(teams)
		if err != nil || back != info {
			t.Fatalf("%+v, written as %s, reads back as %+v (%v)", info, teams, back, err)
		}
	})
}

// plain reports whether the values are made of what thread ids, message
// ids and GUIDs are made of.
func plain(values ...string) bool {
	for _, s := range values {
		for _, c := range s {
			if !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || strings.ContainsRune(":@._-", c)) {
				return false
			}
		}
	}
	return true
}

// A letter that lower-cases to more bytes (İ), or a byte that is not
// UTF-8, before the /meet/ of a link once cut the meeting id short, or
// panicked (FuzzParseJoinURL's finding).
func TestParseJoinURLNonASCII(t *testing.T) {
	for _, link := range []string{
		"https://teams.microsoft.com/l/İstanbul/meet/2983745012345?p=aB3d",
		"https://teams.microsoft.com/\xec/meet/2983745012345?p=aB3d",
	} {
		info, err := sdk.ParseJoinURL(link)
		if err != nil || info.JoinMeetingID != "2983745012345" || info.Passcode != "aB3d" {
			t.Errorf("ParseJoinURL(%q) = %+v, %v", link, info, err)
		}
	}
}
