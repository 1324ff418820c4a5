// Package media is Switchboard's media engine: RTP sessions on UDP, the
// G.711 codecs, a receive jitter buffer, DTMF (RFC 4733 and in-band), and a
// shared media clock that paces 20 ms frames for every session. Prompts are
// pre-encoded Audio values shared by all calls.
//
// # Threads of control
//
// An Engine owns one clock goroutine (Engine.Run) and a few tick workers;
// each Session owns one UDP socket on its own even port and one reader
// goroutine for it. There is no timer or goroutine per call beyond that
// reader.
//
// The clock ticks every 20 ms. Sessions are spread over shards (four per
// CPU, 8 to 16), each served by a worker, and the shards tick at staggered
// phases across the period, so sends, and the receive work they trigger on
// the other side, are spread out instead of bursting every 20 ms. A tick
// does bounded work per session: hand the packets the reader queued to the
// jitter buffer, play out one frame (decode, record, detect tones, watch
// for silence and inactivity), send at most one packet. A worker that
// overruns skips its next tick rather than catching up, and a clock that
// wakes late runs the phases it missed back to back, up to a period late;
// EngineStats reports late ticks and the worst lateness. Workers send with
// a raw sendto(2), which keeps their P through the send: with hundreds of
// runnable readers, a worker that gave up its P on every send queued
// behind them and paced every session late (see BenchmarkDesign).
//
// The reader parses each packet into preallocated buffers (pion/rtp's
// Header.Unmarshal), drops what does not come from the latched remote
// (symmetric RTP, RFC 4961), handles RFC 4733 events at once, and passes
// audio to the tick through a single-producer, single-consumer ring: no
// lock, no allocation, no logging per packet. Counters are per-session
// atomics, summed on demand.
//
// # Jitter buffer
//
// A fixed-delay buffer of 16 slots ordered by sequence number: playout
// starts about 60 ms (three frames) after the first packet of a stream or
// talkspurt, one frame per tick. Duplicates and packets whose frame has
// already been played (late) are counted and dropped; a frame missing while
// later ones are queued is lost (the recorder gets silence). When it runs
// dry with nothing queued it waits instead of counting loss, because
// senders, Switchboard included, send nothing between prompts; a marker bit
// after such a pause starts a new talkspurt, and sequence numbers taken by
// RFC 4733 or comfort-noise packets are not loss. More than six frames
// queued (a sender whose clock runs fast, a burst) drops the oldest.
//
// # DTMF
//
// RFC 4733 events are identified by their RTP timestamp, which every
// packet of an event carries (§2.2.1): the first packet with a new
// timestamp reports the tone, whatever its duration (carriers and sipp
// send a first packet of duration 0, and an event whose start was lost is
// reported from its end packets); every other packet of the event,
// including the three end packets (§2.5.1.4) and stragglers, is absorbed,
// and a long event's next segment (§2.5.2.3) is not a new press. In-band
// tones are found by a Goertzel detector (package dtmf) on the decoded
// audio, fed in the sender's timestamp order so that an underrun does not
// split a press; it stands down once the remote has sent an RFC 4733
// event. Sending uses RFC 4733 when a payload
// type was negotiated, else dual-tone audio.
//
// # Bridges
//
// Bridge connects two sessions back to back (a redirected call: the
// caller's leg and the new target's). Each session's tick, after playing
// out a frame from its jitter buffer, hands the frame to its peer through
// a single-producer, single-consumer ring of a few frames; the peer's next
// tick sends it, transcoded PCMU↔PCMA by table lookup when the two sides
// differ. The sessions tick at different phases of the clock, so a frame
// waits less than a tick, at worst two when a tick runs late; more is
// trimmed. RFC 4733 tones one side receives are sent on by the other with
// SendTones; in-band tones are audio and simply cross.
//
// # Callbacks
//
// Event, done and sink callbacks run on the engine's goroutines, one at a
// time per session; they must not block and must not call back into the
// session synchronously: post to your own goroutine. The done callback of
// an operation a method cancels runs before that method returns.
package media
