package calltest

import (
	"encoding/binary"
	"fmt"
	"math"
	"os"
	"time"

	"github.com/switchboard-voice/switchboard/bottest"
	"github.com/switchboard-voice/switchboard/internal/media/g711"
	"github.com/switchboard-voice/switchboard/internal/media/prompt"
)

// Audio is checked as audio (STYLE.md): by the energy envelope of 20 ms
// frames at 8 kHz, compared by normalised cross-correlation.

// Envelope returns the RMS of each 20 ms frame of 8 kHz PCM.
func Envelope(pcm []int16) []float64 { return bottest.Envelope(pcm) }

// BestCorrelation slides b over a by up to maxLag frames either way and
// returns the highest normalised correlation of the overlap (≥ minOverlap
// frames), and the lag where it is.
func BestCorrelation(a, b []float64, maxLag, minOverlap int) (float64, int) {
	return bottest.BestCorrelation(a, b, maxLag, minOverlap)
}

// Pattern is 8 kHz PCM of a tone switched on and off in an irregular
// rhythm, so that its envelope matches only itself at one lag.
func Pattern(freq float64, seconds float64, seed int) []int16 {
	n := int(seconds * 8000)
	pcm := make([]int16, n)
	state := uint32(seed*2654435761 + 1)
	on := true
	left := 0
	for i := range pcm {
		if left == 0 {
			state = state*1664525 + 1013904223
			left = int(80+state>>24%120) * 8 // 80-200 ms segments
			on = !on
		}
		left--
		if on {
			pcm[i] = int16(9000 * math.Sin(2*math.Pi*freq*float64(i)/8000))
		}
	}
	return pcm
}

// WAV encodes 16-bit mono PCM at rate as a WAV file.
func WAV(pcm []int16, rate int) []byte { return prompt.EncodeWAV(pcm, rate) }

// WriteWAV writes 16-bit mono PCM at rate as a WAV file.
func WriteWAV(path string, pcm []int16, rate int) error {
	return os.WriteFile(path, WAV(pcm, rate), 0o644)
}

// ToneWAV is a 16 kHz mono 16-bit WAV of a sine, as Graph's prompts are.
func ToneWAV(freq float64, d time.Duration) []byte {
	pcm := make([]int16, int(d.Seconds()*16000))
	for i := range pcm {
		pcm[i] = int16(8000 * math.Sin(2*math.Pi*freq*float64(i)/16000))
	}
	return WAV(pcm, 16000)
}

// PcapAudio extracts the G.711 audio of the first RTP stream with payload
// type pt (0 PCMU, 8 PCMA) from a pcap file (Ethernet or Linux cooked
// captures of IPv4/UDP), decoded to PCM in packet order.
func PcapAudio(path string, pt uint8) ([]int16, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(data) < 24 {
		return nil, fmt.Errorf("%s: not a pcap file", path)
	}
	le := binary.LittleEndian
	var bo binary.ByteOrder = le
	switch le.Uint32(data) {
	case 0xa1b2c3d4, 0xa1b23c4d:
	case 0xd4c3b2a1, 0x4d3cb2a1:
		bo = binary.BigEndian
	default:
		return nil, fmt.Errorf("%s: not a pcap file", path)
	}
	link := bo.Uint32(data[20:])
	var pcm []int16
	frame := make([]int16, 0, 2048)
	for off := 24; off+16 <= len(data); {
		incl := int(bo.Uint32(data[off+8:]))
		pkt := data[off+16 : min(len(data), off+16+incl)]
		off += 16 + incl
		switch link {
		case 1: // Ethernet
			if len(pkt) < 14 {
				continue
			}
			pkt = pkt[14:]
		case 113: // Linux cooked
			if len(pkt) < 16 {
				continue
			}
			pkt = pkt[16:]
		case 0: // BSD loopback
			pkt = pkt[4:]
		}
		if len(pkt) < 20 || pkt[0]>>4 != 4 || pkt[9] != 17 {
			continue
		}
		ihl := int(pkt[0]&0x0f) * 4
		if len(pkt) < ihl+8+12 {
			continue
		}
		rtp := pkt[ihl+8:]
		if rtp[0]>>6 != 2 || rtp[1]&0x7f != pt {
			continue
		}
		hdr := 12 + 4*int(rtp[0]&0x0f)
		if len(rtp) < hdr {
			continue
		}
		payload := rtp[hdr:]
		if len(payload) > cap(frame) {
			continue
		}
		frame = frame[:len(payload)]
		if pt == 8 {
			g711.DecodeAlaw(frame, payload)
		} else {
			g711.DecodeUlaw(frame, payload)
		}
		pcm = append(pcm, frame...)
	}
	if len(pcm) == 0 {
		return nil, fmt.Errorf("%s: no RTP with payload type %d", path, pt)
	}
	return pcm, nil
}
