package main

import (
	"strings"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/config"
	"github.com/switchboard-voice/switchboard/internal/media/prompt"
)

// These tests cover sbbench's parsing and arithmetic; the benchmark itself
// needs sipp and runs only when asked (go run ./cmd/sbbench).

func TestParseStat(t *testing.T) {
	// The command name may hold spaces and parentheses.
	line := "4719 (switch (board)) S 1 4719 4719 0 -1 4194560 12345 0 0 0 240 291 0 0 20 0 9 0 4242 2163142656 12000 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	c, err := parseStat([]byte(line), time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if c.User != 2400*time.Millisecond || c.Sys != 2910*time.Millisecond || c.Threads != 9 {
		t.Errorf("got user %v sys %v threads %d, want 2.4s 2.91s 9", c.User, c.Sys, c.Threads)
	}
}

func TestParseStatus(t *testing.T) {
	rss, hwm, err := parseStatus([]byte("Name:\tswitchboard\nVmHWM:\t   49356 kB\nVmRSS:\t   37464 kB\nThreads:\t9\n"))
	if err != nil {
		t.Fatal(err)
	}
	if rss != 37464<<10 || hwm != 49356<<10 {
		t.Errorf("rss %d hwm %d", rss, hwm)
	}
}

const statCSV = "StartTime;LastResetTime;CurrentTime;ElapsedTime(P);ElapsedTime(C);TargetRate;CallRate(P);CallRate(C);IncomingCall(P);IncomingCall(C);OutgoingCall(P);OutgoingCall(C);TotalCallCreated;CurrentCall;SuccessfulCall(P);SuccessfulCall(C);FailedCall(P);FailedCall(C);FailedMaxUDPRetrans(P);FailedMaxUDPRetrans(C);Retransmissions(P);Retransmissions(C);\n" +
	"2026-11-28\t00:00:54.137289\t1795824054.137289;x;2026-11-28\t00:00:54.138552\t1795824054.000000;00:00:00;00:00:00;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;0;\n" +
	"2026-11-28\t00:00:54.137289\t1795824054.137289;x;2026-11-28\t00:00:55.139947\t1795824055.000000;00:00:01;00:00:01;0;0;0;0;0;4;4;4;4;0;0;0;0;0;0;0;0;\n" +
	"2026-11-28\t00:00:54.137289\t1795824054.137289;x;2026-11-28\t00:00:56.143680\t1795824056.000000;00:00:01;00:00:02;0;0;0;0;0;6;10;10;6;4;4;0;0;0;0;0;0;\n" +
	"2026-11-28\t00:00:54.137289\t1795824054.137289;x;2026-11-28\t00:00:57.144516\t1795824057.000000;00:00:01;00:00:03;0;0;0;0;0;0;10;10;0;5;9;1;1;1;1;2;2;\n"

func TestParseSippStat(t *testing.T) {
	rows, err := parseSippStat(strings.NewReader(statCSV))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 4 {
		t.Fatalf("%d rows", len(rows))
	}
	last := rows[3]
	if last.Created != 10 || last.Current != 0 || last.Successful != 9 || last.Failed != 1 || last.Retrans != 2 || last.FailedBy["MaxUDPRetrans"] != 1 {
		t.Errorf("last row %+v", last)
	}
	// CurrentCall 0, 4, 6, 0 one second apart: trapezoids 2 + 5 + 3.
	if cs := callSeconds(rows); cs != 10 {
		t.Errorf("call-seconds %v, want 10", cs)
	}
	// 4 calls in the first second, 6 in the second: all 10 by 2 s.
	if w := creationWindow(rows); w != 2*time.Second {
		t.Errorf("creation window %v, want 2s", w)
	}
}

func TestParseSippRTT(t *testing.T) {
	d, err := parseSippRTT(strings.NewReader("Date_ms;response_time_ms;rtd_no\n204.001;3;1\n404.001;12.5;1\n"))
	if err != nil {
		t.Fatal(err)
	}
	if len(d) != 2 || d[0] != 3*time.Millisecond || d[1] != 12500*time.Microsecond {
		t.Errorf("%v", d)
	}
}

func TestPercentile(t *testing.T) {
	var d []time.Duration
	for i := 1; i <= 100; i++ {
		d = append(d, time.Duration(i))
	}
	if p := percentile(d, 0.5); p != 50 {
		t.Errorf("p50 %v", p)
	}
	if p := percentile(d, 0.99); p != 99 {
		t.Errorf("p99 %v", p)
	}
	if p := percentile(d, 1); p != 100 {
		t.Errorf("max %v", p)
	}
	if p := percentile(nil, 0.5); p != 0 {
		t.Errorf("empty %v", p)
	}
}

func TestMetricsAndHistogram(t *testing.T) {
	before, err := parseMetrics(strings.NewReader(`# HELP x
switchboard_webhook_delivery_seconds_bucket{le="0.005"} 0
switchboard_webhook_delivery_seconds_bucket{le="0.01"} 0
switchboard_webhook_delivery_seconds_bucket{le="+Inf"} 0
switchboard_media_ticks_total 100
`))
	if err != nil {
		t.Fatal(err)
	}
	after, err := parseMetrics(strings.NewReader(`switchboard_webhook_delivery_seconds_bucket{le="0.005"} 50
switchboard_webhook_delivery_seconds_bucket{le="0.01"} 100
switchboard_webhook_delivery_seconds_bucket{le="+Inf"} 100
switchboard_media_ticks_total 1100
switchboard_sip_invites_total{direction="in",status="200"} 7
`))
	if err != nil {
		t.Fatal(err)
	}
	if d := after["switchboard_media_ticks_total"] - before["switchboard_media_ticks_total"]; d != 1000 {
		t.Errorf("ticks %v", d)
	}
	if v := after[`switchboard_sip_invites_total{direction="in",status="200"}`]; v != 7 {
		t.Errorf("invites %v", v)
	}
	q, n := histQuantile(before, after, "switchboard_webhook_delivery_seconds", 0.5)
	if n != 100 || q != 0.005 {
		t.Errorf("p50 %v of %v, want 0.005 of 100", q, n)
	}
	q, _ = histQuantile(before, after, "switchboard_webhook_delivery_seconds", 0.75)
	if q < 0.0074 || q > 0.0076 {
		t.Errorf("p75 %v, want 0.0075", q)
	}
}

func TestSplitResource(t *testing.T) {
	for _, c := range []struct{ in, call, op string }{
		{"/communications/calls/abc", "abc", ""},
		{"/communications/calls/abc/operations/op1", "abc", "op1"},
		{"/app/calls/abc/participants", "abc", ""},
		{"/subscriptions/x", "", ""},
	} {
		call, op := splitResource(c.in)
		if call != c.call || op != c.op {
			t.Errorf("%s: %q %q", c.in, call, op)
		}
	}
}

func TestRTPGaps(t *testing.T) {
	ms := int64(time.Millisecond)
	r := rtpTimes{at: []int64{0, 20 * ms, 40 * ms, 100 * ms, 120 * ms}, seq: []uint16{65534, 65535, 0, 3, 4}}
	packets, lost, gaps := r.stats()
	if packets != 5 || lost != 2 || len(gaps) != 3 || gaps[0] != 20*time.Millisecond {
		t.Errorf("packets %d lost %d gaps %v", packets, lost, gaps)
	}
}

func TestProbeSIPParsing(t *testing.T) {
	msg := "SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.3:4000;branch=z9hG4bKx\r\nt: <sip:+15550199@127.0.0.1:5060>;tag=abc\r\n" +
		"Contact: <sip:127.0.0.1:5060;transport=udp>\r\nCSeq: 1 INVITE\r\nContent-Length: 61\r\n\r\n" +
		"v=0\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 20002 RTP/AVP 8 101\r\n"
	m, err := parseSIP([]byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	if m.status != 200 || tagOf(m.get("to")) != "abc" {
		t.Errorf("status %d to-tag %q", m.status, tagOf(m.get("to")))
	}
	if hp := uriHostPort(m.get("contact")); hp != "127.0.0.1:5060" {
		t.Errorf("contact %q", hp)
	}
	a, err := sdpMedia(m.body)
	if err != nil || a.String() != "127.0.0.1:20002" {
		t.Errorf("sdp %v %v", a, err)
	}
}

func TestNodeConfigIsValid(t *testing.T) {
	nc := nodeConfig{httpPort: 18080, sipPort: 15060, sippPort: 15070, callback: "http://127.0.0.1:19000/callback",
		dataDir: t.TempDir(), logLevel: "warn", rtpMin: 20000, rtpMax: 29999, inactivity: 90 * time.Second}
	b, err := nc.yaml()
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	if c.Calls.MaxConcurrentPerApp < 100000 || c.SIP.InvitesPerSecond < 10000 || len(c.SIP.Trunks) != 1 || c.Applications[0].Numbers[0].Number != benchNumber {
		t.Errorf("limits not raised or trunk/number missing: %+v %+v", c.Calls, c.SIP)
	}
}

func TestPromptWAVDecodes(t *testing.T) {
	pcm, err := prompt.DecodeWAV(strings.NewReader(string(promptWAV(promptSecs))))
	if err != nil {
		t.Fatal(err)
	}
	if len(pcm) != promptSecs*8000 {
		t.Errorf("%d samples at 8 kHz, want %d", len(pcm), promptSecs*8000)
	}
}

func TestScenariosEmbedded(t *testing.T) {
	for _, name := range []string{"ivr_load.xml", "ivr_load_dtmf.xml", "setup.xml", "conf_uas.xml", "conf_uas_stream.xml"} {
		b, err := scenarios.ReadFile("testdata/" + name)
		if err != nil || !strings.Contains(string(b), "<scenario") {
			t.Errorf("%s: %v", name, err)
		}
	}
}
