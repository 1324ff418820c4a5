// Package g711 encodes and decodes ITU-T G.711 µ-law (PCMU) and A-law
// (PCMA) with lookup tables. Every function writes into a caller's buffer
// and allocates nothing.
package g711

var (
	ulawDecode [256]int16
	alawDecode [256]int16
	ulawEncode [1 << 14]byte // indexed by sample >> 2 (14-bit magnitude with sign)
	alawEncode [1 << 13]byte // indexed by sample >> 3
	ulawToAlaw [256]byte
	alawToUlaw [256]byte
)

func init() {
	for i := range 256 {
		ulawDecode[i] = decodeUlaw(byte(i))
		alawDecode[i] = decodeAlaw(byte(i))
	}
	for i := range ulawEncode {
		s := int16(uint16(i) << 2)
		ulawEncode[i] = encodeUlaw(s)
	}
	for i := range alawEncode {
		s := int16(uint16(i) << 3)
		alawEncode[i] = encodeAlaw(s)
	}
	// Transcoding through the linear value: what decoding then encoding
	// would give, in one lookup.
	for i := range 256 {
		ulawToAlaw[i] = alawEncode[uint16(ulawDecode[i])>>3]
		alawToUlaw[i] = ulawEncode[uint16(alawDecode[i])>>2]
	}
}

// G.711 µ-law per ITU-T G.711 §3 (bias 0x84, clip 32635).
func encodeUlaw(s int16) byte {
	const bias, clip = 0x84, 32635
	x := int(s)
	sign := 0
	if x < 0 {
		x = -x
		sign = 0x80
	}
	if x > clip {
		x = clip
	}
	x += bias
	exp := 7
	for mask := 0x4000; x&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := (x >> (exp + 3)) & 0x0f
	return ^byte(sign | exp<<4 | mant)
}

func decodeUlaw(u byte) int16 {
	u = ^u
	sign := u & 0x80
	exp := int(u>>4) & 7
	mant := int(u & 0x0f)
	x := ((mant << 3) + 0x84) << exp
	x -= 0x84
	if sign != 0 {
		return int16(-x)
	}
	return int16(x)
}

// G.711 A-law per ITU-T G.711 §2 (even bits inverted with 0x55).
func encodeAlaw(s int16) byte {
	x := int(s)
	sign := 0x80
	if x < 0 {
		x = -x - 1
		sign = 0
	}
	if x > 32767 {
		x = 32767
	}
	var b int
	if x < 256 {
		b = x >> 4
	} else {
		exp := 1
		for v := x >> 8; v > 1; v >>= 1 {
			exp++
		}
		b = exp<<4 | (x>>(exp+3))&0x0f
	}
	return byte(b|sign) ^ 0x55
}

func decodeAlaw(a byte) int16 {
	a ^= 0x55
	sign := a & 0x80
	exp := int(a>>4) & 7
	mant := int(a & 0x0f)
	var x int
	if exp == 0 {
		x = mant<<4 + 8
	} else {
		x = (mant<<4 + 0x108) << (exp - 1)
	}
	if sign == 0 {
		return int16(-x)
	}
	return int16(x)
}

// EncodeUlaw writes len(src) µ-law bytes into dst, which must be as long.
func EncodeUlaw(dst []byte, src []int16) {
	dst = dst[:len(src)]
	for i, s := range src {
		dst[i] = ulawEncode[uint16(s)>>2]
	}
}

// DecodeUlaw writes len(src) samples into dst, which must be as long.
func DecodeUlaw(dst []int16, src []byte) {
	dst = dst[:len(src)]
	for i, b := range src {
		dst[i] = ulawDecode[b]
	}
}

// EncodeAlaw writes len(src) A-law bytes into dst, which must be as long.
func EncodeAlaw(dst []byte, src []int16) {
	dst = dst[:len(src)]
	for i, s := range src {
		dst[i] = alawEncode[uint16(s)>>3]
	}
}

// DecodeAlaw writes len(src) samples into dst, which must be as long.
func DecodeAlaw(dst []int16, src []byte) {
	dst = dst[:len(src)]
	for i, b := range src {
		dst[i] = alawDecode[b]
	}
}

// UlawToAlaw transcodes len(src) µ-law bytes to A-law into dst, which
// must be as long. dst and src may be the same slice.
func UlawToAlaw(dst, src []byte) {
	dst = dst[:len(src)]
	for i, b := range src {
		dst[i] = ulawToAlaw[b]
	}
}

// AlawToUlaw transcodes len(src) A-law bytes to µ-law into dst, which
// must be as long. dst and src may be the same slice.
func AlawToUlaw(dst, src []byte) {
	dst = dst[:len(src)]
	for i, b := range src {
		dst[i] = alawToUlaw[b]
	}
}

// UlawSilence and AlawSilence are the codes for a zero sample.
const (
	UlawSilence = 0xff
	AlawSilence = 0xd5
)
