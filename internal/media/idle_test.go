package media

import (
	"context"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// clockProbe records what the engine's clock does, through its hooks:
// each time it goes to sleep, and each tick a worker starts.
type clockProbe struct {
	asleep chan struct{}
	ticked chan struct{} // a tick was recorded since the last receive
	mu     sync.Mutex
	ticks  []probedTick
}

type probedTick struct {
	shard int
	m     tickMsg
}

// probe sets e's hooks; call it before Run.
func probe(e *Engine) *clockProbe {
	p := &clockProbe{asleep: make(chan struct{}, 64), ticked: make(chan struct{}, 1)}
	e.hooks.asleep = func() {
		select {
		case p.asleep <- struct{}{}:
		default:
		}
	}
	e.hooks.tick = func(sh int, m tickMsg) {
		p.mu.Lock()
		p.ticks = append(p.ticks, probedTick{sh, m})
		p.mu.Unlock()
		select {
		case p.ticked <- struct{}{}:
		default:
		}
	}
	return p
}

// take returns the ticks seen since the last take.
func (p *clockProbe) take() []probedTick {
	p.mu.Lock()
	defer p.mu.Unlock()
	t := p.ticks
	p.ticks = nil
	return t
}

// waitAsleep waits for the clock to go to sleep (again).
func (p *clockProbe) waitAsleep(t *testing.T) {
	t.Helper()
	select {
	case <-p.asleep:
	case <-time.After(wait):
		t.Fatalf("the clock did not go to sleep within %v", wait)
	}
}

func shardOf(e *Engine, sh *shard) int {
	for i, x := range e.shards {
		if x == sh {
			return i
		}
	}
	return -1
}

// TestClockSleepsWhileIdle runs the clock in a synctest bubble, on fake
// time: with nothing to tick it sleeps, however long; the first
// conference wakes it, ticked at the very moment it arrives, and then
// paced every 20 ms with no tick late; once it is gone the clock sleeps
// again.
func TestClockSleepsWhileIdle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		e, err := NewEngine(EngineOptions{BindIP: loopback})
		if err != nil {
			t.Fatal(err)
		}
		p := probe(e)
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- e.Run(ctx) }()

		idle := func(what string) {
			t.Helper()
			<-p.asleep      // on fake time: a deadlock, reported, if it never sleeps
			synctest.Wait() // and the workers are done
			before := e.Stats().Ticks
			p.take()
			time.Sleep(time.Hour)
			synctest.Wait()
			if st := e.Stats(); st.Ticks != before || len(p.take()) != 0 {
				t.Fatalf("%s: the clock ticked %d times in an hour with nothing to tick", what, st.Ticks-before)
			}
			if st := e.Stats(); st.RecentTicks != 0 {
				t.Errorf("%s: %d recent ticks after an hour asleep", what, st.RecentTicks)
			}
		}
		idle("at start")

		arrived := time.Now()
		c, err := e.NewConference(ConferenceOptions{})
		if err != nil {
			t.Fatal(err)
		}
		synctest.Wait()
		first := p.take()
		if len(first) != 1 || first[0].shard != shardOf(e, c.shard) || !first[0].m.deadline.Equal(arrived) {
			t.Fatalf("after the conference arrived: ticks %+v, want one on its shard %d due at once (%v)", first, shardOf(e, c.shard), arrived)
		}
		// Then every 20 ms, each shard at its phase, none late.
		const periods = 10
		time.Sleep(periods * FrameDuration)
		synctest.Wait()
		perShard := map[int]int{}
		for _, tk := range p.take() {
			perShard[tk.shard]++
		}
		if got := perShard[shardOf(e, c.shard)]; got != periods {
			t.Errorf("the conference's shard ticked %d times in %d periods", got, periods)
		}
		if st := e.Stats(); st.Ticks == 0 || st.LateTicks != 0 || st.MaxLateness != 0 {
			t.Errorf("stats after waking: %+v, want ticks and none late", st)
		}

		c.Close()
		idle("after the conference closed")

		cancel()
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	})
}

// TestClockWakesForSession: on the real clock and a real socket, a
// session that arrives while the clock sleeps is due its first tick
// within one period of its arrival (at once, for the first shard), late
// only by how late the scheduler runs the worker; closing it puts the
// clock back to sleep.
func TestClockWakesForSession(t *testing.T) {
	e, err := NewEngine(EngineOptions{BindIP: loopback})
	if err != nil {
		t.Fatal(err)
	}
	p := probe(e)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()

	for round := range 3 {
		p.waitAsleep(t)
		p.take()
		arrived := time.Now()
		s, err := e.NewSession(func(Event) {})
		if err != nil {
			t.Fatal(err)
		}
		sh := shardOf(e, s.shard)
		var due time.Time
		timeout := time.After(wait)
		for due.IsZero() {
			for _, tk := range p.take() {
				// A tick dispatched just before the clock slept may
				// start after the session arrived: not the one the
				// session woke.
				if tk.shard == sh && due.IsZero() && !tk.m.deadline.Before(arrived) {
					due = tk.m.deadline
				}
			}
			if due.IsZero() {
				select {
				case <-p.ticked:
				case <-timeout:
					t.Fatalf("round %d: the session's shard %d was not ticked within %v", round, sh, wait)
				}
			}
		}
		if d := due.Sub(arrived); d >= FrameDuration {
			t.Errorf("round %d: first tick due %v after the session arrived, want within one period (%v)", round, d, FrameDuration)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	p.waitAsleep(t)
}
