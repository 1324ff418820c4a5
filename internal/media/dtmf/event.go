package dtmf

import "errors"

// Tones is every tone character, in RFC 4733 event-code order (§3.2:
// events 0–9 are the digits, 10 is '*', 11 is '#', 12–15 are A–D).
const Tones = "0123456789*#ABCD"

// Code returns the RFC 4733 event code of a tone character. Lower-case
// 'a'–'d' are accepted.
func Code(tone byte) (uint8, bool) {
	switch {
	case tone >= '0' && tone <= '9':
		return tone - '0', true
	case tone == '*':
		return 10, true
	case tone == '#':
		return 11, true
	case tone >= 'A' && tone <= 'D':
		return tone - 'A' + 12, true
	case tone >= 'a' && tone <= 'd':
		return tone - 'a' + 12, true
	}
	return 0, false
}

// Char returns the tone character of an RFC 4733 event code 0–15.
func Char(code uint8) (byte, bool) {
	if int(code) >= len(Tones) {
		return 0, false
	}
	return Tones[code], true
}

// Valid reports whether tone is a DTMF tone character.
func Valid(tone byte) bool {
	_, ok := Code(tone)
	return ok
}

// EventSize is the size of an RFC 4733 telephone-event payload.
const EventSize = 4

// ErrShortEvent is returned for a payload shorter than EventSize.
var ErrShortEvent = errors.New("dtmf: telephone-event payload shorter than 4 bytes")

// Event is an RFC 4733 §2.3 telephone-event payload:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     event     |E|R| volume    |          duration             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type Event struct {
	Code     uint8  // event code (§3.2 for DTMF)
	End      bool   // E bit: the last packet(s) of the event
	Volume   uint8  // power level in -dBm0, 0–63 (§2.3.4)
	Duration uint16 // in RTP timestamp units since the event's timestamp (§2.3.5)
}

// MarshalTo writes the payload into b, which must hold EventSize bytes, and
// returns EventSize.
func (e Event) MarshalTo(b []byte) int {
	_ = b[3]
	b[0] = e.Code
	b[1] = e.Volume & 0x3f
	if e.End {
		b[1] |= 0x80
	}
	b[2] = byte(e.Duration >> 8)
	b[3] = byte(e.Duration)
	return EventSize
}

// Unmarshal parses an RFC 4733 payload; the reserved bit is ignored
// (§2.3.3: receivers ignore it).
func (e *Event) Unmarshal(b []byte) error {
	if len(b) < EventSize {
		return ErrShortEvent
	}
	e.Code = b[0]
	e.End = b[1]&0x80 != 0
	e.Volume = b[1] & 0x3f
	e.Duration = uint16(b[2])<<8 | uint16(b[3])
	return nil
}
