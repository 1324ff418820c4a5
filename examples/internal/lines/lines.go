// Package lines is for the sample bots' tests: it collects the lines a
// bot prints (its Options.Out) and lets a test wait for one, as a person
// watching the bot's terminal would. Each line is an event word and what
// follows it ("joined Eve"). A Log is safe for concurrent use.
package lines

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// Log is an io.Writer that keeps what was written as lines.
type Log struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	lines   []string
	changed chan struct{} // closed and replaced on every write
}

// New returns an empty Log.
func New() *Log { return &Log{changed: make(chan struct{})} }

// Write takes the bot's output; a partial line waits for the rest.
func (o *Log) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.buf.Write(p)
	for {
		line, err := o.buf.ReadString('\n')
		if err != nil {
			o.buf.WriteString(line) // a partial line: keep it for the next write
			break
		}
		o.lines = append(o.lines, strings.TrimRight(line, "\n"))
	}
	close(o.changed)
	o.changed = make(chan struct{})
	return len(p), nil
}

// String is every whole line so far.
func (o *Log) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.Join(o.lines, "\n")
}

// event splits a line into its event and what follows.
func event(line string) (string, string) {
	ev, rest, _ := strings.Cut(line, " ")
	return ev, strings.TrimSpace(rest)
}

// Wait waits (up to 30 s) for a line for which ok holds and returns what
// follows its event; what names the line in the failure.
func (o *Log) Wait(t testing.TB, what string, ok func(event, detail string) bool) string {
	t.Helper()
	deadline := time.NewTimer(30 * time.Second)
	defer deadline.Stop()
	for seen := 0; ; {
		o.mu.Lock()
		lines, changed := o.lines[seen:], o.changed
		o.mu.Unlock()
		for _, l := range lines {
			seen++
			if ev, detail := event(l); ok(ev, detail) {
				return detail
			}
		}
		select {
		case <-changed:
		case <-deadline.C:
			t.Fatalf("the bot never printed %s; it printed:\n%s", what, o.String())
		}
	}
}

// WaitLine waits for the line "ev detail".
func (o *Log) WaitLine(t testing.TB, ev, detail string) {
	t.Helper()
	o.Wait(t, fmt.Sprintf("%q", ev+" "+detail), func(e, d string) bool { return e == ev && d == detail })
}

// WaitEvent waits for a line of event ev and returns its detail.
func (o *Log) WaitEvent(t testing.TB, ev string) string {
	t.Helper()
	return o.Wait(t, "a "+ev+" line", func(e, _ string) bool { return e == ev })
}

// Details is what follows the event of every line of event ev so far, in
// order ("joined" gives who joined).
func (o *Log) Details(ev string) []string {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []string
	for _, l := range o.lines {
		if e, d := event(l); e == ev {
			out = append(out, d)
		}
	}
	return out
}
