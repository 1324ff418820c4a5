package sdk

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// The media socket's wire format (docs/media-socket.md): every audio
// message is a 16-byte little-endian header and 20 ms of 16 kHz mono s16le.
const (
	// MediaSubprotocol is the WebSocket subprotocol of the media socket.
	MediaSubprotocol = "switchboard.media.v1"
	// FrameSamples is the number of samples in one frame: 20 ms at 16 kHz.
	FrameSamples = 320
	// FrameAudioBytes is the size of one frame's audio.
	FrameAudioBytes = 2 * FrameSamples
	// FrameHeaderBytes is the size of a frame's header.
	FrameHeaderBytes = 16
	// FrameBytes is the size of every binary message on the socket.
	FrameBytes = FrameHeaderBytes + FrameAudioBytes
)

// Errors of a MediaSocket. They are returned wrapped; test with errors.Is.
var (
	// ErrMediaClosed is returned once the bot closed the socket.
	ErrMediaClosed = errors.New("media socket closed")
	// ErrMediaReplaced is returned when a newer socket for the same call
	// took over (close code 4001). The socket does not reconnect: that
	// would take the call back from the newer one.
	ErrMediaReplaced = errors.New("media socket replaced by a newer one")
)

// readBuffer is the kernel receive buffer of a media socket.
const readBuffer = 32 << 10

// MediaFrame is one 20 ms frame of one source. ReadFrame fills it in
// place, so a bot reads every frame into the same MediaFrame without
// allocating.
type MediaFrame struct {
	// SourceID is 0 for the mix of everyone but the bot, else the
	// participant's sourceId (MediaSource.ID).
	SourceID uint32
	// Sequence grows by one per frame of this source: a jump is frames
	// missed.
	Sequence uint32
	// Timestamp is milliseconds on the call's media clock, +20 per frame;
	// all the streams of one tick carry the same one.
	Timestamp uint64
	// PCM is the audio: 16 kHz mono.
	PCM [FrameSamples]int16
	// Raw is the same audio as it came: s16le bytes.
	Raw [FrameAudioBytes]byte
}

// MediaSource is a participant whose audio the bot can receive: an entry
// of the socket's roster.
type MediaSource struct {
	ParticipantID string `json:"participantId"`
	// SourceID is the decimal sourceId of the participant's mediaStreams.
	SourceID    string `json:"sourceId"`
	DisplayName string `json:"displayName,omitempty"`
	// ID is SourceID as a number: the SourceID of its frames.
	ID uint32 `json:"-"`
}

// MediaFormat is the audio format hello announces.
type MediaFormat struct {
	Encoding   string `json:"encoding"`
	SampleRate int    `json:"sampleRate"`
	Channels   int    `json:"channels"`
	FrameMs    int    `json:"frameMs"`
}

// MediaEvent is what a MediaSocket reports besides audio: one of
// MediaHello, MediaRoster, MediaDominantSpeaker, MediaDTMF, MediaStats,
// MediaBye, MediaDisconnected and MediaReconnected.
type MediaEvent interface{ mediaEvent() }

// MediaHello is the first message of every socket, a reconnected one
// included.
type MediaHello struct {
	CallID string
	Format MediaFormat
	Roster []MediaSource
}

// MediaRoster is the roster after it changed.
type MediaRoster struct{ Roster []MediaSource }

// MediaDominantSpeaker tells who is heard most now; SourceID is "" when
// nobody is.
type MediaDominantSpeaker struct{ SourceID, ParticipantID string }

// MediaDTMF is a key a participant pressed: "0"–"9", "*", "#", "A"–"D".
type MediaDTMF struct{ Tone, SourceID, ParticipantID string }

// MediaStats are the platform's frame counts since the socket opened.
type MediaStats struct {
	ToBot   struct{ Sent, Dropped int64 }
	FromBot struct{ Received, Dropped int64 }
}

// MediaBye is the call's end, with its resultInfo as in the terminated
// notification.
type MediaBye struct{ ResultInfo graph.ResultInfo }

// MediaDisconnected tells that the socket dropped while the call may
// still be up, and that the MediaSocket is reconnecting.
type MediaDisconnected struct{ Err error }

// MediaReconnected tells that a new socket carries on: Attempts dials
// after Down without one.
type MediaReconnected struct {
	Attempts int
	Down     time.Duration
}

func (MediaHello) mediaEvent()           {}
func (MediaRoster) mediaEvent()          {}
func (MediaDominantSpeaker) mediaEvent() {}
func (MediaDTMF) mediaEvent()            {}
func (MediaStats) mediaEvent()           {}
func (MediaBye) mediaEvent()             {}
func (MediaDisconnected) mediaEvent()    {}
func (MediaReconnected) mediaEvent()     {}

// MediaOptions configure a MediaSocket; the zero value is the defaults.
type MediaOptions struct {
	// NoReconnect makes a dropped socket final. By default a socket that
	// drops while the call may still be up (a network error, the server
	// going away) is reopened, never after bye, after the bot's Close, or
	// after a newer socket replaced it.
	NoReconnect bool
	// ReconnectWindow is how long reconnecting goes on; 30 s when zero,
	// the platform's default media.socket.reconnectWindow, after which
	// the call has ended.
	ReconnectWindow time.Duration
	// ReconnectBackoff is the wait after the first failed attempt, doubled
	// after each one up to MaxReconnectBackoff, with ±20 % jitter; 100 ms
	// and 2 s when zero. The first attempt is made at once.
	ReconnectBackoff, MaxReconnectBackoff time.Duration
	// DialTimeout bounds one opening: the handshake and the hello; 10 s
	// when zero.
	DialTimeout time.Duration
	// WriteTimeout bounds one write; 5 s when zero. A write that times out
	// breaks the socket, which then reconnects.
	WriteTimeout time.Duration
	// EventBuffer is the capacity of Events; 64 when zero. When nobody
	// reads it, the oldest events are dropped rather than holding up the
	// audio.
	EventBuffer int
	// Logger receives disconnections and reconnections; the Client's when
	// nil.
	Logger *slog.Logger
}

// MediaSocket is a call's media socket (docs/media-socket.md): the call's
// audio as 20 ms frames, the bot's audio back, and the media events.
//
// One goroutine reads: ReadFrame returns the next audio frame and, as a
// side effect, handles everything else the platform sends (events go to
// Events; pings are answered; a dropped socket is reopened). The socket
// must be read continuously, 50 frames a second per stream, or the
// platform drops frames. Writes (WritePCM, WriteBytes, Subscribe) may come
// from any goroutine, alongside the reader. Close ends it all.
type MediaSocket struct {
	c      *Client
	callID string
	url    string
	o      MediaOptions
	log    *slog.Logger
	done   <-chan struct{} // the call ended (Call.OpenMedia); nil otherwise
	ctx    context.Context // cancelled by Close: stops dials and backoff waits
	cancel context.CancelFunc

	// The reader's: only a goroutine holding readMu touches these.
	readMu sync.Mutex
	rconn  net.Conn
	br     *bufio.Reader
	hdr    [14]byte
	ctl    [125]byte
	msg    []byte
	final  error // set once: the socket is over
	bye    bool

	// The writers': under wmu.
	wmu    sync.Mutex
	wconn  net.Conn // nil while reconnecting
	wbuf   [14 + FrameBytes]byte
	wseq   uint32
	wecho  bool      // WriteFrame: the header is whdr, not our own
	whdr   [3]uint64 // sourceId, sequence, timestamp
	subMsg []byte    // the last subscribe, sent again on reconnect
	closed bool      // the socket is over: Close was called or the reader gave up
	werr   error     // what writes return once closed

	closing atomic.Bool
	events  chan MediaEvent

	smu    sync.Mutex
	hello  MediaHello
	roster map[uint32]MediaSource
	result *graph.ResultInfo

	framesRead, framesWritten, writesDropped, eventsDropped, reconnects atomic.Int64
}

// MediaCounters are a MediaSocket's own counts.
type MediaCounters struct {
	// FramesRead and FramesWritten count audio frames.
	FramesRead, FramesWritten int64
	// WritesDropped counts frames written while no socket was open.
	WritesDropped int64
	// EventsDropped counts events dropped because Events was full.
	EventsDropped int64
	// Reconnects counts sockets reopened.
	Reconnects int64
}

// OpenMedia opens the media socket of a call created or answered with
// appHostedMediaConfig (docs/media-socket.md): GET
// {BaseURL}/communications/calls/{id}/media upgraded to a WebSocket with
// the client's token, subprotocol switchboard.media.v1. It returns once the
// platform's hello has come (Hello, Roster). For an incoming call, open it
// before answering so that no audio is lost. ctx bounds the opening only;
// the socket lives until Close or the call's end. A refusal before the
// upgrade is a *GraphError (401, 403, 404, 400); o may be nil.
func (c *Client) OpenMedia(ctx context.Context, callID string, o *MediaOptions) (*MediaSocket, error) {
	return c.openMedia(ctx, callID, o, nil)
}

// OpenMedia opens the call's media socket (see Client.OpenMedia). It does
// not reconnect once the Handler has seen the call terminate.
func (c *Call) OpenMedia(ctx context.Context, o *MediaOptions) (*MediaSocket, error) {
	cl, err := c.client()
	if err != nil {
		return nil, err
	}
	return cl.openMedia(ctx, c.id, o, c.done)
}

func (c *Client) openMedia(ctx context.Context, callID string, opts *MediaOptions, done <-chan struct{}) (*MediaSocket, error) {
	var o MediaOptions
	if opts != nil {
		o = *opts
	}
	if o.ReconnectWindow <= 0 {
		o.ReconnectWindow = 30 * time.Second
	}
	if o.ReconnectBackoff <= 0 {
		o.ReconnectBackoff = 100 * time.Millisecond
	}
	if o.MaxReconnectBackoff <= 0 {
		o.MaxReconnectBackoff = 2 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 5 * time.Second
	}
	if o.EventBuffer <= 0 {
		o.EventBuffer = 64
	}
	if o.Logger == nil {
		o.Logger = c.log
	}
	m := &MediaSocket{c: c, callID: callID, url: c.MediaURL(callID), o: o, log: o.Logger.With("call", callID), done: done,
		msg: make([]byte, 0, 4096), events: make(chan MediaEvent, o.EventBuffer), roster: map[uint32]MediaSource{}}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	dctx, cancel := context.WithTimeout(ctx, o.DialTimeout)
	defer cancel()
	if err := m.open(dctx); err != nil {
		m.cancel()
		return nil, fmt.Errorf("open media of call %s: %w", callID, err)
	}
	return m, nil
}

// MediaURL is the URL of a call's media socket: the call's URL with
// ws or wss for http or https, and /media. A bot that hosts its media in
// another program hands it this URL and a Token.
func (c *Client) MediaURL(callID string) string {
	u := c.callURL(callID, "media")
	switch {
	case strings.HasPrefix(u, "https://"):
		return "wss://" + strings.TrimPrefix(u, "https://")
	case strings.HasPrefix(u, "http://"):
		return "ws://" + strings.TrimPrefix(u, "http://")
	}
	return u
}

// CallID is the id of the socket's call.
func (m *MediaSocket) CallID() string { return m.callID }

// Events delivers the platform's events and the socket's own
// (MediaDisconnected, MediaReconnected), in order. They are read off the
// socket by ReadFrame: nothing arrives while nobody reads frames. The
// channel is closed when the socket is over.
func (m *MediaSocket) Events() <-chan MediaEvent { return m.events }

// Hello is the last hello the platform sent.
func (m *MediaSocket) Hello() MediaHello {
	m.smu.Lock()
	defer m.smu.Unlock()
	h := m.hello
	h.Roster = append([]MediaSource(nil), h.Roster...)
	return h
}

// Roster is the participants whose audio the bot can receive, as last
// told (hello or roster), ordered by source id.
func (m *MediaSocket) Roster() []MediaSource {
	m.smu.Lock()
	defer m.smu.Unlock()
	out := make([]MediaSource, 0, len(m.roster))
	for _, s := range m.roster {
		out = append(out, s)
	}
	sortSources(out)
	return out
}

// Source looks up a frame's source in the roster, without allocating.
func (m *MediaSocket) Source(id uint32) (MediaSource, bool) {
	m.smu.Lock()
	defer m.smu.Unlock()
	s, ok := m.roster[id]
	return s, ok
}

// Result is the call's resultInfo from bye; nil before.
func (m *MediaSocket) Result() *graph.ResultInfo {
	m.smu.Lock()
	defer m.smu.Unlock()
	return m.result
}

// Counters returns the socket's counts so far.
func (m *MediaSocket) Counters() MediaCounters {
	return MediaCounters{FramesRead: m.framesRead.Load(), FramesWritten: m.framesWritten.Load(),
		WritesDropped: m.writesDropped.Load(), EventsDropped: m.eventsDropped.Load(), Reconnects: m.reconnects.Load()}
}

// open dials the socket and reads its hello. Called by OpenMedia and by
// the reader (holding readMu) to reconnect.
func (m *MediaSocket) open(ctx context.Context) error {
	conn, br, err := m.dial(ctx)
	if err != nil {
		return err
	}
	if br == nil {
		br = bufio.NewReaderSize(conn, 8192)
	}
	m.rconn, m.br = conn, br
	// The hello comes at once; bound the wait for it by ctx.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetReadDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetReadDeadline(time.Unix(1, 0)) })
	op, p, err := m.readMessage()
	if !stop() {
		err = ctx.Err() // the deadline may be set after this read: drop the socket
	}
	_ = conn.SetReadDeadline(time.Time{})
	if err == nil && (op != ws.OpText || !isType(p, "hello")) {
		err = fmt.Errorf("the first message is not hello")
	}
	if err == nil {
		err = m.handleText(p)
	}
	if err != nil {
		conn.Close()
		m.rconn, m.br = nil, nil
		return err
	}
	m.wmu.Lock()
	if m.closed {
		m.wmu.Unlock()
		conn.Close()
		return ErrMediaClosed
	}
	m.wconn = conn
	if m.subMsg != nil && m.writeLocked(ws.OpText, m.subMsg) != nil {
		// The reader finds the connection broken and opens another.
		conn.Close()
		m.wconn = nil
	}
	m.wmu.Unlock()
	return nil
}

// dial upgrades the connection, refreshing the token once if it is
// refused with 401.
func (m *MediaSocket) dial(ctx context.Context) (net.Conn, *bufio.Reader, error) {
	for refreshed := false; ; refreshed = true {
		tok, err := m.c.tokens.get(ctx)
		if err != nil {
			return nil, nil, err
		}
		var refusal *GraphError
		d := ws.Dialer{
			Protocols: []string{MediaSubprotocol},
			Header: ws.HandshakeHeaderHTTP(http.Header{
				"Authorization": {"Bearer " + tok}, "User-Agent": {"switchboard-sdk-go"}, "Client-Request-Id": {newUUID()}}),
			OnStatusError: func(status int, _ []byte, r io.Reader) {
				refusal = readRefusal(status, r)
			},
		}
		conn, br, hs, err := d.Dial(ctx, m.url)
		if err != nil {
			if refusal != nil {
				if refusal.StatusCode == http.StatusUnauthorized && !refreshed {
					m.c.tokens.invalidate(tok)
					continue
				}
				return nil, nil, refusal
			}
			return nil, nil, err
		}
		if hs.Protocol != MediaSubprotocol {
			conn.Close()
			return nil, nil, fmt.Errorf("the server did not select %s", MediaSubprotocol)
		}
		if tc, ok := conn.(*net.TCPConn); ok {
			// A bot that falls behind should see gaps (the platform drops
			// what it cannot send), not seconds of old audio piling up in
			// its own kernel: about a second of the mix fits.
			_ = tc.SetReadBuffer(readBuffer)
		}
		return conn, br, nil
	}
}

// readRefusal parses a refused upgrade's response into a *GraphError.
func readRefusal(status int, r io.Reader) *GraphError {
	resp, err := http.ReadResponse(bufio.NewReader(io.LimitReader(r, 1<<20)), nil)
	if err != nil {
		return &GraphError{StatusCode: status, Code: http.StatusText(status)}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return parseGraphError(resp, body, "")
}

// ReadFrame reads the next audio frame into f, handling the events,
// pings and reconnections that come before it. It allocates nothing per
// frame. Only one goroutine may read.
//
// It returns an error once the socket is over: ErrCallEnded after bye
// (Result has the call's resultInfo), ErrMediaClosed after Close,
// ErrMediaReplaced, a *MediaCloseError for another close, or the error
// that stopped reconnecting. Every later call returns the same error.
func (m *MediaSocket) ReadFrame(f *MediaFrame) error {
	m.readMu.Lock()
	defer m.readMu.Unlock()
	for {
		if m.final != nil {
			return m.final
		}
		op, p, err := m.readMessage()
		if err != nil {
			m.broken(err)
			continue
		}
		if m.closing.Load() {
			continue // waiting for the close handshake
		}
		switch op {
		case ws.OpBinary:
			if len(p) != FrameBytes {
				m.log.Warn("media socket: skipped a frame of the wrong size", "bytes", len(p))
				continue
			}
			f.SourceID = binary.LittleEndian.Uint32(p[0:])
			f.Sequence = binary.LittleEndian.Uint32(p[4:])
			f.Timestamp = binary.LittleEndian.Uint64(p[8:])
			copy(f.Raw[:], p[FrameHeaderBytes:])
			for i := range f.PCM {
				f.PCM[i] = int16(binary.LittleEndian.Uint16(f.Raw[2*i:]))
			}
			m.framesRead.Add(1)
			return nil
		case ws.OpText:
			if err := m.handleText(p); err != nil {
				m.log.Warn("media socket: ignored a malformed message", "err", err)
			}
		}
	}
}

// broken handles the end of the reader's connection: it reconnects, or
// sets final.
func (m *MediaSocket) broken(err error) {
	m.rconn.Close()
	m.wmu.Lock()
	m.wconn = nil
	m.wmu.Unlock()
	m.rconn, m.br = nil, nil
	var ce *MediaCloseError
	isClose := errors.As(err, &ce)
	switch {
	case m.closing.Load():
		m.finish(ErrMediaClosed)
		return
	case m.bye:
		m.finish(fmt.Errorf("media of call %s: %w", m.callID, ErrCallEnded))
		return
	case isClose && ce.Code == 4001:
		m.finish(fmt.Errorf("media of call %s: %w", m.callID, ErrMediaReplaced))
		return
	case isClose && ce.Code != 1001 && ce.Code != 1006 && ce.Code != 1011 && ce.Code != 1012 && ce.Code != 1013 &&
		// A 1008 "the bot does not read" is the platform giving up on
		// a socket that stalled (a pause of the bot's): a new one
		// carries on.
		(ce.Code != 1008 || !strings.Contains(ce.Reason, "does not read")):
		// 1000 without bye, 1003, 1007, 1009…: the server's last word on
		// this socket, or the bot's fault; a new socket would not help.
		m.finish(fmt.Errorf("media of call %s: %w", m.callID, err))
		return
	case m.o.NoReconnect || m.callOver():
		m.finish(fmt.Errorf("media of call %s: %w", m.callID, err))
		return
	}
	m.log.Info("media socket dropped; reconnecting", "err", err)
	m.emit(MediaDisconnected{Err: err})
	if rerr := m.reconnect(); rerr != nil {
		m.finish(fmt.Errorf("media of call %s: reconnect after %v: %w", m.callID, err, rerr))
	}
}

func (m *MediaSocket) callOver() bool {
	if m.done == nil {
		return false
	}
	select {
	case <-m.done:
		return true
	default:
		return false
	}
}

// reconnect opens a new socket with backoff, within ReconnectWindow.
func (m *MediaSocket) reconnect() error {
	start := time.Now()
	deadline := start.Add(m.o.ReconnectWindow)
	wait := m.o.ReconnectBackoff
	for attempt := 1; ; attempt++ {
		dl := time.Now().Add(m.o.DialTimeout)
		if deadline.Before(dl) {
			dl = deadline
		}
		dctx, cancel := context.WithDeadline(m.ctx, dl)
		err := m.open(dctx)
		cancel()
		if err == nil {
			m.reconnects.Add(1)
			down := time.Since(start)
			m.log.Info("media socket reconnected", "attempts", attempt, "down", down)
			m.emit(MediaReconnected{Attempts: attempt, Down: down})
			return nil
		}
		var ge *GraphError
		switch {
		case m.closing.Load() || errors.Is(err, ErrMediaClosed):
			return ErrMediaClosed
		case errors.As(err, &ge) && ge.StatusCode == http.StatusNotFound:
			return fmt.Errorf("%w: %w", ErrCallEnded, err)
		case errors.As(err, &ge) && ge.StatusCode < 500 && ge.StatusCode != http.StatusTooManyRequests:
			return err
		case m.callOver():
			return fmt.Errorf("%w: %w", ErrCallEnded, err)
		}
		d := time.Duration(float64(wait) * (0.8 + 0.4*rand.Float64()))
		if time.Now().Add(d).After(deadline) {
			return fmt.Errorf("no socket for %s: %w", m.o.ReconnectWindow, err)
		}
		m.log.Debug("media socket: reconnect failed", "attempt", attempt, "err", err, "wait", d)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-m.ctx.Done():
			t.Stop()
			return ErrMediaClosed
		case <-m.done:
			t.Stop()
			return fmt.Errorf("%w: %w", ErrCallEnded, err)
		}
		wait = min(2*wait, m.o.MaxReconnectBackoff)
	}
}

// finish makes err final and closes Events. The reader's connection is
// already closed.
func (m *MediaSocket) finish(err error) {
	m.final = err
	m.wmu.Lock()
	if !m.closed {
		m.closed, m.werr = true, err
	}
	m.wmu.Unlock()
	m.cancel()
	close(m.events)
}

// MediaCloseError is the server's close of the socket with a code and
// reason other than those with an error of their own.
type MediaCloseError struct {
	Code   int
	Reason string
}

func (e *MediaCloseError) Error() string {
	return fmt.Sprintf("media socket closed by the server: %d %s", e.Code, e.Reason)
}

// readMessage reads the next data message into m.msg, answering pings
// and the close handshake on the way (RFC 6455 section 5). The payload is
// valid until the next read.
func (m *MediaSocket) readMessage() (ws.OpCode, []byte, error) {
	const maxMessage = 4 << 20
	m.msg = m.msg[:0]
	var op ws.OpCode
	for {
		fin, code, masked, mask, n, err := m.readHeader()
		if err != nil {
			return 0, nil, err
		}
		if code.IsControl() {
			if n > int64(len(m.ctl)) || !fin {
				return 0, nil, m.protocolError("bad control frame")
			}
			p := m.ctl[:n]
			if _, err := io.ReadFull(m.br, p); err != nil {
				return 0, nil, err
			}
			if masked {
				ws.Cipher(p, mask, 0)
			}
			switch code {
			case ws.OpPing:
				m.wmu.Lock()
				if m.wconn != nil {
					_ = m.writeLocked(ws.OpPong, p)
				}
				m.wmu.Unlock()
			case ws.OpClose:
				ce := &MediaCloseError{Code: 1005}
				if len(p) >= 2 {
					ce.Code = int(binary.BigEndian.Uint16(p))
					ce.Reason = string(p[2:])
				}
				echo := ce.Code
				if echo == 1005 || echo < 1000 || echo > 4999 {
					echo = 1000
				}
				m.sendClose(echo, "")
				return 0, nil, ce
			}
			continue
		}
		switch {
		case code == ws.OpContinuation && op == 0, code != ws.OpContinuation && op != 0:
			return 0, nil, m.protocolError("bad fragmentation")
		case code != ws.OpContinuation:
			op = code
		}
		if int64(len(m.msg))+n > maxMessage {
			return 0, nil, m.protocolError("message too big")
		}
		at := len(m.msg)
		if need := at + int(n); need > cap(m.msg) {
			m.msg = append(m.msg[:cap(m.msg)], make([]byte, need-cap(m.msg))...)
		}
		m.msg = m.msg[:at+int(n)]
		if _, err := io.ReadFull(m.br, m.msg[at:]); err != nil {
			return 0, nil, err
		}
		if masked {
			ws.Cipher(m.msg[at:], mask, 0)
		}
		if fin {
			return op, m.msg, nil
		}
	}
}

// readHeader reads a frame header into m.hdr, parsing it without
// allocating (ws.ReadHeader allocates its buffer on every call).
func (m *MediaSocket) readHeader() (fin bool, op ws.OpCode, masked bool, mask [4]byte, n int64, err error) {
	if _, err = io.ReadFull(m.br, m.hdr[:2]); err != nil {
		return
	}
	fin, op, masked = m.hdr[0]&0x80 != 0, ws.OpCode(m.hdr[0]&0x0f), m.hdr[1]&0x80 != 0
	if m.hdr[0]&0x70 != 0 {
		err = m.protocolError("reserved bits set")
		return
	}
	n = int64(m.hdr[1] & 0x7f)
	extra := 0
	switch n {
	case 126:
		extra = 2
	case 127:
		extra = 8
	}
	if masked {
		extra += 4
	}
	if extra > 0 {
		b := m.hdr[2 : 2+extra]
		if _, err = io.ReadFull(m.br, b); err != nil {
			return
		}
		switch n {
		case 126:
			n, b = int64(binary.BigEndian.Uint16(b)), b[2:]
		case 127:
			u := binary.BigEndian.Uint64(b)
			if u > 1<<40 {
				err = m.protocolError("frame too big")
				return
			}
			n, b = int64(u), b[8:]
		}
		if masked {
			copy(mask[:], b)
		}
	}
	return
}

func (m *MediaSocket) protocolError(what string) error {
	m.sendClose(int(ws.StatusProtocolError), what)
	return &MediaCloseError{Code: int(ws.StatusProtocolError), Reason: "client: " + what}
}

// sendClose sends a close frame, once per connection, best effort.
func (m *MediaSocket) sendClose(code int, reason string) {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if m.wconn == nil {
		return
	}
	var p [125]byte
	binary.BigEndian.PutUint16(p[:], uint16(code))
	n := 2 + copy(p[2:], reason)
	_ = m.writeLocked(ws.OpClose, p[:n])
	m.wconn = nil // nothing more goes out on it
}

// writeLocked writes one frame, masked as a client must (RFC 6455 section
// 5.3), from m.wbuf. p may be m.wbuf[14:] itself.
func (m *MediaSocket) writeLocked(op ws.OpCode, p []byte) error {
	conn := m.wconn
	if len(p) > len(m.wbuf)-14 {
		buf := make([]byte, 14+len(p)) // text messages only: never audio
		return m.writeFrame(conn, op, p, buf)
	}
	return m.writeFrame(conn, op, p, m.wbuf[:])
}

func (m *MediaSocket) writeFrame(conn net.Conn, op ws.OpCode, p, buf []byte) error {
	n := len(p)
	h := 2
	buf[0] = 0x80 | byte(op)
	switch {
	case n < 126:
		buf[1] = byte(n)
	case n <= 0xffff:
		buf[1] = 126
		binary.BigEndian.PutUint16(buf[2:], uint16(n))
		h = 4
	default:
		buf[1] = 127
		binary.BigEndian.PutUint64(buf[2:], uint64(n))
		h = 10
	}
	buf[1] |= 0x80
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], rand.Uint32())
	copy(buf[h:], mask[:])
	h += 4
	// p may already sit where the payload goes (the audio writers build it
	// in place at wbuf[14:]): move it to just after this header.
	copy(buf[h:h+n], p)
	ws.Cipher(buf[h:h+n], mask, 0)
	_ = conn.SetWriteDeadline(time.Now().Add(m.o.WriteTimeout))
	_, err := conn.Write(buf[:h+n])
	return err
}

// WritePCM sends 20 ms of audio, exactly FrameSamples samples of 16 kHz
// mono, for the call to hear. While the socket is reconnecting the frame
// is dropped (counted in Counters) and nil returned: the call hears
// silence then anyway. It returns an error once the socket is over.
func (m *MediaSocket) WritePCM(pcm []int16) error {
	if len(pcm) != FrameSamples {
		return fmt.Errorf("write media: %d samples, want %d", len(pcm), FrameSamples)
	}
	m.wmu.Lock()
	defer m.wmu.Unlock()
	audio := m.wbuf[14+FrameHeaderBytes : 14+FrameBytes]
	for i, v := range pcm {
		binary.LittleEndian.PutUint16(audio[2*i:], uint16(v))
	}
	return m.writeAudioLocked()
}

// WriteBytes sends 20 ms of audio as FrameAudioBytes bytes of s16le, as
// MediaFrame.Raw holds it; see WritePCM.
func (m *MediaSocket) WriteBytes(audio []byte) error {
	if len(audio) != FrameAudioBytes {
		return fmt.Errorf("write media: %d bytes, want %d", len(audio), FrameAudioBytes)
	}
	m.wmu.Lock()
	defer m.wmu.Unlock()
	copy(m.wbuf[14+FrameHeaderBytes:], audio)
	return m.writeAudioLocked()
}

// WriteFrame sends a frame back as it was read, header included: an
// echo. The platform ignores the header for what the call hears, but
// recognises a frame of the mix sent back whole and times it (the
// switchboard_media_socket_echo_delay_seconds metric): the delay the bot
// adds.
func (m *MediaSocket) WriteFrame(f *MediaFrame) error {
	m.wmu.Lock()
	defer m.wmu.Unlock()
	copy(m.wbuf[14+FrameHeaderBytes:], f.Raw[:])
	m.wecho = true
	m.whdr = [3]uint64{uint64(f.SourceID), uint64(f.Sequence), f.Timestamp}
	err := m.writeAudioLocked()
	m.wecho = false
	return err
}

// writeAudioLocked sends the frame whose audio is in place in m.wbuf.
func (m *MediaSocket) writeAudioLocked() error {
	if m.wconn == nil {
		if m.closed {
			return m.werr
		}
		m.writesDropped.Add(1)
		return nil
	}
	// The header is ignored by the platform; it is filled in for anyone
	// watching the wire.
	p := m.wbuf[14 : 14+FrameBytes]
	m.wseq++
	if m.wecho {
		binary.LittleEndian.PutUint32(p[0:], uint32(m.whdr[0]))
		binary.LittleEndian.PutUint32(p[4:], uint32(m.whdr[1]))
		binary.LittleEndian.PutUint64(p[8:], m.whdr[2])
	} else {
		binary.LittleEndian.PutUint32(p[0:], 0)
		binary.LittleEndian.PutUint32(p[4:], m.wseq)
		binary.LittleEndian.PutUint64(p[8:], uint64(m.wseq)*20)
	}
	// A 656-byte payload takes an 8-byte header (2 + 2 length + 4 mask):
	// build the frame so that the payload stays where it is.
	buf := m.wbuf[14-8:]
	if err := m.writeFrame(m.wconn, ws.OpBinary, buf[8:8+FrameBytes], buf); err != nil {
		// The reader sees the broken connection and reconnects.
		m.wconn.Close()
		m.wconn = nil
		return nil
	}
	m.framesWritten.Add(1)
	return nil
}

// Subscribe asks for the unmixed audio of the participants with these
// source ids besides the mix (source 0); none goes back to the mix alone.
// The subscription is sent again on every reconnected socket.
func (m *MediaSocket) Subscribe(sourceIDs ...string) error {
	if sourceIDs == nil {
		sourceIDs = []string{}
	}
	return m.subscribe(sourceIDs)
}

// SubscribeAll asks for every participant's unmixed audio, those who join
// later included.
func (m *MediaSocket) SubscribeAll() error { return m.subscribe("all") }

func (m *MediaSocket) subscribe(ids any) error {
	msg, err := json.Marshal(map[string]any{"type": "subscribe", "sourceIds": ids})
	if err != nil {
		return err
	}
	m.wmu.Lock()
	defer m.wmu.Unlock()
	if m.closed {
		return m.werr
	}
	m.subMsg = msg
	if m.wconn == nil {
		return nil // sent when the socket is back
	}
	if err := m.writeLocked(ws.OpText, msg); err != nil {
		m.wconn.Close()
		m.wconn = nil
	}
	return nil
}

// Close closes the socket with 1000 and waits (up to a second) for the
// server's close, after which a ReadFrame in progress returns
// ErrMediaClosed. The call stays up and hears silence from the bot; it
// ends only by HangUp. Close is safe to call more than once, from any
// goroutine.
func (m *MediaSocket) Close() error {
	m.wmu.Lock()
	if m.closed {
		m.wmu.Unlock()
		return nil
	}
	m.closing.Store(true)
	m.closed, m.werr = true, fmt.Errorf("media of call %s: %w", m.callID, ErrMediaClosed)
	conn := m.wconn
	m.wmu.Unlock()
	m.cancel() // a reconnect in progress stops
	if conn != nil {
		m.sendClose(1000, "bot closing")
		_ = conn.SetReadDeadline(time.Now().Add(time.Second))
	}
	// A ReadFrame in progress reads on until the server's close; with none,
	// Close reads it itself.
	m.readMu.Lock()
	defer m.readMu.Unlock()
	for m.final == nil {
		if _, _, err := m.readMessage(); err != nil {
			m.broken(err)
		}
	}
	return nil
}

// emit hands an event to Events, dropping the oldest when it is full.
func (m *MediaSocket) emit(ev MediaEvent) {
	for {
		select {
		case m.events <- ev:
			return
		default:
		}
		select {
		case <-m.events:
			m.eventsDropped.Add(1)
		default:
		}
	}
}

// isType reports whether a text message's type is t.
func isType(p []byte, t string) bool {
	var v struct{ Type string }
	return json.Unmarshal(p, &v) == nil && v.Type == t
}

// handleText decodes a control message into an event; unknown types and
// fields are ignored, as the contract asks.
func (m *MediaSocket) handleText(p []byte) error {
	var msg struct {
		Type          string            `json:"type"`
		CallID        string            `json:"callId"`
		Format        MediaFormat       `json:"format"`
		Roster        []MediaSource     `json:"roster"`
		SourceID      string            `json:"sourceId"`
		ParticipantID string            `json:"participantId"`
		Tone          string            `json:"tone"`
		ResultInfo    *graph.ResultInfo `json:"resultInfo"`
		ToBot         struct {
			Sent, Dropped int64
		} `json:"toBot"`
		FromBot struct {
			Received, Dropped int64
		} `json:"fromBot"`
	}
	if err := json.Unmarshal(p, &msg); err != nil {
		return err
	}
	switch msg.Type {
	case "hello":
		roster := m.setRoster(msg.Roster)
		h := MediaHello{CallID: msg.CallID, Format: msg.Format, Roster: roster}
		m.smu.Lock()
		m.hello = h
		m.smu.Unlock()
		m.emit(h)
	case "roster":
		m.emit(MediaRoster{Roster: m.setRoster(msg.Roster)})
	case "dominantSpeaker":
		m.emit(MediaDominantSpeaker{SourceID: msg.SourceID, ParticipantID: msg.ParticipantID})
	case "dtmf":
		m.emit(MediaDTMF{Tone: msg.Tone, SourceID: msg.SourceID, ParticipantID: msg.ParticipantID})
	case "stats":
		var s MediaStats
		s.ToBot.Sent, s.ToBot.Dropped = msg.ToBot.Sent, msg.ToBot.Dropped
		s.FromBot.Received, s.FromBot.Dropped = msg.FromBot.Received, msg.FromBot.Dropped
		m.emit(s)
	case "bye":
		var ri graph.ResultInfo
		if msg.ResultInfo != nil {
			ri = *msg.ResultInfo
		}
		m.bye = true
		m.smu.Lock()
		m.result = &ri
		m.smu.Unlock()
		m.emit(MediaBye{ResultInfo: ri})
	}
	return nil
}

// setRoster replaces the roster and returns it sorted.
func (m *MediaSocket) setRoster(in []MediaSource) []MediaSource {
	out := make([]MediaSource, 0, len(in))
	byID := make(map[uint32]MediaSource, len(in))
	for _, s := range in {
		id, err := strconv.ParseUint(s.SourceID, 10, 32)
		if err != nil {
			m.log.Warn("media socket: a roster entry without a numeric sourceId", "participant", s.ParticipantID, "sourceId", s.SourceID)
			continue
		}
		s.ID = uint32(id)
		byID[s.ID] = s
		out = append(out, s)
	}
	sortSources(out)
	m.smu.Lock()
	m.roster = byID
	m.smu.Unlock()
	return out
}

func sortSources(s []MediaSource) {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j].ID < s[j-1].ID; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
}
