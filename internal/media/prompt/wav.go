package prompt

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"strings"
	"time"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/internal/media/g711"
)

// MaxDuration is the longest prompt Switchboard plays. Graph's own limit on
// prompt length is undocumented; ten minutes covers hold music loops and
// long announcements while bounding the memory one cached prompt holds
// (9.6 MB of 8 kHz PCM and G.711).
const MaxDuration = 10 * time.Minute

// Sample rates DecodeWAV accepts. Graph asks for 16 kHz
// (https://learn.microsoft.com/graph/api/resources/mediainfo) but bots send
// whatever their tools produce; anything from 4 to 192 kHz is resampled to
// 8 kHz.
const (
	minRate = 4000
	maxRate = 192000
)

// WAVE format tags (RFC 2361, mmreg.h).
const (
	tagPCM        = 0x0001
	tagMSADPCM    = 0x0002
	tagFloat      = 0x0003
	tagALaw       = 0x0006
	tagMuLaw      = 0x0007
	tagIMAADPCM   = 0x0011
	tagG723ADPCM  = 0x0014
	tagGSM610     = 0x0031
	tagG721ADPCM  = 0x0040
	tagMPEG       = 0x0050
	tagMP3        = 0x0055
	tagAAC        = 0x00FF
	tagWMA        = 0x0161
	tagExtensible = 0xFFFE
)

// wavFormat is a parsed "fmt " chunk.
type wavFormat struct {
	tag        uint16 // the format, with WAVE_FORMAT_EXTENSIBLE resolved to its subformat
	channels   int
	rate       int
	blockAlign int // bytes per sample frame (all channels)
	bits       int // bits per sample container
}

// bytesPerSample is the container size of one channel's sample.
func (f wavFormat) bytesPerSample() int { return (f.bits + 7) / 8 }

func (f wavFormat) supported() bool {
	if f.channels < 1 || f.channels > 8 || f.rate < minRate || f.rate > maxRate {
		return false
	}
	if f.blockAlign < f.channels*f.bytesPerSample() {
		return false
	}
	switch f.tag {
	case tagPCM:
		return f.bits == 8 || f.bits == 16 || f.bits == 24 || f.bits == 32
	case tagFloat:
		return f.bits == 32 || f.bits == 64
	case tagALaw, tagMuLaw:
		return f.bits == 8
	}
	return false
}

// String describes the format the way a bot author's audio tool would,
// for error messages: "stereo 16-bit PCM at 44100 Hz".
func (f wavFormat) String() string {
	var ch string
	switch f.channels {
	case 1:
		ch = "mono"
	case 2:
		ch = "stereo"
	default:
		ch = fmt.Sprintf("%d-channel", f.channels)
	}
	if f.bits == 0 { // compressed formats often leave it unset
		return fmt.Sprintf("%s %s at %d Hz", ch, tagName(f.tag), f.rate)
	}
	return fmt.Sprintf("%s %d-bit %s at %d Hz", ch, f.bits, tagName(f.tag), f.rate)
}

func tagName(tag uint16) string {
	switch tag {
	case tagPCM:
		return "PCM"
	case tagMSADPCM:
		return "Microsoft ADPCM"
	case tagFloat:
		return "IEEE float"
	case tagALaw:
		return "A-law"
	case tagMuLaw:
		return "µ-law"
	case tagIMAADPCM:
		return "IMA ADPCM"
	case tagG723ADPCM:
		return "G.723 ADPCM"
	case tagGSM610:
		return "GSM 6.10"
	case tagG721ADPCM:
		return "G.721 ADPCM"
	case tagMPEG:
		return "MPEG audio"
	case tagMP3:
		return "MP3"
	case tagAAC:
		return "AAC"
	case tagWMA:
		return "WMA"
	}
	return fmt.Sprintf("format 0x%04x", tag)
}

// wantFormat is the advice appended to every format error.
const wantFormat = "use a WAV file with PCM 16-bit mono audio at 16 kHz (8 kHz and G.711 µ-law/A-law also work)"

// formatErr is an unsupported-media error with an actionable message.
func formatErr(format string, args ...any) error {
	return errs.Wrap(errs.UnsupportedMedia, ErrFormat, format+"; "+wantFormat, args...)
}

// DecodeWAV reads a RIFF/WAVE file and returns its audio as 8 kHz mono
// 16-bit PCM. It accepts PCM (8, 16, 24 or 32-bit), IEEE float and G.711
// µ-law/A-law data, any number of channels up to 8 (mixed down by
// averaging) at any rate from 4 to 192 kHz (resampled with an anti-alias
// filter; an odd rate such as 44101 Hz is taken for the nearest one a
// filter of bounded size serves, at most 0.16 % off: designRate); it skips
// chunks it does not need (LIST, fact, cue…) and, like most players,
// tolerates a data chunk whose declared length is wrong.
//
// Errors are classified with errs: a stream that is not WAV or holds an
// unsupported encoding is errs.UnsupportedMedia wrapping ErrFormat and says
// what was found ("MP3 data", "stereo 4-bit IMA ADPCM at 22050 Hz"); audio
// longer than MaxDuration is errs.TooLarge wrapping ErrTooLarge. Errors
// reading r are returned as they are, wrapped with %w.
func DecodeWAV(r io.Reader) (pcm8k []int16, err error) {
	br := bufio.NewReaderSize(r, 32<<10)
	head, err := br.Peek(12)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("read wav header: %w", err)
	}
	if len(head) == 0 {
		return nil, formatErr("not a WAV file: the body is empty")
	}
	if len(head) < 12 || string(head[0:4]) != "RIFF" || string(head[8:12]) != "WAVE" {
		if len(head) < 12 {
			// Sniff what little there is, plus anything else buffered.
			head, _ = br.Peek(br.Buffered())
		} else {
			head, _ = br.Peek(min(512, br.Buffered()))
		}
		return nil, formatErr("not a WAV file: found %s", sniff(head))
	}
	if _, err := br.Discard(12); err != nil {
		return nil, fmt.Errorf("read wav header: %w", err)
	}

	var f *wavFormat
	for {
		var hdr [8]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				if f == nil {
					return nil, formatErr("WAV file has no fmt chunk")
				}
				return nil, formatErr("WAV file has no data chunk")
			}
			return nil, fmt.Errorf("read wav chunk: %w", err)
		}
		id, size := string(hdr[0:4]), binary.LittleEndian.Uint32(hdr[4:8])
		switch id {
		case "fmt ":
			if f, err = readFmt(br, size); err != nil {
				return nil, err
			}
		case "data":
			if f == nil {
				return nil, formatErr("WAV file has its data chunk before the fmt chunk")
			}
			if !f.supported() {
				return nil, formatErr("unsupported WAV encoding: %s", f)
			}
			return readData(br, *f, size)
		default:
			if err := skipChunk(br, size); err != nil {
				if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
					return nil, formatErr("WAV file ends inside its %q chunk, before any audio data", strings.TrimSpace(id))
				}
				return nil, fmt.Errorf("read wav chunk: %w", err)
			}
		}
	}
}

// readFmt parses a "fmt " chunk of the given size (WAVEFORMAT,
// WAVEFORMATEX or WAVEFORMATEXTENSIBLE).
func readFmt(br *bufio.Reader, size uint32) (*wavFormat, error) {
	if size < 16 || size > 1024 {
		return nil, formatErr("WAV fmt chunk has an invalid size of %d bytes", size)
	}
	b := make([]byte, size)
	if _, err := io.ReadFull(br, b); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, formatErr("WAV file ends inside its fmt chunk")
		}
		return nil, fmt.Errorf("read wav fmt chunk: %w", err)
	}
	if err := skipPad(br, size); err != nil {
		return nil, fmt.Errorf("read wav fmt chunk: %w", err)
	}
	le := binary.LittleEndian
	f := &wavFormat{
		tag:        le.Uint16(b[0:2]),
		channels:   int(le.Uint16(b[2:4])),
		rate:       int(le.Uint32(b[4:8])),
		blockAlign: int(le.Uint16(b[12:14])),
		bits:       int(le.Uint16(b[14:16])),
	}
	if f.tag == tagExtensible && size >= 40 {
		// The subformat GUID's first two bytes are the format tag
		// (KSDATAFORMAT_SUBTYPE_PCM is 00000001-0000-0010-…).
		f.tag = le.Uint16(b[24:26])
	}
	if f.blockAlign == 0 {
		f.blockAlign = f.channels * f.bytesPerSample()
	}
	return f, nil
}

// skipChunk discards a chunk's body and its pad byte.
func skipChunk(br *bufio.Reader, size uint32) error {
	if _, err := io.CopyN(io.Discard, br, int64(size)); err != nil {
		return err
	}
	return skipPad(br, size)
}

// skipPad consumes the pad byte that follows a chunk of odd size (RIFF
// chunks are word-aligned). Some writers omit it; a pad byte is always
// zero while a chunk ID never starts with one, so only a zero is consumed.
func skipPad(br *bufio.Reader, size uint32) error {
	if size%2 == 0 {
		return nil
	}
	b, err := br.Peek(1)
	if err != nil {
		if errors.Is(err, io.EOF) {
			return nil
		}
		return err
	}
	if b[0] == 0 {
		_, err = br.Discard(1)
	}
	return err
}

// readData decodes the data chunk, then mixes down and resamples.
func readData(br *bufio.Reader, f wavFormat, size uint32) ([]int16, error) {
	maxFrames := int64(MaxDuration.Seconds()) * int64(f.rate)
	// 0 and 0xFFFFFFFF are what streaming writers put in a header they
	// cannot seek back to: read to the end.
	known := size != 0 && size != math.MaxUint32
	if known && int64(size)/int64(f.blockAlign) > maxFrames {
		// Other streaming writers (espeak-ng --stdout, sox to a pipe) put
		// a huge size there: read to the end, still bounded by the limit.
		known = false
	}

	// A declared length sizes the buffer, within reason: a header may lie.
	hint := int64(1 << 20)
	if known {
		hint = min(hint, int64(size)/int64(f.blockAlign))
	}
	mono := make([]float32, 0, hint)
	var remaining int64 = math.MaxInt64
	if known {
		remaining = int64(size)
	}

	buf := make([]byte, f.blockAlign*4096)
	var tmp []int16 // G.711 decode scratch
	fill := 0       // bytes of buf holding data not yet converted
	for remaining > 0 {
		want := int64(len(buf) - fill)
		if want > remaining {
			want = remaining
		}
		n, err := br.Read(buf[fill : fill+int(want)])
		fill += n
		remaining -= int64(n)
		frames := fill / f.blockAlign
		if frames > 0 {
			if int64(len(mono)+frames) > maxFrames {
				return nil, tooLong(int64(len(mono)+frames), f.rate, true)
			}
			mono, tmp = appendMono(mono, tmp, buf[:frames*f.blockAlign], f)
			fill = copy(buf, buf[frames*f.blockAlign:fill])
		}
		if errors.Is(err, io.EOF) {
			// A data chunk shorter than declared: play what there is.
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read wav data: %w", err)
		}
	}
	if len(mono) == 0 {
		return nil, formatErr("WAV file has no audio in its data chunk")
	}
	if f.rate == media.SampleRate {
		out := make([]int16, len(mono))
		for i, v := range mono {
			out[i] = clip16(v)
		}
		return out, nil
	}
	return newResampler(designRate(f.rate, media.SampleRate), media.SampleRate).process(mono), nil
}

// tooLong is the error for audio of more than MaxDuration; atLeast says
// the length is what was read so far, not what the header declared.
func tooLong(frames int64, rate int, atLeast bool) error {
	if atLeast {
		return errs.Wrap(errs.TooLarge, ErrTooLarge, "the audio is longer than %s, the limit for a prompt", MaxDuration)
	}
	d := time.Duration(frames) * time.Second / time.Duration(rate)
	return errs.Wrap(errs.TooLarge, ErrTooLarge, "the audio is %s long; prompts are limited to %s",
		d.Round(time.Second), MaxDuration)
}

// appendMono converts whole sample frames in b to mono samples in int16
// units and appends them to dst. tmp is G.711 scratch space, returned for
// reuse.
func appendMono(dst []float32, tmp []int16, b []byte, f wavFormat) ([]float32, []int16) {
	frames := len(b) / f.blockAlign
	bps := f.bytesPerSample()
	inv := 1 / float32(f.channels)
	le := binary.LittleEndian
	switch f.tag {
	case tagALaw, tagMuLaw:
		if cap(tmp) < len(b) {
			tmp = make([]int16, len(b))
		}
		tmp = tmp[:len(b)]
		if f.tag == tagMuLaw {
			g711.DecodeUlaw(tmp, b)
		} else {
			g711.DecodeAlaw(tmp, b)
		}
		for i := range frames {
			var s float32
			for c := range f.channels {
				s += float32(tmp[i*f.blockAlign+c])
			}
			dst = append(dst, s*inv)
		}
		return dst, tmp
	}
	for i := range frames {
		frame := b[i*f.blockAlign:]
		var s float32
		for c := range f.channels {
			p := frame[c*bps:]
			switch {
			case f.tag == tagPCM && bps == 1:
				s += float32(int(p[0])-128) * 256
			case f.tag == tagPCM && bps == 2:
				s += float32(int16(le.Uint16(p)))
			case f.tag == tagPCM && bps == 3:
				v := int32(uint32(p[0])<<8|uint32(p[1])<<16|uint32(p[2])<<24) >> 8
				s += float32(v) / 256
			case f.tag == tagPCM && bps == 4:
				s += float32(int32(le.Uint32(p))) / 65536
			case f.tag == tagFloat && bps == 4:
				s += math.Float32frombits(le.Uint32(p)) * 32768
			case f.tag == tagFloat && bps == 8:
				s += float32(math.Float64frombits(le.Uint64(p)) * 32768)
			}
		}
		dst = append(dst, s*inv)
	}
	return dst, tmp
}

// sniff names the kind of data b starts with, for a "not a WAV file"
// message a bot author can act on.
func sniff(b []byte) string {
	has := func(off int, s string) bool { return len(b) >= off+len(s) && string(b[off:off+len(s)]) == s }
	switch {
	case has(0, "ID3"):
		return "MP3 data (with an ID3 tag)"
	case len(b) >= 2 && b[0] == 0xFF && b[1]&0xF6 == 0xF0:
		return "AAC data (ADTS)"
	case len(b) >= 2 && b[0] == 0xFF && b[1]&0xE0 == 0xE0:
		return "MP3 data"
	case has(0, "OggS"):
		return "Ogg data (Vorbis or Opus)"
	case has(0, "fLaC"):
		return "FLAC data"
	case has(0, "FORM") && (has(8, "AIFF") || has(8, "AIFC")):
		return "AIFF data"
	case has(4, "ftyp"):
		return "MP4/M4A data"
	case has(0, "#!AMR"):
		return "AMR data"
	case has(0, ".snd"):
		return "Sun/NeXT AU data"
	case has(0, "\x1A\x45\xDF\xA3"):
		return "WebM/Matroska data"
	case has(0, "RF64"):
		return "RF64 (64-bit WAV) data, which is not supported"
	case has(0, "RIFF") && len(b) >= 12:
		return fmt.Sprintf("a RIFF %q file, not WAVE", string(b[8:12]))
	case has(0, "RIFF"):
		return "a truncated RIFF header"
	}
	t := bytes.TrimLeft(b, " \t\r\n\xEF\xBB\xBF")
	lower := strings.ToLower(string(t[:min(len(t), 512)]))
	switch {
	case strings.HasPrefix(lower, "<!doctype html") || strings.Contains(lower, "<html"):
		return "an HTML page"
	case strings.HasPrefix(lower, "<"):
		return "XML text"
	case strings.HasPrefix(lower, "{") || strings.HasPrefix(lower, "["):
		return "JSON text"
	case printable(t):
		return "text"
	}
	return fmt.Sprintf("unrecognised data starting with % x", b[:min(len(b), 8)])
}

func printable(b []byte) bool {
	if len(b) == 0 {
		return false
	}
	for _, c := range b[:min(len(b), 64)] {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7F {
			return false
		}
	}
	return true
}

// WAVHeaderLen is the size of the canonical RIFF/WAVE header WAVHeader writes.
const WAVHeaderLen = 44

// WAVHeader is the canonical header of a WAV file holding dataBytes of
// 16-bit mono PCM at rate.
func WAVHeader(dataBytes int64, rate int) [WAVHeaderLen]byte {
	var h [WAVHeaderLen]byte
	le := binary.LittleEndian
	copy(h[0:], "RIFF")
	le.PutUint32(h[4:], uint32(36+dataBytes))
	copy(h[8:], "WAVEfmt ")
	le.PutUint32(h[16:], 16)             // fmt chunk size
	le.PutUint16(h[20:], 1)              // PCM
	le.PutUint16(h[22:], 1)              // mono
	le.PutUint32(h[24:], uint32(rate))   // sample rate
	le.PutUint32(h[28:], uint32(rate*2)) // byte rate
	le.PutUint16(h[32:], 2)              // block align
	le.PutUint16(h[34:], 16)             // bits per sample
	copy(h[36:], "data")
	le.PutUint32(h[40:], uint32(dataBytes))
	return h
}

// EncodeWAV returns 16-bit mono PCM at rate as a WAV file.
func EncodeWAV(pcm []int16, rate int) []byte {
	h := WAVHeader(int64(2*len(pcm)), rate)
	b := make([]byte, WAVHeaderLen+2*len(pcm))
	copy(b, h[:])
	for i, v := range pcm {
		binary.LittleEndian.PutUint16(b[WAVHeaderLen+2*i:], uint16(v))
	}
	return b
}
