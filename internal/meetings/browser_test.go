package meetings

import (
	"reflect"
	"strings"
	"testing"

	"github.com/switchboard-voice/switchboard/sdk/graph"
)

func rosterEntry(id string, ident *graph.IdentitySet, lobby, dominant bool) graph.Participant {
	return graph.Participant{ID: id, Info: &graph.ParticipantInfo{Identity: ident}, IsInLobby: lobby, DominantSpeaker: dominant}
}

// What a guest's roster stream shows: where they are, and once in the
// meeting, names only; nobody in the lobby, and nothing at all to a
// guest still in it.
func TestGuestView(t *testing.T) {
	bot := rosterEntry("p1", &graph.IdentitySet{Application: &graph.Identity{ID: "app", DisplayName: "Test bot"}}, false, false)
	phone := rosterEntry("p2", &graph.IdentitySet{Phone: &graph.Identity{ID: "+15550100"}}, false, true)
	waiting := rosterEntry("p3", &graph.IdentitySet{Guest: &graph.Identity{ID: "g2", DisplayName: "Other guest"}}, true, false)
	me := func(lobby bool) graph.Participant {
		return rosterEntry("p4", &graph.IdentitySet{Guest: &graph.Identity{ID: "g1", DisplayName: "Zoe"}}, lobby, false)
	}

	if v := viewOf(nil, "g1"); v.State != "joining" || len(v.People) != 0 {
		t.Errorf("before the room: %+v", v)
	}
	if v := viewOf([]graph.Participant{bot, phone, waiting, me(true)}, "g1"); v.State != "lobby" || len(v.People) != 0 {
		t.Errorf("in the lobby: %+v, want nothing of the meeting", v)
	}
	v := viewOf([]graph.Participant{bot, phone, waiting, me(false)}, "g1")
	want := []guestEntry{{Name: "Test bot", Kind: "bot"}, {Name: "Phone caller", Kind: "phone", Speaking: true}, {Name: "Zoe", Kind: "guest", You: true}}
	if v.State != "in" || !reflect.DeepEqual(v.People, want) {
		t.Errorf("in the meeting: %+v, want %+v", v, want)
	}
	if v := viewOf([]graph.Participant{bot, me(false)}, "g9"); v.State != "joining" || len(v.People) != 0 {
		t.Errorf("another guest's view: %+v", v)
	}
}

func TestGuestName(t *testing.T) {
	for in, want := range map[string]string{"  Zoe Guest ": "Zoe Guest", "Zoë": "Zoë", strings.Repeat("z", 64): strings.Repeat("z", 64)} {
		if got, err := guestName(in); err != nil || got != want {
			t.Errorf("guestName(%q) = %q, %v", in, got, err)
		}
	}
	for _, in := range []string{"", "  ", strings.Repeat("z", 65), `Zoe "Z"`, `a\b`, "a\x00b", "a\nb", "\xff"} {
		if got, err := guestName(in); err == nil {
			t.Errorf("guestName(%q) = %q, want an error", in, got)
		}
	}
}
