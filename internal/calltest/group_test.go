package calltest_test

import (
	"encoding/json"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// A group call of real softphones on the conference mixer: each phone's
// microphone is a tone of its own; each must hear the others' tones and
// the bot's prompt, never its own; a muted phone's tone leaves the others'
// ears; a removed phone is hung up; every change reaches the bot as a
// roster notification.

// phoneUser is a SIP user of the test tenant a baresip registers as.
type phoneUser struct {
	id, name, user string
	freq           float64
}

var groupPhones = []phoneUser{
	{"e0000000-0000-4000-8000-0000000000f1", "Fay", "fay", 600},
	{"e0000000-0000-4000-8000-0000000000f2", "Gus", "gus", 1050},
	{"e0000000-0000-4000-8000-0000000000f3", "Hal", "hal", 1750},
}

const phonePassword = "group-secret-1"

// toneLevel is the share of pcm's energy at freq (Goertzel), 0..1.
func toneLevel(pcm []int16, freq float64) float64 {
	if len(pcm) == 0 {
		return 0
	}
	k := 2 * math.Cos(2*math.Pi*freq/8000)
	var s1, s2, total float64
	for _, v := range pcm {
		x := float64(v)
		s := x + k*s1 - s2
		s2, s1 = s1, s
		total += x * x
	}
	power := s1*s1 + s2*s2 - k*s1*s2
	if total == 0 {
		return 0
	}
	return 2 * power / (float64(len(pcm)) * total)
}

// last returns the last d of 8 kHz pcm, before its final margin (the call's
// end may clip a few frames).
func last(pcm []int16, d, margin time.Duration) []int16 {
	n, m := int(d.Seconds()*8000), int(margin.Seconds()*8000)
	if len(pcm) < n+m {
		return nil
	}
	return pcm[len(pcm)-n-m : len(pcm)-m]
}

func rosterNames(t *testing.T, n calltest.Notification) []string {
	t.Helper()
	var roster []graph.Participant
	if err := json.Unmarshal(n.ResourceData, &roster); err != nil {
		t.Fatalf("roster notification: %v", err)
	}
	var names []string
	for _, p := range roster {
		_, id := p.Info.Identity.Primary()
		name := id.DisplayName
		if p.IsMuted {
			name += "(muted)"
		}
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// waitRoster waits for a roster notification naming exactly want (sorted).
func waitRoster(t *testing.T, p *calltest.Platform, callID string, want ...string) {
	t.Helper()
	slices.Sort(want)
	p.Hook.Wait(t, callID, 30*time.Second, fmt.Sprintf("roster %v", want), func(ns []calltest.Notification) bool {
		for _, n := range ns {
			if n.ResourceURL == "/communications/calls/"+callID+"/participants" && slices.Equal(rosterNames(t, n), want) {
				return true
			}
		}
		return false
	})
}

func TestGroupCallOfThreePhones(t *testing.T) {
	calltest.NeedPeer(t, "baresip", "baresip")
	p := calltest.Start(t, calltest.Options{Edit: withGroupPhones})
	dir := t.TempDir()
	promptPCM := calltest.Pattern(2300, 2, 3)
	base := wavServer(t, map[string][]byte{"/prompt.wav": calltest.WAV(promptPCM, 8000)})
	phones := make([]*calltest.Baresip, len(groupPhones))
	for i, ph := range groupPhones {
		src := filepath.Join(dir, ph.user+".wav")
		if err := calltest.WriteWAV(src, tone(ph.freq, 60*time.Second), 8000); err != nil {
			t.Fatal(err)
		}
		phones[i] = calltest.StartBaresip(t, calltest.BaresipOptions{User: ph.user, Password: phonePassword,
			Registrar: p.Node.SIP.Addr().String(), Source: src})
	}

	// The bot calls all three at once.
	call := groupCall(t, p, groupPhones[0].id, groupPhones[1].id, groupPhones[2].id)
	c := calls + "/" + call.ID
	waitRoster(t, p, call.ID, "Test bot", "Fay", "Gus", "Hal")

	// Everyone talks, and hears the bot's prompt.
	op := opDone(t, p, call.ID, p.Bot("POST", c+"/playPrompt", prompts(base+"/prompt.wav")))
	if op.Status != graph.OperationCompleted {
		t.Fatalf("playPrompt: %+v %+v", op, op.ResultInfo)
	}

	// Someone talks all the time: a roster names a dominant speaker.
	p.Hook.Wait(t, call.ID, 30*time.Second, "a dominant speaker", func(ns []calltest.Notification) bool {
		for _, n := range ns {
			if n.ResourceURL != "/communications/calls/"+call.ID+"/participants" {
				continue
			}
			var ps []graph.Participant
			_ = json.Unmarshal(n.ResourceData, &ps)
			for _, x := range ps {
				if x.DominantSpeaker {
					return true
				}
			}
		}
		return false
	})

	// Mute Hal: the roster says so.
	var roster struct{ Value []graph.Participant }
	p.Bot("GET", c+"/participants", nil).JSON(t, &roster)
	pid := map[string]string{}
	for _, x := range roster.Value {
		_, id := x.Info.Identity.Primary()
		pid[id.DisplayName] = x.ID
	}
	if r := p.Bot("POST", c+"/participants/"+pid["Hal"]+"/mute", map[string]any{"clientContext": "m"}); r.StatusCode != 200 {
		t.Fatalf("mute Hal: %s %s", r.Status, r.Body)
	}
	waitRoster(t, p, call.ID, "Test bot", "Fay", "Gus", "Hal(muted)")
	// The prompt again: two more seconds the phones hear with Hal muted.
	op = opDone(t, p, call.ID, p.Bot("POST", c+"/playPrompt", prompts(base+"/prompt.wav")))
	if op.Status != graph.OperationCompleted {
		t.Fatalf("playPrompt: %+v %+v", op, op.ResultInfo)
	}

	// Remove Gus: his phone is hung up, the roster shrinks.
	if r := p.Do(calltest.Req{Method: "DELETE", Path: c + "/participants/" + pid["Gus"], Token: p.Token(calltest.BotID, calltest.TenantID)}); r.StatusCode != 204 {
		t.Fatalf("remove Gus: %s %s", r.Status, r.Body)
	}
	waitRoster(t, p, call.ID, "Test bot", "Fay", "Hal(muted)")
	phones[1].WaitOutput(t, "terminated", 10*time.Second)

	if r := p.Bot("DELETE", c, nil); r.StatusCode != 204 {
		t.Fatalf("hang up: %s", r.Status)
	}
	p.Hook.WaitState(t, call.ID, graph.StateTerminated)
	for _, ph := range []*calltest.Baresip{phones[0], phones[2]} {
		ph.WaitOutput(t, "terminated", 10*time.Second)
	}

	heard := make([][]int16, len(phones))
	for i, ph := range phones {
		heard[i] = ph.Heard(t)
	}
	for i, me := range groupPhones {
		h := heard[i]
		if len(h) < 3*8000 {
			t.Fatalf("%s heard only %d samples", me.name, len(h))
		}
		own := toneLevel(h, me.freq)
		for j, other := range groupPhones {
			if j == i {
				continue
			}
			lvl := toneLevel(h, other.freq)
			t.Logf("%s hears %s at %.3f (own tone %.4f)", me.name, other.name, lvl, own)
			if lvl < 0.02 {
				t.Errorf("%s did not hear %s's tone (%.4f of the energy)", me.name, other.name, lvl)
			}
			if own > lvl/20 {
				t.Errorf("%s heard its own tone (%.4f against %s's %.4f)", me.name, own, other.name, lvl)
			}
		}
		if toneLevel(h, 2300) < 0.002 {
			t.Errorf("%s did not hear the bot's prompt", me.name)
		}
	}
	// While Hal was muted (the second prompt, just before the end) his
	// tone left Fay's ears while Gus's stayed.
	end := last(heard[0], 1200*time.Millisecond, 600*time.Millisecond)
	if hal, gus := toneLevel(end, 1750), toneLevel(end, 1050); hal > gus/20 || gus < 0.02 {
		t.Errorf("Fay after the mute: Hal's tone %.4f, Gus's %.4f; want Gus's and not Hal's", hal, gus)
	}
}

// tone is a steady sine at freq, 8 kHz, at a third of full scale.
func tone(freq float64, d time.Duration) []int16 {
	pcm := make([]int16, int(d.Seconds()*8000))
	for i := range pcm {
		pcm[i] = int16(10000 * math.Sin(2*math.Pi*freq*float64(i)/8000))
	}
	return pcm
}

// startPhones registers a baresip per group phone user, each saying its
// tone for d (baresip hangs up when its microphone file ends).
func startPhones(t *testing.T, p *calltest.Platform, d time.Duration, users ...phoneUser) []*calltest.Baresip {
	t.Helper()
	dir := t.TempDir()
	out := make([]*calltest.Baresip, len(users))
	for i, ph := range users {
		src := filepath.Join(dir, ph.user+".wav")
		if err := calltest.WriteWAV(src, tone(ph.freq, d), 8000); err != nil {
			t.Fatal(err)
		}
		out[i] = calltest.StartBaresip(t, calltest.BaresipOptions{User: ph.user, Password: phonePassword,
			Registrar: p.Node.SIP.Addr().String(), Source: src})
	}
	return out
}

func withGroupPhones(c *config.Config) {
	for _, ph := range groupPhones {
		c.Tenants[0].Users = append(c.Tenants[0].Users, config.User{ID: ph.id, DisplayName: ph.name,
			SIP: config.SIPCredentials{Username: ph.user, Password: phonePassword}})
	}
}

// A bot transfers a phone's call to another phone, blind and then
// consultative: the two phones end up talking to each other (each hears
// the other's tone), and the bot's calls end 0/7015.
func TestTransferBetweenPhones(t *testing.T) {
	calltest.NeedPeer(t, "baresip", "baresip")
	for _, consultative := range []bool{false, true} {
		name := map[bool]string{false: "blind", true: "consultative"}[consultative]
		t.Run(name, func(t *testing.T) {
			p := calltest.Start(t, calltest.Options{Edit: withGroupPhones})
			fay, gus := groupPhones[0], groupPhones[1]
			// Fay's microphone ends after 6 s: she hangs up, and Gus with her.
			phones := startPhones(t, p, 6*time.Second, fay, gus)
			a := p.CreateCall(fay.id)
			p.Hook.WaitState(t, a.ID, graph.StateEstablished)
			target := map[string]any{"identity": map[string]any{"user": map[string]any{"id": gus.id}}}
			var b graph.Call
			if consultative {
				b = p.CreateCall(gus.id)
				p.Hook.WaitState(t, b.ID, graph.StateEstablished)
				target["replacesCallId"] = b.ID
			}
			if r := p.Bot("POST", calls+"/"+a.ID+"/transfer", map[string]any{"transferTarget": target}); r.StatusCode != 202 {
				t.Fatalf("transfer: %s %s", r.Status, r.Body)
			}
			end := p.Hook.WaitState(t, a.ID, graph.StateTerminated).Call(t)
			if end.ResultInfo.Code != 0 || end.ResultInfo.Subcode != 7015 {
				t.Errorf("the transferred call ended %d/%d, want 0/7015", end.ResultInfo.Code, end.ResultInfo.Subcode)
			}
			if s := p.Hook.States(t, a.ID); !slices.Contains(s, graph.StateTransferring) || !slices.Contains(s, graph.StateTransferAccepted) {
				t.Errorf("states %v, want transferring and transferAccepted", s)
			}
			if consultative {
				if e := p.Hook.WaitState(t, b.ID, graph.StateTerminated).Call(t); e.ResultInfo.Subcode != 7015 {
					t.Errorf("the replaced call ended %+v", e.ResultInfo)
				}
			}
			for _, ph := range phones {
				ph.WaitOutput(t, "terminated", 20*time.Second)
			}
			heardByFay, heardByGus := phones[0].Heard(t), phones[1].Heard(t)
			if lvl := toneLevel(heardByFay, gus.freq); lvl < 0.05 {
				t.Errorf("Fay did not hear Gus after the transfer (%.4f)", lvl)
			}
			if lvl := toneLevel(heardByGus, fay.freq); lvl < 0.05 {
				t.Errorf("Gus did not hear Fay after the transfer (%.4f)", lvl)
			}
		})
	}
}

// A bot transfers a phone out of a group call of two phones to a third,
// blind and then consultative (the bot called the third phone first, and
// names that call with replacesCallId): the transferred phone and the
// third one hear each other's tones, the roster drops the transferred
// phone, the group call goes on, and a consultation call ends 0/7015.
func TestTransferOutOfGroupCall(t *testing.T) {
	calltest.NeedPeer(t, "baresip", "baresip")
	for _, consultative := range []bool{false, true} {
		name := map[bool]string{false: "blind", true: "consultative"}[consultative]
		t.Run(name, func(t *testing.T) { transferOutOfGroupCall(t, consultative) })
	}
}

func transferOutOfGroupCall(t *testing.T, consultative bool) {
	p := calltest.Start(t, calltest.Options{Edit: withGroupPhones})
	fay, gus, hal := groupPhones[0], groupPhones[1], groupPhones[2]
	// Fay's microphone ends after 10 s: she hangs up, and Hal with her.
	phones := startPhones(t, p, 10*time.Second, fay)
	phones = append(phones, startPhones(t, p, 60*time.Second, gus, hal)...)
	call := groupCall(t, p, fay.id, gus.id)
	waitRoster(t, p, call.ID, "Test bot", "Fay", "Gus")
	var roster struct{ Value []graph.Participant }
	p.Bot("GET", calls+"/"+call.ID+"/participants", nil).JSON(t, &roster)
	var fayID string
	for _, x := range roster.Value {
		if _, id := x.Info.Identity.Primary(); id.DisplayName == "Fay" {
			fayID = x.ID
		}
	}
	target := map[string]any{"identity": map[string]any{"user": map[string]any{"id": hal.id}}}
	var consult graph.Call
	if consultative {
		consult = p.CreateCall(hal.id)
		p.Hook.WaitState(t, consult.ID, graph.StateEstablished)
		target["replacesCallId"] = consult.ID
	}
	r := p.Bot("POST", calls+"/"+call.ID+"/transfer", map[string]any{
		"transferTarget": target,
		"transferee":     map[string]any{"participantId": fayID},
	})
	if r.StatusCode != 202 {
		t.Fatalf("transfer Fay: %s %s", r.Status, r.Body)
	}
	waitRoster(t, p, call.ID, "Test bot", "Gus")
	if consultative {
		end := p.Hook.WaitState(t, consult.ID, graph.StateTerminated).Call(t)
		if end.ResultInfo == nil || end.ResultInfo.Code != 0 || end.ResultInfo.Subcode != 7015 {
			t.Errorf("the consultation call ended %+v, want 0/7015", end.ResultInfo)
		}
	}
	phones[0].WaitOutput(t, "terminated", 30*time.Second)
	phones[2].WaitOutput(t, "terminated", 30*time.Second)
	if lvl := toneLevel(phones[0].Heard(t), hal.freq); lvl < 0.05 {
		t.Errorf("Fay did not hear Hal after her transfer (%.4f)", lvl)
	}
	if lvl := toneLevel(phones[2].Heard(t), fay.freq); lvl < 0.05 {
		t.Errorf("Hal did not hear Fay (%.4f)", lvl)
	}
	var got graph.Call
	p.Bot("GET", calls+"/"+call.ID, nil).JSON(t, &got)
	if got.State != graph.StateEstablished {
		t.Errorf("the group call is %s after the transfer out, want established", got.State)
	}
}

// groupCall has the bot call users at once (a group call, service-hosted
// media) and returns the call as created.
func groupCall(t *testing.T, p *calltest.Platform, userIDs ...string) graph.Call {
	t.Helper()
	targets := make([]map[string]any, 0, len(userIDs))
	for _, id := range userIDs {
		targets = append(targets, map[string]any{"identity": map[string]any{"user": map[string]any{"id": id}}})
	}
	r := p.Bot("POST", calls, map[string]any{
		"@odata.type": "#microsoft.graph.call", "callbackUri": p.Hook.URL, "requestedModalities": []string{"audio"},
		"mediaConfig": map[string]any{"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"},
		"targets":     targets,
	})
	if r.StatusCode != 201 {
		t.Fatalf("create group call: %s %s", r.Status, r.Body)
	}
	var call graph.Call
	r.JSON(t, &call)
	return call
}
