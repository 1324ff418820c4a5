package admission

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchboard-voice/switchboard/internal/errs"
)

func TestDecide(t *testing.T) {
	l := Limits{MaxCalls: 100, MaxLateTickPercent: 20, MaxNotificationBacklog: 1000}
	for _, tc := range []struct {
		name string
		l    Limits
		ld   Load
		want Reason
	}{
		{"idle", l, Load{}, ""},
		{"below every limit", l, Load{Calls: 99, Ticks: 100, LateTicks: 20, NotificationBacklog: 1000}, ""},
		{"at the call cap", l, Load{Calls: 100}, ReasonCalls},
		{"over the call cap", l, Load{Calls: 150}, ReasonCalls},
		{"late ticks over the share", l, Load{Ticks: 100, LateTicks: 21}, ReasonMedia},
		{"late ticks over the share, one second", l, Load{Ticks: 50, LateTicks: 11}, ReasonMedia},
		{"too few ticks to judge", l, Load{Ticks: MinTicks - 1, LateTicks: MinTicks - 1}, ""},
		{"just enough ticks to judge", l, Load{Ticks: MinTicks, LateTicks: 6}, ReasonMedia},
		{"backlog over", l, Load{NotificationBacklog: 1001}, ReasonNotifications},
		{"calls first", l, Load{Calls: 100, Ticks: 100, LateTicks: 100, NotificationBacklog: 5000}, ReasonCalls},
		{"media before notifications", l, Load{Ticks: 100, LateTicks: 100, NotificationBacklog: 5000}, ReasonMedia},
		{"every limit off", Limits{}, Load{Calls: 1 << 20, Ticks: 100, LateTicks: 100, NotificationBacklog: 1 << 20}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.l.Decide(tc.ld); got != tc.want {
				t.Errorf("Decide(%+v) = %q, want %q", tc.ld, got, tc.want)
			}
		})
	}
}

func TestControllerRefusesAndCounts(t *testing.T) {
	var calls, backlog int
	var ticks, late uint64
	reg := prometheus.NewRegistry()
	c, err := New(Limits{MaxCalls: 2, MaxLateTickPercent: 50, MaxNotificationBacklog: 10, RetryAfter: 2500 * time.Millisecond},
		Sources{
			Calls:               func() int { return calls },
			Media:               func() (uint64, uint64) { return ticks, late },
			NotificationBacklog: func() int { return backlog },
		}, reg)
	if err != nil {
		t.Fatal(err)
	}
	refused := func(e Edge, r Reason) float64 {
		return testutil.ToFloat64(c.refused.WithLabelValues(string(e), string(r)))
	}

	if r := c.Admit(SIP); r != nil {
		t.Fatalf("an idle node refused: %v", r)
	}
	calls = 2
	r := c.Admit(Graph)
	if r == nil || r.Reason != ReasonCalls {
		t.Fatalf("at the cap: %+v, want a refusal for calls", r)
	}
	if errs.KindOf(r) != errs.Unavailable {
		t.Errorf("kind %v, want Unavailable (503)", errs.KindOf(r))
	}
	var ra interface{ RetryAfter() time.Duration }
	if !errors.As(error(r), &ra) || ra.RetryAfter() != 2500*time.Millisecond || r.RetryAfterSeconds() != "3" {
		t.Errorf("retry after %v (%q), want 2.5s (3)", r.After, r.RetryAfterSeconds())
	}
	calls = 1
	ticks, late = 100, 60
	if r := c.Admit(SIP); r == nil || r.Reason != ReasonMedia {
		t.Fatalf("a lagging clock: %+v, want a refusal for media", r)
	}
	ticks, late = 100, 0
	backlog = 11
	if r := c.Admit(SIP); r == nil || r.Reason != ReasonNotifications {
		t.Fatalf("a backlog: %+v, want a refusal for notifications", r)
	}
	backlog = 0
	if r := c.Admit(SIP); r != nil {
		t.Fatalf("back under every limit, refused: %v", r)
	}
	c.Count(SIP, ReasonRate)

	for _, x := range []struct {
		e    Edge
		r    Reason
		want float64
	}{{Graph, ReasonCalls, 1}, {SIP, ReasonCalls, 0}, {SIP, ReasonMedia, 1}, {SIP, ReasonNotifications, 1}, {SIP, ReasonRate, 1}, {Graph, ReasonStopping, 0}} {
		if got := refused(x.e, x.r); got != x.want {
			t.Errorf("refused{edge=%s, reason=%s} = %v, want %v", x.e, x.r, got, x.want)
		}
	}
	if n := testutil.CollectAndCount(reg, "switchboard_admission_refused_total"); n != 9 {
		t.Errorf("%d series, want 9 from the start", n)
	}
}

func TestNilControllerAdmits(t *testing.T) {
	var c *Controller
	if r := c.Admit(SIP); r != nil {
		t.Fatal(r)
	}
	c.Count(Graph, ReasonStopping)
}
