package g711

import (
	"math"
	"testing"
)

// Known code points from ITU-T G.711 tables.
func TestKnownValues(t *testing.T) {
	if got := ulawEncode[0]; got != 0xff {
		t.Errorf("µ-law(0) = %#x, want 0xff", got)
	}
	if got := decodeUlaw(0xff); got != 0 {
		t.Errorf("µ-law⁻¹(0xff) = %d", got)
	}
	if got := decodeUlaw(0x00); got != -32124 {
		t.Errorf("µ-law⁻¹(0x00) = %d, want -32124", got)
	}
	if got := decodeUlaw(0x80); got != 32124 {
		t.Errorf("µ-law⁻¹(0x80) = %d, want 32124", got)
	}
	if got := encodeAlaw(0); got != 0xd5 {
		t.Errorf("A-law(0) = %#x, want 0xd5", got)
	}
	if got := decodeAlaw(0xd5); got != 8 {
		t.Errorf("A-law⁻¹(0xd5) = %d, want 8", got)
	}
	if got := decodeAlaw(0x55); got != -8 {
		t.Errorf("A-law⁻¹(0x55) = %d, want -8", got)
	}
	if got := decodeAlaw(0xaa); got != 32256 {
		t.Errorf("A-law⁻¹(0xaa) = %d, want 32256", got)
	}
}

// Every code decodes and re-encodes to itself (except µ-law's two zeros).
func TestRoundTripCodes(t *testing.T) {
	for i := range 256 {
		b := byte(i)
		var out [1]byte
		EncodeUlaw(out[:], []int16{ulawDecode[b]})
		if out[0] != b && !(b == 0x7f && out[0] == 0xff) {
			t.Errorf("µ-law %#x → %d → %#x", b, ulawDecode[b], out[0])
		}
		EncodeAlaw(out[:], []int16{alawDecode[b]})
		if out[0] != b {
			t.Errorf("A-law %#x → %d → %#x", b, alawDecode[b], out[0])
		}
	}
}

// A sine survives a round trip with G.711's ~38 dB SNR.
func TestSineSNR(t *testing.T) {
	const n = 8000
	src := make([]int16, n)
	for i := range src {
		src[i] = int16(12000 * math.Sin(2*math.Pi*440*float64(i)/8000))
	}
	enc := make([]byte, n)
	dec := make([]int16, n)
	for _, c := range []struct {
		name string
		e    func([]byte, []int16)
		d    func([]int16, []byte)
	}{{"ulaw", EncodeUlaw, DecodeUlaw}, {"alaw", EncodeAlaw, DecodeAlaw}} {
		c.e(enc, src)
		c.d(dec, enc)
		var sig, noise float64
		for i := range src {
			sig += float64(src[i]) * float64(src[i])
			d := float64(src[i]) - float64(dec[i])
			noise += d * d
		}
		if snr := 10 * math.Log10(sig/noise); snr < 30 {
			t.Errorf("%s SNR %.1f dB", c.name, snr)
		}
	}
}

func BenchmarkEncodeUlaw(b *testing.B) {
	src := make([]int16, 160)
	dst := make([]byte, 160)
	b.ReportAllocs()
	for range b.N {
		EncodeUlaw(dst, src)
	}
}

func BenchmarkDecodeAlaw(b *testing.B) {
	src := make([]byte, 160)
	dst := make([]int16, 160)
	b.ReportAllocs()
	for range b.N {
		DecodeAlaw(dst, src)
	}
}

// Transcoding is decoding then encoding, and a round trip through the
// other law stays within that law's quantisation step.
func TestTranscode(t *testing.T) {
	var src, mid, back [256]byte
	for i := range src {
		src[i] = byte(i)
	}
	UlawToAlaw(mid[:], src[:])
	AlawToUlaw(back[:], mid[:])
	for i := range src {
		u := ulawDecode[i]
		if want := alawEncode[uint16(u)>>3]; mid[i] != want {
			t.Fatalf("µ-law %#x → A-law %#x, want %#x", i, mid[i], want)
		}
		a, r := float64(alawDecode[mid[i]]), float64(ulawDecode[back[i]])
		step := math.Max(16, math.Abs(float64(u))/16) // A-law's step at this level
		if math.Abs(a-float64(u)) > step || math.Abs(r-float64(u)) > 2*step {
			t.Fatalf("µ-law %#x (%d): A-law %v, back %v", i, u, a, r)
		}
	}
	if ulawToAlaw[UlawSilence] != AlawSilence {
		t.Errorf("µ-law silence → %#x, want A-law silence", ulawToAlaw[UlawSilence])
	}
	// In place.
	buf := []byte{UlawSilence, 0x80, 0x00}
	UlawToAlaw(buf, buf)
	if buf[0] != AlawSilence {
		t.Errorf("in place: %#x", buf)
	}
}

func BenchmarkUlawToAlaw(b *testing.B) {
	src := make([]byte, 160)
	dst := make([]byte, 160)
	b.ReportAllocs()
	for b.Loop() {
		UlawToAlaw(dst, src)
	}
}
