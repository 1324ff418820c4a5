package callctl

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"strconv"
	"strings"

	"github.com/nats-io/nats.go"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/ids"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Permissions (https://learn.microsoft.com/graph/permissions-reference).
const (
	PermInitiate          = "Calls.Initiate.All"
	PermInitiateGroupCall = "Calls.InitiateGroupCall.All"
	PermJoinGroupCall     = "Calls.JoinGroupCall.All"
	PermJoinAsGuest       = "Calls.JoinGroupCallAsGuest.All"
	PermAccessMedia       = "Calls.AccessMedia.All"
)

// maxGroupTargets bounds the targets of one group call.
const maxGroupTargets = 25

func badRequest(format string, args ...any) error { return errs.E(errs.BadRequest, format, args...) }

// Create places an outbound call (POST /communications/calls) and returns
// the call as the 201 response shows it, in state establishing.
func (m *Manager) Create(ctx context.Context, c Caller, req *graph.Call) (*graph.Call, error) {
	return m.create(ctx, c, req, false)
}

// create is Create; forwarded: another node sent the create here, to the
// meeting's room's node, and the call joins the room here.
func (m *Manager) create(ctx context.Context, c Caller, req *graph.Call, forwarded bool) (*graph.Call, error) {
	if req.TenantID != "" && !strings.EqualFold(req.TenantID, c.TenantID) {
		return nil, errs.E(errs.Forbidden, "request authorization tenant mismatch")
	}
	if req.CallbackURI == "" {
		return nil, badRequest("callbackUri is required.")
	}
	if err := m.cfg.CheckCallbackURI(req.CallbackURI); err != nil {
		return nil, badRequest("callbackUri: %v", err)
	}
	if req.MediaConfig == nil {
		return nil, badRequest("mediaConfig is required.")
	}
	req.MediaConfig.Normalize()
	if err := m.checkMediaMode(c, req.MediaConfig); err != nil {
		return nil, err
	}
	var mt *Meeting
	if req.MeetingInfo != nil || req.ChatInfo != nil {
		if err := c.require(PermJoinGroupCall, PermJoinAsGuest); err != nil {
			return nil, err
		}
		var err error
		if mt, err = m.findMeeting(ctx, c, req); err != nil {
			return nil, err
		}
		// One room per meeting: a room mixed on another node gets the
		// call there (cascade.go). A create forwarded here joins here
		// (no second hop), claiming the room if it closed meanwhile.
		h, err := m.placeRoom(ctx, mt)
		if err != nil {
			m.log.Warn("meeting room: cannot tell which node mixes it; opening it here", "meeting", mt.ID, "err", err)
		}
		switch {
		case h != nil && forwarded:
			m.log.Warn("meeting room: moved to another node while a join was forwarded here; joining a room here", "meeting", mt.ID, "node", h.Node)
		case h != nil:
			m.joinsForwarded.Inc()
			call, err := m.forwardCreate(ctx, h.Node, c, req)
			if !errors.Is(err, nats.ErrNoResponders) {
				return call, err
			}
			// It went away since it answered: nothing was created there.
			m.log.Warn("meeting room: its node did not take the bot's call; joining a room here", "meeting", mt.ID, "node", h.Node, "err", err)
		}
		req.Targets = []graph.InvitationParticipantInfo{}
	}
	group := len(req.Targets) > 1
	switch n := len(req.Targets); {
	case mt != nil:
	case n == 0:
		return nil, badRequest("targets is required: a call needs at least one target.")
	case n > maxGroupTargets:
		return nil, badRequest("targets: at most %d targets, got %d.", maxGroupTargets, n)
	case group:
		if err := c.require(PermInitiateGroupCall); err != nil {
			return nil, err
		}
		if m.o.Conferences == nil {
			return nil, errs.E(errs.NotSupported, "Group calls (more than one target) are not supported by this node: it has no conference media.")
		}
	default:
		if err := c.require(PermInitiate); err != nil {
			return nil, err
		}
	}
	for i, mod := range req.RequestedModalities {
		if mod != graph.ModalityAudio {
			return nil, errs.E(errs.NotSupported, "requestedModalities[%d]: %q is not supported; Switchboard calls carry audio.", i, mod)
		}
	}
	app, ok := m.dir.App(c.AppID)
	if !ok {
		return nil, errs.E(errs.Unauthenticated, "The application is not registered.")
	}

	myID := ids.New()
	source, err := m.resolveSource(c, myID, app.DisplayName, req.Source)
	if err != nil {
		return nil, err
	}
	if mt != nil && !c.has(PermJoinGroupCall) {
		// Calls.JoinGroupCallAsGuest.All alone: the bot is in the meeting
		// as a guest, and shows so in its roster.
		name := app.DisplayName
		if req.Source != nil && req.Source.Identity != nil && req.Source.Identity.Guest != nil && req.Source.Identity.Guest.DisplayName != "" {
			name = req.Source.Identity.Guest.DisplayName
		}
		source.Identity = &graph.IdentitySet{Guest: &graph.Identity{ID: c.AppID, DisplayName: name}}
		normIdentitySet(source.Identity)
	}
	targets := make([]Target, len(req.Targets))
	for i, t := range req.Targets {
		tg, err := m.resolveTarget(c, t, source)
		if err != nil {
			return nil, errs.E(errs.KindOf(err), "%s", strings.Replace(errs.Message(err), "targets[0]", "targets["+strconv.Itoa(i)+"]", 1))
		}
		tg.From, tg.FromName = m.presented(c, source)
		targets[i] = tg
		req.Targets[i].ODataType = graph.TypeInvitationParticipantInfo
		normIdentitySet(req.Targets[i].Identity)
	}
	if err := m.reserve(ctx, c); err != nil {
		return nil, err
	}

	now := m.clk.Now()
	id := ids.New()
	call := graph.Call{
		ID:                      id,
		State:                   graph.StateEstablishing,
		Direction:               graph.DirectionOutgoing,
		CallbackURI:             req.CallbackURI,
		CallChainID:             ids.New(),
		CallOptions:             req.CallOptions,
		MediaConfig:             req.MediaConfig,
		MyParticipantID:         myID,
		RequestedModalities:     []graph.Modality{graph.ModalityAudio},
		Source:                  source,
		Subject:                 req.Subject,
		Targets:                 req.Targets,
		TenantID:                c.TenantID,
		RingingTimeoutInSeconds: req.RingingTimeoutInSeconds,
	}
	ringFor := m.cfg.Calls.RingTimeout.D()
	if s := req.RingingTimeoutInSeconds; s != nil && *s > 0 && *s <= 115 {
		ringFor = secs(*s)
	}
	rec := &Record{
		Call: call, AppID: normID(c.AppID), TenantID: normID(c.TenantID), Node: m.o.Node,
		Participants: []graph.Participant{participant(call.MyParticipantID, source.Identity, "1")},
		NextSource:   1,
		Created:      now, LastKeepAlive: now, RingBy: now.Add(ringFor),
	}
	if mt != nil {
		// The room gives the roster.
		rec.Participants, rec.NextSource = nil, 0
		rec.Meeting = mt.ID
		rec.Call.ChatInfo = &graph.ChatInfo{ODataType: graph.TypeChatInfo, ThreadID: mt.ThreadID, MessageID: "0"}
		rec.Call.MeetingInfo = req.MeetingInfo
		if rec.Call.MeetingInfo == nil {
			rec.Call.MeetingInfo = &graph.MeetingInfo{ODataType: graph.TypeOrganizerMeetingInfo, Organizer: mt.Organizer}
		}
		call = rec.Call
	} else if !group {
		// A two-party call's roster is the bot and its one target.
		rec.Participants = append(rec.Participants, participant(ids.New(), req.Targets[0].Identity, "2"))
		rec.NextSource = 2
	}
	data, err := json.Marshal(rec)
	if err != nil {
		m.release(c)
		return nil, errs.Wrap(errs.Internal, err, "encode call")
	}
	rev, err := m.calls.Create(ctx, id, data)
	if err != nil {
		m.release(c)
		return nil, errs.Wrap(errs.Unavailable, err, "The call store is unavailable.")
	}
	a := m.spawn(rec, rev)
	if a == nil {
		return nil, m.unspawned(c, id)
	}
	m.prefetch(req.MediaConfig)
	// Reply once the far end is being dialed and that is stored, so what
	// follows the 201 (a bot's next request, a test's clock) finds the leg
	// under way.
	dialed := make(chan result, 1)
	a.post(func(a *actor) {
		switch {
		case mt != nil:
			a.joinMeeting(mt)
		case group:
			a.startGroup(targets, req.Targets)
		default:
			a.startOutbound(targets[0])
		}
		a.replies = append(a.replies, reply{done: dialed})
	})
	select {
	case r := <-dialed:
		if r.err != nil {
			// The bot hears 503 and never learns the call id: the call
			// must not go on without it.
			a.post(func(a *actor) { a.end(errs.StoreFailed, true) })
			return nil, r.err
		}
	case <-a.quit:
		return nil, errs.E(errs.Unavailable, "This Switchboard node is stopping.")
	case <-ctx.Done():
	}
	out := call
	out.ODataType = graph.TypeCall
	return &out, nil
}

// unspawned undoes the creation of a call whose actor could not start
// because the node began to shut down meanwhile: the bot never hears of
// it, so nothing of it may stay (its record would be resumed on the next
// start, its slot counted against the app).
func (m *Manager) unspawned(c Caller, id string) error {
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if err := m.calls.Delete(ctx, id); err != nil {
		m.log.Warn("remove the record of a call refused at shutdown", "call", id, "err", err)
	}
	m.release(c)
	return errs.E(errs.Unavailable, "This Switchboard node is shutting down.")
}

// resolveSource fills in the bot's identity, checking an applicationInstance
// source is one of the application's numbers.
func (m *Manager) resolveSource(c Caller, myID, appName string, src *graph.ParticipantInfo) (*graph.ParticipantInfo, error) {
	out := &graph.ParticipantInfo{ODataType: graph.TypeParticipantInfo, ID: myID}
	if src != nil && src.Identity != nil && src.Identity.ApplicationInstance != nil {
		inst := src.Identity.ApplicationInstance
		if _, _, ok := m.dir.AppInstance(c.AppID, inst.ID); !ok {
			return nil, badRequest("source.identity.applicationInstance.id: %q is not an application instance (number) of this application.", inst.ID)
		}
		name := inst.DisplayName
		if name == "" {
			name = appName // the number's resource account is the app's
		}
		set := &graph.IdentitySet{ApplicationInstance: &graph.Identity{ID: inst.ID, DisplayName: name, TenantID: c.TenantID}}
		normIdentitySet(set)
		out.Identity = set
		return out, nil
	}
	set := &graph.IdentitySet{Application: &graph.Identity{ID: c.AppID, DisplayName: appName}}
	normIdentitySet(set)
	out.Identity = set
	return out, nil
}

// resolveTarget turns a Graph target into something the dialer can call.
func (m *Manager) resolveTarget(c Caller, t graph.InvitationParticipantInfo, source *graph.ParticipantInfo) (Target, error) {
	kind, ident := t.Identity.Primary()
	switch kind {
	case "user":
		u, ok := m.dir.User(c.TenantID, ident.ID)
		if !ok {
			return Target{}, badRequest("targets[0].identity.user.id: %q is not a user of tenant %s.", ident.ID, c.TenantID)
		}
		if ident.DisplayName == "" {
			ident.DisplayName = u.DisplayName
		}
		return Target{TenantID: c.TenantID, UserID: u.ID, DisplayName: u.DisplayName}, nil
	case "phone":
		if source.Identity.ApplicationInstance == nil {
			return Target{}, errs.E(errs.NotSupported, "Calls to phone numbers need source.identity.applicationInstance: the application instance (number) the call comes from.")
		}
		if !validE164(ident.ID) {
			return Target{}, badRequest("targets[0].identity.phone.id: %q is not an E.164 number (+15550100).", ident.ID)
		}
		return Target{TenantID: c.TenantID, Phone: ident.ID, DisplayName: ident.DisplayName}, nil
	case "":
		return Target{}, badRequest("targets[0].identity: no user or phone identity given.")
	}
	return Target{}, errs.E(errs.NotSupported, "targets[0].identity.%s: calling a %s is not supported; call a user or a phone number.", kind, kind)
}

func validE164(s string) bool {
	if len(s) < 3 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for _, r := range s[1:] {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// reserve counts a new call of c against calls.maxConcurrentPerApp: on
// this node first (no round trip), then across the nodes (limits.go).
func (m *Manager) reserve(ctx context.Context, c Caller) error {
	key := normID(c.AppID) + "|" + normID(c.TenantID)
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		return errs.E(errs.Unavailable, "This Switchboard node is shutting down.")
	}
	if m.perApp[key] >= m.cfg.Calls.MaxConcurrentPerApp {
		n := m.perApp[key]
		m.mu.Unlock()
		return errs.E(errs.Throttled, "The application has %d concurrent calls in this tenant, the limit (calls.maxConcurrentPerApp).", n)
	}
	m.perApp[key]++
	m.mu.Unlock()
	if m.limits != nil {
		if err := m.limits.acquire(ctx, limitKeyName(normID(c.AppID), normID(c.TenantID))); err != nil {
			m.uncount(key)
			return err
		}
	}
	return nil
}

// release gives back the slot reserve (or a resumed call) took.
func (m *Manager) release(c Caller) {
	m.uncount(normID(c.AppID) + "|" + normID(c.TenantID))
	if m.limits != nil {
		m.limits.release(limitKeyName(normID(c.AppID), normID(c.TenantID)))
	}
}

func (m *Manager) uncount(key string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.perApp[key]--; m.perApp[key] <= 0 {
		delete(m.perApp, key)
	}
}

// IncomingCall describes a call arriving for a bot.
type IncomingCall struct {
	TenantID string
	AppID    string
	// Caller is who is calling.
	Caller *graph.IdentitySet
	// Called is whom the caller dialed: the bot's applicationInstance or application.
	Called *graph.IdentitySet
	// NewLeg builds the caller's leg once the call exists, with the
	// callback its events go to.
	NewLeg func(callID string, ev func(LegEvent)) Leg
}

// ErrNoBot is returned by Incoming when the application cannot take calls.
var ErrNoBot = errors.New("callctl: the application has no callbackUri")

// Incoming creates an incoming call, announces it to the application's
// webhook and waits for answer, reject or redirect.
func (m *Manager) Incoming(ctx context.Context, in IncomingCall) (string, error) {
	app, ok := m.dir.App(in.AppID)
	if !ok || app.CallbackURI == "" {
		return "", ErrNoBot
	}
	c := Caller{TenantID: in.TenantID, AppID: app.ID}
	if err := m.reserve(ctx, c); err != nil {
		return "", err
	}
	now := m.clk.Now()
	id := ids.New()
	caller := in.Caller
	if !privileged(app.Permissions) {
		caller = encrypted(m.pepper, caller)
	}
	normIdentitySet(caller)
	normIdentitySet(in.Called)
	src := &graph.ParticipantInfo{ODataType: graph.TypeParticipantInfo, ID: ids.New(), Identity: caller,
		EndpointType: "default", LanguageID: "en-US"}
	call := graph.Call{
		ID: id, State: graph.StateIncoming, Direction: graph.DirectionIncoming,
		CallbackURI: app.CallbackURI, CallChainID: ids.New(), MyParticipantID: ids.New(),
		RequestedModalities: []graph.Modality{graph.ModalityAudio},
		Source:              src,
		Targets:             []graph.InvitationParticipantInfo{{ODataType: graph.TypeInvitationParticipantInfo, Identity: in.Called}},
		TenantID:            normID(in.TenantID),
	}
	rec := &Record{
		Call: call, AppID: normID(app.ID), TenantID: normID(in.TenantID), Node: m.o.Node,
		Participants: []graph.Participant{
			participant(call.MyParticipantID, in.Called, "1"),
			participant(src.ID, caller, "2"),
		},
		Created: now, LastKeepAlive: now, AnswerBy: now.Add(m.cfg.Calls.AnswerTimeout.D()),
	}
	data, err := json.Marshal(rec)
	if err != nil {
		m.release(c)
		return "", errs.Wrap(errs.Internal, err, "encode call")
	}
	rev, err := m.calls.Create(ctx, id, data)
	if err != nil {
		m.release(c)
		return "", errs.Wrap(errs.Unavailable, err, "The call store is unavailable.")
	}
	a := m.spawn(rec, rev)
	if a == nil {
		return "", m.unspawned(c, id)
	}
	a.post(func(a *actor) { a.startIncoming(in.NewLeg) })
	return id, nil
}

// privileged reports whether an app may see who calls it: without one of
// these permissions the caller is an encrypted identity
// (https://learn.microsoft.com/graph/api/call-answer).
func privileged(perms []string) bool {
	for _, p := range perms {
		for _, q := range []string{PermAccessMedia, PermInitiate, PermInitiateGroupCall, PermJoinGroupCall, PermJoinAsGuest} {
			if strings.EqualFold(p, q) {
				return true
			}
		}
	}
	return false
}

// encrypted hides a caller behind a keyed hash: stable for the same caller
// (a bot can recognise a repeat caller) but not reversible by trying every
// phone number.
func encrypted(pepper []byte, s *graph.IdentitySet) *graph.IdentitySet {
	_, id := s.Primary()
	mac := hmac.New(sha256.New, pepper)
	mac.Write([]byte(id.ID))
	return &graph.IdentitySet{Encrypted: &graph.Identity{ID: hex.EncodeToString(mac.Sum(nil)[:16])}}
}

// normIdentitySet writes the odata types Graph clients expect: a set that
// carries phone, applicationInstance, guest or encrypted identities is a
// communicationsIdentitySet (docs/decisions.md#identity-sets), each identity
// an identity.
func normIdentitySet(s *graph.IdentitySet) {
	if s == nil {
		return
	}
	s.ODataType = graph.TypeIdentitySet
	if s.Phone != nil || s.ApplicationInstance != nil || s.Guest != nil || s.Encrypted != nil ||
		s.AzureCommunicationServicesUser != nil || s.AssertedIdentity != nil {
		s.ODataType = graph.TypeCommsIdentitySet
	}
	for _, id := range []*graph.Identity{s.User, s.Application, s.ApplicationInstance, s.Phone, s.Guest,
		s.Encrypted, s.OnPremises, s.AssertedIdentity, s.AzureCommunicationServicesUser, s.Device} {
		if id != nil {
			id.ODataType = graph.TypeIdentity
		}
	}
}

// participant is a roster entry with one audio stream; sourceID tells the
// streams of a call apart.
func participant(id string, ident *graph.IdentitySet, sourceID string) graph.Participant {
	return graph.Participant{
		ODataType: graph.TypeParticipant,
		ID:        id,
		Info:      &graph.ParticipantInfo{ODataType: graph.TypeParticipantInfo, Identity: ident, LanguageID: "en-US"},
		MediaStreams: []graph.MediaStream{{ODataType: graph.TypeMediaStream, MediaType: graph.ModalityAudio,
			Label: "main-audio", SourceID: sourceID, Direction: graph.MediaSendReceive}},
	}
}

// prefetch starts fetching a media config's preFetchMedia.
func (m *Manager) prefetch(mc *graph.MediaConfig) {
	if m.o.Prompts == nil || mc == nil || mc.AppHosted() || len(mc.PreFetchMedia) == 0 {
		return
	}
	m.goBG(func(ctx context.Context) { m.o.Prompts.Prefetch(ctx, mc.PreFetchMedia) })
}

// presented is the identity an outbound leg shows the far end: the number
// of an applicationInstance source, else the application's id.
func (m *Manager) presented(c Caller, source *graph.ParticipantInfo) (string, string) {
	if inst := source.Identity.ApplicationInstance; inst != nil {
		if num, _, ok := m.dir.AppInstance(c.AppID, inst.ID); ok {
			return num, inst.DisplayName
		}
	}
	if app := source.Identity.Application; app != nil {
		return app.ID, app.DisplayName
	}
	return "", ""
}
