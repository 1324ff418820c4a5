package sipgw

import (
	"context"
	"testing"

	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"

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
