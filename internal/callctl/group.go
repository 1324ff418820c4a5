package callctl

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/ids"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Group calls (https://learn.microsoft.com/graph/api/application-post-calls,
// "group call"; https://learn.microsoft.com/graph/api/participant-invite).
//
// A group call is a conference the bot hosts: every far end is a member
// with a leg of its own, and the Conference mixes what each member says
// for the others. The roster (Record.Participants) holds the bot and the
// members that joined; each change to it is an `updated` notification on
// .../participants carrying the whole roster. A member joins when its leg
// answers and leaves when its leg ends or the bot removes it; an invite
// operation completes once each of its invitees has joined or failed.
// Service-hosted media acts on the whole conference: a prompt is heard by
// everyone, a recording is of the mix, tones come from every phone.

// Conference is the media of a group call. Its MediaPort side is the
// bot's: what it plays everyone hears, what it records is the mix of
// everyone. media.Conference is one.
type Conference interface {
	MediaPort
	// Add puts a member's RTP session on the conference: it hears everyone
	// but itself and is heard by the others. A member without a session
	// (a simulated user without audio) is not added.
	Add(pid string, s *media.Session) error
	// Remove takes a member off the conference.
	Remove(pid string)
	// MuteMember stops or restarts what a member contributes.
	MuteMember(pid string, muted bool)
	// Close ends the conference's media.
	Close()
}

var _ Conference = (*media.Conference)(nil)

// Conferences makes the conference of a group call, telling onDominant
// (from the media's goroutines, without blocking) the participant id of
// each new dominant speaker ("" for nobody); nil (the Manager's
// Options.Conferences) refuses group calls.
type Conferences func(callID string, onDominant func(pid string)) (Conference, error)

// member is a far end of a group call.
type member struct {
	pid    string
	leg    Leg
	target graph.InvitationParticipantInfo
	joined bool
	op     string // the invite that dialed it, until it joins or fails
	// transfer is the target of a transfer of this member, while it rings;
	// pair, once the member left the call with its target.
	transfer Leg
	pair     *pair
	// replacing is the bot's other call whose far end a consultative
	// transfer of this member is taking over (transfer.go), until it has
	// it.
	replacing string
}

// MemberRecord is what the store keeps of a member.
type MemberRecord struct {
	Participant string                          `json:"participant"`
	Target      graph.InvitationParticipantInfo `json:"target"`
	Leg         *LegRef                         `json:"leg,omitempty"`
	Joined      bool                            `json:"joined,omitempty"`
	Op          string                          `json:"op,omitempty"`
}

// maxInvitees is how many participants one invite may name (the Graph
// reference: up to 5).
const maxInvitees = 5

// maxMembers bounds the far ends of one group call: the call's record,
// with its roster and the roster notification in its outbox, must stay
// well inside the store's 1 MB message limit (about 500 participants
// broke it: docs/benchmarks.md).
const maxMembers = 250

func rosterPath(callID string) string       { return callPath(callID) + "/participants" }
func legacyRosterPath(callID string) string { return legacyCallPath(callID) + "/participants" }

// notifyRoster tells the bot the whole roster (the non-delta form).
func (a *actor) notifyRoster() {
	roster := make([]graph.Participant, len(a.rec.Participants))
	copy(roster, a.rec.Participants)
	a.notify(graph.ChangeUpdated, legacyRosterPath(a.rec.Call.ID), rosterPath(a.rec.Call.ID), roster)
	a.appRoster()
}

// startGroup sets up a group call the bot created: the conference, then
// every target dialed as a member.
func (a *actor) startGroup(targets []Target, infos []graph.InvitationParticipantInfo) {
	a.notifyCall(graph.ChangeUpdated, callChange(&a.rec.Call)) // establishing
	a.armKeepAlive()
	if err := a.openConference(); err != nil {
		a.log.Error("open conference", "err", err)
		a.end(errs.MediaFailure, false)
		return
	}
	a.rec.Call.MediaState = &graph.CallMediaState{Audio: graph.MediaStateActive}
	a.setState(graph.StateEstablished)
	a.notifyRoster()
	// Each target is invited by an operation of its own, so that the bot
	// learns whether and why a target did not join (Graph documents
	// nothing for the targets of a created group call).
	for i, t := range targets {
		op := a.newOperation(graph.TypeInviteParticipantsOperation, "", graph.OperationRunning)
		op.Participants = []graph.InvitationParticipantInfo{infos[i]}
		a.dialMember(t, infos[i], op.ID)
	}
}

func (a *actor) openConference() error {
	if a.conf != nil {
		return nil
	}
	if a.m.o.Conferences == nil {
		return errs.E(errs.NotSupported, "Group calls are not supported by this node.")
	}
	conf, err := a.m.o.Conferences(a.rec.Call.ID, func(pid string) {
		a.post(func(a *actor) { a.dominantIs(pid) })
	})
	if err != nil {
		return err
	}
	a.conf = conf
	a.rec.Group = true
	a.dirty = true
	if a.rec.Muted {
		conf.SetMuted(true)
	}
	if a.rec.ToneSubscribed {
		conf.DetectTones(true)
	}
	return nil
}

// dialMember calls one target as a new member; a target that cannot be
// dialed fails its invite at once.
func (a *actor) dialMember(t Target, info graph.InvitationParticipantInfo, op string) {
	m := &member{pid: ids.New(), target: info, op: op}
	a.members = append(a.members, m)
	leg, err := a.m.o.Dialer.Dial(a.rec.Call.ID+"-m"+m.pid[:8], t, func(ev LegEvent) {
		a.post(func(a *actor) { a.onMember(m, ev) })
	})
	if err != nil {
		reason := errs.CannotRoute
		var re *RouteError
		if errors.As(err, &re) {
			reason = re.Reason
		} else {
			a.log.Error("dial member", "err", err)
		}
		a.memberGone(m, reason)
		return
	}
	m.leg = leg
	a.saveMembers()
	a.arm("ring:"+m.pid, a.m.clk.Now().Add(a.m.cfg.Calls.RingTimeout.D()), func(a *actor) {
		if a.isMember(m) && !m.joined {
			if m.leg != nil {
				m.leg.HangUp(errs.NoAnswer)
				m.leg = nil
			}
			a.memberGone(m, errs.NoAnswer)
		}
	})
}

// saveMembers writes the members into the record, for a restart.
func (a *actor) saveMembers() {
	a.rec.Members = a.rec.Members[:0]
	for _, m := range a.members {
		r := MemberRecord{Participant: m.pid, Target: m.target, Joined: m.joined, Op: m.op}
		if m.leg != nil {
			ref := m.leg.Ref()
			r.Leg = &ref
		}
		a.rec.Members = append(a.rec.Members, r)
	}
	a.dirty = true
}

// onMember applies what a member's far end did.
func (a *actor) onMember(m *member, ev LegEvent) {
	a.observeLeg(m.pid, ev)
	if a.referEvent(m, ev) {
		return
	}
	if m.pair != nil {
		// Transferred out: its end ends the pair.
		if ev.Kind == LegEnded {
			a.pairEnded(m)
		}
		return
	}
	if a.deleted || !a.isMember(m) {
		return
	}
	switch ev.Kind {
	case LegAnswered:
		if m.joined {
			return
		}
		m.joined = true
		a.disarm("ring:" + m.pid)
		a.rec.NextSource++
		p := participant(m.pid, m.target.Identity, strconv.Itoa(a.rec.NextSource))
		a.rec.Participants = append(a.rec.Participants, p)
		if s := sessionOf(m.leg); s != nil && a.conf != nil {
			if err := a.conf.Add(m.pid, s); err != nil {
				a.log.Warn("put member on the conference", "participant", m.pid, "err", err)
			}
		}
		a.saveMembers()
		a.notifyRoster()
		a.settleInvite(m.op)
	case LegEnded:
		m.leg = nil
		if m.transfer != nil {
			// Its transfer's target has nobody to talk to.
			m.transfer.HangUp(ev.Reason)
			m.transfer = nil
			a.disarm("transfer:" + m.pid)
		}
		a.memberGone(m, ev.Reason)
	case LegTone:
		if m.joined {
			a.appTone(m.pid, ev.Tone)
		}
		if !a.rec.ToneSubscribed || a.rec.Call.State != graph.StateEstablished || !m.joined {
			return
		}
		a.rec.ToneSeq++
		a.dirty = true
		a.notifyCall(graph.ChangeUpdated, &graph.Call{
			ODataType: graph.TypeCall, ODataID: callPath(a.rec.Call.ID), ID: a.rec.Call.ID,
			State:    a.rec.Call.State,
			ToneInfo: &graph.ToneInfo{ODataType: graph.TypeToneInfo, SequenceID: a.rec.ToneSeq, Tone: ev.Tone},
		})
	}
}

func (a *actor) isMember(m *member) bool {
	for _, x := range a.members {
		if x == m {
			return true
		}
	}
	return false
}

// memberGone takes a member out: off the roster if it had joined (with a
// roster notification), its invite failed with reason if it had not.
func (a *actor) memberGone(m *member, reason errs.EndReason) {
	a.disarm("ring:" + m.pid)
	for i, x := range a.members {
		if x == m {
			a.members = append(a.members[:i], a.members[i+1:]...)
			break
		}
	}
	if m.joined {
		a.heldMemberGone(m.pid)
		if a.conf != nil {
			a.conf.Remove(m.pid)
		}
		for i := range a.rec.Participants {
			if a.rec.Participants[i].ID == m.pid {
				a.rec.Participants = append(a.rec.Participants[:i], a.rec.Participants[i+1:]...)
				break
			}
		}
		a.notifyRoster()
	} else if m.op != "" {
		a.inviteFailures[m.op] = reason
	}
	a.saveMembers()
	a.settleInvite(m.op)
}

// settleInvite completes an invite once none of its invitees is still
// being dialed: completed if any joined, failed with the last reason if
// none did.
func (a *actor) settleInvite(opID string) {
	if opID == "" {
		return
	}
	joined := false
	for _, m := range a.members {
		if m.op != opID {
			continue
		}
		if !m.joined {
			return // still ringing
		}
		joined = true
	}
	op := a.rec.operation(opID)
	if op == nil || op.Status.Terminal() {
		return
	}
	for _, m := range a.members {
		if m.op == opID {
			m.op = ""
		}
	}
	if joined {
		op.Status = graph.OperationCompleted
		op.ResultInfo = resultInfo(errs.OpCompleted)
	} else {
		r := a.inviteFailures[opID]
		op.Status = graph.OperationFailed
		op.ResultInfo = &graph.ResultInfo{ODataType: graph.TypeResultInfo, Code: r.Code, Subcode: r.Subcode, Message: r.Message}
	}
	delete(a.inviteFailures, opID)
	a.dirty = true
	a.notifyOperation(op)
}

// invite dials new participants into the call; a two-party call becomes a
// group call, its far end the first member.
func (a *actor) invite(cmd *command, req *graph.InviteParticipantsRequest) (*graph.Operation, error) {
	if err := checkClientContext(req.ClientContext); err != nil {
		return nil, err
	}
	if err := cmd.Caller.require(PermInitiateGroupCall); err != nil {
		return nil, err
	}
	if n := len(req.Participants); n == 0 || n > maxInvitees {
		return nil, badRequest("participants: between 1 and %d participants are needed, got %d.", maxInvitees, n)
	}
	if a.rec.Call.State != graph.StateEstablished {
		return nil, a.conflict("invite")
	}
	src := a.rec.Call.Source
	if src == nil || src.Identity == nil {
		src = &graph.ParticipantInfo{Identity: a.rec.Call.Targets[0].Identity}
	}
	if id := req.Participants[0].ReplacesCallID; id != "" {
		if a.room != nil {
			return nil, errs.E(errs.NotSupported, "participants[0].replacesCallId: moving a call into a meeting is not supported by this Switchboard version yet.")
		}
		return a.inviteReplacing(cmd, req, id)
	}
	targets := make([]Target, len(req.Participants))
	for i, p := range req.Participants {
		if p.ReplacesCallID != "" {
			return nil, badRequest("participants[%d].replacesCallId: only the first participant of an invite may replace a call.", i)
		}
		t, err := a.m.resolveTarget(cmd.Caller, p, src)
		if err != nil {
			return nil, errs.E(errs.KindOf(err), "%s", strings.Replace(errs.Message(err), "targets[0]", "participants["+strconv.Itoa(i)+"]", 1))
		}
		t.From, t.FromName = a.m.presented(cmd.Caller, src)
		targets[i] = t
		normIdentitySet(req.Participants[i].Identity)
		req.Participants[i].ODataType = graph.TypeInvitationParticipantInfo
	}
	if a.room != nil {
		return a.inviteMeeting(req, targets)
	}
	if n := len(a.members) + len(targets); n > maxMembers {
		return nil, badRequest("participants: the call would have %d participants besides the bot; a group call holds at most %d.", n, maxMembers)
	}
	if !a.rec.Group {
		if err := a.becomeGroup(); err != nil {
			return nil, err
		}
	}
	op := a.newOperation(graph.TypeInviteParticipantsOperation, req.ClientContext, graph.OperationRunning)
	op.Participants = req.Participants
	resp := *op
	for i, t := range targets {
		a.dialMember(t, req.Participants[i], op.ID)
	}
	return &resp, nil
}

// inviteReplacing brings the far end of the bot's two-party call id into
// this call (https://learn.microsoft.com/graph/api/participant-invite,
// "invite a participant from an existing peer-to-peer call"): only the
// first participant counts; that call ends (0/7015) as its leg joins.
func (a *actor) inviteReplacing(cmd *command, req *graph.InviteParticipantsRequest, id string) (*graph.Operation, error) {
	if sameID(id, a.rec.Call.ID) {
		return nil, badRequest("participants[0].replacesCallId: %s is this call.", id)
	}
	info := req.Participants[0]
	src := a.rec.Call.Source
	if src == nil || src.Identity == nil {
		src = &graph.ParticipantInfo{Identity: a.rec.Call.Targets[0].Identity}
	}
	// The invitee is named as for any invite (which fills in its name);
	// its leg comes from the other call.
	if _, err := a.m.resolveTarget(cmd.Caller, info, src); err != nil {
		return nil, errs.E(errs.KindOf(err), "%s", strings.Replace(errs.Message(err), "targets[0]", "participants[0]", 1))
	}
	normIdentitySet(info.Identity)
	info.ODataType = graph.TypeInvitationParticipantInfo
	if !a.rec.Group {
		if err := a.becomeGroup(); err != nil {
			return nil, err
		}
	}
	op := a.newOperation(graph.TypeInviteParticipantsOperation, req.ClientContext, graph.OperationRunning)
	op.Participants = []graph.InvitationParticipantInfo{info}
	resp := *op
	m := &member{pid: ids.New(), target: info, op: op.ID}
	a.members = append(a.members, m)
	a.m.handOver(cmd.Caller, id, func(leg Leg, sink *legSink, err error) {
		a.post(func(a *actor) { a.replaced(m, leg, sink, err) })
	})
	return &resp, nil
}

// replaced puts the leg taken from the bot's other call on the conference.
func (a *actor) replaced(m *member, leg Leg, sink *legSink, err error) {
	if a.deleted || !a.isMember(m) {
		if leg != nil {
			sink.retarget(func(LegEvent) {})
			leg.HangUp(errs.EndedByRemote)
		}
		return
	}
	if err != nil {
		r := errs.NotReplaceable
		r.Message = "The call to replace cannot be moved: " + errs.Message(err) + "."
		a.inviteFailures[m.op] = r
		a.memberGone(m, a.inviteFailures[m.op])
		return
	}
	m.leg = leg
	sink.retarget(func(ev LegEvent) { a.post(func(a *actor) { a.onMember(m, ev) }) })
	a.onMember(m, LegEvent{Kind: LegAnswered})
}

// becomeGroup turns a two-party call into a group call: the far end's leg
// becomes the first member, on a new conference, and what the bot was
// playing or recording on that leg starts again on the conference.
func (a *actor) becomeGroup() error {
	if a.hold != nil {
		return errs.E(errs.Conflict, "Participant %s is on hold: stop the hold music before inviting others.", a.hold.pid)
	}
	if a.leg == nil {
		return a.conflict("invite")
	}
	if a.m.o.Conferences == nil {
		return errs.E(errs.NotSupported, "Inviting participants makes a group call, and group calls are not supported by this node: it has no conference media.")
	}
	a.interrupt()
	if a.appConf != nil {
		// App-hosted: the far end and the bot's port are on the call's
		// conference already, which becomes the group call's.
		a.conf, a.appConf = a.appConf, nil
		a.rec.Group = true
		a.dirty = true
	}
	if err := a.openConference(); err != nil {
		a.pump()
		return err
	}
	far := a.leg
	a.leg = nil
	a.rec.Leg = nil
	m := &member{pid: "", leg: far, joined: true}
	for _, p := range a.rec.Participants {
		if p.ID != a.rec.Call.MyParticipantID {
			m.pid = p.ID
			m.target = graph.InvitationParticipantInfo{ODataType: graph.TypeInvitationParticipantInfo, Identity: p.Info.Identity}
		}
	}
	a.members = append(a.members, m)
	a.legMember = m
	if s := sessionOf(far); s != nil && a.appPort == nil {
		if err := a.conf.Add(m.pid, s); err != nil {
			a.log.Warn("put the far end on the conference", "err", err)
		}
	}
	a.saveMembers()
	a.pump()
	return nil
}

// muteMember server-mutes another participant of a group call.
func (a *actor) muteMember(cmd *command, req *graph.ClientContextRequest) (*graph.Operation, error) {
	if err := checkClientContext(req.ClientContext); err != nil {
		return nil, err
	}
	if a.room != nil {
		if a.rec.Call.State != graph.StateEstablished {
			return nil, a.conflict("mute")
		}
		if err := a.room.mute(cmd.Participant); err != nil {
			return nil, err
		}
		return a.newOperation(graph.TypeMuteParticipantOperation, req.ClientContext, graph.OperationCompleted), nil
	}
	m, p, err := a.findMember("mute", cmd.Participant)
	if err != nil {
		return nil, err
	}
	if !p.IsMuted {
		p.IsMuted = true
		for j := range p.MediaStreams {
			p.MediaStreams[j].ServerMuted = true
		}
		if a.conf != nil {
			a.conf.MuteMember(m.pid, true)
		}
		a.notifyRoster()
	}
	return a.newOperation(graph.TypeMuteParticipantOperation, req.ClientContext, graph.OperationCompleted), nil
}

// removeMember drops another participant of a group call (DELETE
// .../participants/{id}), or cancels its pending invite.
func (a *actor) removeMember(cmd *command, _ *noBody) (*graph.Operation, error) {
	if a.room != nil {
		return nil, a.room.remove(cmd.Participant)
	}
	if !a.rec.Group {
		return nil, errs.E(errs.NotSupported, "Removing a participant applies to group calls; to end a two-party call, hang it up (DELETE the call).")
	}
	var m *member
	for _, x := range a.members {
		if strings.EqualFold(x.pid, cmd.Participant) {
			m = x
		}
	}
	if m == nil {
		if strings.EqualFold(cmd.Participant, a.rec.Call.MyParticipantID) {
			return nil, badRequest("Participant %s is the bot itself (myParticipantId): to leave, hang up the call.", cmd.Participant)
		}
		return nil, errs.E(errs.NotFound, "Participant %s was not found in call %s.", cmd.Participant, a.rec.Call.ID)
	}
	if m.leg != nil {
		m.leg.HangUp(errs.EndedByBot)
		m.leg = nil
	}
	// An invitee removed before it joined fails its invite as cancelled.
	c := errs.OpCancelled
	a.memberGone(m, errs.EndReason{Code: c.Code, Subcode: c.Subcode, Message: c.Message})
	return nil, nil
}

// findMember finds a joined member of a group call for a participant
// action.
func (a *actor) findMember(action, pid string) (*member, *graph.Participant, error) {
	if !a.rec.Group {
		return nil, nil, errs.E(errs.NotSupported, "%s of another participant applies to group calls; on a two-party call, %s the bot itself (POST .../calls/{id}/%s).", action, action, action)
	}
	if a.rec.Call.State != graph.StateEstablished {
		return nil, nil, a.conflict(action)
	}
	if strings.EqualFold(pid, a.rec.Call.MyParticipantID) {
		return nil, nil, badRequest("Participant %s is the bot itself (myParticipantId): use POST .../calls/{id}/%s.", pid, action)
	}
	for _, m := range a.members {
		if !strings.EqualFold(m.pid, pid) || !m.joined {
			continue
		}
		for i := range a.rec.Participants {
			if a.rec.Participants[i].ID == m.pid {
				return m, &a.rec.Participants[i], nil
			}
		}
	}
	return nil, nil, errs.E(errs.NotFound, "Participant %s was not found in call %s.", pid, a.rec.Call.ID)
}

// endMembers hangs up every member and closes the conference, as the
// group call ends.
func (a *actor) endMembers(reason errs.EndReason) {
	for _, m := range a.members {
		if m.leg != nil {
			m.leg.HangUp(reason)
			m.leg = nil
		}
		if m.transfer != nil {
			m.transfer.HangUp(reason)
			m.transfer = nil
		}
	}
	a.members = nil
	if a.conf != nil {
		a.conf.Close()
		a.conf = nil
	}
}

// dominantEvery spaces the roster notifications that only move the
// dominant speaker: a lively conversation changes it every second or so.
const dominantEvery = time.Second

// dominantIs marks the participant heard most in the roster, and tells
// the bot (at most every dominantEvery).
func (a *actor) dominantIs(pid string) {
	if a.deleted || !markDominant(a.rec.Participants, pid) {
		return
	}
	a.appDominant(pid)
	a.dirty = true
	now := a.m.clk.Now()
	if wait := a.lastDominant.Add(dominantEvery).Sub(now); wait > 0 {
		if _, armed := a.timers["dominant"]; !armed {
			a.arm("dominant", now.Add(wait), func(a *actor) {
				delete(a.timers, "dominant")
				a.lastDominant = a.m.clk.Now()
				a.notifyRoster()
			})
		}
		return
	}
	a.lastDominant = now
	a.notifyRoster()
}

// markDominant sets the dominant-speaker mark on pid alone; false when
// nothing changed.
func markDominant(roster []graph.Participant, pid string) bool {
	changed := false
	for i := range roster {
		want := pid != "" && roster[i].ID == pid
		if roster[i].DominantSpeaker != want {
			roster[i].DominantSpeaker = want
			changed = true
		}
	}
	return changed
}
