package sipgw

import (
	"bufio"
	"context"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// The RFC 4475 torture messages (sipgo's copy, in testdata/torture) against
// a running gateway. Malformed SIP is dropped by sipgo's parser (over TCP
// the connection closes: a framing error leaves no boundary to resync on)
// or refused by the gateway's own checks; nothing takes the server down.

type torture struct {
	set, name string
	data      []byte
}

func tortureMessages(t *testing.T) []torture {
	t.Helper()
	var out []torture
	for _, set := range []string{"valid", "invalid"} {
		files, err := filepath.Glob(filepath.Join("testdata", "torture", set, "*.dat"))
		if err != nil || len(files) == 0 {
			t.Fatalf("no torture messages in testdata/torture/%s: %v", set, err)
		}
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, torture{set, strings.TrimSuffix(filepath.Base(f), ".dat"), data})
		}
	}
	return out
}

// tortureAnswered lists the invalid messages sipgo parses and the gateway
// checks let through, with why the handler's answer is right for them
// (RFC 4475 §3.1.2 and §3.3).
var tortureAnswered = map[string]string{
	"badbranch": "a branch of only the magic cookie is an RFC 2543 branch: processed (OPTIONS 200)",
	"baddate":   "a non-GMT Date is ignored: processed (INVITE from an unknown source: 401)",
	"cparam01":  "Contact parameters are taken as they parse: REGISTER without credentials: 401",
	"cparam02":  "as cparam01",
	"inv2543":   "an RFC 2543 INVITE is processed: 401",
	"invut":     "an unknown body type: the unauthenticated caller is challenged before the body is read (401)",
	"regaut01":  "an Authorization of an unknown scheme is no credential: 401",
	"regbadct":  "the Contact's URI parses: 401",
	"regescrt":  "escaped headers in a Contact are the registrar's to keep: 401",
	"sdp01":     "an unknown Accept type: 401 before any SDP work",
	"unksm2":    "a To that is no SIP URI: REGISTER refused with 400",
	"zeromf":    "Max-Forwards 0 only stops proxies: a UAS processes the request (OPTIONS 200)",
}

// TestTortureClassification says, for each message, what stops it: the
// parser, the gateway's request checks, or a handler.
func TestTortureClassification(t *testing.T) {
	for _, m := range tortureMessages(t) {
		msg, err := sip.NewParser().ParseSIP(m.data)
		code := 0
		if req, ok := msg.(*sip.Request); ok && err == nil {
			code, _, _ = validate(req)
		}
		switch {
		case m.set == "valid" && err != nil && m.name != "esc01" && m.name != "semiuri" && m.name != "wsinv":
			t.Errorf("valid %s: parser refuses it: %v", m.name, err)
		case m.set == "valid" && code != 0:
			t.Errorf("valid %s: refused with %d", m.name, code)
		case m.set == "invalid" && err == nil && code == 0 && msg != nil:
			if _, ok := msg.(*sip.Response); ok {
				continue // a response nobody asked for is dropped
			}
			if why := tortureAnswered[m.name]; why == "" {
				t.Errorf("invalid %s: passes the parser and the checks, and is not known to be handled", m.name)
			}
		}
	}
}

func TestTortureKeepsServing(t *testing.T) {
	rec := &panicRecorder{}
	e := newEnv(t, envOptions{logger: slog.New(rec)})
	gw := e.gw.Addr().String()
	msgs := tortureMessages(t)

	// UDP: one datagram each. Replies go to the Via port of each message
	// (RFC 3261 §18.2.2), not to us.
	udp, err := net.Dial("udp", gw)
	if err != nil {
		t.Fatal(err)
	}
	defer udp.Close()
	for _, m := range msgs {
		if _, err := udp.Write(m.data); err != nil {
			t.Fatalf("%s: %v", m.name, err)
		}
	}
	e.checkOptions(t, "udp")

	// TCP: one connection each, half-closed after the message; what comes
	// back before the gateway closes it is read.
	var wg sync.WaitGroup
	for _, m := range msgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			statuses, err := tcpExchange(gw, m.data)
			if err != nil {
				t.Errorf("%s/%s over TCP: %v", m.set, m.name, err)
				return
			}
			for _, st := range statuses {
				// A 1xx is no verdict: an INVITE's transaction sends 100
				// Trying by itself when the answer takes over 200 ms (RFC
				// 3261 §17.2.1), as on a loaded machine.
				if st >= 500 && st != 505 || (m.set == "invalid" && st >= 200 && st < 300 && !strings.Contains(tortureAnswered[m.name], "200")) {
					t.Errorf("%s/%s over TCP: answered %d", m.set, m.name, st)
				}
			}
		}()
	}
	wg.Wait()
	e.checkOptions(t, "tcp")
	if p := rec.panics(); p != 0 {
		t.Fatalf("%d handler panics", p)
	}
}

// tcpExchange sends data on a new connection, half-closes it and returns
// the statuses of the responses read until the gateway closes.
func tcpExchange(addr string, data []byte) ([]int, error) {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(wait))
	if _, err := c.Write(data); err != nil {
		return nil, err
	}
	_ = c.(*net.TCPConn).CloseWrite()
	var out []int
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err == io.EOF || (err != nil && strings.Contains(err.Error(), "reset")) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		if strings.HasPrefix(line, "SIP/2.0 ") && len(line) >= 11 {
			var st int
			for _, ch := range line[8:11] {
				st = st*10 + int(ch-'0')
			}
			out = append(out, st)
		}
	}
}

// checkOptions sends a valid OPTIONS over transport and wants 200.
func (e *env) checkOptions(t *testing.T, transport string) {
	t.Helper()
	p := newPeer(t, "127.0.0.1", "prober")
	u := sip.Uri{Scheme: "sip", Host: "127.0.0.1", Port: int(e.gw.Addr().Port())}
	if transport != "udp" {
		u.UriParams = sip.NewParams()
		u.UriParams.Add("transport", transport)
	}
	req := sip.NewRequest(sip.OPTIONS, u)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	cli := p.cli
	if transport != "udp" {
		// A TCP connection from an ephemeral port, not the UDP listener's.
		cli, _ = sipgo.NewClient(p.ua)
	}
	res, err := cli.Do(ctx, req)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("OPTIONS over %s after the torture: %v %v", transport, res, err)
	}
}

// panicRecorder counts the gateway's "sip handler panic" logs.
type panicRecorder struct {
	mu sync.Mutex
	n  int
}

func (r *panicRecorder) Enabled(context.Context, slog.Level) bool { return true }
func (r *panicRecorder) Handle(_ context.Context, rec slog.Record) error {
	if rec.Message == "sip handler panic" {
		r.mu.Lock()
		r.n++
		r.mu.Unlock()
	}
	return nil
}
func (r *panicRecorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *panicRecorder) WithGroup(string) slog.Handler      { return r }
func (r *panicRecorder) panics() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.n
}
