package calltest_test

import (
	"encoding/json"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/calltest"
)

// The /phone page in a real Chromium and a real SIP phone (baresip) talk
// through a bot's group call, both ways: the bot invites eve and fay, the
// page rings and is answered with its Answer button, baresip answers by
// itself, and each hears the other's tone and not its own (Goertzel on
// what the page played, captured at 8 kHz in the page, and on what
// baresip recorded). People reach each other through bots (the node
// routes no user-to-user calls), so this is the path the product has.
// The browser's view of its leg's latency (ICE round trip, its jitter
// buffer and playout delay, from getStats) is logged.
func TestChromiumAndBaresipTalk(t *testing.T) {
	calltest.NeedPeer(t, "baresip", "baresip")
	p := calltest.Start(t, calltest.Options{Edit: withGroupPhones})
	fay := groupPhones[0] // baresip, saying 600 Hz
	const eveFreq = 1050.0
	// The page's microphone: 1050 Hz bursts, not a steady tone, which
	// Chromium's noise suppression would take for noise and fade.
	page := calltest.StartChromium(t, p.URL+"/phone", calltest.Pattern(eveFreq, 60, 7))
	page.Until(20*time.Second, "the page", `document.readyState === 'complete' && window.SipUA`)
	page.Eval(fmt.Sprintf(`document.getElementById('user').value = 'eve'; document.getElementById('password').value = %q;
document.getElementById('signin-button').click()`, calltest.EvePassword))
	page.Until(10*time.Second, "eve signed in", `!document.getElementById('phone').hidden`)
	// Keep the page's peer connections for getStats (sip.js does not
	// expose them), and record what it plays from the moment it has a
	// stream.
	page.Eval(`window.pcs = []; window.RTCPeerConnection = class extends window.RTCPeerConnection {
  constructor(...a) { super(...a); window.pcs.push(this); }
}`)
	page.Capture("remote-audio")

	// Fay's microphone ends 20 s after she answers: she hangs up. That is
	// room for the page to be answered and heard on a loaded machine.
	bs := startPhones(t, p, 20*time.Second, fay)[0]
	call := groupCall(t, p, calltest.EveID, fay.id)
	page.Until(20*time.Second, "the incoming call", `!document.getElementById('incoming').hidden`)
	page.Eval(`document.getElementById('answer').click()`)
	page.Until(20*time.Second, "the call answered", `document.getElementById('status').textContent.startsWith('In a call with')`)
	waitRoster(t, p, call.ID, "Test bot", "Eve", "Fay")

	// What the page plays from now on, for 3 s: Fay's tone, not its own.
	from, err := strconv.Atoi(page.Eval(`window.captured.length`))
	if err != nil {
		t.Fatal(err)
	}
	page.Until(15*time.Second, "3 s of the far end played", fmt.Sprintf(`window.captured.length >= %d`, from+3*8000))
	eveHeard := page.Captured()[from:]
	own, theirs := toneLevel(eveHeard, eveFreq), toneLevel(eveHeard, fay.freq)
	t.Logf("the page played %.1f s: Fay's tone %.3f, its own %.4f", float64(len(eveHeard))/8000, theirs, own)
	if theirs < 0.05 || own > theirs/20 {
		t.Errorf("the page should play Fay and not itself: %.3f / %.4f", theirs, own)
	}

	bs.WaitOutput(t, "terminated", 60*time.Second) // her microphone's file ended: she hung up
	logPageLatency(t, page)                        // over the whole call so far
	fayHeard := bs.Heard(t)
	own, theirs = toneLevel(fayHeard, fay.freq), toneLevel(fayHeard, eveFreq)
	t.Logf("baresip heard %.1f s: the page's tone %.3f, its own %.4f", float64(len(fayHeard))/8000, theirs, own)
	if theirs < 0.05 || own > theirs/20 {
		t.Errorf("baresip should hear the page and not itself: %.3f / %.4f", theirs, own)
	}
	waitRoster(t, p, call.ID, "Test bot", "Eve")
	if r := p.Bot("DELETE", calls+"/"+call.ID, nil); r.StatusCode != 204 {
		t.Fatalf("hang up: %s", r.Status)
	}
	page.Until(20*time.Second, "the bot's hang-up", `document.getElementById('status').textContent.startsWith('Call ended: the other side hung up')`)
}

// pageStats is the page's view of its call's media, from getStats.
type pageStats struct {
	ICERTT       float64 `json:"iceRtt"`       // s, the selected candidate pair's last STUN round trip
	JBDelay      float64 `json:"jbDelay"`      // s, summed over the samples emitted
	JBEmitted    float64 `json:"jbEmitted"`    // samples
	Jitter       float64 `json:"jitter"`       // s, RFC 3550 interarrival jitter
	Received     float64 `json:"received"`     // packets
	Lost         float64 `json:"lost"`         // packets
	Concealed    float64 `json:"concealed"`    // samples
	Samples      float64 `json:"samples"`      // samples received
	PlayoutDelay float64 `json:"playoutDelay"` // s, summed over the samples played
	PlayoutCount float64 `json:"playoutCount"` // samples
	Codec        string  `json:"codec"`
}

// logPageLatency logs the page's view of its leg's latency: the ICE round
// trip (the network, loopback here), the mean delay of its jitter buffer,
// and the mean playout delay after it. Chromium keeps these for every
// call, so they are only logged, for the README to quote.
func logPageLatency(t *testing.T, page *calltest.Chromium) {
	t.Helper()
	raw := page.Eval(`(async () => {
  const pc = window.pcs[window.pcs.length - 1], all = await pc.getStats(), out = {};
  let pair = '';
  all.forEach(s => { if (s.type === 'transport' && s.selectedCandidatePairId) pair = s.selectedCandidatePairId; });
  all.forEach(s => {
    if (s.id === pair) out.iceRtt = s.currentRoundTripTime || 0;
    if (s.type === 'inbound-rtp' && s.kind === 'audio') {
      Object.assign(out, {jbDelay: s.jitterBufferDelay, jbEmitted: s.jitterBufferEmittedCount, jitter: s.jitter,
        received: s.packetsReceived, lost: s.packetsLost, concealed: s.concealedSamples, samples: s.totalSamplesReceived});
      const c = all.get(s.codecId);
      if (c) out.codec = c.mimeType;
    }
    if (s.type === 'media-playout' && s.kind === 'audio') Object.assign(out, {playoutDelay: s.totalPlayoutDelay, playoutCount: s.totalSamplesCount});
  });
  return out;
})()`)
	var s pageStats
	if err := json.Unmarshal([]byte(raw), &s); err != nil {
		t.Fatalf("getStats: %v (%s)", err, raw)
	}
	ms := func(sum, n float64) float64 {
		if n == 0 {
			return 0
		}
		return 1000 * sum / n
	}
	share := func(part, n float64) float64 {
		if n == 0 {
			return 0
		}
		return 100 * part / n
	}
	jb, playout := ms(s.JBDelay, s.JBEmitted), ms(s.PlayoutDelay, s.PlayoutCount)
	t.Logf("the page's WebRTC leg (%s): ICE round trip %.1f ms, jitter %.1f ms, jitter buffer %.1f ms, playout %.1f ms "+
		"(one way into the page about %.0f ms: half the round trip, the jitter buffer and playout); %.0f packets, %.0f lost, %.1f%% of samples concealed",
		s.Codec, 1000*s.ICERTT, 1000*s.Jitter, jb, playout, 500*s.ICERTT+jb+playout, s.Received, s.Lost, share(s.Concealed, s.Samples))
	if s.Received == 0 {
		t.Errorf("getStats shows no audio received: %s", raw)
	}
}
