package sipgw

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchboard-voice/switchboard/internal/config"
)

// options sends an OPTIONS from p and reports whether it was answered
// within a second (a dropped request is not).
func (p *peer) options(gw netip.AddrPort) bool {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	res, err := p.cli.Do(ctx, sip.NewRequest(sip.OPTIONS, sip.Uri{Scheme: "sip", Host: gw.Addr().String(), Port: int(gw.Port())}))
	return err == nil && res.StatusCode == 200
}

// A source over its rate is dropped; a trunk's address never is.
func TestSourceRateLimitSparesTrunks(t *testing.T) {
	trunk := newPeer(t, "127.0.0.5", "pstn")
	e := newEnv(t, envOptions{trunk: netip.AddrPortFrom(trunk.addr.Addr(), 5),
		abuse: &config.SIPAbuse{RequestsPerSecond: 0.01, Burst: 2}})
	gw := e.gw.Addr()
	user := newPeer(t, "127.0.0.6", "alice")
	if !user.options(gw) || !user.options(gw) {
		t.Fatal("the burst was refused")
	}
	if user.options(gw) {
		t.Fatal("a request over the source's rate was answered")
	}
	for i := range 5 {
		if !trunk.options(gw) {
			t.Fatalf("the trunk's request %d was dropped", i)
		}
	}
	if other := newPeer(t, "127.0.0.7", "bob"); !other.options(gw) {
		t.Fatal("another source was dropped")
	}
	if n := e.gw.Sources(); n != 2 {
		t.Fatalf("%d sources tracked, want the two users' (not the trunk's)", n)
	}
}

// maxAuthFailures wrong passwords ban their source: its requests are
// dropped, the right password included, until the ban ends; other
// sources are not affected.
func TestWrongPasswordsBanTheSource(t *testing.T) {
	e := newEnv(t, envOptions{abuse: &config.SIPAbuse{MaxAuthFailures: 3, AuthFailureWindow: config.Duration(time.Minute),
		BanTime: config.Duration(time.Hour)}})
	gw := e.gw.Addr()
	guesser := newPeer(t, "127.0.0.8", "alice")
	for i := range 3 {
		if res := guesser.register(gw, "alice", "guess", 60); res.StatusCode != 403 {
			t.Fatalf("wrong password %d: %d", i, res.StatusCode)
		}
	}
	if guesser.options(gw) {
		t.Fatal("the banned source was answered")
	}
	if res := newPeer(t, "127.0.0.9", "alice").register(gw, "alice", alicePw, 60); res.StatusCode != 200 {
		t.Fatalf("another source with the right password: %d", res.StatusCode)
	}
	if got := testutil.ToFloat64(e.gw.am.banned); got != 1 {
		t.Fatalf("banned_total %v", got)
	}
}
