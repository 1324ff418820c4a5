package bottest

import (
	"context"
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/simulated"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// TollNumber is the tenant's meeting dial-in number
// (tenants[].conferencing.tollNumber): the audioConferencing.tollNumber of
// the meetings a bot creates, which DialIn and JoinMeeting call.
const TollNumber = config.DevTollNumber

// DialIn makes a simulated user (by display name, id or phone) call the
// meeting dial-in number, TollNumber, as a phone does, and returns the
// caller once the platform has answered and its prompt asks for the
// conference id. Press the id and "#" next (then the passcode and "#" if
// the meeting has one), or use JoinMeeting, which does it all. The
// caller's CallID is the platform's id of the dial-in, not a bot's call.
func (sb *Switchboard) DialIn(t testing.TB, from string) *Caller {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), sb.timeout)
	defer cancel()
	id, err := sb.userKey(from)
	if err != nil {
		t.Fatalf("bottest: DialIn: %v", err)
	}
	l, err := sb.node.Sim.DialIn(ctx, simulated.CallOptions{From: id, To: TollNumber})
	if err != nil {
		t.Fatalf("bottest: %s cannot dial in: %v", from, err)
	}
	c := &Caller{t: t, leg: l, timeout: sb.timeout}
	c.WaitConnected()
	// The prompt starts once the platform listens for keys: pressed
	// sooner, they could be missed.
	c.wait("the dial-in prompt", func(s Leg) bool { return s.State == "ended" || s.PromptsHeard > 0 })
	return c
}

// JoinMeeting makes a simulated user dial in to meeting m (as a bot
// created or read it: its audioConferencing.conferenceId and, when it has
// one, the joinMeetingIdSettings passcode, keyed as on a phone's keypad)
// and returns the caller once the platform has let them in: the bots in
// the meeting see them in the roster. Unless the meeting's
// lobbyBypassSettings.isDialInBypassEnabled lets dial-in callers straight
// in, they wait in the lobby (the roster shows them IsInLobby), hearing
// hold music, until a bot admits them (Call.Admit). Once in, the caller
// hears the meeting (the bots' prompts and the others) and is heard by
// everyone in it; WaitInMeeting waits for that.
//
//	m, _ := client.CreateMeeting(ctx, bottest.AliceID, nil) // your bot's meeting
//	bob := sb.JoinMeeting(t, "Bob", m)
//	// your bot sees Bob in the lobby and admits him
//	bob.WaitHeard(welcomeWAV)
func (sb *Switchboard) JoinMeeting(t testing.TB, from string, m *graph.OnlineMeeting) *Caller {
	t.Helper()
	if m == nil || m.AudioConferencing == nil || m.AudioConferencing.ConferenceID == "" {
		t.Fatalf("bottest: JoinMeeting: the meeting has no audioConferencing.conferenceId: %+v", m)
	}
	keys := m.AudioConferencing.ConferenceID + "#"
	entry := 2 // the prompts: the welcome, then "you have joined" or the lobby's
	if s := m.JoinMeetingIDSettings; s != nil && s.Passcode != nil && *s.Passcode != "" {
		keys += keypad(*s.Passcode) + "#"
		entry++ // and the question for the passcode
	}
	c := sb.DialIn(t, from)
	c.Press(keys)
	// The platform's last word starts as it puts the caller in the
	// roster. A wrong id or passcode is asked again: one prompt more, and
	// the caller waits for nothing (the test's keys are right).
	c.wait("the meeting to let the caller in", func(s Leg) bool { return s.State == "ended" || s.PromptsHeard >= entry })
	if st := c.State(); st.State == "ended" {
		c.t.Fatalf("bottest: %s: the dial-in call ended before the meeting let them in: %d/%d %s", st.User, st.EndCode, st.EndSubcode, st.EndReason)
	}
	c.entry = entry
	return c
}

// WaitInMeeting waits until a caller who joined a meeting (JoinMeeting)
// hears it: the platform's own prompts on their line are over ("you have
// joined", or the lobby's hold music, which stops when a bot admits
// them). Until then those prompts take the place of the meeting's audio,
// so a test that wants the caller to hear the start of something waits
// for this first. For a caller in the lobby, call it once the bot has
// admitted them.
func (c *Caller) WaitInMeeting() {
	c.t.Helper()
	st := c.wait("the caller to hear the meeting", func(s Leg) bool {
		return s.State == "ended" || (s.PromptsHeard >= c.entry && !s.PromptPlaying)
	})
	if st.State == "ended" {
		c.t.Fatalf("bottest: %s: the call ended before the caller was in the meeting: %+v", st.User, st)
	}
}

// keypad spells a passcode as a phone keys it in: digits as they are,
// each letter as the key that carries it (ABC on 2 … WXYZ on 9).
func keypad(s string) string {
	const keys = "22233344455566677778889999"
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		switch {
		case r >= '0' && r <= '9':
			b.WriteRune(r)
		case r >= 'A' && r <= 'Z':
			b.WriteByte(keys[r-'A'])
		}
	}
	return b.String()
}
