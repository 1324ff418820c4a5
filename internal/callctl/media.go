package callctl

import (
	"context"
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
// platform hosts.
func mediaPortOf(l Leg) MediaPort {
	// A leg's own MediaPort wins over its bare session (a simulated
	// handset's counts what it is played).
	switch v := l.(type) {
	case interface{ MediaPort() MediaPort }:
		return v.MediaPort()
	case interface{ Media() *media.Session }:
		if s := v.Media(); s != nil {
			return s
		}
	}
	return nil
}

// sessionOf returns the leg's RTP session, or nil when the platform does
// not carry the leg's media as RTP.
func sessionOf(l Leg) *media.Session {
	if v, ok := l.(interface{ Media() *media.Session }); ok {
		return v.Media()
	}
	return nil
}

// PromptSource fetches and caches prompts (media/prompt.Cache).
type PromptSource interface {
	Get(ctx context.Context, m graph.MediaInfo) (*media.Audio, error)
	Prefetch(ctx context.Context, ms []graph.MediaInfo)
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
}

// Media-operation results (graph-calls.md §6.2; the codes Graph leaves
// undocumented are Switchboard's, listed in docs/graph-deviations.md).
var (
	resultOK             = graph.ResultInfo{ODataType: graph.TypeResultInfo, Code: 200, Subcode: 0, Message: "Action completed successfully."}
	resultCancelled      = graph.ResultInfo{ODataType: graph.TypeResultInfo, Code: 400, Subcode: 8508, Message: "Action failed, the operation was cancelled."}
	resultMaxDuration    = graph.ResultInfo{ODataType: graph.TypeResultInfo, Code: 200, Subcode: 8515, Message: "Action completed, max record duration reached."}
	resultStopTone       = graph.ResultInfo{ODataType: graph.TypeResultInfo, Code: 200, Subcode: 8514, Message: "Action completed, stop tone detected."}
	resultMaxSilence     = graph.ResultInfo{ODataType: graph.TypeResultInfo, Code: 200, Subcode: 8513, Message: "Action completed, silence timeout reached after speech."}
	resultInitialSilence = graph.ResultInfo{ODataType: graph.TypeResultInfo, Code: 400, Subcode: 8510, Message: "Action failed, initial silence timeout reached: the caller said nothing."}
	resultNoMedia        = graph.ResultInfo{ODataType: graph.TypeResultInfo, Code: 500, Subcode: 9012, Message: "Action failed, the call has no media the platform hosts."}
)

func promptFailure(err error) graph.ResultInfo {
	code, sub, msg := prompt.ResultFor(err)
	return graph.ResultInfo{ODataType: graph.TypeResultInfo, Code: code, Subcode: sub, Message: msg}
}

// isPromptFailure tells a prompt's failure (prompt.ResultFor's 852x
// subcodes) from other ends of a media operation.
func isPromptFailure(ri graph.ResultInfo) bool { return ri.Subcode >= 8520 && ri.Subcode < 8530 }

type jobKind int

const (
	jobPlay jobKind = iota + 1
	jobRecord
	jobHold
)

// mediaJob is a queued or running playPrompt or recordResponse (they run
// one at a time, in order: graph-calls.md §2.10), or the hold music
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
	finishing bool

	// jobHold
	pid     string // the participant on hold
	stopOp  string // the stopHoldMusic operation, once asked
	playing bool   // the music is on the port
}

func (a *actor) port() MediaPort {
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

func (a *actor) playPrompt(req *graph.PlayPromptRequest) (*graph.Operation, error) {
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

func (a *actor) recordResponse(c Caller, req *graph.RecordResponseRequest) (*graph.Operation, error) {
	if err := checkClientContext(req.ClientContext); err != nil {
		return nil, err
	}
	if err := c.require(PermAccessMedia); err != nil {
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

func (a *actor) cancelMediaProcessing(req *graph.ClientContextRequest) (*graph.Operation, error) {
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
			a.failJob(a.running, resultCancelled)
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
	if a.running != nil || a.hold != nil || len(a.jobs) == 0 || a.deleted {
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
	infos := make([]graph.MediaInfo, len(j.prompts))
	for i, p := range j.prompts {
		infos[i] = *p.MediaInfo
	}
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
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
	}()
}

// step advances the running job: the next prompt, the beep, the
// recording, or completion.
func (a *actor) step(j *mediaJob) {
	port := a.port()
	if port == nil {
		a.failJob(j, resultNoMedia)
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
		port.Play(au, j.loop && j.next == len(j.audios), played)
		return
	}
	if j.kind == jobPlay {
		a.completeJob(j, resultOK, "completedSuccessfully", nil)
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
		a.failJob(j, resultNoMedia)
		a.running = nil
		a.pump()
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	rec, err := a.m.o.Recordings.Begin(ctx, a.rec.Call.ID, j.opID)
	cancel()
	if err != nil {
		a.log.Error("begin recording", "op", j.opID, "err", err)
		a.failJob(j, graph.ResultInfo{ODataType: graph.TypeResultInfo, Code: 500, Subcode: 9013, Message: "Action failed, the recording could not be stored."})
		a.running = nil
		a.pump()
		return
	}
	j.rec = rec
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
}

// recorded finishes a recording: the object is completed off the actor,
// then the operation completes with its location and access token.
func (a *actor) recorded(j *mediaJob, res media.RecordResult) {
	if a.running != j {
		return
	}
	var ri graph.ResultInfo
	var reason string
	switch res.Reason {
	case media.RecordMaxDuration:
		ri, reason = resultMaxDuration, "maxRecordDurationReached"
	case media.RecordStopTone:
		ri, reason = resultStopTone, "stopToneDetected"
	case media.RecordMaxSilence:
		ri, reason = resultMaxSilence, "maxSilenceTimeout"
	case media.RecordInitialSilence:
		ri, reason = resultInitialSilence, "initialSilenceTimeout"
	default:
		return // stopped: cancel or call end handles the operation
	}
	rec := j.rec
	j.finishing = true
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		loc, tok, err := rec.Finish(ctx)
		a.post(func(a *actor) {
			if a.running != j {
				return
			}
			if err != nil {
				a.log.Error("finish recording", "op", j.opID, "err", err)
				a.failJob(j, graph.ResultInfo{ODataType: graph.TypeResultInfo, Code: 500, Subcode: 9013, Message: "Action failed, the recording could not be stored."})
				a.running = nil
				a.pump()
				return
			}
			if res.Reason == media.RecordInitialSilence {
				a.completeJob(j, ri, reason, &[2]string{loc, tok}, graph.OperationFailed)
				return
			}
			a.completeJob(j, ri, reason, &[2]string{loc, tok})
		})
	}()
}

// completeJob finishes the running job and starts the next.
func (a *actor) completeJob(j *mediaJob, ri graph.ResultInfo, reason string, recording *[2]string, status ...graph.OperationStatus) {
	op := a.rec.operation(j.opID)
	if op != nil && !op.Status.Terminal() {
		op.Status = graph.OperationCompleted
		if len(status) > 0 {
			op.Status = status[0]
		}
		r := ri
		op.ResultInfo = &r
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
func (a *actor) failJob(j *mediaJob, ri graph.ResultInfo) {
	if j.rec != nil {
		j.rec.Abort()
		j.rec = nil
	}
	op := a.rec.operation(j.opID)
	if op == nil || op.Status.Terminal() {
		return
	}
	op.Status = graph.OperationFailed
	r := ri
	op.ResultInfo = &r
	switch j.kind {
	case jobPlay:
		op.CompletionReason = "mediaOperationCanceled"
		if ri.Subcode != resultCancelled.Subcode {
			op.CompletionReason = "unknown"
		}
	case jobRecord:
		empty := ""
		op.RecordingLocation, op.RecordingAccessToken = &empty, &empty
		op.CompletionReason = "operationCanceled"
		if ri.Subcode != resultCancelled.Subcode {
			op.CompletionReason = "unspecifiedError"
			if isPromptFailure(ri) {
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
		if a.hold == nil { // else the port plays the music, not this job
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
		a.failJob(a.running, resultCancelled)
		a.running = nil
	}
	for _, j := range a.jobs {
		a.failJob(j, resultCancelled)
	}
	a.jobs = nil
}

// resultHungUp completes a recording the caller ended by hanging up: the
// message is kept (a voicemail usually ends so).
var resultHungUp = graph.ResultInfo{ODataType: graph.TypeResultInfo, Code: 200, Subcode: 9014, Message: "Action completed, the call ended during the recording."}

// endMedia settles media work when the call ends: a recording in progress
// is kept and its operation completes; everything else is failed by end.
func (a *actor) endMedia() {
	if a.hold != nil {
		a.hold = nil // its operations fail with the others
		a.rec.Hold = nil
	}
	j := a.running
	a.running = nil
	if j != nil && j.kind == jobRecord && j.rec != nil {
		if p := a.port(); p != nil {
			p.StopRecord()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		loc, tok, err := j.rec.Finish(ctx)
		cancel()
		j.rec = nil
		if err == nil {
			a.running = j
			a.completeJob(j, resultHungUp, "none", &[2]string{loc, tok})
			a.running = nil
		} else {
			a.log.Error("finish recording at call end", "op", j.opID, "err", err)
		}
	} else if j != nil && j.rec != nil {
		j.rec.Abort()
	}
	for _, q := range a.jobs {
		if q.rec != nil {
			q.rec.Abort()
		}
	}
	a.jobs = nil
}
