package webhook

import (
	"net/url"
	"slices"
	"strings"
	"time"
)

// host is the delivery state of one webhook host (scheme, host and port of
// a callback URL), shared by every call whose notifications go there. It
// bounds the POSTs in flight to the host and, once the host fails, lets
// one notification at a time find out whether it is back. Guarded by
// Outbox.mu.
type host struct {
	key      string
	inflight int          // POST slots taken, including slots handed to waiters
	held     int          // held messages whose target is this host
	waiters  []*callQueue // calls waiting for a slot, first come first served
	failures int          // consecutive failed attempts; 0 when healthy
	until    time.Time    // while failing: no attempt before this
	timer    *time.Timer  // wakes the waiters at timerAt
	timerAt  time.Time
	timerGen int // tells a replaced timer's late callback apart
}

// hostKey names the host a callback URL is delivered to.
func hostKey(u string) string {
	p, err := url.Parse(u)
	if err != nil {
		return u
	}
	return strings.ToLower(p.Scheme + "://" + p.Host)
}

// hostLocked returns the state of the host named key, creating it.
func (o *Outbox) hostLocked(key string) *host {
	h := o.hosts[key]
	if h == nil {
		h = &host{key: key}
		o.hosts[key] = h
	}
	return h
}

// forgetLocked drops h's state when nothing refers to it and it is
// healthy. A failing host is remembered so that its calls, coming back
// from their own retry timers, still probe it one at a time.
func (o *Outbox) forgetLocked(h *host) {
	if h.inflight == 0 && h.held == 0 && len(h.waiters) == 0 && h.failures == 0 && h.timer == nil {
		delete(o.hosts, h.key)
	}
}

// failing reports whether h's last attempt failed.
func (h *host) failing() bool { return h.failures > 0 }

// admitsLocked reports whether a call that holds no slot may start a POST
// to h now: nobody is waiting ahead of it, and h is under its limit (one
// POST, and not before until, while it is failing).
func (o *Outbox) admitsLocked(h *host, now time.Time) bool {
	if len(h.waiters) > 0 {
		return false
	}
	if h.failing() {
		return h.inflight == 0 && !now.Before(h.until)
	}
	return h.inflight < o.hostLimit
}

// takeSlotLocked gives q a POST slot of h, if it has one already (handed
// over while it waited) or h admits it now.
func (o *Outbox) takeSlotLocked(q *callQueue, h *host, now time.Time) bool {
	if q.slot == h {
		q.slot = nil
		return true
	}
	if q.slot != nil {
		// A slot of another host; a waiter's head does not change while
		// it waits, so this is only a safeguard: give it back.
		o.putSlotLocked(q.slot, hostNone, 0, 0)
		q.slot = nil
	}
	if !o.admitsLocked(h, now) {
		return false
	}
	h.inflight++
	return true
}

// mustParkLocked reports whether a held call must be parked before it waits
// for h: h is failing, so its wait may be long, or h holds more than its
// share of the consumer's window, so other hosts' notifications could not
// get in.
func (o *Outbox) mustParkLocked(h *host) bool {
	return h.failing() || h.held >= o.hostWindow
}

// waitLocked queues q, which must be parked unless mustParkLocked(h) is
// false, for a slot of h.
func (o *Outbox) waitLocked(q *callQueue, h *host) {
	h.waiters = append(h.waiters, q)
	o.wakeLocked(h)
}

// hostResult is what an attempt says about the host's health.
type hostResult int

const (
	hostNone   hostResult = iota // no POST, or no verdict on the host
	hostOK                       // the host answered (any status but 408, 429, 5xx)
	hostFailed                   // no answer, or 408, 429, 5xx
)

// putSlotLocked returns a slot of h after an attempt that took took, and
// records its verdict. A failure keeps h to one POST at a time, and not
// before after (a Retry-After), or else the backoff for h's consecutive
// failures, and never sooner than the failed attempt took: a host that
// hangs until the timeout can take at most about half of one worker.
func (o *Outbox) putSlotLocked(h *host, r hostResult, after, took time.Duration) {
	h.inflight--
	switch r {
	case hostOK:
		h.failures = 0
		h.until = time.Time{}
	case hostFailed:
		h.failures++
		wait := after
		if wait <= 0 {
			wait = backoff(o.opt.BackoffMin, o.opt.BackoffMax, h.failures)
		}
		h.until = time.Now().Add(max(wait, took))
	}
	o.wakeLocked(h)
}

// wakeLocked hands free slots of h to its waiters, in order, and makes them
// ready. While h is failing, it sends held waiters back to be parked and
// expired ones to be dropped, and arms h's timer for the end of its pause
// or the next waiter's max age, whichever comes first.
func (o *Outbox) wakeLocked(h *host) {
	if o.stopping {
		return
	}
	now := time.Now()
	var soonest time.Time // the earliest max age among the waiters
	if h.failing() {
		h.waiters = slices.DeleteFunc(h.waiters, func(q *callQueue) bool {
			if !q.parked {
				o.readyLocked(q) // its worker parks it, then it waits again
				return true
			}
			deadline := q.items[0].enqueued.Add(o.opt.MaxAge) // a waiter's head is loaded
			if !now.Before(deadline) {
				o.readyLocked(q) // its worker drops it
				return true
			}
			if soonest.IsZero() || deadline.Before(soonest) {
				soonest = deadline
			}
			return false
		})
	}
	for len(h.waiters) > 0 {
		if h.failing() {
			if h.inflight > 0 {
				break // the putSlotLocked of that POST wakes them
			}
			if now.Before(h.until) {
				o.armLocked(h, h.until, soonest)
				break
			}
		} else if h.inflight >= o.hostLimit {
			break
		}
		q := h.waiters[0]
		h.waiters[0] = nil
		h.waiters = h.waiters[1:]
		h.inflight++
		q.slot = h
		o.readyLocked(q)
	}
	o.forgetLocked(h)
}

// armLocked makes h's timer wake its waiters at until, or at soonest if
// that is earlier and not zero.
func (o *Outbox) armLocked(h *host, until, soonest time.Time) {
	at := until
	if !soonest.IsZero() && soonest.Before(at) {
		at = soonest
	}
	if h.timer != nil {
		if !h.timerAt.After(at) {
			return
		}
		h.timer.Stop()
	}
	h.timerAt = at
	h.timerGen++
	gen := h.timerGen
	h.timer = time.AfterFunc(time.Until(at), func() {
		o.mu.Lock()
		defer o.mu.Unlock()
		if h.timerGen != gen {
			return // replaced by an earlier one
		}
		h.timer = nil
		o.wakeLocked(h)
	})
}
