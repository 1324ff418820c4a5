package callctl

import (
	"errors"
	"strings"
	"sync"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Transfer (https://learn.microsoft.com/graph/api/call-transfer): the bot
// hands its far end to someone else and leaves. As with redirect,
// Switchboard stays in the media path (docs/decisions.md#transfer): the
// far end's leg and the target's are bridged, and the bot's call ends
// with 0/7015 "GracefulTransferCompleted" once the target answered.
//
//   - Blind (transferTarget): the target is dialed; the call goes
//     transferring → transferAccepted (answered) → terminated. A target that
//     does not answer puts the call back to established, with a resultInfo
//     saying why (500/7000).
//   - Consultative (transferTarget.replacesCallId): the target is already in
//     another call of the bot's; that call's leg is taken over (its call
//     ends with the same 7015 and terminationReason AppTransferred) and
//     bridged at once.
//
// Transferring a participant out of a group call (transferee), blind or
// consultative, is transferMember's, below.

// legSink delivers a leg's events to whichever call owns the leg now: a
// consultative transfer moves a leg from one call to another. While the
// leg is between owners its events are held, in order.
type legSink struct {
	mu     sync.Mutex
	to     func(LegEvent)
	held   []LegEvent
	moving bool
}

func newSink(to func(LegEvent)) *legSink { return &legSink{to: to} }

func (s *legSink) deliver(ev LegEvent) {
	s.mu.Lock()
	if s.moving {
		s.held = append(s.held, ev)
		s.mu.Unlock()
		return
	}
	to := s.to
	s.mu.Unlock()
	to(ev)
}

// hold starts a move: events wait until retarget.
func (s *legSink) hold() {
	s.mu.Lock()
	s.moving = true
	s.mu.Unlock()
}

// retarget ends a move: the held events, then every later one, go to to.
func (s *legSink) retarget(to func(LegEvent)) {
	s.mu.Lock()
	held := s.held
	s.held, s.to, s.moving = nil, to, false
	s.mu.Unlock()
	for _, ev := range held {
		to(ev)
	}
}

// Transfer results (the Graph reference's transfer notifications).
var (
	// transferred ends the transferring call once the target has the far end.
	transferred = errs.EndReason{Code: 0, Subcode: 7015, Message: "GracefulTransferCompleted"}
	// terminationTransferred is the terminationReason of a transferred call.
	terminationTransferred = "AppTransferred"
)

// transferFailed is the resultInfo of a transfer that did not happen.
func transferFailed(why string) *graph.ResultInfo {
	return &graph.ResultInfo{ODataType: graph.TypeResultInfo, Code: 500, Subcode: 7000, Message: "The transfer failed: " + why}
}

// consultFailed is transferFailed for a consultative transfer: Graph's
// 500/7700.
func consultFailed(why string) *graph.ResultInfo {
	return &graph.ResultInfo{ODataType: graph.TypeResultInfo, Code: 500, Subcode: 7700, Message: "The consultative transfer failed: " + why}
}

func (a *actor) transfer(cmd *command, req *graph.TransferRequest) (*graph.Operation, error) {
	if err := checkClientContext(req.ClientContext); err != nil {
		return nil, err
	}
	if err := cmd.Caller.require(PermInitiate); err != nil {
		return nil, err
	}
	t := req.TransferTarget
	if t == nil || t.Identity == nil {
		return nil, badRequest("transferTarget with an identity is required.")
	}
	if a.room != nil {
		return nil, errs.E(errs.NotSupported, "Transferring out of a meeting is not supported by this Switchboard version yet.")
	}
	if a.rec.Group {
		return a.transferMember(cmd, req)
	}
	if req.Transferee != nil {
		return nil, badRequest("transferee applies to group calls; a two-party call transfers its far end.")
	}
	if a.rec.Call.State != graph.StateEstablished || a.leg == nil {
		return nil, a.conflict("transfer")
	}
	if a.hold != nil {
		return nil, errs.E(errs.Conflict, "Participant %s is on hold: stop the hold music before transferring.", a.hold.pid)
	}
	src := a.rec.Call.Source
	if src == nil || src.Identity == nil {
		src = &graph.ParticipantInfo{Identity: a.rec.Call.Targets[0].Identity}
	}
	target, err := a.m.resolveTarget(cmd.Caller, *t, src)
	if err != nil {
		return nil, errs.E(errs.KindOf(err), "%s", strings.Replace(errs.Message(err), "targets[0]", "transferTarget", 1))
	}
	target.From, target.FromName = a.m.presented(cmd.Caller, src)
	normIdentitySet(t.Identity)
	t.ODataType = graph.TypeInvitationParticipantInfo

	if id := t.ReplacesCallID; id != "" {
		if sameID(id, a.rec.Call.ID) {
			return nil, badRequest("transferTarget.replacesCallId: %s is this call; name the bot's call with the transfer target.", id)
		}
		a.cancelJobs()
		a.setState(graph.StateTransferring)
		a.m.handOver(cmd.Caller, id, func(leg Leg, sink *legSink, err error) {
			if !a.post(func(a *actor) { a.consulted(leg, sink, err) }) {
				dropTaken(leg, sink)
			}
		})
		return nil, nil
	}

	a.cancelJobs()
	a.setState(graph.StateTransferring)
	sink := newSink(nil)
	sink.retarget(func(ev LegEvent) { a.post(func(a *actor) { a.onTransferLeg(ev) }) })
	leg, err := a.m.o.Dialer.Dial(a.rec.Call.ID+"-t", target, sink.deliver)
	if err != nil {
		reason := errs.CannotRoute
		var re *RouteError
		if errors.As(err, &re) {
			reason = re.Reason
		}
		a.transferBack(reason.Message)
		return nil, nil
	}
	a.transferee = leg
	a.arm("transfer", a.m.clk.Now().Add(a.m.cfg.Calls.RingTimeout.D()), func(a *actor) {
		if a.rec.Call.State == graph.StateTransferring && a.transferee != nil {
			a.transferee.HangUp(errs.NoAnswer)
			a.transferee = nil
			a.transferBack(errs.NoAnswer.Message)
		}
	})
	return nil, nil
}

// onTransferLeg applies what a blind transfer's target did.
func (a *actor) onTransferLeg(ev LegEvent) {
	if refuseRefer(ev) {
		return
	}
	if a.bridged != nil {
		if ev.Kind == LegEnded {
			a.endBridged(errs.EndedByRemote)
		}
		return
	}
	if a.deleted || a.rec.Call.State != graph.StateTransferring || a.transferee == nil {
		return
	}
	switch ev.Kind {
	case LegAnswered:
		a.disarm("transfer")
		target := a.transferee
		a.transferee = nil
		a.completeTransfer(target)
	case LegEnded:
		a.disarm("transfer")
		a.transferee = nil
		a.transferBack(ev.Reason.Message)
	}
}

// consulted completes a consultative transfer with the leg taken from
// the bot's other call.
func (a *actor) consulted(leg Leg, sink *legSink, err error) {
	if a.deleted || a.rec.Call.State != graph.StateTransferring {
		// The call ended meanwhile: the target has nobody to talk to.
		dropTaken(leg, sink)
		return
	}
	if err != nil {
		a.consultBack(errs.Message(err))
		return
	}
	sink.retarget(func(ev LegEvent) { a.post(func(a *actor) { a.onTransferLeg(ev) }) })
	a.completeTransfer(leg)
}

// completeTransfer bridges the far end with the target and ends the bot's
// call.
func (a *actor) completeTransfer(target Leg) {
	a.setState(graph.StateTransferAccepted)
	a.rec.Call.TerminationReason = terminationTransferred
	a.end(transferred, false)
	a.bridged = target
	a.bridgeMedia()
}

// transferBack returns a call whose transfer failed to established, and
// tells the bot why.
func (a *actor) transferBack(why string) { a.transferBackWith(transferFailed(why)) }

// consultBack is transferBack for a consultative transfer (500/7700).
func (a *actor) consultBack(why string) { a.transferBackWith(consultFailed(why)) }

func (a *actor) transferBackWith(ri *graph.ResultInfo) {
	a.rec.Call.State = graph.StateEstablished
	a.dirty = true
	ch := callChange(&a.rec.Call)
	ch.ResultInfo = ri
	a.notifyCall(graph.ChangeUpdated, ch)
}

// dropTaken hangs up a leg taken by handOver (if any) that its new owner
// cannot use: the target of a consultative transfer whose transferee has
// gone.
func dropTaken(leg Leg, sink *legSink) {
	if leg == nil {
		return
	}
	sink.retarget(func(LegEvent) {})
	leg.HangUp(errs.EndedByRemote)
}

// handOver takes the leg of the bot's call id for a consultative
// transfer: that call ends for the bot (0/7015, AppTransferred) without
// hanging its leg up, and done gets the leg and its event sink, held
// until the new owner retargets it. done runs on the other call's
// goroutine.
func (m *Manager) handOver(c Caller, id string, done func(Leg, *legSink, error)) {
	fail := func(err error) { done(nil, nil, err) }
	m.mu.Lock()
	b := m.actors[normID(id)]
	m.mu.Unlock()
	if b == nil {
		fail(errs.E(errs.NotFound, "the call to replace (%s) was not found on this node", id))
		return
	}
	if !b.post(func(b *actor) {
		switch {
		case b.deleted || !sameID(b.rec.TenantID, c.TenantID) || !sameID(b.rec.AppID, c.AppID):
			fail(errs.E(errs.NotFound, "the call to replace (%s) was not found", id))
		case b.rec.Group || b.rec.Call.State != graph.StateEstablished || b.leg == nil || b.hold != nil:
			fail(errs.E(errs.Conflict, "the call to replace (%s) is %s, not an established two-party call", id, b.rec.Call.State))
		default:
			leg, sink := b.leg, b.sink
			sink.hold()
			b.leg, b.sink = nil, nil
			b.rec.Call.TerminationReason = terminationTransferred
			b.end(transferred, false)
			done(leg, sink, nil)
		}
	}) {
		fail(errs.E(errs.NotFound, "the call to replace (%s) has ended", id))
	}
}

// Transferring a participant out of a group call (transferee): the target
// is dialed; when it answers, the participant leaves the conference and
// the roster and talks with the target, bridged through Switchboard; the
// group call goes on. A target that does not answer leaves everything as
// it was and tells the bot why (resultInfo 500/7000 on an established
// call). Consultative (transferTarget.replacesCallId): the target is the
// far end of another of the bot's calls, whose leg is taken over as for a
// two-party consultative transfer (handOver: that call ends 0/7015) and
// takes the place of a target that answered; a call that cannot be taken
// over gives the same 500/7000 update.

// pair is a participant transferred out of a group call with its target.
type pair struct {
	from, to Leg
	unbridge func()
}

func (a *actor) transferMember(cmd *command, req *graph.TransferRequest) (*graph.Operation, error) {
	if req.Transferee == nil || (req.Transferee.ParticipantID == "" && req.Transferee.ID == "") {
		return nil, badRequest("transferee.participantId is required to transfer a participant out of a group call.")
	}
	pid := req.Transferee.ParticipantID
	if pid == "" {
		pid = req.Transferee.ID
	}
	if a.rec.Call.State != graph.StateEstablished {
		return nil, a.conflict("transfer")
	}
	m, _, err := a.findMember("transfer", pid)
	if err != nil {
		return nil, err
	}
	if m.transfer != nil || m.replacing != "" {
		return nil, errs.E(errs.Conflict, "Participant %s is being transferred already.", m.pid)
	}
	if a.hold != nil && a.hold.pid == m.pid {
		return nil, errs.E(errs.Conflict, "Participant %s is on hold: stop the hold music before transferring.", m.pid)
	}
	src := a.rec.Call.Source
	target, err := a.m.resolveTarget(cmd.Caller, *req.TransferTarget, src)
	if err != nil {
		return nil, errs.E(errs.KindOf(err), "%s", strings.Replace(errs.Message(err), "targets[0]", "transferTarget", 1))
	}
	target.From, target.FromName = a.m.presented(cmd.Caller, src)
	if id := req.TransferTarget.ReplacesCallID; id != "" {
		return a.consultMember(cmd, m, id)
	}
	leg, err := a.m.o.Dialer.Dial(a.rec.Call.ID+"-t"+m.pid[:8], target, func(ev LegEvent) {
		a.post(func(a *actor) { a.onMemberTransfer(m, ev) })
	})
	if err != nil {
		reason := errs.CannotRoute
		var re *RouteError
		if errors.As(err, &re) {
			reason = re.Reason
		}
		a.transferBack(reason.Message)
		return nil, nil
	}
	m.transfer = leg
	a.arm("transfer:"+m.pid, a.m.clk.Now().Add(a.m.cfg.Calls.RingTimeout.D()), func(a *actor) {
		if m.transfer != nil && a.isMember(m) {
			m.transfer.HangUp(errs.NoAnswer)
			m.transfer = nil
			a.transferBack(errs.NoAnswer.Message)
		}
	})
	return nil, nil
}

// consultMember starts a consultative transfer of member m to the far end
// of the bot's call id.
func (a *actor) consultMember(cmd *command, m *member, id string) (*graph.Operation, error) {
	if sameID(id, a.rec.Call.ID) {
		return nil, badRequest("transferTarget.replacesCallId: %s is this call; name the bot's call with the transfer target.", id)
	}
	m.replacing = id
	a.m.handOver(cmd.Caller, id, func(leg Leg, sink *legSink, err error) {
		if !a.post(func(a *actor) { a.memberConsulted(m, leg, sink, err) }) {
			dropTaken(leg, sink)
		}
	})
	return nil, nil
}

// memberConsulted completes a consultative transfer of member m with the
// leg taken from the bot's other call, or tells the bot why not. The
// other call has ended by now whenever leg is set: if the member has gone
// meanwhile, the target is hung up.
func (a *actor) memberConsulted(m *member, leg Leg, sink *legSink, err error) {
	if m.replacing == "" || a.deleted {
		dropTaken(leg, sink)
		return
	}
	m.replacing = ""
	why := ""
	switch {
	case err != nil:
		why = errs.Message(err)
	case !a.isMember(m) || m.leg == nil:
		why = "the participant left the call before the transfer completed"
	case a.hold != nil && a.hold.pid == m.pid:
		why = "the participant was put on hold before the transfer completed"
	}
	if why != "" {
		dropTaken(leg, sink)
		a.consultBack(why)
		return
	}
	sink.retarget(func(ev LegEvent) { a.post(func(a *actor) { a.onMemberTransfer(m, ev) }) })
	a.memberLeaves(m, leg)
}

// onMemberTransfer applies what the target of a participant's transfer
// did.
func (a *actor) onMemberTransfer(m *member, ev LegEvent) {
	if refuseRefer(ev) {
		return
	}
	for i, p := range a.pairs {
		if p.to == m.transfer || (m.transfer == nil && p.from == m.leg) {
			if ev.Kind == LegEnded {
				a.endPair(i, errs.EndedByRemote, p.from)
			}
			return
		}
	}
	if m.transfer == nil || !a.isMember(m) {
		return
	}
	switch ev.Kind {
	case LegAnswered:
		a.disarm("transfer:" + m.pid)
		to := m.transfer
		m.transfer = nil
		a.memberLeaves(m, to)
	case LegEnded:
		a.disarm("transfer:" + m.pid)
		m.transfer = nil
		a.transferBack(ev.Reason.Message)
	}
}

// memberLeaves takes transferred member m out of the conference and the
// roster, without hanging it up, and bridges it with its target to.
func (a *actor) memberLeaves(m *member, to Leg) {
	from := m.leg
	if a.conf != nil {
		a.conf.Remove(m.pid)
	}
	for i, x := range a.members {
		if x == m {
			a.members = append(a.members[:i], a.members[i+1:]...)
			break
		}
	}
	for i := range a.rec.Participants {
		if a.rec.Participants[i].ID == m.pid {
			a.rec.Participants = append(a.rec.Participants[:i], a.rec.Participants[i+1:]...)
			break
		}
	}
	a.saveMembers()
	a.notifyRoster()
	p := &pair{from: from, to: to}
	if x, y := sessionOf(from), sessionOf(to); x != nil && y != nil {
		p.unbridge = media.Bridge(x, y)
	}
	a.pairs = append(a.pairs, p)
	m.pair = p
}

// endPair ends a transferred pair when one side hangs up: the other is
// hung up too.
func (a *actor) endPair(i int, reason errs.EndReason, other Leg) {
	p := a.pairs[i]
	a.pairs = append(a.pairs[:i], a.pairs[i+1:]...)
	if p.unbridge != nil {
		p.unbridge()
	}
	if other != nil {
		other.HangUp(reason)
	}
}

// pairEnded applies the end of a transferred participant's own leg.
func (a *actor) pairEnded(m *member) bool {
	if m.pair == nil {
		return false
	}
	for i, p := range a.pairs {
		if p == m.pair {
			a.endPair(i, errs.EndedByRemote, p.to)
		}
	}
	m.pair = nil
	return true
}
