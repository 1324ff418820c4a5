package platform

import (
	"fmt"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/identity"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// dialers routes outbound legs: users configured as simulated go to the
// simulated endpoint, everyone else to the SIP gateway (when it runs).
type dialers struct {
	dir *identity.Directory
	sim callctl.Dialer
	sip callctl.Dialer // nil when SIP is off
}

var _ callctl.Dialer = dialers{}

func (d dialers) simulated(t callctl.Target) bool {
	if t.UserID != "" {
		u, ok := d.dir.User(t.TenantID, t.UserID)
		return ok && u.Simulated
	}
	_, u, ok := d.dir.UserByPhone(t.Phone)
	return ok && u.Simulated
}

func (d dialers) Dial(callID string, t callctl.Target, ev func(callctl.LegEvent)) (callctl.Leg, error) {
	if t.Cascade != nil {
		// A leg to another node's meeting room is SIP, whoever it carries.
		if d.sip == nil {
			return nil, &callctl.RouteError{Reason: errs.CannotRoute}
		}
		return d.sip.Dial(callID, t, ev)
	}
	if d.sip == nil || d.simulated(t) {
		return d.sim.Dial(callID, t, ev)
	}
	return d.sip.Dial(callID, t, ev)
}

func (d dialers) Resume(callID string, ref callctl.LegRef, state graph.CallState, ev func(callctl.LegEvent)) (callctl.Leg, error) {
	switch {
	case ref.Kind == "sim":
		return d.sim.Resume(callID, ref, state, ev)
	case d.sip != nil:
		return d.sip.Resume(callID, ref, state, ev)
	}
	return nil, fmt.Errorf("no endpoint resumes %s legs", ref.Kind)
}

// sipAddr is the node's SIP address for other nodes (the cascade legs of
// meetings, callctl/cascade.go); empty before SIP listens or without SIP.
func (n *Node) sipAddr() string {
	if n.SIP == nil || !n.SIP.Addr().IsValid() {
		return ""
	}
	return n.SIP.Addr().String()
}
