// Package webrtcgw is Switchboard's WebRTC media edge: it answers (and
// makes) WebRTC offers with pion (ICE host candidates plus an optional
// public address, DTLS-SRTP, rtcp-mux, G.711 and RFC 4733
// telephone-event), and relays the decrypted RTP on loopback to and from an
// ordinary media.Session. The session sees the relay as its far end, so
// everything the media engine does for SIP legs (prompts, recording, tones,
// DTMF, conferences, app-hosted media) works unchanged for browser legs.
//
// Signalling is not here: SIP over WebSocket is the SIP gateway's
// (internal/sipgw), which hands WebRTC offers to a Gateway.
package webrtcgw

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/ice/v4"
	"github.com/pion/rtp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/switchboard-voice/switchboard/internal/media"
)

// Errors of an offer or answer the gateway cannot take; the SIP edge
// answers each with 488.
var (
	ErrMalformed     = errors.New("webrtc: malformed SDP")
	ErrNoFingerprint = errors.New("webrtc: the SDP has no DTLS fingerprint")
	ErrNoICE         = errors.New("webrtc: the SDP has no ICE credentials")
	ErrNoCodec       = errors.New("webrtc: no usable audio codec (Switchboard speaks PCMU and PCMA)")
)

// Options configure New.
type Options struct {
	// PublicIP, when set, is advertised as an extra host candidate: the
	// address browsers reach this node at through a 1:1 NAT.
	PublicIP string
	// BindIP restricts the host candidates to one local address (media.bindIp)
	// when it is a specific, non-loopback one. Empty, a wildcard or loopback
	// gathers every interface's: browsers pair with no loopback candidate
	// (Chromium unless --allow-loopback-in-peer-connection, Firefox), so a
	// dev node bound to 127.0.0.1 still reaches a browser on its machine
	// through the LAN address. The relay to the media session stays local.
	BindIP string
	// PortMin and PortMax bound the ICE UDP ports; zero means any port.
	PortMin, PortMax uint16
	// Loopback includes 127.0.0.1 among the host candidates (tests, a
	// browser on the same machine).
	Loopback bool
	// Logger, when nil, discards.
	Logger *slog.Logger
	// Registerer, when not nil, gets the relay's metrics:
	// switchboard_webrtc_relay_seconds{direction} (the time a packet
	// spends in the relay) and switchboard_webrtc_peers.
	Registerer prometheus.Registerer
}

// Gateway makes WebRTC peers. It is safe for concurrent use.
type Gateway struct {
	o     Options
	se    webrtc.SettingEngine
	log   *slog.Logger
	relay netip.Addr // where relay sockets bind

	toEngine, toFarEnd prometheus.Observer // relay time per packet
	peers              prometheus.Gauge
}

// New checks the options and prepares the ICE settings every peer shares.
func New(o Options) (*Gateway, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	g := &Gateway{o: o, log: o.Logger, relay: netip.MustParseAddr("127.0.0.1")}
	var se webrtc.SettingEngine
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	se.SetNetworkTypes([]webrtc.NetworkType{webrtc.NetworkTypeUDP4, webrtc.NetworkTypeUDP6})
	se.SetIncludeLoopbackCandidate(o.Loopback)
	// A page that vanishes without closing its DTLS (a crash, a lost
	// network) is noticed by ICE: disconnected after 5 s without a
	// packet, failed 10 s later, and the call ends (Peer.Done).
	se.SetICETimeouts(5*time.Second, 10*time.Second, 2*time.Second)
	if o.PublicIP != "" {
		ip, err := netip.ParseAddr(o.PublicIP)
		if err != nil {
			return nil, fmt.Errorf("webrtc: publicIp %q is not an IP address", o.PublicIP)
		}
		if err := se.SetICEAddressRewriteRules(webrtc.ICEAddressRewriteRule{
			External: []string{ip.String()}, AsCandidateType: webrtc.ICECandidateTypeHost, Mode: webrtc.ICEAddressRewriteAppend,
		}); err != nil {
			return nil, fmt.Errorf("webrtc: publicIp: %w", err)
		}
	}
	if o.PortMin != 0 || o.PortMax != 0 {
		if err := se.SetEphemeralUDPPortRange(o.PortMin, o.PortMax); err != nil {
			return nil, fmt.Errorf("webrtc: port range: %w", err)
		}
	}
	if b, err := netip.ParseAddr(o.BindIP); err == nil && !b.IsUnspecified() && !b.Unmap().IsLoopback() {
		b = b.Unmap()
		se.SetIPFilter(func(ip net.IP) bool {
			a, ok := netip.AddrFromSlice(ip)
			return ok && (a.Unmap() == b || (o.Loopback && a.Unmap().IsLoopback()))
		})
		g.relay = b
	}
	g.se = se
	relay := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "switchboard_webrtc_relay_seconds",
		Help:    "Time a WebRTC leg's RTP packet spends in the relay between pion and the media engine: direction engine (decrypted, to the media session) or farEnd (from the session, handed to pion's SRTP).",
		Buckets: prometheus.ExponentialBuckets(2e-6, 2, 14)}, []string{"direction"})
	g.peers = prometheus.NewGauge(prometheus.GaugeOpts{Name: "switchboard_webrtc_peers", Help: "WebRTC peer connections open (browser legs and offers to browsers)."})
	if o.Registerer != nil {
		o.Registerer.MustRegister(relay, g.peers)
	}
	g.toEngine, g.toFarEnd = relay.WithLabelValues("engine"), relay.WithLabelValues("farEnd")
	return g, nil
}

// IsWebRTC reports whether an SDP body offers its audio the WebRTC way
// (RTP/SAVPF over DTLS, RFC 5764 and RFC 8829): the SIP edge hands such
// offers to a Gateway and the plain RTP/AVP ones to its own SDP code.
func IsWebRTC(body []byte) bool {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		return false
	}
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "audio" {
			continue
		}
		p := strings.ToUpper(strings.Join(md.MediaName.Protos, "/"))
		if strings.Contains(p, "SAVP") || strings.HasPrefix(p, "UDP/TLS") {
			return true
		}
	}
	return false
}

// offered is what a WebRTC offer's audio stream allows.
type offered struct {
	codec  media.Codec
	dtmfPT uint8
}

// check reads a WebRTC offer (or answer) and picks its audio codec, in the
// far end's order of preference, before pion sees it: a missing
// fingerprint, ICE credentials or codec is refused with its own error.
func check(body []byte) (offered, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		return offered{}, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	_, sessUfrag := sd.Attribute("ice-ufrag")
	_, sessPwd := sd.Attribute("ice-pwd")
	var found *sdp.MediaDescription
	var o offered
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "audio" || md.MediaName.Port.Value == 0 {
			continue
		}
		if c, te, ok := media.PickCodec(md); ok {
			found, o = md, offered{codec: c, dtmfPT: te}
			break
		}
	}
	if found == nil {
		return offered{}, ErrNoCodec
	}
	fp, ok := found.Attribute("fingerprint")
	if !ok {
		fp, ok = sd.Attribute("fingerprint")
	}
	if !ok || fp == "" {
		return offered{}, ErrNoFingerprint
	}
	if !validFingerprint(fp) {
		return offered{}, fmt.Errorf("%w: fingerprint %q", ErrMalformed, fp)
	}
	_, ufrag := found.Attribute("ice-ufrag")
	_, pwd := found.Attribute("ice-pwd")
	if !(ufrag || sessUfrag) || !(pwd || sessPwd) {
		return offered{}, ErrNoICE
	}
	return o, nil
}

// validFingerprint checks an a=fingerprint value (RFC 8122 §5): a hash
// function DTLS uses and its hex bytes separated by colons.
func validFingerprint(v string) bool {
	alg, hexs, ok := strings.Cut(strings.TrimSpace(v), " ")
	if !ok {
		return false
	}
	size := map[string]int{"sha-1": 20, "sha-224": 28, "sha-256": 32, "sha-384": 48, "sha-512": 64}[strings.ToLower(alg)]
	parts := strings.Split(strings.TrimSpace(hexs), ":")
	if size == 0 || len(parts) != size {
		return false
	}
	for _, b := range parts {
		if len(b) != 2 || strings.Trim(b, "0123456789abcdefABCDEF") != "" {
			return false
		}
	}
	return true
}

// api builds a pion API whose only codecs are the ones given, at their
// payload types: the answer then names exactly what the session sends.
func (g *Gateway) api(codecs []media.Codec, dtmfPT uint8) (*webrtc.API, error) {
	var me webrtc.MediaEngine
	for _, c := range codecs {
		mime := webrtc.MimeTypePCMU
		if c.Name == media.PCMA.Name {
			mime = webrtc.MimeTypePCMA
		}
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: mime, ClockRate: 8000, Channels: 1},
			PayloadType:        webrtc.PayloadType(c.PayloadType),
		}, webrtc.RTPCodecTypeAudio); err != nil {
			return nil, err
		}
	}
	if dtmfPT != 0 {
		if err := me.RegisterCodec(webrtc.RTPCodecParameters{
			RTPCodecCapability: webrtc.RTPCodecCapability{MimeType: "audio/telephone-event", ClockRate: 8000, SDPFmtpLine: "0-16"},
			PayloadType:        webrtc.PayloadType(dtmfPT),
		}, webrtc.RTPCodecTypeAudio); err != nil {
			return nil, err
		}
	}
	return webrtc.NewAPI(webrtc.WithMediaEngine(&me), webrtc.WithSettingEngine(g.se)), nil
}

// DTMFPayloadType is the telephone-event payload type a Gateway offers.
const DTMFPayloadType = 101

// Answer takes a far end's WebRTC offer and returns a Peer holding the
// answer (every candidate gathered, no trickle). Its errors wrap ErrMalformed,
// ErrNoFingerprint, ErrNoICE or ErrNoCodec when the offer is at fault.
func (g *Gateway) Answer(ctx context.Context, offer []byte) (*Peer, error) {
	o, err := check(offer)
	if err != nil {
		return nil, err
	}
	p, err := g.newPeer([]media.Codec{o.codec}, o.dtmfPT)
	if err != nil {
		return nil, err
	}
	p.codec, p.dtmfPT = o.codec, o.dtmfPT
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
		p.Close()
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := p.addTrack(); err != nil {
		p.Close()
		return nil, err
	}
	ans, err := p.pc.CreateAnswer(nil)
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := p.setLocal(ctx, ans); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Offer returns a Peer holding Switchboard's offer (PCMU, PCMA,
// telephone-event); the far end's answer goes to Peer.SetAnswer.
func (g *Gateway) Offer(ctx context.Context) (*Peer, error) {
	p, err := g.newPeer([]media.Codec{media.PCMU, media.PCMA}, DTMFPayloadType)
	if err != nil {
		return nil, err
	}
	if err := p.addTrack(); err != nil {
		p.Close()
		return nil, err
	}
	off, err := p.pc.CreateOffer(nil)
	if err != nil {
		p.Close()
		return nil, err
	}
	if err := p.setLocal(ctx, off); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// SetAnswer applies the far end's answer to a Peer made by Offer.
func (p *Peer) SetAnswer(answer []byte) error {
	o, err := check(answer)
	if err != nil {
		return err
	}
	p.codec, p.dtmfPT = o.codec, o.dtmfPT
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeAnswer, SDP: string(answer)}); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return nil
}

// ErrCodecChange is a re-offer that drops the codec in use: the peer's
// media engine was built for that one codec only.
var ErrCodecChange = errors.New("webrtc: a re-offer must keep the call's codec")

// Renegotiate answers a far end's new offer on an established peer (a
// hold or resume, an ICE restart) and returns the answer and the
// direction the offer gives its audio (sendrecv when it names none).
func (p *Peer) Renegotiate(ctx context.Context, offer []byte) ([]byte, string, error) {
	o, err := check(offer)
	if err != nil {
		return nil, "", err
	}
	if o.codec != p.codec {
		return nil, "", ErrCodecChange
	}
	if err := p.pc.SetRemoteDescription(webrtc.SessionDescription{Type: webrtc.SDPTypeOffer, SDP: string(offer)}); err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	ans, err := p.pc.CreateAnswer(nil)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if err := p.setLocal(ctx, ans); err != nil {
		return nil, "", err
	}
	dir := audioDirection(offer)
	// pion answers a renegotiation with its transceiver's direction
	// (sendrecv) whatever the offer's: the answer says the one RFC 3264
	// §6.1 asks for, and the media session, given dir, is what stops
	// sending.
	return withAudioDirection(p.local, answerDirection(dir)), dir, nil
}

// answerDirection is the direction that answers an offered one.
func answerDirection(offered string) string {
	switch offered {
	case "sendonly":
		return "recvonly"
	case "recvonly":
		return "sendonly"
	case "inactive":
		return "inactive"
	}
	return "sendrecv"
}

// withAudioDirection sets the direction attribute of an SDP's audio
// m-lines.
func withAudioDirection(body []byte, dir string) []byte {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		return body
	}
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media != "audio" {
			continue
		}
		kept := md.Attributes[:0]
		for _, a := range md.Attributes {
			switch a.Key {
			case "sendrecv", "sendonly", "recvonly", "inactive":
				continue
			}
			kept = append(kept, a)
		}
		md.Attributes = append(kept, sdp.Attribute{Key: dir})
	}
	out, err := sd.Marshal()
	if err != nil {
		return body
	}
	return out
}

// audioDirection is the direction attribute of an SDP's first audio
// m-line (or its session's), sendrecv when it has none.
func audioDirection(body []byte) string {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		return "sendrecv"
	}
	pick := func(attrs []sdp.Attribute) string {
		for _, a := range attrs {
			switch a.Key {
			case "sendrecv", "sendonly", "recvonly", "inactive":
				return a.Key
			}
		}
		return ""
	}
	dir := pick(sd.Attributes)
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media == "audio" {
			if d := pick(md.Attributes); d != "" {
				dir = d
			}
			break
		}
	}
	if dir == "" {
		dir = "sendrecv"
	}
	return dir
}

// Peer is one WebRTC leg: pion's PeerConnection and the loopback relay to
// the leg's media session. Close it when the leg ends.
type Peer struct {
	g      *Gateway
	pc     *webrtc.PeerConnection
	track  *relayTrack
	relay  *net.UDPConn
	local  []byte
	codec  media.Codec
	dtmfPT uint8

	sess      atomic.Pointer[netip.AddrPort] // the media session's address
	done      chan struct{}
	doneOnce  sync.Once
	closeOnce sync.Once
	wg        sync.WaitGroup // Add under mu, never once closing: pion's callbacks may race Close
	mu        sync.Mutex
	closing   bool

	// Relay timing, for the latency figures (nanoseconds summed, packets).
	inNanos, inPackets   atomic.Int64
	outNanos, outPackets atomic.Int64
}

func (g *Gateway) newPeer(codecs []media.Codec, dtmfPT uint8) (*Peer, error) {
	api, err := g.api(codecs, dtmfPT)
	if err != nil {
		return nil, err
	}
	pc, err := api.NewPeerConnection(webrtc.Configuration{})
	if err != nil {
		return nil, err
	}
	relay, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(g.relay, 0)))
	if err != nil {
		_ = pc.Close()
		return nil, fmt.Errorf("webrtc: relay socket: %w", err)
	}
	p := &Peer{g: g, pc: pc, relay: relay, done: make(chan struct{}), track: &relayTrack{}}
	g.peers.Inc()
	pc.OnConnectionStateChange(func(s webrtc.PeerConnectionState) {
		g.log.Debug("webrtc peer", "state", s.String())
		switch s {
		case webrtc.PeerConnectionStateFailed, webrtc.PeerConnectionStateClosed:
			p.doneOnce.Do(func() { close(p.done) })
		}
	})
	pc.OnTrack(func(t *webrtc.TrackRemote, _ *webrtc.RTPReceiver) {
		if t.Kind() != webrtc.RTPCodecTypeAudio {
			return
		}
		p.goTracked(func() { p.fromFarEnd(t) })
	})
	p.wg.Add(1)
	go p.toFarEnd()
	return p, nil
}

func (p *Peer) addTrack() error {
	sender, err := p.pc.AddTrack(p.track)
	if err != nil {
		return fmt.Errorf("webrtc: audio track: %w", err)
	}
	// RTCP for the sender must be read for pion's interceptors to run.
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		buf := make([]byte, 1500)
		for {
			if _, _, err := sender.Read(buf); err != nil {
				return
			}
		}
	}()
	return nil
}

func (p *Peer) setLocal(ctx context.Context, d webrtc.SessionDescription) error {
	gathered := webrtc.GatheringCompletePromise(p.pc)
	if err := p.pc.SetLocalDescription(d); err != nil {
		return fmt.Errorf("webrtc: local description: %w", err)
	}
	select {
	case <-gathered:
	case <-ctx.Done():
		return fmt.Errorf("webrtc: gathering candidates: %w", ctx.Err())
	case <-time.After(5 * time.Second):
		return errors.New("webrtc: gathering candidates took over 5 s")
	}
	p.local = []byte(p.pc.LocalDescription().SDP)
	return nil
}

// SDP is the local description (answer or offer), candidates included.
func (p *Peer) SDP() []byte { return p.local }

// Codec is the negotiated G.711 codec, at the far end's payload type.
func (p *Peer) Codec() media.Codec { return p.codec }

// DTMFPayloadType is the negotiated telephone-event payload type, 0 when
// the far end takes none.
func (p *Peer) DTMFPayloadType() uint8 { return p.dtmfPT }

// RelayAddr is the loopback address the media session sends its RTP to
// (its far end, as the session sees it).
func (p *Peer) RelayAddr() netip.AddrPort {
	return p.relay.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Connect names the media session's own address: what the far end sends
// is relayed there, and only RTP from there is sent on to the far end.
func (p *Peer) Connect(session netip.AddrPort) {
	if session.Addr().IsUnspecified() {
		session = netip.AddrPortFrom(p.g.relay, session.Port())
	}
	p.sess.Store(&session)
}

// Done is closed when the peer connection fails (ICE or DTLS, including a
// far end that stopped answering consent checks) or is closed.
func (p *Peer) Done() <-chan struct{} { return p.done }

// Connected reports whether ICE and DTLS are up.
func (p *Peer) Connected() bool {
	return p.pc.ConnectionState() == webrtc.PeerConnectionStateConnected
}

// RelayLatency is the mean time a packet spent in the relay, far end to
// session (in) and session to far end (out): from pion handing the
// decrypted packet over to its loopback write, and from the loopback read
// to pion taking it for encryption.
func (p *Peer) RelayLatency() (in, out time.Duration, inPackets, outPackets int64) {
	if n := p.inPackets.Load(); n > 0 {
		in = time.Duration(p.inNanos.Load() / n)
	}
	if n := p.outPackets.Load(); n > 0 {
		out = time.Duration(p.outNanos.Load() / n)
	}
	return in, out, p.inPackets.Load(), p.outPackets.Load()
}

// goTracked runs f on a goroutine Close waits for, unless Close has begun
// (a WaitGroup's Add must not race its Wait; pion calls OnTrack on its own
// goroutines).
func (p *Peer) goTracked(f func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closing {
		return
	}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		f()
	}()
}

// Close ends the peer connection and the relay, and waits for their
// goroutines.
func (p *Peer) Close() error {
	p.closeOnce.Do(func() {
		p.mu.Lock()
		p.closing = true
		p.mu.Unlock()
		_ = p.pc.Close()
		_ = p.relay.Close()
		p.doneOnce.Do(func() { close(p.done) })
		p.wg.Wait()
		p.g.peers.Dec()
	})
	return nil
}

// fromFarEnd relays the far end's decrypted RTP to the media session.
func (p *Peer) fromFarEnd(t *webrtc.TrackRemote) {
	buf := make([]byte, 1500)
	for {
		n, _, err := t.Read(buf)
		if err != nil {
			return
		}
		start := time.Now()
		dst := p.sess.Load()
		if dst == nil {
			continue
		}
		if _, err := p.relay.WriteToUDPAddrPort(buf[:n], *dst); err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		d := time.Since(start)
		p.inNanos.Add(int64(d))
		p.inPackets.Add(1)
		p.g.toEngine.Observe(d.Seconds())
	}
}

// toFarEnd relays the media session's RTP to the far end, encrypted by
// pion. Datagrams from anywhere but the session are dropped.
func (p *Peer) toFarEnd() {
	defer p.wg.Done()
	buf := make([]byte, 1500)
	var pkt rtp.Packet
	for {
		n, from, err := p.relay.ReadFromUDPAddrPort(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		start := time.Now()
		dst := p.sess.Load()
		if dst == nil || from.Port() != dst.Port() || from.Addr().Unmap() != dst.Addr().Unmap() {
			continue
		}
		if n < 12 || buf[0]>>6 != 2 || (buf[1]&0x7f >= 64 && buf[1]&0x7f <= 95) {
			continue // not RTP (RTCP is pion's own on the far side)
		}
		if err := pkt.Unmarshal(buf[:n]); err != nil {
			continue
		}
		if p.track.write(&pkt) {
			d := time.Since(start)
			p.outNanos.Add(int64(d))
			p.outPackets.Add(1)
			p.g.toFarEnd.Observe(d.Seconds())
		}
	}
}

// relayTrack is a local audio track that sends packets as they come, with
// their own payload type (the codec's or telephone-event's): pion's
// TrackLocalStaticRTP would rewrite every one to the codec's.
type relayTrack struct {
	mu   sync.Mutex
	ssrc webrtc.SSRC
	w    webrtc.TrackLocalWriter
}

func (t *relayTrack) Bind(c webrtc.TrackLocalContext) (webrtc.RTPCodecParameters, error) {
	for _, codec := range c.CodecParameters() {
		if strings.EqualFold(codec.MimeType, webrtc.MimeTypePCMU) || strings.EqualFold(codec.MimeType, webrtc.MimeTypePCMA) {
			t.mu.Lock()
			t.ssrc, t.w = c.SSRC(), c.WriteStream()
			t.mu.Unlock()
			return codec, nil
		}
	}
	return webrtc.RTPCodecParameters{}, webrtc.ErrUnsupportedCodec
}

func (t *relayTrack) Unbind(webrtc.TrackLocalContext) error {
	t.mu.Lock()
	t.w = nil
	t.mu.Unlock()
	return nil
}

func (t *relayTrack) ID() string                { return "audio" }
func (t *relayTrack) RID() string               { return "" }
func (t *relayTrack) StreamID() string          { return "switchboard" }
func (t *relayTrack) Kind() webrtc.RTPCodecType { return webrtc.RTPCodecTypeAudio }

func (t *relayTrack) write(p *rtp.Packet) bool {
	t.mu.Lock()
	w, ssrc := t.w, t.ssrc
	t.mu.Unlock()
	if w == nil {
		return false
	}
	p.Header.SSRC = uint32(ssrc)
	_, err := w.WriteRTP(&p.Header, p.Payload)
	return err == nil
}
