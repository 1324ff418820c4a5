package bottest

import (
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/simulated"
)

// Caller is a simulated user's end of a call: the bot's incoming call from
// Switchboard.Call, or its outgoing call from Switchboard.WaitCalled. In a
// group call each member the bot called or invited is a Caller of its own
// (WaitCalled by name): it hears the conference's mix of everyone but
// itself, the bot's prompts included, and what it says is mixed for the
// others. Every wait fails the test after the Switchboard's timeout. A
// Caller's methods are for the test's goroutine.
type Caller struct {
	t       testing.TB
	leg     *simulated.Leg
	timeout time.Duration
	beeps   int // beeps WaitBeep has returned for
	entry   int // the prompts a dial-in caller hears until let in (JoinMeeting)
}

// Leg is what a Caller knows of its call.
type Leg = simulated.LegState

// State returns the call as the simulated user sees it.
func (c *Caller) State() Leg { return c.leg.State() }

// CallID is the Graph call id of the bot's call; for a member of a group
// call, the group call's id.
func (c *Caller) CallID() string { return graphCallID(c.leg.State().CallID) }

// graphCallID is the Graph call id of a simulated leg's call: a leg that
// is not the call's only far end (a group call's member, a redirect's
// target) has the call's GUID with a suffix ("-m…", "-r…"); a GUID's own
// characters are hex digits and dashes.
func graphCallID(legCall string) string {
	if i := strings.IndexAny(legCall, "mr"); i > 0 && legCall[i-1] == '-' {
		return legCall[:i-1]
	}
	return legCall
}

// wait blocks until cond holds for the leg's state, failing the test after
// the timeout. Heard audio is checked as it arrives (every 20 ms frame is a
// change worth a look, at most every 50 ms).
func (c *Caller) wait(what string, cond func(Leg) bool) Leg {
	c.t.Helper()
	timer := time.NewTimer(c.timeout)
	defer timer.Stop()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		changed := c.leg.Changed()
		st := c.leg.State()
		if cond(st) {
			return st
		}
		select {
		case <-changed:
		case <-poll.C: // heard audio does not signal a change
		case <-timer.C:
			c.t.Fatalf("bottest: %s: waited %s for %s; the leg is %+v", st.User, c.timeout, what, st)
			return st
		}
	}
}

// WaitConnected waits until the call is up (the bot answered, or the user
// picked up).
func (c *Caller) WaitConnected() {
	c.t.Helper()
	st := c.wait("the call to connect", func(s Leg) bool { return s.State != "ringing" })
	if st.State != "connected" {
		c.t.Fatalf("bottest: %s: the call ended before it connected: %d/%d %s (SIP %d)", st.User, st.EndCode, st.EndSubcode, st.EndReason, st.SIPStatus)
	}
}

// WaitEnded waits until the call is over and returns how it ended.
func (c *Caller) WaitEnded() Leg {
	c.t.Helper()
	return c.wait("the call to end", func(s Leg) bool { return s.State == "ended" })
}

// WaitHeard waits until the user has heard wav (any WAV file: the bot's
// prompt, or in a group call what another caller said) from start to end,
// at any time during the call. It compares audio, not bytes: the audio
// went through the media engine (and a conference's mixer) and G.711 like
// a phone call's. Keep what you wait for free of other sound: two callers
// talking at once are heard mixed, and neither is then recognised.
func (c *Caller) WaitHeard(wav []byte) {
	c.t.Helper()
	want, err := DecodeWAV(wav)
	if err != nil {
		c.t.Fatalf("bottest: WaitHeard: %v", err)
	}
	c.WaitHeardPCM(want)
}

// WaitHeardPCM is WaitHeard for 8 kHz PCM.
func (c *Caller) WaitHeardPCM(want []int16) {
	c.t.Helper()
	heard := func() bool { return c.HasHeardPCM(want) }
	c.wait("the audio to be heard", func(s Leg) bool { return s.State == "ended" || heard() })
	if !heard() {
		c.t.Fatalf("bottest: %s: the call ended before the audio was heard", c.leg.State().User)
	}
}

// HasHeard says whether the user has heard wav so far, as WaitHeard
// judges it, without waiting. It is how a test checks that something was
// not heard (a muted participant, the caller's own voice in a group call):
// first wait for something heard after it, so that it would have arrived.
// Say, from another caller or the bot, puts that mark in the audio:
//
//	bob.Say(muted)     // the bot has muted Bob
//	carol.Say(longer)  // starts no sooner and lasts longer
//	alice.WaitHeard(longer)
//	if alice.HasHeard(muted) { t.Error("Alice heard Bob while he was muted") }
func (c *Caller) HasHeard(wav []byte) bool {
	c.t.Helper()
	want, err := DecodeWAV(wav)
	if err != nil {
		c.t.Fatalf("bottest: HasHeard: %v", err)
	}
	return c.HasHeardPCM(want)
}

// HasHeardPCM is HasHeard for 8 kHz PCM.
func (c *Caller) HasHeardPCM(want []int16) bool { return Similarity(c.leg.Heard(), want) >= 0.8 }

// WaitBeep waits for the next beep (recordResponse's playBeep): once it
// returns, the bot is recording. Each call waits for a beep after the last
// one it returned for.
func (c *Caller) WaitBeep() {
	c.t.Helper()
	n := c.beeps + 1
	st := c.wait("a beep", func(s Leg) bool { return s.State == "ended" || Beeps(c.leg.Heard()) >= n })
	if Beeps(c.leg.Heard()) < n {
		c.t.Fatalf("bottest: %s: the call ended before the beep: %+v", st.User, st)
	}
	c.beeps = n
}

// WaitSound waits until the user hears sound (not silence) for at least d,
// counted since the call started.
func (c *Caller) WaitSound(d time.Duration) {
	c.t.Helper()
	c.wait("sound to be heard", func(s Leg) bool { return s.SoundSeconds >= d.Seconds() })
}

// Heard returns all the user has heard, as 8 kHz PCM.
func (c *Caller) Heard() []int16 { return c.leg.Heard() }

// Press presses keys ("0"-"9", "*", "#", "A"-"D"), 300 ms apart. The bot
// sees them as tones if it subscribed to them.
func (c *Caller) Press(keys string) {
	c.t.Helper()
	if err := c.leg.PressKeys(keys, simulated.DefaultDTMFInterval); err != nil {
		c.t.Fatalf("bottest: Press(%q): %v", keys, err)
	}
}

// Say makes the user say wav (any WAV file) into the call, after anything
// still being said. It returns at once: the user speaks in real time. In a
// group call the others hear it (unless the bot muted the user); the user
// does not.
func (c *Caller) Say(wav []byte) {
	c.t.Helper()
	pcm, err := DecodeWAV(wav)
	if err != nil {
		c.t.Fatalf("bottest: Say: %v", err)
	}
	c.SayPCM(pcm)
}

// SayPCM is Say for 8 kHz PCM.
func (c *Caller) SayPCM(pcm []int16) {
	c.t.Helper()
	if err := c.leg.Say(pcm); err != nil {
		c.t.Fatalf("bottest: Say: %v", err)
	}
}

// WaitTones waits until the user has received tones (sendDtmfTones), in
// order, e.g. "42".
func (c *Caller) WaitTones(tones string) {
	c.t.Helper()
	c.wait("tones "+tones, func(s Leg) bool { return strings.Contains(s.TonesReceived, tones) })
}

// HangUp makes the user hang up. In a group call the user leaves the
// roster and the call goes on.
func (c *Caller) HangUp() { c.leg.HangUpNow() }
