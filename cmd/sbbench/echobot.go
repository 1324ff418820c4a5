package main

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchboard-voice/switchboard/sdk"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

// echoBot is the bot's app-hosted side (sbbench echo): for every incoming
// call it opens the media socket with the SDK, answers with
// appHostedMediaConfig, and sends every frame of the mix (source 0) back
// as it came, so that the node times the echo
// (switchboard_media_socket_echo_delay_seconds). A slow bot instead reads
// its socket slowly and sends nothing: the platform must drop frames for
// it, and its calls stay out of the echo figures.
type echoBot struct {
	client   *sdk.Client
	slowRead time.Duration // how long a slow bot sleeps after each frame it reads
	slowLeft int           // calls still to be given a slow bot; under bot.mu
	// raw makes the echoing bots use rawMedia, the wire protocol by hand,
	// instead of the SDK's MediaSocket (slow bots always use the SDK).
	raw     bool
	sockets sync.WaitGroup
	open    atomic.Int64
	// ended holds, per call with a slow bot, a channel closed when its
	// terminated notification comes: the bot then reads the rest of its
	// backlog at once, to reach the last stats and bye.
	ended sync.Map
}

// echoStats is what went over one call's media socket, from the bot's side.
type echoStats struct {
	Done       bool  // the socket is over
	Bye        bool  // it ended with the platform's bye
	FramesRead int64 // source-0 frames
	Echoed     int64 // frames sent back
	// HeaderKept counts the echoes whose header went back as it came (see
	// echoLoop); Misaligned those sent with another one, which the node
	// cannot time; Skipped the frames not echoed for that reason (the
	// first, sequence 0).
	HeaderKept, Misaligned, Skipped int64
	// Missed is the frames the bot never got: gaps in the sequence.
	Missed int64
	// Stats is the platform's last stats message, and StatsSeen whether
	// one came.
	Stats     sdk.MediaStats
	StatsSeen bool
	// Lag is how far the bot's reading is behind the media clock: wall time
	// since its first frame minus media time since it. LagMax is the most,
	// LagEnd at its last frame.
	LagMax, LagEnd time.Duration
	// LagAtEnd is a slow bot's lag when its call ended.
	LagAtEnd time.Duration
	// FirstDrop is the call's media time at which the platform first
	// reported frames dropped toward the bot (the first stats message
	// with toBot.dropped > 0; they come every 5 s); 0: none.
	FirstDrop  time.Duration
	Reconnects int64

	t0      time.Time // the first frame came
	ts0     uint64    // its timestamp
	lastTS  uint64    // the last frame's
	prevSeq uint32
}

// stats notes the platform's stats message, read after the frame read last.
func (st *echoStats) stats(s sdk.MediaStats) {
	st.Stats, st.StatsSeen = s, true
	if s.ToBot.Dropped > 0 && st.FirstDrop == 0 && st.FramesRead > 0 {
		st.FirstDrop = time.Duration(st.lastTS-st.ts0) * time.Millisecond
	}
}

// frame counts a frame of the mix read at now.
func (st *echoStats) frame(seq uint32, ts uint64, now time.Time) {
	if st.FramesRead == 0 {
		st.t0, st.ts0 = now, ts
	} else if seq > st.prevSeq+1 {
		st.Missed += int64(seq - st.prevSeq - 1)
	}
	st.prevSeq, st.lastTS = seq, ts
	st.FramesRead++
	st.LagEnd = now.Sub(st.t0) - time.Duration(ts-st.ts0)*time.Millisecond
	st.LagMax = max(st.LagMax, st.LagEnd)
}

// echoAnswer opens the call's media socket, then answers the call with
// appHostedMediaConfig: opened first, no audio is lost.
func (b *bot) echoAnswer(callID string, slow bool) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	var (
		m   *sdk.MediaSocket
		r   *rawMedia
		err error
	)
	if slow {
		b.echo.ended.Store(callID, make(chan struct{}))
	}
	if b.echo.raw && !slow {
		var tok string
		if tok, err = b.echo.client.Token(ctx); err == nil {
			r, err = dialRawMedia(ctx, b.echo.client.MediaURL(callID), tok)
		}
	} else {
		m, err = b.echo.client.OpenMedia(ctx, callID, nil)
	}
	cancel()
	if err != nil {
		b.mu.Lock()
		if c := b.calls[callID]; c != nil {
			c.answerErr = "open media: " + err.Error()
		}
		b.mu.Unlock()
		return
	}
	b.echo.open.Add(1)
	b.echo.sockets.Add(1)
	if r != nil {
		go b.rawEchoLoop(callID, r)
	} else {
		go b.echoLoop(callID, m, slow)
	}
	err = b.post(callID, "answer", graph.AnswerRequest{
		CallbackURI:        b.callback,
		AcceptedModalities: []graph.Modality{graph.ModalityAudio},
		MediaConfig:        &graph.MediaConfig{ODataType: graph.TypeAppHostedMediaConfig, Blob: "sbbench"},
	})
	now := time.Now()
	b.mu.Lock()
	if c := b.calls[callID]; c != nil {
		c.answered = now
		if err != nil {
			c.answerErr = err.Error()
		}
	}
	b.mu.Unlock()
	if err != nil {
		if m != nil {
			_ = m.Close()
		} else {
			r.conn.Close()
		}
	}
}

// echoLoop reads the call's media socket until it is over. A fast bot
// sends each frame of the mix straight back; a slow one sleeps after each
// frame instead.
//
// The node times an echo only if it comes back with its header: source,
// sequence and timestamp as sent. The SDK's writers (WriteBytes, WritePCM)
// write a header of their own, source 0, the count of frames written so
// far as the sequence, and 20 ms per frame as the timestamp, and have no
// way to send one given. That is the mix's own header exactly when the
// k-th frame written is the mix's frame of sequence k. So the bot skips
// the first frame (sequence 0; the SDK numbers from 1) and then echoes
// frame k as its k-th write, and checks that it is (HeaderKept). A frame
// it missed would shift every later echo by one; those are counted
// (Misaligned) and sent all the same, so that the caller still hears
// itself.
func (b *bot) echoLoop(callID string, m *sdk.MediaSocket, slow bool) {
	defer b.echo.sockets.Done()
	defer b.echo.open.Add(-1)
	var (
		f     sdk.MediaFrame
		st    echoStats
		ended <-chan struct{}
	)
	if ch, ok := b.echo.ended.Load(callID); ok {
		ended = ch.(chan struct{})
	}
	events := m.Events()
	take := func(ev sdk.MediaEvent) {
		switch e := ev.(type) {
		case sdk.MediaStats:
			st.stats(e)
		case sdk.MediaBye:
			st.Bye = true
		}
	}
	var err error
	for {
		if err = m.ReadFrame(&f); err != nil {
			break
		}
	drain:
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					break drain
				}
				take(ev)
			default:
				break drain
			}
		}
		if f.SourceID != 0 {
			continue
		}
		st.frame(f.Sequence, f.Timestamp, time.Now())
		if st.FramesRead%50 == 0 {
			b.publishEcho(callID, st)
		}
		if slow {
			select {
			case <-ended:
				if st.LagAtEnd == 0 {
					st.LagAtEnd = st.LagEnd
				}
			default:
				time.Sleep(b.echo.slowRead)
			}
			continue
		}
		if f.Sequence == 0 {
			st.Skipped++
			continue
		}
		if uint64(f.Sequence) == uint64(m.Counters().FramesWritten)+1 {
			st.HeaderKept++
		} else {
			st.Misaligned++
		}
		if werr := m.WriteBytes(f.Raw[:]); werr != nil {
			err = werr
			break
		}
		st.Echoed++
	}
	for ev := range events { // closed once the socket is over
		take(ev)
	}
	st.Done = true
	st.Reconnects = m.Counters().Reconnects
	_ = m.Close()
	b.endEcho(callID, st, err)
}

// publishEcho notes what went over a call's socket so far, for a report
// taken while it is still open (a slow bot's, reading its backlog).
func (b *bot) publishEcho(callID string, st echoStats) {
	b.mu.Lock()
	if c := b.calls[callID]; c != nil {
		c.media = st
	}
	b.mu.Unlock()
}

// endEcho notes what went over a call's socket once it is over.
func (b *bot) endEcho(callID string, st echoStats, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	c := b.calls[callID]
	if c == nil {
		return
	}
	c.media = st
	if !errors.Is(err, sdk.ErrCallEnded) {
		c.mediaErr = err.Error()
	}
}

// waitSockets waits until every media socket is over, or max has passed.
func (b *bot) waitSockets(ctx context.Context, max time.Duration) error {
	done := make(chan struct{})
	go func() {
		b.echo.sockets.Wait()
		close(done)
	}()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	case <-time.After(max):
		return fmt.Errorf("after %v, %d media sockets are still open", max, b.echo.open.Load())
	}
}
