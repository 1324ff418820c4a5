package sipgw

import (
	"errors"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/internal/errs"
)

func TestParseSDP(t *testing.T) {
	const video = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n" +
		"m=video 5004 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n" +
		"m=audio 4000 RTP/AVP 18 97 8 0 98\r\nc=IN IP4 192.0.2.7\r\na=rtpmap:18 G729/8000\r\na=rtpmap:97 opus/48000/2\r\n" +
		"a=rtpmap:8 PCMA/8000\r\na=rtpmap:98 telephone-event/8000\r\na=sendonly\r\n"
	r, err := parseSDP([]byte(video))
	if err != nil {
		t.Fatal(err)
	}
	// The first codec we speak in the offerer's order; the media-level
	// address wins; the second m-line is the audio one.
	if r.codec.Name != "PCMA" || r.codec.PayloadType != 8 || r.dtmfPT != 98 || r.index != 1 ||
		r.addr != netip.MustParseAddrPort("192.0.2.7:4000") || r.dir != dirSendOnly || !r.hold() {
		t.Fatalf("%+v", r)
	}
	l := localSDP{sessID: 42, addr: netip.MustParseAddrPort("127.0.0.1:20000")}
	ans := string(l.answer(r))
	for _, want := range []string{"m=video 0 RTP/AVP 96", "m=audio 20000 RTP/AVP 8 98", "a=rtpmap:98 telephone-event/8000",
		"a=recvonly", "c=IN IP4 127.0.0.1", "o=switchboard 42 1 IN IP4 127.0.0.1"} {
		if !strings.Contains(ans, want) {
			t.Errorf("answer lacks %q:\n%s", want, ans)
		}
	}
	if strings.Index(ans, "m=video") > strings.Index(ans, "m=audio") {
		t.Errorf("answer reorders the m-lines:\n%s", ans)
	}
	if !strings.Contains(string(l.offer()), "o=switchboard 42 2 ") {
		t.Error("the session version does not go up")
	}

	// A dynamic payload type mapped to PCMU; the static 0 without rtpmap;
	// the old hold form c=0.0.0.0.
	for body, want := range map[string]string{
		"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 4000 RTP/AVP 110\r\na=rtpmap:110 pcmu/8000\r\n": "PCMU/110/hold",
		"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n":                           "PCMU/0/",
	} {
		r, err := parseSDP([]byte(body))
		if err != nil {
			t.Fatal(err)
		}
		got := r.codec.Name + "/" + strconv.Itoa(int(r.codec.PayloadType)) + "/"
		if r.hold() {
			got += "hold"
		}
		if got != want {
			t.Errorf("%q: %s, want %s", body, got, want)
		}
	}

	for body, want := range map[string]error{
		"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 18\r\na=rtpmap:18 G729/8000\r\n": errNoCodec,
		"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 0 RTP/AVP 0\r\n":                              errNoCodec, // declined stream
		"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/SAVP 0\r\n":                          errNoCodec, // SRTP only
		"v=0\r\no=- 1 1 IN IP4 10.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\n":                                                errSDPMalformed,
		"hello": errSDPMalformed,
	} {
		if _, err := parseSDP([]byte(body)); !errors.Is(err, want) {
			t.Errorf("%q: %v, want %v", body, err, want)
		}
	}
}

func TestOutcomeOfForks(t *testing.T) {
	best := func(statuses ...int) int {
		b := statuses[0]
		for _, s := range statuses[1:] {
			if failureRank(s) < failureRank(b) {
				b = s
			}
		}
		return b
	}
	for _, c := range []struct {
		in   []int
		want int
	}{
		{[]int{480, 486}, 486},
		{[]int{0, 408}, 408},
		{[]int{503, 404}, 404},
		{[]int{486, 603}, 603},
		{[]int{487, 0}, 487},
	} {
		if got := best(c.in...); got != c.want {
			t.Errorf("%v: %d, want %d", c.in, got, c.want)
		}
	}
	if outcome(0, "") != errs.Unreachable || outcome(600, "") != errs.RemoteBusy || outcome(502, "Bad Gateway").Code != 502 {
		t.Error("outcome mapping")
	}
}
