package main

import (
	"context"
	"log/slog"
	"runtime"
	"syscall"
	"time"
)

// A node at light load spends much of its CPU handing work between
// goroutines: a request, a notification or a write to the store passes
// through several (the HTTP server's, the NATS client's and server's, the
// call's actor). With a second P idle, Go wakes a thread for nearly every
// such hand-off, which finds nothing to steal and sleeps again: two
// context switches each, and a context switch costs about 10 µs on the
// benchmark's VM. On one P the same hand-off is a switch between
// goroutines on one thread. So while the node needs less than a core the
// controller runs it on one P, and gives it all of them (the count Go
// chose at start, which respects the cgroup's CPU limit) as soon as it
// needs more; back to one only after it has needed less than half a core
// for a while (runtime.adaptiveProcs; docs/benchmarks.md).
const (
	procsEvery     = time.Second
	procsUpAt      = 0.70 // cores used in a second, on one P: give it all
	procsDownAt    = 0.45 // cores used, on all: below this for procsDownAfter, one
	procsDownAfter = 10   // seconds
)

// procsState is the controller's decision state.
type procsState struct {
	max   int // the Ps it may give
	cur   int
	quiet int // consecutive seconds below procsDownAt
}

// next is the P count for the second just measured, in which the process
// used cores (CPU seconds per second).
func (s *procsState) next(cores float64) int {
	switch {
	case s.cur < s.max && cores > procsUpAt*float64(s.cur):
		s.cur, s.quiet = s.max, 0
	case s.cur > 1 && cores < procsDownAt:
		s.quiet++
		if s.quiet >= procsDownAfter {
			s.cur, s.quiet = 1, 0
		}
	default:
		s.quiet = 0
	}
	return s.cur
}

// adaptProcs runs the controller until ctx ends, then gives the process
// all its Ps back.
func adaptProcs(ctx context.Context, log *slog.Logger) {
	st := procsState{max: runtime.GOMAXPROCS(0)}
	if st.max < 2 {
		return
	}
	st.cur = 1
	runtime.GOMAXPROCS(1)
	log.Debug("go runtime: one P while the node needs less than a core", "max", st.max)
	defer runtime.GOMAXPROCS(st.max)
	t := time.NewTicker(procsEvery)
	defer t.Stop()
	lastCPU, lastAt := cpuTime(), time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			cpu := cpuTime()
			cores := (cpu - lastCPU).Seconds() / now.Sub(lastAt).Seconds()
			lastCPU, lastAt = cpu, now
			prev := st.cur
			if n := st.next(cores); n != prev {
				runtime.GOMAXPROCS(n)
				log.Debug("go runtime: Ps changed", "from", prev, "to", n, "cores", cores)
			}
		}
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
