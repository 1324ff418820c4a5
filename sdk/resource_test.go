package sdk

import (
	"testing"

	"github.com/switchboard-voice/switchboard/sdk/graph"
)

func TestParseResourcePath(t *testing.T) {
	for in, want := range map[string]resourcePath{
		"/communications/calls/c1": {callID: "c1", kind: "call"},
		"communications/calls/c1/": {callID: "c1", kind: "call"},
		"/app/calls/C1":            {callID: "C1", kind: "call"},
		"https://graph.microsoft.com/v1.0/communications/calls/c1?x=1": {callID: "c1", kind: "call"},
		"/communications/calls/c1/operations/o1":                       {callID: "c1", kind: "operation", operationID: "o1"},
		"/communications/calls/c1/participants":                        {callID: "c1", kind: "participants"},
		"/communications/calls/c1/participants/p1":                     {callID: "c1", kind: "participant", partID: "p1"},
		"/communications/calls/c1/contentsharingsessions":              {callID: "c1", kind: "contentsharingsessions"},
	} {
		got, ok := parseResourcePath(in)
		if !ok || got != want {
			t.Errorf("%q: %+v %v, want %+v", in, got, ok, want)
		}
	}
	for _, bad := range []string{"", "/", "/communications/calls", "/communications/calls/c1/operations", "/users/u1", "https://host"} {
		if p, ok := parseResourcePath(bad); ok {
			t.Errorf("%q parsed as %+v", bad, p)
		}
	}
}

func TestIDKey(t *testing.T) {
	if idKey("57dab8b1-894c-409a-b240-bd8beae78896") != idKey("57DAB8B1894C409AB240BD8BEAE78896") {
		t.Fatal("the two spellings of one id differ")
	}
}

func TestStateOrder(t *testing.T) {
	for _, tc := range []struct {
		cur, next graph.CallState
		regress   bool
	}{
		{"", graph.StateEstablishing, false},
		{graph.StateEstablishing, graph.StateEstablished, false},
		{graph.StateEstablished, graph.StateEstablishing, true},
		{graph.StateEstablished, graph.StateRinging, true},
		{graph.StateRinging, graph.StateEstablishing, true},
		{graph.StateEstablishing, graph.StateIncoming, true},
		{graph.StateTransferring, graph.StateEstablished, false}, // a failed transfer
		{graph.StateEstablished, graph.StateHold, false},
		{graph.StateHold, graph.StateEstablished, false},
	} {
		if got := regresses(tc.cur, tc.next); got != tc.regress {
			t.Errorf("%s -> %s: regresses %v", tc.cur, tc.next, got)
		}
	}
}

func TestDecodeIntoDropsOnlyBadProperties(t *testing.T) {
	r := parseResource([]byte(`{"id":"c1","state":"Established","direction":7,"subject":{"a":1},"callChainId":"x"}`))
	var c graph.Call
	dropped := decodeInto(r, &c)
	if len(dropped) != 2 || dropped[0] != "direction" || dropped[1] != "subject" {
		t.Fatalf("dropped %v", dropped)
	}
	if c.ID != "c1" || c.State != graph.StateEstablished || c.CallChainID != "x" {
		t.Fatalf("decoded %+v", c)
	}
	if _, ok := r["direction"]; ok {
		t.Fatal("a dropped property stayed in the resource")
	}
}

func TestMergeKeepsOmittedAndNull(t *testing.T) {
	r := parseResource([]byte(`{"a":1,"b":2}`))
	r.merge(parseResource([]byte(`{"b":null,"c":3,"a":4}`)))
	if string(r["a"]) != "4" || string(r["b"]) != "2" || string(r["c"]) != "3" {
		t.Fatalf("merged %v", r)
	}
	r.fill(parseResource([]byte(`{"a":9,"d":5}`)))
	if string(r["a"]) != "4" || string(r["d"]) != "5" {
		t.Fatalf("filled %v", r)
	}
}
