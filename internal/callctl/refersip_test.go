package callctl_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/media"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// An attended transfer from a phone, over SIP end to end: a caller the
// bot answered consulted Eve outside Switchboard and sends a REFER whose
// Refer-To carries that consultation's Replaces. Switchboard dials Eve's
// registered phone with the Replaces header (RFC 3891); she answers and
// takes the caller's place: the bot's roster names her, the caller gets
// 202 and its BYE, and the keys the bot sends reach Eve (RFC 4733).
func TestAttendedReferOverSIP(t *testing.T) {
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		c.SIP.Trunks = []config.Trunk{{Name: "pstn", Address: "127.0.0.2:5999", AllowFrom: []string{"127.0.0.2"}}}
	}})
	caller := newPhone(t, "127.0.0.2", "+15557770004")
	eve := newPhone(t, "127.0.0.3", "eve")
	eve.register(p.Node.SIP.Addr(), calltest.EvePassword)
	ctx, cancel := context.WithTimeout(context.Background(), 3*wait)
	defer cancel()
	dlg, answered, call := caller.callBot(ctx, p)
	base := "/v1.0/communications/calls/" + call.ID
	if r := p.Bot("POST", base+"/answer", map[string]any{"acceptedModalities": []string{"audio"},
		"callbackUri": p.Hook.URL, "mediaConfig": map[string]any{"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"}}); r.StatusCode != 202 {
		t.Fatalf("answer: %s %s", r.Status, r.Body)
	}
	caller.established(ctx, dlg, answered)
	p.Hook.WaitState(t, call.ID, graph.StateEstablished)

	const replaces = "consult-1@127.0.0.2;to-tag=eve1;from-tag=caller1"
	refer := sip.NewRequest(sip.REFER, *dlg.InviteResponse.Contact().Address.Clone())
	refer.Laddr = sip.Addr{IP: net.IP(caller.addr.Addr().AsSlice()), Port: int(caller.addr.Port())}
	refer.AppendHeader(sip.NewHeader("Refer-To", "<sip:eve@127.0.0.3?Replaces="+
		strings.NewReplacer("@", "%40", ";", "%3B", "=", "%3D").Replace(replaces)+">"))
	res, err := dlg.Do(ctx, refer)
	if err != nil || res.StatusCode != 202 {
		t.Fatalf("REFER: %v %v, want 202", res, err)
	}

	var inv *sipgo.DialogServerSession
	select {
	case inv = <-eve.invites:
	case <-time.After(wait):
		t.Fatal("eve's phone did not ring")
	}
	if h := inv.InviteRequest.GetHeader("Replaces"); h == nil || h.Value() != replaces {
		t.Fatalf("Eve's INVITE has Replaces %v, want %s", h, replaces)
	}
	eve.connect(inv.InviteRequest.Body(), media.PCMU)
	if err := inv.RespondSDP(eve.sdp(media.PCMU)); err != nil {
		t.Fatal(err)
	}
	p.Hook.Wait(t, call.ID, wait, "a roster naming Eve", func(ns []calltest.Notification) bool {
		for _, n := range ns {
			if strings.HasSuffix(n.ResourceURL, "/participants") && strings.Contains(string(n.ResourceData), calltest.EveID) {
				return true
			}
		}
		return false
	})
	select {
	case <-caller.byes:
	case <-time.After(wait):
		t.Fatal("the transferor got no BYE")
	}
	// The bot's call goes on with Eve: she hears its prompt.
	if s := p.Hook.States(t, call.ID); len(s) == 0 || s[len(s)-1] != graph.StateEstablished {
		t.Fatalf("the bot's call went %v", s)
	}
	eve.sess.DetectTones(true)
	r := p.Bot("POST", base+"/sendDtmfTones", map[string]any{"tones": []string{"tone4", "tone2"}, "delayBetweenTonesMs": 150})
	if r.StatusCode != 202 && r.StatusCode != 200 {
		t.Fatalf("sendDtmfTones: %s %s", r.Status, r.Body)
	}
	var keys []byte
	for timeout := time.After(wait); len(keys) < 2; {
		select {
		case e := <-eve.events:
			if e.Kind == media.EventTone {
				keys = append(keys, e.Tone)
			}
		case <-timeout:
			t.Fatalf("eve heard keys %q from the bot, want 42", keys)
		}
	}
	if string(keys) != "42" {
		t.Fatalf("eve heard keys %q from the bot, want 42", keys)
	}
}
