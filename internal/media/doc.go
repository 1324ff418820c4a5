// Package media is Switchboard's media engine: RTP sessions on UDP, the
// G.711 codecs, a receive jitter buffer, DTMF (RFC 4733 and in-band), and a
// shared media clock that paces 20 ms frames for every session. Prompts are
// pre-encoded Audio values shared by all calls.
package media
