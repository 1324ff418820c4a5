package main

import (
	"encoding/binary"
	"math"
)

// promptWAV returns the prompt the bot plays: secs seconds of 16 kHz mono
// 16-bit PCM (what Graph prompts are), a speech-like signal of two partials
// under a 4 Hz syllable envelope at about -12 dBFS, so the audio is neither
// silence nor a steady tone.
func promptWAV(secs int) []byte { return promptWAVAt(secs, 16000) }

// promptWAVAt is the same prompt at another sample rate: 8 kHz for the
// diago peer, which plays its WAV file without resampling.
func promptWAVAt(secs, rate int) []byte {
	n := secs * rate
	b := make([]byte, 44+2*n)
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+2*n))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], 1) // PCM
	binary.LittleEndian.PutUint16(b[22:], 1) // mono
	binary.LittleEndian.PutUint32(b[24:], uint32(rate))
	binary.LittleEndian.PutUint32(b[28:], uint32(rate*2))
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(2*n))
	for i := range n {
		t := float64(i) / float64(rate)
		env := 0.5 + 0.5*math.Sin(2*math.Pi*4*t)
		v := env * (0.6*math.Sin(2*math.Pi*220*t) + 0.4*math.Sin(2*math.Pi*710*t))
		binary.LittleEndian.PutUint16(b[44+2*i:], uint16(int16(v*8000)))
	}
	return b
}
