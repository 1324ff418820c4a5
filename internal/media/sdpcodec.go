package media

import (
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// PickCodec returns the first format of an SDP media description that
// the engine speaks (PCMU or PCMA, by rtpmap or by static payload type),
// in the description's order, and the payload type it gives
// telephone-event/8000 (0 when it has none). SIP and WebRTC offers alike.
func PickCodec(md *sdp.MediaDescription) (Codec, uint8, bool) {
	rtpmap := map[int]string{}
	for _, a := range md.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		pt, enc, ok := strings.Cut(a.Value, " ")
		n, err := strconv.Atoi(pt)
		if !ok || err != nil {
			continue
		}
		rtpmap[n] = strings.ToLower(strings.TrimSpace(enc))
	}
	var (
		codec Codec
		found bool
		te    uint8
	)
	for _, f := range md.MediaName.Formats {
		pt, err := strconv.Atoi(f)
		if err != nil || pt < 0 || pt > 127 {
			continue
		}
		enc, mapped := rtpmap[pt]
		switch {
		case mapped && strings.HasPrefix(enc, "telephone-event/8000"):
			if te == 0 {
				te = uint8(pt)
			}
		case found:
		case (mapped && strings.HasPrefix(enc, "pcmu/8000")) || (!mapped && pt == 0):
			codec, found = Codec{Name: PCMU.Name, PayloadType: uint8(pt), ClockRate: 8000}, true
		case (mapped && strings.HasPrefix(enc, "pcma/8000")) || (!mapped && pt == 8):
			codec, found = Codec{Name: PCMA.Name, PayloadType: uint8(pt), ClockRate: 8000}, true
		}
	}
	return codec, te, found
}
