package callctl_test

import (
	"context"
	"errors"
	"math"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

const wait = 10 * time.Second

// phone is an in-process SIP phone: a sipgo user agent on its own
// loopback address, whose RTP is a media.Session of an engine of its own,
// so a test plays, records and presses keys on it and checks what it
// hears as audio.
type phone struct {
	t       *testing.T
	ip      string
	user    string
	ua      *sipgo.UserAgent
	cli     *sipgo.Client
	addr    netip.AddrPort
	sess    *media.Session
	events  chan media.Event
	servers *sipgo.DialogServerCache
	clients *sipgo.DialogClientCache
	invites chan *sipgo.DialogServerSession
	byes    chan struct{}
}

func newPhone(t *testing.T, ip, user string) *phone {
	t.Helper()
	ph := &phone{t: t, ip: ip, user: user, events: make(chan media.Event, 64),
		invites: make(chan *sipgo.DialogServerSession, 4), byes: make(chan struct{}, 4)}

	eng, err := media.NewEngine(media.EngineOptions{BindIP: netip.MustParseAddr(ip)})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	engDone := make(chan struct{})
	go func() { defer close(engDone); _ = eng.Run(ctx) }()
	ph.sess, err = eng.NewSession(func(e media.Event) {
		select {
		case ph.events <- e:
		default:
		}
	})
	if err != nil {
		t.Fatal(err)
	}

	ph.ua, err = sipgo.NewUA(sipgo.WithUserAgentHostname(ip))
	if err != nil {
		t.Fatal(err)
	}
	udp, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(netip.MustParseAddr(ip), 0)))
	if err != nil {
		t.Fatal(err)
	}
	ph.addr = udp.LocalAddr().(*net.UDPAddr).AddrPort()
	srv, _ := sipgo.NewServer(ph.ua)
	ph.cli, _ = sipgo.NewClient(ph.ua, sipgo.WithClientHostname(ip), sipgo.WithClientPort(int(ph.addr.Port())),
		sipgo.WithClientConnectionAddr(ph.addr.String()))
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: user, Host: ip, Port: int(ph.addr.Port())}}
	ph.servers = sipgo.NewDialogServerCache(ph.cli, contact)
	ph.clients = sipgo.NewDialogClientCache(ph.cli, contact)
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		dlg, err := ph.servers.ReadInvite(req, tx)
		if err != nil {
			t.Errorf("phone %s: read INVITE: %v", user, err)
			return
		}
		ph.invites <- dlg
		<-tx.Done()
	})
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) { _ = ph.servers.ReadAck(req, tx) })
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if err := ph.servers.ReadBye(req, tx); errors.Is(err, sipgo.ErrDialogDoesNotExists) || errors.Is(err, sipgo.ErrDialogOutsideDialog) {
			if err := ph.clients.ReadBye(req, tx); err != nil {
				_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "No dialog", nil))
			}
		}
		ph.byes <- struct{}{}
	})
	// The client sends from the server's socket, which sipgo knows of
	// only once ServeUDP reads from it.
	ready := &readyConn{PacketConn: udp, ready: make(chan struct{})}
	srvDone := make(chan struct{})
	go func() { defer close(srvDone); _ = srv.ServeUDP(ready) }()
	<-ready.ready
	t.Cleanup(func() {
		ph.ua.Close()
		udp.Close()
		<-srvDone
		ph.sess.Close()
		cancel()
		<-engDone
	})
	return ph
}

// readyConn tells when its first read began.
type readyConn struct {
	net.PacketConn
	once  sync.Once
	ready chan struct{}
}

func (c *readyConn) ReadFrom(b []byte) (int, net.Addr, error) {
	c.once.Do(func() { close(c.ready) })
	return c.PacketConn.ReadFrom(b)
}

// sdp offers or answers codec (PCMU or PCMA) and RFC 4733 at the phone's RTP.
func (ph *phone) sdp(c media.Codec) []byte {
	pt := strconv.Itoa(int(c.PayloadType))
	return []byte("v=0\r\no=phone 1 1 IN IP4 " + ph.ip + "\r\ns=phone\r\nc=IN IP4 " + ph.ip + "\r\nt=0 0\r\n" +
		"m=audio " + strconv.Itoa(int(ph.sess.LocalAddr().Port())) + " RTP/AVP " + pt + " 101\r\n" +
		"a=rtpmap:" + pt + " " + c.Name + "/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-16\r\na=sendrecv\r\n")
}

// connect points the phone's RTP at what the platform's SDP says; an
// answering phone gives the codec it chose from the offer.
func (ph *phone) connect(body []byte, chosen media.Codec) {
	ph.t.Helper()
	var ip netip.Addr
	var port int
	codec, dtmf := media.Codec{}, uint8(0)
	for _, line := range strings.Split(string(body), "\n") {
		line = strings.TrimSpace(line)
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "c=IN IP4 ") && len(f) == 3:
			ip, _ = netip.ParseAddr(f[2])
		case strings.HasPrefix(line, "m=audio ") && len(f) > 3:
			port, _ = strconv.Atoi(f[1])
			switch f[3] {
			case "0":
				codec = media.PCMU
			case "8":
				codec = media.PCMA
			}
		case strings.HasPrefix(line, "a=rtpmap:") && strings.Contains(line, "telephone-event"):
			n, _ := strconv.Atoi(strings.TrimPrefix(f[0], "a=rtpmap:"))
			dtmf = uint8(n)
		}
	}
	if chosen.Name != "" {
		codec = chosen
	}
	if !ip.IsValid() || port == 0 || codec.Name == "" {
		ph.t.Fatalf("phone %s: cannot use SDP %q", ph.user, body)
	}
	ph.sess.SetRemote(netip.AddrPortFrom(ip, uint16(port)), codec, dtmf)
}

func (ph *phone) register(gw netip.AddrPort, password string) {
	ph.t.Helper()
	req := sip.NewRequest(sip.REGISTER, sip.Uri{Scheme: "sip", Host: gw.Addr().String(), Port: int(gw.Port())})
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: ph.user, Host: gw.Addr().String()}})
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: ph.user, Host: gw.Addr().String()}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: ph.user, Host: ph.ip, Port: int(ph.addr.Port())}})
	req.AppendHeader(sip.NewHeader("Expires", "300"))
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	res, err := ph.cli.Do(ctx, req)
	if err == nil && res.StatusCode == 401 {
		res, err = ph.cli.DoDigestAuth(ctx, req, res, sipgo.DigestAuth{Username: ph.user, Password: password})
	}
	if err != nil || res.StatusCode != 200 {
		ph.t.Fatalf("register %s: %v %v", ph.user, res, err)
	}
}

// callBot calls the bot's number from a trunk phone and returns the
// dialog, the INVITE's outcome to come and the incoming call.
func (ph *phone) callBot(ctx context.Context, p *calltest.Platform) (*sipgo.DialogClientSession, <-chan error, graph.Call) {
	ph.t.Helper()
	gw := p.Node.SIP.Addr()
	to := sip.Uri{Scheme: "sip", User: calltest.BotNumber, Host: gw.Addr().String(), Port: int(gw.Port())}
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: ph.user, Host: ph.ip}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(8))
	dlg, err := ph.clients.Invite(ctx, to, ph.sdp(media.PCMU), from, sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		ph.t.Fatal(err)
	}
	answered := make(chan error, 1)
	go func() { answered <- dlg.WaitAnswer(ctx, sipgo.AnswerOptions{}) }()
	var call graph.Call
	p.Hook.Wait(ph.t, "", wait, "incoming call", func(ns []calltest.Notification) bool {
		for _, n := range ns {
			if n.ChangeType == graph.ChangeCreated {
				if c := n.Call(ph.t); c.Source != nil && c.Source.Identity.Phone != nil && c.Source.Identity.Phone.ID == ph.user {
					call = c
					return true
				}
			}
		}
		return false
	})
	return dlg, answered, call
}

// established waits for the platform's 200 and acknowledges it.
func (ph *phone) established(ctx context.Context, dlg *sipgo.DialogClientSession, answered <-chan error) {
	ph.t.Helper()
	select {
	case err := <-answered:
		if err != nil {
			ph.t.Fatalf("%s was not answered: %v", ph.user, err)
		}
	case <-time.After(wait):
		ph.t.Fatalf("%s was not answered", ph.user)
	}
	ph.connect(dlg.InviteResponse.Body(), media.Codec{})
	if err := dlg.Ack(ctx); err != nil {
		ph.t.Fatal(err)
	}
}

// hangUp sends BYE on a call the phone placed.
func (ph *phone) hangUp(ctx context.Context, dlg *sipgo.DialogClientSession) {
	ph.t.Helper()
	bye := sip.NewRequest(sip.BYE, *dlg.InviteResponse.Contact().Address.Clone())
	bye.Laddr = sip.Addr{IP: net.IP(ph.addr.Addr().AsSlice()), Port: int(ph.addr.Port())}
	if err := dlg.WriteBye(ctx, bye); err != nil {
		ph.t.Fatal(err)
	}
}

// hear records what the phone receives while from plays a pattern of
// tone bursts, and checks it as audio: the bursts arrive in order, each
// at its pitch (Goertzel) and about its length. Unlike an envelope
// correlation over the whole pattern, this holds when a jitter buffer
// under load inserts a pause, which only shifts what follows.
func hear(t *testing.T, from, to *phone, seed int) {
	t.Helper()
	src, bursts := pattern(seed)
	audio := media.NewAudio(src)
	margin := 40
	var mu sync.Mutex
	var got []int16
	full := make(chan struct{})
	to.sess.Record(media.RecordOptions{}, func(pcm []int16) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, pcm...)
		if len(got) == (audio.Frames()+margin)*media.SamplesPerFrame {
			close(full)
		}
	}, nil)
	from.sess.Play(audio, false, nil)
	select {
	case <-full:
	case <-time.After(wait):
		t.Fatalf("%s heard too little", to.user)
	}
	to.sess.StopRecord()
	mu.Lock()
	defer mu.Unlock()
	corr, lag := envelopeCorrelation(envelope(got), envelope(audio.PCM()), margin)
	t.Logf("%s → %s: envelope correlation %.4f, lag %v", from.user, to.user, corr, time.Duration(lag)*media.FrameDuration)
	freqs := make([]float64, len(bursts))
	for i, b := range bursts {
		freqs[i] = b.freq
	}
	heard := toneRuns(got, freqs, 4)
	ok := len(heard) == len(bursts)
	for i := 0; ok && i < len(bursts); i++ {
		ok = heard[i].freq == bursts[i].freq && heard[i].frames >= bursts[i].frames-3 && heard[i].frames <= bursts[i].frames+2
	}
	if !ok {
		t.Fatalf("%s → %s: heard bursts %v, want %v", from.user, to.user, heard, bursts)
	}
}

// burst is a tone of freq Hz lasting frames 20 ms frames.
type burst struct {
	freq   float64
	frames int
}

// toneRuns labels each 20 ms frame of pcm with the frequency of freqs that
// holds most of its energy (if one holds more than half of it) and
// returns the runs of labelled frames, in order. Pauses of up to
// maxPause frames inside a run of one frequency are not counted and do
// not split it.
func toneRuns(pcm []int16, freqs []float64, maxPause int) []burst {
	var runs []burst
	pause := 0
	for f := 0; f+media.SamplesPerFrame <= len(pcm); f += media.SamplesPerFrame {
		x := pcm[f : f+media.SamplesPerFrame]
		var energy float64
		for _, v := range x {
			energy += float64(v) * float64(v)
		}
		label := 0.0
		if energy/media.SamplesPerFrame > 300*300 {
			best := 0.0
			for _, fr := range freqs {
				if share := 2 * goertzel(x, fr) / (media.SamplesPerFrame * energy); share > 0.5 && share > best {
					best, label = share, fr
				}
			}
		}
		switch {
		case label == 0:
			pause++
		case len(runs) > 0 && runs[len(runs)-1].freq == label && pause <= maxPause:
			runs[len(runs)-1].frames++
			pause = 0
		default:
			runs = append(runs, burst{label, 1})
			pause = 0
		}
	}
	return runs
}

// goertzel is |X(f)|² of x at 8 kHz.
func goertzel(x []int16, f float64) float64 {
	c := 2 * math.Cos(2*math.Pi*f/media.SampleRate)
	var s1, s2 float64
	for _, v := range x {
		s1, s2 = float64(v)+c*s1-s2, s1
	}
	return s1*s1 + s2*s2 - c*s1*s2
}

func envelope(pcm []int16) []float64 {
	env := make([]float64, len(pcm)/media.SamplesPerFrame)
	for i := range env {
		var s float64
		for _, v := range pcm[i*media.SamplesPerFrame : (i+1)*media.SamplesPerFrame] {
			s += float64(v) * float64(v)
		}
		env[i] = math.Sqrt(s / media.SamplesPerFrame)
	}
	return env
}

func envelopeCorrelation(got, want []float64, maxLag int) (corr float64, lag int) {
	corr = -2
	for l := 0; l <= maxLag && l+len(want) <= len(got); l++ {
		var mx, my float64
		for i := range want {
			mx, my = mx+got[l+i], my+want[i]
		}
		mx, my = mx/float64(len(want)), my/float64(len(want))
		var xy, xx, yy float64
		for i := range want {
			x, y := got[l+i]-mx, want[i]-my
			xy, xx, yy = xy+x*y, xx+x*x, yy+y*y
		}
		if xx > 0 && yy > 0 && xy/math.Sqrt(xx*yy) > corr {
			corr, lag = xy/math.Sqrt(xx*yy), l
		}
	}
	return corr, lag
}

// pattern is bursts of tone of varying pitch (no two alike), length and
// level, with pauses between.
func pattern(seed int) ([]int16, []burst) {
	var pcm []int16
	var bursts []burst
	for i, ms := range []int{120, 300, 80, 220, 160, 60, 260} {
		f := 400 + float64((i*7+seed)%9)*90
		a := 3000 + float64((i*5+seed)%7)*1200
		for k := range ms * 8 {
			pcm = append(pcm, int16(a*math.Sin(2*math.Pi*f*float64(k)/8000)))
		}
		pcm = append(pcm, make([]int16, (100+40*((i+seed)%4))*8)...)
		bursts = append(bursts, burst{f, ms / 20})
	}
	return pcm, bursts
}

// A caller on a trunk calls the bot, which redirects the call to a SIP
// user: the caller (PCMU) and the user (PCMA) hear each other through
// the platform, and the caller's keys reach the user.
func TestRedirectBridgesMedia(t *testing.T) {
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		c.SIP.Trunks = []config.Trunk{{Name: "pstn", Address: "127.0.0.2:5999", AllowFrom: []string{"127.0.0.2"}}}
	}})
	caller := newPhone(t, "127.0.0.2", "+15557770002")
	eve := newPhone(t, "127.0.0.3", "eve")
	eve.register(p.Node.SIP.Addr(), calltest.EvePassword)

	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
	defer cancel()
	dlg, answered, call := caller.callBot(ctx, p)
	r := p.Bot("POST", "/v1.0/communications/calls/"+call.ID+"/redirect", map[string]any{
		"targets": []any{map[string]any{"@odata.type": "#microsoft.graph.invitationParticipantInfo",
			"identity": map[string]any{"user": map[string]any{"id": calltest.EveID}}}}})
	if r.StatusCode != 202 {
		t.Fatalf("redirect: %s %s", r.Status, r.Body)
	}

	var inv *sipgo.DialogServerSession
	select {
	case inv = <-eve.invites:
	case <-time.After(wait):
		t.Fatal("eve's phone did not ring")
	}
	eve.connect(inv.InviteRequest.Body(), media.PCMA)
	if err := inv.RespondSDP(eve.sdp(media.PCMA)); err != nil {
		t.Fatal(err)
	}
	caller.established(ctx, dlg, answered)
	end := p.Hook.WaitState(t, call.ID, graph.StateTerminated).Call(t)
	if end.ResultInfo == nil || end.ResultInfo.Subcode != 9004 {
		t.Fatalf("the bot's call ended with %+v, want redirected", end.ResultInfo)
	}

	hear(t, caller, eve, 1)
	hear(t, eve, caller, 2)

	eve.sess.DetectTones(true)
	caller.sess.SendTones("47#", 120*time.Millisecond, nil)
	var keys []byte
	for timeout := time.After(wait); len(keys) < 3; {
		select {
		case e := <-eve.events:
			if e.Kind == media.EventTone {
				keys = append(keys, e.Tone)
			}
		case <-timeout:
			t.Fatalf("eve heard keys %q, want 47#", keys)
		}
	}
	if string(keys) != "47#" {
		t.Fatalf("eve heard keys %q, want 47#", keys)
	}

	// The caller hangs up: eve's phone gets a BYE.
	caller.hangUp(ctx, dlg)
	select {
	case <-eve.byes:
	case <-time.After(wait):
		t.Fatal("eve's phone got no BYE")
	}
}

// Hold music over SIP: a caller the bot answered hears the built-in chime,
// as audio, until the bot stops it; then nothing.
func TestHoldMusicOverSIP(t *testing.T) {
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		c.SIP.Trunks = []config.Trunk{{Name: "pstn", Address: "127.0.0.2:5999", AllowFrom: []string{"127.0.0.2"}}}
	}})
	caller := newPhone(t, "127.0.0.2", "+15557770003")
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
	defer cancel()
	dlg, answered, call := caller.callBot(ctx, p)
	base := "/v1.0/communications/calls/" + call.ID
	r := p.Bot("POST", base+"/answer", map[string]any{"acceptedModalities": []string{"audio"},
		"callbackUri": p.Hook.URL, "mediaConfig": map[string]any{"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}})
	if r.StatusCode != 202 {
		t.Fatalf("answer: %s %s", r.Status, r.Body)
	}
	caller.established(ctx, dlg, answered)
	p.Hook.WaitState(t, call.ID, graph.StateEstablished)

	op := func(r *calltest.Response) {
		t.Helper()
		var o graph.Operation
		r.JSON(t, &o)
		if r.StatusCode != 202 {
			t.Fatalf("%s %s", r.Status, r.Body)
		}
		p.Hook.Wait(t, call.ID, wait, o.ODataType+" completed", func(ns []calltest.Notification) bool {
			for _, n := range ns {
				if strings.HasSuffix(n.ResourceURL, "/operations/"+o.ID) && n.Operation(t).Status == graph.OperationCompleted {
					return true
				}
			}
			return false
		})
	}
	pid := call.Source.ID
	op(p.Bot("POST", base+"/participants/"+pid+"/startHoldMusic", map[string]any{"clientContext": "hold"}))

	// One loop of the chime and a little more: its envelope is there.
	chime := media.HoldChime().PCM()
	margin := 60
	var mu sync.Mutex
	var got []int16
	full := make(chan struct{})
	caller.sess.Record(media.RecordOptions{}, func(pcm []int16) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, pcm...)
		if len(got) == len(chime)+margin*media.SamplesPerFrame {
			close(full)
		}
	}, nil)
	select {
	case <-full:
	case <-time.After(wait):
		t.Fatal("the caller heard too little")
	}
	caller.sess.StopRecord()
	mu.Lock()
	corr, lag := envelopeCorrelation(envelope(got), envelope(chime), margin)
	// The chime as audio: C5 rings alone for half a second, then A4 takes
	// over (Goertzel), whatever the delay and any pause a jitter buffer
	// inserts.
	runs := toneRuns(got, []float64{523.25, 440}, 4)
	mu.Unlock()
	t.Logf("hold chime: envelope correlation %.4f at %v; runs %v", corr, time.Duration(lag)*media.FrameDuration, runs)
	chimed := false
	for i := 0; i+1 < len(runs); i++ {
		if runs[i].freq == 523.25 && runs[i].frames >= 15 && runs[i+1].freq == 440 && runs[i+1].frames >= 15 {
			chimed = true
		}
	}
	if !chimed {
		t.Fatalf("the caller did not hear the chime (C5 then A4): %v", runs)
	}

	op(p.Bot("POST", base+"/participants/"+pid+"/stopHoldMusic", map[string]any{}))
	mu.Lock()
	got = nil
	mu.Unlock()
	quiet := make(chan struct{})
	caller.sess.Record(media.RecordOptions{}, func(pcm []int16) {
		mu.Lock()
		defer mu.Unlock()
		got = append(got, pcm...)
		if len(got) == 250*media.SamplesPerFrame { // 5 s: a whole loop would have chimed
			close(quiet)
		}
	}, nil)
	select {
	case <-quiet:
	case <-time.After(wait):
		t.Fatal("recording after stopHoldMusic got too little")
	}
	caller.sess.StopRecord()
	mu.Lock()
	defer mu.Unlock()
	// The first frames may still be the music in the jitter buffers.
	if e := envelope(got[10*media.SamplesPerFrame:]); slices.Max(e) > 50 {
		t.Fatalf("music after stopHoldMusic: frame rms up to %.0f", slices.Max(e))
	}
	caller.hangUp(ctx, dlg)
	p.Hook.WaitState(t, call.ID, graph.StateTerminated)
}
