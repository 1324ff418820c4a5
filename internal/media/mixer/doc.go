// Package mixer is the conference mixer: one mix per conference on the
// media clock, made at 16 kHz, in which every participant hears everyone
// but itself. Group calls use it now; meetings and app-hosted media will.
//
// # The mix
//
// Every 20 ms the conference's Tick takes one frame from each
// participant. Inputs are linear PCM at 8 kHz (G.711 legs, decoded by
// their session) or 16 kHz (wideband, app-hosted media); 8 kHz inputs are
// upsampled and 16 kHz outputs downsampled with a 63-tap halfband FIR
// (Upsampler, Downsampler: flat to 3.4 kHz, 70 dB down above 4.6 kHz,
// 16 multiplications a sample, no allocation).
//
// Only the Speakers loudest talkers are mixed (K, 4 by default), plus the
// prompts, which everyone hears. Each hearer gets the sum of the selected
// speakers minus its own contribution if it is one of them: so a tick
// makes at most K+1 distinct mixes (the common one, heard by every
// participant not selected, and one per selected speaker), whatever the
// size of the conference, and downsamples and G.711-encodes each at most
// once per form: a hundred PCMU listeners cost one encoding and a hundred
// 160-byte copies. Frame.Mix names the mix a frame carries, for an
// integration that encodes in a codec of its own.
//
// A Listener may be without one Prompt (ParticipantOptions.Without): a
// bot's side of a conference several bots share, whose recording is of
// everyone, the other bots' prompts included, but not its own prompt
// (N−1 for the bot). It hears the common mix until its prompt is mixed,
// then the sum less that prompt, one more distinct mix per such listener
// and tick; like a speaker's, its mix starts from the common mix's
// limiter and filter state, so switching is seamless.
//
// The sum is taken in int32 and limited to 16 bits by a gain limiter with
// one frame of look-ahead (limiter.go): nothing that fits in 16 bits is
// touched, so a single talker passes bit for bit; a sum that would
// overflow is scaled smoothly, never wrapped or hard-clipped.
//
// # Speakers, dominance, levels
//
// Each producer computes its frame's energy as it writes it. The tick
// smooths it per participant (fast rise, ~150 ms fall) and keeps a voice
// activity flag (Options.VADThreshold, with a hangover). Free places among
// the speakers go to the loudest talkers with any signal, so a conference
// of K or fewer mixes everyone; a taken place changes hands only to a
// talker SpeakerMargin louder than its quietest holder, once that holder
// has had it for SpeakerHold. The dominant speaker changes only to a
// speaking talker DominantMargin louder than the current one for
// DominantHold; silence never becomes dominant. Changes are reported by
// Conference.Dominant (the speaker and a generation number to poll) and
// by Options.OnDominant, called on the tick only when it changes; levels
// by Participant.Level (RFC 6464) and Speaking. None of this allocates.
//
// A participant's two flags are independent: it contributes (muted or in
// the lobby, it does not) and it hears (in the lobby it does not, or it
// plays a feed of its own). Roles set how it starts: Talker (both),
// Listener (hears only: a recorder, a bot's media socket), Prompt
// (contributes only, to everyone, outside speaker selection).
//
// # Missing and late frames
//
// A tick never waits. A participant whose frame has not arrived
// contributes silence for that tick; the mixer does not conceal. The
// frame is rarely lost, only late (its producer's tick ran at a later
// phase, or late): it is then taken at the next tick, and the ring keeps
// the delay under two frames. The sessions' jitter buffers are where loss
// is handled. A participant's level decays through the gap as through
// any silence, so one missing frame does not cost a speaker its place.
//
// # Threads of control and the intended wiring
//
// The mixer has no goroutine. Three kinds of caller meet in it:
//
//   - Each participant's producer calls Participant.Write once per tick:
//     for a G.711 leg, its media.Session's tick, right after the jitter
//     buffer plays out a frame and it is decoded (where the session now
//     hands a bridged frame to its peer), on the engine worker of the
//     session's shard. For a prompt, whoever plays it: best the
//     conference's own ticker, just before Tick, so it is never late.
//   - The conference's ticker calls Conference.Tick every 20 ms: a task on
//     one of the engine's shards, ticked by that shard's worker at the
//     shard's phase, after the sessions of that shard.
//   - Each hearer's consumer calls Participant.Read once per tick, in the
//     same session tick, where it picks what to send: the frame's G.711
//     payload goes into the RTP packet after the header. No frame means
//     nothing to send.
//
// Between them, each participant has two single-producer, single-consumer
// rings of four frames (input and output), like the media engine's bridge
// links: two atomic operations a frame and no lock, allocation or
// logging per frame. Sessions and conference tick at different phases of
// the same clock, so a frame crosses each ring in less than a tick: the
// conference adds under two ticks of delay (under 40 ms; three at worst
// when ticks run late) and ~4 ms of filter delay.
//
// Membership and settings change from the control plane (call control's
// actor), on any goroutine: Add and Remove publish a new participant table
// copy-on-write under a lock the tick never takes; SetContributes,
// SetHears and SetOutput are atomic flags read once per tick. The per-tick
// state belongs to the goroutine calling Tick, one at a time.
//
// Call control sees a group call's media through its Conference seam
// (callctl/group.go), which a media.Conference is to implement around one
// Conference here: Add(pid, session) is Add with the session's codec as
// Output, the session then writing and reading as above; Remove is
// Remove; MuteMember is SetContributes; the bot's service-hosted media is
// a Prompt participant that Play feeds from the ticker before each Tick
// (SetMuted stops its contribution), and a Listener whose frames the
// ticker hands to Record's sink after each Tick. Each further bot's port
// on a shared conference (a meeting) is another such pair, its Listener
// without its Prompt.
package mixer
