package sipgw

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/internal/webrtcgw/rtcphone"
)

// wsServer serves the gateway's SIP over WebSocket on an HTTP server, as
// the node does at WSPath.
func (e *env) wsServer() string {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+WSPath, e.gw.ServeWebSocket)
	srv := httptest.NewServer(mux)
	e.t.Cleanup(srv.Close)
	e.gw.SetWebSocketAddr(srv.Listener.Addr().(*net.TCPAddr).AddrPort())
	return strings.TrimPrefix(srv.URL, "http://")
}

func (e *env) rtcPhone(addr, user, pw string) *rtcphone.Phone {
	ph, err := rtcphone.NewPhone(addr, e.cfg.SIP.Domain, user, pw, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(ph.Close)
	return ph
}

// A WebRTC phone over SIP over WebSocket: registered with digest (stored
// as a WS binding), its call answered with WebRTC media relayed to the
// leg's session, its BYE ending the leg; after the gateway closes, no
// goroutine of pion, the relay or the WebSocket is left (TestMain's
// goleak).
func TestWebSocketWebRTCCall(t *testing.T) {
	e := newEnv(t, envOptions{webrtc: true})
	addr := e.wsServer()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ph := e.rtcPhone(addr, "alice", alicePw)
	if code, err := ph.Register(ctx, 300); err != nil || code != 200 {
		t.Fatalf("REGISTER: %d %v", code, err)
	}
	bs, err := e.gw.bindings(ctx, "alice")
	if err != nil || len(bs) != 1 || bs[0].Transport != "WS" {
		t.Fatalf("bindings %+v %v, want one over WS", bs, err)
	}

	type result struct {
		c    *rtcphone.Call
		code int
		err  error
	}
	done := make(chan result, 1)
	go func() {
		c, code, err := ph.Call(ctx, botNum, nil)
		done <- result{c, code, err}
	}()
	fc := e.nextCall()
	if err := fc.leg.Answer(); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil || r.code != 200 {
		t.Fatalf("call: %d %v", r.code, r.err)
	}
	fc.events.expect(t, callctl.LegAnswered)
	if fc.leg.rtc == nil || fc.leg.Media() == nil {
		t.Fatal("the leg has no WebRTC peer or no media session")
	}
	if err := r.c.Media.Connected(ctx); err != nil {
		t.Fatal(err)
	}
	if got := fc.leg.Media().LocalAddr(); got.Port() == 0 {
		t.Fatalf("media session address %v", got)
	}
	// A re-INVITE without an offer, or with a plain RTP one, is refused,
	// and the call goes on.
	if code, err := r.c.ReInvite(ctx, nil); err != nil || code != 488 {
		t.Fatalf("an offerless re-INVITE of a WebRTC call: %d %v, want 488", code, err)
	}
	plain := "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
	if code, err := r.c.ReInvite(ctx, []byte(plain)); err != nil || code != 488 {
		t.Fatalf("a plain RTP re-offer on a WebRTC call: %d %v, want 488", code, err)
	}
	fc.events.none(t)
	if err := r.c.HangUp(ctx); err != nil {
		t.Fatal(err)
	}
	fc.events.ended(t, errs.EndedByRemote)
	select {
	case <-fc.leg.rtc.Done():
	case <-time.After(wait):
		t.Fatal("the leg's WebRTC peer is still open after its BYE")
	}
}

// A browser's hold: its re-INVITE (sendonly) is answered by pion on the
// same peer (recvonly), the session sends it nothing while the bot plays,
// and its resume (sendrecv) brings the audio back; the call never ends.
func TestWebSocketWebRTCHold(t *testing.T) {
	e := newEnv(t, envOptions{webrtc: true})
	addr := e.wsServer()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ph := e.rtcPhone(addr, "alice", alicePw)
	done := make(chan *rtcphone.Call, 1)
	go func() {
		c, code, err := ph.Call(ctx, botNum, nil)
		if err != nil || code != 200 {
			t.Errorf("call: %d %v", code, err)
		}
		done <- c
	}()
	fc := e.nextCall()
	if err := fc.leg.Answer(); err != nil {
		t.Fatal(err)
	}
	c := <-done
	if c == nil {
		t.FailNow()
	}
	fc.events.expect(t, callctl.LegAnswered)
	if err := c.Media.Connected(ctx); err != nil {
		t.Fatal(err)
	}
	loud := make([]int16, 8000)
	for i := range loud {
		loud[i] = 12000
	}
	fc.leg.Media().Play(media.NewAudio(loud), true, nil)
	heard := func(n int) int {
		t.Helper()
		h, err := c.Media.WaitHeard(ctx, func(h []int16) bool { return len(h) >= n })
		if err != nil {
			t.Fatalf("the phone heard %d samples, waiting for %d", len(h), n)
		}
		return len(h)
	}
	heard(20 * 160)

	offer := string(c.Media.LocalSDP())
	code, answer, err := c.ReInviteAnswer(ctx, []byte(strings.Replace(offer, "a=sendrecv", "a=sendonly", 1)))
	if err != nil || code != 200 || !strings.Contains(string(answer), "a=recvonly") {
		t.Fatalf("hold: %d %v %q", code, err, answer)
	}
	ticks(t, fc, 3) // a tick under way may still send
	before := len(c.Media.Heard())
	ticks(t, fc, 10)
	if after := len(c.Media.Heard()); after > before+160 {
		t.Fatalf("the held browser heard %d samples more", after-before)
	}
	code, answer, err = c.ReInviteAnswer(ctx, []byte(offer))
	if err != nil || code != 200 || !strings.Contains(string(answer), "a=sendrecv") {
		t.Fatalf("resume: %d %v\n%s", code, err, answer)
	}
	heard(len(c.Media.Heard()) + 10*160)
	fc.events.none(t)
	if err := c.HangUp(ctx); err != nil {
		t.Fatal(err)
	}
	fc.events.ended(t, errs.EndedByRemote)
}

// Without a WebRTC gateway, a WebRTC offer is refused with 488, not
// taken with media nobody can carry.
func TestWebRTCOfferWithoutGateway(t *testing.T) {
	e := newEnv(t, envOptions{})
	addr := e.wsServer()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	ph := e.rtcPhone(addr, "alice", alicePw)
	c, code, err := ph.Call(ctx, botNum, nil)
	if c != nil || code != 488 {
		t.Fatalf("a WebRTC offer to a gateway without WebRTC: %d %v, want 488", code, err)
	}
	select {
	case fc := <-e.calls.calls:
		t.Fatalf("the refused offer became call %s", fc.id)
	default:
	}
}

// Wrong passwords over SIP over WebSocket count against their source as
// over UDP: the same 403 for each, then the source is banned and even the
// right password goes unanswered on that socket.
func TestWebSocketWrongPasswordsBan(t *testing.T) {
	e := newEnv(t, envOptions{abuse: &config.SIPAbuse{MaxAuthFailures: 3, AuthFailureWindow: config.Duration(time.Minute),
		BanTime: config.Duration(time.Hour)}})
	addr := e.wsServer()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	guesser := e.rtcPhone(addr, "alice", "guess")
	for i := range 3 {
		if code, err := guesser.Register(ctx, 300); err != nil || code != 403 {
			t.Fatalf("wrong password %d over WebSocket: %d %v", i, code, err)
		}
	}
	right := e.rtcPhone(addr, "alice", alicePw) // the same source address
	short, stop := context.WithTimeout(ctx, time.Second)
	defer stop()
	if code, err := right.Register(short, 300); err == nil {
		t.Fatalf("the banned source was answered: %d", code)
	}
	if got := testutil.ToFloat64(e.gw.am.banned); got != 1 {
		t.Fatalf("banned_total %v", got)
	}
}

// wsDial opens a SIP-over-WebSocket connection to addr from the loopback
// address from (127.0.0.x: another source), returning the HTTP status a
// refused upgrade got (0 when it was taken).
func wsDial(t *testing.T, ctx context.Context, addr, from string) (net.Conn, int) {
	t.Helper()
	d := ws.Dialer{Protocols: []string{"sip"}, NetDial: func(ctx context.Context, network, a string) (net.Conn, error) {
		nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}}
		return nd.DialContext(ctx, network, a)
	}}
	conn, _, _, err := d.Dial(ctx, "ws://"+addr+WSPath)
	var se ws.StatusError
	if errors.As(err, &se) {
		return nil, int(se)
	}
	if err != nil {
		t.Fatalf("dial %s from %s: %v", addr, from, err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn, 0
}

// One source address may hold sip.ws.maxConnsPerSource connections: the
// next upgrade is refused with 429 (counted) before anything is hijacked,
// while another source still gets in; a closed connection gives its slot
// back. Opening them faster than sip.ws.connsPerSecond (past the burst)
// is refused too.
func TestWebSocketLimitsPerSource(t *testing.T) {
	e := newEnv(t, envOptions{ws: &config.SIPWebSocket{MaxConnsPerSource: 3, ConnsPerSecond: 1000, ConnBurst: 1000}})
	addr := e.wsServer()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	var open []net.Conn
	for i := range 3 {
		c, code := wsDial(t, ctx, addr, "127.0.0.1")
		if code != 0 {
			t.Fatalf("connection %d from 127.0.0.1 refused: %d", i+1, code)
		}
		open = append(open, c)
	}
	for range 2 {
		if _, code := wsDial(t, ctx, addr, "127.0.0.1"); code != http.StatusTooManyRequests {
			t.Fatalf("a fourth connection from 127.0.0.1: %d, want 429", code)
		}
	}
	if _, code := wsDial(t, ctx, addr, "127.0.0.2"); code != 0 {
		t.Fatalf("another source refused: %d", code)
	}
	if got := testutil.ToFloat64(e.gw.wsLimit.refused.WithLabelValues(wsRefusedConns)); got != 2 {
		t.Fatalf("ws_refused_total{reason=connections} %v, want 2", got)
	}
	// A closed connection's slot comes back once sipgo has let it go.
	open[0].Close()
	src := netip.MustParseAddr("127.0.0.1")
	for held := 3; held >= 3; {
		e.gw.wsLimit.mu.Lock()
		held = e.gw.wsLimit.open[src]
		e.gw.wsLimit.mu.Unlock()
		select {
		case <-ctx.Done():
			t.Fatalf("127.0.0.1 still holds %d connections after closing one", held)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if _, code := wsDial(t, ctx, addr, "127.0.0.1"); code != 0 {
		t.Fatalf("a connection after one closed: %d", code)
	}

	// The rate: a burst of 2, then about one a second.
	e2 := newEnv(t, envOptions{ws: &config.SIPWebSocket{ConnsPerSecond: 1, ConnBurst: 2}})
	addr2 := e2.wsServer()
	for i := range 2 {
		if _, code := wsDial(t, ctx, addr2, "127.0.0.1"); code != 0 {
			t.Fatalf("connection %d of the burst refused: %d", i+1, code)
		}
	}
	if _, code := wsDial(t, ctx, addr2, "127.0.0.1"); code != http.StatusTooManyRequests {
		t.Fatalf("a connection past the burst: %d, want 429", code)
	}
	if got := testutil.ToFloat64(e2.gw.wsLimit.refused.WithLabelValues(wsRefusedRate)); got != 1 {
		t.Fatalf("ws_refused_total{reason=rate} %v, want 1", got)
	}
}

// wsExchange writes a text frame on a SIP-over-WebSocket connection and
// returns the first final response that comes back, "" when the
// connection closed or nothing came within a second.
func wsExchange(t *testing.T, c net.Conn, msg string) string {
	t.Helper()
	if err := wsutil.WriteClientText(c, []byte(msg)); err != nil {
		return ""
	}
	_ = c.SetReadDeadline(time.Now().Add(time.Second))
	defer c.SetReadDeadline(time.Time{})
	for {
		b, err := wsutil.ReadServerText(c)
		if err != nil {
			return ""
		}
		if !strings.HasPrefix(string(b), "SIP/2.0 1") {
			return string(b)
		}
	}
}

// Malformed SIP over WebSocket (RFC 7118 §5: one message per frame), each
// on a connection of its own, gets the right SIP error where sipgo parsed
// a request to answer; what it cannot parse closes the connection (as on
// TCP); nothing is ever accepted, nothing crashes, and the gateway goes
// on: a good request on a new connection is answered, a phone registers.
func TestWebSocketMalformedSIP(t *testing.T) {
	e := newEnv(t, envOptions{})
	addr := e.wsServer()
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	req := func(method, extra string, body string) string {
		return method + " sip:" + botNum + "@sb.test SIP/2.0\r\n" +
			"Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bK" + strings.ToLower(method) + strconv.Itoa(len(extra)) + "\r\n" +
			"Max-Forwards: 70\r\nFrom: <sip:alice@sb.test>;tag=a1\r\nTo: <sip:" + botNum + "@sb.test>\r\n" +
			"Call-ID: malformed-" + strconv.Itoa(len(extra)) + "@ws\r\n" + extra +
			"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
	}
	for _, m := range []struct {
		name, msg, want string // want: the status line's start; "" for no answer (closed)
	}{
		{"not SIP at all", "hello, is this the chat?", ""},
		{"binary junk", "\x00\xff\xfe SIP/2.0\r\n\r\n", ""},
		{"no CSeq", req("OPTIONS", "", ""), "SIP/2.0 400 "},
		{"a CSeq of another method", req("OPTIONS", "CSeq: 1 INVITE\r\n", ""), "SIP/2.0 400 "},
		{"a Content-Length past the frame", strings.Replace(req("OPTIONS", "CSeq: 2 OPTIONS\r\n", ""), "Content-Length: 0", "Content-Length: 500", 1), ""},
		{"a request URI of another scheme", strings.Replace(req("OPTIONS", "CSeq: 3 OPTIONS\r\n", ""), "OPTIONS sip:", "OPTIONS mailto:", 1), "SIP/2.0 416 "},
		{"an INVITE whose SDP is garbage, unauthenticated", req("INVITE", "CSeq: 4 INVITE\r\nContact: <sip:alice@df7jal23ls0d.invalid;transport=ws>\r\nContent-Type: application/sdp\r\n", "v=0\r\nthis is not SDP"), "SIP/2.0 401 "},
	} {
		c, code := wsDial(t, ctx, addr, "127.0.0.1")
		if code != 0 {
			t.Fatalf("%s: upgrade refused: %d", m.name, code)
		}
		got := firstLine(wsExchange(t, c, m.msg))
		t.Logf("%s: %q", m.name, got)
		if !strings.HasPrefix(got, m.want) || (m.want == "" && got != "") {
			t.Errorf("%s: answered %q, want %q", m.name, got, m.want)
		}
		c.Close()
	}
	c, _ := wsDial(t, ctx, addr, "127.0.0.1")
	if got := wsExchange(t, c, req("OPTIONS", "CSeq: 9 OPTIONS\r\n", "")); !strings.HasPrefix(got, "SIP/2.0 200 ") {
		t.Fatalf("OPTIONS after the malformed ones: %q", firstLine(got))
	}
	ph := e.rtcPhone(addr, "alice", alicePw)
	if code, err := ph.Register(ctx, 300); err != nil || code != 200 {
		t.Fatalf("REGISTER after the malformed messages: %d %v", code, err)
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\r\n")
	return l
}
