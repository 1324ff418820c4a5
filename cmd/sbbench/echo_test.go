package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/switchboard-voice/switchboard/sdk"
)

// The node's echo-delay histogram, as /metrics writes it, between two
// scrapes: quantiles, the bucket that holds them, and shares.
func TestEchoDelayHistogram(t *testing.T) {
	before, err := parseMetrics(strings.NewReader(`# TYPE switchboard_media_socket_echo_delay_seconds histogram
switchboard_media_socket_echo_delay_seconds_bucket{le="0.005"} 0
switchboard_media_socket_echo_delay_seconds_bucket{le="0.01"} 0
switchboard_media_socket_echo_delay_seconds_bucket{le="0.02"} 10
switchboard_media_socket_echo_delay_seconds_bucket{le="0.03"} 10
switchboard_media_socket_echo_delay_seconds_bucket{le="0.04"} 10
switchboard_media_socket_echo_delay_seconds_bucket{le="0.3"} 10
switchboard_media_socket_echo_delay_seconds_bucket{le="+Inf"} 10
switchboard_media_socket_echo_delay_seconds_sum 0.2
switchboard_media_socket_echo_delay_seconds_count 10
`))
	if err != nil {
		t.Fatal(err)
	}
	// 1000 echoes since: 600 in (10, 20] ms, 300 in (20, 30], 90 in
	// (30, 40], 8 in (40, 300], 2 beyond.
	after, err := parseMetrics(strings.NewReader(`switchboard_media_socket_echo_delay_seconds_bucket{le="0.005"} 0
switchboard_media_socket_echo_delay_seconds_bucket{le="0.01"} 0
switchboard_media_socket_echo_delay_seconds_bucket{le="0.02"} 610
switchboard_media_socket_echo_delay_seconds_bucket{le="0.03"} 910
switchboard_media_socket_echo_delay_seconds_bucket{le="0.04"} 1000
switchboard_media_socket_echo_delay_seconds_bucket{le="0.3"} 1008
switchboard_media_socket_echo_delay_seconds_bucket{le="+Inf"} 1010
switchboard_media_socket_echo_delay_seconds_sum 25
switchboard_media_socket_echo_delay_seconds_count 1010
`))
	if err != nil {
		t.Fatal(err)
	}
	les, counts := histBuckets(before, after, echoDelayMetric)
	if len(les) != 7 || counts[len(counts)-1] != 1000 || counts[2] != 600 {
		t.Fatalf("buckets %v %v", les, counts)
	}
	near := func(got, want float64) bool { return got > want-1e-9 && got < want+1e-9 }
	q, n := histQuantile(before, after, echoDelayMetric, 0.5)
	if n != 1000 || !near(q, 0.01+0.01*500/600) {
		t.Errorf("p50 %v of %v, want 0.01833 of 1000", q, n)
	}
	q, _ = histQuantile(before, after, echoDelayMetric, 0.99)
	if !near(q, 0.04+0.26*(990-990)/8) && !near(q, 0.04) {
		t.Errorf("p99 %v, want 0.04", q)
	}
	q, _ = histQuantile(before, after, echoDelayMetric, 0.995)
	if !near(q, 0.04+0.26*5/8) {
		t.Errorf("p99.5 %v, want %v", q, 0.04+0.26*5/8)
	}
	for _, c := range []struct {
		q      float64
		lo, hi float64
	}{{0.5, 0.01, 0.02}, {0.7, 0.02, 0.03}, {0.99, 0.03, 0.04}, {0.995, 0.04, 0.3}} {
		lo, hi := histBucketOf(before, after, echoDelayMetric, c.q)
		if lo != c.lo || hi != c.hi {
			t.Errorf("bucket of q%v: (%v, %v], want (%v, %v]", c.q, lo, hi, c.lo, c.hi)
		}
	}
	lo, hi := histBucketOf(before, after, echoDelayMetric, 1)
	if got := bucketString(lo, hi); got != "> 300 ms" {
		t.Errorf("slowest bucket %q", got)
	}
	if got := bucketString(histBucketOf(before, after, echoDelayMetric, 0.5)); got != "(10, 20] ms" {
		t.Errorf("p50 bucket %q", got)
	}
	if s := histShareAtMost(before, after, echoDelayMetric, 0.04); !near(s, 0.99) {
		t.Errorf("share ≤ 40 ms %v, want 0.99", s)
	}
	if s := histShareAtMost(before, after, echoDelayMetric, 0.02); !near(s, 0.6) {
		t.Errorf("share ≤ 20 ms %v, want 0.6", s)
	}
	if s := histShareAtMost(before, after, echoDelayMetric, 0.035); !near(s, 0.9) {
		t.Errorf("share ≤ 35 ms %v, want 0.9 (the bound below)", s)
	}
	// No observation, or no such metric: zeros, not NaN.
	if q, n := histQuantile(after, after, echoDelayMetric, 0.99); q != 0 || n != 0 {
		t.Errorf("empty: %v of %v", q, n)
	}
	if lo, hi := histBucketOf(after, after, "nope", 0.5); lo != 0 || hi != 0 || bucketString(lo, hi) != "–" {
		t.Errorf("missing: (%v, %v]", lo, hi)
	}
	if s := histShareAtMost(before, after, "nope", 0.04); s != 0 {
		t.Errorf("missing share %v", s)
	}
}

// A bot's count of what it read: gaps in the sequence, and how far it
// lags the media clock.
func TestEchoStatsFrames(t *testing.T) {
	var st echoStats
	t0 := time.Unix(1000, 0)
	st.frame(0, 5000, t0)
	st.frame(1, 5020, t0.Add(21*time.Millisecond))
	st.frame(4, 5080, t0.Add(100*time.Millisecond)) // 2 and 3 missed; 20 ms late
	st.frame(5, 5100, t0.Add(105*time.Millisecond))
	if st.FramesRead != 4 || st.Missed != 2 {
		t.Errorf("read %d, missed %d; want 4, 2", st.FramesRead, st.Missed)
	}
	if st.LagMax != 20*time.Millisecond || st.LagEnd != 5*time.Millisecond {
		t.Errorf("lag most %v, at the end %v; want 20ms, 5ms", st.LagMax, st.LagEnd)
	}
	var s sdk.MediaStats
	s.ToBot.Sent = 6
	st.stats(s)
	if st.FirstDrop != 0 || !st.StatsSeen {
		t.Errorf("no drop yet: first drop %v", st.FirstDrop)
	}
	st.frame(6, 5120, t0.Add(126*time.Millisecond))
	s.ToBot.Dropped = 2
	st.stats(s)
	st.frame(7, 5140, t0.Add(146*time.Millisecond))
	s.ToBot.Dropped = 3
	st.stats(s)
	if st.FirstDrop != 120*time.Millisecond || st.Stats.ToBot.Dropped != 3 {
		t.Errorf("first drop at %v (want 120ms, the media time of the frame read before it), dropped %d", st.FirstDrop, st.Stats.ToBot.Dropped)
	}
}

// rawMedia's echo is one masked binary frame whose payload is the frame
// it was given, header and all; next unmasks the server's frames, answers
// pings, and reports a close with its code.
func TestRawMediaFraming(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	defer server.Close()
	r := &rawMedia{conn: client, br: bufio.NewReader(client)}
	frame := make([]byte, sdk.FrameBytes)
	binary.LittleEndian.PutUint32(frame[4:], 7)
	binary.LittleEndian.PutUint64(frame[8:], 140)
	for i := sdk.FrameHeaderBytes; i < len(frame); i++ {
		frame[i] = byte(i)
	}
	errc := make(chan error, 1)
	go func() { errc <- r.echo(frame) }()
	f, err := ws.ReadFrame(server)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !f.Header.Masked || f.Header.OpCode != ws.OpBinary || !f.Header.Fin {
		t.Fatalf("header %+v", f.Header)
	}
	ws.Cipher(f.Payload, f.Header.Mask, 0)
	if !bytes.Equal(f.Payload, frame) {
		t.Fatal("the echo is not the frame as it came")
	}

	go func() {
		_ = ws.WriteFrame(server, ws.NewPingFrame([]byte("hi")))
		_ = ws.WriteFrame(server, ws.NewBinaryFrame(frame))
		_ = ws.WriteFrame(server, ws.NewTextFrame([]byte(`{"type":"bye","resultInfo":{"code":200}}`)))
		_ = ws.WriteFrame(server, ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, "call ended")))
	}()
	go func() { // the client's pong and close
		for {
			if _, err := ws.ReadFrame(server); err != nil {
				return
			}
		}
	}()
	op, p, err := r.next()
	if err != nil || op != ws.OpBinary || !bytes.Equal(p, frame) {
		t.Fatalf("binary: %v %v %v", op, len(p), err)
	}
	op, p, err = r.next()
	if err != nil || op != ws.OpText || messageType(p) != "bye" {
		t.Fatalf("text: %v %q %v", op, p, err)
	}
	_, _, err = r.next()
	if ce, ok := err.(errClosed); !ok || ce.code != 1000 {
		t.Fatalf("close: %v", err)
	}
}

// How a socket ended is told by kind, one line for many calls.
func TestSocketEnd(t *testing.T) {
	for _, c := range []struct {
		call botCall
		want string
	}{
		{botCall{media: echoStats{Done: true, Bye: true}}, "bye, then 1000"},
		{botCall{media: echoStats{Done: true}, mediaErr: "media of call x: media socket closed by the server: 1000 call ended"}, "no bye: closed by the server: 1000 call ended"},
		{botCall{media: echoStats{Done: true}, mediaErr: "closed by the server with 1000"}, "no bye: closed by the server with 1000"},
		{botCall{media: echoStats{Done: true, Bye: true}, mediaErr: "write tcp 127.0.0.1:1->127.0.0.1:2: write: broken pipe"}, "bye, then the bot's echo written after the server closed (EPIPE/ECONNRESET)"},
		{botCall{media: echoStats{}, slow: true}, "a slow bot still reading its backlog"},
		{botCall{media: echoStats{}}, "still open"},
	} {
		if got := socketEnd(&c.call); got != c.want {
			t.Errorf("%+v: %q, want %q", c.call.media, got, c.want)
		}
	}
}
