package sipgw

import (
	"net/netip"
	"testing"

	"github.com/pion/sdp/v3"
)

// FuzzSDP feeds a far end's offer (or answer) to parseSDP and, when it is
// taken, builds Switchboard's answer to it. Nothing may panic, and an
// accepted offer must get an answer that is itself valid SDP: one m-line
// per offered m-line, the chosen audio stream where the offer had it, in
// the codec and telephone-event payload type picked, in the answering
// direction.
func FuzzSDP(f *testing.F) {
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"))
	f.Fuzz(func(t *testing.T, body []byte) {
		r, err := parseSDP(body)
		if err != nil {
			return
		}
		if r.index < 0 || r.index >= len(r.mlines) {
			t.Fatalf("audio index %d of %d m-lines", r.index, len(r.mlines))
		}
		if r.codec.Name != "PCMU" && r.codec.Name != "PCMA" {
			t.Fatalf("picked codec %+v", r.codec)
		}
		for _, local := range []netip.AddrPort{netip.MustParseAddrPort("127.0.0.1:20000"), netip.MustParseAddrPort("[2001:db8::1]:20002")} {
			l := localSDP{sessID: 7, addr: local}
			ans := l.answer(r)
			var sd sdp.SessionDescription
			if err := sd.Unmarshal(ans); err != nil {
				t.Fatalf("our answer does not parse: %v\n%s", err, ans)
			}
			if len(sd.MediaDescriptions) != len(r.mlines) {
				t.Fatalf("answer has %d m-lines, the offer %d:\n%s", len(sd.MediaDescriptions), len(r.mlines), ans)
			}
			back, err := parseSDP(ans)
			if err != nil {
				t.Fatalf("our answer is refused by our own parser: %v\n%s", err, ans)
			}
			if back.index != r.index || back.codec != r.codec || back.dtmfPT != r.dtmfPT ||
				back.dir != answerDir(r.dir) || back.addr != local {
				t.Fatalf("answer %+v to offer %+v:\n%s", back, r, ans)
			}
		}
	})
}
