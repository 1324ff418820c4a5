package callctl_test

import (
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/emiago/sipgo"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// A member of a group call whose phone stops sending media is dropped
// after media.inactivityTimeout, with a roster update; the call goes on.
func TestSilentGroupMemberIsDropped(t *testing.T) {
	const fayID, fayPassword = "f0000000-0000-4000-8000-0000000000f9", "fay-secret-9"
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		c.Media.InactivityTimeout = config.Duration(time.Second)
		c.Tenants[0].Users = append(c.Tenants[0].Users, config.User{ID: fayID, DisplayName: "Fay",
			SIP: config.SIPCredentials{Username: "fay", Password: fayPassword}})
	}})
	eve := newPhone(t, "127.0.0.3", "eve")
	eve.register(p.Node.SIP.Addr(), calltest.EvePassword)
	fay := newPhone(t, "127.0.0.4", "fay")
	fay.register(p.Node.SIP.Addr(), fayPassword)

	r := p.Bot("POST", "/v1.0/communications/calls", map[string]any{
		"@odata.type": "#microsoft.graph.call", "callbackUri": p.Hook.URL,
		"requestedModalities": []string{"audio"},
		"mediaConfig":         map[string]any{"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"},
		"targets": []any{
			map[string]any{"identity": map[string]any{"user": map[string]any{"id": calltest.EveID}}},
			map[string]any{"identity": map[string]any{"user": map[string]any{"id": fayID}}},
		}})
	if r.StatusCode != 201 {
		t.Fatalf("create: %s %s", r.Status, r.Body)
	}
	var call graph.Call
	r.JSON(t, &call)
	// Both answer; Eve talks all along, Fay never sends a packet.
	for _, ph := range []*phone{eve, fay} {
		var inv *sipgo.DialogServerSession
		select {
		case inv = <-ph.invites:
		case <-time.After(wait):
			t.Fatalf("%s's phone did not ring", ph.user)
		}
		ph.connect(inv.InviteRequest.Body(), media.PCMU)
		if err := inv.RespondSDP(ph.sdp(media.PCMU)); err != nil {
			t.Fatal(err)
		}
	}
	eve.sess.Play(media.Tone(700, 0.3, time.Minute), true, nil)

	roster := func(names ...string) func([]calltest.Notification) bool {
		return func(ns []calltest.Notification) bool {
			for _, n := range ns {
				if n.ResourceURL != "/communications/calls/"+call.ID+"/participants" {
					continue
				}
				var ps []graph.Participant
				if err := json.Unmarshal(n.ResourceData, &ps); err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, p := range ps {
					_, id := p.Info.Identity.Primary()
					got = append(got, id.DisplayName)
				}
				slices.Sort(got)
				if slices.Equal(got, names) {
					return true
				}
			}
			return false
		}
	}
	p.Hook.Wait(t, call.ID, wait, "Eve and Fay joined", roster("Eve", "Fay", "Test bot"))
	p.Hook.Wait(t, call.ID, wait, "Fay dropped", roster("Eve", "Test bot"))
	select {
	case <-fay.byes:
	case <-time.After(wait):
		t.Fatal("Fay's phone got no BYE")
	}
	var got graph.Call
	p.Bot("GET", "/v1.0/communications/calls/"+call.ID, nil).JSON(t, &got)
	if got.State != graph.StateEstablished {
		t.Fatalf("the group call is %s after a member was dropped, want established", got.State)
	}
}
