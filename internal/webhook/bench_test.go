//go:build linux

package webhook

import (
	"context"
	"net/http"
	"net/http/httptest"
	"syscall"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/store"
)

// BenchmarkOutboxTrickle delivers notifications one at a time, each
// enqueued once the previous one is delivered: the outbox of a node whose
// webhooks keep up, where the stream empties after every delivery. It
// reports the process's CPU per notification (the embedded JetStream
// included).
func BenchmarkOutboxTrickle(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	st, err := store.Open(ctx, store.Options{DataDir: b.TempDir(), Name: "b"})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	results := make(chan Result, 1)
	o := fastOptions()
	o.OnResult = func(r Result) { results <- r }
	ob, err := Open(ctx, st, &tokens{}, o)
	if err != nil {
		b.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- ob.Run(runCtx) }()
	defer func() { stop(); <-done }()

	n := note(srv.URL, "c", 0)
	cpu0 := cpuTime(b)
	for b.Loop() {
		if err := ob.Enqueue(ctx, n); err != nil {
			b.Fatal(err)
		}
		if r := <-results; !r.Delivered {
			b.Fatalf("result %+v", r)
		}
		n.ID = ""
	}
	b.ReportMetric(float64((cpuTime(b)-cpu0).Microseconds())/float64(b.N), "cpu-µs/notification")
}

func cpuTime(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
