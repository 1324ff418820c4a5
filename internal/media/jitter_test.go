package media

import (
	"bytes"
	"testing"
)

// jbHarness drives a jitterBuffer tick by tick.
type jbHarness struct {
	t  *testing.T
	jb jitterBuffer
}

func frameOf(seq uint16) []byte { return bytes.Repeat([]byte{byte(seq)}, SamplesPerFrame) }

func (h *jbHarness) push(seqs ...uint16) {
	for _, s := range seqs {
		h.jb.push(s, uint32(s)*SamplesPerFrame, false, frameOf(s))
	}
}

// pop returns what one tick plays: the frame's sequence number (its
// first byte), -1 for nothing, -2 for a lost frame.
func (h *jbHarness) pop() int {
	var dst [SamplesPerFrame]byte
	switch h.jb.pop(dst[:]) {
	case frameAudio:
		if h.jb.ts != uint32(dst[0])*SamplesPerFrame {
			h.t.Fatalf("frame %d has timestamp %d", dst[0], h.jb.ts)
		}
		return int(dst[0])
	case frameLost:
		return -2
	}
	return -1
}

func (h *jbHarness) expect(want ...int) {
	h.t.Helper()
	for i, w := range want {
		if got := h.pop(); got != w {
			h.t.Fatalf("pop %d = %d, want %d (all: %v)", i, got, w, want)
		}
	}
}

func (h *jbHarness) counts(lost, late, dups uint64) {
	h.t.Helper()
	if h.jb.lost != lost || h.jb.late != late || h.jb.duplicates != dups {
		h.t.Fatalf("lost, late, duplicates = %d, %d, %d; want %d, %d, %d",
			h.jb.lost, h.jb.late, h.jb.duplicates, lost, late, dups)
	}
}

func TestJitterInOrderWithDelay(t *testing.T) {
	h := &jbHarness{t: t}
	h.expect(-1) // nothing yet
	// One packet per tick: playout starts jbDepth-1 ticks after the
	// first, then follows one per tick.
	h.push(10)
	h.expect(-1)
	h.push(11)
	h.expect(-1)
	h.push(12)
	h.expect(10)
	for s := uint16(13); s < 40; s++ {
		h.push(s)
		h.expect(int(s) - 2)
	}
	h.counts(0, 0, 0)
}

func TestJitterReorder(t *testing.T) {
	h := &jbHarness{t: t}
	h.push(1, 3, 2, 5, 4)
	h.expect(-1, -1, 1, 2, 3, 4, 5, -1)
	h.counts(0, 0, 0)
}

func TestJitterDuplicates(t *testing.T) {
	h := &jbHarness{t: t}
	h.push(1, 2, 2, 3)
	h.expect(-1, -1, 1, 2)
	h.push(1, 3) // 1 was played; 3 is still queued
	h.expect(3)
	h.counts(0, 0, 3)
}

func TestJitterLossAndLate(t *testing.T) {
	h := &jbHarness{t: t}
	h.push(1, 2, 4, 5)
	h.expect(-1, -1, 1, 2, -2, 4)
	h.push(3) // after its play-out
	h.expect(5)
	h.counts(1, 1, 0)
	// A whole run lost: each tick plays a lost frame while later frames
	// are queued.
	h.push(9)
	h.expect(-2, -2, -2, 9)
	h.counts(4, 1, 0)
}

// A sender that stops (as Switchboard's do between prompts) is a pause,
// not loss: nothing is counted while it is silent, and the buffer refills
// before playing again.
func TestJitterPause(t *testing.T) {
	h := &jbHarness{t: t}
	h.push(1, 2, 3)
	h.expect(-1, -1, 1, 2, 3)
	for range 50 {
		h.expect(-1)
	}
	h.push(4)
	h.expect(-1, -1, 4, -1)
	h.counts(0, 0, 0)
	// A new talkspurt (marker) after numbers spent elsewhere.
	h.jb.push(20, 20*SamplesPerFrame, true, frameOf(20))
	h.push(21)
	h.expect(-1, -1, 20, 21)
	h.counts(0, 0, 0)
}

// Sequence numbers taken by RFC 4733 packets are not audio loss.
func TestJitterSkip(t *testing.T) {
	h := &jbHarness{t: t}
	h.push(1, 2)
	h.jb.pushSkip(3)
	h.jb.pushSkip(4)
	h.push(5, 6)
	h.expect(-1, -1, 1, 2, 5, 6)
	h.counts(0, 0, 0)
}

func TestJitterBoundedDelay(t *testing.T) {
	h := &jbHarness{t: t}
	// A burst far ahead of playout: the oldest are dropped (late) to keep
	// the delay bounded.
	for s := uint16(1); s <= 12; s++ {
		h.push(s)
	}
	h.expect(-1, -1)
	got := h.pop()
	if got != 12-jbMaxBuffered+1 {
		t.Fatalf("played %d after a burst, want %d", got, 12-jbMaxBuffered+1)
	}
	h.counts(0, uint64(12-jbMaxBuffered), 0)
}

func TestJitterResyncAndWrap(t *testing.T) {
	h := &jbHarness{t: t}
	h.push(65534, 65535, 0, 1)
	h.expect(-1, -1)
	for _, w := range []uint16{65534, 65535, 0, 1} {
		var dst [SamplesPerFrame]byte
		if h.jb.pop(dst[:]) != frameAudio || h.jb.ts != uint32(w)*SamplesPerFrame {
			t.Fatalf("wrap: want %d", w)
		}
	}
	// A jump to another stream restarts without counting loss.
	h.push(30000, 30001)
	h.expect(-1, -1)
	if h.jb.lost != 0 || h.jb.late != 0 {
		t.Fatalf("resync counted: %+v", h.jb)
	}
}

func BenchmarkJitterPushPop(b *testing.B) {
	var jb jitterBuffer
	payload := make([]byte, SamplesPerFrame)
	var dst [SamplesPerFrame]byte
	seq := uint16(0)
	b.ReportAllocs()
	for b.Loop() {
		jb.push(seq, uint32(seq)*SamplesPerFrame, false, payload)
		jb.pop(dst[:])
		seq++
	}
}
