//go:build linux

package media

import (
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestPollKernelArrival sends a session three datagrams, the two RTP ones
// about 30 ms apart, and polls its socket once, afterwards, as a tick would: the
// packets are received in order from the sender's address, and their
// arrival times are the kernel's (the gap between them is 30 ms, not the
// nothing between two datagrams of one poll). A datagram longer than the
// buffers is dropped, not taken in part.
func TestPollKernelArrival(t *testing.T) {
	e, err := NewEngine(EngineOptions{BindIP: loopback})
	if err != nil {
		t.Fatal(err)
	}
	s, err := e.NewSession(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	far, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer far.Close()
	from := far.LocalAddr().(*net.UDPAddr).AddrPort()
	s.SetRemote(from, PCMU, 101)

	payload := make([]byte, SamplesPerFrame)
	send := func(b []byte) {
		t.Helper()
		if _, err := far.WriteToUDPAddrPort(b, s.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	send(make([]byte, rxMaxDatagram+100)) // too long: dropped whole
	t0 := time.Now()
	send(rtpBytes(t, PCMU.PayloadType, 1, 0, payload))
	t1 := time.Now()
	time.Sleep(30 * time.Millisecond) // the gap under test, not a synchronisation
	t2 := time.Now()
	send(rtpBytes(t, PCMU.PayloadType, 2, SamplesPerFrame, payload))
	t3 := time.Now()
	// The gap was at least t2-t1 and at most t3-t0, however the machine
	// scheduled the test.
	lo, hi := int(t2.Sub(t1)/time.Millisecond), int(t3.Sub(t0)/time.Millisecond)
	// Loopback queues a datagram on the receiving socket within sendto:
	// both are there to poll.

	before := s.rcvd.Load()
	s.poll(newRxBatch(), e.tickTime())
	if got := s.rcvd.Load() - before; got != 2 {
		t.Fatalf("received %d packets, want 2 (the long datagram dropped)", got)
	}
	if s.rx.src != from {
		t.Errorf("latched %v, want the sender %v", s.rx.src, from)
	}
	var gap int
	for ms, n := range s.rx.gaps {
		if n > 0 {
			gap = ms
		}
	}
	if gap < lo-1 || gap > hi+1 {
		t.Errorf("the gap between the packets measured %d ms, want %d to %d ms (kernel receive times)", gap, lo, hi)
	}
}

// TestOnlySocketsWithDataArePolled: a tick asks its shard's epoll set
// which sockets have data and polls only those; a socket not drained is
// reported again next tick.
func TestOnlySocketsWithDataArePolled(t *testing.T) {
	e, err := newEngine(EngineOptions{BindIP: loopback}, 1)
	if err != nil {
		t.Fatal(err)
	}
	sh := e.shards[0]
	if sh.rx.ep < 0 {
		t.Skip("no epoll")
	}
	var ss []*Session
	for range 10 {
		s, err := e.NewSession(nil)
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		ss = append(ss, s)
	}
	far, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
	if err != nil {
		t.Fatal(err)
	}
	defer far.Close()
	b := newRxBatch()
	tick := func() {
		sh.mu.Lock()
		sh.rx.markReady(len(sh.sessions))
		sh.mu.Unlock()
		tt := e.tickTime()
		for _, s := range ss {
			s.pollReady(b, tt)
		}
	}
	tick()
	if n := e.rxPolls.Load(); n != 0 {
		t.Fatalf("%d polls of ten idle sockets, want none", n)
	}
	s := ss[3]
	s.SetRemote(far.LocalAddr().(*net.UDPAddr).AddrPort(), PCMU, 101)
	// More than one tick's rounds take (rxMaxRounds × rxBatchSize).
	for i := range rxMaxRounds*rxBatchSize + 2 {
		if _, err := far.WriteToUDPAddrPort(rtpBytes(t, PCMU.PayloadType, uint16(i), uint32(i*SamplesPerFrame), make([]byte, SamplesPerFrame)), s.LocalAddr()); err != nil {
			t.Fatal(err)
		}
	}
	tick()
	if n, got := e.rxPolls.Load(), s.rcvd.Load(); n != rxMaxRounds || got != rxMaxRounds*rxBatchSize {
		t.Fatalf("first tick: %d polls, %d packets; want %d, %d", n, got, rxMaxRounds, rxMaxRounds*rxBatchSize)
	}
	tick() // the two left are reported again
	if got := s.rcvd.Load(); got != rxMaxRounds*rxBatchSize+2 {
		t.Fatalf("second tick: %d packets, want all %d", got, rxMaxRounds*rxBatchSize+2)
	}
	polls := e.rxPolls.Load()
	tick()
	if n := e.rxPolls.Load(); n != polls {
		t.Fatalf("%d polls once drained, want none", n-polls)
	}
}
