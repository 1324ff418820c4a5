package callctl

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/switchboard-voice/switchboard/internal/clock"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/ids"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/internal/store"
	"github.com/switchboard-voice/switchboard/internal/webhook"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// actor owns one call. Everything that reads or changes the call runs on
// its goroutine, in mailbox order: API commands, leg events, timers.
type actor struct {
	m   *Manager
	rec *Record
	rev uint64
	log *slog.Logger

	leg       Leg
	redirects []Leg  // legs dialed by a redirect, first to answer wins
	bridged   Leg    // after a successful redirect: the winning leg
	unbridge  func() // stops the media bridge between leg and bridged, if any

	mu      sync.Mutex
	queue   []func(*actor)
	wake    chan struct{}
	stopped bool
	quit    chan struct{}

	jobs    []*mediaJob // queued playPrompt/recordResponse
	running *mediaJob   // the one playing or recording
	hold    *mediaJob   // the hold music, while a participant is held; jobs wait for it

	timers     map[string]clock.Timer
	dirty      bool
	deleted    bool
	afterFlush []func() // command replies, sent once the step is stored // the record is gone from the store; the call has ended for the bot
	pending    []webhook.Notification
}

// spawn registers and starts an actor for rec; nil when the node is closing.
func (m *Manager) spawn(rec *Record, rev uint64) *actor {
	a := &actor{
		m: m, rec: rec, rev: rev,
		log:    m.log.With("call", rec.Call.ID, "app", rec.AppID),
		wake:   make(chan struct{}, 1),
		quit:   make(chan struct{}),
		timers: map[string]clock.Timer{},
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
	go a.run()
	return a
}

// post queues fn for the actor; false when the actor has finished.
func (a *actor) post(fn func(*actor)) bool {
	a.mu.Lock()
	if a.stopped {
		a.mu.Unlock()
		return false
	}
	a.queue = append(a.queue, fn)
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
			fn := a.queue[0]
			a.queue[0] = nil
			a.queue = a.queue[1:]
			a.mu.Unlock()
			fn(a)
			a.flush()
			for _, f := range a.afterFlush {
				f()
			}
			a.afterFlush = a.afterFlush[:0]
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
// ended for the bot and no redirected leg is still bridged.
func (a *actor) finished() bool { return a.deleted && a.bridged == nil }

func (a *actor) exit() {
	a.mu.Lock()
	a.stopped = true
	a.queue = nil
	a.mu.Unlock()
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
	}
	m.active.Dec()
	m.wg.Done()
}

// flush writes the record with compare-and-set, then queues the
// notifications the last step produced, in order.
func (a *actor) flush() {
	if !a.dirty && len(a.pending) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if a.dirty {
		a.dirty = false
		if a.deleted {
			if err := a.m.calls.Delete(ctx, a.rec.Call.ID); err != nil {
				a.log.Error("delete ended call", "err", err)
			}
		} else if err := a.save(ctx); err != nil {
			a.log.Error("save call", "err", err)
		}
	}
	for _, n := range a.pending {
		if err := a.m.o.Notifier.Enqueue(ctx, n); err != nil {
			a.log.Error("queue notification", "url", n.URL, "err", err)
		}
	}
	a.pending = a.pending[:0]
}

func (a *actor) save(ctx context.Context) error {
	data, err := json.Marshal(a.rec)
	if err != nil {
		return err
	}
	rev, err := a.m.calls.Update(ctx, a.rec.Call.ID, data, a.rev)
	if errors.Is(err, store.ErrConflict) {
		// Someone else wrote the call; the owner's state is the truth.
		a.log.Warn("call record changed under its owner; overwriting")
		_, cur, gerr := a.m.calls.Get(ctx, a.rec.Call.ID)
		if gerr != nil {
			return gerr
		}
		rev, err = a.m.calls.Update(ctx, a.rec.Call.ID, data, cur)
	}
	if err != nil {
		return err
	}
	a.rev = rev
	return nil
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

// notify queues a notification to the call's callback.
func (a *actor) notify(change graph.ChangeType, resource, resourceURL string, data any) {
	body, err := envelope(change, resource, resourceURL, data)
	if err != nil {
		a.log.Error("encode notification", "err", err)
		return
	}
	a.pending = append(a.pending, webhook.Notification{
		CallID: a.rec.Call.ID, AppID: a.rec.AppID, TenantID: a.rec.TenantID,
		URL: a.rec.Call.CallbackURI, Body: body,
		Incoming: change == graph.ChangeCreated,
	})
}

func (a *actor) notifyCall(change graph.ChangeType, data *graph.Call) {
	a.notify(change, legacyCallPath(a.rec.Call.ID), callPath(a.rec.Call.ID), data)
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
}

func (a *actor) legEvents() func(LegEvent) {
	return func(ev LegEvent) { a.post(func(a *actor) { a.onLeg(ev) }) }
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
			a.rec.Call.MediaState = &graph.CallMediaState{Audio: graph.MediaStateActive}
			a.setState(graph.StateEstablished)
		}
	case LegEnded:
		a.leg = nil
		reason := ev.Reason
		if a.rec.Call.State == graph.StateIncoming || a.rec.Call.State == graph.StateRedirecting {
			reason = errs.CallerCancelled
			for _, l := range a.redirects {
				l.HangUp(reason)
			}
			a.redirects = nil
		}
		a.end(reason, false)
	case LegTone:
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
// then the terminated notification, then the record is deleted. With
// hangLeg the far end is released too (BYE, CANCEL or a SIP rejection).
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
		op.ResultInfo = &graph.ResultInfo{ODataType: graph.TypeResultInfo, Code: 500, Subcode: 9010,
			Message: "The call ended before the operation completed: " + reason.Message}
		a.notifyOperation(op)
	}
	if hangLeg && a.leg != nil {
		if a.rec.Call.State == graph.StateIncoming || a.rec.Call.State == graph.StateRedirecting {
			a.leg.Reject(reason)
		} else {
			a.leg.HangUp(reason)
		}
		a.leg = nil
	}
	for _, l := range a.redirects {
		l.HangUp(reason)
	}
	a.redirects = nil
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
	a.deleted = true
	a.dirty = true
	for name := range a.timers {
		a.disarm(name)
	}
	a.m.ended.WithLabelValues(strconv.Itoa(reason.Code), strconv.Itoa(reason.Subcode)).Inc()
	a.log.Info("call ended", "code", reason.Code, "subcode", reason.Subcode, "reason", reason.Message)
}

func (a *actor) notifyOperation(op *graph.Operation) {
	data := *op
	data.ODataContext = ""
	a.notify(graph.ChangeDeleted, legacyOperationPath(a.rec.Call.ID, op.ID), operationPath(a.rec.Call.ID, op.ID), &data)
}

func (a *actor) newOperation(typ, clientContext string, status graph.OperationStatus) *graph.Operation {
	op := graph.Operation{ODataType: typ, ID: ids.New(), ClientContext: clientContext, Status: status}
	if status == graph.OperationCompleted {
		op.ResultInfo = &graph.ResultInfo{ODataType: graph.TypeResultInfo, Code: 200, Subcode: 0, Message: "Action completed successfully."}
	}
	a.rec.addOperation(op)
	a.dirty = true
	return &a.rec.Operations[len(a.rec.Operations)-1]
}

func decode[T any](raw json.RawMessage) (*T, error) {
	v := new(T)
	if len(raw) == 0 {
		return v, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return nil, badRequest("malformed request body: %v", err)
	}
	return v, nil
}

func (a *actor) conflict(action string) error {
	return errs.E(errs.Conflict, "Call %s is %s: %s is not possible now.", a.rec.Call.ID, a.rec.Call.State, action)
}

func checkClientContext(s string) error {
	if len(s) > 256 {
		return badRequest("clientContext: at most 256 characters.")
	}
	return nil
}

// handle runs one API command on the actor.
func (a *actor) handle(cmd command) (*graph.Operation, error) {
	if a.deleted {
		return nil, notFound(cmd.CallID)
	}
	c := cmd.Caller
	st := a.rec.Call.State
	switch cmd.Op {
	case "hangUp":
		if st == graph.StateIncoming {
			a.end(errs.Rejected, true)
			return nil, nil
		}
		a.setState(graph.StateTerminating)
		a.end(errs.EndedByBot, true)
		return nil, nil

	case "keepAlive":
		a.rec.LastKeepAlive = a.m.clk.Now()
		a.dirty = true
		a.armKeepAlive()
		return nil, nil

	case "answer":
		req, err := decode[graph.AnswerRequest](cmd.Body)
		if err != nil {
			return nil, err
		}
		if st != graph.StateIncoming {
			return nil, a.conflict("answer")
		}
		if req.MediaConfig == nil {
			return nil, badRequest("mediaConfig is required.")
		}
		req.MediaConfig.Normalize()
		if req.MediaConfig.AppHosted() {
			if err := c.require(PermAccessMedia); err != nil {
				return nil, err
			}
		}
		if len(req.AcceptedModalities) == 0 {
			return nil, badRequest("acceptedModalities is required.")
		}
		for i, mod := range req.AcceptedModalities {
			if mod != graph.ModalityAudio {
				return nil, errs.E(errs.NotSupported, "acceptedModalities[%d]: %q is not supported; Switchboard calls carry audio.", i, mod)
			}
		}
		if req.CallbackURI != "" {
			if err := a.m.cfg.CheckCallbackURI(req.CallbackURI); err != nil {
				return nil, badRequest("callbackUri: %v", err)
			}
			a.rec.Call.CallbackURI = req.CallbackURI
		}
		a.rec.Call.MediaConfig = req.MediaConfig
		a.rec.Call.CallOptions = req.CallOptions
		a.m.prefetch(req.MediaConfig)
		a.disarm("answer")
		a.rec.LastKeepAlive = a.m.clk.Now()
		a.armKeepAlive()
		a.setState(graph.StateEstablishing)
		if a.leg == nil {
			a.end(errs.CallerCancelled, false)
			return nil, nil
		}
		if err := a.leg.Answer(); err != nil {
			a.log.Warn("answer leg", "err", err)
			a.end(errs.MediaFailure, true)
		}
		return nil, nil

	case "reject":
		req, err := decode[graph.RejectRequest](cmd.Body)
		if err != nil {
			return nil, err
		}
		if st != graph.StateIncoming {
			return nil, a.conflict("reject")
		}
		if req.CallbackURI != "" {
			if err := a.m.cfg.CheckCallbackURI(req.CallbackURI); err != nil {
				return nil, badRequest("callbackUri: %v", err)
			}
			a.rec.Call.CallbackURI = req.CallbackURI
		}
		switch req.Reason {
		case graph.RejectBusy:
			a.end(errs.RejectedBusy, true)
		case graph.RejectForbidden:
			a.end(errs.RejectedForbidden, true)
		case graph.RejectNone, "":
			a.end(errs.Rejected, true)
		default:
			return nil, badRequest("reason: %q is not none, busy or forbidden.", req.Reason)
		}
		return nil, nil

	case "redirect":
		return nil, a.redirect(c, cmd.Body)

	case "mute", "unmute":
		req, err := decode[graph.ClientContextRequest](cmd.Body)
		if err != nil {
			return nil, err
		}
		if err := checkClientContext(req.ClientContext); err != nil {
			return nil, err
		}
		if st != graph.StateEstablished {
			return nil, a.conflict(cmd.Op)
		}
		mute := cmd.Op == "mute"
		a.rec.Muted = mute
		if p := a.port(); p != nil {
			p.SetMuted(mute)
		}
		for i := range a.rec.Participants {
			if a.rec.Participants[i].ID == a.rec.Call.MyParticipantID {
				a.rec.Participants[i].IsMuted = mute
				for j := range a.rec.Participants[i].MediaStreams {
					a.rec.Participants[i].MediaStreams[j].ServerMuted = mute
				}
			}
		}
		typ := graph.TypeMuteParticipantOperation
		if !mute {
			typ = graph.TypeUnmuteParticipantOperation
		}
		return a.newOperation(typ, req.ClientContext, graph.OperationCompleted), nil

	case "subscribeToTone":
		req, err := decode[graph.ClientContextRequest](cmd.Body)
		if err != nil {
			return nil, err
		}
		if err := checkClientContext(req.ClientContext); err != nil {
			return nil, err
		}
		if err := c.require(PermAccessMedia); err != nil {
			return nil, err
		}
		if a.rec.Call.MediaConfig.AppHosted() {
			return nil, badRequest("subscribeToTone needs service-hosted media (serviceHostedMediaConfig); this call hosts its own media.")
		}
		if st == graph.StateIncoming {
			return nil, a.conflict("subscribeToTone")
		}
		a.rec.ToneSubscribed = true
		if p := a.port(); p != nil {
			p.DetectTones(true)
		}
		return a.newOperation(graph.TypeSubscribeToToneOperation, req.ClientContext, graph.OperationCompleted), nil

	case "playPrompt":
		req, err := decode[graph.PlayPromptRequest](cmd.Body)
		if err != nil {
			return nil, err
		}
		return a.playPrompt(req)

	case "recordResponse":
		req, err := decode[graph.RecordResponseRequest](cmd.Body)
		if err != nil {
			return nil, err
		}
		return a.recordResponse(c, req)

	case "cancelMediaProcessing":
		req, err := decode[graph.ClientContextRequest](cmd.Body)
		if err != nil {
			return nil, err
		}
		return a.cancelMediaProcessing(req)

	case "startHoldMusic":
		req, err := decode[graph.StartHoldMusicRequest](cmd.Body)
		if err != nil {
			return nil, err
		}
		return a.startHoldMusic(cmd.Participant, req)

	case "stopHoldMusic":
		req, err := decode[graph.ClientContextRequest](cmd.Body)
		if err != nil {
			return nil, err
		}
		return a.stopHoldMusic(cmd.Participant, req)

	case "sendDtmfTones":
		req, err := decode[graph.SendDtmfTonesRequest](cmd.Body)
		if err != nil {
			return nil, err
		}
		if err := checkClientContext(req.ClientContext); err != nil {
			return nil, err
		}
		if len(req.Tones) == 0 {
			return nil, badRequest("tones is required.")
		}
		for i, t := range req.Tones {
			if t.Char() == 0 {
				return nil, badRequest("tones[%d]: %q is not a tone (tone0..tone9, star, pound, a..d, flash).", i, t)
			}
		}
		if st != graph.StateEstablished || a.leg == nil {
			return nil, a.conflict("sendDtmfTones")
		}
		delay := 100 * time.Millisecond
		if req.DelayBetweenTonesMs != nil && *req.DelayBetweenTonesMs >= 0 {
			delay = time.Duration(*req.DelayBetweenTonesMs) * time.Millisecond
		}
		op := a.newOperation(graph.TypeSendDtmfTonesOperation, req.ClientContext, graph.OperationRunning)
		resp := *op
		id := op.ID
		sent := func(a *actor) {
			a.disarm("dtmf:" + id)
			if op := a.rec.operation(id); op != nil && !op.Status.Terminal() {
				op.Status = graph.OperationCompleted
				op.CompletionReason = "completedSuccessfully"
				op.ResultInfo = &graph.ResultInfo{ODataType: graph.TypeResultInfo, Code: 200, Message: "Action completed successfully."}
				a.dirty = true
				a.notifyOperation(op)
			}
		}
		// The leg says when the last tone has gone out; the timer (a tone is
		// 100 ms on the wire, then the gap) bounds the wait should it not.
		a.arm("dtmf:"+id, a.m.clk.Now().Add(time.Duration(len(req.Tones))*(100*time.Millisecond+delay)+time.Second), sent)
		if err := a.leg.SendTones(req.Tones, delay, func() { a.post(sent) }); err != nil {
			a.disarm("dtmf:" + id)
			op.Status = graph.OperationFailed
			op.ResultInfo = &graph.ResultInfo{ODataType: graph.TypeResultInfo, Code: 500, Subcode: 9011, Message: "Sending the tones failed: " + err.Error()}
			resp = *op
			return &resp, nil
		}
		return &resp, nil
	}
	return nil, errs.E(errs.NotSupported, "%s is not supported.", cmd.Op)
}

// redirect dials the new targets; the first to answer gets the caller
// (graph-calls.md §2.6; Switchboard stays in the media path, DECISIONS.md).
func (a *actor) redirect(c Caller, body json.RawMessage) error {
	req, err := decode[graph.RedirectRequest](body)
	if err != nil {
		return err
	}
	if a.rec.Call.State != graph.StateIncoming {
		return a.conflict("redirect")
	}
	if err := c.require(PermInitiate); err != nil {
		return err
	}
	if n := len(req.Targets); n == 0 || n > 25 {
		return badRequest("targets: between 1 and 25 targets are needed, got %d.", n)
	}
	timeout := 55
	if len(req.Targets) > 1 {
		timeout = 60
	}
	if req.Timeout != nil {
		if *req.Timeout < 15 || *req.Timeout > 90 {
			return badRequest("timeout: %d is outside 15..90 seconds.", *req.Timeout)
		}
		timeout = *req.Timeout
	}
	if req.CallbackURI != "" {
		if err := a.m.cfg.CheckCallbackURI(req.CallbackURI); err != nil {
			return badRequest("callbackUri: %v", err)
		}
		a.rec.Call.CallbackURI = req.CallbackURI
	}
	targets := make([]Target, len(req.Targets))
	src := &graph.ParticipantInfo{Identity: a.rec.Call.Targets[0].Identity}
	if src.Identity == nil || src.Identity.ApplicationInstance == nil {
		src.Identity = &graph.IdentitySet{ApplicationInstance: &graph.Identity{}} // the caller's number is presented
	}
	for i, t := range req.Targets {
		tg, err := a.m.resolveTarget(c, t, src)
		if err != nil {
			return errs.E(errs.KindOf(err), "%s", strings.Replace(errs.Message(err), "targets[0]", "targets["+strconv.Itoa(i)+"]", 1))
		}
		targets[i] = tg
		normIdentitySet(req.Targets[i].Identity)
		req.Targets[i].ODataType = graph.TypeInvitationParticipantInfo
	}
	a.disarm("answer")
	a.rec.Redirect = &RedirectState{Targets: req.Targets, By: a.m.clk.Now().Add(secs(timeout))}
	a.setState(graph.StateRedirecting)
	for i, t := range targets {
		i := i
		leg, err := a.m.o.Dialer.Dial(a.rec.Call.ID+"-r"+strconv.Itoa(i), t, func(ev LegEvent) {
			a.post(func(a *actor) { a.onRedirectLeg(i, ev) })
		})
		if err != nil {
			a.log.Info("redirect target unreachable", "target", i, "err", err)
			a.redirects = append(a.redirects, nil)
			continue
		}
		a.redirects = append(a.redirects, leg)
	}
	a.arm("redirect", a.rec.Redirect.By, func(a *actor) {
		if a.rec.Call.State == graph.StateRedirecting {
			a.end(errs.NoAnswer, true)
		}
	})
	if a.liveRedirects() == 0 {
		a.end(errs.Unreachable, true)
	}
	return nil
}

func (a *actor) liveRedirects() int {
	n := 0
	for _, l := range a.redirects {
		if l != nil {
			n++
		}
	}
	return n
}

func (a *actor) onRedirectLeg(i int, ev LegEvent) {
	if a.deleted || a.rec.Call.State != graph.StateRedirecting || i >= len(a.redirects) || a.redirects[i] == nil {
		// After the redirect won, only the winner still reports (the
		// others were hung up): its end releases the caller.
		if a.bridged != nil && ev.Kind == LegEnded {
			a.onLeg(ev)
		}
		return
	}
	switch ev.Kind {
	case LegAnswered:
		winner := a.redirects[i]
		for j, l := range a.redirects {
			if j != i && l != nil {
				l.HangUp(errs.Redirected)
			}
		}
		a.redirects = nil
		if a.leg == nil || a.leg.Answer() != nil {
			winner.HangUp(errs.CallerCancelled)
			a.end(errs.CallerCancelled, false)
			return
		}
		t := a.rec.Redirect.Targets[i]
		a.rec.Call.AnsweredBy = &graph.ParticipantInfo{ODataType: graph.TypeParticipantInfo, Identity: t.Identity}
		a.rec.Call.CallRoutes = []graph.CallRoute{{RoutingType: "forwarded", Original: a.rec.Call.Targets[0].Identity, Final: t.Identity}}
		a.end(errs.Redirected, false)
		a.bridged = winner
		a.bridgeMedia()
	case LegEnded:
		a.redirects[i] = nil
		if a.liveRedirects() == 0 {
			a.end(ev.Reason, true)
		}
	}
}

// bridgeMedia connects the caller's audio to the redirect target's: the
// two legs' RTP sessions, back to back (DECISIONS.md: Switchboard stays
// in the media path). Legs whose media the platform does not carry
// (simulated endpoints) are connected in signalling only.
func (a *actor) bridgeMedia() {
	x, y := sessionOf(a.leg), sessionOf(a.bridged)
	if x == nil || y == nil {
		a.log.Debug("redirected call without RTP on both legs: no media bridge")
		return
	}
	a.unbridge = media.Bridge(x, y)
}

func (a *actor) stopBridge() {
	if a.unbridge != nil {
		a.unbridge()
		a.unbridge = nil
	}
}

// endBridged ends a redirected call that is still up: the media bridge
// first, then both legs.
func (a *actor) endBridged(reason errs.EndReason) {
	a.stopBridge()
	if a.leg != nil {
		a.leg.HangUp(reason)
	}
	a.bridged.HangUp(reason)
	a.bridged = nil
}

func secs(n int) time.Duration { return time.Duration(n) * time.Second }

// resume rebuilds the actor of a call this node owned before it restarted.
func (m *Manager) resume(rec *Record, rev uint64) {
	if rec.Call.State == graph.StateTerminated {
		_ = m.calls.Delete(context.Background(), rec.Call.ID)
		return
	}
	m.mu.Lock()
	m.perApp[rec.AppID+"|"+rec.TenantID]++
	m.mu.Unlock()
	a := m.spawn(rec, rev)
	if a == nil {
		return
	}
	a.post(func(a *actor) {
		a.log.Info("resuming call after restart", "state", a.rec.Call.State)
		if a.rec.Call.State == graph.StateRedirecting {
			a.end(errs.MediaFailure, false)
			return
		}
		if a.rec.Leg == nil {
			a.end(errs.MediaFailure, false)
			return
		}
		leg, err := m.o.Dialer.Resume(a.rec.Call.ID, *a.rec.Leg, a.rec.Call.State, a.legEvents())
		if err != nil {
			a.log.Warn("leg cannot be resumed", "err", err)
			a.end(errs.MediaFailure, false)
			return
		}
		a.leg = leg
		switch a.rec.Call.State {
		case graph.StateIncoming:
			a.armAnswer()
		case graph.StateEstablishing, graph.StateRinging:
			a.armKeepAlive()
			if a.rec.Call.Direction == graph.DirectionOutgoing {
				a.armRing()
			}
		default:
			a.armKeepAlive()
			a.resumeHold()
		}
	})
}
