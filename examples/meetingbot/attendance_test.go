package main

import (
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/sdk"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

func part(pid, kind, id, name string, lobby bool) graph.Participant {
	who := &graph.Identity{ID: id, DisplayName: name}
	set := &graph.IdentitySet{}
	switch kind {
	case "user":
		set.User = who
	case "phone":
		set.Phone = who
	case "bot":
		set.Application = who
	}
	return graph.Participant{ID: pid, Info: &graph.ParticipantInfo{Identity: set}, IsInLobby: lobby}
}

// Time in the meeting and in the lobby, from roster changes as the SDK
// reports them (full rosters repeat everyone as Updated): a caller who
// waits, is admitted, leaves and comes back is one attendee with two
// joins; another bot is listed but does not keep the meeting going.
func TestAttendance(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 21, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	const me = "me"
	self := part(me, "bot", "b07ab07a", "Demo bot", false)
	alice := part("p1", "phone", "+15550100", "Alice", true)
	bob := part("p2", "user", "b0b", "Bob", false)
	other := part("p3", "bot", "0b0700", "Recorder bot", false)
	alice2 := part("p4", "phone", "+15550100", "Alice", false)
	caller := part("p5", "phone", "+15557770177", "", true)

	a := newAttendance()
	var got []string
	step := func(s int, ch sdk.ParticipantsChange) {
		for _, c := range a.apply(ch, me, at(s)) {
			got = append(got, []string{"lobby", "joined", "left"}[c.kind]+" "+c.who.Name)
		}
	}
	step(0, sdk.ParticipantsChange{Added: []graph.Participant{self}})
	if a.alone() {
		t.Fatal("alone before anyone came")
	}
	step(1, sdk.ParticipantsChange{Added: []graph.Participant{alice}, Updated: []graph.Participant{self}})
	admitted := alice
	admitted.IsInLobby = false
	step(6, sdk.ParticipantsChange{Updated: []graph.Participant{self, admitted}})
	step(10, sdk.ParticipantsChange{Added: []graph.Participant{bob, other}, Updated: []graph.Participant{self, admitted}})
	step(11, sdk.ParticipantsChange{Updated: []graph.Participant{self, admitted, bob, other}}) // nothing new
	// Who is heard most: Bob from 20 s, Alice from 40 s, the bot itself
	// (its prompts: nobody) from 50 s, Bob again from 60 s until he leaves.
	dominant := func(p graph.Participant) graph.Participant { p.DominantSpeaker = true; return p }
	step(20, sdk.ParticipantsChange{Updated: []graph.Participant{self, admitted, dominant(bob), other}})
	step(40, sdk.ParticipantsChange{Updated: []graph.Participant{self, dominant(admitted), bob, other}})
	step(50, sdk.ParticipantsChange{Updated: []graph.Participant{dominant(self), admitted, bob, other}})
	step(60, sdk.ParticipantsChange{Updated: []graph.Participant{self, admitted, dominant(bob), other}})
	step(66, sdk.ParticipantsChange{Removed: []graph.Participant{admitted}, Updated: []graph.Participant{self, dominant(bob), other}})
	step(70, sdk.ParticipantsChange{Added: []graph.Participant{alice2, caller}})
	step(80, sdk.ParticipantsChange{Removed: []graph.Participant{alice2}})
	if a.alone() {
		t.Fatal("alone while Bob is in the meeting")
	}
	step(100, sdk.ParticipantsChange{Removed: []graph.Participant{bob}})
	if !a.alone() {
		t.Fatal("not alone once Bob left: the other bot and a caller in the lobby keep nobody company")
	}
	want := "lobby Alice,joined Alice,joined Bob,joined Recorder bot,left Alice,joined Alice,lobby +15557770177,left Alice,left Bob"
	if s := strings.Join(got, ","); s != want {
		t.Errorf("changes:\n %s\nwant\n %s", s, want)
	}

	rep := a.report(at(130))
	type row struct {
		name, kind            string
		meeting, lobby, heard int
		joins                 int
	}
	wantRows := []row{
		{"Alice", "phone", 60 + 10, 5, 10, 2},
		{"Bob", "user", 90, 0, 20 + 40, 1},
		{"Recorder bot", "bot", 120, 0, 0, 1},  // still there: counted up to now
		{"+15557770177", "phone", 0, 60, 0, 0}, // never admitted
	}
	if len(rep.Attendees) != len(wantRows) {
		t.Fatalf("attendees %+v", rep.Attendees)
	}
	for i, w := range wantRows {
		g := rep.Attendees[i]
		if g.Name != w.name || g.Kind != w.kind || g.InMeeting != time.Duration(w.meeting)*time.Second ||
			g.InLobby != time.Duration(w.lobby)*time.Second || g.HeardMost != time.Duration(w.heard)*time.Second || g.Joins != w.joins {
			t.Errorf("attendee %d: %+v, want %+v", i, g, w)
		}
	}
	var table strings.Builder
	if err := rep.Write(&table); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(table.String(), "Alice         phone  1m10s       5s     10s         2") ||
		!strings.HasSuffix(table.String(), "Heard most: Bob (the dominant speaker for 1m0s)\n") {
		t.Errorf("the table:\n%s", table.String())
	}
	if s := spoken(&rep.Attendees[3]); s != "caller ending in 0 1 7 7" {
		t.Errorf("a number without a name is greeted as %q", s)
	}
}
