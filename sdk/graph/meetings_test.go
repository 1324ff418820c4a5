package graph

import (
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestDateTime(t *testing.T) {
	for in, want := range map[string]time.Time{
		`"2020-09-09T14:33:30.8546353-07:00"`: time.Date(2020, 9, 9, 21, 33, 30, 854635300, time.UTC),
		`"2019-07-12T14:30:34.2444915"`:       time.Date(2019, 7, 12, 14, 30, 34, 244491500, time.UTC),
		`"2020-02-06T01:49:21Z"`:              time.Date(2020, 2, 6, 1, 49, 21, 0, time.UTC),
	} {
		var d DateTime
		if err := json.Unmarshal([]byte(in), &d); err != nil || !d.Equal(want) {
			t.Errorf("%s: %v %v, want %v", in, d, err, want)
		}
	}
	var d DateTime
	if err := json.Unmarshal([]byte(`"tomorrow"`), &d); err == nil || !strings.Contains(err.Error(), "tomorrow") {
		t.Errorf("a bad time: %v", err)
	}
	b, _ := json.Marshal(NewDateTime(time.Date(2020, 9, 29, 15, 35, 33, 159451600, time.FixedZone("x", -7*3600))))
	if string(b) != `"2020-09-29T22:35:33.1594516Z"` {
		t.Errorf("written as %s", b)
	}
}

func TestOnlineMeetingEnumsReadAnyCasing(t *testing.T) {
	var m OnlineMeeting
	err := json.Unmarshal([]byte(`{"allowedPresenters":"RoleIsPresenter","allowMeetingChat":"ENABLED",
		"lobbyBypassSettings":{"scope":"OrganizationAndFederated"},"participants":{"attendees":[{"role":"Presenter"}]},
		"joinMeetingIdSettings":{"isPasscodeRequired":true,"passcode":null}}`), &m)
	if err != nil {
		t.Fatal(err)
	}
	if m.AllowedPresenters != PresentersRoleIsPresenter || m.AllowMeetingChat != "enabled" ||
		m.LobbyBypassSettings.Scope != LobbyOrganizationAndFederated || m.Participants.Attendees[0].Role != RolePresenter ||
		!*m.JoinMeetingIDSettings.IsPasscodeRequired || m.JoinMeetingIDSettings.Passcode != nil {
		t.Errorf("%+v", m)
	}
}
