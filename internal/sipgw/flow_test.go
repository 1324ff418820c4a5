package sipgw

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/emiago/sipgo/sip"
)

// A flow token names a connection of the node that issued it, and nothing
// else: altered, or issued for another address, it does not check.
func TestFlowTokens(t *testing.T) {
	e := newEnv(t, envOptions{})
	tok := e.gw.flowToken("127.0.0.1:40000")
	if addr, ok := e.gw.checkFlow(tok); !ok || addr != "127.0.0.1:40000" {
		t.Fatalf("checkFlow(flowToken) = %q %v", addr, ok)
	}
	a, mac, _ := strings.Cut(tok, ".")
	other, _, _ := strings.Cut(e.gw.flowToken("127.0.0.1:40001"), ".")
	for _, bad := range []string{"", a, a + ".", other + "." + mac, a + "." + mac[1:] + "A", "%%%." + mac} {
		if addr, ok := e.gw.checkFlow(bad); ok {
			t.Errorf("checkFlow(%q) = %q, true; want false", bad, addr)
		}
	}
	route := e.gw.flowRoute("TCP", tok)
	if !e.gw.ownFlow(route) {
		t.Errorf("ownFlow(%s) = false", route)
	}
	if u, ok := routeURI(route); !ok || transportOf(u, "UDP") != "TCP" || !u.UriParams.Has("lr") {
		t.Errorf("route %s: %+v %v, want a loose route over TCP", route, u, ok)
	}
	if e.gw.ownFlow("<sip:192.0.2.1:5060;transport=tcp;lr;sb-flow=" + tok + ">") {
		t.Error("a Path naming another address is this node's own flow")
	}
	if e.gw.ownFlow("<sip:" + e.gw.Addr().String() + ";lr>") {
		t.Error("a Path without a flow token (a proxy on this address?) is this node's own flow")
	}
}

// A browser registered over WebSocket is stored with a Path naming this
// node over TCP with a flow token; requests routed by such a token reach
// only a connection this node issued it for: a forged token gets 403, one
// whose connection has closed 430 (RFC 5626 §5.3), and a request from the
// WebSocket side in a dialog this node does not relay 481.
func TestRelayRefusals(t *testing.T) {
	e := newEnv(t, envOptions{webrtc: true})
	addr := e.wsServer()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ph := e.rtcPhone(addr, "alice", alicePw)
	if code, err := ph.Register(ctx, 300); err != nil || code != 200 {
		t.Fatalf("REGISTER: %d %v", code, err)
	}
	bs, err := e.gw.bindings(ctx, "alice")
	if err != nil || len(bs) != 1 || len(bs[0].Path) != 1 {
		t.Fatalf("bindings %+v %v, want one with a Path", bs, err)
	}
	if p := bs[0].Path[0]; !e.gw.ownFlow(p) || !strings.Contains(p, "transport=tcp") {
		t.Fatalf("the browser's Path %s: not this node's flow over TCP", p)
	}

	p := newPeer(t, "127.0.0.1", "node")
	send := func(method sip.RequestMethod, token string) int {
		t.Helper()
		u := sip.Uri{Scheme: "sip", Host: e.gw.Addr().Addr().String(), Port: int(e.gw.Addr().Port())}
		req := sip.NewRequest(method, sip.Uri{Scheme: "sip", User: "alice", Host: "x.invalid", UriParams: sip.NewParams()})
		req.Recipient.UriParams.Add("transport", "ws")
		req.AppendHeader(sip.NewHeader("Route", "<"+u.String()+";lr;sb-flow="+token+">"))
		req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "node", Host: p.ip, Port: int(p.addr.Port())}})
		req.SetDestination(e.gw.Addr().String())
		res, err := p.cli.Do(ctx, req)
		if err != nil {
			t.Fatalf("%s: %v", method, err)
		}
		return res.StatusCode
	}
	tok := bs[0].Path[0][strings.Index(bs[0].Path[0], "sb-flow=")+len("sb-flow=") : len(bs[0].Path[0])-1]
	_, mac, _ := strings.Cut(tok, ".")
	if code := send(sip.INVITE, "MTI3LjAuMC4xOjE."+mac); code != 403 {
		t.Errorf("an INVITE with a forged flow token: %d, want 403", code)
	}
	if code := send(sip.OPTIONS, e.gw.flowToken("127.0.0.1:1")); code != 430 {
		t.Errorf("an OPTIONS for a closed flow: %d, want 430", code)
	}
	ph.Close()
	if code := send(sip.INVITE, tok); code != 430 {
		t.Errorf("an INVITE to the browser after its WebSocket closed: %d, want 430", code)
	}
	if n := e.gw.relays.len(); n != 0 {
		t.Errorf("%d relayed dialogs left", n)
	}
}

// The relayed dialogs are bounded: a full table makes room by dropping
// the dialogs whose connections have closed, and refuses a new one when
// every connection is open.
func TestRelayTableBound(t *testing.T) {
	var tab relayTable
	open := func(flow string) bool { return flow != "closed" }
	for i := range maxRelayDialogs {
		flow := "open"
		if i%2 == 0 {
			flow = "closed"
		}
		if !tab.add(strconv.Itoa(i), relayDialog{flow: flow}, open) {
			t.Fatalf("add %d of %d refused", i, maxRelayDialogs)
		}
	}
	if !tab.add("one more", relayDialog{flow: "open"}, open) {
		t.Fatal("a full table with closed flows refused a dialog")
	}
	if n := tab.len(); n != maxRelayDialogs/2+1 {
		t.Fatalf("%d dialogs after the sweep, want %d", n, maxRelayDialogs/2+1)
	}
	for i := tab.len(); i < maxRelayDialogs; i++ {
		tab.add("x"+strconv.Itoa(i), relayDialog{flow: "open"}, open)
	}
	if tab.add("too many", relayDialog{flow: "open"}, open) {
		t.Fatal("a table full of open flows took one more")
	}
	tab.remove("1")
	if tab.has("1") || !tab.add("after a remove", relayDialog{flow: "open"}, open) {
		t.Fatal("a removed dialog's room was not given back")
	}
}
