// Package mediasock serves the media socket of app-hosted calls
// (docs/media-socket.md): one WebSocket per call over which the bot
// receives 20 ms frames of 16 kHz PCM (the mix, and each participant it
// subscribed to) and sends its own, with JSON control messages beside
// them. Call control decides who may open it and what it carries; this
// package speaks the protocol.
//
// A connection has two goroutines: the reader (the HTTP handler's), which
// takes the bot's frames straight into the call's media.AppPort and its
// subscribe messages, and the writer, which waits on the port's batches
// (wire-ready frames the media tick made, the WebSocket header included)
// and the control messages, and writes them. Neither allocates per audio
// frame. A bot that reads too slowly loses frames in the port's bounded
// ring (counted in stats); one that reads nothing for WriteTimeout is
// disconnected.
package mediasock

import (
	"bufio"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gobwas/ws"

	"github.com/switchboard-voice/switchboard/internal/callctl"
	"github.com/switchboard-voice/switchboard/internal/media"
)

// Protocol is the WebSocket subprotocol of the media socket.
const Protocol = "switchboard.media.v1"

// Close codes (RFC 6455 §7.4 and docs/media-socket.md).
const (
	CloseNormal      = 1000
	CloseGoingAway   = 1001
	CloseUnsupported = 1003
	CloseInvalid     = 1007
	ClosePolicy      = 1008
	CloseTooBig      = 1009
	CloseReplaced    = callctl.CloseReplaced
)

// maxText bounds a control message from the bot.
const maxText = 64 << 10

// Options configure Serve.
type Options struct {
	Logger *slog.Logger
	// StatsEvery is how often the socket sends stats; default 5 s.
	StatsEvery time.Duration
	// WriteTimeout is how long a write may wait for a bot that does not
	// read before the socket is given up; default 5 s.
	WriteTimeout time.Duration
}

// Attach attaches an upgraded socket to its call; detach is called when
// the socket closes. It is callctl.Manager.AttachMedia, bound to the
// caller and call.
type Attach func(sock callctl.MediaSocket) (detach func(), err error)

// Serve upgrades the request to the media socket, after the caller has
// checked who may open it, and serves it until it closes.
func Serve(w http.ResponseWriter, r *http.Request, attach Attach, o Options) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.StatsEvery <= 0 {
		o.StatsEvery = 5 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 5 * time.Second
	}
	u := ws.HTTPUpgrader{Protocol: func(p string) bool { return p == Protocol }}
	nc, rw, _, err := u.Upgrade(r, w)
	if err != nil {
		o.Logger.Debug("media socket upgrade", "err", err)
		return // the upgrader answered 400 or 426
	}
	if tc, ok := nc.(*net.TCPConn); ok {
		// Bound what waits in the kernel for a bot that reads slowly:
		// beyond it the port's ring fills and frames are dropped (and
		// counted), instead of the socket buffer growing to megabytes of
		// ever older audio.
		_ = tc.SetWriteBuffer(sendBuffer)
	}
	c := newConn(nc, rw.Reader, o)
	defer c.finish()
	// The writer runs before the socket is attached, so that a Close at
	// any moment after (a newer socket, the call's end) waits for it.
	c.started.Store(true)
	go c.write()
	detach, err := attach(c)
	if err != nil {
		c.Close(CloseNormal, truncate(err.Error()))
		return
	}
	c.read()
	detach()
	c.Close(CloseNormal, "")
}

// sendBuffer is the kernel's send buffer of a media socket: about half a
// second of the mix.
const sendBuffer = 16 << 10

// lingerRead is how long a closed socket waits for the bot's close frame
// (or for it to close the connection) before it is cut off.
const lingerRead = time.Second

// finish ends the connection once the reader is done and the socket is
// closed: what the bot still sends until it answers the close (its close
// frame, or the end of the connection) is read and dropped, so that the
// kernel does not answer it with a reset, which could also destroy the
// bye and the close frame the bot has not read yet.
func (c *Conn) finish() {
	_ = c.nc.SetReadDeadline(time.Now().Add(lingerRead))
	for {
		h, err := c.readHeader()
		if err != nil {
			break
		}
		if _, err := io.CopyN(io.Discard, c.br, h.length); err != nil || h.op == ws.OpClose {
			break
		}
	}
	_ = c.nc.Close()
}

// Conn is one media socket: a callctl.MediaSocket.
type Conn struct {
	nc  net.Conn
	br  *bufio.Reader
	o   Options
	log *slog.Logger

	wmu    sync.Mutex // one writer of frames at a time: the writer, the tick (TryWrite), Close
	events chan []byte

	// The tick's own writes (TryWrite), under wmu: the raw connection, the
	// remainder of a batch the socket took only part of, and the one
	// closure the raw write calls (no allocation per write).
	rc      syscall.RawConn
	pending []byte
	flush   chan struct{}
	tryFn   func(fd uintptr) bool
	tb      []byte
	tn      int
	terr    error
	closing atomic.Bool
	broken  atomic.Bool         // a write failed, maybe mid-frame: no close frame can follow
	ports   chan *media.AppPort // the newest port for the writer
	port    atomic.Pointer[media.AppPort]

	subMu  sync.Mutex
	subAll bool
	subIDs []uint32

	// Frames the bot sent and this connection took, for stats.
	received atomic.Uint64
	// The port's counters when this connection got it.
	baseMu sync.Mutex
	base   media.AppStats

	closeOnce  sync.Once
	quit       chan struct{}
	writerDone chan struct{}
	started    atomic.Bool
}

var _ callctl.MediaSocket = (*Conn)(nil)

func newConn(nc net.Conn, br *bufio.Reader, o Options) *Conn {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 5 * time.Second
	}
	c := &Conn{nc: nc, br: br, o: o, log: o.Logger,
		events: make(chan []byte, 256), ports: make(chan *media.AppPort, 1),
		quit: make(chan struct{}), writerDone: make(chan struct{}), flush: make(chan struct{}, 1)}
	if sc, ok := nc.(syscall.Conn); ok {
		if rc, err := sc.SyscallConn(); err == nil {
			c.rc = rc
			c.tryFn = func(fd uintptr) bool {
				c.tn, c.terr = syscall.Write(int(fd), c.tb)
				return true // one attempt: never wait for the socket
			}
		}
	}
	return c
}

// TryWrite is the port's AppWriter: the tick's batch written at once,
// without waiting, when nothing else is being written and nothing is
// left over; what the socket did not take is kept in pending, which the
// writer goroutine finishes before anything else. It never blocks.
func (c *Conn) TryWrite(b []byte) bool {
	if c.rc == nil || c.closing.Load() || !c.wmu.TryLock() {
		return false
	}
	defer c.wmu.Unlock()
	if len(c.pending) > 0 || c.closing.Load() || c.broken.Load() {
		return false
	}
	c.tb = b
	err := c.rc.Write(c.tryFn)
	c.tb = nil
	if err != nil || c.terr != nil || c.tn <= 0 {
		return false // EAGAIN (the ring takes it) or broken (the writer finds out)
	}
	if c.tn < len(b) {
		c.pending = append(c.pending[:0], b[c.tn:]...)
		select {
		case c.flush <- struct{}{}:
		default:
		}
	}
	return true
}

// flushLocked writes what TryWrite left over, waiting as any write does.
func (c *Conn) flushLocked() error {
	if len(c.pending) == 0 {
		return nil
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.o.WriteTimeout))
	_, err := c.nc.Write(c.pending)
	c.pending = c.pending[:0]
	return err
}

// Send queues a control message; a bot that lets 256 of them pile up is
// disconnected rather than ever blocking call control.
func (c *Conn) Send(msg any) {
	b, err := json.Marshal(msg)
	if err != nil {
		c.log.Error("media socket: encode a message", "err", err)
		return
	}
	select {
	case c.events <- b:
	default:
		go c.Close(ClosePolicy, "control messages not read")
	}
}

// SetPort gives the connection the call's media (nil: none); the last
// subscription applies to it.
func (c *Conn) SetPort(p *media.AppPort) {
	c.baseMu.Lock()
	if p != nil {
		c.base = p.Stats()
	}
	c.baseMu.Unlock()
	c.port.Store(p)
	if p != nil {
		c.subMu.Lock()
		p.Subscribe(c.subAll, c.subIDs...)
		c.subMu.Unlock()
	}
	for {
		select {
		case c.ports <- p:
			return
		case <-c.ports: // an older port the writer has not taken: drop it
		}
	}
}

// Close sends a close frame (code, reason) and closes the socket, once;
// when it returns the writer has stopped, so the port is not read.
func (c *Conn) Close(code int, reason string) {
	c.closeOnce.Do(func() {
		c.closing.Store(true)
		close(c.quit)
		broken := false
		if c.started.Load() {
			select {
			case <-c.writerDone:
			case <-time.After(100 * time.Millisecond):
				// The writer is stuck writing to a bot that does not
				// read: cut it off mid-frame; no close frame can follow.
				c.broken.Store(true)
				_ = c.nc.Close()
				<-c.writerDone
				broken = true
			}
		}
		c.port.Store(nil)
		if broken || c.broken.Load() {
			_ = c.nc.Close()
			return
		}
		c.wmu.Lock()
		_ = c.nc.SetWriteDeadline(time.Now().Add(250 * time.Millisecond))
		if len(c.pending) > 0 {
			// The rest of a frame the tick began: it must be whole
			// before the close frame.
			_, _ = c.nc.Write(c.pending)
			c.pending = c.pending[:0]
		}
		body := ws.NewCloseFrameBody(ws.StatusCode(code), truncate(reason))
		_ = ws.WriteFrame(c.nc, ws.NewCloseFrame(body))
		c.wmu.Unlock()
		// The reader goes on until the bot answers the close, at most
		// lingerRead; then finish closes the connection.
		if tc, ok := c.nc.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
		_ = c.nc.SetReadDeadline(time.Now().Add(lingerRead))
	})
}

// truncate keeps a close reason within the 123 bytes a close frame has.
func truncate(s string) string {
	if len(s) > 120 {
		return s[:120]
	}
	return s
}

// statsMsg is the stats message (docs/media-socket.md).
type statsMsg struct {
	Type  string `json:"type"`
	ToBot struct {
		Sent    uint64 `json:"sent"`
		Dropped uint64 `json:"dropped"`
	} `json:"toBot"`
	FromBot struct {
		Received uint64 `json:"received"`
		Dropped  uint64 `json:"dropped"`
	} `json:"fromBot"`
}

func (c *Conn) stats() statsMsg {
	m := statsMsg{Type: "stats"}
	m.FromBot.Received = c.received.Load()
	if p := c.port.Load(); p != nil {
		st := p.Stats()
		c.baseMu.Lock()
		b := c.base
		c.baseMu.Unlock()
		m.ToBot.Sent = st.Sent - b.Sent
		m.ToBot.Dropped = st.Dropped - b.Dropped
		m.FromBot.Dropped = st.Overrun - b.Overrun
	}
	return m
}

// write is the writer goroutine: batches of frames as the port makes
// them, control messages, stats.
func (c *Conn) write() {
	defer close(c.writerDone)
	tick := time.NewTicker(c.o.StatsEvery)
	defer tick.Stop()
	var p *media.AppPort
	again := false // a batch is left in the ring: look again at once
	for {
		var ready <-chan struct{}
		if p != nil {
			ready = p.Ready()
			if again {
				ready = closedChan
			}
		}
		select {
		case <-c.quit:
			// What call control queued before closing (the bye) goes
			// out before the close frame.
			c.drainEvents()
			return
		case <-c.flush:
			if !c.writeRaw(nil) {
				return
			}
		case p = <-c.ports:
			// What was queued before the port came (the hello first) goes
			// out before any audio; only then may the tick write to the
			// socket itself.
			if !c.drainEvents() {
				return
			}
			again = false
			if p != nil {
				p.SetWriter(c)
			}
		case b := <-c.events:
			if !c.writeText(b) {
				return
			}
		case <-tick.C:
			b, _ := json.Marshal(c.stats())
			if !c.writeText(b) {
				return
			}
		case <-ready:
			// One batch per turn, so that control messages, the stats and
			// the close are never starved by a bot that reads too slowly
			// for the ring to empty.
			again = false
			if b := p.Take(); b != nil {
				ok := c.writeRaw(b)
				p.Done()
				if !ok {
					return
				}
				again = p.Take() != nil
			}
		}
	}
}

// closedChan is always ready: the writer's turn when batches are left.
var closedChan = func() chan struct{} { ch := make(chan struct{}); close(ch); return ch }()

// drainEvents writes the control messages queued now; false when the
// socket broke.
func (c *Conn) drainEvents() bool {
	for {
		select {
		case b := <-c.events:
			if !c.writeText(b) {
				return false
			}
		default:
			return true
		}
	}
}

func (c *Conn) writeRaw(b []byte) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	err := c.flushLocked()
	if err == nil && len(b) > 0 {
		_ = c.nc.SetWriteDeadline(time.Now().Add(c.o.WriteTimeout))
		_, err = c.nc.Write(b)
	}
	if err != nil {
		c.log.Debug("media socket write", "err", err)
		c.broken.Store(true)
		go c.Close(ClosePolicy, "the bot does not read")
		return false
	}
	return true
}

func (c *Conn) writeText(b []byte) bool {
	var hdr [10]byte
	hdr[0] = 0x80 | byte(ws.OpText)
	n := 2
	switch l := len(b); {
	case l < 126:
		hdr[1] = byte(l)
	case l <= 0xffff:
		hdr[1] = 126
		binary.BigEndian.PutUint16(hdr[2:], uint16(l))
		n = 4
	default:
		hdr[1] = 127
		binary.BigEndian.PutUint64(hdr[2:], uint64(l))
		n = 10
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.flushLocked(); err != nil {
		c.log.Debug("media socket write", "err", err)
		c.broken.Store(true)
		go c.Close(ClosePolicy, "the bot does not read")
		return false
	}
	_ = c.nc.SetWriteDeadline(time.Now().Add(c.o.WriteTimeout))
	bufs := net.Buffers{hdr[:n], b}
	if _, err := bufs.WriteTo(c.nc); err != nil {
		c.log.Debug("media socket write", "err", err)
		c.broken.Store(true)
		go c.Close(ClosePolicy, "the bot does not read")
		return false
	}
	return true
}

// header is a frame header as the reader needs it.
type header struct {
	fin    bool
	op     ws.OpCode
	masked bool
	mask   [4]byte
	length int64
}

// readHeader parses a frame header from the buffered reader without
// allocating (RFC 6455 §5.2).
func (c *Conn) readHeader() (header, error) {
	var h header
	b, err := c.br.Peek(2)
	if err != nil {
		return h, err
	}
	h.fin = b[0]&0x80 != 0
	rsv := b[0] & 0x70
	h.op = ws.OpCode(b[0] & 0x0f)
	h.masked = b[1]&0x80 != 0
	l := int64(b[1] & 0x7f)
	need := 2
	switch l {
	case 126:
		need += 2
	case 127:
		need += 8
	}
	if h.masked {
		need += 4
	}
	if b, err = c.br.Peek(need); err != nil {
		return h, err
	}
	at := 2
	switch l {
	case 126:
		l = int64(binary.BigEndian.Uint16(b[2:]))
		at = 4
	case 127:
		l = int64(binary.BigEndian.Uint64(b[2:]))
		at = 10
	}
	if h.masked {
		copy(h.mask[:], b[at:at+4])
	}
	h.length = l
	_, _ = c.br.Discard(need)
	if rsv != 0 {
		return h, errProtocol("reserved bits set")
	}
	if l < 0 {
		return h, errProtocol("frame length overflows")
	}
	return h, nil
}

type protocolError struct {
	code   int
	reason string
}

func (e *protocolError) Error() string { return e.reason }

func errProtocol(reason string) error { return &protocolError{1002, reason} }

// read is the reader: the bot's frames into the port, its control
// messages, until the socket closes or breaks the protocol.
func (c *Conn) read() {
	var frame [media.AppFrameBytes]byte
	for {
		h, err := c.readHeader()
		if err == nil {
			err = c.readFrame(h, frame[:])
		}
		if err == nil {
			continue
		}
		var pe *protocolError
		switch {
		case errors.As(err, &pe):
			c.log.Debug("media socket: bot broke the protocol", "reason", pe.reason)
			c.Close(pe.code, pe.reason)
		case errors.Is(err, errClosedByBot):
			c.Close(CloseNormal, "")
		default:
			c.Close(CloseNormal, "")
		}
		return
	}
}

var errClosedByBot = errors.New("closed by the bot")

func (c *Conn) readFrame(h header, frame []byte) error {
	if !h.masked {
		return errProtocol("a client frame is not masked")
	}
	switch h.op {
	case ws.OpBinary:
		if !h.fin {
			return &protocolError{CloseUnsupported, "fragmented messages are not supported"}
		}
		if h.length != media.AppFrameBytes {
			_, _ = io.CopyN(io.Discard, c.br, min(h.length, 1<<20))
			return &protocolError{CloseInvalid, fmt.Sprintf("frame of %d bytes, want %d", h.length, media.AppFrameBytes)}
		}
		if _, err := io.ReadFull(c.br, frame); err != nil {
			return err
		}
		ws.Cipher(frame, h.mask, 0)
		c.received.Add(1)
		if p := c.port.Load(); p != nil {
			p.WriteFrame(frame)
		}
		return nil
	case ws.OpText:
		if !h.fin {
			return &protocolError{CloseUnsupported, "fragmented messages are not supported"}
		}
		if h.length > maxText {
			return &protocolError{CloseTooBig, fmt.Sprintf("a message of %d bytes, at most %d", h.length, maxText)}
		}
		b := make([]byte, h.length)
		if _, err := io.ReadFull(c.br, b); err != nil {
			return err
		}
		ws.Cipher(b, h.mask, 0)
		return c.control(b)
	case ws.OpPing, ws.OpPong, ws.OpClose:
		if h.length > 125 || !h.fin {
			return errProtocol("a control frame longer than 125 bytes or fragmented")
		}
		b := make([]byte, h.length)
		if _, err := io.ReadFull(c.br, b); err != nil {
			return err
		}
		ws.Cipher(b, h.mask, 0)
		switch h.op {
		case ws.OpPing:
			c.wmu.Lock()
			err := c.flushLocked() // the rest of a frame the tick began comes first
			if err == nil {
				_ = c.nc.SetWriteDeadline(time.Now().Add(c.o.WriteTimeout))
				err = ws.WriteFrame(c.nc, ws.NewPongFrame(b))
			}
			if err != nil {
				c.broken.Store(true)
			}
			c.wmu.Unlock()
			return err
		case ws.OpClose:
			return errClosedByBot
		}
		return nil
	case ws.OpContinuation:
		return &protocolError{CloseUnsupported, "fragmented messages are not supported"}
	}
	return errProtocol(fmt.Sprintf("unknown opcode %d", h.op))
}

// control handles a text message from the bot.
func (c *Conn) control(b []byte) error {
	var m struct {
		Type      string          `json:"type"`
		SourceIDs json.RawMessage `json:"sourceIds"`
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return &protocolError{CloseInvalid, "malformed message: " + err.Error()}
	}
	switch m.Type {
	case "subscribe":
		all, ids, err := parseSources(m.SourceIDs)
		if err != nil {
			return &protocolError{CloseInvalid, "malformed message: " + err.Error()}
		}
		c.subMu.Lock()
		c.subAll, c.subIDs = all, ids
		c.subMu.Unlock()
		if p := c.port.Load(); p != nil {
			p.Subscribe(all, ids...)
		}
		return nil
	case "":
		return &protocolError{CloseInvalid, "malformed message: no type"}
	}
	return &protocolError{CloseUnsupported, truncate(fmt.Sprintf("unknown message type %q", m.Type))}
}

// parseSources reads subscribe's sourceIds: "all", or an array of
// sourceIds as decimal strings (numbers are accepted too).
func parseSources(raw json.RawMessage) (all bool, ids []uint32, err error) {
	if len(raw) == 0 {
		return false, nil, errors.New(`subscribe needs "sourceIds": "all" or an array`)
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if s != "all" {
			return false, nil, fmt.Errorf(`sourceIds %q: want "all" or an array`, s)
		}
		return true, nil, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return false, nil, errors.New(`sourceIds: want "all" or an array of sourceIds`)
	}
	for _, e := range list {
		var v string
		if json.Unmarshal(e, &v) != nil {
			v = string(e)
		}
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || n == 0 {
			return false, nil, fmt.Errorf("sourceId %s is not a participant's sourceId", e)
		}
		ids = append(ids, uint32(n))
	}
	return false, ids, nil
}
