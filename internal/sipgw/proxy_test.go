package sipgw

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/errs"
)

// Behind a proxy, a request's origin is the address the proxy received it
// from (the Via below its own); a proxy's own request is its own origin;
// nobody else's Vias are believed.
func TestOriginBehindProxy(t *testing.T) {
	cfg := config.Default()
	cfg.SIP.Proxies = []string{"127.0.0.10", "10.1.0.0/16"}
	cfg.SIP.Trunks = []config.Trunk{{Name: "pstn", Address: "127.0.0.20:5060", AllowFrom: []string{"127.0.0.20"}}}
	g := &Gateway{cfg: &cfg, trunks: []*trunk{{name: "pstn", allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.20/32")}}}}
	req := func(source string, vias ...string) *sip.Request {
		r := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", User: "+15550199", Host: "127.0.0.1"})
		for _, v := range vias {
			h := &sip.ViaHeader{}
			if err := parseVia(v, h); err != nil {
				t.Fatalf("via %q: %v", v, err)
			}
			r.AppendHeader(h)
		}
		r.SetSource(source)
		return r
	}
	for _, c := range []struct {
		name    string
		r       *sip.Request
		want    string
		proxied bool
		trunk   bool
	}{
		{"direct", req("127.0.0.5:5062", "SIP/2.0/UDP 127.0.0.5:5062;branch=z9hG4bKa"), "127.0.0.5", false, false},
		{"direct trunk", req("127.0.0.20:5060", "SIP/2.0/UDP 127.0.0.20:5060;branch=z9hG4bKa"), "127.0.0.20", false, true},
		{"direct, Vias not believed", req("127.0.0.5:5062", "SIP/2.0/UDP 127.0.0.5:5062;branch=z9hG4bKa",
			"SIP/2.0/UDP 127.0.0.20:5060;branch=z9hG4bKb"), "127.0.0.5", false, false},
		{"the proxy's own OPTIONS", req("127.0.0.10:5060", "SIP/2.0/UDP 127.0.0.10;branch=z9hG4bKa"), "127.0.0.10", true, false},
		{"a trunk through the proxy", req("127.0.0.10:5060", "SIP/2.0/UDP 127.0.0.10;branch=z9hG4bKa",
			"SIP/2.0/UDP 127.0.0.20:5060;branch=z9hG4bKb;rport=5060"), "127.0.0.20", true, true},
		{"a phone behind NAT through the proxy", req("10.1.2.3:5060", "SIP/2.0/UDP 10.1.2.3;branch=z9hG4bKa",
			"SIP/2.0/UDP 192.168.1.9:5060;branch=z9hG4bKb;received=127.0.0.5;rport=40000"), "127.0.0.5", true, false},
	} {
		got, proxied, ok := g.origin(c.r)
		if !ok || got.String() != c.want || proxied != c.proxied {
			t.Errorf("%s: origin %s proxied %v (ok %v), want %s proxied %v", c.name, got, proxied, ok, c.want, c.proxied)
		}
		if tr := g.callerTrunk(c.r); (tr != nil) != c.trunk {
			t.Errorf("%s: trunk %v, want %v", c.name, tr != nil, c.trunk)
		}
	}
}

func parseVia(s string, h *sip.ViaHeader) error {
	msg, err := sip.ParseMessage([]byte("OPTIONS sip:x@127.0.0.1 SIP/2.0\r\nVia: " + s + "\r\nContent-Length: 0\r\n\r\n"))
	if err != nil {
		return err
	}
	*h = *msg.(*sip.Request).Via()
	return nil
}

// A contact registered through a proxy that added a Path (RFC 3327) is
// called through that proxy: the INVITE goes to the Path's first hop with
// the Path as its Route set and the contact as its Request-URI; the 200
// OK of the REGISTER shows the Path to a UA that supports it.
func TestDialContactRegisteredWithPath(t *testing.T) {
	e := newEnv(t, envOptions{})
	p := newPeer(t, "127.0.0.1", "alice")
	proxy, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	path := "<sip:127.0.0.1:" + strconv.Itoa(proxy.LocalAddr().(*net.UDPAddr).Port) + ";lr;received=sip:127.0.0.1:" +
		strconv.Itoa(int(p.addr.Port())) + ">"

	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: e.gw.Addr().Addr().String(), Port: int(e.gw.Addr().Port())})
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "sb.test"}})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: "sb.test"}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "alice", Host: p.ip, Port: int(p.addr.Port())}})
	req.AppendHeader(sip.NewHeader("Expires", "600"))
	req.AppendHeader(sip.NewHeader("Supported", "path, outbound"))
	req.AppendHeader(sip.NewHeader("Path", path))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	res, err := p.cli.Do(ctx, req)
	if err == nil && res.StatusCode == 401 {
		res, err = p.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: "alice", Password: alicePw})
	}
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("register: %v %v", res, err)
	}
	if h := res.GetHeader("Path"); h == nil || h.Value() != path {
		t.Errorf("200 shows Path %v, want %s", h, path)
	}
	if bs := e.bindings("alice"); len(bs) != 1 || len(bs[0].Path) != 1 || bs[0].Path[0] != path {
		t.Fatalf("bindings %+v, want one with the Path", bs)
	}

	l, _ := e.dial(alice)
	defer l.HangUp(errs.EndedByBot)
	buf := make([]byte, 8192)
	_ = proxy.SetReadDeadline(time.Now().Add(wait))
	n, err := proxy.Read(buf)
	if err != nil {
		t.Fatalf("the proxy got no INVITE: %v (the phone got it directly?)", err)
	}
	msg, err := sip.ParseMessage(buf[:n])
	if err != nil {
		t.Fatal(err)
	}
	inv, ok := msg.(*sip.Request)
	if !ok || inv.Method != sip.INVITE {
		t.Fatalf("the proxy got %s", buf[:n])
	}
	if inv.Recipient.User != "alice" || inv.Recipient.Port != int(p.addr.Port()) {
		t.Errorf("Request-URI %s, want the registered contact", inv.Recipient.String())
	}
	if r := inv.GetHeader("Route"); r == nil || !strings.Contains(r.Value(), "received=sip:127.0.0.1:"+strconv.Itoa(int(p.addr.Port()))) {
		t.Errorf("Route %v, want the Path %s", r, path)
	}
	select {
	case pi := <-p.invites:
		t.Errorf("the phone got the INVITE directly: %s", pi.req.StartLine())
	default:
	}
}
