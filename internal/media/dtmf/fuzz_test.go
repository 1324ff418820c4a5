package dtmf

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzEvent feeds RFC 4733 telephone-event payloads, as they come out of
// an RTP packet, to Event.Unmarshal: a short payload is an error, any
// other decodes to what MarshalTo writes back (the reserved bit dropped,
// the rest of the payload ignored), and an event code names a tone
// exactly when it is 0–15, a tone whose code is that event code.
func FuzzEvent(f *testing.F) {
	f.Add([]byte{5, 0x0a, 0x00, 0xa0})
	f.Fuzz(func(t *testing.T, b []byte) {
		var e Event
		err := e.Unmarshal(b)
		if len(b) < EventSize {
			if err == nil {
				t.Fatalf("%d bytes decoded as %+v", len(b), e)
			}
			return
		}
		if err != nil {
			t.Fatalf("%x: %v", b, err)
		}
		out := make([]byte, EventSize)
		if n := e.MarshalTo(out); n != EventSize {
			t.Fatalf("MarshalTo wrote %d bytes", n)
		}
		want := []byte{b[0], b[1] &^ 0x40, b[2], b[3]}
		if !bytes.Equal(out, want) {
			t.Fatalf("%x decodes to %+v, which encodes as %x", b[:EventSize], e, out)
		}
		c, ok := Char(e.Code)
		if ok != (e.Code < 16) {
			t.Fatalf("Char(%d) = %q, %v", e.Code, c, ok)
		}
		if ok {
			if code, valid := Code(c); !valid || code != e.Code || !Valid(c) {
				t.Fatalf("Code(Char(%d)) = %d, %v", e.Code, code, valid)
			}
		}
	})
}

// FuzzDetector feeds in-band audio, the bytes as 16-bit little-endian PCM
// cut into blocks of the lengths the media engine and its callers use, to
// Classify and a Detector: nothing may panic, any tone found is a DTMF
// character, and a press is reported once until a block without it.
func FuzzDetector(f *testing.F) {
	for _, tone := range []byte("15*#D") {
		var g Generator
		g.Start(tone, 8000)
		pcm := make([]int16, 800)
		g.Read(pcm)
		f.Add(pcmBytes(pcm), uint8(0))
	}
	f.Add(make([]byte, 640), uint8(3))
	f.Fuzz(func(t *testing.T, b []byte, blockSel uint8) {
		pcm := make([]int16, len(b)/2)
		for i := range pcm {
			pcm[i] = int16(binary.LittleEndian.Uint16(b[2*i:]))
		}
		block := []int{160, 80, 410, 1, 320}[int(blockSel)%5]
		var d Detector
		var last byte // the tone of the press under way, once reported
		for len(pcm) > 0 {
			n := min(block, len(pcm))
			if tone, ok := Classify(pcm[:n]); ok && !Valid(tone) {
				t.Fatalf("Classify found %q", tone)
			}
			tone, ok := d.Process(pcm[:n])
			if ok {
				if !Valid(tone) {
					t.Fatalf("Detector reported %q", tone)
				}
				if tone == last {
					t.Fatalf("%q reported twice in one press", tone)
				}
				last = tone
			}
			if d.cand != last {
				last = 0 // the press reported last is over
			}
			pcm = pcm[n:]
		}
	})
}

func pcmBytes(pcm []int16) []byte {
	b := make([]byte, 2*len(pcm))
	for i, v := range pcm {
		binary.LittleEndian.PutUint16(b[2*i:], uint16(v))
	}
	return b
}
