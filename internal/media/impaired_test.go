package media

import (
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// impairedLink relays UDP from one session to another the way a bad
// network carries it: each datagram is lost with probability loss, or
// delayed by a uniform random time up to jitter, which reorders packets
// whose delays cross. It stands in for tc netem, which the kernels here
// lack (no sch_netem): the sessions' sockets, their pacing, the jitter
// buffer and RFC 4733 are all real. The seed makes a run repeatable in
// what is dropped and how long each packet waits.
type impairedLink struct {
	in   *net.UDPConn // the sender sends here
	out  *net.UDPConn // the receiver gets packets from here
	to   netip.AddrPort
	loss float64
	jit  time.Duration

	mu      sync.Mutex
	rnd     *rand.Rand
	sent    int
	dropped int
	wg      sync.WaitGroup
}

func newImpairedLink(t *testing.T, to netip.AddrPort, loss float64, jitter time.Duration, seed uint64) *impairedLink {
	t.Helper()
	listen := func() *net.UDPConn {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(loopback, 0)))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	l := &impairedLink{in: listen(), out: listen(), to: to, loss: loss, jit: jitter, rnd: rand.New(rand.NewPCG(seed, seed))}
	l.wg.Add(1)
	go l.run()
	t.Cleanup(func() {
		l.in.Close()
		l.wg.Wait()
		l.out.Close()
	})
	return l
}

func (l *impairedLink) addr() netip.AddrPort { return l.in.LocalAddr().(*net.UDPAddr).AddrPort() }

func (l *impairedLink) run() {
	defer l.wg.Done()
	for {
		buf := make([]byte, 1500)
		n, _, err := l.in.ReadFromUDPAddrPort(buf)
		if err != nil {
			return
		}
		l.mu.Lock()
		drop := l.rnd.Float64() < l.loss
		delay := time.Duration(l.rnd.Int64N(int64(l.jit) + 1))
		l.sent++
		if drop {
			l.dropped++
		}
		l.mu.Unlock()
		if drop {
			continue
		}
		l.wg.Add(1)
		time.AfterFunc(delay, func() {
			defer l.wg.Done()
			_, _ = l.out.WriteToUDPAddrPort(buf[:n], l.to)
		})
	}
}

// TestImpairedNetwork carries speech and RFC 4733 keys from A to B over
// a link that loses 3 % of packets and delays each by up to 40 ms (so
// packets arrive out of order): B still gets every key once and in order,
// and what B records still follows what A played, with no more frames
// concealed than the loss explains.
func TestImpairedNetwork(t *testing.T) {
	ea, eb := startEngine(t, EngineOptions{}), startEngine(t, EngineOptions{})
	a, _ := newSession(t, ea)
	b, bev := newSession(t, eb)
	link := newImpairedLink(t, b.LocalAddr(), 0.03, 40*time.Millisecond, 7)
	a.SetRemote(link.addr(), PCMU, 101)
	// B answers to where the packets come from: the link's far side,
	// which it latches as a NAT's address; what B sends is not under test.
	b.SetRemote(link.out.LocalAddr().(*net.UDPAddr).AddrPort(), PCMU, 101)
	b.DetectTones(true)

	src := speechLike(3*time.Second, 11)
	rec := newRecorder(len(src)/SamplesPerFrame + 10)
	b.Record(RecordOptions{}, rec.sink, rec.done)
	done, waitDone := playDone(t)
	a.Play(NewAudio(src), false, done)
	if !waitDone() {
		t.Fatal("A's play did not complete")
	}
	rec.waitFull(t)
	b.StopRecord()

	const keys = "159#0*D"
	a.SendTones(keys, 60*time.Millisecond, nil)
	if got := bev.tones(t, 'D'); got != keys {
		t.Errorf("B heard keys %q over the bad link, want %q", got, keys)
	}

	got := rec.samples()
	st := b.Stats()
	link.mu.Lock()
	sent, dropped := link.sent, link.dropped
	link.mu.Unlock()
	// The jitter buffer may add a frame of delay after a late packet, so
	// what B recorded is compared with what A sent half a second at a
	// time, each at its own lag (whole frames). A lost packet is one
	// concealed frame, which moves nothing after it.
	const win = 25 * SamplesPerFrame
	var corrs []float64
	low, silent := 0, 0
	for w0 := 0; w0+win <= len(src); w0 += win {
		want := src[w0 : w0+win]
		best, bestLag := -2.0, 0
		for l := w0; l <= w0+40*SamplesPerFrame && l+win <= len(got); l += SamplesPerFrame {
			if _, c := align(got[l:l+win], want, 0); c > best {
				best, bestLag = c, l
			}
		}
		corrs = append(corrs, best)
		if best < 0.8 {
			low++
		}
		// Frames silent where A spoke: the link's losses, and a few late
		// beyond the jitter buffer's depth, no more.
		for f := 0; f < win/SamplesPerFrame && bestLag+(f+1)*SamplesPerFrame <= len(got); f++ {
			w := rms(want[f*SamplesPerFrame : (f+1)*SamplesPerFrame])
			g := rms(got[bestLag+f*SamplesPerFrame : bestLag+(f+1)*SamplesPerFrame])
			if w > 300 && g < w*0.25 {
				silent++
			}
		}
	}
	t.Logf("link: %d packets, %d dropped; B: %+v; half-second windows correlate %.2f; %d speech frames silent", sent, dropped, st, corrs, silent)
	// Most windows line up almost exactly; one with a late packet or two
	// in it less so; none is lost.
	sorted := slices.Sorted(slices.Values(corrs))
	if len(sorted) < 5 || sorted[len(sorted)/2] < 0.9 || sorted[0] < 0.5 || low > len(sorted)/3 {
		t.Errorf("B's recording follows A's speech at %.2f in half-second windows, want a median of 0.9 or more, none below 0.5 and at most a third below 0.8, over a 3 %% loss link", corrs)
	}
	if frames := len(src) / SamplesPerFrame; silent > dropped+frames/10 {
		t.Errorf("%d frames of speech came out silent, with %d packets dropped of %d", silent, dropped, sent)
	}
}
