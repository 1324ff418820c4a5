package media

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/switchboard-voice/switchboard/internal/media/dtmf"
)

// benchSession is a session with a remote (a plain socket that drains
// what it gets) whose reader never sees a packet, so the benchmark may
// drive receive and tick by hand.
func benchSession(b *testing.B, dtmfPT uint8) (*Session, *net.UDPConn) {
	e, err := NewEngine(EngineOptions{BindIP: loopback})
	if err != nil {
		b.Fatal(err)
	}
	s, err := e.NewSession(func(Event) {})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	sink, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { sink.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := sink.ReadFromUDPAddrPort(buf); err != nil {
				return
			}
		}
	}()
	s.SetRemote(sink.LocalAddr().(*net.UDPAddr).AddrPort(), PCMU, dtmfPT)
	return s, sink
}

func rtpBytes(b testing.TB, pt uint8, seq uint16, ts uint32, payload []byte) []byte {
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: ts, SSRC: 1}, Payload: payload}
	buf, err := p.Marshal()
	if err != nil {
		b.Fatal(err)
	}
	return buf
}

// BenchmarkReceive is the reader's per-packet work after the syscall:
// parse, latch check, jitter estimate, hand-over to the tick.
func BenchmarkReceive(b *testing.B) {
	b.Run("audio", func(b *testing.B) {
		s, sink := benchSession(b, 101)
		from := sink.LocalAddr().(*net.UDPAddr).AddrPort()
		pkt := rtpBytes(b, 0, 0, 0, make([]byte, SamplesPerFrame))
		b.ReportAllocs()
		seq := uint16(0)
		for b.Loop() {
			pkt[2], pkt[3] = byte(seq>>8), byte(seq)
			s.receive(pkt, from, s.e.nanotime())
			s.ring.tail.Store(s.ring.head.Load()) // the tick's share, elsewhere
			seq++
		}
	})
	b.Run("rfc4733", func(b *testing.B) {
		s, sink := benchSession(b, 101)
		from := sink.LocalAddr().(*net.UDPAddr).AddrPort()
		var ev [4]byte
		dtmf.Event{Code: 5, Duration: 160}.MarshalTo(ev[:])
		pkt := rtpBytes(b, 101, 0, 0, ev[:])
		s.receive(pkt, from, s.e.nanotime()) // the event starts; updates follow
		b.ReportAllocs()
		for b.Loop() {
			s.receive(pkt, from, s.e.nanotime())
			s.ring.tail.Store(s.ring.head.Load())
		}
	})
}

// BenchmarkTick is one session's share of a tick in the IVR case: a
// received frame through the jitter buffer, decoded, recorded and searched
// for DTMF, and a prompt frame sent. "build" stops short of the sendto
// syscall; "send" includes it.
func BenchmarkTick(b *testing.B) {
	setup := func(b *testing.B) (*Session, []byte, netip.AddrPort) {
		s, sink := benchSession(b, 101)
		s.Play(NewAudio(speechLike(time.Second, 1)), true, nil)
		s.Record(RecordOptions{}, func([]int16) {}, nil)
		s.DetectTones(true)
		pkt := rtpBytes(b, 0, 0, 0, NewAudio(speechLike(20*time.Millisecond, 2)).Payload(PCMU))
		return s, pkt, sink.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	b.Run("build", func(b *testing.B) {
		s, pkt, from := setup(b)
		b.ReportAllocs()
		n := uint64(0)
		for b.Loop() {
			pkt[2], pkt[3] = byte(n>>8), byte(n)
			s.receive(pkt, from, s.e.nanotime())
			s.mu.Lock()
			cfg := s.cfg.Load()
			s.tickReceive(cfg, s.e.nanotime(), &s.st.pend)
			s.tickSend(cfg, n, &s.st.pend)
			s.mu.Unlock()
			s.st.pend.run(s.ev)
			n++
		}
	})
	b.Run("send", func(b *testing.B) {
		s, pkt, from := setup(b)
		b.ReportAllocs()
		n := uint64(0)
		for b.Loop() {
			pkt[2], pkt[3] = byte(n>>8), byte(n)
			s.receive(pkt, from, s.e.nanotime())
			s.tick(n, s.e.nanotime())
			n++
		}
	})
}

// BenchmarkPacing runs sessions in pairs on one engine over loopback,
// each playing a prompt to its peer while recording it with DTMF
// detection on (the IVR case), and reports throughput, CPU per packet
// handled (sent or received, from getrusage), the RTP inter-arrival gaps
// the receivers saw, and tick lateness. Run it without -race:
//
//	go test -run '^$' -bench Pacing -benchtime 1x ./internal/media/
func BenchmarkPacing(b *testing.B) {
	for _, n := range []int{500, 1000, 2000} {
		b.Run(fmt.Sprintf("sessions=%d", n), func(b *testing.B) {
			for b.Loop() {
				pacing(b, n, 3*time.Second)
			}
		})
	}
}

// BenchmarkDesign compares the choices the engine made: raw sendto
// against net.UDPConn's WriteTo (which gives up the worker's P on every
// send), and the number of staggered shards.
func BenchmarkDesign(b *testing.B) {
	for _, c := range []struct {
		name    string
		shards  int
		netSend bool
	}{
		{"netsend/shards=8", 8, true},
		{"rawsend/shards=2", 2, false},
		{"rawsend/shards=8", 8, false},
		{"rawsend/shards=16", 16, false},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				pacingWith(b, 2000, 3*time.Second, c.shards, c.netSend)
			}
		})
	}
}

func pacing(b *testing.B, n int, d time.Duration) { pacingWith(b, n, d, 0, false) }

func pacingWith(b *testing.B, n int, d time.Duration, shards int, netSend bool) {
	b.Helper()
	e, err := newEngine(EngineOptions{BindIP: loopback}, shards)
	if err != nil {
		b.Fatal(err)
	}
	e.netSend = netSend
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); e.Run(ctx) }()

	runtime.GC()
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	prompt := NewAudio(speechLike(5*time.Second, 5))
	rss0 := rssKB(b)
	ss := make([]*Session, n)
	for i := range ss {
		if ss[i], err = e.NewSession(func(Event) {}); err != nil {
			b.Fatal(err)
		}
	}
	runtime.ReadMemStats(&m1)
	for i := 0; i < n; i += 2 {
		ss[i].SetRemote(ss[i+1].LocalAddr(), PCMA, 101)
		ss[i+1].SetRemote(ss[i].LocalAddr(), PCMA, 101)
	}
	for _, s := range ss {
		s.Record(RecordOptions{}, func([]int16) {}, nil)
		s.DetectTones(true)
		s.Play(prompt, true, nil)
	}
	// Let playout settle, then measure.
	time.Sleep(200 * time.Millisecond)
	rss1 := rssKB(b)
	var ms0, ms1 runtime.MemStats
	runtime.ReadMemStats(&ms0)
	st0 := e.Stats()
	ru0 := rusage(b)
	start := time.Now()
	time.Sleep(d)
	elapsed := time.Since(start)
	ru1 := rusage(b)
	st1 := e.Stats()
	runtime.ReadMemStats(&ms1)
	for _, s := range ss {
		s.Close()
	}
	cancel()
	wg.Wait()

	var rx, tx gapHist
	for _, s := range ss {
		rx.add(&s.rx.gaps)
		tx.add(&s.st.tx.gaps)
	}
	pkts := (st1.PacketsSent - st0.PacketsSent) + (st1.PacketsReceived - st0.PacketsReceived)
	cpu := ru1 - ru0
	b.ReportMetric(float64(st1.PacketsSent-st0.PacketsSent)/elapsed.Seconds(), "sent-pkt/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(pkts), "cpu-µs/pkt")
	b.ReportMetric(float64(cpu.Milliseconds())/(elapsed.Seconds()*float64(n)), "cpu-ms/call-s")
	b.ReportMetric(rx.pct(0.99), "rx-p99-gap-ms")
	b.ReportMetric(rx.pct(1), "rx-max-gap-ms")
	b.ReportMetric(tx.pct(0.99), "tx-p99-gap-ms")
	b.ReportMetric(float64(st1.LateTicks-st0.LateTicks), "late-ticks")
	b.ReportMetric(float64(m1.HeapInuse-m0.HeapInuse)/float64(n)/1024, "heap-KB/session")
	b.ReportMetric(float64(ms1.Mallocs-ms0.Mallocs)/float64(pkts), "allocs/pkt")
	b.Logf("RSS growth per session %.1f KB (meaningful in the first run of a process)", float64(rss1-rss0)/float64(n))
	b.Logf("tick work: max %v, mean %v", time.Duration(e.maxWork.Load()), time.Duration(e.workTotal.Load()/max(e.workCount.Load(), 1)))
	b.Logf("%d sessions, %v: sent %d, received %d, cpu %v (%.0f%% of one core), late ticks %d, max lateness %v",
		n, elapsed.Round(time.Millisecond), st1.PacketsSent-st0.PacketsSent, st1.PacketsReceived-st0.PacketsReceived,
		cpu.Round(time.Millisecond), 100*cpu.Seconds()/elapsed.Seconds(), st1.LateTicks-st0.LateTicks, st1.MaxLateness)
	b.Logf("gaps sent (ms):     p50 %.0f  p99 %.0f  p99.9 %.0f  max %.0f", tx.pct(0.5), tx.pct(0.99), tx.pct(0.999), tx.pct(1))
	b.Logf("gaps received (ms): p50 %.0f  p99 %.0f  p99.9 %.0f  max %.0f", rx.pct(0.5), rx.pct(0.99), rx.pct(0.999), rx.pct(1))
}

// gapHist sums sessions' 1 ms gap histograms.
type gapHist struct {
	n     [gapBuckets]uint64
	total uint64
}

func (h *gapHist) add(g *[gapBuckets]uint32) {
	for i, c := range g {
		h.n[i] += uint64(c)
		h.total += uint64(c)
	}
}

// pct returns the upper edge, in ms, of the bucket holding quantile p.
func (h *gapHist) pct(p float64) float64 {
	want := max(uint64(float64(h.total)*p), 1)
	var acc uint64
	for i, c := range h.n {
		acc += c
		if acc >= want {
			return float64(i + 1)
		}
	}
	return gapBuckets
}

// rssKB is the process's resident set size.
func rssKB(b *testing.B) int {
	data, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		b.Skip("no /proc/self/statm")
	}
	var size, resident int
	fmt.Sscan(string(data), &size, &resident)
	return resident * os.Getpagesize() / 1024
}

// rusage is the process's user+system CPU time.
func rusage(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
