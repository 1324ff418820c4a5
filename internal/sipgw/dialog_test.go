package sipgw

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// established places a call from caller to the bot and answers it.
func (e *env) established(t *testing.T, caller *peer, num string) (*sipgo.DialogClientSession, *fakeCall) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s := caller.invite(e.gw.Addr(), num, caller.g711())
	_, done := waitAnswer(t, ctx, s, sipgo.AnswerOptions{})
	c := e.nextCall()
	if err := c.leg.Answer(); err != nil {
		t.Fatal(err)
	}
	if err := result(t, done); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	c.events.expect(t, callctl.LegAnswered)
	return s, c
}

// inDialog sends a request in the caller's dialog and returns the final
// response.
func (p *peer) inDialog(t *testing.T, s *sipgo.DialogClientSession, method sip.RequestMethod, ctype string, body []byte) *sip.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	req := sip.NewRequest(method, *s.InviteResponse.Contact().Address.Clone())
	req.Laddr = p.laddr()
	if ctype != "" {
		req.AppendHeader(sip.NewHeader("Content-Type", ctype))
	}
	req.SetBody(body)
	res, err := s.Do(ctx, req)
	if err != nil {
		t.Fatalf("%s: %v", method, err)
	}
	if method == sip.INVITE && res.IsSuccess() {
		ack := sip.NewRequest(sip.ACK, *s.InviteResponse.Contact().Address.Clone())
		ack.Laddr = p.laddr()
		if err := s.WriteRequest(ack); err != nil {
			t.Fatal(err)
		}
	}
	return res
}

func TestInDialogRequests(t *testing.T) {
	caller := newPeer(t, "127.0.0.2", "+15557777")
	e := newEnv(t, envOptions{trunk: netip.AddrPortFrom(caller.addr.Addr(), 5)})
	s, c := e.established(t, caller, botNum)

	// Hold: a re-INVITE offering sendonly is answered recvonly, same port.
	hold := strings.Replace(string(caller.g711()), "a=sendrecv", "a=sendonly", 1)
	res := caller.inDialog(t, s, sip.INVITE, "application/sdp", []byte(hold))
	if res.StatusCode != 200 || !strings.Contains(string(res.Body()), "a=recvonly") ||
		!strings.Contains(string(res.Body()), "m=audio "+strconv.Itoa(int(c.leg.Media().LocalAddr().Port()))) {
		t.Fatalf("hold: %d\n%s", res.StatusCode, res.Body())
	}
	// Resume, from another port: the media follows.
	rtp2, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.2")})
	if err != nil {
		t.Fatal(err)
	}
	defer rtp2.Close()
	moved := strings.Replace(string(caller.g711()), "m=audio "+strconv.Itoa(caller.rtp.LocalAddr().(*net.UDPAddr).Port),
		"m=audio "+strconv.Itoa(rtp2.LocalAddr().(*net.UDPAddr).Port), 1)
	if res := caller.inDialog(t, s, sip.INVITE, "application/sdp", []byte(moved)); res.StatusCode != 200 || !strings.Contains(string(res.Body()), "a=sendrecv") {
		t.Fatalf("resume: %d\n%s", res.StatusCode, res.Body())
	}
	if err := c.leg.SendTones([]graph.Tone{graph.ToneStar}, 100*time.Millisecond, func() {}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	_ = rtp2.SetReadDeadline(time.Now().Add(wait))
	if n, err := rtp2.Read(buf); err != nil || n < 16 || buf[1]&0x7f != 101 {
		t.Fatalf("tone after the re-INVITE: %d bytes, %v", n, err)
	}
	// A re-INVITE with only G.729 is refused; the call goes on.
	if res := caller.inDialog(t, s, sip.INVITE, "application/sdp", caller.sdp("18", "18 G729/8000")); res.StatusCode != 488 {
		t.Fatalf("re-INVITE without a usable codec: %d", res.StatusCode)
	}

	// A session refresh by UPDATE without SDP, OPTIONS in the dialog.
	if res := caller.inDialog(t, s, sip.UPDATE, "", nil); res.StatusCode != 200 {
		t.Fatalf("UPDATE: %d", res.StatusCode)
	}
	if res := caller.inDialog(t, s, sip.OPTIONS, "", nil); res.StatusCode != 200 {
		t.Fatalf("OPTIONS: %d", res.StatusCode)
	}
	// A key as SIP INFO.
	if res := caller.inDialog(t, s, sip.INFO, "application/dtmf-relay", []byte("Signal=7\r\nDuration=160\r\n")); res.StatusCode != 200 {
		t.Fatalf("INFO: %d", res.StatusCode)
	}
	if ev := c.events.expect(t, callctl.LegTone); ev.Tone != graph.Tone("tone7") {
		t.Fatalf("INFO tone %q", ev.Tone)
	}
	// Methods the gateway does not do in a dialog.
	if res := caller.inDialog(t, s, sip.MESSAGE, "text/plain", []byte("hi")); res.StatusCode != 405 || res.GetHeader("Allow") == nil {
		t.Fatalf("MESSAGE: %d", res.StatusCode)
	}
	c.events.none(t)

	// A BYE for a dialog that does not exist.
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	bye := sip.NewRequest(sip.BYE, sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: int(e.gw.Addr().Port())})
	bye.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: "x", Host: "sb.test"}, Params: sip.HeaderParams{{K: "tag", V: "nope"}}})
	if res, err := caller.cli.Do(ctx, bye); err != nil || res.StatusCode != 481 {
		t.Fatalf("BYE outside any dialog: %v %v", res, err)
	}
}

func TestInactivityEndsCall(t *testing.T) {
	caller := newPeer(t, "127.0.0.2", "+15557777")
	e := newEnv(t, envOptions{trunk: netip.AddrPortFrom(caller.addr.Addr(), 5), inactivity: 200 * time.Millisecond})
	_, c := e.established(t, caller, botNum)
	// The phone sends no RTP: after media.inactivityTimeout the call ends
	// and the phone gets a BYE.
	c.events.ended(t, errs.MediaFailure)
	caller.nextBye()
}

func TestCloseEndsLegs(t *testing.T) {
	caller := newPeer(t, "127.0.0.2", "+15557777")
	e := newEnv(t, envOptions{trunk: netip.AddrPortFrom(caller.addr.Addr(), 5)})
	p := newPeer(t, "127.0.0.1", "alice")
	p.register(e.gw.Addr(), "alice", alicePw, 600)

	_, up := e.established(t, caller, botNum) // established
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	s := caller.invite(e.gw.Addr(), botNum, caller.g711()) // ringing at the bot
	prov, done := waitAnswer(t, ctx, s, sipgo.AnswerOptions{})
	pending := e.nextCall()
	expectStatus(t, prov, 180)
	_, out := e.dial(alice) // ringing at alice
	pi := p.nextInvite()
	p.ring(pi)
	out.expect(t, callctl.LegRinging)

	e.gw.Close()
	if st := finalStatus(t, result(t, done)); st != 503 {
		t.Fatalf("pending incoming call: %d, want 503", st)
	}
	caller.nextBye()
	<-pi.dlg.Context().Done() // cancelled
	pi.finish()
	for _, ev := range []*events{up.events, pending.events, out} {
		ev.ended(t, errs.ServerShutdown)
	}
	// New INVITEs are refused once closed: nothing listens.
	if _, err := e.gw.Dial("c", alice, func(callctl.LegEvent) {}); err == nil {
		t.Fatal("Dial after Close succeeded")
	}
}

func TestTCP(t *testing.T) {
	caller := newPeer(t, "127.0.0.2", "+15557777")
	e := newEnv(t, envOptions{trunk: netip.AddrPortFrom(caller.addr.Addr(), 5)})
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()

	// A trunk calls over TCP; the bot answers and hangs up: the BYE goes
	// back on the caller's connection.
	to := sip.Uri{Scheme: "sip", User: botNum, Host: "127.0.0.1", Port: int(e.gw.Addr().Port()),
		UriParams: sip.HeaderParams{{K: "transport", V: "tcp"}}}
	inv := sip.NewRequest(sip.INVITE, to)
	inv.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	inv.SetBody(caller.g711())
	inv.SetTransport("TCP")
	inv.Laddr = sip.Addr{IP: net.ParseIP(caller.ip)} // from the trunk's address, any port
	s, err := caller.tcpClients.WriteInvite(ctx, inv)
	if err != nil {
		t.Fatal(err)
	}
	_, done := waitAnswer(t, ctx, s, sipgo.AnswerOptions{})
	c := e.nextCall()
	if c.in.Caller.Phone == nil {
		t.Fatalf("caller over TCP from the trunk's address: %+v", c.in.Caller)
	}
	if err := c.leg.Answer(); err != nil {
		t.Fatal(err)
	}
	if err := result(t, done); err != nil {
		t.Fatal(err)
	}
	if err := s.Ack(ctx); err != nil {
		t.Fatal(err)
	}
	c.events.expect(t, callctl.LegAnswered)
	c.leg.HangUp(errs.EndedByBot)
	if bye := caller.nextBye(); !strings.EqualFold(bye.Transport(), "TCP") {
		t.Fatalf("BYE over %s", bye.Transport())
	}

	// A phone registered over TCP is called over TCP.
	p := newPeer(t, "127.0.0.1", "alice")
	reg := registerRequest(e, "alice")
	reg.Recipient.UriParams = sip.HeaderParams{{K: "transport", V: "tcp"}}
	reg.RemoveHeader("Contact")
	reg.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "127.0.0.1", Port: int(p.tcpAddr.Port()),
		UriParams: sip.HeaderParams{{K: "transport", V: "tcp"}}}})
	res, err := p.tcpCli.Do(ctx, reg)
	if err == nil && res.StatusCode == 401 {
		res, err = p.tcpCli.DoDigestAuth(ctx, reg, res, sipgo.DigestAuth{Username: "alice", Password: alicePw})
	}
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("REGISTER over TCP: %v %v", res, err)
	}
	if bs := e.bindings("alice"); len(bs) != 1 || bs[0].Transport != "TCP" {
		t.Fatalf("bindings %+v", bs)
	}
	l, ev := e.dial(alice)
	pi := p.nextInvite()
	if !strings.EqualFold(pi.req.Transport(), "TCP") {
		t.Fatalf("INVITE over %s", pi.req.Transport())
	}
	p.ring(pi)
	ev.expect(t, callctl.LegRinging)
	p.answer(pi)
	ev.expect(t, callctl.LegAnswered)
	l.HangUp(errs.EndedByBot)
	p.nextBye()
}

func TestTLS(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := selfSigned(t, dir)
	e := newEnv(t, envOptions{tlsCert: certFile, tlsKey: keyFile})
	if e.gw.TLSPort() == 0 {
		t.Fatal("no TLS listener")
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgenTLSConfig(&tls.Config{InsecureSkipVerify: true}))
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	cli, _ := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	u := sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: e.gw.TLSPort(), UriParams: sip.HeaderParams{{K: "transport", V: "tls"}}}
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	res, err := cli.Do(ctx, sip.NewRequest(sip.OPTIONS, u))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("OPTIONS over TLS: %v %v", res, err)
	}
}

func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sb.test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"sb.test"}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}
