//go:build !linux

package media

import (
	"errors"
	"net"
)

// Elsewhere than Linux each session has a reader goroutine blocked on its
// socket, which hands datagrams to receive as they come; the tick's poll
// does nothing.

type rxBatch struct{}

func newRxBatch() *rxBatch { return nil }

type rxIO struct {
	buf  [1500]byte
	done chan struct{}
}

type tickTime struct{ now int64 }

func (e *Engine) tickTime() tickTime { return tickTime{now: e.nanotime()} }

func (s *Session) startReceiving() {
	s.io.done = make(chan struct{})
	go s.read()
}

// stopReceiving waits for the reader, which ends once Close has closed
// the socket.
func (s *Session) stopReceiving() {}

func (s *Session) waitReceiver() { <-s.io.done }

func (s *Session) closeSocket() error { return s.conn.Close() }

func (s *Session) poll(*rxBatch, tickTime) {}

func (s *Session) pollReady(*rxBatch, tickTime) {}

// shardRx is nothing here: sessions have reader goroutines.
type shardRx struct{}

func (r *shardRx) init()           {}
func (r *shardRx) add(*Session)    {}
func (r *shardRx) remove(*Session) {}
func (r *shardRx) fd() int         { return -1 }

func closeFDs([]int)             {}
func (r *shardRx) markReady(int) {}

// read is the session's reader goroutine: it owns the socket for
// receiving until Close closes it.
func (s *Session) read() {
	defer close(s.io.done)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(s.io.buf[:])
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue // transient (e.g. a truncated datagram)
		}
		s.receive(s.io.buf[:n], from, s.e.nanotime())
	}
}
