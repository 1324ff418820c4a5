package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/switchboard-voice/switchboard/internal/media/g711"
)

// A probe is one extra caller that sbbench itself places through the
// trunk while SIPp holds the load: a minimal SIP UAC over UDP (INVITE, ACK,
// BYE) with an RTP socket that timestamps every packet in the kernel
// (SO_TIMESTAMPNS), so the inter-arrival gaps of the prompt the node plays
// are measured as the wire sees them, not as a busy receiver reads them.
// A few probes are the sample of streams docs/decisions.md#benchmarks asks
// for, without a packet capture.

// probeResult is what one probe saw.
type probeResult struct {
	Err      string
	Packets  int             // audio packets received
	Lost     int             // sequence numbers skipped
	Gaps     []time.Duration // arrival gaps between consecutive sequence numbers
	Setup    time.Duration   // INVITE → 200
	Answered bool
}

type sipMsg struct {
	status  int // 0 for a request
	method  string
	headers map[string][]string
	body    []byte
	raw     []byte
}

func (m *sipMsg) get(name string) string {
	if v := m.headers[name]; len(v) > 0 {
		return v[0]
	}
	return ""
}

var compact = map[string]string{"t": "to", "f": "from", "i": "call-id", "m": "contact", "v": "via", "l": "content-length", "c": "content-type"}

func parseSIP(b []byte) (*sipMsg, error) {
	head, body, ok := bytes.Cut(b, []byte("\r\n\r\n"))
	if !ok {
		return nil, errors.New("no end of headers")
	}
	lines := strings.Split(string(head), "\r\n")
	m := &sipMsg{headers: map[string][]string{}, body: body, raw: b}
	first := strings.Fields(lines[0])
	if len(first) < 2 {
		return nil, errors.New("bad start line")
	}
	if first[0] == "SIP/2.0" {
		m.status, _ = strconv.Atoi(first[1])
	} else {
		m.method = first[0]
	}
	for _, l := range lines[1:] {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		if c, ok := compact[k]; ok {
			k = c
		}
		m.headers[k] = append(m.headers[k], strings.TrimSpace(v))
	}
	return m, nil
}

// uriHostPort returns host:port of the sip: URI in a header value such as
// `<sip:x@127.0.0.1:5060;transport=udp>;expires=60`.
func uriHostPort(v string) string {
	if i := strings.IndexByte(v, '<'); i >= 0 {
		v = v[i+1:]
		if j := strings.IndexByte(v, '>'); j >= 0 {
			v = v[:j]
		}
	}
	v = strings.TrimPrefix(strings.TrimPrefix(v, "sip:"), "sips:")
	if i := strings.IndexByte(v, '@'); i >= 0 {
		v = v[i+1:]
	}
	if i := strings.IndexAny(v, ";?>"); i >= 0 {
		v = v[:i]
	}
	if !strings.Contains(v, ":") {
		v += ":5060"
	}
	return v
}

func uriOf(v string) string {
	if i := strings.IndexByte(v, '<'); i >= 0 {
		v = v[i+1:]
		if j := strings.IndexByte(v, '>'); j >= 0 {
			return v[:j]
		}
	}
	if i := strings.IndexByte(v, ';'); i >= 0 {
		return v[:i]
	}
	return v
}

func tagOf(v string) string {
	for p := range strings.SplitSeq(v, ";") {
		if t, ok := strings.CutPrefix(strings.TrimSpace(p), "tag="); ok {
			return t
		}
	}
	return ""
}

// sdpMedia returns the connection address and audio port of an SDP body.
func sdpMedia(b []byte) (netip.AddrPort, error) {
	var ip netip.Addr
	port := 0
	for l := range strings.SplitSeq(string(b), "\n") {
		l = strings.TrimSpace(l)
		if c, ok := strings.CutPrefix(l, "c=IN IP4 "); ok {
			ip, _ = netip.ParseAddr(strings.Fields(c)[0])
		}
		if m, ok := strings.CutPrefix(l, "m=audio "); ok {
			port, _ = strconv.Atoi(strings.Fields(m)[0])
		}
	}
	if !ip.IsValid() || port == 0 {
		return netip.AddrPort{}, errors.New("SDP answer without c= or m=audio")
	}
	return netip.AddrPortFrom(ip, uint16(port)), nil
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// probe is one probe call.
type probe struct {
	target  string // the node's SIP host:port
	sip     *net.UDPConn
	rtp     *net.UDPConn
	callID  string
	fromTag string
	toTag   string
	contact string // the node's Contact URI, where in-dialog requests go
	msgs    chan *sipMsg
}

// runProbe places one call, keeps it up for hold while sending PCMA and
// timing what arrives, and hangs up.
func runProbe(ctx context.Context, target string, hold time.Duration, n int) (res probeResult) {
	p := &probe{target: target, callID: randHex(12) + "@sbbench", fromTag: randHex(6), msgs: make(chan *sipMsg, 16)}
	fail := func(format string, args ...any) probeResult {
		res.Err = fmt.Sprintf(format, args...)
		return res
	}
	var err error
	if p.sip, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(probeIP+":0"))); err != nil {
		return fail("sip socket: %v", err)
	}
	defer p.sip.Close()
	if p.rtp, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(probeIP+":0"))); err != nil {
		return fail("rtp socket: %v", err)
	}
	defer p.rtp.Close()
	if err := timestampNS(p.rtp); err != nil {
		return fail("SO_TIMESTAMPNS: %v", err)
	}
	go p.readSIP()

	// INVITE until a final response.
	rtpPort := p.rtp.LocalAddr().(*net.UDPAddr).Port
	sdp := fmt.Sprintf("v=0\r\no=probe %d 1 IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP 8 101\r\n"+
		"a=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n",
		n, probeIP, probeIP, rtpPort)
	inviteBranch := "z9hG4bK" + randHex(8)
	invite := p.request("INVITE", "sip:"+benchNumber+"@"+target, inviteBranch, 1, "", sdp)
	start := time.Now()
	var ok *sipMsg
	retrans := time.NewTimer(500 * time.Millisecond)
	defer retrans.Stop()
	provisional := false
	deadline := time.After(20 * time.Second)
wait:
	for {
		if err := p.send(invite, target); err != nil && !provisional {
			return fail("send INVITE: %v", err)
		}
		retrans.Reset(500 * time.Millisecond)
		for {
			select {
			case <-ctx.Done():
				return fail("cancelled")
			case <-deadline:
				return fail("no final response to INVITE in 20 s")
			case <-retrans.C:
				if provisional {
					retrans.Reset(500 * time.Millisecond)
					continue
				}
				continue wait
			case m := <-p.msgs:
				switch {
				case m.status >= 100 && m.status < 200:
					provisional = true
				case m.status >= 200 && m.status < 300:
					ok = m
					break wait
				case m.status >= 300:
					p.send(p.ackFor(m, inviteBranch), target)
					return fail("INVITE answered %d", m.status)
				}
			}
		}
	}
	res.Setup = time.Since(start)
	res.Answered = true
	p.toTag = tagOf(ok.get("to"))
	p.contact = uriOf(ok.get("contact"))
	if p.contact == "" {
		p.contact = "sip:" + benchNumber + "@" + target
	}
	dest := uriHostPort(p.contact)
	remote, err := sdpMedia(ok.body)
	if err != nil {
		return fail("%v", err)
	}
	ack := p.request("ACK", p.contact, "z9hG4bK"+randHex(8), 1, p.toTag, "")
	p.send(ack, dest)

	// Media: send 20 ms PCMA frames (the node would end a silent call as
	// inactive) and time what arrives.
	mctx, stop := context.WithTimeout(ctx, hold)
	defer stop()
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); sendRTP(mctx, p.rtp, remote) }()
	var rx rtpTimes
	go func() { defer wg.Done(); rx = receiveRTP(mctx, p.rtp) }()
	ended := ""
media:
	for {
		select {
		case <-mctx.Done():
			break media
		case m := <-p.msgs:
			switch {
			case m.status == 200 && strings.Contains(m.get("cseq"), "INVITE"):
				p.send(ack, dest) // our ACK was lost: the node retransmits its 200
			case m.method == "BYE":
				p.reply(m, 200, "OK")
				ended = "the node hung up"
				break media
			case m.method != "" && m.method != "ACK":
				p.reply(m, 200, "OK")
			}
		}
	}
	stop()
	wg.Wait()
	res.Packets, res.Lost, res.Gaps = rx.stats()
	if ended != "" {
		return fail("%s", ended)
	}
	if ctx.Err() != nil {
		return fail("cancelled")
	}

	// BYE until 200.
	bye := p.request("BYE", p.contact, "z9hG4bK"+randHex(8), 2, p.toTag, "")
	for range 7 {
		p.send(bye, dest)
		t := time.After(500 * time.Millisecond)
	byeWait:
		for {
			select {
			case m := <-p.msgs:
				if m.status >= 200 && strings.Contains(m.get("cseq"), "BYE") {
					return res
				}
			case <-t:
				break byeWait
			}
		}
	}
	return fail("no response to BYE")
}

func (p *probe) request(method, ruri, branch string, cseq int, toTag, body string) []byte {
	local := p.sip.LocalAddr().String()
	to := "<sip:" + benchNumber + "@" + p.target + ">"
	if toTag != "" {
		to += ";tag=" + toTag
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s SIP/2.0\r\n", method, ruri)
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s;branch=%s;rport\r\n", local, branch)
	fmt.Fprintf(&b, "From: \"sbbench probe\" <sip:probe@%s>;tag=%s\r\n", local, p.fromTag)
	fmt.Fprintf(&b, "To: %s\r\n", to)
	fmt.Fprintf(&b, "Call-ID: %s\r\n", p.callID)
	fmt.Fprintf(&b, "CSeq: %d %s\r\n", cseq, method)
	fmt.Fprintf(&b, "Contact: <sip:probe@%s>\r\n", local)
	fmt.Fprintf(&b, "Max-Forwards: 70\r\n")
	if body != "" {
		fmt.Fprintf(&b, "Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return []byte(b.String())
}

// ackFor is the ACK of a non-2xx final response: same branch, the
// response's To (RFC 3261 §17.1.1.3).
func (p *probe) ackFor(m *sipMsg, branch string) []byte {
	return p.request("ACK", "sip:"+benchNumber+"@"+p.target, branch, 1, tagOf(m.get("to")), "")
}

func (p *probe) reply(req *sipMsg, code int, phrase string) {
	var b strings.Builder
	fmt.Fprintf(&b, "SIP/2.0 %d %s\r\n", code, phrase)
	for _, h := range []string{"via", "from", "to", "call-id", "cseq"} {
		for _, v := range req.headers[h] {
			fmt.Fprintf(&b, "%s: %s\r\n", h, v)
		}
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	dest := p.target
	if via := req.get("via"); via != "" {
		if f := strings.Fields(via); len(f) >= 2 {
			dest, _, _ = strings.Cut(f[1], ";")
		}
	}
	p.send([]byte(b.String()), dest)
}

func (p *probe) send(b []byte, dest string) error {
	a, err := netip.ParseAddrPort(dest)
	if err != nil {
		return err
	}
	_, err = p.sip.WriteToUDPAddrPort(b, a)
	return err
}

func (p *probe) readSIP() {
	buf := make([]byte, 65536)
	for {
		n, _, err := p.sip.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		m, err := parseSIP(append([]byte(nil), buf[:n]...))
		if err != nil {
			continue
		}
		select {
		case p.msgs <- m:
		default:
		}
	}
}

// sendRTP sends a 1 kHz tone in PCMA every 20 ms from the probe's RTP
// socket (so the node latches to it) until ctx is done.
func sendRTP(ctx context.Context, c *net.UDPConn, to netip.AddrPort) {
	var pcm [160]int16
	for i := range pcm {
		pcm[i] = int16(4000 * math.Sin(2*math.Pi*1000*float64(i)/8000))
	}
	pkt := make([]byte, 12+160)
	pkt[0], pkt[1] = 0x80, 8
	g711.EncodeAlaw(pkt[12:], pcm[:])
	ssrc := uint32(time.Now().UnixNano())
	binary.BigEndian.PutUint32(pkt[8:], ssrc)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for seq := uint16(0); ; seq++ {
		binary.BigEndian.PutUint16(pkt[2:], seq)
		binary.BigEndian.PutUint32(pkt[4:], uint32(seq)*160)
		_, _ = c.WriteToUDPAddrPort(pkt, to)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// rtpTimes are the kernel arrival times and sequence numbers of the audio
// packets a probe received.
type rtpTimes struct {
	at  []int64 // ns, CLOCK_REALTIME from SO_TIMESTAMPNS
	seq []uint16
}

func receiveRTP(ctx context.Context, c *net.UDPConn) rtpTimes {
	var r rtpTimes
	buf := make([]byte, 1500)
	oob := make([]byte, 128)
	for ctx.Err() == nil {
		_ = c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
		n, oobn, _, _, err := c.ReadMsgUDP(buf, oob)
		if err != nil {
			continue
		}
		if n < 12 || buf[0]>>6 != 2 || buf[1]&0x7f != 8 {
			continue // not PCMA audio (RFC 4733 events, RTCP)
		}
		ts, ok := kernelTime(oob[:oobn])
		if !ok {
			ts = time.Now().UnixNano()
		}
		r.at = append(r.at, ts)
		r.seq = append(r.seq, binary.BigEndian.Uint16(buf[2:]))
	}
	return r
}

// stats returns the packets received, the sequence numbers skipped, and
// the arrival gaps between packets with consecutive sequence numbers.
func (r rtpTimes) stats() (packets, lost int, gaps []time.Duration) {
	for i := 1; i < len(r.seq); i++ {
		d := r.seq[i] - r.seq[i-1]
		switch {
		case d == 1:
			gaps = append(gaps, time.Duration(r.at[i]-r.at[i-1]))
		case d > 1 && d < 1000:
			lost += int(d - 1)
		}
	}
	return len(r.seq), lost, gaps
}

// timestampNS asks the kernel for the arrival time of every datagram.
func timestampNS(c *net.UDPConn) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	err = rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	})
	return errors.Join(err, serr)
}

// kernelTime finds SCM_TIMESTAMPNS in a control message.
func kernelTime(oob []byte) (int64, bool) {
	msgs, err := syscall.ParseSocketControlMessage(oob)
	if err != nil {
		return 0, false
	}
	for _, m := range msgs {
		// struct timespec on 64-bit Linux: two native-endian int64s.
		if m.Header.Level == syscall.SOL_SOCKET && m.Header.Type == syscall.SCM_TIMESTAMPNS && len(m.Data) >= 16 {
			sec := int64(binary.NativeEndian.Uint64(m.Data[0:]))
			nsec := int64(binary.NativeEndian.Uint64(m.Data[8:]))
			return sec*1e9 + nsec, true
		}
	}
	return 0, false
}
