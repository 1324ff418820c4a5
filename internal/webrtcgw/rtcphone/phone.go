// Package rtcphone is a non-browser WebRTC phone for tests: pion for the
// media (ICE on loopback, DTLS-SRTP, PCMU and RFC 4733 telephone-event) and
// sipgo for SIP over WebSocket (digest REGISTER, INVITE, BYE, and incoming
// INVITEs on the same connection). It speaks to a node the way a browser
// softphone (JsSIP, SIP.js) does, so the protocol, not only a page, is
// tested.
package rtcphone

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/webrtc/v4"

	"github.com/switchboard-voice/switchboard/internal/media/dtmf"
	"github.com/switchboard-voice/switchboard/internal/media/g711"
)

// Media is the phone's side of one WebRTC call: it sends 20 ms PCMU frames
// of whatever is queued (silence otherwise) and keeps what it hears.
type Media struct {
	pc    *webrtc.PeerConnection
	track *webrtc.TrackLocalStaticRTP
	dtmf  *dtmfTrack

	mu      sync.Mutex
	news    chan struct{} // closed and replaced when something is heard
	heard   []int16
	events  []byte // RFC 4733 events heard (their end packets)
	lastEv  uint32 // timestamp of the last event reported
	queue   []int16
	keys    []byte
	dtmfPT  uint8
	started chan struct{}
	stop    chan struct{}
	wg      sync.WaitGroup // the reader and sender goroutines; Add under mu, never once closing
	closing bool           // guarded by mu: Close has begun, start no goroutine
	closed  sync.Once
}

// goTracked runs f on a goroutine Close waits for, unless Close has begun:
// a WaitGroup's Add must not race its Wait.
func (m *Media) goTracked(f func()) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closing {
		return
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		f()
	}()
}

func api() (*webrtc.API, error) {
	var me webrtc.MediaEngine
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000, Channels: 1},
		PayloadType:        0,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	if err := me.RegisterCodec(webrtc.RTPCodecParameters{
		RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "audio/telephone-event", ClockRate: 8000, SDPFmtpLine: "0-16"},
		PayloadType:        101,
	}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, err
	}
	var se webrtc.SettingEngine
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4})
	se.SetIncludeLoopbackCandidate(true)
	se.SetIPFilter(func(ip net.IP) bool { return ip.IsLoopback() })
	return webrtc.NewAPI(webrtc.WithMediaEngine(&me), webrtc.WithSettingEngine(se)), nil
}

// NewMedia prepares a peer connection with one sendrecv audio track.
func NewMedia() (*Media, error) {
	a, err := api()
	if err != nil {
		return nil, err
	}
	pc, err := a.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	m := &Media{pc: pc, started: make(chan struct{}), stop: make(chan struct{}), dtmfPT: 101, news: make(chan struct{})}
	m.track, err = webrtc.NewTrackLocalStaticRTP(webrtc.RTPCodecCapability{MimeType: webrtc.MimeTypePCMU, ClockRate: 8000, Channels: 1}, "audio", "rtcphone")
	if err != nil {
		pc.Close()
		return nil, err
	}
	m.dtmf = &dtmfTrack{}
	if _, err := pc.AddTrack(&sharedTrack{m.track, m.dtmf}); err != nil {
		pc.Close()
		return nil, err
	}
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		m.goTracked(func() { m.read(t) })
	})
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		if s == webrtc.PeerConnectionStateConnected {
			select {
			case <-m.started:
			default:
				close(m.started)
				m.goTracked(m.send)
			}
		}
	})
	return m, nil
}

// Offer is the phone's SDP offer, every candidate gathered.
func (m *Media) Offer(ctx context.Context) ([]byte, error) {
	o, err := m.pc.CreateOffer(nil)
	if err != nil {
		return nil, err
	}
	return m.setLocal(ctx, o)
}

// Answer answers a far end's offer.
func (m *Media) Answer(ctx context.Context, offer []byte) ([]byte, error) {
	if err := m.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
		return nil, err
	}
	a, err := m.pc.CreateAnswer(nil)
	if err != nil {
		return nil, err
	}
	return m.setLocal(ctx, a)
}

// SetAnswer applies the far end's answer to the phone's offer.
func (m *Media) SetAnswer(answer []byte) error {
	return m.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(answer)})
}

func (m *Media) setLocal(ctx context.Context, d webrtc.SessionDescription) ([]byte, error) {
	done := webrtc.GatheringCompletePromise(m.pc)
	if err := m.pc.SetLocalDescription(d); err != nil {
		return nil, err
	}
	select {
	case <-done:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return []byte(m.pc.LocalDescription().SDP), nil
}

// LocalSDP is the phone's current local description.
func (m *Media) LocalSDP() []byte {
	if d := m.pc.LocalDescription(); d != nil {
		return []byte(d.SDP)
	}
	return nil
}

// Connected waits until ICE and DTLS are up.
func (m *Media) Connected(ctx context.Context) error {
	select {
	case <-m.started:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("rtcphone: not connected (%s): %w", m.pc.ConnectionState(), ctx.Err())
	}
}

// Say queues 8 kHz audio to send.
func (m *Media) Say(pcm []int16) {
	m.mu.Lock()
	m.queue = append(m.queue, pcm...)
	m.mu.Unlock()
}

// Press queues RFC 4733 keys, each sent as a 100 ms event after the one
// before it ends.
func (m *Media) Press(keys string) {
	m.mu.Lock()
	m.keys = append(m.keys, keys...)
	m.mu.Unlock()
}

// Heard returns a copy of everything decoded so far (8 kHz).
func (m *Media) Heard() []int16 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]int16(nil), m.heard...)
}

// WaitHeard waits until ok accepts what was heard so far (8 kHz), checked
// again after each packet, and returns it; or the context's error with the
// last of it.
func (m *Media) WaitHeard(ctx context.Context, ok func([]int16) bool) ([]int16, error) {
	for {
		m.mu.Lock()
		heard, news := append([]int16(nil), m.heard...), m.news
		m.mu.Unlock()
		if ok(heard) {
			return heard, nil
		}
		select {
		case <-news:
		case <-ctx.Done():
			return heard, ctx.Err()
		}
	}
}

// Events returns the RFC 4733 keys heard so far.
func (m *Media) Events() string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return string(m.events)
}

// Close ends the peer connection.
func (m *Media) Close() {
	m.closed.Do(func() {
		m.mu.Lock()
		m.closing = true
		m.mu.Unlock()
		close(m.stop)
		_ = m.pc.Close()
		m.wg.Wait()
	})
}

func (m *Media) read(t *webrtc.TrackRemote) {
	pcmuPT := uint8(t.Codec().PayloadType)
	var pkt rtp.Packet
	buf := make([]byte, 1500)
	pcm := make([]int16, 1500)
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		if pkt.Unmarshal(buf[:n]) != nil {
			continue
		}
		switch {
		case pkt.PayloadType == pcmuPT && pcmuPT != 101:
			g711.DecodeUlaw(pcm[:len(pkt.Payload)], pkt.Payload)
			m.mu.Lock()
			m.heard = append(m.heard, pcm[:len(pkt.Payload)]...)
			close(m.news)
			m.news = make(chan struct{})
			m.mu.Unlock()
		case pkt.PayloadType == 101 && len(pkt.Payload) >= 4 && pkt.Payload[1]&0x80 != 0:
			m.mu.Lock()
			if c, ok := dtmf.Char(pkt.Payload[0]); ok && pkt.Timestamp != m.lastEv {
				m.lastEv = pkt.Timestamp
				m.events = append(m.events, c)
			}
			m.mu.Unlock()
		}
	}
}

// send paces 20 ms packets: queued keys first (as RFC 4733 events), then
// queued audio, else silence.
func (m *Media) send() {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	var seq uint16 = 1000
	var ts uint32 = 160000
	frame := make([]int16, 160)
	payload := make([]byte, 160)
	// A key in progress: its code, its packets sent, its start timestamp.
	key, keyPkts, keyTS := -1, 0, uint32(0)
	for {
		select {
		case <-m.stop:
			return
		case <-tick.C:
		}
		m.mu.Lock()
		if key < 0 && len(m.keys) > 0 {
			if c, ok := dtmf.Code(m.keys[0]); ok {
				key, keyPkts, keyTS = int(c), 0, ts
			}
			m.keys = m.keys[1:]
		}
		clear(frame)
		if key < 0 && len(m.queue) > 0 {
			n := copy(frame, m.queue)
			m.queue = m.queue[n:]
		}
		m.mu.Unlock()
		seq++
		ts += 160
		if key >= 0 {
			// 5 packets of 20 ms, then 3 end packets (RFC 4733 §2.5.1.4).
			keyPkts++
			dur := uint16(keyPkts * 160)
			end := byte(0)
			if keyPkts > 5 {
				dur, end = 5*160, 0x80
			}
			ev := []byte{byte(key), end | 10, byte(dur >> 8), byte(dur)}
			_ = m.dtmf.write(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 101, SequenceNumber: seq,
				Timestamp: keyTS, Marker: keyPkts == 1}, Payload: ev})
			if keyPkts >= 8 {
				key = -1
			}
			continue
		}
		g711.EncodeUlaw(payload, frame)
		_ = m.track.WriteRTP(&rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, Timestamp: ts}, Payload: payload})
	}
}

// sharedTrack binds both writers to the one sender: PCMU through pion's
// static track (which sets the codec's payload type), telephone-event
// packets straight to the stream with their own.
type sharedTrack struct {
	*webrtc.TrackLocalStaticRTP
	ev *dtmfTrack
}

func (s *sharedTrack) Bind(c webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	p, err := s.TrackLocalStaticRTP.Bind(c)
	if err == nil {
		s.ev.bind(c)
	}
	return p, err
}

type dtmfTrack struct {
	mu   sync.Mutex
	ssrc webrtc.SSRC
	w    webrtc.TrackLocalWriter
}

func (d *dtmfTrack) bind(c webrtc.TrackLocalContext) {
	d.mu.Lock()
	d.ssrc, d.w = c.SSRC(), c.WriteStream()
	d.mu.Unlock()
}

func (d *dtmfTrack) write(p *rtp.Packet) error {
	d.mu.Lock()
	w, ssrc := d.w, d.ssrc
	d.mu.Unlock()
	if w == nil {
		return errors.New("not bound")
	}
	p.SSRC = uint32(ssrc)
	_, err := w.WriteRTP(&p.Header, p.Payload)
	return err
}

// LoopbackOnly reports whether every candidate of an SDP is on loopback
// (what a test on one machine expects of the phone's own).
func LoopbackOnly(sdp []byte) bool {
	for _, line := range strings.Split(string(sdp), "\n") {
		if !strings.HasPrefix(line, "a=candidate:") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 5 {
			return false
		}
		if a, err := netip.ParseAddr(f[4]); err != nil || !a.IsLoopback() {
			return false
		}
	}
	return true
}
