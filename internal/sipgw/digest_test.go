package sipgw

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/errs"
)

// Replay of captured digest credentials (RFC 7616 §3.4.6, §5.5; RFC 3261
// §22.4): credentials are good for the Request-URI they were computed over,
// and each nonce count once.

// send sends req from p to the gateway in a transaction of its own and
// returns the final response. A call the request creates is rejected at
// once (603) and counted in calls, so an accepted INVITE shows as one.
func send(t *testing.T, e *env, p *peer, req *sip.Request, calls *int) *sip.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	req.SetDestination(e.gw.Addr().String())
	tx, err := p.cli.TransactionRequest(ctx, req)
	if err != nil {
		t.Fatalf("send %s: %v", req.Method, err)
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			return res
		case c := <-e.calls.calls:
			if calls != nil {
				*calls++
			}
			c.leg.Reject(errs.Rejected)
		case <-tx.Done():
			t.Fatalf("%s: no final response: %v", req.Method, tx.Err())
		case <-ctx.Done():
			t.Fatalf("%s: no final response", req.Method)
		}
	}
}

// challengeOf returns the digest challenge of a 401.
func challengeOf(t *testing.T, res *sip.Response) *digest.Challenge {
	t.Helper()
	if res.StatusCode != 401 {
		t.Fatalf("want a 401 challenge, got %d %s", res.StatusCode, res.Reason)
	}
	h := res.GetHeader("WWW-Authenticate")
	if h == nil {
		t.Fatal("401 without WWW-Authenticate")
	}
	c, err := digest.ParseChallenge(h.Value())
	if err != nil {
		t.Fatalf("challenge %q: %v", h.Value(), err)
	}
	return c
}

// authorization answers c as alice for method and uri with nonce count nc.
func authorization(t *testing.T, c *digest.Challenge, method, uri, password string, nc int) string {
	t.Helper()
	cred, err := digest.Digest(c, digest.Options{Method: method, URI: uri, Username: "alice", Password: password, Count: nc})
	if err != nil {
		t.Fatal(err)
	}
	return cred.String()
}

func withAuth(req *sip.Request, auth string) *sip.Request {
	req.AppendHeader(sip.NewHeader("Authorization", auth))
	return req
}

// registerTo is alice's REGISTER with Request-URI ruri.
func registerTo(e *env, ruri sip.Uri) *sip.Request {
	req := registerRequest(e, "alice")
	req.Recipient = ruri
	return req
}

// inviteTo is alice's INVITE with Request-URI ruri, from p, with an offer.
func inviteTo(p *peer, ruri sip.Uri) *sip.Request {
	req := sip.NewRequest(sip.INVITE, ruri)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: ruri.User, Host: "sb.test"}})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "sb.test"}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: p.ip, Port: int(p.addr.Port())}})
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(p.g711())
	return req
}

func gwURI(e *env, user string) sip.Uri {
	gw := e.gw.Addr()
	return sip.Uri{Scheme: "sip", User: user, Host: gw.Addr().String(), Port: int(gw.Port())}
}

// Credentials computed over one Request-URI do not authorize a REGISTER
// for another, whether or not they were used before.
func TestDigestRegisterOtherRequestURI(t *testing.T) {
	e := newEnv(t, envOptions{})
	p := newPeer(t, "127.0.0.1", "alice")

	ruri := gwURI(e, "")
	other := sip.Uri{Scheme: "sip", Host: "sb.test"} // also this registrar
	c := challengeOf(t, send(t, e, p, registerTo(e, ruri), nil))
	auth := authorization(t, c, "REGISTER", ruri.String(), alicePw, 1)

	if res := send(t, e, p, withAuth(registerTo(e, other), auth), nil); res.StatusCode != 400 {
		t.Fatalf("credentials for %s on a REGISTER to %s: %d %s, want 400", ruri.String(), other.String(), res.StatusCode, res.Reason)
	}
	if n := len(e.bindings("alice")); n != 0 {
		t.Fatalf("%d bindings after a REGISTER with another Request-URI's credentials", n)
	}
	// The refusal did not use the nonce up: the request they were made for
	// still registers.
	if res := send(t, e, p, withAuth(registerTo(e, ruri), auth), nil); res.StatusCode != 200 {
		t.Fatalf("the REGISTER the credentials were made for: %d %s", res.StatusCode, res.Reason)
	}
	// Captured after use, they still do not register elsewhere.
	if res := send(t, e, p, withAuth(registerTo(e, other), auth), nil); res.StatusCode != 400 {
		t.Fatalf("captured credentials on a REGISTER to %s: %d %s, want 400", other.String(), res.StatusCode, res.Reason)
	}
}

// A captured INVITE's credentials do not place a call to another
// Request-URI.
func TestDigestInviteOtherRequestURI(t *testing.T) {
	e := newEnv(t, envOptions{})
	p := newPeer(t, "127.0.0.1", "alice")

	ruri := gwURI(e, botNum)
	other := gwURI(e, botNum[1:]) // the same bot: numbers without "+" reach it
	c := challengeOf(t, send(t, e, p, inviteTo(p, ruri), nil))
	auth := authorization(t, c, "INVITE", ruri.String(), alicePw, 1)

	calls := 0
	if res := send(t, e, p, withAuth(inviteTo(p, ruri), auth), &calls); res.StatusCode != 603 || calls != 1 {
		t.Fatalf("the INVITE the credentials were made for: %d %s with %d calls, want a call (rejected: 603)", res.StatusCode, res.Reason, calls)
	}
	if res := send(t, e, p, withAuth(inviteTo(p, other), auth), &calls); res.StatusCode != 400 || calls != 1 {
		t.Fatalf("captured credentials on an INVITE to %s: %d %s with %d calls, want 400 and no call", other.String(), res.StatusCode, res.Reason, calls-1)
	}
}

// One nonce count authorizes one request: the same Authorization again is
// refused with a stale challenge; a higher count with a right response is
// accepted; a lower one is not.
func TestDigestRegisterNonceCountReplay(t *testing.T) {
	e := newEnv(t, envOptions{})
	p := newPeer(t, "127.0.0.1", "alice")

	ruri := gwURI(e, "")
	uri := ruri.String()
	c := challengeOf(t, send(t, e, p, registerTo(e, ruri), nil))
	register := func(auth string) *sip.Response {
		t.Helper()
		return send(t, e, p, withAuth(registerTo(e, ruri), auth), nil)
	}
	staleChallenge := func(res *sip.Response, what string) {
		t.Helper()
		if res.StatusCode != 401 {
			t.Fatalf("%s: %d %s, want 401", what, res.StatusCode, res.Reason)
		}
		if nc := challengeOf(t, res); !nc.Stale || nc.Nonce == c.Nonce {
			t.Fatalf("%s: challenge %+v, want a new nonce with stale=true", what, nc)
		}
	}

	nc1 := authorization(t, c, "REGISTER", uri, alicePw, 1)
	if res := register(nc1); res.StatusCode != 200 {
		t.Fatalf("nc=1: %d %s", res.StatusCode, res.Reason)
	}
	staleChallenge(register(nc1), "the same Authorization again")

	nc2 := authorization(t, c, "REGISTER", uri, alicePw, 2)
	if res := register(nc2); res.StatusCode != 200 {
		t.Fatalf("nc=2: %d %s", res.StatusCode, res.Reason)
	}
	staleChallenge(register(nc2), "nc=2 again")
	staleChallenge(register(authorization(t, c, "REGISTER", uri, alicePw, 1)), "nc=1 after nc=2, fresh cnonce")

	// A wrong response does not use a count up.
	if res := register(authorization(t, c, "REGISTER", uri, "nope", 3)); res.StatusCode != 403 {
		t.Fatalf("nc=3, wrong password: %d %s", res.StatusCode, res.Reason)
	}
	if res := register(authorization(t, c, "REGISTER", uri, alicePw, 3)); res.StatusCode != 200 {
		t.Fatalf("nc=3: %d %s", res.StatusCode, res.Reason)
	}
	if res := register(authorization(t, c, "REGISTER", uri, alicePw, 10)); res.StatusCode != 200 {
		t.Fatalf("nc=10 (counts may skip): %d %s", res.StatusCode, res.Reason)
	}
}

// A captured INVITE replayed as it was places no second call.
func TestDigestInviteNonceCountReplay(t *testing.T) {
	e := newEnv(t, envOptions{})
	p := newPeer(t, "127.0.0.1", "alice")

	ruri := gwURI(e, botNum)
	c := challengeOf(t, send(t, e, p, inviteTo(p, ruri), nil))
	nc1 := authorization(t, c, "INVITE", ruri.String(), alicePw, 1)

	calls := 0
	if res := send(t, e, p, withAuth(inviteTo(p, ruri), nc1), &calls); res.StatusCode != 603 || calls != 1 {
		t.Fatalf("nc=1: %d %s with %d calls", res.StatusCode, res.Reason, calls)
	}
	res := send(t, e, p, withAuth(inviteTo(p, ruri), nc1), &calls)
	if res.StatusCode != 401 || calls != 1 {
		t.Fatalf("replayed INVITE: %d %s with %d more calls, want 401 and none", res.StatusCode, res.Reason, calls-1)
	}
	if !challengeOf(t, res).Stale {
		t.Fatal("replayed INVITE: challenge without stale=true")
	}
	nc2 := authorization(t, c, "INVITE", ruri.String(), alicePw, 2)
	if res := send(t, e, p, withAuth(inviteTo(p, ruri), nc2), &calls); res.StatusCode != 603 || calls != 2 {
		t.Fatalf("nc=2: %d %s with %d calls", res.StatusCode, res.Reason, calls)
	}
}

// Without qop (RFC 2069 style) there is no count to track: a nonce answers
// one request.
func TestDigestWithoutQOPSingleUse(t *testing.T) {
	e := newEnv(t, envOptions{})
	p := newPeer(t, "127.0.0.1", "alice")

	ruri := gwURI(e, "")
	c := challengeOf(t, send(t, e, p, registerTo(e, ruri), nil))
	c.QOP = nil // answer as an RFC 2069 UA does
	auth := authorization(t, c, "REGISTER", ruri.String(), alicePw, 0)
	if res := send(t, e, p, withAuth(registerTo(e, ruri), auth), nil); res.StatusCode != 200 {
		t.Fatalf("without qop: %d %s", res.StatusCode, res.Reason)
	}
	res := send(t, e, p, withAuth(registerTo(e, ruri), auth), nil)
	if res.StatusCode != 401 || !challengeOf(t, res).Stale {
		t.Fatalf("without qop, again: %d %s, want 401 with stale=true", res.StatusCode, res.Reason)
	}
	// The fresh nonce works, once.
	c = challengeOf(t, res)
	c.QOP = nil
	if res := send(t, e, p, withAuth(registerTo(e, ruri), authorization(t, c, "REGISTER", ruri.String(), alicePw, 0)), nil); res.StatusCode != 200 {
		t.Fatalf("without qop, the new nonce: %d %s", res.StatusCode, res.Reason)
	}
}

func TestSameURI(t *testing.T) {
	for _, c := range []struct {
		a, b string
		same bool
	}{
		{"sip:+15550100@127.0.0.1:5060", "sip:+15550100@127.0.0.1:5060", true},
		{"SIP:alice@SB.Test", "sip:alice@sb.test", true},
		{"sip:sb.test;transport=tcp", "sip:sb.test", true},                     // sipgo's client drops parameters
		{"sip:sb.test;transport=TCP;lr", "sip:sb.test;lr;transport=tcp", true}, // order and case
		{"sip:alice@sb.test", "sip:Alice@sb.test", false},                      // userinfo is case-sensitive
		{"sip:+15550100@sb.test", "sip:15550100@sb.test", false},
		{"sip:+15550100@sb.test", "sip:+15550100@other.test", false},
		{"sip:sb.test", "sip:sb.test:5060", false}, // an explicit default port is another URI
		{"sip:sb.test:5060", "sip:sb.test:5061", false},
		{"sip:alice@sb.test", "sips:alice@sb.test", false},
		{"sip:sb.test;transport=tcp", "sip:sb.test;transport=udp", false},
		{"sip:+15550100@sb.test;user=phone", "sip:+15550100@sb.test", false},
		{"sip:sb.test", "sip:sb.test;maddr=239.255.255.1", false},
		{"sip:sb.test;method=INVITE", "sip:sb.test", false},
		{"sip:sb.test", "sip:sb.test;ttl=1", false},
		{"sip:sb.test?subject=x", "sip:sb.test", false},
		{"sip:sb.test?subject=x", "sip:sb.test?subject=y", false},
		{"sip:alice:pw@sb.test", "sip:alice@sb.test", false},
		{"tel:+15550100", "tel:+15550100", true},
		{"tel:+15550100", "tel:+15550101", false},
		{"tel:+15550100", "sip:+15550100@sb.test", false},
	} {
		var a, b sip.Uri
		if err := sip.ParseUri(c.a, &a); err != nil {
			t.Fatalf("%s: %v", c.a, err)
		}
		if err := sip.ParseUri(c.b, &b); err != nil {
			t.Fatalf("%s: %v", c.b, err)
		}
		if got := sameURI(a, b); got != c.same {
			t.Errorf("sameURI(%s, %s) = %v", c.a, c.b, got)
		}
		if got := sameURI(b, a); got != c.same {
			t.Errorf("sameURI(%s, %s) = %v", c.b, c.a, got)
		}
	}
}

// testDigester is a digester on a settable clock, and a way to answer its
// challenges as alice.
type testDigester struct {
	*digester
	clk *clock
}

func newTestDigester(secret string, maxTracked int) testDigester {
	clk := &clock{}
	clk.ns.Store(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).UnixNano())
	return testDigester{&digester{realm: "sb.test", secret: []byte(secret), now: clk.Now, maxTracked: maxTracked}, clk}
}

var testAlice = &config.User{ID: "a", SIP: config.SIPCredentials{Username: "alice", Password: alicePw}}

func lookupAlice(name string) (*config.User, string, bool) {
	if name == "alice" {
		return testAlice, tenantID, true
	}
	return nil, "", false
}

// request is a REGISTER carrying alice's answer to nonce with count nc.
func (d testDigester) request(t *testing.T, nonce string, nc int) *sip.Request {
	t.Helper()
	ruri := sip.Uri{Scheme: "sip", Host: "sb.test"}
	req := sip.NewRequest(sip.REGISTER, ruri)
	c := &digest.Challenge{Realm: d.realm, Nonce: nonce, Algorithm: "MD5", QOP: []string{"auth"}}
	return withAuth(req, authorization(t, c, "REGISTER", ruri.String(), alicePw, nc))
}

func (d testDigester) verifyAlice(req *sip.Request) authResult {
	res, _, _ := d.verify(req, lookupAlice, "")
	return res
}

// Another node's nonce (same secret) or this node's from before a restart
// is stale here: nobody here remembers its counts.
func TestDigestNonceOfAnotherInstance(t *testing.T) {
	a := newTestDigester("shared-secret", 0)
	b := newTestDigester("shared-secret", 0)
	n := a.nonce()
	if res := b.verifyAlice(b.request(t, n, 1)); res != authStale {
		t.Fatalf("another instance's nonce: %v, want authStale", res)
	}
	if res := a.verifyAlice(a.request(t, n, 1)); res != authOK {
		t.Fatalf("own nonce: %v, want authOK", res)
	}
	// A nonce of the layout before (issue time and HMAC only), which a UA
	// may hold across the upgrade, is stale too.
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], uint64(a.now().Unix()))
	legacy := hex.EncodeToString(ts[:]) + hex.EncodeToString(a.mac(ts[:]))
	if res := a.verifyAlice(a.request(t, legacy, 1)); res != authStale {
		t.Fatalf("nonce of the former layout: %v, want authStale", res)
	}
	// An altered nonce (another sequence number) is not ours at all.
	raw, _ := hex.DecodeString(n)
	raw[23] ^= 1
	if res := a.verifyAlice(a.request(t, hex.EncodeToString(raw), 5)); res != authNone {
		t.Fatalf("altered nonce: %v, want authNone", res)
	}
}

// The same credentials sent many times at once are accepted once.
func TestDigestConcurrentReplay(t *testing.T) {
	d := newTestDigester("s", 0)
	req := d.request(t, d.nonce(), 1)
	var mu sync.Mutex
	got := map[authResult]int{}
	var wg sync.WaitGroup
	for range 16 {
		wg.Go(func() {
			res := d.verifyAlice(req)
			mu.Lock()
			got[res]++
			mu.Unlock()
		})
	}
	wg.Wait()
	if got[authOK] != 1 || got[authStale] != 15 {
		t.Fatalf("16 concurrent uses of one count: %v, want 1 authOK and 15 authStale", got)
	}
}

// The nonce-count table stays within its bound, challenges alone never
// grow it, and a nonce it forgot is not accepted again.
func TestDigestNonceTableBounded(t *testing.T) {
	const limit = 8
	d := newTestDigester("s", limit)
	for range 1000 {
		d.challenges(false)
	}
	if n := len(d.uses.last); n != 0 {
		t.Fatalf("challenges alone tracked %d nonces", n)
	}

	unused := d.nonce() // issued before all below, answered after they are forgotten
	var nonces []string
	for i := range 3 * limit {
		n := d.nonce()
		nonces = append(nonces, n)
		if res := d.verifyAlice(d.request(t, n, 1)); res != authOK {
			t.Fatalf("nonce %d: %v", i, res)
		}
		if len(d.uses.last) > limit || d.uses.n > limit || len(d.uses.ring) > limit {
			t.Fatalf("after %d nonces: %d tracked, ring %d/%d, limit %d", i+1, len(d.uses.last), d.uses.n, len(d.uses.ring), limit)
		}
	}
	// The first nonces were forgotten: a replay of them, or a first use of
	// a nonce issued before them, is stale, not new.
	if res := d.verifyAlice(d.request(t, nonces[0], 1)); res != authStale {
		t.Fatalf("forgotten nonce replayed: %v, want authStale", res)
	}
	if res := d.verifyAlice(d.request(t, nonces[0], 2)); res != authStale {
		t.Fatalf("forgotten nonce, higher count: %v, want authStale", res)
	}
	if res := d.verifyAlice(d.request(t, unused, 1)); res != authStale {
		t.Fatalf("unused nonce older than a forgotten one: %v, want authStale", res)
	}
	// The newest are still tracked by count.
	last := nonces[len(nonces)-1]
	if res := d.verifyAlice(d.request(t, last, 1)); res != authStale {
		t.Fatalf("tracked nonce replayed: %v, want authStale", res)
	}
	if res := d.verifyAlice(d.request(t, last, 2)); res != authOK {
		t.Fatalf("tracked nonce, next count: %v, want authOK", res)
	}

	// Past their lifetime they are dropped as soon as another is tracked.
	d.clk.Advance(nonceTTL + 2*time.Second)
	if res := d.verifyAlice(d.request(t, d.nonce(), 1)); res != authOK {
		t.Fatalf("new nonce after expiry: %v", res)
	}
	if n := len(d.uses.last); n != 1 {
		t.Fatalf("%d nonces tracked after the others expired, want 1", n)
	}
}
