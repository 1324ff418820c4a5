package callctl

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/ids"
	"github.com/switchboard-voice/switchboard/internal/store"
	"github.com/switchboard-voice/switchboard/internal/webhook"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// What a step changed reaches the store, then the bot, then the API
// client, in that order ("state before notification, notification before
// reply"; docs/ARCHITECTURE.md):
//
//  1. the record is written with compare-and-set, carrying the step's
//     notifications in its outbox (Record.Outbox);
//  2. the notifications are queued to the webhook outbox, each under its
//     own id, which the outbox deduplicates;
//  3. the commands of the step are answered;
//  4. once the call has ended and its terminated notification is queued,
//     the record is deleted.
//
// A crash between 1 and 2 loses nothing: the next start queues the
// record's outbox again, and the ids keep a notification that was queued
// from being queued twice. When the store fails, the step's commands are
// answered 503 (the call may have changed in memory: the bot reads the
// call to know) and the actor keeps trying to store what is left, with
// backoff, before it does anything else; a call never ends without its
// terminated notification queued.

// queued is a notification of the call not yet known to be in the webhook
// outbox.
type queued struct {
	ID       string          `json:"id"`
	URL      string          `json:"url"`
	Incoming bool            `json:"incoming,omitempty"`
	Body     json.RawMessage `json:"body"`
}

// storeTimeout bounds one write to the store or the outbox.
const storeTimeout = 5 * time.Second

// settle stores what the step changed and answers the step's commands: as
// asked when everything is stored, 503 when not.
func (a *actor) settle() {
	err := a.flush()
	replies := a.replies
	a.replies = nil
	if errors.Is(err, errTakenOver) {
		a.dropTakenOver(replies)
		return
	}
	if err != nil {
		a.scheduleRetry(err)
		failed := errs.Wrap(errs.Unavailable, err, "Call %s could not be stored; the request may have taken effect: read the call to know.", a.rec.Call.ID)
		for _, r := range replies {
			if r.res.err == nil {
				r.res = result{err: failed}
			}
			r.done <- r.res
		}
		return
	}
	a.retry = 0
	a.disarm("store")
	for _, r := range replies {
		r.done <- r.res
	}
}

// flush writes the record when it changed or has notifications to carry,
// queues the notifications in order, and deletes the record of an ended
// call. It stops at the first failure, keeping what is left for the next
// attempt.
func (a *actor) flush() error {
	if a.removed {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), storeTimeout)
	defer cancel()
	if a.dirty || len(a.pending) > 0 {
		if len(a.pending) > 0 || len(a.rec.Outbox) > 0 {
			a.rec.Outbox = slices.Clone(a.pending)
			a.dirty = true
		}
		if a.dirty {
			if err := a.save(ctx); err != nil {
				return err
			}
			a.dirty = false
		}
	}
	// The record is stored: the observer hears of the step before its
	// notifications can be delivered (and their results reported).
	a.observe()
	for len(a.pending) > 0 {
		if err := a.m.o.Notifier.Enqueue(ctx, a.notification(a.pending[0])); err != nil {
			return err
		}
		a.pending[0] = queued{}
		a.pending = a.pending[1:]
	}
	if a.deleted {
		if err := a.m.calls.Delete(ctx, a.rec.Call.ID); err != nil {
			return err
		}
		a.removed = true
	}
	return nil
}

// errTakenOver is save's answer when another node took over the call,
// having taken this one for lost (platform's node takeover).
var errTakenOver = errors.New("callctl: the call was taken over by another node")

// dropTakenOver stops a call another node took over: that node ended it
// (stored, notified), so nothing more is written or notified here; the
// commands waiting get 404, the far end is hung up, the actor stops.
func (a *actor) dropTakenOver(replies []reply) {
	a.log.Error("another node took this node for lost and ended the call; dropping it here without a write")
	a.endMedia()
	if a.leg != nil {
		a.leg.HangUp(errs.NodeLost)
		a.leg = nil
	}
	a.pending = nil
	a.removed, a.deleted = true, true
	for _, r := range replies {
		r.done <- result{err: notFound(a.rec.Call.ID)}
	}
	a.abandon()
}

// scheduleRetry arms another attempt to store what a step left, backing
// off up to 5 s: a call is stored again within seconds of the store coming
// back (an attempt costs a request per call that fails fast or within
// storeTimeout); the actor's mailbox waits behind it.
func (a *actor) scheduleRetry(err error) {
	a.retry = min(max(2*a.retry, 250*time.Millisecond), 5*time.Second)
	a.log.Warn("call not stored; retrying", "in", a.retry, "err", err)
	a.arm("store", a.m.clk.Now().Add(a.retry), func(*actor) {}) // settle runs after it
}

func (a *actor) save(ctx context.Context) error {
	data, err := json.Marshal(a.rec)
	if err != nil {
		return errs.Wrap(errs.Internal, err, "encode call %s", a.rec.Call.ID)
	}
	rev, err := a.m.calls.Update(ctx, a.rec.Call.ID, data, a.rev)
	if errors.Is(err, store.ErrConflict) {
		cur, curRev, gerr := a.m.calls.Get(ctx, a.rec.Call.ID)
		var stored Record
		switch {
		case errors.Is(gerr, store.ErrNotFound):
			// Only the node that ends a call deletes its record: another
			// node took this one for lost and ended the call.
			return errTakenOver
		case gerr != nil:
			return gerr
		case json.Unmarshal(cur, &stored) == nil && stored.TakenOver && !a.rec.TakenOver:
			return errTakenOver
		}
		// Someone else wrote the call; the owner's state is the truth.
		a.log.Warn("call record changed under its owner; overwriting")
		rev, err = a.m.calls.Update(ctx, a.rec.Call.ID, data, curRev)
	}
	if err != nil {
		return err
	}
	a.rev = rev
	return nil
}

// notification is q as the webhook outbox takes it.
func (a *actor) notification(q queued) webhook.Notification {
	return webhook.Notification{
		ID: q.ID, CallID: a.rec.Call.ID, AppID: a.rec.AppID, TenantID: a.rec.TenantID,
		URL: q.URL, Body: q.Body, Incoming: q.Incoming,
	}
}

// notify queues a notification to the call's callback.
func (a *actor) notify(change graph.ChangeType, resource, resourceURL string, data any) {
	body, err := envelope(change, resource, resourceURL, data)
	if err != nil {
		// Only a bug makes a Graph type unencodable; the call goes on.
		a.log.Error("encode notification", "resource", resourceURL, "err", err)
		return
	}
	id := ids.New() // also its request-id toward the bot, a GUID as Graph's
	a.noteNotification(id, change, data)
	a.pending = append(a.pending, queued{
		ID:       id,
		URL:      a.rec.Call.CallbackURI,
		Incoming: change == graph.ChangeCreated,
		Body:     body,
	})
	a.dirty = true
}

func (a *actor) notifyCall(change graph.ChangeType, data *graph.Call) {
	a.notify(change, legacyCallPath(a.rec.Call.ID), callPath(a.rec.Call.ID), data)
}

func (a *actor) notifyOperation(op *graph.Operation) {
	data := *op
	data.ODataContext = ""
	a.notify(graph.ChangeDeleted, legacyOperationPath(a.rec.Call.ID, op.ID), operationPath(a.rec.Call.ID, op.ID), &data)
}

// callPath is the resourceUrl of a call; legacyCallPath its legacy
// "resource" twin that real Graph traffic still carries.
func callPath(id string) string       { return "/communications/calls/" + id }
func legacyCallPath(id string) string { return "/app/calls/" + id }

func operationPath(callID, opID string) string {
	return callPath(callID) + "/operations/" + opID
}

func legacyOperationPath(callID, opID string) string {
	return legacyCallPath(callID) + "/operations/" + opID
}

// envelope wraps one notification in a commsNotifications body.
func envelope(change graph.ChangeType, resource, resourceURL string, data any) ([]byte, error) {
	raw, err := json.Marshal(data)
	if err != nil {
		return nil, err
	}
	return json.Marshal(graph.CommsNotifications{
		ODataType: graph.TypeCommsNotifications,
		Value: []graph.CommsNotification{{
			ODataType:    graph.TypeCommsNotification,
			ChangeType:   change,
			Resource:     resource,
			ResourceURL:  resourceURL,
			ResourceData: raw,
		}},
	})
}

// callChange is the partial call Graph sends on a state change.
func callChange(c *graph.Call) *graph.Call {
	return &graph.Call{
		ODataType:   graph.TypeCall,
		ODataID:     callPath(c.ID),
		ID:          c.ID,
		State:       c.State,
		Direction:   c.Direction,
		ChatInfo:    c.ChatInfo,
		MeetingInfo: c.MeetingInfo,
		MediaState:  c.MediaState,
		ResultInfo:  c.ResultInfo,
		CallChainID: c.CallChainID,

		TerminationReason: c.TerminationReason,
	}
}

// fullCall is the call as an incoming or redirected notification carries it.
func fullCall(c *graph.Call) *graph.Call {
	cp := *c
	cp.ODataType = graph.TypeCall
	cp.ODataID = callPath(c.ID)
	cp.ODataContext = ""
	return &cp
}

// resultInfo is r as Graph writes it.
func resultInfo(r errs.Result) *graph.ResultInfo {
	return &graph.ResultInfo{ODataType: graph.TypeResultInfo, Code: r.Code, Subcode: r.Subcode, Message: r.Message}
}
