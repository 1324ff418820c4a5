package main

import (
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParseProcNetUDP(t *testing.T) {
	// Two sockets of /proc/net/udp on a little-endian host, and one of
	// udp6 ([::1]:5060 and [::ffff:127.0.0.1]:8000).
	v4 := "   sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n" +
		" 6474: 0100007F:D4E2 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 683300 2 00000000f9dd1252 0\n" +
		"10353: 00000000:1F90 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 683299 2 0000000026b86c64 0\n"
	socks, err := parseProcNetUDP([]byte(v4))
	if err != nil {
		t.Fatal(err)
	}
	want := []procSocket{
		{netip.MustParseAddrPort("127.0.0.1:54498"), 683300},
		{netip.MustParseAddrPort("0.0.0.0:8080"), 683299},
	}
	if len(socks) != len(want) {
		t.Fatalf("got %v", socks)
	}
	for i := range want {
		if socks[i] != want[i] {
			t.Errorf("socket %d: got %v, want %v", i, socks[i], want[i])
		}
	}
	if socks[0].local.Addr().IsLoopback() != true || socks[1].local.Addr().IsLoopback() {
		t.Error("loopback classification")
	}

	v6 := "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops\n" +
		"  1: 00000000000000000000000001000000:13C4 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1234 2 0 0\n" +
		"  2: 0000000000000000FFFF00000100007F:1F40 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 1235 2 0 0\n"
	socks, err = parseProcNetUDP([]byte(v6))
	if err != nil {
		t.Fatal(err)
	}
	if len(socks) != 2 || socks[0].local != netip.MustParseAddrPort("[::1]:5060") || socks[0].inode != 1234 ||
		socks[1].local != netip.MustParseAddrPort("127.0.0.1:8000") {
		t.Errorf("udp6: got %v", socks)
	}

	if _, err := parseProcNetUDP([]byte("header\n 1: 0100007G:D4E2 x x x x x x x 1\n")); err == nil {
		t.Error("a bad address parsed")
	}
}

func TestParseDiagoLog(t *testing.T) {
	log := `2026/12/07 00:30:00 WARN played call=a1 bytes=80000 dur=5.002s err=<nil>
2026/12/07 00:30:00 WARN played call=a2 bytes=79680 dur=4.98s err=<nil>
2026/12/07 00:30:01 WARN played call=a3 bytes=1280 dur=80ms err="rtp write: use of closed network connection"
2026/12/07 00:30:02 ERROR answer err="transaction terminated"
2026/12/07 00:42:49 ERROR RTP session RTCP writer stopped with error error="write udp 127.0.0.1:44119->127.0.0.2:7761: i/o timeout"
2026/12/07 00:30:30 WARN call end call=a1 digits="" byCaller=true
2026/12/07 00:30:30 WARN call end call=a2 digits="" byCaller=false
`
	l, err := parseDiagoLog(strings.NewReader(log))
	if err != nil {
		t.Fatal(err)
	}
	if l.Played != 2 || l.PlayErrors != 1 || l.Errors != 1 || l.LibErrors != 1 || l.Ended != 2 || l.ByCaller != 1 || l.MinBytes != 79680 || l.Failed() != 2 {
		t.Errorf("got %+v", l)
	}
	if len(l.Samples) != 3 {
		t.Errorf("samples %q", l.Samples)
	}
	if v, ok := logValue(`x WARN played err="a b \"c\"" n=1`, "err"); !ok || v != `a b "c"` {
		t.Errorf("quoted value %q", v)
	}
}

func TestLiveFromSIPp(t *testing.T) {
	t0 := time.Unix(1000, 0)
	rows := []sippRow{{At: t0, Current: 0}, {At: t0.Add(time.Second), Current: 50}, {At: t0.Add(2 * time.Second), Current: 100}}
	samples := []sample{{At: t0.Add(-time.Second), Live: 7}, {At: t0.Add(500 * time.Millisecond)}, {At: t0.Add(time.Second)},
		{At: t0.Add(1900 * time.Millisecond)}, {At: t0.Add(5 * time.Second)}}
	liveFromSIPp(samples, rows)
	want := []int{0, 0, 50, 50, 100}
	for i, s := range samples {
		if s.Live != want[i] {
			t.Errorf("sample %d: live %d, want %d", i, s.Live, want[i])
		}
	}
}

const peersREADME = `# Performance anchors

| engine | CPU-ms per call-second at 200 / 500 / 1000 calls | CPU-ms per call | RSS per held call | at 2000 calls, 100 calls/s (box saturated) |
|---|---|---|---|---|
| diago v0.42.1 (Go, on sipgo) | 0.64 / 0.52 / 0.42–0.51 | 12.6–19.2 | ≈ 0.12 MB | no failed calls |
| Asterisk 20.20.1 (C) | 0.62 / 0.70 / 0.56–0.67 | 16.7–21.1 | ≈ 0.15 MB | 10% of calls failed |

Both spent 60–70% of their CPU in the kernel.

| engine | other |
|---|---|
| x | y |
`

func TestParsePeerTable(t *testing.T) {
	peers := parsePeerTable(peersREADME)
	if len(peers) != 2 || peers[1].Engine != "Asterisk 20.20.1 (C)" || len(peers[1].Figures) != 4 {
		t.Fatalf("got %+v", peers)
	}
	f := peers[1].Figures
	if f[1] != [2]string{"CPU-ms per call", "16.7–21.1"} || f[2][1] != "≈ 0.15 MB" {
		t.Errorf("figures %q", f)
	}
	for n, want := range map[int]string{200: "0.62", 500: "0.70", 1000: "0.56–0.67"} {
		if v, ok := figureAt(f[0][0], f[0][1], n); !ok || v != want {
			t.Errorf("at %d calls: %q %v, want %q", n, v, ok, want)
		}
	}
	if _, ok := figureAt(f[0][0], f[0][1], 300); ok {
		t.Error("a figure at 300 calls")
	}
	if _, ok := figureAt(f[1][0], f[1][1], 1000); ok {
		t.Error("a figure at 1000 calls in a column that has none")
	}
}

func TestModuleVersion(t *testing.T) {
	gomod := "module probe/diagoapp\n\ngo 1.26.8\n\nrequire (\n\tgithub.com/emiago/diago v0.42.1\n\tgithub.com/emiago/sipgo v1.7.3\n)\n\nrequire github.com/x/y v1.0.0 // indirect\n"
	if v := moduleVersion(gomod, "github.com/emiago/diago"); v != "v0.42.1" {
		t.Errorf("diago %q", v)
	}
	if v := moduleVersion(gomod, "github.com/x/y"); v != "v1.0.0" {
		t.Errorf("x/y %q", v)
	}
	if v := moduleVersion(gomod, "github.com/emiago/dia"); v != "" {
		t.Errorf("prefix matched: %q", v)
	}
}

func TestPromptWAVAt(t *testing.T) {
	b := promptWAVAt(5, 8000)
	if len(b) != 44+2*5*8000 || string(b[0:4]) != "RIFF" || b[24] != 0x40 || b[25] != 0x1f {
		t.Errorf("8 kHz prompt: %d bytes, rate bytes %x %x", len(b), b[24], b[25])
	}
	if len(promptWAV(5)) != 44+2*5*16000 {
		t.Error("16 kHz prompt length")
	}
}

func TestParsePerfIPCColumns(t *testing.T) {
	text := "# Overhead  Symbol      IPC   [IPC Coverage]\n" +
		"    21.44%  [k] finish_task_switch.isra.0                 -      -            \n" +
		"    50.00%     1.00%  [.] main.handle                     -      -\n" +
		"     3.08%  [.] runtime.memmove\n"
	got := parsePerf(text)
	want := []perfLine{{21.44, "finish_task_switch.isra.0"}, {50, "main.handle"}, {3.08, "runtime.memmove"}}
	if len(got) != len(want) {
		t.Fatalf("got %+v", got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: got %+v, want %+v", i, got[i], want[i])
		}
	}
}
