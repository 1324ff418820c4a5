// Package meetings keeps Switchboard's online meetings: the Graph
// onlineMeetings resource (https://learn.microsoft.com/graph/api/resources/onlinemeeting)
// that bots create for users of their tenant, the Teams-style join links
// and the page they open, and the lookups call control joins meetings by
// (thread id, joinMeetingId, dial-in conference id).
//
// Meetings are durable: each is one value in a NATS JetStream key-value
// bucket, next to index keys that make its joinMeetingId, its conferenceId
// and its (tenant, organizer, externalId) unique. Every node reads and
// writes the same bucket; changes are compare-and-set on the value's
// revision, so concurrent PATCHes on several nodes never lose one another.
//
// Which users an application may act for is configuration
// (applications[].meetingUsers), Switchboard's stand-in for Graph's
// application access policy.
package meetings

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/switchboard-voice/switchboard/internal/abuse"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/identity"
	"github.com/switchboard-voice/switchboard/internal/store"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Bucket is the key-value bucket meetings live in.
const Bucket = "sb_meetings"

// The application permissions of onlineMeetings
// (https://learn.microsoft.com/graph/permissions-reference).
const (
	PermissionRead      = "OnlineMeetings.Read.All"
	PermissionReadWrite = "OnlineMeetings.ReadWrite.All"
)

// Meeting is one online meeting as stored. The values the Store returns are
// copies: the caller owns them.
type Meeting struct {
	// ID is the onlineMeeting id (base64 of "1*{organizer}*0**{threadId}").
	ID string `json:"id"`
	// TenantID is the organizer's tenant, spelled as configured.
	TenantID string `json:"tenantId"`
	// OrganizerID is the organizer's user id, spelled as configured.
	OrganizerID string `json:"organizerId"`
	// OrganizerName is the organizer's display name when the meeting was made.
	OrganizerName string `json:"organizerName,omitempty"`
	// ThreadID is chatInfo.threadId: 19:meeting_{opaque}@thread.v2.
	ThreadID string `json:"threadId"`
	// JoinMeetingID is joinMeetingIdSettings.joinMeetingId: 12 digits, unique.
	JoinMeetingID string `json:"joinMeetingId"`
	// Passcode is joinMeetingIdSettings.passcode; empty unless PasscodeRequired.
	Passcode string `json:"passcode,omitempty"`
	// PasscodeRequired is joinMeetingIdSettings.isPasscodeRequired.
	PasscodeRequired bool `json:"passcodeRequired"`
	// ConferenceID is audioConferencing.conferenceId, what a dial-in caller
	// enters: 9 digits, unique across tenants.
	ConferenceID string `json:"conferenceId"`
	// Subject is the meeting's subject; may be empty.
	Subject string `json:"subject,omitempty"`
	// ExternalID is the createOrGet key; empty for meetings made by create.
	ExternalID string `json:"externalId,omitempty"`
	// Created, Start and End are creationDateTime, startDateTime and endDateTime.
	Created time.Time `json:"created"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	// LobbyBypass is lobbyBypassSettings: who skips the lobby.
	LobbyBypass LobbyBypass `json:"lobbyBypass"`
	// AllowedPresenters is allowedPresenters (everyone, organization,
	// roleIsPresenter, organizer).
	AllowedPresenters string `json:"allowedPresenters"`
	// Attendees are participants.attendees as the bot gave them.
	Attendees []graph.MeetingParticipantInfo `json:"attendees,omitempty"`
	// Settings are the meeting's other switches, stored and echoed.
	Settings Settings `json:"settings"`
	// CreatedBy is the id of the application that made the meeting.
	CreatedBy string `json:"createdBy,omitempty"`
}

// LobbyBypass is lobbyBypassSettings.
type LobbyBypass struct {
	// Scope is organizer, organization, organizationAndFederated, everyone,
	// invited or organizationExcludingGuests.
	Scope string `json:"scope"`
	// IsDialInBypassEnabled lets dial-in callers skip the lobby.
	IsDialInBypassEnabled bool `json:"isDialInBypassEnabled"`
}

// Settings are the meeting options Switchboard stores and echoes without
// acting on them.
type Settings struct {
	AllowMeetingChat               string `json:"allowMeetingChat,omitempty"`
	ShareMeetingChatHistoryDefault string `json:"shareMeetingChatHistoryDefault,omitempty"`
	AllowAttendeeToEnableCamera    *bool  `json:"allowAttendeeToEnableCamera,omitempty"`
	AllowAttendeeToEnableMic       *bool  `json:"allowAttendeeToEnableMic,omitempty"`
	AllowParticipantsToChangeName  *bool  `json:"allowParticipantsToChangeName,omitempty"`
	AllowTeamworkReactions         *bool  `json:"allowTeamworkReactions,omitempty"`
	AllowRecording                 *bool  `json:"allowRecording,omitempty"`
	AllowTranscription             *bool  `json:"allowTranscription,omitempty"`
	IsEntryExitAnnounced           *bool  `json:"isEntryExitAnnounced,omitempty"`
	RecordAutomatically            *bool  `json:"recordAutomatically,omitempty"`
}

// ChatInfo is the chatInfo a bot joins the meeting with, and a call in the
// meeting echoes.
func (m *Meeting) ChatInfo() *graph.ChatInfo {
	return &graph.ChatInfo{ODataType: graph.TypeChatInfo, ThreadID: m.ThreadID, MessageID: messageID}
}

// Organizer is the organizer's identity set (user id, display name, tenant).
func (m *Meeting) Organizer() *graph.IdentitySet {
	return &graph.IdentitySet{User: &graph.Identity{ID: m.OrganizerID, DisplayName: m.OrganizerName, TenantID: m.TenantID}}
}

// MeetingInfo is the organizerMeetingInfo of the meeting, as a call that
// joined it by thread id (or by joinMeetingId, once resolved) echoes it.
func (m *Meeting) MeetingInfo() *graph.MeetingInfo {
	return &graph.MeetingInfo{ODataType: graph.TypeOrganizerMeetingInfo, Organizer: m.Organizer()}
}

// Invited reports whether userID is the organizer or one of the attendees
// (by user id, case-insensitively).
func (m *Meeting) Invited(userID string) bool {
	if strings.EqualFold(m.OrganizerID, userID) {
		return true
	}
	for _, a := range m.Attendees {
		if a.Identity != nil && a.Identity.User != nil && strings.EqualFold(a.Identity.User.ID, userID) {
			return true
		}
	}
	return false
}

// PasscodeMatches reports whether passcode lets a joinMeetingId join in: any
// passcode (null included) when none is required, else exactly the
// meeting's (compared in constant time).
func (m *Meeting) PasscodeMatches(passcode string) bool {
	if !m.PasscodeRequired {
		return true
	}
	return subtle.ConstantTimeCompare([]byte(passcode), []byte(m.Passcode)) == 1
}

// Caller is the application a request comes from, as the Graph API
// authenticated it.
type Caller struct {
	TenantID string
	AppID    string
	Roles    []string
}

func (c Caller) has(perm string) bool {
	for _, r := range c.Roles {
		if strings.EqualFold(r, perm) {
			return true
		}
	}
	return false
}

// Options configure Open.
type Options struct {
	// Store holds the meetings bucket.
	Store *store.Store
	// Config gives http.publicUrl, sip.listen/domain, tenants' dial-in
	// numbers and applications' meetingUsers. It must have passed Validate.
	Config *config.Config
	// Directory resolves users and tenants.
	Directory *identity.Directory
	// Now is the clock of creationDateTime and Meet Now; time.Now when nil.
	Now func() time.Time
	// Logger receives the store's logs; discarded when nil.
	Logger *slog.Logger
}

// Store keeps the online meetings. It is safe for concurrent use, by
// several goroutines and by several nodes on one NATS: a meeting's value
// changes by compare-and-set on its revision (retried on a conflict), and
// an index key is created only if absent, which makes joinMeetingId,
// conferenceId and (tenant, organizer, externalId) unique across nodes.
// Lookups read the store every time; nothing is cached.
type Store struct {
	kv     *store.KV
	dir    *identity.Directory
	public string
	sip    string                     // sip.domain when SIP listens, else ""
	policy map[string]map[string]bool // lower-case app id -> lower-case user ids; absent: every user
	now    func() time.Time
	log    *slog.Logger
	// browser lets the join page join from the browser (browser.go); nil
	// until EnableBrowserJoin, set before the node serves HTTP.
	browser *BrowserJoin
	mints   *abuse.Guard[netip.Addr] // guest passes per source address
	streams atomic.Int64             // open roster streams
}

// Open opens (creating if needed) the meetings bucket.
func Open(ctx context.Context, o Options) (*Store, error) {
	kv, err := o.Store.Bucket(ctx, Bucket, 0)
	if err != nil {
		return nil, fmt.Errorf("meetings: %w", err)
	}
	s := &Store{kv: kv, dir: o.Directory, public: o.Config.HTTP.PublicURL, policy: map[string]map[string]bool{},
		now: o.Now, log: o.Logger}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if o.Config.SIP.Listen != "" {
		s.sip = o.Config.SIP.Domain
	}
	for _, a := range o.Config.Applications {
		if len(a.MeetingUsers) == 0 {
			continue
		}
		users := map[string]bool{}
		for _, u := range a.MeetingUsers {
			users[strings.ToLower(u)] = true
		}
		s.policy[strings.ToLower(a.ID)] = users
	}
	return s, nil
}

// Keys of the bucket. The opaque part of a thread id is [A-Za-z0-9]; the
// other parts are digits, lower-case GUIDs and hex, all valid key tokens.
func recordKey(opaque string) string { return "m." + opaque }
func joinIDKey(id string) string     { return "j." + id }
func confIDKey(id string) string     { return "c." + id }
func externalKey(tenantID, userID, externalID string) string {
	h := sha256.Sum256([]byte(externalID))
	return "x." + strings.ToLower(tenantID) + "." + strings.ToLower(userID) + "." + hex.EncodeToString(h[:20])
}

func notFound(what string) error {
	return errs.E(errs.NotFound, "The online meeting %s was not found.", what)
}

func storeFailed(err error, op string) error {
	return errs.Wrap(errs.Unavailable, err, "The meeting could not be %s: the state store did not answer. Retry.", op)
}

// load reads the meeting on the thread whose opaque part is opaque.
func (s *Store) load(ctx context.Context, opaque string) (*Meeting, uint64, error) {
	v, rev, err := s.kv.Get(ctx, recordKey(opaque))
	if errors.Is(err, store.ErrNotFound) {
		return nil, 0, notFound("")
	}
	if err != nil {
		return nil, 0, storeFailed(err, "read")
	}
	var m Meeting
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, 0, errs.Wrap(errs.Internal, err, "A stored meeting could not be read.")
	}
	return &m, rev, nil
}

// byIndex follows an index key to its meeting; check says whether the
// meeting still carries what the index says (an index left behind by a
// delete that stopped half-way points at nothing, or at a meeting that no
// longer matches).
func (s *Store) byIndex(ctx context.Context, key string, check func(*Meeting) bool) (*Meeting, error) {
	v, _, err := s.kv.Get(ctx, key)
	if errors.Is(err, store.ErrNotFound) {
		return nil, notFound("")
	}
	if err != nil {
		return nil, storeFailed(err, "read")
	}
	m, _, err := s.load(ctx, string(v))
	if err != nil {
		return nil, err
	}
	if !check(m) {
		return nil, notFound("")
	}
	return m, nil
}

// ByThreadID returns the meeting of tenant tenantID whose chatInfo.threadId
// is threadID: what a bot joining with chatInfo + organizerMeetingInfo
// names. Another tenant's meeting, or none, is an errs.NotFound error.
func (s *Store) ByThreadID(ctx context.Context, tenantID, threadID string) (*Meeting, error) {
	m, err := s.byThread(ctx, threadID)
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(m.TenantID, tenantID) {
		return nil, notFound("on thread " + threadID)
	}
	return m, nil
}

func (s *Store) byThread(ctx context.Context, threadID string) (*Meeting, error) {
	opaque, ok := threadOpaque(strings.TrimSpace(threadID))
	if !ok {
		return nil, notFound("on thread " + threadID)
	}
	m, _, err := s.load(ctx, opaque)
	if err != nil {
		if errs.KindOf(err) == errs.NotFound {
			return nil, notFound("on thread " + threadID)
		}
		return nil, err
	}
	return m, nil
}

// ByJoinMeetingID returns the meeting of tenant tenantID whose
// joinMeetingIdSettings.joinMeetingId is joinMeetingID (spaces, as people
// write it, are ignored): what a bot joining with joinMeetingIdMeetingInfo
// names. The passcode is the caller's to check (Meeting.PasscodeMatches).
// Another tenant's meeting, or none, is an errs.NotFound error.
func (s *Store) ByJoinMeetingID(ctx context.Context, tenantID, joinMeetingID string) (*Meeting, error) {
	id := strings.ReplaceAll(strings.TrimSpace(joinMeetingID), " ", "")
	if !allDigits(id) {
		return nil, notFound("with joinMeetingId " + joinMeetingID)
	}
	m, err := s.byIndex(ctx, joinIDKey(id), func(m *Meeting) bool {
		return m.JoinMeetingID == id && strings.EqualFold(m.TenantID, tenantID)
	})
	if err != nil && errs.KindOf(err) == errs.NotFound {
		return nil, notFound("with joinMeetingId " + joinMeetingID)
	}
	return m, err
}

// ByConferenceID returns the meeting whose audioConferencing.conferenceId
// is conferenceID (spaces and a trailing '#' are ignored), in whichever
// tenant: what a caller on the dial-in number types. None is an
// errs.NotFound error.
func (s *Store) ByConferenceID(ctx context.Context, conferenceID string) (*Meeting, error) {
	id := strings.TrimSuffix(strings.ReplaceAll(strings.TrimSpace(conferenceID), " ", ""), "#")
	if !allDigits(id) {
		return nil, notFound("with conference id " + conferenceID)
	}
	m, err := s.byIndex(ctx, confIDKey(id), func(m *Meeting) bool { return m.ConferenceID == id })
	if err != nil && errs.KindOf(err) == errs.NotFound {
		return nil, notFound("with conference id " + conferenceID)
	}
	return m, err
}

func allDigits(s string) bool {
	if s == "" || len(s) > 32 {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// authorize checks that c may read (or, with write, change) the meetings of
// user userID: the permission, the user in c's tenant, and the access
// policy. It returns the user as configured.
func (s *Store) authorize(c Caller, userID string, write bool) (*config.User, error) {
	if write && !c.has(PermissionReadWrite) {
		return nil, errs.E(errs.Forbidden,
			"Insufficient privileges to complete the operation. The application needs the %s application permission.", PermissionReadWrite)
	}
	if !write && !c.has(PermissionRead) && !c.has(PermissionReadWrite) {
		return nil, errs.E(errs.Forbidden,
			"Insufficient privileges to complete the operation. The application needs one of these application permissions: %s, %s.",
			PermissionRead, PermissionReadWrite)
	}
	u, ok := s.dir.User(c.TenantID, userID)
	if !ok {
		return nil, errs.E(errs.NotFound, "The user '%s' does not exist in tenant %s.", userID, c.TenantID)
	}
	if err := s.allowed(c, u.ID); err != nil {
		return nil, err
	}
	return u, nil
}

// allowed applies the access policy: applications[].meetingUsers.
func (s *Store) allowed(c Caller, userID string) error {
	users, limited := s.policy[strings.ToLower(c.AppID)]
	if limited && !users[strings.ToLower(userID)] {
		// Graph's own words when no application access policy grants the app this user.
		return errs.E(errs.Forbidden, "No application access policy found for this app.")
	}
	return nil
}

// Create makes a meeting organized by user userID (Meet Now when the
// request has no dates) and returns it.
func (s *Store) Create(ctx context.Context, c Caller, userID string, req *graph.OnlineMeeting) (*Meeting, error) {
	u, err := s.authorize(c, userID, true)
	if err != nil {
		return nil, err
	}
	m, err := s.newMeeting(c, u, req)
	if err != nil {
		return nil, err
	}
	m.ExternalID = ""
	if err := s.insert(ctx, m); err != nil {
		return nil, err
	}
	return m, nil
}

// CreateOrGet returns the meeting user userID organizes with the request's
// externalId, creating it (created true) if there is none. Concurrent
// calls with one externalId, on any nodes, return one meeting.
func (s *Store) CreateOrGet(ctx context.Context, c Caller, userID string, req *graph.OnlineMeeting) (m *Meeting, created bool, err error) {
	u, err := s.authorize(c, userID, true)
	if err != nil {
		return nil, false, err
	}
	if strings.TrimSpace(req.ExternalID) == "" {
		return nil, false, errs.E(errs.BadRequest, "externalId is required by createOrGet.")
	}
	if m, err := s.byExternalID(ctx, c.TenantID, u.ID, req.ExternalID); err == nil || errs.KindOf(err) != errs.NotFound {
		return m, false, err
	}
	m, err = s.newMeeting(c, u, req)
	if err != nil {
		return nil, false, err
	}
	if err := s.insert(ctx, m); err != nil {
		return nil, false, err
	}
	opaque, _ := threadOpaque(m.ThreadID)
	key := externalKey(m.TenantID, m.OrganizerID, m.ExternalID)
	for range 10 {
		_, err := s.kv.Create(ctx, key, []byte(opaque))
		if err == nil {
			return m, true, nil
		}
		if !errors.Is(err, store.ErrExists) {
			s.remove(m)
			return nil, false, storeFailed(err, "created")
		}
		// Someone else holds the externalId: theirs wins if it still exists.
		v, rev, err := s.kv.Get(ctx, key)
		if errors.Is(err, store.ErrNotFound) {
			continue // deleted meanwhile: try to take it again
		}
		if err != nil {
			s.remove(m)
			return nil, false, storeFailed(err, "created")
		}
		other, _, err := s.load(ctx, string(v))
		if err == nil && other.ExternalID == m.ExternalID {
			s.remove(m)
			return other, false, nil
		}
		if err != nil && errs.KindOf(err) != errs.NotFound {
			s.remove(m)
			return nil, false, err
		}
		// The index outlived its meeting (a delete stopped half-way): take it over.
		if _, err := s.kv.Update(ctx, key, []byte(opaque), rev); err == nil {
			return m, true, nil
		} else if !errors.Is(err, store.ErrConflict) {
			s.remove(m)
			return nil, false, storeFailed(err, "created")
		}
	}
	s.remove(m)
	return nil, false, errs.E(errs.Unavailable, "The meeting with externalId %q is being changed by other requests; retry.", req.ExternalID)
}

func (s *Store) byExternalID(ctx context.Context, tenantID, userID, externalID string) (*Meeting, error) {
	return s.byIndex(ctx, externalKey(tenantID, userID, externalID), func(m *Meeting) bool {
		return m.ExternalID == externalID && strings.EqualFold(m.OrganizerID, userID)
	})
}

// insert stores a new meeting: first its joinMeetingId and conferenceId
// (each drawn again while taken), then the meeting. On failure nothing it
// stored is left behind.
func (s *Store) insert(ctx context.Context, m *Meeting) error {
	opaque, _ := threadOpaque(m.ThreadID)
	reserve := func(key func(string) string, digits int) (string, error) {
		for range 20 {
			id := randomDigits(digits)
			_, err := s.kv.Create(ctx, key(id), []byte(opaque))
			if err == nil {
				return id, nil
			}
			if !errors.Is(err, store.ErrExists) {
				return "", storeFailed(err, "created")
			}
		}
		return "", errs.E(errs.Unavailable, "No free meeting id was found; retry.")
	}
	var err error
	if m.JoinMeetingID, err = reserve(joinIDKey, 12); err != nil {
		return err
	}
	if m.ConferenceID, err = reserve(confIDKey, 9); err != nil {
		s.remove(m)
		return err
	}
	b, err := json.Marshal(m)
	if err != nil {
		s.remove(m)
		return errs.Wrap(errs.Internal, err, "The meeting could not be encoded.")
	}
	if _, err := s.kv.Create(ctx, recordKey(opaque), b); err != nil {
		s.remove(m)
		return storeFailed(err, "created")
	}
	s.log.Info("meeting created", "meeting", m.ID, "tenant", m.TenantID, "organizer", m.OrganizerID, "app", m.CreatedBy,
		"joinMeetingId", m.JoinMeetingID, "conferenceId", m.ConferenceID)
	return nil
}

// remove deletes a meeting and the index keys that point at it, the
// meeting first so that a lookup never finds half a meeting. It runs on its
// own context: an undo must not be cut short by the request's.
func (s *Store) remove(m *Meeting) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opaque, _ := threadOpaque(m.ThreadID)
	var keys []string
	keys = append(keys, recordKey(opaque))
	if m.JoinMeetingID != "" {
		keys = append(keys, joinIDKey(m.JoinMeetingID))
	}
	if m.ConferenceID != "" {
		keys = append(keys, confIDKey(m.ConferenceID))
	}
	if m.ExternalID != "" {
		// Only if it is this meeting's: a createOrGet that lost the race
		// must not drop the winner's.
		k := externalKey(m.TenantID, m.OrganizerID, m.ExternalID)
		if v, _, err := s.kv.Get(ctx, k); err == nil && string(v) == opaque {
			keys = append(keys, k)
		}
	}
	for _, k := range keys {
		if err := s.kv.Delete(ctx, k); err != nil {
			s.log.Warn("meeting key left behind", "meeting", m.ID, "key", k, "err", err)
		}
	}
}

// get returns the meeting id if user userID of c's tenant is invited to it.
func (s *Store) get(ctx context.Context, c Caller, userID, id string) (*Meeting, uint64, error) {
	organizer, threadID, ok := parseMeetingID(id)
	opaque, ok2 := threadOpaque(threadID)
	if !ok || !ok2 {
		return nil, 0, notFound("'" + id + "'")
	}
	m, rev, err := s.load(ctx, opaque)
	if err != nil {
		if errs.KindOf(err) == errs.NotFound {
			return nil, 0, notFound("'" + id + "'")
		}
		return nil, 0, err
	}
	if !strings.EqualFold(m.OrganizerID, organizer) || !strings.EqualFold(m.TenantID, c.TenantID) || !m.Invited(userID) {
		return nil, 0, notFound("'" + id + "'")
	}
	return m, rev, nil
}

// Get returns meeting id, which user userID organizes or is invited to.
func (s *Store) Get(ctx context.Context, c Caller, userID, id string) (*Meeting, error) {
	u, err := s.authorize(c, userID, false)
	if err != nil {
		return nil, err
	}
	m, _, err := s.get(ctx, c, u.ID, id)
	return m, err
}

// Update applies a PATCH body (its properties, undecoded) to meeting id,
// which user userID organizes, and returns the meeting as changed. A
// property Graph does not let a PATCH change is a 400 naming it.
func (s *Store) Update(ctx context.Context, c Caller, userID, id string, body map[string]json.RawMessage) (*Meeting, error) {
	u, err := s.authorize(c, userID, true)
	if err != nil {
		return nil, err
	}
	for range 10 {
		m, rev, err := s.get(ctx, c, u.ID, id)
		if err != nil {
			return nil, err
		}
		if !strings.EqualFold(m.OrganizerID, u.ID) {
			return nil, errs.E(errs.Forbidden, "Only the meeting's organizer can change it; %s is invited to it.", u.ID)
		}
		if err := applyPatch(m, body); err != nil {
			return nil, err
		}
		b, err := json.Marshal(m)
		if err != nil {
			return nil, errs.Wrap(errs.Internal, err, "The meeting could not be encoded.")
		}
		opaque, _ := threadOpaque(m.ThreadID)
		if _, err := s.kv.Update(ctx, recordKey(opaque), b, rev); err == nil {
			return m, nil
		} else if !errors.Is(err, store.ErrConflict) {
			return nil, storeFailed(err, "updated")
		}
		// Changed (or deleted) since it was read: read it again.
	}
	return nil, errs.E(errs.Unavailable, "The meeting is being changed by other requests; retry.")
}

// Delete deletes meeting id, which user userID organizes. Its join link,
// joinMeetingId and conference id stop working at once.
func (s *Store) Delete(ctx context.Context, c Caller, userID, id string) error {
	u, err := s.authorize(c, userID, true)
	if err != nil {
		return err
	}
	m, _, err := s.get(ctx, c, u.ID, id)
	if err != nil {
		return err
	}
	if !strings.EqualFold(m.OrganizerID, u.ID) {
		return errs.E(errs.Forbidden, "Only the meeting's organizer can delete it; %s is invited to it.", u.ID)
	}
	opaque, _ := threadOpaque(m.ThreadID)
	if err := s.kv.Delete(ctx, recordKey(opaque)); err != nil {
		return storeFailed(err, "deleted")
	}
	s.remove(m) // the index keys; the meeting itself is gone already
	s.log.Info("meeting deleted", "meeting", m.ID, "tenant", m.TenantID, "app", c.AppID)
	return nil
}
