package mixer

import (
	"fmt"
	"sync"
	"testing"
)

// mixedConference is a conference of n participants in every role and
// format, with the first three talking; frames holds one input frame per
// participant.
func mixedConference(t testing.TB, n int) (*Conference, []*Participant, [][]int16) {
	t.Helper()
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	var ps []*Participant
	var frames [][]int16
	for i := range n {
		o := ParticipantOptions{ID: fmt.Sprint("p", i), Output: PCMU}
		switch {
		case i == n-1 && n > 3:
			o.Role, o.Input = Prompt, Linear16k
		case i%10 == 9:
			o.Output = PCMA
		case i%10 == 5:
			o.Input, o.Output = Linear16k, Linear16k
		case i%10 == 7:
			o.Role, o.Output = Listener, Linear8k
		}
		p, err := c.Add(o)
		if err != nil {
			t.Fatal(err)
		}
		amp := 0.001 // line noise level, about −63 dBFS
		if i < 3 {
			amp = 0.1
		}
		ps = append(ps, p)
		frames = append(frames, sine(300+50*float64(i%60), amp, o.Input.samples()*50, o.Input.samples()))
	}
	return c, ps, frames
}

// TestTickDoesNotAllocate: in steady state a tick, with every producer's
// Write and every consumer's Read, allocates nothing.
func TestTickDoesNotAllocate(t *testing.T) {
	c, ps, frames := mixedConference(t, 40)
	// A bot's recorder, which hears everyone but its prompt.
	l, err := c.Add(ParticipantOptions{ID: "recorder", Role: Listener, Without: ps[len(ps)-1]})
	if err != nil {
		t.Fatal(err)
	}
	ps = append(ps, l)
	frames = append(frames, nil)
	var f Frame
	step := func() {
		for i, p := range ps {
			p.Write(frames[i])
		}
		c.Tick()
		for _, p := range ps {
			p.Read(&f)
		}
	}
	for range 20 {
		step()
	}
	if n := testing.AllocsPerRun(50, step); n != 0 {
		t.Errorf("%v allocations per tick, want 0", n)
	}
}

// TestConcurrentUse runs a conference the way the engine will: each
// participant's session on its own goroutine, writing and reading once
// per clock tick at its own pace; the conference's ticker on another;
// and the control plane adding, removing, muting and re-formatting
// participants and polling the dominant speaker and levels throughout.
// It is a test for the race detector and for the ordering of frames: each
// reader sees the conference's ticks in order. The clock advances only
// when the conference has ticked; nothing sleeps.
func TestConcurrentUse(t *testing.T) {
	const ticks = 300
	c, ps, frames := mixedConference(t, 8)

	var wg sync.WaitGroup
	clocks := make([]chan struct{}, len(ps))
	errs := make(chan error, len(ps))
	reads := make([]int, len(ps)) // each written by its worker, read after wg.Wait
	for i, p := range ps {
		clocks[i] = make(chan struct{}, 1)
		wg.Add(1)
		go func(p *Participant, frame []int16, clock <-chan struct{}, reads *int) {
			defer wg.Done()
			var f Frame
			var last uint64
			for range clock {
				p.Write(frame)
				for p.Read(&f) {
					if f.Tick() <= last {
						errs <- fmt.Errorf("%s read tick %d after %d", p.ID(), f.Tick(), last)
						return
					}
					last = f.Tick()
					*reads++
					if f.PCM() == nil && f.Payload() == nil {
						errs <- fmt.Errorf("%s read an empty frame", p.ID())
						return
					}
				}
			}
		}(p, frames[i], clocks[i], &reads[i])
	}

	stop := make(chan struct{})
	wg.Add(1)
	go func() { // the control plane
		defer wg.Done()
		var extra []*Participant
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p := ps[i%len(ps)]
			p.SetContributes(i%3 != 0)
			p.SetHears(i%5 != 0)
			p.SetOutput([]Format{PCMU, PCMA, Linear8k, Linear16k}[i%4])
			_ = p.Level() + boolByte(p.Speaking()) + boolByte(p.Mixed())
			c.Dominant()
			c.Stats()
			if i%2 == 0 {
				x, err := c.Add(ParticipantOptions{ID: fmt.Sprint("x", i)})
				if err != nil {
					panic(err)
				}
				x.Write(frames[0]) // its producer, here, before its first tick
				extra = append(extra, x)
			} else if len(extra) > 0 {
				c.Remove(extra[0])
				extra = extra[1:]
			}
		}
	}()

	tickc, tocks := make(chan struct{}), make(chan TickStats)
	wg.Add(1)
	go func() { // the conference's ticker
		defer wg.Done()
		for range tickc {
			tocks <- c.Tick()
		}
	}()

	for n := range ticks {
		for _, ch := range clocks {
			select {
			case ch <- struct{}{}:
			default: // that session is still busy with its last tick
			}
		}
		tickc <- struct{}{}
		if st := <-tocks; st.Tick != uint64(n+1) {
			t.Fatalf("tick %d reported as %d", n+1, st.Tick)
		}
	}
	close(tickc)
	close(stop)
	for _, ch := range clocks {
		close(ch)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for i, p := range ps {
		// How many depends on the scheduler (a busy session skips
		// ticks); that frames flow at all is the point.
		if p.Role() != Prompt && reads[i] == 0 {
			t.Errorf("%s read no frame in %d ticks", p.ID(), ticks)
		}
	}
	t.Logf("frames read: %v", reads)
	if s := c.Stats(); s.Ticks != ticks {
		t.Errorf("%d ticks counted, want %d", s.Ticks, ticks)
	}
}

func boolByte(b bool) uint8 {
	if b {
		return 1
	}
	return 0
}
