package sipgw

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/internal/callctl"
)

// The SIP edge tells the call's tracer (the operators' console, through
// call control: callctl.Tracer) what each leg's dialog did: requests
// received and sent, with the final response each got, in a few words.
// Nothing secret goes out: no digest, no SDP, no INFO body (a key may be a
// PIN). The tracer only takes a short lock; nothing here waits on it.

// tracer is the calls' tracer, when call control has one.
func (g *Gateway) tracer() callctl.Tracer {
	t, _ := g.calls.(callctl.Tracer)
	return t
}

// maxEarlyTraces bounds what an incoming leg keeps to tell until it is
// attached to its call (the 100 and 180 may go out before).
const maxEarlyTraces = 4

// trace tells the call's tracer what happened on the leg. Never called
// with l.mu held.
func (l *Leg) trace(kind, format string, args ...any) {
	t := l.g.tracer()
	if t == nil {
		return
	}
	ev := callctl.TraceEvent{At: time.Now(), Kind: kind, Text: fmt.Sprintf(format, args...)}
	l.mu.Lock()
	ev.CallID = l.callID
	if ev.CallID == "" {
		if len(l.early) < maxEarlyTraces {
			l.early = append(l.early, ev)
		}
		l.mu.Unlock()
		return
	}
	l.mu.Unlock()
	t.Trace(ev)
}

// traceAttached tells the tracer, once the leg has its call, of the
// incoming INVITE and of what was traced before.
func (l *Leg) traceAttached() {
	t := l.g.tracer()
	if t == nil {
		return
	}
	what := "RTP"
	if l.rtc != nil {
		what = "WebRTC"
	}
	l.mu.Lock()
	id, early := l.callID, l.early
	l.early = nil
	l.mu.Unlock()
	at := time.Now()
	if len(early) > 0 {
		at = early[0].At
	}
	t.Trace(callctl.TraceEvent{CallID: id, At: at, Kind: callctl.TraceSIP,
		Text: fmt.Sprintf("INVITE received from %s over %s (%s offer)", printable(l.in.req.From().Address.String(), 80), l.in.req.Transport(), what)})
	for _, ev := range early {
		ev.CallID = id
		t.Trace(ev)
	}
}

// traceSIP traces a SIP event of the leg.
func (l *Leg) traceSIP(format string, args ...any) { l.trace(callctl.TraceSIP, format, args...) }

// tracedTx is a server transaction in a leg's dialog whose first final
// response is traced (a 2xx retransmitted until its ACK comes is one).
type tracedTx struct {
	sip.ServerTransaction
	l      *Leg
	method sip.RequestMethod
	done   atomic.Bool
}

func (t *tracedTx) Respond(res *sip.Response) error {
	err := t.ServerTransaction.Respond(res)
	if err == nil && res.StatusCode >= 200 && !t.done.Swap(true) {
		t.l.traceSIP("%d %s sent for the %s", res.StatusCode, printable(res.Reason, 40), t.method)
	}
	return err
}

// traceRequest traces a request received in the leg's dialog and returns
// its transaction, whose final response will be traced too.
func (l *Leg) traceRequest(req *sip.Request, tx sip.ServerTransaction) sip.ServerTransaction {
	if l.g.tracer() == nil {
		return tx
	}
	what := string(req.Method)
	switch req.Method {
	case sip.INVITE, sip.UPDATE:
		if req.Method == sip.INVITE {
			what = "re-INVITE"
		}
		what += sdpIntent(req.Body())
	case sip.INFO:
		what = "INFO (a key, by SIP INFO)"
	case sip.REFER:
		what = "REFER (a transfer)"
	}
	l.traceSIP("%s received", what)
	return &tracedTx{ServerTransaction: tx, l: l, method: req.Method}
}

// sdpIntent says what a re-offer asks, in the words of RFC 3264 §8.4:
// a hold (sendonly, inactive, or the old c=0.0.0.0), else a resume or a
// refresh.
func sdpIntent(body []byte) string {
	switch {
	case len(body) == 0:
		return " without an offer"
	case bytes.Contains(body, []byte("a=sendonly")), bytes.Contains(body, []byte("a=inactive")),
		bytes.Contains(body, []byte("c=IN IP4 0.0.0.0")):
		return " (hold)"
	}
	return " (resume or refresh)"
}

// traceResponse traces a response the leg's outgoing INVITE got.
func (l *Leg) traceResponse(res *sip.Response, from string) {
	l.traceSIP("%d %s received for the INVITE from %s", res.StatusCode, printable(res.Reason, 40), from)
}
