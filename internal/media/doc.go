// Package media is Switchboard's media engine: RTP sessions on UDP, the
// G.711 codecs, a receive jitter buffer, DTMF (RFC 4733 and in-band),
// bridges and conferences, and a shared media clock that paces 20 ms
// frames for every session. Prompts are pre-encoded Audio values shared by
// all calls.
//
// # Threads of control
//
// An Engine owns one clock goroutine (Engine.Run) and a few tick workers;
// each Session owns one UDP socket on its own even port and one reader
// goroutine for it. There is no timer or goroutine per call beyond that
// reader, nor any per conference (see Conferences).
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
// EngineStats reports late ticks and the worst lateness, since start and
// over the last second or two (what admission control weighs). Workers
// send with a raw sendto(2), which keeps their P through the send: with
// hundreds of runnable readers, a worker that gave up its P on every send
// queued behind them and paced every session late (see BenchmarkDesign).
//
// While the engine has no session and no conference the clock sleeps,
// with no timer at all, so an idle node spends nothing on it. The first
// session or conference wakes it and is due its first tick at once: the
// schedule restarts from that moment at the first shard, which is where
// an empty engine puts it. The sleep counts no tick late, and tick numbers
// go on from before it (TestClockSleepsWhileIdle, TestClockWakesForSession).
// A shard with nothing on it is passed over: its worker is not woken, so
// a node with a few calls wakes a few workers, not all of them.
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
// # Conferences
//
// Conference is the media of a group call or a meeting: member sessions,
// each hearing everyone but itself, and the bots' ports. The mix is
// package mixer's (16 kHz, the loudest few talkers, N−1 for each from at
// most K+1 distinct mixes, each G.711-encoded once per codec); this
// package feeds it and sends what it makes.
//
// A port is one bot's side of the conference, call control's MediaPort:
// a Prompt and a Listener in the mix. The conference's own Play, Record,
// DetectTones and SetMuted are its first port, the group call's bot's,
// which records everything, its own prompts included, as a member who
// says nothing would hear it. A meeting is shared by several bots, each
// bot's call joined to it, and each gets a port of its own (NewPort):
// what it plays every member and every other port hears, mixed with the
// other ports' prompts; what it records is everyone but itself, the
// members and the other ports' prompts, not its own (N−1 for the port,
// as for a member: a bot does not record its own announcements). That is
// the mixer's listener without its prompt, one more distinct mix per
// port only while that port's prompt plays. Each port's Play, Record and
// SetMuted are its own, independent of the others'; closing a port ends
// its play and recording (their done callbacks run before Close returns)
// and takes its prompt out of the mix, and the conference goes on.
//
// A conference has no goroutine: it is a task on one engine shard, whose
// worker runs it after the shard's sessions every tick. Its members,
// wherever their own shard, are ticked by the conference instead of by
// their worker, in three passes on that one goroutine: each member's
// receive half (the jitter buffer plays out a frame, it is decoded, goes
// to the recorder and tone detector as before, and into the mix), then
// each port's prompt frame and the mixer's Tick, then each member's send
// half (tones first, then anything the session plays itself, then its mix
// of this tick, in its codec; SetMuted and SetDirection apply as to
// played audio), then each port's recording of its mix. So a frame played
// out in a tick is sent to the others in that same tick: the conference
// adds no tick of delay, only the resampling filters' 31 samples (3.9 ms;
// TestConferenceAddsNoTick), where a bridge adds the phase between its two
// sessions' shards, half a tick on average. A member starts sending at
// the conference's phase rather than its own shard's, one uneven gap on
// the wire; each half of a session's tick runs once per tick number, so
// joining and leaving mid-period neither doubles nor skips a packet.
// Membership changes under the conference's lock and the session's, in
// that order; the tick reads the members once per tick.
//
// The tones a member's phone presses stay its session's events, as
// before; detection is on for every member while any port's DetectTones
// is: the ports' wishes are counted, so one bot turning tones off does
// not turn them off for another. Each tone a member detects is also
// noted, lock-free, for the ports' recordings, whose StopTones they end;
// while any of those are set, members look for in-band tones too. A
// session closed while a member leaves the conference; a member cannot be
// bridged, nor a bridged session added.
//
// # Callbacks
//
// Event, done and sink callbacks run on the engine's goroutines, one at a
// time per session; they must not block and must not call back into the
// session synchronously: post to your own goroutine. The done callback of
// an operation a method cancels runs before that method returns.
package media
