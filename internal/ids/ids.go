// Package ids makes the GUIDs Switchboard hands out: call, participant and
// operation ids, request ids, token ids. One generator for the server (the
// public sdk keeps its own, as it may not import internal packages).
package ids

import (
	"crypto/rand"
	"encoding/hex"
)

// New returns a random (version 4, RFC 9562) GUID in Graph's lower-case
// form with dashes.
func New() string {
	var u [16]byte
	_, _ = rand.Read(u[:]) // crypto/rand.Read never fails (Go 1.24+)
	u[6] = u[6]&0x0f | 0x40
	u[8] = u[8]&0x3f | 0x80
	return Format(u)
}

// Format writes u as xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx.
func Format(u [16]byte) string {
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}
