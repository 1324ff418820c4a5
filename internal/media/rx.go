package media

import (
	"net/netip"
	"sync/atomic"

	"github.com/pion/rtp"

	"github.com/switchboard-voice/switchboard/internal/media/dtmf"
)

// rxRingSize is how many audio packets the reader can hand to the tick
// between two ticks: 320 ms of audio, far more than arrive in 20 ms.
const rxRingSize = 16

// rxPacket is one received audio frame (or a non-audio sequence number)
// on its way from the reader to the tick.
type rxPacket struct {
	seq     uint16
	ts      uint32
	marker  bool
	skip    bool // no audio: an RFC 4733 or other non-audio packet
	reset   bool // a new stream (SSRC) starts here
	payload [SamplesPerFrame]byte
}

// rxRing is a single-producer (the reader), single-consumer (the tick)
// ring: the hand-over costs two atomic operations, no lock.
type rxRing struct {
	head atomic.Uint32 // next slot the reader writes; written by the reader
	_    [60]byte      // keep head and tail on separate cache lines
	tail atomic.Uint32 // next slot the tick reads; written by the tick
	pkts [rxRingSize]rxPacket
}

// slot returns the slot to fill, or nil when the ring is full.
func (r *rxRing) slot() *rxPacket {
	h := r.head.Load()
	if h-r.tail.Load() >= rxRingSize {
		return nil
	}
	return &r.pkts[h%rxRingSize]
}

// publish hands the filled slot to the consumer.
func (r *rxRing) publish() { r.head.Add(1) }

// rxState is the receiving side's own state: the poll's (Linux) or the
// reader goroutine's.
type rxState struct {
	hdr     rtp.Header
	gen     uint64 // remoteConfig generation seen
	latched bool
	src     netip.AddrPort
	started bool // EventMediaStarted reported

	haveSSRC bool
	ssrc     uint32

	// RFC 3550 A.8 jitter.
	haveTransit bool
	transit     uint32
	jitter      uint32 // ×16

	// Inter-arrival gaps of consecutive audio packets, in 1 ms buckets
	// (the last is "and more"): RTP pacing as this receiver sees it.
	lastArrival int64
	lastSeq     uint16
	gaps        [gapBuckets]uint32

	// Reframing of packets that are not 20 ms (ptime 10, 30, 40...): the
	// samples are cut into 20 ms frames by timestamp, each queued with a
	// sequence number derived from its timestamp, so the jitter buffer and
	// everything after it keep working in 20 ms frames.
	reframe   bool
	partial   [SamplesPerFrame]byte
	filled    int    // samples in partial
	partialTS uint32 // timestamp of partial[0]
	nextTS    uint32 // timestamp the next sample of partial would have
	partialM  bool   // partial starts a talkspurt

	// RFC 4733 events, identified by their RTP timestamp (§2.2.1).
	haveEvent bool
	evTS      uint32
	evCode    uint8
	evEnded   bool
	evDur     uint16
}

// receive handles one datagram: the per-packet hot path. It allocates
// nothing, logs nothing and takes no lock except on the rare events (a
// latch, the first packet, a new tone).
func (s *Session) receive(b []byte, from netip.AddrPort, now int64) {
	r := &s.rx
	cfg := s.cfg.Load()
	if cfg == nil {
		return // no remote yet: we could not decode it anyway
	}
	if len(b) < rtpHeaderSize || b[0]>>6 != 2 {
		return
	}
	pt := b[1] & 0x7f
	if pt >= 72 && pt <= 95 {
		return // RTCP multiplexed on this port (RFC 5761 §4)
	}
	if cfg.gen != r.gen {
		// SetRemote (again): latch afresh.
		r.gen, r.latched = cfg.gen, false
	}
	if r.latched && from != r.src && from != cfg.remote {
		return // once latched, only the latched source or the signalled one (SetRemote)
	}
	hlen, err := r.hdr.Unmarshal(b)
	if err != nil {
		return
	}
	payload := b[hlen:]
	if r.hdr.Padding {
		if len(payload) == 0 || int(payload[len(payload)-1]) > len(payload) {
			return
		}
		payload = payload[:len(payload)-int(payload[len(payload)-1])]
	}
	if !r.latched || from != r.src {
		// Not from where RTP goes: the NAT rule of SetRemote. A packet
		// of a negotiated payload type latches when it comes from the
		// signalled address, or from anywhere while nothing has latched
		// yet; what else the signalled address sends before then
		// (comfort noise) counts as received but latches nothing, and
		// anything else is dropped. So whoever sends first takes nothing
		// by sending garbage or a payload type nobody negotiated, and a
		// packet of the old remote still in flight after a re-INVITE does
		// not keep the new one out.
		if pt == cfg.codec.PayloadType || (cfg.dtmfPT != 0 && pt == cfg.dtmfPT) {
			r.latched, r.src = true, from
			s.latch(from)
		} else if r.latched || from != cfg.remote {
			return
		}
	}
	s.lastRecv.Store(now)
	s.rcvd.Add(1)

	newStream := false
	if !r.haveSSRC || r.hdr.SSRC != r.ssrc {
		newStream = r.haveSSRC
		r.haveSSRC, r.ssrc = true, r.hdr.SSRC
		r.haveTransit, r.haveEvent = false, false
		r.reframe, r.filled = false, 0
	}

	switch {
	case cfg.dtmfPT != 0 && pt == cfg.dtmfPT:
		var ev dtmf.Event
		if ev.Unmarshal(payload) == nil {
			if tone, ok := r.event(r.hdr.Timestamp, ev); ok {
				s.remoteTone(tone)
			}
		}
		if !r.reframe {
			s.queue(r.hdr.SequenceNumber, r.hdr.Timestamp, false, true, newStream, nil, cfg.silence)
		}
	case pt == cfg.codec.PayloadType:
		if !r.reframe && len(payload) != SamplesPerFrame && len(payload) > 0 {
			r.reframe, r.filled = true, 0
			newStream = true // sequence numbers change meaning from here
		}
		if r.reframe {
			s.reframeAudio(r.hdr.Timestamp, r.hdr.Marker, newStream, payload, cfg.silence)
		} else {
			s.queue(r.hdr.SequenceNumber, r.hdr.Timestamp, r.hdr.Marker, false, newStream, payload, cfg.silence)
		}
		r.updateJitter(now, r.hdr.Timestamp)
		r.updateGaps(now, r.hdr.SequenceNumber)
		s.jitter.Store(r.jitter)
	default:
		// Comfort noise or a codec we did not offer: its sequence number
		// is not audio loss.
		if !r.reframe {
			s.queue(r.hdr.SequenceNumber, r.hdr.Timestamp, false, true, newStream, nil, cfg.silence)
		}
	}

	if !r.started {
		r.started = true
		s.report(Event{Kind: EventMediaStarted})
	}
}

// queue hands a packet to the tick through the ring.
func (s *Session) queue(seq uint16, ts uint32, marker, skip, reset bool, payload []byte, silence byte) {
	p := s.ring.slot()
	if p == nil {
		s.ringDrops.Add(1) // the tick has fallen far behind
		return
	}
	p.seq, p.ts, p.marker, p.skip, p.reset = seq, ts, marker, skip, reset
	if !skip {
		n := copy(p.payload[:], payload)
		for i := n; i < len(p.payload); i++ {
			p.payload[i] = silence // short frame: pad (ptime other than 20 is not negotiated)
		}
	}
	s.ring.publish()
}

// reframeAudio cuts a packet of any length into 20 ms frames by timestamp.
// A frame's sequence number is its timestamp / 160: consecutive frames
// count up by one, as the jitter buffer expects. A packet that does not
// continue the partial frame (loss, reordering, a new talkspurt) flushes
// it, padded with silence.
func (s *Session) reframeAudio(ts uint32, marker, reset bool, payload []byte, silence byte) {
	r := &s.rx
	if r.filled > 0 && ts != r.nextTS {
		s.flushPartial(silence, reset)
		reset = false
	}
	if r.filled == 0 {
		r.partialTS, r.partialM = ts, marker
	}
	for len(payload) > 0 {
		n := copy(r.partial[r.filled:], payload)
		r.filled += n
		payload = payload[n:]
		if r.filled == SamplesPerFrame {
			s.queue(uint16(r.partialTS/SamplesPerFrame), r.partialTS, r.partialM, false, reset, r.partial[:], silence)
			reset = false
			r.partialTS += SamplesPerFrame
			r.partialM = false
			r.filled = 0
		}
	}
	r.nextTS = r.partialTS + uint32(r.filled)
}

func (s *Session) flushPartial(silence byte, reset bool) {
	r := &s.rx
	for i := r.filled; i < SamplesPerFrame; i++ {
		r.partial[i] = silence
	}
	s.queue(uint16(r.partialTS/SamplesPerFrame), r.partialTS, r.partialM, false, reset, r.partial[:], silence)
	r.filled = 0
}

const gapBuckets = 128

func (r *rxState) updateGaps(now int64, seq uint16) {
	if r.lastArrival != 0 && seq == r.lastSeq+1 {
		r.gaps[min((now-r.lastArrival)/1e6, gapBuckets-1)]++
	}
	r.lastArrival, r.lastSeq = now, seq
}

// updateJitter is RFC 3550 §6.4.1 / A.8 with arrival in timestamp units.
func (r *rxState) updateJitter(now int64, ts uint32) {
	arrival := uint32(now / (int64(1e9) / SampleRate))
	transit := arrival - ts
	if r.haveTransit {
		d := int32(transit - r.transit)
		if d < 0 {
			d = -d
		}
		r.jitter += uint32(d) - (r.jitter+8)>>4
	}
	r.transit, r.haveTransit = transit, true
}

// event decides whether an RFC 4733 packet starts a new event. Events are
// identified by their RTP timestamp (§2.2.1): the first packet of a new
// timestamp reports the tone, whatever its duration (carriers and sipp
// send a first packet of duration 0), and every later packet of that
// event, including the three end packets (§2.5.1.4), is absorbed. A packet
// older than the current event (reordered) is ignored, as is the next
// segment of a long event (§2.5.1.3, §2.5.2.3: same code, timestamp = previous
// timestamp + previous duration, previous not ended).
func (r *rxState) event(ts uint32, ev dtmf.Event) (byte, bool) {
	if r.haveEvent {
		d := int32(ts - r.evTS)
		switch {
		case d == 0:
			r.evEnded = r.evEnded || ev.End
			r.evDur = max(r.evDur, ev.Duration)
			return 0, false
		case d < 0 && d > -10*SampleRate:
			return 0, false // a straggler of an earlier event
		case d > 0 && !r.evEnded && ev.Code == r.evCode && ts == r.evTS+uint32(r.evDur):
			r.evTS, r.evDur, r.evEnded = ts, ev.Duration, ev.End
			return 0, false
		}
	}
	r.haveEvent, r.evTS, r.evCode, r.evEnded, r.evDur = true, ts, ev.Code, ev.End, ev.Duration
	return dtmf.Char(ev.Code)
}

// latch points sending at the address the remote's RTP comes from.
func (s *Session) latch(from netip.AddrPort) {
	s.mu.Lock()
	s.st.sendTo = from
	s.mu.Unlock()
}

// report delivers an event from the reader goroutine.
func (s *Session) report(e Event) {
	s.cbMu.Lock()
	defer s.cbMu.Unlock()
	s.mu.Lock()
	closed := s.st.closed
	s.mu.Unlock()
	if !closed && s.ev != nil {
		s.ev(e)
	}
}

// remoteTone handles the start of an RFC 4733 event: report it if tones
// are being detected, end a recording it is a stop tone of.
// A bridged session's peer sends the tone on (Bridge); not under this
// session's locks, so that two bridged sessions never wait for each other.
func (s *Session) remoteTone(tone byte) {
	s.sawEvents.Store(true)
	s.cbMu.Lock()
	var p pending
	s.mu.Lock()
	if s.st.closed {
		s.mu.Unlock()
		s.cbMu.Unlock()
		return
	}
	s.toneLocked(&p, tone)
	peer := s.bridgePeerLocked()
	s.mu.Unlock()
	p.run(s.ev)
	s.cbMu.Unlock()
	if peer != nil {
		peer.SendTones(toneString(tone), 0, nil)
	}
}

// toneString is a one-character string without an allocation.
func toneString(tone byte) string {
	const all = dtmf.Tones
	for i := range len(all) {
		if all[i] == tone {
			return all[i : i+1]
		}
	}
	return ""
}

// toneLocked reacts to a detected tone, RFC 4733 or in-band: it reports
// it, ends a recording it is a stop tone of, and tells the conference the
// session is a member of (for its recording's stop tones).
func (s *Session) toneLocked(p *pending, tone byte) {
	if s.st.detect {
		p.event(Event{Kind: EventTone, Tone: tone})
	}
	if m := s.st.conf; m != nil {
		m.c.noteTone(tone)
	}
	if s.st.rec.on && indexByte(s.st.rec.stopTones, tone) {
		s.stopRecordLocked(p, RecordStopTone, tone)
	}
}

func indexByte(s string, c byte) bool {
	for i := range len(s) {
		if s[i] == c {
			return true
		}
	}
	return false
}
