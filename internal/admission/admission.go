// Package admission is a node's last guard against overload
// (docs/decisions.md#limits): before the node takes a new call, a SIP
// INVITE or a Graph create (POST /communications/calls), it weighs the
// load it measures now, and refuses the call, with a time to retry after,
// while the node is over a limit, before anything it has already accepted
// degrades. The limits (config calls.maxConcurrent and calls.overload):
//
//   - live calls: the node's calls against calls.maxConcurrent, a fixed cap
//     beside the per-application one (calls.maxConcurrentPerApp, 429);
//   - the media clock: the share of its ticks that were late (started
//     more than 5 ms late, or skipped) in the last one to two seconds
//     (media.EngineStats.RecentTicks and RecentLateTicks), once there are
//     enough ticks to judge;
//   - the notification backlog: notifications this node has yet to
//     deliver to bots, parked ones aside (webhook.Outbox.Queued): a node
//     whose bots hear of their calls late breaks the calls it has.
//
// A refusal is a SIP 503 with Retry-After (sipgw) or a Graph 503
// serviceNotAvailable with Retry-After (graphapi): the node, not the
// application, is over its limit, which is what Graph answers 503 for;
// an application over its own limits gets 429. Every refusal, these and
// the edges' own (the INVITE rate, a node shutting down), is counted in
// switchboard_admission_refused_total{edge, reason}.
//
// The check is a few atomic loads and two short locks (the live calls,
// the outbox's held messages), made on arrival; calls arriving together
// may pass it together, so the cap can be overshot by the calls in
// flight. Nothing runs between calls: an idle node pays nothing for it.
package admission

import (
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/internal/errs"
)

// Limits are the thresholds of admission; a zero limit is off.
type Limits struct {
	// MaxCalls is the most live calls the node takes.
	MaxCalls int
	// MaxLateTickPercent is the share of recent media ticks that may be
	// late; above it new calls are refused.
	MaxLateTickPercent float64
	// MaxNotificationBacklog is the most notifications the node may have
	// yet to deliver.
	MaxNotificationBacklog int
	// RetryAfter is what refusals tell callers to wait (whole seconds on
	// the wire, at least 1).
	RetryAfter time.Duration
}

// MinTicks is how many recent ticks the media clock needs before its
// late share is judged: a clock that has just woken from sleep, or a
// GC pause in its first ticks, says little about load.
const MinTicks = 25

// Load is the node's load, as the limits weigh it.
type Load struct {
	Calls int // live calls
	// Ticks and LateTicks are the media clock's recent ticks and the late
	// ones among them.
	Ticks, LateTicks    uint64
	NotificationBacklog int // notifications yet to deliver
}

// Reason says which limit a refusal is for; it is the reason label of
// switchboard_admission_refused_total.
type Reason string

// The reasons of refusals.
const (
	ReasonCalls         Reason = "calls"         // calls.maxConcurrent
	ReasonMedia         Reason = "media"         // the media clock lags
	ReasonNotifications Reason = "notifications" // the notification backlog
	ReasonRate          Reason = "rate"          // sip.invitesPerSecond (counted by the edge)
	ReasonStopping      Reason = "stopping"      // the node is shutting down (counted by the edge)
)

// Edge is where a call arrives; it is the edge label of the refusals.
type Edge string

// The edges.
const (
	SIP   Edge = "sip"   // a new INVITE
	Graph Edge = "graph" // POST /communications/calls
)

// Decide returns the limit ld is over, the first of calls, media and
// notifications, or "" if the node may take a call.
func (l Limits) Decide(ld Load) Reason {
	switch {
	case l.MaxCalls > 0 && ld.Calls >= l.MaxCalls:
		return ReasonCalls
	case l.MaxLateTickPercent > 0 && ld.Ticks >= MinTicks &&
		float64(ld.LateTicks)*100 > l.MaxLateTickPercent*float64(ld.Ticks):
		return ReasonMedia
	case l.MaxNotificationBacklog > 0 && ld.NotificationBacklog > l.MaxNotificationBacklog:
		return ReasonNotifications
	}
	return ""
}

// Refusal is a call refused by admission: an errs.Unavailable error that
// says when to retry.
type Refusal struct {
	Reason Reason
	After  time.Duration
	err    *errs.Error
}

func (r *Refusal) Error() string { return r.err.Error() }
func (r *Refusal) Unwrap() error { return r.err }

// RetryAfter is how long the caller should wait before it tries again.
func (r *Refusal) RetryAfter() time.Duration { return r.After }

// RetryAfterSeconds is RetryAfter as a Retry-After header value.
func (r *Refusal) RetryAfterSeconds() string {
	return fmt.Sprint(max(int64((r.After+time.Second-1)/time.Second), 1))
}

var messages = map[Reason]string{
	ReasonCalls:         "This Switchboard node has as many calls as it takes (calls.maxConcurrent); retry later or on another node.",
	ReasonMedia:         "This Switchboard node is overloaded: its media clock is falling behind; retry later or on another node.",
	ReasonNotifications: "This Switchboard node is overloaded: its notifications to bots are falling behind; retry later or on another node.",
}

// Sources read the node's load. A nil source reads as no load.
type Sources struct {
	Calls func() int
	// Media returns the media clock's recent ticks and late ticks.
	Media               func() (ticks, late uint64)
	NotificationBacklog func() int
}

// Controller admits or refuses new calls. A nil *Controller admits every
// call and counts nothing. It is safe for concurrent use.
type Controller struct {
	limits  Limits
	src     Sources
	refused *prometheus.CounterVec
}

// New returns a controller; reg, if not nil, gets its metric.
func New(l Limits, src Sources, reg prometheus.Registerer) (*Controller, error) {
	if l.RetryAfter < time.Second {
		l.RetryAfter = time.Second
	}
	c := &Controller{limits: l, src: src,
		refused: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "switchboard_admission_refused_total",
			Help: "New calls refused, by edge (sip: INVITE, graph: POST /communications/calls) and reason (calls: calls.maxConcurrent; media: the media clock lags; notifications: the notification backlog; rate: sip.invitesPerSecond; stopping: the node is shutting down).",
		}, []string{"edge", "reason"}),
	}
	// The series exist from the start, at 0, so a rate() over them works
	// before the first refusal.
	for _, e := range []Edge{SIP, Graph} {
		for _, r := range []Reason{ReasonCalls, ReasonMedia, ReasonNotifications, ReasonStopping} {
			c.refused.WithLabelValues(string(e), string(r))
		}
	}
	c.refused.WithLabelValues(string(SIP), string(ReasonRate))
	if reg != nil {
		if err := reg.Register(c.refused); err != nil {
			return nil, fmt.Errorf("admission: metrics: %w", err)
		}
	}
	return c, nil
}

// Load reads the node's load now.
func (c *Controller) Load() Load {
	var ld Load
	if c.src.Calls != nil {
		ld.Calls = c.src.Calls()
	}
	if c.src.Media != nil {
		ld.Ticks, ld.LateTicks = c.src.Media()
	}
	if c.src.NotificationBacklog != nil {
		ld.NotificationBacklog = c.src.NotificationBacklog()
	}
	return ld
}

// Admit decides on a new call arriving at edge: nil to take it, or the
// refusal, counted.
func (c *Controller) Admit(edge Edge) *Refusal {
	if c == nil {
		return nil
	}
	r := c.limits.Decide(c.Load())
	if r == "" {
		return nil
	}
	c.Count(edge, r)
	return &Refusal{Reason: r, After: c.limits.RetryAfter, err: errs.E(errs.Unavailable, "%s", messages[r])}
}

// Count counts a refusal the edge made itself (ReasonRate,
// ReasonStopping).
func (c *Controller) Count(edge Edge, r Reason) {
	if c == nil {
		return
	}
	c.refused.WithLabelValues(string(edge), string(r)).Inc()
}
