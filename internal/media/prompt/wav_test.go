package prompt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/media/g711"
)

// checkTone asserts that pcm (8 kHz) holds freq at amp (0..1) within
// 0.5 dB, over its middle.
func checkTone(t *testing.T, pcm []int16, freq, amp float64) {
	t.Helper()
	got := goertzel(middle(pcm), freq, 8000)
	want := amp * 32767
	if d := dB(got / want); math.Abs(d) > 0.5 {
		t.Errorf("%g Hz at %.1f dB relative to the input, want within 0.5 dB (amplitude %.0f, want %.0f)", freq, d, got, want)
	}
}

func decode(t *testing.T, b []byte) []int16 {
	t.Helper()
	pcm, err := DecodeWAV(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("DecodeWAV: %v", err)
	}
	return pcm
}

func TestDecodePCM8kIsExact(t *testing.T) {
	x := toInt16(tone(440, 0.5, 8000, 1))
	pcm := decode(t, pcm16WAV(x, 8000))
	if !slicesEqual(pcm, x) {
		t.Fatal("8 kHz PCM did not decode to the same samples")
	}
}

func TestDecodePCM16kResamples(t *testing.T) {
	x := toInt16(tone(1000, 0.5, 16000, 1))
	pcm := decode(t, pcm16WAV(x, 16000))
	if len(pcm) != 8000 {
		t.Fatalf("%d samples, want 8000", len(pcm))
	}
	checkTone(t, pcm, 1000, 0.5)
	// Passband: 3 kHz must come through too.
	checkTone(t, decode(t, pcm16WAV(toInt16(tone(3000, 0.5, 16000, 1)), 16000)), 3000, 0.5)
}

// TestAntiAlias checks the filter that keeps tones above 4 kHz from
// folding into the telephone band: a 6 kHz tone in a 16 kHz prompt would
// otherwise play as 2 kHz, and 5 and 7 kHz in 44.1/48 kHz prompts as 3 and
// 1 kHz.
func TestAntiAlias(t *testing.T) {
	for _, tc := range []struct {
		rate int
		freq float64
	}{
		{16000, 6000},
		{16000, 4500},
		{44100, 5000},
		{48000, 7000},
		{48000, 12000},
	} {
		x := toInt16(tone(tc.freq, 0.8, tc.rate, 1))
		pcm := decode(t, pcm16WAV(x, tc.rate))
		in := 0.8 * 32767 / math.Sqrt2
		if d := dB(rms(middle(pcm)) / in); d > -30 {
			t.Errorf("%g Hz at %d Hz: output at %.1f dB relative to the input, want <= -30 dB", tc.freq, tc.rate, d)
		} else {
			t.Logf("%g Hz at %d Hz: attenuated to %.1f dB", tc.freq, tc.rate, d)
		}
	}
}

func TestDecodeOtherRates(t *testing.T) {
	for _, rate := range []int{11025, 22050, 32000, 44100, 48000, 96000, 6000} {
		pcm := decode(t, pcm16WAV(toInt16(tone(1000, 0.5, rate, 1)), rate))
		if len(pcm) < 7999 || len(pcm) > 8001 {
			t.Errorf("%d Hz: %d samples, want 8000", rate, len(pcm))
		}
		checkTone(t, pcm, 1000, 0.5)
	}
}

func TestDecodeG711(t *testing.T) {
	x := toInt16(tone(1000, 0.5, 8000, 1))
	u := ulawBytes(x)
	pcm := decode(t, wavFile(fmtChunk(tagMuLaw, 1, 8000, 8), chunk{"fact", []byte{0x40, 0x1F, 0, 0}}, chunk{"data", u}))
	want := make([]int16, len(u))
	g711.DecodeUlaw(want, u)
	if !slicesEqual(pcm, want) {
		t.Fatal("µ-law WAV did not decode to the µ-law samples")
	}
	checkTone(t, pcm, 1000, 0.5)

	a := make([]byte, len(x))
	g711.EncodeAlaw(a, x)
	checkTone(t, decode(t, wavFile(fmtChunk(tagALaw, 1, 8000, 8), chunk{"data", a})), 1000, 0.5)
}

func TestDecodeStereoDownmix(t *testing.T) {
	l := toInt16(tone(1000, 0.5, 44100, 1))
	r := toInt16(tone(2000, 0.5, 44100, 1))
	b := make([]byte, 4*len(l))
	for i := range l {
		binary.LittleEndian.PutUint16(b[4*i:], uint16(l[i]))
		binary.LittleEndian.PutUint16(b[4*i+2:], uint16(r[i]))
	}
	pcm := decode(t, wavFile(fmtChunk(tagPCM, 2, 44100, 16), chunk{"data", b}))
	// Averaging the channels halves each.
	checkTone(t, pcm, 1000, 0.25)
	checkTone(t, pcm, 2000, 0.25)
}

func TestDecodeSampleFormats(t *testing.T) {
	x := tone(1000, 0.5, 16000, 1)
	n := len(x)
	pcm24 := make([]byte, 3*n)
	f32 := make([]byte, 4*n)
	pcm8 := make([]byte, n)
	for i, v := range x {
		s := int32(math.Round(v * 256))
		pcm24[3*i], pcm24[3*i+1], pcm24[3*i+2] = byte(s), byte(s>>8), byte(s>>16)
		binary.LittleEndian.PutUint32(f32[4*i:], math.Float32bits(float32(v/32768)))
		pcm8[i] = byte(int(math.Round(v/256)) + 128)
	}
	for name, b := range map[string][]byte{
		"24-bit":      wavFile(fmtChunk(tagPCM, 1, 16000, 24), chunk{"data", pcm24}),
		"float":       wavFile(fmtChunk(tagFloat, 1, 16000, 32), chunk{"data", f32}),
		"8-bit":       wavFile(fmtChunk(tagPCM, 1, 16000, 8), chunk{"data", pcm8}),
		"extensible":  wavFile(extensibleFmt(tagPCM, 1, 16000, 24), chunk{"data", pcm24}),
		"16-bit":      pcm16WAV(toInt16(x), 16000),
		"one-byte-io": pcm16WAV(toInt16(x), 16000),
	} {
		t.Run(name, func(t *testing.T) {
			var pcm []int16
			var err error
			if name == "one-byte-io" {
				pcm, err = DecodeWAV(iotest.OneByteReader(bytes.NewReader(b)))
			} else {
				pcm, err = DecodeWAV(bytes.NewReader(b))
			}
			if err != nil {
				t.Fatal(err)
			}
			checkTone(t, pcm, 1000, 0.5)
		})
	}
}

func TestDecodeSkipsChunks(t *testing.T) {
	x := toInt16(tone(1000, 0.5, 16000, 0.5))
	list := chunk{"LIST", []byte("INFOISFT\x05\x00\x00\x00Lavf\x00")} // odd size, padded
	junk := chunk{"JUNK", make([]byte, 28)}
	b := wavFile(list, fmtChunk(tagPCM, 1, 16000, 16), junk, chunk{"fact", []byte{1, 2, 3}}, chunk{"data", pcm16Bytes(x)}, chunk{"id3 ", []byte("x")})
	checkTone(t, decode(t, b), 1000, 0.5)

	// A writer that forgot the pad byte after an odd chunk.
	var nopad bytes.Buffer
	nopad.WriteString("RIFF\x00\x00\x00\x00WAVE")
	nopad.WriteString("LIST\x03\x00\x00\x00abc")
	f := fmtChunk(tagPCM, 1, 16000, 16)
	nopad.WriteString("fmt \x10\x00\x00\x00")
	nopad.Write(f.body)
	nopad.WriteString("data")
	_ = binary.Write(&nopad, binary.LittleEndian, uint32(2*len(x)))
	nopad.Write(pcm16Bytes(x))
	checkTone(t, decode(t, nopad.Bytes()), 1000, 0.5)
}

func TestDecodeLenientDataSize(t *testing.T) {
	x := toInt16(tone(1000, 0.5, 8000, 1))
	for name, size := range map[string]uint32{"streamed": math.MaxUint32, "zero": 0, "too long": 10 * 16000} {
		b := pcm16WAV(x, 8000)
		binary.LittleEndian.PutUint32(b[40:], size)
		pcm := decode(t, b)
		if len(pcm) != len(x) {
			t.Errorf("%s: %d samples, want %d", name, len(pcm), len(x))
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	x := toInt16(tone(1000, 0.5, 8000, 0.1))
	adpcm := fmtChunk(tagIMAADPCM, 2, 22050, 4)
	for _, tc := range []struct {
		name string
		data []byte
		want string // in the message
	}{
		{"mp3 with id3", []byte("ID3\x04\x00\x00\x00\x00\x00\x00garbage garbage"), "MP3 data"},
		{"mp3 frame", []byte{0xFF, 0xFB, 0x90, 0x64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "MP3 data"},
		{"ogg", []byte("OggS\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00"), "Ogg data"},
		{"html", []byte("<!DOCTYPE html><html><body>Not found</body></html>"), "an HTML page"},
		{"json", []byte(`{"error":"nope"}`), "JSON text"},
		{"empty", nil, "the body is empty"},
		{"short", []byte("RIF"), "not a WAV file"},
		{"binary", []byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, "unrecognised data starting with 00 01 02"},
		{"avi", []byte("RIFF\x10\x00\x00\x00AVI LIST"), `RIFF "AVI " file`},
		{"adpcm", wavFile(adpcm, chunk{"data", make([]byte, 64)}), "stereo 4-bit IMA ADPCM at 22050 Hz"},
		{"stereo mp3 in wav", wavFile(fmtChunk(tagMP3, 2, 44100, 0), chunk{"data", make([]byte, 64)}), "stereo MP3 at 44100 Hz"},
		{"12-bit", wavFile(fmtChunk(tagPCM, 1, 8000, 12), chunk{"data", make([]byte, 64)}), "mono 12-bit PCM at 8000 Hz"},
		{"rate", wavFile(fmtChunk(tagPCM, 1, 1000, 16), chunk{"data", make([]byte, 64)}), "mono 16-bit PCM at 1000 Hz"},
		{"no data", wavFile(fmtChunk(tagPCM, 1, 8000, 16)), "no data chunk"},
		{"no fmt", wavFile(chunk{"LIST", []byte("abcd")}), "no fmt chunk"},
		{"data first", wavFile(chunk{"data", pcm16Bytes(x)}, fmtChunk(tagPCM, 1, 8000, 16)), "data chunk before the fmt chunk"},
		{"empty data", wavFile(fmtChunk(tagPCM, 1, 8000, 16), chunk{"data", nil}), "no audio"},
		{"truncated chunk", []byte("RIFF\x00\x00\x00\x00WAVELIST\xff\x00\x00\x00ab"), `ends inside its "LIST" chunk`},
	} {
		_, err := DecodeWAV(bytes.NewReader(tc.data))
		if !errors.Is(err, ErrFormat) || errs.KindOf(err) != errs.UnsupportedMedia {
			t.Errorf("%s: err %v, want an UnsupportedMedia ErrFormat", tc.name, err)
			continue
		}
		if msg := errs.Message(err); !strings.Contains(msg, tc.want) || !strings.Contains(msg, "PCM 16-bit mono") {
			t.Errorf("%s: message %q, want it to say %q and what to use", tc.name, msg, tc.want)
		}
	}
}

func TestDecodeTooLong(t *testing.T) {
	// A header declaring more than the limit is what streaming writers
	// (espeak-ng --stdout writes 0x7ffff000) leave: the audio actually
	// there is what counts.
	b := wavFile(fmtChunk(tagPCM, 1, 8000, 16), chunk{"data", make([]byte, 1600)})
	binary.LittleEndian.PutUint32(b[40:], 0x7ffff000)
	pcm, err := DecodeWAV(bytes.NewReader(b))
	if err != nil || len(pcm) != 800 {
		t.Fatalf("streamed header: %d samples, err %v; want 800", len(pcm), err)
	}
	// A streamed header (unknown length) with more than ten minutes.
	long := make([]byte, int(MaxDuration.Seconds())*8000+8000)
	b = wavFile(fmtChunk(tagMuLaw, 1, 8000, 8), chunk{"data", long})
	binary.LittleEndian.PutUint32(b[36+4:], math.MaxUint32)
	_, err = DecodeWAV(bytes.NewReader(b))
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(errs.Message(err), "longer than 10m0s") {
		t.Fatalf("err %v, want ErrTooLarge", err)
	}
}

func TestDecodeReadError(t *testing.T) {
	b := pcm16WAV(toInt16(tone(1000, 0.5, 8000, 4)), 8000)
	_, err := DecodeWAV(iotest.TimeoutReader(bytes.NewReader(b)))
	if err == nil || errors.Is(err, ErrFormat) || !errors.Is(err, iotest.ErrTimeout) {
		t.Fatalf("err %v, want the reader's error, not a format error", err)
	}
}

func slicesEqual(a, b []int16) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func BenchmarkResample16kTo8k(b *testing.B) {
	x := tone(1000, 0.5, 16000, 1)
	xf := make([]float32, len(x))
	for i, v := range x {
		xf[i] = float32(v)
	}
	rs := newResampler(16000, 8000)
	b.SetBytes(int64(len(x) * 2))
	b.ReportAllocs()
	for b.Loop() {
		rs.process(xf)
	}
}

func BenchmarkResample44kTo8k(b *testing.B) {
	x := tone(1000, 0.5, 44100, 1)
	xf := make([]float32, len(x))
	for i, v := range x {
		xf[i] = float32(v)
	}
	rs := newResampler(44100, 8000)
	b.SetBytes(int64(len(x) * 2))
	b.ReportAllocs()
	for b.Loop() {
		rs.process(xf)
	}
}

func BenchmarkDesignFilter44k(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		newResampler(44100, 8000)
	}
}

func BenchmarkDecodeWAV16k(b *testing.B) {
	w := pcm16WAV(toInt16(tone(1000, 0.5, 16000, 10)), 16000)
	b.SetBytes(int64(len(w)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeWAV(bytes.NewReader(w)); err != nil {
			b.Fatal(err)
		}
	}
}
