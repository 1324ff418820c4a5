package sdk

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Online meetings (https://learn.microsoft.com/graph/api/resources/onlinemeeting):
// the Client creates, reads, finds, updates and deletes them for users of
// the bot's tenant (OnlineMeetings.ReadWrite.All, or OnlineMeetings.Read.All
// to read, within the application access policy); a Handler's bot joins
// them (JoinMeetingByURL, JoinMeetingByID) and lets people in from the
// lobby (Call.Admit).

// ErrMeetingNotFound is returned (wrapped) by the Find methods when no
// meeting matches: Graph answers such a lookup with an empty collection,
// not a 404. GetMeeting, UpdateMeeting and DeleteMeeting report an unknown
// meeting as a *GraphError with status 404 instead.
var ErrMeetingNotFound = errors.New("no such online meeting")

// meetingsURL is the onlineMeetings collection of a user, or of the
// application (/communications/onlineMeetings) when userID is empty, or
// something under it.
func (c *Client) meetingsURL(userID string, rest ...string) string {
	u := c.base.String()
	if userID == "" {
		u += "/communications/onlineMeetings"
	} else {
		u += "/users/" + url.PathEscape(userID) + "/onlineMeetings"
	}
	for _, r := range rest {
		u += "/" + url.PathEscape(r)
	}
	return u
}

// CreateMeeting creates an online meeting organized by userID
// (https://learn.microsoft.com/graph/api/application-post-onlinemeetings).
// A nil m, or one without dates, is a Meet Now meeting: from now, for an
// hour. The answer carries what people and bots join by: JoinWebURL,
// ChatInfo, JoinMeetingIDSettings and AudioConferencing.
func (c *Client) CreateMeeting(ctx context.Context, userID string, m *graph.OnlineMeeting) (*graph.OnlineMeeting, error) {
	if userID == "" {
		return nil, errors.New("create meeting: no user id")
	}
	var in graph.OnlineMeeting
	if m != nil {
		in = *m
	}
	var out graph.OnlineMeeting
	if _, err := c.graphDo(ctx, http.MethodPost, c.meetingsURL(userID), &in, &out); err != nil {
		return nil, fmt.Errorf("create meeting for user %s: %w", userID, err)
	}
	return &out, nil
}

// CreateOrGetMeeting returns the meeting userID organizes with externalID,
// creating it from m the first time
// (https://learn.microsoft.com/graph/api/onlinemeeting-createorget); created
// says which happened (201 or 200). m may be nil; its ExternalID is set to
// externalID. Graph takes only the subject, the dates, the participants and
// chatInfo from a createOrGet body.
func (c *Client) CreateOrGetMeeting(ctx context.Context, userID, externalID string, m *graph.OnlineMeeting) (meeting *graph.OnlineMeeting, created bool, err error) {
	if userID == "" || externalID == "" {
		return nil, false, errors.New("create or get meeting: a user id and an external id are required")
	}
	var in graph.OnlineMeeting
	if m != nil {
		in = *m
	}
	in.ExternalID = externalID
	var out graph.OnlineMeeting
	resp, err := c.graphDo(ctx, http.MethodPost, c.meetingsURL(userID, "createOrGet"), &in, &out)
	if err != nil {
		return nil, false, fmt.Errorf("create or get meeting %q for user %s: %w", externalID, userID, err)
	}
	return &out, resp.StatusCode == http.StatusCreated, nil
}

// GetMeeting reads a meeting by its id
// (https://learn.microsoft.com/graph/api/onlinemeeting-get). An unknown or
// deleted meeting is a *GraphError with status 404.
func (c *Client) GetMeeting(ctx context.Context, userID, meetingID string) (*graph.OnlineMeeting, error) {
	var out graph.OnlineMeeting
	if _, err := c.graphDo(ctx, http.MethodGet, c.meetingsURL(userID, meetingID), nil, &out); err != nil {
		return nil, fmt.Errorf("get meeting %s of user %s: %w", meetingID, userID, err)
	}
	return &out, nil
}

// UpdateMeeting changes a meeting (PATCH,
// https://learn.microsoft.com/graph/api/onlinemeeting-update) and returns
// it as it now is. Send only what changes, in a new OnlineMeeting: the
// subject, both dates together, lobbyBypassSettings, allowedPresenters,
// participants.attendees, the switches. A read-only property (joinWebUrl,
// chatInfo…), as a meeting read back carries them, is refused with 400.
func (c *Client) UpdateMeeting(ctx context.Context, userID, meetingID string, change *graph.OnlineMeeting) (*graph.OnlineMeeting, error) {
	if change == nil {
		return nil, errors.New("update meeting: nil change")
	}
	var out graph.OnlineMeeting
	if _, err := c.graphDo(ctx, http.MethodPatch, c.meetingsURL(userID, meetingID), change, &out); err != nil {
		return nil, fmt.Errorf("update meeting %s of user %s: %w", meetingID, userID, err)
	}
	return &out, nil
}

// DeleteMeeting deletes a meeting
// (https://learn.microsoft.com/graph/api/onlinemeeting-delete); its link
// and ids join nothing afterwards.
func (c *Client) DeleteMeeting(ctx context.Context, userID, meetingID string) error {
	if _, err := c.graphDo(ctx, http.MethodDelete, c.meetingsURL(userID, meetingID), nil, nil); err != nil {
		return fmt.Errorf("delete meeting %s of user %s: %w", meetingID, userID, err)
	}
	return nil
}

// FindMeetingByJoinURL finds the meeting a join link (its joinWebUrl, as
// given, URL-encoded) opens, with Graph's lookup
// GET …/onlineMeetings?$filter=JoinWebUrl eq '…'
// (https://learn.microsoft.com/graph/api/onlinemeeting-get).
// Under a user it finds the meetings that user organizes or is invited to;
// with userID empty it looks across the application's tenant
// (/communications/onlineMeetings). No match is ErrMeetingNotFound.
func (c *Client) FindMeetingByJoinURL(ctx context.Context, userID, joinURL string) (*graph.OnlineMeeting, error) {
	m, err := c.findMeeting(ctx, userID, "JoinWebUrl", joinURL)
	if err != nil {
		return nil, fmt.Errorf("find meeting by join URL: %w", err)
	}
	return m, nil
}

// FindMeetingByJoinMeetingID finds a meeting by its meeting id (the
// joinMeetingId people type into a Teams client), with the lookup
// GET …/onlineMeetings?$filter=joinMeetingIdSettings/joinMeetingId eq '…'
// (https://learn.microsoft.com/graph/api/onlinemeeting-get).
// userID as for FindMeetingByJoinURL. No match is ErrMeetingNotFound.
func (c *Client) FindMeetingByJoinMeetingID(ctx context.Context, userID, joinMeetingID string) (*graph.OnlineMeeting, error) {
	m, err := c.findMeeting(ctx, userID, "joinMeetingIdSettings/joinMeetingId", strings.ReplaceAll(joinMeetingID, " ", ""))
	if err != nil {
		return nil, fmt.Errorf("find meeting by meeting id: %w", err)
	}
	return m, nil
}

func (c *Client) findMeeting(ctx context.Context, userID, property, value string) (*graph.OnlineMeeting, error) {
	// An OData string literal doubles its quotes. Spaces are %20, not '+':
	// not every server reads '+' in a query as a space.
	filter := property + " eq '" + strings.ReplaceAll(value, "'", "''") + "'"
	u := c.meetingsURL(userID) + "?$filter=" + strings.ReplaceAll(url.QueryEscape(filter), "+", "%20")
	var out graph.OnlineMeetingCollection
	if _, err := c.graphDo(ctx, http.MethodGet, u, nil, &out); err != nil {
		return nil, err
	}
	if len(out.Value) == 0 {
		return nil, ErrMeetingNotFound
	}
	return &out.Value[0], nil
}

// AdmitParticipant lets a participant waiting in a meeting's lobby in
// (POST …/calls/{id}/participants/{participantId}/admit, 204). The roster
// shows whom: IsInLobby. Switchboard serves it; Graph v1.0 has no admit
// action for bots (the name is the Teams clients' and Azure Communication
// Services').
func (c *Client) AdmitParticipant(ctx context.Context, callID, participantID string) error {
	if _, err := c.graphDo(ctx, http.MethodPost, c.callURL(callID, "participants", participantID, "admit"), struct{}{}, nil); err != nil {
		return fmt.Errorf("admit participant %s of call %s: %w", participantID, callID, err)
	}
	return nil
}

// Admit lets a participant waiting in the meeting's lobby in (see
// Client.AdmitParticipant); the next roster shows them no longer
// IsInLobby.
func (c *Call) Admit(ctx context.Context, participantID string) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	return cl.AdmitParticipant(ctx, c.id, participantID)
}

// JoinMeetingByURL joins the meeting a Teams join link names (see
// ParseJoinURL) and tracks the call as CreateCall does; the platform
// then reports the meeting's whole roster, other bots included, to
// OnParticipants. nil media is service-hosted media.
func (h *Handler) JoinMeetingByURL(ctx context.Context, link string, media *graph.MediaConfig) (*Call, error) {
	info, err := ParseJoinURL(link)
	if err != nil {
		return nil, fmt.Errorf("join meeting: %w", err)
	}
	req := info.NewCall()
	req.MediaConfig = media
	return h.CreateCall(ctx, req)
}

// JoinMeetingByID joins a meeting by its meeting id (joinMeetingId, as
// people type it; spaces are ignored) and its passcode ("" for a meeting
// without one), as JoinMeetingByURL does. A wrong or missing passcode is a
// *GraphError with status 403, an unknown meeting 404.
func (h *Handler) JoinMeetingByID(ctx context.Context, joinMeetingID, passcode string, media *graph.MediaConfig) (*Call, error) {
	info := JoinInfo{JoinMeetingID: strings.ReplaceAll(joinMeetingID, " ", ""), Passcode: passcode}
	if info.JoinMeetingID == "" {
		return nil, errors.New("join meeting: no meeting id")
	}
	req := info.NewCall()
	req.MediaConfig = media
	return h.CreateCall(ctx, req)
}
