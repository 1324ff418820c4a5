package callctl

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Regression tests for the call-control bugs of the hardening review;
// each failed before its fix.

// Commands racing the end of their call were dropped with the actor's
// mailbox and never answered.
func TestCommandsRacingTheEndAreAllAnswered(t *testing.T) {
	h := newHarness(t)
	for round := range 5 {
		id, _ := h.established()
		var wg sync.WaitGroup
		errc := make(chan error, 31)
		start := make(chan struct{})
		for i := range 31 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				x, name := HangUp, "hangUp"
				if i != 15 {
					x, _ = LookupAction("keepAlive", false)
					name = "keepAlive"
				}
				if _, err := h.m.Do(ctx, h.bot, id, "", x, x.NewRequest()); err != nil && errs.KindOf(err) != errs.NotFound {
					errc <- errors.New(name + ": " + err.Error())
				}
			}()
		}
		close(start)
		wg.Wait()
		close(errc)
		for err := range errc {
			t.Errorf("round %d: %v", round, err)
		}
		h.sync(id)
		if s := h.state(id); s != "gone" {
			t.Fatalf("round %d: call %s after the DELETE", round, s)
		}
	}
	h.leak("all")
}

// The caller hanging up while a finished recording was being stored made
// the call's end store it again, fail the operation (9010) and orphan
// the saved message.
func TestRecordingBeingStoredWhenTheCallerHangsUp(t *testing.T) {
	h := newHarness(t)
	id, leg := h.established()
	h.nt.take(id)
	h.recs.hold = make(chan struct{})
	h.recs.entered = make(chan struct{}, 1)
	h.must(h.do(h.bot, id, "recordResponse", "", &graph.RecordResponseRequest{}))
	h.sync(id)
	if !leg.port.finishPlay() { // the beep
		t.Fatal("no beep was played")
	}
	h.sync(id)
	if !leg.port.finishRecord(media.RecordMaxSilence) {
		t.Fatal("no recording was started")
	}
	<-h.recs.entered // being stored, off the actor
	a := h.actor(id)
	inEnd := make(chan struct{})
	a.post(func(a *actor) {
		close(inEnd)
		a.onLeg(LegEvent{Kind: LegEnded, Reason: errs.EndedByRemote})
	})
	<-inEnd
	close(h.recs.hold)
	h.sync(id)
	want := []string{"deleted operation Completed", "deleted call terminated 4521"}
	if got := h.nt.take(id); !slices.Equal(got, want) {
		t.Errorf("notifications %q, want %q", got, want)
	}
	if h.recs.finishes != 1 {
		t.Errorf("the recording was finished %d times, want once", h.recs.finishes)
	}
}

func (h *harness) actor(id string) *actor {
	h.t.Helper()
	h.m.mu.Lock()
	defer h.m.mu.Unlock()
	a := h.m.actors[id]
	if a == nil {
		h.t.Fatalf("call %s has no actor", id)
	}
	return a
}

// A failed save was logged and the request answered as if stored.
func TestStoreDownFailsTheRequestThenCatchesUp(t *testing.T) {
	h := newHarness(t)
	id, _ := h.established()
	h.st.down.Store(true)
	_, err := h.do(h.bot, id, "mute", "", &graph.ClientContextRequest{})
	if errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("mute with the store down: %v, want 503", err)
	}
	if rec := h.st.record(t, id); rec.Muted {
		t.Fatal("the store has the mute it refused")
	}
	h.st.down.Store(false)
	h.clk.Advance(time.Second) // the retry
	h.sync(id)
	if rec := h.st.record(t, id); !rec.Muted {
		t.Fatal("the mute was not stored once the store came back")
	}
}

// A terminated notification that could not be queued was lost.
func TestTerminatedIsQueuedWhenTheOutboxComesBack(t *testing.T) {
	h := newHarness(t)
	id, _ := h.established()
	h.nt.take(id)
	h.nt.down.Store(true)
	if _, err := h.do(h.bot, id, "hangUp", "", nil); errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("hangUp with the outbox down: %v, want 503", err)
	}
	if rec := h.st.record(t, id); rec == nil || rec.Call.State != graph.StateTerminated || len(rec.Outbox) != 2 {
		t.Fatalf("stored record %+v, want it terminated with its 2 notifications in its outbox", rec)
	}
	h.nt.down.Store(false)
	for range 3 { // backoff: 250 ms, 500 ms...
		h.clk.Advance(time.Second)
	}
	h.sync(id)
	want := []string{"updated call terminating", "deleted call terminated 5001"}
	if got := h.nt.take(id); !slices.Equal(got, want) {
		t.Errorf("notifications %q, want %q", got, want)
	}
	if h.st.record(t, id) != nil {
		t.Error("the record outlived the queued terminated notification")
	}
	h.leak(id)
}

// A crash between storing a step and queuing its notifications loses
// nothing: the next start queues the record's outbox, once.
func TestRestartQueuesWhatACrashLeft(t *testing.T) {
	h := newHarness(t)
	id, _ := h.established()
	h.nt.take(id)
	h.nt.down.Store(true)
	_, _ = h.do(h.bot, id, "hangUp", "", nil)
	h.m.Stop() // the crash
	h.nt.down.Store(false)
	h.start(h.st)
	want := []string{"updated call terminating", "deleted call terminated 5001"}
	if got := h.nt.take(id); !slices.Equal(got, want) {
		t.Errorf("notifications after the restart %q, want %q", got, want)
	}
	if h.st.record(t, id) != nil {
		t.Error("the ended call's record survived the restart")
	}
}

// A call whose leg cannot be resumed after a restart ends with its own
// reason, and the dialer is given the leg to release.
func TestResumeFailureEndsTheCallHonestly(t *testing.T) {
	h := newHarness(t)
	id, _ := h.established()
	h.nt.take(id)
	h.m.Stop()
	h.dl.resumeErr = errors.New("cannot resume (test)")
	h.start(h.st)
	h.sync(id)
	if got, want := h.nt.take(id), []string{"deleted call terminated 9016"}; !slices.Equal(got, want) {
		t.Errorf("notifications %q, want %q", got, want)
	}
	if len(h.dl.released) != 1 || h.dl.released[0].Kind != "fake" {
		t.Errorf("dialer released %v, want the call's leg", h.dl.released)
	}
}

// A call created while the node began to shut down left its record (to
// be resumed by the next start) and its per-app slot behind.
func TestCreateRacingShutdownLeavesNothing(t *testing.T) {
	h := newHarness(t)
	h.st.onCreate = func() {
		h.m.mu.Lock()
		h.m.closing = true
		h.m.mu.Unlock()
	}
	_, err := h.m.Create(context.Background(), h.bot, &graph.Call{CallbackURI: tHook,
		MediaConfig: &graph.MediaConfig{ODataType: graph.TypeServiceHostedMediaConfig},
		Targets:     []graph.InvitationParticipantInfo{{Identity: &graph.IdentitySet{User: &graph.Identity{ID: tBob}}}}})
	if errs.KindOf(err) != errs.Unavailable {
		t.Fatalf("create during shutdown: %v, want 503", err)
	}
	if keys, _ := h.st.Keys(context.Background()); len(keys) != 0 {
		t.Errorf("records left: %v", keys)
	}
	h.m.mu.Lock()
	left := len(h.m.perApp)
	h.m.mu.Unlock()
	if left != 0 {
		t.Errorf("per-app slots left: %d", left)
	}
}

// Work started off the actors (here a prompt fetch) was not waited for
// on shutdown.
func TestShutdownWaitsForBackgroundWork(t *testing.T) {
	h := newHarness(t)
	id, _ := h.established()
	h.pr.block.Store(true)
	h.must(h.do(h.bot, id, "playPrompt", "", &graph.PlayPromptRequest{Prompts: testPrompts()}))
	<-h.pr.started
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.m.Shutdown(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	if n := h.pr.aborted.Load(); n != 1 {
		t.Errorf("Shutdown returned with the prompt fetch still running (%d aborted)", n)
	}
}
