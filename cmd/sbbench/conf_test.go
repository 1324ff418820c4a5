package main

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/sdk/graph"
)

func TestPlanConference(t *testing.T) {
	for _, tc := range []struct {
		parties, create, invites, last int
	}{
		{2, 2, 0, 0},
		{25, 25, 0, 0},
		{26, 25, 1, 1},
		{100, 25, 15, 5},
		{500, 25, 95, 5},
		{103, 25, 16, 3},
	} {
		p := planConference(7, tc.parties)
		if len(p.create) != tc.create || len(p.invites) != tc.invites {
			t.Errorf("%d parties: create %d, %d invites; want %d, %d", tc.parties, len(p.create), len(p.invites), tc.create, tc.invites)
			continue
		}
		seen := map[string]bool{}
		for _, n := range p.create {
			seen[n] = true
		}
		for _, b := range p.invites {
			if len(b) == 0 || len(b) > maxInviteBatch {
				t.Errorf("%d parties: an invite of %d", tc.parties, len(b))
			}
			for _, n := range b {
				seen[n] = true
			}
		}
		if len(seen) != tc.parties {
			t.Errorf("%d parties: %d distinct numbers", tc.parties, len(seen))
		}
		if tc.invites > 0 && len(p.invites[len(p.invites)-1]) != tc.last {
			t.Errorf("%d parties: last invite of %d, want %d", tc.parties, len(p.invites[len(p.invites)-1]), tc.last)
		}
	}
	// Numbers are E.164 (the node checks: + and up to 15 digits).
	if n := partyNumber(9999, 499); n != "+155599990499" || len(n) > 16 {
		t.Errorf("party number %q", n)
	}
}

// roster builds a participants notification with the bot and n parties.
func roster(callID string, n int) graph.CommsNotification {
	ps := []graph.Participant{{ID: "bot", Info: &graph.ParticipantInfo{Identity: &graph.IdentitySet{
		ApplicationInstance: &graph.Identity{ID: benchInstance}}}}}
	for i := range n {
		ps = append(ps, graph.Participant{ID: "p" + string(rune('a'+i)), Info: &graph.ParticipantInfo{Identity: &graph.IdentitySet{
			Phone: &graph.Identity{ID: partyNumber(1, i)}}}})
	}
	b, _ := json.Marshal(ps)
	return graph.CommsNotification{ChangeType: graph.ChangeUpdated, ResourceURL: "/communications/calls/" + callID + "/participants", ResourceData: b}
}

func callNote(callID string, change graph.ChangeType, state graph.CallState, ri *graph.ResultInfo) graph.CommsNotification {
	b, _ := json.Marshal(graph.Call{ODataType: graph.TypeCall, ID: callID, State: state, ResultInfo: ri})
	return graph.CommsNotification{ChangeType: change, ResourceURL: "/communications/calls/" + callID, ResourceData: b}
}

func TestConfDriverNotifications(t *testing.T) {
	d := newConfDriver(&bot{}, 50)
	t0 := time.Now()
	// The notifications of a call may come before its create returns.
	d.handle(t0, callNote("c1", graph.ChangeUpdated, graph.StateEstablished, nil))
	d.handle(t0, roster("c1", 0))
	d.handle(t0, roster("c1", 2))
	d.mu.Lock()
	c := d.callLocked("c1")
	c.index, c.want, c.posted, c.created = 1, 3, t0, t0
	d.order = append(d.order, c)
	d.mu.Unlock()
	select {
	case <-c.estab:
	default:
		t.Fatal("established did not release the invites")
	}
	if j := d.Joined(); j != 2 {
		t.Errorf("joined %d, want 2", j)
	}
	d.handle(t0.Add(time.Second), roster("c1", 3))
	d.handle(t0.Add(2*time.Second), roster("c1", 2)) // one hung up
	op, _ := json.Marshal(graph.Operation{ODataType: graph.TypeInviteParticipantsOperation, Status: graph.OperationFailed,
		ResultInfo: &graph.ResultInfo{Code: 486, Subcode: 9005, Message: "busy"}})
	d.handle(t0, graph.CommsNotification{ChangeType: graph.ChangeDeleted, ResourceURL: "/communications/calls/c1/operations/o1", ResourceData: op})
	calls := d.Calls()
	if len(calls) != 1 {
		t.Fatalf("%d calls", len(calls))
	}
	got := calls[0]
	if got.full.IsZero() || got.full.Sub(t0) != time.Second || got.maxRoster != 3 || got.shrank != 1 || len(got.opsFailed) != 1 {
		t.Errorf("call %+v", got)
	}
	if d.rosters.Load() != 4 || d.rosterBytes.Load() == 0 || d.rosterMax.Load() == 0 {
		t.Errorf("rosters %d, %d bytes, max %d", d.rosters.Load(), d.rosterBytes.Load(), d.rosterMax.Load())
	}
	d.handle(t0.Add(3*time.Second), callNote("c1", graph.ChangeDeleted, graph.StateTerminated, &graph.ResultInfo{Code: 200, Subcode: 5001}))
	if j, l := d.Joined(), d.Live(); j != 0 || l != 0 {
		t.Errorf("after the end: joined %d, live %d", j, l)
	}
	// A roster after the end does not bring the parties back.
	d.handle(t0.Add(4*time.Second), roster("c1", 2))
	if j := d.Joined(); j != 0 {
		t.Errorf("joined %d after a late roster", j)
	}
}

func TestConfUASArgs(t *testing.T) {
	r := &sippRun{uas: true, scenario: "conf_uas.xml", localIP: sippIP, port: 5070, ctrlPort: 5071, mediaPort: 6000,
		calls: 500, name: "conf", timeout: time.Minute}
	cmd := r.Command()
	for _, want := range []string{"-sf conf_uas.xml", "-i 127.0.0.2", "-p 5070", "-mp 6000", "-m 500", "-timeout 60s"} {
		if !strings.Contains(cmd, want) {
			t.Errorf("%q lacks %q", cmd, want)
		}
	}
	for _, not := range []string{"-r ", "-l ", "-d ", "-s "} {
		if strings.Contains(cmd, not) {
			t.Errorf("a UAS run has %q: %s", not, cmd)
		}
	}
}

func TestParseSoftIRQ(t *testing.T) {
	d, err := parseSoftIRQ([]byte("cpu  395466 0 65500 371243 2040 0 5234 132 0 0\ncpu0 1 2 3 4 5 6 7 8 9 10\n"))
	if err != nil || d != 52340*time.Millisecond {
		t.Errorf("softirq %v, %v; want 52.34s", d, err)
	}
}

func TestAlawFromPcap(t *testing.T) {
	a, err := alawFromPcap("/usr/share/sip-tester/g711a.pcap")
	if err != nil {
		t.Skipf("sip-tester's pcaps: %v", err)
	}
	// 236 packets of 30 ms (240 bytes of A-law at 8 kHz): 7.08 s.
	if len(a) != 236*240 {
		t.Errorf("%d bytes of A-law, want %d", len(a), 236*240)
	}
}
