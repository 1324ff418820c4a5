package media

import (
	"errors"
	"fmt"
	"math"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/switchboard-voice/switchboard/internal/media/g711"
	"github.com/switchboard-voice/switchboard/internal/media/mixer"
)

// The far ends' tones: each member's phone sends its own, and the bot
// plays promptFreq. Whole numbers of cycles in a second, so a one-second
// Audio loops without a click, and 150 Hz or more apart.
var memberFreqs = []float64{600, 1050, 1750}

const (
	promptFreq = 450
	toneAmp    = 6000 // about -15 dBFS: three of them sum without limiting
	heardAmp   = 2000 // a tone this strong (amplitude) in what a phone hears is heard
	absentAmp  = 150  // and one this weak is not (G.711 noise is far below)
)

// confRig is a group call as the platform runs it: every member's phone
// (a far-end session on an engine of its own, playing its tone) talks to
// a platform session on the platform's engine, and the platform sessions
// are members of one conference.
type confRig struct {
	t        *testing.T
	platform *Engine
	conf     *Conference
	members  []*confPeer
}

// confPeer is a member: the platform's session and the phone's.
type confPeer struct {
	pid        string
	s, phone   *Session
	sev, phEv  events
	freq       float64
	codec      Codec
	dtmfPT     uint8
	phoneAudio *Audio
}

// newConfRig makes a conference of len(codecs) members, the i-th
// negotiating codecs[i] (RFC 4733 on payload type 101 unless inband[i]),
// whose phones send memberFreqs[i].
func newConfRig(t *testing.T, codecs []Codec, inband []bool) *confRig {
	t.Helper()
	r := &confRig{t: t, platform: startEngine(t, EngineOptions{})}
	phones := startEngine(t, EngineOptions{})
	var err error
	r.conf, err = r.platform.NewConference(ConferenceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.conf.Close)
	for i, c := range codecs {
		m := &confPeer{pid: fmt.Sprintf("p%d", i), freq: memberFreqs[i], codec: c, dtmfPT: 101}
		if inband != nil && inband[i] {
			m.dtmfPT = 0
		}
		m.s, m.sev = newSession(t, r.platform)
		m.phone, m.phEv = newSession(t, phones)
		m.s.SetRemote(m.phone.LocalAddr(), c, m.dtmfPT)
		m.phone.SetRemote(m.s.LocalAddr(), c, m.dtmfPT)
		m.phoneAudio = NewAudio(sine(m.freq, toneAmp, time.Second))
		m.phone.Play(m.phoneAudio, true, nil)
		if err := r.conf.Add(m.pid, m.s); err != nil {
			t.Fatal(err)
		}
		r.members = append(r.members, m)
	}
	return r
}

// settleFrames is how long a change takes to be heard everywhere, with
// room: two jitter buffers (three frames each), the conference, the
// network, a late tick.
const settleFrames = 15

// listen records what the phone hears, or what a conference's port
// records, for settleFrames then n frames, and returns the n.
func listen(t *testing.T, phone mediaPort, n int) []int16 {
	t.Helper()
	rec := newRecorder(settleFrames + n)
	phone.Record(RecordOptions{}, rec.sink, rec.done)
	rec.waitFull(t)
	phone.StopRecord()
	rec.waitResult(t)
	return rec.samples()[settleFrames*SamplesPerFrame:][:n*SamplesPerFrame]
}

// goertzel returns the amplitude of pcm's freq Hz component.
func goertzel(pcm []int16, freq float64) float64 {
	coeff := 2 * math.Cos(2*math.Pi*freq/SampleRate)
	var s1, s2 float64
	for _, v := range pcm {
		s1, s2 = float64(v)+coeff*s1-s2, s1
	}
	return 2 * math.Sqrt(max(s1*s1+s2*s2-coeff*s1*s2, 0)) / float64(len(pcm))
}

// heard checks which of freqs are in pcm: want[i] says whether freqs[i]
// should be.
func heard(t *testing.T, who string, pcm []int16, freqs []float64, want []bool) {
	t.Helper()
	for i, f := range freqs {
		a := goertzel(pcm, f)
		switch {
		case want[i] && a < heardAmp:
			t.Errorf("%s does not hear %v Hz: amplitude %.0f < %d", who, f, a, heardAmp)
		case !want[i] && a > absentAmp:
			t.Errorf("%s hears %v Hz: amplitude %.0f > %d", who, f, a, absentAmp)
		default:
			t.Logf("%s: %v Hz at amplitude %.0f", who, f, a)
		}
	}
}

// expect checks what every phone hears: the members' tones, heard as
// hears(listener, talker) says, and the prompt as prompt says.
func (r *confRig) expect(hears func(listener, talker int) bool, prompt bool) {
	r.t.Helper()
	r.expectPrompts(hears, []float64{promptFreq}, []bool{prompt})
}

// expectPrompts checks what every phone hears: the members' tones, heard
// as hears(listener, talker) says, and each of prompts (frequencies) as
// heard says.
func (r *confRig) expectPrompts(hears func(listener, talker int) bool, prompts []float64, promptHeard []bool) {
	r.t.Helper()
	var wg sync.WaitGroup
	pcms := make([][]int16, len(r.members))
	for i, m := range r.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pcms[i] = listen(r.t, m.phone, 25)
		}()
	}
	wg.Wait()
	var freqs []float64
	for _, m := range r.members {
		freqs = append(freqs, m.freq)
	}
	freqs = append(freqs, prompts...)
	for i, m := range r.members {
		want := make([]bool, 0, len(freqs))
		for j := range r.members {
			want = append(want, hears(i, j))
		}
		want = append(want, promptHeard...)
		heard(r.t, m.pid+"'s phone", pcms[i], freqs, want)
	}
}

// Everyone hears everyone but themselves (N−1), across PCMU and PCMA.
func TestConferenceEveryoneButThemselves(t *testing.T) {
	t.Parallel()
	r := newConfRig(t, []Codec{PCMU, PCMA, PCMU}, nil)
	r.expect(func(l, k int) bool { return l != k }, false)
	if st := r.conf.Stats(); st.Missing != 0 || st.Dropped != 0 {
		t.Errorf("mixer stats %+v: frames missing or dropped", st)
	}
}

// A muted member is heard by nobody and still hears everyone; unmuted, it
// is heard again.
func TestConferenceMuteMember(t *testing.T) {
	t.Parallel()
	r := newConfRig(t, []Codec{PCMU, PCMU, PCMA}, nil)
	r.conf.MuteMember("p1", true)
	r.expect(func(l, k int) bool { return l != k && k != 1 }, false)
	r.conf.MuteMember("p1", false)
	r.expect(func(l, k int) bool { return l != k }, false)
}

// A member removed neither hears nor is heard, and its session is an
// ordinary one again: what it plays reaches its phone.
func TestConferenceRemove(t *testing.T) {
	t.Parallel()
	r := newConfRig(t, []Codec{PCMU, PCMA, PCMU}, nil)
	r.conf.Remove("p1")
	r.conf.Remove("nobody")
	r.expect(func(l, k int) bool { return l != k && l != 1 && k != 1 }, false)

	own := NewAudio(sine(promptFreq, toneAmp, time.Second))
	r.members[1].s.Play(own, true, nil)
	heard(t, "p1's phone, removed", listen(t, r.members[1].phone, 25), []float64{promptFreq, memberFreqs[0]}, []bool{true, false})
	r.members[1].s.StopPlay()

	// And it may join again.
	if err := r.conf.Add("p1", r.members[1].s); err != nil {
		t.Fatal(err)
	}
	r.expect(func(l, k int) bool { return l != k }, false)
}

// What the conference plays everyone hears, alongside the others; muted,
// nobody does, and the play keeps time.
func TestConferencePlay(t *testing.T) {
	t.Parallel()
	r := newConfRig(t, []Codec{PCMU, PCMA, PCMU}, nil)
	prompt := NewAudio(sine(promptFreq, toneAmp, time.Second))
	r.conf.Play(prompt, true, nil)
	r.expect(func(l, k int) bool { return l != k }, true)

	r.conf.SetMuted(true)
	r.expect(func(l, k int) bool { return l != k }, false)
	r.conf.SetMuted(false)

	// A short prompt completes; a replaced one gets false.
	done, waitDone := playDone(t)
	r.conf.Play(NewAudio(sine(promptFreq, toneAmp, 200*time.Millisecond)), false, done)
	if !waitDone() {
		t.Error("a prompt that played to its end: done(false)")
	}
	done, waitDone = playDone(t)
	r.conf.Play(prompt, true, done)
	r.conf.Play(prompt, true, nil)
	if waitDone() {
		t.Error("a replaced prompt: done(true)")
	}
	done, waitDone = playDone(t)
	r.conf.Play(prompt, true, done)
	r.conf.StopPlay()
	if waitDone() {
		t.Error("a stopped prompt: done(true)")
	}
	r.expect(func(l, k int) bool { return l != k }, false)
}

// The conference's recording is the mix of everyone, the bot's prompt
// included, in 8 kHz frames, and it ends as a session's does.
func TestConferenceRecord(t *testing.T) {
	t.Parallel()
	r := newConfRig(t, []Codec{PCMU, PCMA, PCMU}, nil)
	r.conf.Play(NewAudio(sine(promptFreq, toneAmp, time.Second)), true, nil)
	rec := newRecorder(settleFrames + 25)
	r.conf.Record(RecordOptions{MaxDuration: 2 * time.Second}, rec.sink, rec.done)
	rec.waitFull(t)
	pcm := rec.samples()[settleFrames*SamplesPerFrame:][:25*SamplesPerFrame]
	heard(t, "the recording", pcm, append(slices.Clone(memberFreqs), promptFreq), []bool{true, true, true, true})
	res := rec.waitResult(t)
	if res.Reason != RecordMaxDuration || res.Duration != 2*time.Second || !res.HeardSpeech {
		t.Errorf("result %+v, want max duration after 2s with speech", res)
	}
}

// A member's key press stops the conference's recording: RFC 4733 from
// one phone, in-band DTMF from another (its session looks for tones
// while the recording has stop tones).
func TestConferenceRecordStopTones(t *testing.T) {
	t.Parallel()
	r := newConfRig(t, []Codec{PCMU, PCMA, PCMU}, []bool{false, false, true})
	for _, tc := range []struct {
		member int
		tone   byte
	}{{0, '#'}, {2, '5'}} {
		rec := newRecorder(1 << 30)
		r.conf.Record(RecordOptions{StopTones: "#5"}, rec.sink, rec.done)
		waitTicks(t, r.members[1].phone, 5) // the recording is running
		r.members[tc.member].phone.SendTones(string(tc.tone), 0, nil)
		res := rec.waitResult(t)
		if res.Reason != RecordStopTone || res.Tone != tc.tone {
			t.Errorf("member %d pressed %c: result %+v", tc.member, tc.tone, res)
		}
	}
}

// A member's session still reports the tones its phone presses, RFC 4733
// and in-band, with DetectTones on the conference turning detection on
// for present and later members.
func TestConferenceMemberTones(t *testing.T) {
	t.Parallel()
	r := newConfRig(t, []Codec{PCMU, PCMA, PCMU}, []bool{false, true, false})
	r.conf.DetectTones(true)
	r.members[0].phone.SendTones("12#", 40*time.Millisecond, nil)
	if got := r.members[0].sev.tones(t, '#'); got != "12#" {
		t.Errorf("RFC 4733 member reported %q, want 12#", got)
	}
	r.members[1].phone.SendTones("47#", 0, nil)
	if got := r.members[1].sev.tones(t, '#'); got != "47#" {
		t.Errorf("in-band member reported %q, want 47#", got)
	}

	// A member added later detects tones too.
	m := r.members[2]
	r.conf.Remove(m.pid)
	m.s.DetectTones(false)
	if err := r.conf.Add(m.pid, m.s); err != nil {
		t.Fatal(err)
	}
	m.phone.SendTones("9", 0, nil)
	if e := m.sev.next(t, EventTone); e.Tone != '9' {
		t.Errorf("member added later reported %c, want 9", e.Tone)
	}
}

// A member session closed without Remove leaves the conference: the
// others go on hearing each other.
func TestConferenceMemberClosed(t *testing.T) {
	t.Parallel()
	r := newConfRig(t, []Codec{PCMU, PCMA, PCMU}, nil)
	if err := r.members[1].s.Close(); err != nil {
		t.Fatal(err)
	}
	r.members = slices.Delete(r.members, 1, 2)
	r.expect(func(l, k int) bool { return l != k }, false)
	r.conf.Remove("p1") // already gone: nothing
	if err := r.conf.Add("p9", r.members[0].s); !errors.Is(err, ErrMember) {
		t.Errorf("a member added twice under another name: %v", err)
	}
}

// A member on hold (its phone sends only) is sent nothing; taken off
// hold it hears the others again.
func TestConferenceDirection(t *testing.T) {
	t.Parallel()
	r := newConfRig(t, []Codec{PCMU, PCMU}, nil)
	// Replace the second phone with a plain socket that counts packets.
	peer := newUDPPeer(t)
	r.members[1].phone.Close() // else what it still sends latches s back to it
	s := r.members[1].s
	s.SetRemote(peer.addr(), PCMU, 101)
	// Latches the peer, should a packet of the phone's still be queued.
	peer.send(s.LocalAddr(), PCMU.PayloadType, 0, make([]byte, SamplesPerFrame))
	waitTicks(t, r.members[0].s, 5)
	if n := len(peer.sync(t)); n == 0 {
		t.Fatal("a member in sendrecv was sent nothing")
	}
	s.SetDirection(RecvOnly)
	waitTicks(t, r.members[0].s, 3) // a tick under way may still send
	peer.sync(t)
	waitTicks(t, r.members[0].s, 10)
	if n := len(peer.sync(t)); n != 0 {
		t.Errorf("a member on hold (recvonly) was sent %d packets", n)
	}
	s.SetDirection(SendRecv)
	waitTicks(t, r.members[0].s, 5)
	if n := len(peer.sync(t)); n == 0 {
		t.Error("a member off hold was sent nothing")
	}
}

// Close ends what the conference plays and records before it returns,
// and leaves the member sessions ordinary sessions.
func TestConferenceClose(t *testing.T) {
	t.Parallel()
	r := newConfRig(t, []Codec{PCMU, PCMA}, nil)
	played := make(chan bool, 1)
	recorded := make(chan RecordResult, 1)
	r.conf.Play(NewAudio(sine(promptFreq, toneAmp, time.Second)), true, func(ok bool) { played <- ok })
	r.conf.Record(RecordOptions{}, func([]int16) {}, func(res RecordResult) { recorded <- res })
	waitTicks(t, r.members[0].s, 3)
	r.conf.Close()
	select {
	case ok := <-played:
		if ok {
			t.Error("Play cancelled by Close: done(true)")
		}
	default:
		t.Error("Play's done had not run when Close returned")
	}
	select {
	case res := <-recorded:
		if res.Reason != RecordStopped {
			t.Errorf("Record cancelled by Close: %+v", res)
		}
	default:
		t.Error("Record's done had not run when Close returned")
	}
	r.conf.Close() // idempotent

	if err := r.conf.Add("p9", r.members[0].s); !errors.Is(err, ErrConferenceClosed) {
		t.Errorf("Add after Close: %v", err)
	}
	done, waitDone := playDone(t)
	r.conf.Play(Beep, false, done)
	if waitDone() {
		t.Error("Play after Close: done(true)")
	}
	r.conf.Record(RecordOptions{}, nil, func(res RecordResult) { recorded <- res })
	if res := <-recorded; res.Reason != RecordStopped {
		t.Errorf("Record after Close: %+v", res)
	}

	// The sessions are ordinary again: a bridge between them carries
	// each phone's tone to the other.
	stop := Bridge(r.members[0].s, r.members[1].s)
	defer stop()
	heard(t, "p0's phone, bridged", listen(t, r.members[0].phone, 25), memberFreqs[:2], []bool{false, true})
}

// What cannot be a member is refused: a bridged session, a session of
// another conference or engine, a closed one, a name taken. A member
// cannot be bridged.
func TestConferenceAddRefused(t *testing.T) {
	t.Parallel()
	e := startEngine(t, EngineOptions{})
	c, err := e.NewConference(ConferenceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	other, err := e.NewConference(ConferenceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	a, _ := newSession(t, e)
	b, _ := newSession(t, e)
	x, _ := newSession(t, e)

	stop := Bridge(a, b)
	if err := c.Add("a", a); !errors.Is(err, ErrMember) {
		t.Errorf("Add of a bridged session: %v", err)
	}
	stop()
	if err := c.Add("a", a); err != nil {
		t.Fatal(err)
	}
	if err := c.Add("a", x); err == nil {
		t.Error("a name added twice")
	}
	if err := other.Add("a", a); !errors.Is(err, ErrMember) {
		t.Errorf("Add of another conference's member: %v", err)
	}
	Bridge(a, b)
	b.mu.Lock()
	bridged := b.st.br != nil
	b.mu.Unlock()
	if bridged {
		t.Error("a conference member was bridged")
	}
	x.Close()
	if err := c.Add("x", x); err == nil {
		t.Error("a closed session added")
	}
	e2 := startEngine(t, EngineOptions{})
	y, _ := newSession(t, e2)
	if err := c.Add("y", y); err == nil {
		t.Error("a session of another engine added")
	}
	if _, err := e.NewConference(ConferenceOptions{Mixer: mixer.Options{OnDominant: func(*mixer.Participant) {}}}); err == nil {
		t.Error("Mixer.OnDominant accepted")
	}
}

// OnDominant names the member who talks.
func TestConferenceDominant(t *testing.T) {
	t.Parallel()
	got := make(chan string, 16)
	e := startEngine(t, EngineOptions{})
	phones := startEngine(t, EngineOptions{})
	c, err := e.NewConference(ConferenceOptions{OnDominant: func(pid string) { got <- pid }})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, pid := range []string{"quiet", "talker"} {
		s, _ := newSession(t, e)
		ph, _ := newSession(t, phones)
		s.SetRemote(ph.LocalAddr(), PCMU, 101)
		ph.SetRemote(s.LocalAddr(), PCMU, 101)
		if err := c.Add(pid, s); err != nil {
			t.Fatal(err)
		}
		if pid == "talker" {
			ph.Play(NewAudio(speechLike(2*time.Second, 3)), true, nil)
		}
	}
	select {
	case pid := <-got:
		if pid != "talker" {
			t.Errorf("dominant speaker %q, want talker", pid)
		}
	case <-time.After(wait):
		t.Fatal("no dominant speaker")
	}
	if d := c.Dominant(); d != "talker" {
		t.Errorf("Dominant() = %q", d)
	}
	if lvl, speaking, ok := c.Level("talker"); !ok || !speaking || lvl > 40 {
		t.Errorf("Level(talker) = %d, %v, %v", lvl, speaking, ok)
	}
	if _, _, ok := c.Level("nobody"); ok {
		t.Error("Level of a non-member")
	}
}

// rtpEnd is a phone made of a bare socket, for timing: it sends 20 ms
// PCMU frames on its own ticker and keeps what it receives with the time
// each packet arrived.
type rtpEnd struct {
	conn *net.UDPConn
	mu   sync.Mutex
	got  []arrival
	sent []time.Time // when each burst's first packet was sent

	marks chan struct{} // sync's packets, as they arrive
}

// sync returns once every packet sent to p before it has arrived: it
// sends itself a marker, queued behind them.
func (p *rtpEnd) sync(t *testing.T) {
	t.Helper()
	b, err := (&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 127, SSRC: syncSSRC}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.conn.WriteToUDPAddrPort(b, p.addr()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.marks:
	case <-time.After(wait):
		t.Fatalf("sync marker not back within %v", wait)
	}
}

// arrivals returns what arrived from ssrc.
func (p *rtpEnd) arrivals(ssrc uint32) []arrival {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []arrival
	for _, a := range p.got {
		if a.ssrc == ssrc {
			out = append(out, a)
		}
	}
	return out
}

type arrival struct {
	at   time.Time
	ssrc uint32
	ts   uint32
	pcm  [SamplesPerFrame]int16
}

func newRTPEnd(t *testing.T) *rtpEnd {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		t.Fatal(err)
	}
	p := &rtpEnd{conn: c, marks: make(chan struct{}, 1)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for {
			n, _, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			at := time.Now()
			var pk rtp.Packet
			if pk.Unmarshal(buf[:n]) == nil && pk.SSRC == syncSSRC {
				p.marks <- struct{}{}
				continue
			}
			if pk.Unmarshal(buf[:n]) != nil || pk.PayloadType != PCMU.PayloadType || len(pk.Payload) != SamplesPerFrame {
				continue
			}
			a := arrival{at: at, ssrc: pk.SSRC, ts: pk.Timestamp}
			g711.DecodeUlaw(a.pcm[:], pk.Payload)
			p.mu.Lock()
			p.got = append(p.got, a)
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() { c.Close(); <-done })
	return p
}

func (p *rtpEnd) addr() netip.AddrPort { return p.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// talk sends bursts of a 1 kHz tone (100 ms) every 400 ms, silence
// between, for n bursts, paced by a ticker as a phone's sound card would.
func (p *rtpEnd) talk(t *testing.T, to netip.AddrPort, n int) {
	t.Helper()
	burst := NewAudio(sine(1000, 8000, 100*time.Millisecond)).Payload(PCMU)
	quiet := NewAudio(make([]int16, SamplesPerFrame)).Payload(PCMU)
	tk := time.NewTicker(FrameDuration)
	defer tk.Stop()
	const period = 20 // frames
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: PCMU.PayloadType, SSRC: 0x7a1c}}
	for i := range (n + 1) * period {
		<-tk.C
		k := i%period - 5 // frame of the burst; 5 frames of silence first
		pl := quiet
		if i >= period && k >= 0 && k < 5 {
			pl = burst[k*SamplesPerFrame : (k+1)*SamplesPerFrame]
		}
		pkt.SequenceNumber, pkt.Timestamp, pkt.Payload = uint16(i), uint32(i*SamplesPerFrame), pl
		b, err := pkt.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := p.conn.WriteToUDPAddrPort(b, to); err != nil {
			t.Fatal(err)
		}
		if i >= period && k == 0 {
			p.mu.Lock()
			p.sent = append(p.sent, time.Now())
			p.mu.Unlock()
		}
	}
}

// delays matches each burst the talker sent with its onset where this
// end heard it; a sample's time is its packet's minus the rest of the
// frame after it (both ends alike).
func (p *rtpEnd) delays(talker *rtpEnd) []time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	talker.mu.Lock()
	defer talker.mu.Unlock()
	var out []time.Duration
	j := 0
	for _, sent := range talker.sent {
		onset := sent.Add(-FrameDuration) // the burst's first sample
		for ; j < len(p.got); j++ {
			a := p.got[j]
			if a.at.Before(sent) {
				continue
			}
			i := slices.IndexFunc(a.pcm[:], func(v int16) bool { return v > 2000 || v < -2000 })
			if i < 0 {
				continue
			}
			at := a.at.Add(-time.Duration(SamplesPerFrame-i) * time.Second / SampleRate)
			out = append(out, at.Sub(onset))
			for j < len(p.got) && slices.ContainsFunc(p.got[j].pcm[:], func(v int16) bool { return v > 2000 || v < -2000 }) {
				j++ // the rest of the burst
			}
			break
		}
	}
	return out
}

func median(ds []time.Duration) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// The conference adds no tick to the path from one phone to another: a
// frame is mixed and sent in the tick its jitter buffer played it out.
// Measured against a bridge (which adds under a tick) on loopback, mouth
// to ear: both include the receiving session's jitter buffer (about three
// frames) and the phase between a packet's arrival and the next tick.
func TestConferenceDelay(t *testing.T) {
	t.Parallel()
	const bursts = 8
	measure := func(connect func(x, y *Session)) time.Duration {
		e := startEngine(t, EngineOptions{})
		x, _ := newSession(t, e)
		y, _ := newSession(t, e)
		a, b := newRTPEnd(t), newRTPEnd(t)
		x.SetRemote(a.addr(), PCMU, 101)
		y.SetRemote(b.addr(), PCMU, 101)
		connect(x, y)
		a.talk(t, x.LocalAddr(), bursts)
		waitTicks(t, x, 10) // the last burst's way through
		d := b.delays(a)
		if len(d) < bursts-1 {
			t.Fatalf("heard %d of %d bursts", len(d), bursts)
		}
		return median(d)
	}
	var conf, bridge time.Duration
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		conf = measure(func(x, y *Session) {
			c, err := x.e.NewConference(ConferenceOptions{})
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(c.Close)
			c.Add("x", x)
			c.Add("y", y)
		})
	}()
	go func() {
		defer wg.Done()
		bridge = measure(func(x, y *Session) { t.Cleanup(Bridge(x, y)) })
	}()
	wg.Wait()
	t.Logf("mouth to ear, median of %d bursts: through a conference %v, through a bridge %v (difference %v)",
		bursts, conf.Round(100*time.Microsecond), bridge.Round(100*time.Microsecond), (conf - bridge).Round(100*time.Microsecond))
	// The jitter buffer's 60 ms, up to a tick of phase, the filters'
	// 4 ms; the bound leaves room for a loaded machine.
	if conf > bridge+2*FrameDuration {
		t.Errorf("the conference adds %v over a bridge: more than two ticks", conf-bridge)
	}
}

// loud reports whether a sample is part of the test's onset.
func loud(v int16) bool { return v > 1000 || v < -1000 }

// The delay the conference adds, measured on the media clock with the
// ticks driven by hand: a frame x's jitter buffer plays out in tick n is
// in the packet y sends in tick n, only the mixer's resampling filters
// (8→16→8 kHz) later within it.
func TestConferenceAddsNoTick(t *testing.T) {
	t.Parallel()
	e, err := NewEngine(EngineOptions{BindIP: loopback}) // not run: this test is its clock
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.NewConference(ConferenceOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	far := newRTPEnd(t)
	x, _ := newSession(t, e)
	y, _ := newSession(t, e)
	x.SetRemote(far.addr(), PCMU, 101)
	y.SetRemote(far.addr(), PCMU, 101)
	for pid, s := range map[string]*Session{"x": x, "y": y} {
		if err := c.Add(pid, s); err != nil {
			t.Fatal(err)
		}
	}

	// x's phone: silence, then a 1 kHz tone from sample 50 of frame 8.
	const onsetFrame, onsetSample = 8, 50
	src := make([]int16, 20*SamplesPerFrame)
	copy(src[onsetFrame*SamplesPerFrame+onsetSample:], sine(1000, 8000, time.Second))
	payload := NewAudio(src).Payload(PCMU)

	var tick uint64
	playedTick, playedAt := -1, -1
	x.Record(RecordOptions{}, func(pcm []int16) {
		if i := slices.IndexFunc(pcm, loud); i >= 0 && playedTick < 0 {
			playedTick, playedAt = int(tick), i
		}
	}, nil)
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: PCMU.PayloadType, SSRC: 0x0ce7}}
	for tick = 0; tick < 20; tick++ {
		pkt.SequenceNumber, pkt.Timestamp = uint16(tick), uint32(tick)*SamplesPerFrame
		pkt.Payload = payload[tick*SamplesPerFrame : (tick+1)*SamplesPerFrame]
		b, err := pkt.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		x.receive(b, far.addr(), e.nanotime())
		c.tick(tick, e.nanotime())
	}
	far.sync(t)
	if playedTick < 0 {
		t.Fatal("x never played out the onset")
	}
	y.mu.Lock()
	tx := y.st.tx
	y.mu.Unlock()
	sentTick, sentAt := -1, -1
	for _, a := range far.arrivals(tx.ssrc) {
		if i := slices.IndexFunc(a.pcm[:], loud); i >= 0 {
			sentTick, sentAt = int(uint64((a.ts-tx.tsBase)/SamplesPerFrame)+tx.tick0), i
			break
		}
	}
	if sentTick < 0 {
		t.Fatal("y never sent the onset")
	}
	delay := (sentTick-playedTick)*SamplesPerFrame + sentAt - playedAt
	t.Logf("x played the onset out in tick %d (sample %d), y sent it in tick %d (sample %d): the conference adds %d samples, %v",
		playedTick, playedAt, sentTick, sentAt, delay, time.Duration(delay)*time.Second/SampleRate)
	if sentTick != playedTick {
		t.Errorf("the conference adds %d ticks", sentTick-playedTick)
	}
	if delay < 0 || delay > 80 {
		t.Errorf("the conference adds %d samples; the filters' delay is about 31", delay)
	}
}

// BenchmarkConferenceTick is one tick of a conference of N members, all
// of it on the conference's worker but the reader's share: every member
// receives a PCMU frame (a different voice-like signal each: the reader's
// parse and hand-over, see BenchmarkReceive), and the conference's tick
// plays each out of its jitter buffer, decodes it into the mix, mixes,
// and builds and sends each member's packet of its N−1 mix. "build" stops
// short of the sendto syscalls. With ports=P, P bots share the
// conference, each playing a prompt and recording its mix without it (a
// meeting). ns/member is ns/op over N; %core is ns/op as a share of one
// core's 20 ms.
func BenchmarkConferenceTick(b *testing.B) {
	for _, n := range []int{3, 10, 100} {
		for _, send := range []bool{false, true} {
			name := fmt.Sprintf("members=%d/build", n)
			if send {
				name = fmt.Sprintf("members=%d/send", n)
			}
			b.Run(name, func(b *testing.B) { benchConference(b, n, 0, send) })
		}
	}
	for _, send := range []bool{false, true} {
		name := "members=10/ports=3/build"
		if send {
			name = "members=10/ports=3/send"
		}
		b.Run(name, func(b *testing.B) { benchConference(b, 10, 3, send) })
	}
}

func benchConference(b *testing.B, n, ports int, send bool) {
	e, c, step := newConfBench(b, n, ports, send)
	sent0 := e.Stats().PacketsSent
	b.ReportAllocs()
	for b.Loop() {
		step()
	}
	if send && e.Stats().PacketsSent-sent0 < uint64(n)*uint64(b.N) {
		b.Fatalf("sent %d packets in %d ticks of %d members", e.Stats().PacketsSent-sent0, b.N, n)
	}
	if st := c.Stats(); st.Missing != 0 || st.Dropped != 0 {
		b.Fatalf("mixer stats %+v", st)
	}
	perTick := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	b.ReportMetric(perTick/float64(n), "ns/member")
	b.ReportMetric(100*perTick/float64(FrameDuration.Nanoseconds()), "%core")
}

// A conference's tick allocates nothing, with several bots' ports
// playing and recording.
func TestConferenceTickDoesNotAllocate(t *testing.T) {
	_, _, step := newConfBench(t, 10, 3, false)
	if a := testing.AllocsPerRun(100, step); a != 0 {
		t.Errorf("%v allocations per tick of 10 members and 3 ports, want 0", a)
	}
}

// newConfBench makes a conference of n members on an engine that is not
// run, and ports ports each playing a looping prompt and recording, and
// returns a step that feeds every member a frame and ticks the
// conference, ticked until the buffers are full. Without send, packets
// are built, not sent.
func newConfBench(tb testing.TB, n, ports int, send bool) (*Engine, *Conference, func()) {
	tb.Helper()
	e, err := NewEngine(EngineOptions{BindIP: loopback}) // not run: the caller ticks
	if err != nil {
		tb.Fatal(err)
	}
	c, err := e.NewConference(ConferenceOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(c.Close)
	sink, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		tb.Fatal(err)
	}
	drained := make(chan struct{})
	tb.Cleanup(func() { sink.Close(); <-drained })
	go func() {
		defer close(drained)
		buf := make([]byte, 1500)
		for {
			if _, _, err := sink.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
		}
	}()
	from := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	ss := make([]*Session, n)
	voices := make([][]byte, n)
	pkts := make([][]byte, n)
	for i := range ss {
		if ss[i], err = e.NewSession(func(Event) {}); err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { ss[i].Close() })
		ss[i].SetRemote(from, PCMU, 101)
		if err := c.Add(fmt.Sprint(i), ss[i]); err != nil {
			tb.Fatal(err)
		}
		voices[i] = NewAudio(speechLike(time.Second, uint64(i))).Payload(PCMU)
		pkts[i] = rtpBytes(tb, 0, 0, 0, voices[i][:SamplesPerFrame])
	}
	for i := range ports {
		p, err := c.NewPort(fmt.Sprint("bot", i))
		if err != nil {
			tb.Fatal(err)
		}
		p.Play(NewAudio(sine(portFreqs[i%len(portFreqs)], toneAmp, time.Second)), true, nil)
		p.Record(RecordOptions{}, func([]int16) {}, nil)
	}
	tick := uint64(0)
	step := func() {
		k := int(tick % 50)
		ts := uint32(tick) * SamplesPerFrame
		for i, s := range ss {
			pkt := pkts[i]
			pkt[2], pkt[3] = byte(tick>>8), byte(tick)
			pkt[4], pkt[5], pkt[6], pkt[7] = byte(ts>>24), byte(ts>>16), byte(ts>>8), byte(ts)
			copy(pkt[rtpHeaderSize:], voices[i][k*SamplesPerFrame:(k+1)*SamplesPerFrame])
			s.receive(pkt, from, e.nanotime())
		}
		c.tick(tick, e.nanotime())
		tick++
	}
	for range 10 { // the jitter buffers fill, the buffers grow
		step()
	}
	if !send {
		for _, s := range ss {
			s.mu.Lock()
			s.st.sendTo = netip.AddrPort{} // packets are built, not sent
			s.mu.Unlock()
		}
	}
	return e, c, step
}
