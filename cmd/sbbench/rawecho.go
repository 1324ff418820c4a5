package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"time"

	"github.com/gobwas/ws"

	"github.com/switchboard-voice/switchboard/sdk"
)

// rawMedia is a minimal client of the media socket's wire protocol
// (docs/media-socket.md), for an echo that sends each frame back byte for
// byte, its header included, as the Python client of that page does: the
// SDK's MediaSocket cannot (its writers make a header of their own). It
// reads one message at a time into a reused buffer; one goroutine reads
// and writes.
type rawMedia struct {
	conn net.Conn
	br   *bufio.Reader
	msg  []byte
	out  [8 + sdk.FrameBytes]byte // a masked binary frame: 2 + 2 length + 4 mask, then the payload
}

// dialRawMedia opens a call's media socket with the bot's token and reads
// its hello.
func dialRawMedia(ctx context.Context, url, token string) (*rawMedia, error) {
	d := ws.Dialer{
		Protocols: []string{sdk.MediaSubprotocol},
		Header:    ws.HandshakeHeaderHTTP(http.Header{"Authorization": {"Bearer " + token}}),
	}
	conn, br, hs, err := d.Dial(ctx, url)
	if err != nil {
		return nil, err
	}
	if hs.Protocol != sdk.MediaSubprotocol {
		conn.Close()
		return nil, fmt.Errorf("the server did not select %s", sdk.MediaSubprotocol)
	}
	if br == nil {
		br = bufio.NewReaderSize(conn, 16<<10)
	}
	r := &rawMedia{conn: conn, br: br, msg: make([]byte, 0, 4096)}
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
	}
	op, p, err := r.next()
	_ = conn.SetReadDeadline(time.Time{})
	if err == nil && (op != ws.OpText || messageType(p) != "hello") {
		err = errors.New("the first message is not hello")
	}
	if err != nil {
		conn.Close()
		return nil, err
	}
	return r, nil
}

// errClosed is the server's close frame.
type errClosed struct{ code int }

func (e errClosed) Error() string { return fmt.Sprintf("closed by the server with %d", e.code) }

// next reads the next data message, answering pings. The payload is
// valid until the next call.
func (r *rawMedia) next() (ws.OpCode, []byte, error) {
	r.msg = r.msg[:0]
	var op ws.OpCode
	for {
		h, err := ws.ReadHeader(r.br)
		if err != nil {
			return 0, nil, err
		}
		if h.Length > 1<<20 {
			return 0, nil, fmt.Errorf("a frame of %d bytes", h.Length)
		}
		at := len(r.msg)
		if need := at + int(h.Length); need > cap(r.msg) {
			r.msg = append(r.msg[:cap(r.msg)], make([]byte, need-cap(r.msg))...)[:at]
		}
		p := r.msg[at : at+int(h.Length)] // within capacity; the length grows for data frames only
		if _, err := io.ReadFull(r.br, p); err != nil {
			return 0, nil, err
		}
		if h.Masked {
			ws.Cipher(p, h.Mask, 0)
		}
		switch h.OpCode {
		case ws.OpPing:
			f := ws.MaskFrame(ws.NewPongFrame(append([]byte(nil), p...)))
			if err := ws.WriteFrame(r.conn, f); err != nil {
				return 0, nil, err
			}
			continue
		case ws.OpPong:
			continue
		case ws.OpClose:
			code := 1005
			if len(p) >= 2 {
				code = int(binary.BigEndian.Uint16(p))
			}
			_ = ws.WriteFrame(r.conn, ws.MaskFrame(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
			return 0, nil, errClosed{code}
		}
		if h.OpCode != ws.OpContinuation {
			op = h.OpCode
		}
		r.msg = r.msg[:at+int(h.Length)]
		if h.Fin {
			return op, r.msg, nil
		}
	}
}

// echo sends a binary message of sdk.FrameBytes back as it is, masked as
// a client must (RFC 6455 section 5.3).
func (r *rawMedia) echo(p []byte) error {
	b := r.out[:]
	b[0] = 0x80 | byte(ws.OpBinary)
	b[1] = 0x80 | 126
	binary.BigEndian.PutUint16(b[2:], uint16(len(p)))
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], rand.Uint32())
	copy(b[4:8], mask[:])
	copy(b[8:], p)
	ws.Cipher(b[8:8+len(p)], mask, 0)
	_ = r.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := r.conn.Write(b[:8+len(p)])
	return err
}

// messageType is a control message's type.
func messageType(p []byte) string {
	var v struct {
		Type string `json:"type"`
	}
	_ = json.Unmarshal(p, &v)
	return v.Type
}

// rawEchoLoop is echoLoop over rawMedia: every frame of the mix goes
// back as it came, so every echo keeps its header.
func (b *bot) rawEchoLoop(callID string, r *rawMedia) {
	defer b.echo.sockets.Done()
	defer b.echo.open.Add(-1)
	var st echoStats
	var err error
	for {
		var op ws.OpCode
		var p []byte
		if op, p, err = r.next(); err != nil {
			break
		}
		switch op {
		case ws.OpText:
			var m struct {
				Type  string `json:"type"`
				ToBot struct {
					Sent, Dropped int64
				} `json:"toBot"`
				FromBot struct {
					Received, Dropped int64
				} `json:"fromBot"`
			}
			if json.Unmarshal(p, &m) != nil {
				continue
			}
			switch m.Type {
			case "stats":
				var s sdk.MediaStats
				s.ToBot.Sent, s.ToBot.Dropped = m.ToBot.Sent, m.ToBot.Dropped
				s.FromBot.Received, s.FromBot.Dropped = m.FromBot.Received, m.FromBot.Dropped
				st.stats(s)
			case "bye":
				st.Bye = true
			}
			continue
		case ws.OpBinary:
		default:
			continue
		}
		if len(p) != sdk.FrameBytes || binary.LittleEndian.Uint32(p) != 0 {
			continue
		}
		st.frame(binary.LittleEndian.Uint32(p[4:]), binary.LittleEndian.Uint64(p[8:]), time.Now())
		if st.FramesRead%50 == 0 {
			b.publishEcho(callID, st)
		}
		if err = r.echo(p); err != nil {
			break
		}
		st.Echoed++
		st.HeaderKept++
	}
	r.conn.Close()
	var ce errClosed
	if st.Bye && errors.As(err, &ce) && ce.code == 1000 {
		err = sdk.ErrCallEnded
	}
	st.Done = true
	b.endEcho(callID, st, err)
}
