package callctl

import (
	"strings"
	"sync"
	"testing"

	"github.com/switchboard-voice/switchboard/internal/errs"
)

type recordingObserver struct {
	mu  sync.Mutex
	evs []CallEvent
}

func (o *recordingObserver) ObserveCall(ev CallEvent) {
	o.mu.Lock()
	o.evs = append(o.evs, ev)
	o.mu.Unlock()
}

// The observer sees a call appear, change state and end with its
// resultInfo, once each, after the steps are stored.
func TestObserverSeesACallsLife(t *testing.T) {
	h := newHarness(t)
	ob := &recordingObserver{}
	h.m.o.Observer = ob // before any actor runs
	id, leg := h.established()
	h.sync(id)
	leg.end(errs.EndedByRemote)
	h.sync(id)
	ob.mu.Lock()
	defer ob.mu.Unlock()
	var got, notes []string
	for _, ev := range ob.evs {
		if ev.Call.ID != id {
			t.Fatalf("event of another call: %+v", ev)
		}
		if ev.Kind == ObservedNotified {
			for _, n := range ev.Notifications {
				if n.ID == "" {
					t.Errorf("a notification without its id: %+v", n)
				}
				notes = append(notes, n.Summary)
			}
			continue
		}
		got = append(got, ev.Kind+":"+ev.Call.State)
		if ev.Kind == ObservedLeg {
			got[len(got)-1] += ":" + ev.Detail
		}
	}
	if s := strings.Join(got, " "); !strings.HasPrefix(s, "created:") || !strings.Contains(s, "state:established") ||
		!strings.Contains(s, "leg:established:far end gone: 200/4521") ||
		!strings.HasSuffix(s, "ended:terminated") || strings.Count(s, " ended:") != 1 {
		t.Errorf("observed %s", s)
	}
	if n := strings.Join(notes, ", "); !strings.Contains(n, "call updated: established") || !strings.HasSuffix(n, "call deleted: terminated") {
		t.Errorf("notifications named %s", n)
	}
	last := ob.evs[len(ob.evs)-1].Call
	if last.ResultInfo == nil || last.ResultInfo.Code != 200 || last.ResultInfo.Subcode != 4521 || last.AppID != tBot ||
		last.TenantID != tTenant || last.MediaMode != "serviceHosted" {
		t.Errorf("ended snapshot: %+v", last)
	}
}

// A group call's members: their legs' events are told with their
// participant id, and roster changes as such.
func TestObserverSeesGroupMembers(t *testing.T) {
	h := newHarness(t)
	ob := &recordingObserver{}
	h.m.o.Observer = ob
	id, legs := h.group()
	legs[0].end(errs.EndedByRemote)
	h.sync(id)
	ob.mu.Lock()
	defer ob.mu.Unlock()
	var legEvents, rosters int
	for _, ev := range ob.evs {
		switch ev.Kind {
		case ObservedLeg:
			if !strings.HasPrefix(ev.Detail, "participant ") {
				t.Errorf("a member's event without its participant: %s", ev.Detail)
			}
			legEvents++
		case ObservedParticipants:
			rosters++
		}
	}
	// Two members ring and answer, one hangs up.
	if legEvents != 5 || rosters == 0 || !ob.evs[len(ob.evs)-1].Call.Group {
		t.Errorf("%d member events, %d roster changes; last %+v", legEvents, rosters, ob.evs[len(ob.evs)-1])
	}
}
