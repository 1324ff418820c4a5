package sipgw

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"

	"github.com/switchboard-voice/switchboard/internal/media"
)

// SDP offer/answer for one audio stream (RFC 3264, RFC 4566). Switchboard
// speaks G.711 µ-law and A-law in 20 ms frames and RFC 4733
// telephone-events; everything else in an offer is declined.

// dtmfPT is the payload type Switchboard offers for telephone-event.
const dtmfPT = 101

// Stream directions (RFC 3264 §6.1).
const (
	dirSendRecv = "sendrecv"
	dirSendOnly = "sendonly"
	dirRecvOnly = "recvonly"
	dirInactive = "inactive"
)

var (
	errSDPMalformed = errors.New("malformed SDP")
	errNoCodec      = errors.New("no usable audio codec (Switchboard speaks PCMU and PCMA)")
)

// remoteMedia is what a far end's SDP says about the audio stream it
// chose: where to send RTP, in which codec, and how.
type remoteMedia struct {
	addr   netip.AddrPort
	codec  media.Codec
	dtmfPT uint8 // 0: the far end does not take telephone-events
	dir    string
	index  int // the audio m-line's index (the answer keeps the offer's m-lines)
	mlines []mline
}

// mline remembers an offered m-line so the answer can decline it.
type mline struct {
	media, proto, formats string
}

// hold reports whether the far end put the call on hold (RFC 3264 §8.4:
// sendonly, or inactive when it was recvonly; and the older c=0.0.0.0 form
// of RFC 2543). It is the one definition of held: a held far end owes us
// no RTP.
func (r remoteMedia) hold() bool {
	return r.dir == dirSendOnly || r.dir == dirInactive || r.addr.Addr().IsUnspecified()
}

// sendable reports whether r gives an address to send RTP to: c=0.0.0.0
// means that "neither RTP nor RTCP should be sent to the peer" (RFC 3264
// §8.4).
func (r remoteMedia) sendable() bool {
	return r.addr.Addr().IsValid() && !r.addr.Addr().IsUnspecified() && r.addr.Port() != 0
}

// localDir is the direction of Switchboard's side of the stream r
// describes, offer or answer: the reverse of r's (RFC 3264 §6.1), and
// without sending when r gives no address to send to.
func (r remoteMedia) localDir() media.Direction {
	d := media.SendRecv
	switch answerDir(r.dir) {
	case dirSendOnly:
		d = media.SendOnly
	case dirRecvOnly:
		d = media.RecvOnly
	case dirInactive:
		d = media.Inactive
	}
	if !r.sendable() {
		switch d {
		case media.SendRecv:
			d = media.RecvOnly
		case media.SendOnly:
			d = media.Inactive
		}
	}
	return d
}

// parseSDP reads the far end's offer or answer and picks the first audio
// stream with a codec Switchboard speaks, in the far end's order of
// preference (RFC 3264 §6.1).
func parseSDP(body []byte) (remoteMedia, error) {
	var sd sdp.SessionDescription
	if err := sd.Unmarshal(body); err != nil {
		return remoteMedia{}, fmt.Errorf("%w: %v", errSDPMalformed, err)
	}
	r := remoteMedia{index: -1}
	sessionAddr := connAddr(sd.ConnectionInformation)
	sessionDir := direction(sd.Attributes)
	for i, md := range sd.MediaDescriptions {
		r.mlines = append(r.mlines, mline{md.MediaName.Media, strings.Join(md.MediaName.Protos, "/"), strings.Join(md.MediaName.Formats, " ")})
		if r.index >= 0 || md.MediaName.Media != "audio" || md.MediaName.Port.Value == 0 ||
			strings.Join(md.MediaName.Protos, "/") != "RTP/AVP" {
			continue
		}
		codec, te, ok := media.PickCodec(md)
		if !ok {
			continue
		}
		ip := connAddr(md.ConnectionInformation)
		if !ip.IsValid() {
			ip = sessionAddr
		}
		if !ip.IsValid() || md.MediaName.Port.Value < 0 || md.MediaName.Port.Value > 65535 {
			return remoteMedia{}, fmt.Errorf("%w: the audio stream has no usable connection address", errSDPMalformed)
		}
		r.index = i
		r.addr = netip.AddrPortFrom(ip, uint16(md.MediaName.Port.Value))
		r.codec = codec
		r.dtmfPT = te
		r.dir = sessionDir
		if d := direction(md.Attributes); d != "" {
			r.dir = d
		}
		if r.dir == "" {
			r.dir = dirSendRecv
		}
	}
	if r.index < 0 {
		return remoteMedia{}, errNoCodec
	}
	return r, nil
}

func connAddr(c *sdp.ConnectionInformation) netip.Addr {
	if c == nil || c.Address == nil || c.NetworkType != "IN" {
		return netip.Addr{}
	}
	a, err := netip.ParseAddr(c.Address.Address)
	if err != nil {
		return netip.Addr{}
	}
	return a.Unmap()
}

func direction(attrs []sdp.Attribute) string {
	for _, a := range attrs {
		switch a.Key {
		case dirSendRecv, dirSendOnly, dirRecvOnly, dirInactive:
			return a.Key
		}
	}
	return ""
}

// answerDir is the direction that answers an offered one (RFC 3264 §6.1).
func answerDir(offered string) string {
	switch offered {
	case dirSendOnly:
		return dirRecvOnly
	case dirRecvOnly:
		return dirSendOnly
	case dirInactive:
		return dirInactive
	}
	return dirSendRecv
}

// localSDP describes Switchboard's side of a session: the SDP origin stays
// the same for the session and its version goes up with each new
// description (RFC 3264 §8).
type localSDP struct {
	sessID  uint64
	version uint64
	addr    netip.AddrPort
}

// offer is Switchboard's offer: PCMU, PCMA, telephone-event, 20 ms.
func (l *localSDP) offer() []byte {
	return l.build(sdpStream{codecs: []media.Codec{media.PCMU, media.PCMA}, dtmfPT: dtmfPT, dir: dirSendRecv}, nil, 0)
}

// answer accepts r's audio stream with the codec and telephone-event
// payload type r chose, and declines every other m-line of the offer.
func (l *localSDP) answer(r remoteMedia) []byte {
	return l.build(sdpStream{codecs: []media.Codec{r.codec}, dtmfPT: r.dtmfPT, dir: answerDir(r.dir)}, r.mlines, r.index)
}

type sdpStream struct {
	codecs []media.Codec
	dtmfPT uint8
	dir    string
}

func (l *localSDP) build(s sdpStream, offered []mline, audioIndex int) []byte {
	l.version++
	addrType, ip := "IP4", l.addr.Addr().Unmap()
	if ip.Is6() {
		addrType = "IP6"
	}
	conn := &sdp.ConnectionInformation{NetworkType: "IN", AddressType: addrType, Address: &sdp.Address{Address: ip.String()}}
	sd := &sdp.SessionDescription{
		Origin: sdp.Origin{Username: "switchboard", SessionID: l.sessID, SessionVersion: l.version,
			NetworkType: "IN", AddressType: addrType, UnicastAddress: ip.String()},
		SessionName:           "Switchboard",
		ConnectionInformation: conn,
		TimeDescriptions:      []sdp.TimeDescription{{}},
	}
	audio := &sdp.MediaDescription{MediaName: sdp.MediaName{Media: "audio", Port: sdp.RangedPort{Value: int(l.addr.Port())}, Protos: []string{"RTP", "AVP"}}}
	for _, c := range s.codecs {
		pt := strconv.Itoa(int(c.PayloadType))
		audio.MediaName.Formats = append(audio.MediaName.Formats, pt)
		audio.Attributes = append(audio.Attributes, sdp.Attribute{Key: "rtpmap", Value: pt + " " + c.Name + "/8000"})
	}
	if s.dtmfPT != 0 {
		pt := strconv.Itoa(int(s.dtmfPT))
		audio.MediaName.Formats = append(audio.MediaName.Formats, pt)
		audio.Attributes = append(audio.Attributes,
			sdp.Attribute{Key: "rtpmap", Value: pt + " telephone-event/8000"},
			sdp.Attribute{Key: "fmtp", Value: pt + " 0-16"})
	}
	audio.Attributes = append(audio.Attributes, sdp.Attribute{Key: "ptime", Value: "20"}, sdp.Attribute{Key: s.dir})
	if offered == nil {
		sd.MediaDescriptions = []*sdp.MediaDescription{audio}
	}
	for i, m := range offered {
		if i == audioIndex {
			sd.MediaDescriptions = append(sd.MediaDescriptions, audio)
			continue
		}
		// A declined stream keeps its media and protocol with port 0 (RFC 3264 §6).
		formats := strings.Fields(m.formats)
		if len(formats) == 0 {
			formats = []string{"0"}
		}
		sd.MediaDescriptions = append(sd.MediaDescriptions, &sdp.MediaDescription{MediaName: sdp.MediaName{
			Media: m.media, Port: sdp.RangedPort{Value: 0}, Protos: strings.Split(m.proto, "/"), Formats: formats[:1]}})
	}
	out, _ := sd.Marshal() // Marshal has no failing path in pion/sdp v3
	return out
}
