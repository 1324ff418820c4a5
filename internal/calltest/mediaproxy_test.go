package calltest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/media/prompt"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// Behind an HTTP balancer a bot's media socket lands on any node: node a,
// which does not carry the call, checks the request as the owner would
// and hands the upgrade to the owner. Through a the bot hears the far end,
// is heard, and gets the call's bye; a request another node already
// proxied is not proxied again; an owner that cannot be reached gets a
// Graph-shaped 503.
func TestMediaSocketThroughAnotherNode(t *testing.T) {
	natsAddr := freeAddr(t)
	// a serves the bot's socket requests (and the NATS both use); owner
	// carries the calls.
	a := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		c.NATS.Listen = natsAddr
		c.Simulator.Audio = true
	}})
	owner := calltest.Start(t, calltest.Options{Hook: a.Hook, WeakHook: a.WeakHook, Edit: func(c *config.Config) {
		c.NATS.URL = "nats://" + natsAddr
		c.Simulator.Audio = true // Alice's handset sends and hears RTP
		c.HTTP.PublicURL = a.URL // one issuer: tokens are valid on both, as behind a balancer
	}})
	c := createCall(t, owner, appCall(a.Hook.URL, calltest.AliceID))

	// a refuses what the owner would refuse, before any upgrade, with the
	// same Graph error: another application's token finds no such call.
	if _, err := dialMedia(t, a, c.ID, a.Token(calltest.Bot2ID, calltest.TenantID)); handshakeStatus(err) != http.StatusNotFound {
		t.Errorf("another application through node a: %v, want 404", err)
	}
	// A request another node already proxied is not proxied again.
	st, body := rawUpgrade(t, a, c.ID, map[string]string{"Switchboard-Proxied-By": "elsewhere"})
	if st != http.StatusServiceUnavailable || body.Error.Code != "serviceNotAvailable" {
		t.Errorf("a proxied request at a node not carrying the call: %d %+v, want 503 serviceNotAvailable", st, body.Error)
	}

	s := openMedia(t, a, c.ID)
	s.mu.Lock()
	s.echo = true // every frame of the mix goes back: Alice hears herself
	s.mu.Unlock()
	s.wait("hello", 5*time.Second, func(s *sock) bool { return s.textLocked("hello") != nil })
	if h := s.text("hello"); h["callId"] != c.ID {
		t.Errorf("hello through node a: %v", h)
	}
	a.Hook.WaitState(t, c.ID, graph.StateEstablished)

	// Alice speaks 1 s of 700 Hz on the owner.
	var legs struct{ Value []struct{ ID string } }
	owner.Do(calltest.Req{Method: "GET", Path: "/simulator/v1/calls?callId=" + c.ID}).JSON(t, &legs)
	if len(legs.Value) != 1 {
		t.Fatalf("simulated legs of the call: %+v", legs)
	}
	leg := legs.Value[0].ID
	tone := make([]int16, 8000)
	for i, f := range tone16(700, 50, 8000) {
		for j := 0; j < 160; j++ { // 16 kHz to 8 kHz: every other sample
			tone[i*160+j] = int16(uint16(f[16+4*j]) | uint16(f[17+4*j])<<8)
		}
	}
	if r := owner.Do(calltest.Req{Method: "POST", Path: "/simulator/v1/calls/" + leg + "/say", Body: prompt.EncodeWAV(tone, 8000)}); r.StatusCode != http.StatusAccepted {
		t.Fatalf("say: %s %s", r.Status, r.Body)
	}
	s.wait("Alice's tone in the mix", 15*time.Second, func(s *sock) bool { return level16(tail(s.frames[0], 320*25), 700) > 0.3 })

	// The bot's echo reaches Alice: she hears her own tone back.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := owner.Do(calltest.Req{Method: "GET", Path: "/simulator/v1/calls/" + leg + "/audio"})
		pcm, err := prompt.DecodeWAV(bytes.NewReader(r.Body))
		if err != nil {
			t.Fatalf("Alice's audio: %v (%s)", err, r.Status)
		}
		if l := toneLevel(pcm, 700); l > 0.05 {
			t.Logf("Alice heard the bot's echo at %.3f", l)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Alice did not hear the bot's echo of her 700 Hz (%.3f)", toneLevel(pcm, 700))
		}
		time.Sleep(100 * time.Millisecond) // polling the owner's handset
	}

	// The call's end comes through too: bye, then 1000.
	if r := a.Bot("DELETE", calls+"/"+c.ID, nil); r.StatusCode != http.StatusNoContent {
		t.Fatalf("hang up: %s %s", r.Status, r.Body)
	}
	s.waitClosed(1000)
	if bye := s.text("bye"); bye == nil {
		t.Error("no bye through node a")
	}

	// The owner gone (its claim, not released, still names its listener):
	// a answers 503.
	c2 := createCall(t, owner, appCall(a.Hook.URL, calltest.AliceID))
	owner.Node.Crash()
	st, body = rawUpgrade(t, a, c2.ID, nil)
	if st != http.StatusServiceUnavailable || body.Error.Code != "serviceNotAvailable" {
		t.Errorf("the call's node gone: %d %+v, want 503 serviceNotAvailable", st, body.Error)
	}
	t.Logf("the call's node gone: %s", body.Error.Message)
}

// tail is the last n samples of pcm, or all of it.
func tail(pcm []int16, n int) []int16 {
	return pcm[max(0, len(pcm)-n):]
}

// handshakeStatus is the HTTP status of a refused WebSocket handshake.
func handshakeStatus(err error) int {
	if e, ok := err.(ws.StatusError); ok {
		return int(e)
	}
	return 0
}

// rawUpgrade sends a WebSocket upgrade for the call's media socket with
// the bot's token and extra headers, and returns the status and the Graph
// error body of a refusal.
func rawUpgrade(t *testing.T, p *calltest.Platform, callID string, hdr map[string]string) (int, graphErrorBody) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", p.URL+calls+"/"+callID+"/media", nil)
	req.Header.Set("Authorization", "Bearer "+p.Token(calltest.BotID, calltest.TenantID))
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	req.Header.Set("Sec-WebSocket-Protocol", "switchboard.media.v1")
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e graphErrorBody
	_ = json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e
}

type graphErrorBody struct {
	Error struct{ Code, Message string } `json:"error"`
}
