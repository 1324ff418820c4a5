package platform

import "github.com/switchboard-voice/switchboard/internal/callctl"

var _ callctl.Tracer = (*lateCalls)(nil)

// Trace passes what the SIP gateway saw of a call's legs to call control's
// tracer (the console); the gateway is made before the Manager is.
func (l *lateCalls) Trace(ev callctl.TraceEvent) {
	if l.m != nil {
		l.m.Trace(ev)
	}
}
