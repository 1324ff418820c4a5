//go:build linux

package media

import (
	"net/netip"
	"syscall"
	"unsafe"
)

// rawSender sends on a session's socket with sendto(2) called as a raw
// system call, which does not hand the worker's P back to the scheduler:
// a non-blocking UDP send never blocks, and with hundreds of reader
// goroutines runnable, a tick worker that gave up its P on every send
// would queue behind them and pace every other session late.
//
// It uses the descriptor without net's reference counting; that is safe
// because only the tick sends and Session.Close waits for a running tick
// before closing the socket.
type rawSender struct {
	fd  int // -1: use the net.UDPConn
	sa4 syscall.RawSockaddrInet4
	sa6 syscall.RawSockaddrInet6
	v6  bool // the socket is IPv6
}

func (s *Session) initSender() {
	s.snd.fd = s.io.fd // startReceiving ran first
	s.snd.v6 = s.e.o.BindIP.Is6() && !s.e.o.BindIP.Is4In6()
	s.snd.sa4.Family = syscall.AF_INET
	s.snd.sa6.Family = syscall.AF_INET6
}

// send writes one datagram to the remote.
func (s *Session) send(b []byte, to netip.AddrPort) error {
	r := &s.snd
	if r.fd < 0 || s.e.netSend {
		_, err := s.conn.WriteToUDPAddrPort(b, to)
		return err
	}
	port := to.Port()
	var (
		sa   unsafe.Pointer
		size uintptr
	)
	if r.v6 {
		r.sa6.Port = port<<8 | port>>8
		r.sa6.Addr = to.Addr().As16()
		sa, size = unsafe.Pointer(&r.sa6), unsafe.Sizeof(r.sa6)
	} else {
		a := to.Addr().Unmap()
		if !a.Is4() {
			return syscall.EAFNOSUPPORT
		}
		r.sa4.Port = port<<8 | port>>8
		r.sa4.Addr = a.As4()
		sa, size = unsafe.Pointer(&r.sa4), unsafe.Sizeof(r.sa4)
	}
	_, _, errno := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(r.fd),
		uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), 0, uintptr(sa), size)
	if errno != 0 {
		return errno
	}
	return nil
}
