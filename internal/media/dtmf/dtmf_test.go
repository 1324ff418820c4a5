package dtmf

import (
	"math"
	"math/rand/v2"
	"testing"

	"github.com/switchboard-voice/switchboard/internal/media/g711"
)

func TestCodeChar(t *testing.T) {
	for i := range len(Tones) {
		c, ok := Code(Tones[i])
		if !ok || int(c) != i {
			t.Fatalf("Code(%q) = %d, %v", Tones[i], c, ok)
		}
		ch, ok := Char(c)
		if !ok || ch != Tones[i] {
			t.Fatalf("Char(%d) = %q, %v", c, ch, ok)
		}
	}
	if c, ok := Code('b'); !ok || c != 13 {
		t.Fatalf("Code('b') = %d, %v", c, ok)
	}
	for _, bad := range []byte{'E', 'x', ' ', 0} {
		if Valid(bad) {
			t.Errorf("Valid(%q) = true", bad)
		}
	}
	if _, ok := Char(16); ok {
		t.Error("Char(16) ok")
	}
}

func TestEventRoundTrip(t *testing.T) {
	for _, e := range []Event{
		{Code: 11, End: true, Volume: 10, Duration: 800},
		{Code: 0, Duration: 0},
		{Code: 15, Volume: 63, Duration: 65535},
	} {
		var b [EventSize]byte
		if n := e.MarshalTo(b[:]); n != EventSize {
			t.Fatalf("MarshalTo = %d", n)
		}
		var got Event
		if err := got.Unmarshal(b[:]); err != nil || got != e {
			t.Fatalf("round trip %+v = %+v, %v", e, got, err)
		}
	}
	// RFC 4733 §2.3 layout: '#' (11), end, volume 10, duration 800.
	b := []byte{0x0b, 0x8a, 0x03, 0x20}
	var e Event
	if err := e.Unmarshal(b); err != nil || e != (Event{Code: 11, End: true, Volume: 10, Duration: 800}) {
		t.Fatalf("Unmarshal = %+v, %v", e, err)
	}
	// The reserved bit is ignored.
	b[1] |= 0x40
	if err := e.Unmarshal(b); err != nil || e.Volume != 10 || !e.End {
		t.Fatalf("Unmarshal with R = %+v, %v", e, err)
	}
	if err := e.Unmarshal(b[:3]); err == nil {
		t.Fatal("short payload accepted")
	}
}

// tone makes ms of a dual tone, passed through µ-law as it would be on
// the wire.
func tone(lo, hi float64, ampLo, ampHi float64, ms int) []int16 {
	pcm := make([]int16, ms*8)
	for i := range pcm {
		ts := float64(i) / 8000
		pcm[i] = int16(ampLo*math.Sin(2*math.Pi*lo*ts) + ampHi*math.Sin(2*math.Pi*hi*ts))
	}
	enc := make([]byte, len(pcm))
	g711.EncodeUlaw(enc, pcm)
	g711.DecodeUlaw(pcm, enc)
	return pcm
}

// feed runs pcm through d in 20 ms blocks and returns the tones reported.
func feed(d *Detector, pcm []int16) string {
	var got []byte
	for len(pcm) >= 160 {
		if t, ok := d.Process(pcm[:160]); ok {
			got = append(got, t)
		}
		pcm = pcm[160:]
	}
	return string(got)
}

func TestGeneratorDetectorAllTones(t *testing.T) {
	for i := range len(Tones) {
		var g Generator
		if !g.Start(Tones[i], 0) {
			t.Fatalf("Start(%q) failed", Tones[i])
		}
		pcm := make([]int16, 100*8)
		g.Read(pcm[:333]) // blocks of any size keep the phase
		g.Read(pcm[333:])
		var enc [800]byte
		g711.EncodeAlaw(enc[:], pcm)
		g711.DecodeAlaw(pcm, enc[:])
		pcm = append(pcm, make([]int16, 800)...)
		var d Detector
		if got := feed(&d, pcm); got != Tones[i:i+1] {
			t.Errorf("tone %q: detected %q", Tones[i], got)
		}
	}
}

func TestGeneratorLevel(t *testing.T) {
	var g Generator
	g.Start('5', 0)
	pcm := make([]int16, 8000)
	g.Read(pcm)
	var peak int16
	for _, v := range pcm[7000:] {
		peak = max(peak, v)
	}
	// Two sines of DefaultAmplitude peak near 2×DefaultAmplitude; the
	// oscillators must not drift over a second.
	if peak < 2*DefaultAmplitude*0.95 || peak > 2*DefaultAmplitude+2 {
		t.Fatalf("peak after 1 s = %d", peak)
	}
	g.Stop()
	g.Read(pcm[:10])
	for _, v := range pcm[:10] {
		if v != 0 {
			t.Fatal("stopped generator not silent")
		}
	}
	if g.Start('x', 0) {
		t.Fatal("Start('x') ok")
	}
}

func TestDetectorDuration(t *testing.T) {
	lo, hi, _ := Frequencies('7')
	var d Detector
	// 20 ms is too short (Q.24: tones under 40 ms may be rejected).
	if got := feed(&d, append(tone(lo, hi, 6000, 6000, 20), make([]int16, 160)...)); got != "" {
		t.Fatalf("20 ms tone reported %q", got)
	}
	if got := feed(&d, append(tone(lo, hi, 6000, 6000, 40), make([]int16, 160)...)); got != "7" {
		t.Fatalf("40 ms tone reported %q", got)
	}
	// A long press is reported once.
	if got := feed(&d, tone(lo, hi, 6000, 6000, 2000)); got != "7" {
		t.Fatalf("2 s press reported %q", got)
	}
	// A 20 ms pause splits presses.
	pcm := append(tone(lo, hi, 6000, 6000, 100), make([]int16, 160)...)
	pcm = append(pcm, tone(lo, hi, 6000, 6000, 100)...)
	d.Reset()
	if got := feed(&d, pcm); got != "77" {
		t.Fatalf("two presses reported %q", got)
	}
}

func TestDetectorRejects(t *testing.T) {
	lo, hi, _ := Frequencies('5')
	cases := map[string][]int16{
		"quiet":         tone(lo, hi, 100, 100, 200),             // about -50 dBFS per tone
		"normal twist":  tone(lo, hi, 8000, 8000/3.5, 200),       // 11 dB
		"reverse twist": tone(lo, hi, 8000/2, 8000, 200),         // 6 dB
		"single":        tone(lo, 3000, 8000, 0, 200),            // row tone only
		"off frequency": tone(lo*1.07, hi*1.07, 8000, 8000, 200), // 7% off (Q.24 rejects beyond 3.5%)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	noise := make([]int16, 8000)
	for i := range noise {
		noise[i] = int16(rng.NormFloat64() * 4000)
	}
	cases["noise"] = noise
	// Tone plus loud noise: the tones hold too little of the energy.
	noisy := tone(lo, hi, 3000, 3000, 1000)
	for i := range noisy {
		noisy[i] += int16(rng.NormFloat64() * 6000)
	}
	cases["tone in loud noise"] = noisy
	// Voiced speech: a 140 Hz glottal pulse train with harmonics.
	voice := make([]int16, 8000)
	for i := range voice {
		var v float64
		for h := 1; h <= 20; h++ {
			v += math.Sin(2*math.Pi*140*float64(h)*float64(i)/8000) / float64(h)
		}
		voice[i] = int16(v * 5000)
	}
	cases["voice"] = voice
	for name, pcm := range cases {
		var d Detector
		if got := feed(&d, pcm); got != "" {
			t.Errorf("%s: detected %q", name, got)
		}
	}
	// Within the limits it is accepted.
	var d Detector
	if got := feed(&d, tone(lo*1.015, hi*0.985, 8000, 8000, 200)); got != "5" {
		t.Errorf("1.5%% off: detected %q", got)
	}
	if got := feed(&d, append(make([]int16, 160), tone(lo, hi, 8000, 8000/2.2, 200)...)); got != "5" {
		t.Errorf("7 dB normal twist: detected %q", got)
	}
	if got := feed(&d, append(make([]int16, 160), tone(lo, hi, 8000/1.4, 8000, 200)...)); got != "5" {
		t.Errorf("3 dB reverse twist: detected %q", got)
	}
}

func BenchmarkClassify(b *testing.B) {
	lo, hi, _ := Frequencies('9')
	pcm := tone(lo, hi, 6000, 6000, 20)
	b.ReportAllocs()
	for b.Loop() {
		Classify(pcm)
	}
}

func BenchmarkDetectorProcess(b *testing.B) {
	lo, hi, _ := Frequencies('9')
	pcm := tone(lo, hi, 6000, 6000, 20)
	var d Detector
	b.ReportAllocs()
	for b.Loop() {
		d.Process(pcm)
	}
}

func BenchmarkGeneratorRead(b *testing.B) {
	var g Generator
	g.Start('#', 0)
	pcm := make([]int16, 160)
	b.ReportAllocs()
	for b.Loop() {
		g.Read(pcm)
	}
}

func TestDetectorSkipCurrent(t *testing.T) {
	lo, hi, _ := Frequencies('8')
	press := tone(lo, hi, 6000, 6000, 200)
	var d Detector
	d.SkipCurrent()
	// The rest of a press under way is skipped, the next one reported.
	if got := feed(&d, append(append(press, make([]int16, 320)...), press...)); got != "8" {
		t.Fatalf("reported %q, want one press", got)
	}
	// Skipping when nothing is under way costs nothing.
	d.Reset()
	d.SkipCurrent()
	if got := feed(&d, append(make([]int16, 320), press...)); got != "8" {
		t.Fatalf("reported %q after a skip during silence", got)
	}
}
