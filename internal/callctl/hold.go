package callctl

import (
	"context"
	"strings"
	"time"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Hold music
// (https://learn.microsoft.com/graph/api/participant-startholdmusic,
// docs/graph-deviations.md#hold-music-what-is-played-what-waits-and-the-errors):
// the far end of a two-party call hears the bot's customPrompt,
// media.holdMusic, or the built-in chime, looped, until stopHoldMusic. Both
// actions answer 202 with a running operation that completes by notification:
// startHoldMusic once the music plays (or failed, with the prompt's error,
// when the customPrompt cannot be fetched), stopHoldMusic once it has
// stopped.
//
// While a participant is on hold, playPrompt and recordResponse are
// accepted and wait: Graph documents no conflict between them and the
// hold music (in a group call a prompt goes to the others while the held
// participant hears the music), so Switchboard queues them behind the
// music rather than refusing them. A playPrompt or recordResponse that is
// running when the music starts is interrupted and runs again, from the
// prompt it was playing (a recording from its beep), once the music stops.
// cancelMediaProcessing cancels those waiting jobs but not the music.

// holdParticipant finds the participant a hold action names: the far end.
// The bot's own participant cannot be put on hold.
func (a *actor) holdParticipant(action, pid string) (*graph.Participant, error) {
	for i := range a.rec.Participants {
		p := &a.rec.Participants[i]
		if !strings.EqualFold(p.ID, pid) {
			continue
		}
		if strings.EqualFold(p.ID, a.rec.Call.MyParticipantID) {
			return nil, badRequest("Participant %s is the bot itself (myParticipantId): %s applies to another participant of the call.", pid, action)
		}
		return p, nil
	}
	return nil, errs.E(errs.NotFound, "Participant %s was not found in call %s.", pid, a.rec.Call.ID)
}

func (a *actor) startHoldMusic(cmd *command, req *graph.StartHoldMusicRequest) (*graph.Operation, error) {
	pid := cmd.Participant
	if err := checkClientContext(req.ClientContext); err != nil {
		return nil, err
	}
	if a.appHosted() {
		return nil, badRequest("startHoldMusic needs service-hosted media (serviceHostedMediaConfig); this call hosts its own media: play hold music over the media socket.")
	}
	var custom *graph.MediaInfo
	if cp := req.CustomPrompt; cp != nil {
		if cp.MediaInfo == nil || cp.MediaInfo.URI == "" {
			return nil, badRequest("customPrompt.mediaInfo.uri is required when customPrompt is given.")
		}
		if u := cp.MediaInfo.URI; !strings.HasPrefix(u, "http://") && !strings.HasPrefix(u, "https://") {
			return nil, badRequest("customPrompt.mediaInfo.uri: %q is not an http(s) URL.", u)
		}
		mi := *cp.MediaInfo
		custom = &mi
	}
	if a.room != nil {
		return nil, errs.E(errs.NotSupported, "Hold music for one participant of a meeting is not supported by this Switchboard version yet.")
	}
	p, err := a.holdParticipant("startHoldMusic", pid)
	if err != nil {
		return nil, err
	}
	switch a.rec.Call.State {
	case graph.StateEstablished, graph.StateHold:
	default:
		return nil, a.conflict("startHoldMusic")
	}
	if h := a.hold; h != nil {
		if strings.EqualFold(h.pid, p.ID) {
			return nil, badRequest("Participant %s is already on hold; stopHoldMusic first.", p.ID)
		}
		return nil, badRequest("Participant %s is on hold: only one participant can be on hold at a time.", h.pid)
	}
	op := a.newOperation(graph.TypeStartHoldMusicOperation, req.ClientContext, graph.OperationRunning)
	resp := *op
	if a.rec.Group {
		// The held member hears the music on its own leg and is taken out
		// of the mix; the conference's prompts go on for the others.
		if a.conf != nil {
			a.conf.MuteMember(p.ID, true)
		}
	} else {
		a.interrupt()
	}
	j := &mediaJob{kind: jobHold, opID: op.ID, pid: p.ID, started: a.m.clk.Now()}
	a.hold = j
	a.rec.Hold = &HoldState{Participant: p.ID, Prompt: custom}
	a.dirty = true
	a.startHold(j, custom)
	return &resp, nil
}

// interrupt takes the running playPrompt or recordResponse off the port
// and puts it back at the head of the queue, to run again after the hold
// music: the prompt that was playing from its start, a recording from its
// beep (what was recorded so far is dropped). A recording already being
// stored is left to complete.
func (a *actor) interrupt() {
	j := a.running
	if j == nil || j.finishing != nil {
		return
	}
	a.running = nil
	port := a.port()
	recording := j.rec != nil
	if recording {
		if port != nil {
			port.StopRecord()
		}
		j.rec.Abort()
		j.rec = nil
	}
	if port != nil {
		port.StopPlay()
	}
	switch {
	case j.kind == jobRecord && (j.beeped || recording):
		j.beeped = false
	case j.next > 0:
		j.next--
	}
	a.jobs = append([]*mediaJob{j}, a.jobs...)
}

// startHold fetches the music and starts it on the actor.
func (a *actor) startHold(j *mediaJob, custom *graph.MediaInfo) {
	info := custom
	if info == nil && a.m.cfg.Media.HoldMusic != "" {
		info = &graph.MediaInfo{URI: a.m.cfg.Media.HoldMusic}
	}
	if info == nil {
		// Not played in this step: the 202 goes out before the operation's
		// completion is queued.
		a.post(func(a *actor) { a.holdReady(j, media.HoldChime(), nil, false) })
		return
	}
	src := a.m.o.Prompts
	a.m.goBG(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var au *media.Audio
		var err error
		if src == nil {
			err = errs.E(errs.Unavailable, "prompts are not available on this node")
		} else {
			au, err = src.Get(ctx, *info)
		}
		a.post(func(a *actor) { a.holdReady(j, au, err, custom != nil) })
	})
}

// holdReady plays the fetched music, looped, and completes the
// startHoldMusic operation.
func (a *actor) holdReady(j *mediaJob, au *media.Audio, err error, custom bool) {
	if a.hold != j || j.stopOp != "" {
		return // stopped, or the call ended, meanwhile
	}
	if err != nil {
		if custom {
			a.log.Info("hold music prompt unavailable", "op", j.opID, "err", err)
			a.failHold(j, promptFailure(err))
			return
		}
		// The operator's music is unavailable: the bot asked for none in
		// particular, so the built-in chime will do.
		a.log.Warn("media.holdMusic unavailable; playing the built-in hold chime", "uri", a.m.cfg.Media.HoldMusic, "err", err)
		au = media.HoldChime()
	}
	port := a.holdPort(j)
	if port == nil {
		a.failHold(j, errs.OpNoMedia)
		return
	}
	j.playing = true
	port.Play(au, true, func(bool) {
		a.post(func(a *actor) { a.holdStopped(j) })
	})
	a.finishHoldOp(j.opID, graph.OperationCompleted, errs.OpCompleted)
}

// failHold ends a hold whose music could not start: nobody is on hold, and
// the jobs that waited go on.
func (a *actor) failHold(j *mediaJob, ri errs.Result) {
	a.finishHoldOp(j.opID, graph.OperationFailed, ri)
	if a.hold == j {
		a.hold = nil
		a.rec.Hold = nil
		a.dirty = true
		a.unmuteHeld(j)
	}
	a.pump()
}

func (a *actor) finishHoldOp(opID string, status graph.OperationStatus, ri errs.Result) {
	op := a.rec.operation(opID)
	if op == nil || op.Status.Terminal() {
		return
	}
	op.Status = status
	op.ResultInfo = resultInfo(ri)
	a.dirty = true
	a.notifyOperation(op)
}

func (a *actor) stopHoldMusic(cmd *command, req *graph.ClientContextRequest) (*graph.Operation, error) {
	pid := cmd.Participant
	if err := checkClientContext(req.ClientContext); err != nil {
		return nil, err
	}
	p, err := a.holdParticipant("stopHoldMusic", pid)
	if err != nil {
		return nil, err
	}
	j := a.hold
	if j == nil || !strings.EqualFold(j.pid, p.ID) || j.stopOp != "" {
		return nil, badRequest("Participant %s is not on hold: stopHoldMusic follows startHoldMusic.", p.ID)
	}
	op := a.newOperation(graph.TypeStopHoldMusicOperation, req.ClientContext, graph.OperationRunning)
	resp := *op
	j.stopOp = op.ID
	if port := a.holdPort(j); j.playing && port != nil {
		port.StopPlay() // its done callback completes the stop
		return &resp, nil
	}
	// The music had not started (its prompt is still being fetched): the
	// start is cancelled, and the stop completes in the next step.
	a.finishHoldOp(j.opID, graph.OperationFailed, errs.OpCancelled)
	a.post(func(a *actor) { a.holdStopped(j) })
	return &resp, nil
}

// holdStopped follows the end of the music: after stopHoldMusic, the
// participant is off hold and the jobs that waited go on.
func (a *actor) holdStopped(j *mediaJob) {
	j.playing = false
	if a.hold != j || j.stopOp == "" {
		// Not asked for: the leg is going away (its end follows) or the
		// call already ended.
		return
	}
	a.hold = nil
	a.rec.Hold = nil
	a.dirty = true
	a.unmuteHeld(j)
	a.finishHoldOp(j.stopOp, graph.OperationCompleted, errs.OpCompleted)
	a.pump()
}

// holdPort is where the hold music plays: the call's port on a two-party
// call, the held member's own leg in a group call.
func (a *actor) holdPort(j *mediaJob) MediaPort {
	if !a.rec.Group {
		return a.port()
	}
	for _, m := range a.members {
		if m.pid == j.pid && m.leg != nil {
			return mediaPortOf(m.leg)
		}
	}
	return nil
}

// unmuteHeld puts a group call's member that was on hold back in the mix,
// unless it was server-muted.
func (a *actor) unmuteHeld(j *mediaJob) {
	if a.conf == nil {
		return
	}
	for _, p := range a.rec.Participants {
		if p.ID == j.pid {
			a.conf.MuteMember(p.ID, p.IsMuted)
		}
	}
}

// heldMemberGone ends the hold of a member that left a group call.
func (a *actor) heldMemberGone(pid string) {
	j := a.hold
	if j == nil || j.pid != pid {
		return
	}
	a.hold = nil
	a.rec.Hold = nil
	a.dirty = true
	a.finishHoldOp(j.opID, graph.OperationFailed, errs.OpCallEnded.With("the participant left the call."))
	if j.stopOp != "" {
		a.finishHoldOp(j.stopOp, graph.OperationCompleted, errs.OpCompleted)
	}
}

// resumeHold starts the music again for a call resumed on hold after a
// restart (its operations completed before).
func (a *actor) resumeHold() {
	h := a.rec.Hold
	if h == nil {
		return
	}
	j := &mediaJob{kind: jobHold, pid: h.Participant, started: a.m.clk.Now()}
	a.hold = j
	a.startHold(j, h.Prompt)
}
