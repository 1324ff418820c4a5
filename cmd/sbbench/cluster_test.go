package main

import (
	"strings"
	"testing"
)

// A /varz body, trimmed, as nats-server v2.15 writes it.
const varzSample = `{"server_id":"N1","in_msgs":1200,"out_msgs":1300,"in_bytes":50000,"out_bytes":60000,
"in_client_msgs":100,"in_client_bytes":20000,"out_client_msgs":110,"out_client_bytes":21000,
"jetstream":{"config":{"max_memory":1},"stats":{"memory":0,"storage":10,"api":{"level":1,"total":42,"errors":1}}}}`

func TestParseVarz(t *testing.T) {
	s, err := parseVarz(strings.NewReader(varzSample))
	if err != nil {
		t.Fatal(err)
	}
	want := natsStats{InMsgs: 1200, OutMsgs: 1300, InBytes: 50000, OutBytes: 60000, InClientMsgs: 100,
		OutClientMsgs: 110, InClientBytes: 20000, OutClientBytes: 21000, JetStreamAPI: 42}
	if s != want {
		t.Fatalf("parseVarz = %+v, want %+v", s, want)
	}
	d := s.add(s).sub(s)
	if d != s {
		t.Fatalf("add then sub = %+v, want %+v", d, s)
	}
	p := s.per(10)
	if p.InClientMsgs != 10 || p.InMsgs != 120 || p.JetStreamAPI != 4.2 || p.InClientKB != 20000.0/10/1024 {
		t.Fatalf("per(10) = %+v", p)
	}
	if (natsStats{}).per(0) != (natsRates{}) {
		t.Fatal("per(0) is not zero")
	}
	if _, err := parseVarz(strings.NewReader("<html>")); err == nil {
		t.Fatal("parseVarz accepted HTML")
	}
}

func TestParseJszAndStreamWrites(t *testing.T) {
	body := `{"server_id":"N1","streams":2,"account_details":[{"name":"$G","id":"$G","stream_detail":[
{"name":"KV_sb_calls","state":{"messages":3,"bytes":10,"first_seq":5,"last_seq":7}},
{"name":"SB_NOTIFY","state":{"messages":0,"bytes":0,"first_seq":21,"last_seq":20}}]}]}`
	s0, err := parseJsz(strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if s0["KV_sb_calls"] != 7 || s0["SB_NOTIFY"] != 20 || len(s0) != 2 {
		t.Fatalf("parseJsz = %v", s0)
	}
	s1 := map[string]uint64{"KV_sb_calls": 27, "SB_NOTIFY": 60, "OBJ_new": 5}
	per, all := streamWrites(s0, s1, 10)
	if per["KV_sb_calls"] != 2 || per["SB_NOTIFY"] != 4 || per["OBJ_new"] != 0.5 || all != 6.5 {
		t.Fatalf("streamWrites = %v, %v", per, all)
	}
	if per, all := streamWrites(s0, s1, 0); len(per) != 0 || all != 0 {
		t.Fatalf("streamWrites with no calls = %v, %v", per, all)
	}
}
