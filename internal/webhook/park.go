package webhook

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// parkCall moves q's held messages to the parked stream, oldest first,
// acknowledging each in SB_NOTIFY once its copy is stored, and marks q
// parked; the head stays loaded, with its delivery state. Messages the
// intake appends meanwhile are moved too, before q is marked parked; after
// that the intake parks them itself, so the parked stream keeps the call's
// order. q's owner calls it, with q held and its head not being attempted.
// It fails only when ctx is done.
func (o *Outbox) parkCall(ctx context.Context, q *callQueue) error {
	o.mu.Lock()
	if q.subject == "" {
		q.subject = o.parkPrefix + subjectToken(q.id)
	}
	subject := q.subject
	o.mu.Unlock()
	for {
		o.mu.Lock()
		start := 0
		if q.items[0].parkSeq != 0 {
			start = 1 // the head is moved already
		}
		batch := slices.Clone(q.items[start:])
		if len(batch) == 0 {
			q.parked = true
			q.next = q.items[0].parkSeq + 1
			o.mu.Unlock()
			return nil
		}
		o.mu.Unlock()
		for _, it := range batch {
			if err := o.moveToPark(ctx, subject, it); err != nil {
				return err
			}
			o.mu.Lock()
			q.guard = max(q.guard, it.seq)
			o.mu.Unlock()
		}
		o.mu.Lock()
		// Keep the head, loaded; the others are read back from the
		// parked stream in their turn.
		q.items = slices.Delete(q.items, 1, start+len(batch))
		o.mu.Unlock()
	}
}

// intake parks a message that arrived for a parked call (q.intake counts
// it already), and makes q ready if its owner found nothing to load.
func (o *Outbox) intake(ctx context.Context, q *callQueue, subject string, it *item) {
	err := o.moveToPark(ctx, subject, it)
	o.mu.Lock()
	defer o.mu.Unlock()
	q.intake--
	if err != nil {
		return // stopping: the message stays in SB_NOTIFY for the next start
	}
	q.landed++
	q.guard = max(q.guard, it.seq)
	if q.idle {
		q.idle = false
		o.readyLocked(q)
	}
}

// moveToPark stores a copy of it in the parked stream under subject, then
// acknowledges it in SB_NOTIFY and waits for JetStream to confirm, so that
// the original is never redelivered once the copy may have been delivered
// and deleted. A crash between the two leaves both; Run's recovery tells
// them apart by the copy's hdrSeq. Store errors are retried until ctx is
// done.
func (o *Outbox) moveToPark(ctx context.Context, subject string, it *item) error {
	pm := parkedMsg(subject, it)
	var ack *jetstream.PubAck
	err := o.storeRetry(ctx, "park notification", it, func(ctx context.Context) (err error) {
		// The request id is the message id: a retried publish that was
		// stored the first time is not stored twice.
		ack, err = o.js.PublishMsg(ctx, pm, jetstream.WithMsgID(it.requestID))
		return err
	})
	if err != nil {
		return err
	}
	err = o.storeRetry(ctx, "acknowledge parked notification", it, func(ctx context.Context) error {
		o.mu.Lock()
		msg := it.msg
		o.mu.Unlock()
		if err := msg.DoubleAck(ctx); err != nil && !errors.Is(err, jetstream.ErrMsgAlreadyAckd) {
			return err
		}
		return nil
	})
	if err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	o.unholdLocked(it)
	it.msg = nil
	it.parkSeq = ack.Sequence
	o.nParked++
	o.met.parked.Inc()
	return nil
}

// storeRetry runs op, each try within storeTimeout, until it succeeds or
// ctx is done.
func (o *Outbox) storeRetry(ctx context.Context, what string, it *item, op func(context.Context) error) error {
	for {
		tctx, cancel := context.WithTimeout(ctx, storeTimeout)
		err := op(tctx)
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		it.log.Warn(what+"; trying again", "err", err, "retry_in", storeRetry)
		t := time.NewTimer(storeRetry)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

// loadHead returns q's head: the first held message, or for a parked call
// the loaded head or else the next message of its subject, read from the
// parked stream. When a parked call has none, q is forgotten (or, if the
// intake is adding one, left idle for the intake to wake) and loadHead
// returns nil, as it does when it hands q on: to a retry timer after a
// store error, or to pop after a malformed message.
func (o *Outbox) loadHead(ctx context.Context, q *callQueue) *item {
	o.mu.Lock()
	if len(q.items) > 0 {
		it := q.items[0]
		o.mu.Unlock()
		return it
	}
	subject, next, landed := q.subject, q.next, q.landed
	o.mu.Unlock()

	rctx, cancel := context.WithTimeout(ctx, storeTimeout)
	raw, err := o.parked.GetMsg(rctx, next, jetstream.WithGetMsgSubject(subject))
	cancel()
	switch {
	case errors.Is(err, jetstream.ErrMsgNotFound):
		o.mu.Lock()
		defer o.mu.Unlock()
		if q.landed != landed {
			// The intake parked one after the read: look again.
			o.readyLocked(q)
			return nil
		}
		if q.intake > 0 {
			q.idle = true
			return nil
		}
		if q.slot != nil {
			o.putSlotLocked(q.slot, hostNone, 0, 0)
			q.slot = nil
		}
		delete(o.calls, q.id) // its next message is held again
		if q.guard > 0 && o.recoveredMax > 0 {
			o.recovered[q.id] = q.guard
		}
		return nil
	case err != nil:
		if ctx.Err() == nil {
			o.log.Warn("load parked notification; trying again", "call", q.id, "err", err, "retry_in", storeRetry)
			o.schedule(q, storeRetry)
		}
		return nil
	}
	it, perr := o.parseParked(raw)
	o.mu.Lock()
	q.next = raw.Sequence + 1
	q.items = append(q.items, it)
	o.mu.Unlock()
	if perr != nil {
		o.finish(ctx, it, step{kind: stepDone, reason: reasonMalformed, err: perr})
		o.pop(q)
		return nil
	}
	return it
}

// parseParked reads a message of the parked stream.
func (o *Outbox) parseParked(raw *jetstream.RawStreamMsg) (*item, error) {
	seq, serr := strconv.ParseUint(raw.Header.Get(hdrSeq), 10, 64)
	it, err := parseItem(raw.Header, raw.Data, seq, o.log)
	it.parkSeq = raw.Sequence
	if err == nil && serr != nil {
		err = fmt.Errorf("%w: parked sequence %d: original sequence %q", ErrMalformed, raw.Sequence, raw.Header.Get(hdrSeq))
	}
	return it, err
}

// recoverParked finds the calls this node parked before it stopped, each
// with its head loaded, and makes them ready. It runs before the consumer
// starts, so that their messages still in SB_NOTIFY are recognised: those
// at or below the sequence of a call's last parked copy were parked just
// before the stop (guard), the others are parked behind it.
func (o *Outbox) recoverParked(ctx context.Context) error {
	info, err := o.parked.Info(ctx, jetstream.WithSubjectFilter(o.parkPrefix+">"))
	if err != nil {
		return fmt.Errorf("webhook: stream %s info: %w", ParkedStreamName, err)
	}
	for subject, n := range info.State.Subjects {
		last, err := o.parked.GetLastMsgForSubject(ctx, subject)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			return fmt.Errorf("webhook: last parked notification of %s: %w", subject, err)
		}
		guard, _ := strconv.ParseUint(last.Header.Get(hdrSeq), 10, 64)
		raw, err := o.parked.GetMsg(ctx, 0, jetstream.WithGetMsgSubject(subject))
		if err != nil {
			return fmt.Errorf("webhook: first parked notification of %s: %w", subject, err)
		}
		it, perr := o.parseParked(raw)
		id := it.n.CallID
		if id == "" {
			id = subject // unreadable: keyed apart from every call id
		}
		q := &callQueue{id: id, parked: true, subject: subject, next: raw.Sequence + 1, guard: guard, items: []*item{it}}
		o.mu.Lock()
		o.calls[id] = q
		if o.recovered == nil {
			o.recovered = map[string]uint64{}
		}
		o.recoveredMax = max(o.recoveredMax, guard)
		o.nParked += int(n)
		o.met.parked.Add(float64(n))
		o.mu.Unlock()
		if perr != nil {
			o.finish(ctx, it, step{kind: stepDone, reason: reasonMalformed, err: perr})
			o.mu.Lock()
			q.items = nil
			o.mu.Unlock()
		}
		o.mu.Lock()
		o.readyLocked(q)
		o.mu.Unlock()
	}
	return nil
}
