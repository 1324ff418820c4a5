package media

// Jitter buffer geometry, in 20 ms frames.
const (
	jbSlots       = 16 // ring size, a power of two: 320 ms of reordering room
	jbDepth       = 3  // playout delay after (re)starting: ~60 ms
	jbMaxBuffered = 2 * jbDepth
	jbResync      = 100 // a sequence jump this large starts a new stream
)

type slotState uint8

const (
	slotEmpty  slotState = iota
	slotFull             // audio waiting to be played
	slotSkip             // a non-audio packet (RFC 4733, CN) took this number
	slotPlayed           // played or passed over; kept to tell duplicates from late packets
)

type jbSlot struct {
	seq     uint16
	ts      uint32
	state   slotState
	payload [SamplesPerFrame]byte
}

// frameKind is what jitterBuffer.pop produced.
type frameKind uint8

const (
	frameNone  frameKind = iota // nothing to play: no stream, prefilling, or the sender paused
	frameAudio                  // a received frame
	frameLost                   // a frame that never arrived while later ones did
)

// jitterBuffer reorders received G.711 frames by RTP sequence number and
// plays them out one per tick at a fixed delay of about jbDepth frames.
//
// It tells a pause from loss: when it runs dry with nothing queued behind
// the missing frame, it waits (the sender stopped, as Switchboard's own
// sessions do between prompts) instead of counting every silent tick as
// lost; the next packet refills it to jbDepth before playout resumes. A
// packet with the marker bit after a pause starts a new talkspurt, so the
// sequence numbers skipped meanwhile (RFC 4733 events, comfort noise) are
// not counted as lost either. Packets for frames already played are late
// (or duplicates, if the frame was played); jumps beyond jbResync restart
// the stream.
//
// A jitterBuffer is owned by one goroutine (a session's tick); its methods
// allocate nothing.
type jitterBuffer struct {
	slots   [jbSlots]jbSlot
	started bool   // playSeq is meaningful
	playing bool   // false: waiting for the first packet or refilling after running dry
	wait    int    // ticks left before playout starts
	playSeq uint16 // next sequence number to play
	count   int    // slots in slotFull
	ts      uint32 // RTP timestamp of the frame pop last returned

	lost, late, duplicates uint64
}

func (j *jitterBuffer) reset() {
	for i := range j.slots {
		j.slots[i].state = slotEmpty
	}
	j.started, j.playing, j.wait, j.count = false, false, 0, 0
}

func (j *jitterBuffer) restart(seq uint16) {
	j.reset()
	j.started = true
	j.playSeq = seq
}

// admit decides whether seq may be stored and returns its slot, counting
// late packets and duplicates, and making room when seq is far ahead.
func (j *jitterBuffer) admit(seq uint16, marker bool) *jbSlot {
	if !j.started {
		j.restart(seq)
	}
	d := int(int16(seq - j.playSeq))
	switch {
	case d >= jbResync || d <= -jbResync:
		j.restart(seq)
	case d < 0:
		if sl := &j.slots[seq%jbSlots]; sl.seq == seq && sl.state == slotPlayed {
			j.duplicates++
		} else {
			j.late++
		}
		return nil
	case d > 0 && marker && !j.playing && j.count == 0:
		// A new talkspurt after a pause: what was skipped was not audio.
		j.playSeq = seq
	case d >= jbSlots:
		// Far ahead but not a new stream (a burst after a stall, or a
		// sender whose clock runs fast): drop the oldest to make room.
		for int16(seq-j.playSeq) >= jbSlots {
			j.pass()
		}
	}
	sl := &j.slots[seq%jbSlots]
	if sl.seq == seq && sl.state != slotEmpty && sl.state != slotPlayed {
		j.duplicates++
		return nil
	}
	return sl
}

// push stores one 20 ms audio frame (len(payload) == SamplesPerFrame).
func (j *jitterBuffer) push(seq uint16, ts uint32, marker bool, payload []byte) {
	sl := j.admit(seq, marker)
	if sl == nil {
		return
	}
	if !j.playing && j.count == 0 {
		// First frame of a stream or after running dry: refill.
		j.wait = jbDepth - 1
	}
	sl.seq, sl.ts, sl.state = seq, ts, slotFull
	copy(sl.payload[:], payload)
	j.count++
}

// pushSkip records that seq carried no audio (an RFC 4733 event or comfort
// noise), so its absence from the audio is not loss.
func (j *jitterBuffer) pushSkip(seq uint16) {
	if sl := j.admit(seq, false); sl != nil {
		sl.seq, sl.state = seq, slotSkip
	}
}

// pass moves playout past playSeq without playing it.
func (j *jitterBuffer) pass() {
	sl := &j.slots[j.playSeq%jbSlots]
	switch {
	case sl.seq == j.playSeq && sl.state == slotFull:
		j.count--
		j.late++ // it arrived but there was no time left to play it
	case sl.seq == j.playSeq && sl.state == slotSkip:
	default:
		// Never arrived: if it turns up now it is late, not a duplicate.
		j.lost++
		sl.state = slotEmpty
		j.playSeq++
		return
	}
	sl.seq, sl.state = j.playSeq, slotPlayed
	j.playSeq++
}

// pop plays out the next frame into dst (SamplesPerFrame bytes) when it
// returns frameAudio; j.ts is then its RTP timestamp.
func (j *jitterBuffer) pop(dst []byte) frameKind {
	if !j.started {
		return frameNone
	}
	if !j.playing {
		if j.count == 0 {
			return frameNone
		}
		if j.wait > 0 {
			j.wait--
			return frameNone
		}
		j.playing = true
	}
	// Keep the delay bounded when the sender runs ahead of our clock.
	for j.count > jbMaxBuffered {
		j.pass()
	}
	// Numbers taken by non-audio packets cost no play-out time.
	for i := 0; i < jbSlots; i++ {
		sl := &j.slots[j.playSeq%jbSlots]
		if sl.seq != j.playSeq || sl.state != slotSkip {
			break
		}
		sl.state = slotPlayed
		j.playSeq++
	}
	sl := &j.slots[j.playSeq%jbSlots]
	if sl.seq == j.playSeq && sl.state == slotFull {
		copy(dst, sl.payload[:])
		j.ts = sl.ts
		sl.state = slotPlayed
		j.count--
		j.playSeq++
		return frameAudio
	}
	if j.count > 0 {
		j.pass() // later frames are here: this one is lost
		return frameLost
	}
	// Dry with nothing behind: the sender paused (or the tail of a burst
	// was lost); wait and refill rather than count silence as loss.
	j.playing = false
	return frameNone
}
