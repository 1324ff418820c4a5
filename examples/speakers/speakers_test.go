package main

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/bottest"
	"github.com/switchboard-voice/switchboard/examples/internal/lines"
	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
)

// phone is a SIP user of the test, with a baresip of its own that says a
// tone of its own frequency from its answer on, after a pause of its own,
// so that they speak in turns: Fay, then Gus, then Hal.
type phone struct {
	id, name, user string
	freq           float64
	pause, talk    time.Duration
}

var phones = []phone{
	{"e0000000-0000-4000-8000-0000000000f1", "Fay", "fay", 440, 500 * time.Millisecond, 3 * time.Second},
	{"e0000000-0000-4000-8000-0000000000f2", "Gus", "gus", 660, 3 * time.Second, 3 * time.Second},
	{"e0000000-0000-4000-8000-0000000000f3", "Hal", "hal", 880, 5500 * time.Millisecond, 3 * time.Second},
}

const (
	phonePassword = "speakers-secret-1"
	// callLength is how long each phone stays: its WAV's length; it hangs
	// up when its WAV ends.
	callLength = 10 * time.Second
)

// voice is 8 kHz PCM of ph's turn: silence, its tone, silence.
func (ph phone) voice() []int16 {
	pcm := make([]int16, int(callLength.Seconds()*8000))
	from, to := int(ph.pause.Seconds()*8000), int((ph.pause+ph.talk).Seconds()*8000)
	for i := from; i < to; i++ {
		pcm[i] = int16(8000 * math.Sin(2*math.Pi*ph.freq*float64(i)/8000))
	}
	return pcm
}

// The meeting of three SIP phones, each saying its own tone in
// turn: the bot, in the meeting with application-hosted media, writes
// three WAVs, each named after its participant and holding only that
// participant's tone, and tells who spoke when, in the order they spoke.
func TestSpeakersInAMeetingOfThreePhones(t *testing.T) {
	calltest.NeedPeer(t, "baresip", "baresip")
	hook := httptest.NewUnstartedServer(nil)
	t.Cleanup(hook.Close)
	hookURL := "http://" + hook.Listener.Addr().String()
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		c.Applications[0].CallbackURI = hookURL + "/callback"
		c.Applications[0].MediaMode = "app"
		c.Applications[0].Permissions = append(c.Applications[0].Permissions, "OnlineMeetings.ReadWrite.All")
		for _, ph := range phones {
			c.Tenants[0].Users = append(c.Tenants[0].Users, config.User{ID: ph.id, DisplayName: ph.name,
				SIP: config.SIPCredentials{Username: ph.user, Password: phonePassword}})
		}
	}})
	out := lines.New()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("the bot printed:\n%s", out)
		}
	})
	dir := t.TempDir()
	var invite []string
	for _, ph := range phones {
		invite = append(invite, ph.id)
	}
	bot, err := New(Options{BaseURL: p.URL + "/v1.0", TenantID: calltest.TenantID, AppID: calltest.BotID, Secret: calltest.Secret,
		CallbackURL: hookURL + "/callback", User: calltest.AliceID, Subject: "Stand-up", Invite: invite, Admit: true,
		Dir: filepath.Join(dir, "wav"), Hold: 2 * time.Minute, Out: out, Logger: bottest.Logger(t, false)})
	if err != nil {
		t.Fatal(err)
	}
	hook.Config.Handler = bot.Handler()
	hook.Start()
	t.Cleanup(func() { _ = bot.Handler().Shutdown(context.Background()) })

	for _, ph := range phones {
		src := filepath.Join(dir, ph.user+".wav")
		if err := calltest.WriteWAV(src, ph.voice(), 8000); err != nil {
			t.Fatal(err)
		}
		calltest.StartBaresip(t, calltest.BaresipOptions{User: ph.user, Password: phonePassword,
			Registrar: p.Node.SIP.Addr().String(), Source: src})
	}

	type result struct {
		rep Report
		err error
	}
	done := make(chan result, 1)
	go func() {
		rep, err := bot.Run(t.Context())
		done <- result{rep, err}
	}()
	// They come in, talk in turn, and hang up; then the bot leaves.
	var res result
	select {
	case res = <-done:
	case <-time.After(callLength + 60*time.Second):
		t.Fatal("the bot did not leave after everyone had")
	}
	if res.err != nil {
		t.Fatal(res.err)
	}
	var table bytes.Buffer
	_ = res.rep.Write(&table)
	t.Logf("printed:\n%s\nreport:\n%s", out, table.String())

	// A WAV per phone, named after its participant, with its tone only.
	files := map[string]string{} // by name, as printed
	for _, l := range out.Details("wav") {
		i := strings.LastIndexByte(l, ' ')
		files[l[:i]] = l[i+1:]
	}
	if len(files) != len(phones) || len(res.rep.Speakers) != len(phones) {
		t.Fatalf("files %v and %d speakers, want one for each of %d phones", files, len(res.rep.Speakers), len(phones))
	}
	var firstSpoke []time.Duration
	for _, ph := range phones {
		path := files[ph.name]
		if filepath.Base(path) != ph.name+".wav" {
			t.Errorf("%s's file is %q, want %s.wav", ph.name, path, ph.name)
			continue
		}
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		pcm, err := readWAV16k(data)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		// What is heard in it: its blocks that are not quiet have their
		// energy at its own tone, none at the others'.
		own, secs := toneShare(pcm, ph.freq)
		t.Logf("%s.wav: %.1f s, sound for %.1f s, %.3f of it at %.0f Hz", ph.name, float64(len(pcm))/16000, secs, own, ph.freq)
		if secs < (ph.talk-time.Second).Seconds() || own < 0.8 {
			t.Errorf("%s.wav has %.1f s of sound, %.3f of it at %s's %.0f Hz; want about %s of that tone",
				ph.name, secs, own, ph.name, ph.freq, ph.talk)
		}
		for _, other := range phones {
			if other.name == ph.name {
				continue
			}
			lvl, _ := toneShare(pcm, other.freq)
			t.Logf("%s.wav: %.6f of its sound at %s's %.0f Hz", ph.name, lvl, other.name, other.freq)
			if lvl > 0.005 { // -23 dB: a tone's onset mid-block splatters a little
				t.Errorf("%s.wav holds %s's tone: %.4f of its sound (its own %.3f)", ph.name, other.name, lvl, own)
			}
		}
		sp, ok := res.rep.Find(ph.name)
		if !ok || sp.File != path || len(sp.Speech) == 0 {
			t.Errorf("%s in the report: %+v", ph.name, sp)
			continue
		}
		// They said their tone for talk: one stretch about that long.
		if d := sp.Spoke; d < ph.talk-time.Second || d > ph.talk+time.Second {
			t.Errorf("%s spoke for %s, want about %s: %v", ph.name, d, ph.talk, sp.Speech)
		}
		firstSpoke = append(firstSpoke, sp.Speech[0].From)
	}
	if len(firstSpoke) == len(phones) && !(firstSpoke[0] < firstSpoke[1] && firstSpoke[1] < firstSpoke[2]) {
		t.Errorf("they spoke first at %v: want Fay, then Gus, then Hal", firstSpoke)
	}
	// The platform's dominant speaker followed them.
	var dominant []string
	for _, l := range out.Details("dominant") {
		name, _, _ := strings.Cut(l, " ")
		if len(dominant) == 0 || dominant[len(dominant)-1] != name {
			dominant = append(dominant, name)
		}
	}
	if strings.Join(dominant, ",") != "Fay,Gus,Hal" {
		t.Errorf("dominant speakers %v, want Fay, Gus, Hal", dominant)
	}
}

// toneShare is the share of 16 kHz pcm's sound at freq, and how many
// seconds of sound there are: over its 40 ms blocks that are not quiet
// (about -40 dBFS), Goertzel through a Hann window (sidelobes low enough
// that another tone 220 Hz away scores nothing), normalised so that a pure
// tone at freq scores 1. Block by block, so that a frame the media path
// dropped or repeated, which breaks a tone's phase, costs one block only.
func toneShare(pcm []int16, freq float64) (share, seconds float64) {
	const n = 640
	k := 2 * math.Cos(2*math.Pi*freq/16000)
	var sum float64
	blocks := 0
	for i := 0; i+n <= len(pcm); i += n {
		var s1, s2, raw, energy float64
		for j, v := range pcm[i : i+n] {
			x := float64(v)
			raw += x * x
			x *= 0.5 - 0.5*math.Cos(2*math.Pi*float64(j)/n)
			energy += x * x
			s1, s2 = x+k*s1-s2, s1
		}
		if raw/n < 300*300 {
			continue
		}
		blocks++
		sum += 3 * (s1*s1 + s2*s2 - k*s1*s2) / (n * energy)
	}
	if blocks == 0 {
		return 0, 0
	}
	return sum / float64(blocks), float64(blocks) * n / 16000
}

// readWAV16k reads a canonical 44-byte-header WAV of 16 kHz mono 16-bit
// PCM, checking its header says so and its sizes are filled in.
func readWAV16k(data []byte) ([]int16, error) {
	le := binary.LittleEndian
	if len(data) < 44 || string(data[0:4]) != "RIFF" || string(data[8:16]) != "WAVEfmt " || string(data[36:40]) != "data" {
		return nil, fmt.Errorf("not a canonical WAV file")
	}
	if format, ch, rate, bits := le.Uint16(data[20:]), le.Uint16(data[22:]), le.Uint32(data[24:]), le.Uint16(data[34:]); format != 1 || ch != 1 || rate != 16000 || bits != 16 {
		return nil, fmt.Errorf("format %d, %d channels, %d Hz, %d bits; want PCM mono 16 kHz 16-bit", format, ch, rate, bits)
	}
	n := le.Uint32(data[40:])
	if int(n) != len(data)-44 || le.Uint32(data[4:]) != 36+n {
		return nil, fmt.Errorf("sizes %d and %d for %d bytes of data", le.Uint32(data[4:]), n, len(data)-44)
	}
	pcm := make([]int16, n/2)
	for i := range pcm {
		pcm[i] = int16(le.Uint16(data[44+2*i:]))
	}
	return pcm, nil
}
