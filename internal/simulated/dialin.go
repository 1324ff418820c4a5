package simulated

import (
	"context"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// DialIns takes people's calls to a tenant's meeting dial-in number: the
// call manager does (callctl.Manager.DialIn), as it does for the SIP edge.
type DialIns interface {
	DialIn(ctx context.Context, in callctl.DialIn) error
}

var _ DialIns = (*callctl.Manager)(nil)

// tollTenant reports whether num is the dial-in number of the tenant of
// the simulated user from (tenants[].conferencing.tollNumber).
func (e *Endpoint) tollTenant(from, num string) bool {
	tid, _, ok := e.user(from)
	if !ok || num == "" {
		return false
	}
	t, ok := e.dir.Tenant(tid)
	return ok && t.Conferencing.TollNumber == num
}

// DialIn makes a simulated user call its tenant's meeting dial-in number
// (o.To: the number, or empty for it), as a phone dialing it through a
// trunk does: the platform answers with its prompt asking for the
// conference id and #, which the user then presses (Leg.PressKeys), then
// the passcode if the meeting has one; the user waits in the lobby until a
// bot admits them, unless the meeting lets dial-in callers straight in.
// The leg's call id is the platform's id of that dial-in, not a bot's call.
func (e *Endpoint) DialIn(ctx context.Context, o CallOptions) (*Leg, error) {
	tid, u, ok := e.user(o.From)
	if !ok {
		return nil, errs.E(errs.BadRequest, "from: %q is not a configured user (id, phone or SIP user name).", o.From)
	}
	t, _ := e.dir.Tenant(tid)
	if t == nil || t.Conferencing.TollNumber == "" {
		return nil, errs.E(errs.NotFound, "to: the tenant of %s has no dial-in number (tenants[].conferencing.tollNumber).", u.DisplayName)
	}
	if o.To != "" && o.To != t.Conferencing.TollNumber {
		return nil, errs.E(errs.NotFound, "to: %q is not the dial-in number of %s's tenant (%s).", o.To, u.DisplayName, t.Conferencing.TollNumber)
	}
	e.mu.Lock()
	in, _ := e.incoming.(DialIns)
	e.mu.Unlock()
	if in == nil {
		return nil, errs.E(errs.Unavailable, "the simulated endpoint is not attached to a call manager that takes dial-in calls")
	}
	sim := u.Simulation
	if o.Simulation != nil {
		sim = *o.Simulation
	}
	// As a phone reaches the platform: by its number when it has one.
	caller := &graph.IdentitySet{User: &graph.Identity{ID: u.ID, DisplayName: u.DisplayName, TenantID: tid}}
	if u.Phone != "" {
		caller = &graph.IdentitySet{Phone: &graph.Identity{ID: u.Phone, DisplayName: u.DisplayName}}
	}
	a, err := e.openAudio()
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "the simulated caller has no media: %v", err)
	}
	var leg *Leg
	err = in.DialIn(ctx, callctl.DialIn{TenantID: tid, Caller: caller,
		NewLeg: func(id string, ev func(callctl.LegEvent)) callctl.Leg {
			leg = e.newLeg(id, u, tid, true, sim, ev, a)
			return leg
		}})
	if err != nil {
		if leg == nil && a != nil {
			a.close()
		}
		return nil, err
	}
	// DialIn built the leg (NewLeg) and answered it before it returned.
	return leg, nil
}
