package cluster_test

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// phone is a SIP phone on sipgo: one UDP socket it registers from and
// takes calls on, as a phone behind a NAT does (Kamailio's Path sends
// calls to where the REGISTER came from). It answers every INVITE.
type phone struct {
	t       *testing.T
	ua      *sipgo.UserAgent
	cli     *sipgo.Client
	addr    netip.AddrPort
	rtp     *net.UDPConn
	dialogs *sipgo.DialogServerCache
	calls   *sipgo.DialogClientCache
	invites chan *sip.Request
	byes    chan *sip.Request
}

func startPhone(t *testing.T, ip netip.Addr, user string) *phone {
	t.Helper()
	p := &phone{t: t, invites: make(chan *sip.Request, 4), byes: make(chan *sip.Request, 4)}
	var err error
	if p.ua, err = sipgo.NewUA(sipgo.WithUserAgentHostname(ip.String())); err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
	if err != nil {
		t.Fatal(err)
	}
	p.addr = udp.LocalAddr().(*net.UDPAddr).AddrPort()
	if p.rtp, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0))); err != nil {
		t.Fatal(err)
	}
	srv, _ := sipgo.NewServer(p.ua)
	p.cli, _ = sipgo.NewClient(p.ua, sipgo.WithClientHostname(ip.String()), sipgo.WithClientPort(int(p.addr.Port())),
		sipgo.WithClientConnectionAddr(p.addr.String()))
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: ip.String(), Port: int(p.addr.Port())}}
	p.dialogs = sipgo.NewDialogServerCache(p.cli, contact)
	p.calls = sipgo.NewDialogClientCache(p.cli, contact)
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		d, err := p.dialogs.ReadInvite(req, tx)
		if err != nil {
			t.Errorf("phone: read INVITE: %v", err)
			return
		}
		p.invites <- req
		sdp := "v=0\r\no=phone 1 1 IN IP4 " + ip.String() + "\r\ns=phone\r\nc=IN IP4 " + ip.String() + "\r\nt=0 0\r\n" +
			"m=audio " + strconv.Itoa(p.rtp.LocalAddr().(*net.UDPAddr).Port) + " RTP/AVP 0 101\r\n" +
			"a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
		if err := d.RespondSDP([]byte(sdp)); err != nil {
			t.Errorf("phone: answer: %v", err)
		}
		<-tx.Done()
	})
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) { _ = p.dialogs.ReadAck(req, tx) })
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if err := p.dialogs.ReadBye(req, tx); err != nil {
			if err := p.calls.ReadBye(req, tx); err != nil {
				_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "No dialog", nil))
			}
		}
		p.byes <- req
	})
	var wg sync.WaitGroup
	wg.Add(1)
	served := &servedConn{PacketConn: udp, reading: make(chan struct{})}
	go func() { defer wg.Done(); _ = srv.ServeUDP(served) }()
	<-served.reading // sipgo knows the socket: requests leave from it
	t.Cleanup(func() {
		p.ua.Close()
		udp.Close()
		p.rtp.Close()
		wg.Wait()
	})
	return p
}

// register registers the phone through registrar (Kamailio), answering
// the digest challenge, and returns the final response.
func (p *phone) register(registrar netip.AddrPort, domain, user, password string) *sip.Response {
	p.t.Helper()
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: registrar.Addr().String(), Port: int(registrar.Port())})
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: domain}})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: domain}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: p.addr.Addr().String(), Port: int(p.addr.Port())}})
	req.AppendHeader(sip.NewHeader("Expires", "300"))
	req.AppendHeader(sip.NewHeader("Supported", "path"))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	res, err := p.cli.Do(ctx, req)
	if err == nil && res.StatusCode == 401 {
		res, err = p.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: user, Password: password})
	}
	if err != nil {
		p.t.Fatalf("phone: register: %v", err)
	}
	return res
}

// call calls number through proxy (Kamailio), answering the digest
// challenge as user, and returns the answered dialog once acknowledged.
func (p *phone) call(proxy netip.AddrPort, domain, number, user, password string) *sipgo.DialogClientSession {
	p.t.Helper()
	ip := p.addr.Addr().String()
	sdp := "v=0\r\no=phone 2 2 IN IP4 " + ip + "\r\ns=phone\r\nc=IN IP4 " + ip + "\r\nt=0 0\r\n" +
		"m=audio " + strconv.Itoa(p.rtp.LocalAddr().(*net.UDPAddr).Port) + " RTP/AVP 0 101\r\n" +
		"a=rtpmap:0 PCMU/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: domain}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := p.calls.Invite(ctx, sip.Uri{Scheme: "sip", User: number, Host: proxy.Addr().String(), Port: int(proxy.Port())},
		[]byte(sdp), from, sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		p.t.Fatalf("phone: INVITE: %v", err)
	}
	if err := s.WaitAnswer(ctx, sipgo.AnswerOptions{Username: user, Password: password}); err != nil {
		p.t.Fatalf("phone: call %s: %v", number, err)
	}
	if err := s.Ack(ctx); err != nil {
		p.t.Fatalf("phone: ACK: %v", err)
	}
	return s
}

func (p *phone) nextInvite(within time.Duration) *sip.Request {
	p.t.Helper()
	select {
	case r := <-p.invites:
		return r
	case <-time.After(within):
		p.t.Fatal("phone: no INVITE")
		return nil
	}
}

func (p *phone) nextBye(within time.Duration) *sip.Request {
	p.t.Helper()
	select {
	case r := <-p.byes:
		return r
	case <-time.After(within):
		p.t.Fatal("phone: no BYE")
		return nil
	}
}

// servedConn tells when sipgo first reads the socket, by which time its
// transport layer holds it for the client to send from.
type servedConn struct {
	net.PacketConn
	once    sync.Once
	reading chan struct{}
}

func (c *servedConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.once.Do(func() { close(c.reading) })
	return c.PacketConn.ReadFrom(b)
}
