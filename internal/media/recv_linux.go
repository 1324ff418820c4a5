//go:build linux

package media

import (
	"net/netip"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

// On Linux nobody waits on a session's socket. The tick worker that ticks
// a session first takes what has arrived on its socket since the last
// tick, in batches of recvmmsg(2) with MSG_DONTWAIT, and hands each
// datagram to receive as a reader goroutine would have: no goroutine per
// call, no wake-up per packet, and one system call per session per tick
// instead of two and a scheduler round trip per packet. Nothing is later
// for it: the tick that plays a frame out still drains everything that
// arrived before it. Arrival times come from the kernel (SO_TIMESTAMPNS),
// so the jitter and pacing figures still measure the network, not the
// tick.

// rxBatchSize is how many datagrams one recvmmsg takes: more than a
// session receives in a tick (one audio packet, a few RFC 4733 ones).
const rxBatchSize = 8

// rxMaxRounds bounds the recvmmsg calls for one session in one tick;
// what is left waits in the socket for the next tick (the ring takes 16).
const rxMaxRounds = 2

// rxMaxDatagram is the largest datagram taken whole; a longer one is
// truncated by the kernel (MSG_TRUNC) and dropped.
const rxMaxDatagram = 1500

// mmsghdr is struct mmsghdr of recvmmsg(2).
type mmsghdr struct {
	hdr syscall.Msghdr
	len uint32
	_   [4]byte
}

// rxBatch is a tick worker's receive buffers, shared by the sessions it
// ticks one after the other: a session holds none of its own.
type rxBatch struct {
	msgs  [rxBatchSize]mmsghdr
	iov   [rxBatchSize]syscall.Iovec
	names [rxBatchSize]syscall.RawSockaddrInet6 // large enough for either family
	ctl   [rxBatchSize][64]byte
	bufs  [rxBatchSize][rxMaxDatagram]byte
}

func newRxBatch() *rxBatch {
	b := new(rxBatch)
	for i := range b.msgs {
		b.iov[i].Base = &b.bufs[i][0]
		b.iov[i].SetLen(rxMaxDatagram)
		h := &b.msgs[i].hdr
		h.Iov = &b.iov[i]
		h.Iovlen = 1
	}
	return b
}

// reset makes the batch ready for a recvmmsg: the kernel rewrites the
// name and control lengths.
func (b *rxBatch) reset() {
	for i := range b.msgs {
		h := &b.msgs[i].hdr
		h.Name = (*byte)(unsafe.Pointer(&b.names[i]))
		h.Namelen = uint32(unsafe.Sizeof(b.names[i]))
		h.Control = &b.ctl[i][0]
		h.SetControllen(len(b.ctl[i]))
		h.Flags = 0
		b.msgs[i].len = 0
	}
}

// rxIO is the session's side of it: its descriptor, used without net's
// reference counting, which is safe because Close takes mu and marks the
// session closed before it closes the socket, and every poll holds mu.
type rxIO struct {
	mu     sync.Mutex // held by the poll; one poller at a time
	fd     int        // -1: not pollable
	closed bool       // guarded by mu
}

// startReceiving readies the socket to be polled by the tick.
func (s *Session) startReceiving() {
	s.io.fd = -1
	rc, err := s.conn.SyscallConn()
	if err != nil {
		s.log.Warn("rtp socket: no descriptor; nothing will be received", "err", err)
		return
	}
	rc.Control(func(fd uintptr) {
		s.io.fd = int(fd)
		// Kernel receive times; without them arrival is the tick's time.
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
	})
}

// stopReceiving waits for a poll under way and ends polling, before Close
// closes the socket.
func (s *Session) stopReceiving() {
	s.io.mu.Lock()
	s.io.closed = true
	s.io.mu.Unlock()
}

func (s *Session) waitReceiver() {}

// tickTime converts the kernel's wall-clock receive times to the engine's
// monotonic nanotime, once per tick.
type tickTime struct {
	now  int64 // engine nanotime
	wall int64 // the same instant, Unix nanoseconds
}

func (e *Engine) tickTime() tickTime {
	t := time.Now()
	return tickTime{now: int64(t.Sub(e.epoch)), wall: t.UnixNano()}
}

// poll hands what has arrived on the session's socket to receive. b is the
// calling worker's batch.
func (s *Session) poll(b *rxBatch, tt tickTime) {
	io := &s.io
	io.mu.Lock()
	defer io.mu.Unlock()
	if io.closed || io.fd < 0 {
		return
	}
	for range rxMaxRounds {
		b.reset()
		// Raw, as the sender's sendto: a non-blocking recvmmsg never
		// blocks, and a worker that handed its P back to the scheduler on
		// each of its sessions would queue behind whatever else is
		// runnable and tick every later session late.
		r, _, errno := syscall.RawSyscall6(syscall.SYS_RECVMMSG, uintptr(io.fd),
			uintptr(unsafe.Pointer(&b.msgs[0])), rxBatchSize, syscall.MSG_DONTWAIT, 0, 0)
		if errno != 0 {
			return // EAGAIN: nothing more; anything else: try next tick
		}
		n := int(r)
		for i := range n {
			m := &b.msgs[i]
			if m.hdr.Flags&syscall.MSG_TRUNC != 0 {
				continue
			}
			from, ok := sockaddrToAddrPort(&b.names[i], m.hdr.Namelen)
			if !ok {
				continue
			}
			at := kernelArrival(&b.ctl[i], int(m.hdr.Controllen), tt)
			s.receive(b.bufs[i][:m.len], from, at)
		}
		if n < rxBatchSize {
			return
		}
	}
}

// sockaddrToAddrPort reads the sender's address the kernel wrote.
func sockaddrToAddrPort(sa *syscall.RawSockaddrInet6, n uint32) (netip.AddrPort, bool) {
	switch sa.Family {
	case syscall.AF_INET:
		if n < uint32(unsafe.Sizeof(syscall.RawSockaddrInet4{})) {
			return netip.AddrPort{}, false
		}
		sa4 := (*syscall.RawSockaddrInet4)(unsafe.Pointer(sa))
		p := (*[2]byte)(unsafe.Pointer(&sa4.Port))
		return netip.AddrPortFrom(netip.AddrFrom4(sa4.Addr), uint16(p[0])<<8|uint16(p[1])), true
	case syscall.AF_INET6:
		if n < uint32(unsafe.Sizeof(*sa)) {
			return netip.AddrPort{}, false
		}
		p := (*[2]byte)(unsafe.Pointer(&sa.Port))
		// A v4-mapped sender compares equal to the v4 address SDP gave.
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(p[0])<<8|uint16(p[1])), true
	}
	return netip.AddrPort{}, false
}

// kernelArrival is when the kernel received the datagram (SCM_TIMESTAMPNS in its
// control data), in engine nanotime, never after the tick; the tick's own
// time if there is none.
func kernelArrival(ctl *[64]byte, n int, tt tickTime) int64 {
	const hdrLen = int(unsafe.Sizeof(syscall.Cmsghdr{}))
	for off := 0; off+hdrLen <= n; {
		h := (*syscall.Cmsghdr)(unsafe.Pointer(&ctl[off]))
		l := int(h.Len)
		if l < hdrLen || off+l > n {
			break
		}
		if h.Level == syscall.SOL_SOCKET && h.Type == syscall.SCM_TIMESTAMPNS &&
			l >= hdrLen+int(unsafe.Sizeof(syscall.Timespec{})) {
			ts := (*syscall.Timespec)(unsafe.Pointer(&ctl[off+hdrLen]))
			at := tt.now - (tt.wall - ts.Nano())
			return min(at, tt.now)
		}
		const align = int(unsafe.Sizeof(uintptr(0))) // CMSG_ALIGN
		off += (l + align - 1) &^ (align - 1)
	}
	return tt.now
}
