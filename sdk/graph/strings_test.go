package graph

import "testing"

func TestStrings(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{(&IdentitySet{Phone: &Identity{ID: "+15550100", DisplayName: "Alice"}}).String(), "Alice (+15550100)"},
		{(&IdentitySet{User: &Identity{ID: "a11ce"}, Phone: &Identity{ID: "+1"}}).String(), "a11ce"},
		{(*IdentitySet)(nil).String(), ""},
		{(&ParticipantInfo{Identity: &IdentitySet{Application: &Identity{ID: "b07", DisplayName: "Bot"}}}).String(), "Bot (b07)"},
		{(*ParticipantInfo)(nil).String(), ""},
		{(&ResultInfo{Code: 486, Subcode: 9005, Message: "The callee is busy."}).String(), "486/9005 The callee is busy."},
		{(&ResultInfo{Code: 200}).String(), "200/0"},
		{(*ResultInfo)(nil).String(), ""},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
