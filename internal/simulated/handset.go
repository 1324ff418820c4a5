package simulated

import (
	"errors"
	"math"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/pion/rtp"

	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/internal/media/dtmf"
	"github.com/switchboard-voice/switchboard/internal/media/g711"
)

// With simulator.audio on, a simulated user has a handset: a real RTP peer
// on loopback facing the leg's media session, exactly as a SIP phone's RTP
// faces it. What the bot plays arrives as G.711 through the media engine
// and is kept as heard audio; what the user says (Say) and the keys they
// press (RFC 4733 events) go back the same way, so the platform's jitter
// buffer, tone detection, recording and mixing all run as for a phone.

// Handset limits and wire constants.
const (
	// MaxHeard is how much heard audio a leg keeps (later audio is dropped).
	MaxHeard = 10 * time.Minute
	// eventPT is the RFC 4733 payload type the handset and session agree on.
	eventPT = 101
	// keyFrames is how long a pressed key lasts (5 × 20 ms = 100 ms).
	keyFrames = 5
	// endRepeats is how many times the end of an event is sent (RFC 4733 §2.5.1.4).
	endRepeats = 3
	// drainFor is how long a hung-up handset still hears audio in flight.
	drainFor        = 100 * time.Millisecond
	maxHeardSamples = int(MaxHeard / time.Second * media.SampleRate)
)

// handset is one simulated user's RTP peer. Its methods are safe for
// concurrent use.
type handset struct {
	conn   *net.UDPConn
	to     *net.UDPAddr // the leg's media session
	onTone func(byte)   // an RFC 4733 event the platform sent ended

	mu        sync.Mutex
	heard     []int16
	loud      int // frames of heard audio above the silence threshold
	haveTS    bool
	nextTS    uint32 // the timestamp the next in-order audio sample would carry
	lastEvent uint32 // timestamp of the last event reported
	gotEvent  bool
	speech    []int16 // queued to say
	keys      []byte  // queued to press
	talking   bool
	closed    bool
	done      chan struct{}
}

// newHandset binds a loopback UDP socket for a session at sess.
func newHandset(sess netip.AddrPort, onTone func(byte)) (*handset, error) {
	ip := sess.Addr()
	if ip.IsUnspecified() {
		ip = netip.IPv6Loopback()
		if sess.Addr().Is4() {
			ip = netip.AddrFrom4([4]byte{127, 0, 0, 1})
		}
	}
	bind := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	if ip.Is6() && !ip.Is4In6() {
		bind = &net.UDPAddr{IP: net.IPv6loopback}
	}
	conn, err := net.ListenUDP("udp", bind)
	if err != nil {
		return nil, err
	}
	h := &handset{conn: conn, to: net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, sess.Port())), onTone: onTone, done: make(chan struct{})}
	go h.receive()
	return h, nil
}

// Addr is where the handset receives RTP.
func (h *handset) Addr() netip.AddrPort { return h.conn.LocalAddr().(*net.UDPAddr).AddrPort() }

// Start begins sending RTP (the user picked up): speech or silence every
// 20 ms, and queued key presses.
func (h *handset) Start() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.talking || h.closed {
		return
	}
	h.talking = true
	go h.send()
}

// Close hangs the handset up.
func (h *handset) Close() {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return
	}
	h.closed = true
	close(h.done)
	h.mu.Unlock()
	// Audio already on its way (the last frames of a prompt the bot hung
	// up after) is still heard; then the receiver closes the socket.
	_ = h.conn.SetReadDeadline(time.Now().Add(drainFor))
}

// Say queues 8 kHz PCM to be spoken after what is already queued.
func (h *handset) Say(pcm []int16) {
	h.mu.Lock()
	h.speech = append(h.speech, pcm...)
	h.mu.Unlock()
}

// Press queues a key (sent as an RFC 4733 event of 100 ms).
func (h *handset) Press(key byte) {
	h.mu.Lock()
	h.keys = append(h.keys, key)
	h.mu.Unlock()
}

// Heard returns a copy of the audio heard so far (8 kHz PCM).
func (h *handset) Heard() []int16 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]int16(nil), h.heard...)
}

// Sound is how many seconds of what was heard were sound, not silence.
func (h *handset) Sound() float64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return (time.Duration(h.loud) * media.FrameDuration).Seconds()
}

func (h *handset) send() {
	t := time.NewTicker(media.FrameDuration)
	defer t.Stop()
	var (
		hdr     = rtp.Header{Version: 2, PayloadType: 0, SSRC: rand.Uint32(), SequenceNumber: uint16(rand.Uint32()), Timestamp: rand.Uint32()}
		buf     = make([]byte, 12+media.SamplesPerFrame)
		frame   = make([]int16, media.SamplesPerFrame)
		key     byte
		keyAt   uint32 // the event's timestamp
		keyTick int    // frames of the event sent so far
		first   = true
	)
	for {
		select {
		case <-h.done:
			return
		case <-t.C:
		}
		h.mu.Lock()
		if key == 0 && len(h.keys) > 0 {
			key, h.keys = h.keys[0], h.keys[1:]
			keyAt, keyTick = hdr.Timestamp, 0
		}
		if key == 0 {
			n := copy(frame, h.speech)
			clear(frame[n:])
			h.speech = h.speech[n:]
		}
		h.mu.Unlock()

		var payload []byte
		if key != 0 {
			code, _ := dtmf.Code(key)
			keyTick++
			ev := dtmf.Event{Code: code, Volume: 10, Duration: uint16(min(keyTick, keyFrames) * media.SamplesPerFrame), End: keyTick >= keyFrames}
			hdr.PayloadType, hdr.Marker = eventPT, keyTick == 1
			ts := hdr.Timestamp
			hdr.Timestamp = keyAt
			n := ev.MarshalTo(buf[12:])
			payload = buf[12 : 12+n]
			repeats := 1
			if ev.End {
				repeats = endRepeats
				key = 0
			}
			for range repeats {
				h.write(&hdr, buf, payload)
			}
			hdr.Timestamp = ts + media.SamplesPerFrame
			continue
		}
		hdr.PayloadType, hdr.Marker = 0, first
		first = false
		payload = buf[12 : 12+media.SamplesPerFrame]
		g711.EncodeUlaw(payload, frame)
		h.write(&hdr, buf, payload)
		hdr.Timestamp += media.SamplesPerFrame
	}
}

// write sends one packet with hdr and payload (already in buf after the
// header) and advances the sequence number.
func (h *handset) write(hdr *rtp.Header, buf, payload []byte) {
	n, err := hdr.MarshalTo(buf)
	if err != nil || n != 12 {
		return
	}
	_, _ = h.conn.WriteToUDP(buf[:12+len(payload)], h.to)
	hdr.SequenceNumber++
}

func (h *handset) receive() {
	buf := make([]byte, 1500)
	pcm := make([]int16, 1500)
	var p rtp.Packet
	for {
		n, _, err := h.conn.ReadFromUDP(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || errors.Is(err, os.ErrDeadlineExceeded) {
				_ = h.conn.Close()
				return
			}
			continue
		}
		if p.Unmarshal(buf[:n]) != nil {
			continue
		}
		switch p.PayloadType {
		case 0, 8:
			dec := pcm[:len(p.Payload)]
			if p.PayloadType == 0 {
				g711.DecodeUlaw(dec, p.Payload)
			} else {
				g711.DecodeAlaw(dec, p.Payload)
			}
			h.hear(p.Timestamp, dec)
		case eventPT:
			var ev dtmf.Event
			if ev.Unmarshal(p.Payload) != nil || !ev.End {
				continue
			}
			h.mu.Lock()
			fresh := !h.gotEvent || h.lastEvent != p.Timestamp
			h.gotEvent, h.lastEvent = true, p.Timestamp
			h.mu.Unlock()
			if c, ok := dtmf.Char(ev.Code); ok && fresh && h.onTone != nil {
				h.onTone(c)
			}
		}
	}
}

// hear appends audio at its place in time: a gap in timestamps (lost
// packets, or the session pausing) is heard as silence, up to a second.
func (h *handset) hear(ts uint32, pcm []int16) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.haveTS {
		gap := int32(ts - h.nextTS)
		if gap < 0 { // late or duplicate: already accounted for
			return
		}
		if gap > 0 && gap <= media.SampleRate {
			h.heard = append(h.heard, make([]int16, gap)...)
		}
	}
	h.haveTS, h.nextTS = true, ts+uint32(len(pcm))
	if len(h.heard)+len(pcm) > maxHeardSamples {
		return
	}
	h.heard = append(h.heard, pcm...)
	if rms(pcm) > media.DefaultSilenceThreshold {
		h.loud++
	}
}

func rms(pcm []int16) float64 {
	if len(pcm) == 0 {
		return 0
	}
	var s float64
	for _, v := range pcm {
		s += float64(v) * float64(v)
	}
	return math.Sqrt(s / float64(len(pcm)))
}
