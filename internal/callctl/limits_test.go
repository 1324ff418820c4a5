package callctl

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/switchboard-voice/switchboard/internal/errs"
	"github.com/switchboard-voice/switchboard/internal/store"
	"github.com/switchboard-voice/switchboard/sdk/graph"
)

func openLimits(t *testing.T) *store.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, err := store.Open(ctx, store.Options{DataDir: t.TempDir(), Name: "limits-test"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// counts reads the stored entry of key.
func storedCounts(t *testing.T, kv *store.KV, key string) map[string]int {
	t.Helper()
	data, _, err := kv.Get(context.Background(), key)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]int
	if err := json.Unmarshal(data, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// Creates racing on two nodes get exactly the limit between them, however
// the group commits and compare-and-set conflicts fall; releases bring the
// stored counts back to nothing; a lost node's entries are dropped.
func TestLimitsAcrossNodes(t *testing.T) {
	st := openLimits(t)
	ctx := context.Background()
	kv, err := st.Bucket(ctx, LimitsBucket, 0)
	if err != nil {
		t.Fatal(err)
	}
	const limit = 10
	lim := func() int { return limit }
	log := slog.New(slog.DiscardHandler)
	nodes := []*limits{newLimits(kv, "a", lim, log), newLimits(kv, "b", lim, log)}
	key := limitKeyName("app", "tenant")

	var granted [2]atomic.Int32
	var wg sync.WaitGroup
	for i := range 40 {
		wg.Go(func() {
			err := nodes[i%2].acquire(ctx, key)
			switch {
			case err == nil:
				granted[i%2].Add(1)
			case errs.KindOf(err) != errs.Throttled:
				t.Errorf("acquire: %v", err)
			}
		})
	}
	wg.Wait()
	if a, b := granted[0].Load(), granted[1].Load(); a+b != limit {
		t.Fatalf("granted %d on a and %d on b, want %d in all", a, b, limit)
	}
	c := storedCounts(t, kv, key)
	if c["a"] != int(granted[0].Load()) || c["b"] != int(granted[1].Load()) {
		t.Fatalf("stored %v, granted a=%d b=%d", c, granted[0].Load(), granted[1].Load())
	}

	// Node a gives back all its calls; node b is lost with its share.
	for range granted[0].Load() {
		nodes[0].release(key)
	}
	nodes[0].wait()
	if c := storedCounts(t, kv, key); c["a"] != 0 || c["b"] != int(granted[1].Load()) {
		t.Fatalf("after a's releases: %v", c)
	}
	if n, err := DropNodeLimits(ctx, st, "b"); err != nil || n != int(granted[1].Load()) {
		t.Fatalf("drop b: %d, %v", n, err)
	}
	if c := storedCounts(t, kv, key); len(c) != 0 {
		t.Fatalf("after dropping b: %v", c)
	}
	// The whole limit is a's again, though its cached count is stale.
	for i := range limit {
		if err := nodes[0].acquire(ctx, key); err != nil {
			t.Fatalf("acquire %d after the drop: %v", i, err)
		}
	}
	if err := nodes[0].acquire(ctx, key); errs.KindOf(err) != errs.Throttled {
		t.Fatalf("acquire over the limit: %v", err)
	}
}

// A restarted node's entry becomes what it resumed: the calls that died
// with the old process no longer count.
func TestLimitsSyncAfterRestart(t *testing.T) {
	st := openLimits(t)
	ctx := context.Background()
	kv, err := st.Bucket(ctx, LimitsBucket, 0)
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	lim := func() int { return 5 }
	key, other := limitKeyName("app", "tenant"), limitKeyName("app2", "tenant")
	before := newLimits(kv, "a", lim, log)
	for _, k := range []string{key, key, key, other} {
		if err := before.acquire(ctx, k); err != nil {
			t.Fatal(err)
		}
	}
	after := newLimits(kv, "a", lim, log) // the same node, restarted
	after.adopt(key)                      // one call resumed
	if err := after.sync(ctx); err != nil {
		t.Fatal(err)
	}
	after.wait()
	if c := storedCounts(t, kv, key); c["a"] != 1 {
		t.Fatalf("%s after the restart: %v", key, c)
	}
	if c := storedCounts(t, kv, other); c["a"] != 0 {
		t.Fatalf("%s after the restart: %v", other, c)
	}
}

// A node that was only cut off, not dead, while another node took it for
// lost and ended its calls, writes nothing more to them: its next step
// finds the record marked by the takeover (or deleted) and drops the
// call, answering 404, instead of overwriting the ended call.
func TestTakenOverCallIsDroppedWithoutAWrite(t *testing.T) {
	for _, deleted := range []bool{false, true} {
		h := newHarness(t)
		id, leg := h.established()
		h.nt.take(id)
		a := h.actor(id)
		ctx := context.Background()
		if deleted {
			if err := h.st.Delete(ctx, id); err != nil {
				t.Fatal(err)
			}
		} else {
			rec := h.st.record(t, id)
			rec.TakenOver = true
			rec.Call.State = "terminated"
			data, _ := json.Marshal(rec)
			_, rev, _ := h.st.Get(ctx, id)
			if _, err := h.st.Update(ctx, id, data, rev); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := h.do(h.bot, id, "mute", "", &graph.ClientContextRequest{}); errs.KindOf(err) != errs.NotFound {
			t.Fatalf("deleted=%v: mute on a call taken over: %v, want 404", deleted, err)
		}
		if rec := h.st.record(t, id); deleted != (rec == nil) || rec != nil && (!rec.TakenOver || rec.Muted) {
			t.Fatalf("deleted=%v: the record was written after the takeover: %+v", deleted, rec)
		}
		if got := h.nt.take(id); len(got) != 0 {
			t.Fatalf("deleted=%v: notified after the takeover: %q", deleted, got)
		}
		if got := leg.asked(); !slices.Contains(got, "hangUp 9020") {
			t.Fatalf("deleted=%v: the leg was asked %q, want it hung up", deleted, got)
		}
		<-a.done
		h.leak(id)
	}
}

// BenchmarkLimitsAcquire is the cluster-wide count's cost on the call
// path: one acquire per new call, the calls held (their releases come
// later, off the path), on the embedded store. In parallel, creates
// arriving during a write share the next one (group commit).
func BenchmarkLimitsAcquire(b *testing.B) {
	ctx := context.Background()
	st, err := store.Open(ctx, store.Options{DataDir: b.TempDir(), Name: "limits-bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	kv, err := st.Bucket(ctx, LimitsBucket, 0)
	if err != nil {
		b.Fatal(err)
	}
	l := newLimits(kv, "a", func() int { return 1 << 30 }, slog.New(slog.DiscardHandler))
	key := limitKeyName("app", "tenant")
	var held atomic.Int64
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := l.acquire(ctx, key); err != nil {
				b.Error(err)
				return
			}
			held.Add(1)
		}
	})
	b.StopTimer()
	for range held.Load() {
		l.release(key)
	}
	l.wait()
}

// Calls coming and going at a steady rate cost one write each: a release
// waits for the next create's write (or releaseDelay), which carries it.
// A release with no create after it is still written, after releaseDelay.
func TestLimitsReleasesRideOnCreates(t *testing.T) {
	st := openLimits(t)
	ctx := context.Background()
	kv, err := st.Bucket(ctx, LimitsBucket, 0)
	if err != nil {
		t.Fatal(err)
	}
	l := newLimits(kv, "a", func() int { return 100 }, slog.New(slog.DiscardHandler))
	key := limitKeyName("app", "tenant")
	revision := func() uint64 {
		_, rev, err := kv.Get(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}
	if err := l.acquire(ctx, key); err != nil {
		t.Fatal(err)
	}
	first := revision()
	const turns = 20
	for range turns { // a call ends, another starts
		l.release(key)
		if err := l.acquire(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	if writes := revision() - first; writes > turns+1 {
		t.Fatalf("%d writes for %d calls ending and %d starting: releases were not carried by creates", writes, turns, turns)
	}
	if c := storedCounts(t, kv, key); c["a"] != 1 {
		t.Fatalf("stored %v, want a=1", c)
	}
	// The last call ends, and nothing follows: written on its own.
	l.release(key)
	deadline := time.Now().Add(10 * releaseDelay)
	for storedCounts(t, kv, key)["a"] != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the last release not written within %v: %v", 10*releaseDelay, storedCounts(t, kv, key))
		}
		time.Sleep(releaseDelay / 10)
	}
	l.wait()
}
