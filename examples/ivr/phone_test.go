package main

import (
	"bytes"
	"fmt"
	"math"
	"os"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/media/prompt"
)

// The README's browser scenario, in a real headless Chromium: open
// /phone, sign in as eve, call the sample IVR's number. The page plays the
// menu (what it plays, captured at 8 kHz in the page, has the envelope of
// the menu's last three quarters), its keypad's 1 reaches the bot, which
// records Chromium's microphone (a WAV of 600 Hz bursts), saves the message, plays it back
// and hangs up: the page says the other side hung up.
func TestIVRFromPhonePage(t *testing.T) {
	p, served, saved := startIVR(t)
	menu := menuOf(t, served)

	page := calltest.StartChromium(t, p.URL+"/phone", calltest.Pattern(600, 30, 5))
	page.Until(20*time.Second, "the page", `document.readyState === 'complete' && window.SipUA`)
	page.Eval(fmt.Sprintf(`document.getElementById('user').value = 'eve'; document.getElementById('password').value = %q;
document.getElementById('signin-button').click()`, calltest.EvePassword))
	page.Until(10*time.Second, "eve signed in", `!document.getElementById('phone').hidden`)
	page.Capture("remote-audio")
	page.Eval(fmt.Sprintf(`document.getElementById('target').value = %q; document.getElementById('call').click()`, calltest.BotNumber))
	page.Until(20*time.Second, "the call answered", `document.getElementById('status').textContent.startsWith('In a call with')`)

	// The whole menu and a second more, then its envelope in what the
	// page played.
	page.Until(time.Duration(len(menu)/8+5000)*time.Millisecond, "the menu's length of audio",
		fmt.Sprintf(`window.captured.length >= %d`, len(menu)+8000))
	// Compared in four parts, each at its own lag: Chromium's jitter
	// buffer stretches and shrinks what it plays when packets come late (it
	// does on a loaded machine, and at the start of a stream).
	want, env := calltest.Envelope(menu), calltest.Envelope(page.Captured())
	// The first quarter, heard while the jitter buffer fills, is only
	// logged: 0.8-1 on an idle machine, down to 0.6 under -race; the
	// others are 0.75-1.
	var corrs []float64
	worst := 1.0
	for i := range 4 {
		part := want[i*len(want)/4 : (i+1)*len(want)/4]
		c, _ := calltest.BestCorrelation(part, env, len(env), len(part)*9/10)
		corrs = append(corrs, math.Round(c*100)/100)
		if i > 0 {
			worst = math.Min(worst, c)
		}
	}
	t.Logf("menu heard in the page: envelope correlation of its quarters %v", corrs)
	if worst < 0.7 {
		t.Fatalf("the page did not play the menu: envelope correlation of its quarters %v", corrs)
	}

	page.Eval(`document.querySelector('#keypad [data-key="1"]').click()`)
	var path string
	select {
	case path = <-saved:
	case <-time.After(40 * time.Second):
		t.Fatal("no message was saved")
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := prompt.DecodeWAV(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("saved message is not a WAV: %v", err)
	}
	// Chromium's microphone: its 600 Hz bursts are most of the message's
	// sound. (Its fake capture glitches on a loaded machine, so the level,
	// not the envelope, is checked.)
	if level := level600(msg); level < 0.6 {
		t.Fatalf("the message is not Chromium's microphone: 600 Hz is %.2f of its sound", level)
	} else {
		t.Logf("the message: 600 Hz is %.2f of its sound", level)
	}
	page.Until(30*time.Second, "the bot's hang-up", `document.getElementById('status').textContent.startsWith('Call ended: the other side hung up')`)
}

// level600 is the mean share of 600 Hz in the energy of pcm's 20 ms frames
// that are not silent.
func level600(pcm []int16) float64 {
	k := 2 * math.Cos(2*math.Pi*600/8000)
	var sum float64
	n := 0
	for i := 0; i+160 <= len(pcm); i += 160 {
		var s1, s2, total float64
		for _, v := range pcm[i : i+160] {
			x := float64(v)
			s := x + k*s1 - s2
			s2, s1 = s1, s
			total += x * x
		}
		if total/160 < 300*300 {
			continue
		}
		sum += math.Min(1, (s1*s1+s2*s2-k*s1*s2)*2/160/total)
		n++
	}
	if n == 0 {
		return 0
	}
	return sum / float64(n)
}
