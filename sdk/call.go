package sdk

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Call is a Handler's handle on one call: the merged state of everything
// the platform has said about it, waits on that state, and the call's
// actions bound to the Handler's Client. Handlers create Calls (for an
// incoming call, a notification about an unknown call, or CreateCall);
// a Call is never built directly. A Call is safe for concurrent use.
type Call struct {
	h   *Handler
	id  string
	key string

	mu          sync.Mutex
	tenant      string
	raw         resource
	rawJSON     []byte
	state       graph.CallState
	deltaRoster bool
	announced   bool // OnIncomingCall queued
	parts       map[string]resource
	partOrder   []string
	ops         map[string]*opRecord
	opOrder     []string
	lastTone    int64
	tones       chan graph.ToneInfo
	ended       bool
	done        chan struct{}
	changed     chan struct{} // closed and replaced on every change
	keepAlive   bool          // the keepAlive loop was started
	forget      *time.Timer

	queue    []event // events not yet delivered
	draining bool    // a goroutine is delivering queue
}

func newCall(h *Handler, id, tenant string) *Call {
	c := &Call{h: h, id: id, key: idKey(id), tenant: tenant,
		raw: resource{}, parts: map[string]resource{}, ops: map[string]*opRecord{},
		tones: make(chan graph.ToneInfo, h.o.ToneBuffer), done: make(chan struct{}), changed: make(chan struct{})}
	c.raw.set("id", id)
	c.rawJSON = mustJSON(c.raw)
	return c
}

// ID is the call's id as the platform first named it.
func (c *Call) ID() string { return c.id }

// TenantID is the call's tenant: the tid of the first notification token
// about it, or the tenant of the create request. Notification tokens:
// https://learn.microsoft.com/microsoftteams/platform/bots/calls-and-meetings/call-notifications
func (c *Call) TenantID() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.tenant
}

// Snapshot returns the call as currently known: every notification and
// response merged. It is a copy the caller may keep and change. Inside an
// event callback it may already include changes queued behind that event.
func (c *Call) Snapshot() graph.Call {
	c.mu.Lock()
	data := c.rawJSON
	c.mu.Unlock()
	var out graph.Call
	_ = json.Unmarshal(data, &out) // rawJSON holds only properties that decode
	return out
}

// State is the call's current state; "" until the platform has said.
func (c *Call) State() graph.CallState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Participants returns the roster as currently known, in the order
// participants joined.
func (c *Call) Participants() []graph.Participant {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]graph.Participant, 0, len(c.partOrder))
	for _, k := range c.partOrder {
		out = append(out, c.participantLocked(c.parts[k]))
	}
	return out
}

// Operation returns an operation of the call as last reported.
func (c *Call) Operation(id string) (graph.Operation, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	rec := c.ops[idKey(id)]
	if rec == nil {
		return graph.Operation{}, false
	}
	data := mustJSON(rec.raw)
	var op graph.Operation
	_ = json.Unmarshal(data, &op)
	return op, true
}

// Done is closed when the call has terminated.
func (c *Call) Done() <-chan struct{} { return c.done }

// Tones delivers the DTMF tones the caller presses after SubscribeToTone,
// in order, each once (a redelivered notification is not repeated). The
// channel is buffered (HandlerOptions.ToneBuffer); when nobody reads it the
// oldest tones are dropped rather than holding up the call. It is closed
// when the call terminates.
func (c *Call) Tones() <-chan graph.ToneInfo { return c.tones }

// WaitState returns when the call's current state is one of states, or
// ErrCallEnded (wrapped) if it terminates first, or ctx's error. It is safe
// to call from an event callback: state is applied as notifications
// arrive, not as callbacks run.
func (c *Call) WaitState(ctx context.Context, states ...graph.CallState) error {
	for {
		c.mu.Lock()
		cur, ended, ch := c.state, c.ended, c.changed
		c.mu.Unlock()
		if slices.Contains(states, cur) {
			return nil
		}
		if ended {
			return fmt.Errorf("wait for call %s to be %v: %w", c.id, states, ErrCallEnded)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for call %s to be %v: %w", c.id, states, ctx.Err())
		}
	}
}

// Await returns op once it has completed: at once when op is already
// completed or failed (no notification follows a terminal response:
// https://learn.microsoft.com/graph/api/resources/commsoperation), else on
// its deleted notification, which may have arrived before Await was called. A
// failed operation is returned with an *OperationError. If the call
// terminates without the operation's completion being reported, Await returns
// ErrCallEnded (wrapped).
func (c *Call) Await(ctx context.Context, op *graph.Operation) (*graph.Operation, error) {
	if op == nil {
		return nil, fmt.Errorf("await: nil operation")
	}
	if op.Status.Terminal() {
		return finished(c.id, *op)
	}
	if op.ID == "" {
		return nil, fmt.Errorf("await: operation without an id")
	}
	c.mu.Lock()
	c.trackOperationLocked(op)
	c.mu.Unlock()
	return c.await(ctx, op.ID)
}

func (c *Call) await(ctx context.Context, opID string) (*graph.Operation, error) {
	key := idKey(opID)
	for {
		c.mu.Lock()
		rec, ended, ch := c.ops[key], c.ended, c.changed
		var op graph.Operation
		final := rec != nil && rec.final
		if final {
			op = rec.op
		}
		c.mu.Unlock()
		if final {
			return finished(c.id, op)
		}
		if ended {
			return nil, fmt.Errorf("await operation %s: %w", opID, ErrCallEnded)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, fmt.Errorf("await operation %s: %w", opID, ctx.Err())
		}
	}
}

func finished(callID string, op graph.Operation) (*graph.Operation, error) {
	if op.Status == graph.OperationFailed {
		return &op, &OperationError{CallID: callID, Operation: op}
	}
	return &op, nil
}

// client returns the Handler's Client, or ErrNoClient.
func (c *Call) client() (*Client, error) {
	if c.h.client == nil {
		return nil, ErrNoClient
	}
	return c.h.client, nil
}

// Client is the Client the call's actions go through; nil when the
// Handler has none. Use it for requests the Call does not wrap, and Await
// the operations they return with c.Await.
func (c *Call) Client() *Client { return c.h.client }

// Answer answers the incoming call. A nil req answers with audio and
// service-hosted media; an empty callbackUri becomes
// HandlerOptions.CallbackURL (when set). The call then moves to
// establishing and established; WaitState(ctx, graph.StateEstablished)
// waits for that.
func (c *Call) Answer(ctx context.Context, req *graph.AnswerRequest) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	var r graph.AnswerRequest
	if req != nil {
		r = *req
	}
	if r.CallbackURI == "" {
		r.CallbackURI = c.h.o.CallbackURL
	}
	if r.MediaConfig == nil {
		r.MediaConfig = &graph.MediaConfig{ODataType: graph.TypeServiceHostedMediaConfig}
	}
	if len(r.AcceptedModalities) == 0 {
		r.AcceptedModalities = []graph.Modality{graph.ModalityAudio}
	}
	return cl.Answer(ctx, c.id, &r)
}

// Reject declines the incoming call with reason ("" is none).
func (c *Call) Reject(ctx context.Context, reason graph.RejectReason) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	if reason == "" {
		reason = graph.RejectNone
	}
	return cl.Reject(ctx, c.id, &graph.RejectRequest{Reason: reason})
}

// Redirect sends the unanswered incoming call to other targets.
func (c *Call) Redirect(ctx context.Context, req *graph.RedirectRequest) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	return cl.Redirect(ctx, c.id, req)
}

// HangUp ends the bot's leg of the call. The call's terminated
// notification follows; WaitState(ctx, graph.StateTerminated) or Done
// waits for it.
func (c *Call) HangUp(ctx context.Context) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	return cl.HangUp(ctx, c.id)
}

// KeepAlive sends one keepAlive now. The Handler already sends them every
// HandlerOptions.KeepAliveInterval while the call is up.
func (c *Call) KeepAlive(ctx context.Context) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	return cl.KeepAlive(ctx, c.id)
}

// operation runs an action returning an operation and tracks it for Await.
func (c *Call) operation(ctx context.Context, do func(*Client) (*graph.Operation, error)) (*graph.Operation, error) {
	cl, err := c.client()
	if err != nil {
		return nil, err
	}
	op, err := do(cl)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	c.trackOperationLocked(op)
	c.mu.Unlock()
	return op, nil
}

// PlayPrompt plays the WAV files at uris (16 kHz mono 16-bit, up to 20)
// one after the other. Await the returned operation for the end.
func (c *Call) PlayPrompt(ctx context.Context, uris ...string) (*graph.Operation, error) {
	req := &graph.PlayPromptRequest{}
	for _, u := range uris {
		req.Prompts = append(req.Prompts, Prompt(u))
	}
	return c.operation(ctx, func(cl *Client) (*graph.Operation, error) { return cl.PlayPrompt(ctx, c.id, req) })
}

// RecordResponse records the caller; nil req uses Graph's defaults. The
// completed operation's RecordingLocation and RecordingAccessToken go to
// Client.DownloadRecording.
func (c *Call) RecordResponse(ctx context.Context, req *graph.RecordResponseRequest) (*graph.Operation, error) {
	return c.operation(ctx, func(cl *Client) (*graph.Operation, error) { return cl.RecordResponse(ctx, c.id, req) })
}

// CancelMediaProcessing cancels the running and queued prompts and
// recordings; each of those operations then fails.
func (c *Call) CancelMediaProcessing(ctx context.Context) (*graph.Operation, error) {
	return c.operation(ctx, func(cl *Client) (*graph.Operation, error) { return cl.CancelMediaProcessing(ctx, c.id, nil) })
}

// SubscribeToTone asks for the caller's tones; they arrive on Tones and
// as OnCallUpdated changes carrying toneInfo.
func (c *Call) SubscribeToTone(ctx context.Context) (*graph.Operation, error) {
	return c.operation(ctx, func(cl *Client) (*graph.Operation, error) { return cl.SubscribeToTone(ctx, c.id, nil) })
}

// SendDtmfTones plays tones to the far end. Await the operation for the end.
func (c *Call) SendDtmfTones(ctx context.Context, tones ...graph.Tone) (*graph.Operation, error) {
	req := &graph.SendDtmfTonesRequest{Tones: tones}
	return c.operation(ctx, func(cl *Client) (*graph.Operation, error) { return cl.SendDtmfTones(ctx, c.id, req) })
}

// Mute mutes the bot's audio toward the call.
func (c *Call) Mute(ctx context.Context) (*graph.Operation, error) {
	return c.operation(ctx, func(cl *Client) (*graph.Operation, error) { return cl.Mute(ctx, c.id, nil) })
}

// Invite dials participants into the call (users by id, or any
// invitationParticipantInfo via Client.InviteParticipants); Await the
// operation to know they joined.
func (c *Call) Invite(ctx context.Context, targets ...graph.InvitationParticipantInfo) (*graph.Operation, error) {
	req := &graph.InviteParticipantsRequest{Participants: targets}
	return c.operation(ctx, func(cl *Client) (*graph.Operation, error) { return cl.InviteParticipants(ctx, c.id, req) })
}

// MuteParticipant server-mutes another participant of a group call.
func (c *Call) MuteParticipant(ctx context.Context, participantID string) (*graph.Operation, error) {
	return c.operation(ctx, func(cl *Client) (*graph.Operation, error) {
		return cl.MuteParticipant(ctx, c.id, participantID, nil)
	})
}

// RemoveParticipant drops a participant from a group call.
func (c *Call) RemoveParticipant(ctx context.Context, participantID string) error {
	cl, err := c.client()
	if err != nil {
		return err
	}
	return cl.RemoveParticipant(ctx, c.id, participantID)
}

// Unmute unmutes the bot's audio.
func (c *Call) Unmute(ctx context.Context) (*graph.Operation, error) {
	return c.operation(ctx, func(cl *Client) (*graph.Operation, error) { return cl.Unmute(ctx, c.id, nil) })
}
