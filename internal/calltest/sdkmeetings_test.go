package calltest_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/sdk"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// The SDK's onlineMeetings client against a real node: Meet Now with a
// passcode, its link taken apart, get, the two $filter lookups (under the
// user and across the tenant), createOrGet twice, PATCH (and a read-only
// property refused), joins by link and by meeting id (a wrong passcode
// refused), and delete, after which nothing finds or joins it.
func TestSDKMeetings(t *testing.T) {
	srv := httptest.NewUnstartedServer(nil)
	hook := "http://" + srv.Listener.Addr().String() + "/callback"
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		withMeetings(c)
		c.Applications[0].CallbackURI = hook
	}})
	client, err := sdk.NewClient(sdk.ClientOptions{BaseURL: p.URL + "/v1.0", TenantID: calltest.TenantID,
		ClientID: calltest.BotID, ClientSecret: calltest.Secret})
	if err != nil {
		t.Fatal(err)
	}
	bot, err := sdk.NewHandler(sdk.HandlerOptions{Client: client, CallbackURL: hook})
	if err != nil {
		t.Fatal(err)
	}
	rosters := make(chan struct{}, 1) // a roster changed
	bot.OnParticipants(func(context.Context, *sdk.Call, sdk.ParticipantsChange) {
		select {
		case rosters <- struct{}{}:
		default:
		}
	})
	srv.Config.Handler = bot
	srv.Start()
	t.Cleanup(func() {
		_ = bot.Shutdown(context.Background())
		srv.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	notFound := func(what string, err error) {
		t.Helper()
		var ge *sdk.GraphError
		if !errors.As(err, &ge) || ge.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %v, want 404", what, err)
		}
	}

	yes := true
	m, err := client.CreateMeeting(ctx, calltest.AliceID, &graph.OnlineMeeting{Subject: "Stand-up",
		JoinMeetingIDSettings: &graph.JoinMeetingIDSettings{IsPasscodeRequired: &yes}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := sdk.ParseJoinURL(m.JoinWebURL)
	if err != nil || info.ThreadID != m.ChatInfo.ThreadID || info.MessageID != m.ChatInfo.MessageID ||
		info.OrganizerID != calltest.AliceID || info.TenantID != calltest.TenantID {
		t.Fatalf("ParseJoinURL(%s) = %+v, %v; chatInfo %+v", m.JoinWebURL, info, err, m.ChatInfo)
	}
	if got, err := client.GetMeeting(ctx, calltest.AliceID, m.ID); err != nil || got.ID != m.ID || got.Subject != "Stand-up" {
		t.Errorf("get: %+v, %v", got, err)
	}
	for _, user := range []string{calltest.AliceID, ""} {
		if got, err := client.FindMeetingByJoinURL(ctx, user, m.JoinWebURL); err != nil || got.ID != m.ID {
			t.Errorf("find by link under %q: %+v, %v", user, got, err)
		}
	}
	id := m.JoinMeetingIDSettings.JoinMeetingID
	spaced := id[:3] + " " + id[3:6] + " " + id[6:9] + " " + id[9:] // as the join page shows it
	if got, err := client.FindMeetingByJoinMeetingID(ctx, calltest.AliceID, spaced); err != nil || got.ID != m.ID {
		t.Errorf("find by meeting id %q: %+v, %v", spaced, got, err)
	}
	if _, err := client.FindMeetingByJoinMeetingID(ctx, calltest.AliceID, "000000000000"); !errors.Is(err, sdk.ErrMeetingNotFound) {
		t.Errorf("find an unknown meeting id: %v", err)
	}

	first, created, err := client.CreateOrGetMeeting(ctx, calltest.AliceID, "ticket-4711", &graph.OnlineMeeting{Subject: "Ticket 4711"})
	if err != nil || !created {
		t.Fatalf("createOrGet, first: %v, created %v", err, created)
	}
	again, created, err := client.CreateOrGetMeeting(ctx, calltest.AliceID, "ticket-4711", nil)
	if err != nil || created || again.ID != first.ID {
		t.Errorf("createOrGet, again: %+v, created %v, %v; want %s", again, created, err, first.ID)
	}

	moved, err := client.UpdateMeeting(ctx, calltest.AliceID, m.ID, &graph.OnlineMeeting{Subject: "Stand-up (moved)"})
	if err != nil || moved.Subject != "Stand-up (moved)" || moved.JoinWebURL != m.JoinWebURL {
		t.Errorf("update: %+v, %v", moved, err)
	}
	var ge *sdk.GraphError
	if _, err := client.UpdateMeeting(ctx, calltest.AliceID, m.ID, moved); !errors.As(err, &ge) || ge.StatusCode != 400 ||
		!strings.Contains(ge.Message, "joinWebUrl") && !strings.Contains(ge.Message, "read-only") {
		t.Errorf("update with the read-only properties of a meeting read back: %v, want 400 naming one", err)
	}

	// Joins: by the link, and by the meeting id with its passcode.
	byLink, err := bot.JoinMeetingByURL(ctx, m.JoinWebURL, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := bot.JoinMeetingByID(ctx, spaced, "wrong", nil); !errors.As(err, &ge) || ge.StatusCode != http.StatusForbidden {
		t.Errorf("join with a wrong passcode: %v, want 403", err)
	}
	byID, err := bot.JoinMeetingByID(ctx, spaced, *m.JoinMeetingIDSettings.Passcode, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*sdk.Call{byLink, byID} {
		if err := c.WaitState(ctx, graph.StateEstablished); err != nil {
			t.Fatal(err)
		}
	}
	if s := byLink.Snapshot(); s.ChatInfo == nil || s.ChatInfo.ThreadID != info.ThreadID {
		t.Errorf("the joined call's chatInfo is %+v, want the meeting's", s.ChatInfo)
	}
	// Each of the bot's calls sees both in the roster.
	for len(byLink.Participants()) != 2 || len(byID.Participants()) != 2 {
		select {
		case <-rosters:
		case <-ctx.Done():
			t.Fatalf("rosters: %d and %d participants, want 2 each", len(byLink.Participants()), len(byID.Participants()))
		}
	}
	// Nobody is in the lobby to admit: the platform says so.
	if err := byLink.Admit(ctx, byID.Snapshot().MyParticipantID); err == nil {
		t.Error("admitting a bot that is in the meeting succeeded")
	}
	for _, c := range []*sdk.Call{byLink, byID} {
		if err := c.HangUp(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitState(ctx, graph.StateTerminated); err != nil {
			t.Fatal(err)
		}
	}

	if err := client.DeleteMeeting(ctx, calltest.AliceID, m.ID); err != nil {
		t.Fatal(err)
	}
	_, err = client.GetMeeting(ctx, calltest.AliceID, m.ID)
	notFound("get a deleted meeting", err)
	if _, err := client.FindMeetingByJoinURL(ctx, calltest.AliceID, m.JoinWebURL); !errors.Is(err, sdk.ErrMeetingNotFound) {
		t.Errorf("find a deleted meeting: %v", err)
	}
	_, err = bot.JoinMeetingByURL(ctx, m.JoinWebURL, nil)
	notFound("join a deleted meeting", err)
}
