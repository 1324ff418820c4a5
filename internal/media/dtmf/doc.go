// Package dtmf detects and generates DTMF tones: a Goertzel detector for
// in-band tones in 8 kHz PCM (ITU-T Q.23/Q.24 frequencies), the RFC 4733
// telephone-event payload, and a dual-tone generator for sending tones
// in-band. Nothing here allocates after construction; a Detector or a
// Generator is owned by one goroutine.
package dtmf
