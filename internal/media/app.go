package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-voice/switchboard/internal/media/mixer"
)

// Application-hosted media (docs/media-socket.md): the bot hears and
// speaks itself, 20 ms frames of 16 kHz PCM, over a socket call control
// and package mediasock own. The media engine's side of it is an AppPort:
// a port of the call's conference whose prompt is the audio the bot sends
// and whose listener is the mix of everyone but the bot, made into
// wire-ready frames on the conference's tick.

// The frame layout of the media socket: a 16-byte little-endian header
// (u32 sourceId, u32 sequence, u64 timestamp in ms) and 20 ms of 16 kHz
// mono s16le.
const (
	AppHeaderBytes = 16
	AppSamples     = 320
	AppPCMBytes    = 2 * AppSamples
	AppFrameBytes  = AppHeaderBytes + AppPCMBytes
)

// Defaults of AppOptions.
const (
	DefaultAppSendBuffer = 10 // 200 ms
	DefaultAppBatches    = 8  // 160 ms
	maxAppPrefix         = 16
)

// AppOptions configures an AppPort.
type AppOptions struct {
	// Prefix is written before each frame in the batches Take returns:
	// the transport's framing (a WebSocket frame header), so that a batch
	// goes to the socket as it is. At most 16 bytes.
	Prefix []byte
	// SendBuffer is how many frames from the bot (Write) are held, 20 ms
	// each, beyond which the oldest are dropped. Default 10 (200 ms).
	SendBuffer int
	// Batches is how many ticks of frames for the bot are held while its
	// reader is behind, beyond which a tick's frames are dropped. Default
	// 8 (160 ms).
	Batches int
	// OnEchoDelay, when not nil, is told, on the conference's tick, how
	// long a frame the bot sent back unchanged, header included (an echo),
	// took from leaving the mix to being mixed in again: the delay the bot
	// adds. It must not block.
	OnEchoDelay func(time.Duration)
}

// AppStats are an AppPort's frame counters since it was opened.
type AppStats struct {
	Sent     uint64 // frames queued for the bot's reader
	Dropped  uint64 // frames for the bot dropped: its reader was behind
	Received uint64 // frames the bot wrote
	Overrun  uint64 // frames from the bot dropped: more than SendBuffer ahead, or trimmed to cut delay
}

// AppPort is a bot's application-hosted media on a conference: what it
// writes, every member hears (mixed with any other port's prompts); what
// it reads, each 20 ms, is the mix of everyone but itself (source 0) and,
// for the sources it subscribed to, each member's own audio, unmixed, all
// at 16 kHz and ready for the wire. A member's source is the number call
// control gave it (Conference.SetSource); the frames of one tick all
// carry the same sequence (ticks since the port opened) and timestamp
// (20 ms per tick), so that a gap shows every frame a slow reader missed.
//
// The tick never waits for the bot: frames for it go into a ring of
// batches, one batch per tick, which one reader takes (Take, Done) while
// Attach is on; a full ring drops the tick's frames (counted). The
// bot's frames go into a bounded queue the tick plays one frame per tick
// from. Muting (SetMuted) silences the bot's audio; DetectTones,
// SetMuted and Close are the ConferencePort's.
type AppPort struct {
	*ConferencePort
	prefix []byte

	// Bot → call: a ring of frames, drop-oldest beyond its size; inSeq
	// is each frame's echoed sequence + 1, 0 when it is not an echo.
	inMu    sync.Mutex
	in      [][AppSamples]int16
	inSeq   []uint64
	inFirst int
	inLen   int
	inFull  int // consecutive ticks that found more than one frame queued

	// Call → bot: batches, single producer (the tick), single consumer.
	batches    []appBatch
	head, tail atomic.Uint64
	ready      chan struct{}

	sent, dropped, received, overrun atomic.Uint64

	// Under the conference's mutex.
	st appState

	onEcho func(time.Duration)
	// sentAt is when the frames of the last len ticks left, by sequence,
	// for OnEchoDelay; written by the tick, read by Write.
	sentAt  [echoWindow]atomic.Int64
	sentSeq [echoWindow]atomic.Uint32 // the sequence of the frame in each slot
	sentSum [echoWindow]atomic.Uint32 // and a fingerprint of its audio (fingerprint)
	echoSeq uint64                    // the frame the tick plays this tick echoes this sequence + 1

	// Owned by the conference's tick.
	start   uint64 // the first tick
	started bool
	voice   [AppSamples]int16
	want    []uint32 // per member of the tick's snapshot: its source if subscribed, else 0
	w       AppWriter
	on      bool // attached, as of this tick
}

type appBatch struct{ buf []byte }

// AppWriter writes a tick's batch straight to the bot's transport from
// the tick, without waiting: the common case, which wakes no goroutine.
type AppWriter interface {
	// TryWrite writes b whole, or writes what it can and keeps the rest to
	// finish before anything else, and reports true; false when it cannot
	// write now (busy, or its buffer is full): the batch then goes to the
	// ring for the reader (Take). It must not block, nor retain b.
	TryWrite(b []byte) bool
}

type appState struct {
	writer   AppWriter
	attached bool
	all      bool
	sources  map[uint32]bool
}

// NewAppPort opens a port for a bot's application-hosted media, named name
// (its call's id), from the next tick; see AppPort. The caller must Close
// it, or the conference.
func (c *Conference) NewAppPort(name string, o AppOptions) (*AppPort, error) {
	if name == "" {
		return nil, errors.New("new app port: no name")
	}
	if len(o.Prefix) > maxAppPrefix {
		return nil, fmt.Errorf("new app port %s: a prefix of %d bytes, at most %d", name, len(o.Prefix), maxAppPrefix)
	}
	if o.SendBuffer <= 0 {
		o.SendBuffer = DefaultAppSendBuffer
	}
	if o.Batches <= 0 {
		o.Batches = DefaultAppBatches
	}
	ap := &AppPort{
		prefix:  append([]byte(nil), o.Prefix...),
		in:      make([][AppSamples]int16, o.SendBuffer),
		inSeq:   make([]uint64, o.SendBuffer),
		onEcho:  o.OnEchoDelay,
		batches: make([]appBatch, o.Batches),
		ready:   make(chan struct{}, 1),
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.st.closed {
		return nil, fmt.Errorf("new app port %s: %w", name, ErrConferenceClosed)
	}
	for _, pt := range c.st.ports {
		if pt.name == name {
			return nil, fmt.Errorf("new app port %s: already open", name)
		}
	}
	pt := &ConferencePort{c: c, name: name, app: ap}
	var err error
	if pt.prompt, err = c.mix.Add(mixer.ParticipantOptions{ID: name, Role: mixer.Prompt, Input: mixer.Linear16k}); err != nil {
		return nil, fmt.Errorf("new app port %s: %w", name, err)
	}
	pt.prompt.SetContributes(false) // until the bot speaks
	pt.listener, err = c.mix.Add(mixer.ParticipantOptions{ID: name, Role: mixer.Listener, Output: mixer.Linear16k, Without: pt.prompt})
	if err != nil {
		c.mix.Remove(pt.prompt)
		return nil, fmt.Errorf("new app port %s: %w", name, err)
	}
	ap.ConferencePort = pt
	c.st.ports = append(c.st.ports, pt)
	c.apps.Add(1)
	return ap, nil
}

// Play does not play on an app port: the bot speaks through Write. done
// gets false at once.
func (ap *AppPort) Play(_ *Audio, _ bool, done func(completed bool)) {
	if done != nil {
		done(false)
	}
}

// Record does not record on an app port: the bot hears through Take.
// done gets RecordStopped at once.
func (ap *AppPort) Record(_ RecordOptions, _ func(pcm []int16), done func(RecordResult)) {
	if done != nil {
		done(RecordResult{Reason: RecordStopped})
	}
}

// SetSource gives member pid the source number its frames carry in the
// app ports' batches (its mediaStreams sourceId); 0, the default, is
// none: the member is heard in the mix only.
func (c *Conference) SetSource(pid string, source uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if m := c.memberLocked(pid); m != nil {
		m.source = source
	}
}

// Attach says whether a reader takes the port's batches. While off, the
// tick makes none (the media clock still runs: the sequence a reader
// attaching later sees has moved on); turning it on forgets any batch
// left over from a previous reader. One reader at a time: the caller
// turns it off, and stops calling Take, before another turns it on.
func (ap *AppPort) Attach(on bool) {
	c := ap.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if on && !ap.st.attached {
		ap.tail.Store(ap.head.Load())
		select {
		case <-ap.ready:
		default:
		}
	}
	ap.st.attached = on
	if !on {
		ap.st.writer = nil
	}
}

// SetWriter gives the tick a writer for the batches while attached (nil:
// none, everything goes through Take). Attach(false) takes it away.
func (ap *AppPort) SetWriter(w AppWriter) {
	c := ap.c
	c.mu.Lock()
	defer c.mu.Unlock()
	ap.st.writer = w
}

// Subscribe sets the members whose own audio the reader gets besides the
// mix: all of them, present and later, or those with the given sources.
// Subscribe(false) with no sources goes back to the mix alone.
func (ap *AppPort) Subscribe(all bool, sources ...uint32) {
	c := ap.c
	c.mu.Lock()
	defer c.mu.Unlock()
	ap.st.all = all
	clear(ap.st.sources)
	if len(sources) > 0 && ap.st.sources == nil {
		ap.st.sources = make(map[uint32]bool, len(sources))
	}
	for _, s := range sources {
		if s != 0 {
			ap.st.sources[s] = true
		}
	}
}

// Ready is signalled when the tick has queued a batch: wait on it, then
// Take until nil.
func (ap *AppPort) Ready() <-chan struct{} { return ap.ready }

// Take returns the oldest batch queued for the reader, nil when there is
// none: frames, each Prefix, the 16-byte header and 640 bytes of PCM, one
// per source of one tick, the mix first. It stays valid until Done, which
// the reader must call before the next Take.
func (ap *AppPort) Take() []byte {
	t := ap.tail.Load()
	if t == ap.head.Load() {
		return nil
	}
	return ap.batches[t%uint64(len(ap.batches))].buf
}

// Done hands back the batch Take returned.
func (ap *AppPort) Done() { ap.tail.Add(1) }

// echoWindow is how many ticks back an echoed frame is recognised.
const echoWindow = 64

// WriteFrame is Write for a whole frame, header and PCM (656 bytes): a
// header the port sent (an echo) is timed for OnEchoDelay.
func (ap *AppPort) WriteFrame(frame []byte) bool {
	if len(frame) != AppFrameBytes {
		return false
	}
	echo := uint64(0)
	if ap.onEcho != nil {
		seq := binary.LittleEndian.Uint32(frame[4:])
		// An echo is a source-0 frame sent back whole: its sequence was
		// sent, and its audio is what was sent under it (a bot's own
		// audio under a header it made up is not an echo).
		slot := seq % echoWindow
		sum := fingerprint(frame[AppHeaderBytes:])
		if binary.LittleEndian.Uint32(frame) == 0 && sum != silenceSum &&
			ap.sentAt[slot].Load() != 0 && ap.sentSeq[slot].Load() == seq &&
			binary.LittleEndian.Uint64(frame[8:]) == uint64(seq)*20 &&
			ap.sentSum[slot].Load() == sum {
			echo = uint64(seq) + 1
		}
	}
	return ap.write(frame[AppHeaderBytes:], echo)
}

// Write queues one frame from the bot, 640 bytes of 16 kHz s16le, to be
// heard from the next tick on, one frame per tick; beyond the send
// buffer the oldest queued frame is dropped. It reports false for a
// frame of the wrong size. Safe for one writer alongside the tick.
func (ap *AppPort) Write(pcm []byte) bool { return ap.write(pcm, 0) }

func (ap *AppPort) write(pcm []byte, echo uint64) bool {
	if len(pcm) != AppPCMBytes {
		return false
	}
	ap.received.Add(1)
	ap.inMu.Lock()
	if ap.inLen == len(ap.in) {
		ap.inFirst = (ap.inFirst + 1) % len(ap.in)
		ap.inLen--
		ap.overrun.Add(1)
	}
	at := (ap.inFirst + ap.inLen) % len(ap.in)
	ap.inSeq[at] = echo
	slot := &ap.in[at]
	for i := range slot {
		slot[i] = int16(binary.LittleEndian.Uint16(pcm[2*i:]))
	}
	ap.inLen++
	ap.inMu.Unlock()
	return true
}

// Stats returns the port's frame counters.
func (ap *AppPort) Stats() AppStats {
	return AppStats{Sent: ap.sent.Load(), Dropped: ap.dropped.Load(),
		Received: ap.received.Load(), Overrun: ap.overrun.Load()}
}

// trimAfter is how long the bot's queue may hold more than one frame at
// every tick before one is dropped: a burst's delay does not stay.
const trimAfter = 50 // ticks: 1 s

// voiceFrame takes the bot's next frame into ap.voice, on the tick; nil
// when it sent none in time.
func (ap *AppPort) voiceFrame() []int16 {
	ap.inMu.Lock()
	defer ap.inMu.Unlock()
	if ap.inLen == 0 {
		ap.inFull = 0
		return nil
	}
	if ap.inLen > 1 {
		ap.inFull++
		if ap.inFull >= trimAfter {
			ap.inFirst = (ap.inFirst + 1) % len(ap.in)
			ap.inLen--
			ap.overrun.Add(1)
			ap.inFull = 0
		}
	} else {
		ap.inFull = 0
	}
	ap.voice = ap.in[ap.inFirst]
	ap.echoSeq = ap.inSeq[ap.inFirst]
	ap.inFirst = (ap.inFirst + 1) % len(ap.in)
	ap.inLen--
	return ap.voice[:]
}

// snapLocked takes, at the start of a tick, whether a reader is attached
// and which of the tick's members it wants unmixed; it reports whether
// any is wanted.
func (ap *AppPort) snapLocked(members []*confMember) bool {
	ap.on = ap.st.attached
	ap.w = ap.st.writer
	if !ap.on {
		ap.w = nil
	}
	ap.want = ap.want[:0]
	any := false
	for _, m := range members {
		w := uint32(0)
		if ap.on && m.source != 0 && (ap.st.all || ap.st.sources[m.source]) {
			w = m.source
			any = true
		}
		ap.want = append(ap.want, w)
	}
	return any
}

// emit queues this tick's frames for the reader: the mix (mix, 320
// samples) and each wanted member's 16 kHz audio, on the tick at now.
func (ap *AppPort) emit(n uint64, now int64, mix []int16, members []*confMember) {
	if !ap.started {
		ap.start, ap.started = n, true
	}
	if e := ap.echoSeq; e != 0 {
		// The bot's frame mixed this tick echoed one sent at sentAt.
		ap.echoSeq = 0
		cur := n - ap.start
		if at := ap.sentAt[(e-1)%echoWindow].Load(); at != 0 && ap.onEcho != nil && cur-(e-1) < echoWindow {
			ap.onEcho(time.Duration(now - at))
		}
	}
	if !ap.on {
		return
	}
	frames := 1
	for _, w := range ap.want {
		if w != 0 {
			frames++
		}
	}
	h, t := ap.head.Load(), ap.tail.Load()
	if h-t >= uint64(len(ap.batches)) {
		ap.dropped.Add(uint64(frames))
		ap.signal() // a reader waking late finds the ring full
		return
	}
	b := &ap.batches[h%uint64(len(ap.batches))]
	seq := uint32(n - ap.start)
	ts := (n - ap.start) * 20
	buf := b.buf[:0]
	buf = ap.appendFrame(buf, 0, seq, ts, mix)
	if ap.onEcho != nil {
		slot := seq % echoWindow
		ap.sentAt[slot].Store(0) // not an echo while being rewritten
		ap.sentSeq[slot].Store(seq)
		ap.sentSum[slot].Store(fingerprint(buf[len(buf)-AppPCMBytes:]))
		ap.sentAt[slot].Store(now)
	}
	for i, w := range ap.want {
		if w != 0 {
			// The member's input this tick, which the mixer upsampled
			// (SetKeep16k); silence when it had none or is muted.
			var pcm []int16
			if p := members[i].part; p.Contributes() {
				pcm = p.Input16k()
			}
			buf = ap.appendFrame(buf, w, seq, ts, pcm)
		}
	}
	b.buf = buf
	if h == t && ap.w != nil && ap.w.TryWrite(buf) {
		// Straight to the socket: nobody waits, the slot is free again.
		ap.sent.Add(uint64(frames))
		return
	}
	ap.head.Store(h + 1)
	ap.sent.Add(uint64(frames))
	ap.signal()
}

func (ap *AppPort) signal() {
	select {
	case ap.ready <- struct{}{}:
	default:
	}
}

// appendFrame appends one frame, prefix first, to buf; pcm nil is
// silence. It grows buf only until it has held the largest batch.
func (ap *AppPort) appendFrame(buf []byte, source, seq uint32, ts uint64, pcm []int16) []byte {
	buf = append(buf, ap.prefix...)
	var h [AppHeaderBytes]byte
	binary.LittleEndian.PutUint32(h[0:], source)
	binary.LittleEndian.PutUint32(h[4:], seq)
	binary.LittleEndian.PutUint64(h[8:], ts)
	buf = append(buf, h[:]...)
	at := len(buf)
	buf = append(buf, zeroPCM[:]...)
	if pcm != nil {
		out := buf[at:]
		for i, v := range pcm[:AppSamples] {
			binary.LittleEndian.PutUint16(out[2*i:], uint16(v))
		}
	}
	return buf
}

var zeroPCM [AppPCMBytes]byte

// silenceSum is silence's fingerprint: silence sent back is not timed as
// an echo, as any bot's silence would match it.
var silenceSum = fingerprint(zeroPCM[:])

// fingerprint is a cheap hash of a frame's audio (16 of its samples),
// enough to tell an echo from other audio under the same header.
func fingerprint(pcm []byte) uint32 {
	h := uint32(2166136261)
	for i := 0; i+1 < len(pcm); i += AppPCMBytes / 16 {
		h = (h ^ uint32(binary.LittleEndian.Uint16(pcm[i:]))) * 16777619
	}
	return h
}
