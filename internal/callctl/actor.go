package callctl

import (
	"errors"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/switchboard-voice/switchboard/internal/clock"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// actor owns one call. Everything that reads or changes the call runs on
// its goroutine, in mailbox order: API commands, leg events, timers. After
// each step the record and the step's notifications are stored (persist.go)
// before any command of the step is answered.
type actor struct {
	m   *Manager
	rec *Record
	rev uint64
	log *slog.Logger
	// tenantID and appID are the call's owners, copied at spawn: read
	// without the actor, to check a command's caller (Manager.exec).
	tenantID, appID string

	leg        Leg
	sink       *legSink // where leg's events go (transfer.go)
	transferee Leg      // a blind transfer's target, while it rings
	redirects  []Leg    // legs dialed by a redirect, first to answer wins
	bridged    Leg      // after a successful redirect: the winning leg
	unbridge   func()   // stops the media bridge between leg and bridged, if any

	// refers are the transfers far ends asked for (SIP REFER), while
	// their targets ring (refer.go).
	refers []*referral

	mu      sync.Mutex
	queue   []mail
	wake    chan struct{}
	stopped bool
	quit    chan struct{}
	done    chan struct{} // closed when the actor has exited

	// A group call's conference and far ends (group.go); legMember is the
	// far end of a two-party call that became a group call, whose events
	// still come through legEvents.
	conf           Conference
	members        []*member
	legMember      *member
	inviteFailures map[string]errs.EndReason
	pairs          []*pair   // participants transferred out, with their targets
	lastDominant   time.Time // the last roster notification for a dominant-speaker change

	// A meeting call's room and its port on the room's conference
	// (room.go), and its invites still counting invitees.
	room           *room
	roomPort       BotPort
	meetingInvites map[string]int
	inviteJoined   map[string]bool

	jobs    []*mediaJob // queued playPrompt/recordResponse
	running *mediaJob   // the one playing or recording
	hold    *mediaJob   // the hold music, while a participant is held; jobs wait for it

	timers map[string]clock.Timer

	// App-hosted media (appmedia.go): what the media sockets attach to,
	// the bot's port, and a two-party call's conference of its own.
	app     *appMedia
	appPort *media.AppPort
	appConf Conference
	// inDominant: appDominant is telling dominantIs, which tells it back.
	inDominant bool
	appOpen    bool // openAppMedia ran

	// What the current step changed, for persist.go: dirty when the record
	// must be written, pending the notifications not yet queued (in order),
	// replies the commands to answer once both are stored.
	dirty   bool
	pending []queued
	replies []reply
	// deleted: the call has ended for the bot (terminated was queued or is
	// pending); removed: its record is gone from the store too.
	deleted bool
	removed bool
	// retry is the backoff of the next attempt to store what a failed
	// step left (0 when nothing is left).
	retry time.Duration
	// seenBy is what Options.Observer last saw of the call (observe.go).
	seenBy observed
	// notified names the step's notifications for the observer.
	notified []NotificationSnapshot
}

// mail is one item of an actor's mailbox: an internal step (fn) or an API
// command (cmd), which is always answered on done.
type mail struct {
	fn   func(*actor)
	cmd  *command
	done chan<- result
}

// result is a command's answer.
type result struct {
	op  *graph.Operation
	err error
}

// reply is a command's answer held until its step is stored.
type reply struct {
	done chan<- result
	res  result
}

// spawn registers and starts an actor for rec; nil when the node is closing.
func (m *Manager) spawn(rec *Record, rev uint64) *actor {
	a := &actor{
		m: m, rec: rec, rev: rev,
		tenantID: rec.TenantID, appID: rec.AppID,
		log:    m.log.With("call", rec.Call.ID, "app", rec.AppID),
		wake:   make(chan struct{}, 1),
		quit:   make(chan struct{}),
		done:   make(chan struct{}),
		timers: map[string]clock.Timer{},

		inviteFailures: map[string]errs.EndReason{},
		meetingInvites: map[string]int{},
		inviteJoined:   map[string]bool{},
	}
	m.mu.Lock()
	if m.closing {
		m.mu.Unlock()
		return nil
	}
	m.actors[rec.Call.ID] = a
	m.wg.Add(1)
	m.mu.Unlock()
	m.active.Inc()
	if a.appHosted() || rec.Call.State == graph.StateIncoming {
		a.appMediaFor() // the bot may open the socket before answering
	}
	go a.run()
	return a
}

// post queues fn for the actor; false when the actor has finished.
func (a *actor) post(fn func(*actor)) bool { return a.deliver(mail{fn: fn}) }

// submit queues a command; done gets its answer exactly once, whatever
// happens to the call meanwhile. False when the actor has finished (done
// gets nothing then).
func (a *actor) submit(cmd *command, done chan<- result) bool {
	return a.deliver(mail{cmd: cmd, done: done})
}

func (a *actor) deliver(m mail) bool {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return false
	}
	a.queue = append(a.queue, m)
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
	return true
}

// abandon stops the actor without touching its call (see Manager.Stop).
func (a *actor) abandon() {
	a.mu.Lock()
	if !a.stopped {
		a.stopped = true
		close(a.quit)
	}
	a.mu.Unlock()
}

func (a *actor) run() {
	defer a.exit()
	for {
		select {
		case <-a.quit:
			return
		case <-a.wake:
		}
		for {
			a.mu.Lock()
			if len(a.queue) == 0 || a.quitting() {
				a.mu.Unlock()
				break
			}
			m := a.queue[0]
			a.queue[0] = mail{}
			a.queue = a.queue[1:]
			a.mu.Unlock()
			if m.cmd != nil {
				a.execute(m.cmd, m.done)
			} else {
				m.fn(a)
			}
			a.settle()
			if a.finished() {
				return
			}
		}
	}
}

func (a *actor) quitting() bool {
	select {
	case <-a.quit:
		return true
	default:
		return false
	}
}

// finished reports whether nothing is left for the actor to do: the call
// ended for the bot, everything about it is stored and queued, and no
// redirected leg is still bridged.
func (a *actor) finished() bool { return a.removed && a.bridged == nil && len(a.pairs) == 0 }

// exit answers the commands still in the mailbox (the call is gone for
// them: 404, or 503 when the node is stopping under the call), stops the
// timers and media, and unregisters the actor.
func (a *actor) exit() {
	a.mu.Lock()
	a.stopped = true
	left := a.queue
	a.queue = nil
	a.mu.Unlock()
	for _, m := range left {
		if m.cmd == nil {
			continue
		}
		if a.removed {
			m.done <- result{err: notFound(m.cmd.CallID)}
		} else {
			m.done <- result{err: errs.E(errs.Unavailable, "This Switchboard node is stopping; call %s was not changed.", m.cmd.CallID)}
		}
	}
	for _, t := range a.timers {
		t.Stop()
	}
	a.stopBridge()
	m := a.m
	m.mu.Lock()
	if m.actors[a.rec.Call.ID] == a {
		delete(m.actors, a.rec.Call.ID)
	}
	m.mu.Unlock()
	if a.deleted {
		m.release(Caller{AppID: a.rec.AppID, TenantID: a.rec.TenantID})
		m.endedN.Add(1)
	}
	m.active.Dec()
	close(a.done)
	m.wg.Done()
}

// execute runs one API command. Its answer waits for the step to be stored.
func (a *actor) execute(cmd *command, done chan<- result) {
	var res result
	switch {
	case a.deleted:
		res.err = notFound(cmd.CallID)
	case !sameID(a.rec.TenantID, cmd.Caller.TenantID) || !sameID(a.rec.AppID, cmd.Caller.AppID):
		res.err = notFound(cmd.CallID)
	default:
		res.op, res.err = cmd.action.run(a, cmd)
	}
	a.replies = append(a.replies, reply{done, res})
}

// arm schedules fn on the actor at t, replacing the timer named name.
func (a *actor) arm(name string, at time.Time, fn func(*actor)) {
	if t := a.timers[name]; t != nil {
		t.Stop()
	}
	d := at.Sub(a.m.clk.Now())
	a.timers[name] = a.m.clk.AfterFunc(d, func() { a.post(fn) })
}

func (a *actor) disarm(name string) {
	if t := a.timers[name]; t != nil {
		t.Stop()
		delete(a.timers, name)
	}
}

// setState moves the call and tells the bot.
func (a *actor) setState(s graph.CallState) {
	if a.rec.Call.State == s {
		return
	}
	a.log.Debug("call state", "from", a.rec.Call.State, "to", s)
	a.rec.Call.State = s
	a.dirty = true
	a.notifyCall(graph.ChangeUpdated, callChange(&a.rec.Call))
	if s == graph.StateEstablished {
		a.openAppMedia()
	}
}

// legEvents is the event callback of the call's leg, through a sink a
// consultative transfer can move to another call.
func (a *actor) legEvents() func(LegEvent) {
	a.sink = newSink(func(ev LegEvent) { a.post(func(a *actor) { a.onLeg(ev) }) })
	return a.sink.deliver
}

func (a *actor) startOutbound(t Target) {
	a.notifyCall(graph.ChangeUpdated, callChange(&a.rec.Call)) // establishing
	a.armKeepAlive()
	a.armRing()
	leg, err := a.m.o.Dialer.Dial(a.rec.Call.ID, t, a.legEvents())
	if err != nil {
		reason := errs.CannotRoute
		var re *RouteError
		if errors.As(err, &re) {
			reason = re.Reason
		} else {
			a.log.Error("dial", "err", err)
		}
		a.end(reason, false)
		return
	}
	a.setLeg(leg)
}

func (a *actor) setLeg(l Leg) {
	a.leg = l
	ref := l.Ref()
	a.rec.Leg = &ref
	a.dirty = true
}

func (a *actor) startIncoming(newLeg func(string, func(LegEvent)) Leg) {
	a.setLeg(newLeg(a.rec.Call.ID, a.legEvents()))
	a.notifyCall(graph.ChangeCreated, fullCall(&a.rec.Call))
	a.armAnswer()
}

// armRing ends an outbound call nobody answers by its RingBy deadline.
func (a *actor) armRing() {
	a.arm("ring", a.rec.RingBy, func(a *actor) {
		if a.rec.Call.State == graph.StateEstablishing || a.rec.Call.State == graph.StateRinging {
			a.end(errs.NoAnswer, true)
		}
	})
}

func (a *actor) armAnswer() {
	a.arm("answer", a.rec.AnswerBy, func(a *actor) {
		if a.rec.Call.State == graph.StateIncoming {
			a.end(errs.NotAnswered, true)
		}
	})
}

func (a *actor) armKeepAlive() {
	a.arm("keepAlive", a.rec.LastKeepAlive.Add(a.m.cfg.Calls.KeepAliveTimeout.D()), func(a *actor) {
		if a.m.clk.Now().Before(a.rec.LastKeepAlive.Add(a.m.cfg.Calls.KeepAliveTimeout.D())) {
			a.armKeepAlive()
			return
		}
		a.end(errs.KeepAliveExpired, true)
	})
}

// onLeg applies what the far end did.
func (a *actor) onLeg(ev LegEvent) {
	if a.legMember != nil {
		a.onMember(a.legMember, ev)
		return
	}
	a.observeLeg("", ev)
	if ev.Kind == LegRefer {
		a.onRefer(nil, ev.Refer)
		return
	}
	if a.bridged != nil {
		// After a redirect the bot's call is over: the caller and the new
		// target talk through Switchboard until either hangs up.
		if ev.Kind == LegEnded {
			a.endBridged(errs.EndedByRemote)
		}
		return
	}
	if a.deleted {
		return
	}
	switch ev.Kind {
	case LegRinging:
		if a.rec.Call.State == graph.StateEstablishing && a.rec.Call.Direction == graph.DirectionOutgoing {
			a.setState(graph.StateRinging)
		}
	case LegProgress:
	case LegAnswered:
		switch a.rec.Call.State {
		case graph.StateEstablishing, graph.StateRinging:
			a.disarm("ring")
			if a.leg != nil {
				// The dialog is confirmed now: what a restarted node needs
				// to release it is in the leg's reference.
				ref := a.leg.Ref()
				a.rec.Leg = &ref
			}
			a.rec.Call.MediaState = &graph.CallMediaState{Audio: graph.MediaStateActive}
			a.setState(graph.StateEstablished)
		}
	case LegEnded:
		a.leg = nil
		reason := ev.Reason
		if a.rec.Call.State == graph.StateIncoming || a.rec.Call.State == graph.StateRedirecting {
			reason = errs.CallerCancelled
			for _, l := range a.redirects {
				if l != nil {
					l.HangUp(reason)
				}
			}
			a.redirects = nil
		}
		a.end(reason, false)
	case LegTone:
		a.appTone(a.farPID(), ev.Tone)
		if !a.rec.ToneSubscribed || a.rec.Call.State != graph.StateEstablished {
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

// end finishes the call for the bot: operations still running fail first,
// then the terminated notification; the record is deleted once both are
// stored. With hangLeg the far end is released too (BYE, CANCEL or a SIP
// rejection).
func (a *actor) end(reason errs.EndReason, hangLeg bool) {
	if a.deleted {
		return
	}
	a.endMedia()
	for i := range a.rec.Operations {
		op := &a.rec.Operations[i]
		if op.Status.Terminal() {
			continue
		}
		op.Status = graph.OperationFailed
		op.ResultInfo = resultInfo(errs.OpCallEnded.With(reason.Message))
		a.notifyOperation(op)
	}
	a.endRefers()
	if hangLeg && a.leg != nil {
		if a.rec.Call.State == graph.StateIncoming || a.rec.Call.State == graph.StateRedirecting {
			a.leg.Reject(reason)
		} else {
			a.leg.HangUp(reason)
		}
		a.leg = nil
	}
	for _, l := range a.redirects {
		if l != nil {
			l.HangUp(reason)
		}
	}
	a.redirects = nil
	if a.transferee != nil {
		a.transferee.HangUp(reason)
		a.transferee = nil
	}
	a.endMembers(reason)
	a.leaveMeeting()
	a.rec.Call.State = graph.StateTerminated
	a.rec.Call.ResultInfo = &graph.ResultInfo{ODataType: graph.TypeResultInfo, Code: reason.Code, Subcode: reason.Subcode, Message: reason.Message}
	if a.rec.Call.MediaState != nil {
		a.rec.Call.MediaState = &graph.CallMediaState{Audio: graph.MediaStateInactive}
	}
	data := callChange(&a.rec.Call)
	if a.rec.Call.AnsweredBy != nil {
		data = fullCall(&a.rec.Call)
	}
	a.notifyCall(graph.ChangeDeleted, data)
	a.closeAppMedia(a.rec.Call.ResultInfo)
	a.deleted = true
	a.dirty = true
	for name := range a.timers {
		a.disarm(name)
	}
	a.m.ended.WithLabelValues(strconv.Itoa(reason.Code), strconv.Itoa(reason.Subcode)).Inc()
	a.log.Info("call ended", "code", reason.Code, "subcode", reason.Subcode, "reason", reason.Message)
}

func secs(n int) time.Duration { return time.Duration(n) * time.Second }
