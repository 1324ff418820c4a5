package calltest_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/calltest"
	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// dialInScenario is a SIPp PSTN caller through the trunk: it calls the
// dial-in number, keys the conference id and # (RFC 4733 pcaps), waits in
// the lobby, then speaks (g711a.pcap) twice and hangs up.
func dialInScenario(conferenceID string) string {
	var keys strings.Builder
	for i := range len(conferenceID) + 1 {
		fmt.Fprintf(&keys, "  <nop><action><exec play_pcap_audio=\"key%d.pcap\"/></action></nop>\n  <pause milliseconds=\"400\"/>\n", i)
	}
	head := func(method, cseq string, sdp bool) string {
		s := method + ` sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: "PSTN caller" <sip:+15557770020@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>` + map[bool]string{true: "", false: "[peer_tag_param]"}[method == "INVITE"] + `
      Call-ID: [call_id]
      CSeq: ` + cseq + `
      Contact: sip:+15557770020@[local_ip]:[local_port]
      Max-Forwards: 70
`
		if !sdp {
			return s + "      Content-Length: 0\n"
		}
		return s + `      Content-Type: application/sdp
      Content-Length: [len]

      v=0
      o=user1 53655765 2353687637 IN IP[local_ip_type] [local_ip]
      s=-
      c=IN IP[local_ip_type] [local_ip]
      t=0 0
      m=audio [auto_media_port] RTP/AVP 8 101
      a=rtpmap:8 PCMA/8000
      a=rtpmap:101 telephone-event/8000
      a=fmtp:101 0-15
`
	}
	return `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="meeting_dial_in">
  <send retrans="500"><![CDATA[
      ` + head("INVITE", "1 INVITE", true) + `    ]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send><![CDATA[
      ` + head("ACK", "1 ACK", false) + `    ]]></send>
  <pause milliseconds="1500"/>
` + keys.String() + `  <pause milliseconds="5000"/>
  <nop><action><exec play_pcap_audio="pcap/g711a.pcap"/></action></nop>
  <pause milliseconds="7300"/>
  <nop><action><exec play_pcap_audio="pcap/g711a.pcap"/></action></nop>
  <pause milliseconds="7300"/>
  <send retrans="500"><![CDATA[
      ` + head("BYE", "2 BYE", false) + `    ]]></send>
  <recv response="200" crlf="true"/>
</scenario>
`
}

// A Meet Now meeting with real peers: the bot joins by its link and
// invites two baresip phones; a SIPp PSTN caller dials in with the
// conference id, waits in the lobby and is admitted; each phone hears the
// other's tone and the caller's speech, never its own tone.
func TestMeetingWithBaresipAndSippDialIn(t *testing.T) {
	calltest.NeedPeer(t, "baresip", "baresip")
	sipp := calltest.NeedPeer(t, "sipp", "sip-tester")
	const pcaps = "/usr/share/sip-tester"
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		withMeetings(c)
		withGroupPhones(c)
		c.SIP.Trunks = []config.Trunk{{Name: "pstn", Address: "127.0.0.2:5999", AllowFrom: []string{"127.0.0.2"}}}
	}})
	fay, gus := groupPhones[0], groupPhones[1]
	phones := startPhones(t, p, 30*time.Second, fay, gus)

	m := meeting(t, p.Bot("POST", userMeetings(calltest.AliceID), map[string]any{"subject": "Peers"}), 201)
	u, _ := url.Parse(m.JoinWebURL)
	path, _ := url.PathUnescape(u.EscapedPath())
	segs := strings.Split(strings.TrimPrefix(path, "/l/meetup-join/"), "/")
	r := p.Bot("POST", calls, map[string]any{
		"@odata.type": "#microsoft.graph.call", "callbackUri": p.Hook.URL, "requestedModalities": []string{"audio"},
		"mediaConfig": map[string]any{"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"},
		"chatInfo":    map[string]any{"threadId": segs[0], "messageId": segs[1]},
		"meetingInfo": map[string]any{"@odata.type": "#microsoft.graph.organizerMeetingInfo",
			"organizer": map[string]any{"user": map[string]any{"id": calltest.AliceID}}},
	})
	if r.StatusCode != 201 {
		t.Fatalf("join by link: %s %s", r.Status, r.Body)
	}
	var call graph.Call
	r.JSON(t, &call)
	c := calls + "/" + call.ID
	if r := p.Bot("POST", c+"/participants/invite", map[string]any{"participants": []any{
		map[string]any{"identity": map[string]any{"user": map[string]any{"id": fay.id}}},
		map[string]any{"identity": map[string]any{"user": map[string]any{"id": gus.id}}},
	}}); r.StatusCode != 200 {
		t.Fatalf("invite: %s %s", r.Status, r.Body)
	}
	waitRoster(t, p, call.ID, "Test bot", "Fay", "Gus")

	// SIPp dials in.
	dir := t.TempDir()
	if err := os.Symlink(pcaps, filepath.Join(dir, "pcap")); err != nil {
		t.Fatal(err)
	}
	// One RFC 4733 pcap per key, with timestamps and sequence numbers that
	// go on from key to key as a phone's do (the pcaps SIPp ships each start
	// at their own, so a receiver takes a key replayed out of order, or
	// twice, for a straggler of an earlier one).
	for i, k := range m.AudioConferencing.ConferenceID + "#" {
		writeKeyPcap(t, filepath.Join(dir, fmt.Sprintf("key%d.pcap", i)), k, uint32(8000+i*4000), uint16(1000+i*20))
	}
	scen := filepath.Join(dir, "dial_in.xml")
	if err := os.WriteFile(scen, []byte(dialInScenario(m.AudioConferencing.ConferenceID)), 0o644); err != nil {
		t.Fatal(err)
	}
	port := calltest.FreeUDPPort(t, "127.0.0.2")
	mport := calltest.FreeUDPPort(t, "127.0.0.2")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sipp, "-sf", scen, p.Node.SIP.Addr().String(), "-s", meetingsToll,
		"-i", "127.0.0.2", "-p", strconv.Itoa(port), "-mp", strconv.Itoa(mport), "-m", "1", "-l", "1",
		"-nostdin", "-timeout", "50s", "-timeout_error", "-trace_err", "-error_file", filepath.Join(dir, "err.log"))
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sippDone := make(chan error, 1)
	go func() { sippDone <- cmd.Wait() }()

	// The caller waits in the lobby until the bot admits them.
	var lobby string
	p.Hook.Wait(t, call.ID, 30*time.Second, "the caller in the lobby", func(ns []calltest.Notification) bool {
		for _, n := range ns {
			if n.ResourceURL != "/communications/calls/"+call.ID+"/participants" {
				continue
			}
			var ps []graph.Participant
			_ = json.Unmarshal(n.ResourceData, &ps)
			for _, x := range ps {
				if x.IsInLobby {
					lobby = x.ID
				}
			}
		}
		return lobby != ""
	})
	if r := p.Bot("POST", c+"/participants/"+lobby+"/admit", nil); r.StatusCode != 204 {
		t.Fatalf("admit: %s %s", r.Status, r.Body)
	}
	waitRoster(t, p, call.ID, "Test bot", "Fay", "Gus", "PSTN caller")
	select {
	case err := <-sippDone:
		if err != nil {
			errLog, _ := os.ReadFile(filepath.Join(dir, "err.log"))
			t.Fatalf("sipp: %v\n%s\n%s", err, out.String(), errLog)
		}
	case <-ctx.Done():
		t.Fatalf("sipp did not finish:\n%s", out.String())
	}
	waitRoster(t, p, call.ID, "Test bot", "Fay", "Gus")
	for _, ph := range phones {
		ph.WaitOutput(t, "terminated", 30*time.Second)
	}

	for i, me := range []phoneUser{fay, gus} {
		other := []phoneUser{gus, fay}[i]
		h := phones[i].Heard(t)
		own, theirs := toneLevel(h, me.freq), toneLevel(h, other.freq)
		rest := 1 - own - theirs
		t.Logf("%s: own tone %.4f, %s's %.3f, the rest (the caller's speech) %.3f", me.name, own, other.name, theirs, rest)
		if theirs < 0.05 || own > theirs/20 {
			t.Errorf("%s should hear %s and not themselves: %.4f / %.4f", me.name, other.name, theirs, own)
		}
		if rest < 0.02 {
			t.Errorf("%s did not hear the dial-in caller's speech (%.3f of the energy)", me.name, rest)
		}
	}
}

// writeKeyPcap writes a pcap of one RFC 4733 key press (payload type 101,
// 100 ms, three end packets) as SIPp's play_pcap_audio replays it:
// Ethernet, IPv4, UDP, RTP; only the RTP part and the timing matter.
func writeKeyPcap(t *testing.T, path string, key rune, ts uint32, seq uint16) {
	t.Helper()
	event := map[rune]byte{'*': 10, '#': 11}[key]
	if key >= '0' && key <= '9' {
		event = byte(key - '0')
	}
	var b bytes.Buffer
	le := binary.LittleEndian
	hdr := make([]byte, 24)
	le.PutUint32(hdr[0:], 0xa1b2c3d4)
	le.PutUint16(hdr[4:], 2)
	le.PutUint16(hdr[6:], 4)
	le.PutUint32(hdr[16:], 65535)
	le.PutUint32(hdr[20:], 1) // Ethernet
	b.Write(hdr)
	for i := range 8 {
		end := i >= 5
		dur := uint16(160 * (i + 1))
		if end {
			dur = 800
		}
		rtp := make([]byte, 16)
		rtp[0] = 0x80
		rtp[1] = 101
		if i == 0 {
			rtp[1] |= 0x80 // marker: the event's first packet
		}
		binary.BigEndian.PutUint16(rtp[2:], seq+uint16(i))
		binary.BigEndian.PutUint32(rtp[4:], ts)
		binary.BigEndian.PutUint32(rtp[8:], 0x5a5a0001)
		rtp[12] = event
		rtp[13] = 10 // volume
		if end {
			rtp[13] |= 0x80
		}
		binary.BigEndian.PutUint16(rtp[14:], dur)
		udp := make([]byte, 8)
		binary.BigEndian.PutUint16(udp[0:], 6000)
		binary.BigEndian.PutUint16(udp[2:], 6002)
		binary.BigEndian.PutUint16(udp[4:], uint16(8+len(rtp)))
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(rtp)))
		ip[8], ip[9] = 64, 17
		copy(ip[12:], []byte{127, 0, 0, 2})
		copy(ip[16:], []byte{127, 0, 0, 1})
		eth := make([]byte, 14)
		eth[12], eth[13] = 0x08, 0x00
		frame := append(append(append(eth, ip...), udp...), rtp...)
		rec := make([]byte, 16)
		usec := uint32(20000 * i)
		le.PutUint32(rec[0:], 1700000000+usec/1000000)
		le.PutUint32(rec[4:], usec%1000000)
		le.PutUint32(rec[8:], uint32(len(frame)))
		le.PutUint32(rec[12:], uint32(len(frame)))
		b.Write(rec)
		b.Write(frame)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// A group call of two baresip phones and a SIPp phone behind the trunk
// (a phone number, called from the bot's number): the phones hear each
// other's tones and the SIPp phone's speech, never their own tone.
func TestGroupCallWithBaresipAndSipp(t *testing.T) {
	calltest.NeedPeer(t, "baresip", "baresip")
	sipp := calltest.NeedPeer(t, "sipp", "sip-tester")
	const pcaps = "/usr/share/sip-tester"
	port := calltest.FreeUDPPort(t, "127.0.0.2")
	mport := calltest.FreeUDPPort(t, "127.0.0.2")
	p := calltest.Start(t, calltest.Options{Edit: func(c *config.Config) {
		withGroupPhones(c)
		c.SIP.Trunks = []config.Trunk{{Name: "pstn", Address: "127.0.0.2:" + strconv.Itoa(port), AllowFrom: []string{"127.0.0.2"}}}
	}})
	dir := t.TempDir()
	if err := os.Symlink(pcaps, filepath.Join(dir, "pcap")); err != nil {
		t.Fatal(err)
	}
	scen, _ := filepath.Abs("../../cmd/sbbench/testdata/conf_uas.xml")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, sipp, "-sf", scen, "-i", "127.0.0.2", "-p", strconv.Itoa(port), "-mp", strconv.Itoa(mport),
		"-m", "1", "-nostdin", "-timeout", "50s", "-trace_err", "-error_file", filepath.Join(dir, "err.log"))
	cmd.Dir = dir
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })

	fay, gus := groupPhones[0], groupPhones[1]
	phones := startPhones(t, p, 14*time.Second, fay, gus)
	_, _, instance, ok := p.Node.Directory.Number(calltest.BotNumber)
	if !ok {
		t.Fatal("the bot has no number")
	}
	r := p.Bot("POST", calls, map[string]any{
		"@odata.type": "#microsoft.graph.call", "callbackUri": p.Hook.URL, "requestedModalities": []string{"audio"},
		"mediaConfig": map[string]any{"@odata.type": "#microsoft.graph.serviceHostedMediaConfig"},
		"source":      map[string]any{"identity": map[string]any{"applicationInstance": map[string]any{"id": instance}}},
		"targets": []map[string]any{
			{"identity": map[string]any{"user": map[string]any{"id": fay.id}}},
			{"identity": map[string]any{"user": map[string]any{"id": gus.id}}},
			{"identity": map[string]any{"phone": map[string]any{"id": "+15557770030", "displayName": "SIPp"}}},
		},
	})
	if r.StatusCode != 201 {
		t.Fatalf("create group call: %s %s", r.Status, r.Body)
	}
	var call graph.Call
	r.JSON(t, &call)
	waitRoster(t, p, call.ID, "Test bot", "Fay", "Gus", "SIPp")
	for _, ph := range phones {
		ph.WaitOutput(t, "terminated", 30*time.Second)
	}
	for i, me := range []phoneUser{fay, gus} {
		other := []phoneUser{gus, fay}[i]
		h := phones[i].Heard(t)
		own, theirs := toneLevel(h, me.freq), toneLevel(h, other.freq)
		rest := 1 - own - theirs
		t.Logf("%s: own tone %.4f, %s's %.3f, the rest (SIPp's speech) %.3f", me.name, own, other.name, theirs, rest)
		if theirs < 0.05 || own > theirs/20 {
			t.Errorf("%s should hear %s and not themselves: %.4f / %.4f", me.name, other.name, theirs, own)
		}
		if rest < 0.02 {
			t.Errorf("%s did not hear the SIPp phone's speech (%.3f of the energy)", me.name, rest)
		}
	}
	if r := p.Bot("DELETE", calls+"/"+call.ID, nil); r.StatusCode != 204 {
		t.Fatalf("hang up: %s", r.Status)
	}
}
