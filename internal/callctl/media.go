package callctl

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/internal/media/prompt"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// MediaPort is the service-hosted media of a leg: what playPrompt,
// recordResponse and subscribeToTone drive. *media.Session is one; the
// simulated endpoint has its own. Callbacks come from the port's
// goroutines and must not call back into it synchronously.
type MediaPort interface {
	Play(a *media.Audio, loop bool, done func(completed bool))
	StopPlay()
	Record(o media.RecordOptions, sink func(pcm []int16), done func(media.RecordResult))
	StopRecord()
	DetectTones(on bool)
	SetMuted(m bool)
}

var _ MediaPort = (*media.Session)(nil)

// mediaPortOf returns the leg's media, or nil when the leg has none the
// platform hosts. A leg's own MediaPort wins over its bare session (a
// simulated handset's counts what it is played).
func mediaPortOf(l Leg) MediaPort {
	switch v := l.(type) {
	case PortLeg:
		return v.MediaPort()
	case RTPLeg:
		if s := v.Media(); s != nil {
			return s
		}
	}
	return nil
}

// sessionOf returns the leg's RTP session, or nil when the platform does
// not carry the leg's media.
func sessionOf(l Leg) *media.Session {
	if v, ok := l.(RTPLeg); ok {
		return v.Media()
	}
	return nil
}

// PromptSource fetches and caches prompts (media/prompt.Cache).
type PromptSource interface {
	Get(ctx context.Context, m graph.MediaInfo) (*media.Audio, error)
	Prefetch(ctx context.Context, ms []graph.MediaInfo)
}

// cachedPrompts is a PromptSource that can say, without waiting, whether a
// prompt is ready (prompt.Cache).
type cachedPrompts interface {
	Cached(m graph.MediaInfo) (*media.Audio, bool)
}

// RecordingStore keeps recordings (media/record.Store, adapted).
type RecordingStore interface {
	Begin(ctx context.Context, callID, opID string) (Recording, error)
}

// Recording is one recording being written.
type Recording interface {
	Write(pcm []int16)
	Finish(ctx context.Context) (location, accessToken string, err error)
	Abort()
	// Failed gives an error if the recording can no longer be stored,
	// and is closed once its upload is over.
	Failed() <-chan error
}

// promptFailure is the result of a media operation whose prompt could not
// be prepared.
func promptFailure(err error) errs.Result { return prompt.ResultFor(err) }

type jobKind int

const (
	jobPlay jobKind = iota + 1
	jobRecord
	jobHold
)

// String names the job as the console's timeline says it.
func (k jobKind) String() string {
	switch k {
	case jobPlay:
		return "playPrompt"
	case jobRecord:
		return "recordResponse"
	case jobHold:
		return "hold music"
	}
	return "media job"
}

// mediaJob is a queued or running playPrompt or recordResponse (they run
// one at a time, in order:
// https://learn.microsoft.com/graph/api/call-playprompt), or the hold music
// (jobHold, see hold.go), which the others wait for.
type mediaJob struct {
	kind    jobKind
	opID    string
	prompts []graph.MediaPrompt
	loop    bool
	record  *graph.RecordResponseRequest
	audios  []*media.Audio
	next    int
	beeped  bool
	rec     Recording
	started time.Time
	// gen counts the job's starts: a job the hold music interrupted runs
	// again later, and callbacks of its earlier run must not advance it.
	gen int
	// finishing: the recording ended and is being stored; the port is no
	// longer used.
	finishing *finishing

	// jobHold
	pid     string // the participant on hold
	stopOp  string // the stopHoldMusic operation, once asked
	playing bool   // the music is on the port
}

func (a *actor) port() MediaPort {
	if a.appPort != nil {
		return a.appPort
	}
	if a.roomPort != nil {
		return a.roomPort
	}
	if a.conf != nil {
		return a.conf
	}
	if a.leg == nil {
		return nil
	}
	return mediaPortOf(a.leg)
}

func (a *actor) requireServiceMedia(action string) error {
	if a.rec.Call.MediaConfig.AppHosted() {
		return badRequest("%s needs service-hosted media (serviceHostedMediaConfig); this call hosts its own media.", action)
	}
	switch a.rec.Call.State {
	case graph.StateEstablished, graph.StateHold:
		return nil
	}
	return a.conflict(action)
}

func checkPrompts(ps []graph.MediaPrompt, max int) error {
	if len(ps) > max {
		return badRequest("prompts: at most %d prompts, got %d.", max, len(ps))
	}
	for i, p := range ps {
		if p.MediaInfo == nil || p.MediaInfo.URI == "" {
			return badRequest("prompts[%d].mediaInfo.uri is required.", i)
		}
		if !strings.HasPrefix(p.MediaInfo.URI, "http://") && !strings.HasPrefix(p.MediaInfo.URI, "https://") {
			return badRequest("prompts[%d].mediaInfo.uri: %q is not an http(s) URL.", i, p.MediaInfo.URI)
		}
	}
	return nil
}

func (a *actor) playPrompt(_ *command, req *graph.PlayPromptRequest) (*graph.Operation, error) {
	if err := checkClientContext(req.ClientContext); err != nil {
		return nil, err
	}
	if len(req.Prompts) == 0 {
		return nil, badRequest("prompts is required.")
	}
	if err := checkPrompts(req.Prompts, 20); err != nil {
		return nil, err
	}
	if err := a.requireServiceMedia("playPrompt"); err != nil {
		return nil, err
	}
	op := a.newOperation(graph.TypePlayPromptOperation, req.ClientContext, graph.OperationRunning)
	resp := *op
	a.enqueue(&mediaJob{kind: jobPlay, opID: op.ID, prompts: req.Prompts, loop: req.Loop != nil && *req.Loop}, false)
	return &resp, nil
}

func (a *actor) recordResponse(cmd *command, req *graph.RecordResponseRequest) (*graph.Operation, error) {
	if err := checkClientContext(req.ClientContext); err != nil {
		return nil, err
	}
	if err := cmd.Caller.require(PermAccessMedia); err != nil {
		return nil, err
	}
	if err := checkPrompts(req.Prompts, 1); err != nil {
		return nil, err
	}
	for _, f := range []struct {
		name string
		v    *int
	}{{"initialSilenceTimeoutInSeconds", req.InitialSilenceTimeoutInSeconds},
		{"maxSilenceTimeoutInSeconds", req.MaxSilenceTimeoutInSeconds},
		{"maxRecordDurationInSeconds", req.MaxRecordDurationInSeconds}} {
		if f.v != nil && (*f.v < 1 || *f.v > 120) {
			return nil, badRequest("%s: %d is outside 1..120.", f.name, *f.v)
		}
	}
	for i, s := range req.StopTones {
		if _, ok := graph.ParseTone(s); !ok {
			return nil, badRequest("stopTones[%d]: %q is not a tone.", i, s)
		}
	}
	if err := a.requireServiceMedia("recordResponse"); err != nil {
		return nil, err
	}
	op := a.newOperation(graph.TypeRecordOperation, req.ClientContext, graph.OperationRunning)
	resp := *op
	a.enqueue(&mediaJob{kind: jobRecord, opID: op.ID, prompts: req.Prompts, record: req}, req.BargeInAllowed != nil && *req.BargeInAllowed)
	return &resp, nil
}

func (a *actor) cancelMediaProcessing(_ *command, req *graph.ClientContextRequest) (*graph.Operation, error) {
	if err := checkClientContext(req.ClientContext); err != nil {
		return nil, err
	}
	if a.rec.Call.MediaConfig.AppHosted() {
		return nil, badRequest("cancelMediaProcessing needs service-hosted media (serviceHostedMediaConfig).")
	}
	a.cancelJobs()
	return a.newOperation(graph.TypeCancelMediaProcessingOp, req.ClientContext, graph.OperationCompleted), nil
}

// enqueue adds a job; with bargeIn it goes first and interrupts the
// running one (recordResponse bargeInAllowed).
func (a *actor) enqueue(j *mediaJob, bargeIn bool) {
	if bargeIn {
		if a.running != nil && a.running.kind != jobHold {
			a.stopRunning()
			a.failJob(a.running, errs.OpCancelled)
			a.running = nil
		}
		a.jobs = append([]*mediaJob{j}, a.jobs...)
	} else {
		a.jobs = append(a.jobs, j)
	}
	a.pump()
}

// pump starts the next job when none runs.
func (a *actor) pump() {
	// On a two-party call the hold music holds the port; in a group call
	// it plays on the held member's own leg.
	if a.running != nil || (a.hold != nil && !a.rec.Group) || len(a.jobs) == 0 || a.deleted {
		return
	}
	j := a.jobs[0]
	a.jobs = a.jobs[1:]
	a.running = j
	j.started = a.m.clk.Now()
	j.gen++
	gen := j.gen
	if len(j.prompts) == 0 {
		a.step(j)
		return
	}
	src := a.m.o.Prompts
	if c, ok := src.(cachedPrompts); ok {
		// Prompts already in the cache (most plays) start now, without a
		// goroutine and a round trip through the mailbox.
		audios := make([]*media.Audio, 0, len(j.prompts))
		for _, p := range j.prompts {
			au, ok := c.Cached(*p.MediaInfo)
			if !ok {
				break
			}
			audios = append(audios, au)
		}
		if len(audios) == len(j.prompts) {
			j.audios = audios
			a.step(j)
			return
		}
	}
	infos := make([]graph.MediaInfo, len(j.prompts))
	for i, p := range j.prompts {
		infos[i] = *p.MediaInfo
	}
	a.m.goBG(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		audios := make([]*media.Audio, len(infos))
		var err error
		if src == nil {
			err = errs.E(errs.Unavailable, "prompts are not available on this node")
		}
		for i := 0; i < len(infos) && err == nil; i++ {
			audios[i], err = src.Get(ctx, infos[i])
		}
		a.post(func(a *actor) {
			if a.running != j || j.gen != gen {
				return // cancelled or interrupted meanwhile
			}
			if err != nil {
				a.log.Info("prompt unavailable", "op", j.opID, "err", err)
				a.failJob(j, promptFailure(err))
				a.running = nil
				a.pump()
				return
			}
			j.audios = audios
			a.step(j)
		})
	})
}

// step advances the running job: the next prompt, the beep, the
// recording, or completion.
func (a *actor) step(j *mediaJob) {
	port := a.port()
	if port == nil {
		a.failJob(j, errs.OpNoMedia)
		a.running = nil
		a.pump()
		return
	}
	gen := j.gen
	played := func(completed bool) {
		a.post(func(a *actor) {
			if a.running != j || j.gen != gen || !completed {
				return
			}
			a.step(j)
		})
	}
	if j.next < len(j.audios) {
		au := j.audios[j.next]
		j.next++
		if j.kind != jobHold {
			a.trace(fmt.Sprintf("prompt %d of %d started (%s, %s)", j.next, len(j.audios), j.kind, au.Duration().Round(10*time.Millisecond)), "")
		}
		port.Play(au, j.loop && j.next == len(j.audios), played)
		return
	}
	if j.kind == jobPlay {
		a.completeJob(j, errs.OpCompleted, "completedSuccessfully", nil, graph.OperationCompleted)
		return
	}
	if j.record.PlayBeep == nil || *j.record.PlayBeep {
		if !j.beeped {
			j.beeped = true
			port.Play(media.Beep, false, played)
			return
		}
	}
	a.startRecording(j, port)
}

func secsOr(v *int, def int) time.Duration {
	if v != nil {
		return time.Duration(*v) * time.Second
	}
	return time.Duration(def) * time.Second
}

func (a *actor) startRecording(j *mediaJob, port MediaPort) {
	if a.m.o.Recordings == nil {
		a.failJob(j, errs.OpNoMedia)
		a.running = nil
		a.pump()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	rec, err := a.m.o.Recordings.Begin(ctx, a.rec.Call.ID, j.opID)
	cancel()
	if err != nil {
		a.log.Error("begin recording", "op", j.opID, "err", err)
		a.failJob(j, errs.OpRecordingNotStored)
		a.running = nil
		a.pump()
		return
	}
	j.rec = rec
	a.trace(fmt.Sprintf("recording started (recordResponse %s, at most %v)", j.opID, secsOr(j.record.MaxRecordDurationInSeconds, 5)), "")
	gen := j.gen
	var stops strings.Builder
	for _, s := range j.record.StopTones {
		t, _ := graph.ParseTone(s)
		stops.WriteByte(t.Char())
	}
	port.Record(media.RecordOptions{
		MaxDuration:    secsOr(j.record.MaxRecordDurationInSeconds, 5),
		InitialSilence: secsOr(j.record.InitialSilenceTimeoutInSeconds, 5),
		MaxSilence:     secsOr(j.record.MaxSilenceTimeoutInSeconds, 5),
		StopTones:      stops.String(),
	}, rec.Write, func(res media.RecordResult) {
		a.post(func(a *actor) {
			if j.gen == gen {
				a.recorded(j, res)
			}
		})
	})
	// A recording the store refuses (a full disk) cannot be saved: it
	// fails now, not when it would have ended. The goroutine ends with the
	// upload, whatever its outcome.
	go func() {
		if err, ok := <-rec.Failed(); ok {
			a.m.recFailed.Inc()
			a.post(func(a *actor) {
				if a.running == j && j.gen == gen && j.rec == rec {
					a.log.Error("recording could not be stored; the operation fails", "op", j.opID, "err", err)
					if p := a.port(); p != nil {
						p.StopRecord()
					}
					a.failJob(j, errs.OpRecordingNotStored)
					a.running = nil
					a.pump()
				}
			})
		}
	}()
}

// recorded finishes a recording: the object is completed off the actor,
// then the operation completes with its location and access token.
func (a *actor) recorded(j *mediaJob, res media.RecordResult) {
	if a.running != j {
		return
	}
	var ri errs.Result
	var reason string
	switch res.Reason {
	case media.RecordMaxDuration:
		ri, reason = errs.OpMaxDuration, "maxRecordDurationReached"
	case media.RecordStopTone:
		ri, reason = errs.OpStopTone, "stopToneDetected"
	case media.RecordMaxSilence:
		ri, reason = errs.OpMaxSilence, "maxSilenceTimeout"
	case media.RecordInitialSilence:
		ri, reason = errs.OpInitialSilence, "initialSilenceTimeout"
	default:
		return // stopped: cancel or call end handles the operation
	}
	a.trace("recording stopped: "+reason+", storing it", "")
	rec := j.rec
	j.rec = nil
	j.finishing = &finishing{result: ri, reason: reason, done: make(chan stored, 1)}
	done := j.finishing.done
	if !a.m.goBG(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		var st stored
		st.location, st.token, st.err = rec.Finish(ctx)
		done <- st
		a.post(func(a *actor) {
			if a.running == j {
				a.recordingStored(j, <-done)
			}
		})
	}) {
		rec.Abort()
		done <- stored{err: errs.E(errs.Unavailable, "the node is stopping")}
	}
}

// finishing is a recording that ended and is being stored, off the actor.
type finishing struct {
	result errs.Result
	reason string
	done   chan stored // the outcome, once; whoever completes the job takes it
}

// stored is the outcome of storing a recording.
type stored struct {
	location, token string
	err             error
}

// recordingStored completes a recordResponse once its recording is stored.
func (a *actor) recordingStored(j *mediaJob, st stored) {
	if st.err != nil {
		a.log.Error("finish recording", "op", j.opID, "err", st.err)
		a.failJob(j, errs.OpRecordingNotStored)
		if a.running == j {
			a.running = nil
		}
		a.pump()
		return
	}
	status := graph.OperationCompleted
	if j.finishing.result == errs.OpInitialSilence {
		status = graph.OperationFailed
	}
	a.completeJob(j, j.finishing.result, j.finishing.reason, &[2]string{st.location, st.token}, status)
}

// completeJob finishes the running job and starts the next.
func (a *actor) completeJob(j *mediaJob, ri errs.Result, reason string, recording *[2]string, status graph.OperationStatus) {
	op := a.rec.operation(j.opID)
	if op != nil && !op.Status.Terminal() {
		if recording != nil {
			a.trace(fmt.Sprintf("recording stored; %s %s: %s", j.kind, strings.ToLower(string(status)), reason), path.Base(recording[0]))
		} else {
			a.trace(fmt.Sprintf("%s %s: %s", j.kind, strings.ToLower(string(status)), reason), "")
		}
		op.Status = status
		op.ResultInfo = resultInfo(ri)
		op.CompletionReason = reason
		if recording != nil {
			op.RecordingLocation, op.RecordingAccessToken = &recording[0], &recording[1]
		}
		a.dirty = true
		a.notifyOperation(op)
	}
	if a.running == j {
		a.running = nil
	}
	a.pump()
}

// failJob completes a job's operation as failed (cancelled, no media...).
func (a *actor) failJob(j *mediaJob, ri errs.Result) {
	if j.rec != nil {
		j.rec.Abort()
		j.rec = nil
	}
	op := a.rec.operation(j.opID)
	if op == nil || op.Status.Terminal() {
		return
	}
	op.Status = graph.OperationFailed
	op.ResultInfo = resultInfo(ri)
	a.trace(fmt.Sprintf("%s failed %d/%d: %s", j.kind, ri.Code, ri.Subcode, ri.Message), "")
	switch j.kind {
	case jobPlay:
		op.CompletionReason = "mediaOperationCanceled"
		if ri.Subcode != errs.OpCancelled.Subcode {
			op.CompletionReason = "unknown"
		}
	case jobRecord:
		empty := ""
		op.RecordingLocation, op.RecordingAccessToken = &empty, &empty
		op.CompletionReason = "operationCanceled"
		if ri.Subcode != errs.OpCancelled.Subcode {
			op.CompletionReason = "unspecifiedError"
			if ri.PromptFailure() {
				op.CompletionReason = "playPromptFailed"
			}
		}
	}
	a.dirty = true
	a.notifyOperation(op)
}

func (a *actor) stopRunning() {
	if a.running == nil {
		return
	}
	if p := a.port(); p != nil {
		if a.hold == nil || a.rec.Group { // else the port plays the music, not this job
			p.StopPlay()
		}
		if a.running.kind == jobRecord {
			p.StopRecord()
		}
	}
}

// cancelJobs fails the running and queued playPrompt/recordResponse
// operations (cancelMediaProcessing; subscribeToTone is not affected).
func (a *actor) cancelJobs() {
	if a.running != nil {
		a.stopRunning()
		a.failJob(a.running, errs.OpCancelled)
		a.running = nil
	}
	for _, j := range a.jobs {
		a.failJob(j, errs.OpCancelled)
	}
	a.jobs = nil
}

// endMedia settles media work when the call ends: a recording in progress
// is kept and its operation completes (a recording already being stored
// completes as it ended, once stored); everything else is failed by end.
func (a *actor) endMedia() {
	if a.hold != nil {
		a.hold = nil // its operations fail with the others
		a.rec.Hold = nil
	}
	queued := a.jobs
	a.jobs = nil
	for _, q := range queued {
		if q.rec != nil {
			q.rec.Abort()
		}
	}
	j := a.running
	switch {
	case j == nil:
	case j.finishing != nil:
		// Its recording ended on its own and is being stored: wait for it
		// (bounded by the store's timeout) rather than fail a saved
		// message.
		a.recordingStored(j, <-j.finishing.done)
	case j.kind == jobRecord && j.rec != nil:
		if p := a.port(); p != nil {
			p.StopRecord()
		}
		ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
		loc, tok, err := j.rec.Finish(ctx)
		cancel()
		j.rec = nil
		if err != nil {
			a.log.Error("finish recording at call end", "op", j.opID, "err", err)
			a.failJob(j, errs.OpRecordingNotStored)
		} else {
			a.completeJob(j, errs.OpHungUpDuringRecording, "none", &[2]string{loc, tok}, graph.OperationCompleted)
		}
	case j.rec != nil:
		j.rec.Abort()
	}
	a.running = nil
}
