package media

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/internal/media/dtmf"
)

// A plays a tone then speech-like audio; B's recording must be that audio,
// checked as audio: correlation after G.711 and matching energy envelopes.
func TestPlayRecord(t *testing.T) {
	t.Parallel()
	for _, c := range []Codec{PCMU, PCMA} {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			a, b, _, bev := pair(t, c, 0)
			src := append(sine(440, 9000, 400*time.Millisecond), speechLike(time.Second, 3)...)
			audio := NewAudio(src)

			// Record everything A plays plus a margin for the jitter buffer.
			rec := newRecorder(audio.Frames() + 25)
			b.Record(RecordOptions{}, rec.sink, rec.done)
			done, waitDone := playDone(t)
			a.Play(audio, false, done)
			if !waitDone() {
				t.Fatal("play done(false)")
			}
			rec.waitFull(t)
			b.StopRecord()
			if res := rec.waitResult(t); res.Reason != RecordStopped || !res.HeardSpeech {
				t.Errorf("result = %+v", res)
			}
			bev.next(t, EventMediaStarted)

			got := rec.samples()
			lag, corr := align(got, audio.PCM(), 25*SamplesPerFrame)
			t.Logf("%s: lag %v, correlation %.4f", c.Name, time.Duration(lag)*time.Second/SampleRate, corr)
			if corr < 0.9 {
				t.Fatalf("correlation %.3f < 0.9", corr)
			}
			// The envelope, 20 ms at a time, follows the original.
			want := audio.PCM()
			for f := 0; f < audio.Frames(); f++ {
				w := rms(want[f*SamplesPerFrame : (f+1)*SamplesPerFrame])
				g := rms(got[lag+f*SamplesPerFrame : lag+(f+1)*SamplesPerFrame])
				if w > 300 && (g < w*0.8 || g > w*1.25) {
					t.Fatalf("frame %d: rms %.0f, want %.0f", f, g, w)
				}
			}
			st := b.Stats()
			if st.PacketsReceived != uint64(audio.Frames()) || st.Lost != 0 || st.Late != 0 || st.Duplicates != 0 {
				t.Errorf("B stats = %+v, want %d packets and no loss", st, audio.Frames())
			}
			if st := a.Stats(); st.PacketsSent != uint64(audio.Frames()) {
				t.Errorf("A sent %d packets, want %d", st.PacketsSent, audio.Frames())
			}
		})
	}
}

// Two prompts back to back, then a pause and a third: one continuous
// stream to the receiver (no loss), sequence numbers continuous.
func TestPlaySequenceAndReplace(t *testing.T) {
	t.Parallel()
	a, b, _, _ := pair(t, PCMU, 0)
	tone := NewAudio(sine(700, 8000, 200*time.Millisecond))
	for range 2 {
		done, waitDone := playDone(t)
		a.Play(tone, false, done)
		if !waitDone() {
			t.Fatal("done(false)")
		}
	}
	// A looping prompt replaced by another: the first gets done(false).
	first, waitFirst := playDone(t)
	a.Play(tone, true, first)
	second, waitSecond := playDone(t)
	a.Play(tone, false, second)
	if waitFirst() {
		t.Fatal("replaced play got done(true)")
	}
	if !waitSecond() {
		t.Fatal("second play got done(false)")
	}
	// StopPlay.
	third, waitThird := playDone(t)
	a.Play(tone, true, third)
	a.StopPlay()
	if waitThird() {
		t.Fatal("stopped play got done(true)")
	}
	// Let B's reader catch up: a sentinel tone over RFC 4733 is not
	// available here, so record until the packets sent have arrived.
	sent := a.Stats().PacketsSent
	rec := newRecorder(30)
	b.Record(RecordOptions{}, rec.sink, rec.done)
	rec.waitFull(t)
	b.StopRecord()
	rec.waitResult(t)
	st := b.Stats()
	if st.PacketsReceived != sent || st.Lost != 0 || st.Late != 0 {
		t.Errorf("B stats %+v, A sent %d", st, sent)
	}
}

func TestSendTonesRFC4733(t *testing.T) {
	t.Parallel()
	a, b, _, bev := pair(t, PCMU, 101)
	b.DetectTones(true)
	// While A plays, tones take the wire and the prompt resumes after.
	done, waitDone := playDone(t)
	a.Play(NewAudio(speechLike(400*time.Millisecond, 1)), false, done)
	sent := make(chan struct{})
	a.SendTones("123#*", 50*time.Millisecond, func() { close(sent) })
	select {
	case <-sent:
	case <-time.After(wait):
		t.Fatal("SendTones not done")
	}
	a.SendTones("D", 0, nil) // sentinel: everything before it has arrived
	if got := bev.tones(t, 'D'); got != "123#*D" {
		t.Fatalf("B reported %q, want %q", got, "123#*D")
	}
	if !waitDone() {
		t.Fatal("play interrupted by tones")
	}
}

func TestSendTonesInBand(t *testing.T) {
	t.Parallel()
	for _, c := range []Codec{PCMU, PCMA} {
		t.Run(c.Name, func(t *testing.T) {
			t.Parallel()
			a, b, _, bev := pair(t, c, 0)
			b.DetectTones(true)
			sent := make(chan struct{})
			a.SendTones("1123#*", 0, func() { close(sent) }) // repeats stay two presses
			a.SendTones("D", 0, nil)
			if got := bev.tones(t, 'D'); got != "1123#*D" {
				t.Fatalf("B reported %q, want %q", got, "1123#*D")
			}
			<-sent
		})
	}
}

// rawPeer is a hand-driven RTP endpoint on a plain UDP socket.
type rawPeer struct {
	t    testing.TB
	conn *net.UDPConn
	to   netip.AddrPort
	seq  uint16
	buf  []byte
}

func newRawPeer(t testing.TB, to netip.AddrPort) *rawPeer {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawPeer{t: t, conn: c, to: to, seq: 1000}
}

func (p *rawPeer) addr() netip.AddrPort { return p.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

func (p *rawPeer) send(pt uint8, marker bool, ts uint32, payload []byte) {
	p.sendSeq(p.seq, pt, marker, ts, payload)
	p.seq++
}

func (p *rawPeer) sendSeq(seq uint16, pt uint8, marker bool, ts uint32, payload []byte) {
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, Marker: marker, SequenceNumber: seq, Timestamp: ts, SSRC: 0xcafe}, Payload: payload}
	b, err := pkt.Marshal()
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.conn.WriteToUDPAddrPort(b, p.to); err != nil {
		p.t.Fatal(err)
	}
}

func (p *rawPeer) event(ts uint32, tone byte, end bool, dur uint16, marker bool) {
	code, _ := dtmf.Code(tone)
	var b [4]byte
	dtmf.Event{Code: code, End: end, Volume: 10, Duration: dur}.MarshalTo(b[:])
	p.send(101, marker, ts, b[:])
}

// Events as carriers and sipp's dtmf_2833 captures send them: a first
// packet of duration 0, updates, three end packets; plus retransmissions,
// stragglers, a lost start and a foreign source.
func TestRFC4733Receive(t *testing.T) {
	t.Parallel()
	e := startEngine(t, EngineOptions{})
	b, bev := newSession(t, e)
	peer := newRawPeer(t, b.LocalAddr())
	b.SetRemote(peer.addr(), PCMU, 101)
	b.DetectTones(true)

	// '5': first packet duration 0.
	peer.event(8000, '5', false, 0, true)
	if e := bev.next(t, EventTone); e.Tone != '5' {
		t.Fatalf("got %q, want '5'", e.Tone)
	}
	for d := uint16(160); d < 800; d += 160 {
		peer.event(8000, '5', false, d, false)
	}
	for range 3 {
		peer.event(8000, '5', true, 800, false)
	}
	// The same digit again is a new event (new timestamp), again with a
	// zero-duration start.
	peer.event(9600, '5', false, 0, true)
	for range 3 {
		peer.event(9600, '5', true, 400, false)
	}
	// A straggling end packet of the first event is not a new one.
	peer.event(8000, '5', true, 800, false)
	// An event whose first packets were lost: the end packets alone.
	for range 3 {
		peer.event(12000, '9', true, 800, false)
	}
	// Once latched, another source is ignored.
	intruder := newRawPeer(t, b.LocalAddr())
	intruder.event(20000, '7', false, 0, true)
	// A long event continued in a second segment (RFC 4733 §2.5.2.3) is
	// one press.
	peer.event(30000, '4', false, 0xff00, true)
	peer.event(30000+0xff00, '4', false, 160, false)
	peer.event(30000+0xff00, '4', true, 320, false)
	peer.event(200000, '#', false, 160, true) // sentinel
	if got := bev.tones(t, '#'); got != "594#" {
		t.Fatalf("tones after the first = %q, want %q", got, "594#")
	}
	if st := b.Stats(); st.PacketsReceived != 20 {
		t.Errorf("received %d packets, want 20 (the intruder's dropped)", st.PacketsReceived)
	}
	if st := b.Stats(); st.Lost != 0 {
		t.Errorf("events counted as audio loss: %+v", st)
	}
}

// With DetectTones off nothing is reported, but StopTones still end a
// recording; the stop tone is the result's Tone.
func TestRecordStopTone(t *testing.T) {
	t.Parallel()
	for _, pt := range []uint8{101, 0} {
		t.Run(fmt.Sprintf("dtmfPT=%d", pt), func(t *testing.T) {
			t.Parallel()
			a, b, _, bev := pair(t, PCMA, pt)
			rec := newRecorder(-1)
			b.Record(RecordOptions{StopTones: "#", MaxDuration: 8 * time.Second}, rec.sink, rec.done)
			sent := make(chan struct{})
			a.SendTones("12#", 40*time.Millisecond, func() { close(sent) })
			res := rec.waitResult(t)
			<-sent
			if res.Reason != RecordStopTone || res.Tone != '#' {
				t.Fatalf("result %+v, want stop tone '#'", res)
			}
			// Turning detection on now reports later tones only.
			b.DetectTones(true)
			a.SendTones("A", 0, nil)
			if got := bev.tones(t, 'A'); got != "A" {
				t.Fatalf("reported %q with detection off", got)
			}
		})
	}
}

func TestRecordInitialSilence(t *testing.T) {
	t.Parallel()
	_, b, _, _ := pair(t, PCMU, 0)
	rec := newRecorder(-1)
	b.Record(RecordOptions{InitialSilence: 200 * time.Millisecond, MaxDuration: 5 * time.Second}, rec.sink, rec.done)
	res := rec.waitResult(t)
	if res.Reason != RecordInitialSilence || res.HeardSpeech || res.Duration != 200*time.Millisecond {
		t.Fatalf("result %+v", res)
	}
	if rec.frames != 10 {
		t.Errorf("sink got %d frames, want 10", rec.frames)
	}
	for _, v := range rec.samples() {
		if v != 0 {
			t.Fatal("nothing was sent but the recording is not silent")
		}
	}
}

func TestRecordMaxSilence(t *testing.T) {
	t.Parallel()
	a, b, _, _ := pair(t, PCMU, 0)
	rec := newRecorder(-1)
	b.Record(RecordOptions{InitialSilence: 5 * time.Second, MaxSilence: 300 * time.Millisecond}, rec.sink, rec.done)
	a.Play(NewAudio(speechLike(400*time.Millisecond, 9)), false, nil)
	res := rec.waitResult(t)
	if res.Reason != RecordMaxSilence || !res.HeardSpeech {
		t.Fatalf("result %+v", res)
	}
	// Speech (400 ms) after the jitter buffer's delay, then 300 ms of
	// silence: the recording cannot be shorter than 700 ms, and ends soon
	// after.
	if res.Duration < 700*time.Millisecond || res.Duration > 1500*time.Millisecond {
		t.Fatalf("duration %v", res.Duration)
	}
	// The speech is in the recording.
	if r := rms(rec.samples()); r < 500 {
		t.Fatalf("recording rms %.0f", r)
	}
}

func TestRecordMaxDuration(t *testing.T) {
	t.Parallel()
	a, b, _, _ := pair(t, PCMU, 0)
	a.Play(NewAudio(speechLike(time.Second, 4)), true, nil)
	rec := newRecorder(-1)
	b.Record(RecordOptions{MaxDuration: 300 * time.Millisecond, MaxSilence: 10 * time.Second}, rec.sink, rec.done)
	res := rec.waitResult(t)
	if res.Reason != RecordMaxDuration || res.Duration != 300*time.Millisecond {
		t.Fatalf("result %+v", res)
	}
	if rec.frames != 15 {
		t.Fatalf("sink got %d frames, want 15", rec.frames)
	}
	// A new recording replaces one in progress.
	first, second := newRecorder(-1), newRecorder(-1)
	b.Record(RecordOptions{}, first.sink, first.done)
	b.Record(RecordOptions{MaxDuration: 100 * time.Millisecond}, second.sink, second.done)
	if res := first.waitResult(t); res.Reason != RecordStopped {
		t.Fatalf("replaced recording: %+v", res)
	}
	if res := second.waitResult(t); res.Reason != RecordMaxDuration {
		t.Fatalf("second recording: %+v", res)
	}
}

func TestInactivity(t *testing.T) {
	t.Parallel()
	ea := startEngine(t, EngineOptions{})
	eb := startEngine(t, EngineOptions{InactivityTimeout: 100 * time.Millisecond})
	a, _ := newSession(t, ea)
	b, bev := newSession(t, eb)
	// No remote, no inactivity.
	ticks := newRecorder(10)
	b.Record(RecordOptions{}, ticks.sink, ticks.done)
	ticks.waitFull(t)
	b.StopRecord()
	select {
	case e := <-bev:
		t.Fatalf("event %+v before SetRemote", e)
	default:
	}

	a.SetRemote(b.LocalAddr(), PCMU, 0)
	b.SetRemote(a.LocalAddr(), PCMU, 0)
	bev.next(t, EventInactive)
	// Once: count 20 ticks (400 ms) through a recording's sink.
	ticks = newRecorder(20)
	b.Record(RecordOptions{}, ticks.sink, ticks.done)
	ticks.waitFull(t)
	b.StopRecord()
	for len(bev) > 0 {
		if e := <-bev; e.Kind == EventInactive {
			t.Fatal("EventInactive reported twice")
		}
	}
	// Media resumes, then stops: reported again.
	a.Play(NewAudio(sine(500, 5000, 200*time.Millisecond)), false, nil)
	bev.next(t, EventMediaStarted)
	bev.next(t, EventInactive)
}

// Symmetric RTP: B is told a wrong address (A is behind a NAT) and
// answers where A's packets come from; other sources are then dropped.
func TestLatching(t *testing.T) {
	t.Parallel()
	ea, eb := startEngine(t, EngineOptions{}), startEngine(t, EngineOptions{})
	a, aev := newSession(t, ea)
	b, bev := newSession(t, eb)
	a.SetRemote(b.LocalAddr(), PCMU, 101)
	b.SetRemote(netip.AddrPortFrom(loopback, 9), PCMU, 101) // the discard port
	a.DetectTones(true)
	b.DetectTones(true)

	a.Play(NewAudio(sine(300, 5000, 60*time.Millisecond)), false, nil)
	bev.next(t, EventMediaStarted) // B has latched onto A
	b.SendTones("7", 0, nil)
	if got := aev.tones(t, '7'); got != "7" {
		t.Fatalf("A got %q", got)
	}

	intruder := newRawPeer(t, b.LocalAddr())
	for i := range 5 {
		intruder.event(uint32(1000*i), '3', false, 0, true)
		intruder.send(0, false, uint32(1000*i), make([]byte, 160))
	}
	a.SendTones("9", 0, nil)
	if got := bev.tones(t, '9'); got != "9" {
		t.Fatalf("B got %q", got)
	}
	// A counts a packet once sendto returns, which can be after B got it.
	got := b.Stats().PacketsReceived
	if sent := a.Stats().PacketsSent; got > sent+1 {
		t.Fatalf("B received %d packets, A sent %d: the intruder's got in", got, sent)
	}

	// A re-INVITE moves B's remote to peer while A's packets are still
	// arriving: B latches onto A again, but the signalled address takes
	// over as soon as it sends.
	peer := newRawPeer(t, b.LocalAddr())
	b.SetRemote(peer.addr(), PCMU, 101)
	a.SendTones("1", 0, nil)
	if got := bev.tones(t, '1'); got != "1" {
		t.Fatalf("B got %q", got)
	}
	peer.event(777, '6', false, 0, true)
	if got := bev.tones(t, '6'); got != "6" {
		t.Fatalf("B got %q from the signalled remote", got)
	}
	b.SendTones("B", 0, nil) // goes to peer now
	buf := make([]byte, 1500)
	peer.conn.SetReadDeadline(time.Now().Add(wait))
	n, _, err := peer.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("peer got nothing from B: %v", err)
	}
	var h rtp.Header
	if _, err := h.Unmarshal(buf[:n]); err != nil || h.PayloadType != 101 {
		t.Fatalf("peer got %+v, %v", h, err)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	// Find a free even port for a one-port range.
	var port int
	for {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
		if err != nil {
			t.Fatal(err)
		}
		port = c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		if port%2 == 0 {
			break
		}
	}
	e := startEngine(t, EngineOptions{PortMin: port, PortMax: port + 1})
	s, err := e.NewSession(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := s.LocalAddr(); got != netip.AddrPortFrom(loopback, uint16(port)) {
		t.Fatalf("LocalAddr %v, want port %d", got, port)
	}
	if _, err := e.NewSession(nil); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("second session: %v, want ErrNoPorts", err)
	}
	if n := e.Stats().Sessions; n != 1 {
		t.Fatalf("Sessions = %d", n)
	}

	// Pending work ends with Close, before it returns.
	s.SetRemote(netip.AddrPortFrom(loopback, 9), PCMU, 0)
	var calls []string
	s.Play(NewAudio(sine(400, 5000, time.Second)), true, func(ok bool) { calls = append(calls, fmt.Sprint("play ", ok)) })
	s.Record(RecordOptions{}, nil, func(r RecordResult) { calls = append(calls, fmt.Sprint("record ", r.Reason == RecordStopped)) })
	s.SendTones("123456789", time.Second, func() { calls = append(calls, "tones") })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	want := []string{"play false", "record true", "tones"}
	if !slices.Equal(calls, want) {
		t.Fatalf("callbacks %q, want %q", calls, want)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	// After Close, operations end at once.
	calls = nil
	s.Play(Beep, false, func(ok bool) { calls = append(calls, fmt.Sprint("play ", ok)) })
	s.Record(RecordOptions{}, nil, func(r RecordResult) { calls = append(calls, fmt.Sprint("record ", r.Reason == RecordStopped)) })
	s.SendTones("1", 0, func() { calls = append(calls, "tones") })
	if !slices.Equal(calls, want) {
		t.Fatalf("after Close: callbacks %q, want %q", calls, want)
	}

	// The port is free again.
	s2, err := e.NewSession(nil)
	if err != nil {
		t.Fatalf("session after Close: %v", err)
	}
	defer s2.Close()
	if s2.LocalAddr().Port() != uint16(port) {
		t.Fatalf("new session on %v, want port %d", s2.LocalAddr(), port)
	}
}

// Muted: played audio is not sent, tones are. A re-INVITE changes codec
// and address; the stream follows.
func TestMuteAndReinvite(t *testing.T) {
	t.Parallel()
	ea, eb := startEngine(t, EngineOptions{}), startEngine(t, EngineOptions{})
	a, _ := newSession(t, ea)
	b, bev := newSession(t, eb)
	a.SetRemote(b.LocalAddr(), PCMU, 101)
	b.SetRemote(a.LocalAddr(), PCMU, 101)
	b.DetectTones(true)

	a.SetMuted(true)
	heard := newRecorder(-1)
	b.Record(RecordOptions{}, heard.sink, heard.done)
	done, waitDone := playDone(t)
	a.Play(NewAudio(sine(800, 6000, 200*time.Millisecond)), false, done)
	if !waitDone() {
		t.Fatal("muted play not completed")
	}
	toneSent := make(chan struct{})
	a.SendTones("5", 0, func() { close(toneSent) })
	if got := bev.tones(t, '5'); got != "5" {
		t.Fatalf("tones %q", got)
	}
	<-toneSent // before the re-INVITE, so none of it goes to the new remote
	b.StopRecord()
	heard.waitResult(t)
	if r := rms(heard.samples()); r != 0 || heard.frames < 10 {
		t.Fatalf("B heard rms %.0f in %d frames while A was muted", r, heard.frames)
	}
	a.SetMuted(false)

	// Re-INVITE: B moves to a new session (new port) and PCMA.
	b2, b2ev := newSession(t, eb)
	b2.SetRemote(a.LocalAddr(), PCMA, 96)
	a.SetRemote(b2.LocalAddr(), PCMA, 96)
	b2.DetectTones(true)
	src := speechLike(600*time.Millisecond, 11)
	rec := newRecorder(len(src)/SamplesPerFrame + 20)
	b2.Record(RecordOptions{}, rec.sink, rec.done)
	a.Play(NewAudio(src), false, nil)
	rec.waitFull(t)
	if _, corr := align(rec.samples(), src, 20*SamplesPerFrame); corr < 0.9 {
		t.Fatalf("after re-INVITE correlation %.3f", corr)
	}
	a.SendTones("*", 0, nil)
	if got := b2ev.tones(t, '*'); got != "*" {
		t.Fatalf("tones after re-INVITE %q", got)
	}
}

// A session sending in-band tones while recording what it receives: the
// two directions do not mix.
func TestSendInBandWhileRecording(t *testing.T) {
	t.Parallel()
	a, b, _, bev := pair(t, PCMU, 0)
	b.DetectTones(true)
	rec := newRecorder(-1)
	a.Record(RecordOptions{MaxDuration: 5 * time.Second}, rec.sink, rec.done)
	a.SendTones("42", 0, nil)
	if got := bev.tones(t, '2'); got != "42" {
		t.Fatalf("B got %q", got)
	}
	a.StopRecord()
	rec.waitResult(t)
	if r := rms(rec.samples()); r != 0 {
		t.Fatalf("A's recording of silence has rms %.0f: its own tones leaked in", r)
	}
}

func TestEngineStatsAndMetrics(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	e := startEngine(t, EngineOptions{Registerer: reg})
	a, _ := newSession(t, e)
	b, bev := newSession(t, e)
	a.SetRemote(b.LocalAddr(), PCMU, 101)
	b.SetRemote(a.LocalAddr(), PCMU, 101)
	b.DetectTones(true)
	sent := make(chan struct{})
	a.SendTones("1", 0, func() { close(sent) })
	<-sent
	a.SendTones("2", 0, nil)
	bev.tones(t, '2') // all of '1' has arrived
	const tonePackets = toneFrames + rfcEndRepeats
	st := e.Stats()
	if st.Sessions != 2 || st.Ticks == 0 || st.PacketsSent < tonePackets || st.PacketsReceived < tonePackets+1 {
		t.Fatalf("stats %+v", st)
	}
	a.Close()
	if st2 := e.Stats(); st2.Sessions != 1 || st2.PacketsSent < st.PacketsSent || st2.PacketsReceived < st.PacketsReceived {
		t.Fatalf("after Close: %+v, before %+v", st2, st)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		names[mf.GetName()] = true
	}
	for _, n := range []string{"switchboard_media_sessions", "switchboard_media_ticks_total", "switchboard_media_late_ticks_total",
		"switchboard_media_rtp_packets_sent_total", "switchboard_media_rtp_packets_received_total", "switchboard_media_tick_lateness_max_seconds",
		"switchboard_media_tick_work_max_seconds"} {
		if !names[n] {
			t.Errorf("metric %s missing", n)
		}
	}
	if _, err := NewEngine(EngineOptions{BindIP: loopback, Registerer: reg}); err == nil {
		t.Error("second engine on one registry: no error")
	}
	if _, err := NewEngine(EngineOptions{BindIP: loopback, PortMin: 3000, PortMax: 2000}); err == nil {
		t.Error("bad port range accepted")
	}
	if _, err := NewEngine(EngineOptions{}); err == nil {
		t.Error("missing BindIP accepted")
	}
	if err := e.Run(context.Background()); !errors.Is(err, ErrEngineRunning) {
		t.Errorf("second Run: %v", err)
	}
}
