package callctl

import (
	"context"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/ids"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Meetings (https://learn.microsoft.com/graph/api/application-post-calls,
// "join a scheduled meeting"): a bot joins an online meeting by its
// chatInfo and organizer, or by its joinMeetingId and passcode. A meeting
// that anyone is in has a room: its conference, and everyone in it —
// the bots' calls and the people (legs the room owns, so they stay when
// the bot that invited them leaves). Every bot in the room sees the whole
// roster, the other bots included, and is told of each change. The room
// starts with its first participant and closes with its last; joining
// a meeting whose room closed starts a new one.
//
// A room is shared by several actors, so it is guarded by its own mutex,
// never held while posting to an actor or waiting for one; what it tells
// a bot's call reaches it as a step in that call's mailbox.

// Meeting is what call control needs of an online meeting
// (internal/meetings keeps them).
type Meeting struct {
	ID               string
	TenantID         string
	ThreadID         string
	JoinMeetingID    string
	Passcode         string
	PasscodeRequired bool
	Subject          string
	Organizer        *graph.IdentitySet
	// ConferenceID is what a caller enters at the dial-in number.
	ConferenceID string
	// DialInBypassesLobby lets dial-in callers straight in
	// (lobbyBypassSettings.isDialInBypassEnabled); else they wait in the
	// lobby until a bot admits them.
	DialInBypassesLobby bool
	// EveryoneBypassesLobby lets anyone straight in, guests from the join
	// page included (lobbyBypassSettings.scope everyone).
	EveryoneBypassesLobby bool
}

// Meetings finds the meetings bots join. Errors are classified with errs
// (NotFound for an unknown or deleted meeting).
type Meetings interface {
	ByThreadID(ctx context.Context, tenantID, threadID string) (*Meeting, error)
	ByJoinMeetingID(ctx context.Context, tenantID, joinMeetingID string) (*Meeting, error)
	ByConferenceID(ctx context.Context, conferenceID string) (*Meeting, error)
}

// RoomMedia is a meeting's conference: the people's legs on it, and a
// port for each bot in it.
type RoomMedia interface {
	Add(pid string, s *media.Session) error
	Remove(pid string)
	MuteMember(pid string, muted bool)
	// NewPort gives a bot its side of the conference: what it plays
	// everyone hears, what it records is everyone else.
	NewPort(name string) (BotPort, error)
	Close()
}

// BotPort is one bot's side of a meeting's conference.
type BotPort interface {
	MediaPort
	Close()
}

// Rooms makes the conference of a meeting, telling onDominant of each new
// dominant speaker as Conferences does; nil (Options.Rooms) refuses
// meeting joins.
type Rooms func(meetingID string, onDominant func(pid string)) (RoomMedia, error)

// room is a meeting in progress on this node.
type room struct {
	m       *Manager
	meeting Meeting

	mu      sync.Mutex
	media   RoomMedia
	bots    []*roomBot
	people  []*roomMember
	order   []string // participant ids, in the order they joined
	parts   map[string]*graph.Participant
	sources int
	closed  bool
	events  serial // the people's leg events, in order

	lastDominant  time.Time // the last roster told for a dominant-speaker change
	dominantLater bool      // a later one is due

	claimRev uint64 // the revision of the room's claim in RoomsBucket (cascade.go); 0 without one. Guarded by m.mu.
}

type roomBot struct {
	a    *actor
	pid  string
	port BotPort
}

type roomMember struct {
	pid    string
	leg    Leg
	early  bool // answered before Dial returned its leg
	target graph.InvitationParticipantInfo
	joined bool
	op     string // the invite that dialed it, of the call inviter
	by     *actor
}

// room returns the meeting's room, opening it if nobody is in it.
func (m *Manager) room(mt *Meeting) (*room, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if r := m.rooms[mt.ID]; r != nil {
		return r, nil
	}
	if m.o.Rooms == nil {
		return nil, errs.E(errs.NotSupported, "Joining meetings is not supported by this node: it has no conference media.")
	}
	r := &room{m: m, meeting: *mt, parts: map[string]*graph.Participant{}, events: serial{m: m}}
	rm, err := m.o.Rooms(mt.ID, func(pid string) { r.events.do(func() { r.dominantIs(pid) }) })
	if err != nil {
		return nil, err
	}
	r.media = rm
	m.rooms[mt.ID] = r
	if rev, ok := m.roomClaims[mt.ID]; ok {
		r.claimRev = rev
		delete(m.roomClaims, mt.ID)
	}
	return r, nil
}

// join puts a bot's call in the room and gives it its port.
func (r *room) join(a *actor) (BotPort, error) {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, errs.E(errs.Unavailable, "The meeting's conference closed while the bot joined; join again.")
	}
	var port BotPort
	var err error
	if a.appHosted() {
		// The bot hosts its media: its port is an app port (appmedia.go).
		ac, ok := r.media.(appConference)
		if !ok {
			r.mu.Unlock()
			return nil, errs.E(errs.NotSupported, "This node's meeting conferences have no app-hosted media.")
		}
		var ap *media.AppPort
		if ap, err = ac.NewAppPort(a.rec.Call.ID, a.appOptions()); err == nil {
			a.appPort, port = ap, ap
		}
	} else {
		port, err = r.media.NewPort(a.rec.Call.ID)
	}
	if err != nil {
		r.mu.Unlock()
		return nil, err
	}
	pid := a.rec.Call.MyParticipantID
	r.bots = append(r.bots, &roomBot{a: a, pid: pid, port: port})
	r.addPart(participant(pid, a.rec.Call.Source.Identity, ""))
	r.mu.Unlock()
	r.broadcast()
	return port, nil
}

// addPart adds a roster entry with the next sourceId. The caller holds r.mu.
func (r *room) addPart(p graph.Participant) {
	r.sources++
	for i := range p.MediaStreams {
		p.MediaStreams[i].SourceID = strconv.Itoa(r.sources)
	}
	r.parts[p.ID] = &p
	r.order = append(r.order, p.ID)
}

// dropPart removes a roster entry. The caller holds r.mu.
func (r *room) dropPart(pid string) {
	delete(r.parts, pid)
	for i, id := range r.order {
		if id == pid {
			r.order = append(r.order[:i], r.order[i+1:]...)
			break
		}
	}
}

// roster is the room's roster now. The caller holds r.mu.
func (r *room) roster() []graph.Participant {
	out := make([]graph.Participant, 0, len(r.order))
	for _, id := range r.order {
		p := *r.parts[id]
		p.MediaStreams = append([]graph.MediaStream(nil), p.MediaStreams...)
		out = append(out, p)
	}
	return out
}

// broadcast tells every bot in the room the roster as it is now.
func (r *room) broadcast() {
	r.mu.Lock()
	roster := r.roster()
	bots := append([]*roomBot(nil), r.bots...)
	r.mu.Unlock()
	r.m.meetingChanged(r.meeting.ID)
	for _, b := range bots {
		b.a.post(func(a *actor) {
			if a.deleted || a.room != r {
				return
			}
			a.rec.Participants = append([]graph.Participant(nil), roster...)
			a.dirty = true
			a.notifyRoster()
		})
	}
}

// leave takes a bot's call out of the room (it hung up or ended); the
// people stay. The room closes when nobody is left.
func (r *room) leave(a *actor) {
	r.mu.Lock()
	for i, b := range r.bots {
		if b.a == a {
			r.bots = append(r.bots[:i], r.bots[i+1:]...)
			b.port.Close()
			r.dropPart(b.pid)
			break
		}
	}
	r.mu.Unlock()
	r.broadcast()
	r.closeIfEmpty()
}

// closeIfEmpty closes a room nobody is in or being dialed into.
func (r *room) closeIfEmpty() {
	r.mu.Lock()
	if r.closed || len(r.bots) > 0 || len(r.people) > 0 {
		r.mu.Unlock()
		return
	}
	r.closed = true
	r.media.Close()
	r.mu.Unlock()
	r.m.mu.Lock()
	if r.m.rooms[r.meeting.ID] == r {
		delete(r.m.rooms, r.meeting.ID)
	}
	rev := r.claimRev
	r.m.mu.Unlock()
	r.m.freeClaim(r.meeting.ID, rev)
	r.m.meetingChanged(r.meeting.ID)
}

// invite dials people into the room for bot a's invite operation op.
func (r *room) invite(a *actor, op string, targets []Target, infos []graph.InvitationParticipantInfo) {
	for i, t := range targets {
		p := &roomMember{pid: ids.New(), target: infos[i], op: op, by: a}
		r.mu.Lock()
		r.people = append(r.people, p)
		r.mu.Unlock()
		leg, err := r.m.o.Dialer.Dial(a.rec.Call.ID+"-m"+p.pid[:8], t, func(ev LegEvent) { r.personEvent(p, ev) })
		if err != nil {
			reason := errs.CannotRoute
			if re, ok := err.(*RouteError); ok {
				reason = re.Reason
			}
			r.gone(p, reason)
			continue
		}
		r.mu.Lock()
		p.leg = leg
		early := p.early
		r.mu.Unlock()
		if early {
			r.personEvent(p, LegEvent{Kind: LegAnswered})
		}
	}
}

// personEvent queues what a person's leg did, for onPerson.
func (r *room) personEvent(p *roomMember, ev LegEvent) {
	r.events.do(func() { r.onPerson(p, ev) })
}

// onPerson applies what a person's leg did, on the room's event queue.
func (r *room) onPerson(p *roomMember, ev LegEvent) {
	if refuseRefer(ev) {
		return
	}
	switch ev.Kind {
	case LegAnswered:
		r.mu.Lock()
		if p.joined || !r.isPerson(p) {
			r.mu.Unlock()
			return
		}
		if p.leg == nil {
			p.early = true // joins once invite has its leg
			r.mu.Unlock()
			return
		}
		p.joined = true
		r.addPart(participant(p.pid, p.target.Identity, ""))
		if s := sessionOf(p.leg); s != nil {
			if err := r.media.Add(p.pid, s); err != nil {
				r.m.log.Warn("put a meeting participant on the conference", "meeting", r.meeting.ID, "err", err)
			}
		}
		op, by := p.op, p.by
		p.op, p.by = "", nil
		r.mu.Unlock()
		r.broadcast()
		if by != nil {
			by.post(func(a *actor) { a.inviteSettled(op, nil) })
		}
	case LegEnded:
		r.gone(p, ev.Reason)
	case LegTone:
		r.mu.Lock()
		bots := append([]*roomBot(nil), r.bots...)
		r.mu.Unlock()
		for _, b := range bots {
			b.a.post(func(a *actor) {
				if !a.deleted {
					a.appTone(p.pid, ev.Tone)
				}
				a.meetingTone(ev.Tone)
			})
		}
	}
}

func (r *room) isPerson(p *roomMember) bool {
	for _, x := range r.people {
		if x == p {
			return true
		}
	}
	return false
}

// gone takes a person out of the room: off the roster if they had
// joined, their invite failed with reason if not.
func (r *room) gone(p *roomMember, reason errs.EndReason) {
	r.mu.Lock()
	if !r.isPerson(p) {
		r.mu.Unlock()
		return
	}
	for i, x := range r.people {
		if x == p {
			r.people = append(r.people[:i], r.people[i+1:]...)
			break
		}
	}
	joined := p.joined
	if joined {
		r.media.Remove(p.pid)
		r.dropPart(p.pid)
	}
	op, by := p.op, p.by
	r.mu.Unlock()
	if joined {
		r.broadcast()
	}
	if by != nil && op != "" {
		by.post(func(a *actor) { a.inviteSettled(op, &reason) })
	}
	r.closeIfEmpty()
}

// addPerson puts someone who called in into the room, in the lobby or
// on the conference; false when the room has closed meanwhile, is full
// (maxMembers), or holds the same guest (a join page's pass) already.
func (r *room) addPerson(p *roomMember, lobby bool) bool {
	r.mu.Lock()
	if r.closed || len(r.people) >= maxMembers || r.hasGuestLocked(p.target.Identity) {
		r.mu.Unlock()
		return false
	}
	r.people = append(r.people, p)
	part := participant(p.pid, p.target.Identity, "")
	part.IsInLobby = lobby
	r.addPart(part)
	if !lobby {
		if s := sessionOf(p.leg); s != nil {
			if err := r.media.Add(p.pid, s); err != nil {
				r.m.log.Warn("put a dial-in caller on the conference", "meeting", r.meeting.ID, "err", err)
			}
		}
	}
	r.mu.Unlock()
	r.broadcast()
	return true
}

// admit lets someone waiting in the lobby into the conference.
func (r *room) admit(pid string) error {
	r.mu.Lock()
	part := r.parts[pid]
	var p *roomMember
	for _, x := range r.people {
		if strings.EqualFold(x.pid, pid) {
			p = x
		}
	}
	if p == nil || part == nil {
		r.mu.Unlock()
		return r.notHere(pid)
	}
	if !part.IsInLobby {
		r.mu.Unlock()
		return errs.E(errs.Conflict, "Participant %s is not in the lobby.", pid)
	}
	part.IsInLobby = false
	if port := mediaPortOf(p.leg); port != nil {
		port.StopPlay() // the hold music
	}
	if s := sessionOf(p.leg); s != nil {
		if err := r.media.Add(p.pid, s); err != nil {
			r.m.log.Warn("admit to the conference", "meeting", r.meeting.ID, "err", err)
		}
	}
	r.mu.Unlock()
	r.broadcast()
	return nil
}

// mute server-mutes a person of the room.
func (r *room) mute(pid string) error {
	r.mu.Lock()
	p := r.parts[pid]
	isPerson := false
	for _, x := range r.people {
		if x.pid == pid && x.joined {
			isPerson = true
		}
	}
	if p == nil || !isPerson {
		r.mu.Unlock()
		return r.notHere(pid)
	}
	changed := !p.IsMuted
	p.IsMuted = true
	for j := range p.MediaStreams {
		p.MediaStreams[j].ServerMuted = true
	}
	r.media.MuteMember(pid, true)
	r.mu.Unlock()
	if changed {
		r.broadcast()
	}
	return nil
}

// remove drops a person from the room, or cancels their invite.
func (r *room) remove(pid string) error {
	r.mu.Lock()
	var p *roomMember
	for _, x := range r.people {
		if strings.EqualFold(x.pid, pid) {
			p = x
		}
	}
	if p == nil {
		r.mu.Unlock()
		return r.notHere(pid)
	}
	leg := p.leg
	p.leg = nil
	r.mu.Unlock()
	if leg != nil {
		leg.HangUp(errs.EndedByBot)
	}
	c := errs.OpCancelled
	r.gone(p, errs.EndReason{Code: c.Code, Subcode: c.Subcode, Message: c.Message})
	return nil
}

func (r *room) notHere(pid string) error {
	if _, ok := r.parts[pid]; ok {
		return badRequest("Participant %s is a bot in the meeting: a bot leaves by hanging up its own call.", pid)
	}
	return errs.E(errs.NotFound, "Participant %s was not found in the meeting.", pid)
}

// joinMeeting is the first step of a bot's meeting call: into the room.
func (a *actor) joinMeeting(mt *Meeting) {
	a.notifyCall(graph.ChangeUpdated, callChange(&a.rec.Call)) // establishing
	a.armKeepAlive()
	r, err := a.m.room(mt)
	var port BotPort
	if err == nil {
		port, err = r.join(a)
	}
	if err != nil {
		a.log.Error("join meeting", "meeting", mt.ID, "err", err)
		a.end(errs.MediaFailure, false)
		return
	}
	a.room, a.roomPort = r, port
	a.rec.Call.MediaState = &graph.CallMediaState{Audio: graph.MediaStateActive}
	a.setState(graph.StateEstablished)
}

// leaveMeeting takes the bot's call out of its room as the call ends.
func (a *actor) leaveMeeting() {
	if a.room == nil {
		return
	}
	a.room.leave(a)
	a.room, a.roomPort = nil, nil
}

// inviteMeeting dials people into the bot's meeting.
func (a *actor) inviteMeeting(req *graph.InviteParticipantsRequest, targets []Target) (*graph.Operation, error) {
	a.room.mu.Lock()
	n := len(a.room.people) + len(targets)
	a.room.mu.Unlock()
	if n > maxMembers {
		return nil, badRequest("participants: the meeting would have %d people; a meeting holds at most %d besides its bots.", n, maxMembers)
	}
	op := a.newOperation(graph.TypeInviteParticipantsOperation, req.ClientContext, graph.OperationRunning)
	op.Participants = req.Participants
	resp := *op
	a.meetingInvites[op.ID] = len(targets)
	a.room.invite(a, op.ID, targets, req.Participants)
	return &resp, nil
}

// inviteSettled counts an invitee of a meeting invite that joined (nil) or
// failed; the operation completes once all have.
func (a *actor) inviteSettled(opID string, failed *errs.EndReason) {
	if failed != nil {
		a.inviteFailures[opID] = *failed
	} else {
		a.inviteJoined[opID] = true
	}
	a.meetingInvites[opID]--
	if a.meetingInvites[opID] > 0 {
		return
	}
	delete(a.meetingInvites, opID)
	op := a.rec.operation(opID)
	if op == nil || op.Status.Terminal() {
		return
	}
	if a.inviteJoined[opID] {
		op.Status = graph.OperationCompleted
		op.ResultInfo = resultInfo(errs.OpCompleted)
	} else {
		r := a.inviteFailures[opID]
		op.Status = graph.OperationFailed
		op.ResultInfo = &graph.ResultInfo{ODataType: graph.TypeResultInfo, Code: r.Code, Subcode: r.Subcode, Message: r.Message}
	}
	delete(a.inviteFailures, opID)
	delete(a.inviteJoined, opID)
	a.dirty = true
	a.notifyOperation(op)
}

// meetingTone reports a key a person in the meeting pressed, if the bot
// subscribed.
func (a *actor) meetingTone(t graph.Tone) {
	if a.deleted || !a.rec.ToneSubscribed || a.rec.Call.State != graph.StateEstablished {
		return
	}
	a.rec.ToneSeq++
	a.dirty = true
	a.notifyCall(graph.ChangeUpdated, &graph.Call{
		ODataType: graph.TypeCall, ODataID: callPath(a.rec.Call.ID), ID: a.rec.Call.ID,
		State:    a.rec.Call.State,
		ToneInfo: &graph.ToneInfo{ODataType: graph.TypeToneInfo, SequenceID: a.rec.ToneSeq, Tone: t},
	})
}

// findMeeting resolves the meeting a create-call joins: by
// chatInfo.threadId (with organizerMeetingInfo's organizer, when given,
// checked) or by joinMeetingIdMeetingInfo's id and passcode.
func (m *Manager) findMeeting(ctx context.Context, c Caller, req *graph.Call) (*Meeting, error) {
	if m.o.Meetings == nil || m.o.Rooms == nil {
		return nil, errs.E(errs.NotSupported, "Joining meetings is not supported by this node: it has no meetings or no conference media.")
	}
	mi := req.MeetingInfo
	var mt *Meeting
	var err error
	switch {
	case mi != nil && mi.JoinMeetingID != "":
		mt, err = m.o.Meetings.ByJoinMeetingID(ctx, c.TenantID, mi.JoinMeetingID)
		if err != nil {
			return nil, err
		}
		given := ""
		if mi.Passcode != nil {
			given = *mi.Passcode
		}
		if mt.PasscodeRequired && given != mt.Passcode {
			if given == "" {
				return nil, errs.E(errs.Forbidden, "meetingInfo.passcode: the meeting %s requires a passcode.", mi.JoinMeetingID)
			}
			return nil, errs.E(errs.Forbidden, "meetingInfo.passcode: the passcode of meeting %s is wrong.", mi.JoinMeetingID)
		}
	case req.ChatInfo != nil && req.ChatInfo.ThreadID != "":
		mt, err = m.o.Meetings.ByThreadID(ctx, c.TenantID, req.ChatInfo.ThreadID)
		if err != nil {
			return nil, err
		}
		if mi != nil && mi.Organizer != nil && mi.Organizer.User != nil && mt.Organizer != nil && mt.Organizer.User != nil &&
			!sameID(mi.Organizer.User.ID, mt.Organizer.User.ID) {
			return nil, errs.E(errs.NotFound, "No meeting of thread %s is organized by %s.", req.ChatInfo.ThreadID, mi.Organizer.User.ID)
		}
	default:
		return nil, badRequest("A meeting is joined by chatInfo.threadId (with an organizerMeetingInfo) or by meetingInfo.joinMeetingId (a joinMeetingIdMeetingInfo).")
	}
	return mt, nil
}

// admit lets a person waiting in the meeting's lobby in (POST
// .../participants/{id}/admit; docs/graph-deviations.md: Graph v1.0 has
// no admit action for bots).
func (a *actor) admit(cmd *command, _ *noBody) (*graph.Operation, error) {
	if a.room == nil {
		return nil, errs.E(errs.NotSupported, "admit applies to meetings: only a meeting has a lobby.")
	}
	if a.rec.Call.State != graph.StateEstablished {
		return nil, a.conflict("admit")
	}
	return nil, a.room.admit(cmd.Participant)
}

// dominantIs marks the participant heard most and tells the bots, at most
// every dominantEvery (a change within it is told with the next).
func (r *room) dominantIs(pid string) {
	r.mu.Lock()
	changed := false
	for id, p := range r.parts {
		want := pid != "" && id == pid
		if p.DominantSpeaker != want {
			p.DominantSpeaker = want
			changed = true
		}
	}
	now := r.m.clk.Now()
	due := changed && !now.Before(r.lastDominant.Add(dominantEvery))
	if due {
		r.lastDominant = now
	} else if changed && !r.dominantLater {
		r.dominantLater = true
		r.m.clk.AfterFunc(r.lastDominant.Add(dominantEvery).Sub(now), func() {
			r.events.do(func() {
				r.mu.Lock()
				r.dominantLater = false
				r.lastDominant = r.m.clk.Now()
				r.mu.Unlock()
				r.broadcast()
			})
		})
	}
	bots := append([]*roomBot(nil), r.bots...)
	r.mu.Unlock()
	if changed {
		// The media sockets hear of it at once; the roster notifications
		// at most every dominantEvery.
		for _, b := range bots {
			b.a.post(func(a *actor) {
				if !a.deleted && a.room == r {
					a.appDominant(pid)
				}
			})
		}
	}
	if due {
		r.broadcast()
	}
}
