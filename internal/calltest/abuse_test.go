package calltest_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/icholy/digest"
	"golang.org/x/time/rate"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// metric reads one sample of the node's /metrics (0 when absent): name
// with its labels as the exposition writes them, e.g.
// `switchboard_sip_dropped_total{reason="rate"}`.
func metric(t *testing.T, p *calltest.Platform, name string) float64 {
	t.Helper()
	r := p.Do(calltest.Req{Method: "GET", Path: "/metrics"})
	if r.StatusCode != 200 {
		t.Fatalf("metrics: %s", r.Status)
	}
	sc := bufio.NewScanner(bytes.NewReader(r.Body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), name+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %q", name, v)
			}
			return f
		}
	}
	return 0
}

// heap is the process's live heap after a collection, and its goroutines.
func heap() (uint64, int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc, runtime.NumGoroutine()
}

// sipMessage is an out-of-dialog request as a flood sends it: a new
// Call-ID and branch each time.
func sipMessage(method string, node netip.AddrPort, from netip.AddrPort, n int) []byte {
	var target, to, body, ctype string
	switch method {
	case "INVITE":
		target, to = "sip:"+calltest.BotNumber+"@"+node.String(), "<sip:"+calltest.BotNumber+"@"+node.Addr().String()+">"
		body = "v=0\r\no=- 1 1 IN IP4 " + from.Addr().String() + "\r\ns=-\r\nc=IN IP4 " + from.Addr().String() +
			"\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
		ctype = "Content-Type: application/sdp\r\n"
	default:
		target, to = "sip:"+node.Addr().String(), "<sip:eve@"+node.Addr().String()+">"
	}
	return fmt.Appendf(nil, "%s %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-flood-%d;rport\r\nMax-Forwards: 70\r\n"+
		"From: <sip:flood@%s>;tag=f%d\r\nTo: %s\r\nCall-ID: flood-%d@%s\r\nCSeq: 1 %s\r\nContact: <sip:flood@%s>\r\n%sContent-Length: %d\r\n\r\n%s",
		method, target, from, n, from.Addr(), n, to, n, from.Addr(), method, from, ctype, len(body), body)
}

// flood sends INVITEs and REGISTERs (alternately) from each source
// address at perSource a second for d, and counts what was sent and
// answered.
func flood(t *testing.T, node netip.AddrPort, sources []string, perSource float64, d time.Duration) (sent, answered int64) {
	t.Helper()
	var wg sync.WaitGroup
	var nSent, nAnswered atomic.Int64
	stop := time.Now().Add(d)
	for _, src := range sources {
		c, err := net.ListenPacket("udp", src+":0")
		if err != nil {
			t.Fatal(err)
		}
		from := c.LocalAddr().(*net.UDPAddr).AddrPort()
		wg.Add(2)
		go func() {
			defer wg.Done()
			buf := make([]byte, 4096)
			for {
				// Answers still arriving after the flood are counted until
				// the node has been quiet for half a second.
				_ = c.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				if _, _, err := c.ReadFrom(buf); err != nil {
					if time.Now().After(stop) {
						c.Close()
						return
					}
					continue
				}
				nAnswered.Add(1)
			}
		}()
		go func() {
			defer wg.Done()
			dst := net.UDPAddrFromAddrPort(node)
			pace := rate.NewLimiter(rate.Limit(perSource), 50)
			for i := 0; time.Now().Before(stop); i++ {
				if pace.Wait(context.Background()) != nil {
					return
				}
				m := "INVITE"
				if i%2 == 1 {
					m = "REGISTER"
				}
				if _, err := c.WriteTo(sipMessage(m, node, from, i), dst); err == nil {
					nSent.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	return nSent.Load(), nAnswered.Load()
}

// An INVITE and REGISTER flood from several source addresses is held to
// each source's rate (sip.abuse.requestsPerSecond, burst), the rest dropped
// unanswered, and the node's memory and goroutines come back to where they
// were.
func TestSIPFloodIsRateLimitedWithMemoryFlat(t *testing.T) {
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		c.Log.Level = "info"
	}})
	node := p.Node.SIP.Addr()
	sources := []string{"127.0.0.21", "127.0.0.22", "127.0.0.23", "127.0.0.24"}
	heap0, gor0 := heap()
	const d, perSource = 3 * time.Second, 2000
	start := time.Now()
	sent, answered := flood(t, node, sources, perSource, d)
	// Until the node has been quiet for half a second: on a loaded
	// machine it is still taking the flood from its socket after d.
	took := time.Since(start)
	// What the flood left behind is garbage, or work the node has not
	// finished yet: the heap comes back within a few seconds.
	var heap1 uint64
	var gor1 int
	for settle := time.Now().Add(5 * time.Second); ; {
		heap1, gor1 = heap()
		if (heap1 <= heap0+2<<20 && gor1 <= gor0+10) || time.Now().After(settle) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling a figure nobody signals
	}
	dropped := metric(t, p, `switchboard_sip_dropped_total{reason="rate"}`)
	taken := metric(t, p, `switchboard_sip_registers_total{result="challenged"}`) +
		metric(t, p, `switchboard_sip_invites_total{direction="in",status="401"}`)
	a := p.Config.SIP.Abuse
	t.Logf("flood: %d requests in %v from %d sources (%.0f/s), %d answers, %.0f taken, %.0f dropped; tracked sources %d; heap %.1f MB -> %.1f MB, goroutines %d -> %d",
		sent, d, len(sources), float64(sent)/d.Seconds(), answered, taken, dropped, p.Node.SIP.Sources(),
		float64(heap0)/1e6, float64(heap1)/1e6, gor0, gor1)
	// Each source gets its burst and its rate: the requests taken are
	// bounded whatever the flood's speed.
	limit := float64(len(sources)) * (float64(a.Burst) + a.RequestsPerSecond*(took.Seconds()+1))
	if taken > limit {
		t.Errorf("%.0f requests taken from %d sources in %v, the limit allows %.0f", taken, len(sources), took, limit)
	}
	if dropped == 0 || dropped < float64(sent)/2 {
		t.Errorf("only %.0f of %d requests dropped", dropped, sent)
	}
	// Challenges are answered statelessly: no retransmissions (an INVITE
	// gets its 100 and its 401, a REGISTER its 401), nothing kept.
	if float64(answered) > 2*taken {
		t.Errorf("%d answers to %.0f requests taken: the flood is amplified", answered, taken)
	}
	if heap1 > heap0+2<<20 {
		t.Errorf("the heap grew from %.1f MB to %.1f MB under the flood", float64(heap0)/1e6, float64(heap1)/1e6)
	}
	if gor1 > gor0+10 {
		t.Errorf("goroutines %d -> %d", gor0, gor1)
	}
	if n := p.Node.SIP.Sources(); n > len(sources) {
		t.Errorf("%d sources tracked, %d sent", n, len(sources))
	}
}

// sipvicious runs one of the sipvicious tools (Debian package sipvicious)
// against the node under a time bound and returns what it printed. Its
// own UDP port is a fresh one (-P): answers to an earlier tool's requests
// must not reach it. The tools send from 127.0.0.1 whatever -b says
// (sipvicious 0.3.3 does not pass it on).
func sipvicious(t *testing.T, tool string, args ...string) string {
	t.Helper()
	bin := calltest.NeedPeer(t, tool, "sipvicious")
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	args = append([]string{"-P", strconv.Itoa(calltest.FreeUDPPort(t, "127.0.0.1"))}, args...)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("%s %v did not finish in time:\n%s", tool, args, out)
	}
	if err != nil {
		t.Fatalf("%s %v: %v\n%s", tool, args, err, out)
	}
	return string(out)
}

// extensionNames is the dictionary svwar tries: the configured SIP user
// (eve), users without SIP credentials, the bots' numbers with and
// without +, and names scanners always try.
func extensionNames(t *testing.T) string {
	names := []string{"eve", "alice", "bob", "admin", "100", "101", "1000", "2000", "test", "operator",
		calltest.BotNumber, strings.TrimPrefix(calltest.BotNumber, "+"), calltest.EvePhone, calltest.WeakBotNumber}
	f := filepath.Join(t.TempDir(), "names.txt")
	if err := os.WriteFile(f, []byte(strings.Join(names, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// svwar (extension enumeration by REGISTER, INVITE and OPTIONS) finds no
// extension: every user, existing or not, gets the same answer, so there
// is nothing to tell them apart by. svmap, run first, does find the node:
// the scanners reach it.
func TestSvwarFindsNoExtension(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	port := strconv.Itoa(int(p.Node.SIP.Addr().Port()))
	out := sipvicious(t, "svmap", "-p", port, "127.0.0.1")
	if !strings.Contains(out, "127.0.0.1:"+port) {
		t.Fatalf("svmap did not find the node:\n%s", out)
	}
	names := extensionNames(t)
	for _, method := range []string{"REGISTER", "INVITE", "OPTIONS"} {
		start := time.Now()
		// --force: without it svwar stops at once, seeing an unknown user
		// challenged like any other.
		out := sipvicious(t, "svwar", "--force", "--maximumtime", "2", "-m", method, "-d", names, "127.0.0.1", "-p", port)
		t.Logf("svwar -m %s (%v):\n%s", method, time.Since(start).Round(time.Millisecond), out)
		if !strings.Contains(out, "found nothing") || strings.Contains(out, "Extension") ||
			strings.Contains(out, "reqauth") || strings.Contains(out, "noauth") || strings.Contains(out, "weird") {
			t.Errorf("svwar -m %s found something:\n%s", method, out)
		}
	}
	if b := metric(t, p, "switchboard_sip_banned_total"); b != 0 {
		t.Errorf("the enumeration banned %v sources: it sent no wrong password", b)
	}
}

// The answers svwar could compare, compared directly: a REGISTER, an
// INVITE and a wrong password for a user that exists and for one that does
// not get the same status and the same header fields.
func TestSameAnswerForExistingAndMissingUsers(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	node := p.Node.SIP.Addr()
	ua := newRawUA(t, "127.0.0.1", node)
	for _, tc := range []struct {
		what           string
		exists, absent func() []*rawResponse
	}{
		{"REGISTER", func() []*rawResponse { return ua.register("eve", "") }, func() []*rawResponse { return ua.register("nosuchuser", "") }},
		{"REGISTER with a wrong password", func() []*rawResponse { return ua.register("eve", "wrong") }, func() []*rawResponse { return ua.register("nosuchuser", "wrong") }},
		{"INVITE", func() []*rawResponse { return ua.invite("eve") }, func() []*rawResponse { return ua.invite("nosuchuser") }},
		{"INVITE to a number", func() []*rawResponse { return ua.invite(calltest.BotNumber) }, func() []*rawResponse { return ua.invite("+15550000") }},
	} {
		a, b := tc.exists(), tc.absent()
		if sa, sb := answerShapes(a), answerShapes(b); sa != sb {
			t.Errorf("%s: an existing user gets\n%s\na missing one\n%s", tc.what, sa, sb)
		} else {
			t.Logf("%s: both get %s", tc.what, strings.ReplaceAll(sa, "\n", " | "))
		}
	}
}

// answerShapes is what tells responses apart without their ids: status line and
// header names, in order.
func answerShapes(rs []*rawResponse) string {
	var out []string
	for _, r := range rs {
		out = append(out, r.status+" ["+strings.Join(r.names, ",")+"]")
	}
	return strings.Join(out, "\n")
}

// svcrack (digest password guessing) is banned before it reaches the
// password: after sip.abuse.maxAuthFailures wrong answers its address is
// dropped, the right password included, while another address still
// registers. The same run against a node with bans off cracks the
// password, so the dictionary and the tool do work.
func TestSvcrackIsBannedBeforeItCracks(t *testing.T) {
	var words []string
	for i := range 30 {
		words = append(words, fmt.Sprintf("guess%02d", i))
	}
	words = append(words, calltest.EvePassword)
	for i := range 10 {
		words = append(words, fmt.Sprintf("after%02d", i))
	}
	dict := filepath.Join(t.TempDir(), "words.txt")
	if err := os.WriteFile(dict, []byte(strings.Join(words, "\n")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("unprotected", func(t *testing.T) {
		p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) { c.SIP.Abuse.MaxAuthFailures = 0 }})
		start := time.Now()
		out := sipvicious(t, "svcrack", "-u", "eve", "-d", dict, "--maximumtime", "2", "127.0.0.1", "-p", strconv.Itoa(int(p.Node.SIP.Addr().Port())))
		t.Logf("svcrack against a node without bans (%v):\n%s", time.Since(start).Round(time.Millisecond), out)
		if !strings.Contains(out, calltest.EvePassword) {
			t.Fatalf("svcrack did not crack the unprotected password: the test proves nothing\n%s", out)
		}
	})

	p := calltest.Start(t, calltest.Options{})
	node := p.Node.SIP.Addr()
	start := time.Now()
	out := sipvicious(t, "svcrack", "-u", "eve", "-d", dict, "--maximumtime", "2", "127.0.0.1", "-p", strconv.Itoa(int(node.Port())))
	t.Logf("svcrack (%v):\n%s", time.Since(start).Round(time.Millisecond), out)
	if strings.Contains(out, calltest.EvePassword) {
		t.Fatalf("svcrack cracked the password:\n%s", out)
	}
	max := p.Config.SIP.Abuse.MaxAuthFailures
	banned := metric(t, p, "switchboard_sip_banned_total")
	forbidden := metric(t, p, `switchboard_sip_registers_total{result="forbidden"}`)
	dropped := metric(t, p, `switchboard_sip_dropped_total{reason="banned"}`)
	t.Logf("banned %v source(s) after %v wrong passwords; %v requests dropped since", banned, forbidden, dropped)
	if banned != 1 || forbidden != float64(max) || dropped == 0 {
		t.Fatalf("banned %v, wrong passwords answered %v (limit %d), dropped %v", banned, forbidden, max, dropped)
	}
	// The banned address gets nothing, right password or not; another
	// address registers.
	if rs := newRawUA(t, "127.0.0.1", node).register("eve", calltest.EvePassword); len(rs) != 0 {
		t.Fatalf("the banned address was answered: %s", answerShapes(rs))
	}
	rs := newRawUA(t, "127.0.0.2", node).register("eve", calltest.EvePassword)
	if len(rs) == 0 || rs[len(rs)-1].status != "SIP/2.0 200 OK" {
		t.Fatalf("another address could not register: %s", answerShapes(rs))
	}
}

// rawUA sends hand-made SIP requests over UDP from one address and reads
// the answers: what a scanner sees, header by header.
type rawUA struct {
	t    *testing.T
	c    net.PacketConn
	from netip.AddrPort
	node netip.AddrPort
	n    int
}

type rawResponse struct {
	status string
	names  []string // header names, in order
	header map[string]string
}

func newRawUA(t *testing.T, ip string, node netip.AddrPort) *rawUA {
	t.Helper()
	c, err := net.ListenPacket("udp", ip+":0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawUA{t: t, c: c, from: c.LocalAddr().(*net.UDPAddr).AddrPort(), node: node}
}

// roundTrip sends req and reads answers until a final one, or until none
// came for a second (a dropped request).
func (u *rawUA) roundTrip(req []byte) []*rawResponse {
	u.t.Helper()
	if _, err := u.c.WriteTo(req, net.UDPAddrFromAddrPort(u.node)); err != nil {
		u.t.Fatal(err)
	}
	var out []*rawResponse
	buf := make([]byte, 8192)
	for {
		_ = u.c.SetReadDeadline(time.Now().Add(time.Second))
		n, _, err := u.c.ReadFrom(buf)
		if err != nil {
			return out
		}
		r := parseRaw(buf[:n])
		out = append(out, r)
		if !strings.HasPrefix(r.status, "SIP/2.0 1") {
			return out
		}
	}
}

func parseRaw(b []byte) *rawResponse {
	head, _, _ := strings.Cut(string(b), "\r\n\r\n")
	lines := strings.Split(head, "\r\n")
	r := &rawResponse{status: lines[0], header: map[string]string{}}
	for _, l := range lines[1:] {
		k, v, _ := strings.Cut(l, ":")
		r.names = append(r.names, k)
		r.header[strings.ToLower(k)] = strings.TrimSpace(v)
	}
	return r
}

func (u *rawUA) request(method, ruri, to, extra, body string) []byte {
	u.n++
	return fmt.Appendf(nil, "%s %s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-raw-%d-%d;rport\r\nMax-Forwards: 70\r\n"+
		"From: <sip:probe@%s>;tag=p%d\r\nTo: %s\r\nCall-ID: raw-%d-%d@%s\r\nCSeq: %d %s\r\nContact: <sip:probe@%s>\r\n%sContent-Length: %d\r\n\r\n%s",
		method, ruri, u.from, u.from.Port(), u.n, u.from.Addr(), u.n, to, u.from.Port(), u.n, u.from.Addr(), u.n, method, u.from, extra, len(body), body)
}

// register sends a REGISTER for user; with a password it answers the
// challenge with it.
func (u *rawUA) register(user, password string) []*rawResponse {
	ruri := "sip:" + u.node.Addr().String()
	to := "<sip:" + user + "@" + u.node.Addr().String() + ">"
	rs := u.roundTrip(u.request("REGISTER", ruri, to, "Expires: 60\r\n", ""))
	if password == "" || len(rs) == 0 || !strings.HasPrefix(rs[len(rs)-1].status, "SIP/2.0 401") {
		return rs
	}
	chal, err := digest.ParseChallenge(rs[len(rs)-1].header["www-authenticate"])
	if err != nil {
		u.t.Fatalf("challenge: %v", err)
	}
	cred, err := digest.Digest(chal, digest.Options{Method: "REGISTER", URI: ruri, Username: user, Password: password, Count: 1, Cnonce: "0a4f113b"})
	if err != nil {
		u.t.Fatal(err)
	}
	return append(rs, u.roundTrip(u.request("REGISTER", ruri, to, "Expires: 60\r\nAuthorization: "+cred.String()+"\r\n", ""))...)
}

// invite sends an INVITE to user (a SIP user or a number) without
// credentials, as an enumerating scanner does.
func (u *rawUA) invite(user string) []*rawResponse {
	ruri := "sip:" + user + "@" + u.node.Addr().String()
	body := "v=0\r\no=- 1 1 IN IP4 " + u.from.Addr().String() + "\r\ns=-\r\nc=IN IP4 " + u.from.Addr().String() +
		"\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n"
	return u.roundTrip(u.request("INVITE", ruri, "<"+ruri+">", "Content-Type: application/sdp\r\n", body))
}

// clientFrom is an HTTP client whose connections come from the loopback
// address ip.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

// tokenStatus asks the node's token endpoint for a BotID token with
// secret, and returns the status, Retry-After and identity-platform error
// codes.
func tokenStatus(t *testing.T, c *http.Client, p *calltest.Platform, secret string) (int, string, []int) {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {calltest.BotID}, "client_secret": {secret},
		"scope": {"https://graph.microsoft.com/.default"}}
	res, err := c.PostForm(p.URL+"/"+calltest.TenantID+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var te graph.TokenError
	_ = json.NewDecoder(res.Body).Decode(&te)
	return res.StatusCode, res.Header.Get("Retry-After"), te.ErrorCodes
}

// Client-secret guessing against the token endpoint is locked out per
// source after identity.tokenThrottle.maxFailures wrong secrets (the right
// one refused too, 429 with Retry-After), while another address still gets
// its token; a burst of token requests is held to the source's rate.
func TestTokenGuessingIsLockedOut(t *testing.T) {
	p := calltest.Start(t, calltest.Options{})
	tt := p.Config.Identity.TokenThrottle
	attacker, bot := clientFrom("127.0.0.31"), clientFrom("127.0.0.32")
	guesses := 0
	for ; guesses < 100; guesses++ {
		code, _, _ := tokenStatus(t, attacker, p, fmt.Sprintf("guess-%d", guesses))
		if code == http.StatusTooManyRequests {
			break
		}
		if code != http.StatusUnauthorized {
			t.Fatalf("guess %d: %d", guesses, code)
		}
	}
	code, after, codes := tokenStatus(t, attacker, p, calltest.Secret)
	t.Logf("locked out after %d wrong secrets; the right secret then gets %d, Retry-After %s, %v", guesses, code, after, codes)
	if guesses != tt.MaxFailures || code != http.StatusTooManyRequests || after != strconv.Itoa(int(tt.Lockout.D().Seconds())) ||
		len(codes) != 1 || codes[0] != 50053 {
		t.Fatalf("%d guesses before the lockout (limit %d); then %d, Retry-After %q, %v", guesses, tt.MaxFailures, code, after, codes)
	}
	if code, _, _ := tokenStatus(t, bot, p, calltest.Secret); code != http.StatusOK {
		t.Fatalf("another address: %d", code)
	}

	// A burst from a third address: its bucket, then 429s with Retry-After.
	flooder := clientFrom("127.0.0.33")
	ok, limited := 0, 0
	start := time.Now()
	for range 200 {
		switch code, after, codes := tokenStatus(t, flooder, p, calltest.Secret); code {
		case http.StatusOK:
			ok++
		case http.StatusTooManyRequests:
			limited++
			if after == "" || len(codes) != 1 || codes[0] != 90055 {
				t.Fatalf("rate refusal: Retry-After %q, %v", after, codes)
			}
		default:
			t.Fatalf("burst: %d", code)
		}
	}
	el := time.Since(start)
	t.Logf("200 token requests in %v: %d issued, %d refused", el.Round(time.Millisecond), ok, limited)
	if limit := float64(tt.Burst) + tt.RequestsPerSecond*(el.Seconds()+1); float64(ok) > limit {
		t.Fatalf("%d tokens issued in %v, the limit allows %.0f", ok, el, limit)
	}
}
