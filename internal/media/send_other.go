//go:build !linux

package media

import "net/netip"

type rawSender struct{}

func (s *Session) initSender() {}

// send writes one datagram to the remote.
func (s *Session) send(b []byte, to netip.AddrPort) error {
	_, err := s.conn.WriteToUDPAddrPort(b, to)
	return err
}
