package sipgw

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

func (e *env) bindings(user string) []binding {
	e.t.Helper()
	bs, err := e.gw.bindings(context.Background(), user)
	if err != nil {
		e.t.Fatal(err)
	}
	return bs
}

func TestRegister(t *testing.T) {
	e := newEnv(t, envOptions{})
	p := newPeer(t, "127.0.0.1", "alice")

	res := p.register(e.gw.Addr(), "alice", alicePw, 7200)
	if res.StatusCode != 200 {
		t.Fatalf("register: %d %s", res.StatusCode, res.Reason)
	}
	// Expires is capped at sip.registerExpiry (1h) and echoed per contact.
	c := res.Contact()
	if c == nil || c.Address.Port != int(p.addr.Port()) {
		t.Fatalf("200 lists contact %v, want the peer's", c)
	}
	if exp, _ := c.Params.Get("expires"); exp != "3600" {
		t.Errorf("expires=%s, want 3600 (capped)", exp)
	}
	bs := e.bindings("alice")
	if len(bs) != 1 || !strings.Contains(bs[0].Contact, strconv.Itoa(int(p.addr.Port()))) || bs[0].Transport != "UDP" {
		t.Fatalf("bindings %+v", bs)
	}

	// A second contact of the same user is kept beside the first.
	p2 := newPeer(t, "127.0.0.1", "alice")
	if res := p2.register(e.gw.Addr(), "alice", alicePw, 600); res.StatusCode != 200 || len(res.GetHeaders("Contact")) != 2 {
		t.Fatalf("second contact: %d with %d contacts", res.StatusCode, len(res.GetHeaders("Contact")))
	}

	// Registrations expire.
	e.clk.Advance(601 * time.Second)
	if bs := e.bindings("alice"); len(bs) != 1 {
		t.Fatalf("after 601 s: %d bindings, want 1", len(bs))
	}

	// Expires: 0 removes the contact.
	if res := p.register(e.gw.Addr(), "alice", alicePw, 0); res.StatusCode != 200 {
		t.Fatalf("unregister: %d", res.StatusCode)
	}
	if bs := e.bindings("alice"); len(bs) != 0 {
		t.Fatalf("after unregister: %+v", bs)
	}
}

func TestRegisterWildcardUnregister(t *testing.T) {
	e := newEnv(t, envOptions{})
	p := newPeer(t, "127.0.0.1", "alice")
	p2 := newPeer(t, "127.0.0.1", "alice")
	p.register(e.gw.Addr(), "alice", alicePw, 600)
	p2.register(e.gw.Addr(), "alice", alicePw, 600)
	if n := len(e.bindings("alice")); n != 2 {
		t.Fatalf("%d bindings", n)
	}

	req := registerRequest(e, "alice")
	req.RemoveHeader("Contact")
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Wildcard: true}})
	req.RemoveHeader("Expires")
	req.AppendHeader(sip.NewHeader("Expires", "0"))
	if res := doAuth(t, p, req, "alice", alicePw); res.StatusCode != 200 {
		t.Fatalf("Contact: *: %d", res.StatusCode)
	}
	if n := len(e.bindings("alice")); n != 0 {
		t.Fatalf("%d bindings after Contact: *", n)
	}
}

func TestRegisterRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	p := newPeer(t, "127.0.0.1", "alice")

	// A wrong password and an unknown user get the same answer.
	wrong := p.register(e.gw.Addr(), "alice", "nope", 600)
	unknown := p.register(e.gw.Addr(), "mallory", "nope", 600)
	if wrong.StatusCode != 403 || unknown.StatusCode != 403 || wrong.Reason != unknown.Reason {
		t.Fatalf("wrong password: %d %q; unknown user: %d %q", wrong.StatusCode, wrong.Reason, unknown.StatusCode, unknown.Reason)
	}
	if len(e.bindings("alice")) != 0 {
		t.Fatal("a refused REGISTER left a binding")
	}

	// Credentials of one user do not register another.
	req := registerRequest(e, "bob")
	if res := doAuth(t, p, req, "alice", alicePw); res.StatusCode != 403 {
		t.Fatalf("alice registering bob: %d", res.StatusCode)
	}

	// Too short an expiry.
	if res := p.register(e.gw.Addr(), "alice", alicePw, 10); res.StatusCode != 423 || res.GetHeader("Min-Expires") == nil {
		t.Fatalf("Expires: 10: %d", res.StatusCode)
	}
}

func TestRegisterDigestSHA256AndStaleNonce(t *testing.T) {
	e := newEnv(t, envOptions{})
	p := newPeer(t, "127.0.0.1", "alice")
	ctx := context.Background()

	req := registerRequest(e, "alice")
	res, err := p.cli.Do(ctx, req)
	if err != nil || res.StatusCode != 401 {
		t.Fatalf("first REGISTER: %v %v", res, err)
	}
	// One MD5 challenge (libre-based UAs fail on a SHA-256 one); a UA set
	// up for SHA-256 answers the same nonce with it.
	hs := res.GetHeaders("WWW-Authenticate")
	if len(hs) != 1 {
		t.Fatalf("challenges %v", hs)
	}
	sha, err := digest.ParseChallenge(hs[0].Value())
	if err != nil || sha.Realm != "sb.test" || sha.Algorithm != "MD5" {
		t.Fatalf("challenge %v (%v)", hs[0], err)
	}
	sha.Algorithm = "SHA-256"
	authorize := func(c *digest.Challenge, password string) *sip.Response {
		cred, err := digest.Digest(c, digest.Options{Method: "REGISTER", URI: req.Recipient.Addr(), Username: "alice", Password: password, Count: 1})
		if err != nil {
			t.Fatal(err)
		}
		req.RemoveHeader("Authorization")
		req.AppendHeader(sip.NewHeader("Authorization", cred.String()))
		req.CSeq().SeqNo++
		req.RemoveHeader("Via")
		res, err := p.cli.Do(ctx, req, sipgo.ClientRequestAddVia)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	if res := authorize(sha, alicePw); res.StatusCode != 200 {
		t.Fatalf("SHA-256 digest: %d", res.StatusCode)
	}

	// Six minutes later the nonce is stale: a new challenge says so.
	e.clk.Advance(6 * time.Minute)
	res = authorize(sha, alicePw)
	if res.StatusCode != 401 {
		t.Fatalf("stale nonce: %d", res.StatusCode)
	}
	c, _ := digest.ParseChallenge(res.GetHeader("WWW-Authenticate").Value())
	if !c.Stale {
		t.Fatalf("challenge after a stale nonce lacks stale=true: %s", res.GetHeader("WWW-Authenticate").Value())
	}
	// A stale nonce with a wrong password is refused like any wrong password.
	if res := authorize(sha, "nope"); res.StatusCode != 403 {
		t.Fatalf("stale nonce, wrong password: %d", res.StatusCode)
	}
}

func registerRequest(e *env, user string) *sip.Request {
	gw := e.gw.Addr()
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: gw.Addr().String(), Port: int(gw.Port())})
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "sb.test"}})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "sb.test"}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: "127.0.0.1", Port: 5999}})
	req.AppendHeader(sip.NewHeader("Expires", "600"))
	return req
}

func doAuth(t *testing.T, p *peer, req *sip.Request, user, password string) *sip.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	res, err := p.cli.Do(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode == 401 {
		if res, err = p.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: user, Password: password}); err != nil {
			t.Fatal(err)
		}
	}
	return res
}
