package media

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"

	"github.com/switchboard-voice/switchboard/internal/media/dtmf"
)

// EventKind says what an Event reports.
type EventKind int

// The event kinds.
const (
	EventTone         EventKind = iota + 1 // a DTMF tone, RFC 4733 or in-band (Session.DetectTones)
	EventInactive                          // no RTP for EngineOptions.InactivityTimeout
	EventMediaStarted                      // the first RTP packet from the remote
)

// Direction is which way a session's RTP flows, seen from the session: the
// direction of Switchboard's side of the stream as its SDP says (RFC 3264
// §6.1). The zero value is SendRecv.
type Direction uint8

// The directions.
const (
	SendRecv Direction = iota // send and receive
	SendOnly                  // send; the far end sends nothing
	RecvOnly                  // receive only: the far end holds the call (RFC 3264 §8.4)
	Inactive                  // neither: nothing is sent, nothing is expected
)

// Sends reports whether the session sends RTP in direction d.
func (d Direction) Sends() bool { return d == SendRecv || d == SendOnly }

// String returns d's SDP attribute (RFC 3264 §6.1).
func (d Direction) String() string {
	switch d {
	case SendRecv:
		return "sendrecv"
	case SendOnly:
		return "sendonly"
	case RecvOnly:
		return "recvonly"
	case Inactive:
		return "inactive"
	}
	return "Direction(" + strconv.Itoa(int(d)) + ")"
}

// Event is something a Session reports to its owner.
type Event struct {
	Kind EventKind
	Tone byte // '0'-'9', '*', '#', 'A'-'D' for EventTone
}

// SessionStats are a Session's RTP counters.
type SessionStats struct {
	PacketsSent     uint64
	PacketsReceived uint64        // valid RTP from the remote, audio and events
	Lost            uint64        // audio frames that never arrived while later ones did
	Late            uint64        // audio that arrived after its play-out time, or found the buffer full
	Duplicates      uint64        // audio packets received twice
	Jitter          time.Duration // RFC 3550 §6.4.1 interarrival jitter of the audio
}

// RecordOptions bound a recording. Zero durations are off.
type RecordOptions struct {
	MaxDuration    time.Duration // stop after this much audio
	InitialSilence time.Duration // stop if nobody speaks this long after the start
	MaxSilence     time.Duration // stop after this much silence once someone has spoken
	StopTones      string        // tone characters "0-9*#A-D" that stop the recording
	// SilenceThreshold is the RMS level (16-bit PCM) at or below which a
	// frame is silence; 0 means DefaultSilenceThreshold.
	SilenceThreshold int16
}

// DefaultSilenceThreshold is about -45 dBFS RMS.
const DefaultSilenceThreshold = 184

// speechFrames is how many consecutive loud frames count as speech (40 ms),
// so a click does not.
const speechFrames = 2

// RecordReason says why a recording ended.
type RecordReason int

// The reasons a recording ends.
const (
	RecordMaxDuration RecordReason = iota + 1
	RecordInitialSilence
	RecordMaxSilence
	RecordStopTone
	RecordStopped // StopRecord, a new Record, or Close
)

// RecordResult is how a recording ended.
type RecordResult struct {
	Reason      RecordReason
	Tone        byte          // the stop tone, for RecordStopTone
	Duration    time.Duration // audio delivered to the sink
	HeardSpeech bool
}

// Session is one call leg's RTP: a UDP socket on its own even port, one
// reader goroutine that owns it for receiving, and a place on the engine's
// media clock for sending and play-out.
//
// All methods are safe for concurrent use. Callbacks (the event function,
// done and sink functions) run on the engine's goroutines, never two at a
// time for one session, and must neither block nor call back into the same
// Session synchronously: post to your own goroutine (a non-blocking send or
// an unbounded mailbox). The done callback of an operation that a method
// cancels (Play or Record replacing another, StopPlay, StopRecord, Close)
// runs before that method returns, on the calling goroutine. Each done
// callback is called exactly once, and none after Close returns.
type Session struct {
	e    *Engine
	ev   func(Event)
	conn *net.UDPConn
	port int
	addr netip.AddrPort
	log  *slog.Logger

	shard    *shard
	shardIdx int // index in shard.sessions, guarded by shard.mu

	// Shared between the reader, the tick and callers without locks.
	cfg        atomic.Pointer[remoteConfig]
	sent, rcvd atomic.Uint64
	ringDrops  atomic.Uint64
	jitter     atomic.Uint32 // RFC 3550 J scaled by 16, timestamp units
	lastRecv   atomic.Int64  // nanotime of the last valid packet
	sawEvents  atomic.Bool   // the remote sends RFC 4733: in-band detection stands down
	sendErrs   atomic.Uint64
	inConf     atomic.Bool // st.conf is set: the conference's worker polls the socket

	snd  rawSender // owned by the tick
	io   rxIO      // the socket's receiving side (recv_linux.go, recv_other.go)
	rx   rxState   // owned by whoever receives: the poll or the reader
	ring rxRing    // receive → tick

	// cbMu serialises callbacks and is held while they run; taken before mu.
	cbMu sync.Mutex
	mu   sync.Mutex
	st   sessionState // guarded by mu
}

// remoteConfig is what SetRemote set; immutable once published.
type remoteConfig struct {
	gen     uint64
	remote  netip.AddrPort
	codec   Codec
	dtmfPT  uint8
	silence byte // the codec's code for a zero sample
}

// sessionState is a session's state under its mutex; the tick is the only
// writer of the tx and rx play-out fields.
type sessionState struct {
	closed   bool
	sendTo   netip.AddrPort // the remote, or the address latched from its RTP
	armedAt  int64          // nanotime of SetRemote or SetDirection: inactivity counts from here
	inactive bool           // EventInactive reported and RTP has not resumed
	dir      Direction
	detect   bool
	muted    bool
	codec    Codec // codec the jitter buffer holds
	play     playState
	rec      recState
	tones    []toneJob // queued SendTones calls, the first in progress
	tone     toneState
	jb       jitterBuffer
	det      dtmf.Detector
	detTS    uint32 // RTP timestamp of the last frame the detector saw
	detHave  bool
	// detRunning: the detector ran last tick; detFresh: it has just
	// started and the press under way, if any, is to be skipped.
	detRunning, detFresh bool
	gen                  dtmf.Generator
	tx                   txState
	pcm                  [SamplesPerFrame]int16 // the frame played out, decoded
	frame                [SamplesPerFrame]byte  // the frame played out
	txPCM                [SamplesPerFrame]int16 // an in-band tone frame being sent
	txFrame              [SamplesPerFrame]byte
	pend                 pending
	// Bridge (see Bridge): brOut takes the frames played out, brIn gives
	// the frames to send, in brFrame.
	br          *bridge
	brOut, brIn *bridgeLink
	brFrame     [SamplesPerFrame]byte // a bridged frame or the conference's mix, to send
	// Conference (see Conference): conf is the session's place in one,
	// and then the conference's task ticks it (tick does not).
	conf *confMember
	// rxNext and txNext are the next tick numbers whose receive and send
	// halves are due: a session that joins or leaves a conference moves
	// to another worker mid-period, and must not be ticked twice for one
	// tick (two packets with one timestamp) by the old and the new.
	rxNext, txNext uint64
}

type playState struct {
	audio   *Audio
	loop    bool
	pos     int // next frame
	done    func(bool)
	playing bool
}

type recState struct {
	on         bool
	o          RecordOptions
	sink       func([]int16)
	done       func(RecordResult)
	thresh2    int64 // threshold², mean square
	frames     int
	loud       int // consecutive loud frames
	quiet      int // consecutive quiet frames since speech
	heard      bool
	stopTones  string
	needDetect bool // StopTones has in-band work to do
}

func (r *recState) result(reason RecordReason, tone byte) RecordResult {
	return RecordResult{Reason: reason, Tone: tone, Duration: time.Duration(r.frames) * FrameDuration, HeardSpeech: r.heard}
}

// newRecState is a recording starting with o; Session.Record and
// Conference.Record share it, and the rules in account and stopTone.
func newRecState(o RecordOptions, sink func([]int16), done func(RecordResult)) recState {
	th := int64(o.SilenceThreshold)
	if th <= 0 {
		th = DefaultSilenceThreshold
	}
	var stop strings.Builder
	for i := range len(o.StopTones) {
		if c := o.StopTones[i]; dtmf.Valid(c) {
			code, _ := dtmf.Code(c)
			ch, _ := dtmf.Char(code) // normalise 'a' to 'A'
			stop.WriteByte(ch)
		}
	}
	r := recState{on: true, o: o, sink: sink, done: done, thresh2: th * th, stopTones: stop.String()}
	r.needDetect = r.stopTones != ""
	return r
}

// account counts one recorded frame and returns the reason the recording
// ends with it, or 0 when it goes on.
func (r *recState) account(pcm []int16) RecordReason {
	r.frames++
	var sum int64
	for _, v := range pcm {
		sum += int64(v) * int64(v)
	}
	if sum/int64(len(pcm)) > r.thresh2 {
		r.loud++
		r.quiet = 0
		if r.loud >= speechFrames {
			r.heard = true
		}
	} else {
		r.loud = 0
		if r.heard {
			r.quiet++
		}
	}
	elapsed := time.Duration(r.frames) * FrameDuration
	switch {
	case r.o.MaxDuration > 0 && elapsed >= r.o.MaxDuration:
		return RecordMaxDuration
	case !r.heard && r.o.InitialSilence > 0 && elapsed >= r.o.InitialSilence:
		return RecordInitialSilence
	case r.heard && r.o.MaxSilence > 0 && time.Duration(r.quiet)*FrameDuration >= r.o.MaxSilence:
		return RecordMaxSilence
	}
	return 0
}

// stopTone returns the first of the recording's stop tones among tones,
// a set of RFC 4733 event codes as bits (1<<code), or 0.
func (r *recState) stopTone(tones uint32) byte {
	for i := range len(r.stopTones) {
		if code, ok := dtmf.Code(r.stopTones[i]); ok && tones&(1<<code) != 0 {
			return r.stopTones[i]
		}
	}
	return 0
}

type toneJob struct {
	tones string
	gap   int // frames between tones
	done  func()
}

// txState is the sending side of the RTP stream.
type txState struct {
	ssrc      uint32
	seq       uint16
	tsBase    uint32
	tick0     uint64
	started   bool
	lastAudio bool // the previous tick sent audio; else the next audio starts a talkspurt (marker)
	lastSend  int64
	gaps      [gapBuckets]uint32 // gaps between consecutive audio sends, 1 ms buckets
	hdr       rtp.Header
	buf       [rtpHeaderSize + SamplesPerFrame]byte
}

const rtpHeaderSize = 12

// pending are the callbacks a tick or a method owes, run after mu is
// released (and with cbMu held). No allocation: fixed slots.
type pending struct {
	events   [4]Event
	nev      int
	playDone func(bool)
	playOK   bool
	recDone  func(RecordResult)
	recRes   RecordResult
	sink     func([]int16)
	sinkPCM  []int16
	toneDone [2]func()
	ntone    int
}

func (p *pending) event(e Event) {
	if p.nev < len(p.events) {
		p.events[p.nev] = e
		p.nev++
	}
}

func (p *pending) toneDoneAdd(f func()) {
	if f != nil && p.ntone < len(p.toneDone) {
		p.toneDone[p.ntone] = f
		p.ntone++
	}
}

// run calls the callbacks in a fixed order and clears p.
func (p *pending) run(ev func(Event)) {
	if p.sink != nil {
		p.sink(p.sinkPCM)
	}
	for i := range p.nev {
		if ev != nil {
			ev(p.events[i])
		}
	}
	if p.playDone != nil {
		p.playDone(p.playOK)
	}
	for i := range p.ntone {
		p.toneDone[i]()
	}
	if p.recDone != nil {
		p.recDone(p.recRes)
	}
	*p = pending{}
}

// NewSession binds a UDP socket on a free even port of the engine's range
// and starts its reader goroutine. ev receives the session's events (it may
// be nil). The caller owns the session and must Close it.
func (e *Engine) NewSession(ev func(Event)) (*Session, error) {
	conn, port, err := e.bind()
	if err != nil {
		return nil, fmt.Errorf("new media session: %w", err)
	}
	s := &Session{
		e:    e,
		ev:   ev,
		conn: conn,
		port: port,
		addr: netip.AddrPortFrom(e.o.BindIP, uint16(port)),
	}
	s.log = e.log.With("rtp_port", port)
	s.st.tx.ssrc = rand.Uint32()
	s.st.tx.seq = uint16(rand.Uint32())
	s.st.tx.tsBase = rand.Uint32()
	s.st.tx.hdr = rtp.Header{Version: 2, SSRC: s.st.tx.ssrc}
	s.rx.hdr.CSRC = make([]uint32, 0, 15)
	s.rx.hdr.Extensions = make([]rtp.Extension, 0, 4)

	s.startReceiving()
	s.initSender()
	e.join(s)
	return s, nil
}

// setConfLocked sets the session's place in a conference, or none.
func (s *Session) setConfLocked(m *confMember) {
	s.st.conf = m
	s.inConf.Store(m != nil)
}

// LocalAddr is the address the session receives RTP on.
func (s *Session) LocalAddr() netip.AddrPort { return s.addr }

// SetRemote sets where RTP goes and how it is encoded: the codec, and the
// RFC 4733 telephone-event payload type (0 = not negotiated: tones are
// sent in-band). It may be called again (re-INVITE); each call starts
// latching afresh.
//
// RTP is symmetric (RFC 4961), and the address remote, the one signalled
// in SDP, is preferred. Only a packet that counts latches, that is, makes
// the address it came from the one RTP is sent to: valid RTP (version 2,
// a header that parses) of a negotiated payload type (c's or dtmfPT), so
// that garbage or a stray stream sent first takes nothing. A packet from
// remote that counts always latches remote. A packet from another address
// latches it only while nothing has latched yet, which means nothing that
// counts has come from remote: that is a far end behind a NAT, whose SDP
// names an address its packets do not come from (the rule of Asterisk's
// rtp_symmetric and of comedia). Once an address is latched, packets from
// any other source than it or remote are dropped.
func (s *Session) SetRemote(remote netip.AddrPort, c Codec, dtmfPT uint8) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.closed {
		return
	}
	var gen uint64 = 1
	if old := s.cfg.Load(); old != nil {
		gen = old.gen + 1
	}
	silence := byte(0xff)
	if c.Name == PCMA.Name {
		silence = 0xd5
	}
	s.cfg.Store(&remoteConfig{gen: gen, remote: remote, codec: c, dtmfPT: dtmfPT, silence: silence})
	s.st.sendTo = remote
	s.sawEvents.Store(false) // a new remote may not send RFC 4733
	s.st.armedAt = s.e.nanotime()
	s.st.inactive = false
}

// SetDirection sets which way RTP flows, as the SDP negotiated it (the
// direction of Switchboard's side). Unless d sends, nothing is sent: played
// audio, tones and bridged frames keep their time on the media clock and
// are dropped, so what is sent after the direction allows it again follows
// on in sequence and in time. Inactivity (EngineOptions.InactivityTimeout)
// is watched only in SendRecv: a far end that holds the call (RecvOnly or
// Inactive here) may send nothing at all, music on hold being its choice
// (RFC 3264 §8.4), and one that only listens (SendOnly here) sends nothing.
// A change of direction starts the inactivity timeout afresh. New sessions
// are SendRecv; SetRemote leaves the direction as it is.
func (s *Session) SetDirection(d Direction) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.st.closed || s.st.dir == d {
		return
	}
	s.st.dir = d
	s.st.armedAt = s.e.nanotime()
	s.st.inactive = false
}

// Play sends a, frame by frame on the media clock, replacing whatever is
// playing (whose done gets false). done(true) follows the last frame of a
// non-looping a; a looping a plays until replaced or stopped. done may be
// nil. Play continues, silently, while muted or before SetRemote.
func (s *Session) Play(a *Audio, loop bool, done func(completed bool)) {
	s.cbMu.Lock()
	defer s.cbMu.Unlock()
	var p pending
	s.mu.Lock()
	if s.st.closed {
		s.mu.Unlock()
		if done != nil {
			done(false)
		}
		return
	}
	s.stopPlayLocked(&p)
	s.st.play = playState{audio: a, loop: loop, done: done, playing: true}
	s.mu.Unlock()
	p.run(s.ev)
}

// StopPlay stops what is playing; its done gets false.
func (s *Session) StopPlay() {
	s.cbMu.Lock()
	defer s.cbMu.Unlock()
	var p pending
	s.mu.Lock()
	s.stopPlayLocked(&p)
	s.mu.Unlock()
	p.run(s.ev)
}

func (s *Session) stopPlayLocked(p *pending) {
	if s.st.play.playing {
		p.playDone, p.playOK = s.st.play.done, false
	}
	s.st.play = playState{}
}

// Record delivers each received 20 ms frame, decoded to 8 kHz PCM (160
// samples; silence for frames lost or not sent), to sink until o ends the
// recording or StopRecord is called; then done gets the result. The sink
// must not retain the slice. A Record replaces a recording in progress
// (whose done gets RecordStopped). sink and done may be nil.
func (s *Session) Record(o RecordOptions, sink func(pcm []int16), done func(RecordResult)) {
	s.cbMu.Lock()
	defer s.cbMu.Unlock()
	var p pending
	s.mu.Lock()
	if s.st.closed {
		s.mu.Unlock()
		if done != nil {
			done(RecordResult{Reason: RecordStopped})
		}
		return
	}
	s.stopRecordLocked(&p, RecordStopped, 0)
	s.st.rec = newRecState(o, sink, done)
	s.mu.Unlock()
	p.run(s.ev)
}

// StopRecord ends the recording in progress with RecordStopped.
func (s *Session) StopRecord() {
	s.cbMu.Lock()
	defer s.cbMu.Unlock()
	var p pending
	s.mu.Lock()
	s.stopRecordLocked(&p, RecordStopped, 0)
	s.mu.Unlock()
	p.run(s.ev)
}

func (s *Session) stopRecordLocked(p *pending, reason RecordReason, tone byte) {
	if s.st.rec.on {
		p.recDone, p.recRes = s.st.rec.done, s.st.rec.result(reason, tone)
	}
	s.st.rec = recState{}
}

// DetectTones turns tone reporting on or off. When on, EventTone reports
// RFC 4733 events and in-band DTMF found by a Goertzel detector on the
// decoded audio (in-band detection stands down once the remote has sent an
// RFC 4733 event, so one press is not reported twice). When off nothing is
// reported, but a recording's StopTones still work.
func (s *Session) DetectTones(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	// A press already under way when tones are turned on began before
	// the subscription and stays unreported (see tickReceive).
	s.st.detect = on
}

// SendTones sends each tone of tones ("0-9*#A-D"; other characters are
// skipped) for 100 ms with gap between them, after any tones already
// queued: as RFC 4733 events when SetRemote negotiated a payload type,
// else in-band as dual-tone audio (with a gap of at least 60 ms so the far
// end can tell repeated digits apart). While a tone is on the wire it takes
// the place of played audio, which resumes where it paused. done (may be
// nil) is called when the last tone has been sent, or on Close.
func (s *Session) SendTones(tones string, gap time.Duration, done func()) {
	s.mu.Lock()
	if s.st.closed {
		s.mu.Unlock()
		if done != nil {
			s.cbMu.Lock()
			done()
			s.cbMu.Unlock()
		}
		return
	}
	var b strings.Builder
	for i := range len(tones) {
		if dtmf.Valid(tones[i]) {
			b.WriteByte(tones[i])
		}
	}
	g := int((max(gap, 0) + FrameDuration - 1) / FrameDuration)
	s.st.tones = append(s.st.tones, toneJob{tones: b.String(), gap: g, done: done})
	s.mu.Unlock()
}

// SetMuted stops (or resumes) sending played audio; Play keeps its place
// in time, and tones are still sent.
func (s *Session) SetMuted(m bool) {
	s.mu.Lock()
	s.st.muted = m
	s.mu.Unlock()
}

// Stats returns the session's counters.
func (s *Session) Stats() SessionStats {
	s.mu.Lock()
	st := SessionStats{
		Lost:       s.st.jb.lost,
		Late:       s.st.jb.late,
		Duplicates: s.st.jb.duplicates,
	}
	s.mu.Unlock()
	st.PacketsSent = s.sent.Load()
	st.PacketsReceived = s.rcvd.Load()
	st.Late += s.ringDrops.Load()
	// J is in timestamp units ×16; 8 units per ms.
	st.Jitter = time.Duration(s.jitter.Load()) * time.Second / (16 * SampleRate)
	return st
}

// Close stops the session and releases its port. What is pending ends:
// Play's done gets false, Record's done RecordStopped, SendTones' done is
// called; these run before Close returns, on the calling goroutine. A
// conference the session is a member of drops it (as Conference.Remove
// would), and a bridge it is in stops. Close is idempotent. It must not be
// called from one of the session's own callbacks.
func (s *Session) Close() error {
	var p pending
	s.mu.Lock()
	if s.st.closed {
		s.mu.Unlock()
		return nil
	}
	s.st.closed = true
	s.stopPlayLocked(&p)
	s.stopRecordLocked(&p, RecordStopped, 0)
	tones := s.st.tones
	s.st.tones = nil
	br := s.st.br
	m := s.st.conf
	s.setConfLocked(nil)
	s.mu.Unlock()
	if br != nil {
		br.stop() // the peer sends nothing more of ours, and forwards nothing to us
	}
	if m != nil {
		m.c.drop(m) // the others stop hearing us from the next tick
	}

	// A tick that began before closed was set may still be sending on
	// the socket's descriptor: wait for it before closing the socket.
	s.cbMu.Lock()
	s.cbMu.Unlock() //nolint:staticcheck // an intentional barrier
	s.shard.mu.Lock()
	s.shard.rx.remove(s) // before the socket's descriptor can be reused
	s.shard.mu.Unlock()
	s.stopReceiving()
	err := s.closeSocket()
	s.waitReceiver()

	// Once the tick and the reader are done with the session (cbMu),
	// leave the shard and fold the counters into the engine under the
	// shard lock, so Stats never counts them twice or not at all.
	s.cbMu.Lock()
	defer s.cbMu.Unlock()
	sh := s.shard
	sh.mu.Lock()
	last := len(sh.sessions) - 1
	moved := sh.sessions[last]
	sh.sessions[s.shardIdx] = moved
	moved.shardIdx = s.shardIdx
	sh.sessions[last] = nil
	sh.sessions = sh.sessions[:last]
	sh.live.Add(-1)
	s.e.closedSent.Add(s.sent.Load())
	s.e.closedRecv.Add(s.rcvd.Load())
	sh.mu.Unlock()
	s.e.left()
	s.e.ports.release(s.port)

	p.run(nil)
	for _, j := range tones {
		if j.done != nil {
			j.done()
		}
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return fmt.Errorf("close media session: %w", err)
	}
	return nil
}
