package callctl

import (
	"errors"
	"strconv"
	"strings"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/ids"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Transfers a phone asks for: a SIP REFER from inside its call (RFC 3515),
// blind, or attended with an RFC 3891 Replaces. Switchboard is a
// back-to-back user agent: the phone (the transferor) is the far end of a
// leg this call holds, the far end of a bot's two-party call or a member
// of a group call. It names a target, which is dialed like any other
// (Dialer, after the same resolution invite and transfer use), with the
// Replaces the phone gave, if any. When the target answers it takes the
// transferor's place:
//
//   - in a group call the transferor leaves the conference and the roster
//     and the target joins both: one roster notification;
//   - in a two-party call the bot's call stays established with the new
//     far end: the roster (the bot and its far end) changes, told to the
//     bot as a roster notification on …/participants, and what the bot
//     plays or records carries on with the new far end
//     (docs/graph-deviations.md#a-phone-transfers-its-call-sip-refer).
//
// Then the transferor is hung up; its leg tells it the transfer succeeded
// first (a NOTIFY). A target that does not answer leaves everything as it
// was, and the bot is told nothing (it was told nothing when the transfer
// began). A REFER the call cannot take (the bot is transferring the call,
// another REFER from the same phone is under way, the call is on hold or
// not established) is refused at once.

// Refer is a far end's request to be transferred, reported with LegRefer.
type Refer struct {
	// Target is whom the far end names: a user (id and tenant) or a phone
	// number.
	Target *graph.IdentitySet
	// Replaces, for an attended transfer, is the Replaces header the
	// target's INVITE carries (RFC 3891): the target replaces its
	// consultation call with the transferor by the new call.
	Replaces string
	// Report is how the call answers.
	Report ReferReport
}

// ReferReport is how a call answers a Refer: Refuse, or Accept and then
// Result, each once, from the call's goroutine. Its methods must not
// block.
type ReferReport interface {
	// Refuse declines the transfer. err's kind says why: errs.Conflict
	// (the call is busy with another transfer or not established),
	// errs.NotFound (the target cannot be reached from this call),
	// errs.NotSupported (the leg is not in a bot's call).
	Refuse(err error)
	// Accept takes the transfer on: the target is being dialed. False
	// when it is too late (the far end's request was answered already,
	// the leg has gone): the call then drops the transfer.
	Accept() bool
	// Result ends an accepted transfer: ok when the target answered (the
	// transferor's leg is hung up next), else reason says why not.
	Result(ok bool, reason errs.EndReason)
}

// referCancelled is what a transferor is told when its call changed
// under the transfer (it ended, the bot transferred it, put it on hold):
// the target is hung up. Only the transferor's phone sees it (as SIP 487),
// never a bot, so it is not in errs' table of call ends.
var referCancelled = errs.EndReason{Code: 487, Message: "The transfer was cancelled: the call changed before the target answered."}

// referral is a transfer a far end asked for, while its target rings.
type referral struct {
	from   Leg // the transferor
	report ReferReport
	to     Leg // the target
	sink   *legSink
	info   graph.InvitationParticipantInfo // the target, as the roster shows it
	timer  string
	// after is where the target's events go once it took the
	// transferor's place (those posted before its sink was retargeted).
	after func(*actor, LegEvent)
}

// refuseRefer refuses a REFER from a leg that is not a bot's far end (a
// transfer or redirect target bridged after the bot left, a meeting's
// participant, a dial-in caller); false when ev is not a REFER.
func refuseRefer(ev LegEvent) bool {
	if ev.Kind != LegRefer {
		return false
	}
	if ev.Refer != nil {
		ev.Refer.Report.Refuse(errs.E(errs.NotSupported, "This call is not a bot's call that a phone can transfer."))
	}
	return true
}

// referEvent looks at a member's event first: its REFER is taken here;
// its end cancels the transfer it asked for (the rest of its end is
// onMember's). It reports whether the event was consumed.
func (a *actor) referEvent(m *member, ev LegEvent) bool {
	switch ev.Kind {
	case LegRefer:
		a.onRefer(m, ev.Refer)
		return true
	case LegEnded:
		for _, x := range a.refers {
			if m.leg != nil && x.from == m.leg {
				a.cancelReferral(x, referCancelled)
			}
		}
	}
	return false
}

// onRefer takes a REFER from the call's far end (m nil) or from member m.
func (a *actor) onRefer(m *member, r *Refer) {
	if r == nil || r.Report == nil {
		return
	}
	if err := a.startReferral(m, r); err != nil {
		r.Report.Refuse(err)
	}
}

func (a *actor) startReferral(m *member, r *Refer) error {
	const what = "a transfer the far end asked for"
	switch {
	case a.deleted:
		return errs.E(errs.NotFound, "The call has ended.")
	case a.bridged != nil || a.room != nil || m != nil && m.pair != nil:
		return errs.E(errs.NotSupported, "This call is not a bot's call that a phone can transfer.")
	case a.rec.Call.State != graph.StateEstablished || a.transferee != nil:
		return a.conflict(what)
	}
	from := a.leg
	if m != nil {
		if !a.isMember(m) || !m.joined {
			return errs.E(errs.NotFound, "The participant has left the call.")
		}
		if m.transfer != nil || m.replacing != "" {
			return errs.E(errs.Conflict, "The bot is transferring participant %s.", m.pid)
		}
		if a.hold != nil && a.hold.pid == m.pid {
			return errs.E(errs.Conflict, "Participant %s is on hold.", m.pid)
		}
		from = m.leg
	} else if a.hold != nil {
		return errs.E(errs.Conflict, "Participant %s is on hold.", a.hold.pid)
	}
	if from == nil {
		return a.conflict(what)
	}
	for _, x := range a.refers {
		if x.from == from {
			return errs.E(errs.Conflict, "A transfer this participant asked for is under way.")
		}
	}
	if r.Target == nil {
		return errs.E(errs.NotFound, "The transfer names no target.")
	}
	c := Caller{TenantID: a.rec.TenantID, AppID: a.rec.AppID}
	src := a.botSource()
	info := graph.InvitationParticipantInfo{ODataType: graph.TypeInvitationParticipantInfo, Identity: r.Target}
	t, err := a.m.resolveTarget(c, info, src)
	if err != nil {
		return errs.E(errs.NotFound, "%s", strings.Replace(errs.Message(err), "targets[0]", "Refer-To", 1))
	}
	t.From, t.FromName = a.m.presented(c, src)
	t.Replaces = r.Replaces
	normIdentitySet(info.Identity)

	if m == nil && a.sink != nil {
		// The far end's events are guarded from now on: once the target
		// has taken its place, what its leg still reports is not the
		// call's.
		a.sink.retarget(func(ev LegEvent) {
			a.post(func(a *actor) {
				if a.leg != from && a.legMember == nil {
					refuseRefer(ev)
					return
				}
				a.onLeg(ev)
			})
		})
	}
	x := &referral{from: from, report: r.Report, info: info, timer: "refer:" + ids.New()}
	if !r.Report.Accept() {
		return nil
	}
	x.sink = newSink(nil)
	x.sink.retarget(func(ev LegEvent) { a.post(func(a *actor) { a.onReferTarget(x, ev) }) })
	leg, err := a.m.o.Dialer.Dial(a.rec.Call.ID+"-r"+x.timer[6:14], t, x.sink.deliver)
	if err != nil {
		reason := errs.CannotRoute
		var re *RouteError
		if errors.As(err, &re) {
			reason = re.Reason
		} else {
			a.log.Error("dial the target of a transfer the far end asked for", "err", err)
		}
		r.Report.Result(false, reason)
		return nil
	}
	x.to = leg
	a.refers = append(a.refers, x)
	a.arm(x.timer, a.m.clk.Now().Add(a.m.cfg.Calls.RingTimeout.D()), func(a *actor) {
		if a.hasReferral(x) {
			a.cancelReferral(x, errs.NoAnswer)
		}
	})
	a.log.Info("the far end transfers", "attended", r.Replaces != "")
	return nil
}

// botSource is who the bot is in its call: the source of a call it
// placed, the number (or app) called in an incoming one.
func (a *actor) botSource() *graph.ParticipantInfo {
	src := a.rec.Call.Source
	if a.rec.Call.Direction == graph.DirectionIncoming || src == nil || src.Identity == nil {
		if len(a.rec.Call.Targets) > 0 {
			return &graph.ParticipantInfo{Identity: a.rec.Call.Targets[0].Identity}
		}
	}
	if src == nil {
		src = &graph.ParticipantInfo{Identity: &graph.IdentitySet{}}
	}
	return src
}

func (a *actor) hasReferral(x *referral) bool {
	for _, y := range a.refers {
		if y == x {
			return true
		}
	}
	return false
}

func (a *actor) dropReferral(x *referral) {
	a.disarm(x.timer)
	for i, y := range a.refers {
		if y == x {
			a.refers = append(a.refers[:i], a.refers[i+1:]...)
			return
		}
	}
}

// cancelReferral hangs up a ringing target and tells the transferor why.
func (a *actor) cancelReferral(x *referral, reason errs.EndReason) {
	a.dropReferral(x)
	if x.to != nil {
		x.to.HangUp(reason)
	}
	x.report.Result(false, reason)
}

// endRefers cancels every transfer still ringing, as the call ends.
func (a *actor) endRefers() {
	for len(a.refers) > 0 {
		a.cancelReferral(a.refers[0], referCancelled)
	}
}

// onReferTarget applies what a transfer's target did.
func (a *actor) onReferTarget(x *referral, ev LegEvent) {
	if x.after != nil {
		x.after(a, ev)
		return
	}
	if refuseRefer(ev) || !a.hasReferral(x) {
		return
	}
	switch ev.Kind {
	case LegAnswered:
		a.referAnswered(x)
	case LegEnded:
		a.dropReferral(x)
		x.report.Result(false, ev.Reason)
	}
}

// referAnswered puts the target in the transferor's place.
func (a *actor) referAnswered(x *referral) {
	a.dropReferral(x)
	var m *member
	for _, y := range a.members {
		if y.leg == x.from && y.joined {
			m = y
		}
	}
	twoParty := m == nil && a.leg == x.from && !a.rec.Group
	switch {
	case a.deleted || a.rec.Call.State != graph.StateEstablished || (!twoParty && m == nil):
		x.to.HangUp(referCancelled)
		x.report.Result(false, referCancelled)
		return
	case twoParty && a.hold != nil, m != nil && (m.pair != nil || a.hold != nil && a.hold.pid == m.pid):
		x.to.HangUp(referCancelled)
		x.report.Result(false, referCancelled)
		return
	}
	if twoParty {
		a.referTwoParty(x)
	} else {
		a.referMember(x, m)
	}
	x.report.Result(true, errs.EndReason{})
	x.from.HangUp(errs.EndedByRemote)
	a.log.Info("the far end transferred: the target took its place")
}

// referTwoParty makes the target the far end of the bot's two-party call.
func (a *actor) referTwoParty(x *referral) {
	a.interrupt() // what played or recorded starts again on the new far end
	old := a.sink
	old.retarget(func(ev LegEvent) { refuseRefer(ev) })
	x.sink.retarget(func(ev LegEvent) { a.post(func(a *actor) { a.onLeg(ev) }) })
	x.after = (*actor).onLeg
	a.sink = x.sink
	oldPID := a.farPID()
	a.setLeg(x.to)
	if a.rec.NextSource < len(a.rec.Participants) {
		a.rec.NextSource = len(a.rec.Participants)
	}
	a.rec.NextSource++
	p := participant(ids.New(), x.info.Identity, strconv.Itoa(a.rec.NextSource))
	replaced := false
	for i := range a.rec.Participants {
		if a.rec.Participants[i].ID != a.rec.Call.MyParticipantID {
			a.rec.Participants[i] = p
			replaced = true
			break
		}
	}
	if !replaced {
		a.rec.Participants = append(a.rec.Participants, p)
	}
	a.dirty = true
	a.notifyRoster()
	a.appLegReplaced(oldPID)
	if port := a.port(); port != nil {
		if a.rec.Muted {
			port.SetMuted(true)
		}
		if a.rec.ToneSubscribed {
			port.DetectTones(true)
		}
	}
	a.pump()
}

// referMember swaps member m of a group call for the target.
func (a *actor) referMember(x *referral, m *member) {
	if m.transfer != nil {
		// The bot was transferring the participant meanwhile: the phone's
		// own transfer won.
		m.transfer.HangUp(referCancelled)
		m.transfer = nil
		a.disarm("transfer:" + m.pid)
		a.transferBack("the participant transferred the call itself")
	}
	if a.conf != nil {
		a.conf.Remove(m.pid)
	}
	for i, y := range a.members {
		if y == m {
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
	c := &member{pid: ids.New(), leg: x.to, target: x.info, joined: true}
	a.members = append(a.members, c)
	a.rec.NextSource++
	a.rec.Participants = append(a.rec.Participants, participant(c.pid, x.info.Identity, strconv.Itoa(a.rec.NextSource)))
	if s := sessionOf(x.to); s != nil && a.conf != nil {
		if err := a.conf.Add(c.pid, s); err != nil {
			a.log.Warn("put a transfer's target on the conference", "participant", c.pid, "err", err)
		}
	}
	x.sink.retarget(func(ev LegEvent) { a.post(func(a *actor) { a.onMember(c, ev) }) })
	x.after = func(a *actor, ev LegEvent) { a.onMember(c, ev) }
	a.saveMembers()
	a.notifyRoster()
}
