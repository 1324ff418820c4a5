package sdk_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/switchboard-voice/switchboard/sdk"
)

// mediaServer is the platform's side of the media socket
// (docs/media-socket.md) at the unit level, on a real loopback socket: it
// refuses before the upgrade as the contract says, selects the
// subprotocol, sends hello, and hands each accepted socket to the test as
// a peer that sends frames and events and sees what the bot sent.
type mediaServer struct {
	t      testing.TB
	p      *platform
	roster []map[string]string
	// refuse, when set, answers the upgrade request instead: a Graph error
	// with that status, code and message.
	refuse func(r *http.Request) (status int, code, message string)
	// discard makes each socket's reader drop what the bot sends, without
	// allocating (for the write benchmark).
	discard bool
	dials   atomic.Int32
	peers   chan *peer

	mu    sync.Mutex
	conns []net.Conn
}

func newMediaServer(t testing.TB) *mediaServer {
	p := newPlatform(t, false)
	s := &mediaServer{t: t, p: p, peers: make(chan *peer, 8),
		roster: []map[string]string{{"participantId": "p-alice", "sourceId": "7", "displayName": "Alice"},
			{"participantId": "p-bob", "sourceId": "9", "displayName": "Bob"}}}
	p.setGraph(s.serve)
	t.Cleanup(func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, c := range s.conns {
			c.Close()
		}
	})
	return s
}

func (s *mediaServer) client() *sdk.Client { return s.p.client(sdk.ClientOptions{}) }

func (s *mediaServer) serve(w http.ResponseWriter, r *http.Request) {
	if !strings.HasSuffix(r.URL.Path, "/media") || r.Method != http.MethodGet {
		writeJSON(w, http.StatusNotFound, map[string]any{"error": map[string]string{"code": "NotFound", "message": "no such call"}})
		return
	}
	s.dials.Add(1)
	if s.refuse != nil {
		if status, code, msg := s.refuse(r); status != 0 {
			writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
			return
		}
	}
	if !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer tok-") {
		writeJSON(w, http.StatusUnauthorized, map[string]any{"error": map[string]string{"code": "InvalidAuthenticationToken", "message": "no token"}})
		return
	}
	u := ws.HTTPUpgrader{Protocol: func(p string) bool { return p == sdk.MediaSubprotocol }}
	conn, rw, hs, err := u.Upgrade(r, w)
	if err != nil {
		return
	}
	s.mu.Lock()
	s.conns = append(s.conns, conn)
	s.mu.Unlock()
	callID := strings.TrimSuffix(strings.TrimPrefix(r.URL.Path, "/v1.0/communications/calls/"), "/media")
	pr := &peer{t: s.t, conn: conn, in: make(chan ws.Frame, 4096), callID: callID,
		auth: r.Header.Get("Authorization"), protocol: hs.Protocol}
	pr.text(map[string]any{"type": "hello", "callId": "call-1", "roster": s.roster,
		"format": map[string]any{"encoding": "s16le", "sampleRate": 16000, "channels": 1, "frameMs": 20}})
	s.peers <- pr
	if s.discard {
		_, _ = io.Copy(io.Discard, rw.Reader)
		close(pr.in)
		return
	}
	pr.read(rw.Reader)
}

// next is the next socket the bot opened.
func (s *mediaServer) next() *peer {
	s.t.Helper()
	select {
	case p := <-s.peers:
		return p
	case <-time.After(10 * time.Second):
		s.t.Fatal("the bot opened no socket")
		return nil
	}
}

// peer is one accepted socket, from the server's side.
type peer struct {
	t        testing.TB
	conn     net.Conn
	in       chan ws.Frame // what the bot sent, unmasked; closed when it is gone
	callID   string
	auth     string
	protocol string
	wmu      sync.Mutex
	masked   atomic.Bool // every frame from the bot was masked
	unmasked atomic.Int32
}

// read takes the bot's frames until the connection ends, answering a
// close as a server does.
func (p *peer) read(br *bufio.Reader) {
	defer close(p.in)
	defer p.conn.Close()
	for {
		f, err := ws.ReadFrame(br)
		if err != nil {
			return
		}
		if !f.Header.Masked {
			p.unmasked.Add(1)
		}
		f = ws.UnmaskFrameInPlace(f)
		p.in <- f
		if f.Header.OpCode == ws.OpClose {
			code, _ := ws.ParseCloseFrameData(f.Payload)
			p.send(ws.NewCloseFrame(ws.NewCloseFrameBody(code, "")))
			return
		}
	}
}

func (p *peer) send(f ws.Frame) {
	p.wmu.Lock()
	defer p.wmu.Unlock()
	_ = ws.WriteFrame(p.conn, f)
}

func (p *peer) text(v any) {
	data, _ := json.Marshal(v)
	p.send(ws.NewTextFrame(data))
}

// frame sends a frame of source whose samples are base+i.
func (p *peer) frame(source, seq uint32, ts uint64, base int16) {
	p.send(ws.NewBinaryFrame(frameBytes(source, seq, ts, base)))
}

func frameBytes(source, seq uint32, ts uint64, base int16) []byte {
	b := make([]byte, sdk.FrameBytes)
	binary.LittleEndian.PutUint32(b[0:], source)
	binary.LittleEndian.PutUint32(b[4:], seq)
	binary.LittleEndian.PutUint64(b[8:], ts)
	for i := range sdk.FrameSamples {
		binary.LittleEndian.PutUint16(b[16+2*i:], uint16(base+int16(i)))
	}
	return b
}

func (p *peer) closeWith(code ws.StatusCode, reason string) {
	p.send(ws.NewCloseFrame(ws.NewCloseFrameBody(code, reason)))
}

// recv is the next frame the bot sent.
func (p *peer) recv() ws.Frame {
	p.t.Helper()
	select {
	case f, ok := <-p.in:
		if !ok {
			p.t.Fatal("the bot's socket closed")
		}
		return f
	case <-time.After(10 * time.Second):
		p.t.Fatal("the bot sent nothing")
		return ws.Frame{}
	}
}

// open opens the media socket of call-1 and closes it at cleanup.
func openMedia(t *testing.T, c *sdk.Client, o *sdk.MediaOptions) *sdk.MediaSocket {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	m, err := c.OpenMedia(ctx, "call-1", o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = m.Close() })
	return m
}

// readFrame reads one frame, failing the test after 10 s.
func readFrame(t *testing.T, m *sdk.MediaSocket, f *sdk.MediaFrame) error {
	t.Helper()
	errc := make(chan error, 1)
	go func() { errc <- m.ReadFrame(f) }()
	select {
	case err := <-errc:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("ReadFrame did not return")
		return nil
	}
}

// event is the next event of the type T, skipping others.
func event[T sdk.MediaEvent](t *testing.T, m *sdk.MediaSocket) T {
	t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case ev, ok := <-m.Events():
			if !ok {
				var zero T
				t.Fatalf("events closed before a %T", zero)
			}
			if v, ok := ev.(T); ok {
				return v
			}
		case <-timeout:
			var zero T
			t.Fatalf("no %T", zero)
		}
	}
}

// Frames and events both ways, as the contract has them, and bye.
func TestMediaSocketFramesEventsAndBye(t *testing.T) {
	s := newMediaServer(t)
	m := openMedia(t, s.client(), nil)
	p := s.next()
	if p.protocol != sdk.MediaSubprotocol || p.auth != "Bearer tok-1" || p.callID != "call-1" {
		t.Fatalf("opened with protocol %q, auth %q, call %q", p.protocol, p.auth, p.callID)
	}
	h := m.Hello()
	if h.CallID != "call-1" || h.Format.SampleRate != 16000 || h.Format.FrameMs != 20 || len(h.Roster) != 2 {
		t.Fatalf("hello %+v", h)
	}
	if src, ok := m.Source(9); !ok || src.DisplayName != "Bob" || src.ParticipantID != "p-bob" {
		t.Fatalf("source 9: %+v %v", src, ok)
	}
	if hello := event[sdk.MediaHello](t, m); len(hello.Roster) != 2 || hello.Roster[0].ID != 7 {
		t.Fatalf("hello event %+v", hello)
	}

	// Events between frames are taken on the way; unknown types and fields
	// are ignored.
	p.frame(0, 1, 20, 100)
	p.text(map[string]any{"type": "roster", "roster": []map[string]string{{"participantId": "p-carol", "sourceId": "12", "displayName": "Carol"}}})
	p.text(map[string]any{"type": "somethingNew", "x": 1})
	p.text(map[string]any{"type": "dominantSpeaker", "sourceId": "12", "participantId": "p-carol", "level": 3})
	p.text(map[string]any{"type": "dtmf", "tone": "#", "sourceId": "12", "participantId": "p-carol"})
	p.text(map[string]any{"type": "stats", "toBot": map[string]int{"sent": 50, "dropped": 2}, "fromBot": map[string]int{"received": 40, "dropped": 1}})
	p.frame(12, 5, 40, -300)
	var f sdk.MediaFrame
	for i, want := range []struct {
		src, seq uint32
		ts       uint64
		base     int16
	}{{0, 1, 20, 100}, {12, 5, 40, -300}} {
		if err := readFrame(t, m, &f); err != nil {
			t.Fatal(err)
		}
		if f.SourceID != want.src || f.Sequence != want.seq || f.Timestamp != want.ts || f.PCM[0] != want.base || f.PCM[319] != want.base+319 {
			t.Fatalf("frame %d: source %d seq %d ts %d pcm %d…%d", i, f.SourceID, f.Sequence, f.Timestamp, f.PCM[0], f.PCM[319])
		}
		if int16(binary.LittleEndian.Uint16(f.Raw[2:])) != want.base+1 {
			t.Fatalf("frame %d: raw does not hold the audio", i)
		}
	}
	if r := event[sdk.MediaRoster](t, m); len(r.Roster) != 1 || r.Roster[0].ID != 12 || r.Roster[0].DisplayName != "Carol" {
		t.Fatalf("roster %+v", r)
	}
	if src, ok := m.Source(12); !ok || src.DisplayName != "Carol" {
		t.Fatalf("source 12 after the roster: %+v", src)
	}
	if _, ok := m.Source(7); ok {
		t.Fatal("Alice is still in the roster")
	}
	if d := event[sdk.MediaDominantSpeaker](t, m); d.SourceID != "12" || d.ParticipantID != "p-carol" {
		t.Fatalf("dominant speaker %+v", d)
	}
	if d := event[sdk.MediaDTMF](t, m); d.Tone != "#" || d.SourceID != "12" {
		t.Fatalf("dtmf %+v", d)
	}
	if st := event[sdk.MediaStats](t, m); st.ToBot.Sent != 50 || st.ToBot.Dropped != 2 || st.FromBot.Received != 40 || st.FromBot.Dropped != 1 {
		t.Fatalf("stats %+v", st)
	}

	// The bot's audio: 656-byte binary messages, masked.
	pcm := make([]int16, sdk.FrameSamples)
	for i := range pcm {
		pcm[i] = int16(-1000 + i)
	}
	if err := m.WritePCM(pcm); err != nil {
		t.Fatal(err)
	}
	if err := m.WriteBytes(f.Raw[:]); err != nil {
		t.Fatal(err)
	}
	if err := m.WritePCM(pcm[:10]); err == nil {
		t.Fatal("a short frame was written")
	}
	for i, base := range []int16{-1000, -300} {
		got := p.recv()
		if got.Header.OpCode != ws.OpBinary || len(got.Payload) != sdk.FrameBytes {
			t.Fatalf("written frame %d: op %v, %d bytes", i, got.Header.OpCode, len(got.Payload))
		}
		if v := int16(binary.LittleEndian.Uint16(got.Payload[16+2*5:])); v != base+5 {
			t.Fatalf("written frame %d: sample 5 is %d, want %d", i, v, base+5)
		}
	}
	if err := m.Subscribe("7", "9"); err != nil {
		t.Fatal(err)
	}
	if err := m.SubscribeAll(); err != nil {
		t.Fatal(err)
	}
	if err := m.Subscribe(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`{"sourceIds":["7","9"],"type":"subscribe"}`, `{"sourceIds":"all","type":"subscribe"}`, `{"sourceIds":[],"type":"subscribe"}`} {
		if got := p.recv(); got.Header.OpCode != ws.OpText || string(got.Payload) != want {
			t.Fatalf("sent %v %s, want %s", got.Header.OpCode, got.Payload, want)
		}
	}
	if n := p.unmasked.Load(); n != 0 {
		t.Fatalf("%d frames from the bot were not masked", n)
	}

	// The call ends: bye, then 1000.
	p.text(map[string]any{"type": "bye", "resultInfo": map[string]any{"code": 200, "subcode": 5001, "message": "The call ended."}})
	p.closeWith(ws.StatusNormalClosure, "call ended")
	err := readFrame(t, m, &f)
	if !errors.Is(err, sdk.ErrCallEnded) {
		t.Fatalf("after bye: %v, want ErrCallEnded", err)
	}
	if r := m.Result(); r == nil || r.Code != 200 || r.Subcode != 5001 {
		t.Fatalf("result %+v", r)
	}
	if b := event[sdk.MediaBye](t, m); b.ResultInfo.Subcode != 5001 {
		t.Fatalf("bye %+v", b)
	}
	if err := m.ReadFrame(&f); !errors.Is(err, sdk.ErrCallEnded) {
		t.Fatalf("read again: %v", err)
	}
	if err := m.WritePCM(pcm); !errors.Is(err, sdk.ErrCallEnded) {
		t.Fatalf("write after bye: %v", err)
	}
	// The client answered the close.
	if got := p.recv(); got.Header.OpCode != ws.OpClose {
		t.Fatalf("the bot answered the close with %v", got.Header.OpCode)
	}
	if s.dials.Load() != 1 {
		t.Fatalf("%d dials after bye, want 1", s.dials.Load())
	}
}

// A socket that drops is reopened: a fresh hello, the subscription sent
// again, frames flowing again; writes in between are dropped, not failed.
func TestMediaSocketReconnects(t *testing.T) {
	s := newMediaServer(t)
	m := openMedia(t, s.client(), &sdk.MediaOptions{ReconnectBackoff: 10 * time.Millisecond})
	p1 := s.next()
	if err := m.SubscribeAll(); err != nil {
		t.Fatal(err)
	}
	p1.recv()
	p1.frame(0, 1, 20, 1)
	var f sdk.MediaFrame
	if err := readFrame(t, m, &f); err != nil {
		t.Fatal(err)
	}
	p1.conn.Close() // the network drops it: no close frame

	errc := make(chan error, 1)
	go func() { errc <- m.ReadFrame(&f) }()
	p2 := s.next()
	if got := p2.recv(); string(got.Payload) != `{"sourceIds":"all","type":"subscribe"}` {
		t.Fatalf("after reconnecting the bot sent %s, want its subscription", got.Payload)
	}
	p2.frame(0, 60, 1200, 2)
	if err := <-errc; err != nil || f.Sequence != 60 {
		t.Fatalf("after reconnecting: %v, seq %d", err, f.Sequence)
	}
	if ev := event[sdk.MediaDisconnected](t, m); ev.Err == nil {
		t.Fatal("disconnected without a cause")
	}
	event[sdk.MediaHello](t, m)
	if ev := event[sdk.MediaReconnected](t, m); ev.Attempts != 1 {
		t.Fatalf("reconnected %+v", ev)
	}
	if c := m.Counters(); c.Reconnects != 1 || c.FramesRead != 2 {
		t.Fatalf("counters %+v", c)
	}
	if err := m.WriteBytes(f.Raw[:]); err != nil {
		t.Fatal(err)
	}
	if got := p2.recv(); got.Header.OpCode != ws.OpBinary {
		t.Fatalf("after reconnecting the bot's audio went as %v", got.Header.OpCode)
	}
}

// A newer socket replaces this one (4001): no reconnect, which would take
// the call back.
func TestMediaSocketReplaced(t *testing.T) {
	s := newMediaServer(t)
	m := openMedia(t, s.client(), &sdk.MediaOptions{ReconnectBackoff: time.Millisecond})
	p := s.next()
	p.closeWith(4001, "replaced")
	var f sdk.MediaFrame
	if err := readFrame(t, m, &f); !errors.Is(err, sdk.ErrMediaReplaced) {
		t.Fatalf("after 4001: %v", err)
	}
	for range m.Events() { // closed: the socket is over
	}
	if n := s.dials.Load(); n != 1 {
		t.Fatalf("%d dials, want 1", n)
	}
}

// A close for the bot's own fault (1007) is returned, not retried.
func TestMediaSocketProtocolCloseIsFinal(t *testing.T) {
	s := newMediaServer(t)
	m := openMedia(t, s.client(), &sdk.MediaOptions{ReconnectBackoff: time.Millisecond})
	p := s.next()
	p.closeWith(ws.StatusInvalidFramePayloadData, "frame of 12 bytes, want 656")
	var f sdk.MediaFrame
	var ce *sdk.MediaCloseError
	if err := readFrame(t, m, &f); !errors.As(err, &ce) || ce.Code != 1007 || ce.Reason != "frame of 12 bytes, want 656" {
		t.Fatalf("after 1007: %v", err)
	}
}

// Reconnecting stops when the call is gone (404) and when the window
// passes.
func TestMediaSocketReconnectGivesUp(t *testing.T) {
	t.Run("call gone", func(t *testing.T) {
		s := newMediaServer(t)
		m := openMedia(t, s.client(), &sdk.MediaOptions{ReconnectBackoff: time.Millisecond})
		p := s.next()
		s.refuse = func(*http.Request) (int, string, string) { return 404, "NotFound", "no such call" }
		p.conn.Close()
		var f sdk.MediaFrame
		err := readFrame(t, m, &f)
		var ge *sdk.GraphError
		if !errors.Is(err, sdk.ErrCallEnded) || !errors.As(err, &ge) || ge.StatusCode != 404 {
			t.Fatalf("after 404: %v", err)
		}
	})
	t.Run("window", func(t *testing.T) {
		s := newMediaServer(t)
		m := openMedia(t, s.client(), &sdk.MediaOptions{ReconnectBackoff: 5 * time.Millisecond, ReconnectWindow: 200 * time.Millisecond})
		p := s.next()
		s.refuse = func(*http.Request) (int, string, string) { return 503, "ServiceUnavailable", "restarting" }
		p.conn.Close()
		var f sdk.MediaFrame
		err := readFrame(t, m, &f)
		if err == nil || !strings.Contains(err.Error(), "no socket for 200ms") || s.dials.Load() < 3 {
			t.Fatalf("after the window: %v (%d dials)", err, s.dials.Load())
		}
	})
	t.Run("NoReconnect", func(t *testing.T) {
		s := newMediaServer(t)
		m := openMedia(t, s.client(), &sdk.MediaOptions{NoReconnect: true})
		s.next().conn.Close()
		var f sdk.MediaFrame
		if err := readFrame(t, m, &f); err == nil || s.dials.Load() != 1 {
			t.Fatalf("without reconnecting: %v (%d dials)", err, s.dials.Load())
		}
	})
}

// A refusal before the upgrade is a *GraphError; a 401 gets one new token.
func TestMediaSocketRefused(t *testing.T) {
	s := newMediaServer(t)
	s.refuse = func(*http.Request) (int, string, string) {
		return 403, "Forbidden", "Calls.AccessMedia.All is required"
	}
	_, err := s.client().OpenMedia(t.Context(), "call-1", nil)
	var ge *sdk.GraphError
	if !errors.As(err, &ge) || ge.StatusCode != 403 || ge.Message != "Calls.AccessMedia.All is required" {
		t.Fatalf("refused: %v", err)
	}

	var first atomic.Bool
	s.refuse = func(r *http.Request) (int, string, string) {
		if first.CompareAndSwap(false, true) {
			return 401, "InvalidAuthenticationToken", "expired"
		}
		return 0, "", ""
	}
	openMedia(t, s.client(), nil)
	if p := s.next(); p.auth != "Bearer tok-3" {
		t.Fatalf("after a 401 the bot came back with %q, want a fresh token", p.auth)
	}
}

// Close: a 1000 the server answers; a ReadFrame blocked meanwhile returns
// ErrMediaClosed.
func TestMediaSocketClose(t *testing.T) {
	s := newMediaServer(t)
	m := openMedia(t, s.client(), nil)
	p := s.next()
	errc := make(chan error, 1)
	var f sdk.MediaFrame
	go func() { errc <- m.ReadFrame(&f) }()
	p.frame(0, 1, 20, 0)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	go func() { errc <- m.ReadFrame(&f) }()
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if got := p.recv(); got.Header.OpCode != ws.OpClose {
		t.Fatalf("close sent as %v", got.Header.OpCode)
	} else if code, reason := ws.ParseCloseFrameData(got.Payload); code != 1000 || reason == "" {
		t.Fatalf("closed with %d %q", code, reason)
	}
	if err := <-errc; !errors.Is(err, sdk.ErrMediaClosed) {
		t.Fatalf("read after Close: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatal(err)
	}
	if err := m.WritePCM(make([]int16, sdk.FrameSamples)); !errors.Is(err, sdk.ErrMediaClosed) {
		t.Fatalf("write after Close: %v", err)
	}
	if _, ok := <-p.in; ok {
		t.Fatal("the bot went on sending after its close")
	}
}

// Pings are answered; fragmented messages are put together.
func TestMediaSocketPingAndFragments(t *testing.T) {
	s := newMediaServer(t)
	m := openMedia(t, s.client(), nil)
	p := s.next()
	p.send(ws.NewPingFrame([]byte("are you there")))
	p.send(ws.NewFrame(ws.OpText, false, []byte(`{"type":"dtmf",`)))
	p.send(ws.NewFrame(ws.OpContinuation, true, []byte(`"tone":"5","sourceId":"7"}`)))
	whole := frameBytes(7, 3, 60, 11)
	p.send(ws.NewFrame(ws.OpBinary, false, whole[:100]))
	p.send(ws.NewPingFrame(nil))
	p.send(ws.NewFrame(ws.OpContinuation, true, whole[100:]))
	var f sdk.MediaFrame
	if err := readFrame(t, m, &f); err != nil || f.SourceID != 7 || f.Sequence != 3 || f.PCM[319] != 11+319 {
		t.Fatalf("fragmented frame: %v %d %d %d", err, f.SourceID, f.Sequence, f.PCM[319])
	}
	if d := event[sdk.MediaDTMF](t, m); d.Tone != "5" {
		t.Fatalf("fragmented dtmf %+v", d)
	}
	if got := p.recv(); got.Header.OpCode != ws.OpPong || string(got.Payload) != "are you there" {
		t.Fatalf("ping answered with %v %q", got.Header.OpCode, got.Payload)
	}
	if got := p.recv(); got.Header.OpCode != ws.OpPong {
		t.Fatalf("second ping answered with %v", got.Header.OpCode)
	}
}

// BenchmarkMediaSocketReadFrame reads frames from a real loopback socket;
// the server side writes prebuilt frames, so every allocation counted is
// the reader's: there must be none per frame.
func BenchmarkMediaSocketReadFrame(b *testing.B) {
	s := newMediaServer(b)
	c := s.client()
	m, err := c.OpenMedia(b.Context(), "call-1", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	p := s.next()
	// 64 frames as they go on the wire, written in one go each time.
	var burst []byte
	for i := range 64 {
		f := ws.NewBinaryFrame(frameBytes(0, uint32(i), uint64(20*i), int16(i)))
		var bb bytes.Buffer
		_ = ws.WriteFrame(&bb, f)
		burst = append(burst, bb.Bytes()...)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := p.conn.Write(burst); err != nil {
				return
			}
		}
	}()
	var f sdk.MediaFrame
	b.SetBytes(sdk.FrameBytes)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := m.ReadFrame(&f); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	close(stop)
	p.conn.Close()
	<-done
}

// BenchmarkMediaSocketWritePCM writes frames to a real loopback socket.
func BenchmarkMediaSocketWritePCM(b *testing.B) {
	s := newMediaServer(b)
	s.discard = true
	m, err := s.client().OpenMedia(b.Context(), "call-1", nil)
	if err != nil {
		b.Fatal(err)
	}
	defer m.Close()
	s.next()
	pcm := make([]int16, sdk.FrameSamples)
	b.SetBytes(sdk.FrameBytes)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if err := m.WritePCM(pcm); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	if c := m.Counters(); c.FramesWritten != int64(b.N) {
		b.Fatalf("%d frames written of %d", c.FramesWritten, b.N)
	}
}
