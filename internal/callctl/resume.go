package callctl

import (
	"context"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// resume rebuilds the actor of a call this node owned before it restarted.
// The notifications its last stored step may not have queued are queued
// again first (the webhook outbox drops those it already has). A call whose
// leg cannot be resumed ends with errs.ResumeFailed; the dialer releases
// the far end where it can (Dialer.Resume).
func (m *Manager) resume(ctx context.Context, rec *Record, rev uint64) error {
	if rec.Call.State == graph.StateTerminated {
		// It ended and was stored, but its record was not deleted: only
		// the notifications may be missing.
		a := &actor{m: m, rec: rec, rev: rev, log: m.log.With("call", rec.Call.ID), pending: rec.Outbox, deleted: true}
		return a.flush()
	}
	m.mu.Lock()
	m.perApp[rec.AppID+"|"+rec.TenantID]++
	m.mu.Unlock()
	if m.limits != nil {
		m.limits.adopt(limitKeyName(rec.AppID, rec.TenantID))
	}
	a := m.spawn(rec, rev)
	if a == nil {
		m.release(Caller{AppID: rec.AppID, TenantID: rec.TenantID})
		return errs.E(errs.Unavailable, "This Switchboard node is shutting down.")
	}
	if m.o.Takeover {
		a.post(func(a *actor) {
			a.pending = append(a.pending, a.rec.Outbox...)
			a.log.Info("ending a call of a lost node", "state", a.rec.Call.State)
			a.rec.TakenOver = true // fences the lost node, were it only cut off (save)
			a.releaseLost()
			a.end(errs.NodeLost, false)
		})
		return nil
	}
	a.post(func(a *actor) {
		a.pending = append(a.pending, a.rec.Outbox...)
		a.log.Info("resuming call after restart", "state", a.rec.Call.State)
		if a.rec.Meeting != "" {
			// The meeting's room died with the process.
			a.end(errs.ResumeFailed, false)
			return
		}
		if a.rec.Group {
			// A conference's media died with the process: its members are
			// released (the dialer hangs up those it can reach).
			for _, mr := range a.rec.Members {
				if mr.Leg == nil {
					continue
				}
				if leg, err := m.o.Dialer.Resume(a.rec.Call.ID, *mr.Leg, graph.StateEstablished, func(LegEvent) {}); err == nil {
					leg.HangUp(errs.ResumeFailed)
				}
			}
			a.end(errs.ResumeFailed, false)
			return
		}
		if a.rec.Leg == nil {
			a.end(errs.ResumeFailed, false)
			return
		}
		leg, err := m.o.Dialer.Resume(a.rec.Call.ID, *a.rec.Leg, a.rec.Call.State, a.legEvents())
		if err != nil {
			a.log.Warn("leg cannot be resumed", "err", err)
			a.end(errs.ResumeFailed, false)
			return
		}
		a.leg = leg
		switch a.rec.Call.State {
		case graph.StateRedirecting:
			// The legs the redirect dialed died with the process.
			a.end(errs.ResumeFailed, true)
		case graph.StateIncoming:
			a.armAnswer()
		case graph.StateEstablishing, graph.StateRinging:
			a.armKeepAlive()
			if a.rec.Call.Direction == graph.DirectionOutgoing {
				a.armRing()
			}
		default:
			a.armKeepAlive()
			a.resumeHold()
			if a.rec.Call.State == graph.StateEstablished {
				a.openAppMedia() // the bot opens its media socket again
			}
		}
	})
	return nil
}

// releaseLost hangs up the far ends of a lost node's call that this node
// can reach: the dialer rebuilds what it can of each stored leg (a SIP
// leg's confirmed dialog gets a BYE from this node, Dialer.Resume) and a
// leg that comes back is hung up at once. Its media is not carried here.
func (a *actor) releaseLost() {
	refs := make([]LegRef, 0, 1+len(a.rec.Members))
	if a.rec.Leg != nil {
		refs = append(refs, *a.rec.Leg)
	}
	for _, mr := range a.rec.Members {
		if mr.Leg != nil {
			refs = append(refs, *mr.Leg)
		}
	}
	for _, ref := range refs {
		leg, err := a.m.o.Dialer.Resume(a.rec.Call.ID, ref, a.rec.Call.State, func(LegEvent) {})
		if err != nil {
			a.log.Info("leg of a lost node's call not resumed", "err", err)
			continue
		}
		if a.rec.Call.State == graph.StateIncoming || a.rec.Call.State == graph.StateRedirecting {
			leg.Reject(errs.NodeLost)
		} else {
			leg.HangUp(errs.NodeLost)
		}
	}
}
