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
	own    bool       // fd is the session's own duplicate: the conn is closed
	ready  bool       // its shard's epoll saw data; owned by the shard's worker
}

// Most sessions receive nothing in most ticks (a caller who is not
// speaking, a prompt being played), and a recvmmsg that finds nothing
// costs about a microsecond. So each shard keeps an epoll set of its
// sessions' sockets (level-triggered: a socket not drained in a tick is
// reported again), asks it once per tick which have data, and polls only
// those. A conference still polls its members itself, every tick: it
// mixes what they sent just before.

// rxReadyMax is how many ready sockets one epoll_wait returns.
const rxReadyMax = 128

// shardRx is a shard's epoll set.
type shardRx struct {
	ep   int                // -1: none; every session is polled every tick
	byFD map[int32]*Session // guarded by the shard's mu
	evs  [rxReadyMax]syscall.EpollEvent
}

func (r *shardRx) init() {
	r.ep = -1
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return
	}
	r.ep = ep
	r.byFD = make(map[int32]*Session)
}

// add registers s's socket; the shard's mu is held.
func (r *shardRx) add(s *Session) {
	if r.ep < 0 || s.io.fd < 0 {
		s.io.ready = true // polled every tick
		return
	}
	ev := syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(s.io.fd)}
	if err := syscall.EpollCtl(r.ep, syscall.EPOLL_CTL_ADD, s.io.fd, &ev); err != nil {
		s.log.Warn("rtp socket: not in the shard's epoll set; polled every tick", "err", err)
		s.io.ready = true
		return
	}
	r.byFD[int32(s.io.fd)] = s
}

// remove unregisters s's socket before it is closed; the shard's mu is
// held.
func (r *shardRx) remove(s *Session) {
	if r.ep < 0 || s.io.fd < 0 || r.byFD[int32(s.io.fd)] != s {
		return
	}
	delete(r.byFD, int32(s.io.fd))
	_ = syscall.EpollCtl(r.ep, syscall.EPOLL_CTL_DEL, s.io.fd, nil)
}

// fd is the epoll set's descriptor (-1: none).
func (r *shardRx) fd() int { return r.ep }

// closeFDs closes an engine's epoll sets once it is unreachable.
func closeFDs(fds []int) {
	for _, fd := range fds {
		if fd >= 0 {
			syscall.Close(fd)
		}
	}
}

// markReady marks the shard's sessions whose sockets have data. It runs on
// the shard's worker, at the start of its tick, with the shard's mu held.
func (r *shardRx) markReady(sessions int) {
	if r.ep < 0 {
		return
	}
	// Level-triggered: each call may return the same ready sockets again,
	// so more calls than the shard holds sockets / rxReadyMax would only
	// repeat them.
	for range sessions/rxReadyMax + 1 {
		n, _, errno := syscall.RawSyscall6(syscall.SYS_EPOLL_PWAIT, uintptr(r.ep),
			uintptr(unsafe.Pointer(&r.evs[0])), rxReadyMax, 0, 0, 0)
		if errno != 0 {
			return
		}
		for _, ev := range r.evs[:n] {
			if s := r.byFD[ev.Fd]; s != nil {
				s.io.ready = true
			}
		}
		if int(n) < rxReadyMax {
			return
		}
	}
}

// pollReady polls s if its shard's epoll set saw data on its socket.
func (s *Session) pollReady(b *rxBatch, tt tickTime) {
	if !s.io.ready {
		return
	}
	if s.shard.rx.ep >= 0 {
		s.io.ready = false
	}
	s.poll(b, tt)
}

// startReceiving readies the socket to be polled by the tick. The session
// keeps a duplicate of the socket's descriptor and closes the net.UDPConn:
// a socket left in Go's network poller (edge-triggered epoll) would post
// an event to it for every datagram that arrives and every one that
// leaves (the write-space wake-up), and wake a parked thread for each,
// though no goroutine ever waits on the socket: at 1,000 calls, 100,000
// events a second for nothing.
func (s *Session) startReceiving() {
	s.io.fd = -1
	rc, err := s.conn.SyscallConn()
	if err != nil {
		s.log.Warn("rtp socket: no descriptor; nothing will be received", "err", err)
		return
	}
	var dupErr error
	rc.Control(func(fd uintptr) {
		// Kernel receive times; without them arrival is the tick's time.
		_ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_TIMESTAMPNS, 1)
		if s.e.netSend {
			s.io.fd = int(fd) // the benchmark's comparison sends through the conn
			return
		}
		d, _, errno := syscall.Syscall(syscall.SYS_FCNTL, fd, syscall.F_DUPFD_CLOEXEC, 0)
		if errno != 0 {
			dupErr = errno
			return
		}
		s.io.fd = int(d)
	})
	if dupErr != nil {
		// Still pollable through the conn's own descriptor.
		s.log.Warn("rtp socket: not taken out of the network poller", "err", dupErr)
		rc.Control(func(fd uintptr) { s.io.fd = int(fd) })
		return
	}
	if s.e.netSend {
		return
	}
	_ = syscall.SetNonblock(s.io.fd, true)
	_ = s.conn.Close() // leaves the poller; the socket lives on in s.io.fd
	s.io.own = true
}

// closeSocket closes the session's socket; the tick and the poll are done
// with it.
func (s *Session) closeSocket() error {
	if !s.io.own {
		return s.conn.Close()
	}
	s.io.mu.Lock()
	fd := s.io.fd
	s.io.fd = -1
	s.io.mu.Unlock()
	return syscall.Close(fd)
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
		s.e.rxPolls.Add(1)
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
