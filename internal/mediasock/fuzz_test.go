package mediasock

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/media"
)

// clientFrame is a masked client frame (RFC 6455 §5.2) of op and payload.
func clientFrame(op byte, payload []byte) []byte {
	var b bytes.Buffer
	b.WriteByte(0x80 | op)
	switch n := len(payload); {
	case n < 126:
		b.WriteByte(0x80 | byte(n))
	case n <= 0xffff:
		b.WriteByte(0x80 | 126)
		_ = binary.Write(&b, binary.BigEndian, uint16(n))
	default:
		b.WriteByte(0x80 | 127)
		_ = binary.Write(&b, binary.BigEndian, uint64(n))
	}
	mask := [4]byte{1, 2, 3, 4}
	b.Write(mask[:])
	for i, v := range payload {
		b.WriteByte(v ^ mask[i%4])
	}
	return b.Bytes()
}

// FuzzReader feeds whatever a bot could send into a media socket's
// reader: it must end (the input runs out, or the socket closes with a
// code) without a panic, whatever the bytes.
func FuzzReader(f *testing.F) {
	frame := make([]byte, media.AppFrameBytes)
	f.Add(clientFrame(2, frame))
	f.Add(clientFrame(1, []byte(`{"type":"subscribe","sourceIds":"all"}`)))
	f.Add(clientFrame(1, []byte(`{"type":"subscribe","sourceIds":["2",3]}`)))
	f.Add(clientFrame(1, []byte(`{"type":"dance"}`)))
	f.Add(clientFrame(9, []byte("ping")))
	f.Add(clientFrame(8, []byte{3, 232}))
	f.Add(clientFrame(2, frame[:100]))
	f.Add(append(clientFrame(0, frame[:10]), clientFrame(2, frame)...))
	f.Add([]byte{0x82, 0xff, 0, 0, 0, 0, 0, 0, 0, 1})
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		server, client := net.Pipe()
		defer client.Close()
		go func() { _, _ = io.Copy(io.Discard, client) }() // what the server writes back
		go func() {
			_, _ = client.Write(in)
			_ = client.Close()
		}()
		c := newConn(server, bufio.NewReader(server), Options{WriteTimeout: time.Second})
		done := make(chan struct{})
		go func() {
			defer close(done)
			c.read()
			c.Close(CloseNormal, "")
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("the reader did not end on %d bytes", len(in))
		}
		_ = server.Close()
	})
}

// The parts of a control message the socket reads.
func TestParseSources(t *testing.T) {
	for _, tc := range []struct {
		in   string
		all  bool
		ids  []uint32
		fail bool
	}{
		{`"all"`, true, nil, false},
		{`["2","3"]`, false, []uint32{2, 3}, false},
		{`[2, "7"]`, false, []uint32{2, 7}, false},
		{`[]`, false, nil, false},
		{`"some"`, false, nil, true},
		{`["0"]`, false, nil, true},
		{`["x"]`, false, nil, true},
		{`{}`, false, nil, true},
		{``, false, nil, true},
	} {
		all, ids, err := parseSources([]byte(tc.in))
		if (err != nil) != tc.fail || all != tc.all || len(ids) != len(tc.ids) {
			t.Errorf("%s: all %v ids %v err %v", tc.in, all, ids, err)
			continue
		}
		for i := range ids {
			if ids[i] != tc.ids[i] {
				t.Errorf("%s: ids %v, want %v", tc.in, ids, tc.ids)
			}
		}
	}
}
