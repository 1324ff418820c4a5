package prompt

import (
	"bytes"
	"encoding/binary"
	"math"
	"testing"

	"github.com/switchboard-voice/switchboard/internal/media/g711"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// tone returns d seconds of a sine of freq Hz at amplitude amp (0..1 of
// full scale), sampled at rate, in int16 units.
func tone(freq float64, amp float64, rate int, seconds float64) []float64 {
	n := int(seconds * float64(rate))
	x := make([]float64, n)
	for i := range x {
		x[i] = amp * 32767 * math.Sin(2*math.Pi*freq*float64(i)/float64(rate))
	}
	return x
}

func toInt16(x []float64) []int16 {
	out := make([]int16, len(x))
	for i, v := range x {
		out[i] = int16(math.Round(v))
	}
	return out
}

// goertzel returns the amplitude (in int16 units) of the freq Hz component
// of x sampled at rate.
func goertzel(x []int16, freq float64, rate int) float64 {
	w := 2 * math.Pi * freq / float64(rate)
	coeff := 2 * math.Cos(w)
	var s1, s2 float64
	for _, v := range x {
		s := float64(v) + coeff*s1 - s2
		s2, s1 = s1, s
	}
	re := s1 - s2*math.Cos(w)
	im := s2 * math.Sin(w)
	return 2 * math.Hypot(re, im) / float64(len(x))
}

// rms is the root mean square of x.
func rms(x []int16) float64 {
	var sum float64
	for _, v := range x {
		sum += float64(v) * float64(v)
	}
	return math.Sqrt(sum / float64(len(x)))
}

// middle drops the first and last tenth of x, where the filter's edges
// are.
func middle(x []int16) []int16 { return x[len(x)/10 : len(x)-len(x)/10] }

func dB(ratio float64) float64 { return 20 * math.Log10(ratio) }

// chunk is a RIFF chunk for wavFile.
type chunk struct {
	id   string
	body []byte
}

// wavFile assembles a RIFF/WAVE file from chunks, padding odd ones.
func wavFile(chunks ...chunk) []byte {
	var body bytes.Buffer
	body.WriteString("WAVE")
	for _, c := range chunks {
		body.WriteString(c.id)
		_ = binary.Write(&body, binary.LittleEndian, uint32(len(c.body)))
		body.Write(c.body)
		if len(c.body)%2 == 1 {
			body.WriteByte(0)
		}
	}
	var out bytes.Buffer
	out.WriteString("RIFF")
	_ = binary.Write(&out, binary.LittleEndian, uint32(body.Len()))
	out.Write(body.Bytes())
	return out.Bytes()
}

// fmtChunk is a WAVEFORMAT (16-byte) fmt chunk.
func fmtChunk(tag uint16, channels, rate, bits int) chunk {
	b := make([]byte, 16)
	le := binary.LittleEndian
	align := channels * ((bits + 7) / 8)
	le.PutUint16(b[0:], tag)
	le.PutUint16(b[2:], uint16(channels))
	le.PutUint32(b[4:], uint32(rate))
	le.PutUint32(b[8:], uint32(rate*align))
	le.PutUint16(b[12:], uint16(align))
	le.PutUint16(b[14:], uint16(bits))
	return chunk{"fmt ", b}
}

// extensibleFmt is a WAVEFORMATEXTENSIBLE fmt chunk for subformat tag.
func extensibleFmt(tag uint16, channels, rate, bits int) chunk {
	c := fmtChunk(tagExtensible, channels, rate, bits)
	b := make([]byte, 40)
	copy(b, c.body)
	le := binary.LittleEndian
	le.PutUint16(b[16:], 22)           // cbSize
	le.PutUint16(b[18:], uint16(bits)) // valid bits
	le.PutUint32(b[20:], 0x3)          // front left and right
	le.PutUint16(b[24:], tag)          // the subformat GUID's tag
	copy(b[26:], []byte{0x00, 0x00, 0x00, 0x00, 0x10, 0x00, 0x80, 0x00, 0x00, 0xAA, 0x00, 0x38, 0x9B, 0x71})
	return chunk{"fmt ", b}
}

func pcm16Bytes(x []int16) []byte {
	b := make([]byte, 2*len(x))
	for i, v := range x {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	}
	return b
}

// pcm16WAV is a mono 16-bit PCM WAV of x at rate.
func pcm16WAV(x []int16, rate int) []byte {
	return wavFile(fmtChunk(tagPCM, 1, rate, 16), chunk{"data", pcm16Bytes(x)})
}

func ulawBytes(x []int16) []byte {
	b := make([]byte, len(x))
	g711.EncodeUlaw(b, x)
	return b
}
