package callctl

import (
	"context"
	"sync"
)

// serial runs functions one at a time, in the order given, off the
// caller's goroutine: leg events and media callbacks hop through one so
// that a room or a dial-in caller never calls back into a media session
// from that session's own callback (internal/media's rule) and never
// handles two events of one leg out of order. It has a goroutine only
// while it has work, tracked by the Manager (Shutdown and Stop wait for
// it); once the Manager stops, work is dropped.
type serial struct {
	m       *Manager
	mu      sync.Mutex
	q       []func()
	running bool
}

func (s *serial) do(f func()) {
	s.mu.Lock()
	s.q = append(s.q, f)
	if s.running {
		s.mu.Unlock()
		return
	}
	s.running = true
	s.mu.Unlock()
	if !s.m.goBG(func(context.Context) { s.drain() }) {
		s.mu.Lock()
		s.running, s.q = false, nil
		s.mu.Unlock()
	}
}

func (s *serial) drain() {
	for {
		s.mu.Lock()
		if len(s.q) == 0 {
			s.running = false
			s.mu.Unlock()
			return
		}
		f := s.q[0]
		s.q[0] = nil
		s.q = s.q[1:]
		s.mu.Unlock()
		f()
	}
}
