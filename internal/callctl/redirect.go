package callctl

import (
	"strconv"
	"strings"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// redirect dials the new targets; the first to answer gets the caller
// (https://learn.microsoft.com/graph/api/call-redirect; Switchboard stays in
// the media path: docs/decisions.md#redirect).
func (a *actor) redirect(cmd *command, req *graph.RedirectRequest) (*graph.Operation, error) {
	return nil, a.redirectTo(cmd.Caller, req)
}

func (a *actor) redirectTo(c Caller, req *graph.RedirectRequest) error {
	if a.rec.Call.State != graph.StateIncoming {
		return a.conflict("redirect")
	}
	if err := c.require(PermInitiate); err != nil {
		return err
	}
	if n := len(req.Targets); n == 0 || n > 25 {
		return badRequest("targets: between 1 and 25 targets are needed, got %d.", n)
	}
	timeout := 55
	if len(req.Targets) > 1 {
		timeout = 60
	}
	if req.Timeout != nil {
		if *req.Timeout < 15 || *req.Timeout > 90 {
			return badRequest("timeout: %d is outside 15..90 seconds.", *req.Timeout)
		}
		timeout = *req.Timeout
	}
	if req.CallbackURI != "" {
		if err := a.m.cfg.CheckCallbackURI(req.CallbackURI); err != nil {
			return badRequest("callbackUri: %v", err)
		}
	}
	targets := make([]Target, len(req.Targets))
	src := &graph.ParticipantInfo{Identity: a.rec.Call.Targets[0].Identity}
	if src.Identity == nil || src.Identity.ApplicationInstance == nil {
		src.Identity = &graph.IdentitySet{ApplicationInstance: &graph.Identity{}} // the caller's number is presented
	}
	for i, t := range req.Targets {
		tg, err := a.m.resolveTarget(c, t, src)
		if err != nil {
			return errs.E(errs.KindOf(err), "%s", strings.Replace(errs.Message(err), "targets[0]", "targets["+strconv.Itoa(i)+"]", 1))
		}
		targets[i] = tg
		normIdentitySet(req.Targets[i].Identity)
		req.Targets[i].ODataType = graph.TypeInvitationParticipantInfo
	}
	if err := a.setCallback(req.CallbackURI); err != nil {
		return err
	}
	a.disarm("answer")
	a.rec.Redirect = &RedirectState{Targets: req.Targets, By: a.m.clk.Now().Add(secs(timeout))}
	a.setState(graph.StateRedirecting)
	for i, t := range targets {
		i := i
		leg, err := a.m.o.Dialer.Dial(a.rec.Call.ID+"-r"+strconv.Itoa(i), t, func(ev LegEvent) {
			a.post(func(a *actor) { a.onRedirectLeg(i, ev) })
		})
		if err != nil {
			a.log.Info("redirect target unreachable", "target", i, "err", err)
			a.redirects = append(a.redirects, nil)
			continue
		}
		a.redirects = append(a.redirects, leg)
	}
	a.arm("redirect", a.rec.Redirect.By, func(a *actor) {
		if a.rec.Call.State == graph.StateRedirecting {
			a.end(errs.NoAnswer, true)
		}
	})
	if a.liveRedirects() == 0 {
		a.end(errs.Unreachable, true)
	}
	return nil
}

func (a *actor) liveRedirects() int {
	n := 0
	for _, l := range a.redirects {
		if l != nil {
			n++
		}
	}
	return n
}

func (a *actor) onRedirectLeg(i int, ev LegEvent) {
	if refuseRefer(ev) {
		return
	}
	if a.deleted || a.rec.Call.State != graph.StateRedirecting || i >= len(a.redirects) || a.redirects[i] == nil {
		// After the redirect won, only the winner still reports (the
		// others were hung up): its end releases the caller.
		if a.bridged != nil && ev.Kind == LegEnded {
			a.onLeg(ev)
		}
		return
	}
	switch ev.Kind {
	case LegAnswered:
		winner := a.redirects[i]
		for j, l := range a.redirects {
			if j != i && l != nil {
				l.HangUp(errs.Redirected)
			}
		}
		a.redirects = nil
		if a.leg == nil || a.leg.Answer() != nil {
			winner.HangUp(errs.CallerCancelled)
			a.end(errs.CallerCancelled, false)
			return
		}
		t := a.rec.Redirect.Targets[i]
		a.rec.Call.AnsweredBy = &graph.ParticipantInfo{ODataType: graph.TypeParticipantInfo, Identity: t.Identity}
		a.rec.Call.CallRoutes = []graph.CallRoute{{RoutingType: "forwarded", Original: a.rec.Call.Targets[0].Identity, Final: t.Identity}}
		a.end(errs.Redirected, false)
		a.bridged = winner
		a.bridgeMedia()
	case LegEnded:
		a.redirects[i] = nil
		if a.liveRedirects() == 0 {
			a.end(ev.Reason, true)
		}
	}
}

// bridgeMedia connects the caller's audio to the redirect target's: the
// two legs' RTP sessions, back to back (Switchboard stays in the media path:
// docs/decisions.md#redirect). Legs whose media the platform does not carry
// (simulated endpoints) are connected in signalling only.
func (a *actor) bridgeMedia() {
	x, y := sessionOf(a.leg), sessionOf(a.bridged)
	if x == nil || y == nil {
		a.log.Debug("redirected call without RTP on both legs: no media bridge")
		return
	}
	a.unbridge = media.Bridge(x, y)
}

func (a *actor) stopBridge() {
	if a.unbridge != nil {
		a.unbridge()
		a.unbridge = nil
	}
}

// endBridged ends a redirected call that is still up: the media bridge
// first, then both legs.
func (a *actor) endBridged(reason errs.EndReason) {
	a.stopBridge()
	if a.leg != nil {
		a.leg.HangUp(reason)
	}
	a.bridged.HangUp(reason)
	a.bridged = nil
}
