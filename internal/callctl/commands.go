package callctl

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/ids"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Action is one Graph action on a call (POST .../calls/{id}/{name}, and
// the call's DELETE as hangUp) or on one of its participants (POST
// .../participants/{pid}/{name}). graphapi decodes the request body once,
// into NewRequest(), and hands it to Manager.Do; the call's actor runs it.
// Adding an action is one entry in the actions table below.
type Action struct {
	// Name is the action's path segment.
	Name string
	// Participant marks an action on a participant.
	Participant bool
	// Status is the HTTP status of success: the body is the operation when
	// the action returns one, empty otherwise (the methods listed in
	// https://learn.microsoft.com/graph/api/resources/call and
	// https://learn.microsoft.com/graph/api/resources/participant).
	Status int

	newReq func() any
	run    func(a *actor, cmd *command) (*graph.Operation, error)
	// notYet refuses the action, once the call is known to be the
	// caller's, with this message: a capability not served yet.
	notYet string
}

// NewRequest returns a pointer to the action's request type, for the body
// to be decoded into.
func (x *Action) NewRequest() any { return x.newReq() }

// act builds an Action whose request is a *T.
func act[T any](name string, status int, run func(*actor, *command, *T) (*graph.Operation, error)) *Action {
	return &Action{
		Name: name, Status: status,
		newReq: func() any { return new(T) },
		run: func(a *actor, cmd *command) (*graph.Operation, error) {
			req, _ := cmd.Req.(*T)
			if req == nil {
				req = new(T)
			}
			return run(a, cmd, req)
		},
	}
}

func onParticipant(x *Action) *Action { x.Participant = true; return x }

func notYet(name string, participant bool, msg string) *Action {
	return &Action{Name: name, Participant: participant, Status: 400, notYet: msg,
		newReq: func() any { return new(struct{}) }}
}

// HangUp is the call's DELETE.
var HangUp = act("hangUp", 204, (*actor).hangUp)

// RemoveParticipant is a participant's DELETE.
var RemoveParticipant = onParticipant(act("remove", 204, (*actor).removeMember))

// noBody is the request of actions that take none (keepAlive, DELETE).
type noBody struct{}

// actions is every action a call serves, by path segment.
var actions = map[string]*Action{}

// participantActions is every action a participant serves.
var participantActions = map[string]*Action{}

func init() {
	for _, x := range []*Action{
		act("answer", 202, (*actor).answer),
		act("reject", 202, (*actor).reject),
		act("redirect", 202, (*actor).redirect),
		act("keepAlive", 200, (*actor).keepAlive),
		act("mute", 200, (*actor).mute),
		act("unmute", 200, (*actor).unmute),
		act("subscribeToTone", 200, (*actor).subscribeToTone),
		act("sendDtmfTones", 200, (*actor).sendDtmfTones),
		act("playPrompt", 200, (*actor).playPrompt),
		act("recordResponse", 200, (*actor).recordResponse),
		act("cancelMediaProcessing", 200, (*actor).cancelMediaProcessing),
		act("transfer", 202, (*actor).transfer),
		notYet("updateRecordingStatus", false, "updateRecordingStatus is not supported by this Switchboard version yet."),
		notYet("changeScreenSharingRole", false, "changeScreenSharingRole is not supported: Switchboard calls carry audio only."),
		notYet("addLargeGalleryView", false, "addLargeGalleryView is not supported: Switchboard calls carry audio only."),
		// POST .../participants/invite, an action on the roster.
		act("participants/invite", 200, (*actor).invite),
	} {
		actions[x.Name] = x
	}
	for _, x := range []*Action{
		onParticipant(act("startHoldMusic", 202, (*actor).startHoldMusic)),
		onParticipant(act("stopHoldMusic", 202, (*actor).stopHoldMusic)),
		onParticipant(act("mute", 200, (*actor).muteMember)),
		onParticipant(act("admit", 204, (*actor).admit)),
	} {
		participantActions[x.Name] = x
	}
}

// Actions returns every action, the call's DELETE (HangUp) and a
// participant's (RemoveParticipant) included: the call's in name order,
// then the participants'. For what must cover them all (the fuzz targets
// of the request bodies).
func Actions() []*Action {
	out := []*Action{HangUp}
	for _, m := range []map[string]*Action{actions, participantActions} {
		names := make([]string, 0, len(m))
		for n := range m {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			out = append(out, m[n])
		}
	}
	return append(out, RemoveParticipant)
}

// LookupAction returns the action named name, on a call or, with
// participant, on a participant; the OData-namespaced spelling
// (microsoft.graph.{name}) is the same action.
func LookupAction(name string, participant bool) (*Action, bool) {
	name = strings.TrimPrefix(name, "microsoft.graph.")
	if participant {
		x, ok := participantActions[name]
		return x, ok
	}
	x, ok := actions[name]
	return x, ok
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

func (a *actor) newOperation(typ, clientContext string, status graph.OperationStatus) *graph.Operation {
	op := graph.Operation{ODataType: typ, ID: ids.New(), ClientContext: clientContext, Status: status}
	if status == graph.OperationCompleted {
		op.ResultInfo = resultInfo(errs.OpCompleted)
	}
	a.rec.addOperation(op)
	a.dirty = true
	return &a.rec.Operations[len(a.rec.Operations)-1]
}

// setCallback applies a callbackUri an answer, reject or redirect gives.
func (a *actor) setCallback(uri string) error {
	if uri == "" {
		return nil
	}
	if err := a.m.cfg.CheckCallbackURI(uri); err != nil {
		return badRequest("callbackUri: %v", err)
	}
	a.rec.Call.CallbackURI = uri
	a.dirty = true
	return nil
}

func (a *actor) hangUp(*command, *noBody) (*graph.Operation, error) {
	switch a.rec.Call.State {
	case graph.StateIncoming, graph.StateRedirecting:
		// The caller was never answered: it is refused, not hung up.
		a.end(errs.Rejected, true)
		return nil, nil
	}
	a.setState(graph.StateTerminating)
	a.end(errs.EndedByBot, true)
	return nil, nil
}

func (a *actor) keepAlive(*command, *noBody) (*graph.Operation, error) {
	a.rec.LastKeepAlive = a.m.clk.Now()
	a.dirty = true
	a.armKeepAlive()
	return nil, nil
}

func (a *actor) answer(cmd *command, req *graph.AnswerRequest) (*graph.Operation, error) {
	if a.rec.Call.State != graph.StateIncoming {
		return nil, a.conflict("answer")
	}
	if req.MediaConfig == nil {
		return nil, badRequest("mediaConfig is required.")
	}
	req.MediaConfig.Normalize()
	if err := a.m.checkMediaMode(cmd.Caller, req.MediaConfig); err != nil {
		return nil, err
	}
	if len(req.AcceptedModalities) == 0 {
		return nil, badRequest("acceptedModalities is required.")
	}
	for i, mod := range req.AcceptedModalities {
		if mod != graph.ModalityAudio {
			return nil, errs.E(errs.NotSupported, "acceptedModalities[%d]: %q is not supported; Switchboard calls carry audio.", i, mod)
		}
	}
	if err := a.setCallback(req.CallbackURI); err != nil {
		return nil, err
	}
	a.rec.Call.MediaConfig = req.MediaConfig
	a.rec.Call.CallOptions = req.CallOptions
	if !req.MediaConfig.AppHosted() {
		a.refuseAppMedia()
	}
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
		a.end(errs.AnswerFailed, true)
	}
	return nil, nil
}

func (a *actor) reject(_ *command, req *graph.RejectRequest) (*graph.Operation, error) {
	if a.rec.Call.State != graph.StateIncoming {
		return nil, a.conflict("reject")
	}
	var reason errs.EndReason
	switch req.Reason {
	case graph.RejectBusy:
		reason = errs.RejectedBusy
	case graph.RejectForbidden:
		reason = errs.RejectedForbidden
	case graph.RejectNone, "":
		reason = errs.Rejected
	default:
		return nil, badRequest("reason: %q is not none, busy or forbidden.", req.Reason)
	}
	if err := a.setCallback(req.CallbackURI); err != nil {
		return nil, err
	}
	a.end(reason, true)
	return nil, nil
}

func (a *actor) mute(_ *command, req *graph.ClientContextRequest) (*graph.Operation, error) {
	return a.setMuted(true, req)
}

func (a *actor) unmute(_ *command, req *graph.ClientContextRequest) (*graph.Operation, error) {
	return a.setMuted(false, req)
}

// setMuted mutes or unmutes the bot toward the far end.
func (a *actor) setMuted(mute bool, req *graph.ClientContextRequest) (*graph.Operation, error) {
	name, typ := "mute", graph.TypeMuteParticipantOperation
	if !mute {
		name, typ = "unmute", graph.TypeUnmuteParticipantOperation
	}
	if err := checkClientContext(req.ClientContext); err != nil {
		return nil, err
	}
	if a.rec.Call.State != graph.StateEstablished {
		return nil, a.conflict(name)
	}
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
	return a.newOperation(typ, req.ClientContext, graph.OperationCompleted), nil
}

func (a *actor) subscribeToTone(cmd *command, req *graph.ClientContextRequest) (*graph.Operation, error) {
	if err := checkClientContext(req.ClientContext); err != nil {
		return nil, err
	}
	if err := cmd.Caller.require(PermAccessMedia); err != nil {
		return nil, err
	}
	if a.rec.Call.MediaConfig.AppHosted() {
		return nil, badRequest("subscribeToTone needs service-hosted media (serviceHostedMediaConfig); this call hosts its own media.")
	}
	switch a.rec.Call.State {
	case graph.StateEstablishing, graph.StateEstablished, graph.StateHold:
	default:
		return nil, a.conflict("subscribeToTone")
	}
	a.rec.ToneSubscribed = true
	a.trace("listening for keys (subscribeToTone)", "")
	if p := a.port(); p != nil {
		p.DetectTones(true)
	}
	return a.newOperation(graph.TypeSubscribeToToneOperation, req.ClientContext, graph.OperationCompleted), nil
}

func (a *actor) sendDtmfTones(_ *command, req *graph.SendDtmfTonesRequest) (*graph.Operation, error) {
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
	if a.rec.Call.State != graph.StateEstablished || a.leg == nil {
		return nil, a.conflict("sendDtmfTones")
	}
	delay := 100 * time.Millisecond
	if req.DelayBetweenTonesMs != nil && *req.DelayBetweenTonesMs >= 0 {
		delay = time.Duration(*req.DelayBetweenTonesMs) * time.Millisecond
	}
	op := a.newOperation(graph.TypeSendDtmfTonesOperation, req.ClientContext, graph.OperationRunning)
	id := op.ID
	sent := func(a *actor) {
		a.disarm("dtmf:" + id)
		if op := a.rec.operation(id); op != nil && !op.Status.Terminal() {
			a.trace("DTMF tones sent", "")
			op.Status = graph.OperationCompleted
			op.CompletionReason = "completedSuccessfully"
			op.ResultInfo = resultInfo(errs.OpCompleted)
			a.dirty = true
			a.notifyOperation(op)
		}
	}
	// The leg says when the last tone has gone out; the timer (a tone is
	// 100 ms on the wire, then the gap) bounds the wait should it not.
	// (How many, not which: a bot may send a PIN.)
	a.trace(fmt.Sprintf("sending %d DTMF tone(s) (sendDtmfTones)", len(req.Tones)), "")
	a.arm("dtmf:"+id, a.m.clk.Now().Add(time.Duration(len(req.Tones))*(100*time.Millisecond+delay)+time.Second), sent)
	if err := a.leg.SendTones(req.Tones, delay, func() { a.post(sent) }); err != nil {
		a.disarm("dtmf:" + id)
		op.Status = graph.OperationFailed
		op.ResultInfo = resultInfo(errs.OpTonesFailed.With(err.Error()))
	}
	resp := *op
	return &resp, nil
}
