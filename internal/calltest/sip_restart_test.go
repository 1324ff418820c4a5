package calltest_test

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// sipWait bounds what a restarted process must do: start (JetStream
// recovers its store) and act.
const sipWait = 30 * time.Second

// Kill the server process with SIGKILL while SIP phones are in calls with
// the bot, one it placed and one that called it: the process can send
// nothing, and the phones' RTP is gone with it. After a restart on the
// same data directory each phone gets a BYE on its dialog, so nobody is
// left in dead air, and the bot hears that each call ended with 410/9016
// (it could not be resumed). The crash is a real SIGKILL of a child
// process: platform.Node.Kill closes the SIP gateway, which hangs its calls
// up itself (BYE, 503/9007) and leaves nothing to resume.
func TestSIPCallsAfterSIGKILLReleasePhones(t *testing.T) {
	bin := switchboardBinary(t)
	addr := freeAddr(t)
	public := "http://" + addr
	hook := calltest.NewWebhook(t, public, calltest.BotID, calltest.Bot2ID)
	weak := calltest.NewWebhook(t, public, calltest.WeakBotID)
	dir := t.TempDir()
	cfg := calltest.Config(filepath.Join(dir, "data"), public, hook.URL, weak.URL)
	cfg.HTTP.Listen = addr
	sipAddr := freeSIPAddr(t)
	cfg.SIP.Listen = sipAddr.String()
	// The caller is a trunk, known by its address.
	cfg.SIP.Trunks = []config.Trunk{{Name: "pstn", Address: "127.0.0.2:5060", AllowFrom: []string{"127.0.0.2"}}}
	cfg.Log.Level = "info"
	// The phones send no RTP: the node must not hang up for that first.
	cfg.Media.InactivityTimeout = config.Duration(10 * time.Minute)
	cfgPath := writeConfig(t, dir, cfg)
	ctx, cancel := context.WithTimeout(context.Background(), 2*sipWait)
	defer cancel()

	proc := startProcess(t, bin, cfgPath, public)
	p := calltest.Attach(t, public, hook)

	// The bot calls Eve's phone, which answers.
	eve := newSIPPhone(t, "127.0.0.1", "eve")
	eve.register(t, sipAddr, calltest.EvePassword, cfg.SIP.Domain)
	out := p.CreateCall(calltest.EveID)
	outDlg := eve.nextInvite(t)
	if err := outDlg.RespondSDP(eve.sdp()); err != nil {
		t.Fatal(err)
	}

	// A caller on the trunk calls the bot, which answers.
	caller := newSIPPhone(t, "127.0.0.2", "+15557777")
	inDlg := caller.invite(t, sipAddr, calltest.BotNumber)
	answered := make(chan error, 1)
	go func() { answered <- inDlg.WaitAnswer(ctx, sipgo.AnswerOptions{}) }()
	var in graph.Call
	hook.Wait(t, "", sipWait, "the incoming call", func(ns []calltest.Notification) bool {
		for _, n := range ns {
			if n.ChangeType == graph.ChangeCreated && json.Unmarshal(n.ResourceData, &in) == nil &&
				in.State == graph.StateIncoming {
				return true
			}
		}
		return false
	})
	ans := map[string]any{"callbackUri": hook.URL, "acceptedModalities": []string{"audio"},
		"mediaConfig": map[string]any{"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}}
	if r := p.Bot("POST", calls+"/"+in.ID+"/answer", ans); r.StatusCode != 202 {
		t.Fatalf("answer: %s %s", r.Status, r.Body)
	}
	if err := <-answered; err != nil {
		t.Fatalf("caller: %v", err)
	}
	if err := inDlg.Ack(ctx); err != nil {
		t.Fatal(err)
	}

	// Established is notified once the record holding the confirmed
	// dialog is stored.
	hook.WaitState(t, out.ID, graph.StateEstablished)
	hook.WaitState(t, in.ID, graph.StateEstablished)
	if err := proc.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = proc.cmd.Wait()
	for _, ph := range []*sipPhone{eve, caller} {
		select {
		case bye := <-ph.byes:
			t.Fatalf("%s got a BYE from the killed process: %s", ph.user, bye.StartLine())
		default:
		}
	}

	startProcess(t, bin, cfgPath, public)
	for _, c := range []struct {
		ph     *sipPhone
		callID string
		dialog interface {
			Context() context.Context
		}
		sipCallID string
	}{
		{eve, out.ID, outDlg, callIDOf(outDlg.InviteRequest)},
		{caller, in.ID, inDlg, callIDOf(inDlg.InviteRequest)},
	} {
		bye := c.ph.nextBye(t)
		if callIDOf(bye) != c.sipCallID {
			t.Errorf("%s: BYE for Call-ID %s, want the call's %s", c.ph.user, callIDOf(bye), c.sipCallID)
		}
		select {
		case <-c.dialog.Context().Done(): // the BYE matched the phone's dialog and was answered 200
		case <-time.After(sipWait):
			t.Fatalf("%s: the phone's dialog did not end", c.ph.user)
		}
		var ended graph.Call
		hook.Wait(t, c.callID, sipWait, "terminated", func(ns []calltest.Notification) bool {
			for _, n := range ns {
				if n.ResourceURL == "/communications/calls/"+c.callID && json.Unmarshal(n.ResourceData, &ended) == nil &&
					ended.State == graph.StateTerminated {
					return true
				}
			}
			return false
		})
		if ri := ended.ResultInfo; ri == nil || ri.Code != 410 || ri.Subcode != 9016 {
			t.Fatalf("%s: terminated with %+v, want 410/9016", c.ph.user, ended.ResultInfo)
		}
	}
}

// freeSIPAddr returns a loopback address whose port nobody listens on
// over UDP nor TCP right now (SIP takes both).
func freeSIPAddr(t *testing.T) netip.AddrPort {
	t.Helper()
	for range 20 {
		udp, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		a := udp.LocalAddr().(*net.UDPAddr).AddrPort()
		tcp, err := net.Listen("tcp", a.String())
		udp.Close()
		if err == nil {
			tcp.Close()
			return a
		}
	}
	t.Fatal("no port free over both UDP and TCP")
	return netip.AddrPort{}
}

func callIDOf(r *sip.Request) string {
	if h := r.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

// sipPhone is a SIP phone in the test process: a sipgo user agent on a
// loopback port of its own that registers, answers INVITEs with an SDP
// naming an RTP socket it never reads, and reports the BYEs it gets.
type sipPhone struct {
	ip, user string
	addr     netip.AddrPort
	rtp      *net.UDPConn
	cli      *sipgo.Client
	servers  *sipgo.DialogServerCache
	clients  *sipgo.DialogClientCache
	invites  chan *sipgo.DialogServerSession
	byes     chan *sip.Request
}

func newSIPPhone(t *testing.T, ip, user string) *sipPhone {
	t.Helper()
	ph := &sipPhone{ip: ip, user: user, invites: make(chan *sipgo.DialogServerSession, 4), byes: make(chan *sip.Request, 4)}
	ua, err := sipgo.NewUA(sipgo.WithUserAgentHostname(ip))
	if err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 0)))
	if err != nil {
		t.Fatal(err)
	}
	ph.addr = udp.LocalAddr().(*net.UDPAddr).AddrPort()
	if ph.rtp, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 0))); err != nil {
		t.Fatal(err)
	}
	srv, _ := sipgo.NewServer(ua)
	ph.cli, _ = sipgo.NewClient(ua, sipgo.WithClientHostname(ip), sipgo.WithClientPort(int(ph.addr.Port())),
		sipgo.WithClientConnectionAddr(ph.addr.String()))
	ph.servers = sipgo.NewDialogServerCache(ph.cli, sip.ContactHeader{Address: ph.contact()})
	ph.clients = sipgo.NewDialogClientCache(ph.cli, sip.ContactHeader{Address: ph.contact()})
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		dlg, err := ph.servers.ReadInvite(req, tx)
		if err != nil {
			t.Errorf("phone: read INVITE: %v", err)
			return
		}
		ph.invites <- dlg
		<-tx.Done()
	})
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) { _ = ph.servers.ReadAck(req, tx) })
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if err := ph.servers.ReadBye(req, tx); err != nil {
			if err := ph.clients.ReadBye(req, tx); err != nil {
				_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
			}
		}
		ph.byes <- req
	})
	// The client sends from the listener, which sipgo knows of only once
	// ServeUDP reads from it.
	ready := &firstRead{PacketConn: udp, ready: make(chan struct{})}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeUDP(ready) }()
	<-ready.ready
	t.Cleanup(func() {
		ua.Close()
		udp.Close()
		ph.rtp.Close()
		<-done
	})
	return ph
}

// firstRead tells when its first read began.
type firstRead struct {
	net.PacketConn
	once  sync.Once
	ready chan struct{}
}

func (c *firstRead) ReadFrom(b []byte) (int, net.Addr, error) {
	c.once.Do(func() { close(c.ready) })
	return c.PacketConn.ReadFrom(b)
}

func (ph *sipPhone) contact() sip.Uri {
	return sip.Uri{Scheme: "sip", User: ph.user, Host: ph.ip, Port: int(ph.addr.Port())}
}

// register binds the phone's contact for an hour, answering the digest
// challenge.
func (ph *sipPhone) register(t *testing.T, registrar netip.AddrPort, password, domain string) {
	t.Helper()
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: registrar.Addr().String(), Port: int(registrar.Port())})
	aor := sip.Uri{Scheme: "sip", User: ph.user, Host: domain}
	req.AppendHeader(&sip.ToHeader{Address: aor})
	from := &sip.FromHeader{Address: aor, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ContactHeader{Address: ph.contact()})
	req.AppendHeader(sip.NewHeader("Expires", "3600"))
	ctx, cancel := context.WithTimeout(context.Background(), sipWait)
	defer cancel()
	res, err := ph.cli.Do(ctx, req)
	if err == nil && res.StatusCode == 401 {
		res, err = ph.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: ph.user, Password: password})
	}
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("phone: register: %v %v", res, err)
	}
}

// invite calls num at the node with an offer; WaitAnswer is the caller's.
func (ph *sipPhone) invite(t *testing.T, node netip.AddrPort, num string) *sipgo.DialogClientSession {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sipWait)
	defer cancel()
	to := sip.Uri{Scheme: "sip", User: num, Host: node.Addr().String(), Port: int(node.Port())}
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: ph.user, Host: ph.ip}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	s, err := ph.clients.Invite(ctx, to, ph.sdp(), from, sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		t.Fatalf("phone: INVITE: %v", err)
	}
	return s
}

// sdp offers or answers PCMU at the phone's RTP socket.
func (ph *sipPhone) sdp() []byte {
	return []byte("v=0\r\no=phone 1 1 IN IP4 " + ph.ip + "\r\ns=phone\r\nc=IN IP4 " + ph.ip + "\r\nt=0 0\r\n" +
		"m=audio " + strconv.Itoa(ph.rtp.LocalAddr().(*net.UDPAddr).Port) + " RTP/AVP 0\r\n" +
		"a=rtpmap:0 PCMU/8000\r\na=sendrecv\r\n")
}

func (ph *sipPhone) nextInvite(t *testing.T) *sipgo.DialogServerSession {
	t.Helper()
	select {
	case dlg := <-ph.invites:
		return dlg
	case <-time.After(sipWait):
		t.Fatal("phone: no INVITE")
		return nil
	}
}

func (ph *sipPhone) nextBye(t *testing.T) *sip.Request {
	t.Helper()
	select {
	case bye := <-ph.byes:
		return bye
	case <-time.After(sipWait):
		t.Fatal("phone: no BYE")
		return nil
	}
}
