package webhook

import (
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// TestQueuedCountsWhatIsYetToDeliver: with the one worker's POST stuck,
// Queued counts the window the node holds and what waits in the stream
// behind it (the consumer's NumPending), and falls back to 0 once all is
// delivered.
func TestQueuedCountsWhatIsYetToDeliver(t *testing.T) {
	release := make(chan struct{})
	blocked := make(chan struct{}, 64)
	bot := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		blocked <- struct{}{}
		<-release
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(bot.Close) // after the harness stops (cleanups run last first)
	o := fastOptions()
	o.Workers = 1                // a window of 16
	o.Timeout = 30 * time.Second // the stuck POST neither fails nor parks its call
	h, _ := newStoreHarness(t, &tokens{}, o)
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock) // before the harness stops: a failure must not hang it
	if n := h.ob.Queued(); n != 0 {
		t.Fatalf("Queued of an empty outbox = %d", n)
	}
	h.enqueue(t, note(bot.URL, "A", 0))
	<-blocked
	const total = 41
	for i := 1; i < total; i++ {
		h.enqueue(t, note(bot.URL, "A", i))
	}
	// The consumer hands over the window's 16 as they come, and then
	// nothing: the 25 behind are read from the consumer's info.
	eventually(t, "41 queued", func() bool { return h.ob.Queued() == total })
	unblock()
	h.wait(t, total)
	eventually(t, "none queued", func() bool { return h.ob.Queued() == 0 })
}

// eventually waits, boundedly, for cond: the outbox's intake and its
// acknowledgements tell nobody when they are done.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s within 10s", what) // the caller's cond says what it saw
		}
		<-tick.C
	}
}
