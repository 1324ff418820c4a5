package media

import (
	"net/netip"

	"github.com/switchboard-voice/switchboard/internal/media/dtmf"
	"github.com/switchboard-voice/switchboard/internal/media/g711"
)

// RFC 4733 sending (§2.5.1): a 100 ms tone is five updates 20 ms apart
// with growing duration, the fifth with the E bit, which is then sent
// twice more (three end packets, §2.5.1.4). All carry the event's start
// timestamp (§2.2.1); the first has the marker bit (§2.2.2).
const (
	toneFrames    = 5  // 100 ms
	rfcEndRepeats = 2  // extra end packets
	rfcVolume     = 10 // -10 dBm0, a typical keypad level
	inbandMinGap  = 3  // frames (60 ms) between in-band tones
)

// toneState is the tone being sent, from the head of sessionState.tones.
type toneState struct {
	active  bool
	idx     int    // the tone within the job's string
	frame   int    // frames of it sent
	readyAt uint64 // tick at which the next tone may start
	rfc     bool
	evTS    uint32
}

// tick is the session's share of one media clock tick (the engine's
// worker calls it every 20 ms): hand received packets to the jitter
// buffer, play out one frame to the recorder and tone detector, and send
// at most one packet. Bounded work, no allocation; mu is taken once. A
// conference member is ticked by its conference instead (confReceive,
// confSend), and each half of a tick runs once per tick number whoever
// runs it.
func (s *Session) tick(n uint64, now int64) {
	s.cbMu.Lock()
	defer s.cbMu.Unlock()
	s.mu.Lock()
	st := &s.st
	if st.closed || st.conf != nil {
		s.mu.Unlock()
		return
	}
	cfg := s.cfg.Load()
	p := &st.pend
	if due(&st.rxNext, n) {
		s.tickReceive(cfg, now, p)
	}
	size := 0
	if due(&st.txNext, n) {
		size = s.tickSend(cfg, n, p)
	}
	dest := st.sendTo
	s.mu.Unlock()
	s.transmit(size, dest)
	p.run(s.ev)
}

// due reports whether tick n is due for the half of a session's tick
// whose next due tick is *next, and marks it done. A tick already done
// is not: a session moving between a worker and its conference's (Add,
// Remove) may be reached by both for one tick. A tick far behind is a
// clock started again (Engine.Run anew), not a repeat.
func due(next *uint64, n uint64) bool {
	if n < *next && *next-n <= restartTicks {
		return false
	}
	*next = n + 1
	return true
}

// restartTicks: see due.
const restartTicks = 50

// transmit sends the packet tickSend built. Only the goroutine ticking
// the session, under cbMu, uses tx.buf, so it is read unlocked.
func (s *Session) transmit(size int, dest netip.AddrPort) {
	if size == 0 || !dest.IsValid() {
		return
	}
	tx := &s.st.tx
	if err := s.send(tx.buf[:size], dest); err == nil {
		s.sent.Add(1)
		s.notePacing(tx)
	} else if s.sendErrs.Add(1) == 1 {
		s.log.Warn("send rtp", "to", dest, "err", err) // once per session
	}
}

// notePacing records the gap since the previous audio packet of a
// talkspurt: the stream's pacing as a capture on the wire would see it.
func (s *Session) notePacing(tx *txState) {
	if !tx.lastAudio {
		tx.lastSend = 0
		return
	}
	t := s.e.nanotime()
	if tx.lastSend != 0 && !tx.hdr.Marker {
		tx.gaps[min((t-tx.lastSend)/1e6, gapBuckets-1)]++
	}
	tx.lastSend = t
}

// tickReceive plays out one received frame.
func (s *Session) tickReceive(cfg *remoteConfig, now int64, p *pending) {
	st := &s.st
	if cfg != nil && cfg.codec != st.codec {
		st.jb.reset() // what is buffered is in the old codec
		st.codec = cfg.codec
	}
	r := &s.ring
	head, tail := r.head.Load(), r.tail.Load()
	for ; tail != head; tail++ {
		pk := &r.pkts[tail%rxRingSize]
		if pk.reset {
			st.jb.reset()
		}
		if pk.skip {
			st.jb.pushSkip(pk.seq)
		} else {
			st.jb.push(pk.seq, pk.ts, pk.marker, pk.payload[:])
		}
	}
	r.tail.Store(tail)
	kind := st.jb.pop(st.frame[:])
	if l := st.brOut; l != nil {
		switch kind {
		case frameAudio:
			l.put(st.frame[:], st.codec.Name == PCMA.Name)
		case frameLost:
			l.putSilence(st.codec.Name == PCMA.Name)
		}
	}

	m := st.conf
	detect := (st.detect || st.rec.needDetect || (m != nil && m.c.needDetect.Load())) && !s.sawEvents.Load()
	if detect && !st.detRunning {
		st.detFresh = true // starting: a press under way is not new
	}
	st.detRunning = detect
	if st.rec.on || detect || m != nil {
		pcm := st.pcm[:]
		switch {
		case kind != frameAudio:
			clear(pcm)
		case st.codec.Name == PCMA.Name:
			g711.DecodeAlaw(pcm, st.frame[:])
		default:
			g711.DecodeUlaw(pcm, st.frame[:])
		}
		if detect {
			s.detectFrame(p, kind, pcm)
			st.detFresh = false // only the first frame can be a press under way
		}
		if st.rec.on {
			s.recordFrame(p, pcm)
		}
		if m != nil {
			// Every tick, silence when nothing played out: the mixer
			// then never counts the member as missing, and its level
			// decays through a pause.
			m.part.Write(pcm)
		}
	}

	// Only a stream that flows both ways owes us RTP (SetDirection).
	if timeout := s.e.o.InactivityTimeout; timeout > 0 && cfg != nil && st.dir == SendRecv {
		last := max(s.lastRecv.Load(), st.armedAt)
		switch {
		case !st.inactive && now-last >= int64(timeout):
			st.inactive = true
			p.event(Event{Kind: EventInactive})
		case st.inactive && now-last < int64(timeout):
			st.inactive = false // RTP resumed: arm again
		}
	}
}

// detectFrame feeds the in-band detector the audio as the sender timed it
// (RTP timestamps), not as it was played out: a jitter-buffer underrun in
// the middle of a tone must not split it into two presses, while a gap of
// more than a frame in the sender's timestamps (it stopped sending between
// tones) ends a press. A lost frame is skipped for the same reason.
func (s *Session) detectFrame(p *pending, kind frameKind, pcm []int16) {
	st := &s.st
	switch kind {
	case frameLost:
		st.detTS += SamplesPerFrame
	case frameAudio:
		// One missing frame is tolerated: a sender's clock may skip a
		// tick under load (ours does), which is no pause between presses.
		if gap := int32(st.jb.ts - st.detTS - SamplesPerFrame); !st.detHave || gap < 0 || gap > SamplesPerFrame {
			st.det.Reset()
		}
		if st.detFresh {
			st.det.SkipCurrent()
		}
		st.detHave, st.detTS = true, st.jb.ts
		if tone, ok := st.det.Process(pcm); ok {
			s.toneLocked(p, tone)
		}
	}
}

// recordFrame gives one frame to the recording and ends it when one of its
// limits is reached.
func (s *Session) recordFrame(p *pending, pcm []int16) {
	rec := &s.st.rec
	p.sink, p.sinkPCM = rec.sink, pcm
	if reason := rec.account(pcm); reason != 0 {
		s.stopRecordLocked(p, reason, 0)
	}
}

// tickSend builds this tick's packet, if any, in tx.buf and returns its
// size. Tones go first, then played audio, then bridged audio or the
// conference's mix; idle sends nothing. The RTP timestamp follows the
// media clock whether or not anything is sent, and the sequence number
// counts packets sent (RFC 3550 §5.1).
func (s *Session) tickSend(cfg *remoteConfig, n uint64, p *pending) int {
	st := &s.st
	tx := &st.tx
	if !tx.started {
		tx.started, tx.tick0 = true, n
	}
	ts := tx.tsBase + uint32(n-tx.tick0)*SamplesPerFrame
	// A bridged frame, or a member's mix, is taken every tick, sent or
	// not, so that what the peer received never queues behind tones or a
	// prompt.
	var bridged bool
	switch {
	case st.brIn != nil:
		bridged = st.brIn.take(st.brFrame[:], cfg != nil && cfg.codec.Name == PCMA.Name)
	case st.conf != nil:
		bridged = st.conf.take(st.brFrame[:], cfg)
	}
	if size, sent := s.sendTone(cfg, n, ts, p); sent {
		return size
	}
	if !st.play.playing {
		if bridged && cfg != nil && !st.muted {
			return s.audioPacket(cfg, ts, st.brFrame[:])
		}
		tx.lastAudio = false
		return 0
	}
	pl := &st.play
	frames := 0
	if pl.audio != nil {
		frames = pl.audio.Frames()
	}
	if frames == 0 {
		s.finishPlay(p)
		tx.lastAudio = false
		return 0
	}
	pos := pl.pos
	pl.pos++
	var payload []byte
	if cfg != nil && !st.muted {
		payload = pl.audio.Payload(cfg.codec)
	}
	if pl.pos >= frames {
		if pl.loop {
			pl.pos = 0
		} else {
			s.finishPlay(p)
		}
	}
	if payload == nil {
		tx.lastAudio = false
		return 0
	}
	return s.audioPacket(cfg, ts, payload[pos*SamplesPerFrame:(pos+1)*SamplesPerFrame])
}

func (s *Session) finishPlay(p *pending) {
	p.playDone, p.playOK = s.st.play.done, true
	s.st.play = playState{}
}

// audioPacket writes an audio packet; the first after a pause has the
// marker bit (RFC 3551 §4.1: the start of a talkspurt).
func (s *Session) audioPacket(cfg *remoteConfig, ts uint32, payload []byte) int {
	tx := &s.st.tx
	marker := !tx.lastAudio
	tx.lastAudio = true
	return s.packet(cfg.codec.PayloadType, marker, ts, payload)
}

// packet writes an RTP packet into tx.buf and returns its size; 0 when the
// direction does not send, and then the sequence number is not used up.
func (s *Session) packet(pt uint8, marker bool, ts uint32, payload []byte) int {
	tx := &s.st.tx
	if !s.st.dir.Sends() {
		tx.lastAudio = false // what is sent next starts a talkspurt
		return 0
	}
	tx.hdr.PayloadType = pt
	tx.hdr.Marker = marker
	tx.hdr.SequenceNumber = tx.seq
	tx.hdr.Timestamp = ts
	n, err := tx.hdr.MarshalTo(tx.buf[:])
	if err != nil {
		return 0
	}
	tx.seq++
	return n + copy(tx.buf[n:], payload)
}

// sendTone advances SendTones by one frame and reports whether this tick
// belongs to a tone (sent or, without a remote, silently timed).
func (s *Session) sendTone(cfg *remoteConfig, n uint64, ts uint32, p *pending) (int, bool) {
	st := &s.st
	t := &st.tone
	for !t.active {
		if len(st.tones) == 0 || n < t.readyAt {
			return 0, false // nothing queued, or the pause between tones: played audio may go
		}
		job := &st.tones[0]
		if t.idx >= len(job.tones) {
			s.finishToneJob(p) // an empty job
			if p.ntone == len(p.toneDone) {
				return 0, false // more next tick
			}
			continue
		}
		*t = toneState{active: true, idx: t.idx, rfc: cfg != nil && cfg.dtmfPT != 0, evTS: ts}
		if !t.rfc {
			st.gen.Start(job.tones[t.idx], 0)
		}
	}
	job := &st.tones[0]
	k := t.frame
	t.frame++
	size := 0
	if t.rfc {
		end := k >= toneFrames-1
		dur := uint16(min(k+1, toneFrames) * SamplesPerFrame)
		code, _ := dtmf.Code(job.tones[t.idx])
		var pl [dtmf.EventSize]byte
		dtmf.Event{Code: code, End: end, Volume: rfcVolume, Duration: dur}.MarshalTo(pl[:])
		if cfg.dtmfPT != 0 {
			size = s.packet(cfg.dtmfPT, k == 0, t.evTS, pl[:])
		}
		st.tx.lastAudio = false
		if k < toneFrames+rfcEndRepeats-1 {
			return size, true
		}
	} else {
		st.gen.Read(st.txPCM[:])
		if cfg != nil {
			if cfg.codec.Name == PCMA.Name {
				g711.EncodeAlaw(st.txFrame[:], st.txPCM[:])
			} else {
				g711.EncodeUlaw(st.txFrame[:], st.txPCM[:])
			}
			size = s.audioPacket(cfg, ts, st.txFrame[:])
		}
		if k < toneFrames-1 {
			return size, true
		}
		st.gen.Stop()
	}
	// This tone is done: pause before the next, also across SendTones
	// calls, so that in-band repeats of one digit stay two presses.
	gap := 0
	if t.idx+1 < len(job.tones) {
		gap = job.gap
	}
	if !t.rfc {
		gap = max(gap, inbandMinGap)
	}
	t.active = false
	t.idx++
	t.readyAt = n + 1 + uint64(gap)
	if t.idx >= len(job.tones) {
		s.finishToneJob(p) // done on the tick of the job's last packet
	}
	return size, true
}

// finishToneJob completes the SendTones job at the head of the queue.
func (s *Session) finishToneJob(p *pending) {
	st := &s.st
	p.toneDoneAdd(st.tones[0].done)
	st.tones[0] = toneJob{}
	st.tones = st.tones[1:]
	if len(st.tones) == 0 {
		st.tones = nil
	}
	st.tone.idx = 0
}
